//! `/forward-auth` (Traefik ForwardAuth, Caddy `forward_auth`) and
//! `/forward-auth/nginx` (nginx `auth_request`): the proxy asks about each
//! request it holds; 200 with `Remote-*` headers lets it through, 403 stops
//! it, and no credential is a redirect to the sign-in page (or, for nginx, a
//! 401 naming that page in `Location`, which its `error_page` turns into the
//! redirect). Also the sign-in page's check of a return URL, and the
//! operator's view of the rules.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::domain::forward_auth::{decide, return_url_allowed, Policy};
use crate::domain::UserId;
use crate::http::error::ApiError;
use crate::http::extract::{bearer_token_in, cookie, Client, Operator, UiCookies};
use crate::http::state::AppState;
use crate::service::forward_auth::{ForwardCredential, ForwardDecision, OriginalRequest};
use crate::service::ServiceError;

/// Which proxy is asking: they differ only in what "sign in first" looks like.
#[derive(Clone, Copy, PartialEq)]
enum Proxy {
    /// Traefik and Caddy follow a redirect answer.
    Redirecting,
    /// nginx `auth_request` only understands 2xx, 401 and 403.
    Nginx,
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The original request's URL, from the headers the proxy sets.
fn original_url(headers: &HeaderMap, proxy: Proxy) -> Option<url::Url> {
    match proxy {
        Proxy::Nginx => url::Url::parse(header_text(headers, "x-original-url")?).ok(),
        Proxy::Redirecting => {
            let proto = header_text(headers, "x-forwarded-proto").unwrap_or("https");
            let host = header_text(headers, "x-forwarded-host")?;
            let uri = header_text(headers, "x-forwarded-uri").unwrap_or("/");
            url::Url::parse(&format!("{proto}://{host}{uri}")).ok()
        }
    }
}

fn credential(state: &AppState, headers: &HeaderMap) -> ForwardCredential {
    if let Ok(Some(token)) = bearer_token_in(headers) {
        return ForwardCredential::Bearer(token.to_owned());
    }
    match cookie(headers, UiCookies::of(&state.config()).session) {
        Some(value) => ForwardCredential::Cookie(value.to_owned()),
        None => ForwardCredential::Nothing,
    }
}

/// The host a rule is matched against: with its port when the URL names one.
fn host_and_port(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

async fn answer(
    state: &AppState,
    context: &crate::service::RequestContext,
    headers: &HeaderMap,
    proxy: Proxy,
) -> Result<Response, ApiError> {
    let Some(url) = original_url(headers, proxy) else {
        return Err(ApiError::bad_request(match proxy {
            Proxy::Nginx => "X-Original-URL is missing or not a URL",
            Proxy::Redirecting => "X-Forwarded-Host is missing or the original URL is not one",
        }));
    };
    let request = OriginalRequest {
        host: host_and_port(&url),
        path: url.path().to_owned(),
    };
    let decision = state
        .services
        .forward_auth(&request, credential(state, headers), context)
        .await?;
    Ok(match decision {
        ForwardDecision::Allow(identity) => {
            let mut response = StatusCode::OK.into_response();
            // A bypassed request still gets the four headers, empty: the
            // proxy copies them over whatever the client sent (a forged
            // Remote-User), and Caddy would otherwise pass its placeholder
            // text on to the app.
            let identity = identity.unwrap_or_default();
            let headers = response.headers_mut();
            // Room for the four at once, not a regrowth and rehash midway.
            headers.reserve(4);
            for (name, value) in [
                ("remote-user", identity.user),
                ("remote-email", identity.email),
                ("remote-name", identity.name),
                ("remote-groups", identity.groups.join(",")),
            ] {
                let value = HeaderValue::from_bytes(value.as_bytes())
                    .unwrap_or(HeaderValue::from_static(""));
                headers.insert(HeaderName::from_static(name), value);
            }
            response
        }
        ForwardDecision::Deny => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this account may not open this page",
        )
        .into_response(),
        ForwardDecision::SignIn => match proxy {
            // The 401 carries the sign-in URL too: nginx has no way to
            // URL-encode the original URL into `return_to` itself (an `&` in
            // its query would split it), so its `error_page 401` redirects to
            // this one (`auth_request_set … $upstream_http_location`).
            Proxy::Nginx => (
                [(header::LOCATION, sign_in_url(state, url.as_str()))],
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "sign_in_required",
                    "sign in first",
                ),
            )
                .into_response(),
            // 302, as the proxies and the apps behind them expect of a
            // sign-in redirect.
            Proxy::Redirecting => (
                StatusCode::FOUND,
                [(header::LOCATION, sign_in_url(state, url.as_str()))],
            )
                .into_response(),
        },
    })
}

/// authd's sign-in page, told to come back to `return_to`.
fn sign_in_url(state: &AppState, return_to: &str) -> String {
    let config = state.config();
    let base = config.server.public_url.trim_end_matches('/');
    let query = serde_urlencoded::to_string([("return_to", return_to)]).unwrap_or_default();
    format!("{base}/login?{query}")
}

/// `GET /forward-auth`.
pub async fn check(
    State(state): State<AppState>,
    Client(context): Client,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    answer(&state, &context, &headers, Proxy::Redirecting).await
}

/// `GET /forward-auth/nginx`.
pub async fn check_for_nginx(
    State(state): State<AppState>,
    Client(context): Client,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    answer(&state, &context, &headers, Proxy::Nginx).await
}

#[derive(Deserialize)]
pub struct ReturnQuery {
    url: String,
}

#[derive(Serialize)]
pub struct ReturnAllowed {
    url: String,
    /// The first rule for this URL asks for a second factor: a session
    /// signed in with a password alone must step up before going back.
    second_factor_required: bool,
}

/// `GET /ui/api/return?url=`: whether the sign-in page may send the browser
/// to this URL afterwards — only to hosts the forward-auth rules name.
pub async fn check_return_url(
    State(state): State<AppState>,
    Query(query): Query<ReturnQuery>,
) -> Result<Json<ReturnAllowed>, ApiError> {
    if return_url_allowed(&state.config().forward_auth.rules, &query.url) {
        let second_factor_required = url::Url::parse(&query.url).is_ok_and(|url| {
            let config = &state.config().forward_auth;
            decide(
                &config.rules,
                config.default_policy,
                &host_and_port(&url),
                url.path(),
            )
            .0 == Policy::TwoFactor
        });
        Ok(Json(ReturnAllowed {
            url: query.url,
            second_factor_required,
        }))
    } else {
        Err(ServiceError::field("url", "no forward-auth rule names this host").into())
    }
}

#[derive(Serialize)]
pub struct RulesView {
    cookie_domain: String,
    default_policy: crate::domain::forward_auth::Policy,
    rules: Vec<crate::domain::forward_auth::Rule>,
}

/// `GET /v1/forward-auth/rules`: the effective rules, read-only.
pub async fn rules(_: Operator, State(state): State<AppState>) -> Json<RulesView> {
    let config = &state.config().forward_auth;
    Json(RulesView {
        cookie_domain: config.cookie_domain.clone(),
        default_policy: config.default_policy,
        rules: config.rules.clone(),
    })
}

/// `GET /v1/users/{id}/forward-auth`: which protected hosts a person may reach.
pub async fn reachable(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<impl Serialize>, ApiError> {
    let id = UserId::parse(&id).ok_or(ServiceError::NotFound("user"))?;
    let hosts = state.services.reachable_hosts(id).await?;
    Ok(Json(crate::http::wire::Page::whole(hosts)))
}
