//! Outbound Jira REST client (blocking, ureq 3).
//!
//! | operation | Cloud (REST v3) | Data Center (REST v2) |
//! |---|---|---|
//! | create | `POST /rest/api/3/issue` (ADF description, `assignee.accountId`) → 201 `{id,key,self}` | `POST /rest/api/2/issue` (wiki description, `assignee.name`) |
//! | assign | `PUT /rest/api/3/issue/{key}/assignee` `{"accountId":…\|null}` → 204 | `PUT /rest/api/2/issue/{key}/assignee` `{"name":…\|null}` |
//! | find by label | `POST /rest/api/3/search/jql` | `POST /rest/api/2/search` |
//!
//! Errors are split the way a job queue needs them: [`JiraError::Transient`] (network failure,
//! timeout, 408, 429, 5xx; carries `Retry-After`) is worth retrying, [`JiraError::Permanent`]
//! (any other 4xx) is not.
//!
//! **Exactly-once creation.** Jira has no idempotency key, so a create whose response was lost
//! may or may not have happened. Put a deterministic label on every issue (e.g.
//! `goliath-<work_item_id>`) and, before creating again after a crash or a transient failure,
//! call [`JiraApi::find_by_label`]. Jira search is *eventually consistent*: an issue created a
//! moment ago may not be found yet, so a `None` shortly after an uncertain create is not proof
//! of absence. Keep the local record authoritative, wait a little before the search when the
//! previous attempt was uncertain, and expect (rarely) to have to close a duplicate.
//!
//! Secrets never appear in `Debug` output or in log lines.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use super::adf::IssueDescription;
use super::util::{basic_auth, percent_encode};

/// The Jira operations Goliath needs. Implemented by [`HttpJiraClient`]; tests can provide fakes.
pub trait JiraApi: Send + Sync {
    /// Creates an issue. Cloud: `POST /rest/api/3/issue` → 201 `{id,key,self}`.
    fn create_issue(&self, req: &NewIssue) -> Result<IssueRef, JiraError>;
    /// Assigns (`Some(id)`) or unassigns (`None`) an issue. Cloud: the id is an `accountId`;
    /// Data Center: a username. `PUT …/issue/{key}/assignee` → 204.
    fn assign(&self, issue_key: &str, account_id: Option<&str>) -> Result<(), JiraError>;
    /// The oldest issue carrying `label`, if search can see one (search is eventually
    /// consistent; see the module documentation).
    fn find_by_label(&self, label: &str) -> Result<Option<IssueRef>, JiraError>;
    /// The key of the issue's status category: `new`, `indeterminate` or `done`.
    /// `GET …/issue/{key}?fields=status` → 200.
    fn status_category(&self, issue_key: &str) -> Result<String, JiraError>;
    /// The workflow transitions open to the issue now. `GET …/issue/{key}/transitions` → 200.
    fn transitions(&self, issue_key: &str) -> Result<Vec<Transition>, JiraError>;
    /// Moves the issue through transition `id`. `POST …/issue/{key}/transitions` → 204.
    fn transition(&self, issue_key: &str, transition_id: &str) -> Result<(), JiraError>;
    /// Adds a plain-text comment (ADF on Cloud). `POST …/issue/{key}/comment` → 201.
    fn add_comment(&self, issue_key: &str, text: &str) -> Result<(), JiraError>;
    /// Follows a new severity: the summary (which starts with it), the severity label (the
    /// others removed, people's own labels kept) and, where mapped, the priority by name.
    /// `PUT …/issue/{key}` with `fields` and `update.labels` → 204.
    fn set_severity(&self, issue_key: &str, change: &SeverityChange) -> Result<(), JiraError>;
    /// Who the credentials belong to (`accountId`, or `name` on Data Center): a check that
    /// Jira accepts them. `GET …/myself` → 200.
    fn myself(&self) -> Result<String, JiraError>;
    /// The issue's page for people (`<site>/browse/KEY`), where known.
    fn browse_url(&self, _issue_key: &str) -> Option<String> {
        None
    }
}

/// A workflow transition as `GET …/transitions` lists it. Workflows differ per project, so a
/// transition is chosen by the category of the status it leads to, never by a fixed id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub id: String,
    pub name: String,
    /// `new`, `indeterminate` or `done`.
    pub to_category: String,
}

/// A created or found issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRef {
    pub id: String,
    pub key: String,
    #[serde(rename = "self")]
    pub self_url: String,
}

/// The severity labels Goliath puts on an issue: one at a time.
pub const SEVERITY_LABELS: [&str; 4] = ["sev1", "sev2", "sev3", "sev4"];

/// What changes on an issue when its incident's severity does.
#[derive(Debug, Clone, PartialEq)]
pub struct SeverityChange {
    /// The new severity, also its label (`sev1`).
    pub severity: String,
    /// The new summary: `[SEV1] title`.
    pub summary: String,
    /// The Jira priority the severity maps to, when it maps to one.
    pub priority: Option<String>,
}

/// Everything needed to create an issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewIssue {
    /// Project key, e.g. `OPS`.
    pub project_key: String,
    /// Issue type name, e.g. `Incident` or `Task`.
    pub issue_type: String,
    /// One line; newlines become spaces and it is cut at 255 characters (Jira's limit).
    pub summary: String,
    pub description: IssueDescription,
    /// Jira priority name (`Highest`, `High`, …).
    pub priority: Option<String>,
    /// Labels. Jira forbids whitespace in labels, so whitespace is replaced by `_` (the same
    /// rule is applied by [`JiraApi::find_by_label`]). Empty and repeated labels are dropped.
    pub labels: Vec<String>,
    /// Cloud: `accountId`; Data Center: username.
    pub assignee_account_id: Option<String>,
}

/// Why a Jira call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JiraError {
    /// Worth retrying: network error, timeout, HTTP 408, 429 or 5xx. `retry_after` comes from
    /// the `Retry-After` header (seconds or HTTP-date). `status` is `None` when no response
    /// arrived.
    #[error("Jira is unavailable{}: {message}", status_suffix(*.status))]
    Transient {
        status: Option<u16>,
        retry_after: Option<Duration>,
        message: String,
    },
    /// Not worth retrying: any other 4xx. `message` is Jira's `errorMessages` and `errors`
    /// joined. `status` is 0 when the request could not be formed at all (bad URL).
    #[error("Jira rejected the request (HTTP {status}): {message}")]
    Permanent { status: u16, message: String },
}

fn status_suffix(status: Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

impl JiraError {
    pub fn is_transient(&self) -> bool {
        matches!(self, JiraError::Transient { .. })
    }

    /// HTTP status, when a response arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            JiraError::Transient { status, .. } => *status,
            JiraError::Permanent { status, .. } => Some(*status).filter(|s| *s != 0),
        }
    }

    /// How long Jira asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            JiraError::Transient { retry_after, .. } => *retry_after,
            JiraError::Permanent { .. } => None,
        }
    }
}

/// How to authenticate. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JiraAuth {
    /// Jira Cloud: account e-mail and API token (also old DC username and password).
    Basic { email: String, api_token: String },
    /// Data Center personal access token (`Authorization: Bearer <PAT>`).
    Bearer { token: String },
}

impl JiraAuth {
    /// The `Authorization` header value. Contains the secret: never log it.
    pub(crate) fn header_value(&self) -> String {
        match self {
            JiraAuth::Basic { email, api_token } => basic_auth(email, api_token),
            JiraAuth::Bearer { token } => format!("Bearer {token}"),
        }
    }
}

impl fmt::Debug for JiraAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JiraAuth::Basic { email, .. } => f
                .debug_struct("Basic")
                .field("email", email)
                .field("api_token", &"<redacted>")
                .finish(),
            JiraAuth::Bearer { .. } => f
                .debug_struct("Bearer")
                .field("token", &"<redacted>")
                .finish(),
        }
    }
}

/// Which Jira we talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JiraFlavor {
    /// Jira Cloud: REST v3, ADF descriptions, users by `accountId`.
    #[default]
    Cloud,
    /// Jira Data Center / Server: REST v2, wiki-markup descriptions, users by `name`.
    DataCenter,
}

impl JiraFlavor {
    /// `/rest/api/3` or `/rest/api/2`.
    pub fn api_prefix(self) -> &'static str {
        match self {
            JiraFlavor::Cloud => "/rest/api/3",
            JiraFlavor::DataCenter => "/rest/api/2",
        }
    }
}

impl FromStr for JiraFlavor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cloud" => Ok(JiraFlavor::Cloud),
            "datacenter" | "data_center" | "data-center" | "dc" | "server" => {
                Ok(JiraFlavor::DataCenter)
            }
            other => Err(format!(
                "unknown Jira flavor {other:?} (expected cloud or datacenter)"
            )),
        }
    }
}

/// Where Jira is and how to sign in (the client's part of [`crate::config::JiraConfig`]).
/// `Debug` redacts the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JiraConnection {
    /// `https://acme.atlassian.net` (no `/rest/...`; a trailing slash is fine).
    pub base_url: String,
    pub auth: JiraAuth,
    pub flavor: JiraFlavor,
    /// Whole-call timeout (connect, send, receive).
    pub timeout: Duration,
}

impl JiraConnection {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

    /// Jira Cloud with an e-mail and API token.
    pub fn cloud(
        base_url: impl Into<String>,
        email: impl Into<String>,
        api_token: impl Into<String>,
    ) -> Self {
        JiraConnection {
            base_url: base_url.into(),
            auth: JiraAuth::Basic {
                email: email.into(),
                api_token: api_token.into(),
            },
            flavor: JiraFlavor::Cloud,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// Jira Data Center with a personal access token.
    pub fn data_center(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        JiraConnection {
            base_url: base_url.into(),
            auth: JiraAuth::Bearer {
                token: token.into(),
            },
            flavor: JiraFlavor::DataCenter,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

/// The configuration cannot work (bad base URL, zero timeout).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Jira configuration: {0}")]
pub struct InvalidJiraConfig(pub String);

/// [`JiraApi`] over HTTP with ureq 3. Cheap to share (`Arc`); ureq pools connections.
pub struct HttpJiraClient {
    agent: ureq::Agent,
    base_url: String,
    auth_header: String,
    flavor: JiraFlavor,
}

impl fmt::Debug for HttpJiraClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpJiraClient")
            .field("base_url", &self.base_url)
            .field("flavor", &self.flavor)
            .field("auth", &"<redacted>")
            .finish()
    }
}

/// Most of an error body we keep in messages.
const MAX_ERROR_TEXT: usize = 500;
/// Most of a response body we read.
const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;

impl HttpJiraClient {
    pub fn new(config: JiraConnection) -> Result<Self, InvalidJiraConfig> {
        let base_url = config.base_url.trim().trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(InvalidJiraConfig(format!(
                "base URL {base_url:?} must start with http:// or https://"
            )));
        }
        if base_url.contains("/rest/api") {
            return Err(InvalidJiraConfig(format!(
                "base URL {base_url:?} must be the site root, without /rest/api/..."
            )));
        }
        if config.timeout.is_zero() {
            return Err(InvalidJiraConfig("timeout must be positive".into()));
        }
        let agent_config = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("goliath/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::with_parts(
            agent_config,
            ureq::unversioned::transport::DefaultConnector::default(),
            super::resolve::CachedResolver::default(),
        );
        Ok(HttpJiraClient {
            agent,
            base_url,
            auth_header: config.auth.header_value(),
            flavor: config.flavor,
        })
    }

    pub fn flavor(&self) -> JiraFlavor {
        self.flavor
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The JSON body `create_issue` sends (exposed for inspection and tests).
    pub fn create_issue_body(&self, req: &NewIssue) -> Value {
        create_issue_body(self.flavor, req)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}{}", self.base_url, self.flavor.api_prefix(), path)
    }

    /// Sends one request and classifies the outcome. Returns the 2xx status and body text.
    fn call(&self, method: &str, path: &str, body: &Value) -> Result<(u16, String), JiraError> {
        let url = self.url(path);
        let result = match method {
            "GET" => self
                .agent
                .get(&url)
                .header("Authorization", &self.auth_header)
                .header("Accept", "application/json")
                .call(),
            "PUT" => self
                .agent
                .put(&url)
                .header("Authorization", &self.auth_header)
                .header("Accept", "application/json")
                .send_json(body),
            _ => self
                .agent
                .post(&url)
                .header("Authorization", &self.auth_header)
                .header("Accept", "application/json")
                .send_json(body),
        };
        let mut response = result.map_err(|e| {
            log::debug!("jira {method} {path}: no response: {e}");
            transport_error(e)
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let text = match response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .lossy_utf8(true)
            .read_to_string()
        {
            Ok(t) => t,
            // The status line arrived but the body did not: only a success is then uncertain.
            Err(e) if (200..300).contains(&status) => {
                return Err(JiraError::Transient {
                    status: Some(status),
                    retry_after: None,
                    message: format!("reading the response body failed: {e}"),
                })
            }
            Err(_) => String::new(),
        };
        log::debug!("jira {method} {path} -> {status}");
        classify(status, retry_after, text)
    }
}

/// Maps a status and body to success or [`JiraError`].
fn classify(
    status: u16,
    retry_after: Option<Duration>,
    body: String,
) -> Result<(u16, String), JiraError> {
    match status {
        200..=299 => Ok((status, body)),
        408 | 429 | 500..=599 => Err(JiraError::Transient {
            status: Some(status),
            retry_after,
            message: error_text(status, &body),
        }),
        _ => Err(JiraError::Permanent {
            status,
            message: error_text(status, &body),
        }),
    }
}

fn transport_error(e: ureq::Error) -> JiraError {
    match e {
        ureq::Error::BadUri(_)
        | ureq::Error::Http(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::RequireHttpsOnly(_) => JiraError::Permanent {
            status: 0,
            message: e.to_string(),
        },
        other => JiraError::Transient {
            status: None,
            retry_after: None,
            message: other.to_string(),
        },
    }
}

/// Jira's error text: `errorMessages` then `errors` (`field: message`), joined with `"; "`.
/// Falls back to the (truncated) raw body, since 401s and proxies answer in HTML or plain text.
pub(crate) fn error_text(status: u16, body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorCollection {
        #[serde(default, rename = "errorMessages")]
        error_messages: Vec<String>,
        #[serde(default)]
        errors: serde_json::Map<String, Value>,
    }
    if let Ok(ec) = serde_json::from_str::<ErrorCollection>(body) {
        let mut parts: Vec<String> = ec
            .error_messages
            .into_iter()
            .filter(|m| !m.trim().is_empty())
            .collect();
        for (field, msg) in ec.errors {
            let msg = match msg {
                Value::String(s) => s,
                other => other.to_string(),
            };
            parts.push(format!("{field}: {msg}"));
        }
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return format!("HTTP {status} with an empty body");
    }
    let mut cut: String = trimmed.chars().take(MAX_ERROR_TEXT).collect();
    if cut.len() < trimmed.len() {
        cut.push('…');
    }
    cut
}

/// `Retry-After`: delay seconds, or an HTTP-date (past dates give zero).
pub(crate) fn parse_retry_after(
    value: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - now;
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Labels may not contain whitespace in Jira; replace it with `_`.
pub fn normalize_label(label: &str) -> String {
    label
        .trim()
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect()
}

fn normalize_summary(summary: &str) -> String {
    let one_line = summary
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    one_line.chars().take(255).collect()
}

fn create_issue_body(flavor: JiraFlavor, req: &NewIssue) -> Value {
    let mut labels: Vec<String> = Vec::new();
    for l in req.labels.iter().map(|l| normalize_label(l)) {
        if !l.is_empty() && !labels.contains(&l) {
            labels.push(l);
        }
    }
    let mut fields = serde_json::Map::new();
    fields.insert("project".into(), json!({"key": req.project_key}));
    fields.insert("issuetype".into(), json!({"name": req.issue_type}));
    fields.insert("summary".into(), json!(normalize_summary(&req.summary)));
    let description = match flavor {
        JiraFlavor::Cloud => super::adf::to_adf(&req.description),
        JiraFlavor::DataCenter => json!(super::adf::to_wiki(&req.description)),
    };
    fields.insert("description".into(), description);
    if let Some(p) = req.priority.as_deref().filter(|p| !p.trim().is_empty()) {
        fields.insert("priority".into(), json!({"name": p.trim()}));
    }
    fields.insert("labels".into(), json!(labels));
    if let Some(a) = req
        .assignee_account_id
        .as_deref()
        .filter(|a| !a.trim().is_empty())
    {
        let user = match flavor {
            JiraFlavor::Cloud => json!({"accountId": a}),
            JiraFlavor::DataCenter => json!({"name": a}),
        };
        fields.insert("assignee".into(), user);
    }
    json!({ "fields": fields })
}

/// JQL string literal with `"` and `\` escaped.
fn jql_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[derive(Deserialize)]
struct TransitionList {
    #[serde(default)]
    transitions: Vec<TransitionEntry>,
}

#[derive(Deserialize)]
struct TransitionEntry {
    id: String,
    #[serde(default)]
    name: String,
    to: Option<StatusEntry>,
}

#[derive(Deserialize)]
struct StatusEntry {
    #[serde(rename = "statusCategory")]
    status_category: Option<CategoryEntry>,
}

#[derive(Deserialize)]
struct CategoryEntry {
    key: String,
}

/// A comment body: ADF paragraphs on Cloud (one per line), the text itself on Data Center.
fn comment_body(flavor: JiraFlavor, text: &str) -> Value {
    match flavor {
        JiraFlavor::Cloud => {
            let paragraphs: Vec<Value> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| json!({"type": "paragraph", "content": [{"type": "text", "text": l}]}))
                .collect();
            json!({"body": {"type": "doc", "version": 1, "content": paragraphs}})
        }
        JiraFlavor::DataCenter => json!({ "body": text }),
    }
}

/// A success body that cannot be read: worth another try.
fn unreadable(status: u16, what: &str, e: serde_json::Error) -> JiraError {
    JiraError::Transient {
        status: Some(status),
        retry_after: None,
        message: format!("unreadable {what} response: {e}"),
    }
}

#[derive(Deserialize)]
struct SearchResults {
    #[serde(default)]
    issues: Vec<SearchIssue>,
}

#[derive(Deserialize)]
struct SearchIssue {
    id: String,
    key: String,
    #[serde(rename = "self")]
    self_url: Option<String>,
}

impl JiraApi for HttpJiraClient {
    fn create_issue(&self, req: &NewIssue) -> Result<IssueRef, JiraError> {
        let body = create_issue_body(self.flavor, req);
        let (status, text) = self.call("POST", "/issue", &body)?;
        // A success whose body we cannot read leaves the outcome uncertain: report it as
        // transient so the caller searches by label before creating again.
        serde_json::from_str::<IssueRef>(&text).map_err(|e| JiraError::Transient {
            status: Some(status),
            retry_after: None,
            message: format!("unreadable create response: {e}"),
        })
    }

    fn assign(&self, issue_key: &str, account_id: Option<&str>) -> Result<(), JiraError> {
        let body = match self.flavor {
            JiraFlavor::Cloud => json!({ "accountId": account_id }),
            JiraFlavor::DataCenter => json!({ "name": account_id }),
        };
        let path = format!("/issue/{}/assignee", percent_encode(issue_key));
        self.call("PUT", &path, &body).map(|_| ())
    }

    fn find_by_label(&self, label: &str) -> Result<Option<IssueRef>, JiraError> {
        let jql = format!(
            "labels = {} ORDER BY created ASC",
            jql_quote(&normalize_label(label))
        );
        let body = json!({ "jql": jql, "fields": ["summary", "labels"], "maxResults": 1 });
        let path = match self.flavor {
            JiraFlavor::Cloud => "/search/jql",
            JiraFlavor::DataCenter => "/search",
        };
        let (status, text) = self.call("POST", path, &body)?;
        let results: SearchResults =
            serde_json::from_str(&text).map_err(|e| JiraError::Transient {
                status: Some(status),
                retry_after: None,
                message: format!("unreadable search response: {e}"),
            })?;
        Ok(results.issues.into_iter().next().map(|i| IssueRef {
            self_url: i
                .self_url
                .unwrap_or_else(|| self.url(&format!("/issue/{}", i.id))),
            id: i.id,
            key: i.key,
        }))
    }

    fn status_category(&self, issue_key: &str) -> Result<String, JiraError> {
        let path = format!("/issue/{}?fields=status", percent_encode(issue_key));
        let (status, text) = self.call("GET", &path, &Value::Null)?;
        let issue: Value =
            serde_json::from_str(&text).map_err(|e| unreadable(status, "issue", e))?;
        issue["fields"]["status"]["statusCategory"]["key"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| JiraError::Transient {
                status: Some(status),
                retry_after: None,
                message: "the issue has no fields.status.statusCategory.key".into(),
            })
    }

    fn transitions(&self, issue_key: &str) -> Result<Vec<Transition>, JiraError> {
        let path = format!("/issue/{}/transitions", percent_encode(issue_key));
        let (status, text) = self.call("GET", &path, &Value::Null)?;
        let list: TransitionList =
            serde_json::from_str(&text).map_err(|e| unreadable(status, "transitions", e))?;
        Ok(list
            .transitions
            .into_iter()
            .map(|t| Transition {
                to_category: t
                    .to
                    .and_then(|to| to.status_category)
                    .map(|c| c.key)
                    .unwrap_or_default(),
                id: t.id,
                name: t.name,
            })
            .collect())
    }

    fn transition(&self, issue_key: &str, transition_id: &str) -> Result<(), JiraError> {
        let path = format!("/issue/{}/transitions", percent_encode(issue_key));
        let body = json!({ "transition": { "id": transition_id } });
        self.call("POST", &path, &body).map(|_| ())
    }

    fn add_comment(&self, issue_key: &str, text: &str) -> Result<(), JiraError> {
        let path = format!("/issue/{}/comment", percent_encode(issue_key));
        self.call("POST", &path, &comment_body(self.flavor, text))
            .map(|_| ())
    }

    fn myself(&self) -> Result<String, JiraError> {
        let (status, text) = self.call("GET", "/myself", &Value::Null)?;
        let me: Value = serde_json::from_str(&text).map_err(|e| unreadable(status, "myself", e))?;
        Ok(me["accountId"]
            .as_str()
            .or(me["name"].as_str())
            .unwrap_or_default()
            .to_string())
    }

    fn browse_url(&self, issue_key: &str) -> Option<String> {
        Some(format!(
            "{}/browse/{}",
            self.base_url,
            percent_encode(issue_key)
        ))
    }

    fn set_severity(&self, issue_key: &str, change: &SeverityChange) -> Result<(), JiraError> {
        let path = format!("/issue/{}", percent_encode(issue_key));
        let mut fields = json!({ "summary": change.summary });
        if let Some(p) = &change.priority {
            fields["priority"] = json!({ "name": p });
        }
        let labels: Vec<Value> = SEVERITY_LABELS
            .iter()
            .filter(|l| **l != change.severity)
            .map(|l| json!({ "remove": l }))
            .chain([json!({ "add": change.severity })])
            .collect();
        let body = json!({ "fields": fields, "update": { "labels": labels } });
        self.call("PUT", &path, &body).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jira::testutil::{response, serve, Captured};
    use std::net::TcpListener;
    use std::sync::mpsc;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn canned_server(responses: Vec<String>) -> (String, mpsc::Receiver<Captured>) {
        let mut it = responses.into_iter();
        serve(move |_| it.next())
    }

    fn cloud_client(base: &str) -> HttpJiraClient {
        let mut cfg =
            JiraConnection::cloud(format!("{base}/"), "user@example.com", "user_api_token");
        cfg.timeout = Duration::from_secs(5);
        HttpJiraClient::new(cfg).unwrap()
    }

    fn new_issue() -> NewIssue {
        NewIssue {
            project_key: "OPS".into(),
            issue_type: "Incident".into(),
            summary: "[PD #1842] CRITICAL: checkout-api\np99 latency > 2s".into(),
            description: IssueDescription {
                title: "CRITICAL: checkout-api p99 latency > 2s".into(),
                service: "api".into(),
                severity: "SEV2".into(),
                pagerduty_url: Some("https://acme.pagerduty.com/incidents/Q2F8K1ZQ0MJ5XJ".into()),
                explanation: "Best recent record on api.".into(),
                backups: vec!["Bob Okafor".into()],
                work_item_id: "42".into(),
            },
            priority: Some("Highest".into()),
            labels: vec![
                "goliath".into(),
                "goliath-42".into(),
                "service-api".into(),
                "sev2".into(),
            ],
            assignee_account_id: Some("712020:6f1d2c3b-4a5e-4f60-8a71-9b2c3d4e5f60".into()),
        }
    }

    /// Same keys, and the same JSON types at every level, as the fixture (arrays: first item).
    fn assert_same_shape(got: &Value, want: &Value, at: &str) {
        match (got, want) {
            (Value::Object(g), Value::Object(w)) => {
                for (k, wv) in w {
                    let gv = g.get(k).unwrap_or_else(|| panic!("missing {at}/{k}"));
                    assert_same_shape(gv, wv, &format!("{at}/{k}"));
                }
            }
            (Value::Array(g), Value::Array(w)) => {
                if let (Some(g0), Some(w0)) = (g.first(), w.first()) {
                    assert_same_shape(g0, w0, &format!("{at}/0"));
                }
            }
            (g, w) => assert_eq!(
                std::mem::discriminant(g),
                std::mem::discriminant(w),
                "type differs at {at}: {g} vs {w}"
            ),
        }
    }

    #[test]
    fn create_issue_posts_the_v3_body_with_basic_auth_and_reads_201() {
        let created = serde_json::to_string(&fixture("jira_issue_created_response.json")).unwrap();
        let (base, rx) = canned_server(vec![response("201 Created", &[], &created)]);
        let client = cloud_client(&base);

        let got = client.create_issue(&new_issue()).unwrap();

        assert_eq!(
            got,
            IssueRef {
                id: "10427".into(),
                key: "OPS-321".into(),
                self_url: "https://acme.atlassian.net/rest/api/3/issue/10427".into()
            }
        );
        let req = rx.recv().unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/rest/api/3/issue");
        assert_eq!(
            req.header("authorization"),
            Some("Basic dXNlckBleGFtcGxlLmNvbTp1c2VyX2FwaV90b2tlbg==")
        );
        assert!(req
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
        let body = req.json();
        let mut want = fixture("jira_create_issue_request.json");
        // Goliath sets no issue properties.
        want.as_object_mut().unwrap().remove("properties");
        assert_same_shape(&body, &want, "");
        assert_eq!(body["fields"]["project"]["key"], "OPS");
        assert_eq!(body["fields"]["issuetype"]["name"], "Incident");
        assert_eq!(
            body["fields"]["summary"],
            "[PD #1842] CRITICAL: checkout-api p99 latency > 2s"
        );
        assert_eq!(body["fields"]["priority"]["name"], "Highest");
        assert_eq!(
            body["fields"]["labels"],
            json!(["goliath", "goliath-42", "service-api", "sev2"])
        );
        assert_eq!(
            body["fields"]["assignee"]["accountId"],
            "712020:6f1d2c3b-4a5e-4f60-8a71-9b2c3d4e5f60"
        );
        assert_eq!(body["fields"]["description"]["type"], "doc");
    }

    #[test]
    fn data_center_create_uses_v2_wiki_description_name_and_bearer() {
        let (base, rx) = canned_server(vec![response(
            "201 Created",
            &[],
            r#"{"id":"20427","key":"OPS-321","self":"http://x/rest/api/2/issue/20427"}"#,
        )]);
        let client = HttpJiraClient::new(JiraConnection::data_center(&base, "pat-secret")).unwrap();
        let mut issue = new_issue();
        issue.assignee_account_id = Some("alice.nguyen".into());
        client.create_issue(&issue).unwrap();
        let req = rx.recv().unwrap();
        assert_eq!(req.path, "/rest/api/2/issue");
        assert_eq!(req.header("authorization"), Some("Bearer pat-secret"));
        let body = req.json();
        assert_same_shape(
            &body,
            &fixture("jira_create_issue_request_v2_datacenter.json"),
            "",
        );
        assert_eq!(body["fields"]["assignee"], json!({"name": "alice.nguyen"}));
        assert!(body["fields"]["description"]
            .as_str()
            .unwrap()
            .contains("[open the incident|https://acme.pagerduty.com/incidents/Q2F8K1ZQ0MJ5XJ]"));
    }

    #[test]
    fn assign_puts_account_id_and_accepts_204_and_unassign_sends_null() {
        let (base, rx) = canned_server(vec![
            response("204 No Content", &[], ""),
            response("204 No Content", &[], ""),
        ]);
        let client = cloud_client(&base);
        client
            .assign(
                "OPS-321",
                Some("712020:0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"),
            )
            .unwrap();
        client.assign("OPS-321", None).unwrap();
        let first = rx.recv().unwrap();
        assert_eq!(first.method, "PUT");
        assert_eq!(first.path, "/rest/api/3/issue/OPS-321/assignee");
        assert_eq!(first.json(), fixture("jira_assign_request.json"));
        let second = rx.recv().unwrap();
        assert_eq!(second.json(), fixture("jira_unassign_request.json"));
    }

    #[test]
    fn transitions_are_listed_by_category_and_posted_by_id() {
        let listed = serde_json::to_string(&fixture("jira_transitions_response.json")).unwrap();
        let (base, rx) = canned_server(vec![
            response("200 OK", &[], &listed),
            response("204 No Content", &[], ""),
            response(
                "200 OK",
                &[],
                r#"{"fields":{"status":{"statusCategory":{"key":"done"}}}}"#,
            ),
        ]);
        let client = cloud_client(&base);
        let transitions = client.transitions("OPS-7").unwrap();
        let done = transitions
            .iter()
            .find(|t| t.to_category == "done")
            .expect("a transition to done");
        assert_eq!(done.id, "31");
        assert!(transitions.iter().any(|t| t.to_category == "new"));
        client.transition("OPS-7", &done.id).unwrap();
        assert_eq!(client.status_category("OPS-7").unwrap(), "done");
        let list = rx.recv().unwrap();
        assert_eq!(
            (list.method.as_str(), list.path.as_str()),
            ("GET", "/rest/api/3/issue/OPS-7/transitions")
        );
        let post = rx.recv().unwrap();
        assert_eq!(post.method, "POST");
        assert_eq!(post.json(), fixture("jira_transition_request.json"));
        let get = rx.recv().unwrap();
        assert_eq!(get.path, "/rest/api/3/issue/OPS-7?fields=status");
    }

    #[test]
    fn comments_are_adf_on_cloud_and_a_new_severity_sets_summary_label_and_priority() {
        let (base, rx) = canned_server(vec![
            response("201 Created", &[], r#"{"id":"10000"}"#),
            response("204 No Content", &[], ""),
        ]);
        let client = cloud_client(&base);
        client
            .add_comment("OPS-7", "Resolved in PagerDuty.\nBy Bob.")
            .unwrap();
        let change = SeverityChange {
            severity: "sev1".into(),
            summary: "[SEV1] Checkout down".into(),
            priority: Some("Highest".into()),
        };
        client.set_severity("OPS-7", &change).unwrap();
        let comment = rx.recv().unwrap();
        assert_eq!(comment.path, "/rest/api/3/issue/OPS-7/comment");
        let body = comment.json();
        assert_eq!(body["body"]["type"], "doc");
        assert_eq!(body["body"]["content"].as_array().unwrap().len(), 2);
        assert_eq!(body["body"]["content"][1]["content"][0]["text"], "By Bob.");
        let edit = rx.recv().unwrap();
        assert_eq!(edit.method, "PUT");
        assert_eq!(edit.path, "/rest/api/3/issue/OPS-7");
        assert_eq!(
            edit.json(),
            serde_json::json!({
                "fields": {"priority": {"name": "Highest"}, "summary": "[SEV1] Checkout down"},
                "update": {"labels": [{"remove": "sev2"}, {"remove": "sev3"},
                                      {"remove": "sev4"}, {"add": "sev1"}]}
            })
        );
        assert_eq!(
            client.browse_url("OPS-7").as_deref(),
            Some(format!("{base}/browse/OPS-7").as_str())
        );
    }

    #[test]
    fn find_by_label_posts_jql_and_reads_the_first_issue() {
        let found = serde_json::to_string(&fixture("jira_search_jql_response.json")).unwrap();
        let (base, rx) = canned_server(vec![
            response("200 OK", &[], &found),
            response("200 OK", &[], r#"{"issues":[],"isLast":true}"#),
        ]);
        let client = cloud_client(&base);
        let got = client.find_by_label("pd-incident-Q2F8K1ZQ0MJ5XJ").unwrap();
        assert_eq!(
            got,
            Some(IssueRef {
                id: "10427".into(),
                key: "OPS-321".into(),
                self_url: "https://acme.atlassian.net/rest/api/3/issue/10427".into()
            })
        );
        assert_eq!(client.find_by_label("goliath-7").unwrap(), None);
        let req = rx.recv().unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/rest/api/3/search/jql");
        let body = req.json();
        assert_eq!(
            body["jql"],
            "labels = \"pd-incident-Q2F8K1ZQ0MJ5XJ\" ORDER BY created ASC"
        );
        assert_same_shape(&body, &fixture("jira_search_jql_request.json"), "");
    }

    #[test]
    fn http_400_is_permanent_with_jiras_messages() {
        let err_body = serde_json::to_string(&fixture("jira_error_400.json")).unwrap();
        let spec_body =
            serde_json::to_string(&fixture("jira_error_400_spec_example.json")).unwrap();
        let (base, _rx) = canned_server(vec![
            response("400 Bad Request", &[], &err_body),
            response("400 Bad Request", &[], &spec_body),
        ]);
        let client = cloud_client(&base);
        let err = client.create_issue(&new_issue()).unwrap_err();
        assert_eq!(
            err,
            JiraError::Permanent {
                status: 400,
                message: "issuetype: Specify an issue type; summary: You must specify a summary of the issue."
                    .into()
            }
        );
        assert!(!err.is_transient());
        let err = client.create_issue(&new_issue()).unwrap_err();
        assert_eq!(
            err,
            JiraError::Permanent {
                status: 400,
                message: "Field 'priority' is required".into()
            }
        );
    }

    #[test]
    fn http_404_on_assign_is_permanent() {
        let body = serde_json::to_string(&fixture("jira_error_404.json")).unwrap();
        let (base, _rx) = canned_server(vec![response("404 Not Found", &[], &body)]);
        let err = cloud_client(&base).assign("OPS-9", Some("x")).unwrap_err();
        assert_eq!(
            err,
            JiraError::Permanent {
                status: 404,
                message: "Issue does not exist or you do not have permission to see it.".into()
            }
        );
    }

    #[test]
    fn http_401_with_a_plain_text_body_is_permanent_with_that_text() {
        let (base, _rx) = canned_server(vec![response(
            "401 Unauthorized",
            &["Content-Type: text/plain"],
            "Client must be authenticated to access this resource.",
        )]);
        let err = cloud_client(&base).find_by_label("x").unwrap_err();
        assert_eq!(err.status(), Some(401));
        assert!(err.to_string().contains("Client must be authenticated"));
    }

    #[test]
    fn http_500_and_429_are_transient_and_retry_after_is_honoured() {
        let (base, _rx) = canned_server(vec![
            response(
                "500 Internal Server Error",
                &[],
                r#"{"errorMessages":["Internal server error"],"errors":{}}"#,
            ),
            response(
                "429 Too Many Requests",
                &["Retry-After: 7"],
                r#"{"errorMessages":["Rate limit exceeded."],"errors":{}}"#,
            ),
            response(
                "503 Service Unavailable",
                &["Retry-After: Thu, 01 Jan 1970 00:00:00 GMT"],
                "",
            ),
        ]);
        let client = cloud_client(&base);
        let e500 = client.create_issue(&new_issue()).unwrap_err();
        assert_eq!(
            e500,
            JiraError::Transient {
                status: Some(500),
                retry_after: None,
                message: "Internal server error".into()
            }
        );
        let e429 = client.assign("OPS-1", Some("a")).unwrap_err();
        assert!(e429.is_transient());
        assert_eq!(e429.status(), Some(429));
        assert_eq!(e429.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(
            e429.to_string(),
            "Jira is unavailable (HTTP 429): Rate limit exceeded."
        );
        let e503 = client.find_by_label("x").unwrap_err();
        assert_eq!(e503.retry_after(), Some(Duration::ZERO));
        assert!(e503.to_string().contains("empty body"));
    }

    #[test]
    fn connection_refused_is_transient_without_status() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = cloud_client(&format!("http://{addr}"))
            .create_issue(&new_issue())
            .unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        assert_eq!(err.status(), None);
    }

    #[test]
    fn unreadable_success_body_is_transient_so_the_caller_searches_first() {
        let (base, _rx) = canned_server(vec![response("201 Created", &[], "<html>")]);
        let err = cloud_client(&base).create_issue(&new_issue()).unwrap_err();
        assert!(err.is_transient());
        assert_eq!(err.status(), Some(201));
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let cfg = JiraConnection::cloud("https://acme.atlassian.net", "bot@acme.com", "tok-SECRET");
        let client = HttpJiraClient::new(cfg.clone()).unwrap();
        for s in [format!("{cfg:?}"), format!("{client:?}")] {
            assert!(!s.contains("tok-SECRET"), "{s}");
            assert!(!s.contains("dG9r"), "{s}");
        }
        let dc = JiraConnection::data_center("https://jira.internal", "PAT-SECRET");
        assert!(!format!("{dc:?}").contains("PAT-SECRET"));
    }

    #[test]
    fn bad_configuration_is_refused() {
        assert!(
            HttpJiraClient::new(JiraConnection::cloud("acme.atlassian.net", "a", "b")).is_err()
        );
        assert!(
            HttpJiraClient::new(JiraConnection::cloud("https://a.net/rest/api/3", "a", "b"))
                .is_err()
        );
        assert_eq!("dc".parse::<JiraFlavor>(), Ok(JiraFlavor::DataCenter));
        assert!("cloudy".parse::<JiraFlavor>().is_err());
    }

    #[test]
    fn labels_and_summary_are_normalised_for_jira() {
        let mut issue = new_issue();
        issue.labels = vec!["a b".into(), "".into(), "a_b".into(), "c".into()];
        issue.summary = "x".repeat(300);
        let body = create_issue_body(JiraFlavor::Cloud, &issue);
        assert_eq!(body["fields"]["labels"], json!(["a_b", "c"]));
        assert_eq!(body["fields"]["summary"].as_str().unwrap().len(), 255);
        assert_eq!(jql_quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
