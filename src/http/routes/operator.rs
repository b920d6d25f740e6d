//! The operator API under `/v1` (admin bearer token): users, orgs, sessions,
//! signing keys, OAuth clients, audit and its live stream.

use std::convert::Infallible;

use crate::http::wire::{Page, Revoked};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::BroadcastStream;

use crate::domain::UserId;
use crate::http::error::ApiError;
use crate::http::extract::{bearer_token_in, AppJson, Client, Operator};
use crate::http::state::AppState;
use crate::service::accounts::{NewUser, UserProfile};
use crate::service::audit_log::parse_filters;
use crate::service::audit_log::AuditQuery;
use crate::service::clients::{ClientChanges, NewClient};
use crate::service::orgs::{NewOrg, OrgChanges};
use crate::service::passkey_enrollment::EnrollmentLink;
use crate::service::user_admin::UserChanges;
use crate::service::webauthn::WebauthnKeyView;
use crate::service::ServiceError;

const DEFAULT_PAGE: usize = 50;

#[derive(Deserialize)]
pub struct PageParams {
    cursor: Option<String>,
    limit: Option<usize>,
    org: Option<String>,
    /// Users whose email or name contains this.
    q: Option<String>,
}

impl PageParams {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_PAGE).clamp(1, 500)
    }
}

fn parse_user_id(text: &str) -> Result<UserId, ApiError> {
    UserId::parse(text).ok_or_else(|| ServiceError::NotFound("user").into())
}

pub async fn list_users(
    _: Operator,
    State(state): State<AppState>,
    Query(page): Query<PageParams>,
) -> Result<Json<impl Serialize>, ApiError> {
    let limit = page.limit();
    let users = state
        .services
        .list_users(page.org, page.q, page.cursor, limit)
        .await?;
    Ok(Json(Page::of(users, limit, |u| u.id.to_string())))
}

pub async fn create_user(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    AppJson(body): AppJson<NewUser>,
) -> Result<(StatusCode, Json<UserProfile>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.services.create_user(body, &context).await?),
    ))
}

/// A user as the operator sees them: the profile and their security keys
/// and passkeys (names, kinds and dates; never key material).
#[derive(Serialize)]
pub struct UserDetail {
    #[serde(flatten)]
    profile: UserProfile,
    webauthn: Vec<WebauthnKeyView>,
}

pub async fn get_user(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<UserDetail>, ApiError> {
    let user_id = parse_user_id(&id)?;
    Ok(Json(UserDetail {
        profile: state.services.user_profile(user_id).await?,
        webauthn: state.services.list_webauthn_keys(user_id).await?,
    }))
}

/// `POST /v1/users/{id}/passkey-link`: a single-use link (shown once) with
/// which the person adds a passkey, e.g. to an account without a password.
pub async fn passkey_link(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<EnrollmentLink>), ApiError> {
    let link = state
        .services
        .issue_passkey_link(parse_user_id(&id)?, &context)
        .await?;
    Ok((StatusCode::CREATED, Json(link)))
}

pub async fn update_user(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(id): Path<String>,
    AppJson(body): AppJson<UserChanges>,
) -> Result<Json<UserProfile>, ApiError> {
    Ok(Json(
        state
            .services
            .update_user(parse_user_id(&id)?, body, &context)
            .await?,
    ))
}

pub async fn delete_user(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .delete_user(parse_user_id(&id)?, &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn unlock_user(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(id): Path<String>,
) -> Result<Json<UserProfile>, ApiError> {
    Ok(Json(
        state
            .services
            .unlock_user(parse_user_id(&id)?, &context)
            .await?,
    ))
}

/// `POST /v1/users/{id}/recovery-link`: a single-use password-reset link
/// for a person who cannot receive mail, shown here once.
pub async fn recovery_link(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<crate::service::recovery::RecoveryLink>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .services
                .operator_recovery_link(parse_user_id(&id)?, &context)
                .await?,
        ),
    ))
}

pub async fn lock_user(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(id): Path<String>,
) -> Result<Json<UserProfile>, ApiError> {
    Ok(Json(
        state
            .services
            .lock_user(parse_user_id(&id)?, &context)
            .await?,
    ))
}

pub async fn reset_user_mfa(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .reset_user_mfa(parse_user_id(&id)?, &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipBody {
    org: String,
    role: String,
}

pub async fn set_membership(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(id): Path<String>,
    AppJson(body): AppJson<MembershipBody>,
) -> Result<Json<UserProfile>, ApiError> {
    Ok(Json(
        state
            .services
            .set_membership(parse_user_id(&id)?, body.org, body.role, &context)
            .await?,
    ))
}

pub async fn remove_membership(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path((id, org)): Path<(String, String)>,
) -> Result<Json<UserProfile>, ApiError> {
    Ok(Json(
        state
            .services
            .remove_membership(parse_user_id(&id)?, org, &context)
            .await?,
    ))
}

pub async fn user_sessions(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<impl Serialize>, ApiError> {
    let user = parse_user_id(&id)?;
    state.services.user_profile(user).await?;
    let sessions = state.services.list_sessions(user, None).await?;
    Ok(Json(Page::whole(sessions)))
}

pub async fn revoke_user_sessions(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(id): Path<String>,
) -> Result<Json<impl Serialize>, ApiError> {
    let user = parse_user_id(&id)?;
    state.services.user_profile(user).await?;
    let revoked = state
        .services
        .revoke_all_sessions(user, None, "operator", &context)
        .await?;
    Ok(Json(Revoked { revoked }))
}

pub async fn list_orgs(
    _: Operator,
    State(state): State<AppState>,
    Query(page): Query<PageParams>,
) -> Result<Json<impl Serialize>, ApiError> {
    let limit = page.limit();
    let orgs = state.services.list_orgs(page.cursor, limit).await?;
    Ok(Json(Page::of(orgs, limit, |o| o.id.to_string())))
}

pub async fn create_org(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    AppJson(body): AppJson<NewOrg>,
) -> Result<(StatusCode, Json<impl Serialize>), ApiError> {
    let org = state.services.create_org(body, &context).await?;
    Ok((StatusCode::CREATED, Json(org)))
}

pub async fn get_org(
    _: Operator,
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<Json<impl Serialize>, ApiError> {
    Ok(Json(state.services.get_org(reference).await?))
}

pub async fn update_org(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(reference): Path<String>,
    AppJson(body): AppJson<OrgChanges>,
) -> Result<Json<impl Serialize>, ApiError> {
    Ok(Json(
        state.services.update_org(reference, body, &context).await?,
    ))
}

pub async fn delete_org(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(reference): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services.delete_org(reference, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct AuditParams {
    #[serde(rename = "type")]
    kind: Option<String>,
    user: Option<String>,
    org: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// A time given as Unix seconds or RFC 3339.
fn parse_time(field: &'static str, text: &str) -> Result<i64, ApiError> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .ok_or_else(|| {
            ServiceError::field(field, "must be Unix seconds or an RFC 3339 time").into()
        })
}

pub async fn audit(
    _: Operator,
    State(state): State<AppState>,
    Query(params): Query<AuditParams>,
) -> Result<Json<impl Serialize>, ApiError> {
    let (kind, user) = parse_filters(params.kind.as_deref(), params.user.as_deref())?;
    let org = match params.org.as_deref() {
        Some(reference) => Some(state.services.get_org(reference.to_owned()).await?.id),
        None => None,
    };
    let query = AuditQuery {
        kind,
        user,
        org,
        since: params
            .since
            .as_deref()
            .map(|t| parse_time("since", t))
            .transpose()?,
        until: params
            .until
            .as_deref()
            .map(|t| parse_time("until", t))
            .transpose()?,
        cursor: params.cursor,
        limit: params.limit.unwrap_or(DEFAULT_PAGE),
    };
    let (items, next_cursor) = state.services.query_audit(query).await?;
    Ok(Json(Page::with_cursor(items, next_cursor)))
}

#[derive(Deserialize)]
pub struct StreamParams {
    token: Option<String>,
}

/// Audit events as Server-Sent Events, from the moment of subscription. The
/// token may come as `?token=` for browser `EventSource`, which cannot set
/// headers.
pub async fn events_stream(
    State(state): State<AppState>,
    Query(params): Query<StreamParams>,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let presented = match bearer_token_in(&headers)? {
        Some(token) => token.to_owned(),
        None => params.token.ok_or_else(ApiError::missing_authorization)?,
    };
    if !state.admin_token.verify(&presented) {
        return Err(ApiError::invalid_authorization());
    }
    let mut shutdown = state.shutdown.clone();
    let events = BroadcastStream::new(state.services.audit_feed())
        .map(|item| {
            Ok(match item {
                Ok(record) => Event::default()
                    .event("audit")
                    .id(record.id.clone())
                    .json_data(&*record)
                    .unwrap_or_else(|_| Event::default().comment("unserialisable event")),
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(missed)) => {
                    Event::default().event("lagged").data(missed.to_string())
                }
            })
        })
        .take_until(async move {
            let _ = shutdown.wait_for(|stopped| *stopped).await;
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

pub async fn list_keys(
    _: Operator,
    State(state): State<AppState>,
) -> Result<Json<impl Serialize>, ApiError> {
    Ok(Json(Page::whole(state.services.keys.list().await?)))
}

#[derive(Deserialize)]
pub struct RotateParams {
    alg: Option<String>,
}

/// Makes a new key the signer (`?alg=EdDSA|RS256` to change algorithm).
pub async fn rotate_keys(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Query(params): Query<RotateParams>,
) -> Result<(StatusCode, Json<impl Serialize>), ApiError> {
    let algorithm = params
        .alg
        .as_deref()
        .map(|text| {
            crate::crypto::jwt::KeyAlgorithm::parse(text)
                .ok_or_else(|| ServiceError::field("alg", "must be RS256 or EdDSA"))
        })
        .transpose()?;
    let key = state
        .services
        .keys
        .rotate(algorithm, context.origin())
        .await?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// Drops a key at once (compromise): gone from the JWKS and from
/// verification, with a new signer first if it was the signer.
pub async fn revoke_key(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(kid): Path<String>,
) -> Result<Json<impl Serialize>, ApiError> {
    let revoked = state.services.keys.revoke(kid, context.origin()).await?;
    Ok(Json(revoked))
}

#[derive(Deserialize)]
pub struct ApprovalParams {
    status: Option<String>,
}

pub async fn list_approvals(
    _: Operator,
    State(state): State<AppState>,
    Query(params): Query<ApprovalParams>,
) -> Result<Json<impl Serialize>, ApiError> {
    let approvals = state.services.list_approvals(params.status).await?;
    Ok(Json(Page::whole(approvals)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    approved: bool,
}

/// The query of a signed approval link.
#[derive(Deserialize)]
pub struct SignedLink {
    sig: Option<String>,
    exp: Option<i64>,
    action: Option<String>,
}

/// With `?sig=&exp=&action=`: resolves through the signed link, without the
/// bearer token (single use; a bad, expired or used link is 401). Without:
/// the operator token and `{"approved": true|false}` (a second resolution is 409).
pub async fn resolve_approval(
    State(state): State<AppState>,
    Client(context): Client,
    Path(id): Path<String>,
    Query(link): Query<SignedLink>,
    request: axum::extract::Request,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    if let Some(sig) = link.sig {
        let (Some(exp), Some(action)) = (link.exp, link.action) else {
            return Err(ServiceError::InvalidSignature.into());
        };
        let from_a_browser = request
            .headers()
            .get(axum::http::header::ACCEPT)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
        let approval = state
            .services
            .resolve_approval_by_link(id, &action, exp, &sig, &context)
            .await?;
        if from_a_browser {
            return Ok(resolution_page(approval.status));
        }
        return Ok(Json(approval).into_response());
    }
    let (mut parts, body) = request.into_parts();
    <Operator as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, &state)
        .await?;
    let request = axum::extract::Request::from_parts(parts, body);
    let AppJson(body) =
        <AppJson<ResolveBody> as axum::extract::FromRequest<AppState>>::from_request(
            request, &state,
        )
        .await?;
    let approval = state
        .services
        .resolve_approval(
            id,
            body.approved,
            crate::service::approvals::Resolver::OperatorToken,
            &context,
        )
        .await?;
    Ok(Json(approval).into_response())
}

/// What a person who pressed the confirmation page's button sees next.
fn resolution_page(status: crate::domain::ApprovalStatus) -> axum::response::Response {
    use axum::response::IntoResponse;
    let outcome = if status == crate::domain::ApprovalStatus::Approved {
        "Approved: the account can sign in now."
    } else {
        "Denied: the pending account was removed."
    };
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Done · authd</title><link rel=\"stylesheet\" href=\"/ui/app.css\"></head>\
         <body><main class=\"page narrow\"><section class=\"card auth-card\"><h1>Done</h1>\
         <p>{outcome}</p></section></main></body></html>"
    );
    let mut response = (
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response();
    super::ui::security_headers(response.headers_mut());
    response
}

/// A GET on a signed link (a chat app's preview, or a person clicking)
/// resolves nothing: it shows a page whose button POSTs the same link.
pub async fn approval_confirmation_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(link): Query<SignedLink>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let (Some(sig), Some(exp), Some(action)) = (link.sig, link.exp, link.action) else {
        return Err(ServiceError::InvalidSignature.into());
    };
    // The link must be genuine for the POST it will make.
    state
        .services
        .check_approval_link(&id, "POST", &action, exp, &sig)?;
    let verb = if action == "approve" {
        "Approve"
    } else {
        "Deny"
    };
    let target = format!(
        "{}?action={action}&exp={exp}&sig={sig}",
        crate::service::approvals::resolve_path(&id)
    );
    let button = if action == "approve" {
        "btn btn-primary btn-block"
    } else {
        "btn btn-danger btn-block"
    };
    // Styled by the UI's stylesheet; no script, so a preview bot resolves nothing.
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{verb} request · authd</title><link rel=\"stylesheet\" href=\"/ui/app.css\">\
         <link rel=\"icon\" href=\"/ui/favicon.svg\"></head><body><main class=\"page narrow\">\
         <section class=\"card auth-card\"><h1>{verb} request</h1>\
         <p class=\"muted\">Approval <code>{id}</code>. This link works once.</p>\
         <form method=\"post\" action=\"{target}\"><button type=\"submit\" class=\"{button}\">{verb}</button></form>\
         </section></main></body></html>"
    );
    let mut response = (
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response();
    super::ui::security_headers(response.headers_mut());
    Ok(response)
}

pub async fn list_clients(
    _: Operator,
    State(state): State<AppState>,
    Query(page): Query<PageParams>,
) -> Result<Json<impl Serialize>, ApiError> {
    let limit = page.limit();
    let clients = state.services.list_clients(page.cursor, limit).await?;
    Ok(Json(Page::of(clients, limit, |c| c.client_id.clone())))
}

pub async fn create_client(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    AppJson(body): AppJson<NewClient>,
) -> Result<(StatusCode, Json<impl Serialize>), ApiError> {
    let client = state.services.create_client(body, &context).await?;
    Ok((StatusCode::CREATED, Json(client)))
}

pub async fn get_client(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<impl Serialize>, ApiError> {
    Ok(Json(state.services.get_client(id).await?))
}

pub async fn update_client(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(id): Path<String>,
    AppJson(body): AppJson<ClientChanges>,
) -> Result<Json<impl Serialize>, ApiError> {
    Ok(Json(
        state.services.update_client(id, body, &context).await?,
    ))
}

pub async fn delete_client(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services.delete_client(id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn rotate_client_secret(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(id): Path<String>,
) -> Result<Json<impl Serialize>, ApiError> {
    Ok(Json(
        state.services.rotate_client_secret(id, &context).await?,
    ))
}

/// `POST /v1/config/reload`: the config file read again; what changed and
/// took effect, and what waits for a restart. A file that does not load
/// changes nothing and says why (422).
pub async fn reload_config(
    _: Operator,
    State(state): State<AppState>,
) -> Result<Json<crate::service::reload::ReloadOutcome>, ApiError> {
    let reloading = state.clone();
    let outcome =
        tokio::task::spawn_blocking(move || reloading.services.reload_from(&reloading.reloader))
            .await
            .map_err(ApiError::internal)?;
    match outcome {
        Ok(outcome) => Ok(Json(outcome)),
        Err(crate::service::reload::ReloadError::Invalid(error)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
            format!("config not reloaded: {error}"),
        )),
        Err(crate::service::reload::ReloadError::Internal(error)) => Err(ApiError::internal(error)),
    }
}

/// `POST /v1/backup`: a consistent copy of the database as the body
/// (`authd backup` asks for it while a server holds the file). Streamed
/// from a file, so a large database does not pass through memory.
pub async fn backup(
    _: Operator,
    State(state): State<AppState>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let file = state.services.backup_for_download().await?;
    let length = file.metadata().map_err(ApiError::internal)?.len();
    let file = tokio::fs::File::from_std(file);
    let chunks = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0; 64 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok::<_, std::io::Error>(buffer), file))
            }
            Err(error) => Some((Err(error), file)),
        }
    });
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/octet-stream".to_owned(),
            ),
            (axum::http::header::CONTENT_LENGTH, length.to_string()),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"authd-backup.redb\"".to_owned(),
            ),
        ],
        axum::body::Body::from_stream(chunks),
    )
        .into_response())
}
