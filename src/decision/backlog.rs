//! No incident left behind: work items nobody could take wait as `unassigned` and are decided
//! again as soon as someone may have become eligible. That can only happen when the roster or
//! learned state changes (a person added, activated, given a service) or a load goes down (an
//! item resolved or handed on), or an on-call list changes: the database's change counters
//! (`decision_inputs_version`) and the on-call cache's generation say when, so a quiet system
//! costs one small read per tick.

use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::db::schema::work_items;
use crate::db::PgPool;
use crate::models::{WorkItem, WorkItemStatus};

use super::{lock_assignments, DecisionError, DecisionService, OnCall};

/// Unassigned items looked at per transaction, oldest first.
const SWEEP_CHUNK: i64 = 200;

/// Where a sweep has got to: the last item looked at, in `(received_at, id)` order.
pub type SweepKey = (chrono::DateTime<chrono::Utc>, String);

/// What one chunk of a sweep did.
pub struct Swept {
    /// Items now assigned.
    pub assigned: Vec<String>,
    /// Where the next chunk starts; None when this was the last.
    pub next: Option<SweepKey>,
}

/// Decides again the oldest unassigned items after `after` (up to [`SWEEP_CHUNK`]) and assigns
/// those someone can now take. Items still nobody's are left as they are, with no new history
/// line, so a sweep that finds no one writes nothing.
pub fn decide_waiting(
    decision: &DecisionService,
    conn: &mut PgConnection,
    after: Option<&SweepKey>,
) -> Result<Swept, DecisionError> {
    conn.transaction(|conn| {
        lock_assignments(conn)?;
        // From the start: every stored item was received after the epoch.
        let (at, id) = after
            .cloned()
            .unwrap_or((chrono::DateTime::UNIX_EPOCH, String::new()));
        let waiting: Vec<WorkItem> = work_items::table
            .filter(work_items::status.eq(WorkItemStatus::Unassigned.as_str()))
            .filter(
                work_items::received_at
                    .gt(at)
                    .or(work_items::received_at.eq(at).and(work_items::id.gt(id))),
            )
            .order((work_items::received_at, work_items::id))
            .limit(SWEEP_CHUNK)
            .select(WorkItem::as_select())
            .for_update()
            .skip_locked()
            .load(conn)?;
        let next = (waiting.len() as i64 == SWEEP_CHUNK)
            .then(|| waiting.last().map(|w| (w.received_at, w.id.clone())))
            .flatten();
        if waiting.is_empty() {
            return Ok(Swept {
                assigned: vec![],
                next,
            });
        }
        let on_call: Vec<OnCall> = waiting.iter().map(|w| decision.on_call_of(w)).collect();
        // A trial that writes nothing: which of them would someone take now? Items left
        // unassigned add no load, so deciding only the taken ones, in the same order, gives
        // each the same owner.
        let mut trial = waiting.clone();
        decision.plan(conn, &mut trial, &on_call, false)?;
        let taken: Vec<(WorkItem, OnCall)> = waiting
            .into_iter()
            .zip(on_call)
            .zip(&trial)
            .filter(|(_, t)| t.assignee_id.is_some())
            .map(|(pair, _)| pair)
            .collect();
        if taken.is_empty() {
            return Ok(Swept {
                assigned: vec![],
                next,
            });
        }
        let decided = decision.decide_items(conn, &taken)?;
        Ok(Swept {
            assigned: decided.into_iter().map(|(_, item)| item.id).collect(),
            next,
        })
    })
}

/// How many work items wait unassigned (read through the status index).
pub fn count_waiting(conn: &mut PgConnection) -> QueryResult<i64> {
    work_items::table
        .filter(work_items::status.eq(WorkItemStatus::Unassigned.as_str()))
        .count()
        .get_result(conn)
}

/// The change counters, as one text; empty when the table is missing its row.
fn inputs_version(conn: &mut PgConnection) -> QueryResult<String> {
    #[derive(QueryableByName)]
    struct Version {
        #[diesel(sql_type = Text)]
        v: String,
    }
    let rows: Vec<Version> = diesel::sql_query(
        "SELECT n::text || '/' || loads_n::text AS v FROM decision_inputs_version",
    )
    .load(conn)?;
    Ok(rows.into_iter().next().map(|r| r.v).unwrap_or_default())
}

/// Sweeps when the counters moved since `seen`; returns how many items it assigned.
pub fn sweep_if_changed(
    pool: &PgPool,
    decision: &DecisionService,
    seen: &mut String,
) -> anyhow::Result<usize> {
    let mut conn = pool.get()?;
    // Someone may have become eligible: the roster, learned state or a load changed, or an
    // on-call list did (with on-call required, a list read after a restart or an outage).
    let now = format!(
        "{}|{}",
        inputs_version(&mut conn)?,
        decision.on_call_generation()
    );
    if now == *seen {
        return Ok(0);
    }
    // Nothing waiting (the usual case): no sweep, and so no exclusive ownership lock that would
    // hold up the intake's batches.
    if count_waiting(&mut conn)? == 0 {
        *seen = now;
        return Ok(0);
    }
    let mut assigned = 0;
    let mut after = None;
    loop {
        let swept = decide_waiting(decision, &mut conn, after.as_ref())?;
        assigned += swept.assigned.len();
        match swept.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    // Read before the sweep: a change made while it ran is swept next time.
    *seen = now;
    Ok(assigned)
}
