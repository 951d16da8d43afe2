//! Background worker threads that run queued jobs. They wake at once when the process queues a
//! job (an in-process signal), and otherwise poll once a second for jobs queued by other
//! replicas, retries whose time has come, and leases that ran out.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::db::PgPool;
use crate::foreground::Foreground;

use super::queue::{self, Job};
use super::Expiry;

/// What a job handler reports.
#[derive(Debug, Clone, PartialEq)]
pub enum JobResult {
    Done,
    /// Done, and already marked so by the handler, in the transaction that recorded its
    /// effect (one commit instead of two).
    Completed,
    /// Try again later: after `after` when the remote said so (Retry-After), else backoff.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Waiting for other work (an issue not created yet): tried again after `after`, like a
    /// retry, but logged as the wait it is.
    Wait {
        reason: String,
        after: Duration,
    },
    /// Will never succeed as it stands (for example Jira's 400): park it for an admin.
    Dead {
        error: String,
    },
}

pub trait JobHandler: Send + Sync {
    /// Runs jobs claimed together, in order, sharing what reads and writes it can between
    /// them; one result per job.
    fn run_many(&self, pool: &PgPool, jobs: &[Job]) -> Vec<JobResult>;
}

/// In-process wake-up signal shared by the HTTP handlers and the workers.
#[derive(Default)]
pub struct Waker {
    generation: Mutex<u64>,
    cv: Condvar,
}

impl Waker {
    pub fn wake(&self) {
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        *g += 1;
        self.cv.notify_all();
    }

    /// Waits until woken after `seen`, or `timeout`; returns the generation now.
    fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = self
            .cv
            .wait_timeout_while(g, timeout, |g| *g == seen)
            .unwrap_or_else(|p| p.into_inner());
        *g
    }

    fn current(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub threads: usize,
    /// A running job whose worker has not finished within this is taken again.
    pub lease: Duration,
    /// Fallback poll for work this process was not told about.
    pub poll: Duration,
    /// Names this process in `locked_by`.
    pub instance: String,
    /// What the first worker deletes once it is past its retention (finished jobs, old
    /// webhook deliveries), between its Jira batches.
    pub expiries: Vec<Arc<dyn Expiry>>,
    /// How often each expiry makes a pass.
    pub prune_every: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            threads: crate::config::DEFAULT_WORKERS,
            lease: Duration::from_secs(crate::config::DEFAULT_JOB_LEASE_SECS),
            poll: Duration::from_secs(1),
            instance: format!("goliath-{}", std::process::id()),
            expiries: vec![],
            prune_every: Duration::from_secs(600),
        }
    }
}

/// Delay before retry `attempt` (1-based): 1 s doubling to a 5 min cap, with ±20 % jitter
/// drawn from the job id so replicas do not retry in lockstep.
pub fn backoff(job_id: i64, attempt: i32) -> Duration {
    let base_ms = 1000f64 * 2f64.powi((attempt - 1).clamp(0, 16));
    let capped = base_ms.min(300_000.0);
    let mut x = (job_id as u64) ^ ((attempt as u64) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let unit = (x >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    Duration::from_millis((capped * (0.8 + 0.4 * unit)) as u64)
}

/// How many jobs a worker claims at once: as many as it expects to finish within
/// [`BATCH_BUDGET`], judged by how long its recent jobs took. Against a fast Jira a batch shares
/// its claim, its reads and its record between many issues; against a slow one it is a single
/// job, so the other workers share the queue and no claimed job waits long behind the others.
#[derive(Debug, Clone)]
pub struct BatchSize {
    /// Recent time per job (moving average), in seconds.
    per_job: f64,
}

/// The Jira work one batch of jobs should hold.
pub const BATCH_BUDGET: Duration = Duration::from_millis(25);
/// The most jobs claimed at once.
pub const MAX_BATCH: usize = 32;

impl Default for BatchSize {
    /// Until a job has been timed, one at a time.
    fn default() -> Self {
        BatchSize {
            per_job: BATCH_BUDGET.as_secs_f64(),
        }
    }
}

impl BatchSize {
    pub fn next(&self) -> usize {
        let fits = BATCH_BUDGET.as_secs_f64() / self.per_job.max(1e-6);
        (fits.floor() as usize).clamp(1, MAX_BATCH)
    }

    /// Counts a batch of `jobs` that took `elapsed`.
    pub fn observe(&mut self, jobs: usize, elapsed: Duration) {
        if jobs == 0 {
            return;
        }
        let per_job = elapsed.as_secs_f64() / jobs as f64;
        self.per_job = 0.7 * self.per_job + 0.3 * per_job;
    }
}

/// Claims up to `limit` jobs at once and runs them; returns how many it ran (0 when nothing
/// is runnable).
pub fn run_batch(
    pool: &PgPool,
    handler: &dyn JobHandler,
    worker: &str,
    limit: usize,
) -> anyhow::Result<usize> {
    let mut conn = pool.get()?;
    let jobs = queue::claim_many(&mut conn, worker, limit)?;
    drop(conn);
    if jobs.is_empty() {
        return Ok(0);
    }
    let started = std::time::Instant::now();
    let results = std::panic::catch_unwind(AssertUnwindSafe(|| handler.run_many(pool, &jobs)))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            vec![
                JobResult::Retry {
                    error: format!("job panicked: {what}"),
                    after: None,
                };
                jobs.len()
            ]
        });
    // A batch shares its reads and writes: each job is charged an equal share of its time.
    let share = started.elapsed().as_secs_f64() / jobs.len() as f64;
    for job in &jobs {
        crate::metrics::metrics()
            .job_seconds
            .with_label_values(&[job.kind.as_str()])
            .observe(share);
    }
    let mut conn = pool.get()?;
    let done: Vec<i64> = jobs
        .iter()
        .zip(&results)
        .filter(|(_, r)| matches!(r, JobResult::Done))
        .map(|(job, _)| job.id)
        .collect();
    queue::complete_many(&mut conn, &done)?;
    for (job, result) in jobs.iter().zip(results) {
        settle(&mut conn, job, result)?;
    }
    Ok(jobs.len())
}

/// Records what became of a job that did not succeed, and logs each outcome.
fn settle(
    conn: &mut diesel::PgConnection,
    job: &Job,
    result: JobResult,
) -> diesel::QueryResult<()> {
    let outcome = match &result {
        JobResult::Done | JobResult::Completed => "done",
        JobResult::Retry { .. } => "retry",
        JobResult::Wait { .. } => "wait",
        JobResult::Dead { .. } => "dead",
    };
    crate::metrics::metrics()
        .jobs
        .with_label_values(&[job.kind.as_str(), outcome])
        .inc();
    match result {
        JobResult::Done | JobResult::Completed => {
            log::info!("{} done after {} attempt(s)", Named(job), job.attempts)
        }
        JobResult::Retry { error, after } => {
            let delay = after.unwrap_or_else(|| backoff(job.id, job.attempts));
            let state = queue::retry_later(conn, job.id, &error, delay)?;
            if state == super::JobState::Dead.as_str() {
                log::error!(
                    "{} dead after {} attempts: {error}",
                    Named(job),
                    job.attempts
                );
            } else {
                log::warn!(
                    "{} attempt {} failed, retrying in {delay:?}: {error}",
                    Named(job),
                    job.attempts
                );
            }
        }
        JobResult::Wait { reason, after } => {
            let state = queue::retry_later(conn, job.id, &reason, after)?;
            if state == super::JobState::Dead.as_str() {
                log::error!(
                    "{} dead after {} attempts: {reason}",
                    Named(job),
                    job.attempts
                );
            } else {
                log::info!("{} waits {after:?}: {reason}", Named(job));
            }
        }
        JobResult::Dead { error } => {
            queue::kill(conn, job.id, &error)?;
            log::error!("{} dead: {error}", Named(job));
        }
    }
    Ok(())
}

/// A job as its log lines name it, with its work item where it has one
/// (`job 4 (jira_create_issue, wi-20260314092652-c7d71f)`): JSON logs pick the id out as
/// `work_item_id`, so one item's trail can be followed through its jobs.
struct Named<'a>(&'a Job);

impl std::fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let job = self.0;
        match job.payload.get("work_item_id").and_then(|v| v.as_str()) {
            Some(item) => write!(f, "job {} ({}, {item})", job.id, job.kind),
            None => write!(f, "job {} ({})", job.id, job.kind),
        }
    }
}

/// Runs jobs, a batch at a time, until none is runnable now (for tests and the `demo`);
/// returns how many ran.
pub fn drain(pool: &PgPool, handler: &dyn JobHandler) -> anyhow::Result<usize> {
    let mut n = 0;
    loop {
        match run_batch(pool, handler, "drain", MAX_BATCH)? {
            0 => return Ok(n),
            ran => n += ran,
        }
    }
}

pub struct Workers {
    shutdown: Arc<AtomicBool>,
    waker: Arc<Waker>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    pub fn spawn(
        pool: PgPool,
        handler: Arc<dyn JobHandler>,
        waker: Arc<Waker>,
        foreground: Arc<Foreground>,
        opts: WorkerOptions,
    ) -> Workers {
        let shutdown = Arc::new(AtomicBool::new(false));
        let threads = (0..opts.threads.max(1))
            .map(|i| {
                let (pool, handler, waker, foreground, shutdown, opts) = (
                    pool.clone(),
                    handler.clone(),
                    waker.clone(),
                    foreground.clone(),
                    shutdown.clone(),
                    opts.clone(),
                );
                std::thread::Builder::new()
                    .name(format!("jira-worker-{i}"))
                    .spawn(move || {
                        let ctx = WorkerContext {
                            pool: &pool,
                            handler: &*handler,
                            waker: &waker,
                            foreground: &foreground,
                            shutdown: &shutdown,
                        };
                        worker_loop(i, &ctx, &opts)
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        Workers {
            shutdown,
            waker,
            threads,
        }
    }

    /// Asks every worker to stop after its current job and waits for them.
    pub fn shutdown(self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.waker.wake();
        for t in self.threads {
            let _ = t.join();
        }
        log::info!("job workers stopped");
    }
}

/// What a worker thread shares with the rest of the process.
struct WorkerContext<'a> {
    pool: &'a PgPool,
    handler: &'a dyn JobHandler,
    waker: &'a Waker,
    foreground: &'a Foreground,
    shutdown: &'a AtomicBool,
}

/// The longest a worker waits for the webhooks in flight to be answered before it runs its
/// next batch anyway: under a sustained flood Jira work slows down, it never stops.
pub const MAX_YIELD: Duration = Duration::from_secs(1);

fn worker_loop(index: usize, ctx: &WorkerContext, opts: &WorkerOptions) {
    let name = format!("{}-{index}", opts.instance);
    yield_to_intake();
    let mut last_reap = std::time::Instant::now() - opts.lease;
    let mut pruners: Vec<Pruner> = if index == 0 {
        let every = opts.prune_every;
        opts.expiries
            .iter()
            .map(|e| Pruner::new(e.clone(), every))
            .collect()
    } else {
        vec![]
    };
    let mut size = BatchSize::default();
    while !ctx.shutdown.load(Ordering::SeqCst) {
        let seen = ctx.waker.current();
        if index == 0 && last_reap.elapsed() >= opts.poll {
            last_reap = std::time::Instant::now();
            if let Ok(mut conn) = ctx.pool.get() {
                match queue::reap_expired(&mut conn, opts.lease) {
                    Ok(0) => {}
                    Ok(n) => log::warn!("{n} job(s) whose worker stopped were queued again"),
                    Err(e) => log::warn!("reaping expired jobs: {e}"),
                }
            }
        }
        for pruner in &mut pruners {
            pruner.step(ctx.pool);
        }
        // Webhook answers first: the queue is durable and may lag behind a burst, and what
        // piles up meanwhile is taken in larger, cheaper batches.
        ctx.foreground.wait_quiet(MAX_YIELD);
        let started = std::time::Instant::now();
        match run_batch(ctx.pool, ctx.handler, &name, size.next()) {
            Ok(0) => {}
            Ok(ran) => {
                size.observe(ran, started.elapsed());
                continue;
            }
            Err(e) => log::warn!("worker {name}: {e:#}"),
        }
        ctx.waker.wait(seen, opts.poll);
    }
}

/// Applies one [`Expiry`] every `every`: one piece per turn of the worker's loop, between its
/// Jira batches, so a long backlog of old rows never holds up Jira work.
struct Pruner {
    expiry: Arc<dyn Expiry>,
    every: Duration,
    /// When the last pass ended (None: one is due now).
    caught_up: Option<std::time::Instant>,
    cursor: i64,
    deleted: usize,
}

impl Pruner {
    fn new(expiry: Arc<dyn Expiry>, every: Duration) -> Pruner {
        Pruner {
            expiry,
            every,
            caught_up: None,
            cursor: 0,
            deleted: 0,
        }
    }

    fn step(&mut self, pool: &PgPool) {
        if self.caught_up.is_some_and(|at| at.elapsed() < self.every) {
            return;
        }
        let Ok(mut conn) = pool.get() else {
            return;
        };
        match self.expiry.delete_piece(&mut conn, self.cursor) {
            Ok((n, next)) => {
                self.deleted += n;
                match next {
                    Some(cursor) => self.cursor = cursor,
                    None => self.finish(),
                }
            }
            Err(e) => {
                log::warn!("deleting {}: {e}", self.expiry.what());
                self.finish();
            }
        }
    }

    fn finish(&mut self) {
        if self.deleted > 0 {
            log::info!("deleted {} {}", self.deleted, self.expiry.what());
        }
        self.deleted = 0;
        self.cursor = 0;
        self.caught_up = Some(std::time::Instant::now());
    }
}

/// Scheduling priority of the worker threads (a nice value: higher yields more).
pub const WORKER_NICE: i32 = 10;

/// Jira work waits in a durable queue and may lag behind a burst; webhook answers may not
/// (PagerDuty gives up after 5 s and disables a failing subscription). So when the CPU is
/// short, the workers' threads yield to the intake's; when it is not, they run at full speed.
fn yield_to_intake() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions; setpriority on our own thread id changes only
        // this thread's nice value, and its failure (a forbidding seccomp filter) is harmless.
        let lowered = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, WORKER_NICE)
        };
        if lowered != 0 {
            log::debug!("could not lower the job worker's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_log_lines_name_the_work_item_as_json_logs_find_it() {
        let job = |payload: serde_json::Value| Job {
            id: 4,
            kind: "jira_create_issue".into(),
            payload,
            state: "running".into(),
            attempts: 1,
            max_attempts: 5,
            run_at: chrono::Utc::now(),
            locked_by: None,
            locked_at: None,
            last_error: None,
            dedup_key: None,
            created_at: chrono::Utc::now(),
            finished_at: None,
            priority: 4,
        };
        let with = job(serde_json::json!({"work_item_id": "wi-20260314092652-c7d71f"}));
        let line = format!("{} dead: Jira returned 400", Named(&with));
        assert_eq!(
            line,
            "job 4 (jira_create_issue, wi-20260314092652-c7d71f) dead: Jira returned 400"
        );
        assert_eq!(
            crate::redact::work_item_id_in(&line),
            Some("wi-20260314092652-c7d71f")
        );
        let without = job(serde_json::json!({}));
        assert_eq!(Named(&without).to_string(), "job 4 (jira_create_issue)");
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let first = backoff(7, 1);
        assert!(first >= Duration::from_millis(800) && first <= Duration::from_millis(1200));
        let fourth = backoff(7, 4);
        assert!(fourth >= Duration::from_millis(6400) && fourth <= Duration::from_millis(9600));
        assert!(backoff(7, 40) <= Duration::from_secs(360));
        assert_ne!(backoff(7, 3), backoff(8, 3));
    }

    #[test]
    fn batches_grow_when_jobs_are_quick_and_shrink_when_slow() {
        let mut size = BatchSize::default();
        assert_eq!(size.next(), 1, "one at a time until a job was timed");
        for _ in 0..20 {
            size.observe(4, Duration::from_millis(4));
        }
        assert!(size.next() >= 20, "1 ms jobs: {}", size.next());
        for _ in 0..3 {
            size.observe(size.next(), Duration::from_millis(400 * size.next() as u64));
        }
        assert_eq!(size.next(), 1, "a slow Jira: one job at a time");
        size.observe(0, Duration::from_secs(5));
        assert_eq!(size.next(), 1);
        for _ in 0..50 {
            size.observe(100, Duration::from_micros(1));
        }
        assert_eq!(size.next(), MAX_BATCH);
    }
}
