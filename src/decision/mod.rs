//! The decision engine's database side: gathers what a decision needs (roster, loads, learned
//! skill), runs the pure model in `routing`, and stores the result with everything needed to
//! explain and replay it. The Jira job is queued in the same transaction.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{decisions, humans, person_states, skill_stats, work_items};
use crate::ingest::{OnNewWorkItem, PdIncident};
use crate::models::{record_event, Human, WorkItem};
use crate::routing::{
    self, CandidateInput, ContextRecord, DecisionInput, ModelParams, Severity, SkillRecord,
    SkillState,
};

/// Statuses in which a work item counts against its assignee's load.
pub const OPEN_STATUSES: [&str; 2] = ["assigned", "reopened"];

#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error("no work item `{0}`")]
    UnknownWorkItem(String),
    #[error("stored decision input cannot be read: {0}")]
    BadStoredInput(String),
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
}

/// A decision as stored.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, PartialEq)]
#[diesel(table_name = decisions)]
pub struct StoredDecision {
    pub work_item_id: String,
    pub primary_human_id: Option<String>,
    pub backup_ids: Vec<String>,
    pub confidence: f64,
    pub explanation: String,
    pub undecided_reason: Option<String>,
    pub ranking: serde_json::Value,
    pub excluded: serde_json::Value,
    pub inputs: serde_json::Value,
    pub model_version: String,
    pub decided_at: chrono::DateTime<Utc>,
}

/// What a replay found.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub work_item_id: String,
    pub matches: bool,
    pub stored_primary: Option<String>,
    pub replayed_primary: Option<String>,
    pub stored_backups: Vec<String>,
    pub replayed_backups: Vec<String>,
    pub stored_confidence: f64,
    pub replayed_confidence: f64,
    pub differences: Vec<String>,
}

/// Called after a decision assigns someone, inside the same transaction (the executor queues
/// the Jira issue here).
pub trait OnAssigned: Send + Sync {
    fn on_assigned(
        &self,
        conn: &mut PgConnection,
        item: &WorkItem,
        decision: &StoredDecision,
    ) -> QueryResult<()>;
}

pub struct DecisionService {
    params: ModelParams,
    on_assigned: Option<Arc<dyn OnAssigned>>,
}

impl DecisionService {
    pub fn new(params: ModelParams, on_assigned: Option<Arc<dyn OnAssigned>>) -> Self {
        DecisionService {
            params,
            on_assigned,
        }
    }

    pub fn params(&self) -> &ModelParams {
        &self.params
    }

    /// Decides for a work item, once: a stored decision with an owner is returned as is. An
    /// undecided item (nobody was eligible) is decided afresh, since the roster may have
    /// changed.
    pub fn decide(
        &self,
        conn: &mut PgConnection,
        work_item_id: &str,
    ) -> Result<StoredDecision, DecisionError> {
        conn.transaction(|conn| {
            let item: WorkItem = work_items::table
                .find(work_item_id)
                .select(WorkItem::as_select())
                .for_update()
                .first(conn)
                .optional()?
                .ok_or_else(|| DecisionError::UnknownWorkItem(work_item_id.to_string()))?;
            if let Some(existing) = load(conn, work_item_id)? {
                if existing.primary_human_id.is_some() {
                    return Ok(existing);
                }
            }
            let on_call = on_call_from_payload(&item.raw_payload);
            self.decide_locked(conn, &item, &on_call)
                .map(|(stored, _)| stored)
        })
    }

    fn decide_locked(
        &self,
        conn: &mut PgConnection,
        item: &WorkItem,
        pd_assignees: &[String],
    ) -> Result<(StoredDecision, WorkItem), DecisionError> {
        let input = gather_input(conn, item, pd_assignees)?;
        let decision = routing::decide(&input, &self.params);
        let inputs = serde_json::json!({"input": input, "params": self.params});
        let row = (
            decisions::work_item_id.eq(&item.id),
            decisions::primary_human_id.eq(&decision.primary),
            decisions::backup_ids.eq(&decision.backups),
            decisions::confidence.eq(decision.confidence),
            decisions::explanation.eq(&decision.explanation),
            decisions::undecided_reason.eq(&decision.undecided_reason),
            decisions::ranking.eq(serde_json::to_value(&decision.ranking).unwrap_or_default()),
            decisions::excluded.eq(serde_json::to_value(&decision.excluded).unwrap_or_default()),
            decisions::inputs.eq(&inputs),
            decisions::model_version.eq(decision.model_version.to_string()),
            decisions::decided_at.eq(Utc::now()),
        );
        let stored: StoredDecision = diesel::insert_into(decisions::table)
            .values(row.clone())
            .on_conflict(decisions::work_item_id)
            .do_update()
            .set(row)
            .returning(StoredDecision::as_returning())
            .get_result(conn)?;

        let (status, reason) = match &stored.primary_human_id {
            Some(_) => ("assigned", None),
            None => ("undecided", stored.undecided_reason.clone()),
        };
        let item: WorkItem = diesel::update(work_items::table.find(&item.id))
            .set((
                work_items::assignee_id.eq(&stored.primary_human_id),
                work_items::status.eq(status),
                work_items::undecided_reason.eq(&reason),
            ))
            .returning(WorkItem::as_returning())
            .get_result(conn)?;
        record_event(
            conn,
            &item.id,
            if stored.primary_human_id.is_some() {
                "decided"
            } else {
                "undecided"
            },
            serde_json::json!({
                "primary": stored.primary_human_id,
                "backups": stored.backup_ids,
                "confidence": stored.confidence,
                "reason": reason,
            }),
            Utc::now(),
        )?;
        match &stored.primary_human_id {
            Some(primary) => log::info!(
                "{} ({} {}) routed to {primary} (confidence {:.2})",
                item.id,
                item.service,
                item.severity,
                stored.confidence
            ),
            None => log::warn!(
                "{} left undecided: {}",
                item.id,
                reason.as_deref().unwrap_or("")
            ),
        }
        if stored.primary_human_id.is_some() {
            if let Some(hook) = &self.on_assigned {
                hook.on_assigned(conn, &item, &stored)?;
            }
        }
        Ok((stored, item))
    }

    /// Recomputes the stored decision from its stored inputs and compares.
    pub fn replay(
        &self,
        conn: &mut PgConnection,
        work_item_id: &str,
    ) -> Result<ReplayReport, DecisionError> {
        let stored = load(conn, work_item_id)?
            .ok_or_else(|| DecisionError::UnknownWorkItem(work_item_id.to_string()))?;
        let input: DecisionInput = serde_json::from_value(stored.inputs["input"].clone())
            .map_err(|e| DecisionError::BadStoredInput(e.to_string()))?;
        let params: ModelParams = serde_json::from_value(stored.inputs["params"].clone())
            .map_err(|e| DecisionError::BadStoredInput(e.to_string()))?;
        let again = routing::decide(&input, &params);
        let mut differences = vec![];
        if again.primary != stored.primary_human_id {
            differences.push(format!(
                "primary {:?} != stored {:?}",
                again.primary, stored.primary_human_id
            ));
        }
        if again.backups != stored.backup_ids {
            differences.push(format!(
                "backups {:?} != stored {:?}",
                again.backups, stored.backup_ids
            ));
        }
        if (again.confidence - stored.confidence).abs() > 1e-9 {
            differences.push(format!(
                "confidence {} != stored {}",
                again.confidence, stored.confidence
            ));
        }
        let ranking = serde_json::to_value(&again.ranking).unwrap_or_default();
        if ranking != stored.ranking {
            differences.push("ranking differs".into());
        }
        Ok(ReplayReport {
            work_item_id: work_item_id.to_string(),
            matches: differences.is_empty(),
            stored_primary: stored.primary_human_id,
            replayed_primary: again.primary,
            stored_backups: stored.backup_ids,
            replayed_backups: again.backups,
            stored_confidence: stored.confidence,
            replayed_confidence: again.confidence,
            differences,
        })
    }
}

impl OnNewWorkItem for DecisionService {
    fn on_new(
        &self,
        conn: &mut PgConnection,
        item: &WorkItem,
        incident: &PdIncident,
    ) -> Result<Option<WorkItem>, String> {
        self.decide_locked(conn, item, &incident.assignee_user_ids)
            .map(|(_, item)| Some(item))
            .map_err(|e| e.to_string())
    }
}

pub fn load(conn: &mut PgConnection, work_item_id: &str) -> QueryResult<Option<StoredDecision>> {
    decisions::table
        .find(work_item_id)
        .select(StoredDecision::as_select())
        .first(conn)
        .optional()
}

/// PagerDuty user ids assigned in the stored incident payload (the people paged for it).
fn on_call_from_payload(raw: &serde_json::Value) -> Vec<String> {
    raw["event"]["data"]["assignees"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|a| a["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Open work items per assignee.
pub fn open_loads(conn: &mut PgConnection) -> QueryResult<HashMap<String, u32>> {
    let rows: Vec<(Option<String>, i64)> = work_items::table
        .filter(work_items::status.eq_any(OPEN_STATUSES))
        .filter(work_items::assignee_id.is_not_null())
        .group_by(work_items::assignee_id)
        .select((work_items::assignee_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, n)| id.map(|id| (id, u32::try_from(n).unwrap_or(u32::MAX))))
        .collect())
}

/// Learned skill of everyone for one service.
pub fn skills_for_service(
    conn: &mut PgConnection,
    service: &str,
) -> QueryResult<HashMap<String, Vec<SkillRecord>>> {
    let rows: Vec<(String, String, serde_json::Value)> = skill_stats::table
        .filter(skill_stats::service.eq(service))
        .select((
            skill_stats::human_id,
            skill_stats::severity,
            skill_stats::state,
        ))
        .load(conn)?;
    let mut out: HashMap<String, Vec<SkillRecord>> = HashMap::new();
    for (human, severity, state) in rows {
        let (Ok(severity), Ok(state)) = (
            severity.parse::<Severity>(),
            serde_json::from_value::<SkillState>(state),
        ) else {
            log::warn!("skipping unreadable skill record for {human} on {service}");
            continue;
        };
        out.entry(human).or_default().push(SkillRecord {
            service: service.to_string(),
            severity,
            state,
        });
    }
    Ok(out)
}

/// Everything the model sees for one decision.
pub fn gather_input(
    conn: &mut PgConnection,
    item: &WorkItem,
    pd_assignees: &[String],
) -> Result<DecisionInput, DecisionError> {
    let people: Vec<Human> = humans::table
        .select(Human::as_select())
        .order(humans::id)
        .load(conn)?;
    let loads = open_loads(conn)?;
    let mut skills = skills_for_service(conn, &item.service)?;
    let mut overall = overall_states(conn)?;
    let mut tags = tag_states(conn, &item.context)?;
    let candidates = people
        .into_iter()
        .map(|h| CandidateInput {
            overall: overall.remove(&h.id),
            context_skill: tags.remove(&h.id).unwrap_or_default(),
            open_items: loads.get(&h.id).copied().unwrap_or(0),
            on_call: h
                .pagerduty_user_id
                .as_ref()
                .is_some_and(|pd| pd_assignees.iter().any(|a| a == pd)),
            skill: skills.remove(&h.id).unwrap_or_default(),
            active: h.active,
            services: h.services,
            max_active: h.max_active.and_then(|m| u32::try_from(m).ok()),
            human_id: h.id,
        })
        .collect();
    Ok(DecisionInput {
        work_item_id: item.id.clone(),
        service: item.service.clone(),
        severity: item.severity.parse().unwrap_or(Severity::Sev3),
        at: item.created_at,
        candidates,
        context: item.context.clone(),
    })
}

/// Scope of a person's state pooled over every service.
pub const SCOPE_OVERALL: &str = "overall";
/// Scope of a person's state for one context tag.
pub const SCOPE_TAG: &str = "tag";

/// Everyone's pooled state.
pub fn overall_states(conn: &mut PgConnection) -> QueryResult<HashMap<String, SkillState>> {
    let rows: Vec<(String, serde_json::Value)> = person_states::table
        .filter(person_states::scope.eq(SCOPE_OVERALL))
        .select((person_states::human_id, person_states::state))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(h, v)| serde_json::from_value(v).ok().map(|s| (h, s)))
        .collect())
}

/// Everyone's state for the given context tags.
pub fn tag_states(
    conn: &mut PgConnection,
    tags: &[String],
) -> QueryResult<HashMap<String, Vec<ContextRecord>>> {
    if tags.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String, serde_json::Value)> = person_states::table
        .filter(person_states::scope.eq(SCOPE_TAG))
        .filter(person_states::key.eq_any(tags))
        .select((
            person_states::human_id,
            person_states::key,
            person_states::state,
        ))
        .load(conn)?;
    let mut out: HashMap<String, Vec<ContextRecord>> = HashMap::new();
    for (human, tag, value) in rows {
        if let Ok(state) = serde_json::from_value(value) {
            out.entry(human)
                .or_default()
                .push(ContextRecord { tag, state });
        }
    }
    for list in out.values_mut() {
        list.sort_by(|a, b| a.tag.cmp(&b.tag));
    }
    Ok(out)
}
