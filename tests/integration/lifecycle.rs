//! The incident after its trigger: PagerDuty updates through POST /webhooks/pagerduty, applied
//! in order, out of order and twice, followed in Jira (the simulator) through the job queue.

use diesel::prelude::*;
use goliath::db::schema::{jobs, work_item_events};
use goliath::jobs::worker::drain;
use goliath::signature::sign_hex;
use serde_json::{json, Value};

use crate::helpers::{capped, config_with, fixture_json, human, Resp, TestApp};

const SECRET: &str = "lifecycle-test-secret";
const INCIDENT: &str = "Q2F8K1ZQ0MJ5XJ";

fn app() -> TestApp {
    TestApp::start(config_with(
        |s| s.pagerduty_webhook_secret = Some(SECRET.into()),
        &[],
    ))
}

/// Alice (PUA1B2C, paged at the trigger) and Bob (PUB3D4E, who resolves in the fixtures) own
/// the fixtures' `Checkout API` service.
fn checkout_humans() -> Vec<Value> {
    let mut alice = human("alice", &["Checkout API"]);
    alice["pagerduty_user_id"] = "PUA1B2C".into();
    let mut bob = human("bob", &["checkout api"]);
    bob["pagerduty_user_id"] = "PUB3D4E".into();
    vec![alice, bob]
}

fn post(app: &TestApp, body: &Value, webhook_id: &str) -> Resp {
    let body = serde_json::to_vec(body).unwrap();
    let sig = format!("v1={}", sign_hex(SECRET, &body));
    app.post(
        "/webhooks/pagerduty",
        &[
            ("X-PagerDuty-Signature", &sig),
            ("X-Webhook-Id", webhook_id),
        ],
        &body,
    )
}

/// Posts a fixture event (its webhook id is its event id) and returns the answer.
fn send(app: &TestApp, event: &str) -> Value {
    let body = fixture_json(&format!("pagerduty_v3_incident_{event}.json"));
    let id = body["event"]["id"].as_str().unwrap().to_string();
    let resp = post(app, &body, &id);
    assert!(
        resp.status == 200 || resp.status == 202,
        "{event}: {} {}",
        resp.status,
        resp.body
    );
    resp.json()
}

/// Sends the fixture's trigger; returns its work item id.
fn triggered_id(app: &TestApp) -> String {
    send(app, "triggered")["work_item_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The fixture's trigger for another incident (`P<NAME>`, event `ev-<name>`).
fn another_incident(name: &str, number: u64) -> Value {
    let mut body = fixture_json("pagerduty_v3_incident_triggered.json");
    body["event"]["id"] = format!("ev-{name}").into();
    body["event"]["data"]["id"] = format!("P{}", name.to_uppercase()).into();
    body["event"]["data"]["number"] = number.into();
    body
}

fn run_jobs(app: &TestApp) {
    drain(&app.state.pool, &*app.state.executor).unwrap();
}

fn history_kinds(view: &Value) -> Vec<String> {
    view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap().to_string())
        .collect()
}

fn sim_issue(app: &TestApp, id: &str) -> goliath::jira::SimIssueView {
    let key = app.work_item(id)["jira_key"]
        .as_str()
        .expect("the work item has a Jira issue")
        .to_string();
    app.sim().issue(&key).expect("the simulator has the issue")
}

fn open_items(app: &TestApp, human: &str) -> i64 {
    let resp = app.admin("GET", &format!("/admin/humans/{human}"), None);
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.json()["open_items"].as_i64().unwrap_or(0)
}

#[test]
fn updates_in_order_mirror_the_incident_and_follow_in_jira() {
    let app = app();
    app.roster(&checkout_humans());
    let created = send(&app, "triggered");
    assert_eq!(created["status"], "success", "{created}");
    assert_eq!(created["severity"], "sev2");
    let id = created["work_item_id"].as_str().unwrap().to_string();
    let owner = created["assignee_id"].as_str().unwrap().to_string();
    run_jobs(&app);
    assert_eq!(sim_issue(&app, &id).priority.as_deref(), Some("High"));
    assert_eq!(open_items(&app, &owner), 1);

    let ack = send(&app, "acknowledged");
    assert_eq!(ack["status"], "updated", "{ack}");
    assert_eq!(ack["pagerduty_status"], "acknowledged");

    let prio = send(&app, "priority_updated");
    assert_eq!(prio["severity"], "sev1", "P1 is sev1: {prio}");
    run_jobs(&app);
    let issue = sim_issue(&app, &id);
    assert_eq!(
        issue.priority.as_deref(),
        Some("Highest"),
        "the Jira priority follows the new severity"
    );
    assert!(issue.summary.starts_with("[SEV1] "), "{}", issue.summary);
    assert!(
        issue.labels.contains(&"sev1".to_string()),
        "{:?}",
        issue.labels
    );
    assert!(
        !issue.labels.contains(&"sev2".to_string()),
        "{:?}",
        issue.labels
    );
    assert!(
        issue.labels.iter().any(|l| l.starts_with("goliath-")),
        "Goliath's own label is kept: {:?}",
        issue.labels
    );

    let note = send(&app, "annotated");
    assert_eq!(note["status"], "updated", "{note}");
    run_jobs(&app);
    let comments = sim_issue(&app, &id).comments;
    assert!(
        comments
            .iter()
            .any(|c| c.contains("Rolled back checkout-api to v2.41.3")),
        "the note is a Jira comment: {comments:?}"
    );

    for event in [
        "responder_added",
        "reassigned",
        "unacknowledged",
        "escalated",
    ] {
        let answer = send(&app, event);
        assert_eq!(answer["status"], "updated", "{event}: {answer}");
    }
    let delegated = send(&app, "delegated");
    assert_eq!(delegated["pagerduty_status"], "triggered");
    let view = app.work_item(&id);
    assert_eq!(view["work_item"]["pagerduty_assignees"], json!(["PUD7H8J"]));
    assert_eq!(
        view["work_item"]["status"], "assigned",
        "still Goliath's owner's"
    );

    // Resolved in PagerDuty by Bob: the item is resolved, the owner's load is freed, the Jira
    // issue gets a comment and moves to Done.
    let resolved = send(&app, "resolved");
    assert_eq!(resolved["work_item_status"], "resolved", "{resolved}");
    assert_eq!(resolved["pagerduty_status"], "resolved");
    assert_eq!(open_items(&app, &owner), 0, "a resolved item is not open");
    run_jobs(&app);
    let issue = sim_issue(&app, &id);
    assert_eq!(issue.status, "Done");
    assert_eq!(issue.resolution.as_deref(), Some("Done"));
    assert!(
        issue
            .comments
            .iter()
            .any(|c| c.contains("Resolved in PagerDuty by Bob Okafor")),
        "{:?}",
        issue.comments
    );
    let view = app.work_item(&id);
    let outcomes = view["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.last().unwrap()["kind"], "resolved");
    assert_eq!(
        outcomes.last().unwrap()["human_id"],
        "bob",
        "the PagerDuty agent is credited"
    );

    // Reopened: the item is open again and so is the issue.
    let reopened = send(&app, "reopened");
    assert_eq!(reopened["work_item_status"], "reopened", "{reopened}");
    run_jobs(&app);
    assert_eq!(sim_issue(&app, &id).status, "To Do");

    let kinds = history_kinds(&app.work_item(&id));
    for kind in [
        "pagerduty_acknowledged",
        "pagerduty_priority_updated",
        "pagerduty_annotated",
        "pagerduty_responder_added",
        "pagerduty_reassigned",
        "pagerduty_unacknowledged",
        "pagerduty_escalated",
        "pagerduty_delegated",
        "pagerduty_resolved",
        "pagerduty_reopened",
        "jira_priority",
        "jira_comment",
        "jira_transition",
    ] {
        assert!(
            kinds.contains(&kind.to_string()),
            "{kind} missing: {kinds:?}"
        );
    }
    let mut conn = app.db.conn();
    let unfinished: i64 = jobs::table
        .filter(jobs::state.ne("done"))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(unfinished, 0, "every Jira job ran once and is done");
}

#[test]
fn an_older_event_is_recorded_but_rolls_nothing_back() {
    let app = app();
    app.roster(&checkout_humans());
    let id = triggered_id(&app);
    // The resolve (10:52) arrives before the escalation (10:10) and the acknowledgement (09:29).
    assert_eq!(send(&app, "resolved")["status"], "updated");
    for event in ["escalated", "acknowledged"] {
        let answer = send(&app, event);
        assert_eq!(answer["status"], "stale", "{event}: {answer}");
        assert_eq!(answer["reflects"], "2026-03-14T10:52:31.017Z");
    }
    let view = app.work_item(&id);
    let item = &view["work_item"];
    assert_eq!(item["status"], "resolved");
    assert_eq!(item["pagerduty_status"], "resolved");
    assert_eq!(item["pagerduty_assignees"], json!([]));
    assert_eq!(
        item["severity"], "sev1",
        "the resolve's P1, not the ack's none"
    );
    let stale: Vec<&Value> = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["detail"]["stale"] == true)
        .collect();
    assert_eq!(stale.len(), 2, "both recorded as stale");
}

#[test]
fn a_redelivered_update_changes_nothing() {
    let app = app();
    app.roster(&checkout_humans());
    let id = triggered_id(&app);
    let count = |app: &TestApp| -> (i64, i64) {
        let mut conn = app.db.conn();
        let events = work_item_events::table
            .filter(work_item_events::work_item_id.eq(&id))
            .count()
            .get_result(&mut conn)
            .unwrap();
        let jobs = jobs::table.count().get_result(&mut conn).unwrap();
        (events, jobs)
    };
    for event in ["annotated", "resolved"] {
        let first = send(&app, event);
        assert_eq!(first["status"], "updated", "{first}");
        let before = count(&app);
        let again = send(&app, event);
        assert_eq!(again["status"], "duplicate", "{again}");
        assert_eq!(count(&app), before, "{event} twice: no history, no job");
    }
    // The same event under a new webhook id (a replay) is not counted twice by the learner.
    let mut body = fixture_json("pagerduty_v3_incident_resolved.json");
    body["event"]["occurred_at"] = "2026-03-14T10:59:00.000Z".into();
    let answer = post(&app, &body, "another-webhook-id").json();
    assert_eq!(answer["status"], "updated", "{answer}");
    let outcomes = app.work_item(&id)["outcomes"].as_array().unwrap().len();
    assert_eq!(outcomes, 1, "one resolve outcome");
}

#[test]
fn an_update_for_an_unseen_incident_takes_the_incident_in_first() {
    let app = app();
    app.roster(&checkout_humans());
    // A note for an incident Goliath never saw carries no incident to make it from.
    let note = send(&app, "annotated");
    assert_eq!(note["status"], "unknown", "{note}");
    assert_eq!(note["incident_id"], INCIDENT);

    let resolved = send(&app, "resolved");
    assert_eq!(resolved["status"], "updated", "{resolved}");
    assert_eq!(resolved["work_item_status"], "resolved");
    let id = resolved["work_item_id"].as_str().unwrap().to_string();
    let view = app.work_item(&id);
    assert!(
        view["decision"]["primary"].is_string(),
        "decided like a trigger: {}",
        view["decision"]
    );
    let kinds = history_kinds(&view);
    assert_eq!(kinds.first().map(String::as_str), Some("received"));
    assert!(kinds.contains(&"decided".to_string()), "{kinds:?}");
    assert!(
        kinds.contains(&"pagerduty_resolved".to_string()),
        "{kinds:?}"
    );
    // Its Jira issue is created, then closed.
    run_jobs(&app);
    run_jobs_after_backoff(&app);
    assert_eq!(sim_issue(&app, &id).status, "Done");
}

/// Runs the jobs that wait for their issue to be created (they retry after a short pause).
fn run_jobs_after_backoff(app: &TestApp) {
    let mut conn = app.db.conn();
    diesel::update(jobs::table.filter(jobs::state.eq("queued")))
        .set(jobs::run_at.eq(diesel::dsl::now))
        .execute(&mut conn)
        .unwrap();
    run_jobs(app);
}

#[test]
fn a_resolve_in_pagerduty_frees_capacity_for_the_next_incident() {
    let app = app();
    let mut alice = capped("alice", &["checkout api"], 1);
    alice["pagerduty_user_id"] = "PUA1B2C".into();
    app.roster(&[alice]);
    let first = send(&app, "triggered");
    assert_eq!(first["assignee_id"], "alice");
    let second = another_incident("second", 1843);
    let answer = post(&app, &second, "wh-second").json();
    assert!(answer["assignee_id"].is_null(), "alice is full: {answer}");

    send(&app, "resolved");
    assert_eq!(open_items(&app, "alice"), 0);
    let third = another_incident("third", 1844);
    let answer = post(&app, &third, "wh-third").json();
    assert_eq!(answer["assignee_id"], "alice", "capacity freed: {answer}");
}

#[test]
fn service_names_match_whatever_their_case() {
    let app = app();
    app.roster(&[human("carol", &["PAYMENTS"])]);
    let listed = app.admin("GET", "/admin/humans/carol", None).json();
    assert_eq!(listed["services"], json!(["payments"]), "{listed}");
    let mut body = fixture_json("pagerduty_v3_incident_triggered.json");
    body["event"]["data"]["service"]["summary"] = "Payments".into();
    let answer = post(&app, &body, "wh-pay").json();
    assert_eq!(answer["service"], "payments");
    assert_eq!(answer["assignee_id"], "carol", "{answer}");
    let listed = app
        .admin("GET", "/admin/work-items?service=Payments", None)
        .json();
    assert_eq!(listed["total"], 1, "{listed}");
}

#[test]
fn a_waiting_item_is_assigned_as_soon_as_capacity_frees_or_someone_joins() {
    use crate::helpers::{AppOptions, TestDb};
    let app = TestApp::start_with(
        TestDb::new(),
        config_with(|s| s.pagerduty_webhook_secret = Some(SECRET.into()), &[]),
        AppOptions {
            workers: true,
            ..AppOptions::default()
        },
    );
    let mut alice = capped("alice", &["checkout api"], 1);
    alice["pagerduty_user_id"] = "PUA1B2C".into();
    app.roster(&[alice]);
    assert_eq!(send(&app, "triggered")["assignee_id"], "alice");
    let second = another_incident("second", 1843);
    let waiting = post(&app, &second, "wh-second").json();
    assert_eq!(waiting["work_item_status"], "unassigned", "{waiting}");
    let id = waiting["work_item_id"].as_str().unwrap().to_string();

    // Alice's first incident is resolved in PagerDuty: she is free, and the waiting item is
    // hers without anyone asking, with its Jira issue.
    send(&app, "resolved");
    let assigned = app.wait_until(std::time::Duration::from_secs(10), || {
        app.work_item(&id)["work_item"]["assignee_id"] == "alice"
    });
    assert!(assigned, "{}", app.work_item(&id));
    assert!(app.wait_until(std::time::Duration::from_secs(10), || {
        app.work_item(&id)["jira_key"].is_string()
    }));

    // A third waits until someone joins the roster.
    let third = another_incident("third", 1844);
    let waiting = post(&app, &third, "wh-third").json();
    assert_eq!(waiting["work_item_status"], "unassigned", "{waiting}");
    let third_id = waiting["work_item_id"].as_str().unwrap().to_string();
    app.roster(&[human("dana", &["Checkout API"])]);
    assert!(app.wait_until(std::time::Duration::from_secs(10), || {
        app.work_item(&third_id)["work_item"]["assignee_id"] == "dana"
    }));
    let kinds = history_kinds(&app.work_item(&third_id));
    assert_eq!(
        kinds.iter().filter(|k| *k == "unassigned").count(),
        1,
        "sweeps that found nobody wrote nothing: {kinds:?}"
    );
    assert_eq!(app.get("/readyz").json()["unassigned_work_items"], 0);
}

#[test]
fn nobody_eligible_goes_to_the_fallback_owner_of_the_service() {
    let app = TestApp::start(config_with(
        |s| {
            s.pagerduty_webhook_secret = Some(SECRET.into());
            s.fallback_owner = Some("lead".into());
        },
        &[("GOLIATH_FALLBACK_OWNER_CHECKOUT_API", "checkout-lead")],
    ));
    app.roster(&[
        human("lead", &["frontend"]),
        capped("checkout-lead", &["frontend"], 1),
    ]);
    let answer = send(&app, "triggered");
    assert_eq!(answer["assignee_id"], "checkout-lead", "{answer}");
    assert_eq!(answer["work_item_status"], "assigned");
    let id = answer["work_item_id"].as_str().unwrap();
    let view = app.work_item(id);
    assert!(
        view["decision"]["primary"].is_null(),
        "the model found nobody"
    );
    assert!(
        view["decision"]["explanation"]
            .as_str()
            .unwrap()
            .contains("fallback owner checkout-lead"),
        "{}",
        view["decision"]
    );
    assert!(history_kinds(&view).contains(&"fallback".to_string()));
    let replay = app.admin("POST", &format!("/admin/work-items/{id}/replay"), None);
    assert_eq!(replay.json()["matches"], true, "{}", replay.body);
    assert_eq!(
        view["jobs"].as_array().unwrap().len(),
        1,
        "its Jira issue is queued"
    );

    // Past the per-service fallback's cap it is still the last resort; another service's
    // incident goes to the default fallback.
    let mut other = fixture_json("pagerduty_v3_incident_triggered.json");
    other["event"]["data"]["id"] = "POTHER".into();
    other["event"]["data"]["service"]["summary"] = "Search".into();
    let answer = post(&app, &other, "wh-other").json();
    assert_eq!(answer["assignee_id"], "lead", "{answer}");
}

#[test]
fn a_status_filter_must_name_a_status() {
    let app = app();
    let resp = app.admin("GET", "/admin/work-items?status=undecided", None);
    assert_eq!(resp.status, 422, "{}", resp.body);
    assert!(resp.body.contains("unassigned"), "{}", resp.body);
}

/// The PagerDuty user of each checkout person.
fn pagerduty_user(human: &str) -> &'static str {
    match human {
        "alice" => "PUA1B2C",
        _ => "PUB3D4E",
    }
}

/// Makes the item's deadline pass now.
fn deadline_passes(app: &TestApp, id: &str) {
    let mut conn = app.db.conn();
    diesel::sql_query(
        "UPDATE work_items SET escalate_at = now() - interval '1 second' \
         WHERE id = $1 AND escalate_at IS NOT NULL",
    )
    .bind::<diesel::sql_types::Text, _>(id)
    .execute(&mut conn)
    .unwrap();
}

fn escalate(app: &TestApp) -> Vec<goliath::escalation::Escalation> {
    let mut conn = app.db.conn();
    app.state.escalator.escalate_due(&mut conn).unwrap()
}

#[test]
fn an_owner_who_does_not_act_in_time_loses_the_item_to_the_backup_once() {
    let app = app();
    app.roster(&checkout_humans());
    let answer = send(&app, "triggered");
    let id = answer["work_item_id"].as_str().unwrap().to_string();
    let owner = answer["assignee_id"].as_str().unwrap().to_string();
    let backup = if owner == "alice" { "bob" } else { "alice" };
    run_jobs(&app);
    let deadline: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(app.work_item(&id)["work_item"]["escalate_at"].clone())
            .expect("a sev2 item has a deadline");
    let left = deadline - chrono::Utc::now();
    assert!(
        left > chrono::Duration::minutes(29) && left <= chrono::Duration::minutes(30),
        "sev2 owners get 30 minutes: {left}"
    );
    assert!(escalate(&app).is_empty(), "nothing is due yet");

    deadline_passes(&app, &id);
    let done = escalate(&app);
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].from, owner);
    assert!(app
        .metric("goliath_escalations_total{result=\"escalated\"}")
        .is_some());
    assert_eq!(done[0].to.as_deref(), Some(backup));
    assert!(escalate(&app).is_empty(), "a deadline fires once");
    let view = app.work_item(&id);
    assert_eq!(view["work_item"]["assignee_id"], backup);
    assert!(
        view["work_item"]["escalate_at"].is_string(),
        "the backup gets their own deadline"
    );
    let outcome = view["outcomes"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(outcome["kind"], "escalated", "{outcome}");
    assert_eq!(
        outcome["human_id"],
        owner.as_str(),
        "a missed hand-off for the owner"
    );
    run_jobs(&app);
    assert_eq!(
        sim_issue(&app, &id).assignee,
        Some(format!("acct-{backup}")),
        "Jira follows"
    );

    // The backup does not act either; nobody is left, so it stays with them and says so.
    deadline_passes(&app, &id);
    let done = escalate(&app);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].to, None);
    let view = app.work_item(&id);
    assert_eq!(view["work_item"]["assignee_id"], backup);
    assert!(view["work_item"]["escalate_at"].is_null());
    assert!(history_kinds(&view).contains(&"escalation_exhausted".to_string()));
}

#[test]
fn an_owner_who_acknowledged_is_never_escalated() {
    let app = app();
    app.roster(&checkout_humans());
    let answer = send(&app, "triggered");
    let id = answer["work_item_id"].as_str().unwrap().to_string();
    let owner = answer["assignee_id"].as_str().unwrap().to_string();
    // Someone else acknowledging does not stop the clock.
    let other = if owner == "alice" { "bob" } else { "alice" };
    let mut ack = fixture_json("pagerduty_v3_incident_acknowledged.json");
    ack["event"]["agent"]["id"] = pagerduty_user(other).into();
    post(&app, &ack, "wh-ack-other");
    assert!(app.work_item(&id)["work_item"]["escalate_at"].is_string());
    // The owner acknowledging does.
    ack["event"]["id"] = "ev-ack-owner".into();
    ack["event"]["occurred_at"] = "2026-03-14T09:30:00.000Z".into();
    ack["event"]["agent"]["id"] = pagerduty_user(&owner).into();
    let answer = post(&app, &ack, "wh-ack-owner").json();
    assert_eq!(answer["status"], "updated", "{answer}");
    let view = app.work_item(&id);
    assert!(view["work_item"]["escalate_at"].is_null(), "{view}");
    assert!(history_kinds(&view).contains(&"owner_acted".to_string()));
    deadline_passes(&app, &id);
    assert!(escalate(&app).is_empty());
    assert_eq!(app.work_item(&id)["work_item"]["assignee_id"], owner);
}

#[test]
fn shadow_mode_assigns_nobody_learns_from_humans_and_reports_agreement() {
    use crate::helpers::{AppOptions, TestDb};
    use std::time::Duration;
    let app = TestApp::start_with(
        TestDb::new(),
        config_with(
            |s| s.pagerduty_webhook_secret = Some(SECRET.into()),
            &[("GOLIATH_MODE_CHECKOUT_API", "shadow")],
        ),
        AppOptions::default(),
    );
    app.roster(&checkout_humans());
    let answer = send(&app, "triggered");
    assert_eq!(answer["work_item_status"], "open", "{answer}");
    assert!(answer["assignee_id"].is_null(), "nobody assigned: {answer}");
    let id = answer["work_item_id"].as_str().unwrap().to_string();
    let view = app.work_item(&id);
    let recommended = view["decision"]["primary"].as_str().unwrap().to_string();
    assert_eq!(view["work_item"]["routing_mode"], "shadow");
    // A recommendation nobody acts on is never explored, and the stored input says so.
    assert_eq!(
        view["decision"]["inputs"]["input"]["recommend_only"], true,
        "{}",
        view["decision"]["inputs"]
    );
    assert!(
        view["work_item"]["escalate_at"].is_null(),
        "no owner, no deadline"
    );
    assert!(history_kinds(&view).contains(&"recommended".to_string()));
    run_jobs(&app);
    run_jobs_after_backoff(&app);
    let issue = sim_issue(&app, &id);
    assert_eq!(issue.assignee, None, "the Jira issue is unassigned");
    assert!(
        issue
            .comments
            .iter()
            .any(|c| c.contains(&format!("recommends {recommended}"))),
        "{:?}",
        issue.comments
    );
    assert_eq!(
        app.get("/readyz").json()["unassigned_work_items"],
        0,
        "a shadow item is not waiting for Goliath"
    );

    // People route it themselves: the other person takes it in Jira and resolves it.
    let other = if recommended == "alice" {
        "bob"
    } else {
        "alice"
    };
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
    assert_eq!(view["work_item"]["taken_by"], other);

    // A second incident the recommended person takes (acknowledging in PagerDuty) and resolves.
    let second = another_incident("second", 1843);
    let second_id = post(&app, &second, "wh-second").json()["work_item_id"]
        .as_str()
        .unwrap()
        .to_string();
    let second_pick = app.work_item(&second_id)["decision"]["primary"]
        .as_str()
        .unwrap()
        .to_string();
    for (event, at) in [
        ("acknowledged", "2026-03-14T09:30:00.000Z"),
        ("resolved", "2026-03-14T10:00:00.000Z"),
    ] {
        let mut body = fixture_json(&format!("pagerduty_v3_incident_{event}.json"));
        body["event"]["id"] = format!("ev-second-{event}").into();
        body["event"]["occurred_at"] = at.into();
        body["event"]["data"]["id"] = "PSECOND".into();
        body["event"]["agent"]["id"] = pagerduty_user(&second_pick).into();
        let answer = post(&app, &body, &format!("wh-second-{event}")).json();
        assert_eq!(answer["status"], "updated", "{answer}");
    }
    let shadow = app.admin("GET", "/admin/stats", None).json()["shadow"].clone();
    assert_eq!(shadow["items"], 2, "{shadow}");
    assert_eq!(shadow["taken"], 2, "{shadow}");
    assert_eq!(shadow["taken_as_recommended"], 1, "{shadow}");
    assert_eq!(shadow["resolved"], 2, "{shadow}");
    assert_eq!(shadow["resolved_as_recommended"], 1, "{shadow}");
    assert_eq!(shadow["resolved_agreement"], 0.5, "{shadow}");

    // Resolves in shadow mode teach ownership: nobody was assigned by Goliath.
    let stats = app.admin("GET", "/admin/stats", None).json();
    let owned: f64 = stats["stats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["human_id"] == other)
        .map(|s| s["state"]["owned"].as_f64().unwrap_or(0.0))
        .sum();
    assert!(owned > 0.0, "{}", stats["stats"]);

    // Another service is still assigned.
    let mut search = fixture_json("pagerduty_v3_incident_triggered.json");
    search["event"]["data"]["id"] = "PSEARCH".into();
    search["event"]["data"]["service"]["summary"] = "Search".into();
    app.roster(&[human("sam", &["search"])]);
    let answer = post(&app, &search, "wh-search").json();
    assert_eq!(answer["assignee_id"], "sam", "{answer}");
}

/// An update fixture (`resolved`, ...) for the incident `another_incident(name, _)` made.
fn update_of(event: &str, name: &str) -> Value {
    let mut body = fixture_json(&format!("pagerduty_v3_incident_{event}.json"));
    body["event"]["id"] = format!("ev-{event}-{name}").into();
    body["event"]["data"]["id"] = format!("P{}", name.to_uppercase()).into();
    body
}

#[test]
fn incidents_arriving_while_resolves_free_capacity_never_get_a_500() {
    let app = app();
    let humans: Vec<Value> = ["ana", "ben", "cat"]
        .iter()
        .map(|id| capped(id, &["checkout api"], 1))
        .collect();
    app.roster(&humans);
    let statuses = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..6 {
            let (app, statuses) = (&app, &statuses);
            s.spawn(move || {
                for n in 0..8 {
                    let name = format!("churn{t}x{n}");
                    // PagerDuty redelivers what was not answered 2xx; so does this test.
                    for (body, id) in [
                        (
                            another_incident(&name, 5000 + t * 100 + n),
                            format!("wh-t-{name}"),
                        ),
                        (update_of("resolved", &name), format!("wh-r-{name}")),
                    ] {
                        loop {
                            let resp = post(app, &body, &id);
                            statuses
                                .lock()
                                .unwrap()
                                .push((resp.status, resp.body.clone()));
                            if resp.status < 300 {
                                break;
                            }
                            assert_eq!(resp.status, 503, "{}", resp.body);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                        }
                    }
                }
            });
        }
    });
    let statuses = statuses.into_inner().unwrap();
    let errors: Vec<_> = statuses
        .iter()
        .filter(|(s, _)| *s >= 500 && *s != 503)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let mut conn = app.db.conn();
    use goliath::db::schema::work_items;
    let items: i64 = work_items::table.count().get_result(&mut conn).unwrap();
    assert_eq!(items, 48, "one work item per incident");
    // Every incident was resolved, so nobody holds anything.
    let loads = goliath::decision::open_loads(&mut conn).unwrap();
    assert!(loads.values().all(|&n| n == 0), "{loads:?}");
}

#[test]
fn a_pagerduty_reassign_moves_goliaths_owner_and_the_jira_assignee_and_teaches_the_hand_off() {
    let app = app();
    // Only Alice covers the service, so the decision names her; Bob works elsewhere.
    let mut alice = human("alice", &["Checkout API"]);
    alice["pagerduty_user_id"] = "PUA1B2C".into();
    let mut bob = human("bob", &["payments"]);
    bob["pagerduty_user_id"] = "PUB3D4E".into();
    app.roster(&[alice, bob]);
    let id = triggered_id(&app);
    assert_eq!(app.work_item(&id)["work_item"]["assignee_id"], "alice");
    run_jobs(&app);
    assert_eq!(sim_issue(&app, &id).assignee.as_deref(), Some("acct-alice"));

    // Alice reassigns the incident to Bob in PagerDuty.
    let moved = send(&app, "reassigned");
    assert_eq!(moved["status"], "updated", "{moved}");
    assert_eq!(moved["assignee_id"], "bob", "{moved}");
    assert_eq!(open_items(&app, "alice"), 0);
    assert_eq!(open_items(&app, "bob"), 1);
    run_jobs(&app);
    assert_eq!(
        sim_issue(&app, &id).assignee.as_deref(),
        Some("acct-bob"),
        "Jira follows PagerDuty"
    );
    let view = app.work_item(&id);
    let outcome = view["outcomes"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(outcome["kind"], "handed_off", "{outcome}");
    assert_eq!(outcome["human_id"], "alice", "{outcome}");

    // The same delivery again changes nothing; the escalation to someone Goliath does not know
    // leaves the owner where PagerDuty's known assignee put it.
    let body = fixture_json("pagerduty_v3_incident_reassigned.json");
    let again = post(&app, &body, body["event"]["id"].as_str().unwrap());
    assert_eq!(again.json()["status"], "duplicate", "{}", again.body);
    let escalated = send(&app, "escalated");
    assert_eq!(escalated["assignee_id"], "bob", "{escalated}");
    assert_eq!(open_items(&app, "bob"), 1);

    // Bob resolves it: resolved by the owner, and Jira still names him.
    let resolved = send(&app, "resolved");
    assert_eq!(resolved["work_item_status"], "resolved", "{resolved}");
    run_jobs(&app);
    assert_eq!(sim_issue(&app, &id).assignee.as_deref(), Some("acct-bob"));
    let handoffs = app.work_item(&id)["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == "handed_off")
        .count();
    assert_eq!(handoffs, 1, "one hand-off learned");
}
