//! The simulator's world: issues, people, faults, counters, the simulated clock, the
//! deterministic RNG, and the Jira-shaped JSON for issues, users and webhooks.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{SimConfig, SimSkill};
use crate::jira::util::{fnv1a, percent_encode};

/// Account id the simulator reports as the actor of API writes (creates and assigns made with
/// the REST API), like the bot account of a real integration.
pub const SIM_API_ACCOUNT_ID: &str = "557058:60a1e7f0-0000-4000-8000-00000000b07a";
const SIM_API_DISPLAY_NAME: &str = "Goliath (bot)";

/// People who will not resolve hand off after a delay drawn with this fraction of their mean
/// time to resolve.
const HANDOFF_DELAY_FRACTION: f64 = 0.5;

// ---------------------------------------------------------------------------------------------
// Clock and RNG

/// Simulated time: `minute_ms` real milliseconds make one simulated minute. Simulated epoch
/// milliseconds start at the real wall clock when the simulator starts.
#[derive(Debug, Clone)]
pub(crate) struct SimClock {
    start: Instant,
    t0_ms: i64,
    minute_ms: u64,
}

impl SimClock {
    pub fn new(minute_ms: u64) -> Self {
        SimClock {
            start: Instant::now(),
            t0_ms: Utc::now().timestamp_millis(),
            minute_ms: minute_ms.max(1),
        }
    }

    pub fn now_ms(&self) -> i64 {
        let real = self.start.elapsed().as_millis();
        self.t0_ms + (real * 60_000 / u128::from(self.minute_ms)) as i64
    }

    /// The real instant at which the simulated clock reads `sim_ms`.
    pub fn instant_for(&self, sim_ms: i64) -> Instant {
        let sim_elapsed = (sim_ms - self.t0_ms).max(0) as u128;
        let real = sim_elapsed * u128::from(self.minute_ms) / 60_000;
        self.start + Duration::from_millis(real as u64)
    }
}

/// SplitMix64: small, fast, deterministic.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Exponentially distributed with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

// ---------------------------------------------------------------------------------------------
// Public views

/// An issue as `GET /_sim/issues` and [`super::JiraSimHandle::issues`] report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimIssueView {
    pub id: String,
    pub key: String,
    pub project_key: String,
    pub issue_type: String,
    pub summary: String,
    pub priority: Option<String>,
    pub labels: Vec<String>,
    pub assignee: Option<String>,
    /// `To Do` or `Done`.
    pub status: String,
    pub resolution: Option<String>,
    /// From the `service-<name>` label, `unknown` without one.
    pub service: String,
    /// How many times a simulated person handed the issue on.
    pub handoffs: u32,
    /// Comments' plain text, oldest first.
    #[serde(default)]
    pub comments: Vec<String>,
    /// Simulated epoch milliseconds.
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// Request counters (all requests received, faults included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimCounters {
    pub create_issue: u64,
    pub assign: u64,
    pub search: u64,
    pub get_issue: u64,
    #[serde(default)]
    pub transition: u64,
    #[serde(default)]
    pub comment: u64,
    #[serde(default)]
    pub edit_issue: u64,
    pub unauthorized: u64,
    pub faults_injected: u64,
    pub webhooks_sent: u64,
    pub webhooks_failed: u64,
}

/// One webhook delivery (after its retries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimDelivery {
    /// `X-Atlassian-Webhook-Identifier`.
    pub identifier: String,
    pub issue_key: String,
    pub webhook_event: String,
    pub issue_event_type_name: String,
    /// Simulated epoch milliseconds (the payload's `timestamp`).
    pub timestamp_ms: i64,
    /// Last HTTP status received, if any.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub attempts: u32,
    pub delivered: bool,
}

/// One injected failure. Deserializes from a bare status (`500`) or an object
/// `{"status": 500, "commit": true, "delay_ms": 2000}`: `commit` performs the operation before
/// answering with the error (a lost response), `hold_ms` performs a create and holds its 201
/// that long (the caller can die in between, as after Jira answered but before it recorded
/// the answer), `delay_ms` waits before answering (a 2xx with a
/// delay answers normally, late: use it to trigger client timeouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "FaultRepr")]
pub struct Fault {
    pub status: u16,
    pub commit: bool,
    pub delay_ms: u64,
    pub hold_ms: u64,
}

impl From<u16> for Fault {
    fn from(status: u16) -> Self {
        Fault {
            status,
            commit: false,
            delay_ms: 0,
            hold_ms: 0,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FaultRepr {
    Status(u16),
    Detailed {
        status: u16,
        #[serde(default)]
        commit: bool,
        #[serde(default)]
        delay_ms: u64,
        #[serde(default)]
        hold_ms: u64,
    },
}

impl From<FaultRepr> for Fault {
    fn from(r: FaultRepr) -> Self {
        match r {
            FaultRepr::Status(status) => status.into(),
            FaultRepr::Detailed {
                status,
                commit,
                delay_ms,
                hold_ms,
            } => Fault {
                status,
                commit,
                delay_ms,
                hold_ms,
            },
        }
    }
}

/// Faults for the next calls of each operation, consumed in order, then normal service.
/// Body of `POST /_sim/faults`, e.g. `{"create_issue": [500, 429, 400], "retry_after_secs": 1}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimFaults {
    #[serde(default)]
    pub create_issue: Vec<Fault>,
    #[serde(default)]
    pub assign: Vec<Fault>,
    #[serde(default)]
    pub search: Vec<Fault>,
    #[serde(default)]
    pub get_issue: Vec<Fault>,
    /// Both `GET` and `POST …/transitions`.
    #[serde(default)]
    pub transition: Vec<Fault>,
    #[serde(default)]
    pub comment: Vec<Fault>,
    /// `PUT …/issue/{key}`.
    #[serde(default)]
    pub edit_issue: Vec<Fault>,
    /// `Retry-After` seconds sent with 429 and 503 (default 1).
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    CreateIssue,
    Assign,
    Search,
    GetIssue,
    Transition,
    Comment,
    EditIssue,
}

// ---------------------------------------------------------------------------------------------
// State

#[derive(Debug, Clone)]
pub(crate) struct SimIssue {
    pub id: String,
    pub key: String,
    pub project_key: String,
    pub issue_type: String,
    pub summary: String,
    /// As given: ADF (v3) or a string (v2).
    pub description: Value,
    pub priority: Option<String>,
    pub labels: Vec<String>,
    pub assignee: Option<String>,
    pub resolution: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub status_changed_ms: i64,
    pub resolved_ms: Option<i64>,
    /// Search sees the issue from this instant on (eventual consistency).
    pub visible_at: Instant,
    /// Bumped on every assignee or resolution change; planned actions for an older generation
    /// are dropped.
    pub generation: u64,
    pub handoffs: u32,
    /// Comments' plain text, oldest first.
    pub comments: Vec<String>,
}

impl SimIssue {
    pub fn service(&self) -> String {
        self.labels
            .iter()
            .find_map(|l| l.strip_prefix("service-").filter(|s| !s.is_empty()))
            .unwrap_or("unknown")
            .to_owned()
    }

    pub fn view(&self) -> SimIssueView {
        SimIssueView {
            id: self.id.clone(),
            key: self.key.clone(),
            project_key: self.project_key.clone(),
            issue_type: self.issue_type.clone(),
            summary: self.summary.clone(),
            priority: self.priority.clone(),
            labels: self.labels.clone(),
            assignee: self.assignee.clone(),
            status: if self.resolution.is_some() {
                "Done"
            } else {
                "To Do"
            }
            .to_owned(),
            resolution: self.resolution.clone(),
            service: self.service(),
            handoffs: self.handoffs,
            comments: self.comments.clone(),
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PlannedAction {
    /// The assignee resolves the issue.
    Resolve,
    /// The assignee hands the issue to someone else.
    HandOff,
    /// Send this webhook body as is (echoes and manual actions).
    Deliver(Box<Value>),
}

#[derive(Debug)]
pub(crate) struct Planned {
    pub due: Instant,
    pub due_sim_ms: i64,
    pub seq: u64,
    pub issue_key: String,
    pub generation: u64,
    pub action: PlannedAction,
}

impl PartialEq for Planned {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Planned {}
impl PartialOrd for Planned {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Planned {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub create_issue: VecDeque<Fault>,
    pub assign: VecDeque<Fault>,
    pub search: VecDeque<Fault>,
    pub get_issue: VecDeque<Fault>,
    pub transition: VecDeque<Fault>,
    pub comment: VecDeque<Fault>,
    pub edit_issue: VecDeque<Fault>,
    pub retry_after_secs: u64,
}

impl Faults {
    pub fn set(&mut self, f: SimFaults) {
        self.create_issue = f.create_issue.into();
        self.assign = f.assign.into();
        self.search = f.search.into();
        self.get_issue = f.get_issue.into();
        self.transition = f.transition.into();
        self.comment = f.comment.into();
        self.edit_issue = f.edit_issue.into();
        self.retry_after_secs = f.retry_after_secs.unwrap_or(1);
    }

    pub fn take(&mut self, op: Op) -> Option<Fault> {
        match op {
            Op::CreateIssue => self.create_issue.pop_front(),
            Op::Assign => self.assign.pop_front(),
            Op::Search => self.search.pop_front(),
            Op::GetIssue => self.get_issue.pop_front(),
            Op::Transition => self.transition.pop_front(),
            Op::Comment => self.comment.pop_front(),
            Op::EditIssue => self.edit_issue.pop_front(),
        }
    }
}

/// Everything fixed for the simulator's life.
pub(crate) struct Ctx {
    pub config: SimConfig,
    pub base_url: String,
    pub clock: SimClock,
}

#[derive(Default)]
pub(crate) struct SimState {
    pub issues: Vec<SimIssue>,
    pub next_id: u64,
    pub next_number: HashMap<String, u64>,
    pub seen_humans: BTreeSet<String>,
    pub faults: Faults,
    pub counters: SimCounters,
    pub schedule: BinaryHeap<Planned>,
    pub seq: u64,
    pub changelog_seq: u64,
    pub delivery_seq: u64,
    pub deliveries: Vec<SimDelivery>,
    pub shutdown: bool,
}

/// Deliveries kept for inspection.
const MAX_DELIVERIES: usize = 10_000;

impl SimState {
    pub fn new() -> Self {
        SimState {
            next_id: 10_000,
            changelog_seq: 20_000,
            faults: Faults {
                retry_after_secs: 1,
                ..Faults::default()
            },
            ..SimState::default()
        }
    }

    /// Clears issues, counters, faults, plans and deliveries (not the shutdown flag).
    pub fn reset(&mut self) {
        let shutdown = self.shutdown;
        *self = SimState::new();
        self.shutdown = shutdown;
    }

    pub fn find(&self, key_or_id: &str) -> Option<usize> {
        self.issues
            .iter()
            .position(|i| i.key.eq_ignore_ascii_case(key_or_id) || i.id == key_or_id)
    }

    pub fn record_delivery(&mut self, d: SimDelivery) {
        if d.delivered {
            self.counters.webhooks_sent += 1;
        } else {
            self.counters.webhooks_failed += 1;
        }
        if self.deliveries.len() >= MAX_DELIVERIES {
            self.deliveries.remove(0);
        }
        self.deliveries.push(d);
    }

    fn next_changelog_id(&mut self) -> String {
        self.changelog_seq += 1;
        self.changelog_seq.to_string()
    }

    pub fn push_plan(
        &mut self,
        ctx: &Ctx,
        key: &str,
        generation: u64,
        due_sim_ms: i64,
        action: PlannedAction,
    ) {
        self.seq += 1;
        self.schedule.push(Planned {
            due: ctx.clock.instant_for(due_sim_ms),
            due_sim_ms,
            seq: self.seq,
            issue_key: key.to_owned(),
            generation,
            action,
        });
    }

    /// Queues a webhook body for delivery now (in order with everything else).
    pub fn push_delivery(&mut self, ctx: &Ctx, body: Value) {
        let key = body
            .pointer("/issue/key")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let now = ctx.clock.now_ms();
        self.push_plan(ctx, &key, 0, now, PlannedAction::Deliver(Box::new(body)));
    }

    /// Plans what the current assignee will do, if the people are being played.
    pub fn plan_human(&mut self, ctx: &Ctx, idx: usize, from_sim_ms: i64) {
        if !ctx.config.play_humans {
            return;
        }
        let issue = &self.issues[idx];
        let Some(human) = issue.assignee.clone() else {
            return;
        };
        if issue.resolution.is_some() {
            return;
        }
        let service = issue.service();
        let skill = skill_for(&ctx.config, &human, &service);
        let mut rng = Rng::new(
            ctx.config.seed
                ^ fnv1a(&[&issue.key, &human])
                ^ issue.generation.wrapping_mul(0x9E37_79B9),
        );
        let resolve = rng.unit() < skill.p_resolve || issue.handoffs >= ctx.config.max_handoffs;
        let mean = if resolve {
            skill.mean_minutes
        } else {
            skill.mean_minutes * HANDOFF_DELAY_FRACTION
        }
        .max(0.1);
        let minutes = rng.exponential(mean).clamp(0.5, mean * 10.0);
        let due = from_sim_ms + (minutes * 60_000.0) as i64;
        let (key, generation) = (issue.key.clone(), issue.generation);
        let action = if resolve {
            PlannedAction::Resolve
        } else {
            PlannedAction::HandOff
        };
        log::debug!(
            "jira-sim: {human} will {} {key} in {minutes:.1} simulated minutes",
            if resolve { "resolve" } else { "hand off" }
        );
        self.push_plan(ctx, &key, generation, due, action);
    }

    /// Someone other than `current` to hand an issue to: the configured roster, else everyone
    /// seen so far.
    pub fn handoff_target(&self, ctx: &Ctx, idx: usize) -> Option<String> {
        let issue = &self.issues[idx];
        let current = issue.assignee.as_deref();
        let pool: Vec<&str> = if ctx.config.humans.is_empty() {
            self.seen_humans.iter().map(String::as_str).collect()
        } else {
            ctx.config
                .humans
                .iter()
                .map(|p| p.account_id.as_str())
                .collect()
        };
        let candidates: Vec<&str> = pool.into_iter().filter(|p| Some(*p) != current).collect();
        if candidates.is_empty() {
            return None;
        }
        let mut rng =
            Rng::new(ctx.config.seed ^ fnv1a(&[&issue.key, "handoff"]) ^ u64::from(issue.handoffs));
        Some(candidates[rng.below(candidates.len())].to_owned())
    }

    /// Sets the resolution (status Done) and returns the Cloud `issue_generic` webhook.
    pub fn resolve(
        &mut self,
        ctx: &Ctx,
        idx: usize,
        at_ms: i64,
        actor: Option<&str>,
    ) -> Option<Value> {
        if self.issues[idx].resolution.is_some() {
            return None;
        }
        let changelog_id = self.next_changelog_id();
        let issue = &mut self.issues[idx];
        issue.resolution = Some("Done".into());
        issue.resolved_ms = Some(at_ms);
        issue.updated_ms = at_ms;
        issue.status_changed_ms = at_ms;
        issue.generation += 1;
        let items = vec![
            json!({"field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
                   "from": null, "fromString": null, "to": RESOLUTION_DONE_ID, "toString": "Done"}),
            json!({"field": "status", "fieldtype": "jira", "fieldId": "status",
                   "from": STATUS_TODO_ID, "fromString": "To Do", "to": STATUS_DONE_ID, "toString": "Done"}),
        ];
        let actor = actor.map(str::to_owned).or_else(|| issue.assignee.clone());
        Some(webhook_body(
            ctx,
            &self.issues[idx],
            "jira:issue_updated",
            "issue_generic",
            actor.as_deref(),
            &changelog_id,
            items,
            at_ms,
        ))
    }

    /// Clears the resolution (status To Do) and returns the Cloud `issue_generic` webhook.
    pub fn reopen(
        &mut self,
        ctx: &Ctx,
        idx: usize,
        at_ms: i64,
        actor: Option<&str>,
    ) -> Option<Value> {
        self.issues[idx].resolution.as_ref()?;
        let changelog_id = self.next_changelog_id();
        let issue = &mut self.issues[idx];
        issue.resolution = None;
        issue.resolved_ms = None;
        issue.updated_ms = at_ms;
        issue.status_changed_ms = at_ms;
        issue.generation += 1;
        let items = vec![
            json!({"field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
                   "from": RESOLUTION_DONE_ID, "fromString": "Done", "to": null, "toString": null}),
            json!({"field": "status", "fieldtype": "jira", "fieldId": "status",
                   "from": STATUS_DONE_ID, "fromString": "Done", "to": STATUS_TODO_ID, "toString": "To Do"}),
        ];
        let body = webhook_body(
            ctx,
            &self.issues[idx],
            "jira:issue_updated",
            "issue_generic",
            actor,
            &changelog_id,
            items,
            at_ms,
        );
        self.plan_human(ctx, idx, at_ms);
        Some(body)
    }

    /// Changes the assignee and returns the Cloud `issue_assigned` webhook; `None` when nothing
    /// changed. Plans the new assignee's next move.
    pub fn set_assignee(
        &mut self,
        ctx: &Ctx,
        idx: usize,
        to: Option<String>,
        at_ms: i64,
        actor: Option<&str>,
    ) -> Option<Value> {
        if self.issues[idx].assignee == to {
            return None;
        }
        if let Some(p) = &to {
            self.seen_humans.insert(p.clone());
        }
        let changelog_id = self.next_changelog_id();
        let issue = &mut self.issues[idx];
        let from = std::mem::replace(&mut issue.assignee, to.clone());
        issue.updated_ms = at_ms;
        issue.generation += 1;
        let item = json!({
            "field": "assignee", "fieldtype": "jira", "fieldId": "assignee",
            "from": from, "fromString": from.as_deref().map(|a| display_name(&ctx.config, a)),
            "to": to, "toString": to.as_deref().map(|a| display_name(&ctx.config, a)),
            "tmpFromAccountId": from, "tmpToAccountId": to,
        });
        let body = webhook_body(
            ctx,
            &self.issues[idx],
            "jira:issue_updated",
            "issue_assigned",
            actor,
            &changelog_id,
            vec![item],
            at_ms,
        );
        self.plan_human(ctx, idx, at_ms);
        Some(body)
    }

    /// Adds a new issue; returns its index.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        ctx: &Ctx,
        project_key: &str,
        issue_type: &str,
        summary: &str,
        description: Value,
        priority: Option<String>,
        labels: Vec<String>,
        assignee: Option<String>,
    ) -> usize {
        let now_ms = ctx.clock.now_ms();
        let project_key = project_key.to_ascii_uppercase();
        let number = self.next_number.entry(project_key.clone()).or_insert(0);
        *number += 1;
        let key = format!("{project_key}-{number}");
        self.next_id += 1;
        if let Some(a) = &assignee {
            self.seen_humans.insert(a.clone());
        }
        self.issues.push(SimIssue {
            id: self.next_id.to_string(),
            key,
            project_key,
            issue_type: issue_type.to_owned(),
            summary: summary.to_owned(),
            description,
            priority,
            labels,
            assignee,
            resolution: None,
            created_ms: now_ms,
            updated_ms: now_ms,
            status_changed_ms: now_ms,
            resolved_ms: None,
            visible_at: Instant::now() + Duration::from_millis(ctx.config.search_lag_ms),
            generation: 0,
            handoffs: 0,
            comments: vec![],
        });
        let idx = self.issues.len() - 1;
        self.plan_human(ctx, idx, now_ms);
        idx
    }

    /// The Cloud `jira:issue_created` webhook for an issue, as the API actor.
    pub fn created_webhook(&mut self, ctx: &Ctx, idx: usize) -> Value {
        let changelog_id = self.next_changelog_id();
        let issue = &self.issues[idx];
        let mut items = Vec::new();
        if let Some(a) = &issue.assignee {
            items.push(
                json!({"field": "assignee", "fieldtype": "jira", "fieldId": "assignee",
                "from": null, "fromString": null, "to": a, "toString": display_name(&ctx.config, a),
                "tmpFromAccountId": null, "tmpToAccountId": a}),
            );
        }
        items.push(
            json!({"field": "Status", "fieldtype": "jira", "fieldId": "status",
            "from": null, "fromString": null, "to": STATUS_TODO_ID, "toString": "To Do"}),
        );
        items.push(
            json!({"field": "summary", "fieldtype": "jira", "fieldId": "summary",
            "from": null, "fromString": null, "to": null, "toString": issue.summary}),
        );
        webhook_body(
            ctx,
            issue,
            "jira:issue_created",
            "issue_created",
            Some(SIM_API_ACCOUNT_ID),
            &changelog_id,
            items,
            issue.created_ms,
        )
    }
}

/// The skill of `person` on `service`: configured (exact service, else `"*"`), or a stable
/// default derived from a hash of the pair (p_resolve in [0.35, 0.95], mean 15..120 minutes).
pub fn skill_for(config: &SimConfig, human: &str, service: &str) -> SimSkill {
    let configured = config
        .humans
        .iter()
        .find(|p| p.account_id == human)
        .and_then(|p| p.skills.get(service).or_else(|| p.skills.get("*")));
    if let Some(s) = configured {
        return s.clone();
    }
    let h = fnv1a(&[human, service]);
    SimSkill {
        p_resolve: 0.35 + 0.6 * ((h & 0xffff) as f64 / 65_535.0),
        mean_minutes: 15.0 + ((h >> 16) % 106) as f64,
    }
}

pub fn display_name(config: &SimConfig, account_id: &str) -> String {
    if account_id == SIM_API_ACCOUNT_ID {
        return SIM_API_DISPLAY_NAME.to_owned();
    }
    config
        .humans
        .iter()
        .find(|p| p.account_id == account_id)
        .and_then(|p| p.display_name.clone())
        .unwrap_or_else(|| {
            let tail: String = account_id
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!("Engineer {tail}")
        })
}

// ---------------------------------------------------------------------------------------------
// Jira-shaped JSON

pub(crate) const STATUS_TODO_ID: &str = "10001";
pub(crate) const STATUS_DONE_ID: &str = "10002";
const RESOLUTION_DONE_ID: &str = "10000";

/// Jira's timestamp format, e.g. `2026-03-14T10:27:01.712+0000`.
pub fn jira_time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3f%z")
        .to_string()
}

fn avatar_urls(account_id: &str) -> Value {
    let h = format!(
        "{:032x}",
        u128::from(fnv1a(&[account_id])) << 64 | u128::from(fnv1a(&[account_id, "a"]))
    );
    let url = format!("https://secure.gravatar.com/avatar/{h}?d=identicon");
    json!({"48x48": url, "24x24": url, "16x16": url, "32x32": url})
}

/// A Cloud user bean (`/rest/api/2` links, as in webhooks).
pub fn user_json(ctx: &Ctx, account_id: &str, api: u8) -> Value {
    json!({
        "self": format!("{}/rest/api/{api}/user?accountId={}", ctx.base_url, percent_encode(account_id)),
        "accountId": account_id,
        "avatarUrls": avatar_urls(account_id),
        "displayName": display_name(&ctx.config, account_id),
        "active": true,
        "timeZone": "Etc/UTC",
        "accountType": if account_id == SIM_API_ACCOUNT_ID { "app" } else { "atlassian" },
    })
}

fn status_json(ctx: &Ctx, done: bool, api: u8) -> Value {
    let base = &ctx.base_url;
    if done {
        json!({"self": format!("{base}/rest/api/{api}/status/{STATUS_DONE_ID}"), "description": "",
               "iconUrl": format!("{base}/"), "name": "Done", "id": STATUS_DONE_ID,
               "statusCategory": {"self": format!("{base}/rest/api/{api}/statuscategory/3"), "id": 3,
                                  "key": "done", "colorName": "green", "name": "Done"}})
    } else {
        json!({"self": format!("{base}/rest/api/{api}/status/{STATUS_TODO_ID}"), "description": "",
               "iconUrl": format!("{base}/"), "name": "To Do", "id": STATUS_TODO_ID,
               "statusCategory": {"self": format!("{base}/rest/api/{api}/statuscategory/2"), "id": 2,
                                  "key": "new", "colorName": "blue-gray", "name": "To Do"}})
    }
}

fn priority_id(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "highest" => "1".into(),
        "high" => "2".into(),
        "medium" => "3".into(),
        "low" => "4".into(),
        "lowest" => "5".into(),
        other => (10_000 + fnv1a(&[other]) % 1000).to_string(),
    }
}

fn issue_type_id(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "incident" => "10021".into(),
        "task" => "10002".into(),
        "bug" => "10004".into(),
        other => (10_100 + fnv1a(&[other]) % 100).to_string(),
    }
}

/// All fields of an issue, in the representation of REST `api` version 2 (wiki/plain-text
/// description, also used by webhooks) or 3 (ADF description).
pub fn issue_fields(ctx: &Ctx, issue: &SimIssue, api: u8) -> Map<String, Value> {
    let base = &ctx.base_url;
    let bot = user_json(ctx, SIM_API_ACCOUNT_ID, api);
    let project_id = (10_000 + fnv1a(&[&issue.project_key]) % 1000).to_string();
    let description = match (&issue.description, api) {
        (Value::Null, _) => Value::Null,
        (Value::String(s), 3) => crate::jira::adf::to_adf(&crate::jira::adf::IssueDescription {
            explanation: s.clone(),
            ..Default::default()
        }),
        (d, 3) => d.clone(),
        (d, _) => Value::String(crate::jira::adf::adf_to_plain_text(d)),
    };
    let type_id = issue_type_id(&issue.issue_type);
    let fields = json!({
        "statuscategorychangedate": jira_time(issue.status_changed_ms),
        "issuetype": {"self": format!("{base}/rest/api/{api}/issuetype/{type_id}"), "id": type_id,
                      "description": "", "iconUrl": format!("{base}/images/icons/issuetypes/{type_id}.svg"),
                      "name": issue.issue_type, "subtask": false, "hierarchyLevel": 0},
        "project": {"self": format!("{base}/rest/api/{api}/project/{project_id}"), "id": project_id,
                    "key": issue.project_key, "name": issue.project_key, "projectTypeKey": "software",
                    "simplified": false},
        "resolution": issue.resolution.as_ref().map(|name| json!({
            "self": format!("{base}/rest/api/{api}/resolution/{RESOLUTION_DONE_ID}"), "id": RESOLUTION_DONE_ID,
            "description": "Work has been completed on this issue.", "name": name})),
        "resolutiondate": issue.resolved_ms.map(jira_time),
        "created": jira_time(issue.created_ms),
        "updated": jira_time(issue.updated_ms),
        "priority": issue.priority.as_ref().map(|p| {
            let id = priority_id(p);
            json!({"self": format!("{base}/rest/api/{api}/priority/{id}"),
                   "iconUrl": format!("{base}/images/icons/priorities/{}.svg", p.to_ascii_lowercase()),
                   "name": p, "id": id})
        }),
        "labels": issue.labels,
        "assignee": issue.assignee.as_deref().map(|a| user_json(ctx, a, api)),
        "status": status_json(ctx, issue.resolution.is_some(), api),
        "summary": issue.summary,
        "description": description,
        "creator": bot,
        "reporter": bot,
    });
    match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// An issue bean: `{id, self, key, fields}`, with `fields` limited to `wanted` (None = all).
pub fn issue_json(ctx: &Ctx, issue: &SimIssue, api: u8, wanted: Option<&[String]>) -> Value {
    let mut all = issue_fields(ctx, issue, api);
    let fields: Map<String, Value> = match wanted {
        None => all,
        Some(w) => w
            .iter()
            .filter_map(|f| all.remove_entry(f.as_str()))
            .collect(),
    };
    let mut out = json!({
        "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
        "id": issue.id,
        "self": format!("{}/rest/api/{api}/issue/{}", ctx.base_url, issue.id),
        "key": issue.key,
    });
    if !fields.is_empty() {
        out["fields"] = Value::Object(fields);
    }
    out
}

/// A Jira Cloud issue webhook body (REST v2 representation, like the real ones).
#[allow(clippy::too_many_arguments)]
pub fn webhook_body(
    ctx: &Ctx,
    issue: &SimIssue,
    webhook_event: &str,
    issue_event_type_name: &str,
    actor: Option<&str>,
    changelog_id: &str,
    items: Vec<Value>,
    timestamp_ms: i64,
) -> Value {
    let mut issue_json = json!({
        "id": issue.id,
        "self": format!("{}/rest/api/2/issue/{}", ctx.base_url, issue.id),
        "key": issue.key,
    });
    issue_json["fields"] = Value::Object(issue_fields(ctx, issue, 2));
    json!({
        "timestamp": timestamp_ms,
        "webhookEvent": webhook_event,
        "issue_event_type_name": issue_event_type_name,
        "user": actor.map(|a| user_json(ctx, a, 2)),
        "issue": issue_json,
        "changelog": {"id": changelog_id, "items": items},
    })
}
