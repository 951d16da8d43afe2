//! `goliath replay-bpic --through-http`: the log through the product itself, not the model
//! alone. Goliath runs in-process on a private PostgreSQL and its real HTTP server; every
//! person in the log is on the roster, eligible for every team (the open roster); each request
//! arrives as a signed PagerDuty V3 `incident.triggered` at its first event time, with nobody
//! paged (no on-call hint). Signed Jira webhooks tell Goliath what happened, each when it
//! happened: assignee changes when the event log says the person took the request, the
//! resolution when the request really closed (feedback at resolve time):
//!
//! - assign mode: Goliath's pick holds the issue; it is resolved by them, or handed from them
//!   to the real resolver (when the resolver first took the request) and resolved;
//! - shadow mode: Goliath only recommends; the issue, unassigned, passes along the request's
//!   real holders (one assignee change each, at its time) and is resolved by its resolver.
//!
//! Without holds (no event log), every assignee change is sent at the close. Status changes
//! that start or end a wait (the log's `Wait*` and `Awaiting Assignment` sub-statuses, set as
//! the server's waiting statuses) are sent at their times too, so the resolver's time to
//! resolve leaves the waits out, as it would with `JIRA_WAITING_STATUSES`.
//!
//! The product carries the request's team as the PagerDuty service, its impact as the priority
//! (P1..P4), its product as a PagerDuty team (so it reaches the decision as the context tag
//! `team:<product>`) and one escalation policy per team (the tag `policy:<team> on-call`).
//! Requests closed without a resolver are not scored; PagerDuty resolves them at their last
//! event, crediting nobody, so open loads stay as true as in production.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::replay::{
    is_system_account, FrequencyLookup, Mode, ReplayResult, ReplaySplit, Request, WAITING_STATUSES,
};
use crate::config::env_key;
use crate::db::embedded::Durability;
use crate::jira::SimConfig;
use crate::lab::bench::harness::{self, AppSpec, BenchDb, RunningApp};
use crate::roster::HumanInput;
use crate::routing::Severity;

/// One thing that happens, in event-time order.
enum Step {
    Trigger(usize),
    /// Request `.0` goes to the person `.1` (a roster id), unless they hold it already.
    Hand(usize, String),
    /// Request `.0` moves to the status `.1`.
    Status(usize, String),
    Close(usize),
}

/// Runs the log through the HTTP surface and scores Goliath's picks against the real
/// resolvers, next to the frequency lookup learning at the same moments.
pub fn replay_through_http(
    requests: &[Request],
    tuning_share: f64,
    mode: Mode,
) -> Result<ReplaySplit> {
    harness::quiet_logs(false);
    let db = BenchDb::open(None, None, Durability::Throwaway)?;
    let pool = db.pool(8)?;
    // Everyone in the log, as `p<n>` with a Jira account `acct-<n>`.
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for r in requests {
        let holders = r.holds.iter().map(|h| &h.human);
        for who in r
            .resource_path
            .iter()
            .chain([&r.resolver, &r.first_resource])
            .chain(holders)
        {
            if !who.is_empty() && !is_system_account(who) && !ids.contains_key(who) {
                let n = ids.len();
                ids.insert(who.clone(), format!("p{n}"));
            }
        }
    }
    let roster: Vec<HumanInput> = ids
        .values()
        .map(|id| HumanInput {
            id: Some(id.clone()),
            display_name: Some(id.clone()),
            email: Some(format!("{id}@example.com")),
            jira_account_id: Some(format!("acct-{id}")),
            pagerduty_user_id: None,
            services: vec![],
            max_active: None,
            active: Some(true),
        })
        .collect();
    {
        let mut conn = pool.get()?;
        crate::roster::import(&mut conn, &roster).map_err(|e| anyhow::anyhow!("roster: {e}"))?;
    }
    let teams: Vec<String> = {
        let mut t: Vec<String> = requests.iter().map(|r| r.first_team.clone()).collect();
        t.sort();
        t.dedup();
        t
    };
    let pd_secret = harness::random_token("pagerduty");
    let jira_secret = harness::random_token("jira");
    let listener = harness::loopback_listener()?;
    let port = listener.local_addr()?.port();
    let config = harness::config_for(port, |s| {
        s.workers = 0;
        if mode == Mode::Shadow {
            s.mode = Some("shadow".into());
        }
        s.pagerduty_webhook_secret = Some(pd_secret.clone());
        s.jira.jira_webhook_secret = Some(jira_secret.clone());
        s.jira.jira_waiting_statuses = Some(WAITING_STATUSES.join(","));
        // Each team is its own service, named as in the log.
        s.pagerduty_services = teams
            .iter()
            .map(|t| format!("{}={}", env_key(t), t.to_lowercase()))
            .collect();
    })?;
    let app = RunningApp::start(AppSpec {
        config,
        listener,
        pool: pool.clone(),
        http_threads: 2,
        job_workers: 0,
        sim: SimConfig::default(),
    })?;
    let agent = harness::agent();
    let pagerduty = Webhook {
        agent: &agent,
        url: app.url("/webhooks/pagerduty"),
        header: "X-PagerDuty-Signature",
        prefix: "v1=",
        secret: &pd_secret,
    };
    let jira = Webhook {
        agent: &agent,
        url: app.url("/webhooks/jira"),
        header: "X-Hub-Signature",
        prefix: "sha256=",
        secret: &jira_secret,
    };
    let template: Value = serde_json::from_str(crate::lab::bench::load::TEMPLATE)?;

    let mut steps: Vec<(chrono::DateTime<chrono::Utc>, u8, usize, Step)> = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        steps.push((r.first_event_at, 0, i, Step::Trigger(i)));
        // Every request closes: with its resolver when the log names one, else at its last
        // event, in PagerDuty, crediting nobody (so open loads stay true).
        let closed = r
            .resolved_at
            .unwrap_or(r.last_event_at)
            .max(r.first_event_at);
        steps.push((closed, 2, i, Step::Close(i)));
        if r.resolver.is_empty() || is_system_account(&r.resolver) {
            continue;
        }
        let when = |t: chrono::DateTime<chrono::Utc>| t.clamp(r.first_event_at, closed);
        let hands: Vec<(chrono::DateTime<chrono::Utc>, &str)> = match mode {
            // The pick hands it to the resolver when the resolver first took the request.
            Mode::Assign => {
                let taken = r.taken_by(&r.resolver).map_or(closed, when);
                vec![(taken, r.resolver.as_str())]
            }
            Mode::Shadow if r.holds.is_empty() => {
                real_path(r).into_iter().map(|who| (closed, who)).collect()
            }
            Mode::Shadow => r
                .holds
                .iter()
                .map(|h| (when(h.from), h.human.as_str()))
                .collect(),
        };
        for (at, who) in hands {
            steps.push((at, 1, i, Step::Hand(i, ids[who].clone())));
        }
        // Status changes that start or end a wait (the only ones the learner reads).
        let mut waiting = false;
        for (at, status) in &r.statuses {
            let now = WAITING_STATUSES.contains(&status.as_str());
            if now != waiting && *at < closed {
                steps.push((when(*at), 1, i, Step::Status(i, status.clone())));
            }
            waiting = now;
        }
    }
    // Stable: one request's hand-offs at the same instant keep their order.
    steps.sort_by_key(|(at, order, i, _)| (*at, *order, *i));

    let split_at = (requests.len() as f64 * tuning_share.clamp(0.0, 1.0)).round() as usize;
    let mut parts = [ReplayResult::default(), ReplayResult::default()];
    let mut all = ReplayResult {
        requests: requests.len(),
        humans: ids.len(),
        ..ReplayResult::default()
    };
    let mut issues: HashMap<usize, Issue> = HashMap::new();
    let mut lookup = FrequencyLookup::default();
    // The fair baseline: the same lookup fed the Jira events the product receives, when it
    // receives them (see `EventsLookup`).
    let mut events = EventsLookup::new(mode, &ids);
    let started = std::time::Instant::now();
    for (at, _, _, step) in &steps {
        match step {
            &Step::Trigger(i) => {
                let r = &requests[i];
                let body = incident_body(&template, r, i)?;
                let (status, text) = pagerduty.send(&body)?;
                let answer: Value = serde_json::from_str(&text).unwrap_or_default();
                if status != 200 {
                    bail!(
                        "request {}: PagerDuty webhook answered {status}: {answer}",
                        r.sr_number
                    );
                }
                let item = answer["work_item_id"]
                    .as_str()
                    .context("the answer names the work item")?
                    .to_string();
                // Who holds the issue now (nobody in shadow mode), and Goliath's pick (its
                // recommendation in shadow mode).
                let assignee = answer["assignee_id"].as_str().map(String::from);
                let decision = {
                    let mut conn = pool.get()?;
                    crate::decision::load(&mut conn, &item)?
                };
                let pick = decision.as_ref().and_then(|d| d.primary_human_id.clone());
                let confidence = decision.as_ref().map(|d| d.confidence);
                let scored = !r.resolver.is_empty() && !is_system_account(&r.resolver);
                if scored {
                    let truth = ids[&r.resolver].clone();
                    let top3: Vec<String> = decision
                        .and_then(|d| d.ranking.as_array().cloned())
                        .unwrap_or_default()
                        .iter()
                        .take(3)
                        .filter_map(|c| c["human_id"].as_str().map(String::from))
                        .collect();
                    let ranked = lookup.ranked(r);
                    let by_events: Vec<String> =
                        events.lookup.ranked(r).into_iter().cloned().collect();
                    events.picked(i, by_events.first().cloned());
                    let part = &mut parts[usize::from(i >= split_at)];
                    for res in [&mut all, part] {
                        res.scored += 1;
                        res.resolver_eligible += 1;
                        res.undecided += usize::from(pick.is_none());
                        let right = pick.as_deref() == Some(truth.as_str());
                        res.goliath_top1 += usize::from(right);
                        if let (Some(c), Some(_)) = (confidence, &pick) {
                            res.calibration.add(c, right);
                        }
                        res.goliath_top3 += usize::from(top3.contains(&truth));
                        res.lookup_top1 +=
                            usize::from(ranked.first().is_some_and(|t| **t == r.resolver));
                        res.lookup_top3 +=
                            usize::from(ranked.iter().take(3).any(|t| **t == r.resolver));
                        res.events_lookup_top1 +=
                            usize::from(by_events.first() == Some(&r.resolver));
                        res.events_lookup_top3 +=
                            usize::from(by_events.iter().take(3).any(|t| *t == r.resolver));
                    }
                }
                let issue = Issue {
                    i,
                    item,
                    holder: assignee,
                    updates: 0,
                };
                issues.insert(i, issue);
            }
            Step::Hand(i, to) => {
                let Some(issue) = issues.get_mut(i) else {
                    continue;
                };
                if issue.holder.as_deref() != Some(to.as_str()) {
                    issue.update(&jira, &requests[*i], *at, Some(to), None, false)?;
                    events.took_over(&requests[*i], *i, to);
                }
            }
            Step::Status(i, status) => {
                let Some(issue) = issues.get_mut(i) else {
                    continue;
                };
                issue.update(&jira, &requests[*i], *at, None, Some(status), false)?;
            }
            &Step::Close(i) => {
                let r = &requests[i];
                let Some(issue) = issues.get_mut(&i) else {
                    continue;
                };
                let at = *at;
                if r.resolver.is_empty() || is_system_account(&r.resolver) {
                    let body = resolved_body(&template, r, i, at)?;
                    let (status, text) = pagerduty.send(&body)?;
                    if status >= 300 {
                        bail!(
                            "request {}: PagerDuty resolve answered {status}: {text}",
                            r.sr_number
                        );
                    }
                    continue;
                }
                // Resolved by the resolver, taking it over as they resolve it if they do not
                // hold it yet.
                let resolver = ids[&r.resolver].as_str();
                issue.update(&jira, r, at, Some(resolver), None, true)?;
                lookup.learn(r);
                events.resolved(r, i);
            }
        }
    }
    all.mean_decide_micros = started.elapsed().as_secs_f64() * 1e6 / steps.len().max(1) as f64;
    app.stop();
    drop(db);
    let [tuning, held_out] = parts;
    Ok(ReplaySplit {
        all,
        tuning,
        held_out,
    })
}

/// The frequency lookup fed the Jira events the product receives, when it receives them: each
/// take-over counts for the person who took the issue (withdrawn when they pass it on, in
/// shadow mode, where people route it), and a resolve counts for a resolver who had not taken
/// it over. In assign mode it routes by itself, as in the model-alone replay: its own right
/// pick is counted at the resolve, a wrong one at the resolver's take-over.
struct EventsLookup {
    lookup: FrequencyLookup,
    mode: Mode,
    /// Roster id -> the log's name.
    names: HashMap<String, String>,
    /// Request -> the lookup's own pick (assign mode).
    picks: HashMap<usize, Option<String>>,
    /// Request -> who the lookup counted as holding it last.
    holders: HashMap<usize, String>,
}

impl EventsLookup {
    fn new(mode: Mode, ids: &BTreeMap<String, String>) -> Self {
        Self {
            lookup: FrequencyLookup::default(),
            mode,
            names: ids
                .iter()
                .map(|(name, id)| (id.clone(), name.clone()))
                .collect(),
            picks: HashMap::new(),
            holders: HashMap::new(),
        }
    }

    fn picked(&mut self, i: usize, pick: Option<String>) {
        self.picks.insert(i, pick);
    }

    /// Request `i` (`r`) went to the roster id `to`.
    fn took_over(&mut self, r: &Request, i: usize, to: &str) {
        let Some(name) = self.names.get(to).cloned() else {
            return;
        };
        match self.mode {
            Mode::Assign => {
                // The resolver takes it from a wrong pick; a right pick needed no hand-off.
                if self.picks.get(&i).cloned().flatten().as_deref() != Some(name.as_str()) {
                    self.lookup.add(r, &name, 1);
                    self.holders.insert(i, name);
                }
            }
            Mode::Shadow => {
                if let Some(before) = self.holders.insert(i, name.clone()) {
                    self.lookup.add(r, &before, -1);
                }
                self.lookup.add(r, &name, 1);
            }
        }
    }

    /// Request `i` (`r`) was resolved by its resolver.
    fn resolved(&mut self, r: &Request, i: usize) {
        if self.holders.remove(&i).as_deref() != Some(r.resolver.as_str()) {
            self.lookup.add(r, &r.resolver, 1);
        }
    }
}

/// Where one kind of signed webhook goes.
struct Webhook<'a> {
    agent: &'a ureq::Agent,
    url: String,
    header: &'static str,
    prefix: &'static str,
    secret: &'a str,
}

impl Webhook<'_> {
    /// Sends one Jira update of request `r`; an error unless Jira's webhook took it.
    fn deliver(&self, update: &IssueUpdate, r: &Request) -> Result<()> {
        let (status, text) = self.send(&update.body())?;
        if status >= 300 {
            bail!(
                "request {}: Jira webhook answered {status}: {text}",
                r.sr_number
            );
        }
        Ok(())
    }

    /// Sends `body` signed; the answer's status and text.
    fn send(&self, body: &[u8]) -> Result<(u16, String)> {
        let sig = format!(
            "{}{}",
            self.prefix,
            crate::signature::sign_hex(self.secret, body)
        );
        let mut resp = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header(self.header, &sig)
            .send(body)?;
        let status = resp.status().as_u16();
        Ok((status, resp.body_mut().read_to_string().unwrap_or_default()))
    }
}

/// The request as PagerDuty would send it: its team as the service, its impact as the
/// priority, its product as a team, and nobody paged.
fn incident_body(template: &Value, r: &Request, i: usize) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(&incident(template, r, i))?)
}

/// [`incident_body`] as JSON, for the events built on it.
fn incident(template: &Value, r: &Request, i: usize) -> Value {
    let mut v = template.clone();
    let created = r
        .first_event_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    v["event"]["id"] = format!("ev-{}", r.sr_number).into();
    v["event"]["occurred_at"] = created.clone().into();
    let d = &mut v["event"]["data"];
    d["id"] = format!("SR{i}").into();
    d["number"] = (i + 1).into();
    d["created_at"] = created.into();
    d["title"] = format!("{} {}", r.product, r.sr_number).trim().into();
    d["service"] = json!({"id": format!("S{}", env_key(&r.first_team)), "summary": r.first_team, "type": "service_reference"});
    d["assignees"] = json!([]);
    // One escalation policy per team, as PagerDuty is usually set up.
    d["escalation_policy"] = json!({
        "id": format!("EP{}", env_key(&r.first_team)),
        "summary": format!("{} on-call", r.first_team),
        "type": "escalation_policy_reference",
    });
    // The product as a PagerDuty team, where the log gives one (the stand-in setting clears it).
    d["teams"] = if r.product.is_empty() {
        json!([])
    } else {
        json!([{"id": "PT", "summary": r.product, "type": "team_reference"}])
    };
    let priority = match r.severity {
        Severity::Sev1 => "P1",
        Severity::Sev2 => "P2",
        Severity::Sev3 => "P3",
        Severity::Sev4 => "P4",
    };
    d["priority"] = json!({"id": priority, "summary": priority, "type": "priority_reference"});
    d["urgency"] = "low".into();
    v
}

/// PagerDuty's `incident.resolved` for a request the log closed without naming a resolver:
/// no agent, so nobody is credited.
fn resolved_body(
    template: &Value,
    r: &Request,
    i: usize,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<u8>> {
    let mut v = incident(template, r, i);
    v["event"]["id"] = format!("ev-{}-resolved", r.sr_number).into();
    v["event"]["event_type"] = "incident.resolved".into();
    v["event"]["occurred_at"] = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into();
    if let Some(e) = v["event"].as_object_mut() {
        e.remove("agent");
    }
    v["event"]["data"]["status"] = "resolved".into();
    Ok(serde_json::to_vec(&v)?)
}

/// The people a request really passed through, in order and without repeats in a row, ending
/// with its resolver (as in the log).
fn real_path(r: &Request) -> Vec<&str> {
    let mut path: Vec<&str> = Vec::new();
    for who in r.resource_path.iter().chain([&r.resolver]) {
        if who.is_empty() || is_system_account(who) {
            continue;
        }
        if path.last() != Some(&who.as_str()) {
            path.push(who);
        }
    }
    path
}

/// A replayed request's Jira issue: its work item, who holds it, and how many updates it has
/// had.
struct Issue {
    /// The request's index (for the issue's id and key).
    i: usize,
    item: String,
    holder: Option<String>,
    updates: usize,
}

impl Issue {
    /// Sends the request's next Jira update, at `at`: an assignee change to `to` when they do
    /// not hold the issue yet, a status change, and the resolution by `to` when `resolved`.
    fn update(
        &mut self,
        jira: &Webhook,
        r: &Request,
        at: chrono::DateTime<chrono::Utc>,
        to: Option<&str>,
        status: Option<&str>,
        resolved: bool,
    ) -> Result<()> {
        let moved = to.filter(|t| self.holder.as_deref() != Some(*t));
        let update = IssueUpdate {
            item: &self.item,
            i: self.i,
            seq: self.updates,
            at,
            assignee: moved.map(|t| (self.holder.as_deref(), t)),
            status,
            resolved_by: to.filter(|_| resolved),
        };
        jira.deliver(&update, r)?;
        if let Some(t) = moved {
            self.holder = Some(t.to_string());
        }
        self.updates += 1;
        Ok(())
    }
}

/// One Jira Cloud `jira:issue_updated` webhook: an assignee change, a resolution, or both.
struct IssueUpdate<'a> {
    item: &'a str,
    /// The request's index (for the issue's id and key).
    i: usize,
    /// Which update of the request this is (for its changelog id and time).
    seq: usize,
    at: chrono::DateTime<chrono::Utc>,
    /// (from, to) of an assignee change.
    assignee: Option<(Option<&'a str>, &'a str)>,
    /// A status change to this status.
    status: Option<&'a str>,
    /// Resolved by this person.
    resolved_by: Option<&'a str>,
}

impl IssueUpdate<'_> {
    fn body(&self) -> Vec<u8> {
        let account = |p: &str| format!("acct-{p}");
        let mut items = vec![];
        if let Some((from, to)) = self.assignee {
            items.push(json!({
                "field": "assignee", "fieldtype": "jira", "fieldId": "assignee",
                "from": from.map(account), "to": account(to),
                "tmpFromAccountId": from.map(account), "tmpToAccountId": account(to),
            }));
        }
        if let Some(to) = self.status {
            items.push(json!({
                "field": "status", "fieldtype": "jira", "fieldId": "status",
                "from": null, "fromString": null, "to": to, "toString": to,
            }));
        }
        if self.resolved_by.is_some() {
            items.push(json!({
                "field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
                "from": null, "fromString": null, "to": "10000", "toString": "Done",
            }));
        }
        let actor = self
            .resolved_by
            .or(self.assignee.map(|(_, to)| to))
            .unwrap_or_default();
        // Updates of one request a millisecond apart, in order.
        let at = self.at + chrono::Duration::milliseconds(self.seq as i64);
        let body = json!({
            "timestamp": at.timestamp_millis(),
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_generic",
            "user": {"accountId": account(actor)},
            "issue": {
                "id": format!("{}", 100_000 + self.i),
                "key": format!("BPIC-{}", self.i + 1),
                "fields": {
                    "labels": ["goliath", crate::executor::issue_label(self.item)],
                    "assignee": {"accountId": account(actor)},
                },
            },
            "changelog": {"id": format!("{}", (200_000 + self.i) * 100 + self.seq), "items": items},
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }
}
