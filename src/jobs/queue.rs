//! The durable job queue (an outbox table). Jobs are enqueued inside the caller's transaction,
//! claimed with `FOR UPDATE SKIP LOCKED` so replicas can share one database, and covered by a
//! lease: a job whose worker died is taken again once its lease runs out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use serde::Serialize;

use crate::db::prepared::{Bind, Prepared, Statement};
use crate::db::schema::jobs;

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName, Serialize, PartialEq)]
#[diesel(table_name = jobs)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub locked_by: Option<String>,
    pub locked_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub dedup_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The work item's severity rank (1 = sev1; 4 without an item): served first.
    pub priority: i16,
}

/// Queues a job unless one with the same `dedup_key` exists; returns the job's id either way.
/// It is served at its work item's severity (`payload.work_item_id`), else with sev4: the
/// database's `goliath_severity_rank`, as the intake's batch statement does.
pub fn enqueue(
    conn: &mut PgConnection,
    kind: &str,
    payload: serde_json::Value,
    dedup_key: Option<&str>,
) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Queued {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let inserted: Option<i64> = diesel::sql_query(
        "INSERT INTO jobs (kind, payload, dedup_key, priority) \
         VALUES ($1, $2, $3, goliath_severity_rank( \
             (SELECT severity FROM work_items WHERE id = $2->>'work_item_id'))) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind::<Text, _>(kind)
    .bind::<diesel::sql_types::Jsonb, _>(&payload)
    .bind::<diesel::sql_types::Nullable<Text>, _>(dedup_key)
    .get_result::<Queued>(conn)
    .optional()?
    .map(|q| q.id);
    match inserted {
        Some(id) => Ok(id),
        None => jobs::table
            .filter(jobs::dedup_key.eq(dedup_key))
            .select(jobs::id)
            .first(conn),
    }
}

/// Claims up to `$2` runnable jobs, the most severe first, then the oldest (prepared: run for
/// every batch of jobs, and its plan is the partial index `jobs_ready` whatever the table
/// holds).
struct ClaimSql;

impl Statement for ClaimSql {
    const SQL: &'static str = "\
        UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $1, \
             locked_at = now() \
         WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND run_at <= now() \
                      ORDER BY priority, run_at, id FOR UPDATE SKIP LOCKED LIMIT $2) \
         RETURNING *";
}

/// Takes the next runnable job (most severe, then oldest), marking it running under `worker`.
pub fn claim(conn: &mut PgConnection, worker: &str) -> QueryResult<Option<Job>> {
    Ok(claim_many(conn, worker, 1)?.pop())
}

/// Takes up to `limit` runnable jobs at once, marking them running under `worker`; the most
/// severe first, then the oldest.
pub fn claim_many(conn: &mut PgConnection, worker: &str, limit: usize) -> QueryResult<Vec<Job>> {
    let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
    let mut jobs: Vec<Job> = Prepared::<ClaimSql>::new()
        .bind(Bind::Text(worker))
        .bind(Bind::BigInt(&limit))
        .load(conn)?;
    jobs.sort_by_key(|j| (j.priority, j.run_at, j.id));
    Ok(jobs)
}

/// Marks jobs done (prepared: diesel never prepares an UPDATE it builds).
struct CompleteSql;

impl Statement for CompleteSql {
    const SQL: &'static str = "\
        UPDATE jobs SET state = 'done', locked_by = NULL, finished_at = now(), \
             last_error = NULL \
         WHERE id = ANY($1)";
}

/// Marks jobs done in one statement (kept for the audit trail and the admin view).
pub fn complete_many(conn: &mut PgConnection, ids: &[i64]) -> QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    Prepared::<CompleteSql>::new()
        .bind(Bind::BigInts(ids))
        .execute(conn)
        .map(|_| ())
}

/// Puts a failed job back for another try after `delay`, or marks it dead when it has used
/// all its attempts.
pub fn retry_later(
    conn: &mut PgConnection,
    id: i64,
    error: &str,
    delay: Duration,
) -> QueryResult<String> {
    let millis = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    diesel::sql_query(
        "UPDATE jobs SET \
             state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
             run_at = now() + make_interval(secs => $2::double precision / 1000.0), \
             locked_by = NULL, last_error = $3, \
             finished_at = CASE WHEN attempts >= max_attempts THEN now() END \
         WHERE id = $1 RETURNING *",
    )
    .bind::<BigInt, _>(id)
    .bind::<BigInt, _>(millis)
    .bind::<Text, _>(error)
    .get_result::<Job>(conn)
    .map(|job| job.state)
}

/// Marks a job dead: it will not run again unless an admin retries it.
pub fn kill(conn: &mut PgConnection, id: i64, error: &str) -> QueryResult<()> {
    diesel::update(jobs::table.find(id))
        .set((
            jobs::state.eq(super::JobState::Dead.as_str()),
            jobs::locked_by.eq(None::<String>),
            jobs::last_error.eq(error),
            jobs::finished_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Returns jobs whose lease ran out (their worker died) to the queue; returns how many.
pub fn reap_expired(conn: &mut PgConnection, lease: Duration) -> QueryResult<usize> {
    let secs = i32::try_from(lease.as_secs()).unwrap_or(i32::MAX);
    diesel::sql_query(
        "UPDATE jobs SET state = 'queued', locked_by = NULL, \
             last_error = coalesce(last_error, 'worker lease expired') \
         WHERE state = 'running' AND locked_at < now() - make_interval(secs => $1)",
    )
    .bind::<Integer, _>(secs)
    .execute(conn)
}

/// Deletes up to `limit` of the oldest finished jobs that finished more than `age` ago;
/// returns how many. Queued, running and dead jobs are never deleted.
pub fn prune_finished(conn: &mut PgConnection, age: Duration, limit: i64) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM jobs WHERE id IN (\
             SELECT id FROM jobs \
              WHERE state = 'done' AND finished_at < now() - make_interval(secs => $1) \
              ORDER BY id LIMIT $2)",
    )
    .bind::<diesel::sql_types::Double, _>(age.as_secs_f64())
    .bind::<BigInt, _>(limit)
    .execute(conn)
}

/// Finished jobs deleted per statement: each delete is short, so it never holds up the
/// intake's writes to the same table for long.
const PRUNE_CHUNK: i64 = 1_000;

/// Finished jobs older than `age` go, oldest first, [`PRUNE_CHUNK`] per piece.
#[derive(Debug)]
pub struct FinishedJobs {
    pub age: Duration,
}

impl super::Expiry for FinishedJobs {
    fn what(&self) -> String {
        format!(
            "finished job(s) older than {}",
            super::describe_age(self.age)
        )
    }

    fn delete_piece(&self, conn: &mut PgConnection, _: i64) -> QueryResult<(usize, Option<i64>)> {
        let n = prune_finished(conn, self.age, PRUNE_CHUNK)?;
        Ok((n, ((n as i64) == PRUNE_CHUNK).then_some(0)))
    }
}

/// Puts a dead job back in the queue with a fresh set of attempts.
pub fn resurrect(conn: &mut PgConnection, id: i64) -> QueryResult<Option<Job>> {
    diesel::update(
        jobs::table
            .find(id)
            .filter(jobs::state.eq(super::JobState::Dead.as_str())),
    )
    .set((
        jobs::state.eq(super::JobState::Queued.as_str()),
        jobs::attempts.eq(0),
        jobs::run_at.eq(diesel::dsl::now),
        jobs::finished_at.eq(None::<DateTime<Utc>>),
    ))
    .returning(Job::as_returning())
    .get_result(conn)
    .optional()
}

pub fn list(conn: &mut PgConnection, state: Option<&str>, limit: i64) -> QueryResult<Vec<Job>> {
    let mut query = jobs::table
        .select(Job::as_select())
        .order(jobs::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(state) = state {
        query = query.filter(jobs::state.eq(state.to_string()));
    }
    query.load(conn)
}

/// Counts of the jobs still to run or needing attention (queued, running, dead), for
/// /readyz and admin. Each is read through its partial index; finished jobs, which only grow,
/// are not counted (a probe every few seconds would scan them all).
/// Seconds the next runnable queued job of each severity rank (the one with the earliest
/// `run_at`) has waited since it was queued (index 0 = sev1; 0 where none waits).
pub fn age_by_severity(conn: &mut PgConnection) -> QueryResult<[i64; 4]> {
    #[derive(QueryableByName)]
    struct Age {
        #[diesel(sql_type = diesel::sql_types::SmallInt)]
        priority: i16,
        #[diesel(sql_type = BigInt)]
        seconds: i64,
    }
    // One index probe per rank: the oldest runnable job of the rank leads jobs_ready.
    let rows: Vec<Age> = diesel::sql_query(
        "SELECT r.priority::smallint AS priority, coalesce((SELECT extract(epoch FROM now() - j.created_at)::bigint \
                  FROM jobs j WHERE j.state = 'queued' AND j.priority = r.priority \
                   AND j.run_at <= now() ORDER BY j.run_at, j.id LIMIT 1), 0) AS seconds \
           FROM generate_series(1, 4) AS r(priority)",
    )
    .load(conn)?;
    let mut ages = [0; 4];
    for r in rows {
        if let Some(a) = usize::try_from(r.priority - 1)
            .ok()
            .and_then(|i| ages.get_mut(i))
        {
            *a = r.seconds.max(0);
        }
    }
    Ok(ages)
}

pub fn depth(conn: &mut PgConnection) -> QueryResult<serde_json::Value> {
    let mut counts = serde_json::Map::new();
    for state in super::JobState::PENDING_AND_DEAD.map(super::JobState::as_str) {
        let n: i64 = jobs::table
            .filter(jobs::state.eq(state))
            .count()
            .get_result(conn)?;
        counts.insert(state.to_string(), n.into());
    }
    Ok(serde_json::Value::Object(counts))
}
