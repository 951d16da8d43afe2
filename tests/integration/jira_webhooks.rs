//! Jira webhooks: signatures, redelivery, issues Goliath did not create, and outcomes learned.

use goliath::jobs::worker::drain;

use crate::helpers::human;
use crate::jobs::{app, jira_key, JIRA_SECRET};

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
    app.roster(&[human("ana", &["api"])]);
    let id = app.incident("W1", "api-service", "low")["work_item_id"]
        .as_str()
        .unwrap()
        .to_string();
    drain(&app.state.pool, &*app.state.executor).unwrap();
    let key = jira_key(&app, &id).unwrap();
    let mut hook = crate::helpers::fixture_json("jira_webhook_issue_resolved.json");
    hook["issue"]["key"] = key.clone().into();
    hook["issue"]["fields"]["labels"] = serde_json::json!([format!("goliath-{id}")]);
    hook["issue"]["fields"]["assignee"]["accountId"] = "acct-ana".into();
    let body = serde_json::to_vec(&hook).unwrap();
    let sig = format!(
        "sha256={}",
        goliath::signature::sign_hex(JIRA_SECRET, &body)
    );
    let headers = [
        ("X-Hub-Signature", sig.as_str()),
        ("X-Atlassian-Webhook-Identifier", "delivery-77"),
    ];
    let first = app.post("/webhooks/jira", &headers, &body);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json()["status"], "applied");
    let second = app.post("/webhooks/jira", &headers, &body);
    assert_eq!(second.json()["status"], "duplicate");
    let view = app.work_item(&id);
    assert_eq!(view["work_item"]["status"], "resolved");
    assert_eq!(view["outcomes"].as_array().unwrap().len(), 1);
}
