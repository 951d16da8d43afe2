//! `goliath demo`: the whole product on embedded defaults, with no configuration. Starts
//! Goliath on a private PostgreSQL with the built-in Jira simulator playing people who have a
//! hidden skill model (specialists per service), loads a roster through the admin API, sends a
//! stream of signed PagerDuty V3 incidents to its own webhook, lets the simulated people
//! resolve and hand off (signed Jira webhooks back), and prints the learning curve.
//!
//! Incidents carry simulated time: each one's `created_at` is the simulator's clock when it is
//! sent, and the simulator stamps resolutions and hand-offs on the same clock, so the times to
//! resolve below are simulated minutes.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{TimeZone, Utc};
use clap::Args;
use diesel::prelude::*;

use crate::db::embedded::Durability;
use crate::jira::{SimConfig, SimHuman, SimSkill};
use crate::lab::bench::harness::{self, AppSpec, BenchDb, RunningApp};
use crate::lab::bench::load::{post_webhook, IncidentSpec, IncidentTemplate};

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Incidents to send.
    #[arg(long, default_value_t = 300)]
    pub incidents: usize,
    /// Incidents per block of the learning curve.
    #[arg(long, default_value_t = 50)]
    pub block: usize,
    /// Real milliseconds per simulated minute.
    #[arg(long, default_value_t = 10)]
    pub minute_ms: u64,
    /// Simulated minutes between incidents.
    #[arg(long, default_value_t = 3.0)]
    pub gap_minutes: f64,
    /// Longest real wait, after the last incident, for the people to finish.
    #[arg(long, default_value_t = 30)]
    pub max_wait_secs: u64,
    /// Keep the database here (durable) instead of a temporary directory removed at the end.
    #[arg(long = "keep-database-in", value_name = "DIR")]
    pub keep_database_in: Option<PathBuf>,
    /// Simulator RNG seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// After the summary, keep serving (to try the admin URLs) until Ctrl-C.
    #[arg(long)]
    pub keep_running: bool,
    /// Show the server's per-request logs.
    #[arg(long)]
    pub verbose: bool,
}

const SERVICES: [&str; 5] = ["api", "payments", "search", "mobile", "data"];
/// The demo's lifecycle act: a service whose simulated people never get round to their
/// issues, so an escalation shows.
const NEGLECTED: &str = "billing";
/// How long a sev1 owner has to act in the demo (15 minutes in production).
const DEMO_SEV1_DEADLINE: Duration = Duration::from_secs(2);
/// Two specialists per service; everyone covers three services.
const PEOPLE: usize = 10;

struct DemoHuman {
    id: String,
    account: String,
    pd_user: String,
    specialty: &'static str,
    covers: Vec<&'static str>,
}

fn demo_humans() -> Vec<DemoHuman> {
    (0..PEOPLE)
        .map(|i| {
            let s = i / 2;
            let mut covers: Vec<&'static str> =
                (0..3).map(|k| SERVICES[(s + k) % SERVICES.len()]).collect();
            if i < 2 {
                covers.push(NEGLECTED);
            }
            DemoHuman {
                id: format!("responder-{:02}", i + 1),
                account: format!("acct-responder-{:02}", i + 1),
                pd_user: format!("PDEMO{:02}", i + 1),
                specialty: SERVICES[s],
                covers,
            }
        })
        .collect()
}

/// The hidden truth the simulator plays: specialists resolve fast and rarely hand off; others
/// often hand off and are slow.
fn sim_humans(humans: &[DemoHuman]) -> Vec<SimHuman> {
    humans
        .iter()
        .map(|p| {
            let mut skills = HashMap::new();
            for svc in SERVICES {
                let skill = if svc == p.specialty {
                    SimSkill {
                        p_resolve: 0.95,
                        mean_minutes: 20.0,
                    }
                } else {
                    SimSkill {
                        p_resolve: 0.35,
                        mean_minutes: 120.0,
                    }
                };
                skills.insert(svc.to_string(), skill);
            }
            skills.insert(
                NEGLECTED.to_string(),
                SimSkill {
                    p_resolve: 0.5,
                    mean_minutes: 1_000_000.0,
                },
            );
            SimHuman {
                account_id: p.account.clone(),
                display_name: Some(format!(
                    "Responder {} ({} specialist)",
                    &p.id[10..],
                    p.specialty
                )),
                skills,
            }
        })
        .collect()
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if !args.verbose {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let started = Instant::now();
    let durability = if args.keep_database_in.is_some() {
        Durability::Durable
    } else {
        Durability::Throwaway
    };
    eprintln!("goliath demo: starting PostgreSQL, Goliath and the Jira simulator…");
    let db = BenchDb::open(None, args.keep_database_in.clone(), durability)?;
    let pool = db.pool(16)?;
    let admin_token = harness::random_token("admin");
    let pd_secret = harness::random_token("pagerduty");
    let jira_secret = harness::random_token("jira");
    let listener = harness::loopback_listener()?;
    let port = listener.local_addr()?.port();
    let mut config = harness::config_for(port, |s| {
        s.admin_token = Some(admin_token.clone());
        s.pagerduty_webhook_secret = Some(pd_secret.clone());
        s.jira.jira_webhook_secret = Some(jira_secret.clone());
        s.sim_minute_ms = args.minute_ms;
        s.workers = 2;
        s.pagerduty_services = SERVICES
            .iter()
            .chain(std::iter::once(&NEGLECTED))
            .map(|svc| format!("{}={svc}", svc.to_uppercase()))
            .collect();
    })?;
    config.escalation.deadlines[0] = Some(DEMO_SEV1_DEADLINE);
    let humans = demo_humans();
    let app = RunningApp::start(AppSpec {
        config,
        listener,
        pool,
        http_threads: 2,
        job_workers: 2,
        sim: SimConfig {
            humans: sim_humans(&humans),
            play_humans: true,
            minute_ms: args.minute_ms.max(1),
            seed: args.seed,
            max_handoffs: 3,
            ..SimConfig::default()
        },
    })?;
    let agent = harness::agent();
    let auth = format!("Bearer {admin_token}");

    // The roster, through the admin API.
    let roster: Vec<serde_json::Value> = humans
        .iter()
        .map(|p| {
            serde_json::json!({
                "id": p.id,
                "display_name": format!("Responder {}", &p.id[10..]),
                "email": format!("{}@example.com", p.id),
                "jira_account_id": p.account,
                "pagerduty_user_id": p.pd_user,
                "services": p.covers,
            })
        })
        .collect();
    let mut resp = agent
        .post(&app.url("/admin/humans/import"))
        .header("Authorization", &auth)
        .send_json(serde_json::Value::Array(roster))
        .context("loading the roster")?;
    anyhow::ensure!(
        resp.status().as_u16() == 200,
        "loading the roster: {} {}",
        resp.status(),
        resp.body_mut().read_to_string().unwrap_or_default()
    );
    eprintln!(
        "goliath demo: {} people over {} services loaded; sending {} incidents (1 simulated \
         minute = {} ms, one incident every {} simulated minutes)",
        humans.len(),
        SERVICES.len(),
        args.incidents,
        args.minute_ms,
        args.gap_minutes
    );

    // The incident stream, paced on the simulator's clock.
    let template = IncidentTemplate::new();
    let webhook = app.url("/webhooks/pagerduty");
    let t0 = app.sim().now_ms();
    let gap_ms = (args.gap_minutes * 60_000.0) as i64;
    let mut failures = 0usize;
    let mut progress = Progress::new(args.incidents);
    for i in 0..args.incidents {
        let due = t0 + gap_ms * i as i64;
        while app.sim().now_ms() < due {
            std::thread::sleep(Duration::from_millis(1));
        }
        let now = app.sim().now_ms();
        let service = SERVICES[(i * 7 + i / 3) % SERVICES.len()];
        // Whoever is on call: rotates among the people covering the service, so being paged
        // says nothing about skill.
        let on_call: Vec<&DemoHuman> = humans
            .iter()
            .filter(|p| p.covers.contains(&service))
            .collect();
        let pd_user = &on_call[i % on_call.len()].pd_user;
        let incident = format!("PDEMO{i:05}");
        let event = format!("EDEMO{i:05}");
        let body = template.body(&IncidentSpec {
            event_id: &event,
            incident_id: &incident,
            number: i as u64 + 1,
            created_at: Utc
                .timestamp_millis_opt(now)
                .single()
                .unwrap_or_else(Utc::now),
            title: &format!("{service}: elevated error rate"),
            service,
            assignee: pd_user,
        });
        match post_webhook(&agent, &webhook, Some(&pd_secret), &event, &body) {
            Ok((200, _)) => {}
            other => {
                failures += 1;
                log::warn!("incident {i} not accepted: {other:?}");
            }
        }
        if i % 5 == 0 || i + 1 == args.incidents {
            progress.draw(i + 1, resolved_in_sim(&app));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(args.max_wait_secs);
    loop {
        let resolved = resolved_in_sim(&app);
        progress.draw(args.incidents, resolved);
        let settled = resolved >= args.incidents - failures && resolved_in_db(&app)? >= resolved;
        if settled || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    progress.finish();

    let report = summarize(&app, &humans, args.block.max(1), args.minute_ms)?;
    println!("{report}");
    let lifecycle = lifecycle_act(&app, &agent, &webhook, &pd_secret, &humans, &template)?;
    println!("{lifecycle}");
    println!(
        "  failed webhooks: {failures}; demo took {:.1} s of real time",
        started.elapsed().as_secs_f64()
    );
    let base = app.url("");
    println!();
    println!("Where to look (admin API, token {admin_token}):");
    for path in [
        "/admin/work-items?limit=20",
        "/admin/stats?service=payments",
        "/admin/humans",
        "/admin/jobs",
    ] {
        println!("  curl -s -H 'Authorization: Bearer {admin_token}' '{base}{path}'");
    }
    println!(
        "  Jira simulator: curl -s '{}/_sim/issues'",
        app.sim().base_url()
    );
    println!(
        "  Admin page: {} (log in with the token above)",
        app.url("/admin/ui")
    );
    if args.keep_running {
        println!("Serving until Ctrl-C…");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(tokio::signal::ctrl_c())?;
    } else {
        println!("  (these stop with the demo; run `goliath demo --keep-running` to try them)");
    }
    eprintln!("goliath demo: stopping");
    app.stop();
    drop(db);
    Ok(())
}

/// The incident after its trigger: three incidents resolved from PagerDuty (Goliath closes their
/// Jira issues), and one sev1 whose owner does nothing (it escalates to the backup).
fn lifecycle_act(
    app: &RunningApp,
    agent: &ureq::Agent,
    webhook: &str,
    secret: &str,
    humans: &[DemoHuman],
    template: &IncidentTemplate,
) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    writeln!(out, "Lifecycle (PagerDuty updates, Jira follows)")?;
    let send = |event: &str, body: &serde_json::Value| -> anyhow::Result<serde_json::Value> {
        let bytes = serde_json::to_vec(body)?;
        match post_webhook(agent, webhook, Some(secret), event, &bytes) {
            Ok((200, text)) => Ok(serde_json::from_str(&text)?),
            other => anyhow::bail!("{event} not accepted: {other:?}"),
        }
    };
    let trigger = |n: usize, service: &str, pd_user: &str| -> anyhow::Result<serde_json::Value> {
        let incident = format!("PLIFE{n:03}");
        let event = format!("ELIFE{n:03}");
        let body = template.body(&IncidentSpec {
            event_id: &event,
            incident_id: &incident,
            number: 90_000 + n as u64,
            created_at: Utc
                .timestamp_millis_opt(app.sim().now_ms())
                .single()
                .unwrap_or_else(Utc::now),
            title: &format!("{service}: checkout failing"),
            service,
            assignee: pd_user,
        });
        Ok(serde_json::from_slice(&body)?)
    };

    // Resolved in PagerDuty before anyone touched Jira: Goliath comments and closes the issue.
    let mut closed = vec![];
    for n in 0..3 {
        let on_call = &humans[(2 + n) % humans.len()];
        let mut body = trigger(n, "payments", &on_call.pd_user)?;
        let answer = send(&format!("ELIFE{n:03}"), &body)?;
        let id = answer["work_item_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        body["event"]["id"] = format!("ELIFE{n:03}-resolved").into();
        body["event"]["event_type"] = "incident.resolved".into();
        body["event"]["occurred_at"] = Utc::now().to_rfc3339().into();
        body["event"]["agent"] =
            serde_json::json!({"id": on_call.pd_user, "type": "user_reference"});
        body["event"]["data"]["status"] = "resolved".into();
        body["event"]["data"]["assignees"] = serde_json::json!([]);
        send(&format!("ELIFE{n:03}-resolved"), &body)?;
        closed.push(id);
    }
    let done = wait_for(Duration::from_secs(15), || {
        let issues = app.sim().issues();
        closed
            .iter()
            .filter(|id| {
                issues
                    .iter()
                    .any(|i| i.labels.contains(&format!("goliath-{id}")) && i.resolution.is_some())
            })
            .count()
            == closed.len()
    });
    let closed_now = app
        .sim()
        .issues()
        .iter()
        .filter(|i| {
            i.resolution.is_some()
                && closed
                    .iter()
                    .any(|id| i.labels.contains(&format!("goliath-{id}")))
        })
        .count();
    writeln!(
        out,
        "  resolved from PagerDuty: {} incidents; their Jira issues moved to Done by Goliath: {closed_now}/{}{}",
        closed.len(),
        closed.len(),
        if done { "" } else { " (still in the queue)" }
    )?;

    // A sev1 nobody acts on: past its deadline it goes to the decision's next backup.
    let mut body = trigger(9, NEGLECTED, &humans[0].pd_user)?;
    body["event"]["data"]["priority"] =
        serde_json::json!({"summary": "P1", "type": "priority_reference"});
    let answer = send("ELIFE009", &body)?;
    let id = answer["work_item_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let owner = answer["assignee_id"]
        .as_str()
        .unwrap_or("nobody")
        .to_string();
    let escalated = || -> anyhow::Result<Option<(String, String)>> {
        use crate::db::schema::outcomes;
        let mut conn = app.state.pool.get()?;
        Ok(outcomes::table
            .filter(outcomes::work_item_id.eq(&id))
            .filter(outcomes::kind.eq("escalated"))
            .select((outcomes::human_id, outcomes::to_human_id))
            .first::<(Option<String>, Option<String>)>(&mut conn)
            .optional()?
            .map(|(a, b)| (a.unwrap_or_default(), b.unwrap_or_default())))
    };
    wait_for(Duration::from_secs(15), || {
        escalated().ok().flatten().is_some()
    });
    match escalated()? {
        Some((from, to)) => writeln!(
            out,
            "  escalation: a sev1 on {NEGLECTED} went to {owner}, who did nothing for {} s (15 min in production);\n    it escalated once, from {from} to {to}, and Jira was reassigned",
            DEMO_SEV1_DEADLINE.as_secs()
        )?,
        None => writeln!(
            out,
            "  escalation: the sev1 on {NEGLECTED} (owner {owner}) did not escalate in time"
        )?,
    }
    Ok(out)
}

/// Polls `check` until it holds or `limit` passes; whether it held.
fn wait_for(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

fn resolved_in_sim(app: &RunningApp) -> usize {
    app.sim()
        .issues()
        .iter()
        .filter(|i| i.resolution.is_some())
        .count()
}

fn resolved_in_db(app: &RunningApp) -> anyhow::Result<usize> {
    use crate::db::schema::work_items;
    let mut conn = app.state.pool.get()?;
    let n: i64 = work_items::table
        .filter(work_items::status.eq("resolved"))
        .count()
        .get_result(&mut conn)?;
    Ok(n as usize)
}

/// A one-line progress bar on stderr.
struct Progress {
    total: usize,
    tty: bool,
    last: Instant,
}

impl Progress {
    fn new(total: usize) -> Progress {
        use std::io::IsTerminal;
        Progress {
            total: total.max(1),
            tty: std::io::stderr().is_terminal(),
            last: Instant::now() - Duration::from_secs(10),
        }
    }

    fn draw(&mut self, sent: usize, resolved: usize) {
        // Not a terminal: a line every couple of seconds instead of redrawing.
        let finished = sent >= self.total && resolved >= self.total;
        if !self.tty && self.last.elapsed() < Duration::from_secs(2) && !finished {
            return;
        }
        self.last = Instant::now();
        const WIDTH: usize = 30;
        let filled = WIDTH * sent / self.total;
        let done = WIDTH * resolved.min(self.total) / self.total;
        let bar: String = (0..WIDTH)
            .map(|i| {
                if i < done {
                    '#'
                } else if i < filled {
                    '='
                } else {
                    '.'
                }
            })
            .collect();
        let line = format!("[{bar}] {sent}/{} sent, {resolved} resolved", self.total);
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r{line}\x1b[K");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

/// Counts and the learning curve, from the database.
fn summarize(
    app: &RunningApp,
    humans: &[DemoHuman],
    block: usize,
    minute_ms: u64,
) -> anyhow::Result<String> {
    use crate::db::schema::{decisions, outcomes, work_items};
    use std::fmt::Write as _;
    let mut conn = app.state.pool.get()?;
    type Row = (
        String,
        String,
        chrono::DateTime<Utc>,
        Option<chrono::DateTime<Utc>>,
        Option<String>,
        Option<String>,
    );
    let items: Vec<Row> = work_items::table
        .left_join(decisions::table)
        .order((work_items::created_at, work_items::id))
        .select((
            work_items::id,
            work_items::service,
            work_items::created_at,
            work_items::resolved_at,
            work_items::jira_key,
            decisions::primary_human_id.nullable(),
        ))
        .load(&mut conn)?;
    let handed: Vec<(String, i64)> = outcomes::table
        .filter(outcomes::kind.eq("handed_off"))
        .group_by(outcomes::work_item_id)
        .select((outcomes::work_item_id, diesel::dsl::count_star()))
        .load(&mut conn)?;
    let handed: HashMap<String, i64> = handed.into_iter().collect();
    let specialists: HashSet<(String, &str)> =
        humans.iter().map(|p| (p.id.clone(), p.specialty)).collect();
    let routed = items.iter().filter(|r| r.5.is_some()).count();
    let with_issue = items.iter().filter(|r| r.4.is_some()).count();
    let resolved = items.iter().filter(|r| r.3.is_some()).count();
    let counters = app.sim().counters();
    let mut out = String::new();
    writeln!(out, "\nGoliath demo summary")?;
    writeln!(
        out,
        "  incidents received {}, routed {routed}, Jira issues created {with_issue} (simulator \
         counted {} create calls), resolved {resolved}; {} Jira webhooks sent back",
        items.len(),
        counters.create_issue,
        counters.webhooks_sent
    )?;
    writeln!(
        out,
        "  learning curve (blocks of {block} incidents in arrival order; times in simulated \
         minutes, 1 simulated minute = {minute_ms} ms):"
    )?;
    writeln!(
        out,
        "    {:<11} {:>9} {:>14} {:>13} {:>14} {:>10}",
        "incidents", "routed", "to specialist", "handed off", "hand-offs/inc", "MTTR min"
    )?;
    for (b, chunk) in items.chunks(block).enumerate() {
        let n = chunk.len();
        let to_specialist = chunk
            .iter()
            .filter(|r| {
                r.5.as_ref()
                    .is_some_and(|h| specialists.contains(&(h.clone(), r.1.as_str())))
            })
            .count();
        let handed_items = chunk
            .iter()
            .filter(|r| handed.get(&r.0).copied().unwrap_or(0) > 0)
            .count();
        let handoffs: i64 = chunk
            .iter()
            .map(|r| handed.get(&r.0).copied().unwrap_or(0))
            .sum();
        let ttr: Vec<f64> = chunk
            .iter()
            .filter_map(|r| {
                r.3.map(|done| (done - r.2).num_milliseconds() as f64 / 60_000.0)
            })
            .collect();
        let mttr = if ttr.is_empty() {
            "-".to_string()
        } else {
            format!("{:.0}", ttr.iter().sum::<f64>() / ttr.len() as f64)
        };
        writeln!(
            out,
            "    {:<11} {:>9} {:>13.0}% {:>12.0}% {:>14.2} {:>10}",
            format!("{}-{}", b * block + 1, b * block + n),
            chunk.iter().filter(|r| r.5.is_some()).count(),
            100.0 * to_specialist as f64 / n as f64,
            100.0 * handed_items as f64 / n as f64,
            handoffs as f64 / n as f64,
            mttr
        )?;
    }
    writeln!(
        out,
        "  (hidden truth: each service has two specialists who resolve 95% of what they get in \
         ~20 min; others hand off 65% of the time and take ~2 h)"
    )?;
    Ok(out)
}
