//! A stand-in for Jira: the REST endpoints Goliath's client uses (v3 and v2), validated and
//! answered like Jira does, plus simulated people who resolve or hand off the issues assigned to
//! them and report it with real Jira Cloud `jira:issue_updated` webhooks.
//!
//! # Start it
//! * In-process (tests, or inside `serve`): [`JiraSim::start`] binds, runs the HTTP server on
//!   its own thread (its own actix system, so it works with or without a surrounding tokio
//!   runtime) and returns a [`JiraSimHandle`].
//! * Standalone: [`run_standalone`] with [`JiraSimArgs`] (`goliath jira-sim`), until Ctrl-C.
//!
//! # REST (auth checked when configured: 401 otherwise)
//! * `POST /rest/api/{3|2}/issue` → 201 `{id,key,self}`; 400 with `{errorMessages, errors}`
//!   for a missing project/issuetype/summary, a non-ADF v3 description, labels with spaces…
//! * `PUT /rest/api/{3|2}/issue/{key}/assignee` `{"accountId"|"name": id|null}` → 204; 404.
//! * `GET /rest/api/{3|2}/issue/{key}` → the issue bean; 404.
//! * `POST /rest/api/3/search/jql` (`issues`, `isLast`, `nextPageToken`) and
//!   `POST /rest/api/2/search` (`startAt`, `maxResults`, `total`, `issues`), with the JQL of
//!   [`jql`]: `labels = "x"`, `project = OPS`, `AND`, `ORDER BY created DESC`, …
//!   `/rest/api/3/search` answers 410 Gone, as Jira Cloud now does.
//!
//! # Admin (no auth)
//! * `POST /_sim/faults` [`SimFaults`], e.g. `{"create_issue": [500, 429, 400], "retry_after_secs": 1}`:
//!   the next create calls answer those statuses in order (with Jira's error bodies,
//!   `Retry-After` on 429/503), then normal service. An entry may be
//!   `{"status": 500, "commit": true}` (the issue is created but the answer is an error: a lost
//!   response) or carry `"delay_ms"` (late answer) or `"hold_ms"` (created, 201 held back). Also `assign`, `search`, `get_issue`.
//! * `GET /_sim/issues` → `{"issues": [SimIssueView], "counters": SimCounters}`.
//! * `GET /_sim/deliveries` → `[SimDelivery]` (webhooks sent and their outcome).
//! * `POST /_sim/issues/{key}/{resolve|reassign|unassign|reopen}` (reassign body
//!   `{"to": "<accountId>"}`, optional) → act now as the assignee and send the webhook.
//! * `POST /_sim/reset` → forget everything.
//!
//! # People
//! When an issue gets an assignee (and `play_people` is on), the simulator draws with a seeded
//! RNG whether that person resolves it (probability `p_resolve` of their [`SimSkill`] for the
//! issue's service, from its `service-<name>` label) or hands it off, and when: an exponential
//! delay with mean `mean_minutes` (half that for a hand-off) in simulated minutes. Hand-offs go to
//! another person of the roster (`people`), else to anyone seen so far; after `max_handoffs`
//! the next person resolves. Unknown people (and services missing from a person's skills, unless
//! a `"*"` skill is given) get a stable default derived from a hash of (person, service).
//! `minute_ms` real milliseconds make one simulated minute; webhook timestamps are simulated
//! time, so they advance by exactly the simulated delays.
//!
//! Webhooks carry `X-Atlassian-Webhook-Identifier`, `X-Hub-Signature: sha256=…` when a secret
//! is set, and are retried (same identifier, `X-Atlassian-Webhook-Retry`) on 408/409/425/429/5xx
//! and network errors, three times with a short back-off. They are sent in order from one
//! background thread.

mod humans;
mod jql;
mod routes;
mod state;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

pub use state::{
    skill_for, Fault, SimCounters, SimDelivery, SimFaults, SimIssueView, SIM_API_ACCOUNT_ID,
};
use state::{Ctx, SimClock, SimState};

use super::client::JiraAuth;

/// How good someone is on one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimSkill {
    /// Probability of resolving rather than handing off, in [0, 1].
    pub p_resolve: f64,
    /// Mean time to resolve, in simulated minutes.
    pub mean_minutes: f64,
}

/// A simulated person, by Jira id (Cloud `accountId`, or DC username).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimHuman {
    pub account_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Per service name (as in the `service-<name>` label); `"*"` applies to other services.
    #[serde(default)]
    pub skills: HashMap<String, SimSkill>,
}

/// Simulator configuration. `Debug` redacts the secrets.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// `host:port`; port 0 picks a free port (see [`JiraSimHandle::addr`]).
    pub bind: String,
    /// Where to POST webhooks, e.g. `http://127.0.0.1:8000/webhooks/jira`. `None`: none sent.
    pub webhook_url: Option<String>,
    /// Signs webhooks with `X-Hub-Signature: sha256=…` when set.
    pub webhook_secret: Option<String>,
    /// Credentials REST calls must present (`None`: no check).
    pub auth: Option<JiraAuth>,
    /// The roster, with skills.
    pub humans: Vec<SimHuman>,
    /// Resolve and hand off automatically. Off: issues stay as the API leaves them, and tests
    /// drive events through `/_sim/issues/{key}/…` or their own webhooks.
    pub play_humans: bool,
    /// Real milliseconds per simulated minute (at least 1).
    pub minute_ms: u64,
    pub seed: u64,
    /// Search sees a new issue only this long after its creation (Jira's eventual consistency).
    pub search_lag_ms: u64,
    /// After this many hand-offs of one issue, the next assignee resolves it.
    pub max_handoffs: u32,
    /// Also send the `jira:issue_created` / `issue_assigned` webhooks that API writes cause in
    /// real Jira (actor [`SIM_API_ACCOUNT_ID`]), to exercise echo suppression.
    pub echo_api_changes: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            bind: "127.0.0.1:0".into(),
            webhook_url: None,
            webhook_secret: None,
            auth: None,
            humans: Vec::new(),
            play_humans: true,
            minute_ms: 1000,
            seed: 1,
            search_lag_ms: 0,
            max_handoffs: 5,
            echo_api_changes: false,
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("bind", &self.bind)
            .field("webhook_url", &self.webhook_url)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("auth", &self.auth)
            .field("humans", &self.humans)
            .field("play_humans", &self.play_humans)
            .field("minute_ms", &self.minute_ms)
            .field("seed", &self.seed)
            .field("search_lag_ms", &self.search_lag_ms)
            .field("max_handoffs", &self.max_handoffs)
            .field("echo_api_changes", &self.echo_api_changes)
            .finish()
    }
}

impl SimConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.webhook_url {
            anyhow::ensure!(
                url.starts_with("http://") || url.starts_with("https://"),
                "webhook URL {url:?} must start with http:// or https://"
            );
        }
        anyhow::ensure!(self.minute_ms >= 1, "minute_ms must be at least 1");
        for p in &self.humans {
            anyhow::ensure!(!p.account_id.is_empty(), "a person has an empty account_id");
            for (service, s) in &p.skills {
                anyhow::ensure!(
                    (0.0..=1.0).contains(&s.p_resolve) && s.mean_minutes > 0.0,
                    "skill of {} on {service}: p_resolve must be in [0,1] and mean_minutes > 0",
                    p.account_id
                );
            }
        }
        Ok(())
    }

    /// The configuration `goliath jira-sim` flags describe.
    pub fn from_args(args: &JiraSimArgs) -> anyhow::Result<SimConfig> {
        let mut humans: Vec<SimHuman> = match &args.humans_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str(&text).with_context(|| {
                    format!("parsing {} (a JSON list of people)", path.display())
                })?
            }
            None => Vec::new(),
        };
        for id in &args.human {
            if !humans.iter().any(|p| &p.account_id == id) {
                humans.push(SimHuman {
                    account_id: id.clone(),
                    display_name: None,
                    skills: HashMap::new(),
                });
            }
        }
        let auth = match (&args.auth_email, &args.auth_token) {
            (Some(email), Some(token)) => Some(JiraAuth::Basic {
                email: email.clone(),
                api_token: token.clone(),
            }),
            (None, Some(token)) => Some(JiraAuth::Bearer {
                token: token.clone(),
            }),
            (Some(_), None) => anyhow::bail!("--auth-email needs --auth-token"),
            (None, None) => None,
        };
        Ok(SimConfig {
            bind: args.bind.clone(),
            webhook_url: args.webhook_url.clone(),
            webhook_secret: args.webhook_secret.clone(),
            auth,
            humans,
            play_humans: !args.no_humans,
            minute_ms: args.minute_ms,
            seed: args.seed,
            search_lag_ms: args.search_lag_ms,
            max_handoffs: args.max_handoffs,
            echo_api_changes: args.echo_api_changes,
        })
    }
}

/// `goliath jira-sim` flags (each also readable from the environment).
#[derive(clap::Args, Clone)]
pub struct JiraSimArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, env = "GOLIATH_JIRA_SIM_BIND", default_value = "127.0.0.1:8089")]
    pub bind: String,
    /// Where to send webhooks, e.g. http://127.0.0.1:8000/webhooks/jira.
    #[arg(long, env = "GOLIATH_JIRA_SIM_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// Secret for X-Hub-Signature.
    #[arg(long, env = "GOLIATH_JIRA_SIM_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Require Basic auth with this e-mail (and --auth-token).
    #[arg(long, env = "GOLIATH_JIRA_SIM_AUTH_EMAIL")]
    pub auth_email: Option<String>,
    /// API token for Basic auth, or alone: a Bearer token to require.
    #[arg(long, env = "GOLIATH_JIRA_SIM_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// JSON list of people: [{"account_id": "...", "display_name": "...", "skills": {"api": {"p_resolve": 0.8, "mean_minutes": 30}}}].
    #[arg(long, env = "GOLIATH_JIRA_SIM_PEOPLE_FILE")]
    pub humans_file: Option<PathBuf>,
    /// Add a person (account id) with default skills; repeatable.
    #[arg(long, value_name = "ACCOUNT_ID")]
    pub human: Vec<String>,
    /// Do not play the people (no automatic resolve or hand-off).
    #[arg(long, env = "GOLIATH_JIRA_SIM_NO_PEOPLE")]
    pub no_humans: bool,
    /// Real milliseconds per simulated minute.
    #[arg(long, env = "GOLIATH_JIRA_SIM_MINUTE_MS", default_value_t = 1000)]
    pub minute_ms: u64,
    /// RNG seed.
    #[arg(long, env = "GOLIATH_JIRA_SIM_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Delay before search sees a new issue, in ms.
    #[arg(long, env = "GOLIATH_JIRA_SIM_SEARCH_LAG_MS", default_value_t = 0)]
    pub search_lag_ms: u64,
    /// Hand-offs per issue before the next assignee resolves.
    #[arg(long, default_value_t = 5)]
    pub max_handoffs: u32,
    /// Also send the webhooks that API writes cause (created, assigned by the bot).
    #[arg(long)]
    pub echo_api_changes: bool,
}

impl fmt::Debug for JiraSimArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match SimConfig::from_args(self) {
            Ok(c) => c.fmt(f),
            Err(_) => f.write_str("JiraSimArgs { .. }"),
        }
    }
}

/// Runs the simulator until Ctrl-C (`goliath jira-sim`).
pub fn run_standalone(args: JiraSimArgs) -> anyhow::Result<()> {
    let config = SimConfig::from_args(&args)?;
    let handle = JiraSim::start(config)?;
    log::info!(
        "jira-sim: Jira stand-in at {} (Ctrl-C to stop)",
        handle.base_url()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the signal runtime")?;
    runtime
        .block_on(tokio::signal::ctrl_c())
        .context("waiting for Ctrl-C")?;
    log::info!("jira-sim: stopping");
    handle.stop();
    Ok(())
}

/// State shared by the HTTP workers and the people thread.
pub(crate) struct Shared {
    ctx: Ctx,
    state: Mutex<SimState>,
    wake: Condvar,
    /// The `Authorization` value REST calls must carry.
    auth_header: Option<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Entry point: `JiraSim::start(config)`.
pub struct JiraSim;

impl JiraSim {
    /// Binds, starts the HTTP server and the people thread, and returns once the server is
    /// accepting connections. Blocking but brief; callable from inside a tokio runtime.
    pub fn start(config: SimConfig) -> anyhow::Result<JiraSimHandle> {
        config.validate()?;
        let listener = std::net::TcpListener::bind(&config.bind)
            .with_context(|| format!("binding the Jira simulator to {}", config.bind))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            auth_header: config.auth.as_ref().map(JiraAuth::header_value),
            ctx: Ctx {
                base_url: format!("http://{addr}"),
                clock: SimClock::new(config.minute_ms),
                config,
            },
            state: Mutex::new(SimState::new()),
            wake: Condvar::new(),
        });

        let (tx, rx) = std::sync::mpsc::channel();
        let data = actix_web::web::Data::from(shared.clone());
        let server_thread = std::thread::Builder::new()
            .name("jira-sim-http".into())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                    let server = actix_web::HttpServer::new(move || {
                        actix_web::App::new()
                            .app_data(data.clone())
                            .configure(routes::configure)
                    })
                    .workers(2)
                    .disable_signals()
                    .shutdown_timeout(1)
                    .listen(listener);
                    match server {
                        Ok(server) => {
                            let server = server.run();
                            let _ = tx.send(Ok(server.handle()));
                            if let Err(e) = server.await {
                                log::error!("jira-sim: HTTP server failed: {e}");
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })
            .context("spawning the simulator's HTTP thread")?;
        let server = rx
            .recv()
            .context("the simulator's HTTP thread exited early")?
            .context("starting the simulator's HTTP server")?;

        let humans_shared = shared.clone();
        let humans_thread = std::thread::Builder::new()
            .name("jira-sim-humans".into())
            .spawn(move || humans::run(humans_shared))
            .context("spawning the simulator's people thread")?;

        log::info!(
            "jira-sim: listening on {} (humans {}, {} ms per simulated minute)",
            shared.ctx.base_url,
            if shared.ctx.config.play_humans {
                "on"
            } else {
                "off"
            },
            shared.ctx.config.minute_ms
        );
        Ok(JiraSimHandle {
            shared,
            addr,
            server: Some(server),
            server_thread: Some(server_thread),
            humans_thread: Some(humans_thread),
        })
    }
}

/// A running simulator. Stops on [`JiraSimHandle::stop`] or when dropped.
pub struct JiraSimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Option<actix_web::dev::ServerHandle>,
    server_thread: Option<JoinHandle<()>>,
    humans_thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for JiraSimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraSimHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Why a manual action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActError {
    #[error("no such issue")]
    NotFound,
    #[error("unknown action {0:?} (resolve, reassign, unassign, reopen)")]
    UnknownAction(String),
    #[error("nothing to do: {0}")]
    NoChange(&'static str),
}

/// Acts on an issue now, as its assignee would, and queues the webhook.
fn act(
    shared: &Shared,
    key: &str,
    action: &str,
    to: Option<String>,
) -> Result<SimIssueView, ActError> {
    let ctx = &shared.ctx;
    let mut st = shared.lock();
    let idx = st.find(key).ok_or(ActError::NotFound)?;
    let now = ctx.clock.now_ms();
    let actor = st.issues[idx].assignee.clone();
    let hook = match action {
        "resolve" => st
            .resolve(ctx, idx, now, None)
            .ok_or(ActError::NoChange("already resolved"))?,
        "reopen" => st
            .reopen(ctx, idx, now, actor.as_deref())
            .ok_or(ActError::NoChange("not resolved"))?,
        "unassign" => st
            .set_assignee(ctx, idx, None, now, actor.as_deref())
            .ok_or(ActError::NoChange("already unassigned"))?,
        "reassign" => {
            let target = to
                .or_else(|| st.handoff_target(ctx, idx))
                .ok_or(ActError::NoChange("nobody to hand the issue to"))?;
            if actor.as_deref() == Some(target.as_str()) {
                return Err(ActError::NoChange("already assigned to that person"));
            }
            st.issues[idx].handoffs += 1;
            st.set_assignee(ctx, idx, Some(target), now, actor.as_deref())
                .ok_or(ActError::NoChange("already assigned to that person"))?
        }
        other => return Err(ActError::UnknownAction(other.to_owned())),
    };
    st.push_delivery(ctx, hook);
    let view = st.issues[idx].view();
    drop(st);
    shared.wake.notify_all();
    Ok(view)
}

impl JiraSimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: the Jira base URL to give the client.
    pub fn base_url(&self) -> String {
        self.shared.ctx.base_url.clone()
    }

    /// The simulator's clock now, in simulated epoch milliseconds: the time base of issue
    /// times and webhook timestamps (it advances 60,000 per `minute_ms` of real time).
    pub fn now_ms(&self) -> i64 {
        self.shared.ctx.clock.now_ms()
    }

    /// All issues, in creation order.
    pub fn issues(&self) -> Vec<SimIssueView> {
        self.shared.lock().issues.iter().map(|i| i.view()).collect()
    }

    pub fn issue(&self, key: &str) -> Option<SimIssueView> {
        let st = self.shared.lock();
        st.find(key).map(|i| st.issues[i].view())
    }

    pub fn counters(&self) -> SimCounters {
        self.shared.lock().counters.clone()
    }

    /// Webhook deliveries so far (each after its retries).
    pub fn deliveries(&self) -> Vec<SimDelivery> {
        self.shared.lock().deliveries.clone()
    }

    /// Waits until at least `n` deliveries are recorded or `timeout` passes; returns them.
    pub fn wait_for_deliveries(&self, n: usize, timeout: Duration) -> Vec<SimDelivery> {
        let deadline = Instant::now() + timeout;
        loop {
            let d = self.deliveries();
            if d.len() >= n || Instant::now() >= deadline {
                return d;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Replaces the pending faults (same as `POST /_sim/faults`).
    pub fn set_faults(&self, faults: SimFaults) {
        self.shared.lock().faults.set(faults);
    }

    /// Forgets issues, counters, faults, plans and deliveries.
    pub fn reset(&self) {
        self.shared.lock().reset();
    }

    /// Resolves the issue now (as its assignee) and sends the webhook.
    pub fn resolve(&self, key: &str) -> Result<SimIssueView, ActError> {
        act(&self.shared, key, "resolve", None)
    }

    /// Hands the issue to `to` (or to someone the simulator picks) and sends the webhook.
    pub fn reassign(&self, key: &str, to: Option<&str>) -> Result<SimIssueView, ActError> {
        act(&self.shared, key, "reassign", to.map(str::to_owned))
    }

    /// Clears the resolution and sends the webhook.
    pub fn reopen(&self, key: &str) -> Result<SimIssueView, ActError> {
        act(&self.shared, key, "reopen", None)
    }

    /// Stops the server and the people thread and waits for them (briefly blocking).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(server) = self.server.take() {
            // The stop command is sent synchronously; the returned future only awaits it.
            drop(server.stop(false));
        }
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        for thread in [self.server_thread.take(), self.humans_thread.take()]
            .into_iter()
            .flatten()
        {
            let _ = thread.join();
        }
    }
}

impl Drop for JiraSimHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests;
