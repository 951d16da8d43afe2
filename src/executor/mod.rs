//! The executor: turns decisions into Jira work through a durable queue, so a crash or a Jira
//! outage loses nothing and duplicates nothing.
//!
//! - `jira_create_issue`: queued with the decision (same transaction). Creates the issue with
//!   the deterministic label `goliath-<work_item_id>`; on any attempt after the first it first
//!   searches for that label, so a crash between Jira's 201 and our commit cannot make a second
//!   issue.
//! - `jira_assign`: queued when an admin reassigns; moves the Jira issue to the new owner.

pub mod queue;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;

use crate::config::JiraConfig as JiraSettings;
use crate::db::batch::JobRow;
use crate::db::prepared::{Bind, Prepared, Statement};
use crate::db::schema::{decisions, humans, work_items};
use crate::db::PgPool;
use crate::decision::OnAssigned;
use crate::jira::{IssueDescription, IssueRef, JiraApi, JiraError, NewIssue};
use crate::models::{record_event, WorkItem};

use worker::{JobHandler, JobResult};

pub const CREATE_ISSUE: &str = "jira_create_issue";
pub const ASSIGN_ISSUE: &str = "jira_assign";

/// The label that makes issue creation idempotent.
pub fn issue_label(work_item_id: &str) -> String {
    format!("goliath-{work_item_id}")
}

pub struct Executor {
    settings: JiraSettings,
    jira: Arc<dyn JiraApi>,
}

impl Executor {
    pub fn new(settings: JiraSettings, jira: Arc<dyn JiraApi>) -> Self {
        Executor { settings, jira }
    }

    /// Queues moving the Jira issue to the work item's current assignee.
    pub fn on_reassigned(&self, conn: &mut PgConnection, work_item_id: &str) -> QueryResult<()> {
        queue::enqueue(
            conn,
            ASSIGN_ISSUE,
            serde_json::json!({"work_item_id": work_item_id}),
            None,
        )
        .map(|_| ())
    }

    fn create_issue(
        &self,
        pool: &PgPool,
        job: &queue::Job,
        item: WorkItem,
    ) -> anyhow::Result<JobResult> {
        let item_id = item.id.as_str();
        let mut conn = pool.get()?;
        if let Some(key) = &item.jira_key {
            log::info!("{item_id} already has Jira issue {key}");
            return Ok(JobResult::Done);
        }
        let label = issue_label(&item.id);
        if job.attempts > 1 {
            // An earlier attempt may have created the issue and died before recording it.
            match self.jira.find_by_label(&label) {
                Ok(Some(found)) => {
                    log::warn!(
                        "{item_id}: found {} from an earlier attempt; not creating again",
                        found.key
                    );
                    record_issue(&mut conn, job.id, &item, &found, "jira_issue_found")?;
                    return Ok(JobResult::Completed);
                }
                Ok(None) => {}
                Err(e) => return Ok(jira_failure(e)),
            }
        }
        let request = self.new_issue(&mut conn, &item, &label)?;
        drop(conn);
        match self.jira.create_issue(&request) {
            Ok(created) => {
                let mut conn = pool.get()?;
                record_issue(&mut conn, job.id, &item, &created, "jira_issue_created")?;
                log::info!("{item_id}: created Jira issue {}", created.key);
                Ok(JobResult::Completed)
            }
            Err(e) => Ok(jira_failure(e)),
        }
    }

    fn new_issue(
        &self,
        conn: &mut PgConnection,
        item: &WorkItem,
        label: &str,
    ) -> anyhow::Result<NewIssue> {
        // Only what the issue shows: the stored inputs are large and not needed here.
        let (explanation, backup_ids): (String, Vec<String>) = decisions::table
            .find(&item.id)
            .select((decisions::explanation, decisions::backup_ids))
            .first(conn)
            .optional()?
            .unwrap_or_default();
        let mut wanted: Vec<&String> = backup_ids.iter().collect();
        wanted.extend(item.assignee_id.as_ref());
        let people: Vec<(String, String, String)> = humans::table
            .filter(humans::id.eq_any(wanted))
            .select((humans::id, humans::display_name, humans::jira_account_id))
            .load(conn)?;
        let assignee_account = item.assignee_id.as_ref().and_then(|a| {
            people
                .iter()
                .find(|(id, _, _)| id == a)
                .map(|(_, _, account)| account.clone())
        });
        let backups: Vec<String> = backup_ids
            .iter()
            .map(|b| {
                people
                    .iter()
                    .find(|(id, _, _)| id == b)
                    .map_or_else(|| b.clone(), |(_, name, _)| name.clone())
            })
            .collect();
        let pagerduty_url = item.raw_payload["event"]["data"]["html_url"]
            .as_str()
            .map(String::from);
        let project_key = self
            .settings
            .project_by_service
            .get(&item.service.to_lowercase())
            .cloned()
            .unwrap_or_else(|| self.settings.project_key.clone());
        Ok(NewIssue {
            project_key,
            issue_type: self.settings.issue_type.clone(),
            summary: format!("[{}] {}", item.severity.to_uppercase(), item.title),
            description: IssueDescription {
                title: item.title.clone(),
                service: item.service.clone(),
                severity: item.severity.clone(),
                pagerduty_url,
                explanation,
                backups,
                work_item_id: item.id.clone(),
            },
            priority: self
                .settings
                .priority_by_severity
                .get(&item.severity)
                .cloned(),
            labels: vec![
                "goliath".into(),
                label.to_string(),
                format!("service-{}", item.service),
                item.severity.clone(),
            ],
            assignee_account_id: assignee_account,
        })
    }

    fn assign_issue(
        &self,
        pool: &PgPool,
        job: &queue::Job,
        item: WorkItem,
    ) -> anyhow::Result<JobResult> {
        let mut conn = pool.get()?;
        let Some(key) = item.jira_key.clone() else {
            // The create job has not run yet; it assigns the current owner itself. Wait for it
            // briefly in case it is running right now with the previous owner.
            if job.attempts >= 5 {
                return Ok(JobResult::Done);
            }
            return Ok(JobResult::Retry {
                error: "the Jira issue is not created yet".into(),
                after: Some(Duration::from_secs(2)),
            });
        };
        let account = match &item.assignee_id {
            Some(id) => crate::roster::get(&mut conn, id)?.map(|h| h.jira_account_id),
            None => None,
        };
        drop(conn);
        match self.jira.assign(&key, account.as_deref()) {
            Ok(()) => {
                let mut conn = pool.get()?;
                record_event(
                    &mut conn,
                    &item.id,
                    "jira_assigned",
                    serde_json::json!({"jira_key": key, "assignee": item.assignee_id}),
                    Utc::now(),
                )?;
                Ok(JobResult::Done)
            }
            Err(e) => Ok(jira_failure(e)),
        }
    }
}

fn load_item(conn: &mut PgConnection, id: &str) -> QueryResult<Option<WorkItem>> {
    work_items::table
        .find(id)
        .select(WorkItem::as_select())
        .first(conn)
        .optional()
}

/// Sets a work item's Jira issue (prepared: diesel never prepares an UPDATE it builds, and
/// this runs once per issue created).
struct RecordIssueSql;

impl Statement for RecordIssueSql {
    const SQL: &'static str =
        "UPDATE work_items SET jira_key = $1, jira_issue_id = $2 WHERE id = $3";
}

/// Records the issue made for `item` and marks `job` done, together.
fn record_issue(
    conn: &mut PgConnection,
    job: i64,
    item: &WorkItem,
    issue: &IssueRef,
    kind: &str,
) -> QueryResult<()> {
    conn.transaction(|conn| {
        Prepared::<RecordIssueSql>::new()
            .bind(Bind::Text(&issue.key))
            .bind(Bind::Text(&issue.id))
            .bind(Bind::Text(&item.id))
            .execute(conn)?;
        queue::complete(conn, job)?;
        record_event(
            conn,
            &item.id,
            kind,
            serde_json::json!({"jira_key": issue.key, "jira_issue_id": issue.id, "url": issue.self_url}),
            Utc::now(),
        )
    })
}

fn jira_failure(e: JiraError) -> JobResult {
    match e {
        JiraError::Transient { retry_after, .. } => JobResult::Retry {
            error: e.to_string(),
            after: retry_after,
        },
        JiraError::Permanent { .. } => JobResult::Dead {
            error: e.to_string(),
        },
    }
}

impl OnAssigned for Executor {
    fn jobs_for(&self, work_item_ids: &[String]) -> Vec<JobRow> {
        work_item_ids
            .iter()
            .map(|id| JobRow {
                work_item_id: id.clone(),
                kind: CREATE_ISSUE.to_string(),
                payload: serde_json::json!({"work_item_id": id}),
                dedup_key: Some(format!("{CREATE_ISSUE}:{id}")),
            })
            .collect()
    }
}

impl JobHandler for Executor {
    fn run(&self, pool: &PgPool, job: &queue::Job) -> JobResult {
        let Some(item_id) = job.payload["work_item_id"].as_str() else {
            return JobResult::Dead {
                error: "the job has no work_item_id".into(),
            };
        };
        let item = pool
            .get()
            .map_err(anyhow::Error::from)
            .and_then(|mut conn| Ok(load_item(&mut conn, item_id)?));
        let result = match (job.kind.as_str(), item) {
            (_, Err(e)) => Err(e),
            (_, Ok(None)) => Ok(JobResult::Dead {
                error: format!("work item {item_id} no longer exists"),
            }),
            (CREATE_ISSUE, Ok(Some(item))) => self.create_issue(pool, job, item),
            (ASSIGN_ISSUE, Ok(Some(item))) => self.assign_issue(pool, job, item),
            (other, _) => Ok(JobResult::Dead {
                error: format!("unknown job kind `{other}`"),
            }),
        };
        result.unwrap_or_else(|e| JobResult::Retry {
            error: format!("{e:#}"),
            after: None,
        })
    }
}
