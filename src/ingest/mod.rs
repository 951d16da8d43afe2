//! Intake: turns PagerDuty webhook deliveries into WorkItems, exactly once per incident, and
//! hands each new one to the decision engine before it is written, so the item, its decision
//! and its Jira job are written together.

pub mod batcher;
pub mod jira;
pub mod lifecycle;
pub mod pagerduty;
pub mod retention;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Text};
use serde::Serialize;

use crate::batch::RowBatch;
use crate::config::PagerDutyConfig;
use crate::db::json::JsonText;
use crate::decision::{DecisionService, Paged};
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
    #[error("field `{0}` holds a NUL character (\\u0000), which cannot be stored")]
    HoldsNul(String),
    /// An id or name past its limit, which its index could not hold.
    #[error("field `{field}` is {len} bytes long; at most {max} bytes are allowed")]
    TooLong {
        field: String,
        len: usize,
        max: usize,
    },
    /// An object names this key (its path) twice: see [`crate::db::json::parse_unique`].
    #[error("key `{0}` appears twice in its object; each key may appear only once")]
    DuplicateKey(String),
    #[error("signature check failed: {0}")]
    Signature(#[from] SignatureError),
    /// No secret is configured for this source and unsigned webhooks are not allowed.
    #[error(
        "{0} webhooks are refused: no secret is configured. Set {1} to the webhook's signing \
         secret (or GOLIATH_ALLOW_UNSIGNED_WEBHOOKS=true, for local trials only)"
    )]
    NoSecret(&'static str, &'static str),
    #[error("the decision engine failed: {0}")]
    Decision(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    /// Internal, never returned: the batch is run again knowing that these incidents have
    /// work items (`existing`) or that other incidents hold their ids (`taken`).
    #[error("run the batch again: ids of {taken:?} taken, {existing:?} exist")]
    Rerun {
        taken: Vec<String>,
        existing: Vec<String>,
    },
}

impl From<crate::db::json::BodyJsonError> for IngestError {
    fn from(e: crate::db::json::BodyJsonError) -> Self {
        use crate::db::json::BodyJsonError;
        match e {
            BodyJsonError::Malformed(m) => IngestError::MalformedJson(m),
            BodyJsonError::DuplicateKey(path) => IngestError::DuplicateKey(path),
        }
    }
}

/// Refuses an id or name of `len` bytes past `max`, naming its field.
pub fn bounded(field: impl Into<String>, len: usize, max: usize) -> Result<(), IngestError> {
    if len > max {
        return Err(IngestError::TooLong {
            field: field.into(),
            len,
            max,
        });
    }
    Ok(())
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
    /// An event about an incident after its trigger.
    Update(Box<lifecycle::IncidentUpdate>),
    Ignored {
        event_type: String,
    },
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
    pub severity: crate::routing::Severity,
    pub assignee_id: Option<String>,
    /// `assigned`, or `unassigned` when nobody could take it yet (it is decided again as
    /// people free up).
    pub work_item_status: crate::models::WorkItemStatus,
}

impl WorkItemSummary {
    fn of(item: &WorkItem) -> Self {
        WorkItemSummary {
            work_item_id: item.id.clone(),
            incident_id: item.pagerduty_incident_id.clone(),
            incident_number: incident_number(&item.origin_system),
            service: item.service.clone(),
            severity: item.severity,
            assignee_id: item.assignee_id.clone(),
            work_item_status: item.status,
        }
    }
}

/// The incident number in `PAGERDUTY-<number>`.
fn incident_number(origin_system: &str) -> Option<i64> {
    origin_system
        .strip_prefix("PAGERDUTY-")
        .and_then(|n| n.parse().ok())
}

/// The WorkItems of incidents whose new item was skipped on write. Not prepared: it runs only
/// for redeliveries, and each call is planned for its own values.
const EXISTING_SQL: &str = "\
    SELECT id, pagerduty_incident_id AS incident, origin_system, service, severity, assignee_id, \
           status \
      FROM work_items WHERE pagerduty_incident_id = ANY($1)";

#[derive(QueryableByName)]
struct ExistingRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Nullable<Text>)]
    incident: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    origin_system: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    service: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    severity: Option<crate::routing::Severity>,
    #[diesel(sql_type = Nullable<Text>)]
    assignee_id: Option<String>,
    #[diesel(sql_type = Text)]
    status: crate::models::WorkItemStatus,
}

pub struct IngestService {
    config: PagerDutyConfig,
    /// Decides the new work items of each batch (none: they are stored undecided).
    decision: Option<Arc<DecisionService>>,
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
    pub fn new(config: PagerDutyConfig, decision: Option<Arc<DecisionService>>) -> Self {
        IngestService { config, decision }
    }

    pub fn config(&self) -> &PagerDutyConfig {
        &self.config
    }

    /// Checks every `X-PagerDuty-Signature` header when secrets are configured.
    pub fn verify<'a>(
        &self,
        headers: impl Iterator<Item = &'a str>,
        body: &[u8],
    ) -> Result<(), IngestError> {
        if self.config.webhook_secrets.is_empty() {
            if self.config.allow_unsigned {
                return Ok(());
            }
            return Err(IngestError::NoSecret(
                "PagerDuty",
                "PAGERDUTY_WEBHOOK_SECRET",
            ));
        }
        crate::signature::verify_headers(headers, "v1=", &self.config.webhook_secrets, body)?;
        Ok(())
    }

    /// Parses a delivery (no database). `delivery_id` is `X-Webhook-Id` when PagerDuty sent it.
    pub fn parse(&self, delivery_id: Option<&str>, body: &[u8]) -> Result<Parsed, IngestError> {
        let raw = pagerduty::parse_body(body)?;
        let event = pagerduty::envelope(raw)?;
        let update = lifecycle::UpdateKind::from_event_type(&event.event_type);
        let trigger = matches!(
            event.event_type.as_str(),
            "incident.triggered" | "incident.created"
        );
        if !trigger && update.is_none() {
            return Ok(Parsed::Ignored {
                event_type: event.event_type,
            });
        }
        // serde_json accepts it, PostgreSQL's jsonb does not: refuse it here, not as a 500.
        refuse_nul(body)?;
        let delivery_id = delivery_id.unwrap_or(&event.id).to_string();
        // parse_body checked that the body is JSON (hence UTF-8).
        let raw = JsonText(String::from_utf8_lossy(body).into_owned());
        if let Some(kind) = update {
            return Ok(Parsed::Update(Box::new(lifecycle::IncidentUpdate::parse(
                kind,
                delivery_id,
                event,
                raw,
            )?)));
        }
        let incident = event.incident()?;
        Ok(Parsed::Incident(Box::new(Delivery {
            delivery_id,
            event,
            incident,
            raw,
        })))
    }

    /// Stores a batch of deliveries: a handful of statements for the whole batch, however
    /// large. Everything new is written by one statement, which is its own transaction (no
    /// BEGIN or COMMIT round trips). Returns an outcome per delivery, in order.
    pub fn store_batch(
        &self,
        conn: &mut PgConnection,
        batch: &[Delivery],
    ) -> Result<Vec<IngestOutcome>, IngestError> {
        let mut attempt = 0;
        let mut known = Known::default();
        loop {
            match self.store_once(conn, batch, &known) {
                Err(IngestError::Rerun { taken, existing }) => {
                    if let Some(twice) = taken.iter().find(|i| known.salted.contains(*i)) {
                        return Err(IngestError::InvalidField {
                            field: "event.data.id",
                            reason: format!("no free work item id for incident {twice}"),
                        });
                    }
                    known.salted.extend(taken);
                    known.existing.extend(existing);
                }
                // Decided on kept inputs that changed meanwhile: decide again on fresh ones.
                Err(IngestError::Db(e))
                    if crate::batch::is_inputs_changed(&e) && attempt < MAX_RETRIES =>
                {
                    attempt += 1;
                }
                // Another batch committed first what this one took as free (a person's last
                // slot, an incident, an id) and the two waited on each other: run again from
                // the start, on what is there now.
                Err(IngestError::Db(e)) if crate::db::is_transient(&e) && attempt < MAX_RETRIES => {
                    attempt += 1;
                    log::debug!("retrying a batch of {} ({e})", batch.len());
                    std::thread::sleep(retry_pause(attempt));
                }
                result => return result,
            }
        }
    }

    fn store_once(
        &self,
        conn: &mut PgConnection,
        batch: &[Delivery],
        known: &Known,
    ) -> Result<Vec<IngestOutcome>, IngestError> {
        // One new WorkItem per incident, made by its first delivery. Whether the incident has
        // one already is found on write (its unique key): a redelivery is rare, and a read
        // before writing would cost every batch a round trip. Batches run side by side; what a
        // concurrent batch commits meanwhile is caught on write too (unique keys, the capacity
        // check of the insert triggers).
        let mut creators: BTreeMap<&str, &Delivery> = BTreeMap::new();
        for d in batch {
            creators.entry(d.incident.id.as_str()).or_insert(d);
        }
        let mut answers: HashMap<String, WorkItemSummary> = HashMap::new();
        if !known.existing.is_empty() {
            let existing: Vec<&str> = known.existing.iter().map(String::as_str).collect();
            answers.extend(existing_items(conn, &existing)?);
        }
        let now = Utc::now();
        let sources: Vec<&Delivery> = creators
            .values()
            .filter(|d| !answers.contains_key(&d.incident.id))
            .copied()
            .collect();
        let mut items: Vec<WorkItem> = sources
            .iter()
            .map(|d| {
                let attempt = u32::from(known.salted.contains(&d.incident.id));
                self.new_item(work_item_id(&d.incident, attempt), &d.incident, now)
            })
            .collect();
        let paged: Vec<Paged> = sources
            .iter()
            .map(|d| Paged {
                user_ids: &d.incident.assignee_user_ids,
                escalation_policy_id: d.incident.escalation_policy_id.as_deref(),
            })
            .collect();

        // Decide before writing, so each WorkItem is written once, with its owner; then write
        // the items, the deliveries, the decisions, the history and the Jira jobs together.
        // (The history's first line, "received", is read from the item's raw payload.)
        let mut rows = RowBatch::new();
        let mut decided = crate::decision::Decided::default();
        if let Some(decision) = self.decision.as_ref().filter(|_| !items.is_empty()) {
            decided = decision
                .route(conn, &mut items, &paged, &mut rows)
                .map_err(|e| IngestError::Decision(e.to_string()))?;
        }
        for (item, d) in items.iter().zip(&sources) {
            rows.push_item(item, d.raw.clone());
        }
        for d in batch {
            rows.push_delivery(
                "pagerduty",
                &d.delivery_id,
                &d.event.event_type,
                &d.incident.id,
            );
        }
        // Skipped items would have been counted against their owners' loads when the others
        // were decided: a batch of several is written whole or not at all, then decided again
        // without the incidents that have items (and with salted ids where theirs were taken).
        let whole = items.len() > 1;
        let written = if whole {
            rows.insert_whole(conn)
        } else {
            rows.insert(conn)
        };
        let made: HashSet<String> = match written {
            Ok(written) => {
                if let Some(decision) = &self.decision {
                    decision.written(&rows, &written.totals);
                }
                let made: HashSet<String> = written.made.into_iter().collect();
                // Only what was written was decided, once (a rerun or a duplicate is not).
                decided.count(|id| made.contains(id));
                made
            }
            Err(e) if crate::batch::is_partly_skipped(&e) => HashSet::new(),
            Err(e) => {
                // Refused (inputs changed, someone went past capacity) or failed: whatever it
                // was decided on is read again.
                if let Some(decision) = &self.decision {
                    decision.write_failed();
                }
                return Err(e.into());
            }
        };

        let skipped: Vec<&str> = items
            .iter()
            .filter(|item| !made.contains(&item.id))
            .filter_map(|item| item.pagerduty_incident_id.as_deref())
            .collect();
        if !skipped.is_empty() {
            let found = existing_items(conn, &skipped)?;
            let unfound: Vec<&WorkItem> = items
                .iter()
                .filter(|item| {
                    item.pagerduty_incident_id
                        .as_ref()
                        .is_some_and(|i| skipped.contains(&i.as_str()) && !found.contains_key(i))
                })
                .collect();
            let taken = ids_taken(conn, &unfound)?;
            if whole || !taken.is_empty() {
                if found.is_empty() && taken.is_empty() {
                    // What stopped it committed nothing in the end (a concurrent batch rolled
                    // back): run again as after any transient failure.
                    return Err(IngestError::Db(diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::SerializationFailure,
                        Box::new("a concurrent batch held an incident and rolled back".to_string()),
                    )));
                }
                return Err(IngestError::Rerun {
                    taken,
                    existing: found.into_keys().collect(),
                });
            }
            answers.extend(found);
        }
        for item in items.iter().filter(|item| made.contains(&item.id)) {
            if let Some(incident) = &item.pagerduty_incident_id {
                answers.insert(incident.clone(), WorkItemSummary::of(item));
            }
        }
        record_deliveries_of_existing(conn, batch, &made, &answers)?;

        // One answer per delivery: the one that made an item gets `success`.
        batch
            .iter()
            .map(|d| {
                let answer = answers
                    .get(&d.incident.id)
                    .cloned()
                    .ok_or(IngestError::Db(diesel::result::Error::NotFound))?;
                let creator = creators
                    .get(d.incident.id.as_str())
                    .is_some_and(|c| std::ptr::eq(*c, d));
                Ok(if creator && made.contains(&answer.work_item_id) {
                    IngestOutcome::Success(answer)
                } else {
                    IngestOutcome::Duplicate(answer)
                })
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
        if !matched && pagerduty::first_unmapped_sighting(&service) {
            log::warn!(
                "PagerDuty service `{}` ({}) has no mapping; using `{service}` (said once per \
                 service). Set PAGERDUTY_SERVICE_{}=<service> to map it",
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
            status: crate::models::WorkItemStatus::Open,
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
            // The intake statement leaves these to their column defaults; the trigger's
            // assignees are in the raw payload, and updates keep both from then on.
            pagerduty_status: "triggered".into(),
            pagerduty_assignees: vec![],
            pagerduty_event_at: None,
            escalate_at: None,
            routing_mode: crate::models::RoutingMode::Assign,
            taken_by: None,
            waiting: false,
        }
    }
}

/// What earlier runs of a batch found: incidents that have a work item, and incidents whose
/// work item id another incident holds.
#[derive(Default)]
struct Known {
    existing: HashSet<String>,
    salted: HashSet<String>,
}

/// The WorkItems of these incidents, by incident id.
fn existing_items(
    conn: &mut PgConnection,
    incidents: &[&str],
) -> QueryResult<HashMap<String, WorkItemSummary>> {
    let rows: Vec<ExistingRow> = diesel::sql_query(EXISTING_SQL)
        .bind::<Array<Text>, _>(incidents)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let incident = row.incident?;
            let summary = WorkItemSummary {
                incident_number: row.origin_system.as_deref().and_then(incident_number),
                incident_id: Some(incident.clone()),
                work_item_id: row.id,
                service: row.service.unwrap_or_default(),
                severity: row.severity?,
                assignee_id: row.assignee_id,
                work_item_status: row.status,
            };
            Some((incident, summary))
        })
        .collect())
}

/// The incidents of `items` whose work item id another incident's item holds.
fn ids_taken(conn: &mut PgConnection, items: &[&WorkItem]) -> QueryResult<Vec<String>> {
    use crate::db::schema::work_items;
    if items.is_empty() {
        return Ok(vec![]);
    }
    let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let held: HashSet<String> = work_items::table
        .filter(work_items::id.eq_any(&ids))
        .select(work_items::id)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    Ok(items
        .iter()
        .filter(|i| held.contains(&i.id))
        .filter_map(|i| i.pagerduty_incident_id.clone())
        .collect())
}

/// Records the deliveries of incidents whose work item this batch did not make (the batch
/// statement records only those of the items it made), each against the existing item.
fn record_deliveries_of_existing(
    conn: &mut PgConnection,
    batch: &[Delivery],
    made: &HashSet<String>,
    answers: &HashMap<String, WorkItemSummary>,
) -> QueryResult<()> {
    use crate::db::schema::webhook_deliveries;
    let rows: Vec<_> = batch
        .iter()
        .filter_map(|d| {
            let item = &answers.get(&d.incident.id)?.work_item_id;
            (!made.contains(item)).then_some((
                webhook_deliveries::source.eq("pagerduty"),
                webhook_deliveries::delivery_id.eq(&d.delivery_id),
                webhook_deliveries::event_type.eq(&d.event.event_type),
                webhook_deliveries::work_item_id.eq(Some(item)),
            ))
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    diesel::insert_into(webhook_deliveries::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|_| ())
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

/// Refuses a JSON body holding a NUL character, naming the field (the byte scan is cheap; the
/// body is parsed again only to name the field).
pub fn refuse_nul(body: &[u8]) -> Result<(), IngestError> {
    if !contains_bytes(body, br"\u0000") {
        return Ok(());
    }
    let value = crate::db::json::parse_unique(body)?;
    match crate::db::json::nul_path(&value) {
        Some(path) => Err(IngestError::HoldsNul(path)),
        None => Ok(()),
    }
}

/// Whether `needle` occurs in `haystack`.
fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
