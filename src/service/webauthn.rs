//! WebAuthn second factors — security keys and passkeys — through
//! webauthn-rs's security-key ceremonies (they accept platform and roaming
//! authenticators alike; the password is the first factor). Owns the
//! relying party, registering and naming credentials, and making and
//! checking assertions (the `mfa_token` step uses them). Ceremony state never leaves the server: a registration's
//! waits in redb under a random id, an assertion's in its `mfa_token`'s
//! challenge record; each is taken out (used once) when answered.

use std::sync::Arc;

use base64::Engine;
use serde::Serialize;
use webauthn_rs::prelude::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, SecurityKey, SecurityKeyAuthentication, SecurityKeyRegistration, Url,
    Webauthn, WebauthnBuilder,
};

use super::enrolled_factors::refresh_mfa_enrolled;
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::{self, UnixSeconds};
use crate::config::Config;
use crate::domain::{SessionId, UserId};
use crate::store::{Queries, WebauthnCeremony, WebauthnCredential, WriteTxn};

/// How long a ceremony may take (the browser's own timeout is the same).
pub const CEREMONY_SECONDS: UnixSeconds = 300;
/// Enough for every key a person owns; bounds the assertion options.
pub const MAX_CREDENTIALS: usize = 20;
const MAX_NAME_CHARS: usize = 64;

/// The relying party of `[webauthn]` / `server.public_url`, or why there is
/// none (an IP address cannot be a relying-party id).
pub fn relying_party(config: &Config) -> Result<Webauthn, String> {
    let rp_id = config.webauthn_rp_id();
    let origins = config.webauthn_origins()?;
    let parse = |origin: &str| Url::parse(origin).map_err(|e| format!("{origin}: {e}"));
    let first = parse(origins.first().map_or("", String::as_str))?;
    let mut builder = WebauthnBuilder::new(&rp_id, &first)
        .map_err(|e| format!("relying party {rp_id:?} does not match {first}: {e}"))?
        .rp_name(&config.mfa.issuer)
        .allow_any_port(config.webauthn.allow_any_port);
    for origin in origins.iter().skip(1) {
        builder = builder.append_allowed_origin(&parse(origin)?);
    }
    builder.build().map_err(|e| e.to_string())
}

/// A credential as the account API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WebauthnKeyView {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

impl From<&WebauthnCredential> for WebauthnKeyView {
    fn from(credential: &WebauthnCredential) -> Self {
        Self {
            id: credential.id.clone(),
            name: credential.name.clone(),
            created_at: clock::rfc3339(credential.created_at),
            last_used_at: credential.last_used_at.map(clock::rfc3339),
        }
    }
}

/// The options of a registration: answered with `ceremony_id`.
#[derive(Debug, Serialize)]
pub struct RegistrationOptions {
    pub ceremony_id: String,
    #[serde(flatten)]
    pub options: CreationChallengeResponse,
}

fn credential_id_text(id: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

fn clean_name(name: Option<String>) -> ServiceResult<String> {
    let name = name.unwrap_or_default();
    let name = crate::domain::check_name(&name, MAX_NAME_CHARS)
        .map_err(|problem| ServiceError::field("name", problem.to_string()))?;
    Ok(if name.is_empty() {
        "Security key".to_owned()
    } else {
        name.to_owned()
    })
}

fn internal(error: impl Into<anyhow::Error>) -> ServiceError {
    ServiceError::internal(error)
}

fn key_of(credential: &WebauthnCredential) -> ServiceResult<SecurityKey> {
    serde_json::from_str(&credential.key).map_err(internal)
}

/// Checks an assertion against the state kept with an `mfa_token` and the
/// user's stored credentials; on success updates the credential (counter,
/// last use). Returns false for anything that does not verify.
pub(crate) fn check_assertion(
    relying_party: &Webauthn,
    txn: &mut WriteTxn,
    user_id: &UserId,
    state: Option<String>,
    assertion: &PublicKeyCredential,
    now: UnixSeconds,
) -> ServiceResult<bool> {
    let Some(state) = state else {
        return Ok(false);
    };
    let state: SecurityKeyAuthentication = serde_json::from_str(&state).map_err(internal)?;
    let Ok(result) = relying_party.finish_securitykey_authentication(assertion, &state) else {
        return Ok(false);
    };
    // The state lists the keys of when it was made; one may be gone since.
    let id = credential_id_text(result.cred_id());
    let Some(mut stored) = txn.webauthn_credential(user_id, &id)? else {
        return Ok(false);
    };
    let mut key = key_of(&stored)?;
    key.update_credential(&result);
    stored.key = serde_json::to_string(&key).map_err(internal)?;
    stored.last_used_at = Some(now);
    txn.put_webauthn_credential(&stored)?;
    Ok(true)
}

/// Assertion options for a user's keys, and the state to keep for checking
/// the answer. `None` when the user has no key.
pub(crate) fn assertion_options(
    relying_party: &Webauthn,
    credentials: &[WebauthnCredential],
) -> ServiceResult<Option<(RequestChallengeResponse, String)>> {
    if credentials.is_empty() {
        return Ok(None);
    }
    let keys = credentials
        .iter()
        .map(key_of)
        .collect::<ServiceResult<Vec<_>>>()?;
    let (mut options, state) = relying_party
        .start_securitykey_authentication(&keys)
        .map_err(internal)?;
    // Hints are advisory; without them browsers offer every kind of key.
    options.public_key.hints = None;
    let state = serde_json::to_string(&state).map_err(internal)?;
    Ok(Some((options, state)))
}

impl Services {
    pub(crate) fn webauthn_relying_party(&self) -> ServiceResult<Arc<Webauthn>> {
        self.webauthn()
            .ok_or_else(|| ServiceError::Conflict("WebAuthn is not configured".into()))
    }

    pub async fn list_webauthn_keys(&self, user_id: UserId) -> ServiceResult<Vec<WebauthnKeyView>> {
        let credentials = self
            .store_read(move |txn| Ok(txn.webauthn_credentials(&user_id)?))
            .await?;
        Ok(credentials.iter().map(WebauthnKeyView::from).collect())
    }

    /// Starts registering a key: the browser's creation options, with the
    /// user's existing keys excluded so one key cannot be added twice.
    /// Whether the caller may add one is `factors`' business.
    pub(crate) async fn begin_webauthn_registration(
        &self,
        user_id: UserId,
    ) -> ServiceResult<RegistrationOptions> {
        let relying_party = self.webauthn_relying_party()?;
        let now = self.clock.now();
        let ceremony_id = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(crate::crypto::random::bytes::<24>());
        let key = ceremony_id.clone();
        let options = self
            .store_write(move |txn| {
                let user = txn.user(&user_id)?.ok_or(ServiceError::InvalidToken)?;
                let existing = txn.webauthn_credentials(&user_id)?;
                if existing.len() >= MAX_CREDENTIALS {
                    return Err(ServiceError::Conflict(format!(
                        "at most {MAX_CREDENTIALS} security keys per account"
                    )));
                }
                let exclude = existing
                    .iter()
                    .map(|c| key_of(c).map(|k| k.cred_id().clone()))
                    .collect::<ServiceResult<Vec<_>>>()?;
                let display = user.name.clone().unwrap_or_else(|| user.email.to_string());
                let (mut options, state) = relying_party
                    .start_securitykey_registration(
                        user_id.0,
                        user.email.as_str(),
                        &display,
                        Some(exclude),
                        None,
                        None,
                    )
                    .map_err(internal)?;
                options.public_key.hints = None;
                // Chromium refuses an unenforced credProtect policy next to
                // `userVerification: preferred` (webauthn-rs#490); without
                // it a key behaves as one that does not know the extension.
                if let Some(extensions) = options.public_key.extensions.as_mut() {
                    extensions.cred_protect = None;
                }
                txn.put_webauthn_ceremony(
                    &key,
                    &WebauthnCeremony {
                        user_id,
                        state: serde_json::to_string(&state).map_err(internal)?,
                        expires_at: now + CEREMONY_SECONDS,
                    },
                )?;
                Ok(options)
            })
            .await?;
        Ok(RegistrationOptions {
            ceremony_id,
            options,
        })
    }

    /// Finishes a registration. The ceremony is used up whatever the
    /// outcome; the registering session now has its second factor.
    pub async fn finish_webauthn_registration(
        &self,
        user_id: UserId,
        session_id: Option<SessionId>,
        ceremony_id: String,
        name: Option<String>,
        credential: RegisterPublicKeyCredential,
        context: &RequestContext,
    ) -> ServiceResult<WebauthnKeyView> {
        let relying_party = self.webauthn_relying_party()?;
        let name = clean_name(name)?;
        let now = self.clock.now();
        let ceremony = self
            .store_write(move |txn| {
                let ceremony = txn.webauthn_ceremony(&ceremony_id)?;
                if ceremony.is_some() {
                    txn.delete_webauthn_ceremony(&ceremony_id)?;
                }
                Ok(ceremony)
            })
            .await?
            .filter(|c| c.user_id == user_id && c.expires_at > now)
            .ok_or_else(|| {
                ServiceError::field("ceremony_id", "is unknown, used or expired; start again")
            })?;
        let state: SecurityKeyRegistration =
            serde_json::from_str(&ceremony.state).map_err(internal)?;
        let key = relying_party
            .finish_securitykey_registration(&credential, &state)
            .map_err(|error| {
                ServiceError::field("credential", format!("was not accepted: {error}"))
            })?;
        let record = WebauthnCredential {
            id: credential_id_text(key.cred_id()),
            user_id,
            name,
            created_at: now,
            last_used_at: None,
            key: serde_json::to_string(&key).map_err(internal)?,
        };
        let origin = context.origin();
        let view = WebauthnKeyView::from(&record);
        self.store_write(move |txn| {
            let user = txn.user(&user_id)?.ok_or(ServiceError::InvalidToken)?;
            if txn.webauthn_credential(&user_id, &record.id)?.is_some() {
                return Err(ServiceError::Conflict(
                    "this key is already registered".into(),
                ));
            }
            txn.put_webauthn_credential(&record)?;
            refresh_mfa_enrolled(txn, &user_id)?;
            super::sessions::finish_enrollment(txn, session_id)?;
            let mut audit = AuditRecord::new(AuditKind::WebauthnRegistered, now, &origin)
                .user(user_id)
                .details(serde_json::json!({"credential_id": record.id, "name": record.name}));
            if let Some(membership) = user.memberships.first() {
                audit = audit.org(&membership.org_id);
            }
            txn.audit(audit)?;
            Ok(())
        })
        .await?;
        Ok(view)
    }

    pub async fn rename_webauthn_key(
        &self,
        user_id: UserId,
        id: String,
        name: Option<String>,
        context: &RequestContext,
    ) -> ServiceResult<WebauthnKeyView> {
        let name = clean_name(name)?;
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let mut credential = txn
                .webauthn_credential(&user_id, &id)?
                .ok_or(ServiceError::NotFound("security key"))?;
            credential.name = name;
            txn.put_webauthn_credential(&credential)?;
            txn.audit(
                AuditRecord::new(AuditKind::WebauthnRenamed, now, &origin)
                    .user(user_id)
                    .details(serde_json::json!({"credential_id": credential.id, "name": credential.name})),
            )?;
            Ok(WebauthnKeyView::from(&credential))
        })
        .await
    }

    /// Drops registration ceremonies nobody finished.
    pub async fn sweep_webauthn_ceremonies(&self) -> ServiceResult<usize> {
        let now = self.clock.now();
        self.store_write(move |txn| {
            let expired: Vec<String> = txn
                .webauthn_ceremonies()?
                .into_iter()
                .filter(|(_, ceremony)| ceremony.expires_at <= now)
                .map(|(id, _)| id)
                .collect();
            for id in &expired {
                txn.delete_webauthn_ceremony(id)?;
            }
            Ok(expired.len())
        })
        .await
    }
}
