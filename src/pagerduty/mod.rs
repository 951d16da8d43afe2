//! Everything that speaks PagerDuty's REST API (the webhooks it sends are read by
//! `ingest::pagerduty`):
//!
//! * [`client`]: the REST client ([`PagerDutyApi`], [`HttpPagerDutyClient`]).
//! * [`oncall`]: who is on call per escalation policy, kept fresh in the background.
//! * [`writer`]: the queued write-backs: a note naming the owner, and the incident reassigned
//!   to them.

pub mod client;
pub mod oncall;
pub mod writer;

pub use client::{
    HttpPagerDutyClient, PagerDutyApi, PagerDutyClientConfig, PagerDutyError, PdOnCall, PdUser,
};
pub use oncall::{OnCallCache, OnCallRefresher, OnCallView};
pub use writer::PagerDutyWriter;
