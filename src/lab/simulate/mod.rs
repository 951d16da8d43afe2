//! Simulation benchmark, real-history replay and latency bench for the routing model.
//!
//! * [`run_simulate`] (`goliath simulate`): a hidden-skill roster, policies compared on the same
//!   incident stream, normalized regret per block (see [`sim`] for the world and cost metric).
//! * [`run_replay`] (`goliath replay-bpic`): online replay of the BPIC 2013 incident log.
//! * [`run_bench_decide`]: latency of [`crate::routing::decide`] on a large roster.

pub mod bench;
pub mod csv;
pub mod replay;
pub mod replay_http;
pub mod sim;
pub mod xfce;

pub use bench::run_bench_decide;
pub use replay::{run_replay, ReplayArgs};

/// A real history `goliath replay` can replay.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// The BPIC 2013 Volvo IT incident log (`--path` its summary, `--events` its event log).
    Bpic,
    /// The Xfce Bugzilla bug list (`--path` the list; default `../shared/data/xfce/`).
    Xfce,
}

/// Options of `goliath replay`.
#[derive(clap::Args, Debug, Clone)]
pub struct ReplayCommand {
    /// Which history.
    #[arg(value_enum)]
    pub history: History,
    #[command(flatten)]
    pub args: ReplayArgs,
}

/// `goliath replay bpic|xfce`: one history through the router, against its lookups.
pub fn run_history(cmd: &ReplayCommand) -> anyhow::Result<()> {
    match cmd.history {
        History::Bpic => run_replay(&cmd.args),
        History::Xfce => {
            let mut args = cmd.args.clone();
            if args.path == ReplayArgs::default().path {
                args.path = xfce::DEFAULT_PATH.into();
            }
            xfce::run(&args)
        }
    }
}

use crate::routing::ModelParams;
use sim::{mean_over, normalized_regret, run_policy, IncidentResult, Policy, Scenario, World};

/// Options of `goliath simulate`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Seed of the roster, the incident stream and the outcomes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of incidents.
    #[arg(long, default_value_t = 2000)]
    pub incidents: usize,
    /// Number of people on the roster.
    #[arg(long, default_value_t = 20)]
    pub humans: usize,
    /// Number of services.
    #[arg(long, default_value_t = 5)]
    pub services: usize,
    /// Incidents per report block.
    #[arg(long, default_value_t = 250)]
    pub block: usize,
    /// Roster shape: default, specialists, generalists, noisy (or "all").
    #[arg(long, default_value = "default")]
    pub scenario: String,
    /// Run seeds `seed..seed+seeds` and print a summary (per-block tables only when 1).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// First incident of the overall regret window (the window ends at `incidents`).
    #[arg(long, default_value_t = 500)]
    pub warmup: usize,
    /// Model parameters as JSON (fields not given keep their defaults).
    #[arg(long)]
    pub params: Option<String>,
}

impl Default for SimulateArgs {
    fn default() -> Self {
        Self {
            seed: 1,
            incidents: 2000,
            humans: 20,
            services: 5,
            block: 250,
            scenario: "default".to_string(),
            seeds: 1,
            warmup: 500,
            params: None,
        }
    }
}

/// Results of all policies on one world.
pub struct SimOutcome {
    pub results: Vec<(Policy, Vec<IncidentResult>)>,
}

impl SimOutcome {
    fn of(&self, p: Policy) -> &[IncidentResult] {
        &self
            .results
            .iter()
            .find(|(q, _)| *q == p)
            .expect("every policy ran")
            .1
    }

    /// Normalized regret of `policy` on mean time to good resolution over `from..to`.
    pub fn regret(&self, policy: Policy, from: usize, to: usize) -> f64 {
        let m = |p| mean_over(self.of(p), from, to, |r| r.cost_h);
        normalized_regret(m(policy), m(Policy::Random), m(Policy::Oracle))
    }
}

/// Runs every policy on the world generated from `seed`.
pub fn simulate_once(
    args: &SimulateArgs,
    scenario: Scenario,
    seed: u64,
    params: &ModelParams,
) -> SimOutcome {
    let world = World::generate(seed, args.humans, args.services, args.incidents, scenario);
    SimOutcome {
        results: Policy::ALL
            .iter()
            .map(|&p| (p, run_policy(&world, p, seed, params)))
            .collect(),
    }
}

fn print_blocks(out: &SimOutcome, args: &SimulateArgs) {
    print!("{:>11}", "incidents");
    for p in Policy::ALL {
        print!(" {:>20}", p.name());
    }
    println!(" {:>8}", "regret");
    print!("{:>11}", "");
    for _ in Policy::ALL {
        print!(" {:>20}", "ttgr_h mttr_h hand%");
    }
    println!();
    let block = args.block.max(1);
    let mut from = 0;
    while from < args.incidents {
        let to = (from + block).min(args.incidents);
        print!("{:>11}", format!("{from}-{to}"));
        for p in Policy::ALL {
            let rs = out.of(p);
            print!(
                " {:>7.2} {:>6.2} {:>5.1}",
                mean_over(rs, from, to, |r| r.cost_h),
                mean_over(rs, from, to, |r| r.resolve_h),
                100.0 * mean_over(rs, from, to, |r| f64::from(r.handoffs.min(1)))
            );
        }
        println!(" {:>8.3}", out.regret(Policy::Goliath, from, to));
        from = to;
    }
}

/// `goliath simulate`: prints per-block and overall results; with `--seeds N`, a summary.
pub fn run_simulate(args: &SimulateArgs) -> anyhow::Result<()> {
    let params = replay::params_from_json(args.params.as_deref())?;
    let scenarios: Vec<&str> = if args.scenario == "all" {
        Scenario::NAMES.to_vec()
    } else {
        vec![args.scenario.as_str()]
    };
    println!(
        "cost = time to good resolution (hours from arrival to the resolution that sticks); \
         ttgr_h = its mean, mttr_h = mean hours the final resolver worked, hand% = incidents with a hand-off; \
         regret = (goliath - oracle) / (random - oracle) on ttgr"
    );
    let window = (args.warmup.min(args.incidents), args.incidents);
    for name in scenarios {
        let scenario = Scenario::parse(name)?;
        let mut regrets = Vec::new();
        for seed in args.seed..args.seed + args.seeds.max(1) {
            let out = simulate_once(args, scenario, seed, &params);
            if args.seeds <= 1 {
                println!(
                    "\nscenario {name}, seed {seed}: {} people, {} services, {} incidents",
                    args.humans, args.services, args.incidents
                );
                print_blocks(&out, args);
            }
            let mut line = format!(
                "{name:>12} seed {seed:>3} incidents {}-{}:",
                window.0, window.1
            );
            for p in Policy::ALL {
                line.push_str(&format!(
                    " {} {:.2}h",
                    p.name(),
                    mean_over(out.of(p), window.0, window.1, |r| r.cost_h)
                ));
            }
            let g = out.regret(Policy::Goliath, window.0, window.1);
            line.push_str(&format!(
                " | regret goliath {:.3} round-robin {:.3} least-loaded {:.3}",
                g,
                out.regret(Policy::RoundRobin, window.0, window.1),
                out.regret(Policy::LeastLoaded, window.0, window.1)
            ));
            println!("{line}");
            regrets.push(g);
        }
        if regrets.len() > 1 {
            let mean = regrets.iter().sum::<f64>() / regrets.len() as f64;
            let max = regrets.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let pass = regrets.iter().filter(|&&r| r <= 0.10).count();
            println!(
                "{name:>12} summary over {} seeds: goliath normalized regret mean {:.3}, worst {:.3}, <= 0.10 in {}/{}",
                regrets.len(),
                mean,
                max,
                pass,
                regrets.len()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_simulation_beats_random() {
        let args = SimulateArgs {
            incidents: 800,
            humans: 12,
            services: 3,
            ..SimulateArgs::default()
        };
        let out = simulate_once(&args, Scenario::Default, 3, &ModelParams::default());
        // Mean cost after the first 300 incidents, policy by policy.
        let cost = |p| mean_over(out.of(p), 300, 800, |r| r.cost_h);
        for other in [Policy::Random, Policy::RoundRobin, Policy::LeastLoaded] {
            assert!(
                cost(Policy::Goliath) < cost(other),
                "goliath {:.2} h, {other:?} {:.2} h",
                cost(Policy::Goliath),
                cost(other)
            );
        }
        // And closer to the oracle than to random.
        let regret = out.regret(Policy::Goliath, 300, 800);
        assert!(regret < 0.5, "goliath regret {regret}");
    }

    #[test]
    fn oracle_beats_random() {
        let args = SimulateArgs {
            incidents: 600,
            humans: 12,
            services: 3,
            ..SimulateArgs::default()
        };
        let out = simulate_once(&args, Scenario::Specialists, 5, &ModelParams::default());
        let m = |p| mean_over(out.of(p), 0, 600, |r| r.cost_h);
        assert!(m(Policy::Oracle) < m(Policy::Random));
    }
}
