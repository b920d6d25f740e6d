//! Who a person is at an upstream provider, once it sent them back with a
//! code: the code is exchanged (with the PKCE verifier, and the client
//! secret or Apple's JWT), then the ID token is checked against the
//! provider's keys (`crypto::upstream`) — or, for OAuth 2.0 providers, the
//! user is read from userinfo (through the operator's claim mapping) or
//! GitHub's `/user` and `/user/emails` (only the primary, verified email
//! counts as verified).

use serde_json::Value;

use super::upstream::UpstreamError;
use super::Services;
use crate::clock::UnixSeconds;
use crate::domain::provider::{ClaimMapping, Provider, ProviderKind};

/// The person as the provider describes them.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamUser {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

/// A boolean claim that some providers (Apple) send as a string.
fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) => text == "true",
        _ => false,
    }
}

fn claim_text(claims: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

impl Services {
    /// The code for tokens, then who the person is.
    pub(crate) async fn upstream_user(
        &self,
        provider: &Provider,
        code: &str,
        nonce: &str,
        verifier: &str,
        apple_user: Option<&str>,
        now: UnixSeconds,
    ) -> Result<UpstreamUser, UpstreamError> {
        let endpoints = self.upstream.endpoints(provider, now).await?;
        let secret = match provider.kind {
            ProviderKind::Apple => {
                let pem = self
                    .open_provider_secret(provider, "private_key")
                    .map_err(|_| {
                        UpstreamError::Configuration("the private key cannot be opened".into())
                    })?
                    .ok_or_else(|| UpstreamError::Configuration("no private key".into()))?;
                Some(self.upstream.apple_client_secret(provider, &pem, now)?)
            }
            _ => self
                .open_provider_secret(provider, "client_secret")
                .map_err(|_| {
                    UpstreamError::Configuration("the client secret cannot be opened".into())
                })?,
        };
        let redirect_uri = self.provider_callback_url(&provider.name);
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect_uri),
            ("client_id", &provider.client_id),
            ("code_verifier", verifier),
        ];
        if let Some(secret) = &secret {
            form.push(("client_secret", secret));
        }
        let answer = self.upstream.exchange_code(&endpoints.token, &form).await?;
        let access_token = answer.get("access_token").and_then(Value::as_str);
        if provider.kind.speaks_oidc() {
            let id_token = answer
                .get("id_token")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    UpstreamError::Invalid("no id_token in the token response".into())
                })?;
            let (Some(jwks_url), Some(issuer)) = (&endpoints.jwks, &endpoints.issuer) else {
                return Err(UpstreamError::Invalid("no jwks_uri or issuer".into()));
            };
            let keys = self.upstream.jwks(jwks_url, id_token, now).await?;
            let claims = crate::crypto::upstream::verify_id_token(
                id_token,
                &keys,
                &crate::crypto::upstream::IdTokenExpectations {
                    issuer,
                    issuer_aliases: super::upstream::issuer_aliases(provider.kind),
                    client_id: &provider.client_id,
                    nonce,
                    now,
                },
            )?;
            let mut user = UpstreamUser {
                subject: claim_text(&claims, "sub").unwrap_or_default(),
                email: claim_text(&claims, "email"),
                // Microsoft's `email` is whatever the tenant typed; it counts
                // as verified only when the token says so (`email_verified`,
                // or `xms_edov`, "email domain owner verified").
                email_verified: truthy(claims.get("email_verified"))
                    || (provider.kind == ProviderKind::Microsoft && truthy(claims.get("xms_edov"))),
                name: claim_text(&claims, "name"),
            };
            if provider.kind == ProviderKind::Apple && user.name.is_none() {
                user.name = apple_user.and_then(apple_name);
            }
            // Some providers keep email and name for userinfo.
            if let (None, Some(userinfo), Some(token)) =
                (&user.email, &endpoints.userinfo, access_token)
            {
                let info = self.upstream.get_json(userinfo, Some(token)).await?;
                if info.get("sub").and_then(Value::as_str) == Some(user.subject.as_str()) {
                    user.email = info.get("email").and_then(Value::as_str).map(str::to_owned);
                    user.email_verified = truthy(info.get("email_verified"));
                    if user.name.is_none() {
                        user.name = info.get("name").and_then(Value::as_str).map(str::to_owned);
                    }
                }
            }
            return Ok(user);
        }
        let token = access_token.ok_or_else(|| {
            UpstreamError::Invalid("no access_token in the token response".into())
        })?;
        let userinfo_url = endpoints
            .userinfo
            .ok_or_else(|| UpstreamError::Configuration("no userinfo_url".into()))?;
        let info = self.upstream.get_json(&userinfo_url, Some(token)).await?;
        let info = info
            .as_object()
            .ok_or_else(|| UpstreamError::Invalid("the user is not a JSON object".into()))?;
        if provider.kind == ProviderKind::Github {
            return self.github_user(info, &userinfo_url, token).await;
        }
        let mapping = provider.claims.clone().unwrap_or_default();
        Ok(mapped_user(info, &mapping))
    }

    /// GitHub (REST API): the numeric `id` is the subject; the email is the
    /// primary one of `/user/emails` only if GitHub marks it verified.
    async fn github_user(
        &self,
        user: &serde_json::Map<String, Value>,
        user_url: &str,
        token: &str,
    ) -> Result<UpstreamUser, UpstreamError> {
        let subject = match user.get("id") {
            Some(Value::Number(id)) => id.to_string(),
            _ => return Err(UpstreamError::Invalid("the GitHub user has no id".into())),
        };
        let emails = self
            .upstream
            .get_json(
                &format!("{}/emails", user_url.trim_end_matches('/')),
                Some(token),
            )
            .await?;
        let primary = emails.as_array().and_then(|emails| {
            emails
                .iter()
                .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
        });
        let email = primary
            .and_then(|e| e.get("email"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let email_verified = primary
            .and_then(|e| e.get("verified"))
            .and_then(Value::as_bool)
            == Some(true);
        Ok(UpstreamUser {
            subject,
            email,
            email_verified,
            name: claim_text(user, "name").or_else(|| claim_text(user, "login")),
        })
    }
}

/// An `oauth2` provider's userinfo read through its claim mapping.
fn mapped_user(info: &serde_json::Map<String, Value>, mapping: &ClaimMapping) -> UpstreamUser {
    UpstreamUser {
        subject: claim_text(info, &mapping.subject).unwrap_or_default(),
        email: claim_text(info, &mapping.email),
        email_verified: truthy(info.get(&mapping.email_verified)),
        name: claim_text(info, &mapping.name),
    }
}

/// Apple's `user` form field: the name, sent on the first sign-in only.
fn apple_name(user: &str) -> Option<String> {
    let value: Value = serde_json::from_str(user).ok()?;
    let name = value.get("name")?;
    let part = |key: &str| {
        name.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    let full = format!("{} {}", part("firstName"), part("lastName"));
    let full = full.trim();
    (!full.is_empty()).then(|| full.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apples_name_comes_from_the_user_field() {
        assert_eq!(
            apple_name(
                r#"{"name":{"firstName":"Ada","lastName":"Lovelace"},"email":"a@example.com"}"#
            ),
            Some("Ada Lovelace".to_owned())
        );
        assert_eq!(apple_name("{}"), None);
        assert_eq!(apple_name("not json"), None);
    }

    #[test]
    fn claims_read_through_a_mapping() {
        let info = serde_json::json!({"id": 42, "mail": "a@example.com", "verified": "true", "display": "Ada"});
        let mapping = ClaimMapping {
            subject: "id".into(),
            email: "mail".into(),
            email_verified: "verified".into(),
            name: "display".into(),
        };
        let user = mapped_user(info.as_object().unwrap_or(&Default::default()), &mapping);
        assert_eq!(user.subject, "42");
        assert_eq!(user.email.as_deref(), Some("a@example.com"));
        assert!(user.email_verified);
        assert_eq!(user.name.as_deref(), Some("Ada"));
    }
}
