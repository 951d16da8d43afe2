//! Intake: turns PagerDuty webhook deliveries into WorkItems, exactly once per incident, and
//! hands each new one to the decision engine in the same transaction.

pub mod batcher;
pub mod jira;
pub mod pagerduty;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use diesel::prelude::*;
use serde::Serialize;

use crate::config::PagerDutyConfig;
use crate::db::schema::{webhook_deliveries, work_items};
use crate::models::{record_events, NewEvent, NewWorkItem, WorkItem};
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
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
}

/// Hook the intake calls, inside its transaction, for the new WorkItems of a batch.
pub trait OnNewWorkItem: Send + Sync {
    /// Returns the items as the hook left them (for example assigned), in the same order.
    fn on_new(
        &self,
        conn: &mut PgConnection,
        items: &[(WorkItem, &PdIncident)],
    ) -> Result<Vec<WorkItem>, String>;
}

/// A delivery that passed parsing, ready to store.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `X-Webhook-Id`, else the event id.
    pub delivery_id: String,
    pub event: PdEvent,
    pub incident: PdIncident,
    pub raw: serde_json::Value,
}

/// What parsing found.
#[derive(Debug, Clone)]
pub enum Parsed {
    Incident(Box<Delivery>),
    Ignored { event_type: String },
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
/// id is stable for an incident and readable at a glance. `attempt` > 0 salts the digest, for
/// the rare incident whose id collides with another's in the same second.
pub fn work_item_id(incident: &PdIncident, attempt: u32) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(incident.id.as_bytes());
    if attempt > 0 {
        hasher.update(attempt.to_be_bytes());
    }
    format!(
        "wi-{}-{}",
        incident.created_at.format("%Y%m%d%H%M%S"),
        &hex::encode(hasher.finalize())[..6]
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

    /// Parses a delivery (no database). `delivery_id` is `X-Webhook-Id` when PagerDuty sent it.
    pub fn parse(&self, delivery_id: Option<&str>, body: &[u8]) -> Result<Parsed, IngestError> {
        let raw = pagerduty::parse_body(body)?;
        let event = pagerduty::envelope(&raw)?;
        if !matches!(
            event.event_type.as_str(),
            "incident.triggered" | "incident.created"
        ) {
            return Ok(Parsed::Ignored {
                event_type: event.event_type,
            });
        }
        let incident = event.incident()?;
        let delivery_id = delivery_id.unwrap_or(&event.id).to_string();
        Ok(Parsed::Incident(Box::new(Delivery {
            delivery_id,
            event,
            incident,
            raw,
        })))
    }

    /// Parses and stores one delivery in its own transaction.
    pub fn accept(
        &self,
        conn: &mut PgConnection,
        delivery_id: Option<&str>,
        body: &[u8],
    ) -> Result<IngestOutcome, IngestError> {
        match self.parse(delivery_id, body)? {
            Parsed::Ignored { event_type } => Ok(IngestOutcome::Ignored { event_type }),
            Parsed::Incident(d) => Ok(self.store_batch(conn, &[*d])?.remove(0)),
        }
    }

    /// Stores a batch of deliveries in one transaction: a handful of statements for the whole
    /// batch, however large, and one commit. Returns an outcome per delivery, in order.
    pub fn store_batch(
        &self,
        conn: &mut PgConnection,
        batch: &[Delivery],
    ) -> Result<Vec<IngestOutcome>, IngestError> {
        conn.transaction(|conn| self.store_in_tx(conn, batch))
    }

    fn store_in_tx(
        &self,
        conn: &mut PgConnection,
        batch: &[Delivery],
    ) -> Result<Vec<IngestOutcome>, IngestError> {
        // Deliveries seen before are answered with the WorkItem they made.
        let delivery_ids: Vec<&str> = batch.iter().map(|d| d.delivery_id.as_str()).collect();
        let seen: HashSet<String> = webhook_deliveries::table
            .filter(webhook_deliveries::source.eq("pagerduty"))
            .filter(webhook_deliveries::delivery_id.eq_any(&delivery_ids))
            .select(webhook_deliveries::delivery_id)
            .load::<String>(conn)?
            .into_iter()
            .collect();

        // One new WorkItem per incident not seen before, in a stable order (so concurrent
        // batches take row locks in the same order).
        let mut creators: BTreeMap<&str, &Delivery> = BTreeMap::new();
        for d in batch.iter().filter(|d| !seen.contains(&d.delivery_id)) {
            creators.entry(d.incident.id.as_str()).or_insert(d);
        }
        let mut items: HashMap<String, WorkItem> = HashMap::new();
        let mut created: Vec<WorkItem> = vec![];
        let mut pending: Vec<&Delivery> = creators.values().copied().collect();
        for attempt in 0..4 {
            if pending.is_empty() {
                break;
            }
            let inserted = self.insert_items(conn, &pending, attempt)?;
            let inserted_incidents: HashSet<String> = inserted
                .iter()
                .filter_map(|i| i.pagerduty_incident_id.clone())
                .collect();
            created.extend(inserted);
            // Not inserted: the incident exists already, or (rarely) its id collided.
            let missing: Vec<&str> = pending
                .iter()
                .map(|d| d.incident.id.as_str())
                .filter(|id| !inserted_incidents.contains(*id))
                .collect();
            let existing = items_by_incident(conn, &missing)?;
            pending.retain(|d| {
                !inserted_incidents.contains(&d.incident.id)
                    && !existing.contains_key(&d.incident.id)
            });
            items.extend(existing);
        }
        if let Some(d) = pending.first() {
            return Err(IngestError::InvalidField {
                field: "event.data.id",
                reason: format!("no free work item id for incident {}", d.incident.id),
            });
        }
        // Incidents of re-delivered webhooks.
        let others: Vec<&str> = batch
            .iter()
            .map(|d| d.incident.id.as_str())
            .filter(|id| {
                !items.contains_key(*id)
                    && !created
                        .iter()
                        .any(|c| c.pagerduty_incident_id.as_deref() == Some(*id))
            })
            .collect();
        items.extend(items_by_incident(conn, &others)?);

        // Record the new deliveries, linked to their WorkItems.
        let created_ids: HashMap<&str, &str> = created
            .iter()
            .filter_map(|i| {
                i.pagerduty_incident_id
                    .as_deref()
                    .map(|p| (p, i.id.as_str()))
            })
            .collect();
        let new_deliveries: Vec<_> = batch
            .iter()
            .filter(|d| !seen.contains(&d.delivery_id))
            .map(|d| {
                let item_id = created_ids
                    .get(d.incident.id.as_str())
                    .copied()
                    .or_else(|| items.get(&d.incident.id).map(|i| i.id.as_str()));
                (
                    webhook_deliveries::source.eq("pagerduty"),
                    webhook_deliveries::delivery_id.eq(d.delivery_id.as_str()),
                    webhook_deliveries::event_type.eq(d.event.event_type.as_str()),
                    webhook_deliveries::work_item_id.eq(item_id),
                )
            })
            .collect();
        if !new_deliveries.is_empty() {
            diesel::insert_into(webhook_deliveries::table)
                .values(&new_deliveries)
                .on_conflict_do_nothing()
                .execute(conn)?;
        }

        // History, then the decisions for the new WorkItems.
        let by_incident: HashMap<&str, &Delivery> =
            creators.iter().map(|(k, v)| (*k, *v)).collect();
        let events: Vec<NewEvent> = created
            .iter()
            .map(|item| {
                let d = by_incident[item.pagerduty_incident_id.as_deref().unwrap_or("")];
                NewEvent {
                    work_item_id: item.id.clone(),
                    kind: "received",
                    detail: serde_json::json!({
                        "source": "pagerduty",
                        "event_type": d.event.event_type,
                        "event_id": d.event.id,
                        "incident_id": d.incident.id,
                        "incident_url": d.incident.html_url,
                    }),
                    occurred_at: d.event.occurred_at.unwrap_or_else(Utc::now),
                }
            })
            .collect();
        record_events(conn, &events)?;
        let created = match &self.on_new {
            Some(hook) if !created.is_empty() => {
                let with_incidents: Vec<(WorkItem, &PdIncident)> = created
                    .into_iter()
                    .map(|item| {
                        let d = by_incident[item.pagerduty_incident_id.as_deref().unwrap_or("")];
                        (item, &d.incident)
                    })
                    .collect();
                hook.on_new(conn, &with_incidents)
                    .map_err(IngestError::Decision)?
            }
            _ => created,
        };

        // One answer per delivery: the one that created an item gets `success`.
        let mut fresh: HashMap<String, WorkItem> = created
            .into_iter()
            .filter_map(|i| i.pagerduty_incident_id.clone().map(|p| (p, i)))
            .collect();
        let mut out = Vec::with_capacity(batch.len());
        for d in batch {
            let is_creator = !seen.contains(&d.delivery_id)
                && creators
                    .get(d.incident.id.as_str())
                    .is_some_and(|c| std::ptr::eq(*c, d));
            if is_creator {
                if let Some(item) = fresh.remove(&d.incident.id) {
                    let summary = WorkItemSummary::of(&item);
                    items.insert(d.incident.id.clone(), item);
                    out.push(IngestOutcome::Success(summary));
                    continue;
                }
            }
            let item = items
                .get(&d.incident.id)
                .or_else(|| fresh.get(&d.incident.id))
                .ok_or(IngestError::Db(diesel::result::Error::NotFound))?;
            out.push(IngestOutcome::Duplicate(WorkItemSummary::of(item)));
        }
        Ok(out)
    }

    fn insert_items(
        &self,
        conn: &mut PgConnection,
        deliveries: &[&Delivery],
        attempt: u32,
    ) -> Result<Vec<WorkItem>, IngestError> {
        let prepared: Vec<(String, String, String, String)> = deliveries
            .iter()
            .map(|d| {
                let incident = &d.incident;
                let (service, matched) = pagerduty::map_service(
                    &self.config,
                    incident.service_id.as_deref(),
                    &incident.service_name,
                );
                if !matched && attempt == 0 {
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
                (
                    work_item_id(incident, attempt),
                    service,
                    severity,
                    format!("PAGERDUTY-{}", incident.number),
                )
            })
            .collect();
        let rows: Vec<NewWorkItem> = deliveries
            .iter()
            .zip(&prepared)
            .map(|(d, (id, service, severity, origin))| NewWorkItem {
                id,
                item_type: "incident",
                service,
                severity,
                title: &d.incident.title,
                description: d.incident.description.as_deref(),
                status: "open",
                origin_system: origin,
                pagerduty_incident_id: Some(&d.incident.id),
                raw_payload: &d.raw,
                created_at: d.incident.created_at,
                context: &d.incident.context,
            })
            .collect();
        Ok(diesel::insert_into(work_items::table)
            .values(&rows)
            .on_conflict_do_nothing()
            .returning(WorkItem::as_returning())
            .get_results(conn)?)
    }
}

/// Existing WorkItems by PagerDuty incident id.
fn items_by_incident(
    conn: &mut PgConnection,
    incident_ids: &[&str],
) -> QueryResult<HashMap<String, WorkItem>> {
    if incident_ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(work_items::table
        .filter(work_items::pagerduty_incident_id.eq_any(incident_ids))
        .select(WorkItem::as_select())
        .load::<WorkItem>(conn)?
        .into_iter()
        .filter_map(|i| i.pagerduty_incident_id.clone().map(|p| (p, i)))
        .collect())
}
