//! Wiring: builds the modules once, connects them through their traits, and holds them for
//! the HTTP handlers and the job workers.

use std::sync::Arc;

use crate::config::Config;
use crate::config::PagerDutyConfig;
use crate::db::PgPool;
use crate::decision::DecisionService;
use crate::escalation::Escalator;
use crate::executor::Executor;
use crate::foreground::Foreground;
use crate::housekeeping::Housekeeper;
use crate::ingest::batcher::IngestBatcher;
use crate::ingest::jira::JiraIntake;
use crate::ingest::lifecycle::Lifecycle;
use crate::ingest::retention::OldDeliveries;
use crate::ingest::IngestService;
use crate::jira::{HttpJiraClient, JiraApi, JiraConnection};
use crate::jobs::queue::FinishedJobs;
use crate::jobs::{Expiry, JobHandler, Waker, WorkerOptions, Workers};
use crate::learner::LearnerService;
use crate::outbox::Outbox;
use crate::pagerduty::{
    HttpPagerDutyClient, OnCallCache, OnCallRefresher, PagerDutyApi, PagerDutyClientConfig,
    PagerDutyWriter,
};
use crate::routing::ModelParams;

/// Everything a request handler needs, built once at start.
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    pub ingest: Arc<IngestService>,
    /// Group-commit writers the PagerDuty webhook hands deliveries to.
    pub intake: IngestBatcher,
    pub jira_intake: Arc<JiraIntake>,
    /// PagerDuty incident updates after the trigger.
    pub lifecycle: Arc<Lifecycle>,
    /// Owners who did not act in time lose the item to a backup.
    pub escalator: Arc<Escalator>,
    pub decision: Arc<DecisionService>,
    pub learner: Arc<LearnerService>,
    pub executor: Arc<Executor>,
    /// The jobs a decision queues (Jira, and PagerDuty when configured) and who runs them.
    pub outbox: Arc<Outbox>,
    /// PagerDuty's REST API, when `PAGERDUTY_API_TOKEN` is set.
    pub pagerduty: Option<Arc<dyn PagerDutyApi>>,
    /// Who is on call per escalation policy (with the API).
    pub on_call: Option<Arc<OnCallCache>>,
    pub waker: Arc<Waker>,
    /// Webhooks in flight, which the job workers make way for.
    pub foreground: Arc<Foreground>,
}

impl AppState {
    /// Connects intake -> decision -> executor, and Jira intake -> learner.
    pub fn new(config: Config, pool: PgPool, jira: Arc<dyn JiraApi>) -> AppState {
        let config = Arc::new(config);
        let params = ModelParams::default();
        let executor = Arc::new(Executor::new(config.jira.clone(), jira.clone()));
        let pagerduty = pagerduty_client(&config.pagerduty);
        let on_call = pagerduty
            .as_ref()
            .map(|api| Arc::new(OnCallCache::new(api.clone(), ON_CALL_TTL)));
        let outbox = Arc::new(Outbox::new(
            executor.clone(),
            pagerduty.as_ref().map(|api| {
                Arc::new(PagerDutyWriter::new(
                    api.clone(),
                    jira,
                    config.pagerduty.clone(),
                ))
            }),
            config.pagerduty.clone(),
        ));
        let decision = Arc::new(
            DecisionService::new(params.clone(), Some(outbox.clone()))
                .with_fallback(config.fallback.clone())
                .with_escalation(config.escalation.clone())
                .with_modes(config.modes.clone())
                .with_on_call(config.pagerduty.clone(), on_call.clone()),
        );
        let learner: Arc<LearnerService> = Arc::new(LearnerService::new(params));
        let ingest = Arc::new(IngestService::new(
            config.pagerduty.clone(),
            Some(decision.clone()),
        ));
        let jira_intake = Arc::new(JiraIntake::new(
            config.jira.webhook_secrets.clone(),
            config.jira.allow_unsigned,
            config.jira.waiting_statuses.clone(),
            learner.clone(),
        ));
        let lifecycle = Arc::new(Lifecycle::new(
            config.pagerduty.clone(),
            learner.clone(),
            config.jira.close_on_resolve,
        ));
        let escalator = Arc::new(Escalator::new(
            learner.clone(),
            config.escalation.clone(),
            config.pagerduty.clone(),
        ));
        let foreground = Arc::new(Foreground::default());
        let intake = IngestBatcher::start(
            pool.clone(),
            ingest.clone(),
            foreground.clone(),
            config.ingest_writers,
            128,
        );
        AppState {
            config,
            pool,
            intake,
            ingest,
            jira_intake,
            lifecycle,
            escalator,
            decision,
            learner,
            executor,
            outbox,
            pagerduty,
            on_call,
            waker: Arc::new(Waker::default()),
            foreground,
        }
    }

    /// Tells the job workers there is new work.
    pub fn wake_workers(&self) {
        self.waker.wake();
    }

    /// Starts the thread that assigns waiting (unassigned) work items as people free up and
    /// escalates items whose owner did not act in time.
    pub fn spawn_housekeeping(&self, every: std::time::Duration) -> Housekeeper {
        let waker = self.waker.clone();
        Housekeeper::spawn(
            self.pool.clone(),
            self.decision.clone(),
            self.escalator.clone(),
            every,
            move || waker.wake(),
        )
    }

    /// Starts the thread that keeps on-call lists fresh (None without PagerDuty's API). The
    /// policies of the items still open are asked for at once, so their lists are read right
    /// after a start rather than at the first incident that needs one (a decision never waits;
    /// an item decided before its list arrived is decided again once it does).
    pub fn spawn_on_call_refresher(&self) -> Option<OnCallRefresher> {
        let cache = self.on_call.as_ref()?;
        match self
            .pool
            .get()
            .map_err(anyhow::Error::from)
            .and_then(|mut conn| Ok(crate::decision::open_escalation_policies(&mut conn)?))
        {
            Ok(policies) => cache.want(policies),
            Err(e) => log::warn!("reading the open items' escalation policies: {e:#}"),
        }
        Some(cache.spawn_refresher())
    }

    /// Starts the background Jira workers.
    pub fn spawn_workers(&self, opts: WorkerOptions) -> Workers {
        Workers::spawn(
            self.pool.clone(),
            self.outbox.clone() as Arc<dyn JobHandler>,
            self.waker.clone(),
            self.foreground.clone(),
            opts,
        )
    }
}

/// How long an on-call list is used before it is read again.
const ON_CALL_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The PagerDuty REST client, when a token is configured.
fn pagerduty_client(config: &PagerDutyConfig) -> Option<Arc<dyn PagerDutyApi>> {
    let api = config.api.as_ref()?;
    match HttpPagerDutyClient::new(PagerDutyClientConfig {
        base_url: api.url.clone(),
        token: api.token.clone(),
        from_email: api.from_email.clone(),
        timeout: std::time::Duration::from_secs(10),
    }) {
        Ok(client) => Some(Arc::new(client)),
        Err(e) => {
            log::error!("PagerDuty API disabled: {e}");
            None
        }
    }
}

/// What the workers delete once it is past its configured retention.
pub fn expiries(config: &Config) -> Vec<Arc<dyn Expiry>> {
    let mut expiries: Vec<Arc<dyn Expiry>> = vec![];
    if let Some(age) = config.job_retention {
        expiries.push(Arc::new(FinishedJobs { age }));
    }
    if let Some(age) = config.delivery_retention {
        expiries.push(Arc::new(OldDeliveries::new(age)));
    }
    expiries
}

/// The Jira client for a configured Jira (Cloud with e-mail and API token, or Data Center with
/// a bearer token), or for the simulator at `base_url`.
pub fn jira_client(
    config: &Config,
    simulator_url: Option<&str>,
) -> anyhow::Result<Arc<dyn JiraApi>> {
    let j = &config.jira;
    let client_config = match (&j.base_url, simulator_url) {
        (Some(url), _) => match (&j.email, &j.api_token, &j.bearer_token) {
            (Some(email), Some(token), _) => JiraConnection::cloud(url, email, token),
            (_, _, Some(bearer)) => JiraConnection::data_center(url, bearer),
            _ => anyhow::bail!(
                "JIRA_BASE_URL needs JIRA_EMAIL and JIRA_API_TOKEN, or JIRA_BEARER_TOKEN"
            ),
        },
        (None, Some(sim)) => JiraConnection::cloud(sim, "goliath@localhost", "simulator"),
        (None, None) => anyhow::bail!("no Jira configured and no simulator running"),
    };
    Ok(Arc::new(HttpJiraClient::new(client_config)?))
}
