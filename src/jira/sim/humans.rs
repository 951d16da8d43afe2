//! The background thread that plays the people (resolve or hand off when their planned moment
//! comes) and delivers every webhook, in order, with Jira's headers, signature and retries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::state::{PlannedAction, SimDelivery};
use super::Shared;
use crate::jira::webhook::{IDENTIFIER_HEADER, RETRY_HEADER, SIGNATURE_HEADER};

/// Retries after the first attempt (Jira Cloud retries too; the exact count is not published).
const MAX_RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

pub(crate) fn run(shared: Arc<Shared>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .user_agent("Atlassian Webhook HTTP Client")
        .build()
        .into();
    let mut state = shared.lock();
    loop {
        if state.shutdown {
            return;
        }
        let now = Instant::now();
        let due = state.schedule.peek().map(|p| p.due);
        match due {
            None => {
                state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            Some(due) if due > now => {
                state = shared
                    .wake
                    .wait_timeout(state, due - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
            Some(_) => {}
        }
        let Some(plan) = state.schedule.pop() else {
            continue;
        };
        let ctx = &shared.ctx;
        let body = match plan.action {
            PlannedAction::Deliver(body) => Some(*body),
            action => match state.find(&plan.issue_key) {
                Some(idx)
                    if state.issues[idx].generation == plan.generation
                        && state.issues[idx].resolution.is_none() =>
                {
                    let at = plan.due_sim_ms;
                    let handoff_to = match action {
                        PlannedAction::HandOff => state.handoff_target(ctx, idx),
                        _ => None,
                    };
                    match handoff_to {
                        Some(to) => {
                            let from = state.issues[idx].assignee.clone();
                            state.issues[idx].handoffs += 1;
                            log::info!(
                                "jira-sim: {} hands {} to {to}",
                                from.as_deref().unwrap_or("nobody"),
                                plan.issue_key
                            );
                            state.set_assignee(ctx, idx, Some(to), at, from.as_deref())
                        }
                        // Resolving, or handing off with nobody to hand to.
                        None => {
                            log::info!(
                                "jira-sim: {} resolves {}",
                                state.issues[idx].assignee.as_deref().unwrap_or("nobody"),
                                plan.issue_key
                            );
                            state.resolve(ctx, idx, at, None)
                        }
                    }
                }
                _ => None,
            },
        };
        let Some(body) = body else {
            continue;
        };
        if ctx.config.webhook_url.is_none() {
            continue;
        }
        state.delivery_seq += 1;
        let identifier = delivery_identifier(ctx.config.seed, state.delivery_seq);
        drop(state);
        let delivery = deliver(&shared, &agent, &identifier, &body);
        state = shared.lock();
        state.record_delivery(delivery);
    }
}

/// A UUID-shaped, deterministic delivery id.
fn delivery_identifier(seed: u64, n: u64) -> String {
    let mut rng = super::state::Rng::new(seed ^ n.wrapping_mul(0xA24B_AED4_963E_E407));
    let (a, b) = (rng.next_u64(), rng.next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 52) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

fn retryable(status: u16) -> bool {
    matches!(status, 408 | 409 | 425 | 429 | 500..=599)
}

/// Sends one webhook, retrying like Jira Cloud does (408, 409, 425, 429, 5xx, network errors)
/// with the same identifier and an `X-Atlassian-Webhook-Retry` count.
fn deliver(shared: &Shared, agent: &ureq::Agent, identifier: &str, body: &Value) -> SimDelivery {
    let ctx = &shared.ctx;
    let url = ctx.config.webhook_url.as_deref().unwrap_or_default();
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let signature = ctx
        .config
        .webhook_secret
        .as_deref()
        .map(|s| format!("sha256={}", crate::signature::sign_hex(s, &bytes)));
    let mut delivery = SimDelivery {
        identifier: identifier.to_owned(),
        issue_key: body
            .pointer("/issue/key")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        webhook_event: body["webhookEvent"].as_str().unwrap_or_default().to_owned(),
        issue_event_type_name: body["issue_event_type_name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        timestamp_ms: body["timestamp"].as_i64().unwrap_or_default(),
        status: None,
        error: None,
        attempts: 0,
        delivered: false,
    };
    let mut backoff = FIRST_BACKOFF;
    for attempt in 0..=MAX_RETRIES {
        delivery.attempts = attempt + 1;
        let mut request = agent
            .post(url)
            .header("Content-Type", "application/json; charset=utf-8")
            .header(IDENTIFIER_HEADER, identifier)
            .header("X-Atlassian-Webhook-Flow", "Primary");
        if attempt > 0 {
            request = request.header(RETRY_HEADER, attempt.to_string());
        }
        if let Some(sig) = &signature {
            request = request.header(SIGNATURE_HEADER, sig);
        }
        let again = match request.send(&bytes[..]) {
            Ok(response) => {
                let status = response.status().as_u16();
                delivery.status = Some(status);
                delivery.error = None;
                if (200..300).contains(&status) {
                    delivery.delivered = true;
                    false
                } else {
                    delivery.error = Some(format!("HTTP {status}"));
                    retryable(status)
                }
            }
            Err(e) => {
                delivery.error = Some(e.to_string());
                true
            }
        };
        if !again || attempt == MAX_RETRIES || shared.lock().shutdown {
            break;
        }
        std::thread::sleep(backoff);
        backoff *= 2;
    }
    if delivery.delivered {
        log::debug!(
            "jira-sim: delivered {} {} for {}",
            delivery.webhook_event,
            delivery.issue_event_type_name,
            delivery.issue_key
        );
    } else {
        log::warn!(
            "jira-sim: webhook {} for {} failed after {} attempts: {}",
            delivery.identifier,
            delivery.issue_key,
            delivery.attempts,
            delivery.error.as_deref().unwrap_or("?")
        );
    }
    delivery
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_uuid_shaped_and_deterministic() {
        let a = delivery_identifier(7, 1);
        assert_eq!(a, delivery_identifier(7, 1));
        assert_ne!(a, delivery_identifier(7, 2));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
