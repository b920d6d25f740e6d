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
    /// The PostgreSQL database cannot be reached (or refused the
    /// connection); the request may be retried once it is back.
    #[error("{what} is unavailable: {reason}")]
    Unavailable { what: String, reason: String },
    /// PostgreSQL answered with an error.
    #[error("database error: {0}")]
    Postgres(String),
}

impl StoreError {
    /// Whether this failure is the database being out of reach (or out of
    /// space), which a client may retry, rather than a fault.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let reason = match error.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => error.to_string(),
        };
        let lost = error.is_closed()
            || error.as_db_error().is_none()
            || matches!(
                error.code(),
                Some(code) if *code == SqlState::ADMIN_SHUTDOWN
                    || *code == SqlState::CANNOT_CONNECT_NOW
                    || *code == SqlState::DISK_FULL
                    || *code == SqlState::TOO_MANY_CONNECTIONS
                    || code.code().starts_with("08")
            );
        if lost {
            StoreError::Unavailable {
                what: "the PostgreSQL database".into(),
                reason,
            }
        } else {
            StoreError::Postgres(reason)
        }
    }
}

impl StoreError {
    /// The volume is full (or a quota or file-size limit was hit), or redb
    /// refuses writes after such a failure ("previous I/O error"): what an
    /// operator fixes by freeing space, not a bug.
    pub fn is_storage_full(&self) -> bool {
        let full = |error: &std::io::Error| {
            error.kind() == std::io::ErrorKind::StorageFull
                || error.kind() == std::io::ErrorKind::QuotaExceeded
                || error.kind() == std::io::ErrorKind::FileTooLarge
        };
        match self {
            StoreError::Database(redb::Error::Io(error)) | StoreError::Io(error) => full(error),
            StoreError::Database(redb::Error::PreviousIo) => true,
            // The group commit's last fsync failed; its reason is text.
            StoreError::Writer(reason) => {
                reason.contains("No space left on device") || reason.contains("Previous I/O error")
            }
            _ => false,
        }
    }

    /// The file is damaged: redb found its structure broken (truncated,
    /// overwritten) or a record does not decode.
    pub fn is_corrupt(&self) -> bool {
        match self {
            StoreError::Database(redb::Error::Corrupted(_)) | StoreError::Corrupt { .. } => true,
            // redb's "not a database": the header is gone.
            StoreError::Database(redb::Error::Io(error))
            | StoreError::Open { source: error, .. } => {
                error.kind() == std::io::ErrorKind::InvalidData
            }
            _ => false,
        }
    }

    /// The file or its directory cannot be written: a read-only mount, or
    /// files that belong to another user.
    pub fn is_not_writable(&self) -> bool {
        let refused = |error: &std::io::Error| {
            matches!(
                error.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            )
        };
        match self {
            StoreError::Open { source, .. } | StoreError::Io(source) => refused(source),
            StoreError::Database(redb::Error::Io(error)) => refused(error),
            _ => false,
        }
    }
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
