//! Group commit for the webhook intake. Request handlers parse and verify on their own threads,
//! then hand the delivery to a writer thread, which takes every delivery waiting at that moment
//! and stores them together (one commit, a handful of statements for the lot). Each
//! request is answered only after what it wrote committed, so an answer still means
//! "stored". Under light load a batch is a single delivery and nothing waits.

use std::sync::atomic::{AtomicUsize, Ordering};
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
        // Writers storing a batch right now.
        let storing = Arc::new(AtomicUsize::new(0));
        for i in 0..writers.max(1) {
            let (pool, ingest, rx) = (pool.clone(), ingest.clone(), rx.clone());
            let storing = storing.clone();
            std::thread::Builder::new()
                .name(format!("ingest-writer-{i}"))
                .spawn(move || writer_loop(&pool, &ingest, &rx, &storing, max_batch.max(1)))
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

/// How long a batch of one waits for a second delivery while another writer is storing:
/// answered clients send their next deliveries within a fraction of a millisecond, and a
/// batch of one costs the database nearly as much as a batch of ten.
const BURST_GAP: Duration = Duration::from_micros(200);

fn writer_loop(
    pool: &PgPool,
    ingest: &IngestService,
    rx: &std::sync::Mutex<Receiver<Job>>,
    storing: &AtomicUsize,
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
            collect(&rx, first, storing, max_batch)
        };
        storing.fetch_add(1, Ordering::SeqCst);
        store(pool, ingest, batch);
        storing.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `first` and whatever is waiting. Two writers otherwise alternate between a batch of one
/// (taken the moment a delivery arrives) and a batch of everything else, so while another
/// writer is storing a lone delivery waits up to [`BURST_GAP`] for company. With no other
/// writer storing, or with company, nothing waits: at 16 connections, longer waits for a
/// larger batch saved CPU but cost more in latency than they gained.
fn collect<T>(rx: &Receiver<T>, first: T, storing: &AtomicUsize, max_batch: usize) -> Vec<T> {
    let mut batch = vec![first];
    let mut waited = false;
    while batch.len() < max_batch {
        if let Ok(job) = rx.try_recv() {
            batch.push(job);
            continue;
        }
        if waited || batch.len() > 1 || storing.load(Ordering::SeqCst) == 0 {
            break;
        }
        waited = true;
        match rx.recv_timeout(BURST_GAP) {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    batch
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn with_no_other_writer_storing_a_batch_is_what_waits_now() {
        let (tx, rx) = mpsc::channel();
        tx.send(2).unwrap();
        let late = tx.clone();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            late.send(3).unwrap();
        });
        let idle = AtomicUsize::new(0);
        assert_eq!(
            collect(&rx, 1, &idle, 8),
            vec![1, 2],
            "3 was not waited for"
        );
        sender.join().unwrap();
    }

    #[test]
    fn while_another_writer_stores_a_lone_delivery_waits_a_little_for_company() {
        let (tx, rx) = mpsc::channel();
        let busy = AtomicUsize::new(1);
        let keep_open = tx.clone();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_micros(20));
            tx.send(2).unwrap();
        });
        let started = Instant::now();
        let batch = collect(&rx, 1, &busy, 8);
        let waited = started.elapsed();
        sender.join().unwrap();
        assert!(
            batch == vec![1, 2] || waited >= BURST_GAP,
            "{batch:?} after {waited:?}"
        );
        assert!(
            waited < Duration::from_millis(40),
            "one short wait: {waited:?}"
        );
        // Nobody arrives: it waits once, then goes alone.
        let started = Instant::now();
        assert_eq!(collect(&rx, 3, &busy, 8), vec![3]);
        assert!(started.elapsed() >= BURST_GAP);
        // With company already, it does not wait.
        keep_open.send(5).unwrap();
        let late = keep_open.clone();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            late.send(6).unwrap();
        });
        assert_eq!(collect(&rx, 4, &busy, 8), vec![4, 5]);
        sender.join().unwrap();
    }

    #[test]
    fn a_full_batch_goes_at_once() {
        let (tx, rx) = mpsc::channel();
        for i in 2..=10 {
            tx.send(i).unwrap();
        }
        let busy = AtomicUsize::new(1);
        assert_eq!(collect(&rx, 1, &busy, 4), vec![1, 2, 3, 4]);
        assert_eq!(rx.try_recv(), Ok(5), "the rest is left for the next batch");
    }
}
