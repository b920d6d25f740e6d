//! Second factors: TOTP enrollment (nothing is active until a code confirms
//! it), recovery codes (shown once, stored as hashes), the `mfa_token` step
//! of login (5 minutes, single use, bound to user and org, dead after 5 wrong
//! codes), and checking a code for the control-plane login. A TOTP code is
//! accepted once: its time step must be later than the last accepted one.

use serde::Serialize;

use super::limiter::{AccountKey, AddressKey};
use super::lockout::{self, CredentialKind, LockoutPolicy};
use super::login::SessionKind;
use super::tokens::{TokenGrant, TokenSet};
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::{self, UnixSeconds};
use crate::crypto::passwords::Verification;
use crate::crypto::sealed::SealingKey;
use crate::crypto::{self, totp};
use crate::domain::{Org, Password, User, UserId};
use crate::store::{MfaChallenge, MfaFactors, Queries};

pub const MAX_CHALLENGE_FAILURES: u32 = 5;
pub const RECOVERY_CODES: usize = 10;
const SEALING_PURPOSE: &str = "authd/mfa/totp-seed/v1";

/// What `/api/account/mfa/enroll` shows: the only time the seed leaves.
#[derive(Debug, Serialize)]
pub struct Enrollment {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

/// `/login`'s 202 for an enrolled user.
#[derive(Debug, Serialize)]
pub struct MfaRequired {
    pub mfa_required: bool,
    pub mfa_token: String,
    pub methods: Vec<&'static str>,
}

/// The second factor presented at `/mfa/challenge` or for disabling.
#[derive(Debug, Clone)]
pub enum SecondFactor {
    Code(String),
    RecoveryCode(String),
    /// A WebAuthn assertion, answering `/mfa/webauthn/options`.
    Webauthn(Box<webauthn_rs::prelude::PublicKeyCredential>),
}

impl SecondFactor {
    fn method(&self) -> &'static str {
        match self {
            SecondFactor::Code(_) => "totp",
            SecondFactor::RecoveryCode(_) => "recovery_code",
            SecondFactor::Webauthn(_) => "webauthn",
        }
    }
}

/// What proves it is the user when changing MFA: a current code or the password.
pub enum Proof {
    Code(String),
    Password(Password),
}

pub fn sealing_key(server_secret: &[u8]) -> SealingKey {
    SealingKey::derive(server_secret, SEALING_PURPOSE)
}

fn digest(text: &str) -> String {
    hex::encode(crypto::sha256(text.as_bytes()))
}

/// The key of an `mfa_token`'s challenge record.
pub(crate) fn mfa_token_digest(mfa_token: &str) -> String {
    digest(mfa_token)
}

/// Ten codes like `k3v7q-2mxhd`: 50 bits each, typed once, never stored.
fn new_recovery_codes() -> Vec<String> {
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

fn audit(
    kind: AuditKind,
    now: UnixSeconds,
    origin: &crate::audit::RequestOrigin,
    user: &UserId,
    org: Option<&crate::domain::OrgId>,
) -> AuditRecord {
    let record = AuditRecord::new(kind, now, origin).user(*user);
    match org {
        Some(org) => record.org(org),
        None => record,
    }
}

/// TOTP, recovery codes and security keys: all of a user's second factors.
pub(crate) fn remove_every_factor(
    txn: &mut crate::store::WriteTxn,
    user_id: &UserId,
) -> ServiceResult<()> {
    txn.delete_mfa_factors(user_id)?;
    for credential in txn.webauthn_credentials(user_id)? {
        txn.delete_webauthn_credential(user_id, &credential.id)?;
    }
    Ok(())
}

enum CodeCheck {
    Accepted,
    Rejected,
}

fn open_seed(key: &SealingKey, sealed: &[u8], user: &UserId) -> ServiceResult<Vec<u8>> {
    key.open(sealed, user.to_string().as_bytes())
        .map_err(|error| ServiceError::Internal(error.to_string()))
}

/// Checks `factor` against `factors` and updates them (last accepted step,
/// spent recovery code). Returns whether it was accepted and whether a
/// recovery code was spent; auditing is the caller's.
fn check_second_factor(
    key: &SealingKey,
    user: &UserId,
    factors: &mut MfaFactors,
    factor: &SecondFactor,
    now: UnixSeconds,
) -> ServiceResult<(CodeCheck, bool)> {
    match factor {
        SecondFactor::Code(code) => {
            let Some(sealed) = &factors.totp_sealed else {
                return Ok((CodeCheck::Rejected, false));
            };
            let seed = open_seed(key, sealed, user)?;
            match totp::matching_step(&seed, code, now)
                .map_err(|e| ServiceError::Internal(e.to_string()))?
            {
                Some(step) if step > factors.totp_last_step => {
                    factors.totp_last_step = step;
                    Ok((CodeCheck::Accepted, false))
                }
                _ => Ok((CodeCheck::Rejected, false)),
            }
        }
        // Checked by the caller against the challenge's WebAuthn state.
        SecondFactor::Webauthn(_) => Ok((CodeCheck::Rejected, false)),
        SecondFactor::RecoveryCode(code) => {
            let hash = digest(&normalise_recovery_code(code));
            let before = factors.recovery_code_hashes.len();
            factors.recovery_code_hashes.retain(|stored| {
                !bool::from(subtle::ConstantTimeEq::ct_eq(
                    stored.as_bytes(),
                    hash.as_bytes(),
                ))
            });
            if factors.recovery_code_hashes.len() < before {
                Ok((CodeCheck::Accepted, true))
            } else {
                Ok((CodeCheck::Rejected, false))
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
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let otpauth_uri = totp::otpauth_uri(&seed, &self.config.mfa.issuer, user.email.as_str())
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let qr_svg =
            totp::qr_svg(&otpauth_uri).map_err(|e| ServiceError::Internal(e.to_string()))?;
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
    /// The enrolling session (if any) leaves its enrollment-only state.
    pub async fn verify_totp_enrollment(
        &self,
        user_id: UserId,
        session_id: Option<crate::domain::SessionId>,
        code: String,
        context: &RequestContext,
    ) -> ServiceResult<Vec<String>> {
        let now = clock::now();
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
            .map_err(|e| ServiceError::Internal(e.to_string()))?
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
            if let Some(id) = session_id {
                if let Some(mut session) = txn.session(&id)? {
                    session.enrollment_only = false;
                    session.mfa_verified = true;
                    txn.put_session(&session)?;
                }
            }
            txn.audit(
                audit(
                    AuditKind::MfaEnrolled,
                    now,
                    &origin,
                    &user_id,
                    user.memberships.first().map(|m| &m.org_id),
                )
                .details(serde_json::json!({"method": "totp"})),
            )?;
            Ok(())
        })
        .await?;
        Ok(codes)
    }

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
        let now = clock::now();
        let (kind, account) = match &proof {
            Proof::Password(_) => (CredentialKind::Password, AccountKey::user(&user_id)),
            Proof::Code(_) => (
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
                    .verify(password.into_inner(), Some(user.password_hash))
                    .await?,
                Verification::Match { .. }
            ),
            Proof::Code(code) => {
                self.store_write(move |txn| {
                    let Some(mut factors) = txn.mfa_factors(&user_id)? else {
                        return Ok(false);
                    };
                    let (check, _) = check_second_factor(
                        &key,
                        &user_id,
                        &mut factors,
                        &SecondFactor::Code(code),
                        now,
                    )?;
                    let accepted = matches!(check, CodeCheck::Accepted);
                    if accepted {
                        txn.put_mfa_factors(&user_id, &factors)?;
                    }
                    Ok(accepted)
                })
                .await?
            }
        };
        let origin = context.origin();
        let policy = LockoutPolicy::of(&self.config.limits);
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
                audit(AuditKind::StepUpFailed, now, &origin, &user_id, None).details(
                    serde_json::json!({"method": match kind {
                        CredentialKind::Password => "password",
                        CredentialKind::SecondFactor => "totp",
                    }}),
                ),
            )?;
            lockout::record_failure(txn, &user_id, kind, policy, now, &origin, None)
        })
        .await?;
        Err(match kind {
            CredentialKind::Password => ServiceError::field(password_field, "is not correct"),
            CredentialKind::SecondFactor => ServiceError::field("code", "is not the current code"),
        })
    }

    pub async fn disable_mfa(
        &self,
        user_id: UserId,
        proof: Proof,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        self.prove(user_id, proof, "password", context).await?;
        let now = clock::now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let mut user = txn.user(&user_id)?.ok_or(ServiceError::InvalidToken)?;
            remove_every_factor(txn, &user_id)?;
            user.mfa_enrolled = false;
            txn.put_user(&user)?;
            txn.audit(audit(
                AuditKind::MfaDisabled,
                now,
                &origin,
                &user_id,
                user.memberships.first().map(|m| &m.org_id),
            ))?;
            Ok(())
        })
        .await
    }

    pub async fn regenerate_recovery_codes(
        &self,
        user_id: UserId,
        proof: Proof,
        context: &RequestContext,
    ) -> ServiceResult<Vec<String>> {
        self.prove(user_id, proof, "password", context).await?;
        let codes = new_recovery_codes();
        let hashes: Vec<String> = codes.iter().map(|c| digest(c)).collect();
        let now = clock::now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let enrolled = txn.user(&user_id)?.is_some_and(|u| u.mfa_enrolled);
            if !enrolled {
                return Err(ServiceError::Conflict("MFA is not enabled".into()));
            }
            let mut factors = txn.mfa_factors(&user_id)?.unwrap_or_default();
            factors.recovery_code_hashes = hashes;
            txn.put_mfa_factors(&user_id, &factors)?;
            txn.audit(audit(
                AuditKind::MfaRecoveryCodesRegenerated,
                now,
                &origin,
                &user_id,
                None,
            ))?;
            Ok(())
        })
        .await?;
        Ok(codes)
    }

    /// After a good password for an enrolled user: the `mfa_token` step.
    pub async fn begin_mfa_challenge(
        &self,
        user: &User,
        org: &Org,
        grant: TokenGrant,
    ) -> ServiceResult<MfaRequired> {
        let token = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            crypto::random::bytes::<32>(),
        );
        let challenge = MfaChallenge {
            user_id: user.id,
            org_id: org.id.clone(),
            expires_at: clock::now() + self.config.mfa.challenge_ttl.as_secs() as i64,
            failures: 0,
            scope: grant.scope,
            client_id: grant.client_id,
            nonce: grant.nonce,
            webauthn_state: None,
        };
        let key = digest(&token);
        let webauthn_on = self.webauthn.is_some();
        let methods = self
            .store_write(move |txn| {
                let factors = txn.mfa_factors(&challenge.user_id)?.unwrap_or_default();
                let has_keys = !txn.webauthn_credentials(&challenge.user_id)?.is_empty();
                let mut methods = Vec::new();
                if factors.totp_sealed.is_some() {
                    methods.push("totp");
                }
                if has_keys && webauthn_on {
                    methods.push("webauthn");
                }
                if !factors.recovery_code_hashes.is_empty() {
                    methods.push("recovery_code");
                }
                txn.put_mfa_challenge(&key, &challenge)?;
                Ok(methods)
            })
            .await?;
        Ok(MfaRequired {
            mfa_required: true,
            mfa_token: token,
            methods,
        })
    }

    /// `POST /mfa/challenge`: the second factor for an `mfa_token`.
    pub async fn complete_mfa_challenge(
        &self,
        mfa_token: &str,
        factor: SecondFactor,
        kind: SessionKind,
        context: &RequestContext,
    ) -> ServiceResult<TokenSet> {
        let now = clock::now();
        let key = digest(mfa_token);
        let origin = context.origin();
        let sealing = self.mfa_key.clone();
        let relying_party = self.webauthn.clone();
        // Wrong second factors count per account, across mfa_tokens: a new
        // password login brings a new token, not a fresh budget of guesses.
        let user_id = self
            .store_lookup(|txn| Ok(txn.mfa_challenge(&key)?.map(|c| c.user_id)))?
            .ok_or(ServiceError::InvalidMfaToken)?;
        let address = AddressKey::of(context.ip);
        let account = AccountKey::second_factor(&user_id);
        self.limiter
            .check(address, account, now)
            .map_err(|throttled| ServiceError::RateLimited {
                retry_after_seconds: throttled.retry_after_seconds,
            })?;
        let policy = LockoutPolicy::of(&self.config.limits);
        let outcome = self
            .store_write(move |txn| {
                let Some(mut challenge) = txn.mfa_challenge(&key)? else {
                    return Ok(Err(ServiceError::InvalidMfaToken));
                };
                if challenge.expires_at <= now {
                    txn.delete_mfa_challenge(&key)?;
                    return Ok(Err(ServiceError::InvalidMfaToken));
                }
                let user = txn.user(&challenge.user_id)?;
                let org = txn.org(&challenge.org_id)?;
                let (Some(user), Some(org)) = (user, org) else {
                    txn.delete_mfa_challenge(&key)?;
                    return Ok(Err(ServiceError::InvalidMfaToken));
                };
                // Locked meanwhile (by guesses here or at the password): the
                // token is spent, and the next login fails like any other.
                if user.is_locked(now) {
                    txn.delete_mfa_challenge(&key)?;
                    return Ok(Err(ServiceError::InvalidMfaToken));
                }
                let mut factors = txn.mfa_factors(&user.id)?.unwrap_or_default();
                let (check, used_recovery) = match (&factor, &relying_party) {
                    (SecondFactor::Webauthn(assertion), Some(relying_party)) => {
                        // The assertion state is good for one answer.
                        let state = challenge.webauthn_state.take();
                        let verified = super::webauthn::check_assertion(
                            relying_party,
                            txn,
                            &user.id,
                            state,
                            assertion,
                            now,
                        )?;
                        let check = if verified {
                            CodeCheck::Accepted
                        } else {
                            CodeCheck::Rejected
                        };
                        (check, false)
                    }
                    _ => check_second_factor(&sealing, &user.id, &mut factors, &factor, now)?,
                };
                if matches!(check, CodeCheck::Rejected) {
                    challenge.failures += 1;
                    let method = factor.method();
                    txn.audit(
                        audit(
                            AuditKind::MfaChallengeFailed,
                            now,
                            &origin,
                            &user.id,
                            Some(&org.id),
                        )
                        .details(
                            serde_json::json!({"method": method, "failures": challenge.failures}),
                        ),
                    )?;
                    if challenge.failures >= MAX_CHALLENGE_FAILURES {
                        txn.delete_mfa_challenge(&key)?;
                    } else {
                        txn.put_mfa_challenge(&key, &challenge)?;
                    }
                    lockout::record_failure(
                        txn,
                        &user.id,
                        CredentialKind::SecondFactor,
                        policy,
                        now,
                        &origin,
                        Some(&org.id),
                    )?;
                    return Ok(Err(ServiceError::InvalidMfaCode));
                }
                txn.delete_mfa_challenge(&key)?;
                txn.put_mfa_factors(&user.id, &factors)?;
                lockout::record_success(txn, &user.id, CredentialKind::SecondFactor, now)?;
                if used_recovery {
                    txn.audit(
                        audit(
                            AuditKind::MfaRecoveryCodeUsed,
                            now,
                            &origin,
                            &user.id,
                            Some(&org.id),
                        )
                        .details(
                            serde_json::json!({"remaining": factors.recovery_code_hashes.len()}),
                        ),
                    )?;
                }
                let grant = TokenGrant {
                    scope: challenge.scope,
                    client_id: challenge.client_id,
                    nonce: challenge.nonce,
                    auth_time: now,
                };
                Ok(Ok((user, org, grant)))
            })
            .await?;
        let (user, org, grant) = match outcome {
            Ok(accepted) => accepted,
            Err(ServiceError::InvalidMfaCode) => {
                self.limiter.record_failure(address, account, now);
                return Err(ServiceError::InvalidMfaCode);
            }
            Err(other) => return Err(other),
        };
        self.limiter.record_success(account);
        self.start_session(user, org, true, grant, kind, context)
            .await
    }

    /// For the control-plane login: a current TOTP code (or a recovery code)
    /// in one call. Failures are audited like challenge failures and count
    /// towards the same per-account limit and lock.
    pub async fn check_login_otp(
        &self,
        user: &User,
        org: &Org,
        otp: &str,
        context: &RequestContext,
    ) -> ServiceResult<bool> {
        let now = clock::now();
        let origin = context.origin();
        let (user_id, org_id) = (user.id, org.id.clone());
        let address = AddressKey::of(context.ip);
        let account = AccountKey::second_factor(&user_id);
        self.limiter
            .check(address, account, now)
            .map_err(|throttled| ServiceError::RateLimited {
                retry_after_seconds: throttled.retry_after_seconds,
            })?;
        let factor = if otp.contains('-') {
            SecondFactor::RecoveryCode(otp.to_owned())
        } else {
            SecondFactor::Code(otp.to_owned())
        };
        let sealing = self.mfa_key.clone();
        let policy = LockoutPolicy::of(&self.config.limits);
        let accepted = self
            .store_write(move |txn| {
                let mut factors = txn.mfa_factors(&user_id)?.unwrap_or_default();
                let (check, used_recovery) =
                    check_second_factor(&sealing, &user_id, &mut factors, &factor, now)?;
                if matches!(check, CodeCheck::Rejected) {
                    txn.audit(
                        audit(
                            AuditKind::MfaChallengeFailed,
                            now,
                            &origin,
                            &user_id,
                            Some(&org_id),
                        )
                        .details(serde_json::json!({"method": "otp"})),
                    )?;
                    lockout::record_failure(
                        txn,
                        &user_id,
                        CredentialKind::SecondFactor,
                        policy,
                        now,
                        &origin,
                        Some(&org_id),
                    )?;
                    return Ok(false);
                }
                txn.put_mfa_factors(&user_id, &factors)?;
                lockout::record_success(txn, &user_id, CredentialKind::SecondFactor, now)?;
                if used_recovery {
                    txn.audit(audit(
                        AuditKind::MfaRecoveryCodeUsed,
                        now,
                        &origin,
                        &user_id,
                        Some(&org_id),
                    ))?;
                }
                Ok(true)
            })
            .await?;
        if accepted {
            self.limiter.record_success(account);
        } else {
            self.limiter.record_failure(address, account, now);
        }
        Ok(accepted)
    }
}
