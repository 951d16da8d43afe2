//! Jira webhook intake: what happens to an issue Goliath created becomes a learner outcome.
//!
//! - assignee changed from A to B: a hand-off (poor for A; B now owns the work item);
//! - resolution set (Cloud sends `issue_generic`, so the changelog decides): resolved by the
//!   current assignee, with the time to resolve from the webhook's timestamp;
//! - resolution cleared: a reopen (poor for whoever resolved it).
//!
//! Each delivery is applied once (keyed by `X-Atlassian-Webhook-Identifier`, else a digest of
//! the body), and each outcome in it once (keyed by the delivery and its position).

use std::sync::Arc;

use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{webhook_deliveries, work_items};
use crate::jira::{parse_webhook, IssueChange, JiraWebhook, WebhookParseError};
use crate::learner::{Applied, LearnerService, Outcome, OutcomeEvent};

use super::IngestError;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum JiraIntakeOutcome {
    Applied {
        work_item_id: String,
        outcomes: Vec<Applied>,
    },
    Duplicate {
        delivery_id: String,
    },
    Ignored {
        reason: String,
    },
}

pub struct JiraIntake {
    secrets: Vec<String>,
    /// With no secret, accept unsigned deliveries.
    allow_unsigned: bool,
    /// Statuses (lower-cased) in which the issue waits on others.
    waiting_statuses: Vec<String>,
    learner: Arc<LearnerService>,
}

impl JiraIntake {
    pub fn new(
        secrets: Vec<String>,
        allow_unsigned: bool,
        waiting_statuses: Vec<String>,
        learner: Arc<LearnerService>,
    ) -> Self {
        JiraIntake {
            secrets,
            allow_unsigned,
            waiting_statuses,
            learner,
        }
    }

    /// Records each status change in the item's history, marked waiting or not: the learner
    /// leaves waiting time out of the resolver's time to resolve, and an item whose latest
    /// status (by event time, so late deliveries do not undo newer ones) is a waiting one
    /// carries no load.
    fn record_statuses(
        &self,
        conn: &mut PgConnection,
        work_item_id: &str,
        hook: &JiraWebhook,
    ) -> QueryResult<bool> {
        let mut any = false;
        for change in &hook.changes {
            if let IssueChange::StatusChanged { from, to } = change {
                let waiting = to
                    .as_deref()
                    .is_some_and(|s| self.waiting_statuses.contains(&s.to_lowercase()));
                let detail = serde_json::json!({"from": from, "to": to, "waiting": waiting});
                crate::models::record_event(
                    conn,
                    work_item_id,
                    crate::models::STATUS_CHANGED,
                    detail,
                    hook.timestamp,
                )?;
                any = true;
            }
        }
        if any {
            use crate::db::schema::work_item_events as ev;
            let latest: Option<serde_json::Value> = ev::table
                .filter(ev::work_item_id.eq(work_item_id))
                .filter(ev::kind.eq(crate::models::STATUS_CHANGED))
                .order((ev::occurred_at.desc(), ev::id.desc()))
                .select(ev::detail)
                .first(conn)
                .optional()?;
            let waiting = latest.is_some_and(|d| d["waiting"].as_bool() == Some(true));
            diesel::update(work_items::table.find(work_item_id))
                .filter(work_items::waiting.ne(waiting))
                .set(work_items::waiting.eq(waiting))
                .execute(conn)?;
        }
        Ok(any)
    }

    /// Checks `X-Hub-Signature` when a secret is configured.
    pub fn verify(&self, header: Option<&str>, body: &[u8]) -> Result<(), IngestError> {
        if self.secrets.is_empty() {
            if self.allow_unsigned {
                return Ok(());
            }
            return Err(IngestError::NoSecret("Jira", "JIRA_WEBHOOK_SECRET"));
        }
        crate::jira::verify_signature(header, &self.secrets, body)?;
        Ok(())
    }

    pub fn accept(
        &self,
        conn: &mut PgConnection,
        delivery_id: Option<&str>,
        body: &[u8],
    ) -> Result<JiraIntakeOutcome, IngestError> {
        // Parsed whole first: a key named twice is refused, so the NUL check below sees every
        // value the typed parse can read.
        let value = crate::db::json::parse_unique(body)?;
        if let Some(path) = crate::db::json::nul_path(&value) {
            return Err(IngestError::HoldsNul(path));
        }
        let hook = match parse_webhook(body) {
            Ok(hook) => hook,
            Err(WebhookParseError::UnsupportedEvent(event)) => {
                return Ok(JiraIntakeOutcome::Ignored {
                    reason: format!("event {event} is not used"),
                })
            }
            Err(WebhookParseError::Json(e)) => return Err(IngestError::MalformedJson(e)),
            Err(WebhookParseError::MissingField(field)) => {
                return Err(IngestError::MissingField(field))
            }
            Err(WebhookParseError::InvalidField(field, reason)) => {
                return Err(IngestError::InvalidField { field, reason })
            }
        };
        for (field, value) in [("issue.key", &hook.issue_key), ("issue.id", &hook.issue_id)] {
            super::bounded(field, value.len(), crate::db::MAX_ID_BYTES)?;
        }
        if hook.webhook_event != "jira:issue_updated" {
            return Ok(JiraIntakeOutcome::Ignored {
                reason: format!("event {} is not used", hook.webhook_event),
            });
        }
        let delivery_id = match delivery_id {
            Some(id) => id.to_string(),
            None => {
                use sha2::{Digest, Sha256};
                format!("body-{}", hex::encode(&Sha256::digest(body)[..16]))
            }
        };
        // The ownership lock first, as every owner change takes it (then the item): an outcome
        // below takes it anyway, and the owner's activity locks the item before that.
        conn.transaction(|conn| {
            crate::db::lock_assignments(conn)?;
            self.apply(conn, &delivery_id, &hook)
        })
    }

    fn apply(
        &self,
        conn: &mut PgConnection,
        delivery_id: &str,
        hook: &JiraWebhook,
    ) -> Result<JiraIntakeOutcome, IngestError> {
        let Some(work_item_id) = find_work_item(conn, hook)? else {
            return Ok(JiraIntakeOutcome::Ignored {
                reason: format!("issue {} was not created by Goliath", hook.issue_key),
            });
        };
        let fresh = diesel::insert_into(webhook_deliveries::table)
            .values((
                webhook_deliveries::source.eq("jira"),
                webhook_deliveries::delivery_id.eq(delivery_id),
                webhook_deliveries::event_type.eq(&hook.webhook_event),
                webhook_deliveries::work_item_id.eq(&work_item_id),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?;
        if fresh == 0 {
            return Ok(JiraIntakeOutcome::Duplicate {
                delivery_id: delivery_id.to_string(),
            });
        }
        owner_activity(conn, &work_item_id, hook)?;
        let moved = self.record_statuses(conn, &work_item_id, hook)?;
        let mut applied = vec![];
        for (i, outcome) in outcomes_of(conn, hook)?.into_iter().enumerate() {
            let event = OutcomeEvent {
                event_id: format!("jira-{delivery_id}-{i}"),
                work_item_id: work_item_id.clone(),
                outcome,
                occurred_at: hook.timestamp,
            };
            applied.push(
                self.learner
                    .record(conn, &event)
                    .map_err(|e| IngestError::Decision(e.to_string()))?,
            );
        }
        if applied.is_empty() {
            let reason = if moved {
                "status change recorded; no assignee or resolution change"
            } else {
                "no assignee or resolution change"
            };
            return Ok(JiraIntakeOutcome::Ignored {
                reason: reason.into(),
            });
        }
        Ok(JiraIntakeOutcome::Applied {
            work_item_id,
            outcomes: applied,
        })
    }
}

/// The work item behind an issue: by our label, else by the stored key.
fn find_work_item(conn: &mut PgConnection, hook: &JiraWebhook) -> QueryResult<Option<String>> {
    if let Some(id) = hook.label_value("goliath-") {
        let found: Option<String> = work_items::table
            .find(id)
            .select(work_items::id)
            .first(conn)
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    work_items::table
        .filter(
            work_items::jira_key
                .eq(&hook.issue_key)
                .or(work_items::jira_issue_id.eq(&hook.issue_id)),
        )
        .select(work_items::id)
        .first(conn)
        .optional()
}

/// A transition or comment by the item's owner is the owner acting: no escalation follows.
/// (A reassignment or resolve is an outcome, which does the same.)
fn owner_activity(
    conn: &mut PgConnection,
    work_item_id: &str,
    hook: &JiraWebhook,
) -> QueryResult<()> {
    let commented = hook.issue_event_type.as_deref() == Some("issue_commented");
    let moved = hook
        .changes
        .iter()
        .any(|c| matches!(c, IssueChange::StatusChanged { .. }));
    if !(commented || moved) {
        return Ok(());
    }
    let Some(actor) = human(conn, hook.user.as_ref().and_then(|u| u.id()))? else {
        return Ok(());
    };
    let owner: Option<String> = work_items::table
        .find(work_item_id)
        .select(work_items::assignee_id)
        .first(conn)?;
    if owner.as_deref() == Some(actor.as_str()) {
        let how = if commented {
            "commented in Jira"
        } else {
            "moved the issue in Jira"
        };
        crate::models::owner_acted(conn, work_item_id, how, hook.timestamp)?;
    }
    Ok(())
}

/// Maps a Jira account (Cloud accountId or Server username) to a person on the roster.
fn human(conn: &mut PgConnection, account: Option<&str>) -> QueryResult<Option<String>> {
    match account {
        Some(a) => Ok(crate::roster::by_jira_account(conn, a)?.map(|h| h.id)),
        None => Ok(None),
    }
}

/// Outcomes in changelog order: a hand-off before a resolve in the same delivery means the
/// new assignee resolved it.
fn outcomes_of(conn: &mut PgConnection, hook: &JiraWebhook) -> QueryResult<Vec<Outcome>> {
    let mut out = vec![];
    for change in &hook.changes {
        match change {
            IssueChange::AssigneeChanged { from, to } => {
                let from_human = human(conn, from.as_deref())?;
                let to_human = human(conn, to.as_deref())?;
                if from.is_some() && from_human.is_none() && to_human.is_none() {
                    continue; // between people Goliath does not know
                }
                out.push(Outcome::HandedOff {
                    from: from_human,
                    to: to_human,
                });
            }
            IssueChange::ResolutionSet { .. } => {
                let resolver = human(conn, hook.current_assignee.as_ref().and_then(|u| u.id()))?;
                out.push(Outcome::Resolved { resolver });
            }
            IssueChange::ResolutionCleared => out.push(Outcome::Reopened),
            IssueChange::StatusChanged { .. } => {}
        }
    }
    Ok(out)
}
