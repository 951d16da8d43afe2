//! The whole loop against the Jira simulator over real HTTP: decision -> durable job -> Jira
//! issue -> Jira webhook -> learner; and the faults that must lose and duplicate nothing.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use goliath::db::schema::jobs;
use goliath::jira::{Fault, SimFaults};
use goliath::jobs::queue::FinishedJobs;
use goliath::jobs::worker::drain;

use crate::helpers::{config_with, history_of, human, AppOptions, TestApp, TestDb};

pub(crate) const JIRA_SECRET: &str = "jira-test-secret";

pub(crate) fn app(workers: bool) -> TestApp {
    let config = config_with(
        |s| s.jira.jira_webhook_secret = Some(JIRA_SECRET.into()),
        &[],
    );
    TestApp::start_with(
        TestDb::new(),
        config,
        AppOptions {
            workers,
            ..AppOptions::default()
        },
    )
}

fn issue_for(app: &TestApp, work_item_id: &str) -> Vec<goliath::jira::SimIssueView> {
    let label = format!("goliath-{work_item_id}");
    app.sim()
        .issues()
        .into_iter()
        .filter(|i| i.labels.contains(&label))
        .collect()
}

pub(crate) fn jira_key(app: &TestApp, id: &str) -> Option<String> {
    app.work_item(id)["jira_key"].as_str().map(String::from)
}

/// Sends `n` low-urgency api incidents; returns their work item ids.
fn api_incidents(app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            app.incident(&format!("{prefix}{i}"), "api-service", "low")["work_item_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn job_states(app: &TestApp) -> Vec<(String, String, i32)> {
    let mut conn = app.db.conn();
    jobs::table
        .order(jobs::id)
        .select((jobs::kind, jobs::state, jobs::attempts))
        .load(&mut conn)
        .unwrap()
}

#[test]
fn webhook_to_jira_issue_to_outcome_changes_the_next_decision() {
    let app = app(true);
    app.roster(&[human("ana", &["api"]), human("ben", &["api"])]);
    let resp = app.incident("E1", "api-service", "high");
    let id = resp["work_item_id"].as_str().unwrap().to_string();
    let owner = resp["assignee_id"].as_str().unwrap().to_string();
    assert!(
        app.wait_until(Duration::from_secs(10), || jira_key(&app, &id).is_some()),
        "the worker created the issue"
    );
    let issues = issue_for(&app, &id);
    assert_eq!(issues.len(), 1);
    let issue = &issues[0];
    assert_eq!(
        issue.assignee.as_deref(),
        Some(format!("acct-{owner}").as_str()),
        "assigned to the owner's Jira account"
    );
    assert_eq!(issue.project_key, "OPS");
    assert!(issue.labels.contains(&"service-api".to_string()));
    assert_eq!(issue.priority.as_deref(), Some("High"), "sev2 maps to High");

    // The owner hands it to the other person in Jira; the signed webhook teaches the learner.
    let other = if owner == "ana" { "ben" } else { "ana" };
    app.sim()
        .reassign(&issue.key, Some(&format!("acct-{other}")))
        .unwrap();
    assert!(app.wait_until(Duration::from_secs(10), || {
        app.work_item(&id)["work_item"]["assignee_id"] == other
    }));
    app.sim().resolve(&issue.key).unwrap();
    assert!(app.wait_until(Duration::from_secs(10), || {
        app.work_item(&id)["work_item"]["status"] == "resolved"
    }));
    let view = app.work_item(&id);
    let kinds: Vec<&str> = view["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["handed_off", "resolved"]);
    assert_eq!(view["outcomes"][1]["human_id"], other);

    // The next api incident goes to the person who resolved, not the one who handed off.
    let next = app.incident("E2", "api-service", "high");
    assert_eq!(next["assignee_id"], other, "{next}");
}

#[test]
fn only_finished_jobs_past_the_retention_are_deleted_oldest_first() {
    use goliath::jobs::queue::prune_finished;
    let app = app(false);
    let mut conn = app.db.conn();
    diesel::sql_query(
        "INSERT INTO jobs (kind, payload, state, created_at, finished_at) VALUES \
         ('done 20 days ago', '{}', 'done', now() - interval '20 days', \
          now() - interval '20 days'), \
         ('done 15 days ago', '{}', 'done', now() - interval '16 days', \
          now() - interval '15 days'), \
         ('done yesterday', '{}', 'done', now() - interval '30 days', now() - interval '1 day'), \
         ('dead 20 days ago', '{}', 'dead', now() - interval '20 days', \
          now() - interval '20 days'), \
         ('queued 20 days ago', '{}', 'queued', now() - interval '20 days', NULL)",
    )
    .execute(&mut conn)
    .unwrap();
    let two_weeks = Duration::from_secs(14 * 86_400);
    let kinds = |conn: &mut PgConnection| -> Vec<String> {
        jobs::table
            .order(jobs::id)
            .select(jobs::kind)
            .load(conn)
            .unwrap()
    };
    assert_eq!(prune_finished(&mut conn, two_weeks, 1).unwrap(), 1);
    assert_eq!(
        kinds(&mut conn)[0],
        "done 15 days ago",
        "the oldest went first"
    );
    assert_eq!(prune_finished(&mut conn, two_weeks, 1_000).unwrap(), 1);
    assert_eq!(prune_finished(&mut conn, two_weeks, 1_000).unwrap(), 0);
    assert_eq!(
        kinds(&mut conn),
        ["done yesterday", "dead 20 days ago", "queued 20 days ago"]
    );
}

#[test]
fn the_workers_delete_finished_jobs_once_they_are_past_the_retention() {
    let config = config_with(
        |s| s.jira.jira_webhook_secret = Some(JIRA_SECRET.into()),
        &[],
    );
    let app = TestApp::start_with(
        TestDb::new(),
        config,
        AppOptions {
            workers: true,
            expiries: vec![Arc::new(FinishedJobs {
                age: Duration::from_secs(1),
            })],
            ..AppOptions::default()
        },
    );
    app.roster(&[human("ana", &["api"])]);
    let ids = api_incidents(&app, "R", 2);
    let issued = app.wait_until(Duration::from_secs(15), || {
        ids.iter().all(|id| jira_key(&app, id).is_some())
    });
    assert!(issued, "{:?}", job_states(&app));
    let pruned = app.wait_until(Duration::from_secs(15), || job_states(&app).is_empty());
    assert!(pruned, "{:?}", job_states(&app));
    for id in &ids {
        assert_eq!(issue_for(&app, id).len(), 1, "the work itself stays done");
    }
}

#[test]
fn jira_500_and_429_are_retried_into_exactly_one_issue() {
    let app = app(false);
    app.roster(&[human("ana", &["api"])]);
    app.sim().set_faults(SimFaults {
        create_issue: vec![Fault::from(500), Fault::from(429)],
        retry_after_secs: Some(1),
        ..SimFaults::default()
    });
    let id = app.incident("F1", "api-service", "low")["work_item_id"]
        .as_str()
        .unwrap()
        .to_string();
    let handler = app.state.executor.clone();
    // First attempt: 500, queued again with backoff.
    assert_eq!(drain(&app.state.pool, &*handler).unwrap(), 1);
    assert_eq!(
        job_states(&app),
        vec![("jira_create_issue".into(), "queued".into(), 1)]
    );
    // Wait out the retries; the 429's Retry-After is honoured.
    let mut attempts = 1;
    let done = app.wait_until(Duration::from_secs(15), || {
        attempts += drain(&app.state.pool, &*handler).unwrap();
        job_states(&app)[0].1 == "done"
    });
    assert!(done, "{:?}", job_states(&app));
    assert_eq!(job_states(&app)[0].2, 3, "500, 429, then 201");
    assert_eq!(issue_for(&app, &id).len(), 1, "exactly one issue");
    let view = app.work_item(&id);
    assert!(view["jobs"][0]["last_error"].is_null());
    assert_eq!(view["jobs"][0]["attempts"], 3, "retries are visible");
    // Both failures are counted for alerting (other tests may add to the same counters).
    for status in ["500", "429"] {
        let line = format!("goliath_api_errors_total{{api=\"jira\",status=\"{status}\"}} ");
        let n = app.metric(&line).unwrap_or(0.0);
        assert!(n >= 1.0, "{line}");
    }
}

#[test]
fn jira_400_makes_the_job_dead_visible_and_retryable() {
    let app = app(false);
    app.roster(&[human("ana", &["api"])]);
    app.sim().set_faults(SimFaults {
        create_issue: vec![Fault::from(400)],
        ..SimFaults::default()
    });
    let id = app.incident("D1", "api-service", "low")["work_item_id"]
        .as_str()
        .unwrap()
        .to_string();
    drain(&app.state.pool, &*app.state.executor).unwrap();
    let dead = app.admin("GET", "/admin/jobs?state=dead", None).json();
    let list = dead["jobs"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert!(
        list[0]["last_error"].as_str().unwrap().contains("400"),
        "{}",
        list[0]
    );
    let job_id = list[0]["id"].as_i64().unwrap();
    assert!(issue_for(&app, &id).is_empty());

    let retried = app.admin("POST", &format!("/admin/jobs/{job_id}/retry"), None);
    assert_eq!(retried.status, 200, "{}", retried.body);
    drain(&app.state.pool, &*app.state.executor).unwrap();
    assert_eq!(issue_for(&app, &id).len(), 1);
    assert!(jira_key(&app, &id).is_some());
    assert_eq!(
        app.admin("POST", &format!("/admin/jobs/{job_id}/retry"), None)
            .status,
        409,
        "only dead jobs"
    );
    assert_eq!(
        app.admin("GET", "/admin/jobs?state=bogus", None).status,
        422
    );
}

#[test]
fn lost_response_after_jira_created_the_issue_does_not_duplicate_it() {
    let app = app(false);
    app.roster(&[human("ana", &["api"])]);
    // Jira creates the issue but the answer never arrives (503 after the commit).
    app.sim().set_faults(SimFaults {
        create_issue: vec![Fault {
            status: 503,
            commit: true,
            delay_ms: 0,
            hold_ms: 0,
        }],
        retry_after_secs: Some(0),
        ..SimFaults::default()
    });
    let id = app.incident("LR1", "api-service", "low")["work_item_id"]
        .as_str()
        .unwrap()
        .to_string();
    let handler = app.state.executor.clone();
    assert!(app.wait_until(Duration::from_secs(10), || {
        drain(&app.state.pool, &*handler).unwrap();
        jira_key(&app, &id).is_some()
    }));
    assert_eq!(
        issue_for(&app, &id).len(),
        1,
        "found by its label, not created twice"
    );
    assert_eq!(app.sim().counters().create_issue, 1);
    assert!(
        app.sim().counters().search >= 1,
        "the retry searched before creating"
    );
    assert_eq!(job_states(&app)[0].2, 2);
}

#[test]
fn worker_killed_between_jiras_201_and_our_commit_does_not_duplicate() {
    let app = app(false);
    app.roster(&[human("ana", &["api"])]);
    let id = app.incident("K1", "api-service", "low")["work_item_id"]
        .as_str()
        .unwrap()
        .to_string();
    // A worker claims the job and gets Jira's 201, then dies before it can record anything:
    // the job row stays `running` under its lease, exactly as a killed process leaves it.
    {
        let mut conn = app.db.conn();
        let job = goliath::jobs::queue::claim(&mut conn, "doomed-worker")
            .unwrap()
            .expect("a job");
        assert_eq!(job.kind, "jira_create_issue");
        let client =
            goliath::app::jira_client(&app.state.config, Some(&app.sim().base_url())).unwrap();
        let issue = goliath::jira::NewIssue {
            project_key: "OPS".into(),
            issue_type: "Task".into(),
            summary: "created by the worker that died".into(),
            description: Default::default(),
            priority: None,
            labels: vec![goliath::executor::issue_label(&id)],
            assignee_account_id: Some("acct-ana".into()),
        };
        client.create_issue(&issue).unwrap();
    }
    assert_eq!(
        drain(&app.state.pool, &*app.state.executor).unwrap(),
        0,
        "still leased"
    );
    // Another process (or this one restarted) finds the expired lease and takes the job again.
    let mut conn = app.db.conn();
    diesel::sql_query("UPDATE jobs SET locked_at = now() - interval '2 minutes'")
        .execute(&mut conn)
        .unwrap();
    assert_eq!(
        goliath::jobs::queue::reap_expired(&mut conn, Duration::from_secs(60)).unwrap(),
        1
    );
    drain(&app.state.pool, &*app.state.executor).unwrap();
    assert_eq!(issue_for(&app, &id).len(), 1, "no second issue");
    assert!(jira_key(&app, &id).is_some());
    assert_eq!(
        job_states(&app),
        vec![("jira_create_issue".into(), "done".into(), 2)]
    );
}

#[test]
fn a_batch_of_jobs_records_each_issue_and_a_failure_in_it_fails_only_its_own_job() {
    let app = app(false);
    app.roster(&[human("ana", &["api"])]);
    // The first create of the batch gets a 500; the others go through.
    app.sim().set_faults(SimFaults {
        create_issue: vec![Fault::from(500)],
        retry_after_secs: Some(0),
        ..SimFaults::default()
    });
    let ids = api_incidents(&app, "BT", 5);
    let ran =
        goliath::jobs::worker::run_batch(&app.state.pool, &*app.state.executor, "batch-test", 10)
            .unwrap();
    assert_eq!(ran, 5, "one claim takes every runnable job");
    let states = job_states(&app);
    assert_eq!(
        states.iter().filter(|(_, s, _)| s == "done").count(),
        4,
        "{states:?}"
    );
    assert_eq!(states[0], ("jira_create_issue".into(), "queued".into(), 1));
    assert!(jira_key(&app, &ids[0]).is_none());
    for id in &ids[1..] {
        let view = app.work_item(id);
        let key = view["jira_key"].as_str().expect("recorded");
        assert_eq!(issue_for(&app, id)[0].key, key);
        let created = history_of(&view, "jira_issue_created");
        assert_eq!(created.len(), 1, "{view}");
        assert_eq!(created[0]["detail"]["jira_key"], key);
    }
    // The failed one runs again on its own and ends with exactly one issue too.
    assert!(app.wait_until(Duration::from_secs(10), || {
        drain(&app.state.pool, &*app.state.executor).unwrap();
        jira_key(&app, &ids[0]).is_some()
    }));
    for id in &ids {
        assert_eq!(issue_for(&app, id).len(), 1, "{id}");
    }
    assert_eq!(app.sim().counters().create_issue, 6, "five issues, one 500");
}

#[test]
fn jira_work_yields_to_webhooks_in_flight_but_is_never_stopped_by_them() {
    let app = app(false);
    app.roster(&[human("ana", &["api"])]);
    // As under a flood that never lets up: a webhook is always waiting for its answer.
    let flood = app.state.foreground.enter();
    let workers = app
        .state
        .spawn_workers(goliath::jobs::worker::WorkerOptions {
            threads: 1,
            ..Default::default()
        });
    let ids = api_incidents(&app, "FL", 3);
    let bound = goliath::jobs::worker::MAX_YIELD * 3 + Duration::from_secs(5);
    assert!(app.wait_until(bound, || ids.iter().all(|id| jira_key(&app, id).is_some())));
    drop(flood);
    workers.shutdown();
    for id in &ids {
        assert_eq!(issue_for(&app, id).len(), 1, "{id}");
    }
}

#[test]
fn jobs_queued_before_a_restart_are_all_done_once() {
    let app = app(false);
    app.roster(&[
        human("ana", &["api", "data"]),
        human("ben", &["api", "data"]),
    ]);
    let ids: Vec<String> = (0..12)
        .map(|i| {
            app.incident(
                &format!("Q{i}"),
                if i % 2 == 0 {
                    "api-service"
                } else {
                    "data-service"
                },
                "low",
            )["work_item_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        app.sim().counters().create_issue,
        0,
        "nothing ran before the workers start"
    );
    // The workers come up (as after a restart) and take the whole backlog.
    let workers = app
        .state
        .spawn_workers(goliath::jobs::worker::WorkerOptions {
            threads: 2,
            ..Default::default()
        });
    assert!(app.wait_until(Duration::from_secs(20), || ids
        .iter()
        .all(|id| jira_key(&app, id).is_some())));
    workers.shutdown();
    for id in &ids {
        assert_eq!(issue_for(&app, id).len(), 1, "{id}");
    }
    assert_eq!(app.sim().counters().create_issue, 12);
}

/// Runs the real `goliath` binary against a test database and a simulator.
struct Process {
    child: std::process::Child,
    url: String,
}

impl Process {
    fn start(db_url: &str, sim_url: &str) -> Process {
        // The port is free when picked but another process may take it before the child binds
        // it: a child that exits early is started again on another port.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_goliath"))
                .arg("serve")
                .env("DATABASE_URL", db_url)
                .env("GOLIATH_BIND", format!("127.0.0.1:{port}"))
                .env("GOLIATH_ADMIN_TOKEN", crate::helpers::ADMIN_TOKEN)
                .env("GOLIATH_JOB_LEASE_SECS", "1")
                .env("GOLIATH_ALLOW_UNSIGNED_WEBHOOKS", "true")
                .env("JIRA_BASE_URL", sim_url)
                .env("JIRA_EMAIL", "goliath@example.com")
                .env("JIRA_API_TOKEN", "token")
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("the goliath binary starts");
            let url = format!("http://127.0.0.1:{port}");
            let agent = crate::helpers::agent();
            for _ in 0..200 {
                std::thread::sleep(Duration::from_millis(50));
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                let healthy = agent
                    .get(&format!("{url}/healthz"))
                    .call()
                    .is_ok_and(|r| r.status() == 200);
                if healthy {
                    // Still running, so the answer came from this child.
                    std::thread::sleep(Duration::from_millis(200));
                    if child.try_wait().ok().flatten().is_none() {
                        return Process { child, url };
                    }
                    break;
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("goliath serve did not come up");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn process_killed_between_jiras_201_and_its_commit_makes_no_duplicate_after_restart() {
    let db = TestDb::new();
    let sim = goliath::jira::JiraSim::start(goliath::jira::SimConfig {
        play_humans: false,
        ..Default::default()
    })
    .unwrap();
    // Jira creates the issue at once but holds its 201 back for 30 s: long enough to kill the
    // process while it waits, after Jira has the issue and before Goliath recorded it.
    sim.set_faults(SimFaults {
        create_issue: vec![Fault {
            status: 201,
            commit: false,
            delay_ms: 0,
            hold_ms: 30_000,
        }],
        ..SimFaults::default()
    });
    let mut first = Process::start(&db.url, &sim.base_url());
    let roster = crate::helpers::admin_request(
        &format!("{}/admin/humans", first.url),
        "POST",
        Some(human("ana", &["api"])),
        Some(crate::helpers::ADMIN_TOKEN),
    );
    assert_eq!(roster.status, 200, "{}", roster.body);
    let body = crate::helpers::incident_body("KILL1", "api-service", "low", chrono::Utc::now());
    let resp = crate::helpers::agent()
        .post(&format!("{}/webhooks/pagerduty", first.url))
        .send(&body[..])
        .unwrap();
    assert_eq!(resp.status(), 200);
    let waited = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(25));
        !sim.issues().is_empty()
    });
    assert!(waited, "Jira received the create");
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let mut conn = db.conn();
    let (state, key): (String, Option<String>) = jobs::table
        .inner_join(
            goliath::db::schema::work_items::table.on(jobs::payload
                .retrieve_as_text("work_item_id")
                .eq(goliath::db::schema::work_items::id)),
        )
        .select((jobs::state, goliath::db::schema::work_items::jira_key))
        .first(&mut conn)
        .unwrap();
    assert_eq!(
        (state.as_str(), key.as_deref()),
        ("running", None),
        "killed mid-job"
    );

    // Restarted, it takes the job again once the lease runs out, and finds the issue.
    let _second = Process::start(&db.url, &sim.base_url());
    let recorded = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        goliath::db::schema::work_items::table
            .select(goliath::db::schema::work_items::jira_key)
            .first::<Option<String>>(&mut conn)
            .unwrap()
            .is_some()
    });
    assert!(recorded, "the restarted process finished the job");
    assert_eq!(sim.issues().len(), 1, "no second issue");
    assert_eq!(sim.counters().create_issue, 1);
    assert!(sim.counters().search >= 1);
    sim.stop();
}

#[test]
fn under_a_backlog_the_most_severe_items_jira_work_is_served_first_and_its_age_reported() {
    let app = app(false);
    app.roster(&[human("ana", &["api"]), human("ben", &["api"])]);
    let backlog = api_incidents(&app, "BL", 20);
    let urgent = app.incident("URGENT", "api-service", "high");
    let urgent_id = urgent["work_item_id"].as_str().unwrap().to_string();
    let severity = |id: &str| {
        app.work_item(id)["work_item"]["severity"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (low, high) = (severity(&backlog[0]), severity(&urgent_id));
    assert!(high < low, "{high} should be more severe than {low}");

    // Jira work is queued for every item; the last to arrive is served first.
    let mut conn = app.db.conn();
    let first = goliath::jobs::queue::claim(&mut conn, "test")
        .unwrap()
        .unwrap();
    assert_eq!(
        first.payload["work_item_id"],
        urgent_id.as_str(),
        "{first:?}"
    );
    let next = goliath::jobs::queue::claim_many(&mut conn, "test", 5).unwrap();
    assert!(next
        .iter()
        .all(|j| j.payload["work_item_id"] != urgent_id.as_str()));
    // Then by age: the backlog's items in the order they arrived.
    let items: Vec<&str> = next
        .iter()
        .filter_map(|j| j.payload["work_item_id"].as_str())
        .collect();
    let arrived: Vec<&str> = backlog
        .iter()
        .map(String::as_str)
        .filter(|b| items.contains(b))
        .collect();
    assert_eq!(
        items
            .iter()
            .copied()
            .filter(|i| arrived.contains(i))
            .collect::<Vec<_>>(),
        arrived
    );

    // What still waits is reported per severity.
    std::thread::sleep(Duration::from_millis(1100));
    let metrics = app.admin("GET", "/metrics", None);
    assert_eq!(metrics.status, 200);
    let age = |sev: &str| -> i64 {
        let line = format!("goliath_job_queue_age_seconds{{severity=\"{sev}\"}} ");
        metrics
            .body
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .unwrap_or_else(|| panic!("{line} in {}", metrics.body))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(age(&low) >= 1, "{}", metrics.body);
    assert_eq!(
        age(&high),
        0,
        "the urgent item's job is running, none waits"
    );
}

#[test]
fn a_redelivered_incident_is_decided_once_in_the_metrics() {
    let db = TestDb::new();
    let sim = goliath::jira::JiraSim::start(goliath::jira::SimConfig {
        play_humans: false,
        ..Default::default()
    })
    .unwrap();
    let process = Process::start(&db.url, &sim.base_url());
    let roster = crate::helpers::admin_request(
        &format!("{}/admin/humans", process.url),
        "POST",
        Some(human("ana", &["api"])),
        Some(crate::helpers::ADMIN_TOKEN),
    );
    assert_eq!(roster.status, 200, "{}", roster.body);
    let body = crate::helpers::incident_body("TWICE1", "api-service", "low", chrono::Utc::now());
    // The first delivery, then the same incident under two new delivery ids, as PagerDuty
    // redelivers after a timeout.
    for delivery in ["d-1", "d-2", "d-3"] {
        let resp = crate::helpers::agent()
            .post(&format!("{}/webhooks/pagerduty", process.url))
            .header("X-Webhook-Id", delivery)
            .send(&body[..])
            .unwrap();
        assert_eq!(resp.status(), 200, "{delivery}");
    }
    let metrics = crate::helpers::admin_request(
        &format!("{}/metrics", process.url),
        "GET",
        None,
        Some(crate::helpers::ADMIN_TOKEN),
    );
    assert_eq!(metrics.status, 200);
    let decided: f64 = metrics
        .body
        .lines()
        .filter(|l| l.starts_with("goliath_decisions_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(decided, 1.0, "{}", metrics.body);
    sim.stop();
}
