//! The lock that repeated wrong credentials put on an account, kept on the
//! user record: wrong passwords and wrong second factors are counted apart
//! (a right password must not buy fresh guesses at the code), either count
//! reaching `limits.lockout_threshold` locks the account for
//! `limits.lockout_duration`, and a lock that has run out takes its counts
//! with it. Password logins, the second-factor step and step-up checks all
//! count here, so each kind of guess is limited alike.
//!
//! The lock only stops credential checks. Refresh tokens and PATs the user
//! already holds keep working (see `User::may_use_tokens`): anyone can lock
//! an account by guessing, and must not break its owner's automation.

use super::ServiceResult;
use crate::audit::{AuditKind, AuditRecord, RequestOrigin};
use crate::clock::UnixSeconds;
use crate::config::LimitsConfig;
use crate::domain::{OrgId, User, UserId};
use crate::store::{Queries, WriteTxn};

/// Which count a credential check moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Password,
    /// A TOTP code, recovery code or security-key assertion.
    SecondFactor,
}

#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    pub threshold: u32,
    pub duration_seconds: i64,
}

impl LockoutPolicy {
    pub fn of(limits: &LimitsConfig) -> Self {
        Self {
            threshold: limits.lockout_threshold.max(1),
            duration_seconds: i64::try_from(limits.lockout_duration.as_secs()).unwrap_or(i64::MAX),
        }
    }
}

/// Counts a wrong credential in the caller's transaction (re-reading the
/// user there, so concurrent failures all count) and locks the account at
/// the threshold, auditing `user.locked`.
pub fn record_failure(
    txn: &mut WriteTxn,
    user_id: &UserId,
    kind: CredentialKind,
    policy: LockoutPolicy,
    now: UnixSeconds,
    origin: &RequestOrigin,
    org: Option<&OrgId>,
) -> ServiceResult<()> {
    let Some(mut user) = txn.user(user_id)? else {
        return Ok(());
    };
    user.forget_expired_lock(now);
    let count = match kind {
        CredentialKind::Password => &mut user.failed_logins,
        CredentialKind::SecondFactor => &mut user.failed_second_factors,
    };
    *count = count.saturating_add(1);
    if *count >= policy.threshold && !user.is_locked(now) {
        user.locked_until = Some(now.saturating_add(policy.duration_seconds));
        let reason = match kind {
            CredentialKind::Password => "too_many_failures",
            CredentialKind::SecondFactor => "too_many_second_factor_failures",
        };
        let mut locked = AuditRecord::new(AuditKind::UserLocked, now, origin)
            .user(user.id)
            .reason(reason);
        if let Some(org) = org {
            locked = locked.org(org);
        }
        txn.audit(locked)?;
    }
    txn.put_user(&user)?;
    Ok(())
}

/// Clears the count a right credential answers (and a lock that has run
/// out); returns the user as stored. Writes only when something changed.
pub fn record_success(
    txn: &mut WriteTxn,
    user_id: &UserId,
    kind: CredentialKind,
    now: UnixSeconds,
) -> ServiceResult<Option<User>> {
    let Some(mut user) = txn.user(user_id)? else {
        return Ok(None);
    };
    let before = (
        user.failed_logins,
        user.failed_second_factors,
        user.locked_until,
    );
    user.forget_expired_lock(now);
    match kind {
        CredentialKind::Password => user.failed_logins = 0,
        CredentialKind::SecondFactor => user.failed_second_factors = 0,
    }
    if before
        != (
            user.failed_logins,
            user.failed_second_factors,
            user.locked_until,
        )
    {
        txn.put_user(&user)?;
    }
    Ok(Some(user))
}

/// Seconds until a lock ends, for `Retry-After` where the caller already
/// knows who they are (step-up checks); `None` when not locked.
pub fn seconds_locked(user: &User, now: UnixSeconds) -> Option<u64> {
    user.locked_until
        .filter(|until| *until > now)
        .map(|until| u64::try_from(until - now).unwrap_or(u64::MAX).max(1))
}
