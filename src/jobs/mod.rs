//! The durable job queue: jobs are queued in the transaction that makes them, claimed by
//! worker threads under a lease, retried with backoff, and finished or declared dead. Only this
//! module changes a job's state; what a job does is its handler's business ([`JobHandler`]:
//! the Jira and PagerDuty handlers).

pub mod queue;
pub mod worker;

use std::time::Duration;

pub use queue::Job;
pub use worker::{drain, JobHandler, JobResult, Waker, WorkerOptions, Workers};

/// Rows deleted once they are past their retention, a bounded piece per call, so that no
/// delete holds up Jira work or the intake's writes to the same table for long.
pub trait Expiry: Send + Sync + std::fmt::Debug {
    /// What goes, for the log: "finished job(s) older than 14 days".
    fn what(&self) -> String;
    /// Deletes one piece of a pass; `cursor` is where the last piece left off (0 starts a
    /// pass). Returns the rows deleted and where the next piece starts, or None when the pass
    /// is through.
    fn delete_piece(
        &self,
        conn: &mut diesel::PgConnection,
        cursor: i64,
    ) -> diesel::QueryResult<(usize, Option<i64>)>;
}

/// `age` as people read a retention: "14 days", or seconds when shorter than a day.
pub fn describe_age(age: Duration) -> String {
    match age.as_secs() {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s => format!("{s} s"),
    }
}
