//! TOTP and recovery codes: seeds sealed at rest under the server secret,
//! enrollment (nothing is active until a code confirms it), recovery codes
//! (shown once, stored as hashes), and the check of a typed code. A TOTP
//! code is accepted once: its time step must be later than the last
//! accepted one. Where a code is checked for a login or a step-up is the
//! business of `mfa_step` and `step_up`; this module only says whether it
//! is right.

use serde::Serialize;

use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::UnixSeconds;
use crate::crypto::sealed::SealingKey;
use crate::crypto::{self, totp};
use crate::domain::{SessionId, UserId};
use crate::store::{MfaFactors, Queries};

pub const RECOVERY_CODES: usize = 10;
const SEALING_PURPOSE: &str = "authd/mfa/totp-seed/v1";

/// What `/api/account/mfa/enroll` shows: the only time the seed leaves.
#[derive(Debug, Serialize)]
pub struct Enrollment {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

/// A code a person types in place of a second factor.
#[derive(Debug, Clone)]
pub enum TypedCode {
    /// The current code of their authenticator app.
    Totp(String),
    /// One of their recovery codes (spent when accepted).
    Recovery(String),
}

/// The verdict on a [`TypedCode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    Accepted,
    /// A recovery code was right and is spent now.
    RecoveryCodeSpent,
    Rejected,
}

pub fn sealing_key(server_secret: &[u8]) -> SealingKey {
    SealingKey::derive(server_secret, SEALING_PURPOSE)
}

pub(crate) fn digest(text: &str) -> String {
    hex::encode(crypto::sha256(text.as_bytes()))
}

/// Ten codes like `k3v7q-2mxhd`: 50 bits each, typed once, never stored.
pub(crate) fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let text = base32::encode(
                base32::Alphabet::Rfc4648Lower { padding: false },
                &crypto::random::bytes::<7>(),
            );
            format!("{}-{}", &text[..5], &text[5..10])
        })
        .collect()
}

fn normalise_recovery_code(code: &str) -> String {
    code.trim().to_ascii_lowercase()
}

fn open_seed(key: &SealingKey, sealed: &[u8], user: &UserId) -> ServiceResult<Vec<u8>> {
    key.open(sealed, user.to_string().as_bytes())
        .map_err(ServiceError::internal)
}

/// Checks `code` against `factors`, updating them (the last accepted step,
/// a spent recovery code); storing them and auditing is the caller's.
pub(crate) fn check_typed_code(
    key: &SealingKey,
    user: &UserId,
    factors: &mut MfaFactors,
    code: &TypedCode,
    now: UnixSeconds,
) -> ServiceResult<CodeCheck> {
    match code {
        TypedCode::Totp(code) => {
            let Some(sealed) = &factors.totp_sealed else {
                return Ok(CodeCheck::Rejected);
            };
            let seed = open_seed(key, sealed, user)?;
            match totp::matching_step(&seed, code, now).map_err(ServiceError::internal)? {
                Some(step) if step > factors.totp_last_step => {
                    factors.totp_last_step = step;
                    Ok(CodeCheck::Accepted)
                }
                _ => Ok(CodeCheck::Rejected),
            }
        }
        TypedCode::Recovery(code) => {
            let hash = digest(&normalise_recovery_code(code));
            let before = factors.recovery_code_hashes.len();
            factors.recovery_code_hashes.retain(|stored| {
                !bool::from(subtle::ConstantTimeEq::ct_eq(
                    stored.as_bytes(),
                    hash.as_bytes(),
                ))
            });
            if factors.recovery_code_hashes.len() < before {
                Ok(CodeCheck::RecoveryCodeSpent)
            } else {
                Ok(CodeCheck::Rejected)
            }
        }
    }
}

impl Services {
    /// Starts (or restarts) TOTP enrollment; nothing is active until verified.
    pub async fn enroll_totp(&self, user_id: UserId) -> ServiceResult<Enrollment> {
        let user = self
            .store_read(move |txn| Ok(txn.user(&user_id)?))
            .await?
            .ok_or(ServiceError::InvalidToken)?;
        if user.mfa_enrolled {
            return Err(ServiceError::Conflict(
                "TOTP is already enabled; disable it first".into(),
            ));
        }
        let seed = totp::new_secret();
        let sealed = self
            .mfa_key
            .seal(&seed, user_id.to_string().as_bytes())
            .map_err(ServiceError::internal)?;
        let otpauth_uri = totp::otpauth_uri(&seed, &self.config().mfa.issuer, user.email.as_str())
            .map_err(ServiceError::internal)?;
        let qr_svg = totp::qr_svg(&otpauth_uri).map_err(ServiceError::internal)?;
        self.store_write(move |txn| {
            let mut factors = txn.mfa_factors(&user_id)?.unwrap_or_default();
            factors.pending_totp_sealed = Some(sealed);
            txn.put_mfa_factors(&user_id, &factors)?;
            Ok(())
        })
        .await?;
        Ok(Enrollment {
            secret: totp::secret_base32(&seed),
            otpauth_uri,
            qr_svg,
        })
    }

    /// Confirms enrollment with a code; returns the recovery codes, once.
    /// The enrolling session (if any) now has its second factor.
    pub async fn verify_totp_enrollment(
        &self,
        user_id: UserId,
        session_id: Option<SessionId>,
        code: String,
        context: &RequestContext,
    ) -> ServiceResult<Vec<String>> {
        let now = self.clock.now();
        let origin = context.origin();
        let codes = new_recovery_codes();
        let hashes: Vec<String> = codes.iter().map(|c| digest(c)).collect();
        let pending = self
            .store_read(move |txn| {
                Ok(txn
                    .mfa_factors(&user_id)?
                    .and_then(|f| f.pending_totp_sealed))
            })
            .await?
            .ok_or_else(|| ServiceError::field("code", "start enrollment first"))?;
        let seed = open_seed(&self.mfa_key, &pending, &user_id)?;
        let step = totp::matching_step(&seed, &code, now)
            .map_err(ServiceError::internal)?
            .ok_or_else(|| ServiceError::field("code", "is not the current code"))?;
        self.store_write(move |txn| {
            let mut user = txn.user(&user_id)?.ok_or(ServiceError::InvalidToken)?;
            let mut factors = txn.mfa_factors(&user_id)?.unwrap_or_default();
            if factors.pending_totp_sealed.as_deref() != Some(pending.as_slice()) {
                return Err(ServiceError::Conflict(
                    "enrollment changed meanwhile; start again".into(),
                ));
            }
            factors.totp_sealed = factors.pending_totp_sealed.take();
            factors.totp_last_step = step;
            factors.recovery_code_hashes = hashes;
            factors.enrolled_at = Some(now);
            txn.put_mfa_factors(&user_id, &factors)?;
            user.mfa_enrolled = true;
            txn.put_user(&user)?;
            super::sessions::finish_enrollment(txn, session_id)?;
            txn.audit(
                AuditRecord::new(AuditKind::MfaEnrolled, now, &origin)
                    .user(user_id)
                    .org_if_any(user.memberships.first().map(|m| &m.org_id))
                    .details(serde_json::json!({"method": "totp"})),
            )?;
            Ok(())
        })
        .await?;
        Ok(codes)
    }
}
