//! Talking to upstream sign-in providers: their endpoints (from OpenID
//! discovery, cached an hour, or the presets' documented URLs), the token
//! exchange, userinfo and GitHub's `/user` + `/user/emails`, the JWKS cache
//! (fetched again on a `kid` it does not know, at most once a minute per
//! provider), and Apple's client secret, made anew before it expires.
//!
//! Every call has a connect and a total timeout, follows no redirect, reads
//! at most [`MAX_RESPONSE_BYTES`], and verifies TLS against the bundled
//! WebPKI roots (rustls), which work in the static binary. Nothing here logs
//! a code, token or secret; errors carry only the provider's own error code
//! and description.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::crypto::upstream::UpstreamKeys;
use serde_json::Value;

use crate::clock::UnixSeconds;
use crate::crypto::upstream::IdTokenError;
use crate::domain::provider::{check_upstream_url, Provider, ProviderKind};

/// The most a provider's answer may be; larger ones are refused.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
const DISCOVERY_TTL_SECONDS: i64 = 3600;
const JWKS_TTL_SECONDS: i64 = 3600;
/// How soon a JWKS may be fetched again because of an unknown `kid`.
const JWKS_REFETCH_SECONDS: i64 = 60;
/// Apple's client secret lives this long and is made anew a day before.
const APPLE_SECRET_TTL_SECONDS: i64 = 30 * 24 * 3600;
const APPLE_SECRET_RENEW_SECONDS: i64 = 24 * 3600;

/// Why a call to a provider did not give what the sign-in needs.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Could not connect, timed out, or answered 5xx.
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
    /// The provider answered with an OAuth error (`error`, description).
    #[error("the provider refused: {0}")]
    Refused(String, Option<String>),
    /// The provider's answer was not what its protocol says.
    #[error("the provider's answer is not usable: {0}")]
    Invalid(String),
    #[error(transparent)]
    IdToken(#[from] IdTokenError),
    #[error("provider configuration: {0}")]
    Configuration(String),
}

impl UpstreamError {
    /// The audit record's `reason`.
    pub fn code(&self) -> &'static str {
        match self {
            UpstreamError::Unreachable(_) => "upstream_unreachable",
            UpstreamError::Refused(..) => "upstream_refused",
            UpstreamError::Invalid(_) => "upstream_invalid",
            UpstreamError::IdToken(error) => error.code(),
            UpstreamError::Configuration(_) => "provider_configuration",
        }
    }
}

pub type UpstreamResult<T> = Result<T, UpstreamError>;

/// Where a provider's endpoints are.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authorize: String,
    pub token: String,
    pub userinfo: Option<String>,
    pub jwks: Option<String>,
    pub issuer: Option<String>,
}

/// The documented endpoints of the presets.
const GOOGLE_DISCOVERY: &str = "https://accounts.google.com/.well-known/openid-configuration";
const APPLE_DISCOVERY: &str = "https://appleid.apple.com/.well-known/openid-configuration";
const GITHUB_AUTHORIZE: &str = "https://github.com/login/oauth/authorize";
const GITHUB_TOKEN: &str = "https://github.com/login/oauth/access_token";
const GITHUB_USER: &str = "https://api.github.com/user";

/// Google's ID tokens may name their issuer without the scheme.
pub fn issuer_aliases(kind: ProviderKind) -> &'static [&'static str] {
    match kind {
        ProviderKind::Google => &["accounts.google.com"],
        _ => &[],
    }
}

fn discovery_url(provider: &Provider) -> Option<String> {
    if let Some(url) = &provider.discovery_url {
        return Some(url.clone());
    }
    match provider.kind {
        ProviderKind::Google => Some(GOOGLE_DISCOVERY.to_owned()),
        ProviderKind::Apple => Some(APPLE_DISCOVERY.to_owned()),
        ProviderKind::Microsoft => Some(format!(
            "https://login.microsoftonline.com/{}/v2.0/.well-known/openid-configuration",
            provider.tenant.as_deref().unwrap_or("common")
        )),
        _ => None,
    }
}

/// Outbound HTTP to providers, with its caches. One per server.
pub struct Upstream {
    http: reqwest::Client,
    discovery: Mutex<HashMap<String, (UnixSeconds, Endpoints)>>,
    jwks: Mutex<HashMap<String, (UnixSeconds, UpstreamKeys)>>,
    apple_secrets: Mutex<HashMap<String, (UnixSeconds, String)>>,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Upstream {
    pub fn new() -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("authd/", env!("CARGO_PKG_VERSION")))
            .https_only(false)
            .build()?;
        Ok(Self {
            http,
            discovery: Mutex::new(HashMap::new()),
            jwks: Mutex::new(HashMap::new()),
            apple_secrets: Mutex::new(HashMap::new()),
        })
    }

    /// Drops what is cached for a provider that changed or went.
    pub fn forget(&self, name: &str) {
        locked(&self.apple_secrets).remove(name);
        locked(&self.discovery).clear();
    }

    /// The provider's endpoints: discovered (OpenID kinds) or configured.
    pub async fn endpoints(
        &self,
        provider: &Provider,
        now: UnixSeconds,
    ) -> UpstreamResult<Endpoints> {
        match provider.kind {
            ProviderKind::Github => Ok(Endpoints {
                authorize: provider
                    .authorize_url
                    .clone()
                    .unwrap_or_else(|| GITHUB_AUTHORIZE.to_owned()),
                token: provider
                    .token_url
                    .clone()
                    .unwrap_or_else(|| GITHUB_TOKEN.to_owned()),
                userinfo: Some(
                    provider
                        .userinfo_url
                        .clone()
                        .unwrap_or_else(|| GITHUB_USER.to_owned()),
                ),
                jwks: None,
                issuer: None,
            }),
            ProviderKind::Oauth2 => match (&provider.authorize_url, &provider.token_url) {
                (Some(authorize), Some(token)) => Ok(Endpoints {
                    authorize: authorize.clone(),
                    token: token.clone(),
                    userinfo: provider.userinfo_url.clone(),
                    jwks: None,
                    issuer: None,
                }),
                _ => Err(UpstreamError::Configuration(
                    "authorize_url and token_url are required".into(),
                )),
            },
            _ => {
                let url = discovery_url(provider)
                    .ok_or_else(|| UpstreamError::Configuration("no discovery_url".into()))?;
                self.discover(&url, now).await
            }
        }
    }

    async fn discover(&self, url: &str, now: UnixSeconds) -> UpstreamResult<Endpoints> {
        if let Some((at, endpoints)) = locked(&self.discovery).get(url) {
            if now - at < DISCOVERY_TTL_SECONDS {
                return Ok(endpoints.clone());
            }
        }
        let document = self.get_json(url, None).await?;
        let field = |name: &str| -> UpstreamResult<String> {
            let text = document
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| UpstreamError::Invalid(format!("discovery has no {name}")))?;
            check_upstream_url(text)
                .map_err(|why| UpstreamError::Invalid(format!("discovery {name}: {why}")))?;
            Ok(text.to_owned())
        };
        let endpoints = Endpoints {
            authorize: field("authorization_endpoint")?,
            token: field("token_endpoint")?,
            userinfo: field("userinfo_endpoint").ok(),
            jwks: Some(field("jwks_uri")?),
            issuer: Some(
                document
                    .get("issuer")
                    .and_then(Value::as_str)
                    .filter(|issuer| !issuer.is_empty())
                    .ok_or_else(|| UpstreamError::Invalid("discovery has no issuer".into()))?
                    .to_owned(),
            ),
        };
        let mut cache = locked(&self.discovery);
        if cache.len() > 256 {
            cache.clear();
        }
        cache.insert(url.to_owned(), (now, endpoints.clone()));
        Ok(endpoints)
    }

    /// The provider's keys; fetched again if `token` names a `kid` the
    /// cached set lacks and the last fetch is over a minute old (so a flood
    /// of forged tokens cannot make authd hammer the provider).
    pub async fn jwks(
        &self,
        url: &str,
        token: &str,
        now: UnixSeconds,
    ) -> UpstreamResult<UpstreamKeys> {
        let cached = locked(&self.jwks).get(url).cloned();
        if let Some((at, keys)) = cached {
            let stale = now - at >= JWKS_TTL_SECONDS;
            let unknown_kid = crate::crypto::upstream::names_unknown_key(token, &keys);
            if !stale && (!unknown_kid || now - at < JWKS_REFETCH_SECONDS) {
                return Ok(keys);
            }
        }
        let document = self.get_json(url, None).await?;
        let keys: UpstreamKeys = serde_json::from_value(document)
            .map_err(|_| UpstreamError::Invalid("the JWKS could not be read".into()))?;
        let mut cache = locked(&self.jwks);
        if cache.len() > 256 {
            cache.clear();
        }
        cache.insert(url.to_owned(), (now, keys.clone()));
        Ok(keys)
    }

    /// Apple's client secret for `provider`, made anew a day before it expires.
    pub fn apple_client_secret(
        &self,
        provider: &Provider,
        private_key_pem: &str,
        now: UnixSeconds,
    ) -> UpstreamResult<String> {
        if let Some((expires_at, secret)) = locked(&self.apple_secrets).get(&provider.name) {
            if expires_at - now > APPLE_SECRET_RENEW_SECONDS {
                return Ok(secret.clone());
            }
        }
        let (Some(team_id), Some(key_id)) = (&provider.team_id, &provider.key_id) else {
            return Err(UpstreamError::Configuration(
                "team_id and key_id are required".into(),
            ));
        };
        let expires_at = now + APPLE_SECRET_TTL_SECONDS;
        let secret = crate::crypto::upstream::apple_client_secret(
            team_id,
            key_id,
            &provider.client_id,
            private_key_pem.as_bytes(),
            now,
            expires_at,
        )
        .map_err(|error| UpstreamError::Configuration(error.to_string()))?;
        locked(&self.apple_secrets).insert(provider.name.clone(), (expires_at, secret.clone()));
        Ok(secret)
    }

    /// The authorization-code exchange (RFC 6749 §4.1.3, client secret in
    /// the body as every preset accepts; PKCE verifier).
    pub async fn exchange_code(
        &self,
        token_url: &str,
        form: &[(&str, &str)],
    ) -> UpstreamResult<Value> {
        let request = self.http.post(token_url).form(form);
        let answer = self.send(request).await?;
        if let Some(error) = answer.get("error").and_then(Value::as_str) {
            return Err(refused(error, &answer));
        }
        Ok(answer)
    }

    /// A GET with the user's access token (userinfo, GitHub's API).
    pub async fn get_json(&self, url: &str, bearer: Option<&str>) -> UpstreamResult<Value> {
        let mut request = self.http.get(url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> UpstreamResult<Value> {
        let mut response = request
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| UpstreamError::Unreachable(describe(&error)))?;
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|length| length > MAX_RESPONSE_BYTES as u64)
        {
            return Err(UpstreamError::Invalid("the answer is too large".into()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| UpstreamError::Unreachable(describe(&error)))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(UpstreamError::Invalid("the answer is too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_server_error() {
            return Err(UpstreamError::Unreachable(format!(
                "HTTP {}",
                status.as_u16()
            )));
        }
        let value: Value = serde_json::from_slice(&body)
            .map_err(|_| UpstreamError::Invalid(format!("HTTP {}, not JSON", status.as_u16())))?;
        if !status.is_success() {
            return Err(match value.get("error").and_then(Value::as_str) {
                Some(error) => refused(error, &value),
                None => UpstreamError::Invalid(format!("HTTP {}", status.as_u16())),
            });
        }
        Ok(value)
    }
}

/// An OAuth error from the provider, its texts cut short and printable.
fn refused(error: &str, answer: &Value) -> UpstreamError {
    UpstreamError::Refused(
        printable(error),
        answer
            .get("error_description")
            .and_then(Value::as_str)
            .map(printable),
    )
}

/// Text from a provider, safe to keep in an audit record or show: at most
/// 200 printable characters.
pub fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// What went wrong with a request, without its URL (which may carry a code).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apple_provider() -> Provider {
        Provider {
            name: "apple".into(),
            org_id: crate::domain::OrgId::random(),
            kind: ProviderKind::Apple,
            client_id: "com.example.web".into(),
            sealed_client_secret: None,
            discovery_url: None,
            authorize_url: None,
            token_url: None,
            userinfo_url: None,
            tenant: None,
            team_id: Some("TEAM123456".into()),
            key_id: Some("KEY1234567".into()),
            sealed_private_key: None,
            claims: None,
            scopes: vec![],
            link_by_email: false,
            create_users: false,
            enabled: true,
            created_at: 0,
            updated_at: None,
        }
    }

    #[test]
    fn apples_client_secret_is_reused_until_a_day_before_it_expires() {
        let pem = include_str!("../../tests/api/social_login/keys/apple_p256.p8");
        let upstream = Upstream::new().unwrap_or_else(|e| panic!("{e}"));
        let provider = apple_provider();
        let first = upstream.apple_client_secret(&provider, pem, 1_000).ok();
        assert!(first.is_some());
        let later = 1_000 + APPLE_SECRET_TTL_SECONDS - APPLE_SECRET_RENEW_SECONDS - 1;
        assert_eq!(
            upstream.apple_client_secret(&provider, pem, later).ok(),
            first
        );
        let renewed = upstream.apple_client_secret(&provider, pem, later + 2).ok();
        assert!(
            renewed.is_some() && renewed != first,
            "made anew before it expires"
        );
    }

    #[test]
    fn a_jwks_with_keys_authd_cannot_use_still_reads() {
        let document = serde_json::json!({"keys": [
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "weird", "kid": "w"},
            {"kty": "EC", "crv": "P-256", "kid": "ok", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        ]});
        let keys: UpstreamKeys = serde_json::from_value(document).unwrap_or_default();
        assert!(keys.find("ok").is_some());
        assert_eq!(keys.len(), 3);
    }
}
