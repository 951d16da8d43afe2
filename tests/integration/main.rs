//! Integration tests: real Postgres, real HTTP.
mod helpers;
mod pagerduty;
