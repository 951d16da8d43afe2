//! How a decision's ranking and exclusions are stored. They are written for every incident and
//! are, after the raw webhook body, the largest part of what intake writes; as objects, every
//! candidate repeats a dozen field names. So each candidate is stored as a row of values in a
//! fixed order, and expanded back to the named form (the one the admin API shows and replay
//! compares) when read. Floats keep their full printed precision, so expansion is exact. Rows
//! written in the named form before this change are read as they are.

use serde::Serialize;
use serde_json::{json, Value};

use crate::db::json::JsonText;
use crate::routing::{Excluded, ExclusionReason, ScoreComponents, ScoredCandidate};

/// One ranked candidate as stored: id, score, the six components in declaration order,
/// p_success, expected_seconds, evidence.
type RankingRow<'a> = (&'a str, f64, f64, f64, f64, f64, f64, f64, f64, f64, f64);

/// The ranking as stored: one [`RankingRow`] per candidate, best first.
pub fn ranking_text(ranking: &[ScoredCandidate]) -> JsonText {
    let rows: Vec<RankingRow> = ranking
        .iter()
        .map(|c| {
            let p = &c.components;
            (
                c.human_id.as_str(),
                c.score,
                p.success,
                p.speed,
                p.load,
                p.on_call,
                p.experience,
                p.exploration,
                c.p_success,
                c.expected_seconds,
                c.evidence,
            )
        })
        .collect();
    JsonText::of(&rows)
}

/// The exclusions as stored: `[human_id, reason]`, the reason as its kind alone when it
/// carries nothing else.
pub fn excluded_text(excluded: &[Excluded]) -> JsonText {
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Reason<'a> {
        Kind(&'static str),
        Full(&'a ExclusionReason),
    }
    let rows: Vec<(&str, Reason)> = excluded
        .iter()
        .map(|e| {
            let reason = match &e.reason {
                ExclusionReason::Inactive => Reason::Kind("inactive"),
                ExclusionReason::NotInService => Reason::Kind("not_in_service"),
                ExclusionReason::DuplicateCandidate => Reason::Kind("duplicate_candidate"),
                full @ ExclusionReason::AtCapacity { .. } => Reason::Full(full),
            };
            (e.human_id.as_str(), reason)
        })
        .collect();
    JsonText::of(&rows)
}

/// A stored ranking in the named form; entries already named are kept as they are.
pub fn expand_ranking(stored: Value) -> Value {
    map_entries(stored, |row| {
        let f = |i: usize| row.get(i).and_then(Value::as_f64);
        let human_id = row.first()?.as_str()?.to_string();
        let candidate = ScoredCandidate {
            human_id,
            score: f(1)?,
            components: ScoreComponents {
                success: f(2)?,
                speed: f(3)?,
                load: f(4)?,
                on_call: f(5)?,
                experience: f(6)?,
                exploration: f(7)?,
            },
            p_success: f(8)?,
            expected_seconds: f(9)?,
            evidence: f(10)?,
        };
        serde_json::to_value(candidate).ok()
    })
}

/// Stored exclusions in the named form; entries already named are kept as they are.
pub fn expand_excluded(stored: Value) -> Value {
    map_entries(stored, |row| {
        let human_id = row.first()?.as_str()?;
        let reason = match row.get(1)? {
            Value::String(kind) => json!({ "kind": kind }),
            full => full.clone(),
        };
        Some(json!({ "human_id": human_id, "reason": reason }))
    })
}

/// Replaces each array entry of `stored` by `expand` of it; anything else (a named entry, or
/// a row `expand` cannot read) is kept.
fn map_entries(stored: Value, expand: impl Fn(&[Value]) -> Option<Value>) -> Value {
    match stored {
        Value::Array(entries) => Value::Array(
            entries
                .into_iter()
                .map(|entry| match &entry {
                    Value::Array(row) => expand(row).unwrap_or(entry),
                    _ => entry,
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str, seed: f64) -> ScoredCandidate {
        ScoredCandidate {
            human_id: id.into(),
            score: -0.658129804414574 * seed,
            components: ScoreComponents {
                success: -0.35667494393873245 * seed,
                speed: 0.1 / 3.0,
                load: -0.0,
                on_call: 0.35139788683788864,
                experience: f64::MIN_POSITIVE,
                exploration: -0.6528527473137302,
            },
            p_success: 0.7,
            expected_seconds: 14399.999999999995,
            evidence: 1e-300 * seed,
        }
    }

    fn through_text(text: JsonText) -> Value {
        serde_json::from_str(&text.0).unwrap()
    }

    #[test]
    fn a_stored_ranking_expands_to_exactly_the_named_form() {
        let ranking = vec![candidate("alice", 1.0), candidate("bob", 3.7)];
        let stored = through_text(ranking_text(&ranking));
        assert!(stored[0].is_array(), "stored as rows: {stored}");
        assert_eq!(
            expand_ranking(stored),
            serde_json::to_value(&ranking).unwrap()
        );
    }

    #[test]
    fn stored_exclusions_expand_to_exactly_the_named_form() {
        let excluded = vec![
            Excluded {
                human_id: "a".into(),
                reason: ExclusionReason::Inactive,
            },
            Excluded {
                human_id: "b".into(),
                reason: ExclusionReason::NotInService,
            },
            Excluded {
                human_id: "c".into(),
                reason: ExclusionReason::DuplicateCandidate,
            },
            Excluded {
                human_id: "d".into(),
                reason: ExclusionReason::AtCapacity {
                    open_items: 5,
                    max_active: 4,
                },
            },
        ];
        let stored = through_text(excluded_text(&excluded));
        assert_eq!(stored[1], json!(["b", "not_in_service"]));
        assert_eq!(
            expand_excluded(stored),
            serde_json::to_value(&excluded).unwrap()
        );
    }

    #[test]
    fn entries_stored_in_the_named_form_are_read_as_they_are() {
        let ranking = serde_json::to_value(vec![candidate("alice", 1.0)]).unwrap();
        assert_eq!(expand_ranking(ranking.clone()), ranking);
        let excluded = json!([{"human_id": "b", "reason": {"kind": "not_in_service"}}]);
        assert_eq!(expand_excluded(excluded.clone()), excluded);
        assert_eq!(expand_ranking(Value::Null), Value::Null);
    }
}
