//! Rows for several tables written by one statement. The intake stores a batch of incidents
//! with everything that follows from them (work items, deliveries, decisions, history, Jira
//! jobs); as separate statements that is one round trip each, and on a busy machine every round
//! trip waits for both sides to be scheduled, while the batch holds its locks. Here each
//! table's rows travel as column arrays, unnested by data-modifying CTEs: one round trip, one
//! statement (prepared once per connection), whatever the batch size. Foreign keys are checked
//! at the end of the statement, when every row is in.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;

use crate::db::json::JsonText;
use crate::db::prepared::{Bind, Prepared, Statement};
use crate::models::WorkItem;

/// Column arrays, one set per table; each `push_*` adds one row.
#[derive(Debug, Default)]
pub struct RowBatch {
    items: ItemColumns,
    deliveries: DeliveryColumns,
    decisions: DecisionColumns,
    events: EventColumns,
    jobs: JobColumns,
    /// New owners with a max_active, whose loads are checked against it once the batch's
    /// assignments are counted.
    capacity_checks: Vec<String>,
    /// The change counters (`token:n:loads_n`) the batch was decided as of, if it must be
    /// refused when they moved.
    expect_inputs: Option<String>,
    /// The model parameter set (id, set) the batch's decisions name, stored if new.
    params: Option<(String, JsonText)>,
}

/// What a batch statement wrote.
#[derive(Debug, Default)]
pub struct Written {
    /// Ids of the work items made.
    pub made: Vec<String>,
    /// The open loads of the people it assigned new work items to, once it committed.
    pub totals: Vec<(String, i64)>,
}

#[derive(Debug, Default)]
struct ItemColumns {
    id: Vec<String>,
    item_type: Vec<String>,
    service: Vec<String>,
    severity: Vec<String>,
    title: Vec<String>,
    description: Vec<Option<String>>,
    status: Vec<String>,
    origin_system: Vec<String>,
    pagerduty_incident_id: Vec<Option<String>>,
    raw_payload: Vec<JsonText>,
    created_at: Vec<DateTime<Utc>>,
    received_at: Vec<DateTime<Utc>>,
    assignee_id: Vec<Option<String>>,
    undecided_reason: Vec<Option<String>>,
    /// Each row's `context` as an array literal (arrays of arrays must be rectangular).
    context: Vec<String>,
    escalate_at: Vec<Option<DateTime<Utc>>>,
    routing_mode: Vec<String>,
}

#[derive(Debug, Default)]
struct DeliveryColumns {
    source: Vec<String>,
    delivery_id: Vec<String>,
    event_type: Vec<String>,
    /// Joined to the new work item made for it; a delivery whose item was not made is not
    /// written here.
    incident: Vec<String>,
}

#[derive(Debug, Default)]
struct DecisionColumns {
    work_item_id: Vec<String>,
    primary_human_id: Vec<Option<String>>,
    /// Each row's backups as an array literal.
    backup_ids: Vec<String>,
    confidence: Vec<f64>,
    explanation: Vec<String>,
    undecided_reason: Vec<Option<String>>,
    ranking: Vec<JsonText>,
    excluded: Vec<JsonText>,
    inputs: Vec<JsonText>,
    model_version: Vec<String>,
    decided_at: Vec<DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct EventColumns {
    work_item_id: Vec<String>,
    kind: Vec<String>,
    detail: Vec<JsonText>,
    occurred_at: Vec<DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct JobColumns {
    work_item_id: Vec<String>,
    kind: Vec<String>,
    payload: Vec<JsonText>,
    dedup_key: Vec<Option<String>>,
}

/// A decision row, as [`RowBatch::push_decision`] takes it.
#[derive(Debug, Clone)]
pub struct DecisionRow {
    pub work_item_id: String,
    pub primary_human_id: Option<String>,
    pub backup_ids: Vec<String>,
    pub confidence: f64,
    pub explanation: String,
    pub undecided_reason: Option<String>,
    pub ranking: JsonText,
    pub excluded: JsonText,
    pub inputs: JsonText,
    pub model_version: String,
    pub decided_at: DateTime<Utc>,
}

/// A queued job, as [`RowBatch::push_job`] takes it (a job whose dedup key is queued already
/// is skipped, as `executor::queue::enqueue` does).
#[derive(Debug, Clone)]
pub struct JobRow {
    /// The work item the job is for (a job for a new item not made is dropped with it).
    pub work_item_id: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub dedup_key: Option<String>,
}

/// Every row of a batch, one data-modifying CTE per table.
struct InsertBatch;

impl Statement for InsertBatch {
    const SQL: &'static str = "\
WITH locked AS MATERIALIZED (
    -- Held shared until commit, before any counter is touched (db::lock_assignments). The
    -- settings last until this statement commits: the insert trigger leaves the counting to
    -- `loads` below, and checks capacity only for the people named.
    -- A batch decided on kept inputs names the change counters they were as of, and is
    -- refused if either moved (RowBatch::expect_inputs).
    SELECT pg_advisory_xact_lock_shared($1), set_config('goliath.loads_counted', $2, true),
           set_config('goliath.check_capacity', $3, true),
           (SELECT CASE WHEN x.want IS NOT NULL AND x.want IS DISTINCT FROM x.have
                        THEN goliath_refuse('decision_inputs_changed') END
              FROM (SELECT $4::text AS want,
                           (SELECT token || ':' || n || ':' || loads_n
                              FROM decision_inputs_version) AS have) x)
), input AS MATERIALIZED (
    SELECT * FROM UNNEST($5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                         $11::text[], $12::text[], $13::text[], $14::jsonb[], $15::timestamptz[],
                         $16::timestamptz[], $17::text[], $18::text[], $19::text[],
                         $20::timestamptz[], $21::text[])
           AS u(id, type, service, severity, title, description, status, origin_system,
                incident, raw, created_at, received_at, assignee, reason, context,
                escalate_at, routing_mode)
), items AS (
    -- An incident that has a work item already (or an id another incident holds) is skipped,
    -- and so is everything written for it below.
    INSERT INTO work_items (id, type, service, severity, title, description, status,
                            origin_system, pagerduty_incident_id, raw_payload, created_at,
                            received_at, assignee_id, undecided_reason, context, escalate_at,
                            routing_mode)
    SELECT u.id, u.type, u.service, u.severity, u.title, u.description, u.status,
           u.origin_system, u.incident, u.raw, u.created_at, u.received_at, u.assignee,
           u.reason, u.context::text[], u.escalate_at, u.routing_mode
      FROM locked, input u
    ON CONFLICT DO NOTHING
    RETURNING id, pagerduty_incident_id, assignee_id, status
), assigned AS MATERIALIZED (
    -- The new assignments per person.
    SELECT assignee_id AS human_id, count(*) AS added FROM items
     WHERE assignee_id IS NOT NULL AND status IN ('assigned', 'reopened')
     GROUP BY assignee_id
), slot AS MATERIALIZED (
    SELECT goliath_load_slot() AS slot
), loads AS (
    -- Added to a counter slot no other open transaction writes to.
    INSERT INTO open_loads (human_id, slot, open_items)
    SELECT a.human_id, s.slot, a.added
      FROM assigned a, slot s
     ORDER BY a.human_id
    ON CONFLICT (human_id, slot) DO UPDATE SET open_items = open_loads.open_items + EXCLUDED.open_items
), deliveries AS (
    INSERT INTO webhook_deliveries (source, delivery_id, event_type, work_item_id)
    SELECT u.source, u.delivery_id, u.event_type, i.id
      FROM UNNEST($22::text[], $23::text[], $24::text[], $25::text[])
           AS u(source, delivery_id, event_type, incident)
      JOIN items i ON i.pagerduty_incident_id = u.incident
    ON CONFLICT DO NOTHING
), decided AS (
    INSERT INTO decisions (work_item_id, primary_human_id, backup_ids, confidence,
                           explanation, undecided_reason, ranking, excluded, inputs,
                           model_version, decided_at)
    SELECT u.item, u.primary_id, u.backups::text[],
           u.confidence, u.explanation, u.reason, u.ranking, u.excluded, u.inputs,
           u.model_version, u.decided_at
      FROM UNNEST($26::text[], $27::text[], $28::text[], $29::float8[], $30::text[],
                  $31::text[], $32::json[], $33::json[], $34::json[], $35::text[],
                  $36::timestamptz[])
           AS u(item, primary_id, backups, confidence, explanation, reason, ranking,
                excluded, inputs, model_version, decided_at)
     WHERE u.item IN (SELECT id FROM items) OR u.item NOT IN (SELECT id FROM input)
    ON CONFLICT (work_item_id) DO UPDATE SET
        primary_human_id = EXCLUDED.primary_human_id, backup_ids = EXCLUDED.backup_ids,
        confidence = EXCLUDED.confidence, explanation = EXCLUDED.explanation,
        undecided_reason = EXCLUDED.undecided_reason, ranking = EXCLUDED.ranking,
        excluded = EXCLUDED.excluded, inputs = EXCLUDED.inputs,
        model_version = EXCLUDED.model_version, decided_at = EXCLUDED.decided_at
), history AS (
    INSERT INTO work_item_events (work_item_id, kind, detail, occurred_at)
    SELECT u.item, u.kind, u.detail, u.occurred_at
      FROM UNNEST($37::text[], $38::text[], $39::jsonb[], $40::timestamptz[])
           AS u(item, kind, detail, occurred_at)
     WHERE u.item IN (SELECT id FROM items) OR u.item NOT IN (SELECT id FROM input)
), queued AS (
    -- Served by the item's severity, then age (jobs_ready): a new item's from this batch's
    -- input, an existing one's from its row.
    INSERT INTO jobs (kind, payload, dedup_key, priority)
    SELECT u.kind, u.payload, u.dedup_key,
           goliath_severity_rank(coalesce(
               (SELECT i.severity FROM input i WHERE i.id = u.item),
               (SELECT w.severity FROM work_items w WHERE w.id = u.item)))
      FROM UNNEST($41::text[], $42::text[], $43::jsonb[], $44::text[])
           AS u(item, kind, payload, dedup_key)
     WHERE u.item IN (SELECT id FROM items) OR u.item NOT IN (SELECT id FROM input)
    ON CONFLICT DO NOTHING
), verdict AS MATERIALIZED (
    -- For RowBatch::insert_whole: a batch that could not make every item fails whole.
    SELECT CASE WHEN $45 AND (SELECT count(*) FROM items) < (SELECT count(*) FROM input)
                THEN goliath_refuse('batch_partly_skipped') ELSE true END AS whole
), params AS (
    -- The model parameter set the decisions name, once per distinct set (its id is a hash of
    -- it, so an existing row is the same set).
    INSERT INTO model_params (id, params)
    SELECT p.id, p.params FROM (SELECT $46::text AS id, $47::json AS params) p
     WHERE p.id IS NOT NULL
    ON CONFLICT DO NOTHING
), totals AS (
    -- The open loads of the people this batch assigned, once it commits (the CTEs all see the
    -- snapshot the statement started with).
    SELECT a.human_id, a.added + coalesce((SELECT sum(l.open_items) FROM open_loads l
                                            WHERE l.human_id = a.human_id), 0) AS open_items
      FROM assigned a
)
SELECT id, NULL AS human_id, NULL::bigint AS open_items FROM items
UNION ALL
SELECT NULL, NULL, NULL FROM verdict WHERE NOT whole
UNION ALL
SELECT NULL, human_id, open_items FROM totals";
}

impl RowBatch {
    pub fn new() -> RowBatch {
        RowBatch::default()
    }

    /// A new work item, written with `raw` as its payload (the item's own `raw_payload` is
    /// not used: intake keeps the body as received).
    pub fn push_item(&mut self, item: &WorkItem, raw: JsonText) {
        let c = &mut self.items;
        c.id.push(item.id.clone());
        c.item_type.push(item.item_type.clone());
        c.service.push(item.service.clone());
        c.severity.push(item.severity.to_string());
        c.title.push(item.title.clone());
        c.description.push(item.description.clone());
        c.status.push(item.status.as_str().to_string());
        c.origin_system.push(item.origin_system.clone());
        c.pagerduty_incident_id
            .push(item.pagerduty_incident_id.clone());
        c.raw_payload.push(raw);
        c.created_at.push(item.created_at);
        c.received_at.push(item.received_at);
        c.assignee_id.push(item.assignee_id.clone());
        c.undecided_reason.push(item.undecided_reason.clone());
        c.context.push(array_literal(&item.context));
        c.escalate_at.push(item.escalate_at);
        c.routing_mode.push(item.routing_mode.as_str().to_string());
    }

    /// A webhook delivery, written if the work item for `incident` is made by this batch.
    pub fn push_delivery(
        &mut self,
        source: &str,
        delivery_id: &str,
        event_type: &str,
        incident: &str,
    ) {
        let c = &mut self.deliveries;
        c.source.push(source.to_string());
        c.delivery_id.push(delivery_id.to_string());
        c.event_type.push(event_type.to_string());
        c.incident.push(incident.to_string());
    }

    /// A decision (replacing a stored one for the same work item).
    pub fn push_decision(&mut self, row: DecisionRow) {
        let c = &mut self.decisions;
        c.work_item_id.push(row.work_item_id);
        c.primary_human_id.push(row.primary_human_id);
        c.backup_ids.push(array_literal(&row.backup_ids));
        c.confidence.push(row.confidence);
        c.explanation.push(row.explanation);
        c.undecided_reason.push(row.undecided_reason);
        c.ranking.push(row.ranking);
        c.excluded.push(row.excluded);
        c.inputs.push(row.inputs);
        c.model_version.push(row.model_version);
        c.decided_at.push(row.decided_at);
    }

    /// A line of a work item's history.
    pub fn push_event(
        &mut self,
        work_item_id: &str,
        kind: &str,
        detail: &serde_json::Value,
        occurred_at: DateTime<Utc>,
    ) {
        let c = &mut self.events;
        c.work_item_id.push(work_item_id.to_string());
        c.kind.push(kind.to_string());
        c.detail.push(JsonText::of(detail));
        c.occurred_at.push(occurred_at);
    }

    /// A job for the background workers.
    pub fn push_job(&mut self, job: JobRow) {
        let c = &mut self.jobs;
        c.work_item_id.push(job.work_item_id);
        c.kind.push(job.kind);
        c.payload.push(JsonText::of(&job.payload));
        c.dedup_key.push(job.dedup_key);
    }

    /// Has the write check, with a fresh view of what other batches committed, that `human_id`
    /// is within their max_active once this batch's assignments are counted (a batch that
    /// would take them past it fails with a serialization failure, to be decided again).
    pub fn check_capacity_of(&mut self, human_id: &str) {
        if !self.capacity_checks.iter().any(|h| h == human_id) {
            self.capacity_checks.push(human_id.to_string());
        }
    }

    /// Has the write refused ([`is_inputs_changed`]) if the roster, learned state or loads
    /// changed since the change counters were `as_of` (as `token:n:loads_n`).
    pub fn expect_inputs(&mut self, as_of: String) {
        self.expect_inputs = Some(as_of);
    }

    /// Stores the model parameter set `params` as `id` unless it is stored already (the
    /// decisions pushed name it by `id`).
    pub fn record_params(&mut self, id: String, params: JsonText) {
        self.params = Some((id, params));
    }

    pub fn expected_inputs(&self) -> Option<&str> {
        self.expect_inputs.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.items.id.is_empty()
            && self.deliveries.delivery_id.is_empty()
            && self.decisions.work_item_id.is_empty()
            && self.events.work_item_id.is_empty()
            && self.jobs.kind.is_empty()
    }

    /// Writes every row in one statement (PostgreSQL runs each data-modifying CTE once,
    /// whether or not the final SELECT reads it), and returns the ids of the work items made
    /// and the loads of the people they were assigned to.
    /// A work item that could not be made (its incident has one, or another holds its id) is
    /// skipped with everything pushed for it; the rest is written.
    pub fn insert(&self, conn: &mut PgConnection) -> QueryResult<Written> {
        self.write(conn, false)
    }

    /// Like [`RowBatch::insert`], but if any work item is skipped, nothing is written and the
    /// statement fails ([`is_partly_skipped`] tells that error apart). Run on its own, outside
    /// a transaction, the statement is its own transaction: one round trip, where BEGIN, the
    /// statement and COMMIT were three.
    pub fn insert_whole(&self, conn: &mut PgConnection) -> QueryResult<Written> {
        self.write(conn, true)
    }

    /// The statement with every bind, in the order of its placeholders.
    fn statement<'a>(
        &'a self,
        counted: &'a str,
        checks: &'a str,
        whole: &'a bool,
    ) -> Prepared<'a, InsertBatch> {
        let (i, d, x, e, j) = (
            &self.items,
            &self.deliveries,
            &self.decisions,
            &self.events,
            &self.jobs,
        );
        Prepared::<InsertBatch>::new()
            .bind(Bind::BigInt(&crate::db::ASSIGNMENT_LOCK))
            .bind(Bind::Text(counted))
            .bind(Bind::Text(checks))
            .bind(Bind::NullableText(self.expect_inputs.as_deref()))
            .bind(Bind::Texts(&i.id))
            .bind(Bind::Texts(&i.item_type))
            .bind(Bind::Texts(&i.service))
            .bind(Bind::Texts(&i.severity))
            .bind(Bind::Texts(&i.title))
            .bind(Bind::NullableTexts(&i.description))
            .bind(Bind::Texts(&i.status))
            .bind(Bind::Texts(&i.origin_system))
            .bind(Bind::NullableTexts(&i.pagerduty_incident_id))
            .bind(Bind::Jsonbs(&i.raw_payload))
            .bind(Bind::Times(&i.created_at))
            .bind(Bind::Times(&i.received_at))
            .bind(Bind::NullableTexts(&i.assignee_id))
            .bind(Bind::NullableTexts(&i.undecided_reason))
            .bind(Bind::Texts(&i.context))
            .bind(Bind::NullableTimes(&i.escalate_at))
            .bind(Bind::Texts(&i.routing_mode))
            .bind(Bind::Texts(&d.source))
            .bind(Bind::Texts(&d.delivery_id))
            .bind(Bind::Texts(&d.event_type))
            .bind(Bind::Texts(&d.incident))
            .bind(Bind::Texts(&x.work_item_id))
            .bind(Bind::NullableTexts(&x.primary_human_id))
            .bind(Bind::Texts(&x.backup_ids))
            .bind(Bind::Doubles(&x.confidence))
            .bind(Bind::Texts(&x.explanation))
            .bind(Bind::NullableTexts(&x.undecided_reason))
            .bind(Bind::Jsons(&x.ranking))
            .bind(Bind::Jsons(&x.excluded))
            .bind(Bind::Jsons(&x.inputs))
            .bind(Bind::Texts(&x.model_version))
            .bind(Bind::Times(&x.decided_at))
            .bind(Bind::Texts(&e.work_item_id))
            .bind(Bind::Texts(&e.kind))
            .bind(Bind::Jsonbs(&e.detail))
            .bind(Bind::Times(&e.occurred_at))
            .bind(Bind::Texts(&j.work_item_id))
            .bind(Bind::Texts(&j.kind))
            .bind(Bind::Jsonbs(&j.payload))
            .bind(Bind::NullableTexts(&j.dedup_key))
            .bind(Bind::Bool(whole))
            .bind(Bind::NullableText(
                self.params.as_ref().map(|(id, _)| id.as_str()),
            ))
            .bind(Bind::NullableText(
                self.params.as_ref().map(|(_, p)| p.0.as_str()),
            ))
    }

    fn write(&self, conn: &mut PgConnection, whole: bool) -> QueryResult<Written> {
        #[derive(QueryableByName)]
        struct Made {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            id: Option<String>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            human_id: Option<String>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
            open_items: Option<i64>,
        }
        if self.is_empty() {
            return Ok(Written::default());
        }
        // The statement counts its own new assignments and tells the insert trigger so for the
        // rest of its transaction, which must therefore be the statement alone.
        if !self.items.id.is_empty() && in_transaction(conn)? {
            return Err(diesel::result::Error::QueryBuilderError(
                "work items are written by a batch statement on its own, outside a transaction"
                    .into(),
            ));
        }
        // Only new work items are checked against capacity (as before: an owner changed later
        // may go over).
        let (counted, checks) = if self.items.id.is_empty() {
            ("", String::new())
        } else {
            ("on", array_literal(&self.capacity_checks))
        };
        // Prepared once per connection: its plan does not depend on the values (every table
        // is reached through its unique index), and the text is the largest the intake sends.
        let made: Vec<Made> = self.statement(counted, &checks, &whole).load(conn)?;
        let mut written = Written::default();
        for row in made {
            match row {
                Made { id: Some(id), .. } => written.made.push(id),
                Made {
                    human_id: Some(human),
                    open_items: Some(n),
                    ..
                } => written.totals.push((human, n)),
                _ => {}
            }
        }
        Ok(written)
    }
}

fn in_transaction(conn: &mut PgConnection) -> QueryResult<bool> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    Ok(AnsiTransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()?
        .is_some())
}

/// Whether `e` is a batch statement refusing a batch decided on inputs that changed since
/// ([`RowBatch::expect_inputs`]).
pub fn is_inputs_changed(e: &diesel::result::Error) -> bool {
    refused_for(e, "decision_inputs_changed")
}

/// Whether `e` is [`RowBatch::insert_whole`] refusing a batch that could not make every item.
pub fn is_partly_skipped(e: &diesel::result::Error) -> bool {
    refused_for(e, "batch_partly_skipped")
}

/// Whether `e` is the batch statement's `goliath_refuse(reason)`, which names its reason as
/// the error's constraint name (SQLSTATE GL001).
fn refused_for(e: &diesel::result::Error, reason: &str) -> bool {
    matches!(e, diesel::result::Error::DatabaseError(_, info)
        if info.constraint_name() == Some(reason))
}

/// A `text[]` literal such as `{"a","b \"c\""}`: every element quoted (so `NULL` stays a
/// string), `"` and `\` escaped.
fn array_literal(values: &[String]) -> String {
    let mut out = String::from("{");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for ch in v.chars() {
            if ch == '"' || ch == '\\' {
                out.push('\\');
            }
            out.push(ch);
        }
        out.push('"');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::prepared::placeholders_in_order;

    #[test]
    fn the_batch_insert_binds_every_placeholder_in_order_with_its_type() {
        assert_eq!(placeholders_in_order(InsertBatch::SQL), Ok(47));
        let batch = RowBatch::new();
        batch
            .statement("on", "{}", &true)
            .check_binds()
            .expect("binds match the placeholders");
    }

    #[test]
    fn array_literals_quote_every_element() {
        assert_eq!(array_literal(&[]), "{}");
        let v = vec![
            "team:a b".to_string(),
            r#"q"uote\back"#.to_string(),
            "NULL".into(),
        ];
        assert_eq!(array_literal(&v), r#"{"team:a b","q\"uote\\back","NULL"}"#);
    }
}
