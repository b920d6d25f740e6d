//! Backups of the running server: a consistent copy for `POST /v1/backup`
//! (which `authd backup` asks for while a server holds the file), and the
//! scheduled ones of `[backup]` with their retention.

use std::fs;
use std::path::{Path, PathBuf};

use super::{ServiceError, ServiceResult, Services};

/// The prefix and suffix of scheduled backups' names, by which old ones
/// are found and pruned.
const SCHEDULED_PREFIX: &str = "authd-";
const SCHEDULED_SUFFIX: &str = ".redb";

/// The prefix of a download's temporary copy in the data dir; its name is
/// removed as soon as the copy is open, so one that is still there was
/// being made when the process died.
const DOWNLOAD_COPY_PREFIX: &str = ".backup-";

impl Services {
    /// A consistent copy of the database, as an open file whose name is
    /// already gone (the copy is removed when the file is closed). Made in
    /// the data dir, which holds the live file and so has room and the
    /// right permissions.
    pub async fn backup_for_download(&self) -> ServiceResult<fs::File> {
        let store = self.store.clone();
        let dir = self.config().storage.data_dir.clone();
        tokio::task::spawn_blocking(move || {
            let path = dir.join(format!(
                "{DOWNLOAD_COPY_PREFIX}{}{SCHEDULED_SUFFIX}",
                ulid::Ulid::new()
            ));
            let copied = store.backup_to(&path).map_err(ServiceError::from);
            let opened =
                copied.and_then(|()| fs::File::open(&path).map_err(ServiceError::internal));
            let _ = fs::remove_file(&path);
            opened
        })
        .await
        .map_err(ServiceError::internal)?
    }

    /// Writes `<dir>/authd-<UTC time>.redb` and removes the oldest scheduled
    /// backups beyond `keep`. Returns the new file.
    pub async fn scheduled_backup(&self, dir: PathBuf, keep: usize) -> ServiceResult<PathBuf> {
        let store = self.store.clone();
        let stamp = crate::clock::rfc3339(self.clock.now()).replace(':', "");
        tokio::task::spawn_blocking(move || {
            fs::create_dir_all(&dir).map_err(ServiceError::internal)?;
            let path = dir.join(format!("{SCHEDULED_PREFIX}{stamp}{SCHEDULED_SUFFIX}"));
            store.backup_to(&path)?;
            prune(&dir, keep).map_err(ServiceError::internal)?;
            Ok(path)
        })
        .await
        .map_err(ServiceError::internal)?
    }
}

/// Removes the temporary copies of downloads a killed process left in the
/// data dir (each as big as the database). Call it while holding the
/// database, so that no running server is making one. Returns how many.
pub fn remove_abandoned_download_copies(data_dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(data_dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(DOWNLOAD_COPY_PREFIX) && name.ends_with(SCHEDULED_SUFFIX) {
            fs::remove_file(data_dir.join(name.as_ref()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes scheduled backups in `dir` beyond the newest `keep` (their names
/// sort by time).
fn prune(dir: &Path, keep: usize) -> std::io::Result<()> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(SCHEDULED_PREFIX) && name.ends_with(SCHEDULED_SUFFIX))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep.max(1));
    for name in names.into_iter().take(excess) {
        fs::remove_file(dir.join(name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_abandoned_download_copies_are_removed() {
        let dir = tempfile::tempdir().expect("dir");
        for name in [".backup-01ABC.redb", "authd.redb", "server.secret"] {
            fs::write(dir.path().join(name), b"x").expect("write");
        }
        assert_eq!(
            remove_abandoned_download_copies(dir.path()).expect("remove"),
            1
        );
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        left.sort();
        assert_eq!(left, ["authd.redb", "server.secret"]);
    }

    #[test]
    fn pruning_keeps_the_newest_and_touches_nothing_else() {
        let dir = tempfile::tempdir().expect("dir");
        for name in [
            "authd-2026-01-01T000000Z.redb",
            "authd-2026-01-02T000000Z.redb",
            "authd-2026-01-03T000000Z.redb",
            "notes.txt",
        ] {
            fs::write(dir.path().join(name), b"x").expect("write");
        }
        prune(dir.path(), 2).expect("prune");
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "authd-2026-01-02T000000Z.redb",
                "authd-2026-01-03T000000Z.redb",
                "notes.txt"
            ]
        );
    }
}
