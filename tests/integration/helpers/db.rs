//! Per-test databases cloned from a migrated template, on `TEST_DATABASE_URL` when set or
//! else on a throwaway cluster this test process starts (and a watchdog removes at exit).
//! No database means the tests fail: they never skip.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use diesel::prelude::*;
use goliath::db::embedded::{Durability, EmbeddedPostgres};
use goliath::db::{build_pool, PgPool};

struct Server {
    /// URL of a maintenance database on the server, with `{db}` where the name goes.
    url_pattern: String,
    template: String,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let pid = std::process::id();
        let url_pattern = match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => replace_db_name(&url),
            _ => {
                let dir = std::env::temp_dir().join(format!("goliath-test-pg-{pid}"));
                let _ = std::fs::remove_dir_all(&dir);
                let pg = EmbeddedPostgres::start(&dir, "postgres", Durability::Throwaway)
                    .unwrap_or_else(|e| {
                        panic!("tests need PostgreSQL and could not start one: {e}")
                    });
                let pattern = pg.url("{db}");
                pg.stop_when_process_exits(pid, &dir);
                pattern
            }
        };
        let template = format!("goliath_tpl_{pid}");
        let mut admin = PgConnection::establish(&url_pattern.replace("{db}", "postgres"))
            .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL: {e}"));
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {template}"))
            .execute(&mut admin)
            .unwrap();
        diesel::sql_query(format!("CREATE DATABASE {template}"))
            .execute(&mut admin)
            .unwrap();
        let mut conn = PgConnection::establish(&url_pattern.replace("{db}", &template)).unwrap();
        goliath::db::run_migrations(&mut conn).expect("migrating the template database");
        Server {
            url_pattern,
            template,
        }
    })
}

/// Swaps the database name in a URL for `{db}`.
fn replace_db_name(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let slash = base
        .rfind('/')
        .expect("TEST_DATABASE_URL must name a database");
    format!("{}/{{db}}{query}", &base[..slash])
}

/// A database of its own for one test, dropped when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    pub fn new() -> TestDb {
        Self::create(
            "t",
            &format!("TEMPLATE {} STRATEGY FILE_COPY", server().template),
        )
    }

    /// A database of its own with no migrations applied.
    pub fn empty() -> TestDb {
        Self::create("e", "")
    }

    fn create(kind: &str, options: &str) -> TestDb {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let server = server();
        let name = format!(
            "goliath_{kind}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin =
            PgConnection::establish(&server.url_pattern.replace("{db}", "postgres")).unwrap();
        diesel::sql_query(format!("CREATE DATABASE {name} {options}"))
            .execute(&mut admin)
            .expect("creating the test database");
        let url = server.url_pattern.replace("{db}", &name);
        let pool = build_pool(&url, 8);
        TestDb { name, url, pool }
    }

    pub fn conn(&self) -> goliath::db::PgConn {
        self.pool.get().expect("a test database connection")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) =
            PgConnection::establish(&server().url_pattern.replace("{db}", "postgres"))
        {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin);
        }
    }
}
