//! WebAuthn credentials: the relying party, registering and naming them,
//! and the second-factor assertions of the `mfa_token` step. Two kinds are
//! registered: security keys, through webauthn-rs's security-key ceremony
//! (any authenticator, user verification preferred; the password is the
//! first factor), and passkeys, through its passkey ceremony with a
//! discoverable (resident) credential and user verification required —
//! those also sign in alone (`passkey_login`). Either answers the second
//! step after a password. Ceremony state never leaves the server: a
//! registration's waits in redb under a random id, an assertion's in its
//! `mfa_token`'s challenge record; each is taken out (used once) when
//! answered.

use std::sync::Arc;

use base64::Engine;
use serde::Serialize;
use webauthn_rs::prelude::{
    CreationChallengeResponse, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, RequestChallengeResponse, SecurityKey, SecurityKeyAuthentication,
    SecurityKeyRegistration, Url, Webauthn, WebauthnBuilder,
};

use super::enrolled_factors::refresh_mfa_enrolled;
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::{self, UnixSeconds};
use crate::config::Config;
use crate::domain::{SessionId, UserId};
use crate::store::{
    CeremonyKind, Queries, WebauthnCeremony, WebauthnCredential, WebauthnKind, WriteTxn,
};

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
    /// `security_key` (a second factor) or `passkey` (also signs in alone).
    pub kind: WebauthnKind,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

impl From<&WebauthnCredential> for WebauthnKeyView {
    fn from(credential: &WebauthnCredential) -> Self {
        Self {
            id: credential.id.clone(),
            kind: credential.kind,
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

pub(crate) fn credential_id_text(id: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

fn clean_name(name: Option<String>, kind: WebauthnKind) -> ServiceResult<String> {
    let name = name.unwrap_or_default();
    let name = crate::domain::check_name(&name, MAX_NAME_CHARS)
        .map_err(|problem| ServiceError::field("name", problem.to_string()))?;
    Ok(match (name.is_empty(), kind) {
        (false, _) => name.to_owned(),
        (true, WebauthnKind::SecurityKey) => "Security key".to_owned(),
        (true, WebauthnKind::Passkey) => "Passkey".to_owned(),
    })
}

pub(crate) fn internal(error: impl Into<anyhow::Error>) -> ServiceError {
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

fn not_accepted(error: webauthn_rs::prelude::WebauthnError) -> ServiceError {
    ServiceError::field("credential", format!("was not accepted: {error}"))
}

/// webauthn-rs leaves residence to chance (and does not export the type to
/// ask otherwise); a passkey that signs in without a username must be
/// discoverable, so the options ask for it in their wire form.
fn require_resident_key(
    options: CreationChallengeResponse,
) -> ServiceResult<CreationChallengeResponse> {
    let mut wire = serde_json::to_value(options).map_err(internal)?;
    if let Some(selection) = wire
        .pointer_mut("/publicKey/authenticatorSelection")
        .and_then(serde_json::Value::as_object_mut)
    {
        selection.insert("residentKey".into(), "required".into());
        selection.insert("requireResidentKey".into(), true.into());
    }
    serde_json::from_value(wire).map_err(internal)
}

/// The browser's creation options for a new credential of `kind`, and the
/// ceremony state to keep (serialised).
fn creation_options(
    relying_party: &Webauthn,
    kind: WebauthnKind,
    user_id: &UserId,
    email: &crate::domain::Email,
    display: &str,
    exclude: Vec<webauthn_rs::prelude::CredentialID>,
) -> ServiceResult<(CreationChallengeResponse, String)> {
    let (mut options, state) = match kind {
        WebauthnKind::SecurityKey => {
            let (options, state) = relying_party
                .start_securitykey_registration(
                    user_id.0,
                    email.as_str(),
                    display,
                    Some(exclude),
                    None,
                    None,
                )
                .map_err(internal)?;
            (options, serde_json::to_string(&state))
        }
        WebauthnKind::Passkey => {
            let (options, state) = relying_party
                .start_passkey_registration(user_id.0, email.as_str(), display, Some(exclude))
                .map_err(internal)?;
            (
                require_resident_key(options)?,
                serde_json::to_string(&state),
            )
        }
    };
    options.public_key.hints = None;
    // Chromium refuses an unenforced credProtect policy next to
    // `userVerification: preferred` (webauthn-rs#490); without it a key
    // behaves as one that does not know the extension. Passkeys require
    // user verification anyway.
    if let Some(extensions) = options.public_key.extensions.as_mut() {
        extensions.cred_protect = None;
    }
    Ok((options, state.map_err(internal)?))
}

/// Stores a verified new credential for its user, with its audit record;
/// the registering session (if any) now has its second factor.
pub(crate) fn store_new_credential(
    txn: &mut WriteTxn,
    record: &WebauthnCredential,
    session_id: Option<SessionId>,
    now: UnixSeconds,
    origin: &crate::audit::RequestOrigin,
) -> ServiceResult<()> {
    let user_id = record.user_id;
    let user = txn.user(&user_id)?.ok_or(ServiceError::InvalidToken)?;
    if txn.webauthn_credential(&user_id, &record.id)?.is_some() {
        return Err(ServiceError::Conflict(
            "this key is already registered".into(),
        ));
    }
    txn.put_webauthn_credential(record)?;
    refresh_mfa_enrolled(txn, &user_id)?;
    super::sessions::finish_enrollment(txn, session_id)?;
    let mut audit = AuditRecord::new(AuditKind::WebauthnRegistered, now, origin)
        .user(user_id)
        .details(serde_json::json!({"credential_id": record.id, "name": record.name, "kind": record.kind}));
    if let Some(membership) = user.memberships.first() {
        audit = audit.org(&membership.org_id);
    }
    txn.audit(audit)?;
    Ok(())
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
        kind: WebauthnKind,
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
                let (options, state) = creation_options(
                    &relying_party,
                    kind,
                    &user_id,
                    &user.email,
                    &display,
                    exclude,
                )?;
                txn.put_webauthn_ceremony(
                    &key,
                    &WebauthnCeremony {
                        user_id,
                        kind: match kind {
                            WebauthnKind::SecurityKey => CeremonyKind::SecurityKey,
                            WebauthnKind::Passkey => CeremonyKind::Passkey,
                        },
                        state,
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
        let record = self
            .verify_webauthn_registration(user_id, ceremony_id, name, credential)
            .await?;
        let origin = context.origin();
        let view = WebauthnKeyView::from(&record);
        self.store_write(move |txn| {
            store_new_credential(txn, &record, session_id, record.created_at, &origin)
        })
        .await?;
        Ok(view)
    }

    /// Takes the ceremony out (used once, whatever the outcome) and checks
    /// the authenticator's answer against it: the credential to store.
    pub(crate) async fn verify_webauthn_registration(
        &self,
        user_id: UserId,
        ceremony_id: String,
        name: Option<String>,
        credential: RegisterPublicKeyCredential,
    ) -> ServiceResult<WebauthnCredential> {
        let relying_party = self.webauthn_relying_party()?;
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
            .filter(|c| c.kind != CeremonyKind::EnrollmentLink)
            .ok_or_else(|| {
                ServiceError::field("ceremony_id", "is unknown, used or expired; start again")
            })?;
        let (kind, id, key) = match ceremony.kind {
            CeremonyKind::SecurityKey => {
                let state: SecurityKeyRegistration =
                    serde_json::from_str(&ceremony.state).map_err(internal)?;
                let key = relying_party
                    .finish_securitykey_registration(&credential, &state)
                    .map_err(not_accepted)?;
                let id = credential_id_text(key.cred_id());
                (WebauthnKind::SecurityKey, id, serde_json::to_string(&key))
            }
            CeremonyKind::EnrollmentLink => {
                return Err(internal(anyhow::anyhow!("not a ceremony")))
            }
            CeremonyKind::Passkey => {
                // The browser says whether the authenticator kept a
                // discoverable credential (credProps); one that says it did
                // not could never sign in without a username.
                let kept = credential
                    .extensions
                    .cred_props
                    .as_ref()
                    .is_none_or(|props| props.rk != Some(false));
                if !kept {
                    return Err(ServiceError::field(
                        "credential",
                        "is not discoverable: this authenticator cannot hold a passkey",
                    ));
                }
                let state: PasskeyRegistration =
                    serde_json::from_str(&ceremony.state).map_err(internal)?;
                let key = relying_party
                    .finish_passkey_registration(&credential, &state)
                    .map_err(not_accepted)?;
                let id = credential_id_text(key.cred_id());
                (WebauthnKind::Passkey, id, serde_json::to_string(&key))
            }
        };
        let key = key.map_err(internal)?;
        Ok(WebauthnCredential {
            id,
            user_id,
            kind,
            name: clean_name(name, kind)?,
            created_at: now,
            last_used_at: None,
            key,
        })
    }

    pub async fn rename_webauthn_key(
        &self,
        user_id: UserId,
        id: String,
        name: Option<String>,
        context: &RequestContext,
    ) -> ServiceResult<WebauthnKeyView> {
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let mut credential = txn
                .webauthn_credential(&user_id, &id)?
                .ok_or(ServiceError::NotFound("security key"))?;
            credential.name = clean_name(name, credential.kind)?;
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
