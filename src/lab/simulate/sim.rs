//! Simulation benchmark: does the routing model learn who is good at what?
//!
//! A roster has a HIDDEN skill model per (person, service): the chance to resolve without a
//! hand-off, the chance a resolution gets reopened, and a log-normal time to resolve that grows
//! with the person's open load (`x (1 + 0.5 * open_items)`). Each service has a daily on-call
//! rotation among the people who cover it; anyone else first needs to be paged, which adds
//! [`PAGE_DELAY_H`]. Incidents arrive as a Poisson stream with random services and severities
//! (sev1 5%, sev2 15%, sev3 40%, sev4 40%; critical incidents are worked faster by everyone).
//!
//! An assignment either resolves after its time, hands off after half of it, or resolves and is
//! reopened two hours later. After a hand-off or a reopen the same policy routes the incident
//! again among people who have not had it yet (at most [`MAX_ATTEMPTS`] attempts; the last one
//! always resolves). Outcomes reach the learner at their event time, in time order, through
//! [`apply_outcome`]; loads are tracked and items close when resolved. Goliath assigns every
//! attempt here, so resolves carry `goliath_assigned: true`, and an on-call person Goliath never
//! assigned gets [`apply_on_call_outcome`] once the incident has its good resolution.
//!
//! **Cost metric**: time to good resolution (hours from arrival until the resolution that
//! sticks), so hand-offs and reopens cost the time they wasted plus the re-routing.
//! **Normalized regret** over a range of incidents = `(policy - oracle) / (random - oracle)` on
//! the mean cost; 0 is as good as the oracle, 1 is no better than random.
//!
//! Every policy sees the same incident stream, and an assignment of incident `i`, attempt `k`
//! to person `h` has the same outcome draw under every policy (common random numbers).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::routing::rng::{mix64, SplitMix64};
use crate::routing::{
    apply_on_call_outcome, apply_outcome, decide, picks_of, CandidateInput, DecisionInput,
    ModelParams, OutcomeKind, ScoreComponents, ScoredCandidate, Severity, SkillRecord, SkillState,
    TermWeights,
};

/// Extra hours before someone who is not on call starts working.
pub const PAGE_DELAY_H: f64 = 0.25;
/// Maximum routing attempts per incident.
pub const MAX_ATTEMPTS: usize = 4;
/// Load slow-down per open item.
pub const LOAD_SLOWDOWN: f64 = 0.5;

/// Roster shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// People cover 1-3 services, two generalists cover all; skills vary widely.
    Default,
    /// Narrow specialists (1-2 services) with sharp skill differences; two generalists.
    Specialists,
    /// Everyone covers every service; milder skill differences.
    Generalists,
    /// Like default, but outcomes are very noisy and skill differences smaller.
    Noisy,
}

impl Scenario {
    /// Parses a scenario name.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "default" => Scenario::Default,
            "specialists" => Scenario::Specialists,
            "generalists" => Scenario::Generalists,
            "noisy" => Scenario::Noisy,
            _ => anyhow::bail!("unknown scenario {s:?} (default, specialists, generalists, noisy)"),
        })
    }

    /// All scenario names.
    pub const NAMES: [&'static str; 4] = ["default", "specialists", "generalists", "noisy"];
}

/// Hidden truth for one (person, service).
#[derive(Debug, Clone, Copy)]
pub struct HiddenSkill {
    pub p_resolve: f64,
    pub p_reopen: f64,
    pub median_hours: f64,
}

/// The hidden world.
#[derive(Debug, Clone)]
pub struct World {
    pub humans: Vec<String>,
    /// Services each person covers (indices).
    pub covers: Vec<Vec<usize>>,
    /// `skill[person][service]`.
    pub skill: Vec<Vec<HiddenSkill>>,
    pub max_active: Vec<Option<u32>>,
    pub services: Vec<String>,
    pub noise_sigma: f64,
    pub incidents: Vec<Incident>,
}

/// One incident of the stream.
#[derive(Debug, Clone, Copy)]
pub struct Incident {
    pub at_h: f64,
    pub service: usize,
    pub severity: Severity,
}

fn sev_time_factor(s: Severity) -> f64 {
    match s {
        Severity::Sev1 => 0.5,
        Severity::Sev2 => 0.7,
        Severity::Sev3 => 1.0,
        Severity::Sev4 => 1.2,
    }
}

impl World {
    /// Builds a roster and incident stream from a seed.
    pub fn generate(
        seed: u64,
        humans: usize,
        services: usize,
        incidents: usize,
        scenario: Scenario,
    ) -> World {
        let humans = humans.max(2);
        let services = services.max(1);
        let mut r = SplitMix64::new(mix64(seed ^ 0x5eed_0001));
        let (min_cov, max_cov, spread, noise) = match scenario {
            Scenario::Default => (1, 3, 1.0, 0.5),
            Scenario::Specialists => (1, 2, 1.3, 0.5),
            Scenario::Generalists => (services, services, 0.7, 0.5),
            Scenario::Noisy => (1, 3, 0.6, 1.0),
        };
        let generalists = if scenario == Scenario::Generalists {
            humans
        } else {
            2
        };
        let mut covers: Vec<Vec<usize>> = Vec::with_capacity(humans);
        for h in 0..humans {
            if h < generalists {
                covers.push((0..services).collect());
                continue;
            }
            let k = (min_cov + r.below(max_cov - min_cov + 1)).min(services);
            let mut set: Vec<usize> = Vec::new();
            // Spread primary coverage evenly, then add random extra services.
            set.push(h % services);
            while set.len() < k {
                let s = r.below(services);
                if !set.contains(&s) {
                    set.push(s);
                }
            }
            set.sort_unstable();
            covers.push(set);
        }
        // Every service needs at least three people.
        for s in 0..services {
            let mut n = covers.iter().filter(|c| c.contains(&s)).count();
            let mut h = generalists;
            while n < 3 && h < humans {
                if !covers[h].contains(&s) {
                    covers[h].push(s);
                    covers[h].sort_unstable();
                    n += 1;
                }
                h += 1;
            }
        }
        let mut skill = Vec::with_capacity(humans);
        for _ in 0..humans {
            let talent = r.normal() * 0.5;
            let mut row = Vec::with_capacity(services);
            for _ in 0..services {
                let s = spread * (talent + r.normal());
                // Logistic success around 0.78, times around 3 h; skill helps both.
                let p = 1.0 / (1.0 + (-(1.3 + 1.1 * s)).exp());
                let p_reopen = 0.02 + 0.06 * r.next_f64() * (1.0 - p);
                let median = 3.0 * (-0.35 * s + 0.35 * r.normal()).exp();
                row.push(HiddenSkill {
                    p_resolve: p.clamp(0.05, 0.99),
                    p_reopen,
                    median_hours: median.clamp(0.2, 48.0),
                });
            }
            skill.push(row);
        }
        let max_active = (0..humans)
            .map(|h| {
                if h % 4 == 3 {
                    None
                } else {
                    Some(4 + (h % 3) as u32)
                }
            })
            .collect();
        // Arrival rate: about 30% of the roster busy on average.
        let mean_gap_h = 3.5 / (humans as f64 * 0.3);
        let mut at_h = 0.0;
        let mut stream = Vec::with_capacity(incidents);
        for _ in 0..incidents {
            at_h += -mean_gap_h * r.next_f64().ln();
            let u = r.next_f64();
            let severity = if u < 0.05 {
                Severity::Sev1
            } else if u < 0.20 {
                Severity::Sev2
            } else if u < 0.60 {
                Severity::Sev3
            } else {
                Severity::Sev4
            };
            stream.push(Incident {
                at_h,
                service: r.below(services),
                severity,
            });
        }
        World {
            humans: (0..humans).map(|h| format!("person-{h:03}")).collect(),
            covers,
            skill,
            max_active,
            services: (0..services).map(|s| format!("service-{s}")).collect(),
            noise_sigma: noise,
            incidents: stream,
        }
    }

    /// On-call person for a service at an hour: a daily rotation among those who cover it.
    pub fn on_call(&self, service: usize, at_h: f64) -> Option<usize> {
        let team: Vec<usize> = (0..self.humans.len())
            .filter(|&h| self.covers[h].contains(&service))
            .collect();
        if team.is_empty() {
            return None;
        }
        let day = (at_h / 24.0).floor() as usize;
        Some(team[(day + service) % team.len()])
    }

    fn eligible(&self, service: usize, load: &[u32], tried: &[usize]) -> Vec<usize> {
        let all: Vec<usize> = (0..self.humans.len())
            .filter(|&h| self.covers[h].contains(&service) && !tried.contains(&h))
            .collect();
        let free: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&h| self.max_active[h].is_none_or(|m| load[h] < m))
            .collect();
        if free.is_empty() {
            all
        } else {
            free
        }
    }

    /// Expected time to good resolution of assigning `h` now (what the oracle minimizes).
    pub fn expected_cost(&self, h: usize, inc: &Incident, load: u32, on_call: bool) -> f64 {
        let k = self.skill[h][inc.service];
        let t = k.median_hours
            * sev_time_factor(inc.severity)
            * (1.0 + LOAD_SLOWDOWN * f64::from(load))
            * (0.5 * self.noise_sigma * self.noise_sigma).exp();
        let delay = if on_call { 0.0 } else { PAGE_DELAY_H };
        let p_good = k.p_resolve * (1.0 - k.p_reopen);
        (t + delay) / p_good
    }
}

/// Routing policies under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Goliath,
    Random,
    RoundRobin,
    LeastLoaded,
    Oracle,
}

impl Policy {
    pub const ALL: [Policy; 5] = [
        Policy::Goliath,
        Policy::Random,
        Policy::RoundRobin,
        Policy::LeastLoaded,
        Policy::Oracle,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Policy::Goliath => "goliath",
            Policy::Random => "random",
            Policy::RoundRobin => "round-robin",
            Policy::LeastLoaded => "least-loaded",
            Policy::Oracle => "oracle",
        }
    }
}

/// Per-incident result of one policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct IncidentResult {
    /// Hours from arrival to the good resolution.
    pub cost_h: f64,
    /// Hours the final resolver worked (from their assignment to the resolve).
    pub resolve_h: f64,
    pub handoffs: u32,
    pub reopens: u32,
}

#[derive(Debug)]
enum Ev {
    Route {
        inc: usize,
        attempt: usize,
    },
    Done {
        inc: usize,
        attempt: usize,
        human: usize,
        kind: Done,
    },
}

#[derive(Debug, Clone, Copy)]
enum Done {
    Resolved { worked_h: f64, reopen: bool },
    Reopened,
    HandedOff,
}

struct Learner {
    params: ModelParams,
    state: HashMap<(usize, usize, Severity), SkillState>,
    overall: Vec<SkillState>,
    /// The term weights, fitted to who resolved each incident.
    weights: TermWeights,
    /// Each incident's latest decision: its pick's components and the weights it used.
    decisions: HashMap<usize, (ScoreComponents, TermWeights)>,
    /// Each incident's first decision's model pick and count pick: the product keeps one
    /// decision per incident and tallies them against the resolver.
    first_picks: HashMap<usize, (Option<String>, Option<String>)>,
}

fn time_of(h: f64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + Duration::milliseconds((h * 3.6e6) as i64)
}

/// Runs one policy over the world's incident stream.
pub fn run_policy(
    world: &World,
    policy: Policy,
    seed: u64,
    params: &ModelParams,
) -> Vec<IncidentResult> {
    let n = world.incidents.len();
    let np = world.humans.len();
    let mut results = vec![IncidentResult::default(); n];
    let mut tried: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut load = vec![0u32; np];
    let mut rr = vec![0usize; world.services.len()];
    let mut pick_rng = SplitMix64::new(mix64(seed ^ 0xabcd_ef01));
    let mut learner = Learner {
        params: params.clone(),
        state: HashMap::new(),
        overall: vec![SkillState::default(); np],
        weights: TermWeights::default(),
        decisions: HashMap::new(),
        first_picks: HashMap::new(),
    };
    // On-call person of incidents Goliath did not assign to them (so far).
    let mut on_call_trial: Vec<Option<usize>> = vec![None; n];
    // Min-heap on (time in microhours, sequence).
    let mut heap: BinaryHeap<Reverse<(i64, u64)>> = BinaryHeap::new();
    let mut events: HashMap<u64, Ev> = HashMap::new();
    let mut seq: u64 = 0;
    let mut push = |heap: &mut BinaryHeap<Reverse<(i64, u64)>>,
                    events: &mut HashMap<u64, Ev>,
                    at_h: f64,
                    ev: Ev| {
        seq += 1;
        heap.push(Reverse(((at_h * 1e6) as i64, seq)));
        events.insert(seq, ev);
    };
    for (i, inc) in world.incidents.iter().enumerate() {
        push(
            &mut heap,
            &mut events,
            inc.at_h,
            Ev::Route { inc: i, attempt: 0 },
        );
    }
    let mut assigned_at = vec![0.0f64; n];

    while let Some(Reverse((t_micro, id))) = heap.pop() {
        let now = t_micro as f64 / 1e6;
        let ev = events.remove(&id).expect("event stored");
        match ev {
            Ev::Route { inc, attempt } => {
                let incident = &world.incidents[inc];
                let cands = world.eligible(incident.service, &load, &tried[inc]);
                let cands = if cands.is_empty() {
                    // Everyone covering the service already had it: start over.
                    tried[inc].clear();
                    world.eligible(incident.service, &load, &tried[inc])
                } else {
                    cands
                };
                let on_call = world.on_call(incident.service, now);
                let h = match policy {
                    Policy::Random => cands[pick_rng.below(cands.len())],
                    Policy::RoundRobin => {
                        let team: Vec<usize> = (0..np)
                            .filter(|&h| world.covers[h].contains(&incident.service))
                            .collect();
                        let mut pick = cands[0];
                        for _ in 0..team.len() {
                            let c = team[rr[incident.service] % team.len()];
                            rr[incident.service] += 1;
                            if cands.contains(&c) {
                                pick = c;
                                break;
                            }
                        }
                        pick
                    }
                    Policy::LeastLoaded => {
                        let min = cands.iter().map(|&h| load[h]).min().unwrap_or(0);
                        let ties: Vec<usize> =
                            cands.iter().copied().filter(|&h| load[h] == min).collect();
                        ties[pick_rng.below(ties.len())]
                    }
                    Policy::Oracle => *cands
                        .iter()
                        .min_by(|&&a, &&b| {
                            world
                                .expected_cost(a, incident, load[a], on_call == Some(a))
                                .total_cmp(&world.expected_cost(
                                    b,
                                    incident,
                                    load[b],
                                    on_call == Some(b),
                                ))
                                .then(a.cmp(&b))
                        })
                        .expect("non-empty"),
                    Policy::Goliath => {
                        let (h, ranking) = goliath_pick(
                            world,
                            &learner,
                            inc,
                            attempt,
                            now,
                            &load,
                            &tried[inc],
                            on_call,
                        );
                        if let Some(first) =
                            ranking.first().filter(|c| c.human_id == world.humans[h])
                        {
                            let used = learner.weights.clone();
                            learner
                                .decisions
                                .insert(inc, (first.components.clone(), used));
                        }
                        if attempt == 0 {
                            let (model, count) = picks_of(&ranking);
                            let both = (model.map(str::to_string), count.map(str::to_string));
                            learner.first_picks.insert(inc, both);
                        }
                        h
                    }
                };
                if policy == Policy::Goliath {
                    if attempt == 0 {
                        on_call_trial[inc] = on_call.filter(|&o| o != h && cands.contains(&o));
                    } else if on_call_trial[inc] == Some(h) {
                        // Assigned on a later attempt: no longer a case of keeping it anyway.
                        on_call_trial[inc] = None;
                    }
                }
                tried[inc].push(h);
                load[h] += 1;
                assigned_at[inc] = now;
                // Common random numbers: the draw depends on (incident, attempt, person) only.
                let mut d = SplitMix64::new(mix64(
                    seed ^ (inc as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        ^ (attempt as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
                        ^ (h as u64).wrapping_mul(0x1656_67b1_9e37_79f9),
                ));
                let k = world.skill[h][incident.service];
                let delay = if on_call == Some(h) {
                    0.0
                } else {
                    PAGE_DELAY_H
                };
                let work = k.median_hours
                    * sev_time_factor(incident.severity)
                    * (1.0 + LOAD_SLOWDOWN * f64::from(load[h] - 1))
                    * (world.noise_sigma * d.normal()).exp();
                let u_resolve = d.next_f64();
                let u_reopen = d.next_f64();
                let last = attempt + 1 >= MAX_ATTEMPTS;
                let (at, kind) = if last || u_resolve < k.p_resolve {
                    let reopen = !last && u_reopen < k.p_reopen;
                    (
                        now + delay + work,
                        Done::Resolved {
                            worked_h: delay + work,
                            reopen,
                        },
                    )
                } else {
                    (now + delay + 0.5 * work, Done::HandedOff)
                };
                push(
                    &mut heap,
                    &mut events,
                    at,
                    Ev::Done {
                        inc,
                        attempt,
                        human: h,
                        kind,
                    },
                );
            }
            Ev::Done {
                inc,
                attempt,
                human,
                kind,
            } => {
                let incident = world.incidents[inc];
                let outcome = match kind {
                    Done::Resolved { worked_h, reopen } => {
                        load[human] -= 1;
                        if reopen {
                            push(
                                &mut heap,
                                &mut events,
                                now + 2.0,
                                Ev::Done {
                                    inc,
                                    attempt,
                                    human,
                                    kind: Done::Reopened,
                                },
                            );
                        } else {
                            results[inc].cost_h = now - incident.at_h;
                            results[inc].resolve_h = worked_h;
                            // The pick took and resolved it.
                            if let Some((picked, used)) = learner.decisions.remove(&inc) {
                                learner.weights.fit(&picked, &used, true);
                            }
                            if let Some((model, count)) = learner.first_picks.remove(&inc) {
                                let resolver = world.humans[human].as_str();
                                learner.weights.tally(
                                    model.as_deref(),
                                    count.as_deref(),
                                    Some(resolver),
                                    time_of(now),
                                    learner.params.half_life_days,
                                );
                            }
                            if let Some(o) = on_call_trial[inc] {
                                let at = time_of(now);
                                let kept = o == human;
                                let p = &learner.params;
                                let st = learner
                                    .state
                                    .entry((o, incident.service, incident.severity))
                                    .or_default();
                                apply_on_call_outcome(st, kept, at, p);
                                apply_on_call_outcome(&mut learner.overall[o], kept, at, p);
                            }
                        }
                        OutcomeKind::Resolved {
                            seconds_to_resolve: worked_h * 3600.0,
                            // Goliath routes every attempt in the simulation.
                            goliath_assigned: true,
                            took_over: false,
                        }
                    }
                    Done::HandedOff => {
                        load[human] -= 1;
                        if let Some((picked, used)) = learner.decisions.remove(&inc) {
                            learner.weights.fit(&picked, &used, false);
                        }
                        results[inc].handoffs += 1;
                        push(
                            &mut heap,
                            &mut events,
                            now,
                            Ev::Route {
                                inc,
                                attempt: attempt + 1,
                            },
                        );
                        OutcomeKind::HANDED_OFF
                    }
                    Done::Reopened => {
                        results[inc].reopens += 1;
                        if let Some((picked, used)) = learner.decisions.remove(&inc) {
                            learner.weights.fit(&picked, &used, false);
                        }
                        push(
                            &mut heap,
                            &mut events,
                            now,
                            Ev::Route {
                                inc,
                                attempt: attempt + 1,
                            },
                        );
                        OutcomeKind::Reopened
                    }
                };
                if policy == Policy::Goliath {
                    let at = time_of(now);
                    let st = learner
                        .state
                        .entry((human, incident.service, incident.severity))
                        .or_default();
                    apply_outcome(st, &outcome, at, &learner.params);
                    apply_outcome(&mut learner.overall[human], &outcome, at, &learner.params);
                }
            }
        }
    }
    results
}

#[allow(clippy::too_many_arguments)]
fn goliath_pick(
    world: &World,
    learner: &Learner,
    inc: usize,
    attempt: usize,
    now: f64,
    load: &[u32],
    tried: &[usize],
    on_call: Option<usize>,
) -> (usize, Vec<ScoredCandidate>) {
    let incident = &world.incidents[inc];
    let service = &world.services[incident.service];
    let candidates: Vec<CandidateInput> = (0..world.humans.len())
        .filter(|h| !tried.contains(h))
        .map(|h| CandidateInput {
            human_id: world.humans[h].clone(),
            active: true,
            services: world.covers[h]
                .iter()
                .map(|&s| world.services[s].clone())
                .collect(),
            max_active: world.max_active[h],
            open_items: load[h],
            on_call: on_call == Some(h),
            skill: Severity::ALL
                .iter()
                .filter_map(|&s| {
                    learner
                        .state
                        .get(&(h, incident.service, s))
                        .map(|st| SkillRecord {
                            service: service.clone(),
                            severity: s,
                            state: st.clone(),
                        })
                })
                .collect(),
            context_skill: Vec::new(),
            overall: Some(learner.overall[h].clone()),
        })
        .collect();
    let input = DecisionInput {
        work_item_id: format!("sim-{inc}-{attempt}"),
        service: service.clone(),
        severity: incident.severity,
        at: time_of(now),
        candidates,
        context: Vec::new(),
        on_call_required: false,
        recommend_only: false,
        weights: learner.weights.clone(),
    };
    let d = decide(&input, &learner.params);
    let pick = d
        .primary
        .as_deref()
        .and_then(|id| world.humans.iter().position(|p| p == id));
    let h = match pick {
        Some(h) => h,
        None => {
            // Undecided (everyone at capacity): least loaded of those who cover the service.
            let pool = world.eligible(incident.service, &vec![0; load.len()], tried);
            let pool = if pool.is_empty() {
                world.eligible(incident.service, &vec![0; load.len()], &[])
            } else {
                pool
            };
            *pool
                .iter()
                .min_by(|&&a, &&b| load[a].cmp(&load[b]).then(a.cmp(&b)))
                .expect("every service is covered")
        }
    };
    (h, d.ranking)
}

/// Mean of a metric over incidents `from..to`.
pub fn mean_over(
    rs: &[IncidentResult],
    from: usize,
    to: usize,
    f: impl Fn(&IncidentResult) -> f64,
) -> f64 {
    let to = to.min(rs.len());
    if from >= to {
        return f64::NAN;
    }
    rs[from..to].iter().map(f).sum::<f64>() / (to - from) as f64
}

/// Normalized regret `(g - o) / (r - o)`.
pub fn normalized_regret(g: f64, random: f64, oracle: f64) -> f64 {
    let den = random - oracle;
    if den.abs() < 1e-12 {
        0.0
    } else {
        (g - oracle) / den
    }
}
