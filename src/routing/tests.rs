use super::priors::paule_mandel;
use super::*;
use chrono::{DateTime, TimeZone, Utc};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

fn cand(id: &str) -> CandidateInput {
    CandidateInput {
        human_id: id.to_string(),
        active: true,
        services: vec!["db".to_string()],
        max_active: Some(5),
        open_items: 0,
        on_call: false,
        skill: Vec::new(),
        context_skill: Vec::new(),
        overall: None,
    }
}

fn input(id: &str, severity: Severity, candidates: Vec<CandidateInput>) -> DecisionInput {
    DecisionInput {
        work_item_id: id.to_string(),
        service: "db".to_string(),
        severity,
        at: t0() + chrono::Duration::days(10),
        candidates,
        context: Vec::new(),
        on_call_required: false,
        recommend_only: false,
        weights: Default::default(),
    }
}

fn record(severity: Severity, state: SkillState) -> SkillRecord {
    SkillRecord {
        service: "db".to_string(),
        severity,
        state,
    }
}

fn history(resolves: usize, handoffs: usize, seconds: f64, p: &ModelParams) -> SkillState {
    let mut s = SkillState::default();
    for i in 0..resolves.max(handoffs) {
        let at = t0() + chrono::Duration::hours(i as i64);
        if i < resolves {
            apply_outcome(
                &mut s,
                &OutcomeKind::Resolved {
                    seconds_to_resolve: seconds,
                    // Assignments made by Goliath: skill evidence without ownership.
                    goliath_assigned: true,
                    took_over: false,
                },
                at,
                p,
            );
        }
        if i < handoffs {
            apply_outcome(&mut s, &OutcomeKind::HANDED_OFF, at, p);
        }
    }
    s
}

#[test]
fn learns_resolver_over_hand_off_human() {
    let p = ModelParams::default();
    // Every severity and many seeds: A must come first every time.
    for sev in Severity::ALL {
        let mut a = cand("b-alice");
        let mut b = cand("a-bob");
        a.skill.push(record(sev, history(12, 0, 3600.0, &p)));
        b.skill.push(record(sev, history(0, 12, 3600.0, &p)));
        for i in 0..50 {
            let d = decide(
                &input(&format!("w{i}"), sev, vec![b.clone(), a.clone()]),
                &p,
            );
            assert_eq!(d.primary.as_deref(), Some("b-alice"), "{sev} {i}: {d:?}");
            assert!(d.ranking[0].p_success > d.ranking[1].p_success);
        }
    }
}

#[test]
fn faster_resolver_wins_at_equal_success() {
    let p = ModelParams {
        explore_scale: 0.0,
        ..ModelParams::default()
    };
    let mut a = cand("a");
    let mut b = cand("b");
    a.skill
        .push(record(Severity::Sev3, history(8, 1, 1800.0, &p)));
    b.skill
        .push(record(Severity::Sev3, history(8, 1, 8.0 * 3600.0, &p)));
    let d = decide(&input("w", Severity::Sev3, vec![b, a]), &p);
    assert_eq!(d.primary.as_deref(), Some("a"));
    assert!(d.explanation.contains("speed"), "{}", d.explanation);
}

#[test]
fn same_input_same_decision_and_json_roundtrip() {
    let p = ModelParams::default();
    let mut cands = Vec::new();
    for i in 0..30 {
        let mut c = cand(&format!("p{i:02}"));
        let mut s = history(i % 4, i % 3, 600.0 * (i + 1) as f64, &p);
        // One slower resolve each: times vary within a person, as real ones do.
        apply_outcome(
            &mut s,
            &OutcomeKind::Resolved {
                seconds_to_resolve: 2400.0 * (i + 1) as f64,
                goliath_assigned: true,
                took_over: false,
            },
            t0() + chrono::Duration::hours(4),
            &p,
        );
        c.skill.push(record(Severity::Sev4, s));
        c.open_items = (i % 3) as u32;
        cands.push(c);
    }
    let inp = input("INC-42", Severity::Sev4, cands);
    let d1 = decide(&inp, &p);
    let json = serde_json::to_string(&inp).unwrap();
    let back: DecisionInput = serde_json::from_str(&json).unwrap();
    assert_eq!(back, inp);
    let d2 = decide(&back, &p);
    assert_eq!(d1, d2);
    let dj: Decision = serde_json::from_str(&serde_json::to_string(&d1).unwrap()).unwrap();
    assert_eq!(dj, d1);
    // Candidate order must not matter.
    let mut rev = inp.clone();
    rev.candidates.reverse();
    assert_eq!(decide(&rev, &p).ranking, d1.ranking);
    // A different work item explores differently (at least sometimes).
    let differs = (0..20).any(|i| {
        let mut other = inp.clone();
        other.work_item_id = format!("INC-{i}");
        decide(&other, &p).primary != d1.primary
    });
    assert!(differs, "exploration never changes the pick on sev4");
}

#[test]
fn exclusions_carry_reasons() {
    let p = ModelParams::default();
    let mut inactive = cand("inactive");
    inactive.active = false;
    let mut other = cand("other");
    other.services = vec!["web".to_string()];
    let mut full = cand("full");
    full.max_active = Some(2);
    full.open_items = 2;
    let anyone = CandidateInput {
        services: Vec::new(),
        ..cand("anyone")
    };
    let d = decide(
        &input("w", Severity::Sev3, vec![inactive, other, full, anyone]),
        &p,
    );
    assert_eq!(d.primary.as_deref(), Some("anyone"));
    let reason = |id: &str| {
        d.excluded
            .iter()
            .find(|e| e.human_id == id)
            .map(|e| e.reason.clone())
    };
    assert_eq!(reason("inactive"), Some(ExclusionReason::Inactive));
    assert_eq!(reason("other"), Some(ExclusionReason::NotInService));
    assert_eq!(
        reason("full"),
        Some(ExclusionReason::AtCapacity {
            open_items: 2,
            max_active: 2
        })
    );
    assert_eq!(d.ranking.len(), 1);
    // A lone candidate is still only as likely to be right as their evidence says.
    let c = &d.ranking[0].components;
    let p_right = 1.0 / (1.0 + (-(c.success + c.on_call + c.experience)).exp());
    assert!((d.confidence - p_right).abs() < 1e-12, "{}", d.confidence);
    assert!(d.confidence > 0.0 && d.confidence < 1.0);

    let mut alone = cand("x");
    alone.active = false;
    let d = decide(&input("w", Severity::Sev1, vec![alone]), &p);
    assert!(d.primary.is_none());
    assert!(d
        .undecided_reason
        .as_deref()
        .unwrap()
        .contains("1 inactive"));
}

#[test]
fn sev1_prefers_proven_over_unproven() {
    let p = ModelParams::default();
    let mut proven = cand("proven");
    proven
        .skill
        .push(record(Severity::Sev1, history(12, 2, 2.0 * 3600.0, &p)));
    proven
        .skill
        .push(record(Severity::Sev3, history(20, 3, 2.0 * 3600.0, &p)));
    let newcomer = cand("newcomer");
    for i in 0..200 {
        let d = decide(
            &input(
                &format!("crit-{i}"),
                Severity::Sev1,
                vec![newcomer.clone(), proven.clone()],
            ),
            &p,
        );
        assert_eq!(d.primary.as_deref(), Some("proven"));
    }
    // On sev4 the newcomer gets tried at least occasionally.
    let tried = (0..400)
        .filter(|i| {
            decide(
                &input(
                    &format!("low-{i}"),
                    Severity::Sev4,
                    vec![newcomer.clone(), proven.clone()],
                ),
                &p,
            )
            .primary
            .as_deref()
                == Some("newcomer")
        })
        .count();
    assert!(tried > 0 && tried < 200, "newcomer tried {tried}/400");
}

#[test]
fn old_evidence_decays_in_event_time() {
    let p = ModelParams::default();
    let s = history(10, 0, 3600.0, &p);
    let later = t0() + chrono::Duration::days((p.half_life_days * 2.0) as i64);
    let f = s.decay_factor(later, &p);
    assert!((f - 0.25).abs() < 0.01, "factor {f}");
    let mut s2 = s.clone();
    apply_outcome(&mut s2, &OutcomeKind::HANDED_OFF, later, &p);
    assert!(s2.successes < 3.0 && (s2.failures - 1.0).abs() < 1e-12);
}

#[test]
fn ownership_counts_at_the_take_over_and_goes_with_a_hand_on() {
    let p = ModelParams::default();
    let later = t0() + chrono::Duration::days(p.half_life_days as i64);
    // Taken over, then resolved: one owned unit, counted once.
    let mut kept = SkillState::default();
    apply_outcome(
        &mut kept,
        &OutcomeKind::TookOver { holding: None },
        t0(),
        &p,
    );
    assert_eq!(kept.owned, 1.0);
    let resolved = OutcomeKind::Resolved {
        seconds_to_resolve: f64::NAN,
        goliath_assigned: false,
        took_over: true,
    };
    apply_outcome(&mut kept, &resolved, later, &p);
    assert!(
        (kept.owned - 0.5).abs() < 1e-9,
        "decayed once: {}",
        kept.owned
    );
    assert_eq!(kept.successes, 1.0);
    // Two taken over, one handed on a half-life later: that one's unit (decayed as the rest)
    // goes, the other's stays.
    let mut passed = SkillState::default();
    apply_outcome(
        &mut passed,
        &OutcomeKind::TookOver { holding: None },
        t0(),
        &p,
    );
    apply_outcome(
        &mut passed,
        &OutcomeKind::TookOver { holding: None },
        t0(),
        &p,
    );
    let hand_on = OutcomeKind::HandedOff {
        taken_over_at: Some(t0()),
    };
    apply_outcome(&mut passed, &hand_on, later, &p);
    assert!(
        (passed.owned - 0.5).abs() < 1e-9,
        "the other take-over stays: {}",
        passed.owned
    );
    assert_eq!(
        passed.failures, 0.0,
        "passing on work they took is routing, not failing"
    );
    // Work given to them and handed on is a failure; so is an escalation, however they got it.
    apply_outcome(&mut passed, &OutcomeKind::HANDED_OFF, later, &p);
    assert_eq!(passed.failures, 1.0);
    let missed = OutcomeKind::Missed {
        taken_over_at: Some(t0()),
    };
    apply_outcome(&mut passed, &missed, later, &p);
    assert_eq!(passed.failures, 2.0);
    assert_eq!(passed.owned, 0.0, "its take-over withdrawn too");
}

#[test]
fn reopen_turns_success_into_failure() {
    let p = ModelParams::default();
    let mut s = history(1, 0, 3600.0, &p);
    apply_outcome(&mut s, &OutcomeKind::Reopened, t0(), &p);
    assert_eq!(s.successes, 0.0);
    assert_eq!(s.failures, 1.0);
}

#[test]
fn load_and_on_call_move_the_score() {
    let p = ModelParams {
        explore_scale: 0.0,
        ..ModelParams::default()
    };
    let mut busy = cand("a-busy");
    busy.open_items = 4;
    let idle = cand("b-idle");
    let d = decide(
        &input("w", Severity::Sev3, vec![busy.clone(), idle.clone()]),
        &p,
    );
    assert_eq!(d.primary.as_deref(), Some("b-idle"));
    assert!(d.explanation.contains("load"), "{}", d.explanation);
    let mut oncall = cand("c-oncall");
    oncall.on_call = true;
    let d = decide(&input("w", Severity::Sev3, vec![idle.clone(), oncall]), &p);
    assert_eq!(d.primary.as_deref(), Some("c-oncall"));
    assert!(d.explanation.contains("on_call"), "{}", d.explanation);
    // Being paged makes the pick likelier to be right than the one not paged.
    let c = &d.ranking[1].components;
    let other = 1.0 / (1.0 + (-(c.success + c.on_call + c.experience)).exp());
    assert!(d.confidence > other && d.confidence < 1.0, "{d:?}");
}

#[test]
fn load_counts_above_the_load_at_which_a_person_still_takes_work_on() {
    let p = ModelParams {
        explore_scale: 0.0,
        ..ModelParams::default()
    };
    let load_of = |c: &CandidateInput| {
        let d = decide(&input("w", Severity::Sev3, vec![c.clone()]), &p);
        d.ranking[0].components.load
    };
    // Took work over five times while holding 9 open items each time: their usual load is 9,
    // and up to one (Poisson) standard deviation above it, 12, is within their normal range.
    let mut regular = CandidateInput {
        max_active: None,
        ..cand("regular")
    };
    let mut usual = SkillState::default();
    for _ in 0..5 {
        let kind = OutcomeKind::TookOver { holding: Some(9) };
        apply_outcome(&mut usual, &kind, t0(), &p);
    }
    regular.overall = Some(usual);
    regular.open_items = 12;
    assert_eq!(load_of(&regular), 0.0, "within their usual load");
    regular.open_items = 17;
    let over = load_of(&regular);
    // Someone with no such record, holding 5: the same excess over a usual load of 0.
    let newcomer = CandidateInput {
        max_active: None,
        open_items: 5,
        ..cand("newcomer")
    };
    assert!(over < 0.0 && (over - load_of(&newcomer)).abs() < 1e-12);
    // A declared max_active is the capacity, and every open item counts against it.
    regular.max_active = Some(20);
    let capped = load_of(&regular);
    assert!((capped + (1.0 + p.load_weight * 17.0 / 20.0).ln()).abs() < 1e-12);
}

#[test]
fn only_a_resolver_who_had_the_incident_from_the_start_is_timed() {
    let p = ModelParams::default();
    let resolve = |took_over: bool| {
        let mut st = SkillState::default();
        let kind = OutcomeKind::Resolved {
            seconds_to_resolve: 600.0,
            goliath_assigned: !took_over,
            took_over,
        };
        apply_outcome(&mut st, &kind, t0(), &p);
        st
    };
    let given = resolve(false);
    assert_eq!(given.successes, 1.0);
    assert_eq!(given.time_weight, 1.0);
    assert!((given.log_time_sum - 600f64.ln()).abs() < 1e-12);
    // Taken over mid-incident: a success, but the hold times only the end of the work.
    let taken = resolve(true);
    assert_eq!(taken.successes, 1.0);
    assert_eq!(taken.time_weight, 0.0);
    assert_eq!(taken.log_time_sum, 0.0);
}

#[test]
fn context_evidence_separates_equal_service_records() {
    let p = ModelParams {
        explore_scale: 0.0,
        ..ModelParams::default()
    };
    let mut a = cand("a");
    let mut b = cand("b");
    a.context_skill.push(ContextRecord {
        tag: "product:X".to_string(),
        service: None,
        state: history(0, 5, 3600.0, &p),
    });
    b.context_skill.push(ContextRecord {
        tag: "product:X".to_string(),
        service: None,
        state: history(5, 0, 3600.0, &p),
    });
    let mut inp = input("w", Severity::Sev3, vec![a, b]);
    inp.context = vec!["product:X".to_string()];
    assert_eq!(decide(&inp, &p).primary.as_deref(), Some("b"));
}

#[test]
fn severity_parses_and_serializes() {
    assert_eq!("sev2".parse::<Severity>().unwrap(), Severity::Sev2);
    assert_eq!("SEV4".parse::<Severity>().unwrap(), Severity::Sev4);
    assert_eq!("1".parse::<Severity>().unwrap(), Severity::Sev1);
    assert!("sev5".parse::<Severity>().is_err());
    assert_eq!(serde_json::to_string(&Severity::Sev3).unwrap(), "\"sev3\"");
}

fn resolves(n: usize, goliath_assigned: bool, p: &ModelParams) -> SkillState {
    let mut s = SkillState::default();
    for i in 0..n {
        apply_outcome(
            &mut s,
            &OutcomeKind::Resolved {
                seconds_to_resolve: 3600.0,
                goliath_assigned,
                took_over: false,
            },
            t0() + chrono::Duration::hours(i as i64),
            p,
        );
    }
    s
}

fn on_call_record(state: &mut SkillState, kept: bool, n: usize, p: &ModelParams) {
    for i in 0..n {
        apply_on_call_outcome(state, kept, t0() + chrono::Duration::hours(i as i64), p);
    }
}

#[test]
fn on_call_lift_is_learned_per_human() {
    let p = ModelParams {
        explore_scale: 0.0,
        ..ModelParams::default()
    };
    let lift = |kept: Option<bool>| {
        let mut a = cand("a");
        a.on_call = true;
        let mut st = history(5, 1, 3600.0, &p);
        let mut overall = st.clone();
        if let Some(k) = kept {
            on_call_record(&mut st, k, 20, &p);
            on_call_record(&mut overall, k, 20, &p);
        }
        a.skill.push(record(Severity::Sev3, st));
        a.overall = Some(overall);
        let mut b = cand("b");
        b.skill
            .push(record(Severity::Sev3, history(5, 1, 3600.0, &p)));
        let d = decide(&input("w", Severity::Sev3, vec![a, b]), &p);
        let r = d.ranking.iter().find(|r| r.human_id == "a").unwrap();
        r.components.on_call
    };
    let (keeps, prior, never) = (lift(Some(true)), lift(None), lift(Some(false)));
    assert!(keeps > prior && prior > never, "{keeps} {prior} {never}");
    assert!((0.0..0.1).contains(&never), "{never}");
}

#[test]
fn experience_counts_only_work_goliath_did_not_assign() {
    let p = ModelParams {
        explore_scale: 0.0,
        ..ModelParams::default()
    };
    let exp = |a_assigned: bool, b_assigned: bool| {
        let mut a = cand("a");
        a.skill
            .push(record(Severity::Sev3, resolves(10, a_assigned, &p)));
        let mut b = cand("b");
        b.skill
            .push(record(Severity::Sev3, resolves(2, b_assigned, &p)));
        let d = decide(&input("w", Severity::Sev3, vec![a, b]), &p);
        (experience_of(&d, "a"), experience_of(&d, "b"))
    };
    let (a, b) = exp(false, false);
    assert!(a > b + 0.3, "{a} {b}");
    let (a, b) = exp(true, true);
    assert_eq!(a, b);
    // An even share between the two: experience_weight * ln(1/2).
    assert!((a - p.experience_weight * 0.5f64.ln()).abs() < 1e-12, "{a}");
}

#[test]
fn inputs_stored_before_the_new_fields_still_parse() {
    let s: SkillState = serde_json::from_str(
        r#"{"successes":3.0,"failures":1.0,"time_weight":3.0,"log_time_sum":24.0,"log_time_sq_sum":200.0,"updated_at":null}"#,
    )
    .unwrap();
    assert_eq!(s.owned, 0.0);
    assert_eq!(s.on_call_trials, 0.0);
    let k: OutcomeKind =
        serde_json::from_str(r#"{"resolved":{"seconds_to_resolve":60.0}}"#).unwrap();
    assert_eq!(
        k,
        OutcomeKind::Resolved {
            seconds_to_resolve: 60.0,
            goliath_assigned: false,
            took_over: false,
        }
    );
}

#[test]
fn times_are_compared_after_removing_severity_offsets() {
    let p = ModelParams {
        explore_scale: 0.0,
        ..ModelParams::default()
    };
    // Everyone works sev1 in about 30 min and sev4 in about 72 min.
    let mut cands: Vec<CandidateInput> = (0..4)
        .map(|i| {
            let mut c = cand(&format!("team-{i}"));
            c.skill
                .push(record(Severity::Sev1, history(10, 0, 1800.0, &p)));
            c.skill
                .push(record(Severity::Sev4, history(10, 0, 4320.0, &p)));
            c
        })
        .collect();
    // Faster than typical, but only ever seen on slow sev4 work.
    let mut fast = cand("fast-on-sev4");
    fast.skill
        .push(record(Severity::Sev4, history(10, 0, 3000.0, &p)));
    // Slower than typical, but only ever seen on quick sev1 work.
    let mut slow = cand("slow-on-sev1");
    slow.skill
        .push(record(Severity::Sev1, history(10, 0, 2600.0, &p)));
    cands.push(fast);
    cands.push(slow);
    let d = decide(&input("w", Severity::Sev3, cands), &p);
    let speed = |id: &str| {
        d.ranking
            .iter()
            .find(|r| r.human_id == id)
            .unwrap()
            .components
            .speed
    };
    assert!(speed("fast-on-sev4") > speed("slow-on-sev1"));
    assert!(speed("fast-on-sev4") > 0.0 && speed("slow-on-sev1") < 0.0);
}

#[test]
fn no_exploration_where_humans_route_the_work() {
    let p = ModelParams::default();
    // Same records, once as Goliath's assignments, once as work people routed (shadow mode).
    let picks = |goliath_assigned: bool| {
        let mut a = cand("a");
        a.skill
            .push(record(Severity::Sev4, resolves(6, goliath_assigned, &p)));
        let mut b = cand("b");
        b.skill
            .push(record(Severity::Sev4, resolves(6, goliath_assigned, &p)));
        b.skill.push(record(Severity::Sev4, history(0, 1, 0.0, &p)));
        (0..200)
            .filter(|i| {
                decide(
                    &input(&format!("w{i}"), Severity::Sev4, vec![a.clone(), b.clone()]),
                    &p,
                )
                .primary
                .as_deref()
                    == Some("b")
            })
            .count()
    };
    assert!(picks(true) > 0, "Goliath-assigned work is explored");
    assert_eq!(picks(false), 0, "shadow mode does not explore");
}

#[test]
fn a_recommendation_only_is_never_explored() {
    let p = ModelParams::default();
    // Nothing learned yet, where exploration is at its widest.
    let cands = vec![cand("a"), cand("b"), cand("c")];
    let draws = |recommend_only: bool| {
        (0..50)
            .map(|i| {
                let mut inp = input(&format!("w{i}"), Severity::Sev4, cands.clone());
                inp.recommend_only = recommend_only;
                let d = decide(&inp, &p);
                d.ranking
                    .iter()
                    .map(|c| c.components.exploration.abs())
                    .fold(0.0, f64::max)
            })
            .fold(0.0, f64::max)
    };
    assert!(draws(false) > 0.1, "an assignment explores");
    // Only the fixed pessimism shift is left, the same for everyone: no draw.
    let mut inp = input("w0", Severity::Sev4, cands.clone());
    inp.recommend_only = true;
    let d = decide(&inp, &p);
    let e: Vec<f64> = d.ranking.iter().map(|c| c.components.exploration).collect();
    assert!(e.iter().all(|x| (x - e[0]).abs() < 1e-12), "{e:?}");
}

/// A candidate with a sev3 record here (if `here`) and a record on another service, with the
/// overall state holding both, as the glue keeps it.
fn with_elsewhere(id: &str, here: Option<f64>, there: f64, p: &ModelParams) -> CandidateInput {
    let mut c = cand(id);
    let mut overall = history(10, 0, there, p);
    if let Some(h) = here {
        let s = history(10, 0, h, p);
        overall.merge(&s, s.updated_at.unwrap(), p);
        c.skill.push(record(Severity::Sev3, s));
    }
    c.overall = Some(overall);
    c
}

fn newcomer_speeds(there_of: impl Fn(f64) -> f64) -> (f64, f64) {
    let p = ModelParams {
        explore_scale: 0.0,
        ..ModelParams::default()
    };
    // Another service that is twice as slow for everyone: only relative speed there counts.
    let mut cands: Vec<CandidateInput> = [-2.0f64, -1.0, -0.5, 0.5, 1.0, 2.0]
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            with_elsewhere(
                &format!("team-{i}"),
                Some(3600.0 * (0.4 * d).exp()),
                7200.0 * (0.4 * there_of(d)).exp(),
                &p,
            )
        })
        .collect();
    cands.push(with_elsewhere(
        "new-fast",
        None,
        7200.0 * (-0.8f64).exp(),
        &p,
    ));
    cands.push(with_elsewhere("new-slow", None, 7200.0 * 0.8f64.exp(), &p));
    let d = decide(&input("w", Severity::Sev3, cands), &p);
    let speed = |id: &str| {
        d.ranking
            .iter()
            .find(|r| r.human_id == id)
            .unwrap()
            .components
            .speed
    };
    (speed("new-fast"), speed("new-slow"))
}

#[test]
fn times_elsewhere_count_where_they_predict_times_here() {
    // Here and elsewhere agree on who is fast: a newcomer's record elsewhere sets their prior.
    let (fast, slow) = newcomer_speeds(|d| d);
    assert!(fast > 0.05 && slow < -0.05, "fast {fast} slow {slow}");
}

#[test]
fn times_elsewhere_get_no_weight_where_they_do_not_predict() {
    // Records elsewhere unrelated to times here (zero cross-product): both newcomers get the
    // service prior.
    let pattern = |d: f64| match d {
        x if x.abs() == 0.5 => 0.0,
        x if x == -1.0 || x == 1.0 => -1.0,
        _ => 1.0,
    };
    let (fast, slow) = newcomer_speeds(pattern);
    assert!((fast - slow).abs() < 1e-9, "fast {fast} slow {slow}");
}

#[test]
fn paule_mandel_recovers_the_spread() {
    // Means with sampling variance 0.1 and an observed spread of about 0.5: tau^2 ~ 0.4.
    let pts: Vec<(f64, f64)> = [-1.0, -0.5, 0.0, 0.5, 1.0]
        .iter()
        .map(|&m| (m * 0.5f64.sqrt() / 0.79, 0.1))
        .collect();
    let (tau2, mean) = paule_mandel(&pts, 1e-6, 10.0).unwrap();
    assert!(mean.abs() < 1e-12);
    // Q(tau2) = n - 1 exactly at the returned value.
    let q: f64 = pts.iter().map(|&(m, v)| m * m / (tau2 + v)).sum();
    assert!((q - 4.0).abs() < 1e-6, "q {q} tau2 {tau2}");
    assert!(paule_mandel(&pts[..2], 1e-6, 10.0).is_none());
    // No excess spread: the lower bound.
    let flat = vec![(0.0, 0.1); 4];
    assert!((paule_mandel(&flat, 1e-3, 10.0).unwrap().0 - 1e-3).abs() < 1e-12);
}

/// A ranked candidate's experience component.
fn experience_of(d: &Decision, id: &str) -> f64 {
    d.ranking
        .iter()
        .find(|c| c.human_id == id)
        .map(|c| c.components.experience)
        .unwrap()
}

#[test]
fn owning_a_product_for_another_team_is_not_owning_it_here() {
    let p = ModelParams {
        explore_scale: 0.0,
        ..ModelParams::default()
    };
    // Both own the same share of this service's work; `elsewhere` also resolves product X,
    // but all of it for another service.
    let mut here = cand("here");
    here.skill
        .push(record(Severity::Sev3, resolves(4, false, &p)));
    here.overall = Some(resolves(4, false, &p));
    here.context_skill.push(ContextRecord {
        tag: "product:X".to_string(),
        service: None,
        state: resolves(2, false, &p),
    });
    let mut elsewhere = cand("elsewhere");
    elsewhere
        .skill
        .push(record(Severity::Sev3, resolves(4, false, &p)));
    elsewhere.overall = Some(resolves(40, false, &p));
    elsewhere.context_skill.push(ContextRecord {
        tag: "product:X".to_string(),
        service: None,
        state: resolves(20, false, &p),
    });
    let mut inp = input("w", Severity::Sev3, vec![elsewhere, here]);
    inp.context = vec!["product:X".to_string()];
    let d = decide(&inp, &p);
    let experience = |id: &str| experience_of(&d, id);
    // here: 2 product-X resolutions, all in this service; elsewhere: 20, of which 4/40 here.
    assert!(
        (experience("here") - experience("elsewhere")).abs() < 0.01,
        "{:?}",
        d.ranking
    );
}

#[test]
fn a_tag_confined_to_this_service_does_not_count_against_work_elsewhere() {
    let p = ModelParams {
        explore_scale: 0.0,
        ..ModelParams::default()
    };
    // Both resolve 6 of this service's incidents, all under its escalation policy; `wide`
    // also resolves 30 incidents of other services.
    let person = |id: &str, elsewhere: usize, with_part_here: bool| {
        let mut c = cand(id);
        c.skill.push(record(Severity::Sev3, resolves(6, false, &p)));
        c.overall = Some(resolves(6 + elsewhere, false, &p));
        c.context_skill.push(ContextRecord {
            tag: "policy:db".to_string(),
            service: None,
            state: resolves(6, false, &p),
        });
        if with_part_here {
            c.context_skill.push(ContextRecord {
                tag: "policy:db".to_string(),
                service: Some("db".to_string()),
                state: resolves(6, false, &p),
            });
        }
        c
    };
    let gap = |with_part_here: bool| {
        let mut inp = input(
            "w",
            Severity::Sev3,
            vec![
                person("narrow", 0, with_part_here),
                person("wide", 30, with_part_here),
            ],
        );
        inp.context = vec!["policy:db".to_string()];
        let d = decide(&inp, &p);
        experience_of(&d, "narrow") - experience_of(&d, "wide")
    };
    // From the records across services alone, `wide` looks like a sixth of an owner here.
    assert!(gap(false) > 0.5, "{}", gap(false));
    // The part of the record on this service says they own it alike (what is left is the
    // shrinkage to that estimate, with 12 resolutions).
    assert!(gap(true).abs() < 0.1, "{}", gap(true));
}

#[test]
fn a_tag_every_incident_carries_does_not_dilute_an_informative_one() {
    let p = ModelParams {
        explore_scale: 0.0,
        ..ModelParams::default()
    };
    // Both resolve this service's work only; ben resolves three times as much of it, but ana
    // owns product X. Every incident also carries `policy:all`, on which each person's record
    // is all their work.
    let human = |id: &str, service: usize, product_x: usize| {
        let mut c = cand(id);
        c.skill
            .push(record(Severity::Sev3, resolves(service, false, &p)));
        c.overall = Some(resolves(service, false, &p));
        for (tag, n) in [("product:X", product_x), ("policy:all", service)] {
            if n > 0 {
                c.context_skill.push(ContextRecord {
                    tag: tag.to_string(),
                    service: None,
                    state: resolves(n, false, &p),
                });
            }
        }
        c
    };
    let humans = vec![human("ana", 10, 10), human("ben", 30, 0)];
    let pick = |context: &[&str]| {
        let mut inp = input("w", Severity::Sev3, humans.clone());
        inp.context = context.iter().map(|t| t.to_string()).collect();
        let d = decide(&inp, &p);
        (
            d.primary.clone(),
            experience_of(&d, "ana") - experience_of(&d, "ben"),
        )
    };
    let (alone, lead_alone) = pick(&["product:X"]);
    let (with_policy, lead_with_policy) = pick(&["policy:all", "product:X"]);
    assert_eq!(alone.as_deref(), Some("ana"));
    assert_eq!(
        with_policy.as_deref(),
        Some("ana"),
        "the shared tag changed the pick"
    );
    assert!(
        (lead_alone - lead_with_policy).abs() < 0.05,
        "ana's experience lead {lead_alone} alone, {lead_with_policy} with the shared tag"
    );
    // The shared tag on its own says only what the service says.
    let (_, lead_policy_only) = pick(&["policy:all"]);
    let (_, lead_none) = pick(&[]);
    assert!(
        (lead_policy_only - lead_none).abs() < 0.05,
        "{lead_policy_only} vs {lead_none}"
    );
}

#[test]
fn parameter_sets_stored_under_the_earlier_names_read_back_the_same() {
    let mut stored = serde_json::to_value(ModelParams::default()).unwrap();
    let map = stored.as_object_mut().unwrap();
    map.remove("prior_strength_human");
    map.remove("on_call_human_strength");
    map.insert("prior_strength_person".into(), 7.5.into());
    map.insert("on_call_person_strength".into(), 0.25.into());
    let read: ModelParams = serde_json::from_value(stored).unwrap();
    assert_eq!(read.prior_strength_human, 7.5);
    assert_eq!(read.on_call_human_strength, 0.25);
}

/// `n` take-overs of db work (a person took it on from someone else), then resolved.
fn took_over(n: usize, p: &ModelParams) -> SkillState {
    let mut s = SkillState::default();
    for i in 0..n {
        let at = t0() + chrono::Duration::hours(i as i64);
        apply_outcome(&mut s, &OutcomeKind::TookOver { holding: None }, at, p);
        let resolved = OutcomeKind::Resolved {
            seconds_to_resolve: f64::NAN,
            goliath_assigned: false,
            took_over: true,
        };
        apply_outcome(&mut s, &resolved, at, p);
    }
    s
}

#[test]
fn right_picks_count_as_ownership_only_where_people_take_over_the_wrong_ones() {
    let p = ModelParams {
        explore_scale: 0.0,
        ..ModelParams::default()
    };
    // `a` resolved six picks of Goliath's and handed four on.
    let picked = {
        let mut s = resolves(6, true, &p);
        for i in 0..4 {
            let at = t0() + chrono::Duration::hours(10 + i);
            apply_outcome(&mut s, &OutcomeKind::HANDED_OFF, at, &p);
        }
        s
    };
    // Each right pick is owned work, and Goliath's (decayed alike).
    assert!(
        picked.owned > 5.9 && picked.owned == picked.assigned,
        "{picked:?}"
    );
    let experience = |b_state: Option<SkillState>| {
        let mut a = cand("a");
        a.skill.push(record(Severity::Sev3, picked.clone()));
        let mut b = cand("b");
        b.skill.extend(b_state.map(|s| record(Severity::Sev3, s)));
        let d = decide(&input("w", Severity::Sev3, vec![a, b]), &p);
        (experience_of(&d, "a"), experience_of(&d, "b"))
    };
    // Nobody took the handed-on work over (Goliath routed every attempt): a's right picks are
    // no evidence of ownership, and the shares stay even.
    let (a, b) = experience(None);
    assert!((a - b).abs() < 1e-12, "{a} {b}");
    // `b` took the four over: people route this work, so a's right picks count (at the
    // take-over rate 4/5) and a owns more of it than b.
    let (a, b) = experience(Some(took_over(4, &p)));
    assert!(a > b + 0.05, "{a} {b}");
}

#[test]
fn take_overs_hold_exploration_back_before_anything_resolves() {
    // Work runs for weeks: people have taken plenty over, nothing has closed yet.
    let p = ModelParams::default();
    let draws = |take_overs: usize| {
        let mut total = 0.0;
        for i in 0..40 {
            let mut a = cand("a");
            let mut b = cand("b");
            let mut s = SkillState::default();
            for k in 0..take_overs {
                let at = t0() + chrono::Duration::hours(k as i64);
                apply_outcome(&mut s, &OutcomeKind::TookOver { holding: None }, at, &p);
            }
            a.skill.push(record(Severity::Sev4, s.clone()));
            b.skill.push(record(Severity::Sev4, s));
            let d = decide(&input(&format!("w{i}"), Severity::Sev4, vec![a, b]), &p);
            total += d
                .ranking
                .iter()
                .map(|r| r.components.exploration.abs())
                .sum::<f64>();
        }
        total
    };
    let (none, many) = (draws(0), draws(30));
    assert!(none > 0.0);
    assert!(many < none / 20.0, "{many} vs {none}");
}

#[test]
fn where_the_count_has_won_the_disagreements_the_picks_follow_it_within_usual_loads() {
    let p = ModelParams::default();
    // Alice owns the most work here but resolves few without a hand-off; Bob owns less and
    // resolves all of it; Cid owns the most of all but is at his cap.
    let mut alice = cand("alice");
    let mut alice_state = took_over(6, &p);
    alice_state.failures += 6.0;
    alice.skill.push(record(Severity::Sev2, alice_state));
    let mut bob = cand("bob");
    bob.skill.push(record(Severity::Sev2, took_over(3, &p)));
    let mut cid = cand("cid");
    cid.skill.push(record(Severity::Sev2, took_over(9, &p)));
    cid.open_items = 5;
    cid.max_active = Some(6);
    let mut inp = input("w1", Severity::Sev2, vec![alice, bob, cid]);
    let model = decide(&inp, &p);
    assert_eq!(model.primary.as_deref(), Some("bob"), "{model:?}");
    assert_eq!(picks_of(&model.ranking), (Some("bob"), Some("alice")));
    assert!(!model.explanation.contains("follow the count"));

    // The count's pick has lately resolved more of the incidents where the two disagreed.
    let mut w = TermWeights::default();
    for _ in 0..2 {
        assert!(w.tally(Some("bob"), Some("alice"), Some("alice"), t0(), 60.0));
    }
    assert!(w.trusts_count());
    inp.weights = w;
    let counted = decide(&inp, &p);
    let order: Vec<&str> = counted
        .ranking
        .iter()
        .map(|c| c.human_id.as_str())
        .collect();
    // By count among those within their usual load, then the rest in the model's order.
    assert_eq!(order, ["alice", "bob", "cid"], "{counted:?}");
    assert_eq!(counted.primary.as_deref(), Some("alice"));
    assert!(
        counted.explanation.contains("follow the count")
            && counted.explanation.contains("the model's own pick was bob"),
        "{}",
        counted.explanation
    );
    // The same input decides the same way, the stored weights included.
    assert_eq!(decide(&inp, &p), counted);
}

#[test]
fn explanations_name_exploration_only_where_something_was_drawn() {
    let p = ModelParams::default();
    // A proven person and a newcomer: the uncertainty term separates them.
    let mut proven = cand("proven");
    proven
        .skill
        .push(record(Severity::Sev3, history(10, 1, 3600.0, &p)));
    let newcomer = cand("newcomer");
    let explain = |severity: Severity, recommend_only: bool| {
        let mut inp = input(
            "w-explain",
            severity,
            vec![proven.clone(), newcomer.clone()],
        );
        inp.recommend_only = recommend_only;
        decide(&inp, &p).explanation
    };
    for severity in [Severity::Sev1, Severity::Sev2] {
        let text = explain(severity, false);
        assert!(!text.contains("exploration"), "{severity}: {text}");
        assert!(text.contains("conservative"), "{severity}: {text}");
    }
    let recommended = explain(Severity::Sev3, true);
    assert!(!recommended.contains("exploration"), "{recommended}");
    assert!(recommended.contains("never explored"), "{recommended}");
    let assigned = explain(Severity::Sev3, false);
    assert!(assigned.contains("exploration"), "{assigned}");
}
