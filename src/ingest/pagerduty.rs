//! PagerDuty V3 webhook payloads: the envelope, the incident inside it, and how a PagerDuty
//! service and priority map to Goliath's service and severity.

use crate::routing::Severity;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::{env_key, PagerDutyConfig};

use crate::db::{stored_name_len, MAX_ID_BYTES, MAX_NAME_BYTES};

use super::{bounded, IngestError};

/// The V3 envelope's `event`, with `data` kept as JSON (its shape depends on the event type,
/// and PagerDuty adds new types over time).
#[derive(Debug, Clone)]
pub struct PdEvent {
    pub id: String,
    pub event_type: String,
    pub resource_type: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    /// Who caused the event (`null` for automation).
    pub agent: Option<PdAgent>,
    pub data: Value,
}

/// The envelope's `agent`: a user (or a service, for automation) reference.
#[derive(Debug, Clone, PartialEq)]
pub struct PdAgent {
    pub id: String,
    /// `user_reference`, `service_reference`, ...
    pub kind: String,
    pub summary: Option<String>,
}

impl PdAgent {
    /// The PagerDuty user id, when a person caused the event.
    pub fn user_id(&self) -> Option<&str> {
        (self.kind == "user_reference" || self.kind == "user").then_some(self.id.as_str())
    }
}

/// Incident facts Goliath keeps from an `incident.*` event.
#[derive(Debug, Clone, PartialEq)]
pub struct PdIncident {
    pub id: String,
    pub number: i64,
    pub title: String,
    pub description: Option<String>,
    pub service_id: Option<String>,
    pub service_name: String,
    pub priority: Option<String>,
    pub urgency: Option<String>,
    pub created_at: DateTime<Utc>,
    pub html_url: Option<String>,
    /// PagerDuty user ids currently assigned (paged, so on call for it).
    pub assignee_user_ids: Vec<String>,
    /// The incident's escalation policy (whose on-call people may own it).
    pub escalation_policy_id: Option<String>,
    /// Context tags for the routing model: `team:<name>`, `policy:<name>`, `type:<name>`.
    pub context: Vec<String>,
}

/// Parses the envelope. Unknown fields are ignored; missing required ones are named.
pub fn parse_envelope(body: &[u8]) -> Result<PdEvent, IngestError> {
    envelope(parse_body(body)?)
}

/// The body as JSON (parsed once: the intake keeps it as the raw payload too). A key named
/// twice in an object is refused, so the parsed value is all the stored text holds.
pub fn parse_body(body: &[u8]) -> Result<Value, IngestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError::MalformedJson("the body is empty".into()));
    }
    Ok(crate::db::json::parse_unique(body)?)
}

/// The envelope's `event` from a parsed body (taken apart, not copied).
pub fn envelope(root: Value) -> Result<PdEvent, IngestError> {
    let Value::Object(mut obj) = root else {
        return Err(IngestError::MalformedJson(
            "the body is not a JSON object".into(),
        ));
    };
    if obj.contains_key("messages") && !obj.contains_key("event") {
        return Err(IngestError::V2NotSupported);
    }
    let Some(Value::Object(mut event)) = obj.remove("event") else {
        return Err(IngestError::MissingField("event"));
    };
    let text = |key: &'static str, path: &'static str| -> Result<String, IngestError> {
        string_field(event.get(key), path)
    };
    let occurred_at = match event.get("occurred_at") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_str()
                .and_then(parse_time)
                .filter(|t| crate::db::json::plausible_time(*t))
                .ok_or(IngestError::InvalidField {
                    field: "event.occurred_at",
                    reason: format!("{v} is not an ISO-8601 time between 1990 and 2200"),
                })?,
        ),
    };
    // The event id keys the delivery, its outcomes and its jobs.
    let id = text("id", "event.id")?;
    bounded("event.id", id.len(), MAX_ID_BYTES)?;
    Ok(PdEvent {
        id,
        event_type: text("event_type", "event.event_type")?,
        resource_type: event
            .get("resource_type")
            .and_then(Value::as_str)
            .map(String::from),
        occurred_at,
        agent: event.get("agent").and_then(|a| {
            Some(PdAgent {
                id: a.get("id")?.as_str()?.to_string(),
                kind: a
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                summary: a.get("summary").and_then(Value::as_str).map(String::from),
            })
        }),
        data: event.remove("data").unwrap_or(Value::Null),
    })
}

/// A required string: absent, null or empty is missing; another type is invalid.
fn string_field(value: Option<&Value>, path: &'static str) -> Result<String, IngestError> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        None | Some(Value::Null) | Some(Value::String(_)) => Err(IngestError::MissingField(path)),
        Some(other) => Err(IngestError::InvalidField {
            field: path,
            reason: format!("must be a string, not {other}"),
        }),
    }
}

/// A reference's `summary` (else its `name`), refused past [`MAX_NAME_BYTES`] as stored; `at`
/// is the reference's path.
fn name_of<'v>(
    reference: &'v serde_json::Map<String, Value>,
    at: &str,
) -> Result<Option<&'v str>, IngestError> {
    let found = ["summary", "name"]
        .into_iter()
        .find_map(|key| Some((key, reference.get(key)?)));
    let Some((key, Some(name))) = found.map(|(key, v)| (key, v.as_str())) else {
        return Ok(None);
    };
    bounded(format!("{at}.{key}"), stored_name_len(name), MAX_NAME_BYTES)?;
    Ok(Some(name))
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl PdEvent {
    /// The incident in `data` (for `data.type == "incident"` events).
    pub fn incident(&self) -> Result<PdIncident, IngestError> {
        self.incident_or(None)
    }

    /// The incident in `data`; `created_at`, when given, stands in for a missing creation time
    /// (update events need not carry it: PagerDuty's own example of one does not).
    pub fn incident_or(
        &self,
        created_at: Option<DateTime<Utc>>,
    ) -> Result<PdIncident, IngestError> {
        let data = self
            .data
            .as_object()
            .ok_or(IngestError::MissingField("event.data"))?;
        let str_field = |key: &str| data.get(key).and_then(Value::as_str).map(str::to_string);
        let id = string_field(data.get("id"), "event.data.id")?;
        bounded("event.data.id", id.len(), MAX_ID_BYTES)?;
        let number = match data.get("number") {
            None | Some(Value::Null) => return Err(IngestError::MissingField("event.data.number")),
            Some(n) => n
                .as_i64()
                .filter(|n| *n > 0)
                .ok_or(IngestError::InvalidField {
                    field: "event.data.number",
                    reason: format!("{n} is not a positive whole number"),
                })?,
        };
        let title = string_field(data.get("title"), "event.data.title")?;
        if title.trim().is_empty() {
            return Err(IngestError::MissingField("event.data.title"));
        }
        let created_at = match data.get("created_at").and_then(Value::as_str) {
            Some(s) => parse_time(s)
                .filter(|t| crate::db::json::plausible_time(*t))
                .ok_or(IngestError::InvalidField {
                    field: "event.data.created_at",
                    reason: format!("`{s}` is not an ISO-8601 time between 1990 and 2200"),
                })?,
            None => created_at.ok_or(IngestError::MissingField("event.data.created_at"))?,
        };
        let service = match data.get("service") {
            None | Some(Value::Null) => {
                return Err(IngestError::MissingField("event.data.service"))
            }
            Some(v) => v.as_object().ok_or(IngestError::InvalidField {
                field: "event.data.service",
                reason: "must be an object (a service reference)".into(),
            })?,
        };
        let service_id = service.get("id").and_then(Value::as_str).map(String::from);
        if let Some(id) = &service_id {
            bounded("event.data.service.id", id.len(), MAX_ID_BYTES)?;
        }
        // An unmapped service is stored by its name, lower-cased.
        let service_name = match name_of(service, "event.data.service")? {
            Some(name) => name.to_string(),
            None => {
                let id = service_id
                    .clone()
                    .ok_or(IngestError::MissingField("event.data.service.summary"))?;
                bounded(
                    "event.data.service.id",
                    stored_name_len(&id),
                    MAX_NAME_BYTES,
                )?;
                id
            }
        };
        let description = data
            .get("body")
            .and_then(|b| b.get("details"))
            .and_then(|d| match d {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .or_else(|| str_field("description"))
            .filter(|s| !s.trim().is_empty() && *s != title);
        let priority = data
            .get("priority")
            .and_then(|p| p.get("summary").or_else(|| p.get("name")))
            .and_then(Value::as_str)
            .map(String::from);
        let assignee_user_ids = data
            .get("assignees")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|a| a.get("id").and_then(Value::as_str).map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        // Context tags key the learner's state per person: bounded as names.
        let summary = |v: &Value, at: &str| -> Result<Option<String>, IngestError> {
            let Some(reference) = v.as_object() else {
                return Ok(None);
            };
            Ok(name_of(reference, at)?.map(|s| s.trim().to_lowercase()))
        };
        let mut context = vec![];
        let teams = data.get("teams").and_then(Value::as_array);
        for (i, team) in teams.into_iter().flatten().enumerate() {
            if let Some(t) = summary(team, &format!("event.data.teams[{i}]"))? {
                context.push(format!("team:{t}"));
            }
        }
        if let Some(policy) = data.get("escalation_policy") {
            if let Some(p) = summary(policy, "event.data.escalation_policy")? {
                context.push(format!("policy:{p}"));
            }
        }
        if let Some(kind) = data.get("incident_type") {
            if let Some(k) = summary(kind, "event.data.incident_type")? {
                context.push(format!("type:{k}"));
            }
        }
        context.sort();
        context.dedup();
        Ok(PdIncident {
            context,
            id,
            number,
            title,
            description,
            service_id,
            service_name,
            priority,
            urgency: str_field("urgency"),
            created_at,
            html_url: str_field("html_url"),
            assignee_user_ids,
            escalation_policy_id: data
                .get("escalation_policy")
                .and_then(|p| p.get("id"))
                .and_then(Value::as_str)
                .map(String::from),
        })
    }
}

/// The built-in PagerDuty service name to Goliath service map.
const DEFAULT_SERVICES: [(&str, &str); 6] = [
    ("api-service", "api"),
    ("frontend-service", "frontend"),
    ("backend-service", "backend"),
    ("infrastructure", "infrastructure"),
    ("data-service", "data"),
    ("mobile-service", "mobile"),
];

/// Maps a PagerDuty service to a Goliath service; the bool is false when nothing matched and
/// the lower-cased name was used (worth a warning: it may be a missing mapping).
pub fn map_service(cfg: &PagerDutyConfig, id: Option<&str>, name: &str) -> (String, bool) {
    if let Some(service) = id.and_then(|id| cfg.service_by_id.get(id)) {
        return (service.clone(), true);
    }
    if let Some(service) = cfg.service_by_name.get(&env_key(name)) {
        return (service.clone(), true);
    }
    let lower = name.trim().to_lowercase();
    if let Some((_, service)) = DEFAULT_SERVICES.iter().find(|(pd, _)| *pd == lower) {
        return (service.to_string(), true);
    }
    (lower, false)
}

/// True the first time this process sees `service` unmapped: the warning about a missing
/// mapping is worth one line per service, not one per webhook (a storm on an unmapped service
/// would otherwise log every incident). Past 10,000 names nothing more is remembered or
/// reported, so hostile names cannot grow it.
pub fn first_unmapped_sighting(service: &str) -> bool {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    const MAX_REMEMBERED: usize = 10_000;
    let mut seen = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if seen.len() >= MAX_REMEMBERED || seen.contains(service) {
        return false;
    }
    seen.insert(service.to_string())
}

/// Severity from the priority when set (P1..P5, overridable), else from urgency, else sev3.
pub fn map_severity(
    cfg: &PagerDutyConfig,
    priority: Option<&str>,
    urgency: Option<&str>,
) -> Severity {
    if let Some(priority) = priority {
        let key = env_key(priority);
        if let Some(sev) = cfg.priority_overrides.get(&key) {
            return *sev;
        }
        let builtin = match key.as_str() {
            "P1" => Some(Severity::Sev1),
            "P2" => Some(Severity::Sev2),
            "P3" => Some(Severity::Sev3),
            "P4" | "P5" => Some(Severity::Sev4),
            _ => None,
        };
        if let Some(sev) = builtin {
            return sev;
        }
    }
    match urgency.map(str::to_ascii_lowercase).as_deref() {
        Some("high") => Severity::Sev2,
        _ => Severity::Sev3,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_unmapped_service_is_reported_once() {
        let name = "unmapped-service-reported-once";
        assert!(first_unmapped_sighting(name));
        assert!(!first_unmapped_sighting(name));
        assert!(first_unmapped_sighting("another-unmapped-service"));
    }

    use super::*;

    #[test]
    fn severity_prefers_priority_then_urgency() {
        let mut cfg = PagerDutyConfig::default();
        assert_eq!(map_severity(&cfg, Some("P1"), Some("low")), Severity::Sev1);
        assert_eq!(map_severity(&cfg, Some("P5"), None), Severity::Sev4);
        assert_eq!(map_severity(&cfg, None, Some("high")), Severity::Sev2);
        assert_eq!(
            map_severity(&cfg, Some("Custom"), Some("low")),
            Severity::Sev3
        );
        assert_eq!(map_severity(&cfg, None, None), Severity::Sev3);
        cfg.priority_overrides.insert("P2".into(), Severity::Sev1);
        assert_eq!(map_severity(&cfg, Some("P2"), None), Severity::Sev1);
    }

    #[test]
    fn service_mapping_order() {
        let mut cfg = PagerDutyConfig::default();
        assert_eq!(
            map_service(&cfg, Some("PX"), "API-Service"),
            ("api".into(), true)
        );
        assert_eq!(
            map_service(&cfg, Some("PX"), "Checkout API"),
            ("checkout api".into(), false)
        );
        cfg.service_by_name
            .insert("CHECKOUT_API".into(), "payments".into());
        assert_eq!(map_service(&cfg, Some("PX"), "Checkout API").0, "payments");
        cfg.service_by_id.insert("PX".into(), "edge".into());
        assert_eq!(map_service(&cfg, Some("PX"), "Checkout API").0, "edge");
    }

    #[test]
    fn envelope_errors_name_the_problem() {
        assert!(matches!(
            parse_envelope(b"{"),
            Err(IngestError::MalformedJson(_))
        ));
        assert!(matches!(
            parse_envelope(br#"{"messages":[]}"#),
            Err(IngestError::V2NotSupported)
        ));
        assert!(matches!(
            parse_envelope(br#"{"event":{"id":"x"}}"#),
            Err(IngestError::MissingField("event.event_type"))
        ));
    }
}
