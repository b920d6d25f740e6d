//! The control-plane API under `/api/v1` (README: "Control-plane API"): session tokens without
//! refresh, one uniform `AUTH_FAILED`, org context from `X-Active-Org-Id`,
//! personal access tokens with scopes, and the active org's users, sessions
//! and audit log.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::domain::Password;
use crate::http::error::ApiError;
use crate::http::extract::needs::{
    AuditRead, SessionsRead, SessionsWrite, TokensRead, TokensWrite, UsersRead, UsersWrite,
};
use crate::http::extract::{Account, AppJson, Client, EnrollingSession, OrgScoped};
use crate::http::state::AppState;
use crate::http::wire::{Page, SessionToken};
use crate::service::accounts::{NewUser, UserProfile};
use crate::service::audit_log::AuditQuery;
use crate::service::login::LoginRequest;
use crate::service::members::Memberships;
use crate::service::pats::{CreatedPat, NewPat};
use crate::service::tokens::TokenGrant;
use crate::service::ServiceError;

const DEFAULT_PAGE: usize = 50;

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: Password,
    otp: Option<String>,
    org: Option<String>,
}

/// The one answer to every failed control-plane login, whatever the cause.
fn auth_failed() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "auth_failed",
        "Authentication failed.",
    )
}

/// Malformed bodies, unknown emails, wrong passwords, locked accounts, rate
/// limits and missing codes all answer the same 401, byte for byte.
pub async fn login(
    State(state): State<AppState>,
    Client(context): Client,
    body: Bytes,
) -> Result<Json<impl Serialize>, ApiError> {
    let Ok(body) = serde_json::from_slice::<LoginBody>(&body) else {
        return Err(auth_failed());
    };
    let request = LoginRequest {
        email: body.email,
        password: body.password,
        org: body.org,
        grant: TokenGrant::default(),
    };
    match state
        .services
        .control_plane_login(request, body.otp, &context)
        .await
    {
        Ok((access_token, expires_in)) => Ok(Json(SessionToken {
            access_token,
            expires_in,
        })),
        Err(
            error @ (ServiceError::Internal(_)
            | ServiceError::StorageUnavailable(_)
            | ServiceError::Unavailable(_)),
        ) => Err(error.into()),
        Err(_) => Err(auth_failed()),
    }
}

/// Logging out always works, an enrollment-only session's too, and needs no
/// org: it ends the session wherever it was acting.
pub async fn logout(
    State(state): State<AppState>,
    Client(context): Client,
    EnrollingSession(session): EnrollingSession,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .logout_session(session.session_id, "logout", &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The one call that needs no `X-Active-Org-Id`: it is how a client finds one.
pub async fn memberships(
    State(state): State<AppState>,
    Account(caller): Account,
) -> Result<Json<Memberships>, ApiError> {
    Ok(Json(state.services.memberships_of(&caller).await?))
}

#[derive(Deserialize)]
pub struct PageParams {
    cursor: Option<String>,
    limit: Option<usize>,
    user: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
}

impl PageParams {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_PAGE).clamp(1, 500)
    }
}

pub async fn create_token(
    State(state): State<AppState>,
    Client(context): Client,
    OrgScoped(caller, ..): OrgScoped<TokensWrite>,
    AppJson(body): AppJson<NewPat>,
) -> Result<(StatusCode, Json<CreatedPat>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.services.create_pat(&caller, body, &context).await?),
    ))
}

pub async fn list_tokens(
    State(state): State<AppState>,
    OrgScoped(caller, ..): OrgScoped<TokensRead>,
    Query(params): Query<PageParams>,
) -> Result<Json<impl Serialize>, ApiError> {
    let limit = params.limit();
    let tokens = state
        .services
        .list_pats(&caller, params.cursor, limit)
        .await?;
    Ok(Json(Page::of(tokens, limit, |t| t.id.clone())))
}

pub async fn revoke_token(
    State(state): State<AppState>,
    Client(context): Client,
    OrgScoped(caller, ..): OrgScoped<TokensWrite>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services.revoke_pat(&caller, id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_users(
    State(state): State<AppState>,
    OrgScoped(caller, ..): OrgScoped<UsersRead>,
    Query(params): Query<PageParams>,
) -> Result<Json<impl Serialize>, ApiError> {
    let limit = params.limit();
    let users = state
        .services
        .org_members(&caller.org_id, params.cursor, limit)
        .await?;
    Ok(Json(Page::of(users, limit, |u| u.id.to_string())))
}

pub async fn get_user(
    State(state): State<AppState>,
    OrgScoped(caller, ..): OrgScoped<UsersRead>,
    Path(id): Path<String>,
) -> Result<Json<UserProfile>, ApiError> {
    Ok(Json(state.services.org_member(&caller.org_id, &id).await?))
}

/// Creates a user in the active org (there is no mail to invite with, so
/// the admin sets the first password).
pub async fn create_user(
    State(state): State<AppState>,
    Client(context): Client,
    OrgScoped(caller, ..): OrgScoped<UsersWrite>,
    AppJson(body): AppJson<NewUser>,
) -> Result<(StatusCode, Json<UserProfile>), ApiError> {
    // Only the operator vouches for an email (it links upstream identities).
    let body = NewUser {
        org: Some(caller.org_id.to_string()),
        email_verified: None,
        ..body
    };
    Ok((
        StatusCode::CREATED,
        Json(state.services.create_user(body, &context).await?),
    ))
}

/// Disables the user in the active org only.
pub async fn disable_user(
    State(state): State<AppState>,
    Client(context): Client,
    OrgScoped(caller, ..): OrgScoped<UsersWrite>,
    Path(id): Path<String>,
) -> Result<Json<UserProfile>, ApiError> {
    set_suspended(state, context, caller, id, true).await
}

pub async fn enable_user(
    State(state): State<AppState>,
    Client(context): Client,
    OrgScoped(caller, ..): OrgScoped<UsersWrite>,
    Path(id): Path<String>,
) -> Result<Json<UserProfile>, ApiError> {
    set_suspended(state, context, caller, id, false).await
}

async fn set_suspended(
    state: AppState,
    context: crate::service::RequestContext,
    caller: crate::service::pats::OrgCaller,
    id: String,
    suspended: bool,
) -> Result<Json<UserProfile>, ApiError> {
    Ok(Json(
        state
            .services
            .set_member_suspended(
                &caller.org_id,
                caller.caller.user_id(),
                &id,
                suspended,
                &context,
            )
            .await?,
    ))
}

/// The caller's sessions; an admin may name another member with `?user=`.
pub async fn list_sessions(
    State(state): State<AppState>,
    OrgScoped(caller, ..): OrgScoped<SessionsRead>,
    Query(params): Query<PageParams>,
) -> Result<Json<impl Serialize>, ApiError> {
    let sessions = state
        .services
        .org_sessions(&caller, params.user.as_deref())
        .await?;
    Ok(Json(Page::whole(sessions)))
}

/// Revokes one of the caller's sessions, or (admins) any session in the org.
pub async fn revoke_session(
    State(state): State<AppState>,
    Client(context): Client,
    OrgScoped(caller, ..): OrgScoped<SessionsWrite>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .revoke_session_in_org(&caller, &id, &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn audit(
    State(state): State<AppState>,
    OrgScoped(caller, ..): OrgScoped<AuditRead>,
    Query(params): Query<PageParams>,
) -> Result<Json<impl Serialize>, ApiError> {
    let (kind, user) =
        crate::service::audit_log::parse_filters(params.kind.as_deref(), params.user.as_deref())?;
    let query = AuditQuery {
        kind,
        user,
        org: Some(caller.org_id.clone()),
        since: params.since,
        until: params.until,
        limit: params.limit(),
        cursor: params.cursor,
    };
    let (items, next_cursor) = state.services.query_audit(query).await?;
    Ok(Json(Page::with_cursor(items, next_cursor)))
}
