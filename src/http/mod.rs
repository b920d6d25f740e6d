//! The only module that knows axum exists: the router with every route and
//! layer on one screen, the extractors, and the error rendering.

pub mod error;
pub mod extract;
pub mod routes;
pub mod server;
pub mod state;
pub mod wire;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, patch, post};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use axum::extract::MatchedPath;
use axum::middleware::from_fn;
use error::ApiError;
pub use state::{AppState, Shared};

pub fn router(state: AppState) -> Router {
    let config = state.config();
    let max_body_bytes = config.server.max_body_bytes;
    use routes::{
        account, control_plane, forward_auth, identity, oauth, oidc, operator, passkeys, social, ui,
    };
    let operator_api = Router::new()
        .route("/status", get(routes::status::status))
        .route(
            "/users",
            get(operator::list_users).post(operator::create_user),
        )
        .route(
            "/users/{id}",
            get(operator::get_user)
                .patch(operator::update_user)
                .delete(operator::delete_user),
        )
        .route("/users/{id}/unlock", post(operator::unlock_user))
        .route("/users/{id}/lock", post(operator::lock_user))
        .route("/users/{id}/recovery-link", post(operator::recovery_link))
        .route("/users/{id}/mfa", delete(operator::reset_user_mfa))
        .route("/users/{id}/passkey-link", post(operator::passkey_link))
        .route("/users/{id}/memberships", post(operator::set_membership))
        .route(
            "/users/{id}/memberships/{org}",
            delete(operator::remove_membership),
        )
        .route("/users/{id}/sessions", get(operator::user_sessions))
        .route(
            "/users/{id}/sessions/revoke",
            post(operator::revoke_user_sessions),
        )
        .route("/orgs", get(operator::list_orgs).post(operator::create_org))
        .route(
            "/orgs/{org}",
            get(operator::get_org)
                .patch(operator::update_org)
                .delete(operator::delete_org),
        )
        .route("/keys", get(operator::list_keys))
        .route("/keys/rotate", post(operator::rotate_keys))
        .route("/config/reload", post(operator::reload_config))
        .route("/backup", post(operator::backup))
        .route("/keys/{kid}", delete(operator::revoke_key))
        .route(
            "/clients",
            get(operator::list_clients).post(operator::create_client),
        )
        .route(
            "/clients/{id}",
            get(operator::get_client)
                .patch(operator::update_client)
                .delete(operator::delete_client),
        )
        .route("/clients/{id}/secret", post(operator::rotate_client_secret))
        .route("/providers", get(social::list).post(social::create))
        .route(
            "/providers/{name}",
            get(social::get)
                .patch(social::update)
                .delete(social::delete),
        )
        .route("/forward-auth/rules", get(forward_auth::rules))
        .route("/users/{id}/forward-auth", get(forward_auth::reachable))
        .route("/approvals", get(operator::list_approvals))
        .route(
            "/approvals/{id}/resolve",
            post(operator::resolve_approval).get(operator::approval_confirmation_page),
        )
        .route("/audit", get(operator::audit))
        .route("/events/stream", get(operator::events_stream));
    let account_api = Router::new()
        .route("/", get(account::profile))
        .route("/password", post(account::change_password))
        .route(
            "/email/verify-request",
            post(account::request_email_verification),
        )
        .route("/sessions", get(account::sessions))
        .route("/sessions/revoke-all", post(account::revoke_all))
        .route("/sessions/{id}", delete(account::revoke_session))
        .route("/mfa", delete(account::mfa_disable))
        .route("/mfa/enroll", post(account::mfa_enroll))
        .route("/mfa/verify", post(account::mfa_verify))
        .route("/mfa/recovery-codes", post(account::mfa_recovery_codes))
        .route(
            "/webauthn",
            get(account::webauthn_keys).post(account::webauthn_register_finish),
        )
        .route("/webauthn/register", post(account::webauthn_register_start))
        .route("/apps", get(account::connected_apps))
        .route("/identities", get(social::identities))
        .route("/identities/link", post(social::link))
        .route("/identities/{id}", delete(social::unlink))
        .route("/apps/{client_id}", delete(account::revoke_connected_app))
        .route(
            "/webauthn/{id}",
            patch(account::webauthn_rename).delete(account::webauthn_remove),
        );

    // No /auth/refresh: control-plane sessions are not refreshable, so it is
    // a 404 like any path that does not exist.
    let control_plane_api = Router::new()
        .route("/auth/login", post(control_plane::login))
        .route("/auth/logout", post(control_plane::logout))
        .route(
            "/auth/api-tokens",
            get(control_plane::list_tokens).post(control_plane::create_token),
        )
        .route("/auth/api-tokens/{id}", delete(control_plane::revoke_token))
        .route("/org/memberships", get(control_plane::memberships))
        .route(
            "/users",
            get(control_plane::list_users).post(control_plane::create_user),
        )
        .route("/users/{id}", get(control_plane::get_user))
        .route("/users/{id}/disable", post(control_plane::disable_user))
        .route("/users/{id}/enable", post(control_plane::enable_user))
        .route("/sessions", get(control_plane::list_sessions))
        .route("/sessions/{id}", delete(control_plane::revoke_session))
        .route("/audit", get(control_plane::audit));

    let web_ui = Router::new()
        .route("/", get(ui::page))
        .route("/login", get(ui::page))
        .route("/register", get(ui::page))
        .route("/forgot-password", get(ui::page))
        .route("/reset-password", get(ui::page))
        .route("/verify-email", get(ui::page))
        .route("/account", get(ui::page))
        .route("/admin", get(ui::page))
        .route("/admin/{*section}", get(ui::page))
        .route("/consent", get(ui::page))
        .route("/device", get(ui::page))
        .route("/signout", get(ui::page))
        .route("/enroll", get(ui::page))
        .route("/ui/{*path}", get(ui::asset))
        .layer(tower_http::compression::CompressionLayer::new());

    Router::new()
        .merge(web_ui)
        .route("/ui/api/info", get(ui::info))
        .route("/ui/api/vocabulary", get(ui::vocabulary))
        .route("/ui/api/login", post(ui::login))
        .route("/ui/api/mfa", post(ui::mfa))
        .route("/ui/api/passkey", post(passkeys::ui_sign_in))
        .route("/ui/api/logout", post(ui::logout))
        .route("/ui/api/providers", get(social::public_list))
        .route(
            "/ui/api/consent",
            get(oidc::describe_consent).post(oidc::answer_consent),
        )
        .route(
            "/ui/api/device",
            get(oidc::describe_device).post(oidc::answer_device),
        )
        .route(
            "/ui/api/end_session",
            get(oidc::describe_end_session).post(oidc::confirm_end_session),
        )
        .route("/healthz", get(routes::health::healthz))
        .route("/metrics", get(routes::metrics::metrics))
        .route("/forward-auth", get(forward_auth::check))
        .route("/forward-auth/nginx", get(forward_auth::check_for_nginx))
        .route("/ui/api/return", get(forward_auth::check_return_url))
        .route("/register", post(identity::register))
        .route("/login", post(identity::login))
        .route("/password/forgot", post(identity::forgot_password))
        .route("/password/reset", post(identity::reset_password))
        .route("/email/verify", post(identity::verify_email))
        .route("/mfa/challenge", post(identity::mfa_challenge))
        .route("/mfa/webauthn/options", post(identity::webauthn_options))
        .route("/webauthn/login/options", post(passkeys::sign_in_options))
        .route("/webauthn/login", post(passkeys::sign_in))
        .route("/webauthn/enroll/options", post(passkeys::enroll_options))
        .route("/webauthn/enroll", post(passkeys::enroll))
        .route("/logout", post(oauth::logout))
        .route("/.well-known/jwks.json", get(identity::jwks))
        .route(
            "/.well-known/openid-configuration",
            get(oauth::openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::openid_configuration),
        )
        .route(
            "/oauth/authorize",
            get(oidc::authorize).post(oidc::authorize_form),
        )
        .route(
            "/oauth/callback/{name}",
            get(social::callback).post(social::callback_form),
        )
        .route("/oauth/userinfo", get(oidc::userinfo).post(oidc::userinfo))
        .route(
            "/oauth/end_session",
            get(oidc::end_session).post(oidc::end_session_form),
        )
        .route(
            "/oauth/device_authorization",
            post(oidc::device_authorization),
        )
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/revoke", post(oauth::revoke))
        .route("/oauth/introspect", post(oauth::introspect))
        .nest("/api/account", account_api.route_layer(from_fn(tag_route)))
        .nest("/v1", operator_api.route_layer(from_fn(tag_route)))
        .nest("/api/v1", control_plane_api.route_layer(from_fn(tag_route)))
        .route_layer(from_fn(tag_route))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                .option_layer(strict_transport_security(&config))
                .layer(axum::middleware::map_response(no_store_by_default))
                .layer(axum::middleware::from_fn(error::render_error_bodies))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    HeaderName::from_static("referrer-policy"),
                    HeaderValue::from_static("no-referrer"),
                ))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    config
                        .server
                        .request_timeout
                        .as_std()
                        .max(Duration::from_millis(100)),
                ))
                .layer(axum::middleware::from_fn(move |request, next| {
                    refuse_oversized_body(max_body_bytes, request, next)
                }))
                // Every body is read through an extractor, which enforces this.
                .layer(DefaultBodyLimit::max(config.server.max_body_bytes))
                .layer(from_fn(count_request)),
        )
}

/// The router for `metrics.listen`: `/metrics` without a token, nothing else.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(routes::metrics::open_metrics))
        .fallback(|| async { ApiError::not_found() })
        .with_state(state)
}

/// Hands the matched route template to [`count_request`] with the response
/// (a nested router's own, more precise template wins).
async fn tag_route(request: Request, next: axum::middleware::Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        if response.extensions().get::<MatchedPath>().is_none() {
            response.extensions_mut().insert(route);
        }
    }
    response
}

/// Counts every answered request by route template (`unmatched` for a path
/// no route has: raw paths never become labels) and status.
async fn count_request(request: Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    crate::metrics::METRICS.http_request(route, response.status().as_u16(), started.elapsed());
    response
}

/// A declared body above the limit, read and dropped before answering 413
/// when it is modest: closing a socket with unread bytes makes the kernel
/// reset it, and a client still sending would see the reset, not the 413.
const DRAIN_AT_MOST: u64 = 8 << 20;
const DRAIN_FOR: Duration = Duration::from_secs(5);

/// Refuses a body whose `Content-Length` is above `server.max_body_bytes`
/// before any handler runs (413, rendered in the path's error family).
async fn refuse_oversized_body(
    limit: usize,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => {
            if length <= DRAIN_AT_MOST {
                use futures_util::StreamExt;
                let mut body = request.into_body().into_data_stream();
                let _ = tokio::time::timeout(DRAIN_FOR, async {
                    while let Some(Ok(_)) = body.next().await {}
                })
                .await;
            }
            axum::response::IntoResponse::into_response(ApiError::from_status(
                StatusCode::PAYLOAD_TOO_LARGE,
            ))
        }
        _ => next.run(request).await,
    }
}

/// Every answer is private unless its handler says otherwise: tokens,
/// secrets (TOTP seeds, recovery codes, PATs), profiles, sessions and audit
/// records must never land in a browser's or a proxy's cache. Defaulting
/// here rather than in each handler means a new endpoint cannot forget it;
/// what may be cached (the UI's assets, JWKS, discovery) says so itself.
/// `Pragma` for HTTP/1.0 caches, as RFC 6749 §5.1 asks of token responses.
async fn no_store_by_default(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    response
}

/// Behind https, browsers are told to use nothing else for two years,
/// subdomains included, so that no first visit over plain http can be
/// intercepted to strip TLS or plant cookies. Sent on every response (the
/// TLS proxy in front may add its own; the same value twice is harmless).
/// Never when `public_url` is http: a development name must not be pinned
/// to https for two years.
fn strict_transport_security(
    config: &crate::config::Config,
) -> Option<SetResponseHeaderLayer<HeaderValue>> {
    config.serves_https().then(|| {
        SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        )
    })
}

/// The span every request's log lines carry. The path only: query strings can
/// hold credentials (`/v1/events/stream?token=`), and headers are never logged.
fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    )
}
