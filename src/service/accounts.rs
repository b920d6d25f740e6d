//! Accounts: self-registration, operator-created users, profiles, password
//! changes with history, memberships, disable/unlock/delete.

use serde::{Deserialize, Serialize};

use super::{FieldError, RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord, RequestOrigin};
use crate::clock::{self, UnixSeconds};
use crate::domain::password_policy::{UserInfo, Violation};
use crate::domain::user::UserStatus;
use crate::domain::{
    Email, Membership, Org, OrgId, Password, RegistrationMode, Role, User, UserId,
};
use crate::store::{Approval, Queries, WriteTxn};

/// An org a user belongs to, with the names a person reads.
#[derive(Debug, Clone, Serialize)]
pub struct OrgRef {
    pub id: crate::domain::OrgId,
    pub slug: String,
    pub name: String,
    pub role: crate::domain::Role,
}

/// A user as the API shows them: never a hash.
#[derive(Debug, Clone, Serialize)]
pub struct UserProfile {
    pub id: UserId,
    pub email: String,
    pub name: Option<String>,
    pub memberships: Vec<Membership>,
    /// The orgs of `memberships` by name, for the user's own profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orgs: Option<Vec<OrgRef>>,
    /// Which second factors the user has (`totp`, `webauthn`,
    /// `recovery_code`), for the user's own profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_methods: Option<Vec<&'static str>>,
    pub locked: bool,
    pub disabled: bool,
    pub pending_approval: bool,
    pub mfa_enrolled: bool,
    pub created_at: String,
}

impl UserProfile {
    pub fn of(user: &User, now: UnixSeconds) -> Self {
        Self {
            id: user.id,
            email: user.email.as_str().to_owned(),
            name: user.name.clone(),
            memberships: user.memberships.clone(),
            orgs: None,
            mfa_methods: None,
            locked: user.is_locked(now),
            disabled: user.status == UserStatus::Disabled,
            pending_approval: user.status == UserStatus::PendingApproval,
            mfa_enrolled: user.mfa_enrolled,
            created_at: clock::rfc3339(user.created_at),
        }
    }
}

/// The body of `POST /register` and `POST /v1/users`, before checking.
#[derive(Debug, Default, Deserialize)]
pub struct NewUser {
    pub email: Option<String>,
    pub password: Option<Password>,
    pub name: Option<String>,
    pub org: Option<String>,
    /// Only the operator may set it; registration is always `member`.
    pub role: Option<String>,
}

pub enum Registered {
    Created(UserProfile),
    PendingApproval { approval_id: String },
}

struct CheckedUser {
    email: Email,
    password: Password,
    name: Option<String>,
}

/// Checks presence and shape of every field, reporting all problems at once.
fn check_new_user(new: NewUser) -> ServiceResult<(CheckedUser, Option<String>, Option<String>)> {
    let mut errors = Vec::new();
    let email = match new.email.as_deref() {
        None => {
            errors.push(FieldError {
                field: "email",
                message: "is required".into(),
            });
            None
        }
        Some(text) => match Email::parse(text) {
            Ok(email) => Some(email),
            Err(error) => {
                errors.push(FieldError {
                    field: "email",
                    message: error.to_string(),
                });
                None
            }
        },
    };
    if new.password.is_none() {
        errors.push(FieldError {
            field: "password",
            message: "is required".into(),
        });
    }
    let name = match new
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
    {
        Some(name) if name.chars().count() > 200 || name.chars().any(char::is_control) => {
            errors.push(FieldError {
                field: "name",
                message: "must be at most 200 characters without control characters".into(),
            });
            None
        }
        other => other,
    };
    match (email, new.password, errors.is_empty()) {
        (Some(email), Some(password), true) => Ok((
            CheckedUser {
                email,
                password,
                name,
            },
            new.org,
            new.role,
        )),
        _ => Err(ServiceError::InvalidFields(errors)),
    }
}

fn check_password(
    org: &Org,
    password: &Password,
    email: &Email,
    name: Option<&str>,
) -> ServiceResult<()> {
    let violations = org.password_policy.violations(
        password.expose(),
        &UserInfo {
            email: email.as_str(),
            name,
        },
    );
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::InvalidPassword(violations))
    }
}

fn audit_for(
    kind: AuditKind,
    now: UnixSeconds,
    origin: &RequestOrigin,
    user: &User,
    org: Option<&OrgId>,
) -> AuditRecord {
    let record = AuditRecord::new(kind, now, origin).user(user.id);
    match org.or(user.memberships.first().map(|m| &m.org_id)) {
        Some(org) => record.org(org),
        None => record,
    }
}

impl Services {
    /// `POST /register`: self-service sign-up into an org that allows it.
    pub async fn register(
        &self,
        new: NewUser,
        context: &RequestContext,
    ) -> ServiceResult<Registered> {
        let (checked, org_reference, _) = check_new_user(new)?;
        let org = self.resolve_org_for_input(org_reference).await?;
        if org.registration == RegistrationMode::Closed {
            return Err(ServiceError::RegistrationClosed);
        }
        check_password(
            &org,
            &checked.password,
            &checked.email,
            checked.name.as_deref(),
        )?;
        self.ensure_email_free(&org.id, &checked.email).await?;
        let pending = org.registration == RegistrationMode::Approval;
        let (user, approval) = self
            .insert_user(checked, org, Role::member(), pending, context)
            .await?;
        if let Some(approval_id) = &approval {
            self.announce_approval(approval_id.clone()).await;
        }
        Ok(match approval {
            Some(approval_id) => Registered::PendingApproval { approval_id },
            None => Registered::Created(UserProfile::of(&user, clock::now())),
        })
    }

    /// `POST /v1/users`: the operator creates an active user in any org.
    pub async fn create_user(
        &self,
        new: NewUser,
        context: &RequestContext,
    ) -> ServiceResult<UserProfile> {
        let (checked, org_reference, role) = check_new_user(new)?;
        let role = match role {
            None => Role::member(),
            Some(text) => Role::parse(&text).ok_or_else(|| {
                ServiceError::field("role", "must be 1 to 32 of a-z, 0-9, '-' or '_'")
            })?,
        };
        let org = self.resolve_org_for_input(org_reference).await?;
        check_password(
            &org,
            &checked.password,
            &checked.email,
            checked.name.as_deref(),
        )?;
        self.ensure_email_free(&org.id, &checked.email).await?;
        let (user, _) = self.insert_user(checked, org, role, false, context).await?;
        Ok(UserProfile::of(&user, clock::now()))
    }

    async fn resolve_org_for_input(&self, reference: Option<String>) -> ServiceResult<Org> {
        self.store_read(move |txn| {
            super::orgs::resolve(txn, reference.as_deref())?
                .ok_or_else(|| ServiceError::field("org", "no such org"))
        })
        .await
    }

    /// A cheap early answer for the common case; the write re-checks.
    async fn ensure_email_free(&self, org: &OrgId, email: &Email) -> ServiceResult<()> {
        let (org, email) = (org.clone(), email.clone());
        let taken = self
            .store_read(move |txn| Ok(txn.user_id_by_email(&org, &email)?.is_some()))
            .await?;
        if taken {
            Err(ServiceError::EmailTaken)
        } else {
            Ok(())
        }
    }

    async fn insert_user(
        &self,
        checked: CheckedUser,
        org: Org,
        role: Role,
        pending: bool,
        context: &RequestContext,
    ) -> ServiceResult<(User, Option<String>)> {
        let password_hash = self.passwords.hash(checked.password.into_inner()).await?;
        let now = clock::now();
        let user = User {
            id: UserId::random(),
            email: checked.email,
            name: checked.name,
            password_hash,
            password_history: Vec::new(),
            memberships: vec![Membership {
                org_id: org.id.clone(),
                role,
            }],
            status: if pending {
                UserStatus::PendingApproval
            } else {
                UserStatus::Active
            },
            failed_logins: 0,
            locked_until: None,
            mfa_enrolled: false,
            email_verified: false,
            created_at: now,
            password_changed_at: Some(now),
        };
        let origin = context.origin();
        self.store_write(move |txn| {
            // Writes are serialised, so this check and the insert are atomic:
            // of many racing sign-ups with one email, exactly one gets here first.
            if txn.user_id_by_email(&org.id, &user.email)?.is_some() {
                return Err(ServiceError::EmailTaken);
            }
            txn.put_user(&user)?;
            let approval = if pending {
                let approval = Approval {
                    id: format!("apr_{}", ulid::Ulid::new()),
                    kind: "registration".to_owned(),
                    subject_user_id: Some(user.id),
                    org_id: Some(org.id.clone()),
                    requested_at: now,
                    requested_by_ip: origin.ip.clone(),
                    requested_by_user_agent: origin.user_agent.clone(),
                    status: "pending".to_owned(),
                    resolved_by: None,
                    resolved_at: None,
                };
                txn.put_approval(&approval)?;
                txn.audit(audit_for(
                    AuditKind::UserRegistrationPending,
                    now,
                    &origin,
                    &user,
                    Some(&org.id),
                ))?;
                txn.audit(
                    audit_for(
                        AuditKind::ApprovalCreated,
                        now,
                        &origin,
                        &user,
                        Some(&org.id),
                    )
                    .details(
                        serde_json::json!({"approval_id": approval.id, "kind": approval.kind}),
                    ),
                )?;
                Some(approval.id)
            } else {
                txn.audit(audit_for(
                    AuditKind::UserCreated,
                    now,
                    &origin,
                    &user,
                    Some(&org.id),
                ))?;
                None
            };
            Ok((user, approval))
        })
        .await
    }

    pub async fn user_profile(&self, user: UserId) -> ServiceResult<UserProfile> {
        let now = clock::now();
        self.store_lookup(|txn| {
            let user = txn.user(&user)?.ok_or(ServiceError::NotFound("user"))?;
            let mut profile = UserProfile::of(&user, now);
            let mut orgs = Vec::new();
            for membership in &user.memberships {
                if let Some(org) = txn.org(&membership.org_id)? {
                    orgs.push(OrgRef {
                        id: org.id,
                        slug: org.slug,
                        name: org.name,
                        role: membership.role.clone(),
                    });
                }
            }
            let factors = txn.mfa_factors(&user.id)?.unwrap_or_default();
            let mut methods = Vec::new();
            if factors.totp_sealed.is_some() {
                methods.push("totp");
            }
            if !txn.webauthn_credentials(&user.id)?.is_empty() {
                methods.push("webauthn");
            }
            if !factors.recovery_code_hashes.is_empty() {
                methods.push("recovery_code");
            }
            profile.orgs = Some(orgs);
            profile.mfa_methods = Some(methods);
            Ok(profile)
        })
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
        let now = clock::now();
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

    /// `POST /api/account/password`: checks the current password, the org's
    /// policy and history, then revokes every other session.
    pub async fn change_password(
        &self,
        user_id: UserId,
        keep_session: Option<crate::domain::SessionId>,
        current: Password,
        new: Password,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let (user, org) = self
            .store_read(move |txn| {
                let user = txn.user(&user_id)?.ok_or(ServiceError::InvalidToken)?;
                let org_id = user.memberships.first().map(|m| m.org_id.clone());
                let org = match org_id {
                    Some(id) => txn.org(&id)?,
                    None => None,
                };
                Ok((user, org.ok_or(ServiceError::NotFound("org"))?))
            })
            .await?;
        if !matches!(
            self.passwords
                .verify(current.into_inner(), Some(user.password_hash.clone()))
                .await?,
            crate::crypto::passwords::Verification::Match { .. }
        ) {
            return Err(ServiceError::field("current_password", "is not correct"));
        }
        check_password(&org, &new, &user.email, user.name.as_deref())?;
        let history = org.password_policy.history_count;
        if history > 0 {
            let recent: Vec<String> = std::iter::once(user.password_hash.clone())
                .chain(user.password_history.iter().cloned())
                .take(history)
                .collect();
            for old in recent {
                if matches!(
                    self.passwords
                        .verify(new.expose().to_owned(), Some(old))
                        .await?,
                    crate::crypto::passwords::Verification::Match { .. }
                ) {
                    return Err(ServiceError::InvalidPassword(vec![
                        Violation::ReusedPassword,
                    ]));
                }
            }
        }
        let new_hash = self.passwords.hash(new.into_inner()).await?;
        let now = clock::now();
        let origin = context.origin();
        let keep_history = history.max(1);
        self.store_write(move |txn| {
            let mut current = txn.user(&user_id)?.ok_or(ServiceError::InvalidToken)?;
            let old_hash = std::mem::replace(&mut current.password_hash, new_hash);
            current.password_history.insert(0, old_hash);
            current.password_history.truncate(keep_history);
            current.password_changed_at = Some(now);
            txn.put_user(&current)?;
            txn.audit(audit_for(
                AuditKind::PasswordChanged,
                now,
                &origin,
                &current,
                None,
            ))?;
            revoke_other_sessions(txn, user_id, keep_session, now, "password_changed", &origin)?;
            Ok(())
        })
        .await
    }

    /// Operator changes to a user: name, disabled, and membership edits.
    pub async fn update_user(
        &self,
        user_id: UserId,
        changes: UserChanges,
        context: &RequestContext,
    ) -> ServiceResult<UserProfile> {
        let name = match changes.name {
            Some(name) if name.chars().count() > 200 || name.chars().any(char::is_control) => {
                return Err(ServiceError::field(
                    "name",
                    "must be at most 200 characters without control characters",
                ))
            }
            other => other,
        };
        let now = clock::now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let mut user = txn.user(&user_id)?.ok_or(ServiceError::NotFound("user"))?;
            if let Some(name) = name {
                user.name = Some(name.trim().to_owned()).filter(|n| !n.is_empty());
            }
            if let Some(disabled) = changes.disabled {
                user.status = match (disabled, user.status) {
                    (true, _) => UserStatus::Disabled,
                    (false, UserStatus::Disabled) => UserStatus::Active,
                    (false, other) => other,
                };
                if disabled {
                    revoke_other_sessions(txn, user_id, None, now, "user_disabled", &origin)?;
                }
            }
            txn.put_user(&user)?;
            txn.audit(audit_for(AuditKind::UserUpdated, now, &origin, &user, None))?;
            Ok(UserProfile::of(&user, now))
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
        let now = clock::now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let org = super::orgs::resolve(txn, Some(&org))?
                .ok_or_else(|| ServiceError::field("org", "no such org"))?;
            let mut user = txn.user(&user_id)?.ok_or(ServiceError::NotFound("user"))?;
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
                }),
            }
            txn.put_user(&user)?;
            txn.audit(
                audit_for(
                    AuditKind::MembershipChanged,
                    now,
                    &origin,
                    &user,
                    Some(&org.id),
                )
                .details(serde_json::json!({"role": role.as_str()})),
            )?;
            Ok(UserProfile::of(&user, now))
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
        let now = clock::now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let org =
                super::orgs::resolve(txn, Some(&org))?.ok_or(ServiceError::NotFound("org"))?;
            let mut user = txn.user(&user_id)?.ok_or(ServiceError::NotFound("user"))?;
            if user.role_in(&org.id).is_none() {
                return Err(ServiceError::NotFound("membership"));
            }
            if user.memberships.len() == 1 {
                return Err(ServiceError::Conflict(
                    "a user keeps at least one membership; delete the user instead".into(),
                ));
            }
            user.memberships.retain(|m| m.org_id != org.id);
            txn.put_user(&user)?;
            for session in txn.sessions_of_user(&user_id)? {
                if session.org_id == org.id && session.is_live(now) {
                    super::sessions::revoke_in(txn, session, now, "membership_removed", &origin)?;
                }
            }
            txn.audit(
                audit_for(
                    AuditKind::MembershipChanged,
                    now,
                    &origin,
                    &user,
                    Some(&org.id),
                )
                .details(serde_json::json!({"removed": true})),
            )?;
            Ok(UserProfile::of(&user, now))
        })
        .await
    }

    pub async fn delete_user(
        &self,
        user_id: UserId,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let now = clock::now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let user = txn.user(&user_id)?.ok_or(ServiceError::NotFound("user"))?;
            txn.audit(audit_for(AuditKind::UserDeleted, now, &origin, &user, None))?;
            txn.delete_user(&user)?;
            Ok(())
        })
        .await
    }

    /// Clears a lockout and the failure count.
    pub async fn unlock_user(
        &self,
        user_id: UserId,
        context: &RequestContext,
    ) -> ServiceResult<UserProfile> {
        let now = clock::now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let mut user = txn.user(&user_id)?.ok_or(ServiceError::NotFound("user"))?;
            user.locked_until = None;
            user.failed_logins = 0;
            txn.put_user(&user)?;
            txn.audit(
                audit_for(AuditKind::UserUnlocked, now, &origin, &user, None).reason("operator"),
            )?;
            Ok(UserProfile::of(&user, now))
        })
        .await
    }
}

/// How many users a search reads at a time.
const SEARCH_BATCH: usize = 512;

impl Services {
    /// The operator locks an account until it is unlocked; its sessions end.
    pub async fn lock_user(
        &self,
        user_id: UserId,
        context: &RequestContext,
    ) -> ServiceResult<UserProfile> {
        let now = clock::now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let mut user = txn.user(&user_id)?.ok_or(ServiceError::NotFound("user"))?;
            user.locked_until = Some(UnixSeconds::MAX);
            txn.put_user(&user)?;
            revoke_other_sessions(txn, user_id, None, now, "user_locked", &origin)?;
            txn.audit(
                audit_for(AuditKind::UserLocked, now, &origin, &user, None).reason("operator"),
            )?;
            Ok(UserProfile::of(&user, now))
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
        let now = clock::now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let mut user = txn.user(&user_id)?.ok_or(ServiceError::NotFound("user"))?;
            super::mfa::remove_every_factor(txn, &user_id)?;
            user.mfa_enrolled = false;
            txn.put_user(&user)?;
            txn.audit(
                audit_for(AuditKind::UserMfaReset, now, &origin, &user, None).reason("operator"),
            )?;
            Ok(())
        })
        .await
    }
}

/// Operator-editable fields of a user.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    pub name: Option<String>,
    pub disabled: Option<bool>,
}

fn revoke_other_sessions(
    txn: &mut WriteTxn,
    user: UserId,
    keep: Option<crate::domain::SessionId>,
    now: UnixSeconds,
    reason: &str,
    origin: &RequestOrigin,
) -> ServiceResult<()> {
    for session in txn.sessions_of_user(&user)? {
        if Some(session.id) != keep && session.is_live(now) {
            super::sessions::revoke_in(txn, session, now, reason, origin)?;
        }
    }
    Ok(())
}
