//! `goliath bench …`: load and latency benchmarks against a Goliath started in-process on a
//! private embedded PostgreSQL (or a given database / server). Tooling, not domain code: it
//! drives the real HTTP server, the real job workers and the built-in Jira simulator.
//!
//! * `bench ingest`: signed PagerDuty webhooks at 16 and 64 connections, next to pgbench running
//!   a comparable transaction on the same cluster.
//! * `bench jira-latency`: time from the PagerDuty webhook to the Jira issue existing.
//! * `bench decide`: decision latency with database reads, and the pure scoring alone.
//! * `bench stalled-bodies`: memory and open files under stalled unauthenticated bodies.

pub mod cpu;
pub mod decide;
pub mod harness;
pub mod ingest;
pub mod jira_latency;
pub mod load;
pub mod stalled;

use clap::{Args, Subcommand};

/// `goliath bench <what>`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Postgres URL to measure against. Unset: a private cluster is started.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum BenchCommand {
    /// Webhooks per second and latency at 16 and 64 connections, next to pgbench.
    Ingest(ingest::IngestArgs),
    /// Time from the PagerDuty webhook to the Jira issue existing in the simulator.
    JiraLatency(jira_latency::JiraLatencyArgs),
    /// Decision latency with database reads (1,000 people), and the pure scoring alone.
    Decide(decide::DecideArgs),
    /// Memory and open files under clients that send most of a large body and stall, and
    /// valid webhooks' latency meanwhile.
    StalledBodies(stalled::StalledArgs),
}

/// Runs one benchmark. `database_url` is the configured `DATABASE_URL`, if any (otherwise a
/// private cluster is started in a temporary directory and removed afterwards).
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let database_url = args.database_url.as_deref();
    match args.command {
        BenchCommand::Ingest(a) => ingest::run(a, database_url),
        BenchCommand::JiraLatency(a) => jira_latency::run(a, database_url),
        BenchCommand::Decide(a) => decide::run(a, database_url),
        BenchCommand::StalledBodies(a) => stalled::run(a, database_url),
    }
}
