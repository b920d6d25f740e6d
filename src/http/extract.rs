//! Extractors that turn a raw request into typed, checked inputs: JSON bodies
//! with our error shape, and the operator's bearer token.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::state::AppState;

/// `Json<T>` whose rejections (wrong content type, malformed JSON, bad UTF-8,
/// missing fields, too large) are rendered by [`ApiError`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(AppJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a JSON body with 'Content-Type: application/json'",
        ),
        JsonRejection::JsonDataError(error) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            // serde's message names the field and what was expected; it
            // never echoes the value of a string field.
            format!(
                "invalid JSON body: {}",
                error.body_text().trim_start_matches(
                    "Failed to deserialize the JSON body into the target type: "
                )
            ),
        ),
        JsonRejection::JsonSyntaxError(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "malformed JSON body",
        ),
        JsonRejection::BytesRejection(rejection)
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
        {
            ApiError::from_status(StatusCode::PAYLOAD_TOO_LARGE)
        }
        other => ApiError::new(
            other.status(),
            "invalid_body",
            "could not read the request body",
        ),
    }
}

/// The bearer credential of a request, if it has one.
pub fn bearer_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_authorization())?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(ApiError::invalid_authorization)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::invalid_authorization());
    }
    Ok(Some(token.trim()))
}

/// Proof that the request carries the operator's admin token.
#[derive(Debug, Clone, Copy)]
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)?.ok_or_else(ApiError::missing_authorization)?;
        if state.admin_token.verify(token) {
            Ok(Operator)
        } else {
            Err(ApiError::invalid_authorization())
        }
    }
}
