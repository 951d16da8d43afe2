//! Admin routes under `/admin` (and `POST /decide`), each behind the [`Admin`] extractor.

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use diesel::prelude::*;
use serde::Deserialize;

use crate::app::AppState;
use crate::jobs::queue;
use crate::learner::{Outcome, OutcomeEvent};
use crate::overview::{self, WorkItemFilter, WorkItemView};
use crate::roster::{self, HumanInput};

use super::auth::Admin;
use super::body::{read_body, ADMIN_MAX_BODY};
use super::error::ApiError;

/// Who makes an admin write: the `X-Goliath-Actor` header (a name or e-mail, up to 100
/// characters), else `admin` (the one admin token).
pub(super) fn actor(req: &HttpRequest) -> Result<String, ApiError> {
    let Some(value) = req.headers().get("X-Goliath-Actor") else {
        return Ok("admin".into());
    };
    let text = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.chars().count() <= 100 && !t.contains('\0'))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_header",
                "X-Goliath-Actor must be 1 to 100 visible characters",
            )
        })?;
    Ok(text.to_string())
}

/// Runs blocking database work off the async executor.
pub(super) async fn db<T: Send + 'static>(
    state: &web::Data<AppState>,
    f: impl FnOnce(&mut PgConnection) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let pool = state.pool.clone();
    web::block(move || {
        let mut conn = pool.get()?;
        f(&mut conn)
    })
    .await
    .map_err(|e| ApiError::internal("admin worker", e))?
}

/// Parses a JSON body with errors that name the problem (422 for a wrong shape). A key named
/// twice in an object is refused (400 `duplicate_key`), so what is checked is what is used.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value = crate::db::json::parse_unique(body)?;
    if let Some(path) = crate::db::json::nul_path(&value) {
        return Err(ApiError::unprocessable(format!(
            "field `{path}` holds a NUL character (\\u0000), which cannot be stored"
        )));
    }
    typed(value)
}

/// A parsed body in the shape a route wants (422 naming the problem otherwise).
fn typed<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::unprocessable(e.to_string()))
}

// ---- roster ----

#[post("/admin/humans")]
async fn upsert_humans(
    _admin: Admin,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, ADMIN_MAX_BODY).await?;
    let value: serde_json::Value = parse_json(&body)?;
    if value.is_array() {
        return import(&state, typed(value)?).await;
    }
    let human: HumanInput = typed(value)?;
    let valid = human.validate(None)?;
    let stored = db(&state, move |c| Ok(roster::upsert(c, &valid)?)).await?;
    Ok(HttpResponse::Ok().json(stored))
}

#[post("/admin/humans/import")]
async fn import_humans(
    _admin: Admin,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, ADMIN_MAX_BODY).await?;
    import(&state, parse_json(&body)?).await
}

/// Stores a whole roster, all or nothing.
async fn import(
    state: &web::Data<AppState>,
    humans: Vec<HumanInput>,
) -> Result<HttpResponse, ApiError> {
    let stored = db(state, move |c| Ok(roster::import(c, &humans)?)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"imported": stored.len(), "humans": stored})))
}

/// Imports PagerDuty user ids for the people on the roster, matched by e-mail. People not on
/// the roster are listed, not created: a person needs a Jira account, which PagerDuty does not
/// know.
#[derive(Deserialize)]
struct SyncQuery {
    /// Replace a PagerDuty id set by hand when the e-mail match names another user.
    #[serde(default)]
    overwrite: bool,
}

#[post("/admin/humans/sync-pagerduty")]
async fn sync_pagerduty(
    _admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<SyncQuery>,
) -> Result<HttpResponse, ApiError> {
    let overwrite = query.overwrite;
    let Some(api) = state.pagerduty.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "pagerduty_not_configured",
            "PagerDuty's REST API is not configured: set PAGERDUTY_API_TOKEN",
        ));
    };
    let users = web::block(move || api.users())
        .await
        .map_err(|e| ApiError::internal("PagerDuty sync", e))??;
    let report = db(&state, move |c| {
        Ok(roster::sync_pagerduty_users(c, &users, overwrite)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(report))
}

#[get("/admin/humans")]
async fn list_humans(_admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let humans = db(&state, |c| Ok(roster::list(c)?)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"humans": humans})))
}

#[get("/admin/humans/{id}")]
async fn get_human(
    _admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let found = db(&state, {
        let id = id.clone();
        move |c| {
            let Some(human) = roster::get(c, &id)? else {
                return Ok(None);
            };
            let open = crate::decision::open_loads(c)?
                .get(&id)
                .copied()
                .unwrap_or(0);
            let mut view = serde_json::to_value(human).unwrap_or_default();
            view["open_items"] = open.into();
            Ok(Some(view))
        }
    })
    .await?;
    found
        .map(|h| HttpResponse::Ok().json(h))
        .ok_or_else(|| ApiError::not_found(format!("no person `{id}`")))
}

#[put("/admin/humans/{id}")]
async fn put_human(
    _admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, ADMIN_MAX_BODY).await?;
    let human: HumanInput = parse_json(&body)?;
    let valid = human.validate(Some(&path.into_inner()))?;
    let stored = db(&state, move |c| Ok(roster::upsert(c, &valid)?)).await?;
    Ok(HttpResponse::Ok().json(stored))
}

#[delete("/admin/humans/{id}")]
async fn delete_human(
    _admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let removed = db(&state, {
        let id = id.clone();
        move |c| Ok(roster::delete(c, &id)?)
    })
    .await?;
    if removed {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found(format!("no person `{id}`")))
    }
}

// ---- decisions ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideRequest {
    work_item_id: String,
}

#[post("/decide")]
async fn decide(
    _admin: Admin,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, ADMIN_MAX_BODY).await?;
    let request: DecideRequest = parse_json(&body)?;
    let st = state.clone();
    let decision = db(&state, move |c| {
        Ok(st.decision.decide(c, &request.work_item_id)?)
    })
    .await?;
    state.wake_workers();
    Ok(HttpResponse::Ok().json(decision))
}

#[derive(Deserialize)]
struct WorkItemQuery {
    service: Option<String>,
    status: Option<String>,
    severity: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[get("/admin/work-items")]
async fn list_work_items(
    _admin: Admin,
    query: web::Query<WorkItemQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let f = query.into_inner();
    let limit = f.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::unprocessable(
            "field `limit` must be between 1 and 500",
        ));
    }
    if let Some(status) = &f.status {
        if crate::models::WorkItemStatus::parse(status).is_none() {
            return Err(ApiError::unprocessable(format!(
                "field `status` must be one of assigned, unassigned, resolved, reopened (not `{status}`)"
            )));
        }
    }
    // A severity the filter cannot match is a mistake, not an empty page.
    let severity = match f
        .severity
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(text) => match text.parse::<crate::routing::Severity>() {
            Ok(sev) => Some(sev.as_str().to_string()),
            Err(_) => {
                return Err(ApiError::unprocessable(format!(
                    "field `severity` must be one of sev1, sev2, sev3, sev4 (not `{text}`)"
                )))
            }
        },
    };
    let offset = f.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::unprocessable(
            "field `offset` must not be negative",
        ));
    }
    let filter = WorkItemFilter {
        status: f
            .status
            .as_deref()
            .and_then(crate::models::WorkItemStatus::parse),
        service: f.service,
        severity,
        limit,
        offset,
    };
    let (items, total) = db(&state, move |c| Ok(overview::work_items(c, &filter)?)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "work_items": items, "total": total, "limit": limit, "offset": offset,
    })))
}

#[get("/admin/work-items/{id}")]
async fn get_work_item(
    _admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let view = db(&state, {
        let id = id.clone();
        move |c| Ok(overview::work_item(c, &id)?)
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no work item `{id}`")))?;
    let WorkItemView {
        item,
        decision,
        outcomes,
        history,
        jobs,
    } = view;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "jira_key": item.jira_key,
        "work_item": item,
        "decision": decision.map(|d| serde_json::json!({
            "primary": d.primary_human_id,
            "backups": d.backup_ids,
            "confidence": d.confidence,
            "explanation": d.explanation,
            "undecided_reason": d.undecided_reason,
            "ranking": d.ranking,
            "excluded": d.excluded,
            "inputs": d.inputs,
            "model_version": d.model_version,
            "decided_at": d.decided_at,
        })),
        "outcomes": outcomes,
        "history": history,
        "jobs": jobs,
    })))
}

#[post("/admin/work-items/{id}/replay")]
async fn replay(
    _admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let st = state.clone();
    let report = db(&state, move |c| Ok(st.decision.replay(c, &id)?)).await?;
    Ok(HttpResponse::Ok().json(report))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignRequest {
    human_id: String,
    reason: Option<String>,
    /// Assign past the person's max_active.
    #[serde(default)]
    force: bool,
}

#[post("/admin/work-items/{id}/assign")]
async fn assign(
    _admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, ADMIN_MAX_BODY).await?;
    let request: AssignRequest = parse_json(&body)?;
    let actor = actor(&req)?;
    let applied = override_owner(
        &state,
        path.into_inner(),
        request.human_id,
        request.reason.unwrap_or_default(),
        request.force,
        actor,
    )
    .await?;
    Ok(HttpResponse::Ok().json(applied))
}

/// Gives a work item to `to` as an admin override: a learner outcome (refused past the
/// person's `max_active` unless forced, and for a resolved item) and the Jira reassignment,
/// in one transaction.
pub(super) async fn override_owner(
    state: &web::Data<AppState>,
    id: String,
    to: String,
    reason: String,
    force: bool,
    actor: String,
) -> Result<crate::learner::Applied, ApiError> {
    check_override(&to, &reason)?;
    let st = state.clone();
    let applied = db(state, move |c| {
        let event = OutcomeEvent {
            event_id: format!(
                "admin-{}-{}",
                id,
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
            ),
            work_item_id: id.clone(),
            outcome: Outcome::Override {
                to,
                reason,
                force,
                actor,
            },
            occurred_at: chrono::Utc::now(),
        };
        c.transaction(|c| {
            let applied = st.learner.record(c, &event)?;
            st.executor.on_reassigned(c, &id)?;
            Ok::<_, ApiError>(applied)
        })
    })
    .await?;
    state.wake_workers();
    Ok(applied)
}

/// Refuses an override's person or reason that cannot be stored, before anything is read or
/// written (the admin page's form is not JSON, so its fields are checked here).
fn check_override(to: &str, reason: &str) -> Result<(), ApiError> {
    if to.trim().is_empty() {
        return Err(ApiError::unprocessable("field `human_id` is required"));
    }
    for (field, value) in [("human_id", to), ("reason", reason)] {
        if value.contains('\0') {
            return Err(ApiError::unprocessable(format!(
                "field `{field}` holds a NUL character (\\u0000), which cannot be stored"
            )));
        }
    }
    if let Some(problem) = crate::db::too_long(to.len(), crate::db::MAX_ID_BYTES) {
        return Err(ApiError::unprocessable(format!(
            "field `human_id` {problem}"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
struct StatsQuery {
    service: Option<String>,
}

#[get("/admin/stats")]
async fn stats(
    _admin: Admin,
    query: web::Query<StatsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let service = query.into_inner().service.map(|s| s.to_lowercase());
    let st = state.clone();
    let (rows, shadow, weights) = db(&state, move |c| {
        Ok((
            crate::learner::beliefs(c, service.as_deref(), st.decision.params())?,
            crate::learner::shadow_agreement(c, service.as_deref())?,
            crate::learner::weights::current(c)?,
        ))
    })
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "stats": rows,
        "shadow": shadow,
        "term_weights": weights.named(),
    })))
}

// ---- jobs ----

#[derive(Deserialize)]
struct JobQuery {
    state: Option<String>,
    limit: Option<i64>,
}

#[get("/admin/jobs")]
async fn list_jobs(
    _admin: Admin,
    query: web::Query<JobQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    if let Some(s) = &q.state {
        if crate::jobs::JobState::parse(s).is_none() {
            return Err(ApiError::unprocessable(
                "field `state` must be one of queued, running, done, dead",
            ));
        }
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let (list, depth) = db(&state, move |c| {
        Ok((queue::list(c, q.state.as_deref(), limit)?, queue::depth(c)?))
    })
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"jobs": list, "counts": depth})))
}

#[post("/admin/jobs/{id}/retry")]
async fn retry_job(
    _admin: Admin,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let job = db(&state, move |c| Ok(queue::resurrect(c, id)?)).await?;
    match job {
        Some(job) => {
            state.wake_workers();
            Ok(HttpResponse::Ok().json(job))
        }
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_dead",
            format!("job {id} does not exist or is not dead; only dead jobs can be retried"),
        )),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(sync_pagerduty)
        .service(import_humans)
        .service(upsert_humans)
        .service(list_humans)
        .service(get_human)
        .service(put_human)
        .service(delete_human)
        .service(decide)
        .service(list_work_items)
        .service(get_work_item)
        .service(replay)
        .service(assign)
        .service(stats)
        .service(list_jobs)
        .service(retry_job);
}
