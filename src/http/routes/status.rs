//! `GET /v1/status`: what an operator checks first.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::admin_token::TokenSource;
use crate::http::error::ApiError;
use crate::http::extract::Operator;
use crate::http::state::AppState;
use crate::service::keys::KeyInfo;
use crate::service::status::DatabaseStatus;

#[derive(Serialize)]
pub struct StatusResponse {
    version: &'static str,
    uptime_seconds: u64,
    database: DatabaseStatus,
    counts: TableCountsView,
    signing_keys: Vec<KeyInfo>,
    admin_token_source: &'static str,
}

/// The counts as the store reports them.
type TableCountsView = crate::service::status::TableCounts;

pub async fn status(
    _: Operator,
    State(state): State<AppState>,
) -> Result<Json<StatusResponse>, ApiError> {
    let database = state.services.database_status().await?;
    let signing_keys = state.services.keys.list().await?;
    Ok(Json(StatusResponse {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started_at.elapsed().as_secs(),
        counts: database.counts,
        database,
        signing_keys,
        admin_token_source: match state.admin_token.source() {
            TokenSource::Environment => "environment",
            TokenSource::File(_) => "file",
        },
    }))
}
