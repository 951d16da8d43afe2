use super::*;
use crate::jira::client::{
    HttpJiraClient, IssueDescription, IssueRef, JiraApi, JiraConnection, JiraError, JiraFlavor,
    NewIssue,
};
use crate::jira::testutil::{response, serve, Captured};
use crate::jira::webhook::{parse_webhook, verify_signature, IssueChange};
use serde_json::{json, Value};
use std::sync::mpsc;

const ALICE: &str = "712020:alice";
const BOB: &str = "712020:bob";

fn quiet_sim() -> JiraSimHandle {
    JiraSim::start(SimConfig {
        play_humans: false,
        auth: Some(JiraAuth::Basic {
            email: "bot@acme.com".into(),
            api_token: "tok".into(),
        }),
        ..SimConfig::default()
    })
    .unwrap()
}

fn client_for(sim: &JiraSimHandle) -> HttpJiraClient {
    let mut cfg = JiraConnection::cloud(sim.base_url(), "bot@acme.com", "tok");
    cfg.timeout = Duration::from_secs(5);
    HttpJiraClient::new(cfg).unwrap()
}

fn new_issue(work_item: u32, assignee: Option<&str>) -> NewIssue {
    NewIssue {
        project_key: "OPS".into(),
        issue_type: "Incident".into(),
        summary: format!("checkout-api p99 latency (work item {work_item})"),
        description: IssueDescription {
            title: "checkout-api p99 latency > 2s".into(),
            service: "api".into(),
            severity: "SEV2".into(),
            pagerduty_url: Some("https://acme.pagerduty.com/incidents/Q1".into()),
            explanation: "Best record on api.".into(),
            backups: vec!["Bob".into()],
            work_item_id: work_item.to_string(),
        },
        priority: Some("High".into()),
        labels: vec![
            "goliath".into(),
            format!("goliath-{work_item}"),
            "service-api".into(),
            "sev2".into(),
        ],
        assignee_account_id: assignee.map(Into::into),
    }
}

fn webhook_receiver() -> (String, mpsc::Receiver<Captured>) {
    let (base, rx) = serve(|_| Some(response("200 OK", &[], "")));
    (format!("{base}/webhooks/jira"), rx)
}

fn next_hook(rx: &mpsc::Receiver<Captured>) -> Captured {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("a webhook within 10 s")
}

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

#[test]
fn client_creates_finds_by_label_and_assigns_against_the_simulator() {
    let sim = quiet_sim();
    let client = client_for(&sim);

    let created = client.create_issue(&new_issue(42, Some(ALICE))).unwrap();
    assert_eq!(created.key, "OPS-1");
    assert_eq!(
        created.self_url,
        format!("{}/rest/api/3/issue/{}", sim.base_url(), created.id)
    );
    let second = client.create_issue(&new_issue(43, None)).unwrap();
    assert_eq!(second.key, "OPS-2");

    assert_eq!(
        client.find_by_label("goliath-42").unwrap(),
        Some(created.clone())
    );
    assert_eq!(client.find_by_label("goliath-99").unwrap(), None);

    client.assign("OPS-1", Some(BOB)).unwrap();
    client.assign("OPS-2", Some(ALICE)).unwrap();
    client.assign("OPS-2", None).unwrap();
    let issues = sim.issues();
    assert_eq!(issues[0].assignee.as_deref(), Some(BOB));
    assert_eq!(issues[0].service, "api");
    assert_eq!(
        issues[0].labels,
        ["goliath", "goliath-42", "service-api", "sev2"]
    );
    assert_eq!(issues[0].priority.as_deref(), Some("High"));
    assert_eq!(issues[0].status, "To Do");
    assert_eq!(issues[1].assignee, None);

    let err = client.assign("OPS-77", Some(BOB)).unwrap_err();
    assert_eq!(
        err,
        JiraError::Permanent {
            status: 404,
            message: "Issue does not exist or you do not have permission to see it.".into()
        }
    );
    let c = sim.counters();
    assert_eq!((c.create_issue, c.assign, c.search), (2, 4, 2));

    // The issue bean: ADF description in v3, plain text in v2.
    let v3: Value = http()
        .get(format!("{}/rest/api/3/issue/OPS-1", sim.base_url()))
        .header("Authorization", "Basic Ym90QGFjbWUuY29tOnRvaw==")
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(v3["key"], "OPS-1");
    assert_eq!(v3["fields"]["description"]["type"], "doc");
    assert_eq!(v3["fields"]["assignee"]["accountId"], BOB);
    assert_eq!(v3["fields"]["status"]["statusCategory"]["key"], "new");
    let v2: Value = http()
        .get(format!(
            "{}/rest/api/2/issue/{}",
            sim.base_url(),
            created.id
        ))
        .header("Authorization", "Basic Ym90QGFjbWUuY29tOnRvaw==")
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert!(v2["fields"]["description"]
        .as_str()
        .unwrap()
        .contains("Severity: SEV2"));
}

#[test]
fn wrong_or_missing_credentials_get_401() {
    let sim = quiet_sim();
    let mut cfg = JiraConnection::cloud(sim.base_url(), "bot@acme.com", "wrong");
    cfg.timeout = Duration::from_secs(5);
    let client = HttpJiraClient::new(cfg).unwrap();
    let err = client.create_issue(&new_issue(1, None)).unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().contains("Client must be authenticated"));
    let status = http()
        .post(format!("{}/rest/api/3/search/jql", sim.base_url()))
        .send_json(json!({"jql": "labels = x"}))
        .unwrap()
        .status();
    assert_eq!(status, 401);
    assert_eq!(sim.counters().unauthorized, 2);
    assert!(sim.issues().is_empty());
}

#[test]
fn data_center_client_works_against_the_v2_endpoints() {
    let sim = JiraSim::start(SimConfig {
        play_humans: false,
        auth: Some(JiraAuth::Bearer {
            token: "pat".into(),
        }),
        ..SimConfig::default()
    })
    .unwrap();
    let mut cfg = JiraConnection::data_center(sim.base_url(), "pat");
    cfg.flavor = JiraFlavor::DataCenter;
    let client = HttpJiraClient::new(cfg).unwrap();
    let created = client
        .create_issue(&new_issue(5, Some("alice.nguyen")))
        .unwrap();
    assert!(created.self_url.contains("/rest/api/2/issue/"));
    assert_eq!(
        client.find_by_label("goliath-5").unwrap().unwrap().key,
        created.key
    );
    client.assign(&created.key, Some("bob.okafor")).unwrap();
    assert_eq!(
        sim.issue(&created.key).unwrap().assignee.as_deref(),
        Some("bob.okafor")
    );
}

#[test]
fn create_is_validated_like_jira() {
    let sim = quiet_sim();
    let post = |body: Value| {
        let mut resp = http()
            .post(format!("{}/rest/api/3/issue", sim.base_url()))
            .header("Authorization", "Basic Ym90QGFjbWUuY29tOnRvaw==")
            .send_json(body)
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_json::<Value>().unwrap())
    };
    let (status, body) = post(json!({"fields": {}}));
    assert_eq!(status, 400);
    assert_eq!(body["errorMessages"], json!([]));
    assert_eq!(
        body["errors"]["summary"],
        "You must specify a summary of the issue."
    );
    assert_eq!(body["errors"]["issuetype"], "Specify an issue type");
    assert_eq!(
        body["errors"]["project"],
        "Specify a valid project ID or key"
    );

    let (status, body) = post(json!({"fields": {
        "project": {"key": "OPS"}, "issuetype": {"name": "Task"}, "summary": "s",
        "description": "plain text is not ADF", "labels": ["has space"]}}));
    assert_eq!(status, 400);
    assert!(body["errors"]["description"]
        .as_str()
        .unwrap()
        .contains("Atlassian Document"));
    assert!(body["errors"]["labels"]
        .as_str()
        .unwrap()
        .contains("spaces"));

    // The fixture body is accepted as is.
    let fixture: Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/jira_create_issue_request.json"
    ))
    .unwrap();
    let (status, body) = post(fixture);
    assert_eq!(status, 201);
    assert_eq!(body["key"], "OPS-1");
    assert!(sim.issues().len() == 1);
}

#[test]
fn injected_faults_come_in_order_with_jira_bodies_then_normal_service() {
    let sim = quiet_sim();
    let client = client_for(&sim);
    // Through the admin route, as the lead's tests would.
    let status = http()
        .post(format!("{}/_sim/faults", sim.base_url()))
        .send_json(json!({"create_issue": [500, 429, 400], "retry_after_secs": 3}))
        .unwrap()
        .status();
    assert_eq!(status, 204);

    let e1 = client.create_issue(&new_issue(1, None)).unwrap_err();
    assert_eq!(
        e1,
        JiraError::Transient {
            status: Some(500),
            retry_after: None,
            message: "Internal server error".into()
        }
    );
    let e2 = client.create_issue(&new_issue(1, None)).unwrap_err();
    assert!(e2.is_transient());
    assert_eq!(e2.status(), Some(429));
    assert_eq!(e2.retry_after(), Some(Duration::from_secs(3)));
    let e3 = client.create_issue(&new_issue(1, None)).unwrap_err();
    assert_eq!(
        e3,
        JiraError::Permanent {
            status: 400,
            message: "issuetype: Specify an issue type; summary: You must specify a summary of the issue."
                .into()
        }
    );
    let ok = client.create_issue(&new_issue(1, None)).unwrap();
    assert_eq!(ok.key, "OPS-1");

    let listing: Value = http()
        .get(format!("{}/_sim/issues", sim.base_url()))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(listing["counters"]["create_issue"], 4);
    assert_eq!(listing["counters"]["faults_injected"], 3);
    assert_eq!(listing["issues"].as_array().unwrap().len(), 1);
    assert_eq!(listing["issues"][0]["key"], "OPS-1");
    assert_eq!(listing["issues"][0]["status"], "To Do");
}

#[test]
fn a_lost_create_response_is_recovered_by_searching_the_label() {
    let sim = quiet_sim();
    let client = client_for(&sim);
    sim.set_faults(SimFaults {
        create_issue: vec![Fault {
            status: 503,
            commit: true,
            delay_ms: 0,
            hold_ms: 0,
        }],
        assign: vec![404.into()],
        ..SimFaults::default()
    });
    let err = client.create_issue(&new_issue(9, Some(ALICE))).unwrap_err();
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    // The executor's recovery path: search before creating again.
    let found = client
        .find_by_label("goliath-9")
        .unwrap()
        .expect("created anyway");
    assert_eq!(found.key, "OPS-1");
    assert_eq!(sim.issues().len(), 1);
    assert_eq!(
        client.assign("OPS-1", Some(BOB)).unwrap_err().status(),
        Some(404)
    );
    client.assign("OPS-1", Some(BOB)).unwrap();
}

#[test]
fn a_slow_answer_times_the_client_out_as_transient() {
    let sim = quiet_sim();
    let mut cfg = JiraConnection::cloud(sim.base_url(), "bot@acme.com", "tok");
    cfg.timeout = Duration::from_millis(300);
    let client = HttpJiraClient::new(cfg).unwrap();
    sim.set_faults(SimFaults {
        search: vec![Fault {
            status: 200,
            commit: false,
            delay_ms: 1500,
            hold_ms: 0,
        }],
        ..SimFaults::default()
    });
    let err = client.find_by_label("x").unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.status(), None);
}

#[test]
fn search_is_eventually_consistent_when_lag_is_configured() {
    let sim = JiraSim::start(SimConfig {
        play_humans: false,
        search_lag_ms: 300,
        ..SimConfig::default()
    })
    .unwrap();
    let client = client_for(&sim);
    let created = client.create_issue(&new_issue(3, None)).unwrap();
    assert_eq!(client.find_by_label("goliath-3").unwrap(), None);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(client.find_by_label("goliath-3").unwrap(), Some(created));
}

#[test]
fn search_jql_pages_and_rejects_bad_queries() {
    let sim = quiet_sim();
    let client = client_for(&sim);
    for n in 0..3 {
        client.create_issue(&new_issue(n, None)).unwrap();
    }
    let search = |body: Value| {
        let mut resp = http()
            .post(format!("{}/rest/api/3/search/jql", sim.base_url()))
            .header("Authorization", "Basic Ym90QGFjbWUuY29tOnRvaw==")
            .send_json(body)
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_json::<Value>().unwrap())
    };
    let (s, page1) = search(
        json!({"jql": "project = OPS AND labels = goliath ORDER BY created DESC",
                                   "fields": ["summary", "labels"], "maxResults": 2}),
    );
    assert_eq!(s, 200);
    assert_eq!(page1["isLast"], false);
    assert_eq!(page1["issues"][0]["key"], "OPS-3");
    assert!(page1["issues"][0]["fields"]["summary"].is_string());
    assert!(page1["issues"][0]["fields"].get("status").is_none());
    let token = page1["nextPageToken"].as_str().unwrap();
    let (_, page2) = search(
        json!({"jql": "project = OPS AND labels = goliath ORDER BY created DESC",
                                   "nextPageToken": token, "maxResults": 2}),
    );
    assert_eq!(page2["isLast"], true);
    assert_eq!(page2["issues"][0]["key"], "OPS-1");
    assert!(
        page2["issues"][0].get("fields").is_none(),
        "default fields: id only"
    );

    let (s, body) = search(json!({"jql": "order by created"}));
    assert_eq!(s, 400);
    assert!(body["errorMessages"][0]
        .as_str()
        .unwrap()
        .contains("Unbounded"));
    let (s, body) = search(json!({"jql": "colour = red"}));
    assert_eq!(s, 400);
    assert!(body["errorMessages"][0]
        .as_str()
        .unwrap()
        .contains("does not exist"));
}

#[test]
fn humans_resolve_with_a_signed_cloud_webhook() {
    let (url, rx) = webhook_receiver();
    let secret = "iDkA3WKcbPI00Qt6Igh9cVP0oLom7lrHppuQzHCA".to_owned();
    let mut skills = HashMap::new();
    skills.insert(
        "api".to_owned(),
        SimSkill {
            p_resolve: 1.0,
            mean_minutes: 30.0,
        },
    );
    let sim = JiraSim::start(SimConfig {
        webhook_url: Some(url),
        webhook_secret: Some(secret.clone()),
        humans: vec![SimHuman {
            account_id: ALICE.into(),
            display_name: Some("Alice Nguyen".into()),
            skills,
        }],
        minute_ms: 1,
        seed: 7,
        ..SimConfig::default()
    })
    .unwrap();
    let client = client_for(&sim);
    let created: IssueRef = client.create_issue(&new_issue(42, Some(ALICE))).unwrap();
    let created_ms = sim.issue(&created.key).unwrap().created_ms;

    let hook = next_hook(&rx);
    assert_eq!(hook.method, "POST");
    assert_eq!(hook.path, "/webhooks/jira");
    assert!(hook
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(
        hook.header("x-atlassian-webhook-identifier").unwrap().len(),
        36
    );
    verify_signature(hook.header("x-hub-signature"), &[secret], &hook.body).unwrap();

    let w = parse_webhook(&hook.body).unwrap();
    assert_eq!(w.webhook_event, "jira:issue_updated");
    assert_eq!(w.issue_event_type.as_deref(), Some("issue_generic"));
    assert_eq!(w.issue_key, created.key);
    assert_eq!(w.issue_id, created.id);
    assert_eq!(w.resolution_set(), Some("Done"));
    assert!(w.is_done());
    assert_eq!(
        w.current_assignee.as_ref().unwrap().account_id.as_deref(),
        Some(ALICE)
    );
    assert_eq!(
        w.user.as_ref().unwrap().display_name.as_deref(),
        Some("Alice Nguyen")
    );
    assert_eq!(w.label_value("goliath-"), Some("42"));
    assert!(w.timestamp.timestamp_millis() > created_ms);

    // The body has the shape of the real captures.
    let body: Value = serde_json::from_slice(&hook.body).unwrap();
    let fields = &body["issue"]["fields"];
    assert_eq!(fields["resolution"]["name"], "Done");
    assert_eq!(fields["status"]["statusCategory"]["key"], "done");
    assert!(
        fields["description"].is_string(),
        "webhooks use the v2 representation"
    );
    assert_eq!(body["changelog"]["items"][0]["fieldId"], "resolution");
    assert!(body["issue"]["self"]
        .as_str()
        .unwrap()
        .contains("/rest/api/2/issue/"));

    let deliveries = sim.wait_for_deliveries(1, Duration::from_secs(5));
    assert!(deliveries[0].delivered);
    assert_eq!(deliveries[0].status, Some(200));
    assert_eq!(
        sim.issue(&created.key).unwrap().resolution.as_deref(),
        Some("Done")
    );
}

#[test]
fn humans_hand_off_to_the_roster_and_timestamps_follow_simulated_time() {
    let (url, rx) = webhook_receiver();
    let skill = |p| {
        let mut m = HashMap::new();
        m.insert(
            "*".to_owned(),
            SimSkill {
                p_resolve: p,
                mean_minutes: 20.0,
            },
        );
        m
    };
    let sim = JiraSim::start(SimConfig {
        webhook_url: Some(url),
        humans: vec![
            SimHuman {
                account_id: ALICE.into(),
                display_name: None,
                skills: skill(0.0),
            },
            SimHuman {
                account_id: BOB.into(),
                display_name: None,
                skills: skill(1.0),
            },
        ],
        minute_ms: 1,
        ..SimConfig::default()
    })
    .unwrap();
    let client = client_for(&sim);
    let created = client.create_issue(&new_issue(1, Some(ALICE))).unwrap();

    let first = parse_webhook(&next_hook(&rx).body).unwrap();
    assert_eq!(first.issue_event_type.as_deref(), Some("issue_assigned"));
    assert_eq!(
        first.changes,
        vec![IssueChange::AssigneeChanged {
            from: Some(ALICE.into()),
            to: Some(BOB.into())
        }]
    );
    assert_eq!(
        first.user.as_ref().unwrap().account_id.as_deref(),
        Some(ALICE)
    );
    let second = parse_webhook(&next_hook(&rx).body).unwrap();
    assert_eq!(second.resolution_set(), Some("Done"));
    assert_eq!(
        second.user.as_ref().unwrap().account_id.as_deref(),
        Some(BOB)
    );
    assert!(second.timestamp > first.timestamp);
    let issue = sim.issue(&created.key).unwrap();
    assert_eq!(issue.handoffs, 1);
    assert_eq!(issue.assignee.as_deref(), Some(BOB));
    // The webhook time is the issue's simulated update time.
    assert_eq!(second.timestamp.timestamp_millis(), issue.updated_ms);
}

#[test]
fn manual_actions_send_webhooks_when_humans_are_off() {
    let (url, rx) = webhook_receiver();
    let sim = JiraSim::start(SimConfig {
        webhook_url: Some(url),
        play_humans: false,
        echo_api_changes: true,
        ..SimConfig::default()
    })
    .unwrap();
    let client = client_for(&sim);
    let created = client.create_issue(&new_issue(8, Some(ALICE))).unwrap();
    let echo = parse_webhook(&next_hook(&rx).body).unwrap();
    assert_eq!(echo.webhook_event, "jira:issue_created");
    assert_eq!(
        echo.user.unwrap().account_id.as_deref(),
        Some(SIM_API_ACCOUNT_ID)
    );

    sim.reassign(&created.key, Some(BOB)).unwrap();
    let moved = parse_webhook(&next_hook(&rx).body).unwrap();
    assert_eq!(moved.assignee_change(), Some((Some(ALICE), Some(BOB))));

    // Through the admin route.
    let status = http()
        .post(format!(
            "{}/_sim/issues/{}/resolve",
            sim.base_url(),
            created.key
        ))
        .send_empty()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let resolved = parse_webhook(&next_hook(&rx).body).unwrap();
    assert_eq!(resolved.resolution_set(), Some("Done"));
    assert_eq!(
        sim.resolve(&created.key),
        Err(ActError::NoChange("already resolved"))
    );

    sim.reopen(&created.key).unwrap();
    let reopened = parse_webhook(&next_hook(&rx).body).unwrap();
    assert!(reopened.reopened());
    assert_eq!(sim.issue(&created.key).unwrap().status, "To Do");

    let deliveries = sim.wait_for_deliveries(4, Duration::from_secs(5));
    let kinds: Vec<_> = deliveries
        .iter()
        .map(|d| d.issue_event_type_name.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "issue_created",
            "issue_assigned",
            "issue_generic",
            "issue_generic"
        ]
    );
    assert!(rx.try_recv().is_err(), "no people playing: nothing else");
}

#[test]
fn failed_deliveries_are_retried_with_the_same_identifier() {
    let (base, rx) = serve(|n| {
        Some(if n == 0 {
            response("503 Service Unavailable", &[], "")
        } else {
            response("204 No Content", &[], "")
        })
    });
    let sim = JiraSim::start(SimConfig {
        webhook_url: Some(format!("{base}/hook")),
        play_humans: false,
        ..SimConfig::default()
    })
    .unwrap();
    let created = client_for(&sim)
        .create_issue(&new_issue(1, Some(ALICE)))
        .unwrap();
    sim.resolve(&created.key).unwrap();
    let first = next_hook(&rx);
    let retry = next_hook(&rx);
    assert_eq!(
        first.header("x-atlassian-webhook-identifier"),
        retry.header("x-atlassian-webhook-identifier")
    );
    assert_eq!(first.header("x-atlassian-webhook-retry"), None);
    assert_eq!(retry.header("x-atlassian-webhook-retry"), Some("1"));
    assert_eq!(
        first.header("x-hub-signature"),
        None,
        "no secret, no signature"
    );
    let d = sim.wait_for_deliveries(1, Duration::from_secs(5));
    assert!(d[0].delivered);
    assert_eq!(d[0].attempts, 2);
}

#[test]
fn default_skills_are_stable_and_in_range() {
    let config = SimConfig::default();
    let a = skill_for(&config, "someone", "api");
    assert_eq!(a, skill_for(&config, "someone", "api"));
    assert_ne!(a, skill_for(&config, "someone", "db"));
    for p in ["a", "b", "c", "d"] {
        let s = skill_for(&config, p, "x");
        assert!((0.35..=0.95).contains(&s.p_resolve));
        assert!((15.0..=120.0).contains(&s.mean_minutes));
    }
}

#[test]
fn config_comes_from_flags_and_hides_secrets() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        sim: JiraSimArgs,
    }
    let cli = Cli::try_parse_from([
        "jira-sim",
        "--bind",
        "127.0.0.1:0",
        "--webhook-secret",
        "hush",
        "--auth-email",
        "a@b.c",
        "--auth-token",
        "tok-secret",
        "--human",
        ALICE,
        "--no-humans",
        "--minute-ms",
        "5",
    ])
    .unwrap();
    let cfg = SimConfig::from_args(&cli.sim).unwrap();
    assert!(!cfg.play_humans);
    assert_eq!(cfg.minute_ms, 5);
    assert_eq!(cfg.humans[0].account_id, ALICE);
    assert!(matches!(cfg.auth, Some(JiraAuth::Basic { .. })));
    let shown = format!("{cfg:?} {:?}", cli.sim);
    assert!(
        !shown.contains("hush") && !shown.contains("tok-secret"),
        "{shown}"
    );
    let sim = JiraSim::start(cfg).unwrap();
    assert_ne!(sim.addr().port(), 0);
    sim.stop();
}

#[test]
fn starts_inside_a_tokio_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sim = JiraSim::start(SimConfig {
            play_humans: false,
            ..SimConfig::default()
        })
        .unwrap();
        let base = sim.base_url();
        let status = tokio::task::spawn_blocking(move || {
            http()
                .get(format!("{base}/_sim/issues"))
                .call()
                .unwrap()
                .status()
        })
        .await
        .unwrap();
        assert_eq!(status, 200);
        sim.stop();
    });
}

#[test]
fn transitions_comments_and_priority_edits_change_the_issue_and_echo_as_jira_does() {
    let (url, rx) = webhook_receiver();
    let sim = JiraSim::start(SimConfig {
        webhook_url: Some(url),
        play_humans: false,
        echo_api_changes: true,
        ..SimConfig::default()
    })
    .unwrap();
    let client = client_for(&sim);
    let created = client.create_issue(&new_issue(9, Some(ALICE))).unwrap();
    next_hook(&rx); // the creation's echo

    let transitions = client.transitions(&created.key).unwrap();
    let done = transitions
        .iter()
        .find(|t| t.to_category == "done")
        .unwrap()
        .id
        .clone();
    let todo = transitions
        .iter()
        .find(|t| t.to_category == "new")
        .unwrap()
        .id
        .clone();
    client.transition(&created.key, &done).unwrap();
    assert_eq!(client.status_category(&created.key).unwrap(), "done");
    let view = sim.issue(&created.key).unwrap();
    assert_eq!(
        (view.status.as_str(), view.resolution.as_deref()),
        ("Done", Some("Done"))
    );
    let resolved = parse_webhook(&next_hook(&rx).body).unwrap();
    assert!(resolved
        .changes
        .iter()
        .any(|c| matches!(c, IssueChange::ResolutionSet { .. })));
    client.transition(&created.key, &todo).unwrap();
    assert_eq!(sim.issue(&created.key).unwrap().status, "To Do");
    let reopened = parse_webhook(&next_hook(&rx).body).unwrap();
    assert!(reopened.changes.contains(&IssueChange::ResolutionCleared));

    let bad = client.transition(&created.key, "999").unwrap_err();
    assert!(
        matches!(bad, JiraError::Permanent { status: 400, .. }),
        "{bad:?}"
    );

    client
        .add_comment(&created.key, "first line\nsecond")
        .unwrap();
    let before = sim.issue(&created.key).unwrap().labels;
    let change = crate::jira::SeverityChange {
        severity: "sev1".into(),
        summary: "[SEV1] now critical".into(),
        priority: Some("Highest".into()),
    };
    client.set_severity(&created.key, &change).unwrap();
    let view = sim.issue(&created.key).unwrap();
    assert_eq!(view.comments, vec!["first line\nsecond".to_string()]);
    assert_eq!(view.priority.as_deref(), Some("Highest"));
    assert_eq!(view.summary, "[SEV1] now critical");
    assert!(
        view.labels.contains(&"sev1".to_string()),
        "{:?}",
        view.labels
    );
    let kept: Vec<&String> = before.iter().filter(|l| !l.starts_with("sev")).collect();
    assert!(
        kept.iter().all(|l| view.labels.contains(l)),
        "{before:?} {:?}",
        view.labels
    );
    assert_eq!(
        view.labels.iter().filter(|l| l.starts_with("sev")).count(),
        1
    );
    let counters = sim.counters();
    assert_eq!((counters.comment, counters.edit_issue), (1, 1));

    let missing = client.add_comment("OPS-999", "x").unwrap_err();
    assert!(matches!(missing, JiraError::Permanent { status: 404, .. }));
}
