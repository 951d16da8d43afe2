//! Webhook endpoints. Each reads the raw body (signatures cover the exact bytes), checks the
//! signature before parsing, and answers PagerDuty within its 5 s deadline.

use actix_web::{post, web, HttpRequest, HttpResponse};

use crate::app::AppState;
use crate::ingest::jira::JiraIntakeOutcome;
use crate::ingest::lifecycle::{IncidentUpdate, UpdateOutcome};
use crate::ingest::{IngestError, IngestOutcome, Parsed};

use super::body::read_webhook_body;
use super::error::ApiError;

pub fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A delivery id header, which keys the delivery's row: refused (400) past
/// [`crate::db::MAX_ID_BYTES`], as no index could hold it. The signature does not cover it.
fn delivery_id<'a>(req: &'a HttpRequest, name: &str) -> Result<Option<&'a str>, ApiError> {
    let value = header(req, name);
    if let Some(problem) = value.and_then(|v| crate::db::too_long(v.len(), crate::db::MAX_ID_BYTES))
    {
        return Err(ApiError::bad_request(
            "invalid_header",
            format!("header `{name}` {problem}"),
        ));
    }
    Ok(value)
}

/// Reads the body and checks its signature before anything parses it.
async fn signed_body(
    req: &HttpRequest,
    payload: web::Payload,
    source: &str,
    verify: impl FnOnce(&[u8]) -> Result<(), IngestError>,
) -> Result<web::Bytes, ApiError> {
    let body = read_webhook_body(req, payload).await?;
    verify(&body).inspect_err(|e| log::warn!("{source} webhook refused: {e}"))?;
    Ok(body)
}

#[post("/webhooks/pagerduty")]
pub async fn pagerduty(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = std::time::Instant::now();
    let answer = pagerduty_delivery(req, payload, state).await;
    crate::metrics::metrics()
        .intake_seconds
        .observe(started.elapsed().as_secs_f64());
    counted("pagerduty", answer)
}

/// Counts a webhook by source and outcome (its error code when refused); the response.
fn counted(
    source: &str,
    answer: Result<(HttpResponse, &'static str), ApiError>,
) -> Result<HttpResponse, ApiError> {
    let answer = answer.map_err(never_not_found);
    let outcome = match &answer {
        Ok((_, outcome)) => *outcome,
        Err(e) => e.code,
    };
    crate::metrics::metrics()
        .webhooks
        .with_label_values(&[source, outcome])
        .inc();
    answer.map(|(response, _)| response)
}

/// A row Goliath looked for and did not find is its own state, not the sender's mistake: a 404
/// counts towards PagerDuty disabling the subscription, while a 503 makes it deliver again.
fn never_not_found(e: ApiError) -> ApiError {
    if e.status == actix_web::http::StatusCode::NOT_FOUND {
        log::warn!(
            "webhook: {}; answering 503 so the sender retries",
            e.message
        );
        ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "retry_later",
            format!("{}; retry later", e.message),
        )
    } else {
        e
    }
}

/// A PagerDuty delivery's answer, with its outcome's name for the metrics.
async fn pagerduty_delivery(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<(HttpResponse, &'static str), ApiError> {
    let body = signed_body(&req, payload, "PagerDuty", |body| {
        let headers = req
            .headers()
            .get_all("X-PagerDuty-Signature")
            .filter_map(|v| v.to_str().ok());
        state.ingest.verify(headers, body)
    })
    .await?;
    let outcome = match state
        .ingest
        .parse(delivery_id(&req, "X-Webhook-Id")?, &body)?
    {
        Parsed::Ignored { event_type } => IngestOutcome::Ignored { event_type },
        Parsed::Incident(delivery) => state.intake.submit(*delivery).await?,
        Parsed::Update(update) => return incident_update(&state, *update).await,
    };
    Ok(match outcome {
        IngestOutcome::Ignored { .. } => (HttpResponse::Accepted().json(&outcome), "ignored"),
        IngestOutcome::Success(_) => {
            state.wake_workers();
            (HttpResponse::Ok().json(&outcome), "success")
        }
        IngestOutcome::Duplicate(_) => (HttpResponse::Ok().json(&outcome), "duplicate"),
    })
}

/// Applies an update; an incident never seen is first made a work item (and decided) from the
/// incident data the event carries.
async fn incident_update(
    state: &web::Data<AppState>,
    update: IncidentUpdate,
) -> Result<(HttpResponse, &'static str), ApiError> {
    let update = std::sync::Arc::new(update);
    let mut outcome = apply_update(state, update.clone()).await?;
    if let UpdateOutcome::Unknown { .. } = outcome {
        if let Some(delivery) = update.creating_delivery() {
            log::info!(
                "{} for incident {} that Goliath never saw: taking the incident in first",
                update.event.event_type,
                update.incident_id
            );
            state.intake.submit(delivery).await?;
            outcome = apply_update(state, update).await?;
        }
    }
    Ok(match outcome {
        UpdateOutcome::Updated { .. } => {
            state.wake_workers();
            (HttpResponse::Ok().json(&outcome), "updated")
        }
        UpdateOutcome::Stale { .. } => (HttpResponse::Ok().json(&outcome), "stale"),
        UpdateOutcome::Duplicate { .. } => (HttpResponse::Ok().json(&outcome), "duplicate"),
        UpdateOutcome::Unknown { .. } => (HttpResponse::Accepted().json(&outcome), "unknown"),
    })
}

async fn apply_update(
    state: &web::Data<AppState>,
    update: std::sync::Arc<IncidentUpdate>,
) -> Result<UpdateOutcome, ApiError> {
    let st = state.clone();
    web::block(move || -> Result<UpdateOutcome, ApiError> {
        let mut conn = st.pool.get()?;
        Ok(st.lifecycle.apply(&mut conn, &update)?)
    })
    .await
    .map_err(|e| ApiError::internal("webhook worker", e))?
}

#[post("/webhooks/jira")]
pub async fn jira(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    counted("jira", jira_delivery(req, payload, state).await)
}

/// A Jira delivery's answer, with its outcome's name for the metrics.
async fn jira_delivery(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<(HttpResponse, &'static str), ApiError> {
    let body = signed_body(&req, payload, "Jira", |body| {
        state
            .jira_intake
            .verify(header(&req, "X-Hub-Signature"), body)
    })
    .await?;
    let delivery_id = delivery_id(&req, "X-Atlassian-Webhook-Identifier")?.map(String::from);
    let st = state.clone();
    let outcome = web::block(move || -> Result<JiraIntakeOutcome, ApiError> {
        let mut conn = st.pool.get()?;
        Ok(st
            .jira_intake
            .accept(&mut conn, delivery_id.as_deref(), &body)?)
    })
    .await
    .map_err(|e| ApiError::internal("webhook worker", e))??;
    Ok(match outcome {
        JiraIntakeOutcome::Applied { .. } => {
            state.wake_workers();
            (HttpResponse::Ok().json(&outcome), "applied")
        }
        JiraIntakeOutcome::Duplicate { .. } => (HttpResponse::Ok().json(&outcome), "duplicate"),
        JiraIntakeOutcome::Ignored { .. } => (HttpResponse::Accepted().json(&outcome), "ignored"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::StatusCode;

    #[test]
    fn a_missing_row_is_a_retry_for_the_sender_never_a_404() {
        let answer = counted("pagerduty", Err(ApiError::not_found("no work item `wi-1`")));
        let Err(e) = answer else {
            panic!("still an error")
        };
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.message.contains("wi-1"), "{}", e.message);
        let other = counted("jira", Err(ApiError::unauthorized("bad signature")));
        assert!(matches!(other, Err(e) if e.status == StatusCode::UNAUTHORIZED));
    }
}
