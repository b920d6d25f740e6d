//! Extractors that turn a raw request into typed, checked inputs: JSON bodies
//! with our error shape, the client's address, and who is calling (the
//! operator's token or a session's access token).

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::state::AppState;
use crate::service::pats::{Caller, OrgCaller};
use crate::service::{RequestContext, ServiceError};

/// `Json<T>` whose rejections (wrong content type, malformed JSON, bad UTF-8,
/// missing fields, too large) are rendered by [`ApiError`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(AppJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a JSON body with 'Content-Type: application/json'",
        ),
        JsonRejection::JsonDataError(error) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            describe_data_error(&error.body_text()),
        ),
        JsonRejection::JsonSyntaxError(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "malformed JSON body",
        ),
        JsonRejection::BytesRejection(rejection)
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
        {
            ApiError::from_status(StatusCode::PAYLOAD_TOO_LARGE)
        }
        other => ApiError::new(
            other.status(),
            "invalid_body",
            "could not read the request body",
        ),
    }
}

/// Names the field and the kind of problem, but never repeats a value from
/// the body: serde's own messages quote what was sent (`invalid type: string
/// "…"`), and what was sent may be a secret in the wrong field.
fn describe_data_error(text: &str) -> String {
    let detail =
        text.trim_start_matches("Failed to deserialize the JSON body into the target type: ");
    let (field, problem) = match detail.split_once(": ") {
        Some((field, problem)) if !field.contains(' ') => (Some(field), problem),
        _ => (None, detail),
    };
    let kind = if problem.starts_with("missing field") {
        // The missing field's name is in backticks and is not a value.
        return format!(
            "invalid JSON body: {}",
            problem.split(" at line").next().unwrap_or(problem)
        );
    } else if problem.starts_with("unknown field") {
        problem
            .split(", expected")
            .next()
            .unwrap_or("unknown field")
    } else if problem.starts_with("invalid type") {
        "has the wrong type"
    } else if problem.starts_with("invalid value") || problem.starts_with("unknown variant") {
        "has a value that is not allowed"
    } else {
        "is not valid"
    };
    match field {
        Some(field) => format!("invalid JSON body: `{field}` {kind}"),
        None => format!(
            "invalid JSON body: {}",
            kind.split(" at line").next().unwrap_or(kind)
        ),
    }
}

/// The bearer credential of a request, if it has one.
pub fn bearer_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    bearer_token_in(&parts.headers)
}

/// The bearer credential in `headers`, if there is one; a malformed header is
/// an error, not an absence.
pub fn bearer_token_in(headers: &axum::http::HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_authorization())?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(ApiError::invalid_authorization)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::invalid_authorization());
    }
    Ok(Some(token.trim()))
}

/// Proof that the request carries the operator's admin token.
#[derive(Debug, Clone, Copy)]
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)?.ok_or_else(ApiError::missing_authorization)?;
        if state.admin_token.verify(token) {
            Ok(Operator)
        } else {
            Err(ApiError::invalid_authorization())
        }
    }
}

/// Who is asking: client IP (from the socket, or from `X-Forwarded-For` when
/// the socket peer is a trusted proxy), user agent and request id.
#[derive(Debug, Clone)]
pub struct Client(pub RequestContext);

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let ip = client_ip(peer, &parts.headers, &state.config().server.trusted_proxies);
        let text = |name: header::HeaderName, limit: usize| {
            parts
                .headers
                .get(name)
                .map(|v| printable_prefix(v.as_bytes(), limit))
                .unwrap_or_default()
        };
        Ok(Client(RequestContext {
            ip,
            user_agent: text(header::USER_AGENT, 512),
            request_id: text(header::HeaderName::from_static("x-request-id"), 128),
        }))
    }
}

/// Up to `limit` characters of a header value, without control characters
/// (they would forge lines in a log or an audit export).
fn printable_prefix(bytes: &[u8], limit: usize) -> String {
    let head = &bytes[..bytes.len().min(limit)];
    // Nearly every value is plain ASCII: copied as it is, it needs no
    // character-by-character pass (this runs on every request).
    if head.iter().all(|b| (0x20..0x7f).contains(b)) {
        return String::from_utf8_lossy(head).into_owned();
    }
    String::from_utf8_lossy(bytes)
        .chars()
        .filter(|c| !c.is_control())
        .take(limit)
        .collect()
}

/// The client address: the socket peer, unless that peer is a trusted proxy,
/// in which case the right-most `X-Forwarded-For` entry that is not itself a
/// trusted proxy. Entries left of it could be forged by the client.
pub fn client_ip(
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(forwarded.first())
        .copied()
        .unwrap_or(peer)
}

/// A request to the account API: a live session's access token, or a PAT
/// (whose scopes the handler checks). A session that may only enroll MFA
/// is refused here (403 `mfa_enrollment_required`); the few routes such a
/// session may use take [`EnrollingAccount`] instead.
#[derive(Debug, Clone)]
pub struct Account(pub Caller);

impl FromRequestParts<AppState> for Account {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let EnrollingAccount(caller) = EnrollingAccount::from_request_parts(parts, state).await?;
        if let Caller::Session(session) = &caller {
            if session.enrollment_only {
                return Err(ServiceError::MfaEnrollmentRequired.into());
            }
        }
        Ok(Account(caller))
    }
}

/// Any authenticated caller, an enrollment-only session included: for what
/// such a session may still do — see who it is, enroll a second factor,
/// and log out.
#[derive(Debug, Clone)]
pub struct EnrollingAccount(pub Caller);

impl FromRequestParts<AppState> for EnrollingAccount {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let bearer = bearer_token(parts)
            .map_err(|_| ApiError::from(ServiceError::InvalidToken))?
            .map(str::to_owned);
        let caller = match bearer {
            Some(token) => {
                let Client(context) = Client::from_request_parts(parts, state).await?;
                state.services.authenticate_bearer(&token, &context).await?
            }
            None => match cookie(&parts.headers, UiCookies::of(&state.config()).session) {
                Some(cookie) => browser_session(parts, state, cookie).await?,
                None => {
                    return Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "invalid_token",
                        "missing bearer token",
                    ))
                }
            },
        };
        Ok(EnrollingAccount(caller))
    }
}

/// The names of the web UI's session cookie (HttpOnly) and its CSRF token
/// (readable by the page's script, sent back in `X-CSRF-Token`), and the
/// domain they are set for when forward-auth shares them with subdomains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiCookies {
    pub session: &'static str,
    pub csrf: &'static str,
    /// Whether they are set `Secure`.
    pub secure: bool,
    /// `forward_auth.cookie_domain`, if set.
    pub domain: Option<String>,
}

impl UiCookies {
    /// Behind https, `__Host-` cookies: a browser keeps them only if they
    /// are Secure, Path=/ and without Domain, so neither a sibling
    /// subdomain nor anyone on plain http can plant or overwrite them
    /// (session fixation, a CSRF token of the attacker's choosing). Only
    /// those names are read there. Browsers refuse `__Host-` without
    /// Secure, so plain http (local development, tests) keeps bare names.
    ///
    /// With `forward_auth.cookie_domain`, the cookies must reach the
    /// protected subdomains, which `__Host-` forbids: they are `__Secure-`
    /// (still https-only) with that Domain. The operator chose to trust
    /// every host under it; the README says so.
    pub fn of(config: &crate::config::Config) -> UiCookies {
        let domain = Some(
            config
                .forward_auth
                .cookie_domain
                .trim_start_matches('.')
                .to_owned(),
        )
        .filter(|d| !d.is_empty());
        match (config.serves_https(), &domain) {
            (true, None) => UiCookies {
                session: "__Host-authd_session",
                csrf: "__Host-authd_csrf",
                secure: true,
                domain,
            },
            (true, Some(_)) => UiCookies {
                session: "__Secure-authd_session",
                csrf: "__Secure-authd_csrf",
                secure: true,
                domain,
            },
            (false, _) => UiCookies {
                session: "authd_session",
                csrf: "authd_csrf",
                secure: false,
                domain,
            },
        }
    }

    /// A `Set-Cookie` value for `name` (one of these two).
    pub fn set_cookie(
        &self,
        name: &str,
        value: &str,
        http_only: bool,
        max_age: u64,
    ) -> axum::http::HeaderValue {
        // Path=/ always, and no Domain unless shared: both are what `__Host-` requires.
        let mut cookie = format!("{name}={value}; Path=/; SameSite=Lax; Max-Age={max_age}");
        if let Some(domain) = &self.domain {
            cookie.push_str("; Domain=");
            cookie.push_str(domain);
        }
        if http_only {
            cookie.push_str("; HttpOnly");
        }
        if self.secure {
            cookie.push_str("; Secure");
        }
        axum::http::HeaderValue::from_str(&cookie)
            .unwrap_or(axum::http::HeaderValue::from_static(""))
    }
}

pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of one cookie of the request.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    // A plain loop: forward-auth runs this on every request a proxy holds,
    // and the iterator chain it replaced cost twice as much.
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            let found = pair
                .trim()
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='));
            if found.is_some() {
                return found;
            }
        }
    }
    None
}

/// A request made with the browser's session cookie. Anything but a read
/// must carry the session's CSRF token: a cookie alone proves only that the
/// browser sent it, not that our page asked it to.
async fn browser_session(
    parts: &Parts,
    state: &AppState,
    cookie: &str,
) -> Result<Caller, ApiError> {
    let session = state
        .services
        .authenticate_browser_cookie(cookie, state.services.clock.now())
        .await?;
    let safe = matches!(parts.method.as_str(), "GET" | "HEAD" | "OPTIONS");
    if !safe {
        let token = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !state
            .services
            .csrf_token_is_valid(session.session_id, token)
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "missing or wrong X-CSRF-Token header",
            ));
        }
    }
    Ok(Caller::Session(session))
}

/// A caller that must be a session (a PAT is refused with 403): changing
/// one's password or second factors, logging out.
#[derive(Debug, Clone)]
pub struct SessionOnly(pub crate::service::tokens::SessionPrincipal);

impl FromRequestParts<AppState> for SessionOnly {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Account(caller) = Account::from_request_parts(parts, state).await?;
        Ok(SessionOnly(caller.session()?.clone()))
    }
}

/// [`SessionOnly`], an enrollment-only session included: for enrolling a
/// second factor and logging out.
#[derive(Debug, Clone)]
pub struct EnrollingSession(pub crate::service::tokens::SessionPrincipal);

impl FromRequestParts<AppState> for EnrollingSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let EnrollingAccount(caller) = EnrollingAccount::from_request_parts(parts, state).await?;
        Ok(EnrollingSession(caller.session()?.clone()))
    }
}

/// A control-plane request: a bearer credential (401 without a good one),
/// then `X-Active-Org-Id` (400 `ORG_REQUIRED` without, 403 `FORBIDDEN` for an
/// org the caller is not in, or that a PAT was not made for).
#[derive(Debug, Clone)]
pub struct InOrg(pub OrgCaller);

impl FromRequestParts<AppState> for InOrg {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Account(caller) = Account::from_request_parts(parts, state).await?;
        let header = parts
            .headers
            .get("x-active-org-id")
            .map(|value| {
                value
                    .to_str()
                    .map_err(|_| ApiError::from(ServiceError::Forbidden))
            })
            .transpose()?;
        Ok(InOrg(state.services.enter_org(caller, header).await?))
    }
}

/// The scopes a route needs, as types: a handler that takes
/// `OrgScoped<UsersRead>` or `AccountScoped<SessionsWrite>` says in its
/// signature what a caller must hold, and the extractor refuses the rest
/// (403 `insufficient_scope` for a PAT without it; in an org, also 403 when
/// the caller's role does not allow it).
pub mod needs {
    use crate::domain::Scope;

    pub trait NeedsScope {
        const SCOPE: Scope;
    }

    macro_rules! scope_types {
        ($($name:ident),*) => {$(
            #[derive(Debug, Clone, Copy)]
            pub struct $name;
            impl NeedsScope for $name {
                const SCOPE: Scope = Scope::$name;
            }
        )*};
    }

    scope_types!(
        UsersRead,
        UsersWrite,
        SessionsRead,
        SessionsWrite,
        AuditRead,
        TokensRead,
        TokensWrite
    );
}

/// [`InOrg`] holding the scope `S` (on the PAT, and within the caller's role).
#[derive(Debug, Clone)]
pub struct OrgScoped<S>(pub OrgCaller, pub std::marker::PhantomData<S>);

impl<S: needs::NeedsScope + Send> FromRequestParts<AppState> for OrgScoped<S> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let InOrg(caller) = InOrg::from_request_parts(parts, state).await?;
        caller.authorize(S::SCOPE)?;
        Ok(OrgScoped(caller, std::marker::PhantomData))
    }
}

/// [`Account`] holding the scope `S` (a session holds every scope; a PAT
/// only those it was made with).
#[derive(Debug, Clone)]
pub struct AccountScoped<S>(pub Caller, pub std::marker::PhantomData<S>);

impl<S: needs::NeedsScope + Send> FromRequestParts<AppState> for AccountScoped<S> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Account(caller) = Account::from_request_parts(parts, state).await?;
        caller.require_scope(S::SCOPE)?;
        Ok(AccountScoped(caller, std::marker::PhantomData))
    }
}

/// The browser's signed-in session, if it has one: for the pages an app
/// sends a person to (`/oauth/authorize`, `/oauth/end_session`), which
/// decide themselves what no session means. A stale or forged cookie is
/// no session.
#[derive(Debug, Clone)]
pub struct BrowserVisitor(pub Option<crate::service::tokens::SessionPrincipal>);

impl FromRequestParts<AppState> for BrowserVisitor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = cookie(&parts.headers, UiCookies::of(&state.config()).session) else {
            return Ok(BrowserVisitor(None));
        };
        Ok(BrowserVisitor(
            state
                .services
                .authenticate_browser_cookie(value, state.services.clock.now())
                .await
                .ok(),
        ))
    }
}

/// Who calls the token, introspection or revocation endpoint: the admin
/// token (Bearer), an app's `client_secret_basic` credentials, or nothing
/// in the header (the body may still carry `client_secret_post` or a
/// public client's `client_id`).
#[derive(Debug, Clone)]
pub enum TokenEndpointCaller {
    Operator,
    /// A bearer token that is not the admin token: no client credential
    /// (the token endpoint ignores it), and refused where the operator's is asked.
    OtherBearer,
    Basic(crate::service::clients::ClientCredentials),
    Unauthenticated,
}

impl FromRequestParts<AppState> for TokenEndpointCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(TokenEndpointCaller::Unauthenticated);
        };
        let invalid_client = || ApiError::from(ServiceError::invalid_client());
        let value = value.to_str().map_err(|_| invalid_client())?;
        let (scheme, credential) = value.split_once(' ').ok_or_else(invalid_client)?;
        if scheme.eq_ignore_ascii_case("bearer") {
            return Ok(if state.admin_token.verify(credential.trim()) {
                TokenEndpointCaller::Operator
            } else {
                TokenEndpointCaller::OtherBearer
            });
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(invalid_client());
        }
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credential.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(invalid_client)?;
        let (id, secret) = decoded.split_once(':').ok_or_else(invalid_client)?;
        // RFC 6749 §2.3.1: both parts are form-urlencoded before encoding.
        let unescape = |text: &str| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={text}"))
                .ok()
                .and_then(|mut pairs| pairs.pop())
                .map(|(_, value)| value)
        };
        let (Some(id), Some(secret)) = (unescape(id), unescape(secret)) else {
            return Err(invalid_client());
        };
        Ok(TokenEndpointCaller::Basic(
            crate::service::clients::ClientCredentials {
                client_id: Some(id),
                secret: Some(secret),
            },
        ))
    }
}

impl TokenEndpointCaller {
    /// The client's credentials, from the header or the body — not both
    /// (RFC 6749 §2.3: one method per request).
    pub fn client_credentials(
        &self,
        body_client_id: Option<String>,
        body_secret: Option<String>,
    ) -> Result<Option<crate::service::clients::ClientCredentials>, ApiError> {
        let body_client_id = body_client_id.filter(|v| !v.is_empty());
        let body_secret = body_secret.filter(|v| !v.is_empty());
        match self {
            TokenEndpointCaller::Basic(credentials) => {
                if body_secret.is_some() {
                    return Err(ApiError::bad_request(
                        "use one client authentication method, not two",
                    ));
                }
                if body_client_id
                    .as_ref()
                    .is_some_and(|id| Some(id) != credentials.client_id.as_ref())
                {
                    return Err(ServiceError::invalid_client().into());
                }
                Ok(Some(credentials.clone()))
            }
            _ if body_client_id.is_none() && body_secret.is_none() => Ok(None),
            _ => Ok(Some(crate::service::clients::ClientCredentials {
                client_id: body_client_id,
                secret: body_secret,
            })),
        }
    }
}

/// `Form<T>` whose rejections are rendered by [`ApiError`] as
/// `invalid_request` (RFC 6749 §5.2 wants 400 for a malformed request).
#[derive(Debug, Clone, Copy, Default)]
pub struct AppForm<T>(pub T);

impl<T, S> FromRequest<S> for AppForm<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(AppForm(value)),
            Err(axum::extract::rejection::FormRejection::BytesRejection(rejection))
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::from_status(StatusCode::PAYLOAD_TOO_LARGE))
            }
            Err(_) => Err(ApiError::bad_request(
                "expected an application/x-www-form-urlencoded body",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{cookie, describe_data_error, printable_prefix};

    #[test]
    fn a_cookie_is_found_by_its_exact_name_in_any_cookie_header() {
        let mut headers = axum::http::HeaderMap::new();
        headers.append("cookie", "a=1; authd_session_csrf=no".parse().unwrap());
        headers.append(
            "cookie",
            axum::http::HeaderValue::from_bytes(b"bad=\xff").unwrap(),
        );
        headers.append(
            "cookie",
            " authd_session = ;authd_session=id.se=cret ; z"
                .parse()
                .unwrap(),
        );
        assert_eq!(cookie(&headers, "authd_session"), Some("id.se=cret"));
        assert_eq!(cookie(&headers, "authd_session_csrf"), Some("no"));
        assert_eq!(cookie(&headers, "a"), Some("1"));
        assert_eq!(cookie(&headers, "z"), None);
        assert_eq!(cookie(&headers, "authd"), None);
    }

    #[test]
    fn header_text_keeps_printable_characters_up_to_the_limit() {
        assert_eq!(printable_prefix(b"curl/8.5.0", 512), "curl/8.5.0");
        assert_eq!(printable_prefix(b"abcdef", 3), "abc");
        assert_eq!(printable_prefix(b"a\r\nb\tc\x7fd", 512), "abcd");
        assert_eq!(
            printable_prefix("caf\u{e9} \u{85}x".as_bytes(), 512),
            "caf\u{e9} x"
        );
        assert_eq!(printable_prefix(b"\x00\x01abc", 2), "ab");
        assert_eq!(printable_prefix(b"ok\xff", 512), "ok\u{fffd}");
    }

    #[test]
    fn data_errors_name_the_field_but_never_echo_a_value() {
        let prefix = "Failed to deserialize the JSON body into the target type: ";
        for (serde_text, expected) in [
            (
                "password: invalid type: integer `123456`, expected a string at line 1 column 20",
                "invalid JSON body: `password` has the wrong type",
            ),
            (
                "registration: unknown variant `hunter2`, expected one of `open`, `approval`, `closed` at line 1 column 9",
                "invalid JSON body: `registration` has a value that is not allowed",
            ),
            ("missing field `email` at line 1 column 2", "invalid JSON body: missing field `email`"),
            (
                "colour: unknown field `colour`, expected `slug` at line 1 column 9",
                "invalid JSON body: `colour` unknown field `colour`",
            ),
            (
                "invalid type: string \"s3cret\", expected a map at line 1 column 8",
                "invalid JSON body: has the wrong type",
            ),
        ] {
            let described = describe_data_error(&format!("{prefix}{serde_text}"));
            assert_eq!(described, expected);
            assert!(!described.contains("123456") && !described.contains("hunter2") && !described.contains("s3cret"));
        }
    }
}
