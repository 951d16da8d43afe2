//! Wiring: builds the modules once and holds them for the HTTP handlers and workers.

use std::sync::Arc;

use crate::config::Config;
use crate::db::PgPool;
use crate::executor::worker::Waker;
use crate::ingest::IngestService;

/// Everything a request handler needs, built once at start.
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    pub ingest: Arc<IngestService>,
    pub waker: Arc<Waker>,
}

impl AppState {
    pub fn new(config: Config, pool: PgPool) -> AppState {
        let config = Arc::new(config);
        let ingest = Arc::new(IngestService::new(config.pagerduty.clone(), None));
        AppState {
            config,
            pool,
            ingest,
            waker: Arc::new(Waker::default()),
        }
    }

    /// Tells the job workers there is new work.
    pub fn wake_workers(&self) {
        self.waker.wake();
    }
}
