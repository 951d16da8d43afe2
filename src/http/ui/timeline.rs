//! A work item's history told in words: who did what, when, and where (Jira, PagerDuty, the
//! admin page), one line per stored history row. Rows of a kind this file does not know show
//! their kind and detail, so nothing recorded is hidden.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde_json::Value;

use crate::models::WorkItemEvent;

/// What the lines link to and how they name people.
pub struct Context<'a> {
    /// Display names by person id, for a hover title on each id.
    pub names: HashMap<&'a str, &'a str>,
    /// The Jira browse URL of an issue key, when the Jira client knows one.
    pub browse: &'a dyn Fn(&str) -> Option<String>,
    /// The item's PagerDuty incident id and its page in PagerDuty.
    pub incident_id: Option<&'a str>,
    pub incident_url: Option<&'a str>,
}

impl Context<'_> {
    fn person(&self, id: Option<&str>) -> Markup {
        match id {
            Some(id) => {
                html! { span.who title=(self.names.get(id).copied().unwrap_or(id)) { (id) } }
            }
            None => html! { "nobody" },
        }
    }

    fn jira(&self, key: Option<&str>) -> Markup {
        match key {
            Some(key) => match (self.browse)(key) {
                Some(url) => html! { a href=(url) { (key) } },
                None => html! { (key) },
            },
            None => html! { "the Jira issue" },
        }
    }

    fn incident(&self, id: Option<&str>) -> Markup {
        let id = id.or(self.incident_id);
        match (id, self.incident_url) {
            (Some(id), Some(url)) if Some(id) == self.incident_id => {
                html! { a href=(url) { (id) } }
            }
            (Some(id), _) => html! { (id) },
            (None, _) => html! { "the incident" },
        }
    }
}

/// The incident's page in PagerDuty, when the delivery gave one: only an http(s) address (the
/// value came from outside) that names the incident, so a link never leads elsewhere.
pub fn incident_url<'a>(raw_payload: &'a Value, incident_id: &str) -> Option<&'a str> {
    raw_payload["event"]["data"]["html_url"]
        .as_str()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .filter(|u| u.contains(incident_id))
}

/// The history as an ordered list, oldest first. Times are UTC; the date is written on the
/// first line of each day.
pub fn timeline(history: &[WorkItemEvent], ctx: &Context) -> Markup {
    let mut last_day = None;
    let stamps: Vec<String> = history
        .iter()
        .map(|ev| {
            let day = ev.occurred_at.date_naive();
            let format = if last_day == Some(day) {
                "%H:%M"
            } else {
                "%Y-%m-%d %H:%M"
            };
            last_day = Some(day);
            ev.occurred_at.format(format).to_string()
        })
        .collect();
    html! {
        ol id="timeline" {
            @for (ev, stamp) in history.iter().zip(&stamps) {
                li class=(ev.kind) {
                    time datetime=(ev.occurred_at.to_rfc3339()) { (stamp) }
                    " "
                    (line(ev, ctx))
                }
            }
        }
    }
}

fn text<'a>(detail: &'a Value, key: &str) -> Option<&'a str> {
    detail[key].as_str().filter(|s| !s.is_empty())
}

/// Where an outcome was seen, from its event id (see where each source names its events).
fn source(detail: &Value) -> &'static str {
    let id = text(detail, "event_id").unwrap_or_default();
    if id.starts_with("jira-") {
        " (Jira)"
    } else if id.starts_with("pagerduty-") {
        " (PagerDuty)"
    } else {
        ""
    }
}

/// A duration for people: minutes under two hours, else hours.
fn duration(seconds: f64) -> String {
    if seconds < 7200.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

fn clock(detail: &Value, key: &str) -> Option<String> {
    let at: DateTime<Utc> = serde_json::from_value(detail[key].clone()).ok()?;
    Some(at.format("%H:%M").to_string())
}

/// Text too long for a line (a note, a comment), folded away under a summary.
fn folded(summary: &str, body: Option<&str>) -> Markup {
    html! {
        @if let Some(body) = body {
            " " details { summary { (summary) } pre { (body) } }
        }
    }
}

fn line(ev: &WorkItemEvent, ctx: &Context) -> Markup {
    let d = &ev.detail;
    let who = |key: &str| ctx.person(text(d, key));
    let src = source(d);
    match ev.kind.as_str() {
        "received" => html! {
            "PagerDuty incident " (ctx.incident(text(d, "incident_id"))) " came in"
        },
        "decided" => html! {
            "Goliath chose " (who("primary"))
            (backups(d, ctx))
            @if let Some(c) = d["confidence"].as_f64() { " (confidence " (format!("{:.0}%", c * 100.0)) ")" }
        },
        "fallback" => html! {
            "Nobody was eligible"
            @if let Some(r) = text(d, "reason") { " (" (r) ")" }
            "; given to the fallback owner " (who("fallback"))
        },
        "unassigned" => html! {
            "Nobody was chosen"
            @if let Some(r) = text(d, "reason") { ": " (r) }
        },
        "recommended" => html! {
            @if text(d, "primary").is_some() {
                "Goliath recommended " (who("primary")) (backups(d, ctx)) " (shadow mode: nobody was assigned)"
            } @else {
                "Goliath found nobody to recommend"
                @if let Some(r) = text(d, "reason") { ": " (r) }
            }
        },
        "resolved" => html! {
            @if text(d, "human").is_some() { (who("human")) " resolved it" } @else { "It was resolved" }
            (src)
            @if let Some(s) = d["seconds_to_resolve"].as_f64() {
                " after " (duration(s))
                @if let Some(w) = d["seconds_waiting"].as_f64() { ", " (duration(w)) " of it waiting" }
            }
        },
        "handed_off" => html! {
            @match (text(d, "human"), text(d, "to")) {
                (Some(_), Some(_)) => { (who("human")) " handed it to " (who("to")) }
                (None, Some(_)) => { (who("to")) " took it" }
                (Some(_), None) => { (who("human")) " let it go; nobody owns it now" }
                (None, None) => "The owner changed",
            }
            (src)
        },
        "override" => html! {
            (text(d, "actor").unwrap_or("An admin")) " gave it to " (who("to"))
            @if text(d, "human").is_some() { " (it was " (who("human")) "'s)" }
            @if let Some(r) = text(d, "reason") { ": “" (r) "”" }
        },
        "escalated" => html! {
            (who("human")) " did not act"
            @if let Some(t) = clock(d, "deadline") { " by " (t) }
            "; escalated to " (who("to"))
        },
        "escalation_exhausted" => html! {
            (who("owner")) " did not act"
            @if let Some(t) = clock(d, "deadline") { " by " (t) }
            ", and there was no backup left to escalate to"
        },
        "reopened" => html! {
            "Reopened" (src)
            @if text(d, "human").is_some() { "; back with " (who("human")) }
        },
        "over_capacity" => html! {
            (who("human")) " now holds " (d["open_items"]) " open items, past their max_active of " (d["max_active"])
        },
        "owner_acted" => html! {
            "The owner acted"
            @if let Some(how) = text(d, "how") { " (" (how) ")" }
            ", so the escalation is off"
        },
        crate::models::STATUS_CHANGED => html! {
            "In Jira it moved from " (text(d, "from").unwrap_or("no status")) " to " (text(d, "to").unwrap_or("no status"))
            @if d["waiting"].as_bool() == Some(true) { " (a waiting status: it does not count in the owner's load)" }
        },
        "jira_issue_created" => html! { "Jira issue " (ctx.jira(text(d, "jira_key"))) " created" },
        "jira_issue_found" => html! {
            "Jira issue " (ctx.jira(text(d, "jira_key"))) " found (an earlier attempt had made it)"
        },
        "jira_assigned" => html! {
            @if text(d, "assignee").is_some() {
                "Jira issue " (ctx.jira(text(d, "jira_key"))) " assigned to " (who("assignee"))
            } @else {
                "Jira issue " (ctx.jira(text(d, "jira_key"))) " unassigned"
            }
        },
        "jira_comment" => html! {
            "Goliath commented on " (ctx.jira(text(d, "jira_key")))
            (folded("the comment", text(d, "comment")))
        },
        "jira_transition" => html! {
            "Jira issue " (ctx.jira(text(d, "jira_key"))) " moved to " (text(d, "to").unwrap_or("another status"))
            @if let Some(t) = text(d, "transition") { " (transition “" (t) "”)" }
        },
        "jira_priority" => html! {
            "Jira issue " (ctx.jira(text(d, "jira_key"))) " priority set to " (text(d, "priority").unwrap_or("?"))
            @if let Some(s) = text(d, "severity") { " for " (s) }
        },
        "pagerduty_note" => html! {
            "Goliath added a note to PagerDuty incident " (ctx.incident(text(d, "incident")))
            (folded("the note", text(d, "note")))
        },
        "pagerduty_reassign" => html! {
            "PagerDuty incident " (ctx.incident(text(d, "incident"))) " reassigned to " (who("owner"))
            @if let Some(u) = text(d, "user") { " (PagerDuty user " (u) ")" }
        },
        kind if kind.starts_with("pagerduty_") => pagerduty_line(&kind["pagerduty_".len()..], d),
        kind => html! {
            (kind.replace('_', " "))
            (folded("detail", Some(&d.to_string())))
        },
    }
}

fn backups(d: &Value, ctx: &Context) -> Markup {
    let list: Vec<&str> = d["backups"]
        .as_array()
        .map(|b| b.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    html! {
        @if !list.is_empty() {
            ", with "
            @for (i, b) in list.iter().enumerate() {
                @if i > 0 { " then " }
                (ctx.person(Some(b)))
            }
            " as backup" @if list.len() > 1 { "s" }
        }
    }
}

/// An update PagerDuty sent about the incident (`pagerduty_<what>` in the history).
fn pagerduty_line(what: &str, d: &Value) -> Markup {
    let agent = d["agent"]["name"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("Someone");
    let did = match what {
        "acknowledged" => "acknowledged it".to_string(),
        "unacknowledged" => "unacknowledged it".to_string(),
        "resolved" => "resolved it".to_string(),
        "reopened" => "reopened it".to_string(),
        "reassigned" => "reassigned it".to_string(),
        "escalated" => "escalated it".to_string(),
        "delegated" => "delegated it".to_string(),
        "priority_updated" => match text(d, "priority") {
            Some(p) => format!("set its priority to {p}"),
            None => "cleared its priority".to_string(),
        },
        "annotated" => "added a note".to_string(),
        "responder_added" => "asked for another responder".to_string(),
        other => other.replace('_', " "),
    };
    html! {
        (agent) " " (did) " in PagerDuty"
        @if let (Some(from), Some(to)) = (text(&d["severity"], "from"), text(&d["severity"], "to")) {
            "; severity " (from) " → " (to)
        }
        @if d["stale"].as_bool() == Some(true) { " (arrived after newer news: recorded only)" }
        (folded("the note", text(d, "note")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, detail: Value) -> WorkItemEvent {
        WorkItemEvent {
            id: 1,
            work_item_id: "wi-1".into(),
            kind: kind.into(),
            detail,
            occurred_at: "2026-03-14T14:02:00Z".parse().unwrap(),
        }
    }

    fn said(kind: &str, detail: Value) -> String {
        let browse = |k: &str| Some(format!("https://jira.example/browse/{k}"));
        let ctx = Context {
            names: HashMap::from([("ana", "Ana Lopez")]),
            browse: &browse,
            incident_id: Some("Q1"),
            incident_url: Some("https://pd.example/incidents/Q1"),
        };
        let html = timeline(&[event(kind, detail)], &ctx).into_string();
        // The words, without tags, for the assertions.
        let mut words = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => words.push(c),
                _ => {}
            }
        }
        words
    }

    #[test]
    fn hand_offs_name_who_whom_and_where() {
        let d = json!({"event_id": "jira-d1-0", "human": "ben", "to": "ana"});
        assert_eq!(
            said("handed_off", d),
            "2026-03-14 14:02 ben handed it to ana (Jira)"
        );
        let d = json!({"event_id": "admin-x", "human": "ana", "to": "ben",
                       "actor": "admin page", "reason": "knows it"});
        assert_eq!(
            said("override", d),
            "2026-03-14 14:02 admin page gave it to ben (it was ana's): “knows it”"
        );
    }

    #[test]
    fn jira_keys_and_incidents_are_links() {
        let browse = |k: &str| Some(format!("https://jira.example/browse/{k}"));
        let ctx = Context {
            names: HashMap::new(),
            browse: &browse,
            incident_id: Some("Q1"),
            incident_url: Some("https://pd.example/incidents/Q1"),
        };
        let lines = [
            event("jira_issue_created", json!({"jira_key": "OPS-7"})),
            event("received", json!({"incident_id": "Q1"})),
        ];
        let html = timeline(&lines, &ctx).into_string();
        assert!(
            html.contains(r#"<a href="https://jira.example/browse/OPS-7">OPS-7</a>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<a href="https://pd.example/incidents/Q1">Q1</a>"#),
            "{html}"
        );
        // The second line of the same day gives only the time.
        assert!(html.contains(">14:02</time>"), "{html}");
    }

    #[test]
    fn unknown_kinds_still_show_their_detail_escaped() {
        let words = said("something_new", json!({"x": "<b>"}));
        assert!(words.contains("something new"), "{words}");
        assert!(words.contains("&lt;b&gt;"), "{words}");
    }

    #[test]
    fn only_the_incidents_own_web_address_is_a_link() {
        let payload = json!({"event": {"data": {"html_url": "javascript:alert('Q1')"}}});
        assert_eq!(incident_url(&payload, "Q1"), None);
        let payload = json!({"event": {"data": {"html_url": "https://pd.example/incidents/Q1"}}});
        assert_eq!(
            incident_url(&payload, "Q1"),
            Some("https://pd.example/incidents/Q1")
        );
        assert_eq!(
            incident_url(&payload, "Q2"),
            None,
            "another incident's page"
        );
    }
}
