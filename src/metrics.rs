//! Prometheus metrics, in the text exposition format at `GET /metrics`. Counters and
//! histograms are kept in process as things happen; the gauges read from the database
//! (queue depth and age, dead jobs, unassigned items, pool use) are filled in at scrape time.

use std::sync::OnceLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Webhooks by source (`pagerduty`, `jira`) and outcome (`success`, `duplicate`, `updated`,
    /// `ignored`, or the error code).
    pub webhooks: IntCounterVec,
    /// Seconds to answer a PagerDuty webhook.
    pub intake_seconds: Histogram,
    /// Decisions by outcome: `assigned`, `unassigned`, `fallback`, `recommended`.
    pub decisions: IntCounterVec,
    /// The confidence of decisions that named someone.
    pub decision_confidence: Histogram,
    /// Outbound jobs by kind and result (`done`, `retry`, `wait`, `dead`).
    pub jobs: IntCounterVec,
    /// Seconds per job attempt, by kind.
    pub job_seconds: HistogramVec,
    /// Learner outcomes by kind (`resolved`, `handed_off`, `escalated`, ...).
    pub outcomes: IntCounterVec,
    /// Jobs by state, read at scrape time.
    pub jobs_by_state: IntGaugeVec,
    /// Seconds the oldest runnable queued job of each severity has waited, read at scrape time.
    pub queue_age: IntGaugeVec,
    /// Work items waiting unassigned, read at scrape time.
    pub unassigned: IntGauge,
    /// Pool connections by state (`idle`, `in_use`).
    pub pool: IntGaugeVec,
    /// Escalations by result: `escalated` (to a backup) or `exhausted` (no backup left).
    pub escalations: IntCounterVec,
    /// Failed calls to Jira and PagerDuty, by API (`jira`, `pagerduty`) and HTTP status
    /// (`none` when no response arrived).
    pub api_errors: IntCounterVec,
    /// On-call list fetches by result (`ok`, `error`).
    pub on_call_fetches: IntCounterVec,
    /// Age of the oldest on-call list in use, read at scrape time (0 without PagerDuty).
    pub on_call_age: IntGauge,
    /// 1, labelled with the version and the routing model's version.
    pub build_info: IntGaugeVec,
    /// Resident memory and open file descriptors of the process, read at scrape time.
    pub resident_memory: IntGauge,
    pub open_fds: IntGauge,
}

impl Metrics {
    fn new() -> Metrics {
        let registry =
            Registry::new_custom(Some("goliath".into()), None).expect("a valid metric prefix");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let single = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let latency = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        let intake_seconds = Histogram::with_opts(
            HistogramOpts::new("intake_seconds", "Seconds to answer a PagerDuty webhook")
                .buckets(latency.clone()),
        )
        .expect("valid metric");
        registry
            .register(Box::new(intake_seconds.clone()))
            .expect("registered once");
        let decision_confidence = Histogram::with_opts(
            HistogramOpts::new(
                "decision_confidence",
                "Confidence of the decisions that named someone",
            )
            .buckets(vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(decision_confidence.clone()))
            .expect("registered once");
        let job_seconds = HistogramVec::new(
            HistogramOpts::new("job_attempt_seconds", "Seconds per outbound job attempt")
                .buckets(latency),
            &["kind"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(job_seconds.clone()))
            .expect("registered once");
        let unassigned = IntGauge::new(
            "unassigned_work_items",
            "Work items waiting for someone eligible",
        )
        .expect("valid metric");
        registry
            .register(Box::new(unassigned.clone()))
            .expect("registered once");
        Metrics {
            webhooks: counter(
                "webhooks_total",
                "Webhooks received, by source and outcome",
                &["source", "outcome"],
            ),
            decisions: counter("decisions_total", "Decisions, by outcome", &["outcome"]),
            jobs: counter(
                "jobs_total",
                "Outbound job attempts, by kind and result",
                &["kind", "result"],
            ),
            outcomes: counter(
                "learner_outcomes_total",
                "Outcomes the learner applied, by kind",
                &["kind"],
            ),
            jobs_by_state: gauge("jobs", "Jobs by state", &["state"]),
            queue_age: gauge(
                "job_queue_age_seconds",
                "Seconds the oldest runnable queued job has waited, by its work item's severity",
                &["severity"],
            ),
            pool: gauge(
                "db_pool_connections",
                "Database pool connections, by state",
                &["state"],
            ),
            escalations: counter(
                "escalations_total",
                "Escalations past an owner's deadline, by result (escalated, exhausted)",
                &["result"],
            ),
            api_errors: counter(
                "api_errors_total",
                "Failed calls to Jira and PagerDuty, by API and HTTP status (none: no answer)",
                &["api", "status"],
            ),
            on_call_fetches: counter(
                "on_call_fetches_total",
                "On-call list fetches from PagerDuty, by result",
                &["result"],
            ),
            on_call_age: single(
                "on_call_list_age_seconds",
                "Age of the oldest on-call list in use (0 without PagerDuty's API)",
            ),
            build_info: {
                let g = gauge(
                    "build_info",
                    "Always 1: the running version and routing model",
                    &["version", "model_version"],
                );
                g.with_label_values(&[env!("CARGO_PKG_VERSION"), crate::routing::MODEL_VERSION])
                    .set(1);
                g
            },
            resident_memory: single(
                "process_resident_memory_bytes",
                "Resident memory of the process",
            ),
            open_fds: single("process_open_fds", "Open file descriptors of the process"),
            intake_seconds,
            decision_confidence,
            job_seconds,
            unassigned,
            registry,
        }
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = vec![];
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Counts a failed call to `api` that answered `status` (None: no answer).
pub fn api_error(api: &str, status: Option<u16>) {
    let status = status.map_or_else(|| "none".to_string(), |s| s.to_string());
    metrics()
        .api_errors
        .with_label_values(&[api, &status])
        .inc();
}

/// The process's resident memory in bytes and its open file descriptors, from `/proc` (None
/// where there is no `/proc`).
pub fn process_usage() -> Option<(i64, i64)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a constant of the system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as i64;
    Some((pages * i64::from(page.max(1) as i32), fds))
}
