//! The open redb file behind a store, and its recovery from a full disk.
//!
//! When a write fails for want of space, redb latches the I/O error: every
//! later write fails with "previous I/O error" until the file is closed and
//! opened again. Reads go on meanwhile. So that freeing space is all an
//! operator has to do, the writer thread closes and reopens the file once
//! the volume has room again; redb's repair at open rolls back to the last
//! durable commit, which is everything authd acknowledged.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use redb::{Database, ReadTransaction, ReadableDatabase};

use super::error::{StoreError, StoreResult};

/// Free bytes the volume needs before a reopen is tried: redb's repair
/// writes its allocator state, and the first writes after it grow the file.
const ROOM_TO_REOPEN: u64 = 1 << 20;

/// How often a latched file is looked at again while the disk stays full.
const REOPEN_INTERVAL: Duration = Duration::from_millis(500);

/// The reason a write gets while the file is closed for a reopen; it says
/// "No space left on device" so that callers answer it as a full disk.
pub(crate) const REOPENING: &str =
    "No space left on device (the database file is being opened again)";

pub(crate) struct RedbFile {
    path: PathBuf,
    cache_bytes: usize,
    /// `None` only while a reopen failed; reads and writes then fail as a
    /// full disk until the next attempt succeeds.
    open: RwLock<Option<Database>>,
    /// When a reopen was last tried, to space the attempts out.
    last_attempt: Mutex<Option<Instant>>,
}

/// How every open of a redb file starts, the server's and the CLI's
/// (`authd backup`, `authd restore`): verifying the checksum of every page
/// of the committed trees first. A plain open trusts a file redb closed
/// cleanly, and on one damaged since (a bit flip, a bad copy) it panics in
/// places instead of reporting the damage (docs/fuzzing.md, "redb
/// panics"): with `panic = "abort"` that is a crash with no advice.
/// Verified, the damage is [`StoreError`]'s corrupt case, and the caller
/// says what to do. The price is reading the whole file at each open
/// (figures in docs/performance.md).
pub(crate) fn verifying_builder() -> redb::Builder {
    let mut builder = Database::builder();
    builder.set_check_integrity_on_open(true);
    builder
}

impl RedbFile {
    pub(crate) fn new(database: Database, path: &Path, cache_bytes: usize) -> Self {
        RedbFile {
            path: path.to_path_buf(),
            cache_bytes,
            open: RwLock::new(Some(database)),
            last_attempt: Mutex::new(None),
        }
    }

    /// Opens the file at `path` with the store's settings.
    pub(crate) fn open_database(path: &Path, cache_bytes: usize) -> StoreResult<Database> {
        verifying_builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|error| match error {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
                    path: path.to_path_buf(),
                },
                other => StoreError::Database(other.into()),
            })
    }

    /// The open database, for the length of one call into redb. Holding it
    /// keeps a reopen waiting, so never hold it across another store call.
    pub(crate) fn database(&self) -> StoreResult<DatabaseGuard<'_>> {
        let guard = self.open.read().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            return Err(StoreError::Writer(REOPENING.into()));
        }
        Ok(DatabaseGuard(guard))
    }

    pub(crate) fn begin_read(&self) -> StoreResult<ReadTransaction> {
        Ok(self.database()?.begin_read()?)
    }

    /// Called by the writer thread between runs, after a run in which a
    /// transaction failed: if redb has latched an I/O error and the volume
    /// has room again, closes the file and opens it again. Returns whether
    /// the file still cannot take writes (so the next run asks again).
    pub(crate) fn recover_if_latched(&self) -> bool {
        if !self.needs_reopen() {
            return false;
        }
        if !self.due_for_attempt() || !self.volume_has_room() {
            return true;
        }
        let mut open = self.open.write().unwrap_or_else(|p| p.into_inner());
        if let Some(database) = open.take() {
            // The close reports the latched error; the file is left for the
            // open's repair, which is the point.
            let _ = database.close();
        }
        match Self::open_database(&self.path, self.cache_bytes) {
            Ok(database) => {
                *open = Some(database);
                tracing::info!(
                    path = %self.path.display(),
                    "the data dir's volume has room again: the database file was opened again and takes writes"
                );
                false
            }
            Err(error) => {
                tracing::error!(
                    path = %self.path.display(),
                    error = %error,
                    "could not open the database file again after a full disk; retrying"
                );
                true
            }
        }
    }

    /// Whether writes cannot go on with the file as it is open: redb has
    /// latched an I/O error, or an earlier reopen failed.
    fn needs_reopen(&self) -> bool {
        let open = self.open.read().unwrap_or_else(|p| p.into_inner());
        let Some(database) = open.as_ref() else {
            return true;
        };
        // A write transaction that is begun and dropped writes nothing;
        // redb refuses to begin one once an I/O error is latched.
        match database.begin_write() {
            Ok(txn) => {
                let _ = txn.abort();
                false
            }
            Err(redb::TransactionError::Storage(redb::StorageError::PreviousIo)) => true,
            Err(redb::TransactionError::Storage(redb::StorageError::Io(_))) => true,
            Err(_) => false,
        }
    }

    fn due_for_attempt(&self) -> bool {
        let mut last = self.last_attempt.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < REOPEN_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }

    fn volume_has_room(&self) -> bool {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        free_bytes(dir).is_none_or(|free| free >= ROOM_TO_REOPEN)
    }
}

/// Bytes an unprivileged process may still write on the volume holding
/// `dir`, if the system says.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `stats` is written by the call
    // before it is read, only when the call succeeds.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    Some((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

/// The open database, borrowed for one call.
pub(crate) struct DatabaseGuard<'a>(RwLockReadGuard<'a, Option<Database>>);

impl std::ops::Deref for DatabaseGuard<'_> {
    type Target = Database;

    fn deref(&self) -> &Database {
        match self.0.as_ref() {
            Some(database) => database,
            // `database()` hands out a guard only over an open database,
            // and nothing can close it while the guard is held.
            None => unreachable!("a DatabaseGuard over a closed file"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_space_of_a_real_directory_is_known() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(free_bytes(dir.path()).is_some_and(|free| free > 0));
    }

    #[test]
    fn a_healthy_file_is_not_reopened_and_keeps_its_data() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("t.redb");
        let database = RedbFile::open_database(&path, 1 << 20).expect("open");
        let file = RedbFile::new(database, &path, 1 << 20);
        const T: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("t");
        {
            let db = file.database().expect("open");
            let txn = db.begin_write().expect("write");
            txn.open_table(T)
                .expect("table")
                .insert("k", 7)
                .expect("insert");
            txn.commit().expect("commit");
        }
        assert!(!file.recover_if_latched());
        let txn = file.begin_read().expect("read");
        let table = txn.open_table(T).expect("table");
        assert_eq!(table.get("k").expect("get").map(|v| v.value()), Some(7));
    }
}
