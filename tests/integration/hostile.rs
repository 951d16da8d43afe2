//! Hostile and malformed input through HTTP: NUL characters wherever text reaches the
//! database, times and numbers outside any real range, slow and oversized bodies, a database
//! that goes away, and a property test over the webhook parsers and the admin bodies. None of
//! it may answer 500 or hang, and a refused request changes nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use goliath::db::schema::{humans, webhook_deliveries, work_items};
use goliath::signature::sign_hex;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{config_with, fixture_json, human, Resp, TestApp, ADMIN_TOKEN};

const JIRA_SECRET: &str = "hostile-jira-secret";

fn app() -> TestApp {
    TestApp::start(config_with(
        |s| s.jira.jira_webhook_secret = Some(JIRA_SECRET.into()),
        &[],
    ))
}

fn rows(app: &TestApp) -> (i64, i64, i64) {
    let mut conn = app.db.conn();
    (
        work_items::table.count().get_result(&mut conn).unwrap(),
        webhook_deliveries::table
            .count()
            .get_result(&mut conn)
            .unwrap(),
        humans::table.count().get_result(&mut conn).unwrap(),
    )
}

fn jira(app: &TestApp, body: &Value) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap();
    let sig = format!("sha256={}", sign_hex(JIRA_SECRET, &bytes));
    app.post("/webhooks/jira", &[("X-Hub-Signature", &sig)], &bytes)
}

fn pagerduty(app: &TestApp, body: &Value) -> Resp {
    app.post(
        "/webhooks/pagerduty",
        &[],
        &serde_json::to_vec(body).unwrap(),
    )
}

fn assert_refused(resp: &Resp, status: u16, names: &str) {
    assert_eq!(resp.status, status, "{}", resp.body);
    let error = resp.json()["error"].clone();
    assert!(
        error["message"].as_str().unwrap_or("").contains(names),
        "the error names `{names}`: {error}"
    );
}

#[test]
fn a_nul_character_is_refused_wherever_text_reaches_the_database() {
    let app = app();
    app.roster(&[human("ana", &["api"])]);
    let before = rows(&app);

    // Jira webhook: issue key, label, account id.
    let hook = fixture_json("jira_webhook_issue_assigned.json");
    let mut key = hook.clone();
    key["issue"]["key"] = "OPS-\u{0}1".into();
    assert_refused(&jira(&app, &key), 422, "issue.key");
    let mut label = hook.clone();
    label["issue"]["fields"]["labels"][1] = "goliath-\u{0}".into();
    assert_refused(&jira(&app, &label), 422, "issue.fields.labels[1]");
    let mut account = hook.clone();
    account["user"]["accountId"] = "\u{0}".into();
    assert_refused(&jira(&app, &account), 422, "user.accountId");

    // PagerDuty webhook.
    let mut incident = fixture_json("pagerduty_v3_incident_triggered.json");
    incident["event"]["data"]["title"] = "down\u{0}".into();
    assert_refused(&pagerduty(&app, &incident), 422, "event.data.title");

    // Admin paths, filters and bodies.
    for path in [
        "/admin/humans/%00",
        "/admin/work-items/%00",
        "/admin/work-items/a%00b/replay",
    ] {
        let method = if path.ends_with("replay") {
            "POST"
        } else {
            "GET"
        };
        assert_refused(&app.admin(method, path, None), 400, "path");
    }
    assert_refused(
        &app.admin("GET", "/admin/work-items?service=%00", None),
        400,
        "`service`",
    );
    assert_refused(
        &app.admin("POST", "/decide", Some(json!({"work_item_id": "x\u{0}"}))),
        422,
        "work_item_id",
    );
    assert_refused(
        &app.admin(
            "POST",
            "/admin/work-items/wi-1/assign",
            Some(json!({"human_id": "ana", "reason": "\u{0}"})),
        ),
        422,
        "reason",
    );
    for (field, value) in [
        ("display_name", json!("A\u{0}")),
        ("jira_account_id", json!("\u{0}")),
        ("services", json!(["api", "x\u{0}"])),
    ] {
        let mut p = human("bo", &["api"]);
        p[field] = value;
        let resp = app.admin("POST", "/admin/humans", Some(p));
        assert_eq!(resp.status, 422, "{field}: {}", resp.body);
        assert!(resp.body.contains(field), "{field}: {}", resp.body);
    }
    assert_eq!(rows(&app), before, "nothing stored");
}

#[test]
fn times_and_numbers_outside_any_real_range_are_refused() {
    let app = app();
    let mut hook = fixture_json("jira_webhook_issue_assigned.json");
    hook["timestamp"] = json!(-1_000_000_000_000_000i64);
    assert_refused(&jira(&app, &hook), 422, "timestamp");

    let base = fixture_json("pagerduty_v3_incident_triggered.json");
    let mut negative = base.clone();
    negative["event"]["data"]["number"] = json!(-1);
    assert_refused(&pagerduty(&app, &negative), 422, "event.data.number");
    for year in ["0000-01-01T00:00:00Z", "9999-12-31T00:00:00Z"] {
        let mut old = base.clone();
        old["event"]["data"]["created_at"] = year.into();
        assert_refused(&pagerduty(&app, &old), 422, "event.data.created_at");
    }
    let mut wrong_type = base.clone();
    wrong_type["event"]["data"]["title"] = json!(42);
    let resp = pagerduty(&app, &wrong_type);
    assert_refused(&resp, 422, "event.data.title");
    assert_eq!(
        resp.error_code(),
        "invalid_field",
        "a wrong type is not a missing field"
    );
    let mut occurred = base.clone();
    occurred["event"]["occurred_at"] = "9999-01-01T00:00:00Z".into();
    assert_refused(&pagerduty(&app, &occurred), 422, "event.occurred_at");
    assert_eq!(rows(&app).0, 0);
}

/// Sends a request head declaring `length` bytes, then `sent` of them, and waits for the
/// answer; returns the status line and how long it took.
fn stalled_request(app: &TestApp, path: &str, length: u64, sent: &[u8]) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(app.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // One write, so a refusal on the head never meets a second write on a closed socket.
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(sent);
    stream.write_all(&request).unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).unwrap_or(0);
    let text = String::from_utf8_lossy(&answer[..n]).to_string();
    (
        text.lines().next().unwrap_or("no answer").to_string(),
        started.elapsed(),
    )
}

#[test]
fn slow_and_oversized_bodies_get_an_answer_not_a_hang() {
    let app = app();
    // Ten gigabytes declared: refused at once, nothing read.
    let (status, _) = stalled_request(&app, "/webhooks/pagerduty", 10_000_000_000, b"{\"event\"");
    assert!(status.contains("413"), "{status}");
    // Nine bytes of a hundred, then silence: 408 at the body deadline.
    for path in ["/webhooks/pagerduty", "/webhooks/jira", "/admin/humans"] {
        let (status, took) = stalled_request(&app, path, 100, b"{\"event\":");
        assert!(status.contains("408"), "{path}: {status}");
        assert!(
            took < Duration::from_secs(20),
            "{path}: answered after {took:?}"
        );
    }
    // An admin body over the limit is a JSON 413, not actix's plain text.
    let big = vec![json!({"pad": "x".repeat(1024)}); 9 * 1024];
    let resp = app.admin("POST", "/admin/humans/import", Some(Value::Array(big)));
    assert_eq!(
        resp.status,
        413,
        "{}",
        &resp.body[..resp.body.len().min(200)]
    );
    assert_eq!(resp.error_code(), "body_too_large");
}

#[test]
fn a_database_that_drops_every_connection_gets_503s_never_500s() {
    let app = app();
    app.roster(&[human("ana", &["api"])]);
    // Warm the pool, then have PostgreSQL terminate every connection it holds.
    for _ in 0..4 {
        app.admin("GET", "/admin/humans", None);
    }
    let mut conn = app.db.conn();
    diesel::sql_query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut conn)
    .unwrap();
    drop(conn);
    let mut statuses = vec![];
    for i in 0..12 {
        let body = crate::helpers::incident_body(
            &format!("PDROP{i}"),
            "api-service",
            "high",
            chrono::Utc::now(),
        );
        statuses.push(app.post("/webhooks/pagerduty", &[], &body).status);
        statuses.push(app.admin("GET", "/admin/work-items", None).status);
        let hook = fixture_json("jira_webhook_issue_assigned.json");
        statuses.push(jira(&app, &hook).status);
    }
    assert!(
        statuses.iter().all(|s| *s != 500),
        "no 500 while connections die: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 202, 503].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(
        app.admin("GET", "/admin/humans", None).status,
        200,
        "and it recovers"
    );
}

/// A fixture with one value replaced by something hostile, at a path chosen by the strategy.
fn mutate(mut v: Value, path: &[usize], replacement: Value) -> Value {
    fn go(v: &mut Value, path: &[usize], replacement: Value) {
        let Some((&first, rest)) = path.split_first() else {
            *v = replacement;
            return;
        };
        match v {
            Value::Object(map) if !map.is_empty() => {
                let key = map.keys().nth(first % map.len()).cloned().unwrap();
                go(map.get_mut(&key).unwrap(), rest, replacement);
            }
            Value::Array(items) if !items.is_empty() => {
                let n = items.len();
                go(&mut items[first % n], rest, replacement);
            }
            other => *other = replacement,
        }
    }
    go(&mut v, path, replacement);
    v
}

fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(-1)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        Just(json!(1e308)),
        Just(json!(-1e15)),
        Just(json!(true)),
        Just(json!([])),
        Just(json!({})),
        Just(json!("")),
        Just(json!("\u{0}")),
        Just(json!("9999-12-31T23:59:59Z")),
        Just(json!("0000-01-01T00:00:00Z")),
        Just(json!("x".repeat(70_000))),
        Just(json!([[[[[[[[[[[]]]]]]]]]]])),
        ".{0,40}".prop_map(Value::String),
        any::<i64>().prop_map(|n| json!(n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any fixture of the webhooks and admin bodies with any value replaced by a hostile one:
    /// answered, never with a 5xx.
    #[test]
    fn hostile_bodies_never_get_a_5xx(
        which in 0usize..6,
        path in proptest::collection::vec(0usize..12, 0..6),
        replacement in hostile_value(),
    ) {
        thread_local! {
            static APP: TestApp = app();
        }
        APP.with(|app| {
            let (route, base) = match which {
                0 => ("pd", fixture_json("pagerduty_v3_incident_triggered.json")),
                1 => ("pd", fixture_json("pagerduty_v3_incident_resolved.json")),
                2 => ("pd", fixture_json("pagerduty_v3_incident_annotated.json")),
                3 => ("jira", fixture_json("jira_webhook_issue_resolved.json")),
                4 => ("admin", human("fuzz", &["api"])),
                _ => ("decide", json!({"work_item_id": "wi-1"})),
            };
            let body = mutate(base, &path, replacement);
            let resp = match route {
                "pd" => pagerduty(app, &body),
                "jira" => jira(app, &body),
                "admin" => app.admin("POST", "/admin/humans", Some(body.clone())),
                _ => app.admin("POST", "/decide", Some(body.clone())),
            };
            prop_assert!(resp.status < 500, "{route} {body}: {} {}", resp.status, resp.body);
            Ok(())
        })?;
    }
}

#[test]
fn extractor_errors_are_json_and_every_signature_header_counts() {
    let app = app();
    for (method, path) in [
        ("GET", "/admin/work-items?limit=abc"),
        ("POST", "/admin/jobs/abc/retry"),
    ] {
        let resp = app.admin(method, path, None);
        assert_eq!(resp.status, 400, "{path}: {}", resp.body);
        assert!(
            resp.error_code().starts_with("invalid_"),
            "{path}: {}",
            resp.body
        );
    }

    let secret = "rotating-secret";
    let signed = TestApp::start(config_with(
        |s| s.pagerduty_webhook_secret = Some(secret.into()),
        &[],
    ));
    let body = crate::helpers::fixture("pagerduty_v3_incident_triggered.json");
    let good = format!("v1={}", sign_hex(secret, &body));
    let bogus = format!("v1={}", "0".repeat(64));
    let resp = signed.post(
        "/webhooks/pagerduty",
        &[
            ("X-PagerDuty-Signature", &bogus),
            ("X-PagerDuty-Signature", &good),
        ],
        &body,
    );
    assert_eq!(resp.status, 200, "the second header matches: {}", resp.body);
    let flood = vec![bogus.clone(); 400].join(",");
    let resp = signed.post(
        "/webhooks/pagerduty",
        &[("X-PagerDuty-Signature", &flood)],
        &body,
    );
    assert_eq!(resp.status, 401, "{}", resp.body);
}

#[test]
fn webhooks_with_no_secret_configured_are_refused_by_default() {
    let app = TestApp::start(config_with(|s| s.allow_unsigned_webhooks = None, &[]));
    let pd = pagerduty(&app, &fixture_json("pagerduty_v3_incident_triggered.json"));
    assert_eq!(pd.status, 401, "{}", pd.body);
    assert_eq!(pd.error_code(), "webhook_secret_not_configured");
    assert!(pd.body.contains("PAGERDUTY_WEBHOOK_SECRET"), "{}", pd.body);
    let hook = app.post(
        "/webhooks/jira",
        &[],
        &crate::helpers::fixture("jira_webhook_issue_resolved.json"),
    );
    assert_eq!(hook.status, 401, "{}", hook.body);
    assert!(hook.body.contains("JIRA_WEBHOOK_SECRET"), "{}", hook.body);
    assert_eq!(rows(&app), (0, 0, 0), "nothing stored");
}

/// A request declaring both Content-Length and Transfer-Encoding is the shape of request
/// smuggling: RFC 9112 (section 6.3) says to refuse it and close the connection. actix-http's
/// parser does so before any route runs, with an empty 400 (no body, so no plain text), and
/// nothing is stored.
#[test]
fn conflicting_body_lengths_are_refused_and_the_connection_closed() {
    let app = app();
    let before = rows(&app);
    let body = serde_json::to_vec(&fixture_json("pagerduty_v3_incident_triggered.json")).unwrap();
    let mut stream = TcpStream::connect(app.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    // One write: the server refuses on the head and closes, so a later write could meet a
    // closed socket (EPIPE), and bytes it never read would turn its close into a reset.
    let mut request = format!(
        "POST /webhooks/pagerduty HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        body.len(),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    stream.write_all(&request).unwrap();
    let mut answer = Vec::new();
    // Reading to the end returns only once the server closes the connection.
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("content-length: 0"),
        "no body: {text}"
    );
    assert_eq!(rows(&app), before, "nothing stored");
}

/// Clients declaring large webhook bodies and stalling hold at most half of the webhook body
/// budget between them: the next large one is refused at once (503, before its body is read)
/// while a real webhook still gets through.
#[test]
fn stalled_large_bodies_cannot_crowd_out_real_webhooks() {
    let app = app();
    let head = |length: usize| {
        format!(
            "POST /webhooks/pagerduty HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {length}\r\n\r\n{{\"event\":"
        )
    };
    let share = goliath::http::body::WEBHOOK_BODY_BUDGET / 2;
    let declared = goliath::http::body::WEBHOOK_MAX_BODY;
    let mut stalled = Vec::new();
    for _ in 0..share / declared {
        let mut s = TcpStream::connect(app.addr).unwrap();
        s.write_all(head(declared).as_bytes()).unwrap();
        stalled.push(s);
    }
    // Each holds its share once its head is read; give the server a moment to read them all.
    std::thread::sleep(Duration::from_millis(500));
    let (status, took) = stalled_request(&app, "/webhooks/pagerduty", declared as u64, b"{");
    assert!(status.contains("503"), "{status}");
    assert!(
        took < Duration::from_secs(5),
        "refused at once, not at the deadline: {took:?}"
    );
    let real = app.incident("CROWD1", "api-service", "low");
    assert!(real["work_item_id"].is_string(), "{real}");
    drop(stalled);
}
