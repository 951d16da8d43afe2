//! `goliath bench stalled-bodies`: many unauthenticated clients declare a large webhook body,
//! send most of it and stall. Measures what they cost (resident memory and open files, while
//! they hang and after they are gone) and whether valid webhooks still get through meanwhile.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use super::harness::{self, AppSpec, BenchDb, Percentiles, RunningApp};
use super::load::{IncidentSpec, IncidentTemplate};
use crate::db::embedded::Durability;
use crate::jira::SimConfig;

#[derive(Args, Debug, Clone)]
pub struct StalledArgs {
    /// Stalled connections.
    #[arg(long, default_value_t = 600)]
    pub connections: usize,
    /// Body length each stalled client declares, in KiB.
    #[arg(long, default_value_t = 1024)]
    pub declared_kib: usize,
    /// Of which each sends this many KiB before it stalls.
    #[arg(long, default_value_t = 900)]
    pub sent_kib: usize,
    /// Valid webhooks sent (by four clients) before, during and after the stall.
    #[arg(long, default_value_t = 200)]
    pub webhooks: usize,
    /// Keep per-request info logging on.
    #[arg(long)]
    pub verbose: bool,
}

/// This process's resident memory in MiB and its open file descriptors (Linux `/proc`).
fn footprint() -> (f64, usize) {
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    (rss_kib / 1024.0, fds)
}

pub fn run(args: StalledArgs, database_url: Option<&str>) -> anyhow::Result<()> {
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
        s.workers = 1;
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
        job_workers: 1,
        sim: SimConfig::default(),
    })?;
    let url = app.url("/webhooks/pagerduty");
    let template = Arc::new(IncidentTemplate::new());
    let services = Arc::new(services);
    let mut seq = 0u64;
    let mut valid = |label: &str| -> (Percentiles, usize) {
        let started = seq;
        seq += args.webhooks as u64;
        let (lat, failed) = send_valid(&url, &secret, &template, &services, started, args.webhooks);
        let mut lat = lat;
        let p = Percentiles::of(&mut lat);
        println!(
            "  valid webhooks {label:<8} {:>4} ok, {failed:>3} failed   p50 {:>7.1} ms   p99 {:>7.1} ms",
            p.n, p.p50, p.p99
        );
        (p, failed)
    };

    println!(
        "{} stalled clients, each declaring {} KiB and sending {} KiB",
        args.connections, args.declared_kib, args.sent_kib
    );
    let (rss0, fds0) = footprint();
    let (before, _) = valid("before");

    let chunk = vec![b' '; args.sent_kib * 1024];
    let head = format!(
        "POST /webhooks/pagerduty HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        args.declared_kib * 1024
    );
    let opened = Instant::now();
    let mut stalled = Vec::with_capacity(args.connections);
    let mut refused = 0usize;
    for _ in 0..args.connections {
        match TcpStream::connect(app.addr) {
            Ok(mut s) => {
                let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                if s.write_all(head.as_bytes()).is_err() || s.write_all(&chunk).is_err() {
                    refused += 1;
                }
                stalled.push(s);
            }
            Err(_) => refused += 1,
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let (rss1, fds1) = footprint();
    let (during, _) = valid("stalled");
    let (rss2, _) = footprint();

    // Every stalled client gets an answer: 503 past the memory budget, 408 at the deadline.
    let mut answers: std::collections::BTreeMap<String, usize> = Default::default();
    for s in &mut stalled {
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        let line = String::from_utf8_lossy(&buf[..n]);
        let status = line.split_whitespace().nth(1).unwrap_or("none").to_string();
        *answers.entry(status).or_default() += 1;
    }
    let answered_after = opened.elapsed();
    drop(stalled);
    std::thread::sleep(Duration::from_secs(2));
    let (rss3, fds3) = footprint();
    let (after, _) = valid("after");

    println!(
        "  stalled clients answered within {:.1} s: {answers:?}{}",
        answered_after.as_secs_f64(),
        if refused > 0 {
            format!(" ({refused} could not send their head)")
        } else {
            String::new()
        }
    );
    println!("  resident memory  before {rss0:>7.1} MiB   stalled {rss1:>7.1} MiB (peak seen {:.1})   after {rss3:>7.1} MiB", rss1.max(rss2));
    println!("  open files       before {fds0:>7}       stalled {fds1:>7}       after {fds3:>7}");
    println!(
        "  valid webhook p50 while stalled / before: {:.2}x; after / before: {:.2}x",
        during.p50 / before.p50.max(1e-9),
        after.p50 / before.p50.max(1e-9)
    );
    app.stop();
    Ok(())
}

/// Sends `n` valid signed webhooks from four clients; returns their latencies (ms) and failures.
fn send_valid(
    url: &str,
    secret: &str,
    template: &Arc<IncidentTemplate>,
    services: &Arc<Vec<String>>,
    first: u64,
    n: usize,
) -> (Vec<f64>, usize) {
    let clients = 4;
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (url, secret) = (url.to_string(), secret.to_string());
            let (template, services) = (template.clone(), services.clone());
            std::thread::spawn(move || {
                let agent = harness::agent();
                let (mut lat, mut failed) = (Vec::new(), 0usize);
                for k in (c..n).step_by(clients) {
                    let seq = first + k as u64;
                    let id = format!("STALL{seq}");
                    let body = template.body(&IncidentSpec {
                        event_id: &format!("ev-{id}"),
                        incident_id: &id,
                        number: seq + 1,
                        created_at: chrono::Utc::now(),
                        title: "stalled-bodies bench",
                        service: &services[seq as usize % services.len()],
                        assignee: "PU0",
                    });
                    let t = Instant::now();
                    match super::load::post_webhook(&agent, &url, Some(&secret), &id, &body) {
                        Ok((200, _)) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
                        _ => failed += 1,
                    }
                }
                (lat, failed)
            })
        })
        .collect();
    let mut all = (Vec::new(), 0);
    for h in handles {
        if let Ok((lat, failed)) = h.join() {
            all.0.extend(lat);
            all.1 += failed;
        }
    }
    all
}
