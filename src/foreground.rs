//! Work someone is waiting on right now (a webhook waiting for its answer), counted while it is
//! in flight, so that background work that can wait (the Jira queue) runs in the quiet moments
//! between instead of competing with it for the CPU and the database.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a waiting background worker looks again.
const POLL: Duration = Duration::from_millis(1);

#[derive(Debug, Default)]
pub struct Foreground {
    in_flight: AtomicUsize,
}

/// Counts one piece of foreground work until dropped.
pub struct InFlight(Arc<Foreground>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Foreground {
    /// Marks one piece of foreground work in flight until the returned guard is dropped.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    pub fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// Waits until nothing is in flight, but no longer than `at_most` (so background work is
    /// slowed by a flood, never stopped); returns how long it waited.
    pub fn wait_quiet(&self, at_most: Duration) -> Duration {
        let start = Instant::now();
        while self.busy() && start.elapsed() < at_most {
            std::thread::sleep(POLL);
        }
        start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_while_a_guard_lives_and_waiting_is_bounded() {
        let fg = Arc::new(Foreground::default());
        assert!(!fg.busy());
        assert!(fg.wait_quiet(Duration::from_secs(5)) < Duration::from_secs(1));
        let first = fg.enter();
        let second = fg.enter();
        assert!(fg.busy());
        let waited = fg.wait_quiet(Duration::from_millis(30));
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        drop(first);
        assert!(fg.busy(), "one still in flight");
        drop(second);
        assert!(!fg.busy());
    }

    #[test]
    fn a_waiting_worker_goes_on_as_soon_as_the_foreground_is_quiet() {
        let fg = Arc::new(Foreground::default());
        let guard = fg.enter();
        let waiter = {
            let fg = fg.clone();
            std::thread::spawn(move || {
                fg.wait_quiet(Duration::from_secs(30));
                Instant::now()
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        // Timed from here, not from the waiter's start, which may come later.
        let quiet_at = Instant::now();
        drop(guard);
        let went_on_at = waiter.join().unwrap();
        assert!(
            went_on_at >= quiet_at,
            "it went on while work was in flight"
        );
        let after = went_on_at - quiet_at;
        assert!(after < Duration::from_secs(10), "{after:?}");
    }
}
