//! Passwordless sign-in with a passkey: a discoverable WebAuthn credential
//! with user verification, which names its user itself (its user handle is
//! the user id the credential was registered with). The options are
//! anonymous, so their ceremony state waits in memory — bounded, five
//! minutes, taken out on the first answer — rather than costing a durable
//! write per unauthenticated request. A verified assertion is two factors
//! in one (something held, verified by something known or are): the
//! session is `mfa_verified` with `amr` `["hwk","user","mfa"]`.
//!
//! Failures are uniform (`invalid_credentials`) and audited. A passkey
//! cannot be guessed, so failures count against the address only and never
//! lock the account; for the same reason a brute-force lock (which anyone
//! can set off with wrong passwords) does not stop a passkey, while the
//! operator's lock, a disabled or pending account and a suspended
//! membership do.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use base64::Engine;
use serde::Serialize;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PublicKeyCredential, RequestChallengeResponse, Webauthn,
};

use super::limiter::AddressKey;
use super::sessions::SessionKind;
use super::tokens::{TokenGrant, TokenSet};
use super::webauthn::{credential_id_text, internal, CEREMONY_SECONDS};
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::UnixSeconds;
use crate::domain::user::UserStatus;
use crate::domain::{Org, User, UserId};
use crate::metrics::METRICS;
use crate::store::{Queries, WebauthnKind, WriteTxn};

/// Sign-ins waiting for their answer, at most: enough for a burst of real
/// people, and a bound on what anonymous requests can make us hold.
const MAX_PENDING: usize = 10_000;
/// Of those, from one address: a sign-in page open in a few tabs, not a
/// flood that would crowd everyone else out.
const MAX_PENDING_PER_ADDRESS: usize = 64;

/// The `amr` of a passkey sign-in (RFC 8176): a hardware-bound key, user
/// verification, hence multiple factors.
pub const PASSKEY_AMR: [&str; 3] = ["hwk", "user", "mfa"];

/// A sign-in between its options and its answer.
struct PendingSignIn {
    state: DiscoverableAuthentication,
    expires_at: UnixSeconds,
    address: IpAddr,
}

/// Discoverable sign-ins between their options and their answer, by
/// ceremony id.
#[derive(Default)]
pub struct PendingPasskeySignIns {
    by_ceremony: Mutex<HashMap<String, PendingSignIn>>,
}

impl PendingPasskeySignIns {
    fn insert(
        &self,
        id: String,
        state: DiscoverableAuthentication,
        address: IpAddr,
        now: UnixSeconds,
    ) -> ServiceResult<()> {
        let mut pending = self.lock();
        let full = |pending: &HashMap<String, PendingSignIn>| {
            pending.len() >= MAX_PENDING
                || pending.values().filter(|p| p.address == address).count()
                    >= MAX_PENDING_PER_ADDRESS
        };
        if full(&pending) {
            pending.retain(|_, p| p.expires_at > now);
        }
        if full(&pending) {
            crate::metrics::METRICS.rate_limited.inc("passkey_options");
            return Err(ServiceError::RateLimited {
                retry_after_seconds: 10,
            });
        }
        pending.insert(
            id,
            PendingSignIn {
                state,
                expires_at: now + CEREMONY_SECONDS,
                address,
            },
        );
        Ok(())
    }

    /// The state of a live ceremony, removed: an answer is taken once.
    fn take(&self, id: &str, now: UnixSeconds) -> Option<DiscoverableAuthentication> {
        self.lock()
            .remove(id)
            .filter(|pending| pending.expires_at > now)
            .map(|pending| pending.state)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingSignIn>> {
        match self.by_ceremony.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// `POST /webauthn/login/options`: what `navigator.credentials.get` needs,
/// and the handle to send back with its answer.
#[derive(Debug, Serialize)]
pub struct PasskeySignInOptions {
    pub ceremony_id: String,
    #[serde(flatten)]
    pub options: RequestChallengeResponse,
}

/// `POST /webauthn/login`.
pub struct PasskeySignIn {
    pub ceremony_id: String,
    pub assertion: PublicKeyCredential,
    /// The org to sign in to; by default the default org if the user is a
    /// member there, else their first active membership.
    pub org: Option<String>,
    pub grant: TokenGrant,
}

/// Why a passkey sign-in failed, for the audit record only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureReason {
    UnknownCeremony,
    UnknownCredential,
    BadAssertion,
    PendingApproval,
    Disabled,
    LockedByOperator,
    NotAMember,
}

impl FailureReason {
    fn code(self) -> &'static str {
        match self {
            FailureReason::UnknownCeremony => "unknown_ceremony",
            FailureReason::UnknownCredential => "unknown_credential",
            FailureReason::BadAssertion => "bad_assertion",
            FailureReason::PendingApproval => "pending_approval",
            FailureReason::Disabled => "disabled",
            FailureReason::LockedByOperator => "locked",
            FailureReason::NotAMember => "not_a_member",
        }
    }
}

/// Checks a discoverable assertion against the passkey its user handle and
/// credential id name, and records the use (counter, last use). The user
/// whose passkey it is, or why not.
pub(crate) fn verify_passkey(
    relying_party: &Webauthn,
    txn: &mut WriteTxn,
    state: DiscoverableAuthentication,
    assertion: &PublicKeyCredential,
    now: UnixSeconds,
) -> ServiceResult<Result<UserId, (Option<UserId>, &'static str)>> {
    let Ok((user_handle, credential_id)) =
        relying_party.identify_discoverable_authentication(assertion)
    else {
        return Ok(Err((None, FailureReason::UnknownCredential.code())));
    };
    let user_id = UserId(user_handle);
    let id = credential_id_text(credential_id);
    // Only passkeys sign in alone: a security key registered as a second
    // factor was never asked for user verification or residence.
    let Some(mut stored) = txn
        .webauthn_credential(&user_id, &id)?
        .filter(|c| c.kind == WebauthnKind::Passkey)
    else {
        return Ok(Err((None, FailureReason::UnknownCredential.code())));
    };
    let mut passkey: Passkey = serde_json::from_str(&stored.key).map_err(internal)?;
    let Ok(result) =
        relying_party.finish_discoverable_authentication_v2(assertion, state, &passkey)
    else {
        return Ok(Err((Some(user_id), FailureReason::BadAssertion.code())));
    };
    // The state asked for user verification and webauthn-rs enforces it;
    // checked again because this is what makes the sign-in multi-factor.
    if !result.user_verified() {
        return Ok(Err((Some(user_id), FailureReason::BadAssertion.code())));
    }
    passkey.update_credential(&result);
    stored.key = serde_json::to_string(&passkey).map_err(internal)?;
    stored.last_used_at = Some(now);
    txn.put_webauthn_credential(&stored)?;
    Ok(Ok(user_id))
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
    /// Options for a discoverable sign-in, its state kept in memory.
    pub async fn passkey_sign_in_options(
        &self,
        context: &RequestContext,
    ) -> ServiceResult<PasskeySignInOptions> {
        let relying_party = self.webauthn_relying_party()?;
        let (options, state) = relying_party
            .start_discoverable_authentication()
            .map_err(internal)?;
        let ceremony_id = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(crate::crypto::random::bytes::<24>());
        self.pending_passkey_sign_ins.insert(
            ceremony_id.clone(),
            state,
            context.ip,
            self.clock.now(),
        )?;
        Ok(PasskeySignInOptions {
            ceremony_id,
            options,
        })
    }

    /// Takes a sign-in ceremony out and verifies its answer; the user, or
    /// the reason and (when known) whose passkey it named.
    pub(crate) async fn take_and_verify_passkey(
        &self,
        ceremony_id: &str,
        assertion: PublicKeyCredential,
    ) -> ServiceResult<Result<UserId, (Option<UserId>, &'static str)>> {
        let relying_party = self.webauthn_relying_party()?;
        let now = self.clock.now();
        let Some(state) = self.pending_passkey_sign_ins.take(ceremony_id, now) else {
            return Ok(Err((None, FailureReason::UnknownCeremony.code())));
        };
        self.store_write(move |txn| verify_passkey(&relying_party, txn, state, &assertion, now))
            .await
    }

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
            Err(failure) => Err(failure),
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
