//! The only module that knows redb exists. It owns the database file, every
//! table in it, the schema version and its migrations.
//!
//! The store has no rules about content: it persists and finds records, and
//! leaves deciding what is allowed to the service layer. Every write is
//! durable before `Store::write` returns `Ok`, so the change survives a
//! `kill -9` or a power cut; concurrent writes share one fsync (see
//! `group_commit`).
//!
//! All methods are blocking. Async callers run them with
//! `tokio::task::spawn_blocking` and never hold a transaction across `.await`.

mod backup;
mod copy;
mod due;
mod error;
mod group_commit;
mod memo;
mod migrations;
mod postgres;
mod reader;
mod records;
mod redb_file;
mod sweep;
mod tables;
mod txn;

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};

use redb_file::RedbFile;

pub use backup::{backup_closed_file, inspect_backup, restore, BackupInfo};
pub use copy::TableCopy;
pub use due::Sweep;
pub use error::{StoreError, StoreResult};
pub use migrations::CURRENT_SCHEMA_VERSION;
pub use postgres::SharedCounts;
pub use records::{
    Approval, AuditQuery, AuthorizationCode, CeremonyKind, Consent, DeviceAuthorization,
    DeviceStatus, MfaChallenge, MfaFactors, PersonalAccessToken, RecoveryPurpose, RecoveryToken,
    RefreshToken, StoredSigningKey, WebauthnCeremony, WebauthnCredential, WebauthnKind,
};
pub use sweep::SweepPage;
pub use txn::{Queries, ReadTxn, WriteTxn};
use txn::{ReadInner, WriteInner};

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::audit::AuditRecord;
use crate::clock::UnixSeconds;
use tables::{read_json, ALL_TABLES, META};

/// How many audit records a slow live subscriber may fall behind before it
/// misses some (it is told how many).
const AUDIT_FEED_CAPACITY: usize = 1024;

pub struct Store {
    engine: Backend,
    writer: group_commit::Writer,
    path: PathBuf,
    audit_feed: broadcast::Sender<Arc<AuditRecord>>,
    /// Counts changes of the signing keys announced by other replicas.
    keys_changed: tokio::sync::watch::Sender<u64>,
    cache_bytes: usize,
    /// Bytes of rows `warm_cache` has read so far.
    warmed_bytes: AtomicU64,
    warm_phase: AtomicU8,
}

/// Where the tables are.
enum Backend {
    /// One redb file, this process's alone.
    Redb(Arc<RedbFile>),
    /// A PostgreSQL database that several replicas may share.
    Postgres(Arc<postgres::Postgres>),
}

/// Which backend a store runs on, and how it is, for `/v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackendStatus {
    /// `"redb"` or `"postgres"`.
    pub kind: &'static str,
    /// The file, or the database URL without its password.
    pub location: String,
    /// Whether the last attempt to reach the database succeeded (always
    /// true for a file).
    pub reachable: bool,
    /// Whether this replica runs the background work (always true for a
    /// file; with PostgreSQL, exactly one replica does).
    pub leader: bool,
}

const WARM_NOT_STARTED: u8 = 0;
const WARM_RUNNING: u8 = 1;
const WARM_DONE: u8 = 2;

/// The page cache, for `/v1/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CacheStatus {
    pub ceiling_bytes: u64,
    /// Bytes of rows read into it since start by the warm-up.
    pub warmed_bytes: u64,
    /// `"not_started"`, `"warming"` or `"done"`.
    pub warm_up: &'static str,
}

/// Rows in the tables an operator asks about, for `/v1/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TableCounts {
    pub orgs: u64,
    pub users: u64,
    pub sessions: u64,
    pub refresh_tokens: u64,
    pub personal_access_tokens: u64,
    pub audit_events: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What opening found, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenReport {
    pub created: bool,
    pub migrated_from: u64,
    pub schema_version: u64,
    /// A rewrite had been asked for (`WriteTxn::request_file_rewrite`) and
    /// the file was copied into a fresh one.
    pub rewritten: bool,
}

impl Store {
    /// Opens (or creates, mode 0600) the database file and brings its schema
    /// up to date. Fails at once with [`StoreError::Locked`] if another
    /// process has it open.
    pub fn open(
        path: &Path,
        cache_bytes: usize,
        now: UnixSeconds,
    ) -> StoreResult<(Store, OpenReport)> {
        let open_failed = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let created = !path.exists();
        // redb would create the file with the process umask; create it first
        // so that it never exists, even for a moment, readable by others.
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(open_failed)?;
        let mode = fs::metadata(path)
            .map_err(open_failed)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(open_failed)?;
        }
        let open_database = || RedbFile::open_database(path, cache_bytes);
        let mut database = open_database()?;
        let (migrated_from, schema_version) = migrations::migrate(&database, path, now)?;
        let rewritten = rewrite_pending(&database)?;
        if rewritten {
            rewrite_file(database, path)?;
            database = open_database()?;
        }
        let database = Arc::new(RedbFile::new(database, path, cache_bytes));
        let store = Store {
            writer: group_commit::Writer::start(group_commit::Engine::Redb(database.clone()))?,
            engine: Backend::Redb(database),
            path: path.to_path_buf(),
            audit_feed: broadcast::channel(AUDIT_FEED_CAPACITY).0,
            keys_changed: tokio::sync::watch::channel(0).0,
            cache_bytes,
            warmed_bytes: AtomicU64::new(0),
            warm_phase: AtomicU8::new(WARM_NOT_STARTED),
        };
        Ok((
            store,
            OpenReport {
                created,
                migrated_from,
                schema_version,
                rewritten,
            },
        ))
    }

    /// Opens the PostgreSQL database at `url` (as `storage.postgres_url`
    /// gives it), creating authd's table in it on first use, and starts
    /// listening for the other replicas' announcements. The records are the
    /// same as in a file, so an empty database gets what a new file gets:
    /// the instance id and the `default` org.
    pub fn open_postgres(url: &str, now: UnixSeconds) -> StoreResult<(Store, OpenReport)> {
        let postgres = Arc::new(postgres::Postgres::new(url)?);
        let created = postgres.prepare_schema()?;
        let store = Store {
            writer: group_commit::Writer::start(group_commit::Engine::Postgres(postgres.clone()))?,
            engine: Backend::Postgres(postgres.clone()),
            path: PathBuf::from(crate::config::mask_url(url)),
            audit_feed: broadcast::channel(AUDIT_FEED_CAPACITY).0,
            keys_changed: tokio::sync::watch::channel(0).0,
            cache_bytes: 0,
            warmed_bytes: AtomicU64::new(0),
            warm_phase: AtomicU8::new(WARM_DONE),
        };
        let location = store.path.clone();
        let found = store.write(move |txn| {
            let found: u64 = txn.meta(migrations::SCHEMA_VERSION_KEY)?.unwrap_or(0);
            if found == 0 {
                migrations::initialise(txn, now)?;
            } else if found > CURRENT_SCHEMA_VERSION {
                return Err(StoreError::SchemaTooNew {
                    path: location,
                    found,
                    supported: CURRENT_SCHEMA_VERSION,
                });
            }
            Ok(found)
        })?;
        if found != 0 && found < CURRENT_SCHEMA_VERSION {
            // Databases are made at the current version (and by
            // `migrate-storage` from an up-to-date file); record changes
            // after this one must come with a step for both backends.
            return Err(StoreError::Writer(format!(
                "the PostgreSQL database is at schema version {found}, older than {CURRENT_SCHEMA_VERSION}; \
                 migrate it with `authd migrate-storage` from an up-to-date file"
            )));
        }
        let feed = store.audit_feed.clone();
        let keys_changed = store.keys_changed.clone();
        let reader = postgres.clone();
        postgres.listen(move |announcement| match announcement {
            postgres::Announcement::KeysChanged => {
                keys_changed.send_modify(|count| *count += 1);
            }
            postgres::Announcement::Audit { record } => {
                match postgres::decode_announced(&reader, &record) {
                    Ok(Some(record)) => {
                        let _ = feed.send(Arc::new(record));
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(error = %error, "could not read an audit record another replica announced");
                    }
                }
            }
        });
        Ok((
            store,
            OpenReport {
                created,
                migrated_from: if created { 0 } else { found },
                schema_version: CURRENT_SCHEMA_VERSION,
                rewritten: false,
            },
        ))
    }

    #[cfg(test)]
    fn redb(&self) -> redb_file::DatabaseGuard<'_> {
        match &self.engine {
            Backend::Redb(file) => file.database().expect("open"),
            Backend::Postgres(_) => panic!("a redb store was expected"),
        }
    }

    /// Closes the file (finishing queued writes) and opens it again, which
    /// carries out a rewrite asked for meanwhile. For start-up only: the
    /// store must not be shared yet.
    pub fn reopen(self, now: UnixSeconds) -> StoreResult<(Store, OpenReport)> {
        if let Backend::Postgres(_) = self.engine {
            // Nothing to rewrite: PostgreSQL's own vacuum reclaims rows.
            let report = OpenReport {
                created: false,
                migrated_from: CURRENT_SCHEMA_VERSION,
                schema_version: CURRENT_SCHEMA_VERSION,
                rewritten: false,
            };
            return Ok((self, report));
        }
        let (path, cache_bytes) = (self.path.clone(), self.cache_bytes);
        // Dropping stops the writer thread, which holds the other handle, so
        // the file and its lock are released before it is opened again.
        drop(self);
        Store::open(&path, cache_bytes, now)
    }

    /// Runs `work` in one write transaction on the store's writer thread and
    /// returns once the commit is durable; on `Err` nothing it wrote is kept.
    /// Audit records it appended are published to live subscribers then.
    /// Blocks the calling thread (async callers use `spawn_blocking`).
    pub fn write<T, E>(
        &self,
        work: impl FnOnce(&mut WriteTxn) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (answer, answered) = std::sync::mpsc::sync_channel::<Result<T, E>>(1);
        let feed = self.audit_feed.clone();
        let job: group_commit::Job = Box::new(move |slot| {
            let outcome = run_write(slot, work);
            let committed = outcome.is_ok();
            let finish: group_commit::Finisher = Box::new(move |durable| {
                let result = match (outcome, durable) {
                    (Ok((value, audit)), Ok(())) => {
                        for record in audit {
                            // No subscribers is the normal case, not an error.
                            let _ = feed.send(Arc::new(record));
                        }
                        Ok(value)
                    }
                    (Ok(_), Err(failure)) => Err(E::from(StoreError::from(failure))),
                    (Err(error), _) => Err(error),
                };
                let _ = answer.send(result);
            });
            (finish, committed)
        });
        self.writer.submit(job)?;
        answered.recv().map_err(|_| {
            E::from(StoreError::Writer(
                "a write transaction failed on the writer thread".into(),
            ))
        })?
    }

    /// How many group-commit runs (durable commits) have finished.
    pub fn durable_commits(&self) -> u64 {
        self.writer.runs()
    }

    /// Runs `work` on a consistent snapshot.
    pub fn read<T, E: From<StoreError>>(
        &self,
        work: impl FnOnce(&ReadTxn) -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.engine {
            Backend::Redb(file) => {
                let txn = file.begin_read()?;
                work(&ReadTxn(ReadInner::Redb(txn)))
            }
            Backend::Postgres(postgres) => {
                let conn = postgres.take().inspect_err(|e| postgres.note_failure(e))?;
                conn.begin_read();
                let txn = ReadTxn(ReadInner::Postgres(conn));
                let outcome = work(&txn);
                let ReadTxn(ReadInner::Postgres(conn)) = txn else {
                    unreachable!("built as a PostgreSQL read above")
                };
                // Read-only: ending it cannot lose anything, so a failure
                // here only costs the connection.
                let _ = conn.end_read();
                postgres.give_back(conn);
                outcome
            }
        }
    }

    /// Changes of the signing keys made by other replicas (PostgreSQL only:
    /// a file has one writer, whose own key ring already knows).
    pub fn subscribe_keys_changed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.keys_changed.subscribe()
    }

    /// Whether this process is to run the background work (sweeps, pruning,
    /// scheduled backups): always with a file; with PostgreSQL, only the
    /// replica that holds the leader lock, so the work runs once.
    pub fn runs_background_work(&self) -> bool {
        match &self.engine {
            Backend::Redb(_) => true,
            Backend::Postgres(postgres) => postgres.is_leader(),
        }
    }

    pub fn backend_status(&self) -> BackendStatus {
        match &self.engine {
            Backend::Redb(_) => BackendStatus {
                kind: "redb",
                location: self.path.display().to_string(),
                reachable: true,
                leader: true,
            },
            Backend::Postgres(postgres) => BackendStatus {
                kind: "postgres",
                location: self.path.display().to_string(),
                reachable: postgres.is_reachable(),
                leader: postgres.is_leader(),
            },
        }
    }

    /// Rate-limit counts every replica shares (PostgreSQL); `None` with a
    /// file, whose one process counts in memory.
    pub fn shared_counts(&self) -> Option<SharedCounts> {
        match &self.engine {
            Backend::Redb(_) => None,
            Backend::Postgres(postgres) => Some(postgres.shared_counts()),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.engine, Backend::Postgres(_))
    }

    /// Audit records as they are committed.
    pub fn subscribe_audit(&self) -> broadcast::Receiver<Arc<AuditRecord>> {
        self.audit_feed.subscribe()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn schema_version(&self) -> StoreResult<u64> {
        match &self.engine {
            Backend::Redb(file) => migrations::read_version(&*file.database()?),
            Backend::Postgres(_) => Ok(self
                .read(|txn| txn.meta::<u64>(migrations::SCHEMA_VERSION_KEY))?
                .unwrap_or(0)),
        }
    }

    /// Reads the tables on the request path (users, orgs, sessions, tokens,
    /// second factors; not the audit log) through the page cache, until
    /// about half the cache is filled or `keep_going` says stop, and returns
    /// how many bytes of rows it read. Run once after start, in the
    /// background: a restarted server otherwise pays a file read for each
    /// first touch of a page, and at a million users the first minute after
    /// a restart ran at half speed. Blocking.
    pub fn warm_cache(&self, keep_going: impl Fn() -> bool) -> StoreResult<u64> {
        self.warm_phase.store(WARM_RUNNING, Ordering::Relaxed);
        let outcome = self.read_request_path_tables(keep_going);
        self.warm_phase.store(WARM_DONE, Ordering::Relaxed);
        outcome
    }

    fn read_request_path_tables(&self, keep_going: impl Fn() -> bool) -> StoreResult<u64> {
        let budget = (self.cache_bytes / 2) as u64;
        // PostgreSQL keeps its own cache, beside this process.
        let Backend::Redb(file) = &self.engine else {
            return Ok(0);
        };
        let txn = file.begin_read()?;
        let mut read = 0_u64;
        for definition in tables::REQUEST_PATH_TABLES {
            let table = match txn.open_table(*definition) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => continue,
                Err(other) => return Err(other.into()),
            };
            for (n, entry) in table.iter()?.enumerate() {
                let (key, value) = entry?;
                read += (key.value().len() + value.value().len()) as u64;
                let checkpoint = n % 4096 == 0;
                let done = read >= budget || (checkpoint && !keep_going());
                if checkpoint || done {
                    self.warmed_bytes.store(read, Ordering::Relaxed);
                }
                if done {
                    return Ok(read);
                }
            }
            self.warmed_bytes.store(read, Ordering::Relaxed);
        }
        Ok(read)
    }

    pub fn cache_status(&self) -> CacheStatus {
        CacheStatus {
            ceiling_bytes: self.cache_bytes as u64,
            warmed_bytes: self.warmed_bytes.load(Ordering::Relaxed),
            warm_up: match self.warm_phase.load(Ordering::Relaxed) {
                WARM_NOT_STARTED => "not_started",
                WARM_RUNNING => "warming",
                _ => "done",
            },
        }
    }

    /// How many rows the main tables hold (redb keeps each table's length,
    /// so this reads no rows).
    pub fn counts(&self) -> StoreResult<TableCounts> {
        match &self.engine {
            Backend::Redb(file) => counts_of(&file.begin_read()?),
            Backend::Postgres(_) => self.read(|txn| {
                let len = |table| txn.count_rows(table);
                Ok(TableCounts {
                    orgs: len(tables::ORGS)?,
                    users: len(tables::USERS)?,
                    sessions: len(tables::SESSIONS)?,
                    refresh_tokens: len(tables::REFRESH_TOKENS)?,
                    personal_access_tokens: len(tables::PATS)?,
                    audit_events: len(tables::AUDIT)?,
                })
            }),
        }
    }

    /// Proves the database is readable: used by `/healthz`.
    pub fn ping(&self) -> StoreResult<()> {
        match &self.engine {
            Backend::Redb(file) => {
                let txn = file.begin_read()?;
                let meta = txn.open_table(META)?;
                read_json::<u64>(&meta, migrations::SCHEMA_VERSION_KEY)?;
                Ok(())
            }
            Backend::Postgres(_) => self
                .read(|txn| txn.meta::<u64>(migrations::SCHEMA_VERSION_KEY))
                .map(|_| ()),
        }
    }

    /// The size of the file, or of the PostgreSQL database.
    pub fn file_size_bytes(&self) -> u64 {
        match &self.engine {
            Backend::Redb(_) => fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0),
            Backend::Postgres(postgres) => postgres.database_size().unwrap_or(0),
        }
    }

    pub fn instance_id(&self) -> StoreResult<Option<String>> {
        self.read(|txn| txn.meta(migrations::INSTANCE_ID_KEY))
    }

    /// Writes a consistent copy of every table to a new database file at
    /// `destination` (mode 0600). The copy is taken from one read snapshot,
    /// so writes that land meanwhile are either wholly in it or wholly not.
    pub fn backup_to(&self, destination: &Path) -> StoreResult<()> {
        match &self.engine {
            Backend::Redb(file) => copy_into(file.begin_read()?, destination),
            Backend::Postgres(_) => self.read(|txn| copy_rows_into_file(txn, destination)),
        }
    }
}

/// Copies every table of a snapshot into a new redb file at `destination`
/// (mode 0600), committed durably.
fn copy_rows_into_file(txn: &ReadTxn, destination: &Path) -> StoreResult<()> {
    let copy = create_copy_file(destination)?;
    let target = copy.begin_write()?;
    for definition in ALL_TABLES {
        let mut table = target.open_table(*definition)?;
        txn.each_raw_row(*definition, |key, value| {
            table.insert(key, value)?;
            Ok(())
        })?;
    }
    target.open_table(META)?.remove(txn::REWRITE_PENDING_KEY)?;
    target.commit()?;
    Ok(())
}

/// A new, empty redb file at `destination`, mode 0600; refuses to replace
/// one that exists.
fn create_copy_file(destination: &Path) -> StoreResult<Database> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(destination)
        .map_err(|source| StoreError::Open {
            path: destination.to_path_buf(),
            source,
        })?;
    Database::create(destination).map_err(|e| StoreError::Database(e.into()))
}

fn counts_of(txn: &ReadTransaction) -> StoreResult<TableCounts> {
    use redb::ReadableTableMetadata;
    let len = |definition| -> StoreResult<u64> {
        match txn.open_table(definition) {
            Ok(table) => Ok(table.len()?),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(other) => Err(other.into()),
        }
    };
    Ok(TableCounts {
        orgs: len(tables::ORGS)?,
        users: len(tables::USERS)?,
        sessions: len(tables::SESSIONS)?,
        refresh_tokens: len(tables::REFRESH_TOKENS)?,
        personal_access_tokens: len(tables::PATS)?,
        audit_events: len(tables::AUDIT)?,
    })
}

/// Copies every table of one read snapshot into a new file at
/// `destination` (mode 0600), committed durably.
fn copy_into(snapshot: ReadTransaction, destination: &Path) -> StoreResult<()> {
    let copy = create_copy_file(destination)?;
    let txn = copy.begin_write()?;
    for definition in ALL_TABLES {
        let source = match snapshot.open_table(*definition) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => continue,
            Err(other) => return Err(other.into()),
        };
        let mut target = txn.open_table(*definition)?;
        for entry in source.iter()? {
            let (key, value) = entry?;
            target.insert(key.value(), value.value())?;
        }
    }
    // A copy is a fresh file already; it has nothing left to rewrite.
    txn.open_table(META)?.remove(txn::REWRITE_PENDING_KEY)?;
    txn.commit()?;
    Ok(())
}

fn rewrite_pending(database: &Database) -> StoreResult<bool> {
    let txn = database.begin_read()?;
    let meta = txn.open_table(META)?;
    Ok(read_json::<bool>(&meta, txn::REWRITE_PENDING_KEY)?.unwrap_or(false))
}

/// Replaces the file with a fresh copy of its live rows. redb frees the
/// pages of replaced values but does not erase them, so a secret that was
/// once stored in clear stays readable in the file until its page is
/// reused; a copy holds only what is live. The copy is made durable beside
/// the file and renamed over it, so a crash leaves either the old file (with
/// its rewrite still pending) or the new one, never neither.
fn rewrite_file(database: Database, path: &Path) -> StoreResult<()> {
    let failed = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut fresh = path.as_os_str().to_owned();
    fresh.push(".rewrite");
    let fresh = PathBuf::from(fresh);
    // Left by a rewrite that was interrupted before its rename.
    match fs::remove_file(&fresh) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(failed(error)),
        _ => {}
    }
    copy_into(database.begin_read()?, &fresh)?;
    drop(database);
    fs::rename(&fresh, path).map_err(failed)?;
    if let Some(directory) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(directory)
            .and_then(|d| d.sync_all())
            .map_err(failed)?;
    }
    Ok(())
}

/// One transaction of a group-commit run: `work`, then a commit with the
/// durability the run asks for.
#[allow(clippy::type_complexity)]
fn run_write<T, E: From<StoreError>>(
    slot: &group_commit::Slot<'_>,
    work: impl FnOnce(&mut WriteTxn) -> Result<T, E>,
) -> Result<(T, Vec<AuditRecord>), E> {
    match slot {
        group_commit::Slot::Redb {
            database,
            durability,
        } => {
            let mut txn = database.begin_write().map_err(StoreError::from)?;
            txn.set_durability(*durability)
                .map_err(|error| StoreError::Writer(error.to_string()))?;
            let mut write = WriteTxn {
                txn: WriteInner::Redb(txn),
                audit: Vec::new(),
                keys_changed: Default::default(),
            };
            let value = work(&mut write)?;
            let WriteTxn { txn, audit, .. } = write;
            if let WriteInner::Redb(txn) = txn {
                txn.commit().map_err(StoreError::from)?;
            }
            Ok((value, audit))
        }
        group_commit::Slot::Postgres { conn, replica_id } => {
            let mut write = WriteTxn {
                txn: WriteInner::Postgres(Arc::clone(conn)),
                audit: Vec::new(),
                keys_changed: Default::default(),
            };
            let value = work(&mut write)?;
            // Announced on commit, to every replica's live feed.
            for record in &write.audit {
                let json = serde_json::to_string(record).map_err(|error| StoreError::Corrupt {
                    key: record.id.clone(),
                    message: error.to_string(),
                })?;
                let payload = postgres::audit_payload(replica_id, &record.id, &json);
                conn.notify(postgres::AUDIT_CHANNEL, &payload)?;
            }
            if write.keys_changed.get() {
                conn.notify(postgres::KEYS_CHANNEL, "")?;
            }
            Ok((value, write.audit))
        }
        group_commit::Slot::Failed(failure) => {
            Err(StoreError::from(group_commit::WriteFailure::clone(failure)).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tables::write_json;
    use super::*;

    const CACHE: usize = 1 << 20;

    #[test]
    fn a_new_file_is_0600_and_at_the_current_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("authd.redb");
        let (store, report) = Store::open(&path, CACHE, 1_700_000_000).expect("open");
        assert!(report.created);
        assert_eq!(report.migrated_from, 0);
        assert_eq!(
            store.schema_version().expect("version"),
            CURRENT_SCHEMA_VERSION
        );
        assert!(store.instance_id().expect("read").is_some());
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_file_from_an_older_schema_is_migrated_and_keeps_its_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("authd.redb");
        // A v0 file: written before the schema was versioned, with a record
        // that must survive the migration.
        {
            let db = Database::create(&path).expect("create");
            let txn = db.begin_write().expect("txn");
            {
                let mut meta = txn.open_table(META).expect("table");
                write_json(&mut meta, migrations::CREATED_AT_KEY, &1_600_000_000_i64)
                    .expect("write");
            }
            txn.commit().expect("commit");
        }
        let (store, report) = Store::open(&path, CACHE, 1_700_000_000).expect("open");
        assert!(!report.created);
        assert_eq!(report.migrated_from, 0);
        assert_eq!(report.schema_version, CURRENT_SCHEMA_VERSION);
        let txn = store.redb().begin_read().expect("read");
        let meta = txn.open_table(META).expect("meta");
        let created_at: Option<i64> = read_json(&meta, migrations::CREATED_AT_KEY).expect("read");
        assert_eq!(created_at, Some(1_600_000_000), "old data is kept");
        drop(meta);
        drop(txn);
        drop(store);
        let (_, again) = Store::open(&path, CACHE, 1_700_000_001).expect("reopen");
        assert_eq!(
            again.migrated_from, CURRENT_SCHEMA_VERSION,
            "migrations run once"
        );
    }

    #[test]
    fn a_v1_file_gains_the_account_tables_and_the_default_org() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("authd.redb");
        // A v1 file as the first release wrote it: only `meta`.
        {
            let db = Database::create(&path).expect("create");
            let txn = db.begin_write().expect("txn");
            {
                let mut meta = txn.open_table(META).expect("table");
                write_json(&mut meta, migrations::SCHEMA_VERSION_KEY, &1_u64).expect("write");
                write_json(&mut meta, migrations::INSTANCE_ID_KEY, &"kept").expect("write");
            }
            txn.commit().expect("commit");
        }
        let (store, report) = Store::open(&path, CACHE, 1_700_000_000).expect("open");
        assert_eq!(report.migrated_from, 1);
        assert_eq!(store.instance_id().expect("id").as_deref(), Some("kept"));
        let org = store
            .read(|txn| txn.org_by_slug("default"))
            .expect("read")
            .expect("the default org exists");
        assert_eq!(org.created_at, 1_700_000_000);
        assert!(org.id.as_str().starts_with("org_"));
    }

    #[test]
    fn concurrent_writes_share_fsyncs_and_each_stands_or_falls_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("authd.redb");
        let (store, _) = Store::open(&path, CACHE, 0).expect("open");
        let store = Arc::new(store);
        let before = store.durable_commits();
        let threads: Vec<_> = (0..16)
            .map(|thread| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for n in 0..20 {
                        let id = format!("{thread}-{n}");
                        let fails = n % 4 == 3;
                        let result: Result<(), StoreError> = store.write(move |txn| {
                            txn.put_approval(&approval(&id))?;
                            if fails {
                                return Err(StoreError::Writer("refused".into()));
                            }
                            Ok(())
                        });
                        assert_eq!(result.is_err(), fails);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        // A panicking closure costs its caller an error, not the writer.
        let answer: Result<(), StoreError> = store.write(|_| panic!("boom"));
        assert!(matches!(answer, Err(StoreError::Writer(_))), "{answer:?}");
        let after: Result<(), StoreError> = store.write(|txn| txn.put_approval(&approval("after")));
        assert!(after.is_ok(), "the writer survived");
        let runs = store.durable_commits() - before;
        assert!(
            runs < 321,
            "{runs} fsyncs for 321 writes: nothing was grouped"
        );
        drop(store);

        // Reopened: every successful write is there, no failed one is.
        let (store, _) = Store::open(&path, CACHE, 0).expect("reopen");
        let kept = store.read(|txn| txn.approvals()).expect("read");
        assert_eq!(kept.len(), 16 * 15 + 1);
        assert!(kept
            .iter()
            .all(|a| !a.id.ends_with("-3") && !a.id.ends_with("-7")));
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn a_requested_rewrite_leaves_no_trace_of_a_replaced_value_in_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("authd.redb");
        let (store, _) = Store::open(&path, CACHE, 0).expect("open");
        let secret = "a-secret-once-stored-in-clear-4f1c";
        let mut record = approval("a");
        record.requested_by_user_agent = Some(secret.to_owned());
        let stored = record.clone();
        let result: Result<(), StoreError> = store.write(move |txn| txn.put_approval(&stored));
        result.expect("write");
        record.requested_by_user_agent = Some("sealed".to_owned());
        let replaced = record.clone();
        let result: Result<(), StoreError> = store.write(move |txn| {
            txn.put_approval(&replaced)?;
            txn.request_file_rewrite()
        });
        result.expect("write");
        assert!(
            contains(&fs::read(&path).expect("read"), secret.as_bytes()),
            "redb frees the replaced page without erasing it: the reason for rewriting"
        );
        // A copy left by an interrupted rewrite does not get in the way.
        fs::write(dir.path().join("authd.redb.rewrite"), b"half a copy").expect("write");

        let (store, report) = store.reopen(0).expect("reopen");
        assert!(report.rewritten);
        assert!(!contains(
            &fs::read(&path).expect("read"),
            secret.as_bytes()
        ));
        assert!(!dir.path().join("authd.redb.rewrite").exists());
        assert_eq!(
            fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        let kept = store.read(|txn| txn.approvals()).expect("read");
        assert_eq!(kept.len(), 1);
        assert_eq!(
            kept[0].requested_by_user_agent.as_deref(),
            Some("sealed"),
            "live rows are kept"
        );
        let (_, again) = store.reopen(0).expect("reopen");
        assert!(!again.rewritten, "a rewrite is done once");
    }

    fn approval(id: &str) -> Approval {
        Approval {
            id: id.to_owned(),
            kind: crate::domain::ApprovalKind::Registration,
            subject_user_id: None,
            org_id: None,
            requested_at: 0,
            requested_by_ip: None,
            requested_by_user_agent: None,
            status: crate::domain::ApprovalStatus::Pending,
            resolved_by: None,
            resolved_at: None,
        }
    }

    #[test]
    fn a_failed_write_keeps_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(&dir.path().join("authd.redb"), CACHE, 0).expect("open");
        let default = store
            .read(|txn| txn.org_by_slug("default"))
            .expect("read")
            .expect("org");
        let result: Result<(), StoreError> = store.write(move |txn| {
            let mut renamed = default.clone();
            renamed.name = "Changed".to_owned();
            txn.put_org(&renamed)?;
            Err(StoreError::Corrupt {
                key: "x".into(),
                message: "abort".into(),
            })
        });
        assert!(result.is_err());
        let after = store
            .read(|txn| txn.org_by_slug("default"))
            .expect("read")
            .expect("org");
        assert_eq!(after.name, "Default");
    }

    fn session(expires_at: i64, revoked_at: Option<i64>) -> crate::domain::Session {
        crate::domain::Session {
            id: crate::domain::SessionId::random(),
            user_id: crate::domain::UserId::random(),
            org_id: crate::domain::OrgId::random(),
            ip: "127.0.0.1".into(),
            user_agent: String::new(),
            created_at: 0,
            last_active: 0,
            expires_at,
            mfa_verified: false,
            revoked_at,
            enrollment_only: false,
            cookie_digest: None,
            client_id: None,
            amr: Vec::new(),
            auth_time: None,
        }
    }

    #[test]
    fn the_sweep_removes_expired_pats_with_their_index_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(&dir.path().join("authd.redb"), CACHE, 0).expect("open");
        let now = 1_000_000;
        let user = crate::domain::UserId::random();
        let pat = |id: &str, expires_at| PersonalAccessToken {
            id: id.into(),
            name: id.into(),
            user_id: user,
            org_id: crate::domain::OrgId::random(),
            scopes: Vec::new(),
            created_at: 0,
            expires_at,
            last_used_at: None,
        };
        let (live, expired) = (pat("live", now + 60), pat("expired", now));
        store
            .write(move |txn| {
                txn.put_pat("aa", &live)?;
                txn.put_pat("bb", &expired)
            })
            .expect("write");
        assert_eq!(store.sweep(Sweep::ExpiredPats, now, 1).expect("sweep"), 1);
        store
            .read(|txn| {
                assert!(txn.pat("aa")?.is_some());
                assert!(txn.pat("bb")?.is_none());
                assert!(txn.pat_by_id("expired")?.is_none());
                let left: Vec<String> = txn
                    .pats_of_user(&user, None, 10)?
                    .into_iter()
                    .map(|p| p.id)
                    .collect();
                assert_eq!(left, ["live"]);
                Ok::<_, StoreError>(())
            })
            .expect("read");
    }

    #[test]
    fn the_sweep_removes_ended_sessions_and_expired_refresh_tokens_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(&dir.path().join("authd.redb"), CACHE, 0).expect("open");
        let now = 1_000_000;
        let live = session(now + 60, None);
        let expired = session(now - 1, None);
        let long_revoked = session(now + 60, Some(now - 2 * 86400));
        let just_revoked = session(now + 60, Some(now - 10));
        let token = |session: &crate::domain::Session, expires_at| RefreshToken {
            family_id: "f".into(),
            session_id: session.id,
            user_id: session.user_id,
            org_id: session.org_id.clone(),
            issued_at: 0,
            expires_at,
            used_at: None,
            used_by_ip: None,
            scope: None,
            client_id: None,
            auth_time: 0,
        };
        let (fresh, stale) = (token(&live, now + 60), token(&live, now - 1));
        let sessions = [
            live.clone(),
            expired.clone(),
            long_revoked.clone(),
            just_revoked.clone(),
        ];
        store
            .write(move |txn| {
                for s in &sessions {
                    txn.put_session(s)?;
                }
                txn.put_refresh_token("live", &fresh)?;
                txn.put_refresh_token("stale", &stale)
            })
            .expect("write");
        let sweep = |kind, page_rows| store.sweep(kind, now, page_rows).expect("sweep");
        // Pages of one row: the cursor carries the sweep across pages.
        assert_eq!(
            sweep(Sweep::EndedSessions, 1),
            2,
            "the expired one and the one revoked days ago"
        );
        assert_eq!(sweep(Sweep::ExpiredRefreshTokens, 1), 1);
        assert_eq!(sweep(Sweep::EndedSessions, 100), 0, "nothing twice");
        store
            .read(|txn| {
                assert!(txn.session(&live.id)?.is_some());
                assert!(
                    txn.session(&just_revoked.id)?.is_some(),
                    "kept a day for the record"
                );
                assert!(txn.session(&expired.id)?.is_none());
                assert!(
                    txn.sessions_of_user(&expired.user_id)?.is_empty(),
                    "its index row too"
                );
                assert!(txn.refresh_token("live")?.is_some());
                assert!(txn.refresh_token("stale")?.is_none());
                Ok::<_, StoreError>(())
            })
            .expect("read");
    }

    /// Every row of `sweep_due`, to check it against the swept tables.
    fn sweep_due_keys(store: &Store) -> Vec<String> {
        let txn = store.redb().begin_read().expect("read");
        let table = txn.open_table(tables::SWEEP_DUE).expect("table");
        let keys = table
            .iter()
            .expect("iter")
            .map(|entry| entry.expect("entry").0.value().to_owned())
            .collect();
        keys
    }

    #[test]
    fn a_sweep_reads_only_what_is_due_and_the_index_follows_each_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(&dir.path().join("authd.redb"), CACHE, 0).expect("open");
        let now = 1_000_000;
        let live: Vec<_> = (0..5).map(|_| session(now + 864_000, None)).collect();
        let expired = session(now - 1, None);
        let rows = live.clone();
        let gone = expired.clone();
        store
            .write(move |txn| {
                for s in rows.iter().chain([&gone]) {
                    txn.put_session(s)?;
                }
                Ok::<_, StoreError>(())
            })
            .expect("write");
        let page = store
            .read(|txn| txn.sweep_page(Sweep::EndedSessions, now, None, 100))
            .expect("page");
        assert_eq!(page.due.len(), 1, "the live sessions are not read");
        assert!(page.due[0].ends_with(&expired.id.to_string()));
        assert_eq!(page.next, None);

        // Revoking a session moves its row in the index to a day later;
        // rewriting it unchanged leaves one row, not two.
        let mut revoked = live[0].clone();
        revoked.revoked_at = Some(now);
        let again = revoked.clone();
        store
            .write(move |txn| {
                txn.put_session(&revoked)?;
                txn.put_session(&again)
            })
            .expect("revoke");
        assert_eq!(sweep_due_keys(&store).len(), 6);
        assert_eq!(
            store.sweep(Sweep::EndedSessions, now, 100).expect("sweep"),
            1
        );
        assert_eq!(
            store
                .sweep(Sweep::EndedSessions, now + 86_401, 2)
                .expect("sweep"),
            1,
            "the revoked one, a day later"
        );
        let left = sweep_due_keys(&store);
        assert_eq!(left.len(), 4, "{left:?}");
        assert!(left
            .iter()
            .all(|key| live[1..].iter().any(|s| key.ends_with(&s.id.to_string()))));
    }

    #[test]
    fn rewriting_a_pat_or_session_keeps_exactly_one_of_each_index_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(&dir.path().join("authd.redb"), CACHE, 0).expect("open");
        let user = crate::domain::UserId::random();
        let pat = PersonalAccessToken {
            id: "pat_1".into(),
            name: "ci".into(),
            user_id: user,
            org_id: crate::domain::OrgId::random(),
            scopes: Vec::new(),
            created_at: 0,
            expires_at: 5_000,
            last_used_at: None,
        };
        let mut used = pat.clone();
        used.last_used_at = Some(10);
        let session = session(9_000, None);
        let mut extended = session.clone();
        extended.expires_at = 12_000;
        let (first, again, s1, s2) = (pat.clone(), used.clone(), session.clone(), extended.clone());
        store
            .write(move |txn| {
                txn.put_pat("aa", &first)?;
                txn.put_pat("aa", &again)?;
                txn.put_session(&s1)?;
                txn.put_session(&s2)
            })
            .expect("write");
        store
            .read(|txn| {
                let (digest, found) = txn.pat_by_id("pat_1")?.expect("by id");
                assert_eq!((digest.as_str(), found.last_used_at), ("aa", Some(10)));
                assert_eq!(txn.pats_of_user(&user, None, 10)?.len(), 1);
                let sessions = txn.sessions_of_user(&session.user_id)?;
                assert_eq!(sessions.len(), 1);
                assert_eq!(sessions[0].expires_at, 12_000);
                Ok::<_, StoreError>(())
            })
            .expect("read");
        let due = sweep_due_keys(&store);
        assert_eq!(due.len(), 2, "{due:?}");
        assert!(
            due.iter().any(|k| k.contains("00012000/")),
            "moved: {due:?}"
        );
    }

    #[test]
    fn a_revoked_session_leaves_its_users_index_but_stays_until_its_sweep() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(&dir.path().join("authd.redb"), CACHE, 0).expect("open");
        let live = session(9_000, None);
        let mut ended = Vec::new();
        for _ in 0..20 {
            let mut old = session(9_000, None);
            old.user_id = live.user_id;
            ended.push(old);
        }
        let (first, revoked) = (ended.clone(), ended.clone());
        let kept = live.clone();
        store
            .write(move |txn| {
                for session in &first {
                    txn.put_session(session)?;
                }
                for mut session in revoked {
                    session.revoked_at = Some(100);
                    txn.put_session(&session)?;
                }
                txn.put_session(&kept)
            })
            .expect("write");
        store
            .read(|txn| {
                let indexed = txn.sessions_of_user(&live.user_id)?;
                assert_eq!(indexed.len(), 1, "only the live one is read by a sign-in");
                assert_eq!(indexed[0].id, live.id);
                for session in &ended {
                    let stored = txn.session(&session.id)?.expect("kept for the record");
                    assert_eq!(stored.revoked_at, Some(100));
                }
                Ok::<_, StoreError>(())
            })
            .expect("read");
        assert_eq!(sweep_due_keys(&store).len(), 21, "each still due a sweep");
    }

    #[test]
    fn a_v5_file_gains_the_sweep_index_of_its_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("authd.redb");
        let now = 1_000_000;
        let (live, expired) = (session(now + 60, None), session(now - 60, None));
        {
            let (store, _) = Store::open(&path, CACHE, 0).expect("open");
            let (a, b) = (live.clone(), expired.clone());
            store
                .write(move |txn| {
                    txn.put_session(&a)?;
                    txn.put_session(&b)
                })
                .expect("write");
            // As v5 left it: the rows without their index.
            let txn = store.redb().begin_write().expect("txn");
            txn.delete_table(tables::SWEEP_DUE).expect("drop");
            write_json(
                &mut txn.open_table(META).expect("meta"),
                migrations::SCHEMA_VERSION_KEY,
                &5_u64,
            )
            .expect("version");
            txn.commit().expect("commit");
        }
        let (store, report) = Store::open(&path, CACHE, now).expect("reopen");
        assert_eq!(report.migrated_from, 5);
        assert_eq!(sweep_due_keys(&store).len(), 2);
        assert_eq!(
            store.sweep(Sweep::EndedSessions, now, 100).expect("sweep"),
            1
        );
        let kept = store.read(|txn| txn.session(&live.id)).expect("read");
        assert!(kept.is_some());
    }

    #[test]
    fn pruning_drops_audit_records_older_than_the_cutoff_with_their_index() {
        use crate::audit::{AuditKind, AuditRecord, RequestOrigin};
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(&dir.path().join("authd.redb"), CACHE, 0).expect("open");
        let user = crate::domain::UserId::random();
        store
            .write(move |txn| {
                for at in [100, 200, 300, 400] {
                    txn.audit(
                        AuditRecord::new(AuditKind::UserLogin, at, &RequestOrigin::default())
                            .user(user),
                    )?;
                }
                Ok::<_, StoreError>(())
            })
            .expect("write");
        let removed = store.write(|txn| txn.prune_audit(250, 100)).expect("prune");
        assert_eq!(removed, 2);
        let left = store
            .read(|txn| {
                txn.audit(&AuditQuery {
                    user: Some(user),
                    limit: 10,
                    ..AuditQuery::default()
                })
            })
            .expect("query");
        let times: Vec<i64> = left.iter().map(|r| r.at).collect();
        assert_eq!(times, [400, 300], "newest first, the old ones gone");
    }

    #[test]
    fn a_file_from_a_newer_authd_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("authd.redb");
        {
            let db = Database::create(&path).expect("create");
            let txn = db.begin_write().expect("txn");
            {
                let mut meta = txn.open_table(META).expect("table");
                write_json(
                    &mut meta,
                    migrations::SCHEMA_VERSION_KEY,
                    &(CURRENT_SCHEMA_VERSION + 5),
                )
                .expect("write");
            }
            txn.commit().expect("commit");
        }
        let error = Store::open(&path, CACHE, 0).expect_err("refused");
        assert!(matches!(error, StoreError::SchemaTooNew { .. }), "{error}");
    }

    #[test]
    fn a_second_open_of_the_same_file_is_locked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("authd.redb");
        let (_first, _) = Store::open(&path, CACHE, 0).expect("open");
        let error = Store::open(&path, CACHE, 0).expect_err("locked");
        assert!(matches!(error, StoreError::Locked { .. }), "{error}");
    }

    #[test]
    fn a_backup_is_an_openable_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(&dir.path().join("authd.redb"), CACHE, 0).expect("open");
        let copy_path = dir.path().join("copy.redb");
        store.backup_to(&copy_path).expect("backup");
        let (copy, report) = Store::open(&copy_path, CACHE, 0).expect("open copy");
        assert_eq!(report.migrated_from, CURRENT_SCHEMA_VERSION);
        assert_eq!(
            copy.instance_id().expect("id"),
            store.instance_id().expect("id")
        );
    }
}
