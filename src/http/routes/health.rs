//! `GET /healthz`: public readiness probe.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::http::state::AppState;

pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store = state.store.clone();
    let readable = tokio::task::spawn_blocking(move || store.ping()).await;
    match readable {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ok"}))),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable"})),
        ),
    }
}
