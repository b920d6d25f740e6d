//! The OAuth 2.0 / OpenID Connect surface: `POST /oauth/token` (refresh
//! grant), `/oauth/revoke` (RFC 7009), `/oauth/introspect` (RFC 7662),
//! `POST /logout`, and the discovery document.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::http::error::ApiError;
use crate::http::extract::{bearer_token_in, AppForm, Client, Operator};
use crate::http::state::AppState;
use crate::service::refresh::{Introspection, RefreshError};
use crate::service::ServiceError;

#[derive(Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    refresh_token: Option<String>,
}

fn oauth_error(code: &'static str, description: &'static str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, description)
}

pub async fn token(
    State(state): State<AppState>,
    Client(context): Client,
    AppForm(body): AppForm<TokenRequest>,
) -> Result<Response, ApiError> {
    let grant_type = body
        .grant_type
        .filter(|g| !g.is_empty())
        .ok_or_else(|| oauth_error("invalid_request", "grant_type is required"))?;
    if grant_type != "refresh_token" {
        return Err(oauth_error(
            "unsupported_grant_type",
            "only grant_type=refresh_token is supported here",
        ));
    }
    let presented = body
        .refresh_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| oauth_error("invalid_request", "refresh_token is required"))?;
    match state.services.refresh(&presented, &context).await {
        Ok(tokens) => Ok(Json(tokens).into_response()),
        Err(RefreshError::Refused(_)) => Err(oauth_error(
            "invalid_grant",
            "the refresh token is invalid, expired, revoked or already used",
        )),
        Err(RefreshError::Service(error)) => Err(error.into()),
    }
}

#[derive(Deserialize)]
pub struct TokenParameter {
    token: Option<String>,
}

/// RFC 7009: 200 whether or not the token was known.
pub async fn revoke(
    State(state): State<AppState>,
    Client(context): Client,
    AppForm(body): AppForm<TokenParameter>,
) -> Result<StatusCode, ApiError> {
    let token = body
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| oauth_error("invalid_request", "token is required"))?;
    state.services.revoke_token(&token, &context).await?;
    Ok(StatusCode::OK)
}

/// RFC 7662, for the operator (and, later, OAuth clients).
pub async fn introspect(
    _: Operator,
    State(state): State<AppState>,
    AppForm(body): AppForm<TokenParameter>,
) -> Result<Response, ApiError> {
    let token = body
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| oauth_error("invalid_request", "token is required"))?;
    let answer: Introspection = state.services.introspect(&token).await?;
    Ok(Json(answer).into_response())
}

#[derive(Deserialize, Default)]
pub struct LogoutForm {
    refresh_token: Option<String>,
}

/// Ends the session of a Bearer access token, or of a form `refresh_token`.
pub async fn logout(
    State(state): State<AppState>,
    Client(context): Client,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    if let Some(token) = bearer_token_in(&headers)? {
        let claims = state
            .services
            .verify_access_token(token, state.services.clock.now())
            .await?;
        state
            .services
            .logout_session(claims.sid, "logout", &context)
            .await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    let form: LogoutForm = if body.is_empty() {
        LogoutForm::default()
    } else {
        serde_urlencoded::from_bytes(&body).map_err(|_| {
            ApiError::bad_request("expected an application/x-www-form-urlencoded body")
        })?
    };
    let refresh_token = form
        .refresh_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::from(ServiceError::field(
                "refresh_token",
                "send a Bearer access token or a refresh_token",
            ))
        })?;
    state
        .services
        .logout_refresh_token(&refresh_token, "logout", &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The OpenID Connect discovery document: only what authd serves today.
#[derive(Serialize)]
pub struct Discovery {
    issuer: String,
    jwks_uri: String,
    token_endpoint: String,
    revocation_endpoint: String,
    introspection_endpoint: String,
    end_session_endpoint: String,
    grant_types_supported: &'static [&'static str],
    response_types_supported: &'static [&'static str],
    subject_types_supported: &'static [&'static str],
    id_token_signing_alg_values_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: &'static [&'static str],
    revocation_endpoint_auth_methods_supported: &'static [&'static str],
    introspection_endpoint_auth_methods_supported: &'static [&'static str],
    scopes_supported: &'static [&'static str],
    claims_supported: &'static [&'static str],
}

pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    let base = state.config.server.public_url.trim_end_matches('/');
    let endpoint = |path: &str| format!("{base}{path}");
    let discovery = Discovery {
        issuer: state.config.server.public_url.clone(),
        jwks_uri: endpoint("/.well-known/jwks.json"),
        token_endpoint: endpoint("/oauth/token"),
        revocation_endpoint: endpoint("/oauth/revoke"),
        introspection_endpoint: endpoint("/oauth/introspect"),
        end_session_endpoint: endpoint("/logout"),
        grant_types_supported: &["refresh_token"],
        response_types_supported: &[],
        subject_types_supported: &["public"],
        id_token_signing_alg_values_supported: [crate::service::keys::configured_algorithm(
            &state.config,
        )
        .as_str()],
        token_endpoint_auth_methods_supported: &["none"],
        revocation_endpoint_auth_methods_supported: &["none"],
        introspection_endpoint_auth_methods_supported: &["bearer"],
        scopes_supported: &["openid", "email", "profile"],
        claims_supported: &[
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "nbf",
            "jti",
            "auth_time",
            "nonce",
            "email",
            "email_verified",
            "name",
            "roles",
            "org",
            "sid",
        ],
    };
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        Json(discovery),
    )
        .into_response()
}
