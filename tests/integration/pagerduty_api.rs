//! PagerDuty's REST API (against a local server speaking it): the note and reassignment after
//! a decision, exactly once and through 429s; the people sync; on-call read from PagerDuty.

use diesel::prelude::*;
use goliath::db::schema::jobs;
use goliath::jobs::worker::drain;
use goliath::signature::sign_hex;
use serde_json::{json, Value};

use crate::helpers::pagerduty::{users, FakePagerDuty, PdState, FROM, TOKEN};
use crate::helpers::{config_with, fixture_json, human, TestApp};

const SECRET: &str = "pd-api-test-secret";
const INCIDENT: &str = "Q2F8K1ZQ0MJ5XJ";
const POLICY: &str = "PEP8Q1Z";

fn app_with(pd: &FakePagerDuty, env: &[(&str, &str)], reassign: bool) -> TestApp {
    let url = pd.url.clone();
    TestApp::start(config_with(
        move |s| {
            s.pagerduty_webhook_secret = Some(SECRET.into());
            s.pagerduty_api_token = Some(TOKEN.into());
            s.pagerduty_api_url = url;
            s.pagerduty_from_email = Some(FROM.into());
            s.pagerduty_reassign = Some(reassign);
        },
        env,
    ))
}

fn humans() -> Vec<Value> {
    let mut alice = human("alice", &["checkout api"]);
    alice["pagerduty_user_id"] = "PUA1B2C".into();
    let mut bob = human("bob", &["checkout api"]);
    bob["pagerduty_user_id"] = "PUB3D4E".into();
    vec![alice, bob, human("carol", &["checkout api"])]
}

fn trigger(app: &TestApp, id: &str, assignees: Value) -> Value {
    let mut body = fixture_json("pagerduty_v3_incident_triggered.json");
    body["event"]["id"] = format!("ev-{id}").into();
    body["event"]["data"]["id"] = id.into();
    body["event"]["data"]["assignees"] = assignees;
    let body = serde_json::to_vec(&body).unwrap();
    let sig = format!("v1={}", sign_hex(SECRET, &body));
    let resp = app.post(
        "/webhooks/pagerduty",
        &[("X-PagerDuty-Signature", &sig), ("X-Webhook-Id", id)],
        &body,
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.json()
}

/// Runs every queued job now, however far its retry was put off.
fn run_all_jobs(app: &TestApp) {
    let mut conn = app.db.conn();
    diesel::update(jobs::table.filter(jobs::state.eq("queued")))
        .set(jobs::run_at.eq(diesel::dsl::now))
        .execute(&mut conn)
        .unwrap();
    drop(conn);
    drain(&app.state.pool, &*app.state.outbox).unwrap();
}

fn job(app: &TestApp, kind: &str) -> (String, i32, Option<String>) {
    let mut conn = app.db.conn();
    jobs::table
        .filter(jobs::kind.eq(kind))
        .select((jobs::state, jobs::attempts, jobs::last_error))
        .first(&mut conn)
        .unwrap()
}

#[test]
fn after_deciding_pagerduty_gets_one_note_and_the_incident_follows_the_owner() {
    let pd = FakePagerDuty::start(PdState::default());
    let app = app_with(&pd, &[], true);
    app.roster(&humans());
    let answer = trigger(&app, INCIDENT, json!([]));
    let owner = answer["assignee_id"].as_str().unwrap().to_string();
    let id = answer["work_item_id"].as_str().unwrap().to_string();

    // PagerDuty rate-limits the note's first try; it waits the second PagerDuty asked for.
    pd.with(|s| s.faults.push_back(429));
    drain(&app.state.pool, &*app.state.outbox).unwrap();
    let (state, attempts, error) = job(&app, "pagerduty_note");
    assert_eq!((state.as_str(), attempts), ("queued", 1), "{error:?}");
    assert!(error.unwrap_or_default().contains("429"));
    run_all_jobs(&app);
    assert_eq!(job(&app, "pagerduty_note").0, "done");
    assert_eq!(job(&app, "pagerduty_reassign").0, "done");

    let notes = pd.with(|s| s.notes.get(INCIDENT).cloned().unwrap_or_default());
    assert_eq!(notes.len(), 1, "{notes:?}");
    let note = &notes[0];
    assert!(
        note.contains(&format!("Person {owner} ({owner})")),
        "{note}"
    );
    assert!(note.contains("/browse/OPS-1"), "the Jira link: {note}");
    assert!(note.contains(&format!("[goliath {id}]")), "{note}");
    let paged = if owner == "alice" {
        "PUA1B2C"
    } else {
        "PUB3D4E"
    };
    assert_eq!(
        pd.with(|s| s.assignments.get(INCIDENT).cloned()),
        Some(vec![paged.to_string()]),
        "the person paged is the person who owns the Jira issue"
    );

    // A worker that died after PagerDuty took the note runs the job again: no second note.
    let mut conn = app.db.conn();
    diesel::update(jobs::table.filter(jobs::kind.eq("pagerduty_note")))
        .set((jobs::state.eq("queued"), jobs::attempts.eq(1)))
        .execute(&mut conn)
        .unwrap();
    drop(conn);
    run_all_jobs(&app);
    assert_eq!(
        pd.with(|s| s.notes.get(INCIDENT).map(Vec::len)),
        Some(1),
        "exactly once"
    );
}

#[test]
fn without_reassignment_configured_only_the_note_is_written() {
    let pd = FakePagerDuty::start(PdState::default());
    let app = app_with(&pd, &[("PAGERDUTY_REASSIGN_CHECKOUT_API", "false")], true);
    app.roster(&humans());
    trigger(&app, INCIDENT, json!([]));
    run_all_jobs(&app);
    run_all_jobs(&app);
    assert_eq!(pd.with(|s| s.notes.get(INCIDENT).map(Vec::len)), Some(1));
    assert!(
        pd.with(|s| s.assignments.is_empty()),
        "the service opted out"
    );
}

#[test]
fn humans_sync_matches_pagerduty_users_by_email_across_pages() {
    let pd = FakePagerDuty::start(PdState {
        users: users(230),
        ..PdState::default()
    });
    let app = app_with(&pd, &[], false);
    let mut dana = human("dana", &["api"]);
    dana["email"] = "user5@example.com".into();
    let mut eli = human("eli", &["api"]);
    eli["email"] = "USER150@example.com".into();
    app.roster(&[dana, eli, human("fay", &["api"])]);
    let resp = app.admin("POST", "/admin/humans/sync-pagerduty", None);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let report = resp.json();
    assert_eq!(report["pagerduty_users"], 230, "every page read");
    assert_eq!(report["updated"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["humans_without_a_pagerduty_user"], json!(["fay"]));
    let dana = app.admin("GET", "/admin/humans/dana", None).json();
    assert_eq!(dana["pagerduty_user_id"], "PU5");
    let eli = app.admin("GET", "/admin/humans/eli", None).json();
    assert_eq!(eli["pagerduty_user_id"], "PU150");
    let pages = pd.with(|s| s.calls.iter().filter(|(_, p)| p == "/users").count());
    assert_eq!(pages, 3, "100 a page");
    let again = app
        .admin("POST", "/admin/humans/sync-pagerduty", None)
        .json();
    assert_eq!(again["updated"], json!([]), "nothing changes twice");

    pd.with(|s| s.down = true);
    let down = app.admin("POST", "/admin/humans/sync-pagerduty", None);
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(down.error_code(), "pagerduty_unavailable");
}

#[test]
fn humans_sync_needs_the_api_token() {
    let app = TestApp::start(config_with(|_| {}, &[]));
    let resp = app.admin("POST", "/admin/humans/sync-pagerduty", None);
    assert_eq!(resp.status, 409, "{}", resp.body);
    assert_eq!(resp.error_code(), "pagerduty_not_configured");
}

#[test]
fn on_call_from_pagerduty_is_required_where_configured_and_never_waited_for() {
    let pd = FakePagerDuty::start(PdState {
        oncalls: [(
            POLICY.to_string(),
            vec![("PUB3D4E".to_string(), 1), ("PUA1B2C".to_string(), 2)],
        )]
        .into(),
        ..PdState::default()
    });
    let app = app_with(&pd, &[("GOLIATH_ON_CALL_CHECKOUT_API", "required")], false);
    app.roster(&humans());
    let cache = app.state.on_call.clone().expect("an on-call cache");

    // Nothing known yet and PagerDuty down: decided at once on what is known (nobody), and the
    // explanation says why.
    pd.with(|s| s.down = true);
    let first = trigger(&app, "PCOLD", json!([]));
    assert_eq!(first["work_item_status"], "unassigned", "{first}");
    let id = first["work_item_id"].as_str().unwrap().to_string();
    let view = app.work_item(&id);
    let explanation = view["decision"]["explanation"].as_str().unwrap();
    assert!(explanation.contains("not known yet"), "{explanation}");
    assert!(cache.refresh(POLICY).is_err(), "PagerDuty is down");

    // PagerDuty back: level 1 is Bob, the only one eligible now.
    pd.with(|s| s.down = false);
    cache.refresh(POLICY).unwrap();
    let second = trigger(&app, "PWARM", json!([]));
    assert_eq!(second["assignee_id"], "bob", "{second}");
    let view = app.work_item(second["work_item_id"].as_str().unwrap());
    let excluded: Vec<(String, String)> = view["decision"]["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["human_id"].as_str().unwrap().to_string(),
                e["reason"]["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        excluded.contains(&("alice".into(), "not_on_call".into())),
        "{excluded:?}"
    );
    let replay = app.admin(
        "POST",
        &format!(
            "/admin/work-items/{}/replay",
            second["work_item_id"].as_str().unwrap()
        ),
        None,
    );
    assert_eq!(replay.json()["matches"], true, "{}", replay.body);

    // The waiting item is Bob's once it is decided again.
    let mut conn = app.db.conn();
    let swept =
        goliath::decision::backlog::decide_waiting(&app.state.decision, &mut conn, None).unwrap();
    assert_eq!(swept.assigned, vec![id]);
}

#[test]
fn an_item_nobody_could_take_is_decided_again_once_the_on_call_list_is_read() {
    let pd = FakePagerDuty::start(PdState {
        oncalls: [(POLICY.to_string(), vec![("PUB3D4E".to_string(), 1)])].into(),
        ..PdState::default()
    });
    let app = app_with(&pd, &[("GOLIATH_ON_CALL_CHECKOUT_API", "required")], false);
    app.roster(&humans());
    let cache = app.state.on_call.clone().expect("an on-call cache");
    // After a restart with PagerDuty down: nobody known on call, so nobody eligible.
    pd.with(|s| s.down = true);
    let first = trigger(&app, "PSTRANDED", json!([]));
    assert_eq!(first["work_item_status"], "unassigned", "{first}");
    let id = first["work_item_id"].as_str().unwrap().to_string();
    // The open items' policies are what a restarted process reads first.
    let mut conn = app.db.conn();
    let policies = goliath::decision::open_escalation_policies(&mut conn).unwrap();
    assert_eq!(policies, vec![POLICY.to_string()]);
    let sweep = |seen: &mut String| {
        goliath::decision::backlog::sweep_if_changed(&app.state.pool, &app.state.decision, seen)
            .unwrap()
    };
    let mut seen = String::new();
    assert_eq!(sweep(&mut seen), 0, "still nobody on call");
    assert_eq!(sweep(&mut seen), 0, "nothing changed");

    // PagerDuty recovers and the list is read: nothing else changed, yet the item is decided
    // again and goes to the person on call.
    pd.with(|s| s.down = false);
    cache.refresh(POLICY).unwrap();
    assert_eq!(sweep(&mut seen), 1);
    let view = app.work_item(&id);
    assert_eq!(
        view["work_item"]["assignee_id"], "bob",
        "{}",
        view["work_item"]
    );
    // The same list read again changes nothing.
    cache.refresh(POLICY).unwrap();
    assert_eq!(sweep(&mut seen), 0);
}

#[test]
fn humans_sync_keeps_an_id_set_by_hand_and_reports_the_conflict() {
    let pd = FakePagerDuty::start(PdState {
        users: users(20),
        ..PdState::default()
    });
    let app = app_with(&pd, &[], false);
    // Gus's id was set by hand; PagerDuty's e-mail match names another user.
    let mut gus = human("gus", &["api"]);
    gus["email"] = "user7@example.com".into();
    gus["pagerduty_user_id"] = "PUMANUAL".into();
    // Hank's id was set by hand and no PagerDuty user has his e-mail.
    let mut hank = human("hank", &["api"]);
    hank["pagerduty_user_id"] = "PUHANK".into();
    app.roster(&[gus, hank, human("ivy", &["api"])]);

    let report = app
        .admin("POST", "/admin/humans/sync-pagerduty", None)
        .json();
    assert_eq!(report["updated"], json!([]), "{report}");
    assert_eq!(
        report["conflicts"],
        json!([{"id": "gus", "kept": "PUMANUAL", "matched_by_email": "PU7"}]),
        "{report}"
    );
    assert_eq!(
        report["humans_without_a_pagerduty_user"],
        json!(["ivy"]),
        "{report}"
    );
    let gus = app.admin("GET", "/admin/humans/gus", None).json();
    assert_eq!(gus["pagerduty_user_id"], "PUMANUAL");

    // Asked to, the match replaces it.
    let forced = app
        .admin("POST", "/admin/humans/sync-pagerduty?overwrite=true", None)
        .json();
    assert_eq!(forced["updated"][0]["id"], "gus", "{forced}");
    assert_eq!(forced["updated"][0]["was"], "PUMANUAL", "{forced}");
    let gus = app.admin("GET", "/admin/humans/gus", None).json();
    assert_eq!(gus["pagerduty_user_id"], "PU7");
    let hank = app.admin("GET", "/admin/humans/hank", None).json();
    assert_eq!(
        hank["pagerduty_user_id"], "PUHANK",
        "no match leaves an id alone"
    );
}

#[test]
fn metrics_say_what_to_alert_on_fetch_errors_api_errors_age_build_and_process() {
    let pd = FakePagerDuty::start(PdState {
        oncalls: [(POLICY.to_string(), vec![("PUB3D4E".to_string(), 1)])].into(),
        ..PdState::default()
    });
    let app = app_with(&pd, &[], false);
    let cache = app.state.on_call.clone().expect("an on-call cache");
    pd.with(|s| s.down = true);
    assert!(cache.refresh(POLICY).is_err());
    let errors = app.metric("goliath_on_call_fetches_total{result=\"error\"}");
    assert!(errors.is_some_and(|n| n >= 1.0), "{errors:?}");
    let api = app.metric("goliath_api_errors_total{api=\"pagerduty\",status=\"503\"}");
    assert!(api.is_some_and(|n| n >= 1.0), "{api:?}");
    pd.with(|s| s.down = false);
    cache.refresh(POLICY).unwrap();
    let fetched = app.metric("goliath_on_call_fetches_total{result=\"ok\"}");
    assert!(fetched.is_some_and(|n| n >= 1.0), "{fetched:?}");
    // A list in use has an age.
    let _ = cache.lookup(POLICY);
    assert!(app.metric("goliath_on_call_list_age_seconds").is_some());
    let build = format!(
        "goliath_build_info{{model_version=\"{}\",version=\"{}\"}}",
        goliath::routing::MODEL_VERSION,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(app.metric(&build), Some(1.0));
    let rss = app.metric("goliath_process_resident_memory_bytes");
    assert!(rss.is_some_and(|b| b > 1e6), "{rss:?}");
    let fds = app.metric("goliath_process_open_fds");
    assert!(fds.is_some_and(|n| n >= 3.0), "{fds:?}");
}
