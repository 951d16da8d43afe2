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
use diesel::sql_types::{Array, Nullable, Text};

use crate::config::JiraConfig as JiraSettings;
use crate::db::batch::JobRow;
use crate::db::prepared::{Bind, Prepared, Statement};
use crate::db::PgPool;
use crate::decision::OnAssigned;
use crate::jira::{IssueDescription, IssueRef, JiraApi, JiraError, NewIssue};
use crate::models::record_event;

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
        item: JobItem,
    ) -> anyhow::Result<JobResult> {
        let item_id = item.id.as_str();
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
                    let mut conn = pool.get()?;
                    record_issue(&mut conn, job.id, &item, &found, "jira_issue_found")?;
                    return Ok(JobResult::Completed);
                }
                Ok(None) => {}
                Err(e) => return Ok(jira_failure(e)),
            }
        }
        let request = self.new_issue(&item, &label);
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

    fn new_issue(&self, item: &JobItem, label: &str) -> NewIssue {
        let project_key = self
            .settings
            .project_by_service
            .get(&item.service.to_lowercase())
            .cloned()
            .unwrap_or_else(|| self.settings.project_key.clone());
        NewIssue {
            project_key,
            issue_type: self.settings.issue_type.clone(),
            summary: format!("[{}] {}", item.severity.to_uppercase(), item.title),
            description: IssueDescription {
                title: item.title.clone(),
                service: item.service.clone(),
                severity: item.severity.clone(),
                pagerduty_url: item.pagerduty_url.clone(),
                explanation: item.explanation.clone().unwrap_or_default(),
                backups: item.backups.clone(),
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
            assignee_account_id: item.assignee_account.clone(),
        }
    }

    fn assign_issue(
        &self,
        pool: &PgPool,
        job: &queue::Job,
        item: JobItem,
    ) -> anyhow::Result<JobResult> {
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
        match self.jira.assign(&key, item.assignee_account.as_deref()) {
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

/// What a job needs of its work item and decision: not the raw payload (parsed whole, it cost
/// more than the rest of the job's reads together) but the one link the issue shows.
#[derive(QueryableByName)]
struct JobItem {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    service: String,
    #[diesel(sql_type = Text)]
    severity: String,
    #[diesel(sql_type = Text)]
    title: String,
    #[diesel(sql_type = Nullable<Text>)]
    assignee_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    jira_key: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pagerduty_url: Option<String>,
    /// The owner's Jira account.
    #[diesel(sql_type = Nullable<Text>)]
    assignee_account: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    explanation: Option<String>,
    /// The decision's backups by name (by id if no longer in the roster), in its order.
    #[diesel(sql_type = Array<Text>)]
    backups: Vec<String>,
}

/// A job's work item with its decision and the people they name, in one read (prepared: it
/// runs for every job).
struct JobItemSql;

impl Statement for JobItemSql {
    const SQL: &'static str = "\
    SELECT w.id, w.service, w.severity, w.title, w.assignee_id, w.jira_key, \
           w.raw_payload #>> '{event,data,html_url}' AS pagerduty_url, \
           (SELECT h.jira_account_id FROM humans h WHERE h.id = w.assignee_id) \
               AS assignee_account, \
           d.explanation, \
           ARRAY(SELECT coalesce(h.display_name, b.id) \
                   FROM unnest(d.backup_ids) WITH ORDINALITY AS b(id, n) \
                   LEFT JOIN humans h ON h.id = b.id ORDER BY b.n) AS backups \
      FROM work_items w LEFT JOIN decisions d ON d.work_item_id = w.id \
     WHERE w.id = $1";
}

fn load_item(conn: &mut PgConnection, id: &str) -> QueryResult<Option<JobItem>> {
    Prepared::<JobItemSql>::new()
        .bind(Bind::Text(id))
        .get_result(conn)
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
    item: &JobItem,
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
