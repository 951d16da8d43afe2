//! Configuration, from the environment (and `.env`), each variable also a command-line flag.
//!
//! Each plain variable is a field of [`Settings`] or [`JiraSettings`] (so `goliath --help`
//! lists it with its default); the per-name families (`PAGERDUTY_SERVICE_<NAME>`,
//! `GOLIATH_MODE_<SERVICE>`, `GOLIATH_ESCALATE_SEV1`, ...) are read in
//! [`Config::from_settings`]. The README's configuration table lists them all.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::models::RoutingMode;
use crate::routing::Severity;

/// PagerDuty retries a delivery for up to 48 hours: deliveries are kept at least this long.
pub const MIN_DELIVERY_RETENTION_DAYS: u32 = 3;

/// The service's settings: `serve` (the default), `migrate` and `check-config` read them.
#[derive(Args, Clone, Default)]
pub struct Settings {
    /// Postgres URL. Unset: a private cluster is started in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Address the HTTP server listens on.
    #[arg(long, env = "GOLIATH_BIND", default_value = "127.0.0.1:8000")]
    pub bind: String,

    /// Directory for the private Postgres cluster and other local state.
    #[arg(long, env = "GOLIATH_DATA_DIR", default_value = "./.goliath")]
    pub data_dir: PathBuf,

    /// Base URL at which this server is reachable (for Jira webhooks from the simulator).
    #[arg(long, env = "GOLIATH_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Bearer token for the /admin routes.
    #[arg(long, env = "GOLIATH_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Database connections in the pool.
    #[arg(long, env = "GOLIATH_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,

    /// Threads that store webhook deliveries, each committing everything waiting at once.
    /// Their batches run side by side; more writers make smaller batches.
    #[arg(long, env = "GOLIATH_INGEST_WRITERS", default_value_t = 2)]
    pub ingest_writers: usize,

    /// Background worker threads that execute Jira jobs.
    #[arg(long, env = "GOLIATH_WORKERS", default_value_t = DEFAULT_WORKERS)]
    pub workers: usize,

    /// Seconds before a job whose worker died (process killed) is taken again (default 45).
    #[arg(long, env = "GOLIATH_JOB_LEASE_SECS", value_name = "SECS")]
    pub job_lease_secs: Option<u64>,

    /// Days a finished Jira job is kept (for the admin views) before it is deleted; 0 keeps
    /// them forever. Dead jobs are kept until they are retried or resolved by hand.
    #[arg(long, env = "GOLIATH_JOB_RETENTION_DAYS", default_value_t = 14)]
    pub job_retention_days: u32,

    /// Days a received webhook delivery is kept to recognise a redelivery, then deleted; 0
    /// keeps them forever. At least 3 (PagerDuty retries a delivery for up to 48 hours).
    #[arg(long, env = "GOLIATH_DELIVERY_RETENTION_DAYS", default_value_t = 14)]
    pub delivery_retention_days: u32,

    /// Built-in Jira simulator: real milliseconds per simulated minute of people's work.
    #[arg(long, env = "GOLIATH_SIM_MINUTE_MS", default_value_t = 50)]
    pub sim_minute_ms: u64,

    /// Person who gets an incident nobody is eligible for (else it waits as `unassigned`);
    /// `GOLIATH_FALLBACK_OWNER_<SERVICE>` names one per service.
    #[arg(long, env = "GOLIATH_FALLBACK_OWNER")]
    pub fallback_owner: Option<String>,

    /// `assign` (the default): Goliath's pick owns each incident. `shadow`: Goliath only
    /// recommends and learns from who really takes it. `GOLIATH_MODE_<SERVICE>` sets one
    /// service.
    #[arg(long, env = "GOLIATH_MODE", value_name = "assign|shadow")]
    pub mode: Option<String>,

    /// Shadow mode: create the Jira issue, unassigned, with the recommendation in a comment
    /// (default true); false leaves Jira alone.
    #[arg(long, env = "GOLIATH_SHADOW_JIRA", value_name = "BOOL")]
    pub shadow_jira: Option<bool>,

    /// Also serve `GET /metrics`, without the admin token, on this address (e.g. a private
    /// interface a Prometheus scraper reaches).
    #[arg(long, env = "GOLIATH_METRICS_BIND")]
    pub metrics_bind: Option<String>,

    /// Accept webhooks whose source has no secret configured (local trials only): without it,
    /// a PagerDuty or Jira webhook with no secret set is refused with 401.
    #[arg(long, env = "GOLIATH_ALLOW_UNSIGNED_WEBHOOKS", value_name = "BOOL")]
    pub allow_unsigned_webhooks: Option<bool>,

    /// PagerDuty V3 webhook secrets, comma-separated (several during a rotation).
    #[arg(long, env = "PAGERDUTY_WEBHOOK_SECRET", hide_env_values = true)]
    pub pagerduty_webhook_secret: Option<String>,

    /// PagerDuty REST API token: enables notes on incidents, reassignment, on-call reads and
    /// the people sync.
    #[arg(long, env = "PAGERDUTY_API_TOKEN", hide_env_values = true)]
    pub pagerduty_api_token: Option<String>,

    /// PagerDuty REST API base URL.
    #[arg(
        long,
        env = "PAGERDUTY_API_URL",
        default_value = "https://api.pagerduty.com"
    )]
    pub pagerduty_api_url: String,

    /// E-mail of a PagerDuty user, sent as `From` on writes (required with an account token).
    #[arg(long, env = "PAGERDUTY_FROM_EMAIL")]
    pub pagerduty_from_email: Option<String>,

    /// Reassign the PagerDuty incident to the owner's PagerDuty user after deciding (default
    /// false); `PAGERDUTY_REASSIGN_<SERVICE>` sets one service.
    #[arg(long, env = "PAGERDUTY_REASSIGN", value_name = "BOOL")]
    pub pagerduty_reassign: Option<bool>,

    /// Whether candidates must be on call (`required`), are preferred when on call
    /// (`preferred`, the default: the learned on-call score component) or on-call is ignored
    /// (`ignored`); `GOLIATH_ON_CALL_<SERVICE>` sets one service.
    #[arg(long, env = "GOLIATH_ON_CALL", value_name = "RULE")]
    pub on_call: Option<String>,

    /// Extra PagerDuty service mappings, `NAME=service` or `ID=service` (repeatable); the
    /// `PAGERDUTY_SERVICE_*` variables are read as well.
    #[arg(long = "pagerduty-service", value_name = "KEY=SERVICE")]
    pub pagerduty_services: Vec<String>,

    /// Priority overrides, `P1=sev1` (repeatable); `PAGERDUTY_PRIORITY_*` are read as well.
    #[arg(long = "pagerduty-priority", value_name = "NAME=SEVN")]
    pub pagerduty_priorities: Vec<String>,

    #[command(flatten)]
    pub jira: JiraSettings,
}

/// Jira connection. With no `JIRA_BASE_URL`, `serve` runs the built-in Jira simulator.
#[derive(Args, Clone, Default)]
pub struct JiraSettings {
    /// Jira site, e.g. https://example.atlassian.net. Unset: the built-in simulator.
    #[arg(long, env = "JIRA_BASE_URL")]
    pub jira_base_url: Option<String>,
    /// Atlassian account e-mail for Basic auth (Jira Cloud).
    #[arg(long, env = "JIRA_EMAIL")]
    pub jira_email: Option<String>,
    /// API token for Basic auth (Jira Cloud).
    #[arg(long, env = "JIRA_API_TOKEN", hide_env_values = true)]
    pub jira_api_token: Option<String>,
    /// Personal access token (Jira Data Center); selects REST v2.
    #[arg(long, env = "JIRA_BEARER_TOKEN", hide_env_values = true)]
    pub jira_bearer_token: Option<String>,
    /// Project for new issues.
    #[arg(long, env = "JIRA_PROJECT_KEY", default_value = "OPS")]
    pub jira_project_key: String,
    /// Issue type for new issues.
    #[arg(long, env = "JIRA_ISSUE_TYPE", default_value = "Task")]
    pub jira_issue_type: String,
    /// Secret for `X-Hub-Signature` on Jira webhooks (comma-separated for rotation).
    #[arg(long, env = "JIRA_WEBHOOK_SECRET", hide_env_values = true)]
    pub jira_webhook_secret: Option<String>,
    /// Per-service project, `service=KEY` (repeatable); `JIRA_PROJECT_<SERVICE>` is read too.
    #[arg(long = "jira-project", value_name = "SERVICE=KEY")]
    pub jira_projects: Vec<String>,
    /// Jira priority per severity, `sev1=Highest` (repeatable); `JIRA_PRIORITY_SEVN` too.
    #[arg(long = "jira-priority", value_name = "SEVN=NAME")]
    pub jira_priorities: Vec<String>,
    /// When PagerDuty resolves an incident, move its Jira issue to a done status (a comment is
    /// added either way); a reopen in PagerDuty reopens the issue. Default true.
    #[arg(long, env = "JIRA_CLOSE_ON_RESOLVE", value_name = "BOOL")]
    pub jira_close_on_resolve: Option<bool>,
    /// Jira statuses in which an issue waits on someone else (comma-separated, any case): time
    /// in them is not counted in a resolver's time to resolve. Default `Waiting for
    /// customer,Pending`; empty for none.
    #[arg(long, env = "JIRA_WAITING_STATUSES", value_name = "NAMES")]
    pub jira_waiting_statuses: Option<String>,
}

/// Jira statuses taken as waiting on others unless `JIRA_WAITING_STATUSES` says otherwise: the
/// ones Jira Service Management's default SLAs pause on.
pub const DEFAULT_WAITING_STATUSES: &str = "Waiting for customer,Pending";

/// Seconds after which a job whose worker died is taken again, unless configured.
pub const DEFAULT_JOB_LEASE_SECS: u64 = 45;
/// Background job worker threads unless `GOLIATH_WORKERS` says otherwise.
pub const DEFAULT_WORKERS: usize = 2;

/// Severity levels, sev1 most critical.
pub const SEVERITIES: [&str; 4] = ["sev1", "sev2", "sev3", "sev4"];

/// The validated configuration the process runs with.
#[derive(Clone)]
pub struct Config {
    pub database_url: Option<String>,
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub public_url: String,
    pub admin_token: Option<String>,
    pub db_pool_size: u32,
    pub workers: usize,
    pub ingest_writers: usize,
    pub job_lease: std::time::Duration,
    /// None: finished jobs are kept forever.
    pub job_retention: Option<std::time::Duration>,
    /// None: webhook deliveries are kept forever.
    pub delivery_retention: Option<std::time::Duration>,
    pub sim_minute_ms: u64,
    pub pagerduty: PagerDutyConfig,
    pub jira: JiraConfig,
    pub fallback: FallbackOwners,
    pub escalation: EscalationPolicy,
    /// Where `/metrics` is also served without a token.
    pub metrics_bind: Option<SocketAddr>,
    pub modes: RoutingModes,
    /// How log lines are written (`GOLIATH_LOG_FORMAT`; logging starts before the rest of the
    /// configuration is read, so this is where a wrong value is refused).
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The format `GOLIATH_LOG_FORMAT` names (unset or empty: text), or an error naming the
    /// variable and the values it takes.
    pub fn parse(value: Option<&str>) -> Result<LogFormat, ConfigError> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(_) => Err(ConfigError(format!(
                "GOLIATH_LOG_FORMAT `{}` must be one of: text, json",
                value.unwrap_or_default()
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Assign or shadow, per service.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoutingModes {
    pub default: RoutingMode,
    /// `env_key(service)` -> mode.
    pub by_service: BTreeMap<String, RoutingMode>,
    /// Shadow items get a Jira issue (unassigned, the recommendation in a comment).
    pub shadow_jira: bool,
}

impl RoutingModes {
    pub fn for_service(&self, service: &str) -> RoutingMode {
        self.by_service
            .get(&env_key(service))
            .copied()
            .unwrap_or(self.default)
    }
}

/// How long an owner has to act (a Jira transition, comment or reassignment, or an
/// acknowledgement in PagerDuty) before the item escalates to the next backup, per severity.
/// Set with `GOLIATH_ESCALATE_SEV1`..`SEV4` (`15m`, `90s`, `4h`, `off`).
#[derive(Clone, Debug, PartialEq)]
pub struct EscalationPolicy {
    /// sev1..sev4; None: that severity never escalates.
    pub deadlines: [Option<std::time::Duration>; 4],
}

impl Default for EscalationPolicy {
    fn default() -> Self {
        let minutes = |m: u64| Some(std::time::Duration::from_secs(m * 60));
        EscalationPolicy {
            deadlines: [minutes(15), minutes(30), minutes(240), None],
        }
    }
}

impl EscalationPolicy {
    /// No severity escalates.
    pub fn off() -> Self {
        EscalationPolicy {
            deadlines: [None; 4],
        }
    }

    /// The deadline for a severity (`sev1`..`sev4`); an unknown one is treated as sev3.
    pub fn deadline(&self, severity: Severity) -> Option<std::time::Duration> {
        let i = match severity {
            Severity::Sev1 => 0,
            Severity::Sev2 => 1,
            Severity::Sev3 => 2,
            Severity::Sev4 => 3,
        };
        self.deadlines[i]
    }
}

/// `15m`, `90s`, `4h`, a bare number of minutes, or `off` / `0`.
fn parse_deadline(value: &str, var: &str) -> Result<Option<std::time::Duration>, ConfigError> {
    let v = value.trim().to_ascii_lowercase();
    if v == "off" || v == "0" || v.is_empty() {
        return Ok(None);
    }
    let (digits, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = digits.parse().map_err(|_| {
        ConfigError(format!(
            "{var} `{value}` is not a duration such as 15m, 90s, 4h or off"
        ))
    })?;
    let secs = match unit {
        "s" => n,
        "" | "m" => n * 60,
        "h" => n * 3600,
        _ => {
            return Err(ConfigError(format!(
                "{var} `{value}` is not a duration such as 15m, 90s, 4h or off"
            )))
        }
    };
    Ok((secs > 0).then(|| std::time::Duration::from_secs(secs)))
}

/// Who takes an incident nobody is eligible for.
#[derive(Clone, Default, Debug, PartialEq)]
pub struct FallbackOwners {
    pub default: Option<String>,
    /// `env_key(service)` -> person id.
    pub by_service: BTreeMap<String, String>,
}

impl FallbackOwners {
    /// The fallback owner for `service`: its own, else the default.
    pub fn for_service(&self, service: &str) -> Option<&str> {
        self.by_service
            .get(&env_key(service))
            .or(self.default.as_ref())
            .map(String::as_str)
    }
}

#[derive(Clone, Default)]
pub struct PagerDutyConfig {
    pub webhook_secrets: Vec<String>,
    /// With no secret, accept unsigned webhooks (GOLIATH_ALLOW_UNSIGNED_WEBHOOKS) instead of
    /// refusing them.
    pub allow_unsigned: bool,
    /// The REST API, when a token is set.
    pub api: Option<PagerDutyApiConfig>,
    /// Reassign the incident to the owner after deciding: default, and `env_key(service)`.
    pub reassign: bool,
    pub reassign_by_service: BTreeMap<String, bool>,
    /// How on-call counts: default, and `env_key(service)`.
    pub on_call: OnCallRule,
    pub on_call_by_service: BTreeMap<String, OnCallRule>,
    /// PagerDuty service id -> Goliath service.
    pub service_by_id: BTreeMap<String, String>,
    /// Normalised PagerDuty service name (upper case, `_` for `-` and spaces) -> service.
    pub service_by_name: BTreeMap<String, String>,
    /// Upper-cased priority name -> severity.
    pub priority_overrides: BTreeMap<String, Severity>,
}

/// How to reach PagerDuty's REST API.
#[derive(Clone)]
pub struct PagerDutyApiConfig {
    pub url: String,
    pub token: String,
    pub from_email: Option<String>,
}

/// How being on call for the incident counts in a decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnCallRule {
    /// Only people on call are eligible.
    Required,
    /// On-call people get the learned on-call score component.
    #[default]
    Preferred,
    /// Nobody counts as on call.
    Ignored,
}

impl OnCallRule {
    pub fn parse(s: &str) -> Option<OnCallRule> {
        match s.trim().to_ascii_lowercase().as_str() {
            "required" => Some(OnCallRule::Required),
            "preferred" => Some(OnCallRule::Preferred),
            "ignored" => Some(OnCallRule::Ignored),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnCallRule::Required => "required",
            OnCallRule::Preferred => "preferred",
            OnCallRule::Ignored => "ignored",
        }
    }
}

impl PagerDutyConfig {
    pub fn reassigns(&self, service: &str) -> bool {
        self.api.is_some()
            && self
                .reassign_by_service
                .get(&env_key(service))
                .copied()
                .unwrap_or(self.reassign)
    }

    pub fn on_call_rule(&self, service: &str) -> OnCallRule {
        self.on_call_by_service
            .get(&env_key(service))
            .copied()
            .unwrap_or(self.on_call)
    }
}

#[derive(Clone)]
pub struct JiraConfig {
    /// None: the built-in simulator.
    pub base_url: Option<String>,
    pub email: Option<String>,
    pub api_token: Option<String>,
    pub bearer_token: Option<String>,
    pub project_key: String,
    pub issue_type: String,
    pub webhook_secrets: Vec<String>,
    /// With no secret, accept unsigned webhooks instead of refusing them.
    pub allow_unsigned: bool,
    pub project_by_service: BTreeMap<String, String>,
    pub priority_by_severity: BTreeMap<String, String>,
    /// Follow a PagerDuty resolve (or reopen) with the issue's transition.
    pub close_on_resolve: bool,
    /// Statuses (lower-cased) whose time is waiting, not work.
    pub waiting_statuses: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Upper-cases and turns `-` and spaces into `_`, the form used in variable names.
pub fn env_key(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            '-' | ' ' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// A retention in days as a duration; 0 (keep forever) as None.
fn days(n: u32) -> Option<std::time::Duration> {
    (n > 0).then(|| std::time::Duration::from_secs(u64::from(n) * 86_400))
}

fn split_list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn parse_pair(raw: &str, what: &str) -> Result<(String, String), ConfigError> {
    raw.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .ok_or_else(|| ConfigError(format!("{what} `{raw}` is not of the form KEY=VALUE")))
}

/// A severity [`check_severity`] has accepted.
fn parse_checked(checked: &str) -> Severity {
    checked
        .parse()
        .expect("check_severity accepts only sev1..sev4")
}

fn check_severity(value: &str, origin: &str) -> Result<String, ConfigError> {
    let v = value.trim().to_ascii_lowercase();
    if SEVERITIES.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(ConfigError(format!(
            "{origin} = `{value}`: a severity must be one of sev1, sev2, sev3, sev4"
        )))
    }
}

impl Config {
    /// Validates `settings`, reading the prefixed map variables from `env`.
    pub fn from_settings(
        settings: &Settings,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let database_url = settings
            .database_url
            .clone()
            .or_else(|| env.get("POSTGRES_URL").cloned())
            .filter(|u| !u.trim().is_empty());
        let bind: SocketAddr = settings.bind.parse().map_err(|_| {
            ConfigError(format!(
                "GOLIATH_BIND `{}` is not an address such as 127.0.0.1:8000",
                settings.bind
            ))
        })?;
        let public_url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| {
                let host = if bind.ip().is_unspecified() {
                    "127.0.0.1".to_string()
                } else {
                    bind.ip().to_string()
                };
                format!("http://{host}:{}", bind.port())
            })
            .trim_end_matches('/')
            .to_string();
        if let Some(url) = &database_url {
            check_database_url(url)?;
        }
        let job_lease_secs = settings.job_lease_secs.unwrap_or(DEFAULT_JOB_LEASE_SECS);
        if job_lease_secs == 0 {
            return Err(ConfigError(
                "GOLIATH_JOB_LEASE_SECS must be at least 1 (a job whose worker died is taken \
                 again after this many seconds)"
                    .into(),
            ));
        }
        if let Some(url) = &settings.public_url {
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            if rest
                .is_none_or(|r| r.trim_matches('/').is_empty() || r.contains(char::is_whitespace))
            {
                return Err(ConfigError(format!(
                    "GOLIATH_PUBLIC_URL `{url}` is not an http:// or https:// URL"
                )));
            }
        }
        if settings.db_pool_size == 0 {
            return Err(ConfigError(
                "GOLIATH_DB_POOL_SIZE must be at least 1".into(),
            ));
        }

        let on_call = |value: &str, var: &str| {
            OnCallRule::parse(value).ok_or_else(|| {
                ConfigError(format!(
                    "{var} `{value}` must be required, preferred or ignored"
                ))
            })
        };
        let api = match settings
            .pagerduty_api_token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            Some(token) => {
                let url = settings.pagerduty_api_url.trim().trim_end_matches('/');
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError(format!(
                        "PAGERDUTY_API_URL `{url}` must start with http:// or https://"
                    )));
                }
                Some(PagerDutyApiConfig {
                    url: url.to_string(),
                    token: token.to_string(),
                    from_email: settings.pagerduty_from_email.clone(),
                })
            }
            None => None,
        };
        let mut pagerduty = PagerDutyConfig {
            webhook_secrets: split_list(settings.pagerduty_webhook_secret.as_deref()),
            allow_unsigned: settings.allow_unsigned_webhooks.unwrap_or(false),
            api,
            reassign: settings.pagerduty_reassign.unwrap_or(false),
            on_call: match &settings.on_call {
                Some(v) if !v.trim().is_empty() => on_call(v, "GOLIATH_ON_CALL")?,
                _ => OnCallRule::Preferred,
            },
            ..Default::default()
        };
        for (key, value) in env {
            if let Some(service) = key.strip_prefix("PAGERDUTY_REASSIGN_") {
                let yes = match value.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" => false,
                    _ => {
                        return Err(ConfigError(format!(
                            "{key} `{value}` must be true or false"
                        )))
                    }
                };
                pagerduty.reassign_by_service.insert(env_key(service), yes);
                continue;
            }
            if let Some(service) = key.strip_prefix("GOLIATH_ON_CALL_") {
                pagerduty
                    .on_call_by_service
                    .insert(env_key(service), on_call(value, key)?);
                continue;
            }
        }
        for (key, value) in env {
            if let Some(id) = key.strip_prefix("PAGERDUTY_SERVICE_ID_") {
                pagerduty
                    .service_by_id
                    .insert(id.to_string(), value.trim().to_lowercase());
            } else if let Some(name) = key.strip_prefix("PAGERDUTY_SERVICE_") {
                pagerduty
                    .service_by_name
                    .insert(env_key(name), value.trim().to_lowercase());
            } else if let Some(name) = key.strip_prefix("PAGERDUTY_PRIORITY_") {
                let sev = check_severity(value, key)?;
                pagerduty
                    .priority_overrides
                    .insert(env_key(name), parse_checked(&sev));
            }
        }
        for raw in &settings.pagerduty_services {
            let (k, v) = parse_pair(raw, "--pagerduty-service")?;
            let v = v.to_lowercase();
            pagerduty.service_by_name.insert(env_key(&k), v.clone());
            pagerduty.service_by_id.insert(k, v);
        }
        for raw in &settings.pagerduty_priorities {
            let (k, v) = parse_pair(raw, "--pagerduty-priority")?;
            let sev = check_severity(&v, raw)?;
            pagerduty
                .priority_overrides
                .insert(env_key(&k), parse_checked(&sev));
        }

        let mut fallback = FallbackOwners {
            default: settings
                .fallback_owner
                .clone()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty()),
            ..Default::default()
        };
        for (key, value) in env {
            if let Some(service) = key.strip_prefix("GOLIATH_FALLBACK_OWNER_") {
                fallback
                    .by_service
                    .insert(env_key(service), value.trim().to_string());
            }
        }

        let mut escalation = EscalationPolicy::default();
        for (i, sev) in SEVERITIES.iter().enumerate() {
            let var = format!("GOLIATH_ESCALATE_{}", sev.to_ascii_uppercase());
            if let Some(value) = env.get(&var) {
                escalation.deadlines[i] = parse_deadline(value, &var)?;
            }
        }

        let mode = |value: &str, var: &str| {
            RoutingMode::parse(value)
                .ok_or_else(|| ConfigError(format!("{var} `{value}` must be assign or shadow")))
        };
        let mut modes = RoutingModes {
            default: match &settings.mode {
                Some(m) if !m.trim().is_empty() => mode(m, "GOLIATH_MODE")?,
                _ => RoutingMode::Assign,
            },
            by_service: BTreeMap::new(),
            shadow_jira: settings.shadow_jira.unwrap_or(true),
        };
        for (key, value) in env {
            if let Some(service) = key.strip_prefix("GOLIATH_MODE_") {
                modes.by_service.insert(env_key(service), mode(value, key)?);
            }
        }

        let js = &settings.jira;
        let mut jira = JiraConfig {
            base_url: js
                .jira_base_url
                .clone()
                .filter(|u| !u.trim().is_empty())
                .map(|u| u.trim_end_matches('/').to_string()),
            email: js.jira_email.clone(),
            api_token: js.jira_api_token.clone(),
            bearer_token: js.jira_bearer_token.clone(),
            project_key: js.jira_project_key.clone(),
            issue_type: js.jira_issue_type.clone(),
            webhook_secrets: split_list(js.jira_webhook_secret.as_deref()),
            allow_unsigned: settings.allow_unsigned_webhooks.unwrap_or(false),
            project_by_service: BTreeMap::new(),
            priority_by_severity: default_jira_priorities(),
            close_on_resolve: js.jira_close_on_resolve.unwrap_or(true),
            waiting_statuses: split_list(Some(
                js.jira_waiting_statuses
                    .as_deref()
                    .unwrap_or(DEFAULT_WAITING_STATUSES),
            ))
            .into_iter()
            .map(|s| s.to_lowercase())
            .collect(),
        };
        for (key, value) in env {
            if let Some(sev) = key.strip_prefix("JIRA_PRIORITY_") {
                let sev = check_severity(sev, key)?;
                if value.trim().is_empty() {
                    return Err(ConfigError(format!(
                        "{key} is empty: name a Jira priority (Highest, High, ...)"
                    )));
                }
                jira.priority_by_severity
                    .insert(sev, value.trim().to_string());
            } else if let Some(service) = key.strip_prefix("JIRA_PROJECT_") {
                if service != "KEY" {
                    jira.project_by_service
                        .insert(service.to_ascii_lowercase(), value.trim().to_string());
                }
            }
        }
        for raw in &js.jira_projects {
            let (k, v) = parse_pair(raw, "--jira-project")?;
            jira.project_by_service.insert(k.to_ascii_lowercase(), v);
        }
        for raw in &js.jira_priorities {
            let (k, v) = parse_pair(raw, "--jira-priority")?;
            jira.priority_by_severity
                .insert(check_severity(&k, raw)?, v);
        }
        let floor = MIN_DELIVERY_RETENTION_DAYS;
        if (1..floor).contains(&settings.delivery_retention_days) {
            return Err(ConfigError(format!(
                "GOLIATH_DELIVERY_RETENTION_DAYS is {}: PagerDuty retries a delivery for up \
                 to 48 hours, so keep deliveries at least {floor} days (or 0 to keep them forever)",
                settings.delivery_retention_days
            )));
        }
        if let Some(url) = &jira.base_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "JIRA_BASE_URL `{url}` must start with http:// or https://"
                )));
            }
            let basic = jira.email.is_some() && jira.api_token.is_some();
            if !basic && jira.bearer_token.is_none() {
                return Err(ConfigError(
                    "JIRA_BASE_URL is set but no credentials are: set JIRA_EMAIL and \
                     JIRA_API_TOKEN (Jira Cloud) or JIRA_BEARER_TOKEN (Data Center)"
                        .into(),
                ));
            }
        }

        Ok(Config {
            database_url,
            bind,
            data_dir: settings.data_dir.clone(),
            public_url,
            admin_token: check_admin_token(settings.admin_token.as_deref())?,
            db_pool_size: settings.db_pool_size,
            workers: settings.workers,
            ingest_writers: settings.ingest_writers.max(1),
            job_lease: std::time::Duration::from_secs(job_lease_secs),
            job_retention: days(settings.job_retention_days),
            delivery_retention: days(settings.delivery_retention_days),
            sim_minute_ms: settings.sim_minute_ms.max(1),
            pagerduty,
            jira,
            fallback,
            escalation,
            metrics_bind: match settings.metrics_bind.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(addr) => Some(addr.parse().map_err(|_| {
                    ConfigError(format!(
                        "GOLIATH_METRICS_BIND `{addr}` is not an address such as 127.0.0.1:9100"
                    ))
                })?),
            },
            modes,
            log_format: LogFormat::parse(env.get("GOLIATH_LOG_FORMAT").map(String::as_str))?,
        })
    }

    /// The configuration as `check-config` prints it, secrets redacted.
    pub fn redacted(&self) -> serde_json::Value {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        let secrets = |v: &Vec<String>| {
            if v.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::json!(format!("<{} redacted>", v.len()))
            }
        };
        // Each severity's deadline, labelled (null: never escalates).
        let escalation: serde_json::Map<String, serde_json::Value> =
            ["sev1", "sev2", "sev3", "sev4"]
                .iter()
                .zip(&self.escalation.deadlines)
                .map(|(sev, d)| (sev.to_string(), serde_json::json!(d.map(|d| d.as_secs()))))
                .collect();
        serde_json::json!({
            "database_url": self.database_url.as_deref().map(redact_url)
                .unwrap_or_else(|| format!("embedded cluster in {}", self.data_dir.display())),
            "bind": self.bind.to_string(),
            "data_dir": self.data_dir.display().to_string(),
            "public_url": self.public_url,
            "admin_token": secret(&self.admin_token),
            "db_pool_size": self.db_pool_size,
            "workers": self.workers,
            "ingest_writers": self.ingest_writers,
            "job_lease_secs": self.job_lease.as_secs(),
            "job_retention_days": self.job_retention.map(|d| d.as_secs() / 86_400),
            "delivery_retention_days": self.delivery_retention.map(|d| d.as_secs() / 86_400),
            "sim_minute_ms": self.sim_minute_ms,
            "mode": self.modes.default.as_str(),
            "mode_by_service": self.modes.by_service.iter()
                .map(|(k, v)| (k.clone(), v.as_str())).collect::<BTreeMap<_, _>>(),
            "shadow_jira": self.modes.shadow_jira,
            "fallback_owner": self.fallback.default,
            "fallback_owner_by_service": self.fallback.by_service,
            "escalation_seconds": escalation,
            "metrics_bind": self.metrics_bind.map(|a| a.to_string()),
            "log_format": self.log_format.as_str(),
            "pagerduty": {
                "webhook_secrets": secrets(&self.pagerduty.webhook_secrets),
                "allow_unsigned_webhooks": self.pagerduty.allow_unsigned,
                "service_by_id": self.pagerduty.service_by_id,
                "service_by_name": self.pagerduty.service_by_name,
                "priority_overrides": self.pagerduty.priority_overrides,
                "api_url": self.pagerduty.api.as_ref().map(|a| a.url.clone()),
                "api_token": self.pagerduty.api.as_ref().map(|_| "<redacted>"),
                "from_email": self.pagerduty.api.as_ref().and_then(|a| a.from_email.clone()),
                "reassign": self.pagerduty.reassign,
                "reassign_by_service": self.pagerduty.reassign_by_service,
                "on_call": self.pagerduty.on_call.as_str(),
                "on_call_by_service": self.pagerduty.on_call_by_service.iter()
                    .map(|(k, v)| (k.clone(), v.as_str())).collect::<BTreeMap<_, _>>(),
            },
            "jira": {
                "base_url": self.jira.base_url.clone().unwrap_or_else(|| "built-in simulator".into()),
                "email": self.jira.email,
                "api_token": secret(&self.jira.api_token),
                "bearer_token": secret(&self.jira.bearer_token),
                "project_key": self.jira.project_key,
                "issue_type": self.jira.issue_type,
                "webhook_secrets": secrets(&self.jira.webhook_secrets),
                "project_by_service": self.jira.project_by_service,
                "priority_by_severity": self.jira.priority_by_severity,
                "close_on_resolve": self.jira.close_on_resolve,
                "waiting_statuses": self.jira.waiting_statuses,
            }
        })
    }
}

fn default_jira_priorities() -> BTreeMap<String, String> {
    [
        ("sev1", "Highest"),
        ("sev2", "High"),
        ("sev3", "Medium"),
        ("sev4", "Low"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Hides the password in a URL such as `postgres://user:pw@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    format!("{}{user}:<redacted>{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Settings {
    /// Registers every secret given (flags or environment) with [`crate::redact`], so no
    /// output shows one, even when the configuration is then refused.
    pub fn register_secrets(&self) {
        use crate::redact::{register, register_basic};
        if let Some(url) = &self.database_url {
            if let Some(password) = url_password(url) {
                register(password);
            }
            if let Some(rest) = url.split("password=").nth(1) {
                register(rest.split([' ', '&']).next().unwrap_or(""));
            }
        }
        let j = &self.jira;
        for secret in [
            &self.admin_token,
            &self.pagerduty_api_token,
            &j.jira_bearer_token,
        ]
        .into_iter()
        .flatten()
        {
            register(secret);
        }
        for list in [&self.pagerduty_webhook_secret, &j.jira_webhook_secret]
            .into_iter()
            .flatten()
        {
            for secret in split_list(Some(list)) {
                register(&secret);
            }
        }
        if let Some(token) = &j.jira_api_token {
            register_basic(j.jira_email.as_deref().unwrap_or(""), token);
        }
    }
}

/// The `.env.example` placeholder, refused as a token.
const PLACEHOLDER_TOKENS: [&str; 2] = ["change-me", "changeme"];
/// Shorter admin tokens are refused: they can be guessed.
const MIN_ADMIN_TOKEN: usize = 16;

fn check_admin_token(token: Option<&str>) -> Result<Option<String>, ConfigError> {
    let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if PLACEHOLDER_TOKENS.contains(&token.to_ascii_lowercase().as_str()) {
        return Err(ConfigError(
            "GOLIATH_ADMIN_TOKEN is the example's placeholder: set a random token of at least \
             16 characters (e.g. `openssl rand -hex 24`)"
                .into(),
        ));
    }
    if token.chars().count() < MIN_ADMIN_TOKEN {
        return Err(ConfigError(format!(
            "GOLIATH_ADMIN_TOKEN is {} characters: use at least {MIN_ADMIN_TOKEN} (e.g. \
             `openssl rand -hex 24`)",
            token.chars().count()
        )));
    }
    Ok(Some(token.to_string()))
}

/// Refuses a `DATABASE_URL` libpq would not parse, naming the variable (its text redacted).
fn check_database_url(url: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| {
        Err(ConfigError(format!(
            "DATABASE_URL `{}` {why}",
            crate::redact::scrub(&redact_url(url))
        )))
    };
    let url = url.trim();
    if let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let hostport = authority.rsplit('@').next().unwrap_or("");
        // A bracketed IPv6 host keeps its colons.
        let port = match hostport.rsplit_once(']') {
            Some((_, after)) => after.strip_prefix(':'),
            None => hostport.rsplit_once(':').map(|(_, p)| p),
        };
        if let Some(port) = port {
            if port.parse::<u16>().is_err() {
                return bad("has a port that is not a number");
            }
        }
        return Ok(());
    }
    if url.contains('=') {
        // libpq key/value form: every word must be key=value.
        if url.split_whitespace().all(|w| w.contains('=')) {
            return Ok(());
        }
        return bad("is not a list of key=value settings");
    }
    bad("is not a postgres:// URL or a key=value connection string")
}

/// Families of variables named per service, severity or priority (`PAGERDUTY_SERVICE_<ID>`...).
const VARIABLE_FAMILIES: [&str; 11] = [
    "PAGERDUTY_SERVICE_ID_",
    "PAGERDUTY_SERVICE_",
    "PAGERDUTY_PRIORITY_",
    "PAGERDUTY_REASSIGN_",
    "GOLIATH_ON_CALL_",
    "GOLIATH_FALLBACK_OWNER_",
    "GOLIATH_MODE_",
    "GOLIATH_ESCALATE_SEV",
    "GOLIATH_JIRA_SIM_",
    "JIRA_PRIORITY_",
    "JIRA_PROJECT_",
];

/// Read before the flags are parsed (logging starts first).
const EARLY_VARIABLES: [&str; 1] = ["GOLIATH_LOG_FORMAT"];

/// Every variable the service settings read, by name.
fn settings_variables() -> Vec<String> {
    use clap::Args as _;
    let command = Settings::augment_args(clap::Command::new("goliath"));
    command
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

/// Variables that look like Goliath's (`GOLIATH_*`, `JIRA_*`, `PAGERDUTY_*`) but are not read:
/// likely typos, warned about at start.
pub fn unknown_variables<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let known = settings_variables();
    names
        .filter(|n| {
            ["GOLIATH_", "JIRA_", "PAGERDUTY_"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .filter(|n| !known.iter().any(|k| k == *n) && !EARLY_VARIABLES.contains(&n.as_str()))
        .filter(|n| {
            !VARIABLE_FAMILIES
                .iter()
                .any(|f| n.starts_with(f) && n.len() > f.len())
        })
        .cloned()
        .collect()
}

/// The password in `scheme://user:password@host...`.
fn url_password(url: &str) -> Option<&str> {
    let after = &url[url.find("://")? + 3..];
    let at = after.rfind('@')?;
    let (_, password) = after[..at].split_once(':')?;
    Some(password)
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_documents_every_variable_goliath_reads() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let documented = |name: &str| {
            readme.match_indices(name).any(|(at, _)| {
                !readme[at + name.len()..].starts_with(|c: char| c == '_' || c.is_ascii_uppercase())
            })
        };
        let variables = settings_variables();
        assert!(variables.len() > 20, "{variables:?}");
        let missing: Vec<&str> = variables
            .iter()
            .map(String::as_str)
            .chain(EARLY_VARIABLES)
            .filter(|v| !documented(v))
            .collect();
        assert!(missing.is_empty(), "not in the README: {missing:?}");
        let families: Vec<&str> = VARIABLE_FAMILIES
            .into_iter()
            .filter(|f| !readme.contains(f))
            .collect();
        assert!(
            families.is_empty(),
            "families not in the README: {families:?}"
        );
    }

    #[test]
    fn escalation_deadlines_default_and_parse() {
        let settings = Settings {
            bind: "127.0.0.1:8000".into(),
            db_pool_size: 4,
            ..Default::default()
        };
        let config = Config::from_settings(&settings, &BTreeMap::new()).unwrap();
        assert_eq!(
            config.escalation.deadline(Severity::Sev1),
            Some(std::time::Duration::from_secs(900))
        );
        assert_eq!(config.escalation.deadline(Severity::Sev4), None);
        let env: BTreeMap<String, String> = [
            ("GOLIATH_ESCALATE_SEV1", "90s"),
            ("GOLIATH_ESCALATE_SEV3", "off"),
            ("GOLIATH_ESCALATE_SEV4", "2h"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = Config::from_settings(&settings, &env).unwrap();
        assert_eq!(
            config.escalation.deadline(Severity::Sev1),
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(config.escalation.deadline(Severity::Sev3), None);
        assert_eq!(
            config.escalation.deadline(Severity::Sev4),
            Some(std::time::Duration::from_secs(7200))
        );
        let bad: BTreeMap<String, String> =
            [("GOLIATH_ESCALATE_SEV2".to_string(), "soon".to_string())].into();
        let err = Config::from_settings(&settings, &bad).err().unwrap();
        assert!(err.to_string().contains("GOLIATH_ESCALATE_SEV2"), "{err}");
    }

    #[test]
    fn config_that_cannot_work_is_refused_at_start_naming_the_variable() {
        let base = || Settings {
            bind: "127.0.0.1:8000".into(),
            db_pool_size: 4,
            ..Default::default()
        };
        let refused = |s: Settings, env: &[(&str, &str)]| {
            let env: BTreeMap<String, String> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Config::from_settings(&s, &env).err().map(|e| e.to_string())
        };
        assert_eq!(refused(base(), &[]), None);
        for (url, ok) in [
            ("postgres://u:secret@db:5432/goliath", true),
            ("postgresql://u@[::1]:5432/goliath", true),
            ("host=db port=5432 dbname=goliath", true),
            ("postgres://u:secret@db:notaport/goliath", false),
            ("host=db password=secret dbname", false),
            ("mysql-ish nonsense", false),
        ] {
            let mut s = base();
            s.database_url = Some(url.into());
            let err = refused(s, &[]);
            assert_eq!(err.is_none(), ok, "{url}: {err:?}");
            if let Some(e) = err {
                assert!(e.contains("DATABASE_URL"), "{e}");
                assert!(!e.contains("secret"), "{e}");
            }
        }
        let mut s = base();
        s.job_lease_secs = Some(0);
        assert!(refused(s, &[]).unwrap().contains("GOLIATH_JOB_LEASE_SECS"));
        let mut s = base();
        s.public_url = Some("localhost:8000".into());
        assert!(refused(s, &[]).unwrap().contains("GOLIATH_PUBLIC_URL"));
        assert!(refused(base(), &[("JIRA_PRIORITY_SEV1", " ")])
            .unwrap()
            .contains("JIRA_PRIORITY_SEV1"));
    }

    #[test]
    fn admin_tokens_that_can_be_guessed_are_refused() {
        let with = |token: &str| {
            let s = Settings {
                bind: "127.0.0.1:8000".into(),
                db_pool_size: 4,
                admin_token: Some(token.into()),
                ..Default::default()
            };
            Config::from_settings(&s, &BTreeMap::new()).map(|c| c.admin_token)
        };
        assert!(with("change-me")
            .unwrap_err()
            .to_string()
            .contains("placeholder"));
        assert!(with("short")
            .unwrap_err()
            .to_string()
            .contains("at least 16"));
        assert_eq!(
            with("0123456789abcdef").unwrap().as_deref(),
            Some("0123456789abcdef")
        );
        assert_eq!(with("").unwrap(), None, "unset: admin routes refused");
    }

    #[test]
    fn variables_goliath_does_not_read_are_named() {
        let names: Vec<String> = [
            "GOLIATH_ADMIN_TOKEN",
            "GOLIATH_ADMN_TOKEN",
            "PAGERDUTY_SERVICE_CHECKOUT",
            "PAGERDUTY_WEBHOOK_SECRETS",
            "JIRA_PROJECT_PAYMENTS",
            "GOLIATH_ESCALATE_SEV2",
            "HOME",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            unknown_variables(names.iter()),
            vec!["GOLIATH_ADMN_TOKEN", "PAGERDUTY_WEBHOOK_SECRETS"]
        );
    }

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("postgres://u:hunter2@db:5432/x"),
            "postgres://u:<redacted>@db:5432/x"
        );
        assert_eq!(redact_url("postgres://u@db/x"), "postgres://u@db/x");
    }

    #[test]
    fn env_maps_are_read_and_bad_severity_is_refused() {
        let settings = Settings {
            bind: "127.0.0.1:8000".into(),
            db_pool_size: 4,
            pagerduty_webhook_secret: Some("a, b".into()),
            ..Default::default()
        };
        let mut env = BTreeMap::new();
        env.insert("PAGERDUTY_SERVICE_CHECKOUT_API".into(), "payments".into());
        env.insert("PAGERDUTY_PRIORITY_P4".into(), "sev3".into());
        let cfg = Config::from_settings(&settings, &env).unwrap();
        assert_eq!(cfg.pagerduty.webhook_secrets, vec!["a", "b"]);
        assert_eq!(cfg.pagerduty.service_by_name["CHECKOUT_API"], "payments");
        assert_eq!(cfg.pagerduty.priority_overrides["P4"], Severity::Sev3);
        let text = format!("{cfg:?}");
        assert!(
            !text.contains("\"a\""),
            "secrets must not be printed: {text}"
        );

        env.insert("PAGERDUTY_PRIORITY_P5".into(), "urgent".into());
        assert!(Config::from_settings(&settings, &env).is_err());
    }

    #[test]
    fn deliveries_are_kept_past_pagerdutys_retries_or_forever() {
        let with = |days: u32| {
            let settings = Settings {
                bind: "127.0.0.1:8000".into(),
                db_pool_size: 4,
                delivery_retention_days: days,
                ..Default::default()
            };
            Config::from_settings(&settings, &BTreeMap::new())
        };
        assert_eq!(
            with(3).unwrap().delivery_retention,
            Some(std::time::Duration::from_secs(3 * 86_400))
        );
        assert_eq!(with(0).unwrap().delivery_retention, None, "0 keeps them");
        let refused = with(2).expect_err("2 days is refused");
        assert!(refused.0.contains("48 hours"), "{}", refused.0);
    }
}
