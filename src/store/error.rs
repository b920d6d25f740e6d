//! What can go wrong below the service layer. Callers learn *what* failed;
//! the redb details stay in the message for the log.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path} is locked by another process (is another authd running on this data dir?)", path = .path.display())]
    Locked { path: PathBuf },
    #[error("database {path} has schema version {found}, newer than this authd understands ({supported}); run a newer authd or restore a backup", path = .path.display())]
    SchemaTooNew {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error("cannot open database {path}: {source}", path = .path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Database(#[from] redb::Error),
    #[error("stored record under {key:?} is unreadable: {message}")]
    Corrupt { key: String, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The write could not be made durable, or the writer thread is gone.
    #[error("database write failed: {0}")]
    Writer(String),
}

macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for StoreError {
            fn from(error: $error) -> Self {
                StoreError::Database(error.into())
            }
        }
    )*};
}

from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type StoreResult<T> = Result<T, StoreError>;
