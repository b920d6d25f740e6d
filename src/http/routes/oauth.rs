//! The OAuth 2.0 / OpenID Connect token surface: `POST /oauth/token` (every
//! grant), `/oauth/revoke` (RFC 7009), `/oauth/introspect` (RFC 7662),
//! `POST /logout`, and the discovery documents (OpenID Connect Discovery
//! and RFC 8414). The browser-facing endpoints are in `oidc`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::domain::GrantType;
use crate::http::error::ApiError;
use crate::http::extract::{bearer_token_in, AppForm, Client, TokenEndpointCaller};
use crate::http::state::AppState;
use crate::service::refresh::{Introspection, RefreshError, TokenCaller};
use crate::service::ServiceError;

/// Every parameter any grant of the token endpoint takes.
#[derive(Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    refresh_token: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    device_code: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn oauth_error(code: &'static str, description: &'static str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, description)
}

fn required(value: Option<String>, name: &'static str) -> Result<String, ApiError> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| {
        ApiError::from(ServiceError::oauth(
            "invalid_request",
            format!("{name} is required"),
        ))
    })
}

/// `POST /oauth/token`: every grant. The client authenticates first (when
/// it presents anything, or when the grant needs a client); then the grant.
pub async fn token(
    State(state): State<AppState>,
    Client(context): Client,
    caller: TokenEndpointCaller,
    AppForm(body): AppForm<TokenRequest>,
) -> Result<Response, ApiError> {
    let grant_type = required(body.grant_type, "grant_type")?;
    let grant = GrantType::parse(&grant_type).ok_or_else(|| {
        oauth_error(
            "unsupported_grant_type",
            "grant_type must be authorization_code, refresh_token, client_credentials or the device code",
        )
    })?;
    let presented = caller.client_credentials(body.client_id, body.client_secret)?;
    let client = match presented {
        Some(credentials) => Some(state.services.authenticate_client(&credentials)?),
        None => None,
    };
    let needs_client = || ApiError::from(ServiceError::invalid_client());
    let answer = match grant {
        GrantType::RefreshToken => {
            let presented = required(body.refresh_token, "refresh_token")?;
            match state.services.refresh(&presented, client, &context).await {
                Ok(tokens) => Json(tokens).into_response(),
                Err(RefreshError::Refused(_)) => {
                    return Err(oauth_error(
                        "invalid_grant",
                        "the refresh token is invalid, expired, revoked or already used",
                    ))
                }
                Err(RefreshError::Service(error)) => return Err(error.into()),
            }
        }
        GrantType::AuthorizationCode => {
            let client = client.ok_or_else(needs_client)?;
            let code = required(body.code, "code")?;
            Json(
                state
                    .services
                    .exchange_code(
                        client,
                        &code,
                        body.redirect_uri,
                        body.code_verifier,
                        &context,
                    )
                    .await?,
            )
            .into_response()
        }
        GrantType::ClientCredentials => {
            let client = client.ok_or_else(needs_client)?;
            Json(
                state
                    .services
                    .client_credentials(client, body.scope)
                    .await?,
            )
            .into_response()
        }
        GrantType::DeviceCode => {
            let client = client.ok_or_else(needs_client)?;
            let device_code = required(body.device_code, "device_code")?;
            Json(
                state
                    .services
                    .poll_device_code(client, &device_code, &context)
                    .await?,
            )
            .into_response()
        }
    };
    Ok(answer)
}

#[derive(Deserialize)]
pub struct TokenParameter {
    token: Option<String>,
    #[allow(dead_code)]
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Who is asking about a token: the operator, an authenticated app, or
/// (revocation only) anyone holding it.
fn token_caller(
    state: &AppState,
    caller: &TokenEndpointCaller,
    body: &TokenParameter,
) -> Result<TokenCaller, ApiError> {
    match caller {
        TokenEndpointCaller::Operator => return Ok(TokenCaller::Operator),
        // Someone's own token in the header proves nothing about the
        // token in the body: revocation treats them as anyone.
        TokenEndpointCaller::OtherBearer => return Ok(TokenCaller::Anyone),
        _ => {}
    }
    match caller.client_credentials(body.client_id.clone(), body.client_secret.clone())? {
        Some(credentials) => Ok(TokenCaller::Client(
            state.services.authenticate_client(&credentials)?.id,
        )),
        None => Ok(TokenCaller::Anyone),
    }
}

/// RFC 7009: 200 whether or not the token was known.
pub async fn revoke(
    State(state): State<AppState>,
    Client(context): Client,
    caller: TokenEndpointCaller,
    AppForm(body): AppForm<TokenParameter>,
) -> Result<StatusCode, ApiError> {
    let who = token_caller(&state, &caller, &body)?;
    let token = required(body.token, "token")?;
    state.services.revoke_token(&token, &who, &context).await?;
    Ok(StatusCode::OK)
}

/// RFC 7662, for the operator and for apps (their own tokens).
pub async fn introspect(
    State(state): State<AppState>,
    caller: TokenEndpointCaller,
    AppForm(body): AppForm<TokenParameter>,
) -> Result<Response, ApiError> {
    if matches!(caller, TokenEndpointCaller::OtherBearer) {
        return Err(ApiError::invalid_authorization());
    }
    let who = token_caller(&state, &caller, &body)?;
    if who == TokenCaller::Anyone {
        return Err(ApiError::missing_authorization());
    }
    let token = required(body.token, "token")?;
    let answer: Introspection = state.services.introspect(&token, &who).await?;
    Ok(Json(answer).into_response())
}

#[derive(Deserialize, Default)]
pub struct LogoutForm {
    refresh_token: Option<String>,
}

/// Ends the session of a Bearer access token, or of a form `refresh_token`.
pub async fn logout(
    State(state): State<AppState>,
    Client(context): Client,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    if let Some(token) = bearer_token_in(&headers)? {
        let claims = state
            .services
            .verify_access_token(token, state.services.clock.now())
            .await?;
        state
            .services
            .logout_session(claims.sid, "logout", &context)
            .await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    let form: LogoutForm = if body.is_empty() {
        LogoutForm::default()
    } else {
        serde_urlencoded::from_bytes(&body).map_err(|_| {
            ApiError::bad_request("expected an application/x-www-form-urlencoded body")
        })?
    };
    let refresh_token = form
        .refresh_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::from(ServiceError::field(
                "refresh_token",
                "send a Bearer access token or a refresh_token",
            ))
        })?;
    state
        .services
        .logout_refresh_token(&refresh_token, "logout", &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The discovery document (OpenID Connect Discovery 1.0 and RFC 8414):
/// every endpoint, grant, method, scope and claim that exists, and only those.
#[derive(Serialize)]
pub struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    jwks_uri: String,
    end_session_endpoint: String,
    revocation_endpoint: String,
    introspection_endpoint: String,
    device_authorization_endpoint: String,
    grant_types_supported: Vec<&'static str>,
    response_types_supported: [&'static str; 1],
    response_modes_supported: [&'static str; 1],
    subject_types_supported: [&'static str; 1],
    id_token_signing_alg_values_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: [&'static str; 3],
    revocation_endpoint_auth_methods_supported: [&'static str; 3],
    introspection_endpoint_auth_methods_supported: [&'static str; 2],
    code_challenge_methods_supported: [&'static str; 1],
    scopes_supported: [&'static str; 5],
    claims_supported: &'static [&'static str],
    prompt_values_supported: [&'static str; 3],
    acr_values_supported: [&'static str; 2],
    authorization_response_iss_parameter_supported: bool,
    request_parameter_supported: bool,
    request_uri_parameter_supported: bool,
    claims_parameter_supported: bool,
}

/// `/.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`.
pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    let config = state.config();
    let base = config.server.public_url.trim_end_matches('/');
    let endpoint = |path: &str| format!("{base}{path}");
    let discovery = Discovery {
        issuer: state.config().server.public_url.clone(),
        authorization_endpoint: endpoint("/oauth/authorize"),
        token_endpoint: endpoint("/oauth/token"),
        userinfo_endpoint: endpoint("/oauth/userinfo"),
        jwks_uri: endpoint("/.well-known/jwks.json"),
        end_session_endpoint: endpoint("/oauth/end_session"),
        revocation_endpoint: endpoint("/oauth/revoke"),
        introspection_endpoint: endpoint("/oauth/introspect"),
        device_authorization_endpoint: endpoint("/oauth/device_authorization"),
        grant_types_supported: GrantType::ALL.iter().map(|g| g.as_str()).collect(),
        response_types_supported: ["code"],
        response_modes_supported: ["query"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: [crate::service::keys::configured_algorithm(
            &state.config(),
        )
        .as_str()],
        token_endpoint_auth_methods_supported: [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        revocation_endpoint_auth_methods_supported: [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        introspection_endpoint_auth_methods_supported: [
            "client_secret_basic",
            "client_secret_post",
        ],
        code_challenge_methods_supported: ["S256"],
        scopes_supported: crate::domain::client::CLIENT_SCOPES,
        claims_supported: &[
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "azp",
            "at_hash",
            "sid",
            "name",
            "preferred_username",
            "email",
            "email_verified",
            "groups",
        ],
        prompt_values_supported: ["none", "login", "consent"],
        acr_values_supported: crate::service::client_tokens::ACR_VALUES,
        authorization_response_iss_parameter_supported: true,
        request_parameter_supported: false,
        request_uri_parameter_supported: false,
        claims_parameter_supported: false,
    };
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        Json(discovery),
    )
        .into_response()
}
