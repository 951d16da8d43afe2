//! The executor: turns decisions into Jira work through a durable queue, so a crash or a Jira
//! outage loses nothing and duplicates nothing.
//!
//! - `jira_create_issue`: queued with the decision (same transaction). Creates the issue with
//!   the deterministic label `goliath-<work_item_id>`; on any attempt after the first it first
//!   searches for that label, so a crash between Jira's 201 and our commit cannot make a second
//!   issue.
//! - `jira_assign`: queued when an admin reassigns; moves the Jira issue to the new owner.
//! - `jira_comment`, `jira_transition`, `jira_priority`: queued as the incident changes in
//!   PagerDuty (a note, a resolve or reopen, a new priority); each waits for the issue to exist.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Text};

use crate::batch::JobRow;
use crate::config::JiraConfig;
use crate::db::json::JsonText;
use crate::db::prepared::{Bind, Prepared, Statement};
use crate::db::PgPool;
use crate::jira::{IssueDescription, IssueRef, JiraApi, JiraError, NewIssue};
use crate::models::record_event;

use crate::jobs::queue;
use crate::jobs::{JobHandler, JobResult};

pub const CREATE_ISSUE: &str = "jira_create_issue";
pub const ASSIGN_ISSUE: &str = "jira_assign";
pub const COMMENT_ISSUE: &str = "jira_comment";
pub const TRANSITION_ISSUE: &str = "jira_transition";
pub const PRIORITY_ISSUE: &str = "jira_priority";

/// Where a `jira_transition` job moves the issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueTarget {
    /// A status in the `done` category.
    Done,
    /// Back to a status in the `new` category (else `indeterminate`).
    Open,
}

impl IssueTarget {
    fn categories(self) -> &'static [&'static str] {
        match self {
            IssueTarget::Done => &["done"],
            IssueTarget::Open => &["new", "indeterminate"],
        }
    }
}

/// A change to an existing issue, queued in the caller's transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum IssueEdit {
    Comment(String),
    Transition(IssueTarget),
    /// The issue's priority follows the work item's severity as it is when the job runs.
    Priority,
}

/// Queues `change` for the work item's Jira issue. `key` makes it exactly once: a job with the
/// same key is not queued again.
pub fn queue_issue_change(
    conn: &mut PgConnection,
    work_item_id: &str,
    change: &IssueEdit,
    key: &str,
) -> QueryResult<i64> {
    let (kind, payload) = match change {
        IssueEdit::Comment(text) => (
            COMMENT_ISSUE,
            serde_json::json!({"work_item_id": work_item_id, "text": text}),
        ),
        IssueEdit::Transition(to) => (
            TRANSITION_ISSUE,
            serde_json::json!({"work_item_id": work_item_id, "to": to}),
        ),
        IssueEdit::Priority => (
            PRIORITY_ISSUE,
            serde_json::json!({"work_item_id": work_item_id}),
        ),
    };
    queue::enqueue(conn, kind, payload, Some(&format!("{kind}:{key}")))
}

/// Queues moving the Jira issue to the work item's current assignee. `key` makes it exactly
/// once (None: every call queues one; the job reads the assignee when it runs).
pub fn queue_assign(
    conn: &mut PgConnection,
    work_item_id: &str,
    key: Option<&str>,
) -> QueryResult<i64> {
    let dedup = key.map(|k| format!("{ASSIGN_ISSUE}:{k}"));
    queue::enqueue(
        conn,
        ASSIGN_ISSUE,
        serde_json::json!({"work_item_id": work_item_id}),
        dedup.as_deref(),
    )
}

/// An issue's summary: the severity, then the incident's title.
pub fn issue_summary(severity: &str, title: &str) -> String {
    format!("[{}] {title}", severity.to_uppercase())
}

/// The label that makes issue creation idempotent.
pub fn issue_label(work_item_id: &str) -> String {
    format!("goliath-{work_item_id}")
}

pub struct Executor {
    settings: JiraConfig,
    jira: Arc<dyn JiraApi>,
    /// The last credential check and when it was made.
    health: std::sync::Mutex<Option<(std::time::Instant, JiraHealth)>>,
}

/// Whether Jira takes Goliath's credentials.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum JiraHealth {
    Ok,
    /// Jira did not answer (or answered 5xx/429): work waits in the queue.
    Unreachable(String),
    /// Jira refused the credentials (401/403): nothing will succeed until they are fixed.
    Refused(String),
}

/// How long a credential check is reused (for /readyz).
const HEALTH_TTL: Duration = Duration::from_secs(30);

impl Executor {
    pub fn new(settings: JiraConfig, jira: Arc<dyn JiraApi>) -> Self {
        Executor {
            settings,
            jira,
            health: std::sync::Mutex::default(),
        }
    }

    /// The issue's page for people, where the Jira client knows the site.
    pub fn browse_url(&self, issue_key: &str) -> Option<String> {
        self.jira.browse_url(issue_key)
    }

    /// Asks Jira who the credentials belong to (`GET …/myself`), at most every 30 s.
    pub fn jira_health(&self) -> JiraHealth {
        if let Some((at, health)) = self.health.lock().ok().and_then(|h| h.clone()) {
            if at.elapsed() < HEALTH_TTL {
                return health;
            }
        }
        let health = match self.jira.myself() {
            Ok(_) => JiraHealth::Ok,
            Err(
                e @ JiraError::Permanent {
                    status: 401 | 403, ..
                },
            ) => JiraHealth::Refused(e.to_string()),
            Err(e) => JiraHealth::Unreachable(e.to_string()),
        };
        if let Ok(mut h) = self.health.lock() {
            *h = Some((std::time::Instant::now(), health.clone()));
        }
        health
    }

    /// Queues moving the Jira issue to the work item's current assignee.
    pub fn on_reassigned(&self, conn: &mut PgConnection, work_item_id: &str) -> QueryResult<()> {
        queue_assign(conn, work_item_id, None).map(|_| ())
    }

    /// Creates the Jira issue for `item` unless it has one; what was made is recorded by the
    /// caller, with the issues of the other jobs run alongside.
    fn create_issue(&self, job: &queue::Job, item: &JobItem) -> Step {
        let item_id = item.id.as_str();
        if let Some(key) = &item.jira_key {
            log::info!("{item_id} already has Jira issue {key}");
            return Step::Finished(JobResult::Done);
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
                    return Step::Record(IssueRecord::new(job, item, found, "jira_issue_found"));
                }
                Ok(None) => {}
                Err(e) => return Step::Finished(jira_failure(e)),
            }
        }
        let request = self.new_issue(item, &label);
        match self.jira.create_issue(&request) {
            Ok(created) => {
                log::info!("{item_id}: created Jira issue {}", created.key);
                Step::Record(IssueRecord::new(job, item, created, "jira_issue_created"))
            }
            Err(e) => Step::Finished(jira_failure(e)),
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
            summary: issue_summary(&item.severity, &item.title),
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

    /// Comments, transitions or re-prioritises the item's issue once it exists.
    fn change_issue(&self, pool: &PgPool, job: &queue::Job, item: &JobItem) -> JobResult {
        let Some(key) = item.jira_key.clone() else {
            // The create job has not recorded the issue yet (or is retrying through an outage):
            // wait for it on the same schedule.
            return JobResult::Wait {
                reason: "the Jira issue is not created yet".into(),
                after: crate::jobs::worker::backoff(job.id, job.attempts)
                    .max(Duration::from_secs(2)),
            };
        };
        let (result, detail) = match job.kind.as_str() {
            COMMENT_ISSUE => {
                let text = job.payload["text"].as_str().unwrap_or_default();
                (
                    self.jira.add_comment(&key, text),
                    serde_json::json!({"jira_key": key, "comment": text}),
                )
            }
            TRANSITION_ISSUE => {
                let to: IssueTarget = match serde_json::from_value(job.payload["to"].clone()) {
                    Ok(to) => to,
                    Err(e) => {
                        return JobResult::Dead {
                            error: format!("the job's `to` is not done or open: {e}"),
                        }
                    }
                };
                match self.transition(&key, to) {
                    Ok(Some(name)) => (
                        Ok(()),
                        serde_json::json!({"jira_key": key, "to": to, "transition": name}),
                    ),
                    // Already there: nothing to do, nothing to record.
                    Ok(None) => return JobResult::Done,
                    Err(e) => (Err(e), serde_json::Value::Null),
                }
            }
            _ => {
                // The summary and label name the severity too, so they follow it with the
                // priority (where the severity maps to one).
                let change = crate::jira::SeverityChange {
                    severity: item.severity.clone(),
                    summary: issue_summary(&item.severity, &item.title),
                    priority: self
                        .settings
                        .priority_by_severity
                        .get(&item.severity)
                        .cloned(),
                };
                (
                    self.jira.set_severity(&key, &change),
                    serde_json::json!({"jira_key": key, "priority": change.priority,
                                       "severity": item.severity, "summary": change.summary}),
                )
            }
        };
        if let Err(e) = result {
            return jira_failure(e);
        }
        let recorded = pool
            .get()
            .map_err(anyhow::Error::from)
            .and_then(|mut conn| {
                Ok(record_event(
                    &mut conn,
                    &item.id,
                    &job.kind,
                    detail,
                    Utc::now(),
                )?)
            });
        match recorded {
            Ok(()) => JobResult::Done,
            // The change is made; a second attempt would make it again for a history line.
            Err(e) => {
                log::warn!(
                    "{}: {} done, history not recorded: {e:#}",
                    item.id,
                    job.kind
                );
                JobResult::Done
            }
        }
    }

    /// Moves the issue to a status of `to`'s category; the transition's name, or None when the
    /// issue is there already.
    fn transition(&self, key: &str, to: IssueTarget) -> Result<Option<String>, JiraError> {
        let wanted = to.categories();
        let current = self.jira.status_category(key)?;
        if wanted.contains(&current.as_str()) {
            return Ok(None);
        }
        let transitions = self.jira.transitions(key)?;
        let chosen = wanted
            .iter()
            .find_map(|cat| transitions.iter().find(|t| t.to_category == *cat))
            .ok_or_else(|| JiraError::Permanent {
                status: 0,
                message: format!(
                    "no transition of {key} leads to a status in category {}",
                    wanted.join(" or ")
                ),
            })?;
        self.jira.transition(key, &chosen.id)?;
        Ok(Some(chosen.name.clone()))
    }

    fn assign_issue(
        &self,
        pool: &PgPool,
        job: &queue::Job,
        item: &JobItem,
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

/// Jobs' work items with their decisions and the people they name, in one read (prepared: it
/// runs for every batch of jobs).
struct JobItemsSql;

impl Statement for JobItemsSql {
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
     WHERE w.id = ANY($1)";
}

fn load_items(conn: &mut PgConnection, ids: &[&str]) -> QueryResult<HashMap<String, JobItem>> {
    let rows: Vec<JobItem> = Prepared::<JobItemsSql>::new()
        .bind(Bind::Strs(ids))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|item| (item.id.clone(), item))
        .collect())
}

/// What a job step left to do.
enum Step {
    Finished(JobResult),
    /// A Jira issue exists for the item and is to be recorded with the job marked done.
    Record(IssueRecord),
}

/// A Jira issue to record against its work item.
struct IssueRecord {
    job: i64,
    work_item_id: String,
    issue: IssueRef,
    /// The history line: `jira_issue_created`, or `jira_issue_found` from an earlier attempt.
    kind: &'static str,
    at: chrono::DateTime<Utc>,
}

impl IssueRecord {
    fn new(job: &queue::Job, item: &JobItem, issue: IssueRef, kind: &'static str) -> Self {
        IssueRecord {
            job: job.id,
            work_item_id: item.id.clone(),
            issue,
            kind,
            at: Utc::now(),
        }
    }
}

/// Sets each work item's Jira issue and writes its history line, for a batch of issues in one
/// statement. Prepared: it runs for every batch.
struct RecordIssuesSql;

impl Statement for RecordIssuesSql {
    const SQL: &'static str = "\
    WITH u AS MATERIALIZED ( \
        SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], \
                             $6::jsonb[], $7::timestamptz[]) \
               AS u(job, item, jira_key, issue_id, kind, detail, at) \
    ), items AS ( \
        UPDATE work_items w SET jira_key = u.jira_key, jira_issue_id = u.issue_id \
          FROM u WHERE w.id = u.item \
    ) \
    INSERT INTO work_item_events (work_item_id, kind, detail, occurred_at) \
    SELECT u.item, u.kind, u.detail, u.at FROM u";
}

/// Records the issues made for a batch of jobs and marks those jobs done, in one transaction.
fn record_issues(conn: &mut PgConnection, records: &[&IssueRecord]) -> QueryResult<()> {
    conn.transaction(|conn| {
        write_issues(conn, records)?;
        let jobs: Vec<i64> = records.iter().map(|r| r.job).collect();
        queue::complete_many(conn, &jobs)
    })
}

fn write_issues(conn: &mut PgConnection, records: &[&IssueRecord]) -> QueryResult<()> {
    let jobs: Vec<i64> = records.iter().map(|r| r.job).collect();
    let items: Vec<&str> = records.iter().map(|r| r.work_item_id.as_str()).collect();
    let keys: Vec<&str> = records.iter().map(|r| r.issue.key.as_str()).collect();
    let issue_ids: Vec<&str> = records.iter().map(|r| r.issue.id.as_str()).collect();
    let kinds: Vec<&str> = records.iter().map(|r| r.kind).collect();
    let details: Vec<JsonText> = records
        .iter()
        .map(|r| {
            JsonText::of(&serde_json::json!({
                "jira_key": r.issue.key, "jira_issue_id": r.issue.id, "url": r.issue.self_url
            }))
        })
        .collect();
    let at: Vec<chrono::DateTime<Utc>> = records.iter().map(|r| r.at).collect();
    Prepared::<RecordIssuesSql>::new()
        .bind(Bind::BigInts(&jobs))
        .bind(Bind::Strs(&items))
        .bind(Bind::Strs(&keys))
        .bind(Bind::Strs(&issue_ids))
        .bind(Bind::Strs(&kinds))
        .bind(Bind::Jsonbs(&details))
        .bind(Bind::Times(&at))
        .execute(conn)
        .map(|_| ())
}

fn jira_failure(e: JiraError) -> JobResult {
    crate::metrics::api_error("jira", e.status());
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

impl Executor {
    /// The jobs that make the Jira issues of newly assigned work items.
    pub fn jobs_for(&self, work_item_ids: &[String]) -> Vec<JobRow> {
        work_item_ids.iter().map(|id| create_job(id)).collect()
    }

    /// The jobs for a shadow item: its issue, unassigned, and the recommendation.
    pub fn recommendation_jobs(&self, work_item_id: &str, text: &str) -> Vec<JobRow> {
        vec![
            create_job(work_item_id),
            JobRow {
                work_item_id: work_item_id.to_string(),
                kind: COMMENT_ISSUE.to_string(),
                payload: serde_json::json!({"work_item_id": work_item_id, "text": text}),
                dedup_key: Some(format!("{COMMENT_ISSUE}:{work_item_id}:recommendation")),
            },
        ]
    }
}

/// The job that creates a work item's issue, once.
fn create_job(work_item_id: &str) -> JobRow {
    JobRow {
        work_item_id: work_item_id.to_string(),
        kind: CREATE_ISSUE.to_string(),
        payload: serde_json::json!({"work_item_id": work_item_id}),
        dedup_key: Some(format!("{CREATE_ISSUE}:{work_item_id}")),
    }
}

impl JobHandler for Executor {
    /// Reads every job's work item at once, runs the Jira calls in order, then records every
    /// issue made in one statement. A crash before that record loses nothing: the jobs are
    /// taken again when their lease runs out, and a retry finds an issue by its label before
    /// creating one.
    fn run_many(&self, pool: &PgPool, jobs: &[queue::Job]) -> Vec<JobResult> {
        let retry = |error: String| JobResult::Retry { error, after: None };
        let ids: Vec<&str> = jobs
            .iter()
            .filter_map(|job| job.payload["work_item_id"].as_str())
            .collect();
        let items = match pool
            .get()
            .map_err(anyhow::Error::from)
            .and_then(|mut conn| Ok(load_items(&mut conn, &ids)?))
        {
            Ok(items) => items,
            Err(e) => return jobs.iter().map(|_| retry(format!("{e:#}"))).collect(),
        };
        let steps: Vec<Step> = jobs
            .iter()
            .map(|job| {
                let Some(item_id) = job.payload["work_item_id"].as_str() else {
                    return Step::Finished(JobResult::Dead {
                        error: "the job has no work_item_id".into(),
                    });
                };
                let Some(item) = items.get(item_id) else {
                    return Step::Finished(JobResult::Dead {
                        error: format!("work item {item_id} no longer exists"),
                    });
                };
                match job.kind.as_str() {
                    CREATE_ISSUE => self.create_issue(job, item),
                    ASSIGN_ISSUE => Step::Finished(
                        self.assign_issue(pool, job, item)
                            .unwrap_or_else(|e| retry(format!("{e:#}"))),
                    ),
                    COMMENT_ISSUE | TRANSITION_ISSUE | PRIORITY_ISSUE => {
                        Step::Finished(self.change_issue(pool, job, item))
                    }
                    other => Step::Finished(JobResult::Dead {
                        error: format!("unknown job kind `{other}`"),
                    }),
                }
            })
            .collect();
        let records: Vec<&IssueRecord> = steps
            .iter()
            .filter_map(|step| match step {
                Step::Record(record) => Some(record),
                Step::Finished(_) => None,
            })
            .collect();
        let recorded = if records.is_empty() {
            Ok(())
        } else {
            pool.get()
                .map_err(anyhow::Error::from)
                .and_then(|mut conn| Ok(record_issues(&mut conn, &records)?))
        };
        steps
            .into_iter()
            .map(|step| match (step, &recorded) {
                (Step::Finished(result), _) => result,
                (Step::Record(_), Ok(())) => JobResult::Completed,
                (Step::Record(_), Err(e)) => retry(format!("recording the Jira issue: {e:#}")),
            })
            .collect()
    }
}
