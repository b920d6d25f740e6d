//! `GET /healthz`: public readiness probe.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::http::state::AppState;

/// One point read, inline: a hop to the blocking pool would cost more than
/// the read, and the probe is the floor the benchmarks measure against.
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.ping() {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok"}))),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable"})),
        ),
    }
}
