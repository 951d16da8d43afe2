//! Shared plumbing for the benchmarks and the demo: a database (private embedded cluster or a
//! given URL), a Goliath app served in-process over real HTTP, and a generated roster.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::web;
use anyhow::Context;

use crate::app::AppState;
use crate::config::{Config, Settings};
use crate::db::embedded::{Durability, EmbeddedPostgres};
use crate::db::PgPool;
use crate::jira::{JiraSim, JiraSimHandle, SimConfig};
use crate::jobs::worker::{WorkerOptions, Workers};
use crate::roster::HumanInput;

/// The database a benchmark runs on. A private cluster lives in a temporary directory that is
/// removed (after stopping the server) when this is dropped, unless `keep` is set.
pub struct BenchDb {
    pub url: String,
    embedded: Option<EmbeddedPostgres>,
    dir: Option<PathBuf>,
    keep: bool,
}

impl BenchDb {
    /// `url` when given; otherwise a fresh private cluster under `dir` (default: a new
    /// temporary directory), database `goliath`.
    pub fn open(
        url: Option<&str>,
        dir: Option<PathBuf>,
        durability: Durability,
    ) -> anyhow::Result<BenchDb> {
        if let Some(url) = url {
            return Ok(BenchDb {
                url: url.to_string(),
                embedded: None,
                dir: None,
                keep: true,
            });
        }
        let (dir, keep) = match dir {
            Some(d) => (d, true),
            None => {
                // Unique within the process too: two replays may start in the same millisecond.
                static OPENED: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let d = std::env::temp_dir().join(format!(
                    "goliath-bench-{}-{}-{n}",
                    std::process::id(),
                    chrono::Utc::now().timestamp_millis()
                ));
                let _ = std::fs::remove_dir_all(&d);
                (d, false)
            }
        };
        let pg = EmbeddedPostgres::start(&dir.join("postgres"), "goliath", durability)
            .context("starting the embedded PostgreSQL")?;
        Ok(BenchDb {
            url: pg.url("goliath"),
            embedded: Some(pg),
            dir: Some(dir),
            keep,
        })
    }

    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Makes a fresh private cluster's WAL files ahead of the measured runs, as a long-running
    /// cluster has them: otherwise the first gigabyte of WAL is written to new files, each
    /// zero-filled and synced as it is needed, and that stall falls only on whatever runs first
    /// (seen here: p99 at 64 connections 73 ms on a fresh cluster, 17-20 ms on a warm one).
    /// Returns the files made and how long it took; an existing database is left alone.
    pub fn make_wal_ahead(&self) -> anyhow::Result<Option<(i64, std::time::Duration)>> {
        use diesel::{Connection, RunQueryDsl};
        #[derive(diesel::QueryableByName)]
        struct Files {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        if self.embedded.is_none() {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let mut conn = diesel::PgConnection::establish(&self.url)?;
        let files: Files = diesel::sql_query(
            "SELECT pg_size_bytes(current_setting('max_wal_size')) \
                    / pg_size_bytes(current_setting('wal_segment_size')) AS n",
        )
        .get_result(&mut conn)?;
        diesel::sql_query("CREATE TABLE bench_wal_ahead (x int)").execute(&mut conn)?;
        for _ in 0..files.n {
            // A switch needs something written since the last one.
            diesel::sql_query("INSERT INTO bench_wal_ahead VALUES (1)").execute(&mut conn)?;
            diesel::sql_query("SELECT pg_switch_wal()").execute(&mut conn)?;
        }
        diesel::sql_query("DROP TABLE bench_wal_ahead").execute(&mut conn)?;
        // The files behind the checkpoint are kept for reuse, as in a cluster at work.
        diesel::sql_query("CHECKPOINT").execute(&mut conn)?;
        Ok(Some((files.n, started.elapsed())))
    }

    /// A migrated pool of `size` connections.
    pub fn pool(&self, size: u32) -> anyhow::Result<PgPool> {
        let pool = crate::db::build_pool(&self.url, size);
        let mut conn = pool.get().context("connecting to the benchmark database")?;
        crate::db::run_migrations(&mut conn)?;
        Ok(pool)
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if let Some(mut pg) = self.embedded.take() {
            pg.stop();
        }
        if let (Some(dir), false) = (&self.dir, self.keep) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A socket bound to a free loopback port, held until the server takes it, so its public URL
/// is known before the server starts and no other process can take the port in between.
pub fn loopback_listener() -> anyhow::Result<std::net::TcpListener> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?)
}

/// Settings for an in-process app on `port`, checked into a `Config`.
pub fn config_for(port: u16, mutate: impl FnOnce(&mut Settings)) -> anyhow::Result<Config> {
    let mut settings = Settings {
        bind: format!("127.0.0.1:{port}"),
        public_url: Some(format!("http://127.0.0.1:{port}")),
        db_pool_size: 16,
        workers: 2,
        ingest_writers: 2,
        job_lease_secs: Some(45),
        sim_minute_ms: 50,
        data_dir: std::env::temp_dir(),
        ..Default::default()
    };
    settings.jira.jira_project_key = "OPS".into();
    settings.jira.jira_issue_type = "Task".into();
    // The in-process benchmarks sign what they send; unsigned is allowed for the rest.
    settings.allow_unsigned_webhooks = Some(true);
    mutate(&mut settings);
    Ok(Config::from_settings(&settings, &BTreeMap::new())?)
}

/// How to run an in-process app.
pub struct AppSpec {
    pub config: Config,
    /// The socket the app serves on (from [`loopback_listener`]; `config` names its port).
    pub listener: std::net::TcpListener,
    pub pool: PgPool,
    /// actix worker threads (0: one per core).
    pub http_threads: usize,
    /// Background Jira worker threads (0: none).
    pub job_workers: usize,
    /// The Jira simulator; its webhook URL and secret are filled in to point at the app.
    pub sim: SimConfig,
}

/// A Goliath served in-process over real HTTP, with its Jira simulator and job workers.
pub struct RunningApp {
    pub addr: SocketAddr,
    pub state: web::Data<AppState>,
    pub sim: Option<JiraSimHandle>,
    workers: Option<Workers>,
    housekeeping: Option<crate::housekeeping::Housekeeper>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl RunningApp {
    pub fn start(spec: AppSpec) -> anyhow::Result<RunningApp> {
        let config = spec.config;
        let mut sim_config = spec.sim;
        if sim_config.webhook_url.is_none() && sim_config.play_humans {
            sim_config.webhook_url = Some(format!("{}/webhooks/jira", config.public_url));
        }
        if sim_config.webhook_secret.is_none() {
            sim_config.webhook_secret = config.jira.webhook_secrets.first().cloned();
        }
        let sim = JiraSim::start(sim_config)?;
        let jira = crate::app::jira_client(&config, Some(&sim.base_url()))?;
        let listener = spec.listener;
        let lease = config.job_lease;
        let state = web::Data::new(AppState::new(config, spec.pool, jira));
        let workers = (spec.job_workers > 0).then(|| {
            state.spawn_workers(WorkerOptions {
                threads: spec.job_workers,
                lease,
                ..Default::default()
            })
        });
        let housekeeping = (spec.job_workers > 0)
            .then(|| state.spawn_housekeeping(std::time::Duration::from_millis(250)));
        let (tx, rx) = std::sync::mpsc::channel();
        let st = state.clone();
        let threads = spec.http_threads;
        let thread = std::thread::Builder::new()
            .name("bench-http".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(anyhow::Error::from(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    match crate::server::serve_on(st, listener, threads) {
                        Ok((server, addr)) => {
                            let _ = tx.send(Ok((server.handle(), addr)));
                            let _ = server.await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        let (handle, addr) = rx.recv().context("the HTTP server thread exited early")??;
        Ok(RunningApp {
            addr,
            state,
            sim: Some(sim),
            workers,
            housekeeping,
            handle,
            thread: Some(thread),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn sim(&self) -> &JiraSimHandle {
        self.sim.as_ref().expect("the app runs a simulator")
    }

    /// Stops taking requests, stops the workers (after their current job) and the simulator.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let handle = self.handle.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(handle.stop(true));
            }
        })
        .join();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(h) = self.housekeeping.take() {
            h.shutdown();
        }
        if let Some(w) = self.workers.take() {
            w.shutdown();
        }
        if let Some(sim) = self.sim.take() {
            sim.stop();
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An HTTP agent that reports every status as a response (not an error).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// `people` people over `services` services: person i covers services i, i+1 (mod n), with a
/// Jira account id `acct-<i>` and a PagerDuty user id `PU<i>`.
pub fn roster(humans: usize, services: &[String]) -> Vec<HumanInput> {
    (0..humans)
        .map(|i| {
            let covers: Vec<String> = if services.is_empty() {
                vec![]
            } else {
                (0..2.min(services.len()))
                    .map(|k| services[(i + k) % services.len()].clone())
                    .collect()
            };
            HumanInput {
                id: Some(format!("person-{i:04}")),
                display_name: Some(format!("Person {i}")),
                email: Some(format!("person{i}@example.com")),
                jira_account_id: Some(format!("acct-{i:04}")),
                pagerduty_user_id: Some(format!("PU{i:04}")),
                services: covers,
                max_active: None,
                active: Some(true),
            }
        })
        .collect()
}

/// Percentiles of a sample, in the sample's unit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(samples: &mut [f64]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[i.min(samples.len() - 1)]
        };
        Percentiles {
            n: samples.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: samples[samples.len() - 1],
            mean: samples.iter().sum::<f64>() / samples.len() as f64,
        }
    }
}

/// Quiets per-request logging for the duration of a benchmark (`--verbose` keeps it).
pub fn quiet_logs(verbose: bool) {
    if !verbose {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

/// A secret unlikely to be guessed, without an RNG crate: a digest of the time and process.
pub fn random_token(tag: &str) -> String {
    use sha2::{Digest, Sha256};
    let seed = format!(
        "{tag}-{}-{}-{:?}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        std::time::Instant::now()
    );
    hex::encode(Sha256::digest(seed.as_bytes()))[..32].to_string()
}
