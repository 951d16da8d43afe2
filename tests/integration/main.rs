//! Integration tests: real Postgres, real HTTP.
mod decision;
mod helpers;
mod pagerduty;
