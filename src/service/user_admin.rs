//! The operator's administration of users (`/v1/users`): creating them in
//! any org, listing and searching, renaming and disabling, memberships,
//! locking and unlocking, resetting their second factors, deleting. Every
//! change to one user has one shape — read it in the write transaction,
//! change it, store it, audit it, all in one commit — written once in
//! [`Services::change_user`].

use serde::Deserialize;

use super::accounts::{
    audit_for, check_new_user, revoke_other_sessions, NewUser, PasswordRequired, UserProfile,
};
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord, RequestOrigin};
use crate::clock::UnixSeconds;
use crate::domain::user::UserStatus;
use crate::domain::{Membership, Role, User, UserId};
use crate::store::{Queries, WriteTxn};

/// How many users a search reads at a time.
const SEARCH_BATCH: usize = 512;

/// Operator-editable fields of a user.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    pub name: Option<String>,
    pub disabled: Option<bool>,
    /// The operator vouches for (or withdraws) the email; it also decides
    /// whether a provider's verified email may link to the account.
    pub email_verified: Option<bool>,
}

/// What a change to one user says about itself: the audit record, and
/// what to answer.
type Changed<T> = (AuditRecord, T);

impl Services {
    /// Reads `user_id` in a write transaction (404 if gone), lets `change`
    /// alter it (and anything else in the transaction), stores it and
    /// writes the audit record `change` returns, in one commit.
    async fn change_user<T: Send + 'static>(
        &self,
        user_id: UserId,
        context: &RequestContext,
        change: impl FnOnce(
                &mut WriteTxn,
                &mut User,
                UnixSeconds,
                &RequestOrigin,
            ) -> ServiceResult<Changed<T>>
            + Send
            + 'static,
    ) -> ServiceResult<T> {
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let mut user = txn.user(&user_id)?.ok_or(ServiceError::NotFound("user"))?;
            let (record, answer) = change(txn, &mut user, now, &origin)?;
            txn.put_user(&user)?;
            txn.audit(record)?;
            Ok(answer)
        })
        .await
    }

    /// `POST /v1/users`: the operator creates an active user in any org;
    /// without a password where the org allows it (the person then adds a
    /// passkey through an enrollment link, `passkey_enrollment`).
    pub async fn create_user(
        &self,
        new: NewUser,
        context: &RequestContext,
    ) -> ServiceResult<UserProfile> {
        let email_verified = new.email_verified.unwrap_or(false);
        let (checked, org_reference, role) =
            check_new_user(new, PasswordRequired::UnlessOrgAllowsPasswordless)?;
        let role = match role {
            None => Role::member(),
            Some(text) => Role::parse(&text).ok_or_else(|| {
                ServiceError::field("role", "must be 1 to 32 of a-z, 0-9, '-' or '_'")
            })?,
        };
        let org = self.resolve_org_for_input(org_reference).await?;
        self.check_fits_org(&org, &checked).await?;
        let (user, _) = self
            .insert_user(checked, org, role, false, Some(email_verified), context)
            .await?;
        Ok(UserProfile::of(&user, self.clock.now()))
    }

    /// Users in id order after `cursor`; `search` keeps those whose email or
    /// name contains it (case-insensitive).
    pub async fn list_users(
        &self,
        org: Option<String>,
        search: Option<String>,
        cursor: Option<String>,
        limit: usize,
    ) -> ServiceResult<Vec<UserProfile>> {
        let now = self.clock.now();
        let search = search
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty());
        self.store_read(move |txn| {
            let org = match org {
                Some(reference) => Some(
                    super::orgs::resolve(txn, Some(&reference))?
                        .ok_or(ServiceError::NotFound("org"))?
                        .id,
                ),
                None => None,
            };
            let Some(search) = search else {
                return Ok(txn
                    .users(org.as_ref(), cursor.as_deref(), limit)?
                    .iter()
                    .map(|u| UserProfile::of(u, now))
                    .collect());
            };
            let matches = |user: &User| {
                user.email.as_str().contains(&search)
                    || user
                        .name
                        .as_ref()
                        .is_some_and(|name| name.to_lowercase().contains(&search))
            };
            let mut found = Vec::new();
            let mut after = cursor;
            loop {
                let page = txn.users(org.as_ref(), after.as_deref(), SEARCH_BATCH)?;
                after = page.last().map(|u| u.id.to_string());
                let exhausted = page.len() < SEARCH_BATCH;
                for user in page.iter().filter(|u| matches(u)) {
                    found.push(UserProfile::of(user, now));
                    if found.len() == limit {
                        return Ok(found);
                    }
                }
                if exhausted {
                    return Ok(found);
                }
            }
        })
        .await
    }
}

impl Services {
    /// Operator changes to a user: name, disabled.
    pub async fn update_user(
        &self,
        user_id: UserId,
        changes: UserChanges,
        context: &RequestContext,
    ) -> ServiceResult<UserProfile> {
        let name = match changes
            .name
            .as_deref()
            .map(|n| crate::domain::check_name(n, 200))
        {
            Some(Err(problem)) => return Err(ServiceError::field("name", problem.to_string())),
            Some(Ok(name)) => Some(name.to_owned()),
            None => None,
        };
        self.change_user(user_id, context, move |txn, user, now, origin| {
            if let Some(name) = name {
                user.name = Some(name.trim().to_owned()).filter(|n| !n.is_empty());
            }
            if let Some(verified) = changes.email_verified {
                user.email_verified = verified;
            }
            if let Some(disabled) = changes.disabled {
                user.status = match (disabled, user.status) {
                    (true, _) => UserStatus::Disabled,
                    (false, UserStatus::Disabled) => UserStatus::Active,
                    (false, other) => other,
                };
                if disabled {
                    revoke_other_sessions(txn, user_id, None, now, "user_disabled", origin)?;
                }
            }
            Ok((
                audit_for(AuditKind::UserUpdated, now, origin, user, None),
                UserProfile::of(user, now),
            ))
        })
        .await
    }

    /// Adds or changes the user's role in an org.
    pub async fn set_membership(
        &self,
        user_id: UserId,
        org: String,
        role: String,
        context: &RequestContext,
    ) -> ServiceResult<UserProfile> {
        let role = Role::parse(&role).ok_or_else(|| {
            ServiceError::field("role", "must be 1 to 32 of a-z, 0-9, '-' or '_'")
        })?;
        self.change_user(user_id, context, move |txn, user, now, origin| {
            let org = super::orgs::resolve(txn, Some(&org))?
                .ok_or_else(|| ServiceError::field("org", "no such org"))?;
            if user.role_in(&org.id).is_none() {
                if let Some(other) = txn.user_id_by_email(&org.id, &user.email)? {
                    if other != user.id {
                        return Err(ServiceError::EmailTaken);
                    }
                }
            }
            match user.memberships.iter_mut().find(|m| m.org_id == org.id) {
                Some(membership) => membership.role = role.clone(),
                None => user.memberships.push(Membership {
                    org_id: org.id.clone(),
                    role: role.clone(),
                    suspended: false,
                }),
            }
            Ok((
                audit_for(
                    AuditKind::MembershipChanged,
                    now,
                    origin,
                    user,
                    Some(&org.id),
                )
                .details(serde_json::json!({"role": role.as_str()})),
                UserProfile::of(user, now),
            ))
        })
        .await
    }

    /// Removes the user from an org; their sessions there end.
    pub async fn remove_membership(
        &self,
        user_id: UserId,
        org: String,
        context: &RequestContext,
    ) -> ServiceResult<UserProfile> {
        self.change_user(user_id, context, move |txn, user, now, origin| {
            let org =
                super::orgs::resolve(txn, Some(&org))?.ok_or(ServiceError::NotFound("org"))?;
            if user.role_in(&org.id).is_none() {
                return Err(ServiceError::NotFound("membership"));
            }
            if user.memberships.len() == 1 {
                return Err(ServiceError::Conflict(
                    "a user keeps at least one membership; delete the user instead".into(),
                ));
            }
            user.memberships.retain(|m| m.org_id != org.id);
            for session in txn.sessions_of_user(&user_id)? {
                if session.org_id == org.id && session.is_live(now) {
                    super::sessions::revoke_in(txn, session, now, "membership_removed", origin)?;
                }
            }
            Ok((
                audit_for(
                    AuditKind::MembershipChanged,
                    now,
                    origin,
                    user,
                    Some(&org.id),
                )
                .details(serde_json::json!({"removed": true})),
                UserProfile::of(user, now),
            ))
        })
        .await
    }

    pub async fn delete_user(
        &self,
        user_id: UserId,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let user = txn.user(&user_id)?.ok_or(ServiceError::NotFound("user"))?;
            txn.audit(audit_for(AuditKind::UserDeleted, now, &origin, &user, None))?;
            txn.delete_user(&user)?;
            Ok(())
        })
        .await
    }

    /// Clears a lockout and the failure counts.
    pub async fn unlock_user(
        &self,
        user_id: UserId,
        context: &RequestContext,
    ) -> ServiceResult<UserProfile> {
        self.change_user(user_id, context, |_, user, now, origin| {
            user.locked_until = None;
            user.failed_logins = 0;
            user.failed_second_factors = 0;
            Ok((
                audit_for(AuditKind::UserUnlocked, now, origin, user, None).reason("operator"),
                UserProfile::of(user, now),
            ))
        })
        .await
    }

    /// The operator locks an account until it is unlocked; its sessions end,
    /// and its PATs and refresh tokens stop working.
    pub async fn lock_user(
        &self,
        user_id: UserId,
        context: &RequestContext,
    ) -> ServiceResult<UserProfile> {
        self.change_user(user_id, context, move |txn, user, now, origin| {
            user.locked_until = Some(crate::domain::user::LOCKED_BY_OPERATOR);
            revoke_other_sessions(txn, user_id, None, now, "user_locked", origin)?;
            Ok((
                audit_for(AuditKind::UserLocked, now, origin, user, None).reason("operator"),
                UserProfile::of(user, now),
            ))
        })
        .await
    }

    /// The operator removes every second factor of a user (a lost phone):
    /// they log in with the password alone, or enroll again if the org
    /// requires MFA.
    pub async fn reset_user_mfa(
        &self,
        user_id: UserId,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        self.change_user(user_id, context, move |txn, user, now, origin| {
            super::enrolled_factors::remove_every_factor(txn, &user_id)?;
            user.mfa_enrolled = false;
            Ok((
                audit_for(AuditKind::UserMfaReset, now, origin, user, None).reason("operator"),
                (),
            ))
        })
        .await
    }
}
