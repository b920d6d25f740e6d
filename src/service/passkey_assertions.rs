//! Passkey assertions without an identity: the options of a discoverable
//! request (`/webauthn/login/options`), the ceremony state waiting for its
//! answer, and checking an answer against the passkey it names — its user
//! handle is the user id the passkey was registered with. The options are
//! anonymous, so their state waits in memory — bounded in all and per
//! address, five minutes, taken out on the first answer — rather than
//! costing a durable write per unauthenticated request. A sign-in
//! (`passkey_login`) and a step-up proof (`step_up`) both stand on this.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use base64::Engine;
use serde::Serialize;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PublicKeyCredential, RequestChallengeResponse, Webauthn,
};

use super::webauthn::{credential_id_text, internal, CEREMONY_SECONDS};
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::clock::UnixSeconds;
use crate::domain::UserId;
use crate::store::{Queries, WebauthnKind, WriteTxn};

/// Sign-ins waiting for their answer, at most: enough for a burst of real
/// people, and a bound on what anonymous requests can make us hold.
const MAX_PENDING: usize = 10_000;
/// Of those, from one address: a sign-in page open in a few tabs, not a
/// flood that would crowd everyone else out.
const MAX_PENDING_PER_ADDRESS: usize = 64;

/// A discoverable request between its options and its answer.
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

/// Why an assertion did not name a passkey that verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyRejection {
    UnknownCeremony,
    /// No passkey of that id for that user handle (never one, removed, or
    /// a security key, which never signs in alone).
    UnknownCredential,
    /// The passkey is known, the assertion did not verify (challenge,
    /// origin, signature, user verification, counter).
    BadAssertion,
}

impl PasskeyRejection {
    pub fn code(self) -> &'static str {
        match self {
            PasskeyRejection::UnknownCeremony => "unknown_ceremony",
            PasskeyRejection::UnknownCredential => "unknown_credential",
            PasskeyRejection::BadAssertion => "bad_assertion",
        }
    }
}

/// The user whose passkey answered, or why not (and whose it was, when the
/// passkey was known).
pub type PasskeyCheck = Result<UserId, (Option<UserId>, PasskeyRejection)>;

/// Checks a discoverable assertion against the passkey its user handle and
/// credential id name, and records the use (counter, last use). The user
/// whose passkey it is, or why not.
fn verify_passkey(
    relying_party: &Webauthn,
    txn: &mut WriteTxn,
    state: DiscoverableAuthentication,
    assertion: &PublicKeyCredential,
    now: UnixSeconds,
) -> ServiceResult<PasskeyCheck> {
    let Ok((user_handle, credential_id)) =
        relying_party.identify_discoverable_authentication(assertion)
    else {
        return Ok(Err((None, PasskeyRejection::UnknownCredential)));
    };
    let user_id = UserId(user_handle);
    let id = credential_id_text(credential_id);
    // Only passkeys sign in alone: a security key registered as a second
    // factor was never asked for user verification or residence.
    let Some(mut stored) = txn
        .webauthn_credential(&user_id, &id)?
        .filter(|c| c.kind == WebauthnKind::Passkey)
    else {
        return Ok(Err((None, PasskeyRejection::UnknownCredential)));
    };
    let mut passkey: Passkey = serde_json::from_str(&stored.key).map_err(internal)?;
    let Ok(result) =
        relying_party.finish_discoverable_authentication_v2(assertion, state, &passkey)
    else {
        return Ok(Err((Some(user_id), PasskeyRejection::BadAssertion)));
    };
    // The state asked for user verification and webauthn-rs enforces it;
    // checked again because this is what makes the sign-in multi-factor.
    if !result.user_verified() {
        return Ok(Err((Some(user_id), PasskeyRejection::BadAssertion)));
    }
    passkey.update_credential(&result);
    stored.key = serde_json::to_string(&passkey).map_err(internal)?;
    stored.last_used_at = Some(now);
    txn.put_webauthn_credential(&stored)?;
    Ok(Ok(user_id))
}

impl Services {
    /// `POST /webauthn/login/options`: options for a discoverable request,
    /// its state kept in memory.
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

    /// Takes a ceremony out (used once, whatever the outcome) and verifies
    /// its answer: the user whose passkey it is, or why not.
    pub(crate) async fn take_and_verify_passkey(
        &self,
        ceremony_id: &str,
        assertion: PublicKeyCredential,
    ) -> ServiceResult<PasskeyCheck> {
        let relying_party = self.webauthn_relying_party()?;
        let now = self.clock.now();
        let Some(state) = self.pending_passkey_sign_ins.take(ceremony_id, now) else {
            return Ok(Err((None, PasskeyRejection::UnknownCeremony)));
        };
        self.store_write(move |txn| verify_passkey(&relying_party, txn, state, &assertion, now))
            .await
    }
}
