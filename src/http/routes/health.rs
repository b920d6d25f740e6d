//! `GET /healthz`: public readiness probe.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::http::state::AppState;
use crate::http::wire::Status;

pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Status>) {
    match state.services.store_answers() {
        true => (StatusCode::OK, Json(Status { status: "ok" })),
        false => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Status {
                status: "unavailable",
            }),
        ),
    }
}
