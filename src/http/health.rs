//! Liveness and readiness.

use actix_web::{get, web, HttpResponse};

use crate::app::AppState;

/// The process is up; touches nothing else.
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Why Goliath is not ready, each with what to do about it.
#[derive(Debug, thiserror::Error)]
enum NotReady {
    #[error("database unreachable: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("could not read the applied migrations: {0}")]
    Migrations(String),
    #[error("migrations are pending: run `goliath migrate`")]
    MigrationsPending,
    #[error(
        "Jira refuses Goliath's credentials ({0}): check JIRA_EMAIL and JIRA_API_TOKEN \
         (or JIRA_BEARER_TOKEN)"
    )]
    JiraRefused(String),
}

/// The database answers, every migration is applied and Jira takes the credentials.
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.pool.clone();
    let executor = state.executor.clone();
    let report = web::block(move || -> Result<serde_json::Value, NotReady> {
        let mut conn = pool.get()?;
        let current = crate::db::migrations_current(&mut conn)
            .map_err(|e| NotReady::Migrations(e.to_string()))?;
        if !current {
            return Err(NotReady::MigrationsPending);
        }
        let queue = crate::jobs::queue::depth(&mut conn)?;
        let unassigned = crate::decision::backlog::count_waiting(&mut conn)?;
        let over_cap = crate::learner::humans_over_capacity(&mut conn)?;
        drop(conn);
        let jira = executor.jira_health();
        if let crate::executor::JiraHealth::Refused(why) = &jira {
            return Err(NotReady::JiraRefused(why.clone()));
        }
        Ok(serde_json::json!({
            "status": "ready", "database": "ok", "migrations": "current", "jobs": queue,
            "unassigned_work_items": unassigned,
            "humans_over_capacity": over_cap,
            "jira": jira,
        }))
    })
    .await;
    let problem = match report {
        Ok(Ok(body)) => return HttpResponse::Ok().json(body),
        Ok(Err(not_ready)) => not_ready.to_string(),
        Err(blocking) => blocking.to_string(),
    };
    HttpResponse::ServiceUnavailable()
        .json(serde_json::json!({"status": "unavailable", "problem": problem}))
}
