//! Read models shared by the admin API and the admin page: the work-item list, one item with
//! everything known about it, the people with their load and learned record, and daily trends.
//! Queries only; nothing here changes anything.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{jobs, outcomes, skill_stats, work_items};
use crate::decision::StoredDecision;
use crate::jobs::queue::Job;
use crate::models::{Human, WorkItem, WorkItemEvent, WorkItemStatus};
use crate::routing::SkillState;

use crate::learner::HAND_OFF_KINDS;

/// Which work items to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct WorkItemFilter {
    pub service: Option<String>,
    pub status: Option<WorkItemStatus>,
    pub severity: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// One page of work items and how many match in all.
pub fn work_items(
    conn: &mut PgConnection,
    f: &WorkItemFilter,
) -> QueryResult<(Vec<WorkItem>, i64)> {
    let filtered = || {
        let mut q = work_items::table.into_boxed();
        if let Some(s) = &f.service {
            q = q.filter(work_items::service.eq(s.to_lowercase()));
        }
        if let Some(s) = f.status {
            q = q.filter(work_items::status.eq(s.as_str()));
        }
        if let Some(s) = &f.severity {
            q = q.filter(work_items::severity.eq(s.clone()));
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let items: Vec<WorkItem> = filtered()
        .order((work_items::received_at.desc(), work_items::id))
        .limit(f.limit)
        .offset(f.offset)
        .select(WorkItem::as_select())
        .load(conn)?;
    Ok((items, total))
}

/// A learner outcome as recorded for a work item.
#[derive(Debug, Clone, Serialize, Queryable)]
pub struct OutcomeRecord {
    pub event_id: String,
    pub kind: String,
    pub human_id: Option<String>,
    pub to_human_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub resolve_seconds: Option<f64>,
}

/// Everything known about one work item.
#[derive(Debug, Clone)]
pub struct WorkItemView {
    pub item: WorkItem,
    pub decision: Option<StoredDecision>,
    pub outcomes: Vec<OutcomeRecord>,
    pub history: Vec<WorkItemEvent>,
    pub jobs: Vec<Job>,
}

/// The item with its decision, outcomes, history and jobs; `None` when there is no such item.
pub fn work_item(conn: &mut PgConnection, id: &str) -> QueryResult<Option<WorkItemView>> {
    let Some(item) = work_items::table
        .find(id)
        .select(WorkItem::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let decision = crate::decision::load(conn, id)?;
    let history = crate::learner::history(conn, &item)?;
    let outcomes = outcomes::table
        .filter(outcomes::work_item_id.eq(id))
        .order(outcomes::occurred_at)
        .select((
            outcomes::event_id,
            outcomes::kind,
            outcomes::human_id,
            outcomes::to_human_id,
            outcomes::occurred_at,
            outcomes::resolve_seconds,
        ))
        .load(conn)?;
    let jobs = jobs::table
        .filter(jobs::payload.retrieve_as_text("work_item_id").eq(id))
        .order(jobs::id)
        .select(Job::as_select())
        .load(conn)?;
    Ok(Some(WorkItemView {
        item,
        decision,
        outcomes,
        history,
        jobs,
    }))
}

/// A person with their open load and their learned record summed over services and severities.
#[derive(Debug, Clone, Serialize)]
pub struct HumanSummary {
    pub human: Human,
    pub open_items: u32,
    /// Good resolutions (time-decayed, as the model counts them).
    pub successes: f64,
    /// Hand-offs and reopened resolutions (time-decayed).
    pub failures: f64,
    /// Median minutes to resolve over the person's timed resolutions.
    pub median_minutes_to_resolve: Option<f64>,
}

impl HumanSummary {
    pub fn success_rate(&self) -> Option<f64> {
        let evidence = self.successes + self.failures;
        (evidence > 0.0).then(|| self.successes / evidence)
    }
}

/// Everyone on the roster, by id.
pub fn humans(conn: &mut PgConnection) -> QueryResult<Vec<HumanSummary>> {
    let roster = crate::roster::list(conn)?;
    let loads = crate::decision::open_loads(conn)?;
    let states: Vec<(String, serde_json::Value)> = skill_stats::table
        .select((skill_stats::human_id, skill_stats::state))
        .load(conn)?;
    // successes, failures, time weight, sum of ln(seconds)
    let mut records: HashMap<String, (f64, f64, f64, f64)> = HashMap::new();
    for (human, state) in states {
        let Ok(s) = serde_json::from_value::<SkillState>(state) else {
            continue;
        };
        let r = records.entry(human).or_default();
        r.0 += s.successes;
        r.1 += s.failures;
        r.2 += s.time_weight;
        r.3 += s.log_time_sum;
    }
    Ok(roster
        .into_iter()
        .map(|human| {
            let (successes, failures, weight, log_sum) =
                records.get(&human.id).copied().unwrap_or_default();
            HumanSummary {
                open_items: loads.get(&human.id).copied().unwrap_or(0),
                successes,
                failures,
                median_minutes_to_resolve: (weight > 0.0).then(|| (log_sum / weight).exp() / 60.0),
                human,
            }
        })
        .collect())
}

/// One UTC day of outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, QueryableByName)]
pub struct DayTrend {
    #[diesel(sql_type = diesel::sql_types::Date)]
    pub day: NaiveDate,
    /// Items resolved that day.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub resolved: i64,
    /// Hand-offs that day (handed on, overridden or escalated away from the owner).
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub handed_on: i64,
    /// Mean minutes from the incident's start to its resolution, over that day's resolutions.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    pub mean_minutes_to_resolve: Option<f64>,
}

impl DayTrend {
    /// Hand-offs per owner outcome (a hand-off or a resolution) that day.
    pub fn hand_off_rate(&self) -> Option<f64> {
        let total = self.resolved + self.handed_on;
        (total > 0).then(|| self.handed_on as f64 / total as f64)
    }
}

/// The last `days` UTC days up to today, oldest first, days without outcomes included.
pub fn trends(conn: &mut PgConnection, days: i32) -> QueryResult<Vec<DayTrend>> {
    diesel::sql_query(
        "SELECT d.day, \
                count(o.kind) FILTER (WHERE o.kind = 'resolved') AS resolved, \
                count(o.kind) FILTER (WHERE o.kind = ANY($2)) AS handed_on, \
                avg(o.resolve_seconds) FILTER (WHERE o.kind = 'resolved') / 60.0 \
                    AS mean_minutes_to_resolve \
         FROM (SELECT ((now() AT TIME ZONE 'UTC')::date - g) AS day \
               FROM generate_series(0, $1 - 1) AS g) AS d \
         LEFT JOIN outcomes o \
                ON o.occurred_at >= now() - make_interval(days => $1 + 1) \
               AND (o.occurred_at AT TIME ZONE 'UTC')::date = d.day \
         GROUP BY d.day ORDER BY d.day",
    )
    .bind::<diesel::sql_types::Integer, _>(days.max(1))
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(HAND_OFF_KINDS.to_vec())
    .load(conn)
}

/// The services to filter by: those items arrived on (up to `max`) and those the roster names,
/// sorted.
pub fn services(conn: &mut PgConnection, max: i64) -> QueryResult<Vec<String>> {
    #[derive(diesel::QueryableByName)]
    struct Service {
        #[diesel(sql_type = diesel::sql_types::Text)]
        service: String,
    }
    // One index probe per distinct service (on `work_items_service_received`), rather than a
    // scan of every item.
    let seen: Vec<Service> = diesel::sql_query(
        "WITH RECURSIVE s(service) AS ( \
             (SELECT service FROM work_items ORDER BY service LIMIT 1) \
             UNION ALL \
             SELECT (SELECT w.service FROM work_items w WHERE w.service > s.service \
                     ORDER BY w.service LIMIT 1) \
               FROM s WHERE s.service IS NOT NULL \
         ) SELECT service FROM s WHERE service IS NOT NULL LIMIT $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(max)
    .load(conn)?;
    let mut services: std::collections::BTreeSet<String> =
        seen.into_iter().map(|s| s.service).collect();
    for person in crate::roster::list(conn)? {
        services.extend(person.services);
    }
    Ok(services.into_iter().collect())
}
