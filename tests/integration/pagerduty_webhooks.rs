//! POST /webhooks/pagerduty: the V3 envelope, signatures, mapping, idempotency, bad input.

use diesel::prelude::*;
use goliath::db::schema::{webhook_deliveries, work_items};
use goliath::ingest::IngestOutcome;
use goliath::signature::sign_hex;

use crate::helpers::{config_with, fixture, fixture_json, TestApp, TestDb};

const SECRET: &str = "P1FCjs7jgaCfQGL2phwQppai38tEehEWfNlj75GrbTQXusmVtvJzyuW1u1aDGFSr";

fn counts(app: &TestApp) -> (i64, i64) {
    let mut conn = app.db.conn();
    let items = work_items::table.count().get_result(&mut conn).unwrap();
    let deliveries = webhook_deliveries::table
        .count()
        .get_result(&mut conn)
        .unwrap();
    (items, deliveries)
}

fn unsigned_app() -> TestApp {
    TestApp::start(config_with(|_| {}, &[]))
}

fn signed_app(secrets: &str) -> TestApp {
    TestApp::start(config_with(
        |s| s.pagerduty_webhook_secret = Some(secrets.into()),
        &[],
    ))
}

fn post_signed(app: &TestApp, body: &[u8], webhook_id: Option<&str>) -> crate::helpers::Resp {
    let sig = format!("v1={}", sign_hex(SECRET, body));
    let mut headers = vec![
        ("X-PagerDuty-Signature", sig.as_str()),
        ("Content-Type", "application/json"),
    ];
    if let Some(id) = webhook_id {
        headers.push(("X-Webhook-Id", id));
    }
    app.post("/webhooks/pagerduty", &headers, body)
}

#[test]
fn triggered_incident_creates_a_work_item_with_its_fields() {
    let app = signed_app(SECRET);
    let resp = post_signed(
        &app,
        &fixture("pagerduty_v3_incident_triggered.json"),
        Some("wh-1"),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["status"], "success");
    assert_eq!(body["incident_id"], "Q2F8K1ZQ0MJ5XJ");
    assert_eq!(body["incident_number"], 1842);
    assert_eq!(
        body["severity"], "sev2",
        "urgency high without priority is sev2"
    );
    let id = body["work_item_id"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("wi-20260314092652-") && id.len() == "wi-20260314092652-".len() + 6,
        "{id}"
    );

    let mut conn = app.db.conn();
    let (title, service, status, origin, created): (
        String,
        String,
        String,
        String,
        chrono::DateTime<chrono::Utc>,
    ) = work_items::table
        .find(&id)
        .select((
            work_items::title,
            work_items::service,
            work_items::status,
            work_items::origin_system,
            work_items::created_at,
        ))
        .first(&mut conn)
        .unwrap();
    assert_eq!(title, "CRITICAL: checkout-api p99 latency > 2s");
    assert_eq!(service, "checkout api");
    assert_ne!(status, "");
    assert_eq!(origin, "PAGERDUTY-1842");
    assert_eq!(
        created.to_rfc3339(),
        "2026-03-14T09:26:52+00:00",
        "created_at is the incident's own time"
    );
}

#[test]
fn every_pagerduty_signature_vector_behaves_as_documented() {
    let vectors = fixture_json("signature_vectors.json");
    let mut checked = 0;
    for v in vectors["vectors"].as_array().unwrap() {
        if v["provider"] != "pagerduty_v3" {
            continue;
        }
        let secrets: Vec<String> = match v.get("secrets_that_verify").and_then(|s| s.as_array()) {
            Some(list) => list
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect(),
            None => vec![v["secret"].as_str().unwrap().to_string()],
        };
        let app = signed_app(&secrets.join(","));
        let body = fixture(v["body_file"].as_str().unwrap());
        let header = v["expected_header_value"].as_str().unwrap();
        let mut headers = vec![];
        if !header.is_empty() {
            headers.push(("X-PagerDuty-Signature", header));
        }
        let resp = app.post("/webhooks/pagerduty", &headers, &body);
        let valid = v["valid"].as_bool().unwrap();
        if valid {
            assert!(
                resp.status == 200 || resp.status == 202,
                "{}: {} {}",
                v["id"],
                resp.status,
                resp.body
            );
        } else {
            assert_eq!(resp.status, 401, "{}: {}", v["id"], resp.body);
            assert!(resp.error_code().ends_with("signature"), "{}", resp.body);
            assert_eq!(
                counts(&app),
                (0, 0),
                "{}: nothing stored for a refused delivery",
                v["id"]
            );
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} PagerDuty vectors found");
}

#[test]
fn pagerdutys_published_vector_is_accepted_and_its_mismatch_refused() {
    let secret = "lDQHScfUeXUKaQRNF+8XIiDKZ7XX3itBAYzwU0TARw8lJqRnkKl2iB1anSb0Z+IK";
    let app = signed_app(secret);
    let body = fixture("upstream/go-pagerduty__webhookv3_test_defaultBody.json");
    let ok = app.post(
        "/webhooks/pagerduty",
        &[(
            "X-PagerDuty-Signature",
            "v1=0c0b9495b893a39e70d1fea2fe11fbe0a825f88b9f67846f6cc07dd2bc5476cd",
        )],
        &body,
    );
    assert_eq!(
        ok.status, 200,
        "a priority_updated event for a new incident takes it in: {}",
        ok.body
    );
    assert_eq!(ok.json()["status"], "updated", "{}", ok.body);
    let bad = app.post(
        "/webhooks/pagerduty",
        &[(
            "X-PagerDuty-Signature",
            "v1=7020c8a7ec668a9b7012bc3dd82e483394b038f4230acc6785efbf2a7d8bcaf5",
        )],
        &body,
    );
    assert_eq!(bad.status, 401);
}

#[test]
fn rotation_accepts_either_secret_and_refuses_others() {
    let app = signed_app(&format!("old-secret,{SECRET}"));
    let body = fixture("pagerduty_v3_incident_triggered.json");
    let old = format!("v1={}", sign_hex("old-secret", &body));
    assert_eq!(
        app.post(
            "/webhooks/pagerduty",
            &[("X-PagerDuty-Signature", &old)],
            &body
        )
        .status,
        200
    );
    let other = format!("v1={}", sign_hex("someone-else", &body));
    let resp = app.post(
        "/webhooks/pagerduty",
        &[("X-PagerDuty-Signature", &other)],
        &body,
    );
    assert_eq!(resp.status, 401);
    assert_eq!(resp.error_code(), "invalid_signature");
    let missing = app.post("/webhooks/pagerduty", &[], &body);
    assert_eq!(missing.status, 401);
    assert_eq!(missing.error_code(), "missing_signature");
}

#[test]
fn redelivery_and_repeated_incident_never_make_a_second_work_item() {
    let app = signed_app(SECRET);
    let body = fixture("pagerduty_v3_incident_triggered.json");
    let first = post_signed(&app, &body, Some("delivery-A")).json();
    let again = post_signed(&app, &body, Some("delivery-A"));
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["status"], "duplicate");
    assert_eq!(again.json()["work_item_id"], first["work_item_id"]);
    // Same incident, new delivery id and a new event id (`incident.created`).
    let mut other: serde_json::Value = serde_json::from_slice(&body).unwrap();
    other["event"]["id"] = "another-event".into();
    other["event"]["event_type"] = "incident.created".into();
    let other = serde_json::to_vec(&other).unwrap();
    let resp = post_signed(&app, &other, Some("delivery-B")).json();
    assert_eq!(resp["status"], "duplicate");
    assert_eq!(resp["work_item_id"], first["work_item_id"]);
    // Without X-Webhook-Id the event id is the key.
    let resp = post_signed(&app, &body, None).json();
    assert_eq!(resp["status"], "duplicate");
    // One work item; each distinct delivery recorded once, against it.
    assert_eq!(counts(&app), (1, 3));
    let mut conn = app.db.conn();
    let named: Vec<Option<String>> = webhook_deliveries::table
        .select(webhook_deliveries::work_item_id)
        .load(&mut conn)
        .unwrap();
    assert!(
        named
            .iter()
            .all(|w| w.as_deref() == first["work_item_id"].as_str()),
        "{named:?}"
    );
}

#[test]
fn a_work_item_id_held_by_another_incident_is_salted() {
    let app = unsigned_app();
    let body = fixture("pagerduty_v3_incident_triggered.json");
    let parsed = goliath::ingest::IngestService::new(Default::default(), None)
        .parse(None, &body)
        .unwrap();
    let goliath::ingest::Parsed::Incident(delivery) = parsed else {
        panic!("the fixture is an incident");
    };
    let (plain, salted) = (
        goliath::ingest::work_item_id(&delivery.incident, 0),
        goliath::ingest::work_item_id(&delivery.incident, 1),
    );
    // Another incident already holds the id this one would get.
    diesel::sql_query(
        "INSERT INTO work_items (id, type, service, severity, title, status, origin_system, \
         pagerduty_incident_id, raw_payload, created_at) \
         VALUES ($1, 'incident', 'api', 'sev3', 't', 'open', 'PAGERDUTY-1', 'POTHER', '{}', now())",
    )
    .bind::<diesel::sql_types::Text, _>(&plain)
    .execute(&mut app.db.conn())
    .unwrap();
    let resp = app.post("/webhooks/pagerduty", &[], &body);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let resp = resp.json();
    assert_eq!(resp["status"], "success");
    assert_eq!(resp["work_item_id"], salted.as_str());
    // The redelivery names the salted item.
    let again = app.post("/webhooks/pagerduty", &[("X-Webhook-Id", "again")], &body);
    assert_eq!(again.json()["status"], "duplicate");
    assert_eq!(again.json()["work_item_id"], salted.as_str());
    assert_eq!(counts(&app), (2, 2));
}

#[test]
fn concurrent_redeliveries_make_one_work_item() {
    let app = unsigned_app();
    let body = fixture("pagerduty_v3_incident_triggered.json");
    std::thread::scope(|s| {
        for i in 0..8 {
            let (app, body) = (&app, &body);
            s.spawn(move || {
                let id = format!("d-{}", i % 2);
                let r = app.post("/webhooks/pagerduty", &[("X-Webhook-Id", &id)], body);
                assert_eq!(r.status, 200, "{}", r.body);
            });
        }
    });
    assert_eq!(counts(&app).0, 1);
}

#[test]
fn ping_and_unhandled_events_are_acknowledged_and_ignored() {
    let app = unsigned_app();
    for name in [
        "pagerduty_v3_pagey_ping.json",
        "pagerduty_v3_incident_status_update_published.json",
    ] {
        let resp = app.post("/webhooks/pagerduty", &[], &fixture(name));
        assert_eq!(resp.status, 202, "{name}: {}", resp.body);
        assert_eq!(resp.json()["status"], "ignored");
    }
    let unknown = br#"{"event":{"id":"e1","event_type":"incident.brand_new_thing","resource_type":"incident","data":{}}}"#;
    assert_eq!(app.post("/webhooks/pagerduty", &[], unknown).status, 202);
    assert_eq!(counts(&app), (0, 0));
}

#[test]
fn bad_input_gets_a_named_error_and_stores_nothing() {
    let app = unsigned_app();
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "malformed_json"),
        (b"".to_vec(), 400, "malformed_json"),
        (fixture("pagerduty_v2_incident_trigger.json"), 400, "v2_not_supported"),
        (br#"{"nothing":1}"#.to_vec(), 422, "missing_field"),
        (
            br#"{"event":{"id":"e","event_type":"incident.triggered","data":{"id":"P1","number":3,"created_at":"2026-01-01T00:00:00Z","service":{"summary":"api-service"}}}}"#.to_vec(),
            422,
            "missing_field",
        ),
        (
            br#"{"event":{"id":"e","event_type":"incident.triggered","data":{"id":"P1","number":3,"title":"t","created_at":"yesterday","service":{"summary":"api-service"}}}}"#.to_vec(),
            422,
            "invalid_field",
        ),
        (vec![b' '; 1024 * 1024 + 10], 413, "body_too_large"),
        (
            br#"{"event":{"id":"e","event_type":"incident.triggered","data":{"id":"P1","number":3,"title":"nul \u0000 here","created_at":"2026-01-01T00:00:00Z","service":{"summary":"api-service"}}}}"#.to_vec(),
            422,
            "invalid_field",
        ),
    ];
    for (body, status, code) in cases {
        let resp = app.post("/webhooks/pagerduty", &[], &body);
        assert_eq!(resp.status, status, "{}", resp.body);
        assert_eq!(resp.error_code(), code, "{}", resp.body);
        assert!(!resp.json()["error"]["message"].as_str().unwrap().is_empty());
    }
    let missing_title = app.post(
        "/webhooks/pagerduty",
        &[],
        br#"{"event":{"id":"e","event_type":"incident.triggered","data":{"id":"P1","number":3,"created_at":"2026-01-01T00:00:00Z","service":{"summary":"api-service"}}}}"#,
    );
    assert!(
        missing_title.body.contains("event.data.title"),
        "names the field: {}",
        missing_title.body
    );
    assert_eq!(counts(&app), (0, 0));
}

#[test]
fn service_and_severity_mapping_follow_configuration() {
    let app = TestApp::start(config_with(
        |_| {},
        &[
            ("PAGERDUTY_SERVICE_CHECKOUT_API", "payments"),
            ("PAGERDUTY_PRIORITY_P1", "sev2"),
        ],
    ));
    let resp = app
        .post(
            "/webhooks/pagerduty",
            &[],
            &fixture("pagerduty_v3_incident_triggered.json"),
        )
        .json();
    assert_eq!(resp["service"], "payments");

    let mut by_id: serde_json::Value = fixture_json("pagerduty_v3_incident_triggered_unicode.json");
    by_id["event"]["data"]["id"] = "QUNICODE1".into();
    by_id["event"]["data"]["priority"] =
        serde_json::json!({"summary": "P1", "id": "PPRI1", "type": "priority_reference"});
    let resp = app
        .post(
            "/webhooks/pagerduty",
            &[],
            &serde_json::to_vec(&by_id).unwrap(),
        )
        .json();
    assert_eq!(resp["status"], "success");
    assert_eq!(resp["severity"], "sev2", "P1 overridden to sev2");

    let app2 = TestApp::start(config_with(
        |_| {},
        &[("PAGERDUTY_SERVICE_ID_PXCK9J2", "edge")],
    ));
    let resp = app2
        .post(
            "/webhooks/pagerduty",
            &[],
            &fixture("pagerduty_v3_incident_triggered.json"),
        )
        .json();
    assert_eq!(resp["service"], "edge", "the service id mapping wins");
}

#[test]
fn context_tags_and_the_raw_body_are_stored_exactly() {
    let app = unsigned_app();
    let mut body = fixture_json("pagerduty_v3_incident_triggered.json");
    let team = r#"Ops "core" \ NULL, {edge}"#;
    body["event"]["data"]["teams"] = serde_json::json!([{"summary": team, "id": "PT1"}]);
    let bytes = serde_json::to_vec(&body).unwrap();
    let resp = app.post("/webhooks/pagerduty", &[], &bytes).json();
    assert_eq!(resp["status"], "success", "{resp}");
    let mut conn = app.db.conn();
    let (context, raw): (Vec<String>, serde_json::Value) = work_items::table
        .find(resp["work_item_id"].as_str().unwrap())
        .select((work_items::context, work_items::raw_payload))
        .first(&mut conn)
        .unwrap();
    let expected = format!("team:{}", team.to_lowercase());
    assert!(context.contains(&expected), "{context:?}");
    assert_eq!(raw, body, "the payload is the body as received");
}

#[test]
fn unicode_titles_are_kept_exactly() {
    let app = unsigned_app();
    let raw = fixture_json("pagerduty_v3_incident_triggered_unicode.json");
    let resp = app
        .post(
            "/webhooks/pagerduty",
            &[],
            &fixture("pagerduty_v3_incident_triggered_unicode.json"),
        )
        .json();
    let mut conn = app.db.conn();
    let title: String = work_items::table
        .find(resp["work_item_id"].as_str().unwrap())
        .select(work_items::title)
        .first(&mut conn)
        .unwrap();
    assert_eq!(title, raw["event"]["data"]["title"].as_str().unwrap());
}

#[test]
fn database_down_answers_503_so_pagerduty_retries() {
    let db = TestDb::new();
    let mut config = config_with(|_| {}, &[]);
    config.database_url = Some("postgres://nobody@/nowhere?host=/nonexistent".into());
    let broken = goliath::db::build_pool("postgres://nobody@/nowhere?host=/nonexistent", 1);
    let app = TestApp::start_on(db, config);
    // Swap in a pool that cannot connect.
    let jira = goliath::app::jira_client(&app.state.config, Some(&app.sim().base_url())).unwrap();
    let state = actix_web::web::Data::new(goliath::app::AppState::new(
        (*app.state.config).clone(),
        broken,
        jira,
    ));
    let down = TestApp::start_on_state(state);
    let resp = down.post(
        "/webhooks/pagerduty",
        &[],
        &fixture("pagerduty_v3_incident_triggered.json"),
    );
    assert_eq!(resp.status, 503, "{}", resp.body);
    assert_eq!(resp.error_code(), "database_unavailable");
    let ready = down.get("/readyz");
    assert_eq!(ready.status, 503);
    assert_eq!(app.get("/readyz").status, 200);
    assert_eq!(app.get("/healthz").status, 200);
    assert_eq!(
        down.get("/healthz").status,
        200,
        "liveness does not touch the database"
    );
}

#[test]
fn a_batch_mixing_new_known_and_id_clashing_incidents_stores_each_once() {
    let app = unsigned_app();
    let state = app.shared();
    let body = fixture("pagerduty_v3_incident_triggered.json");
    let delivery = |incident: &str, webhook: &str| {
        let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["event"]["data"]["id"] = incident.into();
        match state
            .ingest
            .parse(Some(webhook), &serde_json::to_vec(&v).unwrap())
        {
            Ok(goliath::ingest::Parsed::Incident(d)) => *d,
            other => panic!("{other:?}"),
        }
    };
    let mut conn = app.db.conn();
    // KNOWN has its item already; CLASH's id is held by another incident.
    let known = state
        .ingest
        .store_batch(&mut conn, &[delivery("KNOWN", "w-0")])
        .unwrap();
    let clash = delivery("CLASH", "w-1");
    diesel::sql_query(
        "INSERT INTO work_items (id, type, service, severity, title, status, origin_system, \
         pagerduty_incident_id, raw_payload, created_at) \
         VALUES ($1, 'incident', 'api', 'sev3', 't', 'open', 'PAGERDUTY-1', 'POTHER', '{}', now())",
    )
    .bind::<diesel::sql_types::Text, _>(goliath::ingest::work_item_id(&clash.incident, 0))
    .execute(&mut conn)
    .unwrap();
    let batch = [
        delivery("NEW", "w-2"),
        delivery("KNOWN", "w-3"),
        clash.clone(),
        delivery("NEW", "w-4"),
    ];
    let out = state.ingest.store_batch(&mut conn, &batch).unwrap();
    let status = |o: &IngestOutcome| match o {
        IngestOutcome::Success(s) => ("success", s.work_item_id.clone()),
        IngestOutcome::Duplicate(s) => ("duplicate", s.work_item_id.clone()),
        IngestOutcome::Ignored { .. } => ("ignored", String::new()),
    };
    let IngestOutcome::Success(first) = &known[0] else {
        panic!("{known:?}")
    };
    assert_eq!(status(&out[0]).0, "success");
    assert_eq!(status(&out[1]), ("duplicate", first.work_item_id.clone()));
    assert_eq!(
        status(&out[2]),
        ("success", goliath::ingest::work_item_id(&clash.incident, 1))
    );
    assert_eq!(status(&out[3]), ("duplicate", status(&out[0]).1));
    // Items: KNOWN, POTHER, NEW, CLASH; every delivery recorded once; one decision per item
    // the intake made.
    assert_eq!(counts(&app), (4, 5));
    let decided: i64 = goliath::db::schema::decisions::table
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(decided, 3);
}

#[test]
fn a_sweep_deletes_old_deliveries_wherever_they_lie_and_keeps_recent_ones() {
    use goliath::ingest::retention::OldDeliveries;
    use goliath::jobs::Expiry;
    let app = unsigned_app();
    let mut conn = app.db.conn();
    // Old and recent rows interleaved on every page, as when new rows reuse freed space.
    diesel::sql_query(
        "INSERT INTO webhook_deliveries (source, delivery_id, event_type, received_at) \
         SELECT 'pagerduty', 'd-' || n, 'incident.triggered', \
                CASE WHEN n % 3 = 0 THEN now() - interval '20 days' \
                     WHEN n % 3 = 1 THEN now() - interval '13 days' \
                     ELSE now() END \
           FROM generate_series(1, 6000) AS n",
    )
    .execute(&mut conn)
    .unwrap();
    let sweep = OldDeliveries {
        age: std::time::Duration::from_secs(14 * 86_400),
        pages_per_piece: 4,
    };
    let (mut cursor, mut pieces, mut deleted) = (0, 0, 0);
    loop {
        let (n, next) = sweep.delete_piece(&mut conn, cursor).unwrap();
        deleted += n;
        pieces += 1;
        match next {
            Some(c) => {
                assert!(c > cursor, "the sweep moves on");
                cursor = c;
            }
            None => break,
        }
        assert!(pieces < 1_000, "the sweep ends");
    }
    assert_eq!(
        deleted, 2000,
        "every row older than 14 days, and only those"
    );
    assert!(
        pieces > 2,
        "one piece never covers the table: {pieces} piece(s)"
    );
    let left: i64 = webhook_deliveries::table
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(left, 4000);
    let (n, next) = sweep.delete_piece(&mut conn, 0).unwrap();
    assert_eq!(
        (n, next.is_some()),
        (0, true),
        "a second pass finds nothing"
    );
}

#[test]
fn after_its_delivery_is_deleted_a_redelivery_still_makes_no_second_work_item() {
    use goliath::ingest::retention::OldDeliveries;
    use std::sync::Arc;
    let app = TestApp::start_with(
        TestDb::new(),
        config_with(|s| s.pagerduty_webhook_secret = Some(SECRET.into()), &[]),
        crate::helpers::AppOptions {
            workers: true,
            expiries: vec![Arc::new(OldDeliveries {
                age: std::time::Duration::from_secs(1),
                pages_per_piece: 1,
            })],
            ..Default::default()
        },
    );
    let body = fixture("pagerduty_v3_incident_triggered.json");
    let first = post_signed(&app, &body, Some("delivery-A")).json();
    assert_eq!(first["status"], "success");
    assert_eq!(counts(&app), (1, 1));
    let swept = app.wait_until(std::time::Duration::from_secs(15), || counts(&app).1 == 0);
    assert!(swept, "the delivery was not deleted: {:?}", counts(&app));
    let again = post_signed(&app, &body, Some("delivery-A"));
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["status"], "duplicate");
    assert_eq!(again.json()["work_item_id"], first["work_item_id"]);
    assert_eq!(counts(&app).0, 1, "the incident's own key still holds");
}
