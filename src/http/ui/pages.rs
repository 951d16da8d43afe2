//! The admin page's markup. Every value is escaped by maud; there is no script.

use maud::{html, Markup, DOCTYPE};

use crate::decision::StoredDecision;
use crate::jobs::queue::Job;
use crate::models::{WorkItem, WorkItemStatus};
use crate::overview::{DayTrend, HumanSummary, WorkItemView};
use crate::routing::{Excluded, ScoredCandidate, Severity, TermWeights, TERM_NAMES};

use super::{chart, timeline};

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1c1c28;background:#fff}
header{background:#1c2a4a;color:#fff;padding:8px 16px;display:flex;gap:18px;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}
header form{margin-left:auto}
main{padding:12px 16px;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 16px}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f8}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.notice{background:#e7f5e8;border:1px solid #7bbf7f;padding:6px 10px}
.error{background:#fdecec;border:1px solid #d77;padding:6px 10px}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure.chart{margin:0}
figcaption{font-weight:600;margin-bottom:4px}
form.inline{display:inline}
fieldset{border:1px solid #ccd;max-width:560px}
label{display:block;margin:4px 0}
label.inline{display:inline-block;margin-right:12px}
#timeline{list-style:none;padding-left:0}
#timeline li{margin:3px 0}
#timeline time{display:inline-block;min-width:9em;color:#556;font-variant-numeric:tabular-nums}
#timeline details{display:inline-block;vertical-align:top;margin-left:6px}
#timeline pre{white-space:pre-wrap;word-break:break-word;font-size:12px;margin:4px 0;max-width:800px}
";

/// The page frame; `csrf` is the session's token (`None` on the login page, which has no
/// navigation).
fn layout(title: &str, csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Goliath" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    span { "Goliath" }
                    @if let Some(csrf) = csrf {
                        a href="/admin/ui/items" { "Work items" }
                        a href="/admin/ui/people" { "People" }
                        a href="/admin/ui/jobs" { "Jobs" }
                        form.inline method="post" action="/admin/ui/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" id="logout" { "Log out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

pub fn login(error: Option<&str>, enabled: bool) -> Markup {
    layout(
        "Log in",
        None,
        html! {
            @if let Some(e) = error { p.error { (e) } }
            @if enabled {
                form method="post" action="/admin/ui/login" {
                    label { "Admin token " input type="password" name="token" id="token" autocomplete="current-password" autofocus; }
                    button type="submit" id="login" { "Log in" }
                }
            } @else {
                p { "The admin page is disabled: set GOLIATH_ADMIN_TOKEN and restart Goliath." }
            }
        },
    )
}

pub fn error(csrf: Option<&str>, status: u16, message: &str) -> Markup {
    layout(
        "Something went wrong",
        csrf,
        html! {
            p.error { (status) ": " (message) }
            p { a href="/admin/ui/items" { "Back to the work items" } }
        },
    )
}

/// The values the work-item filter form shows.
pub struct ItemFilterForm<'a> {
    pub service: &'a str,
    pub status: &'a str,
    pub severity: &'a str,
    /// The services there are to choose from (the roster's and the items'), sorted.
    pub services: &'a [String],
    pub page: i64,
    pub pages: i64,
}

/// A select box of `choices` with "any" first; a `current` value that is not among them (a
/// link from elsewhere) is kept as a choice so the form shows what is filtered.
fn choice<'a>(name: &str, current: &str, choices: impl IntoIterator<Item = &'a str>) -> Markup {
    let choices: Vec<&str> = choices.into_iter().collect();
    let current = current.trim();
    html! {
        select name=(name) id=(format!("filter-{name}")) {
            option value="" selected[current.is_empty()] { "any" }
            @if !current.is_empty() && !choices.contains(&current) {
                option value=(current) selected { (current) }
            }
            @for c in choices {
                option value=(c) selected[current == c] { (c) }
            }
        }
    }
}

pub fn items(
    csrf: &str,
    items: &[WorkItem],
    total: i64,
    form: &ItemFilterForm,
    trends: &[DayTrend],
) -> Markup {
    let days: Vec<String> = trends
        .iter()
        .map(|t| t.day.format("%m-%d").to_string())
        .collect();
    let rate: Vec<Option<f64>> = trends.iter().map(DayTrend::hand_off_rate).collect();
    let minutes: Vec<Option<f64>> = trends.iter().map(|t| t.mean_minutes_to_resolve).collect();
    let page_link = |page: i64| {
        format!(
            "/admin/ui/items?service={}&status={}&severity={}&page={page}",
            url_escape(form.service.trim()),
            url_escape(form.status.trim()),
            url_escape(form.severity.trim())
        )
    };
    layout(
        "Work items",
        Some(csrf),
        html! {
            div.charts {
                (chart::line("Hand-off rate per day (last 30 days)", &days, &rate, |v| format!("{:.0}%", v * 100.0)))
                (chart::line("Mean minutes to resolve per day", &days, &minutes, |v| format!("{v:.0} min")))
            }
            form method="get" action="/admin/ui/items" id="filter" {
                label.inline { "Service " (choice("service", form.service, form.services.iter().map(String::as_str))) }
                label.inline { "Status " (choice("status", form.status, WorkItemStatus::ALL.map(WorkItemStatus::as_str))) }
                label.inline { "Severity " (choice("severity", form.severity, Severity::ALL.map(Severity::as_str))) }
                button type="submit" { "Filter" }
            }
            p { (total) " matching" @if form.pages > 1 { ", page " (form.page) " of " (form.pages) } }
            table id="items" {
                thead { tr { th { "Item" } th { "Incident" } th { "Service" } th { "Severity" } th { "Status" } th { "Owner" } th { "Received" } } }
                tbody {
                    @for item in items {
                        tr {
                            td { a href=(format!("/admin/ui/items/{}", url_escape(&item.id))) { (item.id) } }
                            td { (item.title) }
                            td { (item.service) }
                            td { (item.severity) }
                            td { (item.status) @if item.routing_mode == crate::models::RoutingMode::Shadow { " (shadow)" } @if item.waiting { " (waiting)" } }
                            td { (item.assignee_id.as_deref().unwrap_or("—")) }
                            td { (item.received_at.format("%Y-%m-%d %H:%M")) }
                        }
                    }
                }
            }
            // The page links keep the filters.
            @if form.page > 1 { a href=(page_link(form.page - 1)) id="newer" { "← newer" } " " }
            @if form.page < form.pages { a href=(page_link(form.page + 1)) id="older" { "older →" } }
        },
    )
}

/// Who the override form offers first: the decision's first backup (with nobody owning the
/// item, its pick), else the next ranked person, never the current owner or someone inactive.
fn override_default<'a>(
    item: &WorkItem,
    decision: Option<&'a StoredDecision>,
    ranking: &'a [ScoredCandidate],
    humans: &[HumanSummary],
) -> Option<&'a str> {
    let d = decision?;
    let pick = item
        .assignee_id
        .is_none()
        .then_some(d.primary_human_id.as_deref())
        .flatten();
    let owner = item.assignee_id.as_deref();
    pick.into_iter()
        .chain(d.backup_ids.iter().map(String::as_str))
        .chain(ranking.iter().map(|c| c.human_id.as_str()))
        .find(|id| Some(*id) != owner && humans.iter().any(|p| p.human.active && p.human.id == *id))
}

pub fn item(
    csrf: &str,
    view: &WorkItemView,
    humans: &[HumanSummary],
    browse: &dyn Fn(&str) -> Option<String>,
    notice: Option<&str>,
) -> Markup {
    let item = &view.item;
    let decision = view.decision.as_ref();
    let ranking: Vec<ScoredCandidate> = decision
        .and_then(|d| serde_json::from_value(d.ranking.clone()).ok())
        .unwrap_or_default();
    let excluded: Vec<Excluded> = decision
        .and_then(|d| serde_json::from_value(d.excluded.clone()).ok())
        .unwrap_or_default();
    let f2 = |v: f64| format!("{v:.2}");
    let jira_url = item.jira_key.as_deref().and_then(browse);
    let incident_url = item
        .pagerduty_incident_id
        .as_deref()
        .and_then(|id| timeline::incident_url(&item.raw_payload, id));
    let suggested = override_default(item, decision, &ranking, humans);
    let first_backup = decision
        .and_then(|d| d.backup_ids.first())
        .map(String::as_str);
    let context = timeline::Context {
        names: humans
            .iter()
            .map(|p| (p.human.id.as_str(), p.human.display_name.as_str()))
            .collect(),
        browse,
        incident_id: item.pagerduty_incident_id.as_deref(),
        incident_url,
    };
    layout(
        &format!("Work item {}", item.id),
        Some(csrf),
        html! {
            // Why it went where it did comes before anything else.
            @match decision {
                None => p id="explanation" { "Not decided yet." },
                Some(d) if d.primary_human_id.is_none() => {
                    p id="explanation" {
                        "Nobody was chosen: " (d.undecided_reason.as_deref().unwrap_or(&d.explanation))
                    }
                }
                Some(d) => p id="explanation" { (d.explanation) },
            }
            @if let Some(n) = notice { p.notice id="notice" { (n) } }
            table id="summary" {
                tr { th { "Title" } td { (item.title) } }
                tr { th { "Service / severity" } td { (item.service) " / " (item.severity) } }
                tr { th { "Status" } td id="status" { (item.status) @if item.waiting { ", waiting (no load)" } " (PagerDuty: " (item.pagerduty_status) ")" } }
                tr { th { "Owner" } td id="owner" { (item.assignee_id.as_deref().unwrap_or("nobody")) } }
                tr { th { "Mode" } td { (item.routing_mode.as_str()) } }
                tr { th { "PagerDuty incident" } td {
                    @match (&item.pagerduty_incident_id, incident_url) {
                        (Some(id), Some(url)) => a href=(url) id="incident" { (id) },
                        (Some(id), None) => (id),
                        (None, _) => "—",
                    }
                } }
                tr { th { "Jira" } td {
                    @match (&item.jira_key, jira_url) {
                        (Some(key), Some(url)) => a href=(url) id="jira" { (key) },
                        (Some(key), None) => (key),
                        (None, _) => "not created yet",
                    }
                } }
                tr { th { "Received" } td { (item.received_at.format("%Y-%m-%d %H:%M UTC")) } }
            }
            @if let Some(d) = decision {
                h2 { "Decision" }
                p { "Confidence " (f2(d.confidence)) ", model " (d.model_version) ", decided " (d.decided_at.format("%Y-%m-%d %H:%M:%S UTC")) }
                // An undecided item ranks nobody: the explanation above says why, and the
                // table of who was not eligible below says who.
                @if !ranking.is_empty() {
                    table id="ranking" {
                        thead { tr {
                            th { "Person" } th { "Score" } th { "Success" } th { "Speed" } th { "Load" }
                            th { "On call" } th { "Experience" } th { "Exploration" }
                            th { "P(success)" } th { "Expected time" } th title="learned weight of the outcomes behind the estimate" { "Evidence" }
                        } }
                        tbody {
                            @for c in &ranking {
                                tr {
                                    td { (c.human_id) }
                                    td.num { (f2(c.score)) }
                                    td.num { (f2(c.components.success)) }
                                    td.num { (f2(c.components.speed)) }
                                    td.num { (f2(c.components.load)) }
                                    td.num { (f2(c.components.on_call)) }
                                    td.num { (f2(c.components.experience)) }
                                    td.num { (f2(c.components.exploration)) }
                                    td.num { (f2(c.p_success)) }
                                    td.num { (format!("{:.0} min", c.expected_seconds / 60.0)) }
                                    td.num { (weight(c.evidence)) }
                                }
                            }
                        }
                    }
                }
                @if !excluded.is_empty() {
                    h3 { "Not eligible" }
                    table id="excluded" {
                        thead { tr { th { "Person" } th { "Why" } } }
                        tbody { @for e in &excluded { tr { td { (e.human_id) } td { (e.reason.to_string()) } } } }
                    }
                }
            }
            h2 { "Give it to someone else" }
            form method="post" action=(format!("/admin/ui/items/{}/assign", url_escape(&item.id))) id="override" {
                input type="hidden" name="csrf" value=(csrf);
                fieldset {
                    label { "Person "
                        select name="human_id" id="human_id" {
                            @for p in humans.iter().filter(|p| p.human.active) {
                                @let id = p.human.id.as_str();
                                option value=(id) selected[suggested == Some(id)] {
                                    (p.human.display_name) " (" (id) ", " (p.open_items) " open)"
                                    @if item.assignee_id.as_deref() == Some(id) { " · current owner" }
                                    @else if first_backup == Some(id) { " · recommended backup" }
                                    @else if decision.and_then(|d| d.primary_human_id.as_deref()) == Some(id) { " · recommended" }
                                }
                            }
                        }
                    }
                    label { "Reason " input name="reason" id="reason" maxlength="500"; }
                    label { input type="checkbox" name="force" value="true"; " past their max_active if need be" }
                    button type="submit" id="assign" { "Assign" }
                }
            }
            h2 { "History (UTC)" }
            (timeline::timeline(&view.history, &context))
            @if !view.jobs.is_empty() {
                h2 { "Jobs" }
                (job_table(None, &view.jobs))
            }
        },
    )
}

pub fn humans(
    csrf: &str,
    humans: &[HumanSummary],
    weights: &TermWeights,
    half_life_days: f64,
) -> Markup {
    layout(
        "People",
        Some(csrf),
        html! {
            p id="term-weights" {
                "How much each kind of evidence counts in a pick, learned from "
                (weights.fitted) " outcomes: "
                @for (i, (name, w)) in TERM_NAMES.iter().zip(weights.w).enumerate() {
                    @if i > 0 { ", " }
                    (name.replace('_', "-")) " " (format!("{w:.2}"))
                }
                " (1 is where every deployment starts). "
                @if weights.trusts_count() {
                    "The picks follow the count of who owns each kind of work: "
                } @else {
                    "The picks follow the model: "
                }
                "where the model and the count disagreed lately, the model's pick resolved "
                (format!("{:.0}", weights.model_right)) " and the count's "
                (format!("{:.0}", weights.count_right)) "."
            }
            table id="people" {
                thead { tr {
                    th { "Person" } th { "Services" } th { "Active" } th { "Open" } th { "Max" }
                    th { "Resolved well" } th { "Handed on / reopened" } th { "Success rate" } th { "Median time to resolve" }
                } }
                tbody {
                    @for p in humans {
                        tr {
                            td { (p.human.display_name) " (" (p.human.id) ")" }
                            td { (p.human.services.join(", ")) }
                            td { @if p.human.active { "yes" } @else { "no" } }
                            td.num { (p.open_items) }
                            td.num { (p.human.max_active.map(|m| m.to_string()).unwrap_or_else(|| "—".into())) }
                            td.num { (weight(p.successes)) }
                            td.num { (weight(p.failures)) }
                            td.num { (p.success_rate().map(|r| format!("{:.0}%", r * 100.0)).unwrap_or_else(|| "—".into())) }
                            td.num { (p.median_minutes_to_resolve.map(|m| format!("{m:.0} min")).unwrap_or_else(|| "—".into())) }
                        }
                    }
                }
            }
            p id="weights-note" {
                "Resolved well and handed on / reopened are learned weights, not counts: an outcome "
                "counts half as much after " (format!("{half_life_days:.0}")) " days, so they are rounded."
            }
        },
    )
}

pub fn jobs(csrf: &str, dead: &[Job], counts: &serde_json::Value, notice: Option<&str>) -> Markup {
    layout(
        "Jobs",
        Some(csrf),
        html! {
            @if let Some(n) = notice { p.notice id="notice" { (n) } }
            p id="counts" {
                "Queued " (counts["queued"]) ", running " (counts["running"]) ", dead " (counts["dead"])
            }
            h2 { "Dead jobs" }
            @if dead.is_empty() { p { "None." } } @else { (job_table(Some(csrf), dead)) }
        },
    )
}

/// Jobs as a table; with a CSRF token, dead ones get a retry button.
fn job_table(csrf: Option<&str>, jobs: &[Job]) -> Markup {
    html! {
        table.jobs {
            thead { tr { th { "Job" } th { "Kind" } th { "State" } th { "Attempts" } th { "Last error" } th { "Work item" } @if csrf.is_some() { th {} } } }
            tbody {
                @for j in jobs {
                    tr {
                        td.num { (j.id) }
                        td { (j.kind) }
                        td { (j.state) }
                        td.num { (j.attempts) "/" (j.max_attempts) }
                        td { (j.last_error.as_deref().unwrap_or("")) }
                        td {
                            @if let Some(id) = j.payload.get("work_item_id").and_then(|v| v.as_str()) {
                                a href=(format!("/admin/ui/items/{}", url_escape(id))) { (id) }
                            }
                        }
                        @if let Some(csrf) = csrf {
                            td {
                                @if j.state == crate::jobs::JobState::Dead.as_str() {
                                    form.inline method="post" action=(format!("/admin/ui/jobs/{}/retry", j.id)) {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button type="submit" class="retry" { "Retry" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A learned (time-decayed) count: whole when it is one, else "about N", so that a weight
/// never reads as a fractional number of incidents.
pub fn weight(v: f64) -> String {
    let whole = v.round();
    if (v - whole).abs() < 0.05 {
        format!("{whole:.0}")
    } else if v < 1.0 {
        "under 1".into()
    } else {
        format!("about {whole:.0}")
    }
}

/// Percent-encodes a value for a URL path segment or a query value.
pub fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_escapes_what_humans_typed() {
        let page = error(Some("t"), 409, "<script>alert(1)</script>").into_string();
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"), "{page}");
    }

    #[test]
    fn learned_counts_are_never_fractional() {
        assert_eq!(weight(52.8), "about 53");
        assert_eq!(weight(3.0), "3");
        assert_eq!(weight(2.98), "3");
        assert_eq!(weight(0.0), "0");
        assert_eq!(weight(0.4), "under 1");
    }

    #[test]
    fn ids_are_escaped_in_links() {
        assert_eq!(url_escape("wi-1/../x y"), "wi-1%2F..%2Fx%20y");
    }
}
