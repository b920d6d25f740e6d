//! What the operator's status page and the readiness probe learn of the
//! store: a point read that proves it answers, the file and its counts,
//! the live feed of audit records; and the page-cache warm-up after start.

use serde::Serialize;

use super::{ServiceError, ServiceResult, Services};
use crate::audit::AuditRecord;
pub use crate::store::TableCounts;
use crate::store::{BackendStatus, CacheStatus};

/// The database as `/v1/status` shows it.
#[derive(Debug, Serialize)]
pub struct DatabaseStatus {
    /// Which backend, where, and whether it answers.
    pub backend: BackendStatus,
    pub path: String,
    pub size_bytes: u64,
    pub schema_version: u64,
    pub page_cache: CacheStatus,
    /// Not part of the `database` object: the status page shows it apart.
    #[serde(skip)]
    pub counts: TableCounts,
}

impl Services {
    /// One point read, inline: a hop to the blocking pool would cost more
    /// than the read, and the probe is the floor the benchmarks measure.
    pub fn store_answers(&self) -> bool {
        self.store.ping().is_ok()
    }

    pub async fn database_status(&self) -> ServiceResult<DatabaseStatus> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            Ok(DatabaseStatus {
                backend: store.backend_status(),
                path: store.path().display().to_string(),
                size_bytes: store.file_size_bytes(),
                schema_version: store.schema_version()?,
                page_cache: store.cache_status(),
                counts: store.counts()?,
            })
        })
        .await
        .map_err(ServiceError::internal)?
    }

    /// What `/metrics` reports besides its counters: a file size and one
    /// table length (kept in the table's header: no scan).
    pub async fn metrics_gauges(&self) -> ServiceResult<crate::metrics::Gauges> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            Ok(crate::metrics::Gauges {
                db_size_bytes: store.file_size_bytes(),
                sessions: store.counts()?.sessions,
            })
        })
        .await
        .map_err(ServiceError::internal)?
    }

    /// Reads the request-path tables into the page cache while `keep_going`
    /// says so; blocking. Returns the bytes read.
    pub fn warm_store_cache(&self, keep_going: impl Fn() -> bool) -> ServiceResult<u64> {
        Ok(self.store.warm_cache(keep_going)?)
    }

    /// Every audit record from now on, as it is committed.
    pub fn audit_feed(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<AuditRecord>> {
        self.store.subscribe_audit()
    }
}
