//! Group commit for the webhook intake. Request handlers parse and verify on their own threads,
//! then hand the delivery to a writer thread, which takes every delivery waiting at that moment
//! and stores them together (one commit, a handful of statements for the lot). Each
//! request is answered only after what it wrote committed, so an answer still means
//! "stored". Under light load a batch is a single delivery and nothing waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// While another writer is storing, how long a batch waits for its next delivery: answered
/// clients send their next deliveries within a fraction of a millisecond, and a batch of one
/// costs the database nearly as much as a batch of ten.
const BURST_GAP: Duration = Duration::from_micros(200);

/// The longest a batch waits for company in all.
const MAX_LINGER: Duration = Duration::from_millis(1);

fn writer_loop(
    pool: &PgPool,
    ingest: &IngestService,
    rx: &std::sync::Mutex<Receiver<Job>>,
    storing: &AtomicUsize,
    max_batch: usize,
) {
    let mut expect = 2;
    loop {
        // Only one writer collects at a time, so a batch is everything waiting right now.
        let batch = {
            let Ok(rx) = rx.lock() else { return };
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            collect(&rx, first, storing, max_batch, expect)
        };
        // The clients this batch answers tend to come back together.
        expect = batch.len().max(2);
        storing.fetch_add(1, Ordering::SeqCst);
        store(pool, ingest, batch);
        storing.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `first` and whatever is waiting. While another writer is storing, the database is busy
/// anyway, so the batch waits for company until it is as large as this writer's last one
/// (`expect`: the clients that batch answered, back with their next deliveries), each next
/// delivery at most [`BURST_GAP`] away and [`MAX_LINGER`] in all. Without that, two writers
/// split the clients unevenly: one took the first delivery or two to arrive and left the rest
/// to the other, and half the batches held one or two deliveries. With no other writer
/// storing nothing waits, so a lone client is answered at once.
fn collect<T>(
    rx: &Receiver<T>,
    first: T,
    storing: &AtomicUsize,
    max_batch: usize,
    expect: usize,
) -> Vec<T> {
    let mut batch = vec![first];
    let deadline = Instant::now() + MAX_LINGER;
    while batch.len() < max_batch {
        if let Ok(job) = rx.try_recv() {
            batch.push(job);
            continue;
        }
        let now = Instant::now();
        if batch.len() >= expect || storing.load(Ordering::SeqCst) == 0 || now >= deadline {
            break;
        }
        match rx.recv_timeout(BURST_GAP.min(deadline - now)) {
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

    /// Far past any wait `collect` makes.
    const NOT_WAITED_FOR: Duration = Duration::from_secs(2);

    /// Sends `values` from another thread, `gap` apart, after one `gap`.
    fn send_later(
        tx: &Sender<i32>,
        values: Vec<i32>,
        gap: Duration,
    ) -> std::thread::JoinHandle<()> {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for v in values {
                std::thread::sleep(gap);
                if tx.send(v).is_err() {
                    return;
                }
            }
        })
    }

    #[test]
    fn with_no_other_writer_storing_a_batch_is_what_waits_now() {
        let (tx, rx) = mpsc::channel();
        tx.send(2).unwrap();
        // Late enough that only a wait (not a slow machine) could take it in; not joined, so
        // the test does not sit out the delay.
        let _late = send_later(&tx, vec![3], NOT_WAITED_FOR);
        let idle = AtomicUsize::new(0);
        assert_eq!(
            collect(&rx, 1, &idle, 8, 8),
            vec![1, 2],
            "3 was not waited for"
        );
    }

    #[test]
    fn while_another_writer_stores_a_batch_waits_for_as_many_as_last_time() {
        let (tx, rx) = mpsc::channel();
        let busy = AtomicUsize::new(1);
        let sender = send_later(&tx, vec![2, 3, 4], Duration::from_micros(20));
        let started = Instant::now();
        let batch = collect(&rx, 1, &busy, 8, 3);
        let waited = started.elapsed();
        sender.join().unwrap();
        // On a slow machine a gap can pass BURST_GAP; then the batch went with what it had.
        assert!(
            batch == vec![1, 2, 3] || (batch.len() < 3 && waited >= BURST_GAP),
            "{batch:?} after {waited:?}"
        );
        assert!(waited < MAX_LINGER * 20, "short waits only: {waited:?}");
        while rx.try_recv().is_ok() {}

        // Nobody arrives: it waits one gap, then goes alone.
        let started = Instant::now();
        assert_eq!(collect(&rx, 5, &busy, 8, 4), vec![5]);
        assert!(started.elapsed() >= BURST_GAP);

        // As many as expected already: it does not wait for more.
        tx.send(7).unwrap();
        let _late = send_later(&tx, vec![8], NOT_WAITED_FOR);
        assert_eq!(collect(&rx, 6, &busy, 8, 2), vec![6, 7]);
    }

    #[test]
    fn a_batch_waits_for_company_no_longer_than_max_linger() {
        let (tx, rx) = mpsc::channel();
        let busy = AtomicUsize::new(1);
        // A steady trickle, each delivery well inside BURST_GAP of the last.
        // It lasts at least 2,000 x 50 us = 100 ms, a hundred times MAX_LINGER.
        let sender = send_later(&tx, (2..2002).collect(), BURST_GAP / 4);
        let started = Instant::now();
        let batch = collect(&rx, 1, &busy, 5000, 5000);
        let waited = started.elapsed();
        drop(rx);
        sender.join().unwrap();
        // (A gap past BURST_GAP on a loaded machine ends the wait sooner; a descheduled
        // thread may overrun MAX_LINGER, but not by the trickle's length.)
        assert!(waited < MAX_LINGER * 50, "it stopped waiting: {waited:?}");
        assert!(batch.len() < 2001, "it did not wait for the whole trickle");
    }

    #[test]
    fn a_full_batch_goes_at_once() {
        let (tx, rx) = mpsc::channel();
        for i in 2..=10 {
            tx.send(i).unwrap();
        }
        let busy = AtomicUsize::new(1);
        assert_eq!(collect(&rx, 1, &busy, 4, 8), vec![1, 2, 3, 4]);
        assert_eq!(rx.try_recv(), Ok(5), "the rest is left for the next batch");
    }
}
