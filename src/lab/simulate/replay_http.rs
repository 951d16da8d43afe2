//! `goliath replay-bpic --through-http`: the log through the product itself, not the model
//! alone. Goliath runs in-process on a private PostgreSQL and its real HTTP server; every
//! person in the log is on the roster, eligible for every team (the open roster); each request
//! arrives as a signed PagerDuty V3 `incident.triggered` at its first event time, with nobody
//! paged (no on-call hint), and Goliath assigns it. When the request really closed, a signed
//! Jira webhook at that time tells Goliath what happened: resolved by its pick, or handed from
//! the pick to the real resolver and resolved by them (assign mode, feedback at resolve time).
//!
//! The product carries the request's team as the PagerDuty service, its impact as the priority
//! (P1..P4), its product as a PagerDuty team (so it reaches the decision as the context tag
//! `team:<product>`) and one escalation policy per team (the tag `policy:<team> on-call`).
//! Requests closed without a resolver are not scored; PagerDuty resolves them at their last
//! event, crediting nobody, so open loads stay as true as in production.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::replay::{is_system_account, ReplayResult, ReplaySplit, Request};
use crate::db::embedded::Durability;
use crate::jira::SimConfig;
use crate::lab::bench::harness::{self, AppSpec, BenchDb, RunningApp};
use crate::roster::HumanInput;
use crate::routing::Severity;

/// One thing that happens, in event-time order.
enum Step {
    Trigger(usize),
    Close(usize),
}

/// Runs the log through the HTTP surface and scores Goliath's picks against the real
/// resolvers, next to the frequency lookup learning at the same moments.
pub fn replay_through_http(requests: &[Request], tuning_share: f64) -> Result<ReplaySplit> {
    harness::quiet_logs(false);
    let db = BenchDb::open(None, None, Durability::Throwaway)?;
    let pool = db.pool(8)?;
    // Everyone in the log, as `p<n>` with a Jira account `acct-<n>`.
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for r in requests {
        for who in r
            .resource_path
            .iter()
            .chain([&r.resolver, &r.first_resource])
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
        s.pagerduty_webhook_secret = Some(pd_secret.clone());
        s.jira.jira_webhook_secret = Some(jira_secret.clone());
        // Each team is its own service, named as in the log.
        s.pagerduty_services = teams
            .iter()
            .map(|t| format!("{}={}", service_key(t), t.to_lowercase()))
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
    let template: Value = serde_json::from_str(crate::lab::bench::load::TEMPLATE)?;

    let mut steps: Vec<(chrono::DateTime<chrono::Utc>, u8, Step)> = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        steps.push((r.first_event_at, 0, Step::Trigger(i)));
        // Every request closes: with its resolver when the log names one, else at its last
        // event, in PagerDuty, crediting nobody (so open loads stay true).
        let at = r.resolved_at.unwrap_or(r.last_event_at);
        steps.push((at.max(r.first_event_at), 1, Step::Close(i)));
    }
    steps.sort_by_key(|(at, order, step)| {
        let i = match step {
            Step::Trigger(i) | Step::Close(i) => *i,
        };
        (*at, *order, i)
    });

    let split_at = (requests.len() as f64 * tuning_share.clamp(0.0, 1.0)).round() as usize;
    let mut parts = [ReplayResult::default(), ReplayResult::default()];
    let mut all = ReplayResult {
        requests: requests.len(),
        people: ids.len(),
        ..ReplayResult::default()
    };
    let mut picks: HashMap<usize, (String, Option<String>)> = HashMap::new();
    let mut lookup_tp: HashMap<(String, String), BTreeMap<String, u32>> = HashMap::new();
    let mut lookup_t: HashMap<String, BTreeMap<String, u32>> = HashMap::new();
    let started = std::time::Instant::now();
    for (_, _, step) in &steps {
        match *step {
            Step::Trigger(i) => {
                let r = &requests[i];
                let body = incident_body(&template, r, i)?;
                let sig = format!("v1={}", crate::signature::sign_hex(&pd_secret, &body));
                let mut resp = agent
                    .post(&app.url("/webhooks/pagerduty"))
                    .header("Content-Type", "application/json")
                    .header("X-PagerDuty-Signature", &sig)
                    .send(&body[..])?;
                let status = resp.status().as_u16();
                let answer: Value = resp.body_mut().read_json().unwrap_or_default();
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
                let pick = answer["assignee_id"].as_str().map(String::from);
                let scored = !r.resolver.is_empty() && !is_system_account(&r.resolver);
                if scored {
                    let truth = ids[&r.resolver].clone();
                    let top3: Vec<String> = {
                        let mut conn = pool.get()?;
                        crate::decision::load(&mut conn, &item)?
                            .and_then(|d| d.ranking.as_array().cloned())
                            .unwrap_or_default()
                            .iter()
                            .take(3)
                            .filter_map(|c| c["human_id"].as_str().map(String::from))
                            .collect()
                    };
                    let table = lookup_tp
                        .get(&(r.first_team.clone(), r.product.clone()))
                        .filter(|m| !m.is_empty())
                        .or_else(|| lookup_t.get(&r.first_team));
                    let mut ranked: Vec<(&String, &u32)> =
                        table.map(|m| m.iter().collect()).unwrap_or_default();
                    ranked.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
                    let part = &mut parts[usize::from(i >= split_at)];
                    for res in [&mut all, part] {
                        res.scored += 1;
                        res.resolver_eligible += 1;
                        res.undecided += usize::from(pick.is_none());
                        res.goliath_top1 += usize::from(pick.as_deref() == Some(truth.as_str()));
                        res.goliath_top3 += usize::from(top3.contains(&truth));
                        res.lookup_top1 +=
                            usize::from(ranked.first().is_some_and(|t| *t.0 == r.resolver));
                        res.lookup_top3 +=
                            usize::from(ranked.iter().take(3).any(|t| *t.0 == r.resolver));
                    }
                }
                picks.insert(i, (item, pick));
            }
            Step::Close(i) => {
                let r = &requests[i];
                let Some((item, pick)) = picks.get(&i) else {
                    continue;
                };
                let at = r
                    .resolved_at
                    .unwrap_or(r.last_event_at)
                    .max(r.first_event_at);
                if r.resolver.is_empty() || is_system_account(&r.resolver) {
                    let body = resolved_body(&template, r, i, at)?;
                    let sig = format!("v1={}", crate::signature::sign_hex(&pd_secret, &body));
                    let mut resp = agent
                        .post(&app.url("/webhooks/pagerduty"))
                        .header("Content-Type", "application/json")
                        .header("X-PagerDuty-Signature", &sig)
                        .send(&body[..])?;
                    let status = resp.status().as_u16();
                    if status >= 300 {
                        let text = resp.body_mut().read_to_string().unwrap_or_default();
                        bail!(
                            "request {}: PagerDuty resolve answered {status}: {text}",
                            r.sr_number
                        );
                    }
                    continue;
                }
                let resolver = &ids[&r.resolver];
                let body = close_body(item, pick.as_deref(), resolver, i, at);
                let sig = format!("sha256={}", crate::signature::sign_hex(&jira_secret, &body));
                let mut resp = agent
                    .post(&app.url("/webhooks/jira"))
                    .header("Content-Type", "application/json")
                    .header("X-Hub-Signature", &sig)
                    .send(&body[..])?;
                let status = resp.status().as_u16();
                if status >= 300 {
                    let text = resp.body_mut().read_to_string().unwrap_or_default();
                    bail!(
                        "request {}: Jira webhook answered {status}: {text}",
                        r.sr_number
                    );
                }
                *lookup_tp
                    .entry((r.first_team.clone(), r.product.clone()))
                    .or_default()
                    .entry(r.resolver.clone())
                    .or_default() += 1;
                *lookup_t
                    .entry(r.first_team.clone())
                    .or_default()
                    .entry(r.resolver.clone())
                    .or_default() += 1;
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

/// The `PAGERDUTY_SERVICE_<KEY>` key of a team name.
fn service_key(team: &str) -> String {
    crate::config::env_key(team)
}

/// The request as PagerDuty would send it: its team as the service, its impact as the
/// priority, its product as a team, and nobody paged.
fn incident_body(template: &Value, r: &Request, i: usize) -> Result<Vec<u8>> {
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
    d["title"] = format!("{} {}", r.product, r.sr_number).into();
    d["service"] = json!({"id": format!("S{}", service_key(&r.first_team)), "summary": r.first_team, "type": "service_reference"});
    d["assignees"] = json!([]);
    // One escalation policy per team, as PagerDuty is usually set up.
    d["escalation_policy"] = json!({
        "id": format!("EP{}", service_key(&r.first_team)),
        "summary": format!("{} on-call", r.first_team),
        "type": "escalation_policy_reference",
    });
    d["teams"] = json!([{"id": "PT", "summary": r.product, "type": "team_reference"}]);
    let priority = match r.severity {
        Severity::Sev1 => "P1",
        Severity::Sev2 => "P2",
        Severity::Sev3 => "P3",
        Severity::Sev4 => "P4",
    };
    d["priority"] = json!({"id": priority, "summary": priority, "type": "priority_reference"});
    d["urgency"] = "low".into();
    Ok(serde_json::to_vec(&v)?)
}

/// PagerDuty's `incident.resolved` for a request the log closed without naming a resolver:
/// no agent, so nobody is credited.
fn resolved_body(
    template: &Value,
    r: &Request,
    i: usize,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(&incident_body(template, r, i)?)?;
    v["event"]["id"] = format!("ev-{}-resolved", r.sr_number).into();
    v["event"]["event_type"] = "incident.resolved".into();
    v["event"]["occurred_at"] = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into();
    if let Some(e) = v["event"].as_object_mut() {
        e.remove("agent");
    }
    v["event"]["data"]["status"] = "resolved".into();
    Ok(serde_json::to_vec(&v)?)
}

/// A Jira Cloud `jira:issue_updated` webhook at `at`: the issue handed from the pick to the
/// resolver when they differ, then resolved by the resolver.
fn close_body(
    item: &str,
    pick: Option<&str>,
    resolver: &str,
    i: usize,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<u8> {
    let account = |p: &str| format!("acct-{p}");
    let mut items = vec![];
    if pick != Some(resolver) {
        items.push(json!({
            "field": "assignee", "fieldtype": "jira", "fieldId": "assignee",
            "from": pick.map(account), "to": account(resolver),
            "tmpFromAccountId": pick.map(account), "tmpToAccountId": account(resolver),
        }));
    }
    items.push(json!({
        "field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
        "from": null, "fromString": null, "to": "10000", "toString": "Done",
    }));
    let body = json!({
        "timestamp": at.timestamp_millis(),
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "user": {"accountId": account(resolver)},
        "issue": {
            "id": format!("{}", 100_000 + i),
            "key": format!("BPIC-{}", i + 1),
            "fields": {
                "labels": ["goliath", crate::executor::issue_label(item)],
                "assignee": {"accountId": account(resolver)},
            },
        },
        "changelog": {"id": format!("{}", 200_000 + i), "items": items},
    });
    serde_json::to_vec(&body).unwrap_or_default()
}
