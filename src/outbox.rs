//! The outbox: the jobs a decision queues (the Jira issue always, PagerDuty's note and
//! reassignment when its API is configured), and the handler that runs each kind.

use std::sync::Arc;

use crate::batch::JobRow;
use crate::config::PagerDutyConfig;
use crate::db::PgPool;
use crate::executor::Executor;
use crate::jobs::{Job, JobHandler, JobResult};
use crate::pagerduty::PagerDutyWriter;

/// The jobs that follow a decision, and the handlers that run each kind: Jira's always,
/// PagerDuty's when its API is configured.
pub struct Outbox {
    jira: Arc<Executor>,
    pagerduty: Option<Arc<PagerDutyWriter>>,
    config: PagerDutyConfig,
}

impl Outbox {
    pub fn new(
        jira: Arc<Executor>,
        pagerduty: Option<Arc<PagerDutyWriter>>,
        config: PagerDutyConfig,
    ) -> Self {
        Outbox {
            jira,
            pagerduty,
            config,
        }
    }

    /// Whether any service reassigns PagerDuty incidents to their owners.
    fn any_reassign(&self) -> bool {
        self.config.reassign || self.config.reassign_by_service.values().any(|r| *r)
    }
}

impl Outbox {
    /// The jobs to queue for newly assigned work items (by id), in the decision's transaction.
    pub fn jobs_for(&self, work_item_ids: &[String]) -> Vec<JobRow> {
        let mut jobs = self.jira.jobs_for(work_item_ids);
        if self.pagerduty.is_some() {
            for id in work_item_ids {
                jobs.extend(crate::pagerduty::writer::jobs_for(id, self.any_reassign()));
            }
        }
        jobs
    }

    /// The jobs to queue for a shadow item: its issue, unassigned, and the recommendation.
    pub fn recommendation_jobs(&self, work_item_id: &str, text: &str) -> Vec<JobRow> {
        let mut jobs = self.jira.recommendation_jobs(work_item_id, text);
        if self.pagerduty.is_some() {
            jobs.extend(crate::pagerduty::writer::jobs_for(work_item_id, false));
        }
        jobs
    }
}

impl JobHandler for Outbox {
    fn run_many(&self, pool: &PgPool, jobs: &[Job]) -> Vec<JobResult> {
        let is_pd = |j: &Job| j.kind.starts_with("pagerduty_");
        let jira_jobs: Vec<Job> = jobs.iter().filter(|j| !is_pd(j)).cloned().collect();
        let pd_jobs: Vec<Job> = jobs.iter().filter(|j| is_pd(j)).cloned().collect();
        let mut jira_results = if jira_jobs.is_empty() {
            vec![]
        } else {
            self.jira.run_many(pool, &jira_jobs)
        }
        .into_iter();
        let mut pd_results = match (&self.pagerduty, pd_jobs.is_empty()) {
            (_, true) => vec![],
            (Some(writer), false) => writer.run_many(pool, &pd_jobs),
            (None, false) => pd_jobs
                .iter()
                .map(|_| JobResult::Dead {
                    error: "PagerDuty's API is not configured (PAGERDUTY_API_TOKEN)".into(),
                })
                .collect(),
        }
        .into_iter();
        jobs.iter()
            .map(|j| {
                let next = if is_pd(j) {
                    pd_results.next()
                } else {
                    jira_results.next()
                };
                next.unwrap_or(JobResult::Retry {
                    error: "no result for the job".into(),
                    after: None,
                })
            })
            .collect()
    }
}
