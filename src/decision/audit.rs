//! How a decision's input, ranking and exclusions are stored. They are written for every
//! incident and are the largest part of what intake writes; as objects, every candidate
//! repeats its field names. So each candidate is stored as a row of values in a fixed order,
//! and expanded back to the named form (the one the admin API shows, replay reads and compares)
//! when read. Floats keep their full printed precision, so expansion is exact. Entries written
//! in the named form before this change are read as they are. The model parameters, the same
//! for every decision a process makes, are stored once per set (`model_params`) and named by
//! each decision's inputs.

use serde::ser::{SerializeSeq, SerializeStruct, Serializer};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::db::json::JsonText;
use crate::routing::{
    CandidateInput, ContextRecord, DecisionInput, Excluded, ExclusionReason, ModelParams,
    ScoreComponents, ScoredCandidate, SkillRecord, SkillState,
};

/// A learned state's fields in stored-row order. Within a candidate row a skill record is
/// stored as `[service, severity, state]`, a context record as `[tag, state]`, and every
/// state, `overall` too, as a row of these.
/// (Fields added later go last: a row stored before them is shorter and leaves them out.)
const STATE_FIELDS: [&str; 12] = [
    "successes",
    "failures",
    "time_weight",
    "log_time_sum",
    "log_time_sq_sum",
    "owned",
    "on_call_trials",
    "on_call_kept",
    "updated_at",
    "take_ons",
    "take_on_load_sum",
    "assigned",
];

/// A candidate's input fields in stored-row order.
const CANDIDATE_FIELDS: [&str; 9] = [
    "human_id",
    "active",
    "services",
    "max_active",
    "open_items",
    "on_call",
    "skill",
    "context_skill",
    "overall",
];

/// A model parameter set as stored, and its id: the hex SHA-256 of that text, so a stored set
/// never changes under its id.
pub fn params_set(params: &ModelParams) -> (String, JsonText) {
    use sha2::{Digest, Sha256};
    let text = JsonText::of(params);
    (hex::encode(Sha256::digest(text.0.as_bytes())), text)
}

/// A decision's input as stored: as serde prints it, but each candidate as a row of values in
/// [`CANDIDATE_FIELDS`] order, the trailing ones at their defaults left off.
pub fn input_text(input: &DecisionInput) -> String {
    serde_json::to_string(&StoredInput(input)).unwrap_or_else(|_| "null".into())
}

struct StoredInput<'a>(&'a DecisionInput);

impl Serialize for StoredInput<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Destructured so that a new field cannot be left out unnoticed.
        let DecisionInput {
            work_item_id,
            service,
            severity,
            at,
            candidates,
            context,
            on_call_required,
            recommend_only,
            weights,
        } = self.0;
        let rows: Vec<CandidateRow> = candidates.iter().map(CandidateRow).collect();
        let mut m = s.serialize_struct("DecisionInput", 9)?;
        m.serialize_field("work_item_id", work_item_id)?;
        m.serialize_field("service", service)?;
        m.serialize_field("severity", severity)?;
        m.serialize_field("at", at)?;
        m.serialize_field("candidates", &rows)?;
        m.serialize_field("context", context)?;
        if *on_call_required {
            m.serialize_field("on_call_required", on_call_required)?;
        } else {
            m.skip_field("on_call_required")?;
        }
        if *recommend_only {
            m.serialize_field("recommend_only", recommend_only)?;
        } else {
            m.skip_field("recommend_only")?;
        }
        if weights.is_prior() {
            m.skip_field("weights")?;
        } else {
            m.serialize_field("weights", weights)?;
        }
        m.end()
    }
}

struct CandidateRow<'a>(&'a CandidateInput);

impl Serialize for CandidateRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let CandidateInput {
            human_id,
            active,
            services,
            max_active,
            open_items,
            on_call,
            skill,
            context_skill,
            overall,
        } = self.0;
        let len = if overall.is_some() {
            9
        } else if !context_skill.is_empty() {
            8
        } else if !skill.is_empty() {
            7
        } else if *on_call {
            6
        } else if *open_items != 0 {
            5
        } else if max_active.is_some() {
            4
        } else {
            3
        };
        let mut seq = s.serialize_seq(Some(len))?;
        seq.serialize_element(human_id)?;
        seq.serialize_element(active)?;
        seq.serialize_element(services)?;
        if len > 3 {
            seq.serialize_element(max_active)?;
        }
        if len > 4 {
            seq.serialize_element(open_items)?;
        }
        if len > 5 {
            seq.serialize_element(on_call)?;
        }
        if len > 6 {
            let rows: Vec<_> = skill
                .iter()
                .map(
                    |SkillRecord {
                         service,
                         severity,
                         state,
                     }| (service, severity, StateRow(state)),
                )
                .collect();
            seq.serialize_element(&rows)?;
        }
        if len > 7 {
            let rows: Vec<_> = context_skill.iter().map(ContextRow).collect();
            seq.serialize_element(&rows)?;
        }
        if len > 8 {
            seq.serialize_element(&overall.as_ref().map(StateRow))?;
        }
        seq.end()
    }
}

/// A context record as stored: `[tag, state]`, or `[tag, service, state]` for the part of a
/// record on one service.
struct ContextRow<'a>(&'a ContextRecord);

impl Serialize for ContextRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ContextRecord {
            tag,
            service,
            state,
        } = self.0;
        let mut seq = s.serialize_seq(Some(if service.is_some() { 3 } else { 2 }))?;
        seq.serialize_element(tag)?;
        if let Some(service) = service {
            seq.serialize_element(service)?;
        }
        seq.serialize_element(&StateRow(state))?;
        seq.end()
    }
}

struct StateRow<'a>(&'a SkillState);

impl Serialize for StateRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let SkillState {
            successes,
            failures,
            time_weight,
            log_time_sum,
            log_time_sq_sum,
            owned,
            on_call_trials,
            on_call_kept,
            updated_at,
            take_ons,
            take_on_load_sum,
            assigned,
        } = self.0;
        let first = (
            successes,
            failures,
            time_weight,
            log_time_sum,
            log_time_sq_sum,
            owned,
            on_call_trials,
            on_call_kept,
            updated_at,
        );
        // Fields added later are left off while they are zero, as in rows stored before them.
        let (a, b, c, d, e, f, g, h, i) = first;
        if *assigned != 0.0 {
            (
                a,
                b,
                c,
                d,
                e,
                f,
                g,
                h,
                i,
                take_ons,
                take_on_load_sum,
                assigned,
            )
                .serialize(s)
        } else if *take_ons != 0.0 || *take_on_load_sum != 0.0 {
            (a, b, c, d, e, f, g, h, i, take_ons, take_on_load_sum).serialize(s)
        } else {
            first.serialize(s)
        }
    }
}

/// The values of `row` under `names`, in order (a shorter row leaves the last names out).
fn named(names: &[&str], row: &[Value]) -> Map<String, Value> {
    names
        .iter()
        .zip(row)
        .map(|(name, v)| (name.to_string(), v.clone()))
        .collect()
}

/// A stored state row in the named form (a named state is kept as it is).
fn expand_state(stored: &Value) -> Value {
    match stored {
        Value::Array(row) => Value::Object(named(&STATE_FIELDS, row)),
        other => other.clone(),
    }
}

/// A stored record row (`[key..., state]`, keys named by `keys`) in the named form.
fn expand_record(stored: &Value, keys: &[&str]) -> Value {
    match stored {
        Value::Array(row) if row.len() == keys.len() + 1 => {
            let mut record = named(keys, row);
            record.insert("state".into(), expand_state(&row[keys.len()]));
            Value::Object(record)
        }
        other => other.clone(),
    }
}

/// Each entry of a stored list of records in the named form.
fn expand_records(stored: &Value, keys: &[&str]) -> Value {
    match stored {
        Value::Array(records) => {
            Value::Array(records.iter().map(|r| expand_record(r, keys)).collect())
        }
        other => other.clone(),
    }
}

/// Stored context records in the named form: `[tag, state]` or `[tag, service, state]`.
fn expand_context_records(stored: &Value) -> Value {
    match stored {
        Value::Array(records) => Value::Array(
            records
                .iter()
                .map(|r| match r.as_array().map(Vec::len) {
                    Some(3) => expand_record(r, &["tag", "service"]),
                    _ => expand_record(r, &["tag"]),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A stored input (`{"input": ..., "params": ...}`) with its candidates in the named form.
pub fn expand_inputs(mut stored: Value) -> Value {
    if let Some(candidates) = stored
        .get_mut("input")
        .and_then(|input| input.get_mut("candidates"))
    {
        *candidates = map_entries(std::mem::take(candidates), |row| {
            let mut fields = named(&CANDIDATE_FIELDS, row);
            for (name, v) in fields.iter_mut() {
                *v = match name.as_str() {
                    "skill" => expand_records(v, &["service", "severity"]),
                    "context_skill" => expand_context_records(v),
                    "overall" => expand_state(v),
                    _ => continue,
                };
            }
            let candidate: CandidateInput = serde_json::from_value(Value::Object(fields)).ok()?;
            serde_json::to_value(candidate).ok()
        });
    }
    stored
}

/// One ranked candidate as stored: id, score, the six components in declaration order,
/// p_success, expected_seconds, evidence, count (rows stored before the count have none).
type RankingRow<'a> = (
    &'a str,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
);

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
                c.count,
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
                ExclusionReason::NotOnCall => Reason::Kind("not_on_call"),
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
            count: f(11).unwrap_or(0.0),
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
            count: 2.5 * seed,
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

    fn input() -> DecisionInput {
        use crate::routing::{ContextRecord, Severity, SkillRecord, SkillState};
        let state = SkillState {
            successes: 2.5,
            failures: 0.3333333333333333,
            time_weight: 1.25,
            log_time_sum: 9.261023416804859,
            log_time_sq_sum: 86.20108828539257,
            owned: 0.5,
            on_call_trials: 7.981803611732936,
            on_call_kept: 1e-3,
            updated_at: Some("2026-03-14T09:26:52Z".parse().unwrap()),
            take_ons: 3.5,
            take_on_load_sum: 12.25,
            assigned: 0.25,
        };
        let plain = |id: &str| CandidateInput {
            human_id: id.into(),
            active: true,
            services: vec!["api".into()],
            max_active: None,
            open_items: 0,
            on_call: false,
            skill: vec![],
            context_skill: vec![],
            overall: None,
        };
        DecisionInput {
            work_item_id: "wi-1".into(),
            service: "api".into(),
            severity: Severity::Sev2,
            at: "2026-03-14T09:26:52.123Z".parse().unwrap(),
            candidates: vec![
                plain("a"),
                CandidateInput {
                    max_active: Some(3),
                    ..plain("b")
                },
                CandidateInput {
                    on_call: true,
                    active: false,
                    services: vec![],
                    ..plain("c")
                },
                CandidateInput {
                    open_items: 4,
                    skill: vec![SkillRecord {
                        service: "api".into(),
                        severity: Severity::Sev1,
                        state: state.clone(),
                    }],
                    context_skill: vec![
                        ContextRecord {
                            tag: "team:x".into(),
                            service: None,
                            state: state.clone(),
                        },
                        ContextRecord {
                            tag: "team:x".into(),
                            service: Some("api".into()),
                            state: state.clone(),
                        },
                    ],
                    overall: Some(state),
                    ..plain("d")
                },
            ],
            context: vec!["team:x".into()],
            on_call_required: false,
            recommend_only: false,
            // Fitted weights, so that they round-trip too.
            weights: crate::routing::TermWeights {
                w: [0.7, 1.0, 1.4],
                intercept: -0.3,
                grad_sq: [1.0, 0.0, 2.0, 3.0],
                fitted: 5,
                model_right: 2.25,
                count_right: 3.5,
                tallied_at: Some(chrono::Utc::now()),
            },
        }
    }

    #[test]
    fn a_state_row_stored_before_the_take_on_fields_reads_back_without_them() {
        let row = json!([
            1.0,
            0.0,
            0.0,
            0.0,
            0.0,
            1.0,
            0.0,
            0.0,
            "2026-03-14T09:26:52Z"
        ]);
        let state: crate::routing::SkillState = serde_json::from_value(expand_state(&row)).unwrap();
        assert_eq!(state.successes, 1.0);
        assert_eq!(state.owned, 1.0);
        assert_eq!((state.take_ons, state.take_on_load_sum), (0.0, 0.0));
        assert!(state.updated_at.is_some());
        // And a state without them is stored as such a row.
        let back = serde_json::to_value(StateRow(&state)).unwrap();
        assert_eq!(back, row);
    }

    #[test]
    fn a_stored_input_expands_to_exactly_the_named_form_and_replays() {
        let input = input();
        let stored: Value = serde_json::from_str(&format!(
            r#"{{"input":{},"params":{{}}}}"#,
            input_text(&input)
        ))
        .unwrap();
        let rows = &stored["input"]["candidates"];
        assert_eq!(rows[0], json!(["a", true, ["api"]]), "defaults left off");
        assert_eq!(rows[1], json!(["b", true, ["api"], 3]));
        assert_eq!(rows[3].as_array().unwrap().len(), 9);
        assert_eq!(
            rows[3][8],
            json!([
                2.5,
                0.3333333333333333,
                1.25,
                9.261023416804859,
                86.20108828539257,
                0.5,
                7.981803611732936,
                1e-3,
                "2026-03-14T09:26:52Z",
                3.5,
                12.25,
                0.25
            ]),
            "a state as a row"
        );
        assert_eq!(
            rows[3][6][0][1], "sev1",
            "a skill record as [service, severity, state]"
        );
        let expanded = expand_inputs(stored);
        assert_eq!(expanded["input"], serde_json::to_value(&input).unwrap());
        let back: DecisionInput = serde_json::from_value(expanded["input"].clone()).unwrap();
        assert_eq!(back, input);
    }

    #[test]
    fn a_parameter_set_is_named_by_the_hash_of_its_text() {
        let (id, text) = params_set(&ModelParams::default());
        assert_eq!(id.len(), 64);
        assert_eq!(params_set(&ModelParams::default()).0, id, "stable");
        let back: ModelParams = serde_json::from_str(&text.0).unwrap();
        let other = ModelParams {
            load_weight: back.load_weight + 1.0,
            ..back
        };
        assert_ne!(params_set(&other).0, id);
    }

    #[test]
    fn entries_stored_in_the_named_form_are_read_as_they_are() {
        let named = json!({"input": serde_json::to_value(input()).unwrap(), "params": {}});
        assert_eq!(expand_inputs(named.clone()), named);
        let ranking = serde_json::to_value(vec![candidate("alice", 1.0)]).unwrap();
        assert_eq!(expand_ranking(ranking.clone()), ranking);
        let excluded = json!([{"human_id": "b", "reason": {"kind": "not_in_service"}}]);
        assert_eq!(expand_excluded(excluded.clone()), excluded);
        assert_eq!(expand_ranking(Value::Null), Value::Null);
    }
}
