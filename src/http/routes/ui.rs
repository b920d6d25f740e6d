//! The web UI: its page and assets, embedded from `web/` at build time and
//! served with ETags and a strict Content-Security-Policy; and the cookie
//! session the page signs in with (`/ui/api/…`). The cookie is HttpOnly, so
//! the page's script never holds a token; state-changing calls made with it
//! carry the session's CSRF token (see `extract::browser_session`).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::http::error::ApiError;
use crate::http::extract::{AppJson, Client, EnrollingSession, UiCookies};
use crate::http::routes::identity::{ChallengeBody, LoginBody};
use crate::http::state::AppState;
use crate::service::login::LoginOutcome;
use crate::service::sessions::SessionKind;
use crate::service::tokens::TokenSet;

#[derive(rust_embed::Embed)]
#[folder = "web/"]
#[exclude = "*.md"]
struct Assets;

/// No inline script or style, nothing from elsewhere, never in a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "webmanifest" => "application/json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The headers every UI response carries.
pub fn security_headers(headers: &mut HeaderMap) {
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// One embedded file, revalidated by its SHA-256 ETag (assets are small and
/// change with the binary, so `no-cache` + 304 beats guessing a lifetime).
fn serve(path: &str, request_headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return ApiError::from_status(StatusCode::NOT_FOUND).into_response();
    };
    let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    let fresh = request_headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|given| given.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, content_type(path))],
            file.data.into_owned(),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    security_headers(headers);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

/// `/`, `/login`, `/register`, `/account`, `/admin/…`: the one page; its
/// script routes on the path.
pub async fn page(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `/ui/{path}`: everything else in `web/`.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    if path == "index.html" {
        return ApiError::from_status(StatusCode::NOT_FOUND).into_response();
    }
    serve(&path, &headers)
}

#[derive(Deserialize)]
pub struct InfoParams {
    org: Option<String>,
}

/// `GET /ui/api/info?org=`: what the sign-in page shows before anyone
/// signs in (the org's name, whether it takes sign-ups, WebAuthn on or off,
/// whether a forgotten password can be reset by mail).
pub async fn info(
    State(state): State<AppState>,
    Query(params): Query<InfoParams>,
) -> Result<Json<Info>, ApiError> {
    let org = state
        .services
        .get_org(params.org.unwrap_or_else(|| "default".to_owned()))
        .await?;
    Ok(Json(Info {
        product: "authd",
        version: env!("CARGO_PKG_VERSION"),
        org: OrgInfo {
            slug: org.slug,
            name: org.name,
            registration: org.registration,
        },
        webauthn: state.services.webauthn().is_some(),
        self_service_recovery: state.services.self_service_recovery(),
    }))
}

/// `GET /ui/api/vocabulary`: the server's own names and texts that the UI
/// shows — audit event types, PAT scopes, password-rule advice — so the
/// page never keeps copies of its own that drift.
pub async fn vocabulary() -> Json<Vocabulary> {
    Json(Vocabulary {
        audit_types: crate::audit::AuditKind::ALL
            .iter()
            .map(|kind| kind.as_str())
            .collect(),
        scopes: crate::domain::Scope::ALL
            .iter()
            .map(|scope| scope.as_str())
            .collect(),
        password_violations: crate::domain::password_policy::Violation::ALL
            .iter()
            .map(|violation| (violation.code(), violation.advice()))
            .collect(),
    })
}

#[derive(Serialize)]
pub struct Vocabulary {
    audit_types: Vec<&'static str>,
    scopes: Vec<&'static str>,
    password_violations: std::collections::BTreeMap<&'static str, &'static str>,
}

/// What `/ui/api/info` tells the sign-in page.
#[derive(Serialize)]
pub struct Info {
    product: &'static str,
    version: &'static str,
    org: OrgInfo,
    webauthn: bool,
    /// Whether people can reset a forgotten password by mail (`[smtp]` is
    /// configured); without it the page tells them to ask the operator.
    self_service_recovery: bool,
}

#[derive(Serialize)]
pub struct OrgInfo {
    slug: String,
    name: String,
    registration: crate::domain::RegistrationMode,
}

/// A completed browser sign-in: the profile and the MFA prompts (the
/// session itself is in the cookies, never in the body).
#[derive(Serialize)]
struct SignedIn {
    profile: crate::service::accounts::UserProfile,
    mfa_enrollment_required: bool,
    mfa_enrollment_encouraged: bool,
}

/// The answer to a completed browser sign-in: the two cookies, the profile
/// and the MFA prompts; never a token in the body.
pub(crate) async fn signed_in(state: &AppState, tokens: TokenSet) -> Result<Response, ApiError> {
    let cookie = tokens
        .browser_cookie
        .ok_or_else(|| ApiError::internal("a browser session without a cookie"))?;
    let principal = state
        .services
        .authenticate_browser_cookie(&cookie, state.services.clock.now())
        .await?;
    let profile = state.services.user_profile(principal.user_id).await?;
    let mut response = Json(SignedIn {
        profile,
        mfa_enrollment_required: tokens.mfa_enrollment_required.unwrap_or(false),
        mfa_enrollment_encouraged: tokens.mfa_enrollment_encouraged.unwrap_or(false),
    })
    .into_response();
    set_session_cookies(state, response.headers_mut(), &cookie, principal.session_id);
    Ok(response)
}

/// Sets the session cookie and its CSRF token: a browser sign-in's end.
pub fn set_session_cookies(
    state: &AppState,
    headers: &mut HeaderMap,
    cookie: &str,
    session: crate::domain::SessionId,
) {
    let csrf = state.services.csrf_token(session);
    let max_age = state.config().sessions.ttl.as_secs();
    let names = UiCookies::of(&state.config());
    headers.append(
        header::SET_COOKIE,
        names.set_cookie(names.session, cookie, true, max_age),
    );
    headers.append(
        header::SET_COOKIE,
        names.set_cookie(names.csrf, &csrf, false, max_age),
    );
}

/// `POST /ui/api/login`: `/login`'s checks and answers (401, 429, 202 with
/// an `mfa_token`), but a cookie session instead of tokens.
pub async fn login(
    State(state): State<AppState>,
    Client(context): Client,
    AppJson(body): AppJson<LoginBody>,
) -> Result<Response, ApiError> {
    match state
        .services
        .login(body.into_request()?, SessionKind::Browser, &context)
        .await?
    {
        LoginOutcome::Tokens(tokens) => signed_in(&state, tokens).await,
        LoginOutcome::MfaRequired(challenge) => {
            Ok((StatusCode::ACCEPTED, Json(challenge)).into_response())
        }
    }
}

/// `POST /ui/api/mfa`: `/mfa/challenge` for the browser.
pub async fn mfa(
    State(state): State<AppState>,
    Client(context): Client,
    AppJson(body): AppJson<ChallengeBody>,
) -> Result<Response, ApiError> {
    let (token, factor) = body.into_factor()?;
    let tokens = state
        .services
        .complete_mfa_challenge(&token, factor, SessionKind::Browser, &context)
        .await?;
    signed_in(&state, tokens).await
}

/// `POST /ui/api/logout`: ends the session on the server and clears both
/// cookies.
pub async fn logout(
    State(state): State<AppState>,
    EnrollingSession(session): EnrollingSession,
    Client(context): Client,
) -> Result<Response, ApiError> {
    state
        .services
        .revoke_session(session.user_id, session.session_id, &context)
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    clear_session_cookies(&state, response.headers_mut());
    Ok(response)
}

/// Expires both UI cookies in the browser.
pub fn clear_session_cookies(state: &AppState, headers: &mut HeaderMap) {
    let names = UiCookies::of(&state.config());
    headers.append(
        header::SET_COOKIE,
        names.set_cookie(names.session, "", true, 0),
    );
    headers.append(
        header::SET_COOKIE,
        names.set_cookie(names.csrf, "", false, 0),
    );
}
