//! Inbound Jira webhooks: `jira:issue_created`, `jira:issue_updated`, `jira:issue_deleted`, from
//! Jira Cloud and Server/Data Center (including old Server payloads without
//! `issue_event_type_name`).
//!
//! What matters for routing is in the changelog, not the event name: Cloud reports a resolution
//! as `issue_generic` with a `resolution` item, Server as `issue_resolved`. So
//! [`JiraWebhook::changes`] is derived from the changelog items (matched on `fieldId`, else the
//! lower-cased `field`), and the issue's current state (`current_assignee`, `resolution`,
//! `status_category`) is kept beside it for cross-checks and for status-only workflows.
//!
//! Verify the signature on the raw bytes *before* parsing: [`verify_signature`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::signature::SignatureError;

/// Header carrying `sha256=<hex HMAC of the raw body>` (admin webhooks with a secret).
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature";
/// Delivery id, the same across retries: the de-duplication key.
pub const IDENTIFIER_HEADER: &str = "X-Atlassian-Webhook-Identifier";
/// Retry count, present on retried deliveries only.
pub const RETRY_HEADER: &str = "X-Atlassian-Webhook-Retry";

/// A Jira user as webhooks describe one. Cloud has `account_id`; Server/DC has `name`
/// (username, or the user key when no name is sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraUser {
    pub account_id: Option<String>,
    pub name: Option<String>,
    pub display_name: Option<String>,
}

impl JiraUser {
    /// The best identifier: `account_id` on Cloud, `name` on Server/DC.
    pub fn id(&self) -> Option<&str> {
        self.account_id.as_deref().or(self.name.as_deref())
    }
}

/// One relevant changelog item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IssueChange {
    /// Ids from the changelog: `tmpFromAccountId`/`tmpToAccountId` when present (Cloud), else
    /// `from`/`to` (current Cloud: accountId; Server and 2019 Cloud: username). `None` =
    /// unassigned.
    AssigneeChanged {
        from: Option<String>,
        to: Option<String>,
    },
    /// The resolution was set (resolved); `name` is e.g. `Done` or `Fixed`.
    ResolutionSet { name: String },
    /// The resolution was removed (reopened).
    ResolutionCleared,
    /// Status display names (`fromString`/`toString`, else the status ids).
    StatusChanged {
        from: Option<String>,
        to: Option<String>,
    },
}

/// A parsed issue webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraWebhook {
    /// `jira:issue_created` | `jira:issue_updated` | `jira:issue_deleted`.
    pub webhook_event: String,
    /// Finer event (`issue_assigned`, `issue_generic`, `issue_resolved`, …); absent in old
    /// Server payloads. An open set: informative only.
    pub issue_event_type: Option<String>,
    /// From the epoch-milliseconds `timestamp` field: the only ordering hint Jira gives.
    pub timestamp: DateTime<Utc>,
    pub issue_id: String,
    pub issue_key: String,
    pub labels: Vec<String>,
    /// `issue.fields.assignee` after the change: the authoritative owner.
    pub current_assignee: Option<JiraUser>,
    /// Changes read from the changelog. On `jira:issue_created` they list the initial values.
    pub changes: Vec<IssueChange>,
    /// Who did it (the actor). Our own API writes echo back with our bot account here.
    pub user: Option<JiraUser>,
    /// `changelog.id`, part of the fallback de-duplication key.
    pub changelog_id: Option<String>,
    /// `issue.fields.resolution.name` after the change.
    pub resolution: Option<String>,
    /// `issue.fields.status.name` after the change.
    pub status: Option<String>,
    /// `issue.fields.status.statusCategory.key`: `new` | `indeterminate` | `done`.
    pub status_category: Option<String>,
}

impl JiraWebhook {
    /// The assignee change, if the changelog has one.
    pub fn assignee_change(&self) -> Option<(Option<&str>, Option<&str>)> {
        self.changes.iter().find_map(|c| match c {
            IssueChange::AssigneeChanged { from, to } => Some((from.as_deref(), to.as_deref())),
            _ => None,
        })
    }

    /// The resolution name, if this delivery resolved the issue.
    pub fn resolution_set(&self) -> Option<&str> {
        self.changes.iter().find_map(|c| match c {
            IssueChange::ResolutionSet { name } => Some(name.as_str()),
            _ => None,
        })
    }

    /// True if this delivery removed the resolution (reopened the issue).
    pub fn reopened(&self) -> bool {
        self.changes
            .iter()
            .any(|c| matches!(c, IssueChange::ResolutionCleared))
    }

    /// True when the issue is now done: a resolution is set, or the status is in the `done`
    /// category (workflows without a resolution field).
    pub fn is_done(&self) -> bool {
        self.resolution.is_some() || self.status_category.as_deref() == Some("done")
    }

    /// The first label starting with `prefix`, without the prefix (e.g. `"goliath-"` → work
    /// item id, `"service-"` → service).
    pub fn label_value(&self, prefix: &str) -> Option<&str> {
        self.labels
            .iter()
            .find_map(|l| l.strip_prefix(prefix).filter(|v| !v.is_empty()))
    }

    /// Fallback de-duplication key when `X-Atlassian-Webhook-Identifier` is absent:
    /// `(issue id, timestamp, changelog id)`.
    pub fn fallback_dedup_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.issue_id,
            self.timestamp.timestamp_millis(),
            self.changelog_id.as_deref().unwrap_or("-")
        )
    }
}

/// Why a body is not a usable issue webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookParseError {
    #[error("the body is not a JSON object: {0}")]
    Json(String),
    /// A well-formed webhook about something other than an issue (`comment_created`, …).
    /// Acknowledge it with a 2xx and ignore it.
    #[error("unsupported Jira webhook event {0:?}")]
    UnsupportedEvent(String),
    #[error("missing or invalid field `{0}`")]
    MissingField(&'static str),
    #[error("field `{0}` is invalid: {1}")]
    InvalidField(&'static str, String),
}

/// Checks `X-Hub-Signature: sha256=<hex>` against each configured secret (rotation). A missing
/// header is [`SignatureError::Missing`]; another algorithm (`sha1=`) is
/// [`SignatureError::Malformed`]. Pass the raw body bytes, before any parsing. With no
/// secrets configured nothing verifies: decide before calling whether unsigned deliveries are
/// acceptable.
pub fn verify_signature(
    header: Option<&str>,
    secrets: &[String],
    body: &[u8],
) -> Result<(), SignatureError> {
    crate::signature::verify_header(header.map(str::trim), "sha256=", secrets, body)
}

#[derive(Deserialize)]
struct RawWebhook {
    timestamp: Option<Value>,
    #[serde(rename = "webhookEvent")]
    webhook_event: Option<String>,
    issue_event_type_name: Option<String>,
    user: Option<RawUser>,
    issue: Option<RawIssue>,
    changelog: Option<RawChangelog>,
}

#[derive(Deserialize)]
struct RawUser {
    #[serde(rename = "accountId")]
    account_id: Option<String>,
    name: Option<String>,
    key: Option<String>,
    #[serde(rename = "displayName")]
    display_name: Option<String>,
}

impl RawUser {
    fn into_user(self) -> Option<JiraUser> {
        let user = JiraUser {
            account_id: self.account_id.filter(|s| !s.is_empty()),
            name: self.name.or(self.key).filter(|s| !s.is_empty()),
            display_name: self.display_name,
        };
        (user.account_id.is_some() || user.name.is_some() || user.display_name.is_some())
            .then_some(user)
    }
}

#[derive(Deserialize)]
struct RawIssue {
    id: Option<Value>,
    key: Option<String>,
    fields: Option<RawFields>,
}

#[derive(Deserialize, Default)]
struct RawFields {
    labels: Option<Vec<Value>>,
    assignee: Option<RawUser>,
    resolution: Option<RawNamed>,
    status: Option<RawStatus>,
}

#[derive(Deserialize)]
struct RawNamed {
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawStatus {
    name: Option<String>,
    #[serde(rename = "statusCategory")]
    status_category: Option<RawCategory>,
}

#[derive(Deserialize)]
struct RawCategory {
    key: Option<String>,
}

#[derive(Deserialize)]
struct RawChangelog {
    id: Option<Value>,
    #[serde(default)]
    items: Option<Vec<RawItem>>,
}

#[derive(Deserialize)]
struct RawItem {
    field: Option<String>,
    #[serde(rename = "fieldId")]
    field_id: Option<String>,
    from: Option<Value>,
    #[serde(rename = "fromString")]
    from_string: Option<String>,
    to: Option<Value>,
    #[serde(rename = "toString")]
    to_string: Option<String>,
    #[serde(rename = "tmpFromAccountId")]
    tmp_from_account_id: Option<String>,
    #[serde(rename = "tmpToAccountId")]
    tmp_to_account_id: Option<String>,
}

/// A JSON string or number as a non-empty string.
fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn change_of(item: RawItem) -> Option<IssueChange> {
    let field = item
        .field_id
        .as_deref()
        .or(item.field.as_deref())?
        .to_ascii_lowercase();
    let from = scalar(item.from.as_ref());
    let to = scalar(item.to.as_ref());
    match field.as_str() {
        "assignee" => Some(IssueChange::AssigneeChanged {
            from: item.tmp_from_account_id.filter(|s| !s.is_empty()).or(from),
            to: item.tmp_to_account_id.filter(|s| !s.is_empty()).or(to),
        }),
        "resolution" => match (from, to) {
            (_, Some(id)) => Some(IssueChange::ResolutionSet {
                name: item.to_string.filter(|s| !s.is_empty()).unwrap_or(id),
            }),
            (Some(_), None) => Some(IssueChange::ResolutionCleared),
            (None, None) => None,
        },
        "status" => Some(IssueChange::StatusChanged {
            from: item.from_string.or(from),
            to: item.to_string.or(to),
        }),
        _ => None,
    }
}

/// Parses a Jira issue webhook body. Unknown fields are ignored; every nullable field is
/// optional.
pub fn parse_webhook(body: &[u8]) -> Result<JiraWebhook, WebhookParseError> {
    let raw: RawWebhook =
        serde_json::from_slice(body).map_err(|e| WebhookParseError::Json(e.to_string()))?;
    let webhook_event = raw
        .webhook_event
        .filter(|e| !e.is_empty())
        .ok_or(WebhookParseError::MissingField("webhookEvent"))?;
    if !matches!(
        webhook_event.as_str(),
        "jira:issue_created" | "jira:issue_updated" | "jira:issue_deleted"
    ) {
        return Err(WebhookParseError::UnsupportedEvent(webhook_event));
    }
    let millis = match raw.timestamp {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .ok_or(WebhookParseError::MissingField("timestamp"))?;
    let timestamp = DateTime::<Utc>::from_timestamp_millis(millis)
        .filter(|t| crate::db::json::plausible_time(*t))
        .ok_or_else(|| {
            WebhookParseError::InvalidField(
                "timestamp",
                format!("{millis} ms is not a time between 1990 and 2200"),
            )
        })?;
    let issue = raw.issue.ok_or(WebhookParseError::MissingField("issue"))?;
    let issue_id = scalar(issue.id.as_ref()).ok_or(WebhookParseError::MissingField("issue.id"))?;
    let issue_key = issue
        .key
        .filter(|k| !k.is_empty())
        .ok_or(WebhookParseError::MissingField("issue.key"))?;
    let fields = issue.fields.unwrap_or_default();
    let labels = fields
        .labels
        .unwrap_or_default()
        .into_iter()
        .filter_map(|l| match l {
            Value::String(s) => Some(s),
            _ => None,
        })
        .collect();
    let (status, status_category) = match fields.status {
        Some(s) => (s.name, s.status_category.and_then(|c| c.key)),
        None => (None, None),
    };
    let (changelog_id, items) = match raw.changelog {
        Some(c) => (scalar(c.id.as_ref()), c.items.unwrap_or_default()),
        None => (None, Vec::new()),
    };
    Ok(JiraWebhook {
        webhook_event,
        issue_event_type: raw.issue_event_type_name.filter(|s| !s.is_empty()),
        timestamp,
        issue_id,
        issue_key,
        labels,
        current_assignee: fields.assignee.and_then(RawUser::into_user),
        changes: items.into_iter().filter_map(change_of).collect(),
        user: raw.user.and_then(RawUser::into_user),
        changelog_id,
        resolution: fields.resolution.and_then(|r| r.name),
        status,
        status_category,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "712020:6f1d2c3b-4a5e-4f60-8a71-9b2c3d4e5f60";
    const BOB: &str = "712020:0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d";
    const BOT: &str = "557058:aa11bb22-cc33-4d44-8e55-ff6677889900";

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn parse(name: &str) -> JiraWebhook {
        parse_webhook(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn ts(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    fn status(from: Option<&str>, to: &str) -> IssueChange {
        IssueChange::StatusChanged {
            from: from.map(Into::into),
            to: Some(to.into()),
        }
    }

    #[test]
    fn cloud_issue_created() {
        let w = parse("jira_webhook_issue_created.json");
        assert_eq!(w.webhook_event, "jira:issue_created");
        assert_eq!(w.issue_event_type.as_deref(), Some("issue_created"));
        assert_eq!(w.timestamp, ts(1773480421841));
        assert_eq!(w.issue_id, "10427");
        assert_eq!(w.issue_key, "OPS-321");
        assert_eq!(w.labels, ["pagerduty", "pd-incident-Q2F8K1ZQ0MJ5XJ"]);
        assert_eq!(w.label_value("pd-incident-"), Some("Q2F8K1ZQ0MJ5XJ"));
        assert_eq!(
            w.current_assignee,
            Some(JiraUser {
                account_id: Some(ALICE.into()),
                name: None,
                display_name: Some("Alice Nguyen".into())
            })
        );
        assert_eq!(w.user.as_ref().unwrap().account_id.as_deref(), Some(BOT));
        assert_eq!(
            w.changes,
            vec![
                IssueChange::AssigneeChanged {
                    from: None,
                    to: Some(ALICE.into())
                },
                status(None, "To Do"),
            ]
        );
        assert_eq!(w.changelog_id.as_deref(), Some("20911"));
        assert_eq!(w.status_category.as_deref(), Some("new"));
        assert!(!w.is_done());
        assert_eq!(w.fallback_dedup_key(), "10427:1773480421841:20911");
    }

    #[test]
    fn cloud_issue_assigned() {
        let w = parse("jira_webhook_issue_assigned.json");
        assert_eq!(w.webhook_event, "jira:issue_updated");
        assert_eq!(w.issue_event_type.as_deref(), Some("issue_assigned"));
        assert_eq!(w.timestamp, ts(1773481267215));
        assert_eq!(w.assignee_change(), Some((Some(ALICE), Some(BOB))));
        assert_eq!(w.current_assignee.as_ref().unwrap().id(), Some(BOB));
        assert_eq!(
            w.current_assignee.as_ref().unwrap().display_name.as_deref(),
            Some("Bob Okafor")
        );
        assert_eq!(w.user.as_ref().unwrap().id(), Some(ALICE));
        assert_eq!(w.resolution_set(), None);
        assert!(!w.reopened());
    }

    #[test]
    fn cloud_issue_unassigned() {
        let w = parse("jira_webhook_issue_unassigned.json");
        assert_eq!(w.timestamp, ts(1773481391004));
        assert_eq!(w.assignee_change(), Some((Some(BOB), None)));
        assert_eq!(w.current_assignee, None);
        assert_eq!(w.user.as_ref().unwrap().id(), Some(BOB));
    }

    #[test]
    fn cloud_issue_resolved_arrives_as_issue_generic() {
        let w = parse("jira_webhook_issue_resolved.json");
        assert_eq!(w.issue_event_type.as_deref(), Some("issue_generic"));
        assert_eq!(w.timestamp, ts(1773482551017));
        assert_eq!(
            w.changes,
            vec![
                IssueChange::ResolutionSet {
                    name: "Done".into()
                },
                status(Some("To Do"), "Done"),
            ]
        );
        assert_eq!(w.resolution_set(), Some("Done"));
        assert_eq!(w.resolution.as_deref(), Some("Done"));
        assert_eq!(w.status.as_deref(), Some("Done"));
        assert!(w.is_done());
        assert_eq!(w.current_assignee.as_ref().unwrap().id(), Some(BOB));
        assert_eq!(w.user.as_ref().unwrap().id(), Some(BOB));
    }

    #[test]
    fn cloud_issue_reopened() {
        let w = parse("jira_webhook_issue_reopened.json");
        assert_eq!(w.timestamp, ts(1773483302640));
        assert_eq!(
            w.changes,
            vec![
                IssueChange::ResolutionCleared,
                status(Some("Done"), "To Do")
            ]
        );
        assert!(w.reopened());
        assert_eq!(w.resolution, None);
        assert!(!w.is_done());
    }

    #[test]
    fn server_issue_resolved_uses_names_and_no_field_ids() {
        let w = parse("jira_webhook_server_issue_resolved.json");
        assert_eq!(w.issue_event_type.as_deref(), Some("issue_resolved"));
        assert_eq!(w.timestamp, ts(1773482551017));
        assert_eq!(w.issue_id, "20427");
        let bob = JiraUser {
            account_id: None,
            name: Some("bob.okafor".into()),
            display_name: Some("Bob Okafor".into()),
        };
        assert_eq!(w.current_assignee.as_ref(), Some(&bob));
        assert_eq!(w.user.as_ref(), Some(&bob));
        assert_eq!(bob.id(), Some("bob.okafor"));
        assert_eq!(
            w.changes,
            vec![
                status(Some("In Progress"), "Resolved"),
                IssueChange::ResolutionSet {
                    name: "Fixed".into()
                },
            ]
        );
        assert_eq!(w.resolution.as_deref(), Some("Fixed"));
        assert_eq!(w.status_category.as_deref(), Some("done"));
    }

    #[test]
    fn upstream_cloud_created_many_fields_prefers_tmp_account_ids() {
        let w =
            parse("upstream/mattermost-plugin-jira__webhook-cloud-issue-created-many-fields.json");
        assert_eq!(w.webhook_event, "jira:issue_created");
        assert_eq!(w.timestamp, ts(1566935004475));
        assert_eq!(w.issue_key, "KT-22");
        assert_eq!(w.issue_id, "10509");
        assert_eq!(w.labels, ["Label1", "Label2"]);
        assert_eq!(
            w.changes,
            vec![
                IssueChange::AssigneeChanged {
                    from: None,
                    to: Some("5cedcb4355a88a0fc86388ba".into())
                },
                status(None, "To Do"),
            ]
        );
        let assignee = w.current_assignee.unwrap();
        assert_eq!(
            assignee.account_id.as_deref(),
            Some("5cedcb4355a88a0fc86388ba")
        );
        assert_eq!(assignee.name.as_deref(), Some("sample.user"));
    }

    #[test]
    fn upstream_cloud_created() {
        let w = parse("upstream/mattermost-plugin-jira__webhook-issue-created.json");
        assert_eq!(w.webhook_event, "jira:issue_created");
        assert_eq!(w.timestamp, ts(1550286113023));
        assert_eq!(w.issue_key, "TES-41");
        assert_eq!(w.labels, ["test-label"]);
        assert_eq!(w.current_assignee, None);
        assert_eq!(w.changes, vec![status(None, "To Do")]);
        assert_eq!(
            w.user.unwrap().account_id.as_deref(),
            Some("5c5f880629be9642ba529340")
        );
    }

    #[test]
    fn upstream_cloud_assigned_2019_has_username_in_changelog() {
        let w = parse("upstream/mattermost-plugin-jira__webhook-issue-updated-assigned.json");
        assert_eq!(w.issue_event_type.as_deref(), Some("issue_assigned"));
        assert_eq!(w.timestamp, ts(1550287081752));
        assert_eq!(w.assignee_change(), Some((None, Some("admin"))));
        assert_eq!(
            w.current_assignee.unwrap().account_id.as_deref(),
            Some("5c5f880629be9642ba529340")
        );
    }

    #[test]
    fn upstream_cloud_resolved_and_reopened() {
        let r = parse("upstream/mattermost-plugin-jira__webhook-issue-updated-resolved.json");
        assert_eq!(r.issue_event_type.as_deref(), Some("issue_generic"));
        assert_eq!(r.timestamp, ts(1550286940507));
        assert_eq!(r.resolution_set(), Some("Done"));
        assert_eq!(r.changes[1], status(Some("In Progress"), "Done"));
        assert!(r.is_done());

        let o = parse("upstream/mattermost-plugin-jira__webhook-issue-updated-reopened.json");
        assert_eq!(o.timestamp, ts(1550287026531));
        assert!(o.reopened());
        assert_eq!(o.changes[1], status(Some("Done"), "To Do"));
        assert!(!o.is_done());
    }

    #[test]
    fn upstream_server_resolved() {
        let w =
            parse("upstream/mattermost-plugin-jira__webhook-server-issue-updated-resolved.json");
        assert_eq!(w.issue_event_type.as_deref(), Some("issue_resolved"));
        assert_eq!(w.timestamp, ts(1565652182025));
        assert_eq!(w.issue_key, "TES-4");
        assert!(w.labels.is_empty());
        assert_eq!(w.resolution_set(), Some("Done"));
        assert_eq!(w.changes[0], status(Some("In Progress"), "Resolved"));
        let user = w.user.unwrap();
        assert_eq!(user.account_id, None);
        assert_eq!(user.name.as_deref(), Some("admin"));
    }

    #[test]
    fn upstream_old_server_payload_without_event_type_parses() {
        let w = parse(
            "upstream/mattermost-plugin-jira__webhook-server-old-issue-updated-no-event-type-assigned.json",
        );
        assert_eq!(w.webhook_event, "jira:issue_updated");
        assert_eq!(w.issue_event_type, None);
        assert_eq!(w.timestamp, ts(1550287081752));
        assert_eq!(w.assignee_change(), Some((None, Some("admin"))));
    }

    #[test]
    fn issue_deleted_without_changelog_parses() {
        let mut v: Value =
            serde_json::from_slice(&read("jira_webhook_issue_created.json")).unwrap();
        v["webhookEvent"] = "jira:issue_deleted".into();
        v["issue_event_type_name"] = "issue_deleted".into();
        v.as_object_mut().unwrap().remove("changelog");
        let w = parse_webhook(v.to_string().as_bytes()).unwrap();
        assert_eq!(w.webhook_event, "jira:issue_deleted");
        assert!(w.changes.is_empty());
        assert_eq!(w.changelog_id, None);
    }

    #[test]
    fn tolerant_of_string_timestamps_numeric_ids_and_null_labels() {
        let body = br#"{"timestamp":"1700000000000","webhookEvent":"jira:issue_updated",
            "issue":{"id":10001,"key":"OPS-1","fields":{"labels":null,"assignee":null}},
            "changelog":{"id":5,"items":[{"field":"Assignee","from":null,"to":"abc"}]}}"#;
        let w = parse_webhook(body).unwrap();
        assert_eq!(w.timestamp, ts(1_700_000_000_000));
        assert_eq!(w.issue_id, "10001");
        assert_eq!(w.changelog_id.as_deref(), Some("5"));
        assert!(w.labels.is_empty());
        assert_eq!(w.assignee_change(), Some((None, Some("abc"))));
    }

    #[test]
    fn rejects_what_is_not_an_issue_webhook() {
        assert!(matches!(
            parse_webhook(b"not json"),
            Err(WebhookParseError::Json(_))
        ));
        assert_eq!(
            parse_webhook(br#"{"timestamp":1,"webhookEvent":"comment_created","issue":{}}"#),
            Err(WebhookParseError::UnsupportedEvent(
                "comment_created".into()
            ))
        );
        assert_eq!(
            parse_webhook(br#"{"timestamp":1}"#),
            Err(WebhookParseError::MissingField("webhookEvent"))
        );
        assert_eq!(
            parse_webhook(
                br#"{"webhookEvent":"jira:issue_updated","issue":{"id":"1","key":"A-1"}}"#
            ),
            Err(WebhookParseError::MissingField("timestamp"))
        );
        assert_eq!(
            parse_webhook(
                br#"{"timestamp":1773481267215,"webhookEvent":"jira:issue_updated","issue":{"key":"A-1"}}"#
            ),
            Err(WebhookParseError::MissingField("issue.id"))
        );
        assert!(matches!(
            parse_webhook(
                br#"{"timestamp":1,"webhookEvent":"jira:issue_updated","issue":{"id":"1","key":"A-1"}}"#
            ),
            Err(WebhookParseError::InvalidField("timestamp", _))
        ));
    }

    #[test]
    fn every_jira_signature_vector_behaves_as_documented() {
        use sha2::{Digest, Sha256};
        let file: Value = serde_json::from_slice(&read("signature_vectors.json")).unwrap();
        let mut checked = 0;
        for v in file["vectors"].as_array().unwrap() {
            if v["provider"] != "jira_webhook" {
                continue;
            }
            let body = read(v["body_file"].as_str().unwrap());
            assert_eq!(body.len() as u64, v["body_bytes"].as_u64().unwrap());
            assert_eq!(
                hex::encode(Sha256::digest(&body)),
                v["body_sha256"].as_str().unwrap()
            );
            // Only X-Hub-Signature is read: a value under another header name is no header.
            let header = (v["header_name"] == SIGNATURE_HEADER)
                .then(|| v["expected_header_value"].as_str().unwrap());
            let secrets = vec![v["secret"].as_str().unwrap().to_owned()];
            let result = verify_signature(header, &secrets, &body);
            assert_eq!(
                result.is_ok(),
                v["valid"].as_bool().unwrap(),
                "{}: {result:?}",
                v["id"]
            );
            // A wrong secret never verifies; the right one among several does.
            if result.is_ok() {
                assert!(verify_signature(header, &["nope".into()], &body).is_err());
                let rotated = vec!["old".to_owned(), secrets[0].clone()];
                assert!(verify_signature(header, &rotated, &body).is_ok());
            }
            checked += 1;
        }
        assert_eq!(checked, 9);
    }

    #[test]
    fn signature_edge_cases() {
        let secrets = vec!["s".to_owned()];
        let sig = format!("sha256={}", crate::signature::sign_hex("s", b"{}"));
        assert_eq!(verify_signature(Some(&sig), &secrets, b"{}"), Ok(()));
        assert_eq!(
            verify_signature(
                Some(&format!(
                    " {} ",
                    sig.to_uppercase().replace("SHA256", "sha256")
                )),
                &secrets,
                b"{}"
            ),
            Ok(())
        );
        assert_eq!(
            verify_signature(None, &secrets, b"{}"),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(Some(""), &secrets, b"{}"),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(Some(&sig.replace("sha256=", "sha1=")), &secrets, b"{}"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(Some(&sig), &secrets, b"{ }"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(Some(&sig), &[], b"{}"),
            Err(SignatureError::Mismatch)
        );
    }
}
