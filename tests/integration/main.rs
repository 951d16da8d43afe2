//! Integration tests: real Postgres, real HTTP.
mod admin;
mod admin_page;
mod container;
mod database;
mod helpers;
mod hostile;
mod jira_webhooks;
mod jobs;
mod lifecycle;
mod logs;
mod pagerduty_api;
mod pagerduty_webhooks;
mod process;
mod replay;
mod routing;
mod secrets;
