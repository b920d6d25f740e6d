//! Backups and restores of the database file. A backup is a fresh redb
//! file holding every table as one read snapshot saw it (see
//! [`super::Store::backup_to`] for a running store); here are the other
//! ends: copying a file no server holds, reading what a backup contains,
//! and putting one in place of the live file.

use std::fs;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase};

use super::redb_file::verifying_builder;
use super::{copy_into, counts_of, migrations, StoreError, StoreResult, TableCounts};

/// What a backup file holds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct BackupInfo {
    pub schema_version: u64,
    pub counts: TableCounts,
}

/// Opens `path` for reading its tables, refusing one a server holds. It
/// is verified first, like the server's open: damage is an error
/// ([`StoreError::is_corrupt`]), not a panic inside redb.
fn open_unheld(path: &Path) -> StoreResult<Database> {
    verifying_builder().open(path).map_err(|error| match error {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
            path: path.to_path_buf(),
        },
        redb::DatabaseError::Storage(redb::StorageError::Io(source)) => StoreError::Open {
            path: path.to_path_buf(),
            source,
        },
        other => StoreError::Database(other.into()),
    })
}

/// Copies the database at `source`, which no server may hold (else
/// [`StoreError::Locked`]: ask the server instead), into a new file at
/// `destination` (0600). The source is read and verified, never migrated.
pub fn backup_closed_file(source: &Path, destination: &Path) -> StoreResult<BackupInfo> {
    let database = open_unheld(source)?;
    copy_into(database.begin_read()?, destination)?;
    drop(database);
    inspect_backup(destination)
}

/// The schema version and row counts of the backup at `path`.
pub fn inspect_backup(path: &Path) -> StoreResult<BackupInfo> {
    let database = open_unheld(path)?;
    Ok(BackupInfo {
        schema_version: migrations::read_version(&database)?,
        counts: counts_of(&database.begin_read()?)?,
    })
}

/// Puts the backup at `backup` in place of the database at `live`, which
/// no server may hold. A backup from a newer authd is refused; an older one
/// is migrated when the server next starts. The backup is copied (every
/// row read back, so a damaged file fails here, not at the first request)
/// into a new file beside `live`, made durable, and renamed over it; the
/// file it replaces is kept beside it, renamed, and its name returned.
pub fn restore(backup: &Path, live: &Path, now: i64) -> StoreResult<(BackupInfo, Option<PathBuf>)> {
    let info = inspect_backup(backup)?;
    if info.schema_version > migrations::CURRENT_SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: backup.to_path_buf(),
            found: info.schema_version,
            supported: migrations::CURRENT_SCHEMA_VERSION,
        });
    }
    // Holding the live file open keeps a server from starting on it while
    // it is swapped. A damaged live file, the usual reason to restore, is
    // not held: no server can start on it either.
    let live_exists = live.exists();
    let held = match live_exists.then(|| open_unheld(live)) {
        Some(Ok(database)) => Some(database),
        Some(Err(error)) if error.is_corrupt() => None,
        Some(Err(error)) => return Err(error),
        None => None,
    };
    let staged = live.with_extension("redb.restoring");
    if staged.exists() {
        fs::remove_file(&staged)?;
    }
    {
        let source = open_unheld(backup)?;
        copy_into(source.begin_read()?, &staged)?;
    }
    fs::File::open(&staged)?.sync_all()?;
    let previous = if live_exists {
        let kept = live.with_extension(format!("redb.before-restore-{now}"));
        fs::rename(live, &kept)?;
        Some(kept)
    } else {
        None
    };
    fs::rename(&staged, live)?;
    if let Some(directory) = live.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::File::open(directory)?.sync_all()?;
    }
    drop(held);
    Ok((info, previous))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tables::{write_json, META};
    use crate::store::Store;

    fn store_in(dir: &Path) -> PathBuf {
        let path = dir.join("authd.redb");
        let (store, _) = Store::open(&path, 1 << 20, 1_700_000_000).expect("open");
        drop(store);
        path
    }

    #[test]
    fn a_held_file_is_neither_copied_nor_replaced() {
        let dir = tempfile::tempdir().expect("dir");
        let live = dir.path().join("authd.redb");
        let (store, _) = Store::open(&live, 1 << 20, 1_700_000_000).expect("open");
        let copy = dir.path().join("copy.redb");
        assert!(matches!(
            backup_closed_file(&live, &copy),
            Err(StoreError::Locked { .. })
        ));
        store.backup_to(&copy).expect("online backup");
        assert!(matches!(
            restore(&copy, &live, 1),
            Err(StoreError::Locked { .. })
        ));
        drop(store);
        let (info, previous) = restore(&copy, &live, 1).expect("restore");
        assert_eq!(info.schema_version, migrations::CURRENT_SCHEMA_VERSION);
        assert!(previous.expect("kept").exists());
        Store::open(&live, 1 << 20, 1_700_000_000).expect("opens after restore");
    }

    #[test]
    fn a_backup_from_a_newer_authd_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let newer = store_in(dir.path());
        {
            let database = Database::open(&newer).expect("open");
            let txn = database.begin_write().expect("txn");
            {
                let mut meta = txn.open_table(META).expect("meta");
                write_json(
                    &mut meta,
                    migrations::SCHEMA_VERSION_KEY,
                    &(migrations::CURRENT_SCHEMA_VERSION + 1),
                )
                .expect("write");
            }
            txn.commit().expect("commit");
        }
        let live = dir.path().join("live.redb");
        assert!(matches!(
            restore(&newer, &live, 1),
            Err(StoreError::SchemaTooNew { .. })
        ));
        assert!(!live.exists(), "nothing was put in place");
    }
}
