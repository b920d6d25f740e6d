//! What an org admin sees of, and does to, the members of their org
//! (`/api/v1/users`, `/api/v1/sessions`): profiles cut down to that org,
//! disabling a member in that org only, and sessions in the org; and where
//! a caller may act (`/api/v1/org/memberships`). A user may belong to other orgs; an org admin's view
//! and reach stop at their own (the operator's `/v1` sees everything).

use serde::Serialize;

use super::accounts::UserProfile;
use super::pats::{Caller, OrgCaller};
use super::sessions::SessionView;
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::UnixSeconds;
use crate::domain::{OrgId, Scope, SessionId, User, UserId};
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
        let now = self.clock.now();
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
        let now = self.clock.now();
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
        let now = self.clock.now();
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

/// `GET /api/v1/org/memberships`: where the caller may act.
#[derive(Debug, Serialize)]
pub struct Memberships {
    pub active_org_id: OrgId,
    pub memberships: Vec<MembershipView>,
}

#[derive(Debug, Serialize)]
pub struct MembershipView {
    pub org_id: OrgId,
    pub role: crate::domain::Role,
}

impl Services {
    /// The caller's orgs; a PAT speaks for the one org it was made in.
    pub async fn memberships_of(&self, caller: &Caller) -> ServiceResult<Memberships> {
        let profile = self.user_profile(caller.user_id()).await?;
        let active_org_id = match caller {
            Caller::Pat(pat) => pat.org_id.clone(),
            Caller::Session(session) => session.org_id.clone(),
        };
        let memberships = profile
            .memberships
            .into_iter()
            .filter(|m| match caller {
                Caller::Pat(pat) => m.org_id == pat.org_id,
                Caller::Session(_) => true,
            })
            .map(|m| MembershipView {
                org_id: m.org_id,
                role: m.role,
            })
            .collect();
        Ok(Memberships {
            active_org_id,
            memberships,
        })
    }

    /// The caller's sessions in the org (the route has checked
    /// `sessions.read`), or (with `users.read`) another member's.
    pub async fn org_sessions(
        &self,
        caller: &OrgCaller,
        user: Option<&str>,
    ) -> ServiceResult<Vec<SessionView>> {
        let own = caller.caller.user_id();
        let user = match user {
            Some(other) if other != own.to_string() => {
                caller.authorize(Scope::UsersRead)?;
                self.org_member(&caller.org_id, other).await?.id
            }
            _ => own,
        };
        let sessions = self.list_sessions(user, caller.caller.session_id()).await?;
        Ok(sessions
            .into_iter()
            .filter(|s| s.org_id == caller.org_id)
            .collect())
    }

    /// Revokes one of the caller's sessions (the route has checked
    /// `sessions.write`), or (admins) any in the org.
    pub async fn revoke_session_in_org(
        &self,
        caller: &OrgCaller,
        id: &str,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let id = SessionId::parse(id).ok_or(ServiceError::NotFound("session"))?;
        let admin = caller.authorize(Scope::UsersWrite).is_ok();
        self.revoke_org_session(
            &caller.org_id,
            (!admin).then(|| caller.caller.user_id()),
            id,
            context,
        )
        .await
    }
}
