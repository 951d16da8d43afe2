//! Database access: the r2d2 pool, embedded migrations, and the helper that moves blocking
//! diesel work off the async executor.

pub mod embedded;
pub mod enums;
pub mod json;
pub mod prepared;
pub mod schema;

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub type PgPool = Pool<ConnectionManager<PgConnection>>;
pub type PgConn = PooledConnection<ConnectionManager<PgConnection>>;

/// The longest id or key (bytes) a request may give: webhook delivery ids, PagerDuty event,
/// incident and service ids, Jira issue keys and ids, people's ids and accounts. Ids end up in
/// primary, unique and other btree keys, and PostgreSQL refuses an index entry over about
/// 2.7 KB (a third of a page): a longer id would fail as a 500 in the database.
pub const MAX_ID_BYTES: usize = 255;

/// The longest name (bytes) kept in an index: a PagerDuty service, team, escalation policy or
/// incident type name. Counted as stored, lower-cased and escaped as JSON writes it, since the
/// learner keys a person's state by a service and a tag together in one JSON text: two names
/// this long still fit in one entry.
pub const MAX_NAME_BYTES: usize = 1024;

/// Why a value of `len` bytes is refused past `max`: None when it fits.
pub fn too_long(len: usize, max: usize) -> Option<String> {
    (len > max).then(|| format!("is {len} bytes long; at most {max} bytes are allowed"))
}

/// A name's length as it is stored: trimmed, lower-cased, and escaped as JSON writes it.
pub fn stored_name_len(name: &str) -> usize {
    // Serializing a string cannot fail; the two quotes are not part of the name.
    serde_json::to_string(&name.trim().to_lowercase()).map_or(usize::MAX, |s| s.len() - 2)
}

/// Every pooled connection gets a statement timeout, so one stuck query cannot hold a
/// webhook past PagerDuty's 5 s deadline.
///
/// Plans are left to PostgreSQL's default choice. Reads of tables that grow by lookups of many
/// keys are sent unprepared, so they are planned for their own values every time (a generic
/// plan cached while a table was nearly empty would keep scanning it whole as it grew); the
/// hot statements in `db::prepared` and the foreign key checks keep one generic plan, which
/// forcing custom plans would rebuild on every execution.
#[derive(Debug, Clone, Copy)]
struct StatementTimeout(u64);

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for StatementTimeout {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        use diesel::connection::SimpleConnection;
        conn.batch_execute(&format!("SET statement_timeout = {}", self.0))
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Advisory lock key guarding changes of ownership (an arbitrary constant).
pub const ASSIGNMENT_LOCK: i64 = 0x0047_4F4C_4941_5448;

/// Takes, until commit, the lock that every change of an existing work item's owner holds
/// (learner, manual override, on-demand decision), so each sees the loads the previous one
/// committed and their open-load counter updates cannot deadlock. Intake batches hold the same
/// lock shared: they run beside one another (the capacity check refuses one that would take
/// someone past `max_active`, and it is retried), but not beside these.
pub fn lock_assignments(conn: &mut PgConnection) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(ASSIGNMENT_LOCK)
        .execute(conn)
        .map(|_| ())
}

/// Whether a failed transaction may succeed if run again from the start: a serialization
/// failure (raised by the capacity check), a deadlock, or a unique key taken by a
/// transaction that committed after this one read.
pub fn is_transient(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _)
        | Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => true,
        Error::DatabaseError(_, info) => info.message().contains("deadlock detected"),
        _ => false,
    }
}

/// Builds a pool; connections are made lazily, so a database that is down at start is
/// reported by /readyz rather than crashing the process.
pub fn build_pool(url: &str, max_size: u32) -> PgPool {
    Pool::builder()
        .max_size(max_size)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(3))
        // A broken connection fails its statement and is discarded; a SELECT 1 before every
        // checkout would cost a round trip per request.
        .test_on_check_out(false)
        .connection_customizer(Box::new(StatementTimeout(10_000)))
        .build_unchecked(ConnectionManager::new(url))
}

/// Advisory lock key held while migrations run (an arbitrary constant).
const MIGRATION_LOCK: i64 = 0x0047_4F4C_4D49_4752;

/// Applies pending migrations; returns the versions applied. Held under an advisory lock, so
/// replicas starting together on one database take turns: the first applies them, the others
/// find nothing pending (instead of both creating the same types and one failing).
pub fn run_migrations(conn: &mut PgConnection) -> anyhow::Result<Vec<String>> {
    use diesel::RunQueryDsl;
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
        .execute(conn)
        .map_err(|e| anyhow::anyhow!("waiting for the migration lock: {e}"))?;
    let applied: anyhow::Result<Vec<String>> = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(|v| v.to_string()).collect())
        .map_err(|e| anyhow::anyhow!("running migrations: {e}"));
    let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
        .execute(conn);
    if let Err(e) = unlocked {
        log::warn!("releasing the migration lock: {e}");
    }
    applied
}

/// True when every embedded migration has been applied.
pub fn migrations_current(conn: &mut PgConnection) -> anyhow::Result<bool> {
    let pending = conn
        .pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("reading migration state: {e}"))?;
    Ok(pending.is_empty())
}
