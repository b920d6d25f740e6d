//! `GET /v1/status`: what an operator checks first.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::admin_token::TokenSource;
use crate::http::error::ApiError;
use crate::http::extract::Operator;
use crate::http::state::AppState;
use crate::service::keys::KeyInfo;
use crate::store::{CacheStatus, StoreError, TableCounts};

#[derive(Serialize)]
pub struct StatusResponse {
    version: &'static str,
    uptime_seconds: u64,
    database: DatabaseStatus,
    counts: TableCounts,
    signing_keys: Vec<KeyInfo>,
    admin_token_source: &'static str,
}

#[derive(Serialize)]
struct DatabaseStatus {
    path: String,
    size_bytes: u64,
    schema_version: u64,
    page_cache: CacheStatus,
}

pub async fn status(
    _: Operator,
    State(state): State<AppState>,
) -> Result<Json<StatusResponse>, ApiError> {
    let store = state.store.clone();
    let (schema_version, size_bytes, counts) = tokio::task::spawn_blocking(move || {
        Ok::<_, StoreError>((
            store.schema_version()?,
            store.file_size_bytes(),
            store.counts()?,
        ))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let signing_keys = state.services.keys.list().await?;
    Ok(Json(StatusResponse {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started_at.elapsed().as_secs(),
        database: DatabaseStatus {
            path: state.store.path().display().to_string(),
            size_bytes,
            schema_version,
            page_cache: state.store.cache_status(),
        },
        counts,
        signing_keys,
        admin_token_source: match state.admin_token.source() {
            TokenSource::Environment => "environment",
            TokenSource::File(_) => "file",
        },
    }))
}
