//! The admin page: its login, CSRF protection and, in a real headless Chromium, the flows a
//! person uses (log in, open an item, override it, retry a dead job).

use std::time::Duration;

use diesel::prelude::*;

use crate::helpers::browser::{self, Browser};
use crate::helpers::{config_with, history_of, human, TestApp, ADMIN_TOKEN};

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
    shoot(&b, "6-people");
}
