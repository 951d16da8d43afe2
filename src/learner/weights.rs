//! The learner's part in fitting the term weights: once an item is resolved, whether its
//! decision's pick was right (the pick took and resolved it) is one observation for
//! [`TermWeights::fit`], and whether the model's or the count's pick resolved it one for
//! [`TermWeights::tally`]. The deployment's weights live in one row (`term_weights`), updated
//! under a row lock in the outcome's own transaction, so each resolve is fitted exactly once
//! and concurrent resolves do not lose each other's steps.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::db::schema::term_weights;
use crate::decision::StoredDecision;
use crate::routing::{picks, ScoredCandidate, TermWeights};

/// The deployment's current term weights (the prior when the row is missing or unreadable).
pub fn current(conn: &mut PgConnection) -> QueryResult<TermWeights> {
    read(conn, false)
}

/// The stored weights, the row locked until the transaction ends when `lock`.
fn read(conn: &mut PgConnection, lock: bool) -> QueryResult<TermWeights> {
    let query = term_weights::table.select(term_weights::weights);
    let stored: Option<serde_json::Value> = if lock {
        query.for_update().first(conn).optional()?
    } else {
        query.first(conn).optional()?
    };
    Ok(stored
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// Fits the outcome of `decision`'s pick, resolved by `resolver` (None: someone off the
/// roster) at event time `at`, and tallies the model's and the count's picks against the
/// resolver. Returns whether anything was fitted: nothing is when the decision named nobody,
/// or its stored input or ranking cannot be read back.
pub fn fit_pick(
    conn: &mut PgConnection,
    decision: &StoredDecision,
    resolver: Option<&str>,
    at: DateTime<Utc>,
    half_life_days: f64,
) -> QueryResult<bool> {
    let Some(primary) = decision.primary_human_id.as_deref() else {
        return Ok(false);
    };
    let used: TermWeights = match decision.inputs["input"].get("weights") {
        None => TermWeights::default(),
        Some(v) => match serde_json::from_value(v.clone()) {
            Ok(w) => w,
            Err(_) => return Ok(false),
        },
    };
    // Only the pick's entry is read: a ranking can hold the whole roster.
    let picked = decision
        .ranking
        .as_array()
        .and_then(|r| r.iter().find(|c| c["human_id"] == primary))
        .and_then(|c| serde_json::from_value::<ScoredCandidate>(c.clone()).ok());
    let Some(picked) = picked else {
        return Ok(false);
    };
    // The model's and the count's picks: the ranking's best score and most owned work.
    let entries = decision.ranking.as_array().map(|r| {
        r.iter()
            .filter_map(|c| {
                let id = c["human_id"].as_str()?;
                let count = c["count"].as_f64().unwrap_or(0.0);
                let load = c["components"]["load"].as_f64().unwrap_or(0.0);
                Some((id, c["score"].as_f64()?, count, load))
            })
            .collect::<Vec<_>>()
    });
    let (model, count) = picks(entries.unwrap_or_default());
    let mut weights = read(conn, true)?;
    if !weights.fit(&picked.components, &used, resolver == Some(primary)) {
        return Ok(false);
    }
    weights.tally(model, count, resolver, at, half_life_days);
    let json = serde_json::to_value(&weights).unwrap_or_default();
    diesel::insert_into(term_weights::table)
        .values((
            term_weights::only_row.eq(true),
            term_weights::weights.eq(&json),
        ))
        .on_conflict(term_weights::only_row)
        .do_update()
        .set((
            term_weights::weights.eq(&json),
            term_weights::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(true)
}
