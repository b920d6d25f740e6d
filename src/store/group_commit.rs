//! Group commit. Every write transaction runs on one writer thread (redb
//! has one writer at a time anyway). When more work is already queued
//! behind a transaction, it commits without an fsync (`Durability::None`);
//! the last one of such a run commits with `Durability::Immediate`, which
//! makes the whole run durable with one fsync. Nobody is answered before
//! that durable commit: a caller whose transaction committed early waits
//! for the run's end. Each transaction still commits or rolls back on its
//! own, so one failing closure never takes its neighbours with it.
//!
//! Under light load a run is one transaction and this is exactly a plain
//! durable commit; under load, commits per second stop being bounded by
//! fsyncs per second.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use redb::{Database, Durability};

use super::error::StoreError;

/// Most transactions made durable by one fsync; bounds a caller's wait.
const MAX_RUN: usize = 64;

/// Called once the run a transaction belongs to is durable (`Ok`) or could
/// not be made durable (`Err`, with the reason).
pub(crate) type Finisher = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A transaction to run with the given durability; returns its finisher and
/// whether it committed.
pub(crate) type Job = Box<dyn FnOnce(&Database, Durability) -> (Finisher, bool) + Send>;

pub(crate) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// Runs made durable so far (for tests and figures).
    runs: Arc<std::sync::atomic::AtomicU64>,
}

impl Writer {
    pub(crate) fn start(database: Arc<Database>) -> std::io::Result<Writer> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let runs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = runs.clone();
        let thread = std::thread::Builder::new()
            .name("authd-store-writer".into())
            .spawn(move || run(&database, &queue, &counter))?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
            runs,
        })
    }

    pub(crate) fn runs(&self) -> u64 {
        self.runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| StoreError::Writer("the store's writer has stopped".into()))
    }
}

impl Drop for Writer {
    /// Finishes queued work and stops the thread, so the database file is
    /// closed (and its lock released) when the store is dropped.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(database: &Database, queue: &mpsc::Receiver<Job>, runs: &std::sync::atomic::AtomicU64) {
    while let Ok(first) = queue.recv() {
        runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut finishers = Vec::new();
        let mut undurable = false;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            let more = if finishers.len() + 1 < MAX_RUN {
                queue.try_recv().ok()
            } else {
                None
            };
            let durability = if more.is_some() {
                Durability::None
            } else {
                Durability::Immediate
            };
            // A panicking closure loses its own transaction (and its caller
            // gets an error), not the writer.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                job(database, durability)
            }));
            if let Ok((finisher, committed)) = outcome {
                if committed {
                    undurable = more.is_some();
                }
                finishers.push(finisher);
            }
            next = more;
        }
        // The last transaction of the run failed after earlier ones
        // committed without an fsync: an empty durable commit covers them.
        let durable = if undurable { flush(database) } else { Ok(()) };
        for finish in finishers {
            finish(durable.clone());
        }
    }
}

fn flush(database: &Database) -> Result<(), String> {
    let txn = database.begin_write().map_err(|e| e.to_string())?;
    txn.commit().map_err(|e| e.to_string())
}
