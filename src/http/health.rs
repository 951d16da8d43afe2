//! Liveness and readiness.

use actix_web::{get, web, HttpResponse};

use crate::app::AppState;

/// The process is up; touches nothing else.
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// The database answers and every migration is applied.
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.pool.clone();
    let executor = state.executor.clone();
    let report = web::block(move || -> Result<serde_json::Value, String> {
        let mut conn = pool
            .get()
            .map_err(|e| format!("database unreachable: {e}"))?;
        let current = crate::db::migrations_current(&mut conn).map_err(|e| e.to_string())?;
        if !current {
            return Err("migrations are pending: run `goliath migrate`".into());
        }
        let queue = crate::jobs::queue::depth(&mut conn).map_err(|e| e.to_string())?;
        let unassigned =
            crate::decision::backlog::count_waiting(&mut conn).map_err(|e| e.to_string())?;
        let over_cap =
            crate::learner::humans_over_capacity(&mut conn).map_err(|e| e.to_string())?;
        drop(conn);
        let jira = executor.jira_health();
        if let crate::executor::JiraHealth::Refused(why) = &jira {
            return Err(format!(
                "Jira refuses Goliath's credentials ({why}): check JIRA_EMAIL and JIRA_API_TOKEN \
                 (or JIRA_BEARER_TOKEN)"
            ));
        }
        Ok(serde_json::json!({
            "status": "ready", "database": "ok", "migrations": "current", "jobs": queue,
            "unassigned_work_items": unassigned,
            "humans_over_capacity": over_cap,
            "jira": jira,
        }))
    })
    .await;
    match report {
        Ok(Ok(body)) => HttpResponse::Ok().json(body),
        Ok(Err(problem)) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "unavailable", "problem": problem})),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "unavailable", "problem": e.to_string()})),
    }
}
