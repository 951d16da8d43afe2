//! Reading request bodies: under a size limit (checked against the declared length before
//! anything is read) and a deadline, so a client that declares a body and sends it slowly, or
//! never, is answered 408 and holds nothing for long.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

use super::error::ApiError;

/// Webhook bodies: PagerDuty drops webhooks over 256 KB anyway.
pub const WEBHOOK_MAX_BODY: usize = 1024 * 1024;
/// Admin bodies: a roster import of thousands of people fits.
pub const ADMIN_MAX_BODY: usize = 8 * 1024 * 1024;
/// The whole body must arrive within this (PagerDuty itself gives up after 5 s).
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// Reads the body, refusing it with 413 past `limit` and 408 past [`BODY_DEADLINE`].
pub async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is over {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(BODY_DEADLINE, collect(payload, limit)).await {
        Ok(Ok(Some(body))) => Ok(body),
        Ok(Ok(None)) => Err(too_large()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the body did not arrive within {} s",
                BODY_DEADLINE.as_secs()
            ),
        )),
    }
}

/// The body, or None once it passes `limit`.
async fn collect(mut payload: web::Payload, limit: usize) -> Result<Option<web::Bytes>, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("unreadable_body", e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}
