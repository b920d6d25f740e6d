//! Password login: rate limits, progressive delay, lockout, and the one
//! uniform failure. Unknown email, wrong password, locked, pending and
//! disabled accounts all do the same work — a store read, one argon2id
//! verification (against a dummy hash when there is no user), one audit
//! write — and all answer [`ServiceError::InvalidCredentials`].

use super::tokens::{store_refresh_token, TokenGrant, TokenSet};
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::{self, UnixSeconds};
use crate::crypto::passwords::Verification;
use crate::domain::user::UserStatus;
use crate::domain::{Email, Org, Password, Session, SessionId, User};
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
        }
    }
}

/// What a login leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// `/login`: access and refresh tokens.
    Refreshable,
    /// The control plane: an access token only.
    AccessOnly,
    /// The web UI: an HttpOnly cookie (`TokenSet::browser_cookie`).
    Browser,
}

/// What `/login` answers: tokens, or the MFA step for enrolled users.
pub enum LoginOutcome {
    Tokens(TokenSet),
    MfaRequired(super::mfa::MfaRequired),
}

/// A verified user and where they logged in, before tokens are issued.
pub struct Authenticated {
    pub user: User,
    pub org: Org,
    /// The stored hash uses older argon2 parameters.
    pub needs_rehash: bool,
}

impl Services {
    /// Checks credentials with every brute-force defence; on success the
    /// failure streak is cleared and an outdated hash is upgraded.
    pub async fn authenticate_password(
        &self,
        request: LoginRequest,
        context: &RequestContext,
    ) -> ServiceResult<Authenticated> {
        let now = clock::now();
        let email = Email::parse(&request.email).ok();
        // The account key exists whether or not the email does, so limits and
        // delays cannot tell the two apart.
        let org_key = request.org.clone().unwrap_or_default().to_ascii_lowercase();
        let account_key = format!(
            "{org_key}/{}",
            email.as_ref().map_or_else(
                || request.email.trim().to_lowercase(),
                |e| e.as_str().to_owned()
            )
        );
        let ip = context.ip.to_string();
        if let Err(throttled) = self.limiter.check(&ip, &account_key, now) {
            return Err(ServiceError::RateLimited {
                retry_after_seconds: throttled.retry_after_seconds,
            });
        }
        let delay = self.limiter.delay_for(&account_key, now);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }

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

        let verification = self
            .passwords
            .verify(
                request.password.into_inner(),
                user.as_ref().map(|u| u.password_hash.clone()),
            )
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
            (_, Some(user), _) if user.is_locked(now) => Some(FailureReason::Locked),
            (_, Some(_), Verification::Mismatch) => Some(FailureReason::BadPassword),
            (_, Some(_), Verification::Match { .. }) => None,
        };
        let (Some(org), Some(user)) = (org, user) else {
            let reason = failure.unwrap_or(FailureReason::UnknownEmail);
            self.record_login_failure(None, None, reason, &ip, &account_key, now, context)
                .await?;
            return Err(ServiceError::InvalidCredentials);
        };
        if let Some(reason) = failure {
            self.record_login_failure(
                Some(&org),
                Some(user),
                reason,
                &ip,
                &account_key,
                now,
                context,
            )
            .await?;
            return Err(ServiceError::InvalidCredentials);
        }
        self.limiter.record_success(&account_key);
        Ok(Authenticated {
            user: self.clear_failures(user).await?,
            org,
            needs_rehash: matches!(verification, Verification::Match { needs_rehash: true }),
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_login_failure(
        &self,
        org: Option<&Org>,
        user: Option<User>,
        reason: FailureReason,
        ip: &str,
        account_key: &str,
        now: UnixSeconds,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        self.limiter.record_failure(ip, account_key, now);
        let origin = context.origin();
        let org_id = org.map(|o| o.id.clone());
        let threshold = self.config.limits.lockout_threshold;
        let lockout = self.config.limits.lockout_duration.as_secs() as i64;
        self.store_write(move |txn| {
            let mut record =
                AuditRecord::new(AuditKind::UserLoginFailed, now, &origin).reason(reason.code());
            if let Some(org_id) = &org_id {
                record = record.org(org_id);
            }
            let Some(user) = user else {
                return Ok(txn.audit(record)?);
            };
            txn.audit(record.user(user.id))?;
            // Re-read inside the transaction so concurrent failures all count.
            let Some(mut current) = txn.user(&user.id)? else {
                return Ok(());
            };
            if reason == FailureReason::BadPassword {
                current.failed_logins = current.failed_logins.saturating_add(1);
                if current.failed_logins >= threshold && !current.is_locked(now) {
                    current.locked_until = Some(now + lockout);
                    let mut locked = AuditRecord::new(AuditKind::UserLocked, now, &origin)
                        .user(current.id)
                        .reason("too_many_failures");
                    if let Some(org_id) = &org_id {
                        locked = locked.org(org_id);
                    }
                    txn.audit(locked)?;
                }
                txn.put_user(&current)?;
            }
            Ok(())
        })
        .await
    }

    /// Resets the failure count after a good password.
    async fn clear_failures(&self, user: User) -> ServiceResult<User> {
        if user.failed_logins == 0 && user.locked_until.is_none() {
            return Ok(user);
        }
        let user_id = user.id;
        self.store_write(move |txn| {
            let mut current = txn
                .user(&user_id)?
                .ok_or(ServiceError::InvalidCredentials)?;
            current.failed_logins = 0;
            current.locked_until = None;
            txn.put_user(&current)?;
            Ok(current)
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

    /// Creates the session, its refresh family and first refresh token, and
    /// audits the login, in one transaction; then signs the access token.
    pub async fn start_session(
        &self,
        user: User,
        org: Org,
        mfa_verified: bool,
        mut grant: TokenGrant,
        kind: SessionKind,
        context: &RequestContext,
    ) -> ServiceResult<TokenSet> {
        let now = clock::now();
        grant.auth_time = now;
        let session_id = SessionId::random();
        let refreshable = kind == SessionKind::Refreshable;
        // `<session id>.<secret>`: the id finds the session, the secret proves it.
        let cookie_secret = (kind == SessionKind::Browser)
            .then(|| hex::encode(crate::crypto::random::bytes::<32>()));
        let session = Session {
            id: session_id,
            user_id: user.id,
            org_id: org.id.clone(),
            ip: context.ip.to_string(),
            user_agent: context.user_agent.chars().take(512).collect(),
            created_at: now,
            last_active: now,
            expires_at: now + self.config.sessions.ttl.as_secs() as i64,
            mfa_verified,
            revoked_at: None,
            enrollment_only: !user.mfa_enrolled
                && org.mfa_policy.requires_mfa_for(user.role_in(&org.id)),
            cookie_digest: cookie_secret
                .as_ref()
                .map(|secret| hex::encode(crate::crypto::sha256(secret.as_bytes()))),
        };
        let origin = context.origin();
        let max_sessions = org.max_sessions_per_user;
        let stored = session.clone();
        let refresh_ttl = self.config.tokens.refresh_ttl.as_secs();
        let stored_grant = grant.clone();
        let refresh_token = self
            .store_write(move |txn| {
                if let Some(max) = max_sessions {
                    // Over the limit, the oldest live sessions end first.
                    let mut live: Vec<Session> = txn
                        .sessions_of_user(&stored.user_id)?
                        .into_iter()
                        .filter(|s| s.is_live(now) && s.org_id == stored.org_id)
                        .collect();
                    while live.len() >= max.max(1) as usize {
                        let mut oldest = live.remove(0);
                        oldest.revoked_at = Some(now);
                        txn.put_session(&oldest)?;
                        txn.audit(
                            AuditRecord::new(AuditKind::SessionRevoked, now, &origin)
                                .user(oldest.user_id)
                                .org(&oldest.org_id)
                                .reason("max_sessions")
                                .details(serde_json::json!({"session_id": oldest.id})),
                        )?;
                    }
                }
                txn.put_session(&stored)?;
                let family_id = uuid::Uuid::new_v4().to_string();
                let refresh_token = if refreshable {
                    Some(store_refresh_token(txn, &stored, &family_id, &stored_grant, now, refresh_ttl)?)
                } else {
                    None
                };
                txn.audit(
                    AuditRecord::new(AuditKind::UserLogin, now, &origin)
                        .user(stored.user_id)
                        .org(&stored.org_id)
                        .details(serde_json::json!({"session_id": stored.id, "mfa_verified": stored.mfa_verified})),
                )?;
                Ok(refresh_token)
            })
            .await?;
        let mut tokens = self
            .issue_token_set(&user, &session, refresh_token, &grant, now)
            .await?;
        if org.mfa_policy == crate::domain::MfaPolicy::Encouraged && !user.mfa_enrolled {
            tokens.mfa_enrollment_encouraged = Some(true);
        }
        tokens.browser_cookie = cookie_secret.map(|secret| format!("{session_id}.{secret}"));
        Ok(tokens)
    }
}
