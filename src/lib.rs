//! Goliath: PagerDuty incidents in, the right owner picked, Jira issues out, and a learner that
//! gets better with every outcome.

pub mod app;
pub mod batch;
pub mod config;
pub mod db;
pub mod decision;
pub mod escalation;
pub mod executor;
pub mod foreground;
pub mod housekeeping;
pub mod http;
pub mod ingest;
pub mod jira;
pub mod jobs;
pub mod lab;
pub mod learner;
pub mod logsummary;
pub mod metrics;
pub mod models;
pub mod outbox;
pub mod overview;
pub mod pagerduty;
pub mod redact;
pub mod roster;
pub mod routing;
pub mod secret;
pub mod server;
pub mod signature;
