//! The admin API: the token, the roster, work-item listings, overrides, capacity rules for admins, metrics.

use crate::helpers::{admin_request, capped, config_with, history_of, human, TestApp};

use crate::routing::app;

#[test]
fn admin_override_reassigns_counts_as_a_hand_off_and_queues_the_jira_change() {
    let app = app();
    app.roster(&[human("ana", &["api"]), human("ben", &["api"])]);
    let resp = app.incident("O1", "api-service", "low");
    let id = resp["work_item_id"].as_str().unwrap();
    let owner = resp["assignee_id"].as_str().unwrap().to_string();
    let other = if owner == "ana" { "ben" } else { "ana" };
    let r = app.admin(
        "POST",
        &format!("/admin/work-items/{id}/assign"),
        Some(serde_json::json!({"human_id": other, "reason": "knows the cache"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let view = app.work_item(id);
    assert_eq!(view["work_item"]["assignee_id"], other);
    assert_eq!(view["outcomes"][0]["kind"], "override");
    assert_eq!(view["outcomes"][0]["human_id"], owner.as_str());
    let kinds: Vec<&str> = view["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["jira_create_issue", "jira_assign"]);
    let unknown = app.admin(
        "POST",
        &format!("/admin/work-items/{id}/assign"),
        Some(serde_json::json!({"human_id": "zed"})),
    );
    assert_eq!(unknown.status, 422, "{}", unknown.body);
    assert!(unknown.body.contains("human_id"));
}

#[test]
fn admin_routes_need_the_token() {
    let app = app();
    let url = app.url("/admin/humans");
    assert_eq!(admin_request(&url, "GET", None, None).status, 401);
    assert_eq!(admin_request(&url, "GET", None, Some("wrong")).status, 401);
    assert_eq!(
        admin_request(
            &app.url("/decide"),
            "POST",
            Some(serde_json::json!({"work_item_id": "x"})),
            None
        )
        .status,
        401
    );

    let closed = TestApp::start(config_with(|s| s.admin_token = None, &[]));
    let resp = admin_request(&closed.url("/admin/humans"), "GET", None, Some("anything"));
    assert_eq!(resp.status, 401);
    assert!(
        resp.body.contains("GOLIATH_ADMIN_TOKEN"),
        "says how to enable: {}",
        resp.body
    );
}

#[test]
fn roster_crud_and_validation() {
    let app = app();
    let created = app.admin("POST", "/admin/humans", Some(human("ana", &["api"])));
    assert_eq!(created.status, 200, "{}", created.body);
    let mut changed = human("ana", &["api", "data"]);
    changed["max_active"] = 4.into();
    let put = app.admin("PUT", "/admin/humans/ana", Some(changed));
    assert_eq!(put.status, 200, "{}", put.body);
    let got = app.admin("GET", "/admin/humans/ana", None).json();
    assert_eq!(got["services"], serde_json::json!(["api", "data"]));
    assert_eq!(got["max_active"], 4);

    let mut bad = human("bob", &[]);
    bad["email"] = "not-an-email".into();
    let resp = app.admin("POST", "/admin/humans", Some(bad.clone()));
    assert_eq!(resp.status, 422);
    assert!(resp.body.contains("email"), "{}", resp.body);

    let bulk = app.admin(
        "POST",
        "/admin/humans/import",
        Some(serde_json::json!([human("cy", &[]), bad])),
    );
    assert_eq!(bulk.status, 422);
    assert!(bulk.body.contains("[1].email"), "{}", bulk.body);
    assert_eq!(
        app.admin("GET", "/admin/humans/cy", None).status,
        404,
        "a bad import stores nothing"
    );

    let unknown_field = app.admin(
        "POST",
        "/admin/humans",
        Some(serde_json::json!({"id": "x", "nickname": "y"})),
    );
    assert_eq!(unknown_field.status, 422);
    let malformed = app.post(
        "/admin/humans",
        &[("Authorization", "Bearer test-admin-token")],
        b"{oops",
    );
    assert_eq!(malformed.status, 400);

    let list = app.admin("GET", "/admin/humans", None).json();
    assert_eq!(list["humans"].as_array().unwrap().len(), 1);
    assert_eq!(app.admin("DELETE", "/admin/humans/ana", None).status, 204);
    assert_eq!(app.admin("DELETE", "/admin/humans/ana", None).status, 404);
}

#[test]
fn work_item_listing_filters_and_pages() {
    let app = app();
    app.roster(&[human("ana", &[])]);
    for i in 0..5 {
        app.incident(
            &format!("P{i}"),
            if i < 3 { "api-service" } else { "data-service" },
            if i % 2 == 0 { "high" } else { "low" },
        );
    }
    let api = app
        .admin("GET", "/admin/work-items?service=api", None)
        .json();
    assert_eq!(api["total"], 3);
    let page = app
        .admin("GET", "/admin/work-items?limit=2&offset=2", None)
        .json();
    assert_eq!(page["work_items"].as_array().unwrap().len(), 2);
    assert_eq!(page["total"], 5);
    let sev = app
        .admin("GET", "/admin/work-items?severity=sev2", None)
        .json();
    assert_eq!(sev["total"], 3);
    // The same severity typed in capitals matches; one that cannot match is refused by name.
    let upper = app
        .admin("GET", "/admin/work-items?severity=SEV2", None)
        .json();
    assert_eq!(upper["total"], 3, "{upper}");
    let bogus = app.admin("GET", "/admin/work-items?severity=sev9", None);
    assert_eq!(bogus.status, 422, "{}", bogus.body);
    assert!(bogus.body.contains("`severity`"), "{}", bogus.body);
    assert_eq!(
        app.admin("GET", "/admin/work-items?limit=0", None).status,
        422
    );
    assert_eq!(
        app.admin("GET", "/admin/work-items/wi-nope", None).status,
        404
    );
}

#[test]
fn work_item_pages_come_newest_first_without_sorting_the_table() {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct PlanLine {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let app = app();
    app.roster(&[human("ana", &[])]);
    let made: Vec<String> = (0..3)
        .map(|i| app.incident(&format!("P{i}"), "api-service", "high")["work_item_id"].to_string())
        .collect();
    let listed = app.admin("GET", "/admin/work-items", None).json();
    let order: Vec<String> = listed["work_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].to_string())
        .collect();
    assert_eq!(order, made.iter().rev().cloned().collect::<Vec<_>>());

    // With sorting priced out, a plan still sorts only if no index gives the list's order.
    let mut conn = app.db.conn();
    diesel::sql_query("SET enable_sort = off")
        .execute(&mut conn)
        .unwrap();
    for filter in ["", "WHERE service = 'api'", "WHERE status = 'assigned'"] {
        let plan: Vec<PlanLine> = diesel::sql_query(format!(
            "EXPLAIN SELECT * FROM work_items {filter} \
             ORDER BY received_at DESC, id LIMIT 50 OFFSET 100"
        ))
        .load(&mut conn)
        .unwrap();
        let plan: Vec<&str> = plan.iter().map(|l| l.line.as_str()).collect();
        assert!(
            !plan.iter().any(|l| l.contains("Sort")),
            "the page {filter} sorts: {plan:#?}"
        );
    }
}

#[test]
fn capacity_holds_for_admins_unless_forced_and_over_cap_hand_offs_are_surfaced() {
    use diesel::prelude::*;
    use goliath::db::schema::work_items;
    let app = app();
    // cap alone takes the first incident and is full; free, added after, takes the second.
    app.roster(&[capped("cap", &["api"], 1)]);
    let on_cap = app.incident("CAP1", "api-service", "low");
    assert_eq!(on_cap["assignee_id"], "cap", "{on_cap}");
    app.roster(&[human("free", &["api"])]);
    let other = app.incident("CAP2", "api-service", "low");
    assert_eq!(other["assignee_id"], "free", "{other}");
    let other_id = other["work_item_id"].as_str().unwrap().to_string();
    let assign = |force: bool| {
        app.admin(
            "POST",
            &format!("/admin/work-items/{other_id}/assign"),
            Some(serde_json::json!({"human_id": "cap", "force": force})),
        )
    };
    let refused = assign(false);
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.error_code(), "over_capacity");
    assert!(refused.body.contains("force"), "{}", refused.body);
    assert_eq!(
        app.work_item(&other_id)["work_item"]["assignee_id"],
        "free",
        "nothing changed"
    );
    let forced = assign(true);
    assert_eq!(forced.status, 200, "{}", forced.body);
    let view = app.work_item(&other_id);
    let over = history_of(&view, "over_capacity");
    assert_eq!(over.len(), 1, "{}", view["history"]);
    assert_eq!(over[0]["detail"]["open_items"], 2);
    assert_eq!(app.get("/readyz").json()["humans_over_capacity"], 1);

    // A resolved item is not reopened by an override.
    let mut conn = app.db.conn();
    diesel::update(work_items::table.find(&other_id))
        .set(work_items::status.eq("resolved"))
        .execute(&mut conn)
        .unwrap();
    let resolved = app.admin(
        "POST",
        &format!("/admin/work-items/{other_id}/assign"),
        Some(serde_json::json!({"human_id": "free"})),
    );
    assert_eq!(resolved.status, 409, "{}", resolved.body);
    assert_eq!(resolved.error_code(), "work_item_resolved");
}

#[test]
fn an_admin_override_records_who_made_it() {
    let app = app();
    app.roster(&[human("ana", &["api"]), human("ben", &["api"])]);
    let resp = app.incident("ACT1", "api-service", "low");
    let id = resp["work_item_id"].as_str().unwrap().to_string();
    let other = if resp["assignee_id"] == "ana" {
        "ben"
    } else {
        "ana"
    };
    let answer = crate::helpers::agent()
        .post(&app.url(&format!("/admin/work-items/{id}/assign")))
        .header(
            "Authorization",
            &format!("Bearer {}", crate::helpers::ADMIN_TOKEN),
        )
        .header("X-Goliath-Actor", "oncall-lead@example.com")
        .send_json(serde_json::json!({"human_id": other, "reason": "knows it"}))
        .unwrap();
    assert_eq!(answer.status(), 200);
    let view = app.work_item(&id);
    let line = history_of(&view, "override")[0].clone();
    assert_eq!(line["detail"]["actor"], "oncall-lead@example.com", "{line}");
    // Without the header, the token's holder.
    let back = if other == "ana" { "ben" } else { "ana" };
    app.admin(
        "POST",
        &format!("/admin/work-items/{id}/assign"),
        Some(serde_json::json!({"human_id": back})),
    );
    let view = app.work_item(&id);
    let actors: Vec<&str> = history_of(&view, "override")
        .iter()
        .map(|h| h["detail"]["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors, vec!["oncall-lead@example.com", "admin"]);
}

#[test]
fn metrics_are_served_in_the_prometheus_format_behind_the_admin_token() {
    let app = app();
    app.roster(&[human("ana", &["api"])]);
    app.incident("MET1", "api-service", "low");
    let open = app.get("/metrics");
    assert_eq!(open.status, 401, "behind the admin token");
    let resp = app.admin("GET", "/metrics", None);
    assert_eq!(resp.status, 200);
    for needle in [
        "goliath_webhooks_total{outcome=\"success\",source=\"pagerduty\"}",
        "goliath_decisions_total{outcome=\"assigned\"}",
        "goliath_intake_seconds_bucket",
        "goliath_decision_confidence_count",
        "goliath_jobs{state=\"queued\"}",
        "goliath_unassigned_work_items",
        "goliath_db_pool_connections{state=\"in_use\"}",
    ] {
        assert!(
            resp.body.contains(needle),
            "{needle} missing:\n{}",
            resp.body
        );
    }
}
