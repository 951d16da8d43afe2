//! The outbound PagerDuty REST client (API v2): notes and reassignment on incidents, users, and
//! who is on call. Every call is classified as transient (network, 408, 429, 5xx; with the
//! wait PagerDuty asked for) or permanent (any other 4xx). The API token never appears in
//! `Debug` output or logs.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The PagerDuty operations Goliath needs.
pub trait PagerDutyApi: Send + Sync {
    /// `POST /incidents/{id}/notes`.
    fn add_note(&self, incident_id: &str, content: &str) -> Result<(), PagerDutyError>;
    /// The contents of the incident's notes (`GET /incidents/{id}/notes`).
    fn notes(&self, incident_id: &str) -> Result<Vec<String>, PagerDutyError>;
    /// Assigns the incident to one user (`PUT /incidents/{id}`).
    fn reassign(&self, incident_id: &str, user_id: &str) -> Result<(), PagerDutyError>;
    /// Every user, all pages (`GET /users`).
    fn users(&self) -> Result<Vec<PdUser>, PagerDutyError>;
    /// Who is on call now for an escalation policy, all pages (`GET /oncalls`).
    fn on_call(&self, escalation_policy_id: &str) -> Result<Vec<PdOnCall>, PagerDutyError>;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdUser {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
}

/// One on-call entry: a user on call at an escalation level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PdOnCall {
    pub user_id: String,
    pub escalation_level: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagerDutyError {
    #[error("PagerDuty is unavailable{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Transient {
        status: Option<u16>,
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("PagerDuty rejected the request (HTTP {status}): {message}")]
    Permanent { status: u16, message: String },
}

impl PagerDutyError {
    /// The HTTP status PagerDuty answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            PagerDutyError::Transient { status, .. } => *status,
            PagerDutyError::Permanent { status, .. } => Some(*status),
        }
    }
}

/// Where and how to reach PagerDuty.
#[derive(Clone)]
pub struct PagerDutyClientConfig {
    /// `https://api.pagerduty.com` (or a local stand-in in tests).
    pub base_url: String,
    pub token: String,
    /// The `From` header PagerDuty requires on writes made with an account token.
    pub from_email: Option<String>,
    pub timeout: Duration,
}

impl fmt::Debug for PagerDutyClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagerDutyClientConfig")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .field("from_email", &self.from_email)
            .finish()
    }
}

pub struct HttpPagerDutyClient {
    agent: ureq::Agent,
    base_url: String,
    auth: String,
    from_email: Option<String>,
}

impl fmt::Debug for HttpPagerDutyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpPagerDutyClient")
            .field("base_url", &self.base_url)
            .field("auth", &"<redacted>")
            .finish()
    }
}

/// Page size (PagerDuty's maximum).
const PAGE: usize = 100;
/// PagerDuty refuses `offset + limit` past this.
const MAX_OFFSET: usize = 10_000;
const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;

/// The configured API address is not an http(s) URL. (`Config` refuses it at start; a client
/// built another way is checked again here.)
#[derive(Debug, thiserror::Error)]
#[error("PAGERDUTY_API_URL {0:?} must start with http:// or https://")]
pub struct InvalidApiUrl(pub String);

impl HttpPagerDutyClient {
    pub fn new(config: PagerDutyClientConfig) -> Result<Self, InvalidApiUrl> {
        let base_url = config.base_url.trim().trim_end_matches('/').to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(InvalidApiUrl(base_url));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(HttpPagerDutyClient {
            agent,
            base_url,
            auth: format!("Token token={}", config.token),
            from_email: config.from_email,
        })
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, PagerDutyError> {
        let url = format!("{}{path}", self.base_url);
        let accept = "application/vnd.pagerduty+json;version=2";
        let result = match (method, body) {
            ("GET", _) => {
                let mut req = self
                    .agent
                    .get(&url)
                    .header("Authorization", &self.auth)
                    .header("Accept", accept);
                for (k, v) in query {
                    req = req.query(*k, v);
                }
                req.call()
            }
            (_, body) => {
                let mut req = match method {
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.post(&url),
                }
                .header("Authorization", &self.auth)
                .header("Accept", accept);
                if let Some(from) = &self.from_email {
                    req = req.header("From", from);
                }
                req.send_json(body.cloned().unwrap_or(Value::Null))
            }
        };
        let mut response = result.map_err(|e| PagerDutyError::Transient {
            status: None,
            retry_after: None,
            message: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        // `ratelimit-reset` is in seconds until the window resets; a proxy or PagerDuty may
        // also say `Retry-After`. Both are honoured: the longer wait.
        let retry_after = match (header("ratelimit-reset"), header("retry-after")) {
            (None, None) => None,
            (a, b) => Some(Duration::from_secs(a.unwrap_or(0).max(b.unwrap_or(0)))),
        };
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .lossy_utf8(true)
            .read_to_string()
            .unwrap_or_default();
        log::debug!("pagerduty {method} {path} -> {status}");
        match status {
            200..=299 => Ok(serde_json::from_str(&text).unwrap_or(Value::Null)),
            408 | 429 | 500..=599 => Err(PagerDutyError::Transient {
                status: Some(status),
                retry_after,
                message: error_text(status, &text),
            }),
            _ => Err(PagerDutyError::Permanent {
                status,
                message: error_text(status, &text),
            }),
        }
    }

    /// Every page of a list under `key`.
    fn all_pages(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, PagerDutyError> {
        let mut out = vec![];
        let mut offset = 0;
        loop {
            let mut q = query.to_vec();
            q.push(("limit", PAGE.to_string()));
            q.push(("offset", offset.to_string()));
            let page = self.call("GET", path, &q, None)?;
            let items = page[key].as_array().cloned().unwrap_or_default();
            let n = items.len();
            out.extend(items);
            offset += n;
            if page["more"] != true || n == 0 || offset + PAGE > MAX_OFFSET {
                return Ok(out);
            }
        }
    }
}

/// PagerDuty's error text (`error.message` and `error.errors`), else the body's start.
fn error_text(status: u16, body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let mut parts: Vec<String> = v["error"]["message"]
        .as_str()
        .map(String::from)
        .into_iter()
        .collect();
    if let Some(errors) = v["error"]["errors"].as_array() {
        parts.extend(errors.iter().filter_map(|e| e.as_str().map(String::from)));
    }
    if parts.is_empty() {
        let cut: String = body.trim().chars().take(300).collect();
        if cut.is_empty() {
            return format!("HTTP {status} with an empty body");
        }
        return cut;
    }
    parts.join("; ")
}

/// `{id}` made safe for a path segment.
fn segment(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_string()
            } else {
                format!("%{:02X}", c as u32 & 0xFF)
            }
        })
        .collect()
}

impl PagerDutyApi for HttpPagerDutyClient {
    fn add_note(&self, incident_id: &str, content: &str) -> Result<(), PagerDutyError> {
        let body = json!({"note": {"content": content}});
        let path = format!("/incidents/{}/notes", segment(incident_id));
        self.call("POST", &path, &[], Some(&body)).map(|_| ())
    }

    fn notes(&self, incident_id: &str) -> Result<Vec<String>, PagerDutyError> {
        let path = format!("/incidents/{}/notes", segment(incident_id));
        let page = self.call("GET", &path, &[], None)?;
        Ok(page["notes"]
            .as_array()
            .map(|notes| {
                notes
                    .iter()
                    .filter_map(|n| n["content"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn reassign(&self, incident_id: &str, user_id: &str) -> Result<(), PagerDutyError> {
        let body = json!({"incident": {
            "type": "incident_reference",
            "assignments": [{"assignee": {"id": user_id, "type": "user_reference"}}]
        }});
        let path = format!("/incidents/{}", segment(incident_id));
        self.call("PUT", &path, &[], Some(&body)).map(|_| ())
    }

    fn users(&self) -> Result<Vec<PdUser>, PagerDutyError> {
        Ok(self
            .all_pages("/users", "users", &[])?
            .into_iter()
            .filter_map(|u| serde_json::from_value(u).ok())
            .collect())
    }

    fn on_call(&self, escalation_policy_id: &str) -> Result<Vec<PdOnCall>, PagerDutyError> {
        let query = [("escalation_policy_ids[]", escalation_policy_id.to_string())];
        Ok(self
            .all_pages("/oncalls", "oncalls", &query)?
            .into_iter()
            .filter_map(|o| {
                Some(PdOnCall {
                    user_id: o["user"]["id"].as_str()?.to_string(),
                    escalation_level: o["escalation_level"].as_u64().unwrap_or(1) as u32,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jira::testutil::{response, serve};

    fn client(base: &str) -> HttpPagerDutyClient {
        HttpPagerDutyClient::new(PagerDutyClientConfig {
            base_url: base.to_string(),
            token: "secret-token".into(),
            from_email: Some("bot@example.com".into()),
            timeout: Duration::from_secs(5),
        })
        .unwrap()
    }

    #[test]
    fn writes_send_the_token_the_version_and_from() {
        let (base, rx) = serve(|_| Some(response("201 Created", &[], r#"{"note":{}}"#)));
        client(&base).add_note("PINC1", "hello").unwrap();
        let req = rx.recv().unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/incidents/PINC1/notes");
        assert_eq!(
            req.header("authorization"),
            Some("Token token=secret-token")
        );
        assert_eq!(
            req.header("accept"),
            Some("application/vnd.pagerduty+json;version=2")
        );
        assert_eq!(req.header("from"), Some("bot@example.com"));
        assert_eq!(req.json(), json!({"note": {"content": "hello"}}));
        assert!(!format!("{:?}", client(&base)).contains("secret-token"));
    }

    #[test]
    fn rate_limits_are_transient_with_the_reset_and_auth_failures_permanent() {
        let limited = std::fs::read_to_string(format!(
            "{}/tests/fixtures/pagerduty_rest_error_429.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let mut answers = vec![
            response(
                "401 Unauthorized",
                &[],
                r#"{"error":{"message":"Authentication failed","code":2006}}"#,
            ),
            response("429 Too Many Requests", &[], ""),
            response(
                "429 Too Many Requests",
                &["ratelimit-reset: 1", "Retry-After: 30"],
                &limited,
            ),
            response("429 Too Many Requests", &["ratelimit-reset: 3"], &limited),
        ];
        let (base, _rx) = serve(move |_| answers.pop());
        let c = client(&base);
        match c.users() {
            Err(PagerDutyError::Transient { retry_after, .. }) => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)));
            }
            other => panic!("{other:?}"),
        }
        match c.users() {
            Err(PagerDutyError::Transient {
                status: Some(429),
                retry_after,
                message,
            }) => {
                // The window resets in 1 s but Retry-After asks for 30: the longer wait.
                assert_eq!(retry_after, Some(Duration::from_secs(30)));
                assert!(message.contains("Rate Limit Exceeded"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        match c.users() {
            Err(PagerDutyError::Transient {
                status: Some(429),
                retry_after: None,
                ..
            }) => {}
            other => panic!("a bare 429 is still a rate limit: {other:?}"),
        }
        match c.reassign("PINC1", "PU1") {
            Err(PagerDutyError::Permanent {
                status: 401,
                message,
            }) => {
                assert_eq!(message, "Authentication failed")
            }
            other => panic!("{other:?}"),
        }
    }
}
