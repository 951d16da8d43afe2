//! Latency bench of [`decide`] on a large, fully populated roster.

use chrono::{Duration, TimeZone, Utc};

use crate::routing::rng::SplitMix64;
use crate::routing::{
    apply_outcome, decide, CandidateInput, DecisionInput, ModelParams, OutcomeKind, Severity,
    SkillRecord, SkillState,
};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct BenchResult {
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// Builds `people` candidates over `services` services, each with history on every severity of
/// the decided service, and times `iterations` decisions.
pub fn bench_decide(humans: usize, services: usize, iterations: usize) -> BenchResult {
    let params = ModelParams::default();
    let mut r = SplitMix64::new(42);
    let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let services = services.max(1);
    let candidates: Vec<CandidateInput> = (0..humans)
        .map(|h| {
            let skill = Severity::ALL
                .iter()
                .map(|&sev| {
                    let mut st = SkillState::default();
                    for k in 0..20 {
                        let kind = if r.next_f64() < 0.8 {
                            OutcomeKind::Resolved {
                                seconds_to_resolve: 3600.0 * (r.normal() * 0.7).exp(),
                                goliath_assigned: k % 2 == 0,
                                took_over: false,
                            }
                        } else {
                            OutcomeKind::HANDED_OFF
                        };
                        apply_outcome(&mut st, &kind, t0 + Duration::hours(k), &params);
                    }
                    SkillRecord {
                        service: "service-0".to_string(),
                        severity: sev,
                        state: st,
                    }
                })
                .collect();
            let mut overall = SkillState::default();
            apply_outcome(&mut overall, &OutcomeKind::HANDED_OFF, t0, &params);
            CandidateInput {
                human_id: format!("person-{h:05}"),
                active: h % 50 != 7,
                services: (0..3)
                    .map(|k| format!("service-{}", (h + k) % services))
                    .chain(std::iter::once("service-0".to_string()))
                    .collect(),
                max_active: Some(5),
                open_items: (h % 4) as u32,
                on_call: h % 97 == 0,
                skill,
                context_skill: Vec::new(),
                overall: Some(overall),
            }
        })
        .collect();
    let mut input = DecisionInput {
        work_item_id: String::new(),
        service: "service-0".to_string(),
        severity: Severity::Sev3,
        at: t0 + Duration::days(3),
        candidates,
        context: Vec::new(),
        on_call_required: false,
        recommend_only: false,
        weights: Default::default(),
    };
    let mut times = Vec::with_capacity(iterations.max(1));
    for i in 0..iterations.max(1) {
        input.work_item_id = format!("bench-{i}");
        input.severity = Severity::ALL[i % 4];
        let t = std::time::Instant::now();
        let d = decide(&input, &params);
        times.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(d);
    }
    times.sort_by(f64::total_cmp);
    let pct = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    BenchResult {
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        max_us: *times.last().expect("non-empty"),
    }
}

/// Prints p50/p99/max latency of `decide` in microseconds.
pub fn run_bench_decide(humans: usize, services: usize, iterations: usize) {
    let b = bench_decide(humans, services, iterations);
    println!(
        "decide: {humans} people, {services} services, {iterations} iterations: p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        b.p50_us, b.p99_us, b.max_us
    );
}
