//! An OAuth 2.0 / OpenID Connect client (a relying party such as Grafana):
//! its kind, the exact redirect URIs it may use, what it may ask for, and
//! the checks on those that hold whatever the caller (RFC 9700 §2.1, §4.1).

use serde::{Deserialize, Serialize};

use super::ids::OrgId;
use crate::clock::UnixSeconds;

/// The scopes authd understands for clients; anything else is refused.
pub const CLIENT_SCOPES: [&str; 5] = ["openid", "profile", "email", "groups", "offline_access"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Holds a secret (a server-side app).
    Confidential,
    /// Cannot keep a secret (a SPA, a CLI, a mobile app): PKCE instead.
    Public,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    /// The user is asked once per client and scope set.
    Explicit,
    /// A first-party app the operator vouches for: no question.
    Implicit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GrantType {
    #[serde(rename = "authorization_code")]
    AuthorizationCode,
    #[serde(rename = "refresh_token")]
    RefreshToken,
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    #[serde(rename = "urn:ietf:params:oauth:grant-type:device_code")]
    DeviceCode,
}

impl GrantType {
    pub const ALL: [GrantType; 4] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
        GrantType::DeviceCode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }

    pub fn parse(text: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthClient {
    pub id: String,
    pub name: String,
    pub org_id: OrgId,
    pub kind: ClientKind,
    /// SHA-256 (hex) of the secret; confidential clients only.
    pub secret_digest: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    /// Empty: every member of the org may sign in.
    pub allowed_roles: Vec<String>,
    pub consent: ConsentMode,
    pub access_ttl: Option<u64>,
    pub refresh_ttl: Option<u64>,
    pub created_at: UnixSeconds,
    pub secret_rotated_at: Option<UnixSeconds>,
}

impl OAuthClient {
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    pub fn allows_role(&self, role: &str) -> bool {
        self.allowed_roles.is_empty() || self.allowed_roles.iter().any(|r| r == role)
    }

    /// The asked scopes if every one is the client's; `None` names none.
    pub fn narrow_scopes(&self, asked: Option<&str>) -> Result<Vec<String>, String> {
        let asked: Vec<&str> = match asked {
            Some(text) => text.split(' ').filter(|s| !s.is_empty()).collect(),
            None => return Ok(self.scopes.clone()),
        };
        let mut granted: Vec<String> = Vec::new();
        for scope in asked {
            if !self.scopes.iter().any(|s| s == scope) {
                return Err(scope.to_owned());
            }
            if !granted.iter().any(|g| g == scope) {
                granted.push(scope.to_owned());
            }
        }
        Ok(granted)
    }
}

/// The scopes of a space-separated `scope` value, in order.
pub fn scope_list(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Why a redirect URI is refused.
pub fn check_redirect_uri(uri: &str) -> Result<(), &'static str> {
    let parsed = url::Url::parse(uri).map_err(|_| "must be an absolute URL")?;
    if parsed.fragment().is_some() {
        return Err("must not have a fragment");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials");
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err("http is only allowed for loopback hosts (127.0.0.1, [::1], localhost)"),
        // Private-use schemes of native apps (RFC 8252 §7.1) name a
        // reverse domain, never a bare word a web page could also claim.
        scheme if scheme.contains('.') => Ok(()),
        "javascript" | "data" | "file" | "vbscript" => Err("this scheme is not allowed"),
        _ => Err("must be https, http on loopback, or a reverse-domain private scheme"),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_or_loopback_http() {
        assert!(check_redirect_uri("https://grafana.home.example/login/generic_oauth").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8080/cb").is_ok());
        assert!(check_redirect_uri("http://[::1]:8080/cb").is_ok());
        assert!(check_redirect_uri("http://localhost/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/cb").is_ok());
        assert!(check_redirect_uri("http://grafana.home.example/cb").is_err());
        assert!(check_redirect_uri("https://a.example/cb#x").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
        assert!(check_redirect_uri("/relative").is_err());
        assert!(check_redirect_uri("https://user:pw@a.example/cb").is_err());
    }

    #[test]
    fn scopes_narrow_to_the_clients_own() {
        let client = OAuthClient {
            id: "c".into(),
            name: "c".into(),
            org_id: OrgId::random(),
            kind: ClientKind::Public,
            secret_digest: None,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: vec![],
            scopes: vec!["openid".into(), "email".into()],
            allowed_roles: vec![],
            consent: ConsentMode::Explicit,
            access_ttl: None,
            refresh_ttl: None,
            created_at: 0,
            secret_rotated_at: None,
        };
        assert_eq!(
            client.narrow_scopes(Some("openid  email openid")),
            Ok(vec!["openid".to_owned(), "email".to_owned()])
        );
        assert_eq!(
            client.narrow_scopes(Some("openid groups")),
            Err("groups".into())
        );
        assert_eq!(client.narrow_scopes(None), Ok(client.scopes.clone()));
    }
}
