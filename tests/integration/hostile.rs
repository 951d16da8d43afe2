//! Hostile and malformed input through HTTP: NUL characters wherever text reaches the
//! database, ids and names too long for an index, keys named twice, times and numbers outside
//! any real range, slow and oversized bodies, a database that goes away, and a property test
//! over the webhook parsers and the admin bodies. None of it may answer 500 or hang, and a
//! refused request changes nothing.

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

/// `n` bytes of letters and digits that do not repeat: PostgreSQL compresses a long index
/// entry, so a repeated character would never reach its size limit.
fn incompressible(n: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// Where a long value is put, and what accepting it writes.
#[derive(Clone, Copy)]
enum Slot {
    /// A PagerDuty trigger's field (a JSON pointer): accepted, it makes a work item.
    PagerDuty(&'static str),
    /// The `X-Webhook-Id` header of a trigger.
    WebhookId,
    /// A Jira delivery's field for an item Goliath made: accepted, the delivery is recorded.
    Jira(&'static str),
    /// The `X-Atlassian-Webhook-Identifier` header of that delivery.
    JiraId,
    /// A roster entry's field: accepted, a person is stored.
    Human(&'static str),
}

/// Every identifier and indexed name a request can fill, with the field the refusal names
/// and its limit in bytes.
const SLOTS: [(Slot, &str, usize); 13] = [
    (Slot::PagerDuty("/event/id"), "event.id", 255),
    (Slot::PagerDuty("/event/data/id"), "event.data.id", 255),
    (
        Slot::PagerDuty("/event/data/service/id"),
        "event.data.service.id",
        255,
    ),
    (
        Slot::PagerDuty("/event/data/service/summary"),
        "event.data.service.summary",
        1024,
    ),
    (
        Slot::PagerDuty("/event/data/teams/0/summary"),
        "event.data.teams[0].summary",
        1024,
    ),
    (
        Slot::PagerDuty("/event/data/escalation_policy/summary"),
        "event.data.escalation_policy.summary",
        1024,
    ),
    (
        Slot::PagerDuty("/event/data/incident_type/summary"),
        "event.data.incident_type.summary",
        1024,
    ),
    (Slot::WebhookId, "X-Webhook-Id", 255),
    (Slot::Jira("/issue/key"), "issue.key", 255),
    (Slot::Jira("/issue/id"), "issue.id", 255),
    (Slot::JiraId, "X-Atlassian-Webhook-Identifier", 255),
    (Slot::Human("/jira_account_id"), "jira_account_id", 255),
    (Slot::Human("/pagerduty_user_id"), "pagerduty_user_id", 255),
];

/// Sends a request with `value` in `slot`; `n` keeps every other id of the request fresh.
fn send_in(app: &TestApp, slot: Slot, value: &str, n: usize, item: &str) -> Resp {
    match slot {
        Slot::PagerDuty(_) | Slot::WebhookId => {
            let incident = format!("PLONG{n}");
            let raw =
                crate::helpers::incident_body(&incident, "api-service", "low", chrono::Utc::now());
            let mut body: Value = serde_json::from_slice(&raw).unwrap();
            body["event"]["data"]["incident_type"] = json!({"summary": "outage"});
            let mut headers = vec![];
            match slot {
                Slot::PagerDuty(at) => *body.pointer_mut(at).unwrap() = value.into(),
                _ => headers.push(("X-Webhook-Id", value)),
            }
            app.post(
                "/webhooks/pagerduty",
                &headers,
                &serde_json::to_vec(&body).unwrap(),
            )
        }
        Slot::Jira(_) | Slot::JiraId => {
            let mut hook = fixture_json("jira_webhook_issue_assigned.json");
            hook["issue"]["fields"]["labels"] = json!([format!("goliath-{item}")]);
            let delivery = format!("jira-long-{n}");
            let delivery = match slot {
                Slot::Jira(at) => {
                    *hook.pointer_mut(at).unwrap() = value.into();
                    delivery.as_str()
                }
                _ => value,
            };
            let bytes = serde_json::to_vec(&hook).unwrap();
            let sig = format!("sha256={}", sign_hex(JIRA_SECRET, &bytes));
            app.post(
                "/webhooks/jira",
                &[
                    ("X-Hub-Signature", &sig),
                    ("X-Atlassian-Webhook-Identifier", delivery),
                ],
                &bytes,
            )
        }
        Slot::Human(at) => {
            let mut person = human(&format!("long{n}"), &["api"]);
            person[&at[1..]] = value.into();
            app.admin("POST", "/admin/humans", Some(person))
        }
    }
}

/// Ids and keys of up to 255 bytes, and indexed names of up to 1024, are taken; one byte more
/// (or 3000, past PostgreSQL's index entry limit) is refused, naming the field and its limit,
/// before anything is written: 422 for a body's field, 400 for a header.
#[test]
fn identifiers_past_their_limit_are_refused_before_anything_is_written() {
    let app = app();
    let item = app.incident("PLONGBASE", "api-service", "low")["work_item_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut n = 0;
    for (slot, field, max) in SLOTS {
        for len in [max, max + 1, 3000] {
            n += 1;
            let value = incompressible(len, n as u64);
            let before = rows(&app);
            let resp = send_in(&app, slot, &value, n, &item);
            let after = rows(&app);
            if len <= max {
                assert!(
                    resp.status == 200 || resp.status == 202,
                    "{field} of {len} bytes: {} {}",
                    resp.status,
                    resp.body
                );
                let grew = match slot {
                    Slot::PagerDuty(_) | Slot::WebhookId => after.0 == before.0 + 1,
                    Slot::Jira(_) | Slot::JiraId => after.1 == before.1 + 1,
                    Slot::Human(_) => after.2 == before.2 + 1,
                };
                assert!(
                    grew,
                    "{field} of {len} bytes is stored: {before:?} -> {after:?}"
                );
                continue;
            }
            let status = match slot {
                Slot::WebhookId | Slot::JiraId => 400,
                _ => 422,
            };
            assert_refused(&resp, status, field);
            assert!(
                resp.json()["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(&max.to_string()),
                "{field}: the limit is named: {}",
                resp.body
            );
            assert_eq!(after, before, "{field} of {len} bytes: nothing written");
        }
    }
    // A person to assign is looked up by id: one past the limit is refused as such.
    let resp = app.admin(
        "POST",
        &format!("/admin/work-items/{item}/assign"),
        Some(json!({"human_id": incompressible(256, 1)})),
    );
    assert_refused(&resp, 422, "human_id");
    assert!(resp.body.contains("255"), "{}", resp.body);
}

/// A name counts as it is stored: lower-cased, and escaped as in the learner's JSON keys, so a
/// name of quotes cannot pass as short and fail in an index later.
#[test]
fn names_are_measured_as_they_are_stored() {
    let app = app();
    let before = rows(&app);
    let quoted = "\"".repeat(600);
    let raw = crate::helpers::incident_body("PQUOTE", "api-service", "low", chrono::Utc::now());
    let mut body: Value = serde_json::from_slice(&raw).unwrap();
    body["event"]["data"]["teams"][0]["summary"] = quoted.into();
    assert_refused(&pagerduty(&app, &body), 422, "event.data.teams[0].summary");
    assert_eq!(rows(&app), before);

    // At the limit, a service and a team name both the longest allowed still fit in every key
    // the learner writes for them (the admin override credits the new owner).
    app.roster(&[human("ana", &["api"])]);
    let service = incompressible(1024, 7);
    let team = incompressible(1024, 8);
    body["event"]["data"]["service"]["summary"] = service.clone().into();
    body["event"]["data"]["service"]["id"] = "PLONGSVC".into();
    body["event"]["data"]["teams"][0]["summary"] = team.into();
    let resp = pagerduty(&app, &body);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let id = resp.json()["work_item_id"].as_str().unwrap().to_string();
    let assigned = app.admin(
        "POST",
        &format!("/admin/work-items/{id}/assign"),
        Some(json!({"human_id": "ana", "force": true})),
    );
    assert_eq!(assigned.status, 200, "{}", assigned.body);
    let keys: Vec<String> = goliath::db::schema::human_states::table
        .select(goliath::db::schema::human_states::key)
        .load(&mut app.db.conn())
        .unwrap();
    assert!(
        keys.iter()
            .any(|k| k.len() > 2048 && k.contains(&service.to_lowercase())),
        "the service and team share a key: {:?}",
        keys.iter().map(String::len).collect::<Vec<_>>()
    );
}

/// Sends a raw PagerDuty body signed with `secret`.
fn signed_pagerduty(app: &TestApp, secret: &str, body: &str) -> Resp {
    let sig = format!("v1={}", sign_hex(secret, body.as_bytes()));
    app.post(
        "/webhooks/pagerduty",
        &[("X-PagerDuty-Signature", &sig)],
        body.as_bytes(),
    )
}

/// A body naming a key twice is refused wherever the key is (400 `duplicate_key`, naming it):
/// serde_json would keep the last value, so checks made on the parsed body (a NUL character, a
/// field's length) would not see the first, which the stored text still holds.
#[test]
fn a_key_named_twice_is_refused_wherever_it_is() {
    const SECRET: &str = "hostile-pagerduty-secret";
    let app = TestApp::start(config_with(
        |s| {
            s.jira.jira_webhook_secret = Some(JIRA_SECRET.into());
            s.pagerduty_webhook_secret = Some(SECRET.into());
        },
        &[],
    ));
    app.roster(&[human("ana", &["api"])]);
    let trigger =
        serde_json::to_string(&fixture_json("pagerduty_v3_incident_triggered.json")).unwrap();
    let before = rows(&app);
    for (object, at) in [
        ("{", ""),
        ("\"event\":{", "event."),
        ("\"data\":{", "event.data."),
    ] {
        for pair in [
            r#""x":"\u0000","x":1,"#,
            r#""x":1,"x":"\u0000","#,
            r#""x":1,"x":2,"#,
        ] {
            let body = trigger.replacen(object, &format!("{object}{pair}"), 1);
            let resp = signed_pagerduty(&app, SECRET, &body);
            assert_refused(&resp, 400, &format!("`{at}x`"));
            assert_eq!(resp.error_code(), "duplicate_key", "{}", resp.body);
        }
    }
    // A field Goliath reads, and one deep in an array.
    let twice_id = trigger.replacen(
        r#""id":"Q2F8K1ZQ0MJ5XJ","#,
        r#""id":"A","id":"Q2F8K1ZQ0MJ5XJ","#,
        1,
    );
    assert_refused(
        &signed_pagerduty(&app, SECRET, &twice_id),
        400,
        "event.data.id",
    );
    let in_array = trigger.replacen(
        r#""summary":"Payments SRE","#,
        r#""summary":"a","summary":"b","#,
        1,
    );
    assert_refused(
        &signed_pagerduty(&app, SECRET, &in_array),
        400,
        "event.data.teams[0].summary",
    );

    // Jira, and the admin API.
    let hook = serde_json::to_string(&fixture_json("jira_webhook_issue_assigned.json")).unwrap();
    let hook = hook.replacen(
        r#""key":"OPS-321","#,
        r#""key":"OPS-\u0000","key":"OPS-321","#,
        1,
    );
    let sig = format!("sha256={}", sign_hex(JIRA_SECRET, hook.as_bytes()));
    let resp = app.post(
        "/webhooks/jira",
        &[("X-Hub-Signature", &sig)],
        hook.as_bytes(),
    );
    assert_refused(&resp, 400, "issue.key");
    let person = r#"{"id":"bo","display_name":"Bo","email":"bo@example.com","jira_account_id":"a\u0000","jira_account_id":"acct-bo"}"#;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let resp = app.post(
        "/admin/humans",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        person.as_bytes(),
    );
    assert_refused(&resp, 400, "jira_account_id");
    assert_eq!(resp.error_code(), "duplicate_key");
    assert_eq!(rows(&app), before, "nothing stored");

    // The same bodies without the repeat are taken.
    let resp = signed_pagerduty(&app, SECRET, &trigger);
    assert_eq!(resp.status, 200, "{}", resp.body);
}
