//! An upstream sign-in provider (Google, Microsoft, Apple, GitHub, any
//! OpenID Provider, any OAuth 2.0 server) of one org, and an identity a
//! person holds there, linked to an authd account. Plain data: the secrets
//! in a [`Provider`] are sealed bytes (see `service::providers`), never the
//! secrets themselves.

use serde::{Deserialize, Serialize};

use super::ids::{OrgId, UserId};
use crate::clock::UnixSeconds;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Google,
    Microsoft,
    Apple,
    Github,
    Oidc,
    Oauth2,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Google => "google",
            ProviderKind::Microsoft => "microsoft",
            ProviderKind::Apple => "apple",
            ProviderKind::Github => "github",
            ProviderKind::Oidc => "oidc",
            ProviderKind::Oauth2 => "oauth2",
        }
    }

    /// Whether the provider answers with an ID token (OpenID Connect).
    pub fn speaks_oidc(self) -> bool {
        matches!(
            self,
            ProviderKind::Google
                | ProviderKind::Microsoft
                | ProviderKind::Apple
                | ProviderKind::Oidc
        )
    }

    /// The scopes asked for when the operator names none.
    pub fn default_scopes(self) -> &'static [&'static str] {
        match self {
            ProviderKind::Google | ProviderKind::Microsoft | ProviderKind::Oidc => {
                &["openid", "email", "profile"]
            }
            ProviderKind::Apple => &["openid", "email", "name"],
            ProviderKind::Github => &["read:user", "user:email"],
            ProviderKind::Oauth2 => &[],
        }
    }
}

/// Where an `oauth2` provider's userinfo keeps each fact (top-level keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimMapping {
    #[serde(default = "ClaimMapping::default_subject")]
    pub subject: String,
    #[serde(default = "ClaimMapping::default_email")]
    pub email: String,
    #[serde(default = "ClaimMapping::default_email_verified")]
    pub email_verified: String,
    #[serde(default = "ClaimMapping::default_name")]
    pub name: String,
}

impl ClaimMapping {
    fn default_subject() -> String {
        "sub".to_owned()
    }
    fn default_email() -> String {
        "email".to_owned()
    }
    fn default_email_verified() -> String {
        "email_verified".to_owned()
    }
    fn default_name() -> String {
        "name".to_owned()
    }
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            subject: Self::default_subject(),
            email: Self::default_email(),
            email_verified: Self::default_email_verified(),
            name: Self::default_name(),
        }
    }
}

/// A provider as stored. `name` is its key and the last segment of its
/// callback URL (`/oauth/callback/NAME`), so it is unique across orgs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provider {
    pub name: String,
    pub org_id: OrgId,
    pub kind: ProviderKind,
    pub client_id: String,
    /// The client secret, sealed (context: `provider/<name>/client_secret`).
    #[serde(default, with = "sealed_bytes")]
    pub sealed_client_secret: Option<Vec<u8>>,
    #[serde(default)]
    pub discovery_url: Option<String>,
    #[serde(default)]
    pub authorize_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub userinfo_url: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub team_id: Option<String>,
    #[serde(default)]
    pub key_id: Option<String>,
    /// Apple's PKCS#8 PEM private key, sealed (context: `provider/<name>/private_key`).
    #[serde(default, with = "sealed_bytes")]
    pub sealed_private_key: Option<Vec<u8>>,
    #[serde(default)]
    pub claims: Option<ClaimMapping>,
    pub scopes: Vec<String>,
    pub link_by_email: bool,
    pub create_users: bool,
    pub enabled: bool,
    pub created_at: UnixSeconds,
    #[serde(default)]
    pub updated_at: Option<UnixSeconds>,
}

impl Provider {
    /// What authd seals the client secret with: bound to this provider.
    pub fn secret_context(name: &str, field: &str) -> Vec<u8> {
        format!("provider/{name}/{field}").into_bytes()
    }
}

/// A person's account at a provider, linked to an authd user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Random, for the account page's unlink.
    pub id: String,
    pub provider: String,
    /// The provider's stable id for the person (`sub`, GitHub's numeric id).
    pub subject: String,
    pub user_id: UserId,
    /// The email the provider gave at the last sign-in, for display.
    #[serde(default)]
    pub email: Option<String>,
    pub linked_at: UnixSeconds,
    #[serde(default)]
    pub last_used_at: Option<UnixSeconds>,
}

/// Provider names: lowercase letters, digits, `-` and `_`, 1–40, starting
/// with a letter or digit (they end up in a URL path).
pub fn check_provider_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !first_ok || name.len() > 40 {
        return Err(
            "1 to 40 characters: lowercase letters, digits, - and _, not starting with - or _",
        );
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(
            "1 to 40 characters: lowercase letters, digits, - and _, not starting with - or _",
        );
    }
    Ok(())
}

/// An upstream endpoint authd will call or send a browser to: https, or
/// http only to a loopback host (a provider on the same machine, tests).
pub fn check_upstream_url(text: &str) -> Result<url::Url, &'static str> {
    let url = url::Url::parse(text).map_err(|_| "not an absolute URL")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials");
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment");
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(host)) => host == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err("has no host"),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err("must be https (http only for loopback hosts)"),
    }
}

/// Sealed bytes as base64 in the JSON record.
mod sealed_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => s.serialize_some(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| STANDARD.decode(text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_are_https_or_loopback_http() {
        assert!(check_upstream_url("https://accounts.google.com/x").is_ok());
        assert!(check_upstream_url("http://127.0.0.1:8080/x").is_ok());
        assert!(check_upstream_url("http://localhost/x").is_ok());
        assert!(check_upstream_url("http://example.com/x").is_err());
        assert!(check_upstream_url("https://u:p@example.com/").is_err());
        assert!(check_upstream_url("ftp://example.com/").is_err());
        assert!(check_upstream_url("/relative").is_err());
    }

    #[test]
    fn provider_names_fit_a_path_segment() {
        assert!(check_provider_name("google").is_ok());
        assert!(check_provider_name("corp-sso_2").is_ok());
        assert!(check_provider_name("").is_err());
        assert!(check_provider_name("-x").is_err());
        assert!(check_provider_name("Google").is_err());
        assert!(check_provider_name("a/b").is_err());
        assert!(check_provider_name(&"a".repeat(41)).is_err());
    }
}
