//! The housekeeping thread: once a tick it assigns waiting (unassigned) work items when
//! someone may have become eligible, and escalates items whose owner did not act in time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::db::PgPool;
use crate::decision::backlog::sweep_if_changed;
use crate::decision::DecisionService;
use crate::escalation::Escalator;

pub struct Housekeeper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Housekeeper {
    /// Runs a pass every `every`; `changed` is called after a pass that assigned anyone or
    /// escalated anything (to wake the Jira workers).
    pub fn spawn(
        pool: PgPool,
        decision: Arc<DecisionService>,
        escalator: Arc<Escalator>,
        every: Duration,
        changed: impl Fn() + Send + 'static,
    ) -> Housekeeper {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("goliath-housekeeping".into())
            .spawn(move || {
                let mut seen = String::new();
                while !flag.load(Ordering::Relaxed) {
                    if pass(&pool, &decision, &escalator, &mut seen) {
                        changed();
                    }
                    let mut slept = Duration::ZERO;
                    while slept < every && !flag.load(Ordering::Relaxed) {
                        let step = (every - slept).min(Duration::from_millis(50));
                        std::thread::sleep(step);
                        slept += step;
                    }
                }
            })
            .expect("spawning the housekeeping thread");
        Housekeeper {
            stop,
            thread: Some(thread),
        }
    }

    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Housekeeper {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// One pass; true when it changed an owner.
fn pass(
    pool: &PgPool,
    decision: &DecisionService,
    escalator: &Escalator,
    seen: &mut String,
) -> bool {
    let mut changed = false;
    match sweep_if_changed(pool, decision, seen) {
        Ok(0) => {}
        Ok(n) => {
            log::info!("{n} waiting work item(s) assigned");
            changed = true;
        }
        Err(e) => log::warn!("deciding waiting work items: {e:#}"),
    }
    match pool
        .get()
        .map_err(anyhow::Error::from)
        .and_then(|mut conn| Ok(escalator.escalate_due(&mut conn)?))
    {
        Ok(done) => changed |= !done.is_empty(),
        Err(e) => log::warn!("escalating overdue work items: {e:#}"),
    }
    changed
}
