//! Routing decisions and learning: who gets an incident, why, and what outcomes teach.

use chrono::{Duration as ChronoDuration, Utc};
use goliath::learner::{Applied, Outcome, OutcomeEvent};

use crate::helpers::{capped, config_with, human, TestApp};

pub(crate) fn app() -> TestApp {
    TestApp::start(config_with(|_| {}, &[]))
}

pub(crate) fn record(
    app: &TestApp,
    event_id: &str,
    item: &str,
    outcome: Outcome,
    minutes_later: i64,
) -> Applied {
    let mut conn = app.db.conn();
    let event = OutcomeEvent {
        event_id: event_id.into(),
        work_item_id: item.into(),
        outcome,
        occurred_at: Utc::now() + ChronoDuration::minutes(minutes_later),
    };
    app.state
        .learner
        .record(&mut conn, &event)
        .expect("outcome recorded")
}

#[test]
fn new_incident_is_routed_within_its_intake_request_and_explained() {
    let app = app();
    app.roster(&[
        human("ana", &["api"]),
        human("ben", &["api", "data"]),
        human("cy", &["frontend"]),
    ]);
    let mut off = human("dee", &["api"]);
    off["active"] = false.into();
    app.roster(&[off]);

    let resp = app.incident("INC1", "API-Service", "high");
    assert_eq!(resp["service"], "api");
    let owner = resp["assignee_id"]
        .as_str()
        .expect("routed in the intake request")
        .to_string();
    assert!(owner == "ana" || owner == "ben", "{owner}");

    let view = app.work_item(resp["work_item_id"].as_str().unwrap());
    assert_eq!(view["work_item"]["status"], "assigned");
    assert_eq!(view["decision"]["primary"], owner.as_str());
    let conf = view["decision"]["confidence"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&conf));
    let ranking = view["decision"]["ranking"].as_array().unwrap();
    assert_eq!(ranking.len(), 2, "ana and ben are eligible: {ranking:?}");
    // Stored as rows of values, shown with every field named.
    assert_eq!(ranking[0]["human_id"], owner.as_str());
    assert!(
        ranking[0]["components"]["success"].is_f64() && ranking[0]["p_success"].is_f64(),
        "{ranking:?}"
    );
    let excluded = view["decision"]["excluded"].as_array().unwrap();
    let excluded_ids: Vec<&str> = excluded
        .iter()
        .map(|e| e["human_id"].as_str().unwrap())
        .collect();
    assert!(
        excluded_ids.contains(&"cy") && excluded_ids.contains(&"dee"),
        "{excluded:?}"
    );
    assert!(!view["decision"]["explanation"].as_str().unwrap().is_empty());
    assert_eq!(
        view["jobs"].as_array().unwrap().len(),
        1,
        "one Jira job queued with the decision"
    );
}

#[test]
fn nobody_eligible_leaves_the_item_unassigned_until_someone_is() {
    let app = app();
    app.roster(&[human("cy", &["frontend"])]);
    let resp = app.incident("INC2", "data-service", "low");
    assert!(resp["assignee_id"].is_null());
    let id = resp["work_item_id"].as_str().unwrap();
    let view = app.work_item(id);
    assert_eq!(view["work_item"]["status"], "unassigned");
    assert!(!view["work_item"]["undecided_reason"]
        .as_str()
        .unwrap()
        .is_empty());
    assert!(
        view["jobs"].as_array().unwrap().is_empty(),
        "no Jira job without an owner"
    );
    assert_eq!(
        resp["work_item_status"], "unassigned",
        "the answer says so: {resp}"
    );
    let waiting = app
        .admin("GET", "/admin/work-items?status=unassigned", None)
        .json();
    assert_eq!(waiting["total"], 1);
    assert_eq!(
        app.get("/readyz").json()["unassigned_work_items"],
        1,
        "counted in /readyz"
    );

    app.roster(&[human("dan", &["data"])]);
    let decided = app.admin(
        "POST",
        "/decide",
        Some(serde_json::json!({"work_item_id": id})),
    );
    assert_eq!(decided.status, 200, "{}", decided.body);
    assert_eq!(decided.json()["primary_human_id"], "dan");
    let again = app
        .admin(
            "POST",
            "/decide",
            Some(serde_json::json!({"work_item_id": id})),
        )
        .json();
    assert_eq!(
        again["decided_at"],
        decided.json()["decided_at"],
        "deciding again returns the stored decision"
    );
    let missing = app.admin(
        "POST",
        "/decide",
        Some(serde_json::json!({"work_item_id": "wi-nope"})),
    );
    assert_eq!(missing.status, 404);
    let bad = app.admin("POST", "/decide", Some(serde_json::json!({"id": id})));
    assert_eq!(bad.status, 422);
}

#[test]
fn replay_recomputes_the_stored_decision() {
    let app = app();
    app.roster(&[
        human("ana", &["api"]),
        human("ben", &["api"]),
        human("cy", &[]),
    ]);
    for i in 0..5 {
        let resp = app.incident(
            &format!("R{i}"),
            "api-service",
            if i % 2 == 0 { "low" } else { "high" },
        );
        let id = resp["work_item_id"].as_str().unwrap();
        let report = app.admin("POST", &format!("/admin/work-items/{id}/replay"), None);
        assert_eq!(report.status, 200, "{}", report.body);
        assert_eq!(report.json()["matches"], true, "{}", report.body);
        let view = app.work_item(id);
        let inputs = &view["decision"]["inputs"];
        assert!(inputs["params"]["load_weight"].is_f64(), "{inputs}");
        assert!(
            inputs["input"]["candidates"][0]["human_id"].is_string(),
            "{inputs}"
        );
    }
    // Every decision names the one stored parameter set.
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Sets {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        sets: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        naming: i64,
    }
    let counted: Sets = diesel::sql_query(
        "SELECT (SELECT count(*) FROM model_params) AS sets, \
                (SELECT count(*) FROM decisions d JOIN model_params p \
                   ON p.id = d.inputs->>'params_id') AS naming",
    )
    .get_result(&mut app.db.conn())
    .unwrap();
    assert_eq!((counted.sets, counted.naming), (1, 5));
    assert_eq!(
        app.admin("POST", "/admin/work-items/wi-none/replay", None)
            .status,
        404
    );
}

#[test]
fn a_roster_change_made_in_sql_reaches_the_very_next_decision() {
    use diesel::prelude::*;
    let app = app();
    app.roster(&[human("ana", &["api"]), human("ben", &["api"])]);
    let first = app.incident("R1", "api-service", "low");
    let first_owner = first["assignee_id"].as_str().unwrap().to_string();
    let other = if first_owner == "ana" { "ben" } else { "ana" };
    // The next incident would go to `other` (no load yet). Decisions keep the roster between
    // batches: a change made straight in the database must still be seen.
    diesel::sql_query("UPDATE humans SET active = false WHERE id = $1")
        .bind::<diesel::sql_types::Text, _>(other)
        .execute(&mut app.db.conn())
        .unwrap();
    let second = app.incident("R2", "api-service", "low");
    assert_eq!(second["assignee_id"], first_owner.as_str(), "{second}");
    diesel::sql_query("UPDATE humans SET active = (id = $1)")
        .bind::<diesel::sql_types::Text, _>(other)
        .execute(&mut app.db.conn())
        .unwrap();
    let third = app.incident("R3", "api-service", "low");
    assert_eq!(third["assignee_id"], other, "{third}");
}

#[test]
fn a_load_change_made_outside_the_intake_reaches_the_very_next_decision() {
    use diesel::prelude::*;
    let app = app();
    let ana = capped("ana", &["api"], 1);
    let ben = capped("ben", &["api"], 1);
    app.roster(&[ana, ben]);
    let first = app.incident("K1", "api-service", "low");
    let second = app.incident("K2", "api-service", "low");
    let (a, b) = (&first["assignee_id"], &second["assignee_id"]);
    assert!(a.is_string() && b.is_string() && a != b, "{first} {second}");
    // The intake keeps loads between batches: both are at capacity now.
    let third = app.incident("K3", "api-service", "low");
    assert!(third["assignee_id"].is_null(), "{third}");
    // Resolved straight in the database: the first owner has room again, and the kept loads
    // must not hide it.
    let resolved = diesel::sql_query("UPDATE work_items SET status = 'resolved' WHERE id = $1")
        .bind::<diesel::sql_types::Text, _>(first["work_item_id"].as_str().unwrap())
        .execute(&mut app.db.conn())
        .unwrap();
    assert_eq!(resolved, 1);
    let fourth = app.incident("K4", "api-service", "low");
    assert_eq!(fourth["assignee_id"], *a, "{fourth}");
}

#[test]
fn capacity_excludes_humans_at_max_active() {
    let app = app();
    let ana = capped("ana", &["api"], 1);
    app.roster(&[ana]);
    let first = app.incident("C1", "api-service", "low");
    assert_eq!(first["assignee_id"], "ana");
    let second = app.incident("C2", "api-service", "low");
    assert!(
        second["assignee_id"].is_null(),
        "ana is at capacity: {second}"
    );
    let view = app.work_item(second["work_item_id"].as_str().unwrap());
    let reason = view["decision"]["excluded"][0].to_string();
    assert!(
        reason.to_lowercase().contains("capacity") || reason.contains("max_active"),
        "{reason}"
    );
}

#[test]
fn outcomes_change_the_very_next_decision() {
    let app = app();
    app.roster(&[human("ana", &["api"]), human("ben", &["api"])]);
    // Teach it: whoever gets an api incident and is `ana` hands it to ben, who resolves.
    for i in 0..12 {
        let resp = app.incident(&format!("L{i}"), "api-service", "high");
        let id = resp["work_item_id"].as_str().unwrap().to_string();
        let owner = resp["assignee_id"].as_str().unwrap().to_string();
        if owner == "ana" {
            let applied = record(
                &app,
                &format!("h{i}"),
                &id,
                Outcome::HandedOff {
                    from: Some("ana".into()),
                    to: Some("ben".into()),
                },
                5,
            );
            assert!(matches!(applied, Applied::Applied { .. }), "{applied:?}");
        }
        record(
            &app,
            &format!("r{i}"),
            &id,
            Outcome::Resolved {
                resolver: Some("ben".into()),
            },
            30,
        );
    }
    let next = app.incident("L-final", "api-service", "high");
    assert_eq!(
        next["assignee_id"], "ben",
        "the learner's evidence reaches routing"
    );
    let ben = api_stats_of(&app, "ben").expect("ben has stats");
    assert!(
        ben["summary"]["successes"].as_f64().unwrap() >= 10.0,
        "{ben}"
    );
    // The decision made on learned state is stored compactly, shown named, and replays.
    let id = next["work_item_id"].as_str().unwrap();
    let view = app.work_item(id);
    let candidates = view["decision"]["inputs"]["input"]["candidates"]
        .as_array()
        .unwrap();
    let ben_input = candidates.iter().find(|c| c["human_id"] == "ben").unwrap();
    assert!(
        ben_input["skill"][0]["state"]["successes"]
            .as_f64()
            .unwrap()
            > 0.0
            && ben_input["overall"]["updated_at"].is_string(),
        "{ben_input}"
    );
    // Each context tag's record, and the part of it on this service.
    let context = ben_input["context_skill"].as_array().unwrap();
    let tags = view["work_item"]["context"].as_array().unwrap();
    assert!(!tags.is_empty(), "{}", view["work_item"]);
    for tag in tags {
        for service in [serde_json::Value::Null, "api".into()] {
            assert!(
                context.iter().any(|r| r["tag"] == *tag
                    && r["service"] == service
                    && r["state"]["successes"].as_f64() > Some(0.0)),
                "{tag} {service}: {ben_input}"
            );
        }
    }
    let report = app.admin("POST", &format!("/admin/work-items/{id}/replay"), None);
    assert_eq!(report.json()["matches"], true, "{}", report.body);
}

#[test]
fn each_outcome_is_applied_exactly_once() {
    let app = app();
    app.roster(&[human("ana", &["api"]), human("ben", &["api"])]);
    let resp = app.incident("X1", "api-service", "low");
    let id = resp["work_item_id"].as_str().unwrap();
    let owner = resp["assignee_id"].as_str().unwrap().to_string();
    let other = if owner == "ana" { "ben" } else { "ana" };
    let first = record(
        &app,
        "same-event",
        id,
        Outcome::HandedOff {
            from: Some(owner.clone()),
            to: Some(other.into()),
        },
        1,
    );
    assert!(matches!(first, Applied::Applied { .. }));
    let again = record(
        &app,
        "same-event",
        id,
        Outcome::HandedOff {
            from: Some(owner.clone()),
            to: Some(other.into()),
        },
        1,
    );
    assert_eq!(again, Applied::Duplicate);
    let row = api_stats_of(&app, &owner).unwrap();
    assert_eq!(row["summary"]["failures"].as_f64().unwrap(), 1.0, "{row}");

    // Resolve, reopen (poor for the resolver), and the item's status follows.
    record(
        &app,
        "res",
        id,
        Outcome::Resolved {
            resolver: Some(other.into()),
        },
        20,
    );
    let view = app.work_item(id);
    assert_eq!(view["work_item"]["status"], "resolved");
    record(&app, "reo", id, Outcome::Reopened, 30);
    let view = app.work_item(id);
    assert_eq!(view["work_item"]["status"], "reopened");
    let kinds: Vec<&str> = view["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["handed_off", "resolved", "reopened"]);
    let history = view["history"].as_array().unwrap();
    assert!(history.len() >= 4, "{history:?}");
    // The first line comes from the delivery the item was made from.
    assert_eq!(history[0]["kind"], "received");
    assert_eq!(history[0]["detail"]["source"], "pagerduty");
    assert_eq!(
        history[0]["detail"]["incident_id"],
        view["work_item"]["pagerduty_incident_id"]
    );
    assert!(history[0]["detail"]["event_id"].is_string());
    assert_eq!(history[1]["kind"], "decided");
}

#[test]
fn concurrent_incidents_are_grouped_yet_each_answered_and_capacity_holds() {
    let app = app();
    let ana = capped("ana", &["api"], 3);
    let ben = capped("ben", &["api"], 3);
    app.roster(&[ana, ben]);
    let answers: Vec<serde_json::Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..24)
            .map(|i| {
                let app = &app;
                s.spawn(move || {
                    // Every incident twice: the second delivery must name the first's WorkItem.
                    let id = format!("G{}", i % 12);
                    let body = crate::helpers::incident_body(&id, "api-service", "low", Utc::now());
                    let r = app.post(
                        "/webhooks/pagerduty",
                        &[("X-Webhook-Id", &format!("d{i}"))],
                        &body,
                    );
                    assert_eq!(r.status, 200, "{}", r.body);
                    r.json()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let successes = answers.iter().filter(|a| a["status"] == "success").count();
    assert_eq!(successes, 12, "one success per incident");
    for a in &answers {
        let twin = answers
            .iter()
            .find(|b| b["incident_id"] == a["incident_id"] && b["status"] != a["status"]);
        assert!(
            twin.is_some_and(|t| t["work_item_id"] == a["work_item_id"]),
            "{a}"
        );
    }
    let listed = app.admin("GET", "/admin/work-items?limit=100", None).json();
    assert_eq!(listed["total"], 12);
    let assigned: Vec<&serde_json::Value> = listed["work_items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["status"] == "assigned")
        .collect();
    assert_eq!(assigned.len(), 6, "3 each, then nobody has capacity");
    for who in ["ana", "ben"] {
        assert_eq!(
            assigned.iter().filter(|w| w["assignee_id"] == who).count(),
            3,
            "{who}"
        );
    }
}

#[test]
fn open_loads_follow_every_status_change() {
    use diesel::prelude::*;
    let app = app();
    app.roster(&[human("ana", &["api"]), human("ben", &["api"])]);
    let loads = |app: &TestApp| -> std::collections::HashMap<String, u32> {
        let mut conn = app.db.conn();
        goliath::decision::open_loads(&mut conn).unwrap()
    };
    let counted = |app: &TestApp| -> std::collections::HashMap<String, u32> {
        use goliath::db::schema::work_items;
        let mut conn = app.db.conn();
        let rows: Vec<(Option<String>, i64)> = work_items::table
            .filter(work_items::status.eq_any(["assigned", "reopened"]))
            .filter(work_items::waiting.eq(false))
            .group_by(work_items::assignee_id)
            .select((work_items::assignee_id, diesel::dsl::count_star()))
            .load(&mut conn)
            .unwrap();
        rows.into_iter()
            .filter_map(|(h, n)| h.map(|h| (h, n as u32)))
            .collect()
    };
    let a = app.incident("OL1", "api-service", "low");
    let b = app.incident("OL2", "api-service", "low");
    assert_eq!(loads(&app), counted(&app));
    let (a_id, a_owner) = (
        a["work_item_id"].as_str().unwrap(),
        a["assignee_id"].as_str().unwrap().to_string(),
    );
    let other = if a_owner == "ana" { "ben" } else { "ana" };
    record(
        &app,
        "ol-h",
        a_id,
        Outcome::HandedOff {
            from: Some(a_owner.clone()),
            to: Some(other.into()),
        },
        1,
    );
    assert_eq!(loads(&app), counted(&app));
    record(
        &app,
        "ol-r",
        a_id,
        Outcome::Resolved {
            resolver: Some(other.into()),
        },
        2,
    );
    assert_eq!(loads(&app), counted(&app));
    record(&app, "ol-o", a_id, Outcome::Reopened, 3);
    assert_eq!(loads(&app), counted(&app));
    let b_id = b["work_item_id"].as_str().unwrap();
    record(
        &app,
        "ol-r2",
        b_id,
        Outcome::Resolved {
            resolver: b["assignee_id"].as_str().map(String::from),
        },
        4,
    );
    let now = loads(&app);
    assert_eq!(now, counted(&app));
    assert_eq!(
        now.values().sum::<u32>(),
        1,
        "only the reopened item is open: {now:?}"
    );
}

#[test]
fn resolutions_teach_ownership_and_the_on_call_rate() {
    let app = app();
    let mut ana = human("ana", &["api"]);
    ana["pagerduty_user_id"] = "PANA".into();
    app.roster(&[ana, human("ben", &["api"])]);
    // PagerDuty paged ana; whoever Goliath picks, the other person resolves it.
    let mut body: serde_json::Value = serde_json::from_slice(&crate::helpers::incident_body(
        "OC1",
        "api-service",
        "low",
        Utc::now(),
    ))
    .unwrap();
    body["event"]["data"]["assignees"] =
        serde_json::json!([{"id": "PANA", "type": "user_reference"}]);
    let resp = app
        .post(
            "/webhooks/pagerduty",
            &[],
            &serde_json::to_vec(&body).unwrap(),
        )
        .json();
    let id = resp["work_item_id"].as_str().unwrap();
    let owner = resp["assignee_id"].as_str().unwrap().to_string();
    let other = if owner == "ana" { "ben" } else { "ana" };
    record(
        &app,
        "oc-h",
        id,
        Outcome::HandedOff {
            from: Some(owner.clone()),
            to: Some(other.into()),
        },
        1,
    );
    let state_of = |who: &str| api_stats_of(&app, who).map(|r| r["state"].clone());
    let owned_of = |who: &str| {
        state_of(who)
            .and_then(|s| s["owned"].as_f64())
            .unwrap_or(0.0)
    };
    // Ownership counts as soon as they take it over, long before it is resolved.
    assert!(
        (owned_of(other) - 1.0).abs() < 1e-6,
        "taken over, so it counts as theirs at once: {:?}",
        state_of(other)
    );
    let taken = state_of(other).unwrap();
    assert!(
        (taken["take_ons"].as_f64().unwrap() - 1.0).abs() < 1e-6,
        "the load they took it on at is learned: {taken}"
    );
    assert_eq!(taken["take_on_load_sum"].as_f64(), Some(0.0), "{taken}");
    record(
        &app,
        "oc-r",
        id,
        Outcome::Resolved {
            resolver: Some(other.into()),
        },
        9,
    );

    let resolver_state = state_of(other).expect("the resolver has a state");
    assert!(
        (owned_of(other) - 1.0).abs() < 1e-3,
        "counted at the take-over (decayed for minutes since), not again at the resolve: {resolver_state}"
    );
    assert_eq!(resolver_state["successes"].as_f64(), Some(1.0));
    if owner != "ana" {
        // ana was paged but Goliath chose ben: whether ana kept it is learned.
        let ana_state = state_of("ana").expect("ana has a state");
        assert_eq!(
            ana_state["on_call_trials"].as_f64(),
            Some(1.0),
            "{ana_state}"
        );
        assert_eq!(ana_state["on_call_kept"].as_f64(), Some(1.0), "{ana_state}");
    }

    // Goliath's own pick resolving it is owned work of a kind of its own (`assigned`): a
    // decision counts it at the rate people take over what picks hand on.
    let resp = app.incident("OC2", "api-service", "low");
    let id = resp["work_item_id"].as_str().unwrap();
    let pick = resp["assignee_id"].as_str().unwrap().to_string();
    let field = |who: &str, name: &str| state_of(who).and_then(|s| s[name].as_f64()).unwrap_or(0.0);
    let (before, assigned_before) = (field(&pick, "owned"), field(&pick, "assigned"));
    record(
        &app,
        "oc-r2",
        id,
        Outcome::Resolved {
            resolver: Some(pick.clone()),
        },
        5,
    );
    let (after, assigned_after) = (field(&pick, "owned"), field(&pick, "assigned"));
    assert!(
        (after - before - 1.0).abs() < 1e-3,
        "owned {before} -> {after}"
    );
    assert!(
        (assigned_after - assigned_before - 1.0).abs() < 1e-3,
        "assigned {assigned_before} -> {assigned_after}"
    );

    // Taken over and then passed on: not theirs after all, so the ownership goes again.
    let resp = app.incident("OC3", "api-service", "low");
    let id = resp["work_item_id"].as_str().unwrap();
    let first = resp["assignee_id"].as_str().unwrap().to_string();
    let second = if first == "ana" { "ben" } else { "ana" };
    let before = owned_of(second);
    let hand = |event: &str, from: &str, to: &str, minutes: i64| {
        record(
            &app,
            event,
            id,
            Outcome::HandedOff {
                from: Some(from.into()),
                to: Some(to.into()),
            },
            minutes,
        )
    };
    hand("oc3-h1", &first, second, 20);
    assert!((owned_of(second) - before - 1.0).abs() < 1e-6);
    hand("oc3-h2", second, &first, 30);
    assert!(
        (owned_of(second) - before).abs() < 1e-6,
        "owned {before} -> {}",
        owned_of(second)
    );
}

/// What `/admin/stats?service=api` says the learner believes about `who`, if anything.
fn api_stats_of(app: &TestApp, who: &str) -> Option<serde_json::Value> {
    let stats = app.admin("GET", "/admin/stats?service=api", None).json();
    stats["stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["human_id"] == who)
        .cloned()
}

/// Inserts a new work item already assigned to ana, as an intake batch writes it.
pub(crate) fn assign_to_ana(
    conn: &mut goliath::db::PgConn,
    id: &str,
) -> diesel::QueryResult<usize> {
    use diesel::prelude::*;
    diesel::sql_query(
        "INSERT INTO work_items (id, type, service, severity, title, status, origin_system, \
         raw_payload, created_at, assignee_id) \
         VALUES ($1, 'incident', 'api', 'sev3', 't', 'assigned', 'TEST', '{}', now(), 'ana')",
    )
    .bind::<diesel::sql_types::Text, _>(id)
    .execute(conn)
}

#[test]
fn an_intake_batch_that_raced_past_capacity_is_decided_again() {
    use diesel::connection::SimpleConnection;
    let app = app();
    let ana = capped("ana", &["api"], 1);
    app.roster(&[ana]);
    // Another transaction gives ana her one slot and has not committed: the intake reads her
    // load as 0 and assigns her, and its capacity check waits for that transaction.
    let mut other = app.db.conn();
    other.batch_execute("BEGIN").unwrap();
    assign_to_ana(&mut other, "wi-other").unwrap();
    let answer = std::thread::scope(|s| {
        let intake = s.spawn(|| app.incident("RACE", "api-service", "low"));
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            !intake.is_finished(),
            "the intake waits for the other assignment"
        );
        other.batch_execute("COMMIT").unwrap();
        intake.join().unwrap()
    });
    assert!(
        answer["assignee_id"].is_null(),
        "decided again, ana is at capacity: {answer}"
    );
    let loads = goliath::decision::open_loads(&mut app.db.conn()).unwrap();
    assert_eq!(
        loads.get("ana"),
        Some(&1),
        "the refused batch counted nothing"
    );
}

#[test]
fn taking_an_issue_as_it_is_resolved_is_no_evidence_of_speed() {
    let app = app();
    app.roster(&[human("ana", &["api"]), human("ben", &["api"])]);
    let stats_of = |who: &str| {
        api_stats_of(&app, who)
            .map(|r| r["summary"].clone())
            .unwrap_or_default()
    };
    // Handed to the other person and resolved by them in the same instant (as a Jira event
    // carrying both the assignee change and the resolution).
    let resp = app.incident("T1", "api-service", "high");
    let id = resp["work_item_id"].as_str().unwrap().to_string();
    let owner = resp["assignee_id"].as_str().unwrap().to_string();
    let other = if owner == "ana" { "ben" } else { "ana" };
    let handed = Outcome::HandedOff {
        from: Some(owner.clone()),
        to: Some(other.into()),
    };
    record(&app, "t1-handed", &id, handed, 30);
    let resolved = Outcome::Resolved {
        resolver: Some(other.into()),
    };
    record(&app, "t1-resolved", &id, resolved, 30);
    let quick = stats_of(other);
    assert!(quick["successes"].as_f64().unwrap() > 0.0, "{quick}");
    assert!(quick["median_minutes_to_resolve"].is_null(), "{quick}");

    // Held for a while, then resolved: that time is evidence.
    let resp = app.incident("T2", "api-service", "high");
    let id = resp["work_item_id"].as_str().unwrap().to_string();
    let owner = resp["assignee_id"].as_str().unwrap().to_string();
    let resolved = Outcome::Resolved {
        resolver: Some(owner.clone()),
    };
    record(&app, "t2-resolved", &id, resolved, 45);
    let held = stats_of(&owner);
    let minutes = held["median_minutes_to_resolve"].as_f64();
    assert!(minutes.is_some_and(|m| m > 30.0), "{held}");
}

#[test]
fn each_pick_that_resolves_teaches_the_term_weights_once_and_decisions_store_them() {
    let app = app();
    app.roster(&[human("ana", &["api"]), human("ben", &["api"])]);
    let weights = |app: &TestApp| {
        let stats = app.admin("GET", "/admin/stats", None);
        assert_eq!(stats.status, 200, "{}", stats.body);
        stats.json()["term_weights"].clone()
    };
    let before = weights(&app);
    assert_eq!(before["fitted"], 0, "{before}");
    assert_eq!(before["experience"], 1.0, "{before}");
    // Half the picks are right; the others are handed on and resolved by the other person.
    for i in 0..6 {
        let resp = app.incident(&format!("W{i}"), "api-service", "high");
        let id = resp["work_item_id"].as_str().unwrap().to_string();
        let owner = resp["assignee_id"].as_str().unwrap().to_string();
        let other = if owner == "ana" { "ben" } else { "ana" };
        let resolver = if i % 2 == 0 {
            owner.clone()
        } else {
            record(
                &app,
                &format!("wh{i}"),
                &id,
                Outcome::HandedOff {
                    from: Some(owner.clone()),
                    to: Some(other.into()),
                },
                5,
            );
            other.to_string()
        };
        let resolved = Outcome::Resolved {
            resolver: Some(resolver),
        };
        let applied = record(&app, &format!("wr{i}"), &id, resolved.clone(), 30);
        assert!(matches!(applied, Applied::Applied { .. }), "{applied:?}");
        // The same delivery again, and a second resolve of a resolved item, fit nothing.
        assert_eq!(
            record(&app, &format!("wr{i}"), &id, resolved.clone(), 30),
            Applied::Duplicate
        );
        let again = record(&app, &format!("wr{i}-again"), &id, resolved, 31);
        assert!(matches!(again, Applied::NoChange { .. }), "{again:?}");
    }
    let after = weights(&app);
    assert_eq!(after["fitted"], 6, "{after}");
    assert_ne!(after["intercept"], 0.0, "{after}");
    // The next decision uses them, stores them with its input, and replays.
    let next = app.incident("W-next", "api-service", "high");
    let id = next["work_item_id"].as_str().unwrap();
    let view = app.work_item(id);
    let stored = &view["decision"]["inputs"]["input"]["weights"];
    assert_eq!(stored["fitted"], 6, "{}", view["decision"]["inputs"]);
    let intercept = |v: &serde_json::Value| v["intercept"].as_f64().unwrap();
    assert!(
        (intercept(stored) - intercept(&after)).abs() < 1e-3,
        "{stored} {after}"
    );
    let report = app.admin("POST", &format!("/admin/work-items/{id}/replay"), None);
    assert_eq!(report.json()["matches"], true, "{}", report.body);
}

#[test]
fn once_the_count_wins_the_disagreements_the_picks_follow_it_and_say_so() {
    let app = app();
    app.roster(&[human("ana", &["api"]), human("ben", &["api"])]);
    // The first incident is handed on and resolved by the other person: they own such work.
    let resp = app.incident("C1", "api-service", "high");
    let id = resp["work_item_id"].as_str().unwrap().to_string();
    let first = resp["assignee_id"].as_str().unwrap().to_string();
    let owner = if first == "ana" { "ben" } else { "ana" };
    let handed = Outcome::HandedOff {
        from: Some(first.clone()),
        to: Some(owner.into()),
    };
    record(&app, "c1-handed", &id, handed, 5);
    let resolved = Outcome::Resolved {
        resolver: Some(owner.into()),
    };
    record(&app, "c1-resolved", &id, resolved, 30);
    let stats =
        |app: &TestApp| app.admin("GET", "/admin/stats", None).json()["term_weights"].clone();
    assert_eq!(stats(&app)["follows"], "model", "{}", stats(&app));

    // Two resolves where the model picked `first` and the count `owner`, and `owner` resolved.
    let entry = |who: &str, score: f64, count: f64| {
        serde_json::json!({
            "human_id": who, "score": score, "count": count,
            "components": {"success": -0.5, "speed": 0.0, "load": 0.0, "on_call": 0.0,
                           "experience": -0.7, "exploration": 0.0},
            "p_success": 0.6, "expected_seconds": 3600.0, "evidence": 1.0
        })
    };
    let decision = goliath::decision::StoredDecision {
        work_item_id: id.clone(),
        primary_human_id: Some(first.clone()),
        backup_ids: vec![owner.to_string()],
        confidence: 0.4,
        explanation: String::new(),
        undecided_reason: None,
        ranking: serde_json::json!([entry(&first, 1.0, 0.0), entry(owner, 0.5, 3.0)]),
        excluded: serde_json::json!([]),
        inputs: serde_json::json!({"input": {}}),
        model_version: String::new(),
        decided_at: Utc::now(),
    };
    let mut conn = app.db.conn();
    let half_life = 60.0;
    for _ in 0..2 {
        let fitted = goliath::learner::weights::fit_pick(
            &mut conn,
            &decision,
            Some(owner),
            Utc::now(),
            half_life,
        )
        .expect("fitted");
        assert!(fitted);
    }
    let after = stats(&app);
    let count_right = after["count_right"].as_f64().unwrap();
    assert!((count_right - 2.0).abs() < 1e-3, "{after}");
    assert_eq!(after["model_right"], 0.0, "{after}");
    assert_eq!(after["follows"], "count", "{after}");

    // The next decision follows the count, says so, and stores the tallies it used.
    let next = app.incident("C2", "api-service", "high");
    assert_eq!(next["assignee_id"], owner, "{next}");
    let id = next["work_item_id"].as_str().unwrap();
    let view = app.work_item(id);
    let explanation = view["decision"]["explanation"].as_str().unwrap();
    assert!(explanation.contains("follow the count"), "{explanation}");
    assert!(
        explanation.starts_with(&format!("{owner} owns the most")),
        "{explanation}"
    );
    let ranking = &view["decision"]["ranking"];
    assert!(ranking[0]["count"].as_f64().unwrap() > 0.0, "{ranking}");
    let stored = &view["decision"]["inputs"]["input"]["weights"];
    assert!(
        (stored["count_right"].as_f64().unwrap() - 2.0).abs() < 1e-3,
        "{stored}"
    );
    let report = app.admin("POST", &format!("/admin/work-items/{id}/replay"), None);
    assert_eq!(report.json()["matches"], true, "{}", report.body);
}
