//! Signing in through upstream providers: the start inside
//! `/oauth/authorize?provider=NAME`, the provider's way back
//! (`/oauth/callback/NAME`, GET or Apple's form POST), the sign-in page's
//! list of buttons (`/ui/api/providers`), the account page's linked
//! identities (`/api/account/identities`), and the operator's
//! `/v1/providers`. Every failure a browser meets here is an HTML page.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde::Deserialize;

use crate::http::error::ApiError;
use crate::http::extract::{cookie, AppForm, AppJson, Client, Operator, SessionOnly};
use crate::http::routes::oidc::error_page;
use crate::http::routes::ui::set_session_cookies;
use crate::http::state::AppState;
use crate::http::wire::{self, Page};
use crate::service::providers::{ProviderFields, ProviderView, PublicProvider};
use crate::service::social::{CallbackParams, PageStatus, SocialOutcome, SocialPage, SocialStart};

/// The cookie that binds a flow's `state` to the browser that began it.
const STATE_COOKIE: &str = "authd_social_state";
/// The `mfa_token` of a social sign-in that needs its second factor, for
/// the sign-in page's script (short-lived, like the token itself).
const MFA_COOKIE: &str = "authd_social_mfa";

/// `/oauth/authorize?provider=NAME[&org=…][&return_to=…]`.
#[derive(Debug, Deserialize)]
pub struct StartRequest {
    provider: String,
    org: Option<String>,
    return_to: Option<String>,
}

/// The query of `/oauth/authorize` when it names a provider.
pub fn start_request(query: Option<&str>) -> Option<StartRequest> {
    let query = query?;
    let has_provider =
        url::form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == "provider");
    if !has_provider {
        return None;
    }
    serde_urlencoded::from_str::<StartRequest>(query)
        .ok()
        .or(Some(StartRequest {
            provider: String::new(),
            org: None,
            return_to: None,
        }))
}

fn render(page: &SocialPage) -> Response {
    let status = match page.status {
        PageStatus::BadRequest => StatusCode::BAD_REQUEST,
        PageStatus::Forbidden => StatusCode::FORBIDDEN,
        PageStatus::BadGateway => StatusCode::BAD_GATEWAY,
        PageStatus::NotFound => StatusCode::NOT_FOUND,
        PageStatus::TooMany => StatusCode::TOO_MANY_REQUESTS,
    };
    error_page(status, page.title, &page.detail)
}

fn state_cookie_name(state: &AppState) -> &'static str {
    if state.config().serves_https() {
        "__Secure-authd_social_state"
    } else {
        STATE_COOKIE
    }
}

fn mfa_cookie_name(state: &AppState) -> &'static str {
    if state.config().serves_https() {
        "__Secure-authd_social_mfa"
    } else {
        MFA_COOKIE
    }
}

fn set_cookie(headers: &mut HeaderMap, text: String) {
    if let Ok(value) = HeaderValue::from_str(&text) {
        headers.append(header::SET_COOKIE, value);
    }
}

/// The binding cookie: HttpOnly, only sent to the callbacks. Apple's
/// answer is a cross-site POST, which a `SameSite=Lax` cookie would miss;
/// behind https it is `SameSite=None` (the state still has to match).
fn state_cookie(state: &AppState, value: &str, max_age: u64, form_post: bool) -> String {
    let secure = state.config().serves_https();
    let same_site = if form_post && secure { "None" } else { "Lax" };
    let mut text = format!(
        "{}={value}; Path=/oauth/callback; HttpOnly; SameSite={same_site}; Max-Age={max_age}",
        state_cookie_name(state)
    );
    if secure {
        text.push_str("; Secure");
    }
    text
}

fn redirect_with_state(state: &AppState, start: SocialStart) -> Response {
    let mut response = Redirect::to(&start.redirect).into_response();
    set_cookie(
        response.headers_mut(),
        state_cookie(state, &start.state, 600, start.form_post),
    );
    response
}

/// `GET /oauth/authorize?provider=NAME`: to the provider.
pub async fn start(
    state: &AppState,
    request: StartRequest,
    context: &crate::service::RequestContext,
) -> Result<Response, ApiError> {
    if request.provider.is_empty() {
        return Ok(error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid",
            "Its parameters could not be read (each may appear once).",
        ));
    }
    let return_to = state.services.safe_return_to(request.return_to.as_deref());
    Ok(
        match state
            .services
            .begin_social_sign_in(request.provider, request.org, return_to, None, context)
            .await?
        {
            Ok(start) => redirect_with_state(state, start),
            Err(page) => render(&page),
        },
    )
}

/// `GET /oauth/callback/{name}`.
pub async fn callback(
    State(state): State<AppState>,
    Client(context): Client,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Result<Response, ApiError> {
    finish(&state, &context, name, &headers, params).await
}

/// `POST /oauth/callback/{name}`: `response_mode=form_post` (Apple).
pub async fn callback_form(
    State(state): State<AppState>,
    Client(context): Client,
    Path(name): Path<String>,
    headers: HeaderMap,
    AppForm(params): AppForm<CallbackParams>,
) -> Result<Response, ApiError> {
    finish(&state, &context, name, &headers, params).await
}

async fn finish(
    state: &AppState,
    context: &crate::service::RequestContext,
    name: String,
    headers: &HeaderMap,
    params: CallbackParams,
) -> Result<Response, ApiError> {
    let browser_state = cookie(headers, state_cookie_name(state)).map(str::to_owned);
    let outcome = state
        .services
        .finish_social_sign_in(name, params, browser_state, context)
        .await?;
    let mut response = match outcome {
        SocialOutcome::Page(page) => render(&page),
        SocialOutcome::Linked { return_to } => Redirect::to(&return_to).into_response(),
        SocialOutcome::SignedIn { tokens, return_to } => {
            let cookie = tokens
                .browser_cookie
                .ok_or_else(|| ApiError::internal("a browser session without a cookie"))?;
            let mut response = Redirect::to(&return_to).into_response();
            set_session_cookies(state, response.headers_mut(), &cookie, tokens.session_id);
            response
        }
        SocialOutcome::SecondFactor {
            challenge,
            org_slug,
            return_to,
        } => {
            let query = serde_urlencoded::to_string([
                ("org", org_slug.as_str()),
                ("return_to", return_to.as_str()),
                ("mfa", &challenge.methods.join(",")),
            ])
            .map_err(ApiError::internal)?;
            let mut response = Redirect::to(&format!("/login?{query}")).into_response();
            let ttl = state.config().mfa.challenge_ttl.as_secs();
            let mut text = format!(
                "{}={}; Path=/; SameSite=Lax; Max-Age={ttl}",
                mfa_cookie_name(state),
                challenge.mfa_token
            );
            if state.config().serves_https() {
                text.push_str("; Secure");
            }
            set_cookie(response.headers_mut(), text);
            response
        }
    };
    // The flow is over either way: its binding cookie goes.
    set_cookie(response.headers_mut(), state_cookie(state, "", 0, false));
    Ok(response)
}

#[derive(Deserialize)]
pub struct OrgQuery {
    org: Option<String>,
}

/// `GET /ui/api/providers?org=`: the sign-in page's buttons.
pub async fn public_list(
    State(state): State<AppState>,
    Query(query): Query<OrgQuery>,
) -> Result<Json<Page<PublicProvider>>, ApiError> {
    Ok(Json(Page::whole(
        state.services.public_providers(query.org).await?,
    )))
}

/// `GET /api/account/identities`.
pub async fn identities(
    State(state): State<AppState>,
    SessionOnly(session): SessionOnly,
) -> Result<Json<Page<crate::service::identities::IdentityView>>, ApiError> {
    Ok(Json(Page::whole(
        state.services.list_identities(session.user_id).await?,
    )))
}

/// `DELETE /api/account/identities/{id}`.
pub async fn unlink(
    State(state): State<AppState>,
    Client(context): Client,
    SessionOnly(session): SessionOnly,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .unlink_identity(session.user_id, id, &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    provider: String,
}

/// `POST /api/account/identities/link {provider}`: a signed-in user links
/// another provider of their org. A JSON call with the CSRF token (not a
/// link anyone could send), answering where the page goes next; the
/// binding cookie comes with it.
pub async fn link(
    State(state): State<AppState>,
    Client(context): Client,
    SessionOnly(session): SessionOnly,
    AppJson(body): AppJson<LinkRequest>,
) -> Result<Response, ApiError> {
    let provider = state
        .services
        .provider_in_org(body.provider, session.org_id.clone())
        .await?;
    let start = state
        .services
        .begin_social_sign_in(
            provider.name,
            Some(session.org_id.to_string()),
            "/account".to_owned(),
            Some(session.user_id),
            &context,
        )
        .await?
        .map_err(|page| {
            ApiError::from(crate::service::ServiceError::Conflict(format!(
                "{}: {}",
                page.title, page.detail
            )))
        })?;
    let mut response = Json(wire::Redirect {
        redirect: start.redirect.clone(),
    })
    .into_response();
    set_cookie(
        response.headers_mut(),
        state_cookie(&state, &start.state, 600, start.form_post),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub struct ProviderListQuery {
    org: Option<String>,
}

/// `GET /v1/providers[?org=]`.
pub async fn list(
    _: Operator,
    State(state): State<AppState>,
    Query(query): Query<ProviderListQuery>,
) -> Result<Json<Page<ProviderView>>, ApiError> {
    Ok(Json(Page::whole(
        state.services.list_providers(query.org).await?,
    )))
}

/// `POST /v1/providers`.
pub async fn create(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    AppJson(body): AppJson<ProviderFields>,
) -> Result<(StatusCode, Json<ProviderView>), ApiError> {
    let provider = state.services.create_provider(body, &context).await?;
    Ok((StatusCode::CREATED, Json(provider)))
}

/// `GET /v1/providers/{name}`.
pub async fn get(
    _: Operator,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ProviderView>, ApiError> {
    Ok(Json(state.services.get_provider(name).await?))
}

/// `PATCH /v1/providers/{name}`.
pub async fn update(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(name): Path<String>,
    AppJson(body): AppJson<ProviderFields>,
) -> Result<Json<ProviderView>, ApiError> {
    Ok(Json(
        state.services.update_provider(name, body, &context).await?,
    ))
}

/// `DELETE /v1/providers/{name}`.
pub async fn delete(
    _: Operator,
    State(state): State<AppState>,
    Client(context): Client,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services.delete_provider(name, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}
