//! Who is on call, per escalation policy, read from PagerDuty's `/oncalls` and kept for a short
//! time. A decision never waits for PagerDuty: it reads what is kept (fresh, or the last known
//! list when PagerDuty is down or rate-limiting, and says so), and a background thread fetches
//! what was missing or has expired.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::client::{PagerDutyApi, PagerDutyError};

/// What a decision learns about a policy's on-call people.
#[derive(Debug, Clone, PartialEq)]
pub struct OnCallView {
    /// PagerDuty user ids on call at the policy's first level with anyone on it.
    pub users: Vec<String>,
    /// Set when the list is not fresh: why (shown in the decision's explanation).
    pub caveat: Option<String>,
}

#[derive(Debug, Default)]
struct Entry {
    users: Option<Vec<String>>,
    fetched: Option<Instant>,
    last_error: Option<String>,
    /// Not before this instant (PagerDuty's rate-limit reset, or a back-off after a failure).
    retry_at: Option<Instant>,
    last_used: Option<Instant>,
}

pub struct OnCallCache {
    api: Arc<dyn PagerDutyApi>,
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    /// Policies a decision asked for that are missing or expired.
    wanted: Mutex<HashSet<String>>,
    wake: Condvar,
    /// Moves whenever a fetch changes some policy's list (the first fetch included): items
    /// nobody could take are decided again when it moves.
    generation: std::sync::atomic::AtomicU64,
}

impl OnCallCache {
    pub fn new(api: Arc<dyn PagerDutyApi>, ttl: Duration) -> Self {
        OnCallCache {
            api,
            ttl,
            entries: Mutex::default(),
            wanted: Mutex::default(),
            wake: Condvar::new(),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many times a fetch has changed a list: a new value means someone may have come on
    /// (or gone off) call.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// What is known for `policy`, without waiting; asks for a refresh when it is missing or
    /// expired.
    pub fn lookup(&self, policy: &str) -> OnCallView {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.entry(policy.to_string()).or_default();
        entry.last_used = Some(now);
        let fresh = entry
            .fetched
            .is_some_and(|t| now.duration_since(t) < self.ttl);
        let view = match (&entry.users, fresh) {
            (Some(users), true) => OnCallView {
                users: users.clone(),
                caveat: None,
            },
            (Some(users), false) => OnCallView {
                users: users.clone(),
                caveat: Some(format!(
                    "on-call list for policy {policy} is {}s old{}",
                    entry.fetched.map_or(0, |t| now.duration_since(t).as_secs()),
                    entry
                        .last_error
                        .as_ref()
                        .map(|e| format!(" (PagerDuty: {e})"))
                        .unwrap_or_default()
                )),
            },
            (None, _) => OnCallView {
                users: vec![],
                caveat: Some(format!(
                    "on-call list for policy {policy} not known yet{}",
                    entry
                        .last_error
                        .as_ref()
                        .map(|e| format!(" (PagerDuty: {e})"))
                        .unwrap_or_default()
                )),
            },
        };
        drop(entries);
        if !fresh {
            self.wanted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(policy.to_string());
            self.wake.notify_all();
        }
        view
    }

    /// The age of the oldest list among the policies used in the last hour (None when none
    /// has been read).
    pub fn oldest_age(&self) -> Option<Duration> {
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .values()
            .filter(|e| {
                e.last_used
                    .is_some_and(|t| now.duration_since(t) < Duration::from_secs(3600))
            })
            .filter_map(|e| e.fetched.map(|t| now.duration_since(t)))
            .max()
    }

    /// Asks the background thread to fetch `policies` (those not fresh already).
    pub fn want(&self, policies: impl IntoIterator<Item = String>) {
        let mut wanted = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        wanted.extend(policies);
        drop(wanted);
        self.wake.notify_all();
    }

    /// Fetches `policy` now (the background thread's work, which waits out `retry_at` first).
    pub fn refresh(&self, policy: &str) -> Result<(), PagerDutyError> {
        let result = self.api.on_call(policy);
        let fetches = &crate::metrics::metrics().on_call_fetches;
        match &result {
            Ok(_) => fetches.with_label_values(&["ok"]).inc(),
            Err(e) => {
                fetches.with_label_values(&["error"]).inc();
                crate::metrics::api_error("pagerduty", e.status());
            }
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.entry(policy.to_string()).or_default();
        match result {
            Ok(list) => {
                // The first level anyone is on is who gets paged first.
                let first = list.iter().map(|o| o.escalation_level).min();
                let mut users: Vec<String> = list
                    .into_iter()
                    .filter(|o| Some(o.escalation_level) == first)
                    .map(|o| o.user_id)
                    .collect();
                users.sort();
                users.dedup();
                if entry.users.as_ref() != Some(&users) {
                    self.generation.fetch_add(1, Ordering::SeqCst);
                }
                entry.users = Some(users);
                entry.fetched = Some(Instant::now());
                entry.last_error = None;
                entry.retry_at = None;
                Ok(())
            }
            Err(e) => {
                let wait = match &e {
                    PagerDutyError::Transient { retry_after, .. } => {
                        retry_after.unwrap_or(Duration::from_secs(5))
                    }
                    PagerDutyError::Permanent { .. } => Duration::from_secs(60),
                };
                entry.last_error = Some(e.to_string());
                entry.retry_at = Some(Instant::now() + wait);
                Err(e)
            }
        }
    }

    /// Policies to fetch now: those asked for, and those used in the last hour that expire.
    fn due(&self) -> Vec<String> {
        let mut wanted = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        let mut due: HashSet<String> = std::mem::take(&mut *wanted);
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // PagerDuty asked us to wait (or just failed): not before then, and still wanted.
        due.retain(|policy| {
            let waiting = entries
                .get(policy)
                .and_then(|e| e.retry_at)
                .is_some_and(|at| now < at);
            if waiting {
                wanted.insert(policy.clone());
            }
            !waiting
        });
        drop(wanted);
        for (policy, e) in entries.iter() {
            if e.retry_at.is_some_and(|at| now < at) {
                continue;
            }
            let used = e
                .last_used
                .is_some_and(|t| now.duration_since(t) < Duration::from_secs(3600));
            let expiring = e
                .fetched
                .is_none_or(|t| now.duration_since(t) + self.ttl / 5 >= self.ttl);
            if used && expiring {
                due.insert(policy.clone());
            }
        }
        due.into_iter().collect()
    }

    /// Starts the thread that keeps the cache fresh.
    pub fn spawn_refresher(self: &Arc<Self>) -> OnCallRefresher {
        let stop = Arc::new(AtomicBool::new(false));
        let (cache, flag) = (self.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("goliath-oncall".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    let due = cache.due();
                    for policy in &due {
                        if let Err(e) = cache.refresh(policy) {
                            log::warn!("on-call for escalation policy {policy}: {e}");
                        }
                    }
                    // Nothing could be fetched now (what is wanted waits out PagerDuty's
                    // Retry-After): sleep until asked again or half a second, never spin.
                    let wanted = cache.wanted.lock().unwrap_or_else(|p| p.into_inner());
                    if wanted.is_empty() || due.is_empty() {
                        let _ = cache.wake.wait_timeout(wanted, Duration::from_millis(500));
                    }
                }
            })
            .expect("spawning the on-call thread");
        OnCallRefresher {
            stop,
            cache: self.clone(),
            thread: Some(thread),
        }
    }
}

pub struct OnCallRefresher {
    stop: Arc<AtomicBool>,
    cache: Arc<OnCallCache>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for OnCallRefresher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cache.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pagerduty::client::{PdOnCall, PdUser};
    use std::sync::atomic::AtomicUsize;

    /// PagerDuty rate-limiting every `/oncalls` call with a 30 s Retry-After.
    #[derive(Default)]
    struct Limited {
        calls: AtomicUsize,
    }

    impl PagerDutyApi for Limited {
        fn add_note(&self, _: &str, _: &str) -> Result<(), PagerDutyError> {
            Ok(())
        }
        fn notes(&self, _: &str) -> Result<Vec<String>, PagerDutyError> {
            Ok(Vec::new())
        }
        fn reassign(&self, _: &str, _: &str) -> Result<(), PagerDutyError> {
            Ok(())
        }
        fn users(&self) -> Result<Vec<PdUser>, PagerDutyError> {
            Ok(Vec::new())
        }
        fn on_call(&self, _: &str) -> Result<Vec<PdOnCall>, PagerDutyError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Err(PagerDutyError::Transient {
                status: Some(429),
                retry_after: Some(Duration::from_secs(30)),
                message: "Rate Limit Exceeded".into(),
            })
        }
    }

    #[test]
    fn a_rate_limited_policy_is_not_asked_again_before_retry_after() {
        let api = Arc::new(Limited::default());
        let cache = Arc::new(OnCallCache::new(api.clone(), Duration::from_secs(60)));
        let _refresher = cache.spawn_refresher();
        // Decisions keep asking for the policy for 3 s.
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let view = cache.lookup("PPOLICY");
            assert!(view.users.is_empty());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            api.calls.load(Ordering::SeqCst),
            1,
            "asked once, then waited"
        );
        let view = cache.lookup("PPOLICY");
        let caveat = view.caveat.unwrap_or_default();
        assert!(
            caveat.contains("429") || caveat.contains("Rate Limit"),
            "{caveat}"
        );
    }
}
