//! Accounts: self-registration, creating a user (checks and the insert the
//! operator's `user_admin` shares), profiles, and a user's own password
//! change with its history.

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
    /// Whether the email was shown to reach the user; a self-registered one
    /// is not until verified.
    pub email_verified: bool,
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
    /// An account without a password: it signs in with passkeys only.
    pub passkeys_only: bool,
    pub created_at: String,
}

impl UserProfile {
    pub fn of(user: &User, now: UnixSeconds) -> Self {
        Self {
            id: user.id,
            email: user.email.as_str().to_owned(),
            email_verified: user.email_verified,
            name: user.name.clone(),
            memberships: user.memberships.clone(),
            orgs: None,
            mfa_methods: None,
            locked: user.is_locked(now),
            disabled: user.status == UserStatus::Disabled,
            pending_approval: user.status == UserStatus::PendingApproval,
            mfa_enrolled: user.mfa_enrolled,
            passkeys_only: !user.has_password(),
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
    /// Only the operator may set it; a sign-up's email is unverified
    /// until its link is followed.
    pub email_verified: Option<bool>,
}

/// `POST /api/account/password`.
pub struct PasswordChange {
    pub current: Password,
    pub new: Password,
    /// Keep the user's PATs working (they are revoked by default).
    pub keep_pats: bool,
}

pub enum Registered {
    Created(UserProfile),
    PendingApproval { approval_id: String },
}

pub(crate) struct CheckedUser {
    pub email: Email,
    /// `None` for an operator-made account in an org that allows accounts
    /// without a password (it will sign in with a passkey), and for an
    /// account a sign-in provider creates (it signs in there).
    pub password: Option<Password>,
    pub name: Option<String>,
}

/// Whether a new user may come without a password: only the operator's,
/// and only into an org that allows it (checked once the org is known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PasswordRequired {
    Always,
    UnlessOrgAllowsPasswordless,
}

/// Checks presence and shape of every field, reporting all problems at once.
pub(crate) fn check_new_user(
    new: NewUser,
    password_required: PasswordRequired,
) -> ServiceResult<(CheckedUser, Option<String>, Option<String>)> {
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
    if new.password.is_none() && password_required == PasswordRequired::Always {
        errors.push(FieldError {
            field: "password",
            message: "is required".into(),
        });
    }
    let name = match new
        .name
        .as_deref()
        .map(|n| crate::domain::check_name(n, 200))
    {
        Some(Err(problem)) => {
            errors.push(FieldError {
                field: "name",
                message: problem.to_string(),
            });
            None
        }
        Some(Ok(name)) => Some(name.to_owned()).filter(|n| !n.is_empty()),
        None => None,
    };
    match (email, new.password, errors.is_empty()) {
        (Some(email), password, true) => Ok((
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

pub(crate) fn audit_for(
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
        // Every attempt counts, well-formed or not: each may cost a hash.
        self.limiter
            .admit_registration(super::limiter::AddressKey::of(context.ip), self.clock.now())
            .map_err(|throttled| ServiceError::RateLimited {
                retry_after_seconds: throttled.retry_after_seconds,
            })?;
        let (checked, org_reference, _) = check_new_user(new, PasswordRequired::Always)?;
        let org = self.resolve_org_for_input(org_reference).await?;
        if org.registration == RegistrationMode::Closed {
            return Err(ServiceError::RegistrationClosed);
        }
        self.check_fits_org(&org, &checked).await?;
        let pending = org.registration == RegistrationMode::Approval;
        let (user, approval) = self
            .insert_user(checked, org, Role::member(), pending, None, context)
            .await?;
        if let Some(approval_id) = &approval {
            self.announce_approval(approval_id.clone()).await;
        }
        // The account exists either way; a mail that could not be queued
        // is asked for again from the account page.
        if let Err(error) = self.send_email_verification(&user).await {
            tracing::warn!(%error, "could not send the verification mail of a sign-up");
        }
        Ok(match approval {
            Some(approval_id) => Registered::PendingApproval { approval_id },
            None => Registered::Created(UserProfile::of(&user, self.clock.now())),
        })
    }

    pub(crate) async fn resolve_org_for_input(
        &self,
        reference: Option<String>,
    ) -> ServiceResult<Org> {
        self.store_read(move |txn| {
            super::orgs::resolve(txn, reference.as_deref())?
                .ok_or_else(|| ServiceError::field("org", "no such org"))
        })
        .await
    }

    /// A new user's password against the org's policy, and their email
    /// against the org's users.
    pub(crate) async fn check_fits_org(
        &self,
        org: &Org,
        checked: &CheckedUser,
    ) -> ServiceResult<()> {
        match &checked.password {
            Some(password) => {
                check_password(org, password, &checked.email, checked.name.as_deref())?;
            }
            None if org.allow_passwordless => {}
            None => {
                return Err(ServiceError::field(
                    "password",
                    "is required: this org does not allow accounts without a password",
                ))
            }
        }
        self.ensure_email_free(&org.id, &checked.email).await
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

    pub(crate) async fn insert_user(
        &self,
        checked: CheckedUser,
        org: Org,
        role: Role,
        pending: bool,
        // `None` for a sign-up; the operator's word on the email otherwise
        // (or, for an account a sign-in provider creates, the provider's).
        operator_says_verified: Option<bool>,
        context: &RequestContext,
    ) -> ServiceResult<(User, Option<String>)> {
        let has_password = checked.password.is_some();
        let self_registered = operator_says_verified.is_none();
        // Anyone may sign up, so sign-ups hash within their own share of the
        // pool; what the operator creates is not anonymous work.
        let password_hash = match checked.password.map(Password::into_inner) {
            None => String::new(),
            Some(password) if self_registered => self.passwords.hash_for_sign_up(password).await?,
            Some(password) => self.passwords.hash(password).await?,
        };
        let now = self.clock.now();
        let user = User {
            id: UserId::random(),
            email: checked.email,
            name: checked.name,
            password_hash,
            password_history: Vec::new(),
            memberships: vec![Membership {
                org_id: org.id.clone(),
                role,
                suspended: false,
            }],
            status: if pending {
                UserStatus::PendingApproval
            } else {
                UserStatus::Active
            },
            failed_logins: 0,
            failed_second_factors: 0,
            locked_until: None,
            mfa_enrolled: false,
            email_verified: operator_says_verified.unwrap_or(false),
            created_at: now,
            password_changed_at: has_password.then_some(now),
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
                    kind: crate::domain::ApprovalKind::Registration,
                    subject_user_id: Some(user.id),
                    org_id: Some(org.id.clone()),
                    requested_at: now,
                    requested_by_ip: origin.ip.clone(),
                    requested_by_user_agent: origin.user_agent.clone(),
                    status: crate::domain::ApprovalStatus::Pending,
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
        let now = self.clock.now();
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
            let methods = super::enrolled_factors::methods_of(txn, &user.id)?
                .into_iter()
                .map(super::enrolled_factors::FactorMethod::as_str)
                .collect();
            profile.orgs = Some(orgs);
            profile.mfa_methods = Some(methods);
            Ok(profile)
        })
    }

    /// `POST /api/account/password`: checks the current password (a step-up
    /// check, limited like logins), the org's policy and history, then
    /// revokes every other session and, unless `keep_pats`, the user's
    /// personal access tokens: a password is usually changed because it may
    /// be known, and whoever knew it could have minted tokens.
    pub async fn change_password(
        &self,
        user_id: UserId,
        keep_session: Option<crate::domain::SessionId>,
        change: PasswordChange,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let PasswordChange {
            current,
            new,
            keep_pats,
        } = change;
        self.prove(
            user_id,
            super::step_up::Proof::Password(current),
            "current_password",
            context,
        )
        .await?;
        let (user, org) = self
            .store_read(move |txn| {
                let user = txn.user(&user_id)?.ok_or(ServiceError::InvalidToken)?;
                let org = home_org(txn, &user)?;
                Ok((user, org))
            })
            .await?;
        self.check_new_password(&org, &user, &new).await?;
        let history = org.password_policy.history_count;
        let new_hash = self.passwords.hash(new.into_inner()).await?;
        let now = self.clock.now();
        let origin = context.origin();
        let keep_history = history.max(1);
        self.store_write(move |txn| {
            let mut current = txn.user(&user_id)?.ok_or(ServiceError::InvalidToken)?;
            replace_password(&mut current, new_hash, keep_history, now);
            txn.put_user(&current)?;
            txn.audit(audit_for(
                AuditKind::PasswordChanged,
                now,
                &origin,
                &current,
                None,
            ))?;
            revoke_other_sessions(txn, user_id, keep_session, now, "password_changed", &origin)?;
            if !keep_pats {
                super::pats::revoke_pats_of_user(
                    txn,
                    &user_id,
                    None,
                    "password_changed",
                    now,
                    &origin,
                )?;
            }
            Ok(())
        })
        .await
    }
}

impl Services {
    /// A new password for `user`, against their org's policy and the
    /// `history_count` passwords they had last.
    pub(crate) async fn check_new_password(
        &self,
        org: &Org,
        user: &User,
        new: &Password,
    ) -> ServiceResult<()> {
        check_password(org, new, &user.email, user.name.as_deref())?;
        let history = org.password_policy.history_count;
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
        Ok(())
    }
}

/// The org whose password policy a user's password follows: their first.
pub(crate) fn home_org(txn: &impl Queries, user: &User) -> ServiceResult<Org> {
    let org = match user.memberships.first() {
        Some(membership) => txn.org(&membership.org_id)?,
        None => None,
    };
    org.ok_or(ServiceError::NotFound("org"))
}

/// Sets `new_hash` as the password, keeping the old one first in the
/// history (at most `keep_history` of them).
pub(crate) fn replace_password(
    user: &mut User,
    new_hash: String,
    keep_history: usize,
    now: UnixSeconds,
) {
    let old_hash = std::mem::replace(&mut user.password_hash, new_hash);
    user.password_history.insert(0, old_hash);
    user.password_history.truncate(keep_history);
    user.password_changed_at = Some(now);
}

pub(crate) fn revoke_other_sessions(
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
