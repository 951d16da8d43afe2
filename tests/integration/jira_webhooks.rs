//! Jira webhooks: signatures, redelivery, issues Goliath did not create, and outcomes learned.

use goliath::jobs::worker::drain;

use crate::helpers::{human, Resp, TestApp};
use crate::jobs::{app, jira_key, JIRA_SECRET};

/// The fixture's resolve, for the issue `key` of work item `id`, assigned to ana.
fn resolved_by_ana(key: &str, id: &str) -> serde_json::Value {
    let mut hook = crate::helpers::fixture_json("jira_webhook_issue_resolved.json");
    hook["issue"]["key"] = key.into();
    hook["issue"]["fields"]["labels"] = serde_json::json!([format!("goliath-{id}")]);
    hook["issue"]["fields"]["assignee"]["accountId"] = "acct-ana".into();
    hook
}

/// With ana alone on the roster, a low-urgency incident `incident` on api-service: its work
/// item id and the key of the Jira issue the worker opened for it.
fn anas_issue(app: &TestApp, incident: &str) -> (String, String) {
    app.roster(&[human("ana", &["api"])]);
    let id = app.incident(incident, "api-service", "low")["work_item_id"]
        .as_str()
        .unwrap()
        .to_string();
    drain(&app.state.pool, &*app.state.executor).unwrap();
    let key = jira_key(app, &id).unwrap();
    (id, key)
}

/// Posts `body` to the Jira webhook, signed, as the delivery `delivery`.
fn post_signed(app: &TestApp, body: &[u8], delivery: &str) -> Resp {
    let sig = format!("sha256={}", goliath::signature::sign_hex(JIRA_SECRET, body));
    let headers = [
        ("X-Hub-Signature", sig.as_str()),
        ("X-Atlassian-Webhook-Identifier", delivery),
    ];
    app.post("/webhooks/jira", &headers, body)
}

#[test]
fn jira_webhooks_are_verified_deduplicated_and_unknown_issues_ignored() {
    let app = app(false);
    let body = crate::helpers::fixture("jira_webhook_issue_resolved.json");
    let unsigned = app.post("/webhooks/jira", &[], &body);
    assert_eq!(unsigned.status, 401);
    let wrong = app.post("/webhooks/jira", &[("X-Hub-Signature", "sha256=00")], &body);
    assert_eq!(wrong.status, 401);
    let sig = format!(
        "sha256={}",
        goliath::signature::sign_hex(JIRA_SECRET, &body)
    );
    let unknown = app.post("/webhooks/jira", &[("X-Hub-Signature", &sig)], &body);
    assert_eq!(
        unknown.status, 202,
        "not an issue Goliath created: {}",
        unknown.body
    );
    assert_eq!(unknown.json()["status"], "ignored");
    let garbage = b"{not json";
    let sig = format!(
        "sha256={}",
        goliath::signature::sign_hex(JIRA_SECRET, garbage)
    );
    assert_eq!(
        app.post("/webhooks/jira", &[("X-Hub-Signature", &sig)], garbage)
            .status,
        400
    );

    // A delivery for an issue we created, sent twice with the same identifier.
    let (id, key) = anas_issue(&app, "W1");
    let body = serde_json::to_vec(&resolved_by_ana(&key, &id)).unwrap();
    let first = post_signed(&app, &body, "delivery-77");
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json()["status"], "applied");
    let second = post_signed(&app, &body, "delivery-77");
    assert_eq!(second.json()["status"], "duplicate");
    let view = app.work_item(&id);
    assert_eq!(view["work_item"]["status"], "resolved");
    assert_eq!(view["outcomes"].as_array().unwrap().len(), 1);
}

#[test]
fn time_in_a_waiting_status_is_left_out_of_the_resolvers_time() {
    let app = app(false);
    let opened = chrono::Utc::now();
    let (id, key) = anas_issue(&app, "W2");
    // The fixture's resolve, stripped to one changelog item at a time, `minutes` after the
    // incident opened.
    let send = |delivery: &str, minutes: i64, item: serde_json::Value| {
        let mut hook = resolved_by_ana(&key, &id);
        hook["timestamp"] = (opened + chrono::Duration::minutes(minutes))
            .timestamp_millis()
            .into();
        hook["changelog"]["items"] = serde_json::json!([item]);
        let resp = post_signed(&app, &serde_json::to_vec(&hook).unwrap(), delivery);
        assert!(resp.status < 300, "{}", resp.body);
        resp.json()
    };
    let status = |from: &str, to: &str| {
        serde_json::json!({"field": "status", "fieldtype": "jira", "fieldId": "status",
                           "from": "1", "fromString": from, "to": "2", "toString": to})
    };
    // Twenty minutes of work, thirty waiting on the customer (the default waiting status, in
    // another case), ten more of work.
    let moved = send("w2-1", 20, status("In Progress", "waiting for Customer"));
    assert_eq!(moved["status"], "ignored", "{moved}");
    send("w2-2", 50, status("Waiting for customer", "In Progress"));
    let resolved = send(
        "w2-3",
        60,
        serde_json::json!({"field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
                           "from": null, "fromString": null, "to": "10000", "toString": "Done"}),
    );
    assert_eq!(resolved["status"], "applied", "{resolved}");

    let view = app.work_item(&id);
    let history = crate::helpers::history_of(&view, "resolved");
    let entry = &history[0]["detail"];
    let waited = entry["seconds_waiting"]
        .as_f64()
        .expect("waiting time recorded");
    assert!((waited - 1800.0).abs() < 1.0, "{entry}");
    let wall = entry["seconds_to_resolve"].as_f64().unwrap();
    assert!(wall > 3590.0 && wall < 3700.0, "{entry}");
    // What the model learned is the working time: the hour less the wait.
    let stats = app.admin("GET", "/admin/stats?service=api", None).json();
    let ana = stats["stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["human_id"] == "ana")
        .expect("ana's record")
        .clone();
    let learned = ana["state"]["log_time_sum"].as_f64().unwrap().exp();
    assert!(
        (learned - (wall - waited)).abs() < 2.0,
        "learned {learned} s of work from {wall} s held, {waited} s waiting"
    );
}

#[test]
fn an_item_waiting_on_the_customer_carries_no_load() {
    let app = app(false);
    let opened = chrono::Utc::now();
    let (id, key) = anas_issue(&app, "W3");
    let load = || {
        let mut conn = app.db.conn();
        let loads = goliath::decision::open_loads(&mut conn).unwrap();
        loads.get("ana").copied().unwrap_or(0)
    };
    let send = |delivery: &str, minutes: i64, from: &str, to: &str| {
        let mut hook = resolved_by_ana(&key, &id);
        hook["timestamp"] = (opened + chrono::Duration::minutes(minutes))
            .timestamp_millis()
            .into();
        hook["changelog"]["items"] = serde_json::json!([
            {"field": "status", "fieldtype": "jira", "fieldId": "status",
             "from": "1", "fromString": from, "to": "2", "toString": to}
        ]);
        let resp = post_signed(&app, &serde_json::to_vec(&hook).unwrap(), delivery);
        assert!(resp.status < 300, "{}", resp.body);
    };
    let waiting = || app.work_item(&id)["work_item"]["waiting"].as_bool();
    assert_eq!(load(), 1);
    assert_eq!(waiting(), Some(false));
    send("w3-1", 20, "In Progress", "Waiting for customer");
    assert_eq!(load(), 0, "waiting on the customer is no load");
    assert_eq!(waiting(), Some(true));
    // A late delivery of an older change does not undo the newer one.
    send("w3-0", 10, "To Do", "In Progress");
    assert_eq!(load(), 0);
    send("w3-2", 40, "Waiting for customer", "In Progress");
    assert_eq!(load(), 1, "back at work");
    assert_eq!(waiting(), Some(false));
}
