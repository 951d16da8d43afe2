//! Integration tests: real Postgres, real HTTP.
mod admin_page;
mod decision;
mod executor;
mod helpers;
mod hostile;
mod lifecycle;
mod pagerduty;
mod pagerduty_api;
mod process;
mod replay;
mod secrets;
