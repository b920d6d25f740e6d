//! Account recovery and verified emails (SPEC §3d): a forgotten password
//! (`POST /password/forgot`, then `POST /password/reset` with the mailed
//! link's token), the operator's recovery link for people without mail,
//! and email verification (a link mailed at sign-up and on request, which
//! its page confirms with `POST /email/verify`).
//!
//! A link carries one token, `<exp>.<nonce>.<sig>`: `sig` is the signed-link
//! HMAC (the approvals' machinery) over the endpoint, the purpose and
//! nonce, and `exp`, so a forged or expired token is refused before any
//! read; the store keeps only the token's SHA-256, which makes it good
//! once. A reset token also remembers a digest of the password hash it was
//! made under, so any password change ends every outstanding link.
//!
//! `forgot_password` answers the same whoever asks, with the same work on
//! the request path: one index read (a hit or a miss), the limiter's
//! counting, a signed token, a spawned task. The task waits a random pause,
//! then reads the account and, only for a known, verified, active one
//! within the limits, stores the token and mails the link: the cost of a
//! real reset never falls on the request that asked for it (measured in
//! `tests/api/recovery.rs`).

use std::time::Duration;

use serde::Serialize;

use super::accounts::audit_for;
use super::limiter::{AccountKey, AddressKey};
use super::mail::Mail;
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::AuditKind;
use crate::clock::{self, UnixSeconds};
use crate::config::Config;
use crate::domain::user::{UserStatus, LOCKED_BY_OPERATOR};
use crate::domain::{Email, Password, User, UserId};
use crate::store::{Queries, RecoveryPurpose, RecoveryToken};

/// The longest random pause before a reset link is stored and mailed.
const MAX_SEND_JITTER_MS: u64 = 250;

/// The endpoints a token is signed for.
const RESET_PATH: &str = "/password/reset";
const VERIFY_PATH: &str = "/email/verify";

/// The one answer of `POST /password/forgot`.
#[derive(Debug, Clone, Serialize)]
pub struct ForgotAnswer {
    pub status: &'static str,
    pub message: &'static str,
}

pub const FORGOT_ANSWER: ForgotAnswer = ForgotAnswer {
    status: "accepted",
    message: "If an account with this email exists and can receive mail, a link to reset its password is on its way.",
};

/// A link the operator hands over, shown once; as a QR code too, for a
/// phone held up to the operator's screen.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryLink {
    pub url: String,
    pub expires_at: String,
    pub qr_svg: String,
}

fn purpose_name(purpose: RecoveryPurpose) -> &'static str {
    match purpose {
        RecoveryPurpose::PasswordReset => "password_reset",
        RecoveryPurpose::EmailVerification => "email_verification",
    }
}

fn path_of(purpose: RecoveryPurpose) -> &'static str {
    match purpose {
        RecoveryPurpose::PasswordReset => RESET_PATH,
        RecoveryPurpose::EmailVerification => VERIFY_PATH,
    }
}

/// SHA-256 (hex) of a password hash: what a reset token is bound to.
fn password_digest(user: &User) -> String {
    hex::encode(crate::crypto::sha256(user.password_hash.as_bytes()))
}

fn token_digest(token: &str) -> String {
    hex::encode(crate::crypto::sha256(token.as_bytes()))
}

/// Whether a forgotten password may be reset by mail: the email was shown
/// to be theirs, the account is active, and the operator did not lock it
/// (a reset would not lift that lock; the operator decides).
fn may_reset_by_mail(user: &User) -> bool {
    user.email_verified
        && user.status == UserStatus::Active
        && user.locked_until != Some(LOCKED_BY_OPERATOR)
}

/// `<public_url>/<page>#token=<token>`. In the fragment, the token is never
/// sent to a server, so never in a proxy's log.
fn link_url(config: &Config, page: &str, token: &str) -> String {
    let base = config.server.public_url.trim_end_matches('/');
    format!("{base}/{page}#token={token}")
}

fn reset_mail(config: &Config, user: &User, token: &str) -> Mail {
    let public_url = &config.server.public_url;
    let minutes = config.recovery.reset_ttl.as_secs().div_ceil(60);
    Mail {
        to: user.email.as_str().to_owned(),
        subject: "Reset your password".to_owned(),
        body: format!(
            "Someone asked to reset the password of your account at {public_url}.\n\n\
             To choose a new password, open this link within {minutes} minutes:\n\n\
             {link}\n\n\
             The link works once. If you did not ask for this, ignore this mail: \
             your password stays as it is.\n",
            link = link_url(config, "reset-password", token),
        ),
        user_id: user.id,
        purpose: "password_reset",
    }
}

/// What the store keeps of a token for `user`: whom, what for, until when,
/// and what it is bound to (the password it may replace, the address it
/// proves).
fn token_record(
    user: &User,
    purpose: RecoveryPurpose,
    expires_at: UnixSeconds,
    issued_by: &str,
) -> RecoveryToken {
    RecoveryToken {
        user_id: user.id,
        purpose,
        expires_at,
        password_digest: password_digest(user),
        email: user.email.as_str().to_owned(),
        issued_by: issued_by.to_owned(),
    }
}

/// A new token and the digest it is stored under.
struct IssuedToken {
    token: String,
    digest: String,
    expires_at: UnixSeconds,
}

impl Services {
    fn issue_token(
        &self,
        purpose: RecoveryPurpose,
        now: UnixSeconds,
        ttl_seconds: u64,
    ) -> IssuedToken {
        let expires_at = now.saturating_add(i64::try_from(ttl_seconds).unwrap_or(i64::MAX));
        let nonce = crate::crypto::random::hex_token();
        let action = format!("{}:{nonce}", purpose_name(purpose));
        let sig = self
            .link_key
            .sign("POST", path_of(purpose), &action, expires_at);
        let token = format!("{expires_at}.{nonce}.{sig}");
        let digest = token_digest(&token);
        IssuedToken {
            token,
            digest,
            expires_at,
        }
    }

    /// The digest of `token` if its signature is this server's for
    /// `purpose` and it has not expired; no store read.
    fn check_token(&self, purpose: RecoveryPurpose, token: &str) -> ServiceResult<String> {
        let mut parts = token.trim().splitn(3, '.');
        let (Some(exp), Some(nonce), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ServiceError::InvalidLink);
        };
        let exp: UnixSeconds = exp.parse().map_err(|_| ServiceError::InvalidLink)?;
        let action = format!("{}:{nonce}", purpose_name(purpose));
        if !self.link_key.verify(
            "POST",
            path_of(purpose),
            &action,
            exp,
            sig,
            self.clock.now(),
        ) {
            return Err(ServiceError::InvalidLink);
        }
        Ok(token_digest(token.trim()))
    }

    /// Whether people can recover their own accounts by mail (`[smtp]`).
    pub fn self_service_recovery(&self) -> bool {
        self.mailer.is_enabled()
    }

    /// `POST /password/forgot`: the same answer, the same work, for every
    /// email; a reset link is mailed only to a known, verified, active
    /// account, within the limits, when mail is configured.
    pub async fn forgot_password(
        &self,
        email: Option<String>,
        org: Option<String>,
        context: &RequestContext,
    ) -> ServiceResult<ForgotAnswer> {
        let email = email
            .as_deref()
            .map(Email::parse)
            .ok_or_else(|| ServiceError::field("email", "is required"))?
            .map_err(|error| ServiceError::field("email", error.to_string()))?;
        let now = self.clock.now();
        // One index read, a hit or a miss; the account itself is read later,
        // off the request path.
        let user_id = self.store_lookup(|txn| {
            Ok(
                match super::orgs::resolve(txn, org.as_deref()).unwrap_or(None) {
                    Some(org) => txn.user_id_by_email(&org.id, &email)?,
                    None => None,
                },
            )
        })?;
        let admitted = self.limiter.admit_recovery(
            AddressKey::of(context.ip),
            AccountKey::unknown(None, email.as_str()),
            now,
        );
        let config = self.config();
        let issued = self.issue_token(
            RecoveryPurpose::PasswordReset,
            now,
            config.recovery.reset_ttl.as_secs(),
        );
        let job = user_id.filter(|_| admitted && self.mailer.is_enabled());
        let (store, mailer) = (self.store.clone(), self.mailer.clone());
        // Off the request path, for every request alike, and after a random
        // pause: the work of a real reset (reading the account, a write, a
        // mail) lands on some later request, never on the one that caused
        // it, so its cost cannot be timed against the email asked for.
        let pause = Duration::from_millis(
            u64::from(u16::from_le_bytes(crate::crypto::random::bytes::<2>())) % MAX_SEND_JITTER_MS,
        );
        tokio::spawn(async move {
            tokio::time::sleep(pause).await;
            let Some(user_id) = job else {
                return;
            };
            let IssuedToken {
                token,
                digest,
                expires_at,
            } = issued;
            let stored = tokio::task::spawn_blocking(move || {
                store.write(move |txn| {
                    let Some(user) = txn.user(&user_id)?.filter(may_reset_by_mail) else {
                        return Ok::<_, crate::store::StoreError>(None);
                    };
                    txn.put_recovery_token(
                        &digest,
                        &token_record(&user, RecoveryPurpose::PasswordReset, expires_at, "mail"),
                    )?;
                    Ok(Some(user))
                })
            })
            .await;
            match stored {
                Ok(Ok(Some(user))) => mailer.send(reset_mail(&config, &user, &token)),
                Ok(Ok(None)) => {}
                _ => tracing::warn!("could not store a password-reset token"),
            }
        });
        Ok(FORGOT_ANSWER)
    }

    fn verification_mail(&self, user: &User, token: &str) -> Mail {
        let public_url = self.config().server.public_url.clone();
        Mail {
            to: user.email.as_str().to_owned(),
            subject: "Confirm your email address".to_owned(),
            body: format!(
                "To confirm that this address belongs to your account at {public_url}, \
                 open this link:\n\n\
                 {link}\n\n\
                 If you did not create an account there, ignore this mail.\n",
                link = link_url(&self.config(), "verify-email", token),
            ),
            user_id: user.id,
            purpose: "email_verification",
        }
    }

    /// Mails `user` a link that verifies their email (at sign-up, and on
    /// request); nothing without `[smtp]`. Returns whether one was queued.
    pub(crate) async fn send_email_verification(&self, user: &User) -> ServiceResult<bool> {
        if !self.mailer.is_enabled() {
            return Ok(false);
        }
        let now = self.clock.now();
        let issued = self.issue_token(
            RecoveryPurpose::EmailVerification,
            now,
            self.config().recovery.verify_ttl.as_secs(),
        );
        let record = token_record(
            user,
            RecoveryPurpose::EmailVerification,
            issued.expires_at,
            "mail",
        );
        let digest = issued.digest.clone();
        self.store_write(move |txn| Ok(txn.put_recovery_token(&digest, &record)?))
            .await?;
        self.mailer
            .send(self.verification_mail(user, &issued.token));
        Ok(true)
    }

    /// `POST /api/account/email/verify-request`: another verification mail,
    /// within the recovery limits.
    pub async fn request_email_verification(
        &self,
        user_id: UserId,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let user =
            self.store_lookup(|txn| txn.user(&user_id)?.ok_or(ServiceError::InvalidToken))?;
        if user.email_verified {
            return Err(ServiceError::Conflict(
                "the email is already verified".into(),
            ));
        }
        if !self.mailer.is_enabled() {
            return Err(ServiceError::Conflict(
                "this server sends no mail; ask the operator to verify the email".into(),
            ));
        }
        let now = self.clock.now();
        if !self
            .limiter
            .admit_recovery(AddressKey::of(context.ip), AccountKey::user(&user_id), now)
        {
            return Err(ServiceError::RateLimited {
                retry_after_seconds: 3600,
            });
        }
        self.send_email_verification(&user).await?;
        Ok(())
    }

    /// `POST /email/verify {token}`: the link's page confirms; the email
    /// the link was sent to is now verified, if it is still the user's.
    pub async fn confirm_email(&self, token: &str, context: &RequestContext) -> ServiceResult<()> {
        let digest = self.check_token(RecoveryPurpose::EmailVerification, token)?;
        let (now, origin) = (self.clock.now(), context.origin());
        self.store_write(move |txn| {
            let record = txn
                .recovery_token(&digest)?
                .filter(|t| t.purpose == RecoveryPurpose::EmailVerification && t.expires_at > now)
                .ok_or(ServiceError::InvalidLink)?;
            txn.delete_recovery_token(&digest)?;
            let mut user = txn
                .user(&record.user_id)?
                .filter(|user| user.email.as_str() == record.email)
                .ok_or(ServiceError::InvalidLink)?;
            if !user.email_verified {
                user.email_verified = true;
                txn.put_user(&user)?;
                txn.audit(audit_for(
                    AuditKind::UserEmailVerified,
                    now,
                    &origin,
                    &user,
                    None,
                ))?;
            }
            Ok(())
        })
        .await
    }

    /// `POST /v1/users/{id}/recovery-link`: a reset link for a person who
    /// cannot receive mail, shown to the operator once.
    pub async fn operator_recovery_link(
        &self,
        user_id: UserId,
        context: &RequestContext,
    ) -> ServiceResult<RecoveryLink> {
        let now = self.clock.now();
        let issued = self.issue_token(
            RecoveryPurpose::PasswordReset,
            now,
            self.config().recovery.operator_link_ttl.as_secs(),
        );
        let origin = context.origin();
        let (digest, expires_at) = (issued.digest.clone(), issued.expires_at);
        self.store_write(move |txn| {
            let user = txn.user(&user_id)?.ok_or(ServiceError::NotFound("user"))?;
            if user.status != UserStatus::Active {
                // The link would be refused when used: say so now.
                return Err(ServiceError::Conflict(
                    "the account is disabled or awaiting approval; enable or approve it first"
                        .into(),
                ));
            }
            txn.put_recovery_token(
                &digest,
                &token_record(
                    &user,
                    RecoveryPurpose::PasswordReset,
                    expires_at,
                    "operator",
                ),
            )?;
            txn.audit(
                audit_for(AuditKind::RecoveryLinkCreated, now, &origin, &user, None)
                    .reason("operator")
                    .details(serde_json::json!({"expires_at": clock::rfc3339(expires_at)})),
            )?;
            Ok(())
        })
        .await?;
        let url = link_url(&self.config(), "reset-password", &issued.token);
        Ok(RecoveryLink {
            qr_svg: crate::crypto::totp::qr_svg(&url).map_err(ServiceError::internal)?,
            url,
            expires_at: clock::rfc3339(expires_at),
        })
    }

    /// The live reset token behind `digest` and its user, or `InvalidLink`.
    fn live_reset_token(
        txn: &impl Queries,
        digest: &str,
        now: UnixSeconds,
    ) -> ServiceResult<(RecoveryToken, User)> {
        let record = txn
            .recovery_token(digest)?
            .filter(|t| t.purpose == RecoveryPurpose::PasswordReset && t.expires_at > now)
            .ok_or(ServiceError::InvalidLink)?;
        let user = txn
            .user(&record.user_id)?
            .filter(|user| {
                user.status == UserStatus::Active && password_digest(user) == record.password_digest
            })
            .ok_or(ServiceError::InvalidLink)?;
        Ok((record, user))
    }

    /// `POST /password/reset {token, new_password}`: the org's password
    /// policy and history, then in one commit: the new password, the token
    /// spent, a brute-force lockout cleared, every session (and with it
    /// every refresh family) ended. Second factors stay.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: Password,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let digest = self.check_token(RecoveryPurpose::PasswordReset, token)?;
        let now = self.clock.now();
        let lookup = digest.clone();
        let (user, org) = self
            .store_read(move |txn| {
                let (_, user) = Self::live_reset_token(txn, &lookup, now)?;
                let org = super::accounts::home_org(txn, &user)?;
                Ok((user, org))
            })
            .await?;
        self.check_new_password(&org, &user, &new_password).await?;
        let keep_history = org.password_policy.history_count.max(1);
        let new_hash = self.passwords.hash(new_password.into_inner()).await?;
        let now = self.clock.now();
        let origin = context.origin();
        let user_id = self
            .store_write(move |txn| {
                // Again, inside the write: a second use, or a change since
                // the read, finds the token spent or the password moved on.
                let (record, mut user) = Self::live_reset_token(txn, &digest, now)?;
                txn.delete_recovery_token(&digest)?;
                super::accounts::replace_password(&mut user, new_hash, keep_history, now);
                if user.locked_until != Some(LOCKED_BY_OPERATOR) {
                    user.locked_until = None;
                }
                user.failed_logins = 0;
                user.failed_second_factors = 0;
                txn.put_user(&user)?;
                txn.audit(
                    audit_for(AuditKind::UserPasswordReset, now, &origin, &user, None)
                        .reason(&record.issued_by),
                )?;
                super::accounts::revoke_other_sessions(
                    txn,
                    user.id,
                    None,
                    now,
                    "password_reset",
                    &origin,
                )?;
                Ok(user.id)
            })
            .await?;
        self.limiter.record_success(AccountKey::user(&user_id));
        self.limiter
            .record_success(AccountKey::second_factor(&user_id));
        Ok(())
    }

    /// Removes recovery tokens that expired (housekeeping).
    pub async fn sweep_recovery_tokens(&self) -> ServiceResult<usize> {
        let now = self.clock.now();
        self.store_write(move |txn| Ok(txn.sweep_recovery_tokens(now)?))
            .await
    }
}
