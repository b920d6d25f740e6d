//! Group commit. Every write transaction runs on one writer thread (redb
//! has one writer at a time anyway). When more work is already queued
//! behind a transaction, it commits without an fsync (`Durability::None`);
//! the last one of such a run commits with `Durability::Immediate`, which
//! makes the whole run durable with one fsync. Nobody is answered before
//! that durable commit: a caller whose transaction committed early waits
//! for the run's end. Each transaction still commits or rolls back on its
//! own, so one failing closure never takes its neighbours with it.
//!
//! With PostgreSQL a run is one SQL transaction that first takes the
//! replicas' shared write lock; each closure runs inside a savepoint that is
//! released or rolled back on its own, and the run's `COMMIT` is its one
//! durable commit.
//!
//! Under light load a run is one transaction and this is exactly a plain
//! durable commit; under load, commits per second stop being bounded by
//! fsyncs (or database round trips) per second.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use redb::{Database, Durability};

use super::error::StoreError;
use super::postgres::{PgConn, Postgres};
use super::redb_file::{RedbFile, REOPENING};

/// Most transactions made durable by one fsync; bounds a caller's wait.
const MAX_RUN: usize = 64;

/// Why a run (or a transaction in it) was not made durable.
#[derive(Debug, Clone)]
pub(crate) struct WriteFailure {
    /// The database is out of reach: the client may retry later.
    pub(crate) unavailable: bool,
    pub(crate) reason: String,
}

impl WriteFailure {
    fn of(error: &StoreError) -> WriteFailure {
        WriteFailure {
            unavailable: error.is_unavailable(),
            reason: error.to_string(),
        }
    }
}

impl From<WriteFailure> for StoreError {
    fn from(failure: WriteFailure) -> Self {
        if failure.unavailable {
            StoreError::Unavailable {
                what: "the PostgreSQL database".into(),
                reason: failure.reason,
            }
        } else {
            StoreError::Writer(failure.reason)
        }
    }
}

/// Called once the run a transaction belongs to is durable (`Ok`) or could
/// not be made durable (`Err`, with the reason).
pub(crate) type Finisher = Box<dyn FnOnce(Result<(), WriteFailure>) + Send>;

/// What one transaction of a run writes through.
pub(crate) enum Slot<'a> {
    Redb {
        database: &'a Database,
        durability: Durability,
    },
    /// A savepoint is open on the connection of the run.
    Postgres {
        conn: &'a Arc<PgConn>,
        replica_id: &'a str,
    },
    /// The run could not start: the transaction fails with this.
    Failed(&'a WriteFailure),
}

/// A transaction to run in a slot; returns its finisher and whether it
/// committed.
pub(crate) type Job = Box<dyn FnOnce(&Slot<'_>) -> (Finisher, bool) + Send>;

/// The database the writer writes to.
pub(crate) enum Engine {
    Redb(Arc<RedbFile>),
    Postgres(Arc<Postgres>),
}

pub(crate) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// Runs made durable so far (for tests and figures).
    runs: Arc<std::sync::atomic::AtomicU64>,
}

impl Writer {
    pub(crate) fn start(engine: Engine) -> std::io::Result<Writer> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let runs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = runs.clone();
        let thread = std::thread::Builder::new()
            .name("authd-store-writer".into())
            .spawn(move || run(&engine, &queue, &counter))?;
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

fn run(engine: &Engine, queue: &mpsc::Receiver<Job>, runs: &std::sync::atomic::AtomicU64) {
    let mut connection: Option<Arc<PgConn>> = None;
    // A run failed, perhaps for want of space: before the next one, see
    // whether the file must be (and now can be) opened again.
    let mut suspect = false;
    while let Ok(first) = queue.recv() {
        runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match engine {
            Engine::Redb(file) => {
                if suspect {
                    suspect = file.recover_if_latched();
                }
                if !run_redb(file, first, queue) {
                    suspect = file.recover_if_latched();
                }
            }
            Engine::Postgres(postgres) => run_postgres(postgres, &mut connection, first, queue),
        }
    }
}

/// The next job of a run, if one is queued and the run has room.
fn next_job(queue: &mpsc::Receiver<Job>, done: usize) -> Option<Job> {
    if done + 1 < MAX_RUN {
        queue.try_recv().ok()
    } else {
        None
    }
}

/// Runs a job; a panicking closure loses its own transaction (and its
/// caller gets an error), not the writer.
fn run_job(job: Job, slot: &Slot<'_>) -> Option<(Finisher, bool)> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(slot))).ok()
}

/// Runs `first` and what is queued behind it as one durable run; returns
/// whether every transaction of it committed durably.
fn run_redb(file: &RedbFile, first: Job, queue: &mpsc::Receiver<Job>) -> bool {
    let Ok(database) = file.database() else {
        // The file could not be opened again yet: the run fails as a full
        // disk, and the next one tries again.
        fail_run(
            first,
            queue,
            &WriteFailure {
                unavailable: false,
                reason: REOPENING.into(),
            },
        );
        return false;
    };
    let mut all_committed = true;
    let mut finishers = Vec::new();
    let mut undurable = false;
    let mut next = Some(first);
    while let Some(job) = next.take() {
        let more = next_job(queue, finishers.len());
        let durability = if more.is_some() {
            Durability::None
        } else {
            Durability::Immediate
        };
        if let Some((finisher, committed)) = run_job(
            job,
            &Slot::Redb {
                database: &database,
                durability,
            },
        ) {
            if committed {
                undurable = more.is_some();
            }
            all_committed &= committed;
            finishers.push(finisher);
        } else {
            all_committed = false;
        }
        next = more;
    }
    // The last transaction of the run failed after earlier ones
    // committed without an fsync: an empty durable commit covers them.
    let durable = if undurable { flush(&database) } else { Ok(()) };
    drop(database);
    for finish in finishers {
        finish(durable.clone());
    }
    all_committed && durable.is_ok()
}

/// Fails `first` and the jobs queued behind it (up to a run's length)
/// with `failure`, writing nothing.
fn fail_run(first: Job, queue: &mpsc::Receiver<Job>, failure: &WriteFailure) {
    let mut finishers = Vec::new();
    let mut next = Some(first);
    while let Some(job) = next.take() {
        next = next_job(queue, finishers.len());
        if let Some((finisher, _)) = run_job(job, &Slot::Failed(failure)) {
            finishers.push(finisher);
        }
    }
    for finish in finishers {
        finish(Err(failure.clone()));
    }
}

fn flush(database: &Database) -> Result<(), WriteFailure> {
    let failed = |error: &dyn std::fmt::Display| WriteFailure {
        unavailable: false,
        reason: error.to_string(),
    };
    let txn = database.begin_write().map_err(|e| failed(&e))?;
    txn.commit().map_err(|e| failed(&e))
}

/// The writer's connection, opened again if it was lost, with a write run
/// begun on it.
fn begin_run(
    postgres: &Postgres,
    connection: &mut Option<Arc<PgConn>>,
) -> Result<Arc<PgConn>, StoreError> {
    let conn = match connection.take() {
        Some(conn) if !conn.is_closed() => conn,
        _ => Arc::new(postgres.connect()?),
    };
    conn.begin_write_run()?;
    *connection = Some(conn.clone());
    Ok(conn)
}

fn run_postgres(
    postgres: &Postgres,
    connection: &mut Option<Arc<PgConn>>,
    first: Job,
    queue: &mpsc::Receiver<Job>,
) {
    let mut finishers = Vec::new();
    let conn = match begin_run(postgres, connection) {
        Ok(conn) => conn,
        Err(error) => {
            postgres.note_failure(&error);
            fail_run(first, queue, &WriteFailure::of(&error));
            return;
        }
    };
    let mut broken: Option<StoreError> = None;
    let mut next = Some(first);
    while let Some(job) = next.take() {
        next = next_job(queue, finishers.len());
        if let Some(error) = &broken {
            let failure = WriteFailure::of(error);
            if let Some((finisher, _)) = run_job(job, &Slot::Failed(&failure)) {
                finishers.push(finisher);
            }
            continue;
        }
        if let Err(error) = conn.batch("SAVEPOINT job") {
            let failure = WriteFailure::of(&error);
            broken = Some(error);
            if let Some((finisher, _)) = run_job(job, &Slot::Failed(&failure)) {
                finishers.push(finisher);
            }
            continue;
        }
        let slot = Slot::Postgres {
            conn: &conn,
            replica_id: &postgres.replica_id,
        };
        let committed = match run_job(job, &slot) {
            Some((finisher, committed)) => {
                finishers.push(finisher);
                committed
            }
            None => false,
        };
        let end = if committed {
            "RELEASE SAVEPOINT job"
        } else {
            "ROLLBACK TO SAVEPOINT job"
        };
        if let Err(error) = conn.batch(end) {
            broken = Some(error);
        }
    }
    let durable = match broken {
        Some(error) => {
            let _ = conn.batch("ROLLBACK");
            Err(error)
        }
        None => conn.batch("COMMIT"),
    };
    let durable = durable.map_err(|error| {
        postgres.note_failure(&error);
        WriteFailure::of(&error)
    });
    for finish in finishers {
        finish(durable.clone());
    }
}
