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
/// Bytes of webhook bodies held at once while they are read. Webhooks are read before their
/// signature can be checked, so this bounds the memory unauthenticated clients can hold (a
/// client that stalls holds what it sent, for at most [`BODY_DEADLINE`]); a real webhook is a
/// few kilobytes.
pub const WEBHOOK_BODY_BUDGET: usize = 128 * 1024 * 1024;
/// Bodies declaring more than this are large for a webhook (PagerDuty's are a few kilobytes)...
const LARGE_BODY: u64 = 64 * 1024;
/// ...and together may hold only this part of the budget, so clients stalling on large bodies
/// never leave real webhooks without room.
const LARGE_BODY_SHARE: usize = WEBHOOK_BODY_BUDGET / 2;

static WEBHOOK_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Bytes a body being read holds of [`WEBHOOK_BODY_BUDGET`], given back when it is dropped.
struct Held(usize);

impl Held {
    /// Takes `n` more bytes, or says the budget is spent.
    fn take(&mut self, n: usize) -> bool {
        self.take_within(n, WEBHOOK_BODY_BUDGET)
    }

    /// Takes `n` more bytes while all bodies together stay within `cap`.
    fn take_within(&mut self, n: usize, cap: usize) -> bool {
        use std::sync::atomic::Ordering;
        let before = WEBHOOK_BYTES.fetch_add(n, Ordering::Relaxed);
        if before + n > cap {
            WEBHOOK_BYTES.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        self.0 += n;
        true
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        WEBHOOK_BYTES.fetch_sub(self.0, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Reads a webhook body: [`read_body`]'s limits, within [`WEBHOOK_BODY_BUDGET`] (503 with
/// Retry-After past it, so the sender tries again).
pub async fn read_webhook_body(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<web::Bytes, ApiError> {
    let mut held = Held(0);
    read_limited(req, payload, WEBHOOK_MAX_BODY, Some(&mut held)).await
}

/// Reads the body, refusing it with 413 past `limit` and 408 past [`BODY_DEADLINE`].
pub async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    read_limited(req, payload, limit, None).await
}

async fn read_limited(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    held: Option<&mut Held>,
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
    // A declared length is taken from the budget whole, before anything is read: a body that
    // cannot fit is refused at once, and the buffer is allocated once at its final size.
    let mut held = held;
    if let (Some(n), Some(h)) = (declared, held.as_deref_mut()) {
        let cap = if n > LARGE_BODY {
            LARGE_BODY_SHARE
        } else {
            WEBHOOK_BODY_BUDGET
        };
        if !h.take_within(n as usize, cap) {
            return Err(busy());
        }
    }
    let capacity = declared.map_or(0, |n| n as usize);
    match tokio::time::timeout(BODY_DEADLINE, collect(payload, limit, capacity, held)).await {
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

fn busy() -> ApiError {
    log::warn!("webhook bodies being read hold {WEBHOOK_BODY_BUDGET} bytes; refusing more");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "too many request bodies are being received; retry shortly",
    )
}

/// The body, or None once it passes `limit`. `capacity` is the declared length (already held
/// against the budget); a body without one takes from the budget as it arrives.
async fn collect(
    mut payload: web::Payload,
    limit: usize,
    capacity: usize,
    mut held: Option<&mut Held>,
) -> Result<Option<web::Bytes>, ApiError> {
    let mut body = web::BytesMut::with_capacity(capacity);
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("unreadable_body", e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        // Past the declared length (actix refuses that anyway) or with none, take as it comes.
        let beyond = (body.len() + chunk.len()).saturating_sub(capacity.max(body.len()));
        if let Some(held) = held.as_deref_mut() {
            if beyond > 0 && !held.take(beyond) {
                return Err(busy());
            }
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_budget_is_taken_and_given_back() {
        let mut big = Held(0);
        assert!(big.take(WEBHOOK_BODY_BUDGET - 1024));
        let mut small = Held(0);
        assert!(!small.take(4096), "over the budget");
        assert!(small.take(512), "within what is left");
        drop(big);
        assert!(small.take(4096), "given back when the body is done");
        let mut large = Held(0);
        assert!(large.take_within(LARGE_BODY_SHARE - 8192, LARGE_BODY_SHARE));
        assert!(
            !large.take_within(16384, LARGE_BODY_SHARE),
            "large bodies keep to their share"
        );
        assert!(small.take(16384), "while small ones still find room");
    }
}
