//! `goliath bench ingest`: signed PagerDuty webhooks against Goliath at several connection
//! counts, and pgbench with a comparable transaction on the same PostgreSQL cluster.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use diesel::prelude::*;

use super::cpu::{CpuSample, CpuUsed};
use super::harness::{self, AppSpec, BenchDb, RunningApp};
use super::load::{self, IncidentSpec, IncidentTemplate, LoadResult};
use crate::db::embedded::{Durability, EmbeddedPostgres};
use crate::jira::SimConfig;

#[derive(Args, Debug, Clone)]
pub struct IngestArgs {
    /// Seconds of load per connection count (and per pgbench run).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Unmeasured warm-up seconds before each measured run.
    #[arg(long, default_value_t = 2)]
    pub warmup_seconds: u64,
    /// Concurrent connections, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    pub connections: Vec<usize>,
    /// Benchmark a running Goliath at this base URL instead of starting one in-process
    /// (pgbench then needs DATABASE_URL).
    #[arg(long)]
    pub url: Option<String>,
    /// PagerDuty webhook secret of the server at --url.
    #[arg(long, hide_env_values = true)]
    pub secret: Option<String>,
    /// People in the roster.
    #[arg(long, default_value_t = 20)]
    pub humans: usize,
    /// Services the incidents spread over.
    #[arg(long, default_value_t = 5)]
    pub services: usize,
    /// Background Jira worker threads (against the simulator); 0 disables them.
    #[arg(long, default_value_t = 2)]
    pub job_workers: usize,
    /// Intake writer threads (each commits one batch of deliveries at a time).
    #[arg(long, default_value_t = 2)]
    pub ingest_writers: usize,
    /// actix worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub http_threads: usize,
    /// Database connections in Goliath's pool.
    #[arg(long, default_value_t = 16)]
    pub pool_size: u32,
    /// Skip pgbench.
    #[arg(long)]
    pub no_pgbench: bool,
    /// Goliath-then-pgbench pairs per connection count; the summary gives each pair's ratio
    /// and their median (on a shared machine one pair can land on a noisy moment).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Keep per-request info logging on (off by default: it would measure the logger).
    #[arg(long)]
    pub verbose: bool,
}

const SERVICE_NAMES: [&str; 8] = [
    "api", "payments", "search", "mobile", "data", "auth", "billing", "edge",
];

pub fn service_names(n: usize) -> Vec<String> {
    (0..n.max(1))
        .map(|i| match SERVICE_NAMES.get(i) {
            Some(s) => s.to_string(),
            None => format!("service{i}"),
        })
        .collect()
}

pub fn run(args: IngestArgs, database_url: Option<&str>) -> anyhow::Result<()> {
    harness::quiet_logs(args.verbose);
    let services = service_names(args.services);
    let db = match (&args.url, database_url) {
        (Some(_), None) => None,
        (_, url) => Some(BenchDb::open(url, None, Durability::Durable)?),
    };
    let secret = match &args.url {
        Some(_) => args.secret.clone(),
        None => Some(harness::random_token("pagerduty")),
    };
    let app = match (&args.url, &db) {
        (Some(_), _) => None,
        (None, Some(db)) => Some(start_app(&args, db, &services, secret.clone())?),
        (None, None) => unreachable!("a database is opened when no --url is given"),
    };
    let base = match (&args.url, &app) {
        (Some(url), _) => url.trim_end_matches('/').to_string(),
        (None, Some(app)) => app.url(""),
        _ => unreachable!(),
    };
    let target = format!("{base}/webhooks/pagerduty");
    let pgbench = match (&db, args.no_pgbench) {
        (Some(db), false) => Some(Pgbench::prepare(&db.url)?),
        _ => None,
    };

    let wal_ahead = match &db {
        Some(db) => db.make_wal_ahead()?,
        None => None,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("bench ingest");
    println!(
        "  target: {} ({}), {} s per run after {} s warm-up",
        target,
        if app.is_some() {
            "in-process"
        } else {
            "external"
        },
        args.seconds,
        args.warmup_seconds
    );
    if let Some(app) = &app {
        println!(
            "  database: {} ({}), pool {}, actix workers {}, Jira workers {} ({})",
            if db.as_ref().is_some_and(BenchDb::is_embedded) {
                "fresh embedded PostgreSQL, fsync on"
            } else {
                "DATABASE_URL"
            },
            crate::config::redact_url(&db.as_ref().map(|d| d.url.clone()).unwrap_or_default()),
            args.pool_size,
            if args.http_threads == 0 {
                format!("{cores} (one per core)")
            } else {
                args.http_threads.to_string()
            },
            args.job_workers,
            if args.job_workers > 0 {
                format!(
                    "creating issues in the simulator at {}",
                    app.sim().base_url()
                )
            } else {
                "disabled".into()
            }
        );
        println!(
            "  roster: {} people over {} services; webhooks signed (PAGERDUTY_WEBHOOK_SECRET set)",
            args.humans,
            services.len()
        );
    }
    if let Some((files, took)) = wal_ahead {
        println!(
            "  WAL: {files} files made ahead in {:.1} s, as a long-running cluster has them \
             (a fresh cluster makes each as it is first needed, a stall for whoever runs first)",
            took.as_secs_f64()
        );
    }
    println!(
        "  note: Goliath, PostgreSQL, pgbench and the load generator all share this machine's \
         {cores} core(s); figures are relative, not absolute capacity"
    );

    let template = Arc::new(IncidentTemplate::new());
    let run_tag = harness::random_token("run")[..8].to_string();
    let mut seq_base = 0u64;
    let mut rows = vec![];
    let pairs: Vec<usize> = args
        .connections
        .iter()
        .flat_map(|&c| std::iter::repeat_n(c, args.rounds as usize))
        .collect();
    for &c in &pairs {
        let make = {
            let (template, services, run_tag) =
                (template.clone(), services.clone(), run_tag.clone());
            let humans = args.humans.max(1) as u64;
            Arc::new(move |seq: u64| {
                let incident = format!("B{run_tag}{seq:09}");
                let event = format!("E{run_tag}{seq:09}");
                let service = &services[(seq % services.len() as u64) as usize];
                let assignee = format!("PU{:04}", seq % humans);
                let body = template.body(&IncidentSpec {
                    event_id: &event,
                    incident_id: &incident,
                    number: seq + 1,
                    created_at: chrono::Utc::now(),
                    title: "CRITICAL: p99 latency > 2s",
                    service,
                    assignee: &assignee,
                });
                (event, body)
            }) as Arc<dyn Fn(u64) -> (String, Vec<u8>) + Send + Sync>
        };
        if args.warmup_seconds > 0 {
            let w = load::run_load(
                &target,
                secret.as_deref(),
                c,
                Duration::from_secs(args.warmup_seconds),
                seq_base,
                make.clone(),
            );
            seq_base += 10_000_000;
            check(&w)?;
        }
        let cpu_before = CpuSample::now();
        let r = load::run_load(
            &target,
            secret.as_deref(),
            c,
            Duration::from_secs(args.seconds),
            seq_base,
            make,
        );
        let goliath_cpu = used_since(cpu_before);
        seq_base += 10_000_000;
        check(&r)?;
        println!(
            "  goliath  c={c:<3} {:>8.0} webhooks/s  p50 {:>6.1} ms  p99 {:>6.1} ms  ({} ok, {} errors)",
            r.per_second(),
            r.latency_ms.p50,
            r.latency_ms.p99,
            r.ok,
            r.errors
        );
        if let Some(used) = goliath_cpu {
            println!(
                "           machine CPU {:.0} us per webhook, {:.0}% busy",
                used.micros_per(r.ok as f64),
                used.busy * 100.0
            );
        }
        let drained = match &app {
            Some(app) if args.job_workers > 0 => Some(drain_jobs(app)?),
            _ => None,
        };
        if let Some((d, n, retried)) = drained {
            println!(
                "           Jira queue drained {n} issue(s) in {:.1} s after the run; \
                 {retried} job(s) so far needed more than one attempt",
                d.as_secs_f64()
            );
        }
        let cpu_before = CpuSample::now();
        let pg = match &pgbench {
            Some(p) => Some(p.run(c, args.seconds)?),
            None => None,
        };
        let pgbench_cpu = used_since(cpu_before);
        if let Some(tps) = pg {
            println!(
                "  pgbench  c={c:<3} {tps:>8.0} tps         ratio goliath/pgbench {:.2}",
                r.per_second() / tps
            );
            if let (Some(pg_used), Some(g_used)) = (pgbench_cpu, goliath_cpu) {
                // What the ratio would be if both kept the machine equally busy.
                let per_tx = pg_used.micros_per(tps * args.seconds as f64);
                let per_webhook = g_used.micros_per(r.ok as f64);
                println!(
                    "           machine CPU {per_tx:.0} us per transaction, {:.0}% busy; \
                     CPU ratio (pgbench us per transaction / goliath us per webhook) {:.2}",
                    pg_used.busy * 100.0,
                    if per_webhook > 0.0 {
                        per_tx / per_webhook
                    } else {
                        0.0
                    }
                );
            }
        }
        rows.push((c, r, pg));
    }
    println!("  summary:");
    for (c, r, pg) in &rows {
        match pg {
            Some(tps) => println!(
                "    c={c:<3} goliath {:>7.0}/s (p50 {:.1} ms, p99 {:.1} ms)  pgbench {:>7.0} tps  ratio {:.2}",
                r.per_second(),
                r.latency_ms.p50,
                r.latency_ms.p99,
                tps,
                r.per_second() / tps
            ),
            None => println!(
                "    c={c:<3} goliath {:>7.0}/s (p50 {:.1} ms, p99 {:.1} ms)",
                r.per_second(),
                r.latency_ms.p50,
                r.latency_ms.p99
            ),
        }
    }
    if args.rounds > 1 {
        for &c in &args.connections {
            let mut ratios: Vec<f64> = rows
                .iter()
                .filter(|(rc, _, _)| *rc == c)
                .filter_map(|(_, r, pg)| pg.map(|tps| r.per_second() / tps))
                .collect();
            if ratios.is_empty() {
                continue;
            }
            let listed: Vec<String> = ratios.iter().map(|x| format!("{x:.2}")).collect();
            ratios.sort_by(f64::total_cmp);
            println!(
                "    c={c:<3} median ratio {:.2} over {} pairs ({})",
                median(&ratios),
                ratios.len(),
                listed.join(", ")
            );
        }
    }
    if let Some(p) = pgbench {
        p.cleanup();
    }
    if let Some(app) = app {
        app.stop();
    }
    drop(db);
    Ok(())
}

/// The median of sorted, non-empty `xs`.
fn median(xs: &[f64]) -> f64 {
    let mid = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[mid]
    } else {
        (xs[mid - 1] + xs[mid]) / 2.0
    }
}

fn check(r: &LoadResult) -> anyhow::Result<()> {
    if r.ok == 0 {
        anyhow::bail!(
            "no webhook succeeded at {} connections: {}",
            r.connections,
            r.first_error.as_deref().unwrap_or("no answer")
        );
    }
    if let Some(e) = &r.first_error {
        log::warn!("{} request(s) failed; first: {e}", r.errors);
    }
    Ok(())
}

fn start_app(
    args: &IngestArgs,
    db: &BenchDb,
    services: &[String],
    secret: Option<String>,
) -> anyhow::Result<RunningApp> {
    let pool = db.pool(args.pool_size)?;
    {
        let mut conn = pool.get()?;
        crate::roster::import(&mut conn, &harness::roster(args.humans, services))
            .map_err(|e| anyhow::anyhow!("loading the roster: {e}"))?;
    }
    let listener = harness::loopback_listener()?;
    let port = listener.local_addr()?.port();
    let config = harness::config_for(port, |s| {
        s.db_pool_size = args.pool_size;
        s.workers = args.job_workers;
        s.ingest_writers = args.ingest_writers;
        s.pagerduty_webhook_secret = secret;
        s.pagerduty_services = services
            .iter()
            .map(|svc| format!("{}={svc}", svc.to_uppercase()))
            .collect();
    })?;
    RunningApp::start(AppSpec {
        config,
        listener,
        pool,
        http_threads: args.http_threads,
        job_workers: args.job_workers,
        sim: SimConfig {
            play_humans: false,
            ..SimConfig::default()
        },
    })
}

/// Waits (at most 120 s) until no Jira job is queued or running; returns the time, the
/// number of jobs finished meanwhile, and how many jobs of the whole bench were retried.
fn drain_jobs(app: &RunningApp) -> anyhow::Result<(Duration, i64, i64)> {
    let start = Instant::now();
    let mut conn = app.state.pool.get()?;
    let pending = |conn: &mut PgConnection| -> QueryResult<i64> {
        let depth = crate::jobs::queue::depth(conn)?;
        Ok(depth["queued"].as_i64().unwrap_or(0) + depth["running"].as_i64().unwrap_or(0))
    };
    let before = pending(&mut conn)?;
    app.state.wake_workers();
    while start.elapsed() < Duration::from_secs(120) {
        if pending(&mut conn)? == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = start.elapsed();
    let retried: i64 = crate::db::schema::jobs::table
        .filter(crate::db::schema::jobs::attempts.gt(1))
        .count()
        .get_result(&mut conn)?;
    Ok((took, before - pending(&mut conn)?, retried))
}

/// pgbench with a custom script on the benchmark's cluster: per transaction one ~2 KB JSONB
/// insert into a table with a unique text key (like a webhook and its delivery id) and one
/// small insert, committed together.
struct Pgbench {
    bin: std::path::PathBuf,
    url: String,
    script: std::path::PathBuf,
}

const PGBENCH_SCRIPT: &str = "\
BEGIN;
INSERT INTO bench_pgbench_payloads (delivery_id, payload) VALUES (md5(random()::text || clock_timestamp()::text), jsonb_build_object('body', repeat('x', 2000)));
INSERT INTO bench_pgbench_marks (payload_id, kind) VALUES (currval('bench_pgbench_payloads_id_seq'), 'received');
END;
";

impl Pgbench {
    fn prepare(url: &str) -> anyhow::Result<Pgbench> {
        let bin = EmbeddedPostgres::find_bin_dir()?.join("pgbench");
        anyhow::ensure!(
            bin.is_file(),
            "pgbench not found next to initdb ({}); use --no-pgbench",
            bin.display()
        );
        let mut conn = PgConnection::establish(url)?;
        diesel::sql_query(
            "CREATE TABLE IF NOT EXISTS bench_pgbench_payloads (id bigserial PRIMARY KEY, \
             delivery_id text NOT NULL UNIQUE, payload jsonb NOT NULL, \
             created_at timestamptz NOT NULL DEFAULT now())",
        )
        .execute(&mut conn)?;
        diesel::sql_query(
            "CREATE TABLE IF NOT EXISTS bench_pgbench_marks (id bigserial PRIMARY KEY, \
             payload_id bigint NOT NULL, kind text NOT NULL, \
             at timestamptz NOT NULL DEFAULT now())",
        )
        .execute(&mut conn)?;
        let script =
            std::env::temp_dir().join(format!("goliath-bench-pgbench-{}.sql", std::process::id()));
        std::fs::write(&script, PGBENCH_SCRIPT)?;
        Ok(Pgbench {
            bin,
            url: url.to_string(),
            script,
        })
    }

    /// Runs pgbench for `seconds` with `clients`; returns transactions per second.
    fn run(&self, clients: usize, seconds: u64) -> anyhow::Result<f64> {
        let out = Command::new(&self.bin)
            .args(["-n", "-M", "prepared", "-c"])
            .arg(clients.to_string())
            .arg("-j")
            .arg(clients.min(2).to_string())
            .arg("-T")
            .arg(seconds.to_string())
            .arg("-f")
            .arg(&self.script)
            .arg(&self.url)
            .output()
            .with_context(|| format!("running {}", self.bin.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            out.status.success(),
            "pgbench failed: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("tps = ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<f64>().ok())
            })
            .with_context(|| format!("no tps in pgbench's output: {stdout}"))
    }

    fn cleanup(self) {
        let _ = std::fs::remove_file(&self.script);
        if let Ok(mut conn) = PgConnection::establish(&self.url) {
            let _ = diesel::sql_query(
                "DROP TABLE IF EXISTS bench_pgbench_payloads, bench_pgbench_marks",
            )
            .execute(&mut conn);
        }
    }
}

/// Machine CPU used since `before`, where `/proc/stat` can be read.
fn used_since(before: Option<CpuSample>) -> Option<CpuUsed> {
    Some(CpuSample::now()?.since(&before?))
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&[0.4]), 0.4);
        assert_eq!(median(&[0.4, 0.5, 0.9]), 0.5);
        assert_eq!(median(&[0.4, 0.5, 0.6, 0.9]), 0.55);
    }
}
