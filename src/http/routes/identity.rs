//! The identity endpoints a person's browser or app calls: `POST /register`,
//! `POST /login`, `GET /.well-known/jwks.json`, and account recovery
//! (`POST /password/forgot`, `POST /password/reset`, `POST /email/verify`).

use crate::http::wire::Status;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use webauthn_rs::prelude::PublicKeyCredential;

use crate::domain::Password;
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, Client};
use crate::http::state::AppState;
use crate::service::accounts::{NewUser, Registered};
use crate::service::login::{LoginOutcome, LoginRequest};
use crate::service::mfa_step::SecondFactor;
use crate::service::sessions::SessionKind;
use crate::service::tokens::TokenGrant;
use crate::service::{FieldError, ServiceError};

pub async fn register(
    State(state): State<AppState>,
    Client(context): Client,
    AppJson(body): AppJson<NewUser>,
) -> Result<Response, ApiError> {
    let body = NewUser {
        role: None,
        email_verified: None,
        ..body
    };
    Ok(match state.services.register(body, &context).await? {
        Registered::Created(profile) => (StatusCode::CREATED, Json(profile)).into_response(),
        Registered::PendingApproval { approval_id: _ } => (
            StatusCode::ACCEPTED,
            Json(Status {
                status: "pending_approval",
            }),
        )
            .into_response(),
    })
}

#[derive(Deserialize)]
pub struct LoginBody {
    email: Option<String>,
    password: Option<Password>,
    org: Option<String>,
    /// `openid` asks for an ID token as well.
    scope: Option<String>,
    client_id: Option<String>,
    nonce: Option<String>,
}

impl LoginBody {
    /// The login request, or 400 naming each missing field.
    pub fn into_request(self) -> Result<LoginRequest, ApiError> {
        let body = self;
        let missing: Vec<FieldError> = [
            ("email", body.email.is_none()),
            ("password", body.password.is_none()),
        ]
        .into_iter()
        .filter(|(_, absent)| *absent)
        .map(|(field, _)| FieldError {
            field,
            message: "is required".into(),
        })
        .collect();
        let (Some(email), Some(password)) = (body.email, body.password) else {
            return Err(ServiceError::InvalidFields(missing).into());
        };
        Ok(LoginRequest {
            email,
            password,
            org: body.org,
            grant: TokenGrant {
                scope: body.scope,
                client_id: body.client_id,
                nonce: body.nonce,
                auth_time: 0,
                amr: Vec::new(),
                method: None,
            },
        })
    }
}

pub async fn login(
    State(state): State<AppState>,
    Client(context): Client,
    AppJson(body): AppJson<LoginBody>,
) -> Result<Response, ApiError> {
    let tokens = state
        .services
        .login(body.into_request()?, SessionKind::Refreshable, &context)
        .await?;
    Ok(match tokens {
        LoginOutcome::Tokens(tokens) => Json(tokens).into_response(),
        LoginOutcome::MfaRequired(challenge) => {
            (StatusCode::ACCEPTED, Json(challenge)).into_response()
        }
    })
}

/// Public keys of every key that may still verify a live token. Cached by
/// clients for five minutes, revalidated by ETag.
pub async fn jwks(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (document, etag) = state.services.keys.jwks().await?;
    let cache = HeaderValue::from_static("public, max-age=300");
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|given| given.as_bytes() == etag.as_bytes())
    {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, cache),
            (header::ETAG, etag_value),
        ],
        document.to_string(),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct ChallengeBody {
    mfa_token: Option<String>,
    code: Option<String>,
    recovery_code: Option<String>,
    /// The browser's `PublicKeyCredential.toJSON()` of an assertion.
    webauthn: Option<Box<PublicKeyCredential>>,
}

impl ChallengeBody {
    /// The `mfa_token` and the one second factor sent with it.
    pub fn into_factor(self) -> Result<(String, SecondFactor), ApiError> {
        let token = self
            .mfa_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::from(ServiceError::field("mfa_token", "is required")))?;
        let factor = match (self.code, self.recovery_code, self.webauthn) {
            (Some(code), None, None) => SecondFactor::Code(code),
            (None, Some(code), None) => SecondFactor::RecoveryCode(code),
            (None, None, Some(assertion)) => SecondFactor::Webauthn(assertion),
            _ => {
                return Err(ServiceError::field(
                    "code",
                    "send exactly one of code, recovery_code or webauthn",
                )
                .into())
            }
        };
        Ok((token, factor))
    }
}

/// `POST /mfa/challenge {mfa_token, code | recovery_code | webauthn}`.
pub async fn mfa_challenge(
    State(state): State<AppState>,
    Client(context): Client,
    AppJson(body): AppJson<ChallengeBody>,
) -> Result<Response, ApiError> {
    let (token, factor) = body.into_factor()?;
    let tokens = state
        .services
        .complete_mfa_challenge(&token, factor, SessionKind::Refreshable, &context)
        .await?;
    Ok(Json(tokens).into_response())
}

#[derive(Deserialize)]
pub struct WebauthnOptionsBody {
    mfa_token: Option<String>,
}

/// `POST /mfa/webauthn/options {mfa_token}`: what `navigator.credentials.get`
/// needs to sign for this login.
pub async fn webauthn_options(
    State(state): State<AppState>,
    AppJson(body): AppJson<WebauthnOptionsBody>,
) -> Result<Response, ApiError> {
    let token = body
        .mfa_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::from(ServiceError::field("mfa_token", "is required")))?;
    let options = state.services.webauthn_login_options(&token).await?;
    Ok(Json(options).into_response())
}

#[derive(Deserialize)]
pub struct ForgotBody {
    email: Option<String>,
    org: Option<String>,
}

/// `POST /password/forgot {email, org?}`: 202 and the same body for every
/// email; a reset link goes out by mail when the account may have one.
pub async fn forgot_password(
    State(state): State<AppState>,
    Client(context): Client,
    AppJson(body): AppJson<ForgotBody>,
) -> Result<Response, ApiError> {
    let answer = state
        .services
        .forgot_password(body.email, body.org, &context)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

#[derive(Deserialize)]
pub struct ResetBody {
    token: Option<String>,
    new_password: Option<Password>,
}

/// `POST /password/reset {token, new_password}`: 204; every session of the
/// account has ended, so the person signs in again with the new password.
pub async fn reset_password(
    State(state): State<AppState>,
    Client(context): Client,
    AppJson(body): AppJson<ResetBody>,
) -> Result<StatusCode, ApiError> {
    let (Some(token), Some(new_password)) = (body.token, body.new_password) else {
        return Err(ServiceError::field("token", "token and new_password are required").into());
    };
    state
        .services
        .reset_password(&token, new_password, &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct VerifyEmailBody {
    token: Option<String>,
}

/// `POST /email/verify {token}`: the verification link's page confirms; 204.
pub async fn verify_email(
    State(state): State<AppState>,
    Client(context): Client,
    AppJson(body): AppJson<VerifyEmailBody>,
) -> Result<StatusCode, ApiError> {
    let token = body
        .token
        .ok_or_else(|| ApiError::from(ServiceError::field("token", "is required")))?;
    state.services.confirm_email(&token, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}
