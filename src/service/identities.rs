//! Identities at upstream providers linked to accounts: linking one (in
//! the transaction that decided it, audited `identity.linked` with how),
//! the account page's list, and unlinking — never the last way into an
//! account without a password.

use serde::Serialize;

use super::enrolled_factors::{keep_a_way_to_sign_in, Removing};
use super::upstream_user::UpstreamUser;
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::{self, UnixSeconds};
use crate::domain::provider::{Identity, Provider, ProviderKind};
use crate::domain::{OrgId, User, UserId};
use crate::store::Queries;

/// A linked identity as its owner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityView {
    pub id: String,
    pub provider: String,
    pub kind: Option<ProviderKind>,
    pub email: Option<String>,
    pub linked_at: String,
    pub last_used_at: Option<String>,
}

impl Services {
    /// The identities linked to a user, for the account page.
    pub async fn list_identities(&self, user: UserId) -> ServiceResult<Vec<IdentityView>> {
        self.store_read(move |txn| {
            let mut views = Vec::new();
            for identity in txn.identities_of_user(&user)? {
                let kind = txn.provider(&identity.provider)?.map(|p| p.kind);
                views.push(IdentityView {
                    id: identity.id,
                    provider: identity.provider,
                    kind,
                    email: identity.email,
                    linked_at: clock::rfc3339(identity.linked_at),
                    last_used_at: identity.last_used_at.map(clock::rfc3339),
                });
            }
            Ok(views)
        })
        .await
    }

    /// Unlinks one identity of the user, unless it is their last way to
    /// sign in (no password, no other identity, no passkey).
    pub async fn unlink_identity(
        &self,
        user: UserId,
        identity_id: String,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let account = txn.user(&user)?.ok_or(ServiceError::NotFound("user"))?;
            let identities = txn.identities_of_user(&user)?;
            let identity = identities
                .iter()
                .find(|i| i.id == identity_id)
                .cloned()
                .ok_or(ServiceError::NotFound("identity"))?;
            keep_a_way_to_sign_in(txn, &account, Removing::Identity(&identity.id))?;
            txn.delete_identity(&identity)?;
            let org = txn.provider(&identity.provider)?.map(|p| p.org_id);
            txn.audit(
                AuditRecord::new(AuditKind::IdentityUnlinked, now, &origin)
                    .user(user)
                    .org_if_any(org.as_ref())
                    .details(serde_json::json!({"provider": identity.provider, "identity_id": identity.id})),
            )?;
            Ok(())
        })
        .await
    }

    /// The org a signed-in user may link providers of: their session's.
    pub async fn provider_in_org(&self, name: String, org: OrgId) -> ServiceResult<Provider> {
        let provider = self.stored_provider(name).await?;
        if provider.org_id != org || !provider.enabled {
            return Err(ServiceError::NotFound("provider"));
        }
        Ok(provider)
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn link_identity(
    txn: &mut crate::store::WriteTxn,
    provider: &str,
    upstream: &UpstreamUser,
    user: &User,
    org: &OrgId,
    now: UnixSeconds,
    origin: &crate::audit::RequestOrigin,
    how: &str,
) -> ServiceResult<()> {
    let identity = Identity {
        id: hex::encode(crate::crypto::random::bytes::<8>()),
        provider: provider.to_owned(),
        subject: upstream.subject.clone(),
        user_id: user.id,
        email: upstream.email.clone(),
        linked_at: now,
        last_used_at: Some(now),
    };
    txn.put_identity(&identity)?;
    txn.audit(
        AuditRecord::new(AuditKind::IdentityLinked, now, origin)
            .user(user.id)
            .org(org)
            .reason(how)
            .details(serde_json::json!({"provider": provider, "identity_id": identity.id})),
    )?;
    Ok(())
}
