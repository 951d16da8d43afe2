//! The durable job queue: jobs are queued in the transaction that makes them, claimed by
//! worker threads under a lease, retried with backoff, and finished or declared dead. Only this
//! module changes a job's state; what a job does is its handler's business ([`JobHandler`]:
//! the Jira and PagerDuty handlers).

pub mod queue;
pub mod worker;

use std::time::Duration;

pub use queue::Job;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for a worker (or for its retry time).
    Queued,
    /// Claimed by a worker under a lease.
    Running,
    /// Finished; kept for the audit trail until its retention passes.
    Done,
    /// Out of attempts, or refused for good; waits for an admin's retry.
    Dead,
}

impl JobState {
    pub const ALL: [JobState; 4] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Dead,
    ];
    /// The states the queue counts (finished jobs only grow, so they are not counted).
    pub const PENDING_AND_DEAD: [JobState; 3] =
        [JobState::Queued, JobState::Running, JobState::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}
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
