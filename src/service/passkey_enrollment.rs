//! Enrollment links: how a person gets their first passkey without signing
//! in — typically an account the operator made without a password, in an
//! org that allows that (`allow_passwordless`). The operator asks for a
//! link (`POST /v1/users/{id}/passkey-link`) and hands it over; whoever
//! opens it registers one passkey for that account, once, before it
//! expires. The token (256 bits from the CSPRNG) is in the URL's fragment,
//! so it never reaches a server log; authd keeps only its SHA-256. A new
//! link does not cancel an older one: each is good until used or expired.

use base64::Engine;
use serde::Serialize;
use webauthn_rs::prelude::RegisterPublicKeyCredential;

use super::webauthn::{store_new_credential, RegistrationOptions, WebauthnKeyView};
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::{self, UnixSeconds};
use crate::domain::UserId;
use crate::store::{CeremonyKind, Queries, WebauthnCeremony, WebauthnKind};

/// How long an enrollment link works: time to pass it on and open it.
pub const LINK_SECONDS: UnixSeconds = 3 * 24 * 3600;

/// A new link, shown to the operator once.
#[derive(Debug, Serialize)]
pub struct EnrollmentLink {
    pub url: String,
    pub expires_at: String,
}

/// The ceremony table's key for a link token.
fn link_key(token: &str) -> String {
    format!(
        "link/{}",
        hex::encode(crate::crypto::sha256(token.as_bytes()))
    )
}

fn unusable_link() -> ServiceError {
    ServiceError::field(
        "token",
        "is unknown, used or expired: ask the operator for a new link",
    )
}

impl Services {
    /// `POST /v1/users/{id}/passkey-link`: a single-use link for adding a
    /// passkey to an active account.
    pub async fn issue_passkey_link(
        &self,
        user_id: UserId,
        context: &RequestContext,
    ) -> ServiceResult<EnrollmentLink> {
        self.webauthn_relying_party()?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(crate::crypto::random::bytes::<32>());
        let now = self.clock.now();
        let expires_at = now + LINK_SECONDS;
        let key = link_key(&token);
        let origin = context.origin();
        self.store_write(move |txn| {
            let user = txn.user(&user_id)?.ok_or(ServiceError::NotFound("user"))?;
            if !user.may_use_tokens() {
                return Err(ServiceError::Conflict(
                    "the account is disabled, locked or pending approval".into(),
                ));
            }
            txn.put_webauthn_ceremony(
                &key,
                &WebauthnCeremony {
                    user_id,
                    kind: CeremonyKind::EnrollmentLink,
                    state: String::new(),
                    expires_at,
                },
            )?;
            txn.audit(
                AuditRecord::new(AuditKind::PasskeyLinkIssued, now, &origin)
                    .user(user_id)
                    .org_if_any(user.memberships.first().map(|m| &m.org_id)),
            )?;
            Ok(())
        })
        .await?;
        let base = self
            .config()
            .server
            .public_url
            .trim_end_matches('/')
            .to_owned();
        Ok(EnrollmentLink {
            url: format!("{base}/enroll#{token}"),
            expires_at: clock::rfc3339(expires_at),
        })
    }

    /// The account a live link is for.
    fn link_owner(&self, token: &str) -> ServiceResult<UserId> {
        let key = link_key(token);
        let now = self.clock.now();
        self.store_lookup(|txn| Ok(txn.webauthn_ceremony(&key)?))?
            .filter(|link| link.kind == CeremonyKind::EnrollmentLink && link.expires_at > now)
            .map(|link| link.user_id)
            .ok_or_else(unusable_link)
    }

    /// `POST /webauthn/enroll/options {token}`: creation options for a
    /// passkey on the link's account. The link stays good until the
    /// passkey is stored.
    pub async fn passkey_link_options(&self, token: &str) -> ServiceResult<RegistrationOptions> {
        let user_id = self.link_owner(token)?;
        self.begin_webauthn_registration(user_id, WebauthnKind::Passkey)
            .await
    }

    /// `POST /webauthn/enroll`: stores the passkey and uses the link up, in
    /// one commit. The person then signs in with it.
    pub async fn finish_passkey_link(
        &self,
        token: &str,
        ceremony_id: String,
        name: Option<String>,
        credential: RegisterPublicKeyCredential,
        context: &RequestContext,
    ) -> ServiceResult<WebauthnKeyView> {
        let user_id = self.link_owner(token)?;
        let record = self
            .verify_webauthn_registration(user_id, ceremony_id, name, credential)
            .await?;
        if record.kind != WebauthnKind::Passkey {
            return Err(ServiceError::field("ceremony_id", "is not a passkey's"));
        }
        let key = link_key(token);
        let origin = context.origin();
        let view = WebauthnKeyView::from(&record);
        self.store_write(move |txn| {
            let live = txn
                .webauthn_ceremony(&key)?
                .is_some_and(|link| link.user_id == user_id && link.expires_at > record.created_at);
            if !live || !txn.delete_webauthn_ceremony(&key)? {
                return Err(unusable_link());
            }
            store_new_credential(txn, &record, None, record.created_at, &origin)
        })
        .await?;
        Ok(view)
    }
}
