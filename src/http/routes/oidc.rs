//! The browser-facing side of single sign-on for apps: `/oauth/authorize`,
//! `/oauth/end_session`, `/oauth/userinfo`, `/oauth/device_authorization`,
//! and the small JSON calls the UI's consent, device and sign-out pages make
//! (`/ui/api/consent`, `/ui/api/device`, `/ui/api/end_session`).

use axum::extract::{Query, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::http::error::ApiError;
use crate::http::extract::{
    bearer_token_in, AppForm, AppJson, BrowserVisitor, Client, EnrollingSession, SessionOnly,
    TokenEndpointCaller,
};
use crate::http::routes::ui::{clear_session_cookies, security_headers};
use crate::http::state::AppState;
use crate::http::wire;
use crate::service::authorize::{AuthorizationParams, AuthorizeOutcome};
use crate::service::ServiceError;

/// A page for what cannot go back to the app: plain HTML under the UI's
/// CSP, with every text escaped.
pub fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;")
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · authd</title><link rel=\"stylesheet\" href=\"/ui/app.css\"></head>\
         <body><main class=\"card\" id=\"oauth-error\"><h1>{title}</h1><p>{detail}</p>\
         <p>Go back to the app and try again, or ask whoever runs it.</p></main></body></html>",
        title = escape(title),
        detail = escape(detail),
    );
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    security_headers(response.headers_mut());
    response
}

/// What a page that cannot go back to the app says.
struct PageError {
    title: &'static str,
    detail: &'static str,
}

impl PageError {
    fn render(&self) -> Response {
        error_page(StatusCode::BAD_REQUEST, self.title, self.detail)
    }
}

fn parse_params(query: Option<&str>) -> Result<AuthorizationParams, PageError> {
    serde_urlencoded::from_str(query.unwrap_or("")).map_err(|_| PageError {
        title: "This sign-in link is not valid",
        detail: "Its parameters could not be read (each may appear once).",
    })
}

async fn answer_authorization(
    state: &AppState,
    params: AuthorizationParams,
    visitor: BrowserVisitor,
    context: &crate::service::RequestContext,
) -> Result<Response, ApiError> {
    let outcome = state.services.authorize(params, visitor.0, context).await?;
    Ok(match outcome {
        AuthorizeOutcome::ErrorPage { title, detail } => {
            error_page(StatusCode::BAD_REQUEST, title, &detail)
        }
        AuthorizeOutcome::Redirect(url) => Redirect::to(&url).into_response(),
        AuthorizeOutcome::SignIn {
            org,
            login_hint,
            return_to,
        } => {
            #[derive(Serialize)]
            struct SignIn<'a> {
                org: &'a str,
                #[serde(skip_serializing_if = "Option::is_none")]
                login_hint: Option<&'a str>,
                return_to: &'a str,
            }
            let query = serde_urlencoded::to_string(SignIn {
                org: &org,
                login_hint: login_hint.as_deref(),
                return_to: &return_to,
            })
            .map_err(ApiError::internal)?;
            Redirect::to(&format!("/login?{query}")).into_response()
        }
        AuthorizeOutcome::Consent { query } => {
            Redirect::to(&format!("/consent?{query}")).into_response()
        }
    })
}

/// `GET /oauth/authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    Client(context): Client,
    visitor: BrowserVisitor,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if let Some(start) = super::social::start_request(query.as_deref()) {
        return super::social::start(&state, start, &context).await;
    }
    let params = match parse_params(query.as_deref()) {
        Ok(params) => params,
        Err(page) => return Ok(page.render()),
    };
    answer_authorization(&state, params, visitor, &context).await
}

/// `POST /oauth/authorize` (OpenID Connect Core §3.1.2.1: form-encoded).
pub async fn authorize_form(
    State(state): State<AppState>,
    Client(context): Client,
    visitor: BrowserVisitor,
    AppForm(params): AppForm<AuthorizationParams>,
) -> Result<Response, ApiError> {
    answer_authorization(&state, params, visitor, &context).await
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    bearer_token_in(headers)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "missing bearer token",
        )
    })
}

/// `GET`/`POST /oauth/userinfo` (OpenID Connect Core §5.3).
pub async fn userinfo(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Map<String, serde_json::Value>>, ApiError> {
    Ok(Json(state.services.userinfo(bearer(&headers)?).await?))
}

#[derive(Deserialize)]
pub struct DeviceAuthorizationForm {
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

/// `POST /oauth/device_authorization` (RFC 8628 §3.1).
pub async fn device_authorization(
    State(state): State<AppState>,
    caller: TokenEndpointCaller,
    AppForm(body): AppForm<DeviceAuthorizationForm>,
) -> Result<Json<crate::service::device::DeviceCodeResponse>, ApiError> {
    let credentials = caller
        .client_credentials(body.client_id, body.client_secret)?
        .ok_or_else(|| ApiError::from(ServiceError::invalid_client()))?;
    let client = state.services.authenticate_client(&credentials)?;
    Ok(Json(
        state
            .services
            .start_device_authorization(client, body.scope)
            .await?,
    ))
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct EndSessionParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    logout_hint: Option<String>,
    ui_locales: Option<String>,
}

/// Where the browser goes after signing out: the app's registered
/// post-logout URI with its `state`, or authd's sign-in page.
fn after_logout(uri: Option<&str>, state: Option<&str>) -> String {
    match uri.and_then(|u| url::Url::parse(u).ok()) {
        Some(mut url) => {
            if let Some(state) = state {
                url.query_pairs_mut().append_pair("state", state);
            }
            url.into()
        }
        None => "/login?signed_out=1".to_owned(),
    }
}

/// The client an end-session request speaks for, and whether its
/// post-logout URI may be used; `Err` is a page (never a redirect).
async fn check_end_session(
    state: &AppState,
    params: &EndSessionParams,
) -> Result<
    (
        Option<(String, crate::domain::SessionId, crate::domain::UserId)>,
        Option<String>,
    ),
    PageError,
> {
    let hint = match params.id_token_hint.as_deref() {
        Some(token) => state.services.check_id_token_hint(token).await,
        None => None,
    };
    let client_id = hint
        .as_ref()
        .map(|(aud, _, _)| aud.clone())
        .or_else(|| params.client_id.clone());
    if let (Some((aud, _, _)), Some(named)) = (&hint, &params.client_id) {
        if aud != named {
            return Err(PageError {
                title: "This sign-out link is not valid",
                detail: "The app it names is not the one the sign-in was for.",
            });
        }
    }
    let redirect = match (&params.post_logout_redirect_uri, &client_id) {
        (None, _) => None,
        (Some(uri), Some(client)) if state.services.post_logout_redirect_allowed(client, uri) => {
            Some(uri.clone())
        }
        (Some(_), _) => {
            return Err(PageError {
                title: "This sign-out link is not valid",
                detail: "The address to return to is not one the app registered.",
            })
        }
    };
    Ok((hint, redirect))
}

/// `GET /oauth/end_session` (OpenID Connect RP-Initiated Logout 1.0). With
/// a valid `id_token_hint` for the person signed in here, it signs out at
/// once; otherwise the UI's sign-out page asks first, so that a link on
/// someone else's site cannot sign a person out.
pub async fn end_session(
    State(state): State<AppState>,
    Client(context): Client,
    visitor: BrowserVisitor,
    Query(params): Query<EndSessionParams>,
) -> Result<Response, ApiError> {
    answer_end_session(&state, &context, visitor, params).await
}

/// `POST /oauth/end_session`: the same, form-encoded (RP-Initiated Logout §2).
pub async fn end_session_form(
    State(state): State<AppState>,
    Client(context): Client,
    visitor: BrowserVisitor,
    AppForm(params): AppForm<EndSessionParams>,
) -> Result<Response, ApiError> {
    answer_end_session(&state, &context, visitor, params).await
}

async fn answer_end_session(
    state: &AppState,
    context: &crate::service::RequestContext,
    visitor: BrowserVisitor,
    params: EndSessionParams,
) -> Result<Response, ApiError> {
    let (hint, redirect) = match check_end_session(state, &params).await {
        Ok(checked) => checked,
        Err(page) => return Ok(page.render()),
    };
    let browser = visitor.0;
    let Some((_, app_session, subject)) = hint else {
        let query = serde_urlencoded::to_string(&params).map_err(ApiError::internal)?;
        return Ok(Redirect::to(&format!("/signout?{query}")).into_response());
    };
    if browser.as_ref().is_some_and(|b| b.user_id != subject) {
        // Someone else is signed in in this browser: ask.
        let query = serde_urlencoded::to_string(&params).map_err(ApiError::internal)?;
        return Ok(Redirect::to(&format!("/signout?{query}")).into_response());
    }
    state
        .services
        .logout_session(app_session, "end_session", context)
        .await?;
    let mut response =
        Redirect::to(&after_logout(redirect.as_deref(), params.state.as_deref())).into_response();
    if let Some(browser) = browser {
        state
            .services
            .logout_session(browser.session_id, "end_session", context)
            .await?;
        clear_session_cookies(state, response.headers_mut());
    }
    Ok(response)
}

#[derive(Serialize)]
pub struct EndSessionView {
    client_name: Option<String>,
    redirect: String,
}

/// `GET /ui/api/end_session?…`: what the sign-out page shows and where it
/// goes after (checked as the endpoint checks it).
pub async fn describe_end_session(
    State(state): State<AppState>,
    Query(params): Query<EndSessionParams>,
) -> Result<Json<EndSessionView>, ApiError> {
    let (hint, redirect) = check_end_session(&state, &params).await.map_err(|_| {
        ServiceError::field("post_logout_redirect_uri", "not registered for this app")
    })?;
    let client = hint.map(|(aud, _, _)| aud).or(params.client_id.clone());
    Ok(Json(EndSessionView {
        client_name: client.and_then(|c| state.services.client_name(&c)),
        redirect: after_logout(redirect.as_deref(), params.state.as_deref()),
    }))
}

/// `POST /ui/api/end_session`: the person confirmed; the session ends
/// (cookies cleared) and the page goes where `describe_end_session` said.
pub async fn confirm_end_session(
    State(state): State<AppState>,
    Client(context): Client,
    EnrollingSession(session): EnrollingSession,
    AppJson(params): AppJson<EndSessionParams>,
) -> Result<Response, ApiError> {
    let (_, redirect) = check_end_session(&state, &params).await.map_err(|_| {
        ServiceError::field("post_logout_redirect_uri", "not registered for this app")
    })?;
    state
        .services
        .logout_session(session.session_id, "end_session", &context)
        .await?;
    let mut response = Json(wire::Redirect {
        redirect: after_logout(redirect.as_deref(), params.state.as_deref()),
    })
    .into_response();
    clear_session_cookies(&state, response.headers_mut());
    Ok(response)
}

/// `GET /ui/api/consent?<the authorization request>`: what the consent page shows.
pub async fn describe_consent(
    State(state): State<AppState>,
    SessionOnly(_): SessionOnly,
    RawQuery(query): RawQuery,
) -> Result<Json<crate::service::authorize::ConsentRequest>, ApiError> {
    let params: AuthorizationParams = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|_| ApiError::bad_request("the authorization request could not be read"))?;
    Ok(Json(state.services.describe_consent(params)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentAnswer {
    /// The authorization request's query string, as the page received it.
    request: String,
    approve: bool,
}

/// `POST /ui/api/consent`: the person's answer; the page goes to `redirect`.
pub async fn answer_consent(
    State(state): State<AppState>,
    Client(context): Client,
    SessionOnly(session): SessionOnly,
    AppJson(body): AppJson<ConsentAnswer>,
) -> Result<Json<wire::Redirect>, ApiError> {
    let params: AuthorizationParams = serde_urlencoded::from_str(&body.request)
        .map_err(|_| ApiError::bad_request("the authorization request could not be read"))?;
    let redirect = state
        .services
        .answer_consent(params, body.approve, &session, &context)
        .await?;
    Ok(Json(wire::Redirect { redirect }))
}

#[derive(Deserialize)]
pub struct UserCodeQuery {
    user_code: String,
}

/// `GET /ui/api/device?user_code=`: the request a typed code stands for.
pub async fn describe_device(
    State(state): State<AppState>,
    Client(context): Client,
    SessionOnly(session): SessionOnly,
    Query(query): Query<UserCodeQuery>,
) -> Result<Json<crate::service::device::DeviceRequestView>, ApiError> {
    Ok(Json(
        state
            .services
            .describe_device_request(&query.user_code, &session, &context)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceAnswer {
    user_code: String,
    approve: bool,
}

/// `POST /ui/api/device`: the person allows (or refuses) the device.
pub async fn answer_device(
    State(state): State<AppState>,
    Client(context): Client,
    SessionOnly(session): SessionOnly,
    AppJson(body): AppJson<DeviceAnswer>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .answer_device_request(&body.user_code, body.approve, &session, &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
