//! The learner: consumes outcomes (resolved, handed off, reopened, admin override), each
//! exactly once and in the same transaction as its record, and updates what is believed about
//! each person so the very next decision sees it.

pub mod weights;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{human_states, outcomes, skill_stats, work_item_events, work_items};
use crate::decision::{tag_in_service_key, SCOPE_OVERALL, SCOPE_TAG, SCOPE_TAG_IN_SERVICE};
use crate::models::WorkItemStatus;
use crate::models::{record_event, RoutingMode, WorkItem};
use crate::routing::{self, ModelParams, OutcomeKind, SkillState};

/// An outcome as reported by Jira (or an admin).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Resolved by `resolver` (None: someone not on the roster, so nobody is credited).
    Resolved { resolver: Option<String> },
    /// Handed from `from` to `to` (None: unassigned or someone not on the roster).
    HandedOff {
        from: Option<String>,
        to: Option<String>,
    },
    /// Reopened after a resolve: poor for whoever resolved it.
    Reopened,
    /// An admin gave it to `to`: a hand-off from the current assignee. Refused on a resolved
    /// item, and past `to`'s max_active unless `force`.
    Override {
        to: String,
        reason: String,
        force: bool,
        /// Who did it (the `X-Goliath-Actor` header, else `admin`), kept in the history.
        actor: String,
    },
    /// `from` did not act on it in time and it went to the backup `to`: a missed hand-off.
    Escalated {
        from: String,
        to: String,
        deadline: DateTime<Utc>,
    },
}

#[derive(Debug, Clone)]
pub struct OutcomeEvent {
    /// Unique per reported event (a Jira webhook id, an admin request id): the dedupe key.
    pub event_id: String,
    pub work_item_id: String,
    pub outcome: Outcome,
    /// When it happened (event time, never the wall clock).
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Applied {
    /// The outcome changed the learner's beliefs and the work item.
    Applied {
        work_item_id: String,
        status: String,
        assignee_id: Option<String>,
    },
    /// This event was applied before.
    Duplicate,
    /// Nothing to learn (for example our own assignment echoed back by Jira).
    NoChange { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum LearnerError {
    #[error("no work item `{0}`")]
    UnknownWorkItem(String),
    #[error("no person `{0}` on the roster")]
    UnknownHuman(String),
    #[error("work item `{0}` is resolved: an override would reopen it and count a hand-off against whoever resolved it")]
    Resolved(String),
    #[error("{human} holds {open} open item(s), max_active {max}: send \"force\": true to assign past the cap")]
    OverCapacity { human: String, open: u32, max: u32 },
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
}

/// Outcome kinds that take work away from its owner: handed on in Jira, overridden by an admin,
/// escalated for not acting in time.
pub const HAND_OFF_KINDS: [&str; 3] = ["handed_off", "override", "escalated"];

pub struct LearnerService {
    params: ModelParams,
}

impl LearnerService {
    pub fn new(params: ModelParams) -> Self {
        LearnerService { params }
    }

    /// Applies one outcome to every state kept for the person: (service, severity), overall,
    /// and each of the work item's context tags.
    fn credit(
        &self,
        conn: &mut PgConnection,
        human: &str,
        item: &WorkItem,
        kind: &OutcomeKind,
        at: DateTime<Utc>,
    ) -> QueryResult<()> {
        self.update_states(conn, human, item, &|state| {
            routing::apply_outcome(state, kind, at, &self.params)
        })
    }

    /// After a good resolution, teaches the on-call rate: each eligible person PagerDuty had
    /// paged for the incident, and whom Goliath did not assign it to, either kept it (they
    /// resolved it) or not.
    fn learn_on_call(
        &self,
        conn: &mut PgConnection,
        item: &WorkItem,
        decision: &crate::decision::StoredDecision,
        resolver: Option<&str>,
        at: DateTime<Utc>,
    ) -> QueryResult<()> {
        let excluded: Vec<&str> = decision
            .excluded
            .as_array()
            .map(|list| list.iter().filter_map(|e| e["human_id"].as_str()).collect())
            .unwrap_or_default();
        let paged: Vec<String> = decision.inputs["input"]["candidates"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter(|c| c["on_call"].as_bool() == Some(true))
                    .filter_map(|c| c["human_id"].as_str())
                    .filter(|h| !excluded.contains(h))
                    .filter(|h| decision.primary_human_id.as_deref() != Some(*h))
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        for human in paged {
            let kept = resolver == Some(human.as_str());
            self.update_states(conn, &human, item, &|state| {
                routing::apply_on_call_outcome(state, kept, at, &self.params)
            })?;
        }
        Ok(())
    }

    /// `from` handed the item on to `to` (or, `missed`, it was escalated away from them): a
    /// hand-off for `from` (withdrawing the ownership counted when they took it over, if they
    /// had), a take-over for `to`.
    fn hand_on(
        &self,
        conn: &mut PgConnection,
        from: &str,
        to: Option<&str>,
        missed: bool,
        item: &WorkItem,
        at: DateTime<Utc>,
    ) -> QueryResult<()> {
        let taken_over_at = taken_over_at(conn, item, from)?;
        let kind = if missed {
            OutcomeKind::Missed { taken_over_at }
        } else {
            OutcomeKind::HandedOff { taken_over_at }
        };
        self.credit(conn, from, item, &kind, at)?;
        if let Some(t) = to {
            self.take_over(conn, t, item, at)?;
        }
        Ok(())
    }

    /// `human` takes the item over: owned work now, at the load they already hold.
    fn take_over(
        &self,
        conn: &mut PgConnection,
        human: &str,
        item: &WorkItem,
        at: DateTime<Utc>,
    ) -> QueryResult<()> {
        let holding = Some(open_items(conn, human)?);
        self.credit(conn, human, item, &OutcomeKind::TookOver { holding }, at)
    }

    fn update_states(
        &self,
        conn: &mut PgConnection,
        human: &str,
        item: &WorkItem,
        change: &dyn Fn(&mut SkillState),
    ) -> QueryResult<()> {
        let severity = item.severity.to_string();
        let current: Option<serde_json::Value> = skill_stats::table
            .find((&item.service, human, &severity))
            .select(skill_stats::state)
            .for_update()
            .first(conn)
            .optional()?;
        let value = updated(current, change);
        diesel::insert_into(skill_stats::table)
            .values((
                skill_stats::human_id.eq(human),
                skill_stats::service.eq(&item.service),
                skill_stats::severity.eq(&severity),
                skill_stats::state.eq(&value),
                skill_stats::updated_at.eq(Utc::now()),
            ))
            .on_conflict((
                skill_stats::service,
                skill_stats::human_id,
                skill_stats::severity,
            ))
            .do_update()
            .set((
                skill_stats::state.eq(&value),
                skill_stats::updated_at.eq(Utc::now()),
            ))
            .execute(conn)?;
        let scopes = std::iter::once((SCOPE_OVERALL, String::new()))
            .chain(item.context.iter().map(|t| (SCOPE_TAG, t.clone())))
            .chain(
                item.context
                    .iter()
                    .map(|t| (SCOPE_TAG_IN_SERVICE, tag_in_service_key(&item.service, t))),
            );
        for (scope, key) in scopes {
            let current: Option<serde_json::Value> = human_states::table
                .find((scope, &key, human))
                .select(human_states::state)
                .for_update()
                .first(conn)
                .optional()?;
            let value = updated(current, change);
            diesel::insert_into(human_states::table)
                .values((
                    human_states::human_id.eq(human),
                    human_states::scope.eq(scope),
                    human_states::key.eq(&key),
                    human_states::state.eq(&value),
                    human_states::updated_at.eq(Utc::now()),
                ))
                .on_conflict((
                    human_states::scope,
                    human_states::key,
                    human_states::human_id,
                ))
                .do_update()
                .set((
                    human_states::state.eq(&value),
                    human_states::updated_at.eq(Utc::now()),
                ))
                .execute(conn)?;
        }
        Ok(())
    }

    fn apply(
        &self,
        conn: &mut PgConnection,
        ev: &OutcomeEvent,
        item: WorkItem,
    ) -> Result<Applied, LearnerError> {
        let at = ev.occurred_at;
        // (kind, person credited or debited, new owner named, item status, item assignee,
        // seconds to resolve)
        type Effect = (
            &'static str,
            Option<String>,
            Option<String>,
            &'static str,
            Option<String>,
            Option<f64>,
        );
        // Set when the new owner is past their max_active: (person, open before, cap).
        let mut over_cap: Option<(String, u32, u32)> = None;
        // Seconds of a resolve's hold spent in waiting statuses.
        let mut waited = 0.0;
        let (kind, human, to, status, assignee, resolve_seconds): Effect = match &ev.outcome {
            Outcome::Resolved { resolver } => {
                let resolver = resolver.clone();
                if item.status == WorkItemStatus::Resolved {
                    return Ok(Applied::NoChange {
                        reason: "already resolved".into(),
                    });
                }
                let since = owned_since(conn, &item)?;
                let seconds = (at - since).num_milliseconds().max(0) as f64 / 1000.0;
                // Time the issue spent waiting on others (in a waiting status) is not theirs.
                waited = waited_seconds(conn, &item.id, since, at)?;
                let worked = (seconds - waited).max(0.0);
                // Taken over as it is resolved (Jira sends the assignee change and the
                // resolution together, or moments apart, when someone takes an issue as they
                // close it): how long they worked on it is unknown, so a hold shorter than the
                // model's shortest resolve time is no evidence of speed.
                let working_seconds = if worked >= self.params.min_seconds {
                    worked
                } else {
                    f64::NAN
                };
                let decision = crate::decision::load(conn, &item.id)?;
                if let Some(r) = &resolver {
                    // Goliath's own pick resolving it says nothing about who owns this kind
                    // of work; someone who took it over (or was given it by a person) does.
                    // In shadow mode Goliath assigned nobody, whoever resolved it.
                    let goliath_assigned = item.routing_mode != RoutingMode::Shadow
                        && decision
                            .as_ref()
                            .is_some_and(|d| d.primary_human_id.as_deref() == Some(r.as_str()))
                        && !changed_hands(conn, &item)?;
                    // Ownership was counted when they took it over, if they did.
                    let took_over = taken_over_at(conn, &item, r)?.is_some();
                    self.credit(
                        conn,
                        r,
                        &item,
                        &OutcomeKind::Resolved {
                            seconds_to_resolve: working_seconds,
                            goliath_assigned,
                            took_over,
                        },
                        at,
                    )?;
                }
                if let Some(d) = &decision {
                    self.learn_on_call(conn, &item, d, resolver.as_deref(), at)?;
                    // Was the pick right? The term weights learn from it, and whether the
                    // model or the count picked the resolver.
                    let half_life = self.params.half_life_days;
                    weights::fit_pick(conn, d, resolver.as_deref(), at, half_life)?;
                }
                let owner = resolver.clone().or_else(|| item.assignee_id.clone());
                ("resolved", resolver, None, "resolved", owner, Some(seconds))
            }
            Outcome::HandedOff { from, to } => {
                let from = from.clone();
                if from.is_some() && from == *to {
                    return Ok(Applied::NoChange {
                        reason: "assignee unchanged".into(),
                    });
                }
                if to.is_some() && item.assignee_id == *to {
                    return Ok(Applied::NoChange {
                        reason: "already assigned to the new assignee".into(),
                    });
                }
                if let Some(f) = &from {
                    self.hand_on(conn, f, to.as_deref(), false, &item, at)?;
                } else if let Some(t) = to {
                    self.take_over(conn, t, &item, at)?;
                }
                // A person may take work in Jira past their cap; Goliath cannot refuse it, so it
                // says so in the history.
                if let Some(t) = to {
                    if let Some((open, max)) = over_capacity(conn, t)? {
                        over_cap = Some((t.clone(), open, max));
                    }
                }
                ("handed_off", from, to.clone(), "assigned", to.clone(), None)
            }
            Outcome::Override { to, force, .. } => {
                let from = item.assignee_id.clone();
                if from.as_deref() == Some(to.as_str()) {
                    return Ok(Applied::NoChange {
                        reason: "already assigned to them".into(),
                    });
                }
                if item.status == WorkItemStatus::Resolved {
                    return Err(LearnerError::Resolved(item.id.clone()));
                }
                if let Some((open, max)) = over_capacity(conn, to)? {
                    if !force {
                        return Err(LearnerError::OverCapacity {
                            human: to.clone(),
                            open,
                            max,
                        });
                    }
                    over_cap = Some((to.clone(), open, max));
                }
                if let Some(f) = &from {
                    self.hand_on(conn, f, Some(to), false, &item, at)?;
                } else {
                    self.take_over(conn, to, &item, at)?;
                }
                (
                    "override",
                    from,
                    Some(to.clone()),
                    "assigned",
                    Some(to.clone()),
                    None,
                )
            }
            Outcome::Escalated { from, to, .. } => {
                if item.assignee_id.as_deref() != Some(from.as_str()) {
                    return Ok(Applied::NoChange {
                        reason: "the owner changed meanwhile".into(),
                    });
                }
                self.hand_on(conn, from, Some(to), true, &item, at)?;
                // Escalations go past caps (the item cannot wait), and say so.
                if let Some((open, max)) = over_capacity(conn, to)? {
                    over_cap = Some((to.clone(), open, max));
                }
                (
                    "escalated",
                    Some(from.clone()),
                    Some(to.clone()),
                    "assigned",
                    Some(to.clone()),
                    None,
                )
            }
            Outcome::Reopened => {
                if item.status != WorkItemStatus::Resolved {
                    return Ok(Applied::NoChange {
                        reason: "not resolved, so nothing to reopen".into(),
                    });
                }
                let resolver = item.assignee_id.clone();
                if let Some(r) = &resolver {
                    self.credit(conn, r, &item, &OutcomeKind::Reopened, at)?;
                }
                (
                    "reopened",
                    resolver.clone(),
                    None,
                    "reopened",
                    resolver,
                    None,
                )
            }
        };
        let detail = match &ev.outcome {
            Outcome::Override { reason, actor, .. } => {
                serde_json::json!({"reason": reason, "actor": actor})
            }
            Outcome::Escalated { deadline, .. } => serde_json::json!({"deadline": deadline}),
            _ => serde_json::json!({}),
        };
        diesel::insert_into(outcomes::table)
            .values((
                outcomes::event_id.eq(&ev.event_id),
                outcomes::work_item_id.eq(&item.id),
                outcomes::kind.eq(kind),
                outcomes::human_id.eq(&human),
                outcomes::to_human_id.eq(&to),
                outcomes::occurred_at.eq(at),
                outcomes::resolve_seconds.eq(resolve_seconds),
                outcomes::detail.eq(&detail),
            ))
            .execute(conn)?;
        let resolved_at = (status == "resolved").then_some(at);
        // Shadow mode compares the recommendation with the first person who took the item.
        let taken_by = if item.routing_mode == RoutingMode::Shadow {
            item.taken_by.clone().or_else(|| assignee.clone())
        } else {
            item.taken_by.clone()
        };
        // Any outcome means someone acted: a pending escalation is off (an escalation sets
        // the next one itself).
        diesel::update(work_items::table.find(&item.id))
            .set((
                work_items::status.eq(status),
                work_items::assignee_id.eq(&assignee),
                work_items::resolved_at.eq(resolved_at),
                work_items::escalate_at.eq(None::<DateTime<Utc>>),
                work_items::taken_by.eq(&taken_by),
                // Reopened work is being worked again, whatever its last status said.
                work_items::waiting.eq(item.waiting && status != "reopened"),
            ))
            .execute(conn)?;
        let mut history = serde_json::json!({"event_id": ev.event_id, "human": human, "to": to});
        if let Some(s) = resolve_seconds {
            history["seconds_to_resolve"] = s.into();
            if waited > 0.0 {
                history["seconds_waiting"] = waited.into();
            }
        }
        if let serde_json::Value::Object(extra) = detail {
            history.as_object_mut().expect("object").extend(extra);
        }
        record_event(conn, &item.id, kind, history, at)?;
        crate::metrics::metrics()
            .outcomes
            .with_label_values(&[kind])
            .inc();
        if let Some((human, open, max)) = over_cap {
            log::warn!(
                "{}: {human} now holds {} open item(s), past max_active {max}",
                item.id,
                open + 1
            );
            record_event(
                conn,
                &item.id,
                "over_capacity",
                serde_json::json!({"human": human, "open_items": open + 1, "max_active": max,
                                   "via": kind}),
                at,
            )?;
        }
        Ok(Applied::Applied {
            work_item_id: item.id,
            status: status.to_string(),
            assignee_id: assignee,
        })
    }
}

/// How many people hold more open items than their max_active (for /readyz).
pub fn humans_over_capacity(conn: &mut PgConnection) -> QueryResult<i64> {
    use diesel::sql_types::BigInt;
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM (SELECT h.id FROM humans h JOIN open_loads l ON l.human_id = h.id \
          WHERE h.max_active IS NOT NULL GROUP BY h.id, h.max_active \
         HAVING sum(l.open_items) > h.max_active) over_cap",
    )
    .get_result(conn)?;
    Ok(row.n)
}

/// How many open items `human` holds.
fn open_items(conn: &mut PgConnection, human: &str) -> QueryResult<u32> {
    use crate::db::schema::open_loads;
    // This person's slots only, not every person's load.
    let open: Option<i64> = open_loads::table
        .filter(open_loads::human_id.eq(human))
        .select(diesel::dsl::sum(open_loads::open_items))
        .first(conn)?;
    Ok(u32::try_from(open.unwrap_or(0)).unwrap_or(0))
}

/// `(open items, max_active)` when `person` is at or past their cap.
fn over_capacity(conn: &mut PgConnection, human: &str) -> QueryResult<Option<(u32, u32)>> {
    let Some(max) = crate::roster::get(conn, human)?.and_then(|h| h.max_active) else {
        return Ok(None);
    };
    let open = open_items(conn, human)?;
    let max = u32::try_from(max).unwrap_or(0);
    Ok((open >= max).then_some((open, max)))
}

/// A stored state with `change` applied (a missing or unreadable one starts empty).
fn updated(
    current: Option<serde_json::Value>,
    change: &dyn Fn(&mut SkillState),
) -> serde_json::Value {
    let mut state: SkillState = current
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    change(&mut state);
    serde_json::to_value(&state).unwrap_or_default()
}

/// True when the item changed hands after the decision (a hand-off or an admin override).
fn changed_hands(conn: &mut PgConnection, item: &WorkItem) -> QueryResult<bool> {
    let n: i64 = outcomes::table
        .filter(outcomes::work_item_id.eq(&item.id))
        .filter(outcomes::kind.eq_any(HAND_OFF_KINDS))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// When `human` took the item over (a hand-off to them), if they hold it that way: their last
/// hand-off on this item, in or out, is the one in. Ownership was counted then.
fn taken_over_at(
    conn: &mut PgConnection,
    item: &WorkItem,
    human: &str,
) -> QueryResult<Option<DateTime<Utc>>> {
    let last: Option<(Option<String>, DateTime<Utc>)> = outcomes::table
        .filter(outcomes::work_item_id.eq(&item.id))
        .filter(outcomes::kind.eq_any(HAND_OFF_KINDS))
        .filter(
            outcomes::human_id
                .eq(human)
                .or(outcomes::to_human_id.eq(human)),
        )
        .order((outcomes::occurred_at.desc(), outcomes::recorded_at.desc()))
        .select((outcomes::to_human_id, outcomes::occurred_at))
        .first(conn)
        .optional()?;
    Ok(last.and_then(|(to, at)| (to.as_deref() == Some(human)).then_some(at)))
}

/// Seconds between `since` and `until` the item spent in waiting statuses, from the status
/// changes in its history (the status before `since` counts from `since`).
fn waited_seconds(
    conn: &mut PgConnection,
    item: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> QueryResult<f64> {
    let changes: Vec<(serde_json::Value, DateTime<Utc>)> = work_item_events::table
        .filter(work_item_events::work_item_id.eq(item))
        .filter(work_item_events::kind.eq(crate::models::STATUS_CHANGED))
        .filter(work_item_events::occurred_at.le(until))
        .order((work_item_events::occurred_at, work_item_events::id))
        .select((work_item_events::detail, work_item_events::occurred_at))
        .load(conn)?;
    let changes: Vec<(DateTime<Utc>, bool)> = changes
        .into_iter()
        .map(|(detail, at)| (at, detail["waiting"].as_bool() == Some(true)))
        .collect();
    Ok(seconds_waiting(&changes, since, until))
}

/// Seconds between `since` and `until` spent waiting, given the status changes in time order
/// as (when, whether the new status is a waiting one): each lasts until the next change.
pub fn seconds_waiting(
    changes: &[(DateTime<Utc>, bool)],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> f64 {
    let mut waited = 0.0;
    for (k, &(from, waiting)) in changes.iter().enumerate() {
        if !waiting {
            continue;
        }
        let to = changes.get(k + 1).map_or(until, |(next, _)| *next);
        let (a, b) = (from.max(since), to.min(until));
        if b > a {
            waited += (b - a).num_milliseconds() as f64 / 1000.0;
        }
    }
    waited
}

/// When the current assignee got the item: their last hand-off in, else the incident's time.
fn owned_since(conn: &mut PgConnection, item: &WorkItem) -> QueryResult<DateTime<Utc>> {
    let last_handoff: Option<DateTime<Utc>> = outcomes::table
        .filter(outcomes::work_item_id.eq(&item.id))
        .filter(outcomes::kind.eq_any(HAND_OFF_KINDS.iter().chain(&["reopened"])))
        .select(diesel::dsl::max(outcomes::occurred_at))
        .first(conn)?;
    Ok(last_handoff.map_or(item.created_at, |t| t.max(item.created_at)))
}

/// What the Jira and PagerDuty intakes and the admin routes call.
impl LearnerService {
    /// Applies one outcome, once (a redelivered event answers `Duplicate`).
    pub fn record(
        &self,
        conn: &mut PgConnection,
        ev: &OutcomeEvent,
    ) -> Result<Applied, LearnerError> {
        conn.transaction(|conn| {
            crate::decision::lock_assignments(conn)?;
            let seen: Option<String> = outcomes::table
                .find(&ev.event_id)
                .select(outcomes::event_id)
                .first(conn)
                .optional()?;
            if seen.is_some() {
                return Ok(Applied::Duplicate);
            }
            let item: WorkItem = work_items::table
                .find(&ev.work_item_id)
                .select(WorkItem::as_select())
                .for_update()
                .first(conn)
                .optional()?
                .ok_or_else(|| LearnerError::UnknownWorkItem(ev.work_item_id.clone()))?;
            if let Outcome::Override { to, .. } = &ev.outcome {
                if crate::roster::get(conn, to)?.is_none() {
                    return Err(LearnerError::UnknownHuman(to.clone()));
                }
            }
            // A twin delivery of the same event may have been applied while we waited for the lock.
            let seen: i64 = outcomes::table
                .filter(outcomes::event_id.eq(&ev.event_id))
                .count()
                .get_result(conn)?;
            if seen > 0 {
                return Ok(Applied::Duplicate);
            }
            self.apply(conn, ev, item)
        })
    }
}

/// A work item's history, oldest first.
pub fn history(
    conn: &mut PgConnection,
    item: &crate::models::WorkItem,
) -> QueryResult<Vec<crate::models::WorkItemEvent>> {
    let stored = work_item_events::table
        .filter(work_item_events::work_item_id.eq(&item.id))
        .order(work_item_events::id)
        .select(crate::models::WorkItemEvent::as_select())
        .load(conn)?;
    Ok(received_line(item).into_iter().chain(stored).collect())
}

/// The first line of a PagerDuty work item's history. It is read from the delivery the item
/// was made from, kept as its raw payload, rather than stored a second time with every
/// incident taken in.
fn received_line(item: &crate::models::WorkItem) -> Option<crate::models::WorkItemEvent> {
    let incident_id = item.pagerduty_incident_id.as_ref()?;
    let event = &item.raw_payload["event"];
    let occurred_at = event["occurred_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(item.received_at, |t| t.with_timezone(&chrono::Utc));
    Some(crate::models::WorkItemEvent {
        id: 0,
        work_item_id: item.id.clone(),
        kind: "received".into(),
        detail: serde_json::json!({
            "source": "pagerduty",
            "event_type": event["event_type"],
            "event_id": event["id"],
            "incident_id": incident_id,
            "incident_url": event["data"]["html_url"],
        }),
        occurred_at,
    })
}

/// What the learner believes about each person, per service and severity, for admin.
pub fn beliefs(
    conn: &mut PgConnection,
    service: Option<&str>,
    params: &ModelParams,
) -> QueryResult<Vec<serde_json::Value>> {
    let mut query = skill_stats::table
        .select((
            skill_stats::human_id,
            skill_stats::service,
            skill_stats::severity,
            skill_stats::state,
            skill_stats::updated_at,
        ))
        .order((
            skill_stats::service,
            skill_stats::human_id,
            skill_stats::severity,
        ))
        .into_boxed();
    if let Some(s) = service {
        query = query.filter(skill_stats::service.eq(s.to_string()));
    }
    let rows: Vec<(String, String, String, serde_json::Value, DateTime<Utc>)> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(human, service, severity, state, updated)| {
            let summary = serde_json::from_value::<SkillState>(state.clone())
                .ok()
                .map(|s| summarize(&s, params));
            serde_json::json!({
                "human_id": human, "service": service, "severity": severity,
                "summary": summary, "state": state, "updated_at": updated,
            })
        })
        .collect())
}

/// How shadow mode's recommendations compare with what people did: of the shadow items (of one
/// service, if given), how often the recommended person was the one who first took the item,
/// and the one who resolved it (and whether the resolver was among the top three named).
pub fn shadow_agreement(
    conn: &mut PgConnection,
    service: Option<&str>,
) -> QueryResult<serde_json::Value> {
    use diesel::sql_types::{BigInt, Nullable, Text};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        items: i64,
        #[diesel(sql_type = BigInt)]
        recommended: i64,
        #[diesel(sql_type = BigInt)]
        taken: i64,
        #[diesel(sql_type = BigInt)]
        taken_as_recommended: i64,
        #[diesel(sql_type = BigInt)]
        resolved: i64,
        #[diesel(sql_type = BigInt)]
        resolved_as_recommended: i64,
        #[diesel(sql_type = BigInt)]
        resolved_in_top3: i64,
    }
    let row: Row = diesel::sql_query(
        "SELECT count(*) AS items, count(d.primary_human_id) AS recommended, \
                count(w.taken_by) AS taken, \
                count(*) FILTER (WHERE w.taken_by = d.primary_human_id) AS taken_as_recommended, \
                count(r.human_id) AS resolved, \
                count(*) FILTER (WHERE r.human_id = d.primary_human_id) AS resolved_as_recommended, \
                count(*) FILTER (WHERE r.human_id = d.primary_human_id \
                                    OR r.human_id = ANY (d.backup_ids[1:2])) AS resolved_in_top3 \
           FROM work_items w \
           LEFT JOIN decisions d ON d.work_item_id = w.id \
           LEFT JOIN LATERAL (SELECT o.human_id FROM outcomes o \
                               WHERE o.work_item_id = w.id AND o.kind = 'resolved' \
                                 AND o.human_id IS NOT NULL \
                               ORDER BY o.occurred_at DESC LIMIT 1) r ON true \
          WHERE w.routing_mode = 'shadow' AND ($1::text IS NULL OR w.service = $1)",
    )
    .bind::<Nullable<Text>, _>(service)
    .get_result(conn)?;
    let rate = |n: i64, of: i64| (of > 0).then(|| n as f64 / of as f64);
    Ok(serde_json::json!({
        "items": row.items,
        "recommended": row.recommended,
        "taken": row.taken,
        "taken_as_recommended": row.taken_as_recommended,
        "took_agreement": rate(row.taken_as_recommended, row.taken),
        "resolved": row.resolved,
        "resolved_as_recommended": row.resolved_as_recommended,
        "resolved_agreement": rate(row.resolved_as_recommended, row.resolved),
        "resolved_in_top3": row.resolved_in_top3,
        "resolved_top3_agreement": rate(row.resolved_in_top3, row.resolved),
    }))
}

/// A readable digest of a state: decayed evidence, success rate, median time to resolve.
fn summarize(state: &SkillState, _params: &ModelParams) -> serde_json::Value {
    let evidence = state.successes + state.failures;
    let median_minutes =
        (state.time_weight > 0.0).then(|| (state.log_time_sum / state.time_weight).exp() / 60.0);
    serde_json::json!({
        "evidence": evidence,
        "successes": state.successes,
        "failures": state.failures,
        "success_rate": (evidence > 0.0).then(|| state.successes / evidence),
        "median_minutes_to_resolve": median_minutes,
        "as_of": state.updated_at,
    })
}
