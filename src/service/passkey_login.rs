//! Passwordless sign-in with a passkey: a discoverable WebAuthn credential
//! with user verification, which names its user itself (the assertion is
//! checked in `passkey_assertions`). A verified assertion is two factors in
//! one (something held, unlocked by something known or something one is):
//! the session is `mfa_verified` with `amr` `["hwk","user","mfa"]`, and no
//! second step follows.
//!
//! Failures are uniform (`invalid_credentials`) and audited. A passkey
//! cannot be guessed, so failures count against the address only and never
//! lock the account; for the same reason a brute-force lock (which anyone
//! can set off with wrong passwords) does not stop a passkey, while the
//! operator's lock, a disabled or pending account and a suspended
//! membership do.

use webauthn_rs::prelude::PublicKeyCredential;

use super::limiter::AddressKey;
use super::sessions::SessionKind;
use super::tokens::{TokenGrant, TokenSet};
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::domain::user::UserStatus;
use crate::domain::{Org, User};
use crate::metrics::METRICS;
use crate::store::Queries;

/// The `amr` of a passkey sign-in (RFC 8176): a hardware-bound key, user
/// verification, hence multiple factors.
pub const PASSKEY_AMR: [&str; 3] = ["hwk", "user", "mfa"];

/// `POST /webauthn/login`.
pub struct PasskeySignIn {
    pub ceremony_id: String,
    pub assertion: PublicKeyCredential,
    /// The org to sign in to; by default the default org if the user is a
    /// member there, else their first active membership.
    pub org: Option<String>,
    pub grant: TokenGrant,
}

/// Why a passkey that verified may not sign in, for the audit record only
/// (the assertion's own failures are `PasskeyRejection`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureReason {
    PendingApproval,
    Disabled,
    LockedByOperator,
    NotAMember,
}

impl FailureReason {
    fn code(self) -> &'static str {
        match self {
            FailureReason::PendingApproval => "pending_approval",
            FailureReason::Disabled => "disabled",
            FailureReason::LockedByOperator => "locked",
            FailureReason::NotAMember => "not_a_member",
        }
    }
}

/// Whether `user` may sign in to an org, and which: the one asked for, or
/// by default the default org if they belong to it, else their first.
fn sign_in_org(
    txn: &impl Queries,
    user: &User,
    reference: Option<&str>,
) -> ServiceResult<Result<Org, FailureReason>> {
    match user.status {
        UserStatus::PendingApproval => return Ok(Err(FailureReason::PendingApproval)),
        UserStatus::Disabled => return Ok(Err(FailureReason::Disabled)),
        UserStatus::Active => {}
    }
    if !user.may_use_tokens() {
        return Ok(Err(FailureReason::LockedByOperator));
    }
    let asked = super::orgs::resolve(txn, reference)?;
    let org = match (asked, reference.is_some()) {
        (Some(org), _) if user.active_role_in(&org.id).is_some() => Some(org),
        (_, true) => None,
        (_, false) => match user.memberships.iter().find(|m| !m.suspended) {
            Some(membership) => txn.org(&membership.org_id)?,
            None => None,
        },
    };
    Ok(org.ok_or(FailureReason::NotAMember))
}

impl Services {
    /// `POST /webauthn/login`: a verified passkey starts an `mfa_verified`
    /// session with the token set of `/login` (or the UI's cookie).
    pub async fn passkey_sign_in(
        &self,
        request: PasskeySignIn,
        kind: SessionKind,
        context: &RequestContext,
    ) -> ServiceResult<TokenSet> {
        self.check_token_grant(&request.grant)?;
        let now = self.clock.now();
        let address = AddressKey::of(context.ip);
        self.limiter.check_address(address, now)?;
        let verified = self
            .take_and_verify_passkey(&request.ceremony_id, request.assertion)
            .await?;
        let org_reference = request.org;
        let outcome = match verified {
            Err((user_id, rejection)) => Err((user_id, rejection.code())),
            Ok(user_id) => {
                self.store_read(move |txn| {
                    let user = txn
                        .user(&user_id)?
                        .ok_or(ServiceError::InvalidCredentials)?;
                    Ok(match sign_in_org(txn, &user, org_reference.as_deref())? {
                        Ok(org) => Ok((user, org)),
                        Err(reason) => Err((Some(user_id), reason.code())),
                    })
                })
                .await?
            }
        };
        let (user, org) = match outcome {
            Ok(signed_in) => signed_in,
            Err((user_id, reason)) => {
                self.limiter.record_address_failure(address, now);
                METRICS.logins.inc("failure");
                METRICS.login_failures.inc(reason);
                let origin = context.origin();
                self.store_write(move |txn| {
                    let mut record = AuditRecord::new(AuditKind::UserLoginFailed, now, &origin)
                        .reason(reason)
                        .details(serde_json::json!({"method": "passkey"}));
                    if let Some(user_id) = user_id {
                        record = record.user(user_id);
                    }
                    Ok(txn.audit(record)?)
                })
                .await?;
                return Err(ServiceError::InvalidCredentials);
            }
        };
        METRICS.logins.inc("success");
        let grant = TokenGrant {
            amr: PASSKEY_AMR.iter().map(|m| (*m).to_owned()).collect(),
            ..request.grant
        };
        self.start_session(user, org, true, grant, kind, context)
            .await
    }
}
