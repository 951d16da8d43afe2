//! PagerDuty V3 webhook payloads: the envelope, the incident inside it, and how a PagerDuty
//! service and priority map to Goliath's service and severity.

use crate::routing::Severity;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::{env_key, PagerDutyConfig};

use super::IngestError;

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

/// The body as JSON (parsed once: the intake keeps it as the raw payload too).
pub fn parse_body(body: &[u8]) -> Result<Value, IngestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError::MalformedJson("the body is empty".into()));
    }
    serde_json::from_slice(body).map_err(|e| IngestError::MalformedJson(e.to_string()))
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
    Ok(PdEvent {
        id: text("id", "event.id")?,
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
        let service_name = service
            .get("summary")
            .or_else(|| service.get("name"))
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| service_id.clone())
            .ok_or(IngestError::MissingField("event.data.service.summary"))?;
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
        let summary = |v: &Value| {
            v.get("summary")
                .or_else(|| v.get("name"))
                .and_then(Value::as_str)
                .map(|s| s.trim().to_lowercase())
        };
        let mut context: Vec<String> = data
            .get("teams")
            .and_then(Value::as_array)
            .map(|teams| {
                teams
                    .iter()
                    .filter_map(summary)
                    .map(|t| format!("team:{t}"))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(policy) = data.get("escalation_policy").and_then(summary) {
            context.push(format!("policy:{policy}"));
        }
        if let Some(kind) = data.get("incident_type").and_then(summary) {
            context.push(format!("type:{kind}"));
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
