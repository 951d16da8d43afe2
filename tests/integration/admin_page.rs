//! The admin page: its login, CSRF protection, what the item, list and people pages say, and,
//! in a real headless Chromium, the flows a person uses (log in, open an item, override it,
//! retry a dead job).

use std::time::Duration;

use diesel::prelude::*;

use crate::helpers::browser::{self, Browser};
use crate::helpers::{config_with, history_of, human, incident_body, TestApp, ADMIN_TOKEN};

/// An agent that shows redirects instead of following them.
fn plain() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

struct Page {
    status: u16,
    location: String,
    set_cookie: String,
    csp: String,
    body: String,
}

fn read(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Page {
    let mut resp = resp.expect("request sent");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (location, set_cookie, csp) = (
        header("location"),
        header("set-cookie"),
        header("content-security-policy"),
    );
    Page {
        status: resp.status().as_u16(),
        location,
        set_cookie,
        csp,
        body: resp.body_mut().read_to_string().unwrap_or_default(),
    }
}

fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> Page {
    let mut req = plain().get(&app.url(path));
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    read(req.call())
}

fn post_form(app: &TestApp, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Page {
    let mut req = plain().post(&app.url(path));
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    read(req.send_form(form.iter().copied()))
}

/// The `name=value` part of a Set-Cookie header.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_string()
}

/// The CSRF token a page's forms carry.
fn csrf_of(body: &str) -> String {
    let at = body
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    body[at..].split('"').next().unwrap().to_string()
}

fn owner(app: &TestApp, id: &str) -> serde_json::Value {
    app.work_item(id)["work_item"]["assignee_id"].clone()
}

#[test]
fn an_item_waiting_on_someone_else_says_so() {
    use goliath::db::schema::work_items;
    let app = TestApp::start(config_with(|_| {}, &[]));
    app.roster(&[human("ana", &["api"])]);
    let id = app.incident("UIW", "api-service", "low")["work_item_id"]
        .as_str()
        .unwrap()
        .to_string();
    let login = post_form(&app, "/admin/ui/login", None, &[("token", ADMIN_TOKEN)]);
    let cookie = cookie_pair(&login.set_cookie);
    let shown = |app: &TestApp| {
        let list = get(app, "/admin/ui/items", Some(&cookie)).body;
        let page = get(app, &format!("/admin/ui/items/{id}"), Some(&cookie)).body;
        (
            list.contains("(waiting)"),
            page.contains("waiting (no load)"),
        )
    };
    assert_eq!(shown(&app), (false, false));
    diesel::update(work_items::table.find(&id))
        .set(work_items::waiting.eq(true))
        .execute(&mut app.db.conn())
        .unwrap();
    assert_eq!(shown(&app), (true, true));
}

#[test]
fn the_page_needs_a_login_and_every_form_its_csrf_token() {
    let app = TestApp::start(config_with(|_| {}, &[]));
    app.roster(&[human("ana", &["api"]), human("ben", &["web"])]);
    let item = app.incident("UI1", "api-service", "low");
    let id = item["work_item_id"].as_str().unwrap().to_string();
    assert_eq!(item["assignee_id"], "ana", "{item}");

    let anonymous = get(&app, "/admin/ui/items", None);
    assert_eq!(anonymous.status, 303);
    assert_eq!(anonymous.location, "/admin/ui/login");
    let wrong = post_form(
        &app,
        "/admin/ui/login",
        None,
        &[("token", "not-the-token-at-all")],
    );
    assert_eq!(wrong.status, 401);
    assert!(wrong.set_cookie.is_empty(), "{}", wrong.set_cookie);

    let login = post_form(&app, "/admin/ui/login", None, &[("token", ADMIN_TOKEN)]);
    assert_eq!(login.status, 303);
    assert_eq!(login.location, "/admin/ui/items");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin/ui"] {
        assert!(login.set_cookie.contains(attribute), "{}", login.set_cookie);
    }
    let cookie = cookie_pair(&login.set_cookie);
    assert!(
        !cookie.contains(ADMIN_TOKEN),
        "the cookie never holds the token"
    );

    let list = get(&app, "/admin/ui/items", Some(&cookie));
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains(&id), "{}", list.body);
    assert!(list.csp.contains("default-src 'none'"), "{}", list.csp);
    assert!(list.body.contains("<svg"), "the trend charts are drawn");
    let tampered = format!("{}0", cookie);
    assert_eq!(get(&app, "/admin/ui/items", Some(&tampered)).status, 303);

    // A form without the session's CSRF token changes nothing.
    let page = get(&app, &format!("/admin/ui/items/{id}"), Some(&cookie));
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = csrf_of(&page.body);
    let path = format!("/admin/ui/items/{id}/assign");
    let forged = post_form(
        &app,
        &path,
        Some(&cookie),
        &[("csrf", "forged"), ("human_id", "ben")],
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    let no_session = post_form(&app, &path, None, &[("csrf", &csrf), ("human_id", "ben")]);
    assert_eq!(no_session.status, 303);
    assert_eq!(owner(&app, &id), "ana");

    let done = post_form(
        &app,
        &path,
        Some(&cookie),
        &[
            ("csrf", &csrf),
            ("human_id", "ben"),
            ("reason", "knows the web tier"),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(owner(&app, &id), "ben");
    let view = app.work_item(&id);
    let override_line = history_of(&view, "override")
        .into_iter()
        .next()
        .cloned()
        .unwrap_or_else(|| panic!("an override line: {}", view["history"]));
    assert_eq!(
        override_line["detail"]["actor"], "admin page",
        "{override_line}"
    );
    // Today's hand-off now shows on the hand-off rate chart.
    let list = get(&app, "/admin/ui/items", Some(&cookie));
    assert!(list.body.contains("<circle"), "{}", list.body);

    // Refusals render as a page naming the problem, and change nothing.
    let unknown = post_form(
        &app,
        &path,
        Some(&cookie),
        &[("csrf", &csrf), ("human_id", "nobody")],
    );
    assert_eq!(unknown.status, 422, "{}", unknown.body);
    assert!(unknown.body.contains("nobody"), "{}", unknown.body);
    assert_eq!(owner(&app, &id), "ben");

    let out = post_form(&app, "/admin/ui/logout", Some(&cookie), &[("csrf", &csrf)]);
    assert_eq!(out.status, 303);
    assert!(out.set_cookie.contains("Max-Age=0"), "{}", out.set_cookie);
}

#[test]
fn without_an_admin_token_the_page_is_closed() {
    let app = TestApp::start(config_with(|s| s.admin_token = None, &[]));
    let login = get(&app, "/admin/ui/login", None);
    assert_eq!(login.status, 200);
    assert!(login.body.contains("GOLIATH_ADMIN_TOKEN"), "{}", login.body);
    let attempt = post_form(&app, "/admin/ui/login", None, &[("token", "")]);
    assert_eq!(attempt.status, 401);
    assert_eq!(get(&app, "/admin/ui/items", None).status, 303);
}

/// A NUL character (`%00`) in the assign form's person or reason cannot be stored: the form is
/// refused with the page's error rendering, naming the field, and nothing changes.
#[test]
fn the_assign_form_refuses_a_nul_character_and_changes_nothing() {
    use goliath::db::schema::{outcomes, work_item_events};
    let app = TestApp::start(config_with(|_| {}, &[]));
    app.roster(&[human("ana", &["api"]), human("ben", &["web"])]);
    let id = app.incident("UINUL", "api-service", "low")["work_item_id"]
        .as_str()
        .unwrap()
        .to_string();
    let login = post_form(&app, "/admin/ui/login", None, &[("token", ADMIN_TOKEN)]);
    let cookie = cookie_pair(&login.set_cookie);
    let page = get(&app, &format!("/admin/ui/items/{id}"), Some(&cookie));
    let csrf = csrf_of(&page.body);
    let path = format!("/admin/ui/items/{id}/assign");
    let written = |app: &TestApp| -> (i64, i64) {
        let mut conn = app.db.conn();
        (
            outcomes::table.count().get_result(&mut conn).unwrap(),
            work_item_events::table
                .count()
                .get_result(&mut conn)
                .unwrap(),
        )
    };
    let before = written(&app);
    for (human_id, reason, names) in [
        ("ben\0", "", "human_id"),
        ("ben", "knows\0it", "reason"),
        ("\0", "\0", "human_id"),
    ] {
        let refused = post_form(
            &app,
            &path,
            Some(&cookie),
            &[("csrf", &csrf), ("human_id", human_id), ("reason", reason)],
        );
        assert_eq!(
            refused.status, 422,
            "{human_id:?} {reason:?}: {}",
            refused.body
        );
        assert!(refused.body.contains(names), "{}", refused.body);
        assert!(refused.body.contains("NUL"), "{}", refused.body);
    }
    assert_eq!(owner(&app, &id), "ana");
    assert_eq!(written(&app), before, "nothing recorded");
}

/// A logged-in session's cookie.
fn log_in(app: &TestApp) -> String {
    let login = post_form(app, "/admin/ui/login", None, &[("token", ADMIN_TOKEN)]);
    assert_eq!(login.status, 303, "{}", login.body);
    cookie_pair(&login.set_cookie)
}

/// The text of an HTML fragment, tags left out.
fn words(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// The first `<li class="{kind}">` line of the page's timeline, as HTML.
fn timeline_line<'a>(body: &'a str, kind: &str) -> &'a str {
    let start = body
        .find(&format!("<li class=\"{kind}\">"))
        .unwrap_or_else(|| panic!("a {kind} line in {body}"));
    let end = body[start..].find("</li>").unwrap() + start;
    &body[start..end]
}

/// The item page leads with the decision's explanation and tells the history in words: who
/// did what and when, where it happened, with the Jira issue and the PagerDuty incident linked.
#[test]
fn an_items_history_is_told_in_words_with_links_after_the_explanation() {
    use crate::jobs::{jira_key, JIRA_SECRET};
    let app = crate::jobs::app(false);
    app.roster(&[human("ana", &["api"]), human("ben", &["api"])]);
    let mut incident: serde_json::Value = serde_json::from_slice(&incident_body(
        "UITL",
        "api-service",
        "low",
        chrono::Utc::now(),
    ))
    .unwrap();
    incident["event"]["data"]["html_url"] = "https://acme.pagerduty.com/incidents/UITL".into();
    let took = app.post(
        "/webhooks/pagerduty",
        &[],
        &serde_json::to_vec(&incident).unwrap(),
    );
    assert_eq!(took.status, 200, "{}", took.body);
    let id = took.json()["work_item_id"].as_str().unwrap().to_string();
    let first = owner(&app, &id).as_str().unwrap().to_string();
    let second = if first == "ana" { "ben" } else { "ana" };
    goliath::jobs::worker::drain(&app.state.pool, &*app.state.executor).unwrap();
    let key = jira_key(&app, &id).expect("the Jira issue is made");

    // The owner hands it on in Jira.
    let at = chrono::Utc::now();
    let mut hook = crate::helpers::fixture_json("jira_webhook_issue_assigned.json");
    hook["timestamp"] = at.timestamp_millis().into();
    hook["issue"]["key"] = key.as_str().into();
    hook["issue"]["fields"]["labels"] = serde_json::json!([format!("goliath-{id}")]);
    hook["issue"]["fields"]["assignee"]["accountId"] = format!("acct-{second}").into();
    hook["changelog"]["items"] = serde_json::json!([{
        "field": "assignee", "fieldtype": "jira", "fieldId": "assignee",
        "from": format!("acct-{first}"), "to": format!("acct-{second}"),
        "tmpFromAccountId": format!("acct-{first}"), "tmpToAccountId": format!("acct-{second}"),
    }]);
    let hook = serde_json::to_vec(&hook).unwrap();
    let sig = format!(
        "sha256={}",
        goliath::signature::sign_hex(JIRA_SECRET, &hook)
    );
    let handed = app.post(
        "/webhooks/jira",
        &[
            ("X-Hub-Signature", sig.as_str()),
            ("X-Atlassian-Webhook-Identifier", "ui-hand-off"),
        ],
        &hook,
    );
    assert_eq!(handed.status, 200, "{}", handed.body);
    assert_eq!(owner(&app, &id), second);

    let cookie = log_in(&app);
    let page = get(&app, &format!("/admin/ui/items/{id}"), Some(&cookie));
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;

    // The explanation comes first, before the item's fields.
    assert!(
        body.contains("</h1><p id=\"explanation\">"),
        "the explanation follows the title: {body}"
    );
    let explanation = app.work_item(&id)["decision"]["explanation"]
        .as_str()
        .unwrap()
        .to_string();
    let shown = body.split("<p id=\"explanation\">").nth(1).unwrap();
    let shown = &shown[..shown.find("</p>").unwrap()];
    assert!(
        !explanation.is_empty() && words(shown).contains(&explanation[..explanation.len().min(20)]),
        "{shown} vs {explanation}"
    );

    // Lines in words, not JSON rows.
    assert!(body.contains("<ol id=\"timeline\">"), "{body}");
    assert!(
        !body.contains("&quot;event_id&quot;"),
        "no raw JSON: {body}"
    );
    let hand_off = words(timeline_line(body, "handed_off"));
    let expected = format!(
        "{} {first} handed it to {second} (Jira)",
        at.format("%H:%M")
    );
    assert!(
        hand_off.ends_with(&expected),
        "{hand_off:?} ends with {expected:?}"
    );
    let decided = words(timeline_line(body, "decided"));
    assert!(
        decided.contains(&format!("Goliath chose {first}, with {second} as backup")),
        "{decided}"
    );

    // The Jira issue links to Jira, the incident to PagerDuty.
    let browse = app.state.executor.browse_url(&key).expect("a browse URL");
    let jira_link = format!("<a href=\"{browse}\">{key}</a>");
    assert!(
        timeline_line(body, "jira_issue_created").contains(&jira_link),
        "{}",
        timeline_line(body, "jira_issue_created")
    );
    assert!(body.contains(&format!("<a href=\"{browse}\" id=\"jira\">{key}</a>")));
    let pd_link = "<a href=\"https://acme.pagerduty.com/incidents/UITL\"";
    assert!(
        body.contains(&format!("{pd_link} id=\"incident\">UITL</a>")),
        "{body}"
    );
    assert!(
        timeline_line(body, "received").contains(&format!("{pd_link}>UITL</a>")),
        "{}",
        timeline_line(body, "received")
    );

    // An override from the page says who made it, to whom, and why.
    let done = post_form(
        &app,
        &format!("/admin/ui/items/{id}/assign"),
        Some(&cookie),
        &[
            ("csrf", &csrf_of(body)),
            ("human_id", &first),
            ("reason", "<b>back</b> to the first owner"),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    let body = get(&app, &format!("/admin/ui/items/{id}"), Some(&cookie)).body;
    let line = timeline_line(&body, "override");
    assert!(line.contains("&lt;b&gt;back&lt;/b&gt;"), "escaped: {line}");
    assert!(
        words(line).contains(&format!(
            "admin page gave it to {first} (it was {second}'s): “&lt;b&gt;back&lt;/b&gt; to the first owner”"
        )),
        "{line}"
    );
}

/// The people page's learned (decayed) numbers read as weights, never as fractional counts.
#[test]
fn learned_counts_on_the_people_page_are_whole_or_about() {
    use goliath::db::schema::skill_stats;
    let app = TestApp::start(config_with(|_| {}, &[]));
    app.roster(&[human("ana", &["api"]), human("ben", &["api"])]);
    diesel::insert_into(skill_stats::table)
        .values((
            skill_stats::human_id.eq("ana"),
            skill_stats::service.eq("api"),
            skill_stats::severity.eq("sev3"),
            skill_stats::state.eq(serde_json::json!({"successes": 52.8, "failures": 3.4})),
            skill_stats::updated_at.eq(chrono::Utc::now()),
        ))
        .execute(&mut app.db.conn())
        .unwrap();
    let cookie = log_in(&app);
    let page = get(&app, "/admin/ui/people", Some(&cookie));
    assert_eq!(page.status, 200, "{}", page.body);
    let row = |who: &str| {
        let start = page.body.find(&format!("({who})</td>")).unwrap();
        let end = page.body[start..].find("</tr>").unwrap() + start;
        page.body[start..end].to_string()
    };
    let ana = row("ana");
    assert!(ana.contains(">about 53<"), "{ana}");
    assert!(ana.contains(">about 3<"), "{ana}");
    assert!(!ana.contains("52.8") && !ana.contains("3.4"), "{ana}");
    assert!(row("ben").contains(">0<"), "{}", row("ben"));
    assert!(
        page.body.contains("id=\"weights-note\""),
        "the page says they are weights"
    );
}

/// The list's service, status and severity filters are select boxes of the values there are,
/// and the page links keep the filters.
#[test]
fn the_item_filters_are_select_boxes_and_pages_keep_them() {
    let app = TestApp::start(config_with(|_| {}, &[]));
    app.roster(&[
        human("ana", &["api"]),
        human("ben", &["web"]),
        human("dora", &["db"]),
    ]);
    for i in 0..51 {
        app.incident(&format!("UIP{i}"), "api-service", "low");
    }
    app.incident("UIPH", "api-service", "high");
    app.incident("UIPW", "web", "low");
    app.incident("UIPB", "billing-service", "low");
    let cookie = log_in(&app);

    let list = get(&app, "/admin/ui/items", Some(&cookie)).body;
    let select = |body: &str, name: &str| {
        let start = body
            .find(&format!("<select name=\"{name}\""))
            .unwrap_or_else(|| panic!("a {name} select box: {body}"));
        let end = body[start..].find("</select>").unwrap() + start;
        body[start..end].to_string()
    };
    let values = |select: &str| -> Vec<String> {
        select
            .split("<option value=\"")
            .skip(1)
            .map(|o| o.split('"').next().unwrap().to_string())
            .collect()
    };
    // Services from the roster (db has no items) and the items (billing has nobody).
    assert_eq!(
        values(&select(&list, "service")),
        ["", "api", "billing-service", "db", "web"]
    );
    assert_eq!(
        values(&select(&list, "status")),
        ["", "assigned", "open", "unassigned", "resolved", "reopened"]
    );
    assert_eq!(
        values(&select(&list, "severity")),
        ["", "sev1", "sev2", "sev3", "sev4"]
    );

    let rows = |body: &str| {
        let table = &body[body.find("<table id=\"items\"").unwrap()..];
        let table = &table[..table.find("</table>").unwrap()];
        table.matches("<a href=\"/admin/ui/items/").count()
    };
    let filtered = |body: &str| {
        assert!(
            select(body, "service").contains("<option value=\"api\" selected>"),
            "{}",
            select(body, "service")
        );
        assert!(
            select(body, "severity").contains("<option value=\"sev3\" selected>"),
            "{}",
            select(body, "severity")
        );
    };
    // Typed in another case, the service is still the api service.
    let first = get(
        &app,
        "/admin/ui/items?service=API&status=&severity=sev3",
        Some(&cookie),
    )
    .body;
    assert!(first.contains("51 matching, page 1 of 2"), "{first}");
    filtered(&first);
    assert_eq!(rows(&first), 50);
    let older = first
        .split("id=\"older\"")
        .next()
        .and_then(|before| before.rsplit("href=\"").next())
        .map(|href| href.split('"').next().unwrap().replace("&amp;", "&"))
        .expect("a link to the next page");
    assert_eq!(
        older,
        "/admin/ui/items?service=api&status=&severity=sev3&page=2"
    );
    let second = get(&app, &older, Some(&cookie)).body;
    assert!(second.contains("51 matching, page 2 of 2"), "{second}");
    filtered(&second);
    assert_eq!(rows(&second), 1, "the high-urgency item is not among them");
    assert!(
        second.contains("href=\"/admin/ui/items?service=api&amp;status=&amp;severity=sev3&amp;page=1\" id=\"newer\""),
        "{second}"
    );

    let wrong = get(&app, "/admin/ui/items?severity=urgent", Some(&cookie));
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    assert!(wrong.body.contains("urgent"), "{}", wrong.body);
}

/// The override form offers the decision's first backup, not the person who has the item.
#[test]
fn the_override_form_offers_the_recommended_backup() {
    let app = TestApp::start(config_with(|_| {}, &[]));
    app.roster(&[
        human("ana", &["api"]),
        human("ben", &["api"]),
        human("cara", &["api"]),
    ]);
    let id = app.incident("UIB", "api-service", "low")["work_item_id"]
        .as_str()
        .unwrap()
        .to_string();
    let view = app.work_item(&id);
    let current = view["work_item"]["assignee_id"]
        .as_str()
        .unwrap()
        .to_string();
    let backup = view["decision"]["backups"][0]
        .as_str()
        .unwrap_or_else(|| panic!("a backup: {}", view["decision"]))
        .to_string();
    assert_ne!(current, backup);
    let cookie = log_in(&app);
    let body = get(&app, &format!("/admin/ui/items/{id}"), Some(&cookie)).body;
    let select = &body[body.find("<select name=\"human_id\"").unwrap()..];
    let select = &select[..select.find("</select>").unwrap()];
    assert_eq!(
        select.matches(" selected").count(),
        1,
        "one person is offered: {select}"
    );
    assert!(
        select.contains(&format!("<option value=\"{backup}\" selected>")),
        "{select}"
    );
    assert!(
        select.contains(&format!("<option value=\"{current}\">")),
        "{select}"
    );
    assert!(select.contains("recommended backup"), "{select}");
    assert!(select.contains("current owner"), "{select}");
}

/// An item nobody could take says why instead of showing an empty ranking.
#[test]
fn an_unassigned_item_says_why_nobody_was_chosen() {
    let app = TestApp::start(config_with(|_| {}, &[]));
    app.roster(&[human("ana", &["web"])]);
    let item = app.incident("UIU", "api-service", "low");
    assert_eq!(item["work_item_status"], "unassigned", "{item}");
    let id = item["work_item_id"].as_str().unwrap().to_string();
    let reason = app.work_item(&id)["decision"]["undecided_reason"]
        .as_str()
        .expect("an undecided reason")
        .to_string();
    let cookie = log_in(&app);
    let body = get(&app, &format!("/admin/ui/items/{id}"), Some(&cookie)).body;
    assert!(
        body.contains(&format!(
            "</h1><p id=\"explanation\">Nobody was chosen: {reason}</p>"
        )),
        "{body}"
    );
    assert!(!body.contains("id=\"ranking\""), "no empty ranking: {body}");
    assert!(body.contains("id=\"excluded\""), "{body}");
    assert!(
        words(timeline_line(&body, "unassigned"))
            .ends_with(&format!("Nobody was chosen: {reason}")),
        "{}",
        timeline_line(&body, "unassigned")
    );
}

/// Saves a screenshot and checks it shows a page, not a blank window.
fn shoot(b: &Browser, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("admin-page");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    b.screenshot(&path);
    let size = std::fs::metadata(&path).unwrap().len();
    let (colours, not_background) = browser::png_variety(&path);
    assert!(
        size > 2_000 && colours >= 8 && not_background > 0.005,
        "{name}: {size} bytes, {colours} colours, {:.2}% not background",
        not_background * 100.0
    );
}

#[test]
fn a_real_browser_logs_in_overrides_an_item_and_retries_a_dead_job() {
    let (chromium, driver) = match browser::find() {
        Ok(found) => found,
        Err(why) if std::env::var("GOLIATH_BROWSER_TESTS").as_deref() == Ok("skip") => {
            println!("SKIPPED: {why} (GOLIATH_BROWSER_TESTS=skip)");
            return;
        }
        Err(why) => panic!(
            "{why}; .ci/run installs Chromium, or set GOLIATH_BROWSER_TESTS=skip where it cannot be installed"
        ),
    };
    let mut app = TestApp::start(config_with(|_| {}, &[]));
    app.roster(&[human("ana", &["api"]), human("ben", &["web"])]);
    let item = app.incident("UI2", "api-service", "high");
    let id = item["work_item_id"].as_str().unwrap().to_string();
    // The item's jobs stay put while the page works on one of them.
    app.stop_workers();
    let job_id: i64 = {
        use goliath::db::schema::jobs;
        let mut conn = app.db.conn();
        let id: i64 = jobs::table
            .filter(jobs::payload.retrieve_as_text("work_item_id").eq(&id))
            .select(jobs::id)
            .order(jobs::id)
            .first(&mut conn)
            .expect("the item has a job");
        diesel::update(jobs::table.find(id))
            .set((
                jobs::state.eq("dead"),
                jobs::last_error.eq("Jira refused it (set dead by the test)"),
            ))
            .execute(&mut conn)
            .unwrap();
        id
    };

    let b = Browser::start(&chromium, &driver);
    b.open(&app.url("/admin/ui/items"));
    assert!(
        b.current_url().ends_with("/admin/ui/login"),
        "{}",
        b.current_url()
    );
    b.type_into("#token", ADMIN_TOKEN);
    shoot(&b, "1-login");
    b.click("#login");
    b.wait_for_url("/admin/ui/items");
    assert!(b.text("#items").contains(&id), "{}", b.text("#items"));
    shoot(&b, "2-items");

    b.click(&format!("#items a[href$='{id}']"));
    b.wait_for_url(&format!("/admin/ui/items/{id}"));
    assert!(b.text("#owner").contains("ana"), "{}", b.text("#owner"));
    assert!(
        b.text("#ranking").contains("ana"),
        "the decision's ranking is shown"
    );
    assert!(
        b.text("#excluded").contains("ben"),
        "and who could not take it, and why"
    );
    shoot(&b, "3-item");

    b.click("#human_id option[value='ben']");
    b.type_into("#reason", "ben knows this system");
    b.click("#assign");
    b.wait_for_url("done=assigned");
    assert!(
        b.text("#notice").contains("Assigned"),
        "{}",
        b.text("#notice")
    );
    assert!(b.text("#owner").contains("ben"), "{}", b.text("#owner"));
    assert_eq!(owner(&app, &id), "ben");
    shoot(&b, "4-overridden");
    let timeline = b.text("#timeline");
    assert!(
        timeline.contains("admin page gave it to ben (it was ana's): “ben knows this system”"),
        "{timeline}"
    );
    b.open(&format!("{}#timeline", b.current_url()));
    shoot(&b, "4-timeline");

    b.open(&app.url("/admin/ui/jobs"));
    assert!(b.text("table.jobs").contains("set dead by the test"));
    shoot(&b, "5-dead-job");
    b.click(&format!(
        "form[action='/admin/ui/jobs/{job_id}/retry'] button"
    ));
    b.wait_for_url("done=retried");
    assert!(
        b.text("#notice").contains("queued again"),
        "{}",
        b.text("#notice")
    );
    let jobs = app.admin("GET", "/admin/jobs", None).json();
    let state = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == job_id)
        .map(|j| j["state"].clone());
    assert_eq!(state, Some("queued".into()), "{jobs}");

    b.open(&app.url("/admin/ui/people"));
    assert!(b.text("#people").contains("ana"));
    let weights = b.text("#term-weights");
    assert!(
        weights.contains("experience 1.00") && weights.contains("0 outcomes"),
        "{weights}"
    );
    assert!(weights.contains("The picks follow the model"), "{weights}");
    shoot(&b, "6-people");
}
