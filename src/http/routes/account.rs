//! `/api/account`: a signed-in user's own profile, password and sessions,
//! with a session's access token or a PAT whose scope fits (`sessions.read`
//! to list, `sessions.write` to revoke; changing the password needs a
//! session).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use crate::domain::{Password, SessionId};
use crate::http::error::ApiError;
use crate::http::extract::needs::{SessionsRead, SessionsWrite};
use crate::http::extract::{
    Account, AccountScoped, AppJson, Client, EnrollingAccount, EnrollingSession, SessionOnly,
};
use crate::http::state::AppState;
use crate::http::wire::{Page, RecoveryCodes, Revoked};
use crate::service::accounts::{self, UserProfile};
use crate::service::step_up::Proof;
use crate::service::totp::Enrollment;
use crate::service::webauthn::{RegistrationOptions, WebauthnKeyView};
use crate::service::ServiceError;
use crate::store::WebauthnKind;

/// The caller's profile and, for a session, what it may do: the UI learns
/// from here whether this session may only enroll a second factor.
pub async fn profile(
    State(state): State<AppState>,
    EnrollingAccount(caller): EnrollingAccount,
) -> Result<Json<ProfileWithSession>, ApiError> {
    let profile = state.services.user_profile(caller.user_id()).await?;
    let session = caller.session().ok().map(|session| SessionState {
        enrollment_only: session.enrollment_only,
        mfa_verified: session.mfa_verified,
    });
    Ok(Json(ProfileWithSession { profile, session }))
}

#[derive(Serialize)]
pub struct ProfileWithSession {
    #[serde(flatten)]
    profile: UserProfile,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<SessionState>,
}

#[derive(Serialize)]
struct SessionState {
    enrollment_only: bool,
    mfa_verified: bool,
}

#[derive(Deserialize)]
pub struct PasswordChange {
    current_password: Password,
    new_password: Password,
    /// PATs are revoked with a password change unless this is true.
    #[serde(default)]
    keep_api_tokens: bool,
}

pub async fn change_password(
    State(state): State<AppState>,
    SessionOnly(session): SessionOnly,
    Client(context): Client,
    AppJson(body): AppJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .change_password(
            session.user_id,
            Some(session.session_id),
            accounts::PasswordChange {
                current: body.current_password,
                new: body.new_password,
                keep_pats: body.keep_api_tokens,
            },
            &context,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn sessions(
    State(state): State<AppState>,
    AccountScoped(caller, ..): AccountScoped<SessionsRead>,
) -> Result<Json<impl Serialize>, ApiError> {
    let sessions = state
        .services
        .list_sessions(caller.user_id(), caller.session_id())
        .await?;
    Ok(Json(Page::whole(sessions)))
}

pub async fn revoke_session(
    State(state): State<AppState>,
    AccountScoped(caller, ..): AccountScoped<SessionsWrite>,
    Client(context): Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = SessionId::parse(&id).ok_or(ServiceError::NotFound("session"))?;
    state
        .services
        .revoke_session(caller.user_id(), id, &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Log out everywhere, this session included.
pub async fn revoke_all(
    State(state): State<AppState>,
    AccountScoped(caller, ..): AccountScoped<SessionsWrite>,
    Client(context): Client,
) -> Result<Json<impl Serialize>, ApiError> {
    let revoked = state
        .services
        .revoke_all_sessions(caller.user_id(), None, "logout_everywhere", &context)
        .await?;
    Ok(Json(Revoked { revoked }))
}

/// Starts TOTP enrollment (session tokens only).
pub async fn mfa_enroll(
    State(state): State<AppState>,
    EnrollingSession(session): EnrollingSession,
) -> Result<Json<Enrollment>, ApiError> {
    Ok(Json(state.services.enroll_totp(session.user_id).await?))
}

#[derive(Deserialize)]
pub struct CodeBody {
    code: Option<String>,
}

/// Confirms enrollment; the recovery codes are in this answer and nowhere else.
pub async fn mfa_verify(
    State(state): State<AppState>,
    EnrollingSession(session): EnrollingSession,
    Client(context): Client,
    AppJson(body): AppJson<CodeBody>,
) -> Result<Json<impl Serialize>, ApiError> {
    let code = body
        .code
        .ok_or_else(|| ServiceError::field("code", "is required"))?;
    let codes = state
        .services
        .verify_totp_enrollment(session.user_id, Some(session.session_id), code, &context)
        .await?;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

#[derive(Deserialize)]
pub struct ProofBody {
    code: Option<String>,
    password: Option<Password>,
    /// A passkey assertion answering `/webauthn/login/options`.
    passkey: Option<PasskeyProof>,
}

#[derive(Deserialize)]
pub struct PasskeyProof {
    ceremony_id: String,
    credential: Box<PublicKeyCredential>,
}

/// A proof when the body carries one (adding a key to an account without
/// a second factor needs none).
fn optional_proof(body: ProofBody) -> Result<Option<Proof>, ApiError> {
    if body.code.is_none() && body.password.is_none() && body.passkey.is_none() {
        return Ok(None);
    }
    proof_of(body).map(Some)
}

fn proof_of(body: ProofBody) -> Result<Proof, ApiError> {
    match (body.code, body.password, body.passkey) {
        (Some(code), None, None) => Ok(Proof::Code(code)),
        (None, Some(password), None) => Ok(Proof::Password(password)),
        (None, None, Some(passkey)) => Ok(Proof::Passkey {
            ceremony_id: passkey.ceremony_id,
            assertion: passkey.credential,
        }),
        _ => Err(
            ServiceError::field("code", "send a current code, the password or a passkey").into(),
        ),
    }
}

pub async fn mfa_disable(
    State(state): State<AppState>,
    SessionOnly(session): SessionOnly,
    Client(context): Client,
    AppJson(body): AppJson<ProofBody>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .disable_mfa(session.user_id, proof_of(body)?, &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn mfa_recovery_codes(
    State(state): State<AppState>,
    SessionOnly(session): SessionOnly,
    Client(context): Client,
    AppJson(body): AppJson<ProofBody>,
) -> Result<Json<impl Serialize>, ApiError> {
    let codes = state
        .services
        .regenerate_recovery_codes(session.user_id, proof_of(body)?, &context)
        .await?;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// `GET /api/account/webauthn`: the caller's security keys and passkeys.
pub async fn webauthn_keys(
    State(state): State<AppState>,
    EnrollingSession(session): EnrollingSession,
) -> Result<Json<impl Serialize>, ApiError> {
    let items = state.services.list_webauthn_keys(session.user_id).await?;
    Ok(Json(Page::whole(items)))
}

#[derive(Deserialize)]
pub struct RegistrationStart {
    /// `security_key` (the default) or `passkey`.
    #[serde(default)]
    kind: WebauthnKind,
    #[serde(flatten)]
    proof: ProofBody,
}

/// `POST /api/account/webauthn/register`: creation options for the browser.
/// With `{password}`, `{code}` or `{passkey}` when the account already has
/// a second factor; `kind: "passkey"` for a discoverable credential that
/// signs in alone.
pub async fn webauthn_register_start(
    State(state): State<AppState>,
    EnrollingSession(session): EnrollingSession,
    Client(context): Client,
    AppJson(body): AppJson<RegistrationStart>,
) -> Result<Json<RegistrationOptions>, ApiError> {
    Ok(Json(
        state
            .services
            .add_security_key(
                session.user_id,
                body.kind,
                optional_proof(body.proof)?,
                &context,
            )
            .await?,
    ))
}

#[derive(Deserialize)]
pub struct WebauthnRegistration {
    ceremony_id: String,
    name: Option<String>,
    /// The browser's `PublicKeyCredential.toJSON()` of the new credential.
    credential: Box<RegisterPublicKeyCredential>,
}

/// `POST /api/account/webauthn`: the authenticator's answer; 201 with the key.
pub async fn webauthn_register_finish(
    State(state): State<AppState>,
    EnrollingSession(session): EnrollingSession,
    Client(context): Client,
    AppJson(body): AppJson<WebauthnRegistration>,
) -> Result<(StatusCode, Json<WebauthnKeyView>), ApiError> {
    let key = state
        .services
        .finish_webauthn_registration(
            session.user_id,
            Some(session.session_id),
            body.ceremony_id,
            body.name,
            *body.credential,
            &context,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(key)))
}

#[derive(Deserialize)]
pub struct WebauthnRename {
    name: Option<String>,
}

pub async fn webauthn_rename(
    State(state): State<AppState>,
    SessionOnly(session): SessionOnly,
    Client(context): Client,
    Path(id): Path<String>,
    AppJson(body): AppJson<WebauthnRename>,
) -> Result<Json<WebauthnKeyView>, ApiError> {
    Ok(Json(
        state
            .services
            .rename_webauthn_key(session.user_id, id, body.name, &context)
            .await?,
    ))
}

pub async fn webauthn_remove(
    State(state): State<AppState>,
    SessionOnly(session): SessionOnly,
    Client(context): Client,
    Path(id): Path<String>,
    AppJson(body): AppJson<ProofBody>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .remove_security_key(session.user_id, id, proof_of(body)?, &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/account/apps`: the apps this person allowed or is signed in to.
pub async fn connected_apps(
    State(state): State<AppState>,
    AccountScoped(caller, ..): AccountScoped<SessionsRead>,
) -> Result<Json<impl Serialize>, ApiError> {
    let apps = state.services.connected_apps(caller.user_id()).await?;
    Ok(Json(Page::whole(apps)))
}

/// `DELETE /api/account/apps/{client_id}`: forget the consent and end the
/// app's sessions and tokens.
pub async fn revoke_connected_app(
    State(state): State<AppState>,
    AccountScoped(caller, ..): AccountScoped<SessionsWrite>,
    Client(context): Client,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .revoke_connected_app(caller.user_id(), client_id, &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/account/email/verify-request`: mails another verification
/// link (202); 409 when the email is verified already or no mail is sent.
pub async fn request_email_verification(
    State(state): State<AppState>,
    Account(caller): Account,
    Client(context): Client,
) -> Result<(StatusCode, Json<crate::http::wire::Status>), ApiError> {
    state
        .services
        .request_email_verification(caller.user_id(), &context)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(crate::http::wire::Status { status: "sent" }),
    ))
}
