//! The operator's upstream sign-in providers (`/v1/providers`): create,
//! read, change, delete, each checked per kind; and the public list the
//! sign-in page shows (names and kinds of an org's enabled providers).
//!
//! The client secret and Apple's private key are write-only: sealed at rest
//! with a key derived from the server secret (like TOTP seeds), bound to
//! the provider's name, opened only to talk to the provider, and never in
//! an answer (a view says only whether one is set).

use serde::{Deserialize, Serialize};

use super::{FieldError, RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock;
use crate::crypto::sealed::SealingKey;
use crate::domain::provider::{
    check_provider_name, check_upstream_url, ClaimMapping, Provider, ProviderKind,
};
use crate::domain::OrgId;
use crate::store::Queries;

pub fn sealing_key(server_secret: &[u8]) -> SealingKey {
    SealingKey::derive(server_secret, "authd/provider-secrets/v1")
}

/// `POST /v1/providers` and `PATCH /v1/providers/{name}`: on a PATCH,
/// what is given changes (an empty string clears an optional text); `name`,
/// `org` and `kind` are fixed once created. No `Debug`: it holds secrets.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFields {
    pub name: Option<String>,
    pub org: Option<String>,
    pub kind: Option<ProviderKind>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub discovery_url: Option<String>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub tenant: Option<String>,
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub private_key: Option<String>,
    pub claims: Option<ClaimMapping>,
    pub scopes: Option<Vec<String>>,
    pub link_by_email: Option<bool>,
    pub create_users: Option<bool>,
    pub enabled: Option<bool>,
}

/// A provider as the operator sees it: never a secret.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderView {
    pub name: String,
    pub org_id: OrgId,
    pub kind: ProviderKind,
    pub client_id: String,
    pub client_secret_set: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userinfo_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub private_key_set: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimMapping>,
    pub scopes: Vec<String>,
    pub link_by_email: bool,
    pub create_users: bool,
    pub enabled: bool,
    /// The redirect URI to register at the provider.
    pub callback_url: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// What the sign-in page may know: a button per provider.
#[derive(Debug, Clone, Serialize)]
pub struct PublicProvider {
    pub name: String,
    pub kind: ProviderKind,
}

/// Sets `target` from `given`: `Some("")` clears it.
fn set_text(target: &mut Option<String>, given: Option<String>) {
    if let Some(text) = given {
        let text = text.trim().to_owned();
        *target = (!text.is_empty()).then_some(text);
    }
}

/// Applies the changes and checks the whole provider for its kind.
fn apply_fields(
    provider: &mut Provider,
    fields: ProviderFields,
    key: &SealingKey,
) -> ServiceResult<()> {
    let mut errors: Vec<FieldError> = Vec::new();
    if let Some(client_id) = fields.client_id {
        provider.client_id = client_id.trim().to_owned();
    }
    if provider.client_id.is_empty() || provider.client_id.len() > 512 {
        problem(&mut errors, "client_id", "required, at most 512 characters");
    }
    if let Some(secret) = fields.client_secret {
        let context = Provider::secret_context(&provider.name, "client_secret");
        provider.sealed_client_secret = if secret.is_empty() {
            None
        } else if secret.len() > 4096 {
            problem(&mut errors, "client_secret", "at most 4096 characters");
            None
        } else {
            Some(
                key.seal(secret.as_bytes(), &context)
                    .map_err(ServiceError::internal)?,
            )
        };
    }
    if let Some(pem) = fields.private_key {
        let context = Provider::secret_context(&provider.name, "private_key");
        provider.sealed_private_key = if pem.trim().is_empty() {
            None
        } else if crate::crypto::upstream::apple_client_secret("t", "k", "c", pem.as_bytes(), 0, 1)
            .is_err()
        {
            problem(
                &mut errors,
                "private_key",
                "not a P-256 private key in PKCS#8 PEM (the .p8 file Apple gives)",
            );
            None
        } else {
            Some(
                key.seal(pem.as_bytes(), &context)
                    .map_err(ServiceError::internal)?,
            )
        };
    }
    set_text(&mut provider.discovery_url, fields.discovery_url);
    set_text(&mut provider.authorize_url, fields.authorize_url);
    set_text(&mut provider.token_url, fields.token_url);
    set_text(&mut provider.userinfo_url, fields.userinfo_url);
    set_text(&mut provider.tenant, fields.tenant);
    set_text(&mut provider.team_id, fields.team_id);
    set_text(&mut provider.key_id, fields.key_id);
    if let Some(claims) = fields.claims {
        provider.claims = Some(claims);
    }
    if let Some(scopes) = fields.scopes {
        provider.scopes = scopes;
    }
    if provider.scopes.len() > 20
        || provider.scopes.iter().any(|s| {
            s.is_empty() || s.len() > 200 || s.chars().any(|c| c.is_whitespace() || c == '"')
        })
    {
        problem(
            &mut errors,
            "scopes",
            "at most 20 scopes, each without spaces or quotes",
        );
    }
    provider.link_by_email = fields.link_by_email.unwrap_or(provider.link_by_email);
    provider.create_users = fields.create_users.unwrap_or(provider.create_users);
    provider.enabled = fields.enabled.unwrap_or(provider.enabled);

    for (field, value) in [
        ("discovery_url", &provider.discovery_url),
        ("authorize_url", &provider.authorize_url),
        ("token_url", &provider.token_url),
        ("userinfo_url", &provider.userinfo_url),
    ] {
        if let Some(Err(why)) = value.as_deref().map(check_upstream_url) {
            problem(&mut errors, field, why);
        }
    }
    let kind = provider.kind;
    let uses_urls = matches!(kind, ProviderKind::Github | ProviderKind::Oauth2);
    if !uses_urls {
        for (field, value) in [
            ("authorize_url", &provider.authorize_url),
            ("token_url", &provider.token_url),
            ("userinfo_url", &provider.userinfo_url),
        ] {
            if value.is_some() {
                problem(
                    &mut errors,
                    field,
                    "only for kinds github and oauth2 (the others use discovery_url)",
                );
            }
        }
    } else if provider.discovery_url.is_some() {
        problem(
            &mut errors,
            "discovery_url",
            "only for OpenID Connect kinds (google, microsoft, apple, oidc)",
        );
    }
    match kind {
        ProviderKind::Oidc if provider.discovery_url.is_none() => {
            problem(&mut errors, "discovery_url", "required for kind oidc");
        }
        ProviderKind::Oauth2 => {
            for (field, value) in [
                ("authorize_url", &provider.authorize_url),
                ("token_url", &provider.token_url),
                ("userinfo_url", &provider.userinfo_url),
            ] {
                if value.is_none() {
                    problem(&mut errors, field, "required for kind oauth2");
                }
            }
        }
        ProviderKind::Apple => {
            for (field, value) in [("team_id", &provider.team_id), ("key_id", &provider.key_id)] {
                if value.is_none() {
                    problem(&mut errors, field, "required for kind apple");
                }
            }
            if provider.sealed_private_key.is_none() && !errors_has(&errors, "private_key") {
                problem(&mut errors, "private_key", "required for kind apple");
            }
        }
        ProviderKind::Google | ProviderKind::Microsoft | ProviderKind::Github
            if provider.sealed_client_secret.is_none() && !errors_has(&errors, "client_secret") =>
        {
            problem(&mut errors, "client_secret", "required for this kind");
        }
        _ => {}
    }
    if kind != ProviderKind::Microsoft && provider.tenant.is_some() {
        problem(&mut errors, "tenant", "only for kind microsoft");
    }
    if provider.tenant.as_deref().is_some_and(|t| {
        !t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    }) {
        problem(
            &mut errors,
            "tenant",
            "a tenant id, a domain, common, organizations or consumers",
        );
    }
    if kind != ProviderKind::Apple
        && (provider.team_id.is_some()
            || provider.key_id.is_some()
            || provider.sealed_private_key.is_some())
    {
        problem(
            &mut errors,
            "team_id",
            "team_id, key_id and private_key are only for kind apple",
        );
    }
    if kind != ProviderKind::Oauth2 && provider.claims.is_some() {
        problem(&mut errors, "claims", "only for kind oauth2");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::InvalidFields(errors))
    }
}

fn problem(errors: &mut Vec<FieldError>, field: &'static str, message: &str) {
    errors.push(FieldError {
        field,
        message: message.to_owned(),
    });
}

fn errors_has(errors: &[FieldError], field: &str) -> bool {
    errors.iter().any(|e| e.field == field)
}

impl Services {
    fn provider_view(&self, provider: &Provider) -> ProviderView {
        ProviderView {
            name: provider.name.clone(),
            org_id: provider.org_id.clone(),
            kind: provider.kind,
            client_id: provider.client_id.clone(),
            client_secret_set: provider.sealed_client_secret.is_some(),
            discovery_url: provider.discovery_url.clone(),
            authorize_url: provider.authorize_url.clone(),
            token_url: provider.token_url.clone(),
            userinfo_url: provider.userinfo_url.clone(),
            tenant: provider.tenant.clone(),
            team_id: provider.team_id.clone(),
            key_id: provider.key_id.clone(),
            private_key_set: provider.sealed_private_key.is_some(),
            claims: provider.claims.clone(),
            scopes: provider.scopes.clone(),
            link_by_email: provider.link_by_email,
            create_users: provider.create_users,
            enabled: provider.enabled,
            callback_url: self.provider_callback_url(&provider.name),
            created_at: clock::rfc3339(provider.created_at),
            updated_at: provider.updated_at.map(clock::rfc3339),
        }
    }

    /// `<public_url>/oauth/callback/<name>`: the redirect URI at the provider.
    pub fn provider_callback_url(&self, name: &str) -> String {
        format!(
            "{}/oauth/callback/{name}",
            self.config().server.public_url.trim_end_matches('/')
        )
    }

    pub async fn create_provider(
        &self,
        fields: ProviderFields,
        context: &RequestContext,
    ) -> ServiceResult<ProviderView> {
        let now = self.clock.now();
        let mut missing = Vec::new();
        if fields.name.is_none() {
            missing.push(FieldError {
                field: "name",
                message: "required".to_owned(),
            });
        }
        if fields.kind.is_none() {
            missing.push(FieldError {
                field: "kind",
                message: "required: google, microsoft, apple, github, oidc or oauth2".to_owned(),
            });
        }
        let (Some(name), Some(kind)) = (fields.name.clone(), fields.kind) else {
            return Err(ServiceError::InvalidFields(missing));
        };
        check_provider_name(&name).map_err(|why| ServiceError::field("name", why))?;
        let mut provider = Provider {
            name,
            org_id: OrgId::random(),
            kind,
            client_id: String::new(),
            sealed_client_secret: None,
            discovery_url: None,
            authorize_url: None,
            token_url: None,
            userinfo_url: None,
            tenant: None,
            team_id: None,
            key_id: None,
            sealed_private_key: None,
            claims: None,
            scopes: kind
                .default_scopes()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            link_by_email: false,
            create_users: false,
            enabled: true,
            created_at: now,
            updated_at: None,
        };
        let org_reference = fields.org.clone();
        apply_fields(&mut provider, fields, &self.provider_key)?;
        let origin = context.origin();
        let provider = self
            .store_write(move |txn| {
                let org = super::orgs::resolve(txn, org_reference.as_deref())?
                    .ok_or_else(|| ServiceError::field("org", "no such org"))?;
                if txn.provider(&provider.name)?.is_some() {
                    return Err(ServiceError::Conflict(format!(
                        "a provider named {} exists",
                        provider.name
                    )));
                }
                provider.org_id = org.id.clone();
                txn.put_provider(&provider)?;
                txn.audit(
                    AuditRecord::new(AuditKind::ProviderCreated, now, &origin)
                        .org(&org.id)
                        .details(
                            serde_json::json!({"provider": provider.name, "kind": provider.kind}),
                        ),
                )?;
                Ok(provider)
            })
            .await?;
        Ok(self.provider_view(&provider))
    }

    /// Every provider, or an org's (by slug or id).
    pub async fn list_providers(&self, org: Option<String>) -> ServiceResult<Vec<ProviderView>> {
        let providers = self
            .store_read(move |txn| {
                let org_id = match org {
                    Some(reference) => Some(
                        super::orgs::resolve(txn, Some(&reference))?
                            .ok_or(ServiceError::NotFound("org"))?
                            .id,
                    ),
                    None => None,
                };
                Ok(txn
                    .providers()?
                    .into_iter()
                    .filter(|p| org_id.as_ref().is_none_or(|org| &p.org_id == org))
                    .collect::<Vec<_>>())
            })
            .await?;
        Ok(providers.iter().map(|p| self.provider_view(p)).collect())
    }

    pub async fn get_provider(&self, name: String) -> ServiceResult<ProviderView> {
        let provider = self.stored_provider(name).await?;
        Ok(self.provider_view(&provider))
    }

    pub(crate) async fn stored_provider(&self, name: String) -> ServiceResult<Provider> {
        self.store_read(move |txn| {
            txn.provider(&name)?
                .ok_or(ServiceError::NotFound("provider"))
        })
        .await
    }

    pub async fn update_provider(
        &self,
        name: String,
        fields: ProviderFields,
        context: &RequestContext,
    ) -> ServiceResult<ProviderView> {
        let now = self.clock.now();
        let origin = context.origin();
        let mut fixed = Vec::new();
        for (field, given) in [
            ("name", fields.name.is_some()),
            ("org", fields.org.is_some()),
            ("kind", fields.kind.is_some()),
        ] {
            if given {
                fixed.push(FieldError {
                    field,
                    message: "cannot change; delete the provider and create another".to_owned(),
                });
            }
        }
        if !fixed.is_empty() {
            return Err(ServiceError::InvalidFields(fixed));
        }
        let mut provider = self.stored_provider(name).await?;
        apply_fields(&mut provider, fields, &self.provider_key)?;
        provider.updated_at = Some(now);
        let provider = self
            .store_write(move |txn| {
                if txn.provider(&provider.name)?.is_none() {
                    return Err(ServiceError::NotFound("provider"));
                }
                txn.put_provider(&provider)?;
                txn.audit(
                    AuditRecord::new(AuditKind::ProviderUpdated, now, &origin)
                        .org(&provider.org_id)
                        .details(serde_json::json!({"provider": provider.name})),
                )?;
                Ok(provider)
            })
            .await?;
        self.upstream.forget(&provider.name);
        Ok(self.provider_view(&provider))
    }

    /// Deletes the provider and unlinks every identity it carried.
    pub async fn delete_provider(
        &self,
        name: String,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let now = self.clock.now();
        let origin = context.origin();
        let forget = name.clone();
        self.store_write(move |txn| {
            let provider = txn
                .provider(&name)?
                .ok_or(ServiceError::NotFound("provider"))?;
            txn.delete_provider(&provider.name)?;
            txn.audit(
                AuditRecord::new(AuditKind::ProviderDeleted, now, &origin)
                    .org(&provider.org_id)
                    .details(serde_json::json!({"provider": provider.name})),
            )?;
            Ok(())
        })
        .await?;
        self.upstream.forget(&forget);
        Ok(())
    }

    /// `GET /ui/api/providers?org=`: the org's enabled providers, for buttons.
    pub async fn public_providers(
        &self,
        org: Option<String>,
    ) -> ServiceResult<Vec<PublicProvider>> {
        self.store_read(move |txn| {
            let org =
                super::orgs::resolve(txn, org.as_deref())?.ok_or(ServiceError::NotFound("org"))?;
            Ok(txn
                .providers()?
                .into_iter()
                .filter(|p| p.enabled && p.org_id == org.id)
                .map(|p| PublicProvider {
                    name: p.name,
                    kind: p.kind,
                })
                .collect())
        })
        .await
    }

    /// Opens one sealed secret of a provider for a call to it.
    pub(crate) fn open_provider_secret(
        &self,
        provider: &Provider,
        field: &str,
    ) -> ServiceResult<Option<String>> {
        let sealed = match field {
            "private_key" => &provider.sealed_private_key,
            _ => &provider.sealed_client_secret,
        };
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let opened = self
            .provider_key
            .open(sealed, &Provider::secret_context(&provider.name, field))
            .map_err(ServiceError::internal)?;
        String::from_utf8(opened)
            .map(Some)
            .map_err(ServiceError::internal)
    }
}
