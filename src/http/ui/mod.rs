//! The admin page under `/admin/ui`: server-rendered HTML over the same read models and
//! actions as the admin API. Logging in with the admin token sets a signed session cookie
//! (HttpOnly, SameSite=Strict); every form carries the session's CSRF token.

mod chart;
mod pages;
pub mod session;
mod timeline;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::jobs::queue;
use crate::models::WorkItemStatus;
use crate::overview::{self, WorkItemFilter};
use crate::routing::Severity;

use super::admin::{db, override_owner};
use super::error::ApiError;

/// Work items per page.
const PAGE_SIZE: i64 = 50;
/// Days the trend charts cover.
const TREND_DAYS: i32 = 30;

/// A logged-in browser.
struct Session {
    csrf: String,
    nonce: String,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn cookie_value<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn session(req: &HttpRequest, state: &AppState) -> Option<Session> {
    let key = state.config.admin_token.as_deref()?;
    let nonce = session::verify(key, cookie_value(req, session::COOKIE)?, now())?;
    Some(Session {
        csrf: session::csrf(key, nonce),
        nonce: nonce.to_string(),
    })
}

/// The session of a form post, whose CSRF token must match it.
fn posting_session(
    req: &HttpRequest,
    state: &AppState,
    csrf: &str,
) -> Result<Session, Box<HttpResponse>> {
    let s = session(req, state).ok_or_else(|| Box::new(redirect("/admin/ui/login")))?;
    let key = state.config.admin_token.as_deref().unwrap_or_default();
    if session::csrf_ok(key, &s.nonce, csrf) {
        Ok(s)
    } else {
        Err(Box::new(page(
            StatusCode::FORBIDDEN,
            pages::error(
                Some(&s.csrf),
                403,
                "the form's CSRF token does not match your session; reload the page and try again",
            ),
        )))
    }
}

fn page(status: StatusCode, markup: maud::Markup) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.into_string())
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

fn error_page(csrf: Option<&str>, e: ApiError) -> HttpResponse {
    page(e.status, pages::error(csrf, e.status.as_u16(), &e.message))
}

/// The cookie header setting (or, with `None`, clearing) the session.
fn session_cookie(state: &AppState, value: Option<&str>) -> HeaderValue {
    let secure = if state.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let (value, age) = match value {
        Some(v) => (v, session::LIFETIME_SECS),
        None => ("", 0),
    };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/admin/ui; Max-Age={age}; HttpOnly; SameSite=Strict{secure}",
        session::COOKIE
    ))
    .expect("the cookie is ASCII")
}

#[get("/admin/ui")]
async fn home() -> HttpResponse {
    redirect("/admin/ui/items")
}

#[get("/admin/ui/login")]
async fn login_page(state: web::Data<AppState>) -> HttpResponse {
    let enabled = state.config.admin_token.is_some();
    page(StatusCode::OK, pages::login(None, enabled))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

#[post("/admin/ui/login")]
async fn login(form: web::Form<LoginForm>, state: web::Data<AppState>) -> HttpResponse {
    let Some(key) = state.config.admin_token.as_deref() else {
        return page(StatusCode::UNAUTHORIZED, pages::login(None, false));
    };
    if !bool::from(form.token.as_bytes().ct_eq(key.as_bytes())) {
        return page(
            StatusCode::UNAUTHORIZED,
            pages::login(Some("That is not the admin token."), true),
        );
    }
    let nonce = match session::nonce() {
        Ok(n) => n,
        Err(e) => return error_page(None, ApiError::internal("making a session", e)),
    };
    let mut resp = redirect("/admin/ui/items");
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&state, Some(&session::issue(key, now(), &nonce))),
    );
    resp
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

#[post("/admin/ui/logout")]
async fn logout(
    req: HttpRequest,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Err(resp) = posting_session(&req, &state, &form.csrf) {
        return *resp;
    }
    let mut resp = redirect("/admin/ui/login");
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, None));
    resp
}

/// The list's filters; empty fields (as a browser sends them) mean no filter.
#[derive(Deserialize)]
struct ItemsQuery {
    #[serde(default)]
    service: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    severity: String,
    page: Option<i64>,
}

#[get("/admin/ui/items")]
async fn items(
    req: HttpRequest,
    query: web::Query<ItemsQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(s) = session(&req, &state) else {
        return redirect("/admin/ui/login");
    };
    let q = query.into_inner();
    let status = match q.status.as_str() {
        "" => None,
        text => match WorkItemStatus::parse(text) {
            Some(st) => Some(st),
            None => {
                return error_page(
                    Some(&s.csrf),
                    ApiError::unprocessable(format!("`{text}` is not a work-item status")),
                )
            }
        },
    };
    let severity = match q.severity.trim() {
        "" => None,
        text => match text.parse::<Severity>() {
            Ok(sev) => Some(sev),
            Err(_) => {
                return error_page(
                    Some(&s.csrf),
                    ApiError::unprocessable(format!("`{text}` is not a severity (sev1 to sev4)")),
                )
            }
        },
    };
    // Services are kept in lower case; the form shows the value as filtered.
    let service = q.service.trim().to_lowercase();
    let page_no = q.page.unwrap_or(1).max(1);
    let filter = WorkItemFilter {
        service: Some(service.clone()).filter(|v| !v.is_empty()),
        status,
        severity: severity.map(|s| s.as_str().to_string()),
        limit: PAGE_SIZE,
        offset: (page_no - 1).saturating_mul(PAGE_SIZE),
    };
    let loaded = db(&state, move |c| {
        let (list, total) = overview::work_items(c, &filter)?;
        let services = overview::services(c, MAX_SERVICE_CHOICES)?;
        Ok((list, total, services, overview::trends(c, TREND_DAYS)?))
    })
    .await;
    match loaded {
        Ok((list, total, services, trends)) => {
            let form = pages::ItemFilterForm {
                service: &service,
                status: q.status.trim(),
                severity: severity.map_or("", Severity::as_str),
                services: &services,
                page: page_no,
                pages: ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1),
            };
            page(
                StatusCode::OK,
                pages::items(&s.csrf, &list, total, &form, &trends),
            )
        }
        Err(e) => error_page(Some(&s.csrf), e),
    }
}

/// Most services the filter offers; past it the service filter still takes any typed value.
const MAX_SERVICE_CHOICES: i64 = 500;

#[derive(Deserialize)]
struct NoticeQuery {
    done: Option<String>,
}

/// What a redirect after an action asks the next page to say.
fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "assigned" => Some("Assigned; Jira follows."),
        "retried" => Some("The job is queued again."),
        _ => None,
    }
}

#[get("/admin/ui/items/{id}")]
async fn item(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<NoticeQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(s) = session(&req, &state) else {
        return redirect("/admin/ui/login");
    };
    let id = path.into_inner();
    let loaded = db(&state, {
        let id = id.clone();
        move |c| Ok((overview::work_item(c, &id)?, overview::humans(c)?))
    })
    .await;
    match loaded {
        Ok((Some(view), roster)) => {
            let browse = |key: &str| state.executor.browse_url(key);
            let note = notice(query.done.as_deref());
            page(
                StatusCode::OK,
                pages::item(&s.csrf, &view, &roster, &browse, note),
            )
        }
        Ok((None, _)) => error_page(
            Some(&s.csrf),
            ApiError::not_found(format!("no work item `{id}`")),
        ),
        Err(e) => error_page(Some(&s.csrf), e),
    }
}

#[derive(Deserialize)]
struct AssignForm {
    csrf: String,
    human_id: String,
    #[serde(default)]
    reason: String,
    /// A checkbox: present when ticked.
    force: Option<String>,
}

#[post("/admin/ui/items/{id}/assign")]
async fn assign(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<AssignForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let s = match posting_session(&req, &state, &form.csrf) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    let form = form.into_inner();
    let id = path.into_inner();
    let done = override_owner(
        &state,
        id.clone(),
        form.human_id,
        form.reason,
        form.force.is_some(),
        "admin page".into(),
    )
    .await;
    match done {
        Ok(_) => redirect(&format!(
            "/admin/ui/items/{}?done=assigned",
            pages::url_escape(&id)
        )),
        Err(e) => error_page(Some(&s.csrf), e),
    }
}

#[get("/admin/ui/people")]
async fn humans(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(s) = session(&req, &state) else {
        return redirect("/admin/ui/login");
    };
    let read = db(&state, |c| {
        Ok((overview::humans(c)?, crate::learner::weights::current(c)?))
    })
    .await;
    match read {
        Ok((list, weights)) => {
            let half_life = state.decision.params().half_life_days;
            page(
                StatusCode::OK,
                pages::humans(&s.csrf, &list, &weights, half_life),
            )
        }
        Err(e) => error_page(Some(&s.csrf), e),
    }
}

#[get("/admin/ui/jobs")]
async fn jobs(
    req: HttpRequest,
    query: web::Query<NoticeQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(s) = session(&req, &state) else {
        return redirect("/admin/ui/login");
    };
    let loaded = db(&state, |c| {
        Ok((
            queue::list(c, Some(crate::jobs::JobState::Dead.as_str()), 200)?,
            queue::depth(c)?,
        ))
    })
    .await;
    match loaded {
        Ok((dead, counts)) => page(
            StatusCode::OK,
            pages::jobs(&s.csrf, &dead, &counts, notice(query.done.as_deref())),
        ),
        Err(e) => error_page(Some(&s.csrf), e),
    }
}

#[post("/admin/ui/jobs/{id}/retry")]
async fn retry_job(
    req: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let s = match posting_session(&req, &state, &form.csrf) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    let id = path.into_inner();
    match db(&state, move |c| Ok(queue::resurrect(c, id)?)).await {
        Ok(Some(_)) => {
            state.wake_workers();
            redirect("/admin/ui/jobs?done=retried")
        }
        Ok(None) => error_page(
            Some(&s.csrf),
            ApiError::new(
                StatusCode::CONFLICT,
                "not_dead",
                format!("job {id} does not exist or is not dead; only dead jobs can be retried"),
            ),
        ),
        Err(e) => error_page(Some(&s.csrf), e),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(home)
        .service(login_page)
        .service(login)
        .service(logout)
        .service(items)
        .service(item)
        .service(assign)
        .service(humans)
        .service(jobs)
        .service(retry_job);
}
