//! Escalation: an owner who has not acted on their item by its deadline (no Jira transition,
//! comment or reassignment, no acknowledgement in PagerDuty) loses it to the next backup the
//! decision named. The deadline is a column of the item's row (`escalate_at`), set when an
//! owner is given the item and cleared when they act, so it survives restarts; taking it is a
//! conditional update under the item's row lock, so each deadline fires once.

use std::sync::Arc;

use chrono::Utc;
use diesel::prelude::*;
use serde::Serialize;

use crate::config::{EscalationPolicy, PagerDutyConfig};
use crate::db::schema::{outcomes, work_items};
use crate::learner::{Applied, LearnerError, LearnerService, Outcome, OutcomeEvent};
use crate::models::{record_event, WorkItem, WorkItemStatus};

/// Items escalated per transaction, earliest deadline first.
const CHUNK: i64 = 50;

/// What became of one item past its deadline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Escalation {
    pub work_item_id: String,
    pub from: String,
    /// The backup now owning it; None when no backup was left (it stays with its owner).
    pub to: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EscalationError {
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("the learner refused the escalation: {0}")]
    Learner(#[from] LearnerError),
}

pub struct Escalator {
    learner: Arc<LearnerService>,
    policy: EscalationPolicy,
    /// Whether the PagerDuty incident follows the new owner.
    pagerduty: PagerDutyConfig,
}

impl Escalator {
    pub fn new(
        learner: Arc<LearnerService>,
        policy: EscalationPolicy,
        pagerduty: PagerDutyConfig,
    ) -> Self {
        Escalator {
            learner,
            policy,
            pagerduty,
        }
    }

    /// Escalates every open item whose deadline has passed; returns what it did.
    pub fn escalate_due(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Vec<Escalation>, EscalationError> {
        let mut done = vec![];
        loop {
            let chunk = self.escalate_chunk(conn)?;
            let last = (chunk.len() as i64) < CHUNK;
            done.extend(chunk);
            if last {
                return Ok(done);
            }
        }
    }

    fn escalate_chunk(&self, conn: &mut PgConnection) -> Result<Vec<Escalation>, EscalationError> {
        // Most passes find nothing due: looked for first through the deadline index, without
        // the ownership lock (taking it exclusively would hold up the intake's batches).
        let any_due: bool = diesel::select(diesel::dsl::exists(
            work_items::table.filter(work_items::escalate_at.le(Utc::now())),
        ))
        .get_result(conn)?;
        if !any_due {
            return Ok(vec![]);
        }
        conn.transaction(|conn| {
            crate::db::lock_assignments(conn)?;
            let open = [
                WorkItemStatus::Assigned.as_str(),
                WorkItemStatus::Reopened.as_str(),
            ];
            let due: Vec<WorkItem> = work_items::table
                .filter(work_items::escalate_at.le(Utc::now()))
                .filter(work_items::status.eq_any(open))
                .filter(work_items::assignee_id.is_not_null())
                .order((work_items::escalate_at, work_items::id))
                .limit(CHUNK)
                .select(WorkItem::as_select())
                .for_update()
                .skip_locked()
                .load(conn)?;
            let mut done = vec![];
            for item in due {
                done.push(self.escalate(conn, item)?);
            }
            // Deadlines of items no longer open are dropped.
            diesel::update(
                work_items::table
                    .filter(work_items::escalate_at.le(Utc::now()))
                    .filter(work_items::status.ne_all(open)),
            )
            .set(work_items::escalate_at.eq(None::<chrono::DateTime<Utc>>))
            .execute(conn)?;
            Ok(done)
        })
    }

    fn escalate(
        &self,
        conn: &mut PgConnection,
        item: WorkItem,
    ) -> Result<Escalation, EscalationError> {
        let now = Utc::now();
        let owner = item.assignee_id.clone().unwrap_or_default();
        let deadline = item.escalate_at.unwrap_or(now);
        let Some(backup) = next_backup(conn, &item, &owner)? else {
            diesel::update(work_items::table.find(&item.id))
                .set(work_items::escalate_at.eq(None::<chrono::DateTime<Utc>>))
                .execute(conn)?;
            record_event(
                conn,
                &item.id,
                "escalation_exhausted",
                serde_json::json!({"owner": owner, "deadline": deadline,
                                   "reason": "no backup left to escalate to"}),
                now,
            )?;
            log::warn!(
                "{}: {owner} did not act by {deadline}; no backup left",
                item.id
            );
            crate::metrics::metrics()
                .escalations
                .with_label_values(&["exhausted"])
                .inc();
            return Ok(Escalation {
                work_item_id: item.id,
                from: owner,
                to: None,
            });
        };
        let applied = self.learner.record(
            conn,
            &OutcomeEvent {
                event_id: format!("escalation-{}-{}", item.id, deadline.timestamp_millis()),
                work_item_id: item.id.clone(),
                outcome: Outcome::Escalated {
                    from: owner.clone(),
                    to: backup.clone(),
                    deadline,
                },
                occurred_at: now,
            },
        )?;
        if let Applied::Applied { .. } = applied {
            // The backup gets the same time to act, from now.
            let next = self
                .policy
                .deadline(item.severity)
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .map(|d| now + d);
            diesel::update(work_items::table.find(&item.id))
                .set(work_items::escalate_at.eq(next))
                .execute(conn)?;
            crate::executor::queue_assign(conn, &item.id, None)?;
            if self.pagerduty.reassigns(&item.service) {
                let key = deadline.timestamp_millis().to_string();
                let job = crate::pagerduty::writer::reassign_job(&item.id, Some(&key));
                crate::jobs::queue::enqueue(
                    conn,
                    &job.kind,
                    job.payload,
                    job.dedup_key.as_deref(),
                )?;
            }
            log::warn!(
                "{}: {owner} did not act by {deadline}; escalated to {backup}",
                item.id
            );
            crate::metrics::metrics()
                .escalations
                .with_label_values(&["escalated"])
                .inc();
        }
        Ok(Escalation {
            work_item_id: item.id,
            from: owner,
            to: Some(backup),
        })
    }
}

/// The first of the decision's backups who is active and has not owned the item before.
fn next_backup(
    conn: &mut PgConnection,
    item: &WorkItem,
    owner: &str,
) -> QueryResult<Option<String>> {
    let Some(decision) = crate::decision::load(conn, &item.id)? else {
        return Ok(None);
    };
    let mut owned: Vec<String> = outcomes::table
        .filter(outcomes::work_item_id.eq(&item.id))
        .select((outcomes::human_id, outcomes::to_human_id))
        .load::<(Option<String>, Option<String>)>(conn)?
        .into_iter()
        .flat_map(|(a, b)| [a, b])
        .flatten()
        .collect();
    owned.push(owner.to_string());
    owned.extend(decision.primary_human_id.clone());
    for candidate in &decision.backup_ids {
        if owned.contains(candidate) {
            continue;
        }
        if crate::roster::get(conn, candidate)?.is_some_and(|p| p.active) {
            return Ok(Some(candidate.clone()));
        }
    }
    Ok(None)
}
