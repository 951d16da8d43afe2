//! Webhook endpoints. Each reads the raw body (signatures cover the exact bytes), checks the
//! signature before parsing, and answers PagerDuty within its 5 s deadline.

use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::app::AppState;
use crate::ingest::jira::JiraIntakeOutcome;
use crate::ingest::{IngestError, IngestOutcome, Parsed};

use super::error::ApiError;

/// Larger bodies are refused; PagerDuty drops webhooks over 256 KB anyway.
pub const MAX_BODY: usize = 1024 * 1024;

/// Reads the body, refusing it with 413 as soon as it passes `MAX_BODY`.
pub async fn read_body(mut payload: web::Payload) -> Result<web::Bytes, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("unreadable_body", e.to_string()))?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is over {MAX_BODY} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Reads the body and checks its signature before anything parses it.
async fn signed_body(
    payload: web::Payload,
    source: &str,
    verify: impl FnOnce(&[u8]) -> Result<(), IngestError>,
) -> Result<web::Bytes, ApiError> {
    let body = read_body(payload).await?;
    verify(&body).inspect_err(|e| log::warn!("{source} webhook refused: {e}"))?;
    Ok(body)
}

#[post("/webhooks/pagerduty")]
pub async fn pagerduty(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = signed_body(payload, "PagerDuty", |body| {
        state
            .ingest
            .verify(header(&req, "X-PagerDuty-Signature"), body)
    })
    .await?;
    let outcome = match state.ingest.parse(header(&req, "X-Webhook-Id"), &body)? {
        Parsed::Ignored { event_type } => IngestOutcome::Ignored { event_type },
        Parsed::Incident(delivery) => state.intake.submit(*delivery).await?,
    };
    Ok(match outcome {
        IngestOutcome::Ignored { .. } => HttpResponse::Accepted().json(&outcome),
        IngestOutcome::Success(_) => {
            state.wake_workers();
            HttpResponse::Ok().json(&outcome)
        }
        IngestOutcome::Duplicate(_) => HttpResponse::Ok().json(&outcome),
    })
}

#[post("/webhooks/jira")]
pub async fn jira(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = signed_body(payload, "Jira", |body| {
        state
            .jira_intake
            .verify(header(&req, "X-Hub-Signature"), body)
    })
    .await?;
    let delivery_id = header(&req, "X-Atlassian-Webhook-Identifier").map(String::from);
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
            HttpResponse::Ok().json(&outcome)
        }
        JiraIntakeOutcome::Duplicate { .. } => HttpResponse::Ok().json(&outcome),
        JiraIntakeOutcome::Ignored { .. } => HttpResponse::Accepted().json(&outcome),
    })
}
