//! The decision engine's database side: gathers what a decision needs (roster, loads, learned
//! skill), runs the pure model in `routing`, and stores the result with everything needed to
//! explain and replay it. The Jira job is queued in the same transaction.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{decisions, work_items};
use crate::ingest::{OnNewWorkItem, PdIncident};
use crate::models::{record_events, NewEvent, WorkItem};
use crate::routing::{
    self, CandidateInput, ContextRecord, DecisionInput, ModelParams, Severity, SkillRecord,
    SkillState,
};

/// Advisory lock key serializing changes of ownership (an arbitrary constant).
const ASSIGNMENT_LOCK: i64 = 0x0047_4F4C_4941_5448;

/// Takes the transaction-scoped lock that every change of who owns what holds until commit.
pub fn lock_assignments(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(ASSIGNMENT_LOCK)
        .execute(conn)
        .map(|_| ())
}

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
    fn on_assigned(&self, conn: &mut PgConnection, items: &[&WorkItem]) -> QueryResult<()>;
}

#[derive(Insertable)]
#[diesel(table_name = decisions)]
struct NewDecision {
    work_item_id: String,
    primary_human_id: Option<String>,
    backup_ids: Vec<String>,
    confidence: f64,
    explanation: String,
    undecided_reason: Option<String>,
    ranking: serde_json::Value,
    excluded: serde_json::Value,
    inputs: serde_json::Value,
    model_version: String,
    decided_at: chrono::DateTime<Utc>,
}

/// Writes the owner, status and reason of each work item in one statement.
fn set_owners(conn: &mut PgConnection, items: &[WorkItem]) -> QueryResult<()> {
    use diesel::sql_types::{Array, Nullable, Text};
    let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let owners: Vec<Option<&str>> = items.iter().map(|i| i.assignee_id.as_deref()).collect();
    let statuses: Vec<&str> = items.iter().map(|i| i.status.as_str()).collect();
    let reasons: Vec<Option<&str>> = items
        .iter()
        .map(|i| i.undecided_reason.as_deref())
        .collect();
    diesel::sql_query(
        "UPDATE work_items w SET assignee_id = u.owner, status = u.status, undecided_reason = u.reason \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS u(id, owner, status, reason) \
         WHERE w.id = u.id",
    )
    .bind::<Array<Text>, _>(ids)
    .bind::<Array<Nullable<Text>>, _>(owners)
    .bind::<Array<Text>, _>(statuses)
    .bind::<Array<Nullable<Text>>, _>(reasons)
    .execute(conn)
    .map(|_| ())
}

/// A person as the model needs them.
#[derive(serde::Deserialize)]
struct Person {
    id: String,
    active: bool,
    services: Vec<String>,
    max_active: Option<i32>,
    pagerduty_user_id: Option<String>,
}

/// Everything a decision reads, in one round trip: the roster, open loads, learned skill for
/// the items' services, pooled states, and states for the items' context tags.
const SNAPSHOT_SQL: &str = "\
    SELECT 'h' AS kind, json_build_object('id', id, 'active', active, 'services', services, \
           'max_active', max_active, 'pagerduty_user_id', pagerduty_user_id)::text AS body \
      FROM humans \
    UNION ALL SELECT 'l', json_build_array(human_id, open_items)::text \
      FROM open_loads WHERE open_items > 0 \
    UNION ALL SELECT 's', json_build_array(service, human_id, severity, state)::text \
      FROM skill_stats WHERE service = ANY($1) \
    UNION ALL SELECT 'o', json_build_array(human_id, state)::text \
      FROM person_states WHERE scope = 'overall' \
    UNION ALL SELECT 't', json_build_array(human_id, key, state)::text \
      FROM person_states WHERE scope = 'tag' AND key = ANY($2)";

#[derive(QueryableByName)]
struct SnapshotRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    body: String,
}

/// What the model needs for a set of work items, read once.
struct Snapshot {
    people: Vec<Person>,
    loads: HashMap<String, u32>,
    /// service -> person -> records
    skills: HashMap<String, HashMap<String, Vec<SkillRecord>>>,
    overall: HashMap<String, SkillState>,
    /// person -> records for every tag of any of the items
    tags: HashMap<String, Vec<ContextRecord>>,
}

impl Snapshot {
    fn read<'a>(
        conn: &mut PgConnection,
        items: impl Iterator<Item = &'a WorkItem> + Clone,
    ) -> QueryResult<Snapshot> {
        use diesel::sql_types::{Array, Text};
        let mut services: Vec<String> = items.clone().map(|i| i.service.clone()).collect();
        services.sort();
        services.dedup();
        let mut tags: Vec<String> = items.flat_map(|i| i.context.iter().cloned()).collect();
        tags.sort();
        tags.dedup();
        let rows: Vec<SnapshotRow> = diesel::sql_query(SNAPSHOT_SQL)
            .bind::<Array<Text>, _>(&services)
            .bind::<Array<Text>, _>(&tags)
            .load(conn)?;
        let mut snap = Snapshot {
            people: vec![],
            loads: HashMap::new(),
            skills: HashMap::new(),
            overall: HashMap::new(),
            tags: HashMap::new(),
        };
        for row in rows {
            let parsed = match row.kind.as_str() {
                "h" => serde_json::from_str(&row.body).map(|p| snap.people.push(p)),
                "l" => serde_json::from_str::<(String, i64)>(&row.body).map(|(h, n)| {
                    snap.loads.insert(h, u32::try_from(n).unwrap_or(0));
                }),
                "s" => serde_json::from_str::<(String, String, String, SkillState)>(&row.body).map(
                    |(service, human, severity, state)| match severity.parse::<Severity>() {
                        Ok(severity) => snap
                            .skills
                            .entry(service.clone())
                            .or_default()
                            .entry(human)
                            .or_default()
                            .push(SkillRecord {
                                service,
                                severity,
                                state,
                            }),
                        Err(_) => log::warn!("skipping a skill record with severity {severity}"),
                    },
                ),
                "o" => serde_json::from_str::<(String, SkillState)>(&row.body).map(|(h, s)| {
                    snap.overall.insert(h, s);
                }),
                _ => serde_json::from_str::<(String, String, SkillState)>(&row.body).map(
                    |(human, tag, state)| {
                        snap.tags
                            .entry(human)
                            .or_default()
                            .push(ContextRecord { tag, state })
                    },
                ),
            };
            if let Err(e) = parsed {
                log::warn!("skipping an unreadable learned record ({}): {e}", row.kind);
            }
        }
        // Stable orders, so the same data always gives the same input.
        snap.people.sort_by(|a, b| a.id.cmp(&b.id));
        for by_person in snap.skills.values_mut() {
            for records in by_person.values_mut() {
                records.sort_by_key(|r| r.severity);
            }
        }
        for records in snap.tags.values_mut() {
            records.sort_by(|a, b| a.tag.cmp(&b.tag));
        }
        Ok(snap)
    }

    fn input_for(&self, item: &WorkItem, pd_assignees: &[String]) -> DecisionInput {
        let skills = self.skills.get(&item.service);
        let candidates = self
            .people
            .iter()
            .map(|h| CandidateInput {
                human_id: h.id.clone(),
                active: h.active,
                services: h.services.clone(),
                max_active: h.max_active.and_then(|m| u32::try_from(m).ok()),
                open_items: self.loads.get(&h.id).copied().unwrap_or(0),
                on_call: h
                    .pagerduty_user_id
                    .as_ref()
                    .is_some_and(|pd| pd_assignees.iter().any(|a| a == pd)),
                skill: skills
                    .and_then(|s| s.get(&h.id))
                    .cloned()
                    .unwrap_or_default(),
                context_skill: self
                    .tags
                    .get(&h.id)
                    .map(|records| {
                        records
                            .iter()
                            .filter(|r| item.context.contains(&r.tag))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default(),
                overall: self.overall.get(&h.id).cloned(),
            })
            .collect();
        DecisionInput {
            work_item_id: item.id.clone(),
            service: item.service.clone(),
            severity: item.severity.parse().unwrap_or(Severity::Sev3),
            at: item.created_at,
            candidates,
            context: item.context.clone(),
        }
    }
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
            let mut decided = self.decide_items(conn, &[(item, on_call)])?;
            Ok(decided.remove(0).0)
        })
    }

    /// Decides for new work items in order, inside the caller's transaction: reads the roster,
    /// loads and learned state once, counts each assignment against the next item's loads, and
    /// writes every decision, status change, history line and Jira job with one statement each.
    pub fn decide_items(
        &self,
        conn: &mut PgConnection,
        items: &[(WorkItem, Vec<String>)],
    ) -> Result<Vec<(StoredDecision, WorkItem)>, DecisionError> {
        if items.is_empty() {
            return Ok(vec![]);
        }
        // One decision batch at a time, across writer threads and replicas, until commit: each
        // sees the loads the previous one committed (so `max_active` holds under concurrency),
        // and their open-load counter updates cannot deadlock.
        lock_assignments(conn)?;
        let mut snap = Snapshot::read(conn, items.iter().map(|(item, _)| item))?;
        let now = Utc::now();
        let mut rows = Vec::with_capacity(items.len());
        for (item, on_call) in items {
            let input = snap.input_for(item, on_call);
            let decision = routing::decide(&input, &self.params);
            if let Some(primary) = &decision.primary {
                *snap.loads.entry(primary.clone()).or_default() += 1;
            }
            rows.push(NewDecision {
                work_item_id: item.id.clone(),
                primary_human_id: decision.primary.clone(),
                backup_ids: decision.backups.clone(),
                confidence: decision.confidence,
                explanation: decision.explanation.clone(),
                undecided_reason: decision.undecided_reason.clone(),
                ranking: serde_json::to_value(&decision.ranking).unwrap_or_default(),
                excluded: serde_json::to_value(&decision.excluded).unwrap_or_default(),
                inputs: serde_json::json!({"input": input, "params": self.params}),
                model_version: decision.model_version.to_string(),
                decided_at: now,
            });
        }
        use diesel::upsert::excluded;
        let stored: Vec<StoredDecision> = diesel::insert_into(decisions::table)
            .values(&rows)
            .on_conflict(decisions::work_item_id)
            .do_update()
            .set((
                decisions::primary_human_id.eq(excluded(decisions::primary_human_id)),
                decisions::backup_ids.eq(excluded(decisions::backup_ids)),
                decisions::confidence.eq(excluded(decisions::confidence)),
                decisions::explanation.eq(excluded(decisions::explanation)),
                decisions::undecided_reason.eq(excluded(decisions::undecided_reason)),
                decisions::ranking.eq(excluded(decisions::ranking)),
                decisions::excluded.eq(excluded(decisions::excluded)),
                decisions::inputs.eq(excluded(decisions::inputs)),
                decisions::model_version.eq(excluded(decisions::model_version)),
                decisions::decided_at.eq(excluded(decisions::decided_at)),
            ))
            .returning(StoredDecision::as_returning())
            .get_results(conn)?;
        let by_id: HashMap<&str, &StoredDecision> = stored
            .iter()
            .map(|d| (d.work_item_id.as_str(), d))
            .collect();

        let mut updated = Vec::with_capacity(items.len());
        let mut events = Vec::with_capacity(items.len());
        for (item, _) in items {
            let d = by_id[item.id.as_str()];
            let mut item = item.clone();
            item.assignee_id = d.primary_human_id.clone();
            (item.status, item.undecided_reason) = match &d.primary_human_id {
                Some(_) => ("assigned".to_string(), None),
                None => ("undecided".to_string(), d.undecided_reason.clone()),
            };
            match &d.primary_human_id {
                Some(primary) => log::info!(
                    "{} ({} {}) routed to {primary} (confidence {:.2})",
                    item.id,
                    item.service,
                    item.severity,
                    d.confidence
                ),
                None => log::warn!(
                    "{} left undecided: {}",
                    item.id,
                    item.undecided_reason.as_deref().unwrap_or("")
                ),
            }
            events.push(NewEvent {
                work_item_id: item.id.clone(),
                kind: if d.primary_human_id.is_some() {
                    "decided"
                } else {
                    "undecided"
                },
                detail: serde_json::json!({
                    "primary": d.primary_human_id,
                    "backups": d.backup_ids,
                    "confidence": d.confidence,
                    "reason": item.undecided_reason,
                }),
                occurred_at: now,
            });
            updated.push(item);
        }
        set_owners(conn, &updated)?;
        record_events(conn, &events)?;
        let assigned: Vec<&WorkItem> = updated.iter().filter(|i| i.assignee_id.is_some()).collect();
        if let Some(hook) = &self.on_assigned {
            if !assigned.is_empty() {
                hook.on_assigned(conn, &assigned)?;
            }
        }
        Ok(items
            .iter()
            .zip(updated)
            .map(|((item, _), updated)| (by_id[item.id.as_str()].clone(), updated))
            .collect())
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
        items: &[(WorkItem, &PdIncident)],
    ) -> Result<Vec<WorkItem>, String> {
        let items: Vec<(WorkItem, Vec<String>)> = items
            .iter()
            .map(|(item, incident)| (item.clone(), incident.assignee_user_ids.clone()))
            .collect();
        self.decide_items(conn, &items)
            .map(|decided| decided.into_iter().map(|(_, item)| item).collect())
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

/// Open work items per assignee (kept by a trigger on `work_items`).
pub fn open_loads(conn: &mut PgConnection) -> QueryResult<HashMap<String, u32>> {
    use crate::db::schema::open_loads;
    let rows: Vec<(String, i32)> = open_loads::table
        .filter(open_loads::open_items.gt(0))
        .select((open_loads::human_id, open_loads::open_items))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, n)| (id, u32::try_from(n).unwrap_or(0)))
        .collect())
}

/// Everything the model sees for one decision.
pub fn gather_input(
    conn: &mut PgConnection,
    item: &WorkItem,
    pd_assignees: &[String],
) -> Result<DecisionInput, DecisionError> {
    let snap = Snapshot::read(conn, std::iter::once(item))?;
    Ok(snap.input_for(item, pd_assignees))
}

/// Scope of a person's state pooled over every service.
pub const SCOPE_OVERALL: &str = "overall";
/// Scope of a person's state for one context tag.
pub const SCOPE_TAG: &str = "tag";
