//! Intake: turns PagerDuty webhook deliveries into WorkItems, exactly once per incident, and
//! hands each new one to the decision engine in the same transaction.

pub mod batcher;
pub mod jira;
pub mod pagerduty;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text};
use serde::Serialize;

use crate::config::PagerDutyConfig;
use crate::db::batch::RowBatch;
use crate::db::json::JsonText;
use crate::models::WorkItem;
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

/// Hook the intake calls, inside its transaction, for the new WorkItems of a batch, before
/// they are written (so each is written once, with its owner).
pub trait OnNewWorkItem: Send + Sync {
    /// Sets each item's owner, status and reason (the intake holds
    /// [`crate::db::lock_assignments`]'s lock shared) and adds what follows from them to
    /// `batch`, which the intake writes with the items.
    fn route(
        &self,
        conn: &mut PgConnection,
        items: &mut [WorkItem],
        incidents: &[&PdIncident],
        batch: &mut RowBatch,
    ) -> Result<(), String>;
}

/// A delivery that passed parsing, ready to store.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `X-Webhook-Id`, else the event id.
    pub delivery_id: String,
    pub event: PdEvent,
    pub incident: PdIncident,
    /// The body as received, stored as the WorkItem's raw payload.
    pub raw: JsonText,
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
            incident_number: incident_number(&item.origin_system),
            service: item.service.clone(),
            severity: item.severity.clone(),
            assignee_id: item.assignee_id.clone(),
        }
    }
}

/// The incident number in `PAGERDUTY-<number>`.
fn incident_number(origin_system: &str) -> Option<i64> {
    origin_system
        .strip_prefix("PAGERDUTY-")
        .and_then(|n| n.parse().ok())
}

/// Takes [`crate::db::lock_assignments`]'s lock shared, then reads the seen
/// deliveries (`incident` null) and existing WorkItems of a batch: one round trip. The read's
/// snapshot may predate the lock; it covers only rows that intake itself writes, and a batch
/// that missed one fails on its unique key and is run again.
const KNOWN_SQL: &str = "\
    WITH locked AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared($1)) \
    SELECT delivery_id AS id, NULL::text AS incident, NULL::text AS origin_system, \
           NULL::text AS service, NULL::text AS severity, NULL::text AS assignee_id \
      FROM locked, webhook_deliveries WHERE source = 'pagerduty' AND delivery_id = ANY($2) \
    UNION ALL \
    SELECT id, pagerduty_incident_id, origin_system, service, severity, assignee_id \
      FROM locked, work_items WHERE pagerduty_incident_id = ANY($3) OR id = ANY($4)";

#[derive(QueryableByName)]
struct KnownRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Nullable<Text>)]
    incident: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    origin_system: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    service: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    severity: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    assignee_id: Option<String>,
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
        // serde_json accepts it, PostgreSQL's jsonb does not: refuse it here, not as a 500.
        if contains_bytes(body, br"\u0000") {
            return Err(IngestError::InvalidField {
                field: "event",
                reason: "a string holds a NUL character (\\u0000), which cannot be stored".into(),
            });
        }
        // parse_body checked that the body is JSON (hence UTF-8).
        let raw = JsonText(String::from_utf8_lossy(body).into_owned());
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
        let mut attempt = 0;
        loop {
            match conn.transaction(|conn| self.store_in_tx(conn, batch)) {
                // Another batch committed first what this one read as free (a person's last
                // slot, an incident, an id): run again from the start, on what is there now.
                Err(IngestError::Db(e)) if crate::db::is_transient(&e) && attempt < MAX_RETRIES => {
                    attempt += 1;
                    log::debug!("retrying a batch of {} ({e})", batch.len());
                    std::thread::sleep(retry_pause(attempt));
                }
                result => return result,
            }
        }
    }

    fn store_in_tx(
        &self,
        conn: &mut PgConnection,
        batch: &[Delivery],
    ) -> Result<Vec<IngestOutcome>, IngestError> {
        // Batches run side by side, but not beside a change of an existing item's owner. What
        // a concurrent batch commits meanwhile is caught on write (unique keys, the capacity
        // check of the open-load trigger) and the batch is run again.
        //
        // With the lock: deliveries seen before, and WorkItems that exist for these incidents
        // (or hold the ids new ones would get), in one read.
        let delivery_ids: Vec<&str> = batch.iter().map(|d| d.delivery_id.as_str()).collect();
        let incident_ids: Vec<&str> = batch.iter().map(|d| d.incident.id.as_str()).collect();
        // A new item's id, and the salted one it falls back on.
        let first_ids: Vec<String> = batch
            .iter()
            .flat_map(|d| [work_item_id(&d.incident, 0), work_item_id(&d.incident, 1)])
            .collect();
        // Not prepared: a generic plan made while these tables were nearly empty would keep
        // scanning them whole as they grow (measured: 6.5 ms instead of 0.2 ms per batch on a
        // fresh database), so each call is planned for its own values.
        let known: Vec<KnownRow> = diesel::sql_query(KNOWN_SQL)
            .bind::<BigInt, _>(crate::db::ASSIGNMENT_LOCK)
            .bind::<Array<Text>, _>(&delivery_ids)
            .bind::<Array<Text>, _>(&incident_ids)
            .bind::<Array<Text>, _>(&first_ids)
            .load(conn)?;
        let mut seen: HashSet<String> = HashSet::new();
        let mut taken: HashSet<String> = HashSet::new();
        let mut answers: HashMap<String, WorkItemSummary> = HashMap::new();
        for row in known {
            match row.incident {
                None => {
                    seen.insert(row.id);
                }
                Some(incident) => {
                    taken.insert(row.id.clone());
                    if incident_ids.contains(&incident.as_str()) {
                        let summary = WorkItemSummary {
                            work_item_id: row.id,
                            incident_number: row.origin_system.as_deref().and_then(incident_number),
                            incident_id: Some(incident.clone()),
                            service: row.service.unwrap_or_default(),
                            severity: row.severity.unwrap_or_default(),
                            assignee_id: row.assignee_id,
                        };
                        answers.insert(incident, summary);
                    }
                }
            }
        }

        // One new WorkItem per incident not seen before, made by its first delivery.
        let mut creators: BTreeMap<&str, &Delivery> = BTreeMap::new();
        for d in batch.iter().filter(|d| !seen.contains(&d.delivery_id)) {
            creators.entry(d.incident.id.as_str()).or_insert(d);
        }

        // The new WorkItems, each with an id no other item has (a digest collision within the
        // same second is salted away).
        let now = Utc::now();
        let mut items: Vec<WorkItem> = vec![];
        let mut sources: Vec<&Delivery> = vec![];
        for d in creators
            .values()
            .filter(|d| !answers.contains_key(&d.incident.id))
        {
            let id = (0..2)
                .map(|attempt| work_item_id(&d.incident, attempt))
                .find(|id| !taken.contains(id))
                .ok_or_else(|| IngestError::InvalidField {
                    field: "event.data.id",
                    reason: format!("no free work item id for incident {}", d.incident.id),
                })?;
            taken.insert(id.clone());
            items.push(self.new_item(id, &d.incident, now));
            sources.push(d);
        }
        let incidents: Vec<&PdIncident> = sources.iter().map(|d| &d.incident).collect();

        // Decide before writing, so each WorkItem is written once, with its owner; then write
        // the items, the deliveries, the decisions, the history and the Jira jobs together.
        let mut rows = RowBatch::new();
        if let Some(hook) = &self.on_new {
            if !items.is_empty() {
                hook.route(conn, &mut items, &incidents, &mut rows)
                    .map_err(IngestError::Decision)?;
            }
        }
        for (item, d) in items.iter().zip(&sources) {
            rows.push_item(item, d.raw.clone());
            rows.push_event(
                &item.id,
                "received",
                &serde_json::json!({
                    "source": "pagerduty",
                    "event_type": d.event.event_type,
                    "event_id": d.event.id,
                    "incident_id": d.incident.id,
                    "incident_url": d.incident.html_url,
                }),
                d.event.occurred_at.unwrap_or(now),
            );
            if let Some(incident) = &item.pagerduty_incident_id {
                answers.insert(incident.clone(), WorkItemSummary::of(item));
            }
        }
        for d in batch.iter().filter(|d| !seen.contains(&d.delivery_id)) {
            rows.push_delivery(
                "pagerduty",
                &d.delivery_id,
                &d.event.event_type,
                answers.get(&d.incident.id).map(|a| a.work_item_id.as_str()),
            );
        }
        rows.insert(conn)?;

        // One answer per delivery: the one that created an item gets `success`.
        let created: HashSet<&str> = sources.iter().map(|d| d.delivery_id.as_str()).collect();
        batch
            .iter()
            .map(|d| {
                let answer = answers
                    .get(&d.incident.id)
                    .cloned()
                    .ok_or(IngestError::Db(diesel::result::Error::NotFound))?;
                Ok(
                    if created.contains(d.delivery_id.as_str())
                        && creators
                            .get(d.incident.id.as_str())
                            .is_some_and(|c| std::ptr::eq(*c, d))
                    {
                        IngestOutcome::Success(answer)
                    } else {
                        IngestOutcome::Duplicate(answer)
                    },
                )
            })
            .collect()
    }

    /// A new WorkItem for an incident, as it will be written (open, no owner yet).
    fn new_item(&self, id: String, incident: &PdIncident, now: chrono::DateTime<Utc>) -> WorkItem {
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
        WorkItem {
            id,
            item_type: "incident".into(),
            service,
            severity,
            title: incident.title.clone(),
            description: incident.description.clone(),
            status: "open".into(),
            origin_system: format!("PAGERDUTY-{}", incident.number),
            pagerduty_incident_id: Some(incident.id.clone()),
            // Written from the delivery's own text; nothing downstream of intake reads it here.
            raw_payload: serde_json::Value::Null,
            created_at: incident.created_at,
            received_at: now,
            assignee_id: None,
            undecided_reason: None,
            jira_key: None,
            jira_issue_id: None,
            resolved_at: None,
            context: incident.context.clone(),
        }
    }
}

/// Runs of a batch after a transient failure before its error is returned.
const MAX_RETRIES: u32 = 6;

/// A short pause before a retry, growing with the attempt and spread by the clock's low bits,
/// so two batches that collided do not collide again in step.
fn retry_pause(attempt: u32) -> std::time::Duration {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 1_000);
    std::time::Duration::from_micros(u64::from(attempt) * 500 + u64::from(jitter))
}

/// Whether `needle` occurs in `haystack`.
fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
