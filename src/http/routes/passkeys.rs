//! Passkeys: the discoverable sign-in (`/webauthn/login/options`,
//! `/webauthn/login`, and `/ui/api/passkey` for the browser's cookie), and
//! adding a first passkey through an operator's enrollment link
//! (`/webauthn/enroll/options`, `/webauthn/enroll`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use crate::http::error::ApiError;
use crate::http::extract::{AppJson, Client};
use crate::http::routes::ui::signed_in;
use crate::http::state::AppState;
use crate::service::passkey_assertions::PasskeySignInOptions;
use crate::service::passkey_login::PasskeySignIn;
use crate::service::sessions::SessionKind;
use crate::service::tokens::TokenGrant;
use crate::service::webauthn::{RegistrationOptions, WebauthnKeyView};
use crate::service::ServiceError;

/// `POST /webauthn/login/options`: no identity needed.
pub async fn sign_in_options(
    State(state): State<AppState>,
    Client(context): Client,
) -> Result<Json<PasskeySignInOptions>, ApiError> {
    Ok(Json(
        state.services.passkey_sign_in_options(&context).await?,
    ))
}

#[derive(Deserialize)]
pub struct SignInBody {
    ceremony_id: Option<String>,
    /// The browser's `PublicKeyCredential.toJSON()` of the assertion.
    credential: Option<Box<PublicKeyCredential>>,
    org: Option<String>,
    /// `openid` asks for an ID token as well, as at `/login`.
    scope: Option<String>,
    client_id: Option<String>,
    nonce: Option<String>,
}

impl SignInBody {
    fn into_request(self) -> Result<PasskeySignIn, ApiError> {
        let ceremony_id = self
            .ceremony_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ServiceError::field("ceremony_id", "is required"))?;
        let assertion = self
            .credential
            .ok_or_else(|| ServiceError::field("credential", "is required"))?;
        Ok(PasskeySignIn {
            ceremony_id,
            assertion: *assertion,
            org: self.org,
            grant: TokenGrant {
                scope: self.scope,
                client_id: self.client_id,
                nonce: self.nonce,
                auth_time: 0,
                amr: Vec::new(),
                method: None,
            },
        })
    }
}

/// `POST /webauthn/login`: the token set of `/login`.
pub async fn sign_in(
    State(state): State<AppState>,
    Client(context): Client,
    AppJson(body): AppJson<SignInBody>,
) -> Result<Response, ApiError> {
    let tokens = state
        .services
        .passkey_sign_in(body.into_request()?, SessionKind::Refreshable, &context)
        .await?;
    Ok(Json(tokens).into_response())
}

/// `POST /ui/api/passkey`: the same for the browser, answered with the
/// session cookie.
pub async fn ui_sign_in(
    State(state): State<AppState>,
    Client(context): Client,
    AppJson(body): AppJson<SignInBody>,
) -> Result<Response, ApiError> {
    let tokens = state
        .services
        .passkey_sign_in(body.into_request()?, SessionKind::Browser, &context)
        .await?;
    signed_in(&state, tokens).await
}

#[derive(Deserialize)]
pub struct LinkBody {
    token: Option<String>,
}

fn link_token(token: Option<String>) -> Result<String, ApiError> {
    Ok(token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ServiceError::field("token", "is required"))?)
}

/// `POST /webauthn/enroll/options {token}`: creation options for a passkey.
pub async fn enroll_options(
    State(state): State<AppState>,
    AppJson(body): AppJson<LinkBody>,
) -> Result<Json<RegistrationOptions>, ApiError> {
    let token = link_token(body.token)?;
    Ok(Json(state.services.passkey_link_options(&token).await?))
}

#[derive(Deserialize)]
pub struct EnrollBody {
    token: Option<String>,
    ceremony_id: String,
    name: Option<String>,
    /// The browser's `PublicKeyCredential.toJSON()` of the new credential.
    credential: Box<RegisterPublicKeyCredential>,
}

/// `POST /webauthn/enroll`: 201 with the stored passkey; the link is spent.
pub async fn enroll(
    State(state): State<AppState>,
    Client(context): Client,
    AppJson(body): AppJson<EnrollBody>,
) -> Result<(StatusCode, Json<WebauthnKeyView>), ApiError> {
    let token = link_token(body.token)?;
    let key = state
        .services
        .finish_passkey_link(
            &token,
            body.ceremony_id,
            body.name,
            *body.credential,
            &context,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(key)))
}
