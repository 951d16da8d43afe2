//! PagerDuty incident updates after the trigger: acknowledged, resolved, reopened, reassigned,
//! escalated, delegated, a new priority, a note, a responder added. Each keeps the work item a
//! mirror of its incident and is followed in Jira through the job queue.
//!
//! PagerDuty orders events per incident only and delivers at least once, so:
//! - a delivery seen before (by `X-Webhook-Id`, else the event id) changes nothing;
//! - an event older than the latest one applied (by `occurred_at`) is recorded in the history
//!   and changes no state;
//! - outcomes go through the learner keyed by the event id, so none is counted twice.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::PagerDutyConfig;
use crate::db::json::JsonText;
use crate::db::schema::{webhook_deliveries, work_items};
use crate::executor::{queue_issue_change, IssueEdit, IssueTarget};
use crate::learner::{Applied, LearnerService, Outcome, OutcomeEvent};
use crate::models::{record_event, RoutingMode, WorkItem};

use super::pagerduty::{self, PdEvent, PdIncident};
use super::{Delivery, IngestError};

/// The incident events Goliath acts on after the trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateKind {
    Acknowledged,
    Unacknowledged,
    Resolved,
    Reopened,
    Reassigned,
    Escalated,
    Delegated,
    PriorityUpdated,
    Annotated,
    ResponderAdded,
}

impl UpdateKind {
    pub fn from_event_type(event_type: &str) -> Option<UpdateKind> {
        Some(match event_type {
            "incident.acknowledged" => UpdateKind::Acknowledged,
            "incident.unacknowledged" => UpdateKind::Unacknowledged,
            "incident.resolved" => UpdateKind::Resolved,
            "incident.reopened" => UpdateKind::Reopened,
            "incident.reassigned" => UpdateKind::Reassigned,
            "incident.escalated" => UpdateKind::Escalated,
            "incident.delegated" => UpdateKind::Delegated,
            "incident.priority_updated" => UpdateKind::PriorityUpdated,
            "incident.annotated" => UpdateKind::Annotated,
            "incident.responder.added" => UpdateKind::ResponderAdded,
            _ => return None,
        })
    }

    /// Whether the event can change the owner (and so loads, through the learner, which takes
    /// the ownership lock): a resolve or reopen, and a reassign, delegation or escalation to
    /// someone else.
    pub fn may_move_owner(self) -> bool {
        matches!(
            self,
            UpdateKind::Resolved
                | UpdateKind::Reopened
                | UpdateKind::Reassigned
                | UpdateKind::Delegated
                | UpdateKind::Escalated
        )
    }

    /// The history line's kind: `pagerduty_<kind>`.
    pub fn history_kind(self) -> &'static str {
        match self {
            UpdateKind::Acknowledged => "pagerduty_acknowledged",
            UpdateKind::Unacknowledged => "pagerduty_unacknowledged",
            UpdateKind::Resolved => "pagerduty_resolved",
            UpdateKind::Reopened => "pagerduty_reopened",
            UpdateKind::Reassigned => "pagerduty_reassigned",
            UpdateKind::Escalated => "pagerduty_escalated",
            UpdateKind::Delegated => "pagerduty_delegated",
            UpdateKind::PriorityUpdated => "pagerduty_priority_updated",
            UpdateKind::Annotated => "pagerduty_annotated",
            UpdateKind::ResponderAdded => "pagerduty_responder_added",
        }
    }
}

/// An incident's status in PagerDuty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PdStatus {
    Triggered,
    Acknowledged,
    Resolved,
}

impl PdStatus {
    pub fn parse(s: &str) -> Option<PdStatus> {
        Some(match s {
            "triggered" => PdStatus::Triggered,
            "acknowledged" => PdStatus::Acknowledged,
            "resolved" => PdStatus::Resolved,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PdStatus::Triggered => "triggered",
            PdStatus::Acknowledged => "acknowledged",
            PdStatus::Resolved => "resolved",
        }
    }
}

/// A parsed update delivery.
#[derive(Debug, Clone)]
pub struct IncidentUpdate {
    /// `X-Webhook-Id`, else the event id.
    pub delivery_id: String,
    pub kind: UpdateKind,
    pub event: PdEvent,
    pub incident_id: String,
    /// The incident as it is now, for events whose `data` is the incident.
    pub incident: Option<PdIncident>,
    pub status: Option<PdStatus>,
    /// A note's text (`incident.annotated`).
    pub note: Option<String>,
    /// The responder asked to help (`incident.responder.added`), by name.
    pub responder: Option<String>,
    /// The body as received.
    pub raw: JsonText,
}

impl IncidentUpdate {
    /// Parses the parts of `event` an update needs; `event.event_type` is one of [`UpdateKind`].
    pub fn parse(
        kind: UpdateKind,
        delivery_id: String,
        event: PdEvent,
        raw: JsonText,
    ) -> Result<IncidentUpdate, IngestError> {
        let data = &event.data;
        let is_incident = data["type"].as_str().is_none_or(|t| t == "incident");
        let (incident_id, incident) = if is_incident && data.get("number").is_some() {
            let incident = event.incident_or(Some(event.occurred_at.unwrap_or_else(Utc::now)))?;
            (incident.id.clone(), Some(incident))
        } else {
            let (field, id) = data["incident"]["id"]
                .as_str()
                .map(|id| ("event.data.incident.id", id))
                .or_else(|| {
                    let id = data["id"].as_str().filter(|_| is_incident)?;
                    Some(("event.data.id", id))
                })
                .filter(|(_, s)| !s.is_empty())
                .ok_or(IngestError::MissingField("event.data.incident.id"))?;
            super::bounded(field, id.len(), crate::db::MAX_ID_BYTES)?;
            (id.to_string(), None)
        };
        let status = match data.get("status").and_then(Value::as_str) {
            Some(s) if incident.is_some() => {
                Some(PdStatus::parse(s).ok_or_else(|| IngestError::InvalidField {
                    field: "event.data.status",
                    reason: format!("`{s}` is not triggered, acknowledged or resolved"),
                })?)
            }
            _ => None,
        };
        let note = (kind == UpdateKind::Annotated)
            .then(|| data["content"].as_str().map(String::from))
            .flatten();
        let responder = (kind == UpdateKind::ResponderAdded)
            .then(|| {
                data["user"]["summary"]
                    .as_str()
                    .or(data["user"]["id"].as_str())
                    .map(String::from)
            })
            .flatten();
        Ok(IncidentUpdate {
            delivery_id,
            kind,
            incident_id,
            incident,
            status,
            note,
            responder,
            raw,
            event,
        })
    }

    /// The delivery that makes the work item of an incident Goliath never saw, from the
    /// incident data this event carries (None for events without it, such as a note). Its
    /// delivery id is the update's with `:created`, so the update itself still applies.
    pub fn creating_delivery(&self) -> Option<Delivery> {
        Some(Delivery {
            delivery_id: format!("{}:created", self.delivery_id),
            event: self.event.clone(),
            incident: self.incident.clone()?,
            raw: self.raw.clone(),
        })
    }

    /// When it happened: the event's time, else now.
    fn at(&self) -> DateTime<Utc> {
        self.event.occurred_at.unwrap_or_else(Utc::now)
    }
}

/// What happened to an update.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum UpdateOutcome {
    /// Applied to the work item (and to Jira, through the queue).
    Updated {
        work_item_id: String,
        event_type: String,
        /// Goliath's status of the item after it.
        work_item_status: crate::models::WorkItemStatus,
        pagerduty_status: String,
        severity: crate::routing::Severity,
        assignee_id: Option<String>,
        /// What changed, in words (`severity sev2 -> sev1`, `jira: transition to done`, ...).
        changes: Vec<String>,
    },
    /// Older than what the item reflects: recorded in its history, nothing rolled back.
    Stale {
        work_item_id: String,
        event_type: String,
        reflects: DateTime<Utc>,
    },
    /// This delivery was applied before.
    Duplicate {
        work_item_id: String,
        event_type: String,
    },
    /// No work item for the incident, and the event carries no incident to make one from.
    Unknown {
        incident_id: String,
        event_type: String,
    },
}

/// Applies updates to work items.
pub struct Lifecycle {
    pagerduty: PagerDutyConfig,
    learner: Arc<LearnerService>,
    /// Follow a resolve or reopen with the Jira issue's transition.
    close_on_resolve: bool,
}

impl Lifecycle {
    pub fn new(
        pagerduty: PagerDutyConfig,
        learner: Arc<LearnerService>,
        close_on_resolve: bool,
    ) -> Lifecycle {
        Lifecycle {
            pagerduty,
            learner,
            close_on_resolve,
        }
    }

    /// Applies one update in one transaction.
    pub fn apply(
        &self,
        conn: &mut PgConnection,
        update: &IncidentUpdate,
    ) -> Result<UpdateOutcome, IngestError> {
        conn.transaction(|conn| {
            // A resolve or reopen changes loads through the learner, which takes the ownership
            // lock: taken first here, in the order every owner change uses (lock, then the
            // item), so two cannot deadlock. Other updates touch only the item's own row and
            // leave the lock (which the intake's batches share) alone.
            if update.kind.may_move_owner() {
                crate::db::lock_assignments(conn)?;
            }
            let item: Option<WorkItem> = work_items::table
                .filter(work_items::pagerduty_incident_id.eq(&update.incident_id))
                .select(WorkItem::as_select())
                .for_update()
                .first(conn)
                .optional()?;
            let Some(item) = item else {
                return Ok(UpdateOutcome::Unknown {
                    incident_id: update.incident_id.clone(),
                    event_type: update.event.event_type.clone(),
                });
            };
            let fresh = diesel::insert_into(webhook_deliveries::table)
                .values((
                    webhook_deliveries::source.eq("pagerduty"),
                    webhook_deliveries::delivery_id.eq(&update.delivery_id),
                    webhook_deliveries::event_type.eq(&update.event.event_type),
                    webhook_deliveries::work_item_id.eq(&item.id),
                ))
                .on_conflict_do_nothing()
                .execute(conn)?;
            if fresh == 0 {
                return Ok(UpdateOutcome::Duplicate {
                    work_item_id: item.id,
                    event_type: update.event.event_type.clone(),
                });
            }
            self.apply_to(conn, update, item)
        })
    }

    fn apply_to(
        &self,
        conn: &mut PgConnection,
        update: &IncidentUpdate,
        item: WorkItem,
    ) -> Result<UpdateOutcome, IngestError> {
        let at = update.at();
        let mut detail = json!({
            "event_id": update.event.id,
            "event_type": update.event.event_type,
            "agent": update.event.agent.as_ref().map(|a| json!({"id": a.id, "name": a.summary})),
        });
        if let Some(status) = update.status {
            detail["pagerduty_status"] = status.as_str().into();
        }
        if let Some(incident) = &update.incident {
            detail["assignees"] = json!(incident.assignee_user_ids);
            detail["priority"] = json!(incident.priority);
        }
        if let Some(note) = &update.note {
            detail["note"] = note.as_str().into();
        }
        if let Some(responder) = &update.responder {
            detail["responder"] = responder.as_str().into();
        }
        // Jira has (or will have) an issue for the item once someone was assigned.
        let has_issue = item.jira_key.is_some() || item.assignee_id.is_some();
        let job_key = |what: &str| format!("{}:{what}:{}", item.id, update.event.id);
        let mut changes = vec![];

        // A note is news whenever it arrives; it rolls nothing back.
        if let (Some(note), true) = (&update.note, has_issue) {
            let by = agent_name(update);
            let text = format!("Note from PagerDuty ({by}):\n{note}");
            queue_issue_change(conn, &item.id, &IssueEdit::Comment(text), &job_key("note"))?;
            changes.push("jira: comment with the note".to_string());
        }

        // Only events that carry the incident carry its state: a note or a responder request
        // neither moves the item's clock nor is ever stale.
        let Some(incident) = &update.incident else {
            record_event(conn, &item.id, update.kind.history_kind(), detail, at)?;
            return Ok(UpdateOutcome::Updated {
                work_item_id: item.id,
                event_type: update.event.event_type.clone(),
                work_item_status: item.status,
                pagerduty_status: item.pagerduty_status,
                severity: item.severity,
                assignee_id: item.assignee_id,
                changes,
            });
        };
        if let Some(reflects) = item.pagerduty_event_at.filter(|t| at < *t) {
            detail["stale"] = true.into();
            detail["reflects"] = json!(reflects);
            record_event(conn, &item.id, update.kind.history_kind(), detail, at)?;
            log::info!(
                "{}: {} of {at} is older than the {reflects} the item reflects; recorded only",
                item.id,
                update.event.event_type
            );
            return Ok(UpdateOutcome::Stale {
                work_item_id: item.id,
                event_type: update.event.event_type.clone(),
                reflects,
            });
        }

        let severity = pagerduty::map_severity(
            &self.pagerduty,
            incident.priority.as_deref(),
            incident.urgency.as_deref(),
        );
        let status = update
            .status
            .map_or(item.pagerduty_status.clone(), |s| s.as_str().to_string());
        let assignees = incident.assignee_user_ids.clone();
        diesel::update(work_items::table.find(&item.id))
            .set((
                work_items::severity.eq(severity.as_str()),
                work_items::pagerduty_status.eq(&status),
                work_items::pagerduty_assignees.eq(&assignees),
                work_items::pagerduty_event_at.eq(at),
            ))
            .execute(conn)?;
        if severity != item.severity {
            detail["severity"] = json!({"from": item.severity, "to": severity});
            changes.push(format!("severity {} -> {severity}", item.severity));
            if has_issue {
                queue_issue_change(conn, &item.id, &IssueEdit::Priority, &job_key("priority"))?;
                changes.push("jira: severity (summary, label, priority)".into());
            }
        }
        if status != item.pagerduty_status {
            changes.push(format!(
                "pagerduty status {} -> {status}",
                item.pagerduty_status
            ));
        }
        record_event(conn, &item.id, update.kind.history_kind(), detail, at)?;
        if update.kind == UpdateKind::Acknowledged
            && item.routing_mode == RoutingMode::Shadow
            && item.taken_by.is_none()
        {
            if let Some(user) = update.event.agent.as_ref().and_then(|a| a.user_id()) {
                if let Some(human) = crate::roster::by_pagerduty_user(conn, user)? {
                    diesel::update(work_items::table.find(&item.id))
                        .set(work_items::taken_by.eq(&human.id))
                        .execute(conn)?;
                    changes.push(format!("taken by {}", human.id));
                }
            }
        }
        if update.kind == UpdateKind::Acknowledged && self.acked_by_owner(conn, update, &item)? {
            crate::models::owner_acted(conn, &item.id, "acknowledged in PagerDuty", at)?;
            changes.push("escalation stopped: the owner acknowledged".into());
        }

        // A reassign, delegation or escalation in PagerDuty to someone Goliath knows moves the
        // owner as a Jira reassign does, and teaches the same hand-off. When the owner is still
        // among the assignees nothing moved (this is also Goliath's own reassign coming back).
        let handed_to = match update.kind {
            UpdateKind::Reassigned | UpdateKind::Delegated | UpdateKind::Escalated
                if item.routing_mode != RoutingMode::Shadow =>
            {
                pagerduty_owner(conn, &item, &assignees)?
            }
            _ => None,
        };
        let outcome = match update.kind {
            _ if handed_to.is_some() => Some(Outcome::HandedOff {
                from: item.assignee_id.clone(),
                to: handed_to.clone(),
            }),
            UpdateKind::Resolved => {
                let resolver = match update.event.agent.as_ref().and_then(|a| a.user_id()) {
                    Some(user) => crate::roster::by_pagerduty_user(conn, user)?.map(|h| h.id),
                    None => None,
                };
                Some(Outcome::Resolved { resolver })
            }
            UpdateKind::Reopened => Some(Outcome::Reopened),
            _ => None,
        };
        if let Some(outcome) = outcome {
            let applied = self
                .learner
                .record(
                    conn,
                    &OutcomeEvent {
                        event_id: format!("pagerduty-{}", update.event.id),
                        work_item_id: item.id.clone(),
                        outcome,
                        occurred_at: at,
                    },
                )
                .map_err(|e| match e {
                    crate::learner::LearnerError::Db(db) => IngestError::Db(db),
                    other => IngestError::Decision(other.to_string()),
                })?;
            if let Applied::Applied { status, .. } = &applied {
                changes.push(format!("work item {status}"));
                if let Some(to) = &handed_to {
                    changes.push(format!(
                        "owner {} -> {to} ({} in PagerDuty)",
                        item.assignee_id.as_deref().unwrap_or("nobody"),
                        update.event.event_type.trim_start_matches("incident.")
                    ));
                } else if has_issue {
                    let (target, words) = if update.kind == UpdateKind::Resolved {
                        (IssueTarget::Done, "Resolved in PagerDuty")
                    } else {
                        (IssueTarget::Open, "Reopened in PagerDuty")
                    };
                    let text = format!("{words} by {}.", agent_name(update));
                    queue_issue_change(
                        conn,
                        &item.id,
                        &IssueEdit::Comment(text),
                        &job_key("comment"),
                    )?;
                    changes.push("jira: comment".into());
                    if self.close_on_resolve {
                        queue_issue_change(
                            conn,
                            &item.id,
                            &IssueEdit::Transition(target),
                            &job_key("transition"),
                        )?;
                        changes.push(format!(
                            "jira: transition to {}",
                            if target == IssueTarget::Done {
                                "done"
                            } else {
                                "open"
                            }
                        ));
                    }
                }
            }
        }
        let now: WorkItem = work_items::table
            .find(&item.id)
            .select(WorkItem::as_select())
            .first(conn)?;
        // The owner moved (a PagerDuty hand-off, or a resolve by someone else): Jira's assignee
        // follows, so the three systems name the same person.
        if now.assignee_id.is_some()
            && now.assignee_id != item.assignee_id
            && item.routing_mode != RoutingMode::Shadow
            && has_issue
        {
            crate::executor::queue_assign(conn, &item.id, Some(&job_key("assign")))?;
            changes.push(format!(
                "jira: assignee {}",
                now.assignee_id.as_deref().unwrap_or_default()
            ));
        }
        Ok(UpdateOutcome::Updated {
            work_item_id: now.id,
            event_type: update.event.event_type.clone(),
            work_item_status: now.status,
            pagerduty_status: now.pagerduty_status,
            severity: now.severity,
            assignee_id: now.assignee_id,
            changes,
        })
    }
}

impl Lifecycle {
    /// Whether the owner acknowledged: the agent is the owner's PagerDuty user (or any person,
    /// when the owner's PagerDuty user is not known).
    fn acked_by_owner(
        &self,
        conn: &mut PgConnection,
        update: &IncidentUpdate,
        item: &WorkItem,
    ) -> QueryResult<bool> {
        let (Some(owner), Some(agent)) = (
            &item.assignee_id,
            update.event.agent.as_ref().and_then(|a| a.user_id()),
        ) else {
            return Ok(false);
        };
        Ok(match crate::roster::get(conn, owner)? {
            Some(human) => human
                .pagerduty_user_id
                .as_deref()
                .is_none_or(|pd| pd == agent),
            None => false,
        })
    }
}

/// The person a PagerDuty hand-off gave the incident to: None when Goliath's owner is still
/// among the incident's assignees, else the first assignee who is an active person on the
/// roster.
fn pagerduty_owner(
    conn: &mut PgConnection,
    item: &WorkItem,
    assignees: &[String],
) -> QueryResult<Option<String>> {
    if let Some(owner) = &item.assignee_id {
        let owner_pd = crate::roster::get(conn, owner)?.and_then(|h| h.pagerduty_user_id);
        if owner_pd.is_some_and(|pd| assignees.contains(&pd)) {
            return Ok(None);
        }
    }
    for user in assignees {
        if let Some(human) = crate::roster::by_pagerduty_user(conn, user)? {
            if human.active {
                return Ok(Some(human.id));
            }
        }
    }
    Ok(None)
}

/// Who caused the event, for a comment.
fn agent_name(update: &IncidentUpdate) -> String {
    update
        .event
        .agent
        .as_ref()
        .map(|a| a.summary.clone().unwrap_or_else(|| a.id.clone()))
        .unwrap_or_else(|| "automation".into())
}
