//! Database access: the r2d2 pool, embedded migrations, and the helper that moves blocking
//! diesel work off the async executor.

pub mod batch;
pub mod embedded;
pub mod json;
pub mod schema;

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub type PgPool = Pool<ConnectionManager<PgConnection>>;
pub type PgConn = PooledConnection<ConnectionManager<PgConnection>>;

/// Every pooled connection gets a statement timeout, so one stuck query cannot hold a
/// webhook past PagerDuty's 5 s deadline, and plans made for each execution: a generic plan
/// cached while a table was nearly empty (a fresh install) would keep scanning it whole
/// after it has grown, until autovacuum next analyzes it.
#[derive(Debug, Clone, Copy)]
struct StatementTimeout(u64);

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for StatementTimeout {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        use diesel::connection::SimpleConnection;
        conn.batch_execute(&format!(
            "SET statement_timeout = {}; SET plan_cache_mode = force_custom_plan",
            self.0
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Advisory lock key serializing changes of ownership (an arbitrary constant).
const ASSIGNMENT_LOCK: i64 = 0x0047_4F4C_4941_5448;

/// Takes the transaction-scoped lock that every change of who owns what holds until commit,
/// so each decision sees the loads the previous one committed (`max_active` holds under
/// concurrency) and open-load counter updates cannot deadlock.
pub fn lock_assignments(conn: &mut PgConnection) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(ASSIGNMENT_LOCK)
        .execute(conn)
        .map(|_| ())
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

/// Applies pending migrations; returns the versions applied.
pub fn run_migrations(conn: &mut PgConnection) -> anyhow::Result<Vec<String>> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("running migrations: {e}"))?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

/// True when every embedded migration has been applied.
pub fn migrations_current(conn: &mut PgConnection) -> anyhow::Result<bool> {
    let pending = conn
        .pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("reading migration state: {e}"))?;
    Ok(pending.is_empty())
}
