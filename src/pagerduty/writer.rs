//! Write-backs to PagerDuty, run by the job workers: after a decision, a note on the incident
//! naming the owner (or, in shadow mode, the recommendation), the explanation and the Jira
//! link; and, where configured, the incident reassigned to the owner's PagerDuty user, so the
//! person paged is the person who owns the Jira issue.
//!
//! A note carries a marker with the work item id; a retry lists the incident's notes first
//! and does not post a second one, so a crash between PagerDuty's answer and our commit
//! duplicates nothing. Reassigning is idempotent.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};

use crate::batch::JobRow;
use crate::config::PagerDutyConfig;
use crate::db::PgPool;
use crate::jira::JiraApi;
use crate::jobs::queue::Job;
use crate::jobs::worker::{JobHandler, JobResult};
use crate::models::record_event;

use super::client::{PagerDutyApi, PagerDutyError};

pub const NOTE: &str = "pagerduty_note";
pub const REASSIGN: &str = "pagerduty_reassign";

/// Attempts a note waits for the Jira issue (to link it) before it is posted without.
const WAIT_FOR_ISSUE: i32 = 6;

/// The marker that makes a note idempotent.
fn marker(work_item_id: &str) -> String {
    format!("[goliath {work_item_id}]")
}

/// The jobs queued for a decided item: the note, and the reassignment when `reassign`.
pub fn jobs_for(work_item_id: &str, reassign: bool) -> Vec<JobRow> {
    let mut jobs = vec![JobRow {
        work_item_id: work_item_id.to_string(),
        kind: NOTE.to_string(),
        payload: serde_json::json!({"work_item_id": work_item_id}),
        dedup_key: Some(format!("{NOTE}:{work_item_id}")),
    }];
    if reassign {
        jobs.push(reassign_job(work_item_id, None));
    }
    jobs
}

/// Reassigns the incident to the item's owner as it is when the job runs. `key` makes a later
/// reassignment (after an escalation) a job of its own.
pub fn reassign_job(work_item_id: &str, key: Option<&str>) -> JobRow {
    JobRow {
        work_item_id: work_item_id.to_string(),
        kind: REASSIGN.to_string(),
        payload: serde_json::json!({"work_item_id": work_item_id}),
        dedup_key: Some(match key {
            Some(k) => format!("{REASSIGN}:{work_item_id}:{k}"),
            None => format!("{REASSIGN}:{work_item_id}"),
        }),
    }
}

pub struct PagerDutyWriter {
    api: Arc<dyn PagerDutyApi>,
    jira: Arc<dyn JiraApi>,
    /// Which services reassign their incidents to the owner.
    config: PagerDutyConfig,
}

#[derive(QueryableByName)]
struct NoteItem {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Nullable<Text>)]
    incident: Option<String>,
    #[diesel(sql_type = Text)]
    service: String,
    #[diesel(sql_type = Text)]
    routing_mode: crate::models::RoutingMode,
    #[diesel(sql_type = Nullable<Text>)]
    owner: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    owner_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    owner_pagerduty: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    jira_key: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    recommended: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    explanation: Option<String>,
}

const ITEM_SQL: &str = "\
    SELECT w.id, w.pagerduty_incident_id AS incident, w.service, w.routing_mode, w.assignee_id AS owner, \
           h.display_name AS owner_name, h.pagerduty_user_id AS owner_pagerduty, w.jira_key, \
           d.primary_human_id AS recommended, d.explanation \
      FROM work_items w \
      LEFT JOIN humans h ON h.id = w.assignee_id \
      LEFT JOIN decisions d ON d.work_item_id = w.id \
     WHERE w.id = $1";

impl PagerDutyWriter {
    pub fn new(
        api: Arc<dyn PagerDutyApi>,
        jira: Arc<dyn JiraApi>,
        config: PagerDutyConfig,
    ) -> Self {
        PagerDutyWriter { api, jira, config }
    }

    fn run(&self, pool: &PgPool, job: &Job) -> anyhow::Result<JobResult> {
        let Some(id) = job.payload["work_item_id"].as_str() else {
            return Ok(JobResult::Dead {
                error: "the job has no work_item_id".into(),
            });
        };
        let mut conn = pool.get()?;
        let item: Option<NoteItem> = diesel::sql_query(ITEM_SQL)
            .bind::<Text, _>(id)
            .get_result(&mut conn)
            .optional()?;
        drop(conn);
        let Some(item) = item else {
            return Ok(JobResult::Dead {
                error: format!("work item {id} no longer exists"),
            });
        };
        let Some(incident) = item.incident.clone() else {
            return Ok(JobResult::Done);
        };
        let (result, detail) = match job.kind.as_str() {
            NOTE => {
                let shadow = item.routing_mode == crate::models::RoutingMode::Shadow;
                let expects_issue = item.owner.is_some() || shadow;
                if item.jira_key.is_none() && expects_issue && job.attempts < WAIT_FOR_ISSUE {
                    return Ok(JobResult::Wait {
                        reason: "waiting for the Jira issue to link it".into(),
                        after: Duration::from_secs(2),
                    });
                }
                if job.attempts > 1 {
                    match self.api.notes(&incident) {
                        Ok(notes) if notes.iter().any(|n| n.contains(&marker(&item.id))) => {
                            return Ok(JobResult::Done)
                        }
                        Ok(_) => {}
                        Err(e) => return Ok(failure(e)),
                    }
                }
                let text = self.note_text(&item, shadow);
                (
                    self.api.add_note(&incident, &text),
                    serde_json::json!({"incident": incident, "note": text}),
                )
            }
            REASSIGN => {
                if !self.config.reassigns(&item.service) {
                    return Ok(JobResult::Done);
                }
                let Some(user) = item.owner_pagerduty.clone() else {
                    log::info!(
                        "{}: the owner has no PagerDuty user; not reassigning {incident}",
                        item.id
                    );
                    return Ok(JobResult::Done);
                };
                (
                    self.api.reassign(&incident, &user),
                    serde_json::json!({"incident": incident, "user": user, "owner": item.owner}),
                )
            }
            other => {
                return Ok(JobResult::Dead {
                    error: format!("unknown job kind `{other}`"),
                })
            }
        };
        if let Err(e) = result {
            return Ok(failure(e));
        }
        let mut conn = pool.get()?;
        record_event(&mut conn, &item.id, &job.kind, detail, Utc::now())?;
        Ok(JobResult::Done)
    }

    fn note_text(&self, item: &NoteItem, shadow: bool) -> String {
        let who = |id: &Option<String>, name: &Option<String>| match (id, name) {
            (Some(id), Some(name)) => format!("{name} ({id})"),
            (Some(id), None) => id.clone(),
            _ => "nobody".into(),
        };
        let mut lines = vec![if shadow {
            format!(
                "Goliath (shadow mode) recommends {}; nobody was assigned.",
                item.recommended.as_deref().unwrap_or("nobody")
            )
        } else {
            format!(
                "Goliath assigned this incident to {}.",
                who(&item.owner, &item.owner_name)
            )
        }];
        if let Some(e) = &item.explanation {
            lines.push(e.clone());
        }
        if let Some(key) = &item.jira_key {
            lines.push(format!(
                "Jira: {}",
                self.jira.browse_url(key).unwrap_or_else(|| key.clone())
            ));
        }
        lines.push(marker(&item.id));
        lines.join("\n")
    }
}

fn failure(e: PagerDutyError) -> JobResult {
    crate::metrics::api_error("pagerduty", e.status());
    match e {
        PagerDutyError::Transient { retry_after, .. } => JobResult::Retry {
            error: e.to_string(),
            after: retry_after,
        },
        PagerDutyError::Permanent { .. } => JobResult::Dead {
            error: e.to_string(),
        },
    }
}

impl JobHandler for PagerDutyWriter {
    fn run_many(&self, pool: &PgPool, jobs: &[Job]) -> Vec<JobResult> {
        jobs.iter()
            .map(|job| {
                self.run(pool, job).unwrap_or_else(|e| JobResult::Retry {
                    error: format!("{e:#}"),
                    after: None,
                })
            })
            .collect()
    }
}
