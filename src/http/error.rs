//! The one error type of the HTTP layer and the one place that decides what a
//! client sees. Handlers return [`ApiError`]; [`render_error_bodies`] gives it
//! the body shape of the API family the request belongs to:
//!
//! | family          | paths                 | body                                              |
//! |-----------------|-----------------------|---------------------------------------------------|
//! | operator        | `/v1/…`, `/healthz`   | `{"error": "<sentence>"}`                         |
//! | control plane   | `/api/v1/…`           | `{"error": "CODE", "message"?: "<sentence>"}`     |
//! | OAuth           | `/oauth/…`            | `{"error": "code", "error_description": "…"}`     |
//! | identity (IdP)  | everything else       | `{"error": "code", "message": "<sentence>"}`      |
//!
//! Extra detail fields (`violations`, `fields`, `required`) are added to every
//! family. Internal errors tell the client only "internal error"; their cause
//! is logged here, once, with the request id.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::service::ServiceError;

/// What a 503 for a full disk asks a client to wait.
const STORAGE_RETRY_AFTER_SECONDS: u64 = 30;
/// What a client is told to wait while the PostgreSQL database is away (a
/// restart or a failover takes seconds).
const DATABASE_RETRY_AFTER_SECONDS: u64 = 5;

#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: Option<Cow<'static, str>>,
    details: Map<String, Value>,
    retry_after_seconds: Option<u64>,
    /// The cause of an internal error, for the log only.
    cause: Option<Arc<str>>,
}

/// Which body shape a request's errors take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFamily {
    Operator,
    ControlPlane,
    OAuth,
    Identity,
}

impl ErrorFamily {
    pub fn of_path(path: &str) -> ErrorFamily {
        let under = |prefix: &str| {
            path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        if under("/api/v1") {
            ErrorFamily::ControlPlane
        } else if under("/v1") || path == "/healthz" || path == "/metrics" {
            ErrorFamily::Operator
        } else if under("/oauth") {
            ErrorFamily::OAuth
        } else {
            ErrorFamily::Identity
        }
    }
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message: Some(message.into()),
            details: Map::new(),
            retry_after_seconds: None,
            cause: None,
        }
    }

    /// An error whose code says everything (`{"error":"ORG_REQUIRED"}`).
    pub fn bare(status: StatusCode, code: &'static str) -> Self {
        Self {
            message: None,
            ..Self::new(status, code, "")
        }
    }

    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_seconds = Some(seconds.max(1));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "not found")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed",
        )
    }

    pub fn missing_authorization() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "missing_authorization",
            "missing authorization header",
        )
    }

    pub fn invalid_authorization() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "invalid authorization token",
        )
    }

    /// Logs `cause` (never shown to the client) and answers 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self {
            cause: Some(Arc::from(cause.to_string())),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error",
            )
        }
    }

    /// An error for a bare status produced below our handlers (body limit,
    /// timeout, the router's own 404/405).
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::not_found(),
            StatusCode::METHOD_NOT_ALLOWED => Self::method_not_allowed(),
            StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(status, "payload_too_large", "request body too large")
            }
            StatusCode::REQUEST_TIMEOUT => Self::new(status, "timeout", "request timed out"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Self::new(status, "unsupported_media_type", "unsupported content type")
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                Self::new(status, "unavailable", "service unavailable")
            }
            other if other.is_server_error() => Self::internal(format!("status {other}")),
            other => Self::new(
                other,
                "invalid_request",
                other
                    .canonical_reason()
                    .unwrap_or("request failed")
                    .to_ascii_lowercase(),
            ),
        }
    }

    fn body(&self, family: ErrorFamily) -> Value {
        let message = self.message.as_deref();
        let mut body = Map::new();
        match family {
            ErrorFamily::Operator => {
                body.insert("error".into(), message.unwrap_or(self.code).into());
            }
            ErrorFamily::ControlPlane => {
                body.insert("error".into(), self.code.to_ascii_uppercase().into());
                if let Some(message) = message {
                    body.insert("message".into(), message.into());
                }
            }
            ErrorFamily::OAuth => {
                body.insert("error".into(), self.code.into());
                if let Some(message) = message {
                    body.insert("error_description".into(), message.into());
                }
            }
            ErrorFamily::Identity => {
                body.insert("error".into(), self.code.into());
                if let Some(message) = message {
                    body.insert("message".into(), message.into());
                }
            }
        }
        for (key, value) in &self.details {
            body.insert(key.clone(), value.clone());
        }
        Value::Object(body)
    }

    fn render(&self, family: ErrorFamily) -> Response {
        let mut response = (self.status, axum::Json(self.body(family))).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after_seconds {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED && family == ErrorFamily::OAuth {
            // RFC 6749 §5.2: a failed client authentication names the scheme
            // the client may use; a bad bearer token names Bearer (RFC 6750).
            let scheme = if self.code == "invalid_client" {
                "Basic realm=\"authd\""
            } else {
                "Bearer"
            };
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::InvalidFields(fields) => {
                let names: Vec<&str> = fields.iter().map(|f| f.field).collect();
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("invalid fields: {}", names.join(", ")),
                )
                .with_detail("fields", serde_json::to_value(fields).unwrap_or_default())
            }
            ServiceError::InvalidPassword(violations) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_password",
                "the password does not meet the password policy",
            )
            .with_detail(
                "violations",
                violations.iter().map(|v| v.code()).collect::<Vec<_>>(),
            ),
            ServiceError::EmailTaken => ApiError::new(
                StatusCode::CONFLICT,
                "email_taken",
                "an account with this email already exists in this org",
            ),
            ServiceError::RegistrationClosed => ApiError::new(
                StatusCode::FORBIDDEN,
                "registration_closed",
                "this org does not accept sign-ups",
            ),
            ServiceError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "invalid email or password",
            ),
            ServiceError::RateLimited {
                retry_after_seconds,
            } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many attempts; retry in {retry_after_seconds} seconds"),
            )
            .with_retry_after(retry_after_seconds)
            .with_detail("retry_after", retry_after_seconds),
            ServiceError::InvalidToken => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the access token is invalid, expired or revoked",
            ),
            ServiceError::InsufficientScope(scope) => {
                ApiError::bare(StatusCode::FORBIDDEN, "insufficient_scope")
                    .with_detail("required", scope.as_str())
            }
            ServiceError::InvalidMfaToken => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_mfa_token",
                "the mfa_token is unknown, expired or used up; log in again",
            ),
            ServiceError::InvalidMfaCode => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_mfa_code",
                "the code is not valid",
            ),
            ServiceError::MfaEnrollmentRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                "mfa_enrollment_required",
                "this org requires multi-factor authentication: enroll at /api/account/mfa/enroll first",
            ),
            ServiceError::MfaRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                "mfa_required",
                "this org requires a second factor: sign in to it again with your second factor",
            ),
            ServiceError::InvalidSignature => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                "invalid or expired signature",
            ),
            ServiceError::InvalidLink => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_link",
                "this link is invalid, expired or already used; ask for a new one",
            ),
            ServiceError::OrgRequired => ApiError::bare(StatusCode::BAD_REQUEST, "org_required"),
            ServiceError::Forbidden => ApiError::bare(StatusCode::FORBIDDEN, "forbidden"),
            ServiceError::NotFound(what) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            ServiceError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            ServiceError::OAuth { code, description } => ApiError::new(
                match code {
                    "invalid_client" => StatusCode::UNAUTHORIZED,
                    // RFC 6750 §3.1: a token without the scope a resource needs.
                    "insufficient_scope" => StatusCode::FORBIDDEN,
                    _ => StatusCode::BAD_REQUEST,
                },
                code,
                description,
            ),
            ServiceError::Unavailable(cause) => ApiError {
                cause: Some(Arc::from(cause.as_str())),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable; try again shortly",
                )
                .with_retry_after(DATABASE_RETRY_AFTER_SECONDS)
            },
            ServiceError::StorageUnavailable(cause) => ApiError {
                cause: Some(Arc::from(format!("{cause:#}"))),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the server cannot write to its database (is the disk full?); nothing was changed, try again later",
                )
                .with_retry_after(STORAGE_RETRY_AFTER_SECONDS)
            },
            ServiceError::Internal(cause) => ApiError::internal(format!("{cause:#}")),
        }
    }
}

impl IntoResponse for ApiError {
    /// Renders the identity family and leaves the error in the response
    /// extensions, so that [`render_error_bodies`] can re-render it for the
    /// request's family and log internal causes.
    fn into_response(self) -> Response {
        let mut response = self.render(ErrorFamily::Identity);
        response.extensions_mut().insert(self);
        response
    }
}

/// Middleware: every error response leaves in the body shape of its family,
/// including responses made below the handlers (404, 405, 408, 413).
pub async fn render_error_bodies(request: Request, next: Next) -> Response {
    let family = ErrorFamily::of_path(request.uri().path());
    let response = next.run(request).await;
    if !(response.status().is_client_error() || response.status().is_server_error()) {
        return response;
    }
    let error = match response.extensions().get::<ApiError>() {
        Some(error) => error.clone(),
        // A body a handler wrote itself: JSON, or a page (`/oauth/authorize`'s
        // error page, which must not turn into JSON for a browser).
        None if has_own_body(&response) => return response,
        None => ApiError::from_status(response.status()),
    };
    if let Some(cause) = &error.cause {
        if error.status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(%cause, "storage unavailable: free space on the data dir's volume");
        } else {
            tracing::error!(%cause, "internal error");
        }
    }
    if family == ErrorFamily::Identity && response.extensions().get::<ApiError>().is_some() {
        return response;
    }
    let mut rendered = error.render(family);
    for (name, value) in response.headers() {
        if !rendered.headers().contains_key(name) && name != header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rendered
}

fn has_own_body(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_families() {
        for (path, family) in [
            ("/v1/status", ErrorFamily::Operator),
            ("/v1", ErrorFamily::Operator),
            ("/healthz", ErrorFamily::Operator),
            ("/v10", ErrorFamily::Identity),
            ("/api/v1/auth/login", ErrorFamily::ControlPlane),
            ("/api/account", ErrorFamily::Identity),
            ("/oauth/token", ErrorFamily::OAuth),
            ("/login", ErrorFamily::Identity),
        ] {
            assert_eq!(ErrorFamily::of_path(path), family, "{path}");
        }
    }

    #[test]
    fn each_family_has_its_shape() {
        let error = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "auth_failed",
            "Authentication failed.",
        );
        assert_eq!(
            error.body(ErrorFamily::ControlPlane).to_string(),
            r#"{"error":"AUTH_FAILED","message":"Authentication failed."}"#
        );
        assert_eq!(
            ApiError::missing_authorization()
                .body(ErrorFamily::Operator)
                .to_string(),
            r#"{"error":"missing authorization header"}"#
        );
        assert_eq!(
            ApiError::bare(StatusCode::BAD_REQUEST, "org_required")
                .body(ErrorFamily::ControlPlane)
                .to_string(),
            r#"{"error":"ORG_REQUIRED"}"#
        );
        let grant = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh token is not valid",
        );
        assert_eq!(
            grant.body(ErrorFamily::OAuth).to_string(),
            r#"{"error":"invalid_grant","error_description":"refresh token is not valid"}"#
        );
        let password = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_password",
            "password rejected",
        )
        .with_detail("violations", vec!["min_length"]);
        assert_eq!(
            password.body(ErrorFamily::Identity).to_string(),
            r#"{"error":"invalid_password","message":"password rejected","violations":["min_length"]}"#
        );
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let error = ApiError::internal("disk on fire at /secret/path");
        for family in [
            ErrorFamily::Operator,
            ErrorFamily::Identity,
            ErrorFamily::OAuth,
        ] {
            assert!(!error.body(family).to_string().contains("disk"));
        }
    }
}
