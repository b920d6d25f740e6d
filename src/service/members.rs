//! What an org admin sees of, and does to, the members of their org
//! (`/api/v1/users`): profiles cut down to that org, and disabling a member
//! in that org only. A user may belong to other orgs; an org admin's view
//! and reach stop at their own (the operator's `/v1` sees everything).

use super::accounts::UserProfile;
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::{self, UnixSeconds};
use crate::domain::{OrgId, User, UserId};
use crate::store::Queries;

/// `user` as seen from `org`: only that membership, and disabled when
/// either the account or the membership is.
fn seen_from(org: &OrgId, user: &User, now: UnixSeconds) -> UserProfile {
    let mut profile = UserProfile::of(user, now);
    profile.memberships.retain(|m| &m.org_id == org);
    profile.disabled |= profile.memberships.iter().any(|m| m.suspended);
    profile
}

impl Services {
    /// A member of `org`; users of other orgs do not exist here.
    pub async fn org_member(&self, org: &OrgId, id: &str) -> ServiceResult<UserProfile> {
        let id = UserId::parse(id).ok_or(ServiceError::NotFound("user"))?;
        let now = clock::now();
        self.store_lookup(|txn| {
            let user = txn
                .user(&id)?
                .filter(|u| u.role_in(org).is_some())
                .ok_or(ServiceError::NotFound("user"))?;
            Ok(seen_from(org, &user, now))
        })
    }

    /// The members of `org` in id order after `cursor`.
    pub async fn org_members(
        &self,
        org: &OrgId,
        cursor: Option<String>,
        limit: usize,
    ) -> ServiceResult<Vec<UserProfile>> {
        let now = clock::now();
        let org = org.clone();
        self.store_read(move |txn| {
            Ok(txn
                .users(Some(&org), cursor.as_deref(), limit)?
                .iter()
                .map(|user| seen_from(&org, user, now))
                .collect())
        })
        .await
    }

    /// Disables (`suspended = true`) or restores a member in `org` only.
    /// Disabling ends their sessions and PATs in this org; their account and
    /// their other orgs are untouched.
    pub async fn set_member_suspended(
        &self,
        org: &OrgId,
        by: UserId,
        id: &str,
        suspended: bool,
        context: &RequestContext,
    ) -> ServiceResult<UserProfile> {
        let id = UserId::parse(id).ok_or(ServiceError::NotFound("user"))?;
        if id == by && suspended {
            return Err(ServiceError::Conflict(
                "you cannot disable yourself; ask another admin of this org".into(),
            ));
        }
        let now = clock::now();
        let origin = context.origin();
        let org = org.clone();
        self.store_write(move |txn| {
            let mut user = txn
                .user(&id)?
                .filter(|u| u.role_in(&org).is_some())
                .ok_or(ServiceError::NotFound("user"))?;
            let Some(membership) = user.memberships.iter_mut().find(|m| m.org_id == org) else {
                return Err(ServiceError::NotFound("user"));
            };
            if membership.suspended == suspended {
                return Ok(seen_from(&org, &user, now));
            }
            membership.suspended = suspended;
            txn.put_user(&user)?;
            if suspended {
                for session in txn.sessions_of_user(&id)? {
                    if session.org_id == org && session.is_live(now) {
                        super::sessions::revoke_in(txn, session, now, "member_disabled", &origin)?;
                    }
                }
                super::pats::revoke_pats_of_user(
                    txn,
                    &id,
                    Some(&org),
                    "member_disabled",
                    now,
                    &origin,
                )?;
            }
            let kind = if suspended {
                AuditKind::MembershipSuspended
            } else {
                AuditKind::MembershipRestored
            };
            txn.audit(
                AuditRecord::new(kind, now, &origin)
                    .user(id)
                    .org(&org)
                    .details(serde_json::json!({"by": by})),
            )?;
            Ok(seen_from(&org, &user, now))
        })
        .await
    }
}
