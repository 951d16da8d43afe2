//! `goliath serve`: database, migrations, HTTP server and job workers, with a clean shutdown.

use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context;

use crate::app::AppState;
use crate::config::Config;
use crate::db::embedded::{Durability, EmbeddedPostgres};
use crate::db::{self, PgPool};
use crate::jira::{JiraSim, JiraSimHandle, SimConfig, SimHuman};
use crate::jobs::worker::WorkerOptions;

/// The database the process uses: a configured URL, or the private embedded cluster (kept
/// alive, and stopped on drop, by this value).
pub struct Database {
    pub url: String,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    pub fn open(cfg: &Config) -> anyhow::Result<Database> {
        if let Some(url) = &cfg.database_url {
            return Ok(Database {
                url: url.clone(),
                embedded: None,
            });
        }
        let dir = cfg.data_dir.join("postgres");
        let pg = EmbeddedPostgres::start(&dir, "goliath", Durability::Durable)?;
        log::info!(
            "using the embedded PostgreSQL in {}",
            pg.data_dir().display()
        );
        Ok(Database {
            url: pg.url("goliath"),
            embedded: Some(pg),
        })
    }

    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Builds the pool and applies pending migrations.
    pub fn migrated_pool(&self, size: u32) -> anyhow::Result<PgPool> {
        let pool = db::build_pool(&self.url, size);
        let mut conn = pool
            .get()
            .with_context(|| format!("connecting to {}", crate::config::redact_url(&self.url)))?;
        let applied = db::run_migrations(&mut conn)?;
        if !applied.is_empty() {
            log::info!("applied migrations: {}", applied.join(", "));
        }
        Ok(pool)
    }
}

/// Runs until SIGINT or SIGTERM, then stops taking requests, lets the workers finish their
/// current job, and stops the embedded database.
pub async fn serve(mut cfg: Config) -> anyhow::Result<()> {
    // The built-in simulator signs its webhooks with a secret made for this run when none is
    // set, so Jira webhooks stay closed by default.
    if cfg.jira.base_url.is_none() && cfg.jira.webhook_secrets.is_empty() {
        cfg.jira
            .webhook_secrets
            .push(crate::secret::random_hex(16)?);
    }
    if cfg.pagerduty.allow_unsigned || cfg.jira.allow_unsigned {
        log::warn!(
            "GOLIATH_ALLOW_UNSIGNED_WEBHOOKS is on: webhooks from a source with no secret are \
             accepted unsigned (local trials only)"
        );
    }
    let database = web::block({
        let cfg = cfg.clone();
        move || Database::open(&cfg)
    })
    .await??;
    let pool = {
        let url_db = &database;
        let size = cfg.db_pool_size;
        // Blocking, but before the server starts: nothing else is waiting on this runtime.
        url_db.migrated_pool(size)?
    };
    let bind = cfg.bind;
    // With no Jira configured, the built-in simulator stands in for it (over real HTTP).
    let simulator = match cfg.jira.base_url {
        Some(_) => None,
        None => Some(start_simulator(&cfg, None)?),
    };
    let jira = crate::app::jira_client(&cfg, simulator.as_ref().map(|s| s.base_url()).as_deref())?;
    if cfg.jira.base_url.is_some() {
        let check = jira.clone();
        match web::block(move || check.myself()).await? {
            Ok(account) => log::info!("Jira accepts the credentials (account {account})"),
            Err(
                e @ crate::jira::JiraError::Permanent {
                    status: 401 | 403, ..
                },
            ) => {
                anyhow::bail!(
                    "Jira refuses the credentials ({e}): check JIRA_EMAIL and JIRA_API_TOKEN \
                     (or JIRA_BEARER_TOKEN)"
                )
            }
            Err(e) => log::warn!(
                "Jira is not reachable at start ({e}); its work waits in the queue and /readyz \
                 reports it"
            ),
        }
    }
    let lease = cfg.job_lease;
    let expiries = crate::app::expiries(&cfg);
    let threads = cfg.workers;
    let cfg_metrics_bind = cfg.metrics_bind;
    let state = web::Data::new(AppState::new(cfg, pool, jira));
    let (server, addr) = build_server(state.clone(), bind, 0)?;
    log::info!("Goliath listening on http://{addr}");
    let workers = state.spawn_workers(WorkerOptions {
        threads,
        lease,
        expiries,
        ..Default::default()
    });
    let metrics_server = match cfg_metrics_bind {
        Some(addr) => {
            let st = state.clone();
            let server = HttpServer::new(move || {
                App::new().app_data(st.clone()).route(
                    "/metrics",
                    web::get().to(crate::http::metrics::metrics_open),
                )
            })
            .disable_signals()
            .workers(1)
            .bind(addr)
            .with_context(|| format!("binding GOLIATH_METRICS_BIND {addr}"))?
            .run();
            log::info!("metrics at http://{addr}/metrics");
            let handle = server.handle();
            tokio::spawn(server);
            Some(handle)
        }
        None => None,
    };
    let backlog = state.spawn_housekeeping(HOUSEKEEPING_EVERY);
    let on_call = state.spawn_on_call_refresher();
    let handle = server.handle();
    let server_task = tokio::spawn(server);
    shutdown_signal().await;
    log::info!("shutting down");
    handle.stop(true).await;
    if let Some(m) = metrics_server {
        m.stop(true).await;
    }
    let _ = server_task.await;
    // Workers finish their current job; anything still queued stays queued for next time.
    tokio::task::spawn_blocking(move || {
        backlog.shutdown();
        drop(on_call);
        workers.shutdown()
    })
    .await?;
    if let Some(sim) = simulator {
        sim.stop();
    }
    drop(state);
    drop(database);
    Ok(())
}

/// Starts the Jira simulator, playing the roster's people, sending signed webhooks back to
/// this server. `humans` defaults to none (it learns account ids from the issues it sees).
pub fn start_simulator(
    cfg: &Config,
    humans: Option<Vec<SimHuman>>,
) -> anyhow::Result<JiraSimHandle> {
    let sim_config = SimConfig {
        webhook_url: Some(format!("{}/webhooks/jira", cfg.public_url)),
        webhook_secret: cfg.jira.webhook_secrets.first().cloned(),
        humans: humans.unwrap_or_default(),
        play_humans: true,
        minute_ms: cfg.sim_minute_ms,
        ..SimConfig::default()
    };
    let sim = JiraSim::start(sim_config)?;
    log::info!(
        "no JIRA_BASE_URL: using the built-in Jira simulator at {} (1 simulated minute = {} ms)",
        sim.base_url(),
        cfg.sim_minute_ms
    );
    Ok(sim)
}

/// Binds the HTTP server (port 0 picks a free port) and returns it with its address.
/// `threads` = 0 uses one per core.
pub fn build_server(
    state: web::Data<AppState>,
    bind: std::net::SocketAddr,
    threads: usize,
) -> anyhow::Result<(actix_web::dev::Server, std::net::SocketAddr)> {
    let listener = std::net::TcpListener::bind(bind).with_context(|| format!("binding {bind}"))?;
    serve_on(state, listener, threads)
}

/// Serves on a socket already bound (so a caller can learn the port before the server
/// starts, without another process taking it in between).
pub fn serve_on(
    state: web::Data<AppState>,
    listener: std::net::TcpListener,
    threads: usize,
) -> anyhow::Result<(actix_web::dev::Server, std::net::SocketAddr)> {
    let bind = listener.local_addr()?;
    // The logger renders parts of every request line before asking whether info is logged;
    // with request logging off (RUST_LOG above info) it is left out (about 1% of a webhook's
    // CPU at 16 connections).
    let log_requests = log::log_enabled!(target: "actix_web::middleware::logger", log::Level::Info);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(middleware::Condition::new(
                log_requests,
                middleware::Logger::new("%a \"%r\" %s %b %Dms"),
            ))
            .wrap(middleware::from_fn(crate::http::guard::refuse_nul))
            .configure(crate::http::configure)
    })
    .disable_signals()
    .shutdown_timeout(10);
    if threads > 0 {
        server = server.workers(threads);
    }
    let server = server
        .listen(listener)
        .with_context(|| format!("listening on {bind}"))?;
    let addr = server.addrs().first().copied().unwrap_or(bind);
    Ok((server.run(), addr))
}

/// How often housekeeping looks for unassigned items to assign and overdue ones to escalate (two
/// small reads when nothing changed).
pub const HOUSEKEEPING_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
