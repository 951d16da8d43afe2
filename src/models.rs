//! Rows as stored, shared by the modules that read them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{humans, work_item_events, work_items};

/// Where a work item stands for Goliath. Stored as its `as_str` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkItemStatus {
    /// Someone owns it and it is open.
    Assigned,
    /// Shadow mode: open, and nobody was assigned by Goliath (people route it themselves).
    Open,
    /// Nobody could take it; it waits, visibly, and is decided again as people free up.
    Unassigned,
    Resolved,
    /// Resolved, then reopened: open again for its owner.
    Reopened,
}

impl WorkItemStatus {
    pub const ALL: [WorkItemStatus; 5] = [
        WorkItemStatus::Assigned,
        WorkItemStatus::Open,
        WorkItemStatus::Unassigned,
        WorkItemStatus::Resolved,
        WorkItemStatus::Reopened,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkItemStatus::Assigned => "assigned",
            WorkItemStatus::Open => "open",
            WorkItemStatus::Unassigned => "unassigned",
            WorkItemStatus::Resolved => "resolved",
            WorkItemStatus::Reopened => "reopened",
        }
    }

    pub fn parse(s: &str) -> Option<WorkItemStatus> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Counts against the owner's load (the open-load triggers use the same two).
    pub fn is_open(self) -> bool {
        matches!(self, WorkItemStatus::Assigned | WorkItemStatus::Reopened)
    }
}

impl std::fmt::Display for WorkItemStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, PartialEq)]
#[diesel(table_name = work_items)]
pub struct WorkItem {
    pub id: String,
    #[serde(rename = "type")]
    pub item_type: String,
    pub service: String,
    pub severity: crate::routing::Severity,
    pub title: String,
    pub description: Option<String>,
    pub status: WorkItemStatus,
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
    /// When the owner's time to act runs out; None when no escalation is pending.
    pub escalate_at: Option<DateTime<Utc>>,
    /// `assign`, or `shadow` (recommended only; see [`RoutingMode`]).
    pub routing_mode: RoutingMode,
    /// Shadow mode: the first person who took the item, to compare with the recommendation.
    pub taken_by: Option<String>,
    /// In a waiting status (`JIRA_WAITING_STATUSES`): it does not count in the owner's load.
    pub waiting: bool,
}

/// Whether Goliath assigns an item or only recommends an owner for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RoutingMode {
    /// Goliath's pick owns the item and its Jira issue.
    #[default]
    Assign,
    /// Goliath decides and records its recommendation but assigns nobody; people route the
    /// item themselves and Goliath learns from what they do.
    Shadow,
}

impl RoutingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingMode::Assign => "assign",
            RoutingMode::Shadow => "shadow",
        }
    }

    pub fn parse(s: &str) -> Option<RoutingMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "assign" => Some(RoutingMode::Assign),
            "shadow" => Some(RoutingMode::Shadow),
            _ => None,
        }
    }
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

/// History kind of a Jira status change; its detail says whether the new status is waiting.
pub const STATUS_CHANGED: &str = "status_changed";

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

/// The owner acted on the item (`how`, at `at`): its pending escalation, if any, is off, and
/// the history says why. Returns whether one was pending.
pub fn owner_acted(
    conn: &mut PgConnection,
    work_item_id: &str,
    how: &str,
    at: DateTime<Utc>,
) -> QueryResult<bool> {
    let cleared = diesel::update(
        work_items::table
            .find(work_item_id)
            .filter(work_items::escalate_at.is_not_null()),
    )
    .set(work_items::escalate_at.eq(None::<DateTime<Utc>>))
    .execute(conn)?;
    if cleared > 0 {
        record_event(
            conn,
            work_item_id,
            "owner_acted",
            serde_json::json!({"how": how}),
            at,
        )?;
    }
    Ok(cleared > 0)
}

/// A history line to write.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub work_item_id: String,
    pub kind: &'static str,
    pub detail: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}
