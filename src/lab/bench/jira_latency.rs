//! `goliath bench jira-latency`: time from sending a PagerDuty webhook to the Jira issue
//! existing, measured on the simulator's clock (the issue's creation time is stamped inside the
//! simulator when the create call arrives).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;

use super::harness::{self, AppSpec, BenchDb, Percentiles, RunningApp};
use super::load::{self, IncidentSpec, IncidentTemplate};
use crate::db::embedded::Durability;
use crate::executor::issue_label;
use crate::jira::SimConfig;

#[derive(Args, Debug, Clone)]
pub struct JiraLatencyArgs {
    /// Incidents per concurrency level.
    #[arg(long, default_value_t = 200)]
    pub incidents: usize,
    /// Clients, each sending its next incident once the previous one's issue exists;
    /// comma-separated levels (1 = sequential).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub concurrency: Vec<usize>,
    /// Background Jira worker threads.
    #[arg(long, default_value_t = 2)]
    pub job_workers: usize,
    /// Keep per-request info logging on.
    #[arg(long)]
    pub verbose: bool,
}

/// Target from the brief: p50 under 20 ms, p99 under 100 ms.
const TARGET_P50_MS: f64 = 20.0;
const TARGET_P99_MS: f64 = 100.0;

pub fn run(args: JiraLatencyArgs, database_url: Option<&str>) -> anyhow::Result<()> {
    harness::quiet_logs(args.verbose);
    let db = BenchDb::open(database_url, None, Durability::Durable)?;
    let services = super::ingest::service_names(5);
    let pool = db.pool(16)?;
    {
        let mut conn = pool.get()?;
        crate::roster::import(&mut conn, &harness::roster(20, &services))
            .map_err(|e| anyhow::anyhow!("loading the roster: {e}"))?;
    }
    let secret = harness::random_token("pagerduty");
    let listener = harness::loopback_listener()?;
    let port = listener.local_addr()?.port();
    let config = harness::config_for(port, |s| {
        s.workers = args.job_workers;
        s.pagerduty_webhook_secret = Some(secret.clone());
        s.pagerduty_services = services
            .iter()
            .map(|svc| format!("{}={svc}", svc.to_uppercase()))
            .collect();
    })?;
    let app = RunningApp::start(AppSpec {
        config,
        listener,
        pool,
        http_threads: 0,
        job_workers: args.job_workers.max(1),
        // One simulated minute per real minute: simulator milliseconds are real milliseconds.
        sim: SimConfig {
            play_humans: false,
            minute_ms: 60_000,
            ..SimConfig::default()
        },
    })?;
    println!("bench jira-latency");
    println!(
        "  webhook -> Jira issue created in the built-in simulator (people off), {} Jira \
         worker(s), fresh embedded PostgreSQL (fsync on); latency = the simulator's creation \
         stamp minus the send time, on the simulator's clock (1 ms resolution)",
        args.job_workers.max(1)
    );
    let template = IncidentTemplate::new();
    let target = app.url("/webhooks/pagerduty");
    let tag = harness::random_token("run")[..8].to_string();
    let mut next_seq = 0u64;
    for &clients in &args.concurrency {
        let clients = clients.max(1);
        let sent: Mutex<HashMap<String, i64>> = Mutex::new(HashMap::new());
        let missing = Mutex::new(0usize);
        let per_client = args.incidents.div_ceil(clients);
        let base = next_seq;
        next_seq += (per_client * clients) as u64;
        let started = Instant::now();
        std::thread::scope(|scope| {
            for c in 0..clients {
                let (app, template, target, tag, services, sent, missing, secret) = (
                    &app, &template, &target, &tag, &services, &sent, &missing, &secret,
                );
                scope.spawn(move || {
                    let agent = harness::agent();
                    for k in 0..per_client {
                        let seq = base + (c * per_client + k) as u64;
                        let incident = format!("L{tag}{seq:07}");
                        let event = format!("E{tag}{seq:07}");
                        let assignee = format!("PU{:04}", seq % 20);
                        let body = template.body(&IncidentSpec {
                            event_id: &event,
                            incident_id: &incident,
                            number: seq + 1,
                            created_at: chrono::Utc::now(),
                            title: "Jira latency probe",
                            service: &services[(seq % services.len() as u64) as usize],
                            assignee: &assignee,
                        });
                        let t0 = app.sim().now_ms();
                        let resp = load::post_webhook(&agent, target, Some(secret), &event, &body);
                        let Ok((200, text)) = resp else {
                            log::warn!("webhook failed: {resp:?}");
                            *missing.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                            continue;
                        };
                        let item = serde_json::from_str::<serde_json::Value>(&text)
                            .ok()
                            .and_then(|v| v["work_item_id"].as_str().map(String::from))
                            .unwrap_or_default();
                        let label = issue_label(&item);
                        sent.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(label.clone(), t0);
                        if !wait_for_issue(app, &label, Duration::from_secs(5)) {
                            *missing.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                        }
                    }
                });
            }
        });
        let wall = started.elapsed();
        let sent = sent.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut lat: Vec<f64> = app
            .sim()
            .issues()
            .iter()
            .filter_map(|issue| {
                issue
                    .labels
                    .iter()
                    .find_map(|l| sent.get(l))
                    .map(|t0| (issue.created_ms - t0) as f64)
            })
            .collect();
        let p = Percentiles::of(&mut lat);
        let verdict = if p.p50 < TARGET_P50_MS && p.p99 < TARGET_P99_MS {
            "meets"
        } else {
            "MISSES"
        };
        println!(
            "  clients={clients:<3} {:>4} issues in {:.1} s: p50 {:.0} ms  p90 {:.0} ms  p99 {:.0} ms  \
             max {:.0} ms  ({} missing)  {verdict} the target (p50 < {TARGET_P50_MS} ms, p99 < \
             {TARGET_P99_MS} ms)",
            p.n,
            wall.as_secs_f64(),
            p.p50,
            p.p90,
            p.p99,
            p.max,
            missing.into_inner().unwrap_or_else(|e| e.into_inner()),
        );
    }
    app.stop();
    drop(db);
    Ok(())
}

fn wait_for_issue(app: &RunningApp, label: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut seen = u64::MAX;
    let mut last_scan = Instant::now();
    while Instant::now() < deadline {
        // Scan the issues when the create count moved (it is counted as the call arrives,
        // just before the issue is stored) or every 10 ms: cheap while waiting.
        let created = app.sim().counters().create_issue;
        if created != seen || last_scan.elapsed() >= Duration::from_millis(10) {
            seen = created;
            last_scan = Instant::now();
            if app
                .sim()
                .issues()
                .iter()
                .rev()
                .any(|i| i.labels.iter().any(|l| l == label))
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}
