//! Step-up checks: a signed-in user proves again that it is them — with
//! the password, a current code or one of their passkeys (the only proof
//! an account without a password has) — before changing their credentials
//! (password, second factors, recovery codes). Guesses here are limited
//! and counted like logins, so a stolen session is no oracle.

use super::limiter::{AccountKey, AddressKey};
use super::lockout::{self, CredentialKind, LockoutPolicy};
use super::totp::{check_typed_code, CodeCheck, TypedCode};
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::crypto::passwords::Verification;
use crate::domain::{Password, UserId};
use crate::store::Queries;
use webauthn_rs::prelude::PublicKeyCredential;

/// What proves it is the user: a current code, the password, or a passkey
/// assertion answering `/webauthn/login/options`.
pub enum Proof {
    Code(String),
    Password(Password),
    Passkey {
        ceremony_id: String,
        assertion: Box<PublicKeyCredential>,
    },
}

impl Services {
    /// Checks a fresh proof (a current code or the password) before a
    /// change to the account's credentials. Guesses here are limited and
    /// counted like logins — per account and address, towards the same lock
    /// — so a stolen session is no oracle for the code or the password.
    /// `password_field` names the field a wrong password is reported on.
    pub(crate) async fn prove(
        &self,
        user_id: UserId,
        proof: Proof,
        password_field: &'static str,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let now = self.clock.now();
        let proof = match proof {
            Proof::Passkey {
                ceremony_id,
                assertion,
            } => {
                return self
                    .prove_with_passkey(user_id, &ceremony_id, *assertion, context)
                    .await
            }
            typed => typed,
        };
        let (kind, account) = match &proof {
            Proof::Password(_) => (CredentialKind::Password, AccountKey::user(&user_id)),
            Proof::Code(_) | Proof::Passkey { .. } => (
                CredentialKind::SecondFactor,
                AccountKey::second_factor(&user_id),
            ),
        };
        let address = AddressKey::of(context.ip);
        self.limiter
            .check(address, account, now)
            .map_err(|throttled| ServiceError::RateLimited {
                retry_after_seconds: throttled.retry_after_seconds,
            })?;
        let user = self
            .store_lookup(|txn| Ok(txn.user(&user_id)?))?
            .ok_or(ServiceError::InvalidToken)?;
        if let Some(retry_after_seconds) = lockout::seconds_locked(&user, now) {
            return Err(ServiceError::RateLimited {
                retry_after_seconds,
            });
        }
        let key = self.mfa_key.clone();
        let accepted = match proof {
            Proof::Password(password) => matches!(
                self.passwords
                    .verify(password.into_inner(), user.password_phc())
                    .await?,
                Verification::Match { .. }
            ),
            Proof::Passkey { .. } => false,
            Proof::Code(code) => {
                self.store_write(move |txn| {
                    let Some(mut factors) = txn.mfa_factors(&user_id)? else {
                        return Ok(false);
                    };
                    let check = check_typed_code(
                        &key,
                        &user_id,
                        &mut factors,
                        &TypedCode::Totp(code),
                        now,
                    )?;
                    let accepted = check == CodeCheck::Accepted;
                    if accepted {
                        txn.put_mfa_factors(&user_id, &factors)?;
                    }
                    Ok(accepted)
                })
                .await?
            }
        };
        let origin = context.origin();
        let policy = LockoutPolicy::of(&self.config().limits);
        if accepted {
            self.limiter.record_success(account);
            let needs_clearing = match kind {
                CredentialKind::Password => user.failed_logins > 0,
                CredentialKind::SecondFactor => user.failed_second_factors > 0,
            };
            if needs_clearing {
                self.store_write(move |txn| {
                    lockout::record_success(txn, &user_id, kind, now)?;
                    Ok(())
                })
                .await?;
            }
            return Ok(());
        }
        self.limiter.record_failure(address, account, now);
        self.store_write(move |txn| {
            txn.audit(
                AuditRecord::new(AuditKind::StepUpFailed, now, &origin)
                    .user(user_id)
                    .details(serde_json::json!({"method": match kind {
                        CredentialKind::Password => "password",
                        CredentialKind::SecondFactor => "totp",
                    }})),
            )?;
            lockout::record_failure(txn, &user_id, kind, policy, now, &origin, None)
        })
        .await?;
        Err(match kind {
            CredentialKind::Password => ServiceError::field(password_field, "is not correct"),
            CredentialKind::SecondFactor => ServiceError::field("code", "is not the current code"),
        })
    }

    /// A passkey of this user, verified like a sign-in. A passkey cannot
    /// be guessed, so a failure counts against the address only.
    async fn prove_with_passkey(
        &self,
        user_id: UserId,
        ceremony_id: &str,
        assertion: PublicKeyCredential,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let now = self.clock.now();
        let address = AddressKey::of(context.ip);
        self.limiter.check_address(address, now)?;
        let verified = self.take_and_verify_passkey(ceremony_id, assertion).await?;
        if verified.as_ref().is_ok_and(|owner| *owner == user_id) {
            return Ok(());
        }
        self.limiter.record_address_failure(address, now);
        let origin = context.origin();
        self.store_write(move |txn| {
            Ok(txn.audit(
                AuditRecord::new(AuditKind::StepUpFailed, now, &origin)
                    .user(user_id)
                    .details(serde_json::json!({"method": "passkey"})),
            )?)
        })
        .await?;
        Err(ServiceError::field(
            "passkey",
            "did not verify as one of yours",
        ))
    }
}
