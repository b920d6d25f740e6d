//! `GET /metrics`: the Prometheus text exposition of [`crate::metrics`],
//! for the operator's token on the main listener, or open on the separate
//! `metrics.listen` address.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;
use crate::http::extract::Operator;
use crate::http::state::AppState;
use crate::metrics::METRICS;

pub async fn metrics(_: Operator, state: State<AppState>) -> Result<Response, ApiError> {
    open_metrics(state).await
}

/// The same on `metrics.listen`, which serves nothing else.
pub async fn open_metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let gauges = state.services.metrics_gauges().await?;
    let mut response = METRICS.render(&gauges).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
