//! Password login: rate limits, progressive delay, lockout, and the one
//! uniform failure. Unknown email, wrong password, locked, pending and
//! disabled accounts all do the same work — a store read, one argon2id
//! verification (against a dummy hash when there is no user), one audit
//! write — and all answer [`ServiceError::InvalidCredentials`].

use super::limiter::{AccountKey, AddressKey};
use super::lockout::{self, CredentialKind, LockoutPolicy};
use super::sessions::SessionKind;
use super::tokens::{TokenGrant, TokenSet};
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::UnixSeconds;
use crate::crypto::passwords::Verification;
use crate::domain::user::UserStatus;
use crate::domain::{Email, Org, Password, User, UserId};
use crate::metrics::METRICS;
use crate::store::Queries;

pub struct LoginRequest {
    pub email: String,
    pub password: Password,
    pub org: Option<String>,
    /// `openid` (with `client_id`, `nonce`) asks for an ID token too.
    pub grant: TokenGrant,
}

/// Why a login failed, for the audit record only; the client never sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureReason {
    UnknownOrg,
    UnknownEmail,
    BadPassword,
    Locked,
    PendingApproval,
    Disabled,
    /// An org admin disabled the user in this org.
    SuspendedInOrg,
    /// The account signs in with passkeys only.
    NoPassword,
}

/// Where a failed attempt is counted.
#[derive(Debug, Clone, Copy)]
struct FailedAttempt {
    address: AddressKey,
    account: AccountKey,
    now: UnixSeconds,
}

impl FailureReason {
    fn code(self) -> &'static str {
        match self {
            FailureReason::UnknownOrg => "unknown_org",
            FailureReason::UnknownEmail => "unknown_email",
            FailureReason::BadPassword => "bad_password",
            FailureReason::Locked => "locked",
            FailureReason::PendingApproval => "pending_approval",
            FailureReason::Disabled => "disabled",
            FailureReason::SuspendedInOrg => "suspended_in_org",
            FailureReason::NoPassword => "no_password",
        }
    }
}

/// What `/login` answers: tokens, or the MFA step for enrolled users.
pub enum LoginOutcome {
    Tokens(TokenSet),
    MfaRequired(super::mfa_step::MfaRequired),
}

/// A verified user and where they logged in, before tokens are issued.
pub struct Authenticated {
    pub user: User,
    pub org: Org,
    /// The stored hash uses older argon2 parameters.
    pub needs_rehash: bool,
}

/// Longer input cannot name an account (an email is at most 254
/// characters, an org slug or id far less), so it is refused before it
/// reaches the limiter's keys or the store.
const MAX_EMAIL_INPUT: usize = 320;
const MAX_ORG_INPUT: usize = 100;

impl Services {
    /// Checks credentials with every brute-force defence; on success the
    /// password failure count is cleared and an outdated hash is upgraded.
    pub async fn authenticate_password(
        &self,
        request: LoginRequest,
        context: &RequestContext,
    ) -> ServiceResult<Authenticated> {
        let now = self.clock.now();
        let address = AddressKey::of(context.ip);
        let over_long = request.email.len() > MAX_EMAIL_INPUT
            || request
                .org
                .as_ref()
                .is_some_and(|o| o.len() > MAX_ORG_INPUT);
        if over_long {
            self.limiter
                .check_address(address, now)
                .map_err(ServiceError::from)?;
            self.limiter.record_address_failure(address, now);
            return Err(ServiceError::InvalidCredentials);
        }
        let email = Email::parse(&request.email).ok();
        let org_reference = request.org.clone();
        let lookup_email = email.clone();
        let (org, user) = self
            .store_read(move |txn| {
                let org = super::orgs::resolve(txn, org_reference.as_deref())?;
                let user = match (&org, &lookup_email) {
                    (Some(org), Some(email)) => txn.user_by_email(&org.id, email)?,
                    _ => None,
                };
                Ok((org, user))
            })
            .await?;
        // The account as resolved, so that `org` spelled as absent, a slug or
        // an id, or an email in other case, all count against one key.
        let account = match &user {
            Some(user) => AccountKey::user(&user.id),
            None => AccountKey::unknown(
                org.as_ref().map(|o| &o.id),
                email.as_ref().map_or(request.email.as_str(), Email::as_str),
            ),
        };
        self.limiter
            .check(address, account, now)
            .map_err(ServiceError::from)?;
        let delay = self.limiter.delay_for(account, now);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }

        // An account without a password (passkeys only) verifies against the
        // dummy hash like an unknown email: the same work, the same failure.
        let stored_hash = user.as_ref().and_then(User::password_phc);
        let verification = self
            .passwords
            .verify(request.password.into_inner(), stored_hash)
            .await?;

        let failure = match (&org, &user, &verification) {
            (None, _, _) => Some(FailureReason::UnknownOrg),
            (_, None, _) => Some(FailureReason::UnknownEmail),
            (_, Some(user), _) if user.status == UserStatus::PendingApproval => {
                Some(FailureReason::PendingApproval)
            }
            (_, Some(user), _) if user.status == UserStatus::Disabled => {
                Some(FailureReason::Disabled)
            }
            (Some(org), Some(user), _) if user.active_role_in(&org.id).is_none() => {
                Some(FailureReason::SuspendedInOrg)
            }
            (_, Some(user), _) if user.is_locked(now) => Some(FailureReason::Locked),
            (_, Some(user), _) if !user.has_password() => Some(FailureReason::NoPassword),
            (_, Some(_), Verification::Mismatch) => Some(FailureReason::BadPassword),
            (_, Some(_), Verification::Match { .. }) => None,
        };
        let attempt = FailedAttempt {
            address,
            account,
            now,
        };
        let (Some(org), Some(user)) = (org, user) else {
            let reason = failure.unwrap_or(FailureReason::UnknownEmail);
            self.record_login_failure(None, None, reason, attempt, context)
                .await?;
            return Err(ServiceError::InvalidCredentials);
        };
        if let Some(reason) = failure {
            self.record_login_failure(Some(&org), Some(user.id), reason, attempt, context)
                .await?;
            return Err(ServiceError::InvalidCredentials);
        }
        self.limiter.record_success(account);
        METRICS.logins.inc("success");
        // Most logins have nothing to clear and need no write.
        let user = if user.failed_logins == 0 && user.locked_until.is_none() {
            user
        } else {
            let user_id = user.id;
            self.store_write(move |txn| {
                lockout::record_success(txn, &user_id, CredentialKind::Password, now)?
                    .ok_or(ServiceError::InvalidCredentials)
            })
            .await?
        };
        Ok(Authenticated {
            user,
            org,
            needs_rehash: matches!(verification, Verification::Match { needs_rehash: true }),
        })
    }

    async fn record_login_failure(
        &self,
        org: Option<&Org>,
        user: Option<UserId>,
        reason: FailureReason,
        attempt: FailedAttempt,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let FailedAttempt {
            address,
            account,
            now,
        } = attempt;
        self.limiter.record_failure(address, account, now);
        METRICS.logins.inc("failure");
        METRICS.login_failures.inc(reason.code());
        let origin = context.origin();
        let org_id = org.map(|o| o.id.clone());
        let policy = LockoutPolicy::of(&self.config().limits);
        self.store_write(move |txn| {
            let mut record =
                AuditRecord::new(AuditKind::UserLoginFailed, now, &origin).reason(reason.code());
            if let Some(org_id) = &org_id {
                record = record.org(org_id);
            }
            let Some(user_id) = user else {
                return Ok(txn.audit(record)?);
            };
            txn.audit(record.user(user_id))?;
            if reason == FailureReason::BadPassword {
                lockout::record_failure(
                    txn,
                    &user_id,
                    CredentialKind::Password,
                    policy,
                    now,
                    &origin,
                    org_id.as_ref(),
                )?;
            }
            Ok(())
        })
        .await
    }

    /// The full `/login`: credentials, then a session and its token set.
    pub async fn login(
        &self,
        request: LoginRequest,
        kind: SessionKind,
        context: &RequestContext,
    ) -> ServiceResult<LoginOutcome> {
        self.check_token_grant(&request.grant)?;
        let password = request.password.clone();
        let grant = request.grant.clone();
        let authenticated = self.authenticate_password(request, context).await?;
        let user = if authenticated.needs_rehash {
            self.upgrade_hash(authenticated.user, password).await?
        } else {
            authenticated.user
        };
        if user.mfa_enrolled {
            let challenge = self
                .begin_mfa_challenge(&user, &authenticated.org, grant)
                .await?;
            return Ok(LoginOutcome::MfaRequired(challenge));
        }
        Ok(LoginOutcome::Tokens(
            self.start_session(user, authenticated.org, false, grant, kind, context)
                .await?,
        ))
    }

    /// `POST /api/v1/auth/login`: the same checks as `/login`, a session that
    /// cannot be refreshed, and only its access token back. MFA-enrolled users
    /// send `otp` (a current TOTP code or a recovery code); missing or wrong
    /// fails like any other failure.
    pub async fn control_plane_login(
        &self,
        request: LoginRequest,
        otp: Option<String>,
        context: &RequestContext,
    ) -> ServiceResult<(String, u64)> {
        let password = request.password.clone();
        let authenticated = self.authenticate_password(request, context).await?;
        if authenticated.user.mfa_enrolled {
            let code = otp
                .filter(|code| !code.trim().is_empty())
                .ok_or(ServiceError::InvalidCredentials)?;
            if !self
                .check_login_otp(&authenticated.user, &authenticated.org, &code, context)
                .await?
            {
                return Err(ServiceError::InvalidCredentials);
            }
        }
        let mfa_verified = authenticated.user.mfa_enrolled;
        let user = if authenticated.needs_rehash {
            self.upgrade_hash(authenticated.user, password).await?
        } else {
            authenticated.user
        };
        let tokens = self
            .start_session(
                user,
                authenticated.org,
                mfa_verified,
                TokenGrant::default(),
                SessionKind::AccessOnly,
                context,
            )
            .await?;
        Ok((tokens.access_token, tokens.expires_in))
    }

    /// Re-hashes with the current parameters after a good login.
    async fn upgrade_hash(&self, user: User, password: Password) -> ServiceResult<User> {
        let new_hash = self.passwords.hash(password.into_inner()).await?;
        let user_id = user.id;
        self.store_write(move |txn| {
            let mut current = txn
                .user(&user_id)?
                .ok_or(ServiceError::InvalidCredentials)?;
            current.password_hash = new_hash;
            txn.put_user(&current)?;
            Ok(current)
        })
        .await
    }
}
