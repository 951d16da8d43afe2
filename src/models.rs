//! Rows as stored, shared by the modules that read them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{humans, work_item_events, work_items};

#[derive(Debug, Clone, Queryable, Selectable, Serialize, PartialEq)]
#[diesel(table_name = work_items)]
pub struct WorkItem {
    pub id: String,
    #[serde(rename = "type")]
    pub item_type: String,
    pub service: String,
    pub severity: String,
    pub title: String,
    pub description: Option<String>,
    pub status: String,
    pub origin_system: String,
    pub pagerduty_incident_id: Option<String>,
    #[serde(skip)]
    pub raw_payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub assignee_id: Option<String>,
    pub undecided_reason: Option<String>,
    pub jira_key: Option<String>,
    pub jira_issue_id: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub context: Vec<String>,
    /// The incident's status in PagerDuty (`triggered`, `acknowledged`, `resolved`).
    pub pagerduty_status: String,
    /// PagerDuty user ids the incident is assigned to in PagerDuty, as last reported.
    pub pagerduty_assignees: Vec<String>,
    /// When the latest PagerDuty update applied to the item happened (event time).
    pub pagerduty_event_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, PartialEq)]
#[diesel(table_name = humans)]
pub struct Human {
    pub id: String,
    pub display_name: String,
    pub email: String,
    pub jira_account_id: String,
    pub pagerduty_user_id: Option<String>,
    pub services: Vec<String>,
    pub max_active: Option<i32>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = work_item_events)]
pub struct WorkItemEvent {
    #[serde(skip)]
    pub id: i64,
    #[serde(skip)]
    pub work_item_id: String,
    pub kind: String,
    pub detail: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}

/// Appends a line to a work item's history.
pub fn record_event(
    conn: &mut PgConnection,
    work_item_id: &str,
    kind: &str,
    detail: serde_json::Value,
    occurred_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(work_item_events::table)
        .values((
            work_item_events::work_item_id.eq(work_item_id),
            work_item_events::kind.eq(kind),
            work_item_events::detail.eq(detail),
            work_item_events::occurred_at.eq(occurred_at),
        ))
        .execute(conn)
        .map(|_| ())
}

/// A history line to write.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub work_item_id: String,
    pub kind: &'static str,
    pub detail: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}
