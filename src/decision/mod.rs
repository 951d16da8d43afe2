//! The decision engine's database side: gathers what a decision needs (roster, loads, learned
//! skill), runs the pure model in `routing`, and stores the result with everything needed to
//! explain and replay it. The Jira job is queued in the same transaction.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use diesel::prelude::*;
use serde::Serialize;

use crate::batch::{DecisionRow, RowBatch};
use crate::config::{EscalationPolicy, FallbackOwners, OnCallRule, PagerDutyConfig, RoutingModes};
use crate::db::json::JsonText;
use crate::db::schema::{decisions, work_items};
use crate::models::{NewEvent, RoutingMode, WorkItem, WorkItemStatus};
use crate::outbox::Outbox;
use crate::pagerduty::OnCallCache;
use crate::routing::{self, DecisionInput, ModelParams};

pub use crate::db::lock_assignments;

mod audit;
pub mod backlog;
mod snapshot;
use snapshot::{Snapshot, SnapshotCache};

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

impl StoredDecision {
    /// The input, ranking and exclusions in their named form, and the inputs with the model
    /// parameters they name (see [`audit`] for how they are stored).
    fn expanded(mut self, conn: &mut PgConnection) -> QueryResult<StoredDecision> {
        self.ranking = audit::expand_ranking(std::mem::take(&mut self.ranking));
        self.excluded = audit::expand_excluded(std::mem::take(&mut self.excluded));
        self.inputs = audit::expand_inputs(std::mem::take(&mut self.inputs));
        let named = self.inputs.get("params_id").and_then(|v| v.as_str());
        if let (Some(id), None) = (named, self.inputs.get("params")) {
            if let Some(params) = stored_params(conn, id)? {
                self.inputs["params"] = params;
            }
        }
        Ok(self)
    }
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

/// What a staged batch decided, counted in the metrics only once it is written: a batch that is
/// refused and decided again, or an incident that turns out to have an item already, decided
/// nothing anyone sees.
#[derive(Debug, Default)]
pub struct Decided {
    /// (work item, outcome label of `goliath_decisions_total`).
    outcomes: Vec<(String, &'static str)>,
    /// (work item, confidence) of the decisions that named someone.
    confidences: Vec<(String, f64)>,
    /// (work item, level, line): who got it, logged once written.
    log: Vec<(String, log::Level, String)>,
}

impl Decided {
    /// Counts (and logs) the decisions of the items `written` says were written.
    pub fn count(&self, written: impl Fn(&str) -> bool) {
        for (_, level, line) in self.log.iter().filter(|(id, _, _)| written(id)) {
            log::log!(*level, "{line}");
        }
        let m = crate::metrics::metrics();
        for (_, outcome) in self.outcomes.iter().filter(|(id, _)| written(id)) {
            m.decisions.with_label_values(&[outcome]).inc();
        }
        for (_, c) in self.confidences.iter().filter(|(id, _)| written(id)) {
            m.decision_confidence.observe(*c);
        }
    }
}

/// Decisions made and not yet written: what [`DecisionService::stage`] adds to a batch, which
/// is written once the work items exist.
pub struct Planned {
    rows: Vec<DecisionRow>,
    events: Vec<NewEvent>,
    /// Work items given an owner, whose Jira work follows.
    assigned: Vec<String>,
    /// Shadow items whose Jira issue is made unassigned, with the recommendation's text.
    recommended: Vec<(String, String)>,
    /// Owners given work who have a max_active, checked against it on write.
    limited: Vec<String>,
    /// For the intake: the change counters the inputs were as of, checked on write.
    inputs_as_of: Option<String>,
    /// (work item, level, line) to log once the decision is written.
    log: Vec<(String, log::Level, String)>,
}

/// The escalation policies of the open work items (at most 500, the most recent first): the
/// on-call lists worth reading right after a start.
pub fn open_escalation_policies(conn: &mut PgConnection) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Policy {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    let rows: Vec<Policy> = diesel::sql_query(
        "SELECT p.id FROM (SELECT raw_payload #>> '{event,data,escalation_policy,id}' AS id, \
                max(received_at) AS last FROM work_items \
          WHERE status IN ('unassigned', 'assigned', 'reopened', 'open') \
          GROUP BY 1) p WHERE p.id IS NOT NULL ORDER BY p.last DESC LIMIT 500",
    )
    .load(conn)?;
    Ok(rows.into_iter().map(|p| p.id).collect())
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
    let deadlines: Vec<Option<chrono::DateTime<Utc>>> =
        items.iter().map(|i| i.escalate_at).collect();
    diesel::sql_query(
        "UPDATE work_items w SET assignee_id = u.owner, status = u.status, undecided_reason = u.reason, \
                escalate_at = u.escalate_at \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) \
              AS u(id, owner, status, reason, escalate_at) \
         WHERE w.id = u.id",
    )
    .bind::<Array<Text>, _>(ids)
    .bind::<Array<Nullable<Text>>, _>(owners)
    .bind::<Array<Text>, _>(statuses)
    .bind::<Array<Nullable<Text>>, _>(reasons)
    .bind::<Array<Nullable<diesel::sql_types::Timestamptz>>, _>(deadlines)
    .execute(conn)
    .map(|_| ())
}

pub struct DecisionService {
    params: ModelParams,
    /// `params` as stored once in `model_params`, with its id, which each decision names.
    params_set: (String, JsonText),
    /// Queues the Jira (and PagerDuty) work of each decision, in its transaction.
    outbox: Option<Arc<Outbox>>,
    /// The roster and learned state between batches, while unchanged.
    snapshots: SnapshotCache,
    /// Who takes an item nobody is eligible for.
    fallback: FallbackOwners,
    /// How long a new owner has to act before the item escalates.
    escalation: EscalationPolicy,
    /// Assign or only recommend, per service.
    modes: RoutingModes,
    /// How on-call counts, per service.
    pagerduty: PagerDutyConfig,
    /// Who is on call per escalation policy, when PagerDuty's API is configured.
    on_call_cache: Option<Arc<OnCallCache>>,
}

/// Who counts as on call for an item: PagerDuty user ids, and a caveat when the list may be
/// out of date.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OnCall {
    pub users: Vec<String>,
    pub caveat: Option<String>,
}

impl DecisionService {
    pub fn new(params: ModelParams, outbox: Option<Arc<Outbox>>) -> Self {
        DecisionService {
            params_set: audit::params_set(&params),
            params,
            outbox,
            snapshots: SnapshotCache::default(),
            fallback: FallbackOwners::default(),
            escalation: EscalationPolicy::off(),
            modes: RoutingModes::default(),
            pagerduty: PagerDutyConfig::default(),
            on_call_cache: None,
        }
    }

    /// How on-call counts per service, and where the on-call lists come from.
    pub fn with_on_call(
        mut self,
        pagerduty: PagerDutyConfig,
        cache: Option<Arc<OnCallCache>>,
    ) -> Self {
        self.pagerduty = pagerduty;
        self.on_call_cache = cache;
        self
    }

    /// Who is on call for an incident: the people it paged, and the on-call people of its
    /// escalation policy when PagerDuty's API is configured (as last known; never waited for).
    pub fn on_call(&self, paged: &[String], policy: Option<&str>) -> OnCall {
        let mut users = paged.to_vec();
        let mut caveat = None;
        if let (Some(cache), Some(policy)) = (&self.on_call_cache, policy) {
            let view = cache.lookup(policy);
            users.extend(view.users);
            caveat = view.caveat;
        }
        users.sort();
        users.dedup();
        OnCall { users, caveat }
    }

    /// Moves whenever an on-call list changed (0 without PagerDuty's API): waiting items are
    /// decided again when it does.
    pub fn on_call_generation(&self) -> u64 {
        self.on_call_cache.as_ref().map_or(0, |c| c.generation())
    }

    /// [`Self::on_call`] for a stored item.
    pub fn on_call_of(&self, item: &WorkItem) -> OnCall {
        let policy = item.raw_payload["event"]["data"]["escalation_policy"]["id"].as_str();
        self.on_call(&paged(item), policy)
    }

    /// Services in shadow mode get a recommendation and no owner.
    pub fn with_modes(mut self, modes: RoutingModes) -> Self {
        self.modes = modes;
        self
    }

    /// Items given an owner escalate when the owner has not acted by their deadline.
    pub fn with_escalation(mut self, escalation: EscalationPolicy) -> Self {
        self.escalation = escalation;
        self
    }

    /// Items nobody is eligible for go to these people (when on the roster and active).
    pub fn with_fallback(mut self, fallback: FallbackOwners) -> Self {
        self.fallback = fallback;
        self
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
                // Decided with an owner, or given to the fallback owner: kept.
                if existing.primary_human_id.is_some() || item.assignee_id.is_some() {
                    return Ok(existing);
                }
            }
            let on_call = self.on_call_of(&item);
            let mut decided = self.decide_items(conn, &[(item, on_call)])?;
            Ok(decided.remove(0).0)
        })
    }

    /// Decides for existing work items in order, inside the caller's transaction, and writes
    /// every decision, owner, history line and Jira job with one statement each.
    pub fn decide_items(
        &self,
        conn: &mut PgConnection,
        items: &[(WorkItem, OnCall)],
    ) -> Result<Vec<(StoredDecision, WorkItem)>, DecisionError> {
        if items.is_empty() {
            return Ok(vec![]);
        }
        lock_assignments(conn)?;
        let (mut decided, on_call): (Vec<WorkItem>, Vec<OnCall>) = items.iter().cloned().unzip();
        let planned = self.plan(conn, &mut decided, &on_call, false)?;
        set_owners(conn, &decided)?;
        let mut batch = RowBatch::new();
        let counted = self.stage(planned, &mut batch);
        batch.insert(conn)?;
        counted.count(|_| true);
        let ids: Vec<&str> = decided.iter().map(|i| i.id.as_str()).collect();
        let mut stored: HashMap<String, StoredDecision> = decisions::table
            .filter(decisions::work_item_id.eq_any(&ids))
            .select(StoredDecision::as_select())
            .load::<StoredDecision>(conn)?
            .into_iter()
            .map(|d| Ok((d.work_item_id.clone(), d.expanded(conn)?)))
            .collect::<QueryResult<_>>()?;
        decided
            .into_iter()
            .map(|item| {
                let d = stored
                    .remove(&item.id)
                    .ok_or(DecisionError::Db(diesel::result::Error::NotFound))?;
                Ok((d, item))
            })
            .collect()
    }

    /// Decides for work items in order without writing anything: reads the roster, loads and
    /// learned state once, counts each assignment against the next item's loads, and sets each
    /// item's owner, status and undecided reason. The caller holds [`lock_assignments`] (so the
    /// loads it read stay true) or, for new work items, writes them holding the same lock
    /// shared (a batch that went past someone's capacity meanwhile is refused and retried).
    /// `for_intake` uses the loads kept from earlier batches, and has the write check that
    /// nothing else changed them since (see [`snapshot`]).
    pub fn plan(
        &self,
        conn: &mut PgConnection,
        items: &mut [WorkItem],
        on_call: &[OnCall],
        for_intake: bool,
    ) -> Result<Planned, DecisionError> {
        let (mut snap, as_of) = self.snapshots.read(conn, items.iter(), for_intake)?;
        let now = Utc::now();
        let params_id = &self.params_set.0;
        let mut planned = Planned {
            rows: Vec::with_capacity(items.len()),
            events: Vec::with_capacity(items.len()),
            assigned: vec![],
            recommended: vec![],
            limited: vec![],
            inputs_as_of: as_of.filter(|_| for_intake),
            log: Vec::with_capacity(items.len()),
        };
        for (i, item) in items.iter_mut().enumerate() {
            let rule = self.pagerduty.on_call_rule(&item.service);
            let known = on_call.get(i).cloned().unwrap_or_default();
            let paged: &[String] = match rule {
                OnCallRule::Ignored => &[],
                _ => &known.users,
            };
            let mode = self.modes.for_service(&item.service);
            item.routing_mode = mode;
            let mut input = snap.input_for(item, paged);
            input.on_call_required = rule == OnCallRule::Required;
            let mut decision = routing::decide(&input, &self.params);
            if let (Some(caveat), false) = (&known.caveat, rule == OnCallRule::Ignored) {
                decision.explanation = format!(
                    "{} Decided on the last known on-call data: {caveat}.",
                    decision.explanation.trim_end()
                );
            }
            if mode == RoutingMode::Shadow {
                self.recommend(item, &decision, now, &mut planned);
            } else {
                self.assign(item, &input, &mut decision, &mut snap, now, &mut planned);
            }
            // The audit is printed straight to text: it is the largest thing written per
            // incident, and building a JSON tree first would double the work.
            let input = audit::input_text(&input);
            planned.rows.push(DecisionRow {
                work_item_id: item.id.clone(),
                primary_human_id: decision.primary,
                backup_ids: decision.backups,
                confidence: decision.confidence,
                explanation: decision.explanation,
                undecided_reason: decision.undecided_reason,
                ranking: audit::ranking_text(&decision.ranking),
                excluded: audit::excluded_text(&decision.excluded),
                inputs: JsonText(format!(r#"{{"input":{input},"params_id":"{params_id}"}}"#)),
                model_version: decision.model_version,
                decided_at: now,
            });
        }
        Ok(planned)
    }

    /// Assign mode: the decision's pick (else the fallback owner) owns the item.
    fn assign(
        &self,
        item: &mut WorkItem,
        input: &DecisionInput,
        decision: &mut routing::Decision,
        snap: &mut Snapshot,
        now: chrono::DateTime<Utc>,
        planned: &mut Planned,
    ) {
        if let Some(primary) = &decision.primary {
            let capped = input
                .candidates
                .iter()
                .any(|c| &c.human_id == primary && c.max_active.is_some());
            if capped && !planned.limited.contains(primary) {
                planned.limited.push(primary.clone());
            }
        }
        // Nobody eligible: the fallback owner takes it, past any cap (the last resort), and
        // the decision stays the model's so that replay still matches it.
        let fallback = match &decision.primary {
            Some(_) => None,
            None => self
                .fallback
                .for_service(&item.service)
                .filter(|f| snap.is_active(f))
                .map(String::from),
        };
        let owner = decision.primary.clone().or_else(|| fallback.clone());
        if let Some(owner) = &owner {
            *snap.loads.entry(owner.clone()).or_default() += 1;
        }
        if let Some(f) = &fallback {
            decision.explanation = format!(
                "{} Given to the fallback owner {f}.",
                decision.explanation.trim_end()
            );
        }
        item.assignee_id = owner.clone();
        item.escalate_at = owner
            .as_ref()
            .and_then(|_| self.escalation.deadline(item.severity))
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| now + d);
        let status = if owner.is_some() {
            WorkItemStatus::Assigned
        } else {
            WorkItemStatus::Unassigned
        };
        item.status = status;
        item.undecided_reason = match &decision.primary {
            Some(_) => None,
            None => decision.undecided_reason.clone(),
        };
        let line = match (&decision.primary, &fallback) {
            (Some(primary), _) => (
                log::Level::Info,
                format!(
                    "{} ({} {}) routed to {primary} (confidence {:.2})",
                    item.id, item.service, item.severity, decision.confidence
                ),
            ),
            (None, Some(f)) => (
                log::Level::Warn,
                format!(
                    "{} given to the fallback owner {f}: {}",
                    item.id,
                    item.undecided_reason.as_deref().unwrap_or("")
                ),
            ),
            (None, None) => (
                log::Level::Warn,
                format!(
                    "{} left unassigned: {}",
                    item.id,
                    item.undecided_reason.as_deref().unwrap_or("")
                ),
            ),
        };
        planned.log.push((item.id.clone(), line.0, line.1));
        planned.events.push(NewEvent {
            work_item_id: item.id.clone(),
            kind: match (&decision.primary, &fallback) {
                (Some(_), _) => "decided",
                (None, Some(_)) => "fallback",
                (None, None) => "unassigned",
            },
            detail: serde_json::json!({
                "primary": decision.primary,
                "backups": decision.backups,
                "confidence": decision.confidence,
                "reason": item.undecided_reason,
                "fallback": fallback,
            }),
            occurred_at: now,
        });
        if owner.is_some() {
            planned.assigned.push(item.id.clone());
        }
    }

    /// Shadow mode: the decision is recorded as a recommendation and nobody is assigned; the
    /// item stays open for people to route themselves.
    fn recommend(
        &self,
        item: &mut WorkItem,
        decision: &routing::Decision,
        now: chrono::DateTime<Utc>,
        planned: &mut Planned,
    ) {
        item.assignee_id = None;
        item.escalate_at = None;
        item.status = WorkItemStatus::Open;
        item.undecided_reason = decision.undecided_reason.clone();
        let line = format!(
            "{} ({} {}) shadow: recommends {}",
            item.id,
            item.service,
            item.severity,
            decision.primary.as_deref().unwrap_or("nobody")
        );
        planned.log.push((item.id.clone(), log::Level::Info, line));
        planned.events.push(NewEvent {
            work_item_id: item.id.clone(),
            kind: "recommended",
            detail: serde_json::json!({
                "primary": decision.primary,
                "backups": decision.backups,
                "confidence": decision.confidence,
                "reason": item.undecided_reason,
            }),
            occurred_at: now,
        });
        if self.modes.shadow_jira {
            let text = match &decision.primary {
                Some(p) => {
                    let backups = if decision.backups.is_empty() {
                        String::new()
                    } else {
                        format!(" (then {})", decision.backups.join(", "))
                    };
                    format!(
                        "Goliath (shadow mode) recommends {p}{backups}; nobody was assigned.\n{}",
                        decision.explanation
                    )
                }
                None => format!(
                    "Goliath (shadow mode) found nobody to recommend: {}",
                    decision
                        .undecided_reason
                        .as_deref()
                        .unwrap_or("no eligible person")
                ),
            };
            planned.recommended.push((item.id.clone(), text));
        }
    }

    /// Adds planned decisions, their history lines and the Jira jobs of the assigned items to
    /// `batch`, which the caller writes once the work items exist.
    pub fn stage(&self, mut planned: Planned, batch: &mut RowBatch) -> Decided {
        let mut decided = Decided {
            log: std::mem::take(&mut planned.log),
            ..Decided::default()
        };
        for event in &planned.events {
            let outcome = match event.kind {
                "decided" => "assigned",
                other => other,
            };
            decided.outcomes.push((event.work_item_id.clone(), outcome));
        }
        for row in planned.rows.iter().filter(|r| r.primary_human_id.is_some()) {
            decided
                .confidences
                .push((row.work_item_id.clone(), row.confidence));
        }
        for human in &planned.limited {
            batch.check_capacity_of(human);
        }
        if let Some(as_of) = planned.inputs_as_of {
            batch.expect_inputs(as_of);
        }
        for event in &planned.events {
            batch.push_event(
                &event.work_item_id,
                event.kind,
                &event.detail,
                event.occurred_at,
            );
        }
        if let Some(outbox) = &self.outbox {
            for job in outbox.jobs_for(&planned.assigned) {
                batch.push_job(job);
            }
            for (id, text) in &planned.recommended {
                for job in outbox.recommendation_jobs(id, text) {
                    batch.push_job(job);
                }
            }
        }
        if !planned.rows.is_empty() {
            let (id, params) = &self.params_set;
            batch.record_params(id.clone(), params.clone());
        }
        for row in planned.rows {
            batch.push_decision(row);
        }
        decided
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
        if stored.model_version != routing::MODEL_VERSION {
            differences.push(format!(
                "decided by model {}, replayed with {}",
                stored.model_version,
                routing::MODEL_VERSION
            ));
        }
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

/// Who PagerDuty paged for a new incident, as the intake hands it to [`DecisionService::route`].
pub struct Paged<'a> {
    /// PagerDuty user ids the incident is assigned to.
    pub user_ids: &'a [String],
    /// The incident's escalation policy, for the on-call schedule.
    pub escalation_policy_id: Option<&'a str>,
}

/// What the intake calls for the new work items of a batch before they are written (so each
/// is written once, with its owner).
impl DecisionService {
    /// Sets each item's owner, status and reason and adds what follows from them to `batch`,
    /// which the intake writes with the items (holding [`crate::db::lock_assignments`]'s lock
    /// shared; a batch that took someone past capacity meanwhile is refused and run again).
    pub fn route(
        &self,
        conn: &mut PgConnection,
        items: &mut [WorkItem],
        paged: &[Paged<'_>],
        batch: &mut RowBatch,
    ) -> Result<Decided, DecisionError> {
        let on_call: Vec<OnCall> = paged
            .iter()
            .map(|p| self.on_call(p.user_ids, p.escalation_policy_id))
            .collect();
        let planned = self.plan(conn, items, &on_call, true)?;
        Ok(self.stage(planned, batch))
    }

    /// `batch` was written; `totals` are the open loads of the people it assigned, after it.
    pub fn written(&self, batch: &RowBatch, totals: &[(String, i64)]) {
        if let Some(as_of) = batch.expected_inputs() {
            self.snapshots.merge_loads(as_of, totals);
        }
    }

    /// Writing a batch failed, or it was refused because what it was decided on changed
    /// meanwhile (it is decided again).
    pub fn write_failed(&self) {
        self.snapshots.forget_loads();
    }
}

pub fn load(conn: &mut PgConnection, work_item_id: &str) -> QueryResult<Option<StoredDecision>> {
    decisions::table
        .find(work_item_id)
        .select(StoredDecision::as_select())
        .first(conn)
        .optional()?
        .map(|d| d.expanded(conn))
        .transpose()
}

/// A stored model parameter set. Sets never change under their id (it is their hash), so each
/// is read from the database once per process.
fn stored_params(conn: &mut PgConnection, id: &str) -> QueryResult<Option<serde_json::Value>> {
    use crate::db::schema::model_params;
    use std::sync::{Mutex, OnceLock};
    static READ: OnceLock<Mutex<HashMap<String, serde_json::Value>>> = OnceLock::new();
    let read = READ.get_or_init(Mutex::default);
    if let Some(params) = read.lock().ok().and_then(|m| m.get(id).cloned()) {
        return Ok(Some(params));
    }
    let params: Option<serde_json::Value> = model_params::table
        .find(id)
        .select(model_params::params)
        .first(conn)
        .optional()?;
    if let (Some(p), Ok(mut m)) = (&params, read.lock()) {
        m.insert(id.to_string(), p.clone());
    }
    Ok(params)
}

/// PagerDuty user ids paged for the item: as the latest update reported them, else as the
/// delivery that made it did.
pub fn paged(item: &WorkItem) -> Vec<String> {
    if item.pagerduty_event_at.is_some() {
        return item.pagerduty_assignees.clone();
    }
    item.raw_payload["event"]["data"]["assignees"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|a| a["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Open work items per assignee (kept by triggers on `work_items`, spread over slots).
pub fn open_loads(conn: &mut PgConnection) -> QueryResult<HashMap<String, u32>> {
    use crate::db::schema::open_loads;
    use diesel::dsl::sum;
    let rows: Vec<(String, Option<i64>)> = open_loads::table
        .group_by(open_loads::human_id)
        .select((open_loads::human_id, sum(open_loads::open_items)))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, n)| Some((id, u32::try_from(n?).ok().filter(|n| *n > 0)?)))
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
/// Scope of the part of a person's state for a context tag on one service's incidents, keyed
/// by [`tag_in_service_key`].
pub const SCOPE_TAG_IN_SERVICE: &str = "tag_in_service";

/// The key of a [`SCOPE_TAG_IN_SERVICE`] state: `["<service>","<tag>"]`. Tags never start
/// with `[` (they are `team:`, `policy:` or `type:` names), so the snapshot tells the two
/// kinds of key apart by their shape.
pub fn tag_in_service_key(service: &str, tag: &str) -> String {
    serde_json::json!([service, tag]).to_string()
}

/// The (service, tag) of a [`tag_in_service_key`], or `None` for a plain tag.
pub fn parse_tag_in_service_key(key: &str) -> Option<(String, String)> {
    if !key.starts_with('[') {
        return None;
    }
    serde_json::from_str::<(String, String)>(key).ok()
}
