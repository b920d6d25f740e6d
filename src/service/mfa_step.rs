//! The second step of a login for a user with MFA: the `mfa_token` (5
//! minutes, single use, bound to user and org, dead after 5 wrong answers),
//! the security-key assertion options it carries, the answer (a TOTP code,
//! a recovery code or an assertion), and the one-call code of the control-
//! plane login. Wrong answers count per account across mfa_tokens, towards
//! the same limit and lock as passwords. A right answer starts the session.

use serde::Serialize;
use webauthn_rs::prelude::RequestChallengeResponse;

use super::enrolled_factors::{methods_of, FactorMethod};
use super::limiter::{AccountKey, AddressKey};
use super::lockout::{self, CredentialKind, LockoutPolicy};
use super::sessions::SessionKind;
use super::tokens::{TokenGrant, TokenSet};
use super::totp::{check_typed_code, digest, CodeCheck, TypedCode};
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::crypto;
use crate::domain::{Org, User};
use crate::store::{MfaChallenge, Queries};

pub const MAX_CHALLENGE_FAILURES: u32 = 5;

/// `/login`'s 202 for an enrolled user.
#[derive(Debug, Serialize)]
pub struct MfaRequired {
    pub mfa_required: bool,
    pub mfa_token: String,
    pub methods: Vec<&'static str>,
}

/// The second factor presented at `/mfa/challenge`.
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
            SecondFactor::Code(_) => FactorMethod::Totp.as_str(),
            SecondFactor::RecoveryCode(_) => FactorMethod::RecoveryCode.as_str(),
            SecondFactor::Webauthn(_) => FactorMethod::Webauthn.as_str(),
        }
    }
}

/// The key of an `mfa_token`'s challenge record.
fn mfa_token_digest(mfa_token: &str) -> String {
    digest(mfa_token)
}

impl Services {
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
            expires_at: self.clock.now() + self.config().mfa.challenge_ttl.as_secs() as i64,
            failures: 0,
            scope: grant.scope,
            client_id: grant.client_id,
            nonce: grant.nonce,
            webauthn_state: None,
            method: grant.method,
        };
        let key = mfa_token_digest(&token);
        let webauthn_on = self.webauthn().is_some();
        let methods = self
            .store_write(move |txn| {
                let methods: Vec<&'static str> = methods_of(txn, &challenge.user_id)?
                    .into_iter()
                    .filter(|m| webauthn_on || *m != FactorMethod::Webauthn)
                    .map(FactorMethod::as_str)
                    .collect();
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

    /// `POST /mfa/webauthn/options`: assertion options for a live
    /// `mfa_token` whose user has keys; the state waits in the challenge.
    pub async fn webauthn_login_options(
        &self,
        mfa_token: &str,
    ) -> ServiceResult<RequestChallengeResponse> {
        let relying_party = self.webauthn_relying_party()?;
        let key = mfa_token_digest(mfa_token);
        let now = self.clock.now();
        self.store_write(move |txn| {
            let mut challenge = txn
                .mfa_challenge(&key)?
                .filter(|c| c.expires_at > now)
                .ok_or(ServiceError::InvalidMfaToken)?;
            let credentials = txn.webauthn_credentials(&challenge.user_id)?;
            let (options, state) =
                super::webauthn::assertion_options(&relying_party, &credentials)?.ok_or_else(
                    || ServiceError::Conflict("no security key is registered".into()),
                )?;
            challenge.webauthn_state = Some(state);
            txn.put_mfa_challenge(&key, &challenge)?;
            Ok(options)
        })
        .await
    }

    /// `POST /mfa/challenge`: the second factor for an `mfa_token`.
    pub async fn complete_mfa_challenge(
        &self,
        mfa_token: &str,
        factor: SecondFactor,
        kind: SessionKind,
        context: &RequestContext,
    ) -> ServiceResult<TokenSet> {
        let now = self.clock.now();
        let key = mfa_token_digest(mfa_token);
        let origin = context.origin();
        let sealing = self.mfa_key.clone();
        let relying_party = self.webauthn();
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
        let policy = LockoutPolicy::of(&self.config().limits);
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
                let check = match (&factor, &relying_party) {
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
                        if verified {
                            CodeCheck::Accepted
                        } else {
                            CodeCheck::Rejected
                        }
                    }
                    (SecondFactor::Webauthn(_), None) => CodeCheck::Rejected,
                    (SecondFactor::Code(code), _) => check_typed_code(
                        &sealing,
                        &user.id,
                        &mut factors,
                        &TypedCode::Totp(code.clone()),
                        now,
                    )?,
                    (SecondFactor::RecoveryCode(code), _) => check_typed_code(
                        &sealing,
                        &user.id,
                        &mut factors,
                        &TypedCode::Recovery(code.clone()),
                        now,
                    )?,
                };
                if check == CodeCheck::Rejected {
                    crate::metrics::METRICS
                        .login_failures
                        .inc("bad_second_factor");
                    challenge.failures += 1;
                    let method = factor.method();
                    txn.audit(
                        AuditRecord::new(AuditKind::MfaChallengeFailed, now, &origin)
                            .user(user.id)
                            .org(&org.id)
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
                if check == CodeCheck::RecoveryCodeSpent {
                    txn.audit(
                        AuditRecord::new(AuditKind::MfaRecoveryCodeUsed, now, &origin)
                            .user(user.id)
                            .org(&org.id)
                            .details(
                            serde_json::json!({"remaining": factors.recovery_code_hashes.len()}),
                        ),
                    )?;
                }
                let second = match &factor {
                    SecondFactor::Webauthn(_) => "hwk",
                    SecondFactor::Code(_) => "otp",
                    SecondFactor::RecoveryCode(_) => "kba",
                };
                let grant = TokenGrant {
                    scope: challenge.scope,
                    client_id: challenge.client_id,
                    nonce: challenge.nonce,
                    auth_time: now,
                    // A social sign-in's first factor happened at the provider.
                    amr: vec![
                        if challenge.method.is_some() {
                            "fed"
                        } else {
                            "pwd"
                        }
                        .into(),
                        second.into(),
                        "mfa".into(),
                    ],
                    method: challenge.method,
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
        let now = self.clock.now();
        let origin = context.origin();
        let (user_id, org_id) = (user.id, org.id.clone());
        let address = AddressKey::of(context.ip);
        let account = AccountKey::second_factor(&user_id);
        self.limiter
            .check(address, account, now)
            .map_err(|throttled| ServiceError::RateLimited {
                retry_after_seconds: throttled.retry_after_seconds,
            })?;
        let code = if otp.contains('-') {
            TypedCode::Recovery(otp.to_owned())
        } else {
            TypedCode::Totp(otp.to_owned())
        };
        let sealing = self.mfa_key.clone();
        let policy = LockoutPolicy::of(&self.config().limits);
        let accepted = self
            .store_write(move |txn| {
                let mut factors = txn.mfa_factors(&user_id)?.unwrap_or_default();
                let check = check_typed_code(&sealing, &user_id, &mut factors, &code, now)?;
                if check == CodeCheck::Rejected {
                    crate::metrics::METRICS
                        .login_failures
                        .inc("bad_second_factor");
                    txn.audit(
                        AuditRecord::new(AuditKind::MfaChallengeFailed, now, &origin)
                            .user(user_id)
                            .org(&org_id)
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
                if check == CodeCheck::RecoveryCodeSpent {
                    txn.audit(
                        AuditRecord::new(AuditKind::MfaRecoveryCodeUsed, now, &origin)
                            .user(user_id)
                            .org(&org_id),
                    )?;
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
