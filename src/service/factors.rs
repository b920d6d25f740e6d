//! A signed-in user changing their own second factors: turning MFA off,
//! renewing recovery codes, adding a security key or a passkey once they
//! have a factor, and removing one. Each change needs a fresh proof
//! (`step_up`), so a stolen session alone cannot weaken or take over the
//! account's factors. (Adding the first factor needs only the session, as
//! enrolling TOTP does.) An account without a password keeps a passkey or
//! a linked identity: nothing here removes the last way it signs in.

use super::enrolled_factors::{
    keep_a_way_to_sign_in, refresh_mfa_enrolled, remove_every_factor, Removing,
};
use super::step_up::Proof;
use super::totp::{digest, new_recovery_codes};
use super::webauthn::RegistrationOptions;
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::domain::UserId;
use crate::store::{Queries, WebauthnKind};

impl Services {
    /// Removes every factor (TOTP, recovery codes, keys).
    pub async fn disable_mfa(
        &self,
        user_id: UserId,
        proof: Proof,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        self.prove(user_id, proof, "password", context).await?;
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let mut user = txn.user(&user_id)?.ok_or(ServiceError::InvalidToken)?;
            keep_a_way_to_sign_in(txn, &user, Removing::EveryFactor)?;
            remove_every_factor(txn, &user_id)?;
            user.mfa_enrolled = false;
            txn.put_user(&user)?;
            txn.audit(
                AuditRecord::new(AuditKind::MfaDisabled, now, &origin)
                    .user(user_id)
                    .org_if_any(user.memberships.first().map(|m| &m.org_id)),
            )?;
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
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let enrolled = txn.user(&user_id)?.is_some_and(|u| u.mfa_enrolled);
            if !enrolled {
                return Err(ServiceError::Conflict("MFA is not enabled".into()));
            }
            let mut factors = txn.mfa_factors(&user_id)?.unwrap_or_default();
            factors.recovery_code_hashes = hashes;
            txn.put_mfa_factors(&user_id, &factors)?;
            txn.audit(
                AuditRecord::new(AuditKind::MfaRecoveryCodesRegenerated, now, &origin)
                    .user(user_id),
            )?;
            Ok(())
        })
        .await?;
        Ok(codes)
    }

    /// Starts adding a security key or a passkey. A user who already has a
    /// second factor proves it is them first: a stolen session must not be
    /// able to add the thief's key.
    pub async fn add_security_key(
        &self,
        user_id: UserId,
        kind: WebauthnKind,
        proof: Option<Proof>,
        context: &RequestContext,
    ) -> ServiceResult<RegistrationOptions> {
        let enrolled = self
            .store_lookup(|txn| Ok(txn.user(&user_id)?))?
            .ok_or(ServiceError::InvalidToken)?
            .mfa_enrolled;
        if enrolled {
            let proof = proof.ok_or_else(|| {
                ServiceError::field(
                    "password",
                    "adding a key to an account with two-step verification needs the password or a current code",
                )
            })?;
            self.prove(user_id, proof, "password", context).await?;
        }
        self.begin_webauthn_registration(user_id, kind).await
    }

    /// Removes a key after a fresh proof, as disabling MFA does; removing
    /// the last second factor is disabling MFA, and is audited as such.
    pub async fn remove_security_key(
        &self,
        user_id: UserId,
        id: String,
        proof: Proof,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let known = self
            .store_lookup(|txn| Ok(txn.webauthn_credential(&user_id, &id)?))?
            .is_some();
        if !known {
            return Err(ServiceError::NotFound("security key"));
        }
        self.prove(user_id, proof, "password", context).await?;
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let user = txn.user(&user_id)?.ok_or(ServiceError::InvalidToken)?;
            keep_a_way_to_sign_in(txn, &user, Removing::Credential(&id))?;
            let was_enrolled = user.mfa_enrolled;
            if !txn.delete_webauthn_credential(&user_id, &id)? {
                return Err(ServiceError::NotFound("security key"));
            }
            let still_enrolled = refresh_mfa_enrolled(txn, &user_id)?;
            txn.audit(
                AuditRecord::new(AuditKind::WebauthnRemoved, now, &origin)
                    .user(user_id)
                    .details(serde_json::json!({"credential_id": id})),
            )?;
            if was_enrolled && !still_enrolled {
                txn.audit(
                    AuditRecord::new(AuditKind::MfaDisabled, now, &origin)
                        .user(user_id)
                        .reason("last_security_key_removed"),
                )?;
            }
            Ok(())
        })
        .await
    }
}
