//! Test harness: a real database per test and the real HTTP server on a free port.
#![allow(dead_code)] // not every test module uses every helper

pub mod browser;
pub mod db;
pub mod pagerduty;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::web;
use goliath::app::AppState;
use goliath::config::{Config, Settings};
use goliath::jira::{JiraSim, JiraSimHandle, SimConfig};
use goliath::jobs::{Expiry, WorkerOptions, Workers};
use std::time::Duration;

pub use db::TestDb;

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

pub fn fixture_json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// Settings as a user would give them; `env` holds the prefixed map variables.
pub fn config_with(mutate: impl FnOnce(&mut Settings), env: &[(&str, &str)]) -> Config {
    let mut settings = Settings {
        bind: "127.0.0.1:0".into(),
        db_pool_size: 8,
        workers: 1,
        ingest_writers: 2,
        data_dir: std::env::temp_dir(),
        admin_token: Some(ADMIN_TOKEN.into()),
        // Most tests post unsigned webhooks; the closed default has its own test.
        allow_unsigned_webhooks: Some(true),
        ..Default::default()
    };
    settings.jira.jira_project_key = "OPS".into();
    settings.jira.jira_issue_type = "Task".into();
    mutate(&mut settings);
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_settings(&settings, &env).expect("valid test configuration")
}

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// How a test app runs.
pub struct AppOptions {
    /// Start the background Jira workers.
    pub workers: bool,
    /// The Jira simulator's settings (its webhook URL is filled in to point at the app).
    pub sim: SimConfig,
    /// Lease after which a job whose worker died is taken again.
    pub lease: Duration,
    /// What the workers delete once past its retention (a pass every 100 ms).
    pub expiries: Vec<Arc<dyn Expiry>>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            workers: false,
            sim: SimConfig {
                play_humans: false,
                ..SimConfig::default()
            },
            lease: Duration::from_secs(60),
            expiries: vec![],
        }
    }
}

/// A running Goliath on its own database, talking to its own Jira simulator over HTTP.
pub struct TestApp {
    pub db: TestDb,
    pub addr: SocketAddr,
    pub state: web::Data<AppState>,
    pub sim: Option<JiraSimHandle>,
    workers: Option<Workers>,
    backlog: Option<goliath::housekeeping::Housekeeper>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A socket on a free port, held open until the server takes it (so nothing else can).
fn listener() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap()
}

impl TestApp {
    pub fn start(config: Config) -> TestApp {
        Self::start_with(TestDb::new(), config, AppOptions::default())
    }

    pub fn start_on(db: TestDb, config: Config) -> TestApp {
        Self::start_with(db, config, AppOptions::default())
    }

    pub fn start_with(db: TestDb, mut config: Config, opts: AppOptions) -> TestApp {
        let listener = listener();
        let port = listener.local_addr().unwrap().port();
        config.public_url = format!("http://127.0.0.1:{port}");
        let mut sim_config = opts.sim;
        sim_config.webhook_url = Some(format!("{}/webhooks/jira", config.public_url));
        if sim_config.webhook_secret.is_none() {
            sim_config.webhook_secret = config.jira.webhook_secrets.first().cloned();
        }
        let sim = JiraSim::start(sim_config).expect("the Jira simulator starts");
        let jira = goliath::app::jira_client(&config, Some(&sim.base_url())).unwrap();
        let state = web::Data::new(AppState::new(config, db.pool.clone(), jira));
        let workers = opts.workers.then(|| {
            state.spawn_workers(WorkerOptions {
                threads: 1,
                lease: opts.lease,
                poll: Duration::from_millis(200),
                expiries: opts.expiries,
                prune_every: Duration::from_millis(100),
                ..Default::default()
            })
        });
        let backlog = opts
            .workers
            .then(|| state.spawn_housekeeping(Duration::from_millis(100)));
        let mut app = Self::launch(db, state, listener);
        app.sim = Some(sim);
        app.workers = workers;
        app.backlog = backlog;
        app
    }

    /// Serves a state built by the test (its database need not be the one in `db`).
    pub fn start_on_state(state: web::Data<AppState>) -> TestApp {
        Self::launch(TestDb::new(), state, listener())
    }

    pub fn sim(&self) -> &JiraSimHandle {
        self.sim.as_ref().expect("this app has a simulator")
    }

    /// Stops the workers now (as a crash or shutdown would).
    pub fn stop_workers(&mut self) {
        if let Some(w) = self.workers.take() {
            w.shutdown();
        }
    }

    fn launch(db: TestDb, state: web::Data<AppState>, listener: std::net::TcpListener) -> TestApp {
        let (tx, rx) = std::sync::mpsc::channel();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (server, addr) = goliath::server::serve_on(st, listener, 1).unwrap();
                tx.send((server.handle(), addr)).unwrap();
                let _ = server.await;
            });
        });
        let (handle, addr) = rx.recv().expect("the test server started");
        TestApp {
            db,
            addr,
            state,
            sim: None,
            workers: None,
            backlog: None,
            handle,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut req = agent().post(&self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Resp::from(req.send(body).expect("request sent"))
    }

    pub fn get(&self, path: &str) -> Resp {
        Resp::from(agent().get(&self.url(path)).call().expect("request sent"))
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Resp {
        admin_request(&self.url(path), method, body, Some(ADMIN_TOKEN))
    }

    pub fn shared(&self) -> Arc<AppState> {
        self.state.clone().into_inner()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(b) = self.backlog.take() {
            b.shutdown();
        }
        if let Some(w) = self.workers.take() {
            w.shutdown();
        }
        if let Some(sim) = self.sim.take() {
            sim.stop();
        }
        stop_server(&self.handle, self.thread.take());
    }
}

/// Stops a test server from outside its runtime and waits for its thread.
pub fn stop_server(
    handle: &actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
) {
    let handle = handle.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(handle.stop(false));
    })
    .join()
    .ok();
    if let Some(t) = thread {
        let _ = t.join();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into()
}

pub fn admin_request(
    url: &str,
    method: &str,
    body: Option<serde_json::Value>,
    token: Option<&str>,
) -> Resp {
    let agent = agent();
    let auth = token.map(|t| format!("Bearer {t}"));
    macro_rules! with_auth {
        ($req:expr) => {{
            let mut r = $req;
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r
        }};
    }
    let resp = match (method, body) {
        ("GET", _) => with_auth!(agent.get(url)).call(),
        ("DELETE", _) => with_auth!(agent.delete(url)).call(),
        ("POST", Some(b)) => with_auth!(agent.post(url)).send_json(b),
        ("POST", None) => with_auth!(agent.post(url)).send_empty(),
        ("PUT", Some(b)) => with_auth!(agent.put(url)).send_json(b),
        (m, _) => panic!("unsupported method {m}"),
    };
    Resp::from(resp.expect("request sent"))
}

/// A response read to the end.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `error.code` of an error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

impl From<ureq::http::Response<ureq::Body>> for Resp {
    fn from(mut r: ureq::http::Response<ureq::Body>) -> Self {
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string().unwrap_or_default();
        Resp { status, body }
    }
}

/// A V3 `incident.triggered` body for a new incident on `service` (a PagerDuty service name).
pub fn incident_body(
    incident_id: &str,
    service: &str,
    urgency: &str,
    created_at: chrono::DateTime<chrono::Utc>,
) -> Vec<u8> {
    let mut body = fixture_json("pagerduty_v3_incident_triggered.json");
    let data = &mut body["event"]["data"];
    data["id"] = incident_id.into();
    data["number"] = (incident_id.bytes().map(u64::from).sum::<u64>()).into();
    data["title"] = format!("{service} is unhappy ({incident_id})").into();
    data["service"]["summary"] = service.into();
    data["service"]["id"] = format!("PS{}", service.len()).into();
    data["urgency"] = urgency.into();
    data["assignees"] = serde_json::json!([]);
    data["created_at"] = created_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        .into();
    body["event"]["id"] = format!("ev-{incident_id}").into();
    serde_json::to_vec(&body).unwrap()
}

/// A roster entry as the admin API takes it.
pub fn human(id: &str, services: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "display_name": format!("Person {id}"),
        "email": format!("{id}@example.com"),
        "jira_account_id": format!("acct-{id}"),
        "services": services,
    })
}

/// The lines of a work item's history (from [`TestApp::work_item`]) of one kind, oldest first.
pub fn history_of<'a>(view: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    view["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == kind)
        .collect()
}

/// A roster entry with a `max_active`.
pub fn capped(id: &str, services: &[&str], max_active: u32) -> serde_json::Value {
    let mut p = human(id, services);
    p["max_active"] = max_active.into();
    p
}

impl TestApp {
    /// Loads people through the admin API.
    pub fn roster(&self, humans: &[serde_json::Value]) {
        let resp = self.admin(
            "POST",
            "/admin/humans",
            Some(serde_json::Value::Array(humans.to_vec())),
        );
        assert_eq!(resp.status, 200, "{}", resp.body);
    }

    /// Sends an incident and returns the intake response.
    pub fn incident(&self, incident_id: &str, service: &str, urgency: &str) -> serde_json::Value {
        let body = incident_body(incident_id, service, urgency, chrono::Utc::now());
        let resp = self.post("/webhooks/pagerduty", &[], &body);
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp.json()
    }

    /// The admin view of a work item (item, decision, outcomes, history, jobs, Jira key).
    pub fn work_item(&self, id: &str) -> serde_json::Value {
        let resp = self.admin("GET", &format!("/admin/work-items/{id}"), None);
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp.json()
    }

    /// The value of the first `/metrics` line that starts with `prefix` (None when there is
    /// none). Metrics are the process's: other tests may add to the same counters.
    pub fn metric(&self, prefix: &str) -> Option<f64> {
        let resp = self.admin("GET", "/metrics", None);
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp.body
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// Waits until `check` holds or `timeout` passes; returns whether it held.
    pub fn wait_until(&self, timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if check() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        check()
    }
}
