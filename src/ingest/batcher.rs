//! Group commit for the webhook intake. Request handlers parse and verify on their own threads,
//! then hand the delivery to a writer thread, which takes every delivery waiting at that moment
//! and stores them together (one commit, a handful of statements for the lot). Each
//! request is answered only after what it wrote committed, so an answer still means
//! "stored". Under light load a batch is a single delivery and nothing waits.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::db::PgPool;
use crate::foreground::Foreground;

use super::{Delivery, IngestError, IngestOutcome, IngestService};

type Reply = oneshot::Sender<Result<IngestOutcome, IngestError>>;

struct Job {
    delivery: Delivery,
    reply: Reply,
}

/// Handle to the writer threads; cheap to clone.
#[derive(Clone)]
pub struct IngestBatcher {
    tx: Sender<Job>,
    /// Deliveries waiting for their answer count as foreground work.
    foreground: Arc<Foreground>,
}

impl IngestBatcher {
    /// Starts `writers` threads, each storing up to `max_batch` deliveries at a time.
    pub fn start(
        pool: PgPool,
        ingest: Arc<IngestService>,
        foreground: Arc<Foreground>,
        writers: usize,
        max_batch: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..writers.max(1) {
            let (pool, ingest, rx) = (pool.clone(), ingest.clone(), rx.clone());
            std::thread::Builder::new()
                .name(format!("ingest-writer-{i}"))
                .spawn(move || writer_loop(&pool, &ingest, &rx, max_batch.max(1)))
                .expect("spawning an ingest writer");
        }
        IngestBatcher { tx, foreground }
    }

    /// Stores one delivery with whatever else is waiting; resolves once it is committed.
    pub async fn submit(&self, delivery: Delivery) -> Result<IngestOutcome, IngestError> {
        let _in_flight = self.foreground.enter();
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { delivery, reply })
            .map_err(|_| IngestError::Unavailable("the intake is shutting down".into()))?;
        answer
            .await
            .map_err(|_| IngestError::Unavailable("the intake writer stopped".into()))?
    }
}

fn writer_loop(
    pool: &PgPool,
    ingest: &IngestService,
    rx: &std::sync::Mutex<Receiver<Job>>,
    max_batch: usize,
) {
    loop {
        // Only one writer collects at a time, so a batch is everything waiting right now.
        let batch = {
            let Ok(rx) = rx.lock() else { return };
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        store(pool, ingest, batch);
    }
}

fn store(pool: &PgPool, ingest: &IngestService, batch: Vec<Job>) {
    let (deliveries, replies): (Vec<Delivery>, Vec<Reply>) =
        batch.into_iter().map(|j| (j.delivery, j.reply)).unzip();
    let mut conn = match pool.get() {
        Ok(conn) => conn,
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(IngestError::Unavailable(e.to_string())));
            }
            return;
        }
    };
    let started = std::time::Instant::now();
    let stored = ingest.store_batch(&mut conn, &deliveries);
    log::debug!(
        "stored a batch of {} in {:?}",
        deliveries.len(),
        started.elapsed()
    );
    match stored {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) if deliveries.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(e) => {
            // One bad delivery must not fail the others: store each on its own.
            log::warn!(
                "a batch of {} deliveries failed ({e}); storing them one by one",
                deliveries.len()
            );
            for (delivery, reply) in deliveries.iter().zip(replies) {
                let result = ingest
                    .store_batch(&mut conn, std::slice::from_ref(delivery))
                    .map(|mut outcomes| outcomes.remove(0));
                let _ = reply.send(result);
            }
        }
    }
}
