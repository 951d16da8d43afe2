//! Intake: turns PagerDuty webhook deliveries into WorkItems, exactly once per incident, and
//! hands each new one to the decision engine in the same transaction.

pub mod jira;
pub mod pagerduty;

use std::sync::Arc;

use chrono::Utc;
use diesel::prelude::*;
use serde::Serialize;

use crate::config::PagerDutyConfig;
use crate::db::schema::{webhook_deliveries, work_items};
use crate::models::{record_event, NewWorkItem, WorkItem};
use crate::signature::SignatureError;

pub use pagerduty::{PdEvent, PdIncident};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error(
        "PagerDuty V2 webhooks (a `messages` array) are not supported: create a V3 webhook \
         subscription (Integrations > Generic Webhooks (v3)) pointing at /webhooks/pagerduty"
    )]
    V2NotSupported,
    #[error("required field `{0}` is missing")]
    MissingField(&'static str),
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("signature check failed: {0}")]
    Signature(#[from] SignatureError),
    #[error("the decision engine failed: {0}")]
    Decision(String),
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
}

/// Hook the intake calls, inside its transaction, for every new WorkItem.
pub trait OnNewWorkItem: Send + Sync {
    /// Returns the item as the hook left it (for example assigned), or None when unchanged.
    fn on_new(
        &self,
        conn: &mut PgConnection,
        item: &WorkItem,
        incident: &PdIncident,
    ) -> Result<Option<WorkItem>, String>;
}

/// What happened to a delivery.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum IngestOutcome {
    /// A new WorkItem was created.
    Success(WorkItemSummary),
    /// The delivery or the incident was seen before; names the existing WorkItem.
    Duplicate(WorkItemSummary),
    /// An event type Goliath does not act on (yet); acknowledged so PagerDuty keeps the
    /// subscription enabled.
    Ignored { event_type: String },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkItemSummary {
    pub work_item_id: String,
    pub incident_id: Option<String>,
    pub incident_number: Option<i64>,
    pub service: String,
    pub severity: String,
    pub assignee_id: Option<String>,
}

impl WorkItemSummary {
    fn of(item: &WorkItem) -> Self {
        WorkItemSummary {
            work_item_id: item.id.clone(),
            incident_id: item.pagerduty_incident_id.clone(),
            incident_number: item
                .origin_system
                .strip_prefix("PAGERDUTY-")
                .and_then(|n| n.parse().ok()),
            service: item.service.clone(),
            severity: item.severity.clone(),
            assignee_id: item.assignee_id.clone(),
        }
    }
}

pub struct IngestService {
    config: PagerDutyConfig,
    on_new: Option<Arc<dyn OnNewWorkItem>>,
}

/// `wi-YYYYMMDDHHMMSS-<6 hex>`: the incident's time plus a digest of its PagerDuty id, so the
/// id is stable for an incident and readable at a glance.
pub fn work_item_id(incident: &PdIncident) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(incident.id.as_bytes());
    format!(
        "wi-{}-{}",
        incident.created_at.format("%Y%m%d%H%M%S"),
        &hex::encode(digest)[..6]
    )
}

impl IngestService {
    pub fn new(config: PagerDutyConfig, on_new: Option<Arc<dyn OnNewWorkItem>>) -> Self {
        IngestService { config, on_new }
    }

    pub fn config(&self) -> &PagerDutyConfig {
        &self.config
    }

    /// Checks the `X-PagerDuty-Signature` header when secrets are configured.
    pub fn verify(&self, header: Option<&str>, body: &[u8]) -> Result<(), IngestError> {
        if self.config.webhook_secrets.is_empty() {
            return Ok(());
        }
        crate::signature::verify_header(header, "v1=", &self.config.webhook_secrets, body)?;
        Ok(())
    }

    /// Stores one delivery. `delivery_id` is `X-Webhook-Id` when PagerDuty sent it.
    pub fn accept(
        &self,
        conn: &mut PgConnection,
        delivery_id: Option<&str>,
        body: &[u8],
    ) -> Result<IngestOutcome, IngestError> {
        let event = pagerduty::parse_envelope(body)?;
        if !matches!(
            event.event_type.as_str(),
            "incident.triggered" | "incident.created"
        ) {
            return Ok(IngestOutcome::Ignored {
                event_type: event.event_type,
            });
        }
        let incident = event.incident()?;
        let raw: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| IngestError::MalformedJson(e.to_string()))?;
        let delivery_id = delivery_id.unwrap_or(&event.id).to_string();
        conn.transaction(|conn| self.store(conn, &delivery_id, &event, &incident, &raw))
    }

    fn store(
        &self,
        conn: &mut PgConnection,
        delivery_id: &str,
        event: &PdEvent,
        incident: &PdIncident,
        raw: &serde_json::Value,
    ) -> Result<IngestOutcome, IngestError> {
        // The delivery row is the idempotency key: a retry of the same webhook stops here
        // (ON CONFLICT waits for a concurrent twin to commit, then sees its row).
        let fresh = diesel::insert_into(webhook_deliveries::table)
            .values((
                webhook_deliveries::source.eq("pagerduty"),
                webhook_deliveries::delivery_id.eq(delivery_id),
                webhook_deliveries::event_type.eq(&event.event_type),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?;
        if fresh == 0 {
            let existing = work_items::table
                .filter(work_items::pagerduty_incident_id.eq(&incident.id))
                .select(WorkItem::as_select())
                .first(conn)
                .optional()?;
            if let Some(item) = existing {
                return Ok(IngestOutcome::Duplicate(WorkItemSummary::of(&item)));
            }
        }

        let (service, matched) = pagerduty::map_service(
            &self.config,
            incident.service_id.as_deref(),
            &incident.service_name,
        );
        if !matched {
            log::warn!(
                "PagerDuty service `{}` ({}) has no mapping; using `{service}`. Set \
                 PAGERDUTY_SERVICE_{}=<service> to map it",
                incident.service_name,
                incident.service_id.as_deref().unwrap_or("no id"),
                crate::config::env_key(&incident.service_name),
            );
        }
        let severity = pagerduty::map_severity(
            &self.config,
            incident.priority.as_deref(),
            incident.urgency.as_deref(),
        );
        let id = work_item_id(incident);
        let origin = format!("PAGERDUTY-{}", incident.number);
        let inserted: Option<WorkItem> = diesel::insert_into(work_items::table)
            .values(NewWorkItem {
                id: &id,
                item_type: "incident",
                service: &service,
                severity: &severity,
                title: &incident.title,
                description: incident.description.as_deref(),
                status: "open",
                origin_system: &origin,
                pagerduty_incident_id: Some(&incident.id),
                raw_payload: raw,
                created_at: incident.created_at,
                context: &incident.context,
            })
            .on_conflict(work_items::pagerduty_incident_id)
            .do_nothing()
            .returning(WorkItem::as_returning())
            .get_result(conn)
            .optional()?;
        let Some(item) = inserted else {
            // Same incident, new delivery (for example `incident.created` after `triggered`).
            let item: WorkItem = work_items::table
                .filter(work_items::pagerduty_incident_id.eq(&incident.id))
                .select(WorkItem::as_select())
                .first(conn)?;
            self.link_delivery(conn, delivery_id, &item.id)?;
            return Ok(IngestOutcome::Duplicate(WorkItemSummary::of(&item)));
        };
        self.link_delivery(conn, delivery_id, &item.id)?;
        record_event(
            conn,
            &item.id,
            "received",
            serde_json::json!({
                "source": "pagerduty",
                "event_type": event.event_type,
                "event_id": event.id,
                "incident_id": incident.id,
                "incident_url": incident.html_url,
            }),
            event.occurred_at.unwrap_or_else(Utc::now),
        )?;
        let item = match &self.on_new {
            // The hook hands back the row as it wrote it (no re-read needed).
            Some(hook) => hook
                .on_new(conn, &item, incident)
                .map_err(IngestError::Decision)?
                .unwrap_or(item),
            None => item,
        };
        Ok(IngestOutcome::Success(WorkItemSummary::of(&item)))
    }

    fn link_delivery(
        &self,
        conn: &mut PgConnection,
        delivery_id: &str,
        item_id: &str,
    ) -> QueryResult<()> {
        diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::source.eq("pagerduty"))
                .filter(webhook_deliveries::delivery_id.eq(delivery_id)),
        )
        .set(webhook_deliveries::work_item_id.eq(item_id))
        .execute(conn)
        .map(|_| ())
    }
}
