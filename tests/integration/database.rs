//! The database itself: migrations (revert, re-apply, replicas at once), triggers under concurrency, typed columns, refusals.

use crate::helpers::{capped, human};

use crate::routing::{app, assign_to_ana};

#[test]
fn the_open_load_trigger_refuses_a_concurrent_assignment_past_capacity() {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use diesel::result::{DatabaseErrorKind, Error};
    let app = app();
    let ana = capped("ana", &["api"], 1);
    app.roster(&[ana]);
    // What an intake batch writes: a new work item already assigned.
    let assign = assign_to_ana;
    let mut first = app.db.conn();
    first.batch_execute("BEGIN").unwrap();
    assign(&mut first, "wi-first").unwrap();
    // A second batch that read ana's load before the first committed assigns her too; its
    // counter update waits for the first to commit, then sees both.
    let second = std::thread::scope(|s| {
        let waiting = s.spawn(|| {
            let mut conn = app.db.conn();
            conn.batch_execute("BEGIN").unwrap();
            let result = assign(&mut conn, "wi-second");
            conn.batch_execute("ROLLBACK").unwrap();
            result
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        first.batch_execute("COMMIT").unwrap();
        waiting.join().unwrap()
    });
    let err = second.expect_err("ana has max_active 1");
    assert!(
        matches!(
            err,
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _)
        ),
        "{err:?}"
    );
    assert!(goliath::db::is_transient(&err));
    let loads = goliath::decision::open_loads(&mut app.db.conn()).unwrap();
    assert_eq!(
        loads.get("ana"),
        Some(&1),
        "only the first assignment counts"
    );
    // Changes of an existing item's owner are not refused: a hand-off may go past capacity.
    let mut conn = app.db.conn();
    assign(&mut conn, "wi-third")
        .expect_err("a new assignment past capacity is refused outside a race too");
    diesel::sql_query(
        "INSERT INTO work_items (id, type, service, severity, title, status, origin_system, \
         raw_payload, created_at) \
         VALUES ('wi-open', 'incident', 'api', 'sev3', 't', 'open', 'TEST', '{}', now())",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query(
        "UPDATE work_items SET assignee_id = 'ana', status = 'assigned' WHERE id = 'wi-open'",
    )
    .execute(&mut conn)
    .unwrap();
    let loads = goliath::decision::open_loads(&mut conn).unwrap();
    assert_eq!(loads.get("ana"), Some(&2));
}

#[test]
fn concurrent_assignments_of_an_unlimited_human_do_not_wait_for_each_other() {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    let app = app();
    app.roster(&[human("ana", &["api"])]);
    let assign = assign_to_ana;
    let (mut first, mut second) = (app.db.conn(), app.db.conn());
    first.batch_execute("BEGIN").unwrap();
    assign(&mut first, "wi-first").unwrap();
    // ana has no max_active: the second counts her new item without waiting for the first.
    second
        .batch_execute("BEGIN; SET LOCAL lock_timeout = '2s'")
        .unwrap();
    assign(&mut second, "wi-second").expect("the counter update does not wait");
    second.batch_execute("COMMIT").unwrap();
    first.batch_execute("COMMIT").unwrap();
    let loads = goliath::decision::open_loads(&mut app.db.conn()).unwrap();
    assert_eq!(loads.get("ana"), Some(&2));
    // A hand-off from ana to nobody, in a third transaction, is counted too.
    diesel::sql_query("UPDATE work_items SET status = 'resolved' WHERE id = 'wi-first'")
        .execute(&mut app.db.conn())
        .unwrap();
    let loads = goliath::decision::open_loads(&mut app.db.conn()).unwrap();
    assert_eq!(loads.get("ana"), Some(&1));
}

#[test]
fn every_migration_reverts_and_reapplies_keeping_the_open_loads() {
    use diesel_migrations::MigrationHarness;
    let mut app = app();
    app.roster(&[human("ana", &["api"]), human("ben", &["api"])]);
    for n in 0..4 {
        app.incident(&format!("MIG{n}"), "api-service", "low");
    }
    app.stop_workers();
    let mut conn = app.db.conn();
    let before = goliath::decision::open_loads(&mut conn).unwrap();
    assert_eq!(before.values().sum::<u32>(), 4, "{before:?}");
    // Down to the schema that introduced the counters (earlier ones drop the owners), then up.
    let applied = conn.applied_migrations().unwrap().len();
    for _ in 5..applied {
        conn.revert_last_migration(goliath::db::MIGRATIONS).unwrap();
    }
    goliath::db::run_migrations(&mut conn).unwrap();
    assert!(goliath::db::migrations_current(&mut conn).unwrap());
    assert_eq!(goliath::decision::open_loads(&mut conn).unwrap(), before);
}

#[test]
fn reverting_the_waiting_flag_counts_waiting_items_again() {
    use diesel::prelude::*;
    use diesel_migrations::MigrationHarness;
    use goliath::db::schema::work_items;
    let mut app = app();
    app.roster(&[human("ana", &["api"])]);
    let ids: Vec<String> = (0..3)
        .map(|n| {
            app.incident(&format!("WAIT{n}"), "api-service", "low")["work_item_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    app.stop_workers();
    let mut conn = app.db.conn();
    let ana = |conn: &mut PgConnection| {
        goliath::decision::open_loads(conn)
            .unwrap()
            .get("ana")
            .copied()
    };
    assert_eq!(ana(&mut conn), Some(3));
    diesel::update(work_items::table.find(&ids[0]))
        .set(work_items::waiting.eq(true))
        .execute(&mut conn)
        .unwrap();
    assert_eq!(ana(&mut conn), Some(2), "a waiting item carries no load");
    // Back to before the flag existed: the waiting item counts again.
    while conn
        .applied_migrations()
        .unwrap()
        .iter()
        .any(|v| v.to_string().as_str() >= "20261206000022")
    {
        conn.revert_last_migration(goliath::db::MIGRATIONS).unwrap();
    }
    assert_eq!(ana(&mut conn), Some(3));
    goliath::db::run_migrations(&mut conn).unwrap();
    assert_eq!(ana(&mut conn), Some(3), "re-applied, nothing is waiting");
}

#[test]
fn replicas_starting_together_both_migrate_one_database() {
    use diesel::prelude::*;
    let db = crate::helpers::TestDb::empty();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut conn = PgConnection::establish(&url).unwrap();
                barrier.wait();
                goliath::db::run_migrations(&mut conn).map_err(|e| e.to_string())
            })
        })
        .collect();
    let results: Vec<Result<Vec<String>, String>> =
        runs.into_iter().map(|r| r.join().unwrap()).collect();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let applied: usize = results.iter().map(|r| r.as_ref().unwrap().len()).sum();
    let mut conn = db.conn();
    assert!(goliath::db::migrations_current(&mut conn).unwrap());
    let versions: i64 = diesel::sql_query("SELECT 1 FROM __diesel_schema_migrations")
        .execute(&mut conn)
        .unwrap() as i64;
    assert_eq!(
        applied as i64, versions,
        "each migration applied once, by one of them"
    );
}

#[test]
fn a_stored_severity_or_status_outside_its_enum_is_an_error_when_read_not_a_default() {
    use diesel::prelude::*;
    use goliath::db::schema::work_items;
    let app = app();
    app.roster(&[human("ana", &["api"])]);
    let item = app.incident("SEV9", "api-service", "low");
    let id = item["work_item_id"].as_str().unwrap().to_string();
    let mut conn = app.db.conn();
    let read = |conn: &mut PgConnection| {
        work_items::table
            .find(&id)
            .select(goliath::models::WorkItem::as_select())
            .first(conn)
    };
    assert_eq!(
        read(&mut conn).unwrap().severity,
        goliath::routing::Severity::Sev3
    );
    diesel::update(work_items::table.find(&id))
        .set(work_items::severity.eq("urgent"))
        .execute(&mut conn)
        .unwrap();
    let err = read(&mut conn).expect_err("an unknown severity does not read as sev3");
    assert!(err.to_string().contains("severity"), "{err}");
    // The same for a status.
    diesel::update(work_items::table.find(&id))
        .set((
            work_items::severity.eq("sev3"),
            work_items::status.eq("pending"),
        ))
        .execute(&mut conn)
        .unwrap();
    let err = read(&mut conn).expect_err("an unknown status is an error");
    assert!(err.to_string().contains("status"), "{err}");
}

#[test]
fn a_batch_refusal_is_recognised_by_the_reason_it_names_not_by_its_message() {
    use diesel::RunQueryDsl;
    let db = crate::helpers::db::TestDb::new();
    let mut conn = db.conn();
    let refused = |reason: &str, conn: &mut goliath::db::PgConn| {
        diesel::sql_query(format!("SELECT goliath_refuse('{reason}')"))
            .execute(conn)
            .expect_err("goliath_refuse always raises")
    };
    let changed = refused("decision_inputs_changed", &mut conn);
    assert!(goliath::batch::is_inputs_changed(&changed), "{changed:?}");
    assert!(!goliath::batch::is_partly_skipped(&changed), "{changed:?}");
    let skipped = refused("batch_partly_skipped", &mut conn);
    assert!(goliath::batch::is_partly_skipped(&skipped), "{skipped:?}");
    assert!(!goliath::batch::is_inputs_changed(&skipped), "{skipped:?}");
    // Another failure whose text merely looks like a refusal is not one.
    let lookalike =
        diesel::sql_query("DO $$ BEGIN RAISE EXCEPTION 'goliath: decision_inputs_changed'; END $$")
            .execute(&mut conn)
            .expect_err("raises");
    assert!(
        !goliath::batch::is_inputs_changed(&lookalike),
        "{lookalike:?}"
    );
}
