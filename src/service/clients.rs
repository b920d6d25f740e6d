//! The operator's OAuth clients (create, read, change, delete, new secret)
//! and client authentication at the token, introspection and revocation
//! endpoints.
//!
//! Client secrets are 256 random bits from the OS CSPRNG, stored as their
//! SHA-256. The seeds hash them with bcrypt, but a slow hash guards guessable
//! secrets — people's passwords — and buys nothing against a 256-bit random
//! value, which no one can enumerate; it would only make every token request
//! cost tens of milliseconds of CPU, a lever for whoever floods the token
//! endpoint. The comparison is constant-time, and an unknown client id is
//! compared against a dummy digest so that both failures take the same path.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::{self, UnixSeconds};
use crate::domain::client::{check_redirect_uri, CLIENT_SCOPES};
use crate::domain::{ClientKind, ConsentMode, GrantType, OAuthClient, Session};
use crate::store::{Queries, WriteTxn};

/// `POST /v1/clients`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub name: String,
    pub org: Option<String>,
    #[serde(rename = "type")]
    pub kind: ClientKind,
    /// Empty for a client that only uses the device or client-credentials grant.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    pub consent: Option<ConsentMode>,
    pub access_ttl: Option<u64>,
    pub refresh_ttl: Option<u64>,
}

/// `PATCH /v1/clients/{id}`: what is given changes; the kind and org stay.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientChanges {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub allowed_roles: Option<Vec<String>>,
    pub consent: Option<ConsentMode>,
    pub access_ttl: Option<u64>,
    pub refresh_ttl: Option<u64>,
}

/// A client as the operator sees it: never the secret or its digest.
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub org_id: crate::domain::OrgId,
    #[serde(rename = "type")]
    pub kind: ClientKind,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<&'static str>,
    pub scopes: Vec<String>,
    pub allowed_roles: Vec<String>,
    pub consent: ConsentMode,
    pub access_ttl: u64,
    pub refresh_ttl: u64,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_rotated_at: Option<String>,
    /// Only in the answer that made it: shown once, never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl Services {
    fn client_view(&self, client: &OAuthClient, secret: Option<String>) -> ClientView {
        ClientView {
            client_id: client.id.clone(),
            name: client.name.clone(),
            org_id: client.org_id.clone(),
            kind: client.kind,
            redirect_uris: client.redirect_uris.clone(),
            post_logout_redirect_uris: client.post_logout_redirect_uris.clone(),
            grant_types: client.grant_types.iter().map(|g| g.as_str()).collect(),
            scopes: client.scopes.clone(),
            allowed_roles: client.allowed_roles.clone(),
            consent: client.consent,
            access_ttl: self.client_access_ttl(client),
            refresh_ttl: self.client_refresh_ttl(client),
            created_at: clock::rfc3339(client.created_at),
            secret_rotated_at: client.secret_rotated_at.map(clock::rfc3339),
            client_secret: secret,
        }
    }

    pub fn client_access_ttl(&self, client: &OAuthClient) -> u64 {
        client
            .access_ttl
            .unwrap_or(self.config().tokens.access_ttl.as_secs())
    }

    /// (access, refresh) lifetimes of the client's tokens, in seconds.
    pub fn client_ttls(&self, client: &OAuthClient) -> (u64, u64) {
        (
            self.client_access_ttl(client),
            self.client_refresh_ttl(client),
        )
    }

    pub fn client_refresh_ttl(&self, client: &OAuthClient) -> u64 {
        client
            .refresh_ttl
            .unwrap_or(self.config().tokens.refresh_ttl.as_secs())
    }

    pub async fn create_client(
        &self,
        new: NewClient,
        context: &RequestContext,
    ) -> ServiceResult<ClientView> {
        let now = self.clock.now();
        let id = new_client_id();
        let secret = (new.kind == ClientKind::Confidential).then(new_client_secret);
        let mut client = OAuthClient {
            id,
            name: String::new(),
            org_id: crate::domain::OrgId::random(),
            kind: new.kind,
            secret_digest: secret.as_deref().map(secret_digest),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            grant_types: Vec::new(),
            scopes: Vec::new(),
            allowed_roles: Vec::new(),
            consent: new.consent.unwrap_or(ConsentMode::Explicit),
            access_ttl: None,
            refresh_ttl: None,
            created_at: now,
            secret_rotated_at: None,
        };
        let default_grants = vec!["authorization_code".to_owned(), "refresh_token".into()];
        apply_changes(
            &mut client,
            ClientChanges {
                name: Some(new.name),
                redirect_uris: Some(new.redirect_uris),
                post_logout_redirect_uris: Some(new.post_logout_redirect_uris),
                grant_types: Some(new.grant_types.unwrap_or(default_grants)),
                scopes: Some(
                    new.scopes
                        .unwrap_or_else(|| CLIENT_SCOPES.iter().map(|s| s.to_string()).collect()),
                ),
                allowed_roles: Some(new.allowed_roles),
                consent: None,
                access_ttl: new.access_ttl,
                refresh_ttl: new.refresh_ttl,
            },
        )?;
        let origin = context.origin();
        let org_reference = new.org;
        let client = self
            .store_write(move |txn| {
                let org = super::orgs::resolve(txn, org_reference.as_deref())?
                    .ok_or(ServiceError::NotFound("org"))?;
                client.org_id = org.id.clone();
                txn.put_oauth_client(&client)?;
                txn.audit(
                    AuditRecord::new(AuditKind::ClientCreated, now, &origin)
                        .org(&org.id)
                        .details(serde_json::json!({"client_id": client.id, "name": client.name})),
                )?;
                Ok(client)
            })
            .await?;
        Ok(self.client_view(&client, secret))
    }

    pub async fn list_clients(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> ServiceResult<Vec<ClientView>> {
        let clients = self
            .store_read(move |txn| Ok(txn.oauth_clients(cursor.as_deref(), limit)?))
            .await?;
        Ok(clients.iter().map(|c| self.client_view(c, None)).collect())
    }

    pub async fn get_client(&self, id: String) -> ServiceResult<ClientView> {
        let client = self
            .store_read(move |txn| {
                txn.oauth_client(&id)?
                    .ok_or(ServiceError::NotFound("client"))
            })
            .await?;
        Ok(self.client_view(&client, None))
    }

    pub async fn update_client(
        &self,
        id: String,
        changes: ClientChanges,
        context: &RequestContext,
    ) -> ServiceResult<ClientView> {
        let now = self.clock.now();
        let origin = context.origin();
        let client = self
            .store_write(move |txn| {
                let mut client = txn
                    .oauth_client(&id)?
                    .ok_or(ServiceError::NotFound("client"))?;
                apply_changes(&mut client, changes)?;
                txn.put_oauth_client(&client)?;
                txn.audit(
                    AuditRecord::new(AuditKind::ClientUpdated, now, &origin)
                        .org(&client.org_id)
                        .details(serde_json::json!({"client_id": client.id})),
                )?;
                Ok(client)
            })
            .await?;
        Ok(self.client_view(&client, None))
    }

    /// Deletes the client and ends what it was given: its app sessions
    /// (with their refresh tokens) and every consent to it.
    pub async fn delete_client(&self, id: String, context: &RequestContext) -> ServiceResult<()> {
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let client = txn
                .oauth_client(&id)?
                .ok_or(ServiceError::NotFound("client"))?;
            end_client_grants(txn, &client.id, None, now, "client_deleted", &origin)?;
            txn.delete_oauth_client(&client.id)?;
            txn.audit(
                AuditRecord::new(AuditKind::ClientDeleted, now, &origin)
                    .org(&client.org_id)
                    .details(serde_json::json!({"client_id": client.id})),
            )?;
            Ok(())
        })
        .await
    }

    /// A new secret for a confidential client; the old one stops working.
    pub async fn rotate_client_secret(
        &self,
        id: String,
        context: &RequestContext,
    ) -> ServiceResult<ClientView> {
        let now = self.clock.now();
        let origin = context.origin();
        let secret = new_client_secret();
        let digest = secret_digest(&secret);
        let client = self
            .store_write(move |txn| {
                let mut client = txn
                    .oauth_client(&id)?
                    .ok_or(ServiceError::NotFound("client"))?;
                if client.kind != ClientKind::Confidential {
                    return Err(ServiceError::field("type", "a public client has no secret"));
                }
                client.secret_digest = Some(digest);
                client.secret_rotated_at = Some(now);
                txn.put_oauth_client(&client)?;
                txn.audit(
                    AuditRecord::new(AuditKind::ClientSecretRotated, now, &origin)
                        .org(&client.org_id)
                        .details(serde_json::json!({"client_id": client.id})),
                )?;
                Ok(client)
            })
            .await?;
        Ok(self.client_view(&client, Some(secret)))
    }

    /// Checks a client's credentials as presented at the token endpoint.
    /// Every failure is the same `invalid_client`.
    pub fn authenticate_client(&self, presented: &ClientCredentials) -> ServiceResult<OAuthClient> {
        let client_id = presented
            .client_id
            .as_deref()
            .ok_or_else(ServiceError::invalid_client)?;
        let client = self.store_lookup(|txn| Ok(txn.oauth_client(client_id)?))?;
        match (&client, presented.secret.as_deref()) {
            (Some(client), None) if client.kind == ClientKind::Public => Ok(client.clone()),
            (Some(client), Some(secret)) => {
                let expected = client
                    .secret_digest
                    .as_deref()
                    .and_then(|hex_digest| hex::decode(hex_digest).ok())
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
                match expected {
                    Some(expected)
                        if crate::crypto::secrets_equal(secret.as_bytes(), &expected) =>
                    {
                        Ok(client.clone())
                    }
                    _ => Err(ServiceError::invalid_client()),
                }
            }
            (None, Some(secret)) => {
                // The same work as a known client's check, for the same time.
                let _ = crate::crypto::secrets_equal(secret.as_bytes(), &[0; 32]);
                Err(ServiceError::invalid_client())
            }
            _ => Err(ServiceError::invalid_client()),
        }
    }
}

/// What a client presented to authenticate: `client_secret_basic`,
/// `client_secret_post`, or only its id (`none`, public clients).
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    pub client_id: Option<String>,
    pub secret: Option<String>,
}

fn new_client_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::crypto::random::bytes::<16>())
}

fn new_client_secret() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::crypto::random::bytes::<32>())
}

fn secret_digest(secret: &str) -> String {
    hex::encode(crate::crypto::sha256(secret.as_bytes()))
}

/// Ends `client`'s app sessions (of `user` only, if given) and the
/// consents given to it, in the caller's transaction. Returns how many
/// sessions ended.
pub(crate) fn end_client_grants(
    txn: &mut WriteTxn,
    client_id: &str,
    user: Option<crate::domain::UserId>,
    now: UnixSeconds,
    reason: &str,
    origin: &crate::audit::RequestOrigin,
) -> ServiceResult<usize> {
    let sessions: Vec<Session> = match user {
        Some(user) => txn.sessions_of_user(&user)?,
        None => txn.sessions_of_client(client_id)?,
    };
    let mut ended = 0;
    for session in sessions {
        if session.client_id.as_deref() == Some(client_id) && session.is_live(now) {
            super::sessions::revoke_in(txn, session, now, reason, origin)?;
            ended += 1;
        }
    }
    match user {
        Some(user) => {
            txn.delete_consent(&user, client_id)?;
        }
        None => txn.delete_consents_of_client(client_id)?,
    }
    Ok(ended)
}

fn apply_changes(client: &mut OAuthClient, changes: ClientChanges) -> ServiceResult<()> {
    let mut problems = Vec::new();
    if let Some(name) = changes.name {
        match crate::domain::check_name(&name, 100) {
            Ok("") => problems.push(("name", "must not be empty".into())),
            Ok(name) => client.name = name.to_owned(),
            Err(why) => problems.push(("name", why.to_string())),
        }
    }
    if let Some(uris) = changes.redirect_uris {
        if let Some(why) = check_uris(&uris) {
            problems.push(("redirect_uris", why));
        }
        client.redirect_uris = uris;
    }
    if let Some(uris) = changes.post_logout_redirect_uris {
        if let Some(why) = check_uris(&uris) {
            problems.push(("post_logout_redirect_uris", why));
        }
        client.post_logout_redirect_uris = uris;
    }
    if let Some(grants) = changes.grant_types {
        let mut parsed = Vec::new();
        for grant in &grants {
            match GrantType::parse(grant) {
                Some(g) if !parsed.contains(&g) => parsed.push(g),
                Some(_) => {}
                None => problems.push(("grant_types", format!("unknown grant type {grant:?}"))),
            }
        }
        client.grant_types = parsed;
    }
    if let Some(scopes) = changes.scopes {
        let mut kept: Vec<String> = Vec::new();
        for scope in scopes {
            if !CLIENT_SCOPES.contains(&scope.as_str()) {
                problems.push(("scopes", format!("unknown scope {scope:?}")));
            } else if !kept.contains(&scope) {
                kept.push(scope);
            }
        }
        client.scopes = kept;
    }
    if let Some(roles) = changes.allowed_roles {
        if roles.iter().any(|r| r.trim().is_empty() || r.len() > 64) {
            problems.push(("allowed_roles", "role names are 1 to 64 characters".into()));
        }
        client.allowed_roles = roles;
    }
    if let Some(consent) = changes.consent {
        client.consent = consent;
    }
    for (ttl, field) in [
        (changes.access_ttl, "access_ttl"),
        (changes.refresh_ttl, "refresh_ttl"),
    ] {
        if let Some(seconds) = ttl {
            if !(60..=31_536_000).contains(&seconds) {
                problems.push((field, "seconds between 60 and 31536000".into()));
            }
        }
    }
    if changes.access_ttl.is_some() {
        client.access_ttl = changes.access_ttl;
    }
    if changes.refresh_ttl.is_some() {
        client.refresh_ttl = changes.refresh_ttl;
    }
    if client.kind == ClientKind::Public && client.allows_grant(GrantType::ClientCredentials) {
        problems.push((
            "grant_types",
            "client_credentials needs a confidential client".into(),
        ));
    }
    if client.allows_grant(GrantType::AuthorizationCode) && client.redirect_uris.is_empty() {
        problems.push((
            "redirect_uris",
            "authorization_code needs at least one redirect URI".into(),
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::InvalidFields(
            problems
                .into_iter()
                .map(|(field, message)| super::FieldError { field, message })
                .collect(),
        ))
    }
}

fn check_uris(uris: &[String]) -> Option<String> {
    if uris.len() > 20 {
        return Some("at most 20".into());
    }
    uris.iter().find_map(|uri| {
        check_redirect_uri(uri)
            .err()
            .map(|why| format!("{uri:?} {why}"))
    })
}
