//! `GET /metrics`: Prometheus text format. On the main listener it needs the admin token; with
//! `GOLIATH_METRICS_BIND` it is also served, without a token, on that address alone (for a
//! scraper on a private network).

use actix_web::{get, web, HttpResponse};

use crate::app::AppState;

use super::error::ApiError;

/// Fills the gauges read from the database, then renders everything.
async fn render(state: &web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let pool = state.pool.clone();
    let m = crate::metrics::metrics();
    let pool_state = pool.state();
    m.pool
        .with_label_values(&["idle"])
        .set(i64::from(pool_state.idle_connections));
    m.pool.with_label_values(&["in_use"]).set(i64::from(
        pool_state.connections - pool_state.idle_connections,
    ));
    if let Some((rss, fds)) = crate::metrics::process_usage() {
        m.resident_memory.set(rss);
        m.open_fds.set(fds);
    }
    m.on_call_age.set(
        state
            .on_call
            .as_ref()
            .map_or(0, |c| c.oldest_age().map_or(0, |a| a.as_secs() as i64)),
    );
    web::block(move || -> Result<(), ApiError> {
        let mut conn = pool.get()?;
        let depth = crate::jobs::queue::depth(&mut conn)?;
        for state in crate::jobs::JobState::PENDING_AND_DEAD.map(crate::jobs::JobState::as_str) {
            m.jobs_by_state
                .with_label_values(&[state])
                .set(depth[state].as_i64().unwrap_or(0));
        }
        let ages = crate::jobs::queue::age_by_severity(&mut conn)?;
        for (rank, age) in ages.iter().enumerate() {
            let severity = format!("sev{}", rank + 1);
            m.queue_age.with_label_values(&[&severity]).set(*age);
        }
        m.unassigned
            .set(crate::decision::backlog::count_waiting(&mut conn)?);
        Ok(())
    })
    .await
    .map_err(|e| ApiError::internal("metrics", e))??;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.render()))
}

/// On the main listener: behind the admin token.
#[get("/metrics")]
pub async fn metrics(
    _admin: super::auth::Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    render(&state).await
}

/// On `GOLIATH_METRICS_BIND`: open, that address being the protection.
pub async fn metrics_open(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    render(&state).await
}
