//! The device authorization grant (RFC 8628): a TV, a CLI or a script asks
//! for a code, its person approves it at `/device` while signed in, and
//! the device polls the token endpoint until it gets tokens, a refusal or
//! the code's end.

use serde::Serialize;

use super::client_tokens::{
    begin_app_session, may_use_client, requested_scopes, require_grant, session_origin, AppSignIn,
    ClientTokenSet,
};
use super::limiter::{AccountKey, AddressKey};
use super::tokens::{refresh_token_digest, SessionPrincipal};
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::UnixSeconds;
use crate::domain::{GrantType, OAuthClient, Session, User};
use crate::store::{DeviceAuthorization, DeviceStatus, Queries};

/// How long a device code and its user code are good for.
pub const DEVICE_CODE_TTL_SECONDS: i64 = 600;
/// The least time between two polls (RFC 8628 §3.2 `interval`).
pub const POLL_INTERVAL_SECONDS: u64 = 5;
/// Consonants only: no vowels (no words), none that read like another
/// (no I/L, O/Q), so a code read off a screen is typed right.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKMNPRSTVWXZ";

/// `POST /oauth/device_authorization`'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceCodeResponse {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: u64,
}

/// What the `/device` page shows before the person answers.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRequestView {
    pub user_code: String,
    pub client_name: String,
    pub scopes: Vec<String>,
}

fn new_user_code() -> String {
    let random = crate::crypto::random::bytes::<8>();
    random
        .iter()
        .map(|b| USER_CODE_ALPHABET[*b as usize % USER_CODE_ALPHABET.len()] as char)
        .collect()
}

/// `wdjb-mjht`, `WDJB MJHT` → `WDJBMJHT`.
pub fn normalise_user_code(typed: &str) -> String {
    typed
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn display_user_code(code: &str) -> String {
    format!("{}-{}", &code[..4], &code[4..])
}

/// A device request still waiting for its person, with its digest and
/// client; anything else (unknown, expired, answered) is "not found".
fn pending_request(
    txn: &impl Queries,
    user_code: &str,
    now: UnixSeconds,
) -> ServiceResult<(String, DeviceAuthorization, OAuthClient)> {
    let (digest, record) = txn
        .device_authorization_by_user_code(user_code)?
        .filter(|(_, r)| r.expires_at > now && r.status == DeviceStatus::Pending)
        .ok_or(ServiceError::NotFound("code"))?;
    let client = txn
        .oauth_client(&record.client_id)?
        .ok_or(ServiceError::NotFound("code"))?;
    Ok((digest, record, client))
}

enum Poll {
    Issued {
        user: Box<User>,
        session: Box<Session>,
        refresh_token: Option<String>,
        scopes: Vec<String>,
    },
    Refused(&'static str, &'static str),
}

impl Services {
    /// Removes authorization codes and device codes that ended more than an
    /// hour ago (kept that long so a late replay is still seen as one).
    pub async fn sweep_oauth_codes(&self) -> ServiceResult<usize> {
        let before = self.clock.now() - 3_600;
        self.store_write(move |txn| Ok(txn.sweep_oauth_codes(before)?))
            .await
    }

    pub async fn start_device_authorization(
        &self,
        client: OAuthClient,
        scope: Option<String>,
    ) -> ServiceResult<DeviceCodeResponse> {
        require_grant(&client, GrantType::DeviceCode)?;
        let scopes = requested_scopes(&client, scope.as_deref())?;
        let now = self.clock.now();
        let device_code = super::tokens::new_refresh_token();
        let digest = refresh_token_digest(&device_code);
        let user_code = new_user_code();
        let record = DeviceAuthorization {
            client_id: client.id.clone(),
            user_code: user_code.clone(),
            scopes,
            expires_at: now + DEVICE_CODE_TTL_SECONDS,
            interval: POLL_INTERVAL_SECONDS,
            last_polled_at: None,
            status: DeviceStatus::Pending,
        };
        self.store_write(move |txn| {
            // 18^8 codes; a clash with a live one is all but impossible,
            // and refused rather than overwritten.
            if txn
                .device_authorization_by_user_code(&record.user_code)?
                .is_some()
            {
                return Err(ServiceError::Conflict("try again".into()));
            }
            Ok(txn.put_device_authorization(&digest, &record)?)
        })
        .await?;
        let config = self.config();
        let base = config.server.public_url.trim_end_matches('/');
        let shown = display_user_code(&user_code);
        Ok(DeviceCodeResponse {
            device_code,
            verification_uri: format!("{base}/device"),
            verification_uri_complete: format!("{base}/device?user_code={shown}"),
            user_code: shown,
            expires_in: DEVICE_CODE_TTL_SECONDS,
            interval: POLL_INTERVAL_SECONDS,
        })
    }

    /// `grant_type=urn:ietf:params:oauth:grant-type:device_code`.
    pub async fn poll_device_code(
        &self,
        client: OAuthClient,
        device_code: &str,
        context: &RequestContext,
    ) -> ServiceResult<ClientTokenSet> {
        require_grant(&client, GrantType::DeviceCode)?;
        let digest = refresh_token_digest(device_code);
        let now = self.clock.now();
        let origin = context.origin();
        let origin_of_session = session_origin(context);
        let ttls = self.client_ttls(&client);
        let for_txn = client.clone();
        let poll = self
            .store_write(move |txn| {
                let client = for_txn;
                let Some(mut record) = txn.device_authorization(&digest)? else {
                    return Ok(Poll::Refused("invalid_grant", "the device code is unknown"));
                };
                if record.client_id != client.id {
                    return Ok(Poll::Refused("invalid_grant", "the device code is unknown"));
                }
                if record.expires_at <= now {
                    return Ok(Poll::Refused(
                        "expired_token",
                        "the device code has expired",
                    ));
                }
                let too_soon = record
                    .last_polled_at
                    .is_some_and(|last| now - last < record.interval as UnixSeconds);
                record.last_polled_at = Some(now);
                if too_soon {
                    record.interval += 5;
                    txn.put_device_authorization(&digest, &record)?;
                    return Ok(Poll::Refused("slow_down", "poll less often"));
                }
                let approved = match &record.status {
                    DeviceStatus::Pending => {
                        txn.put_device_authorization(&digest, &record)?;
                        return Ok(Poll::Refused(
                            "authorization_pending",
                            "the person has not answered yet",
                        ));
                    }
                    DeviceStatus::Denied => {
                        return Ok(Poll::Refused("access_denied", "the person said no"))
                    }
                    DeviceStatus::Spent => {
                        return Ok(Poll::Refused("invalid_grant", "the device code was used"))
                    }
                    DeviceStatus::Approved {
                        user_id,
                        auth_time,
                        amr,
                        mfa_verified,
                        ..
                    } => (*user_id, *auth_time, amr.clone(), *mfa_verified),
                };
                let (user_id, auth_time, amr, mfa_verified) = approved;
                let Some(user) = txn.user(&user_id)?.filter(|u| may_use_client(u, &client)) else {
                    return Ok(Poll::Refused(
                        "access_denied",
                        "the account may not use this app",
                    ));
                };
                let (session, refresh_token) = begin_app_session(
                    txn,
                    &client,
                    &user,
                    AppSignIn {
                        scopes: &record.scopes,
                        auth_time,
                        amr: &amr,
                        mfa_verified,
                    },
                    origin_of_session,
                    now,
                    ttls,
                )?;
                record.status = DeviceStatus::Spent;
                txn.put_device_authorization(&digest, &record)?;
                txn.audit(
                    AuditRecord::new(AuditKind::CodeExchanged, now, &origin)
                        .user(user.id)
                        .org(&client.org_id)
                        .details(serde_json::json!({
                            "client_id": client.id,
                            "session_id": session.id,
                            "grant": "device_code",
                        })),
                )?;
                Ok(Poll::Issued {
                    user: Box::new(user),
                    session: Box::new(session),
                    refresh_token,
                    scopes: record.scopes,
                })
            })
            .await?;
        match poll {
            Poll::Refused(code, why) => Err(ServiceError::oauth(code, why)),
            Poll::Issued {
                user,
                session,
                refresh_token,
                scopes,
            } => {
                self.issue_client_tokens(
                    &client,
                    &user,
                    &session,
                    &scopes,
                    None,
                    refresh_token,
                    now,
                )
                .await
            }
        }
    }

    /// What the `/device` page shows for a typed code.
    pub async fn describe_device_request(
        &self,
        typed: &str,
        principal: &SessionPrincipal,
        context: &RequestContext,
    ) -> ServiceResult<DeviceRequestView> {
        let code = normalise_user_code(typed);
        let now = self.clock.now();
        let guesses = self.admit_user_code_guess(principal, context, now)?;
        let found = self
            .store_read(move |txn| {
                let (_, record, client) = pending_request(txn, &code, now)?;
                Ok(DeviceRequestView {
                    user_code: display_user_code(&code),
                    client_name: client.name,
                    scopes: record.scopes,
                })
            })
            .await;
        self.count_user_code_guess(guesses, &found, now);
        found
    }

    /// Typing user codes is limited like signing in, per address and per
    /// person: 8 letters from 20 make ~2.6e10 codes, which only holds
    /// against guessing if guesses are few.
    fn admit_user_code_guess(
        &self,
        principal: &SessionPrincipal,
        context: &RequestContext,
        now: UnixSeconds,
    ) -> ServiceResult<(AddressKey, AccountKey)> {
        let keys = (
            AddressKey::of(context.ip),
            AccountKey::device_codes(&principal.user_id),
        );
        self.limiter.check(keys.0, keys.1, now)?;
        Ok(keys)
    }

    fn count_user_code_guess<T>(
        &self,
        (address, account): (AddressKey, AccountKey),
        outcome: &ServiceResult<T>,
        now: UnixSeconds,
    ) {
        if matches!(outcome, Err(ServiceError::NotFound(_))) {
            self.limiter.record_failure(address, account, now);
        }
    }

    /// The signed-in person's answer to a device's request.
    pub async fn answer_device_request(
        &self,
        typed: &str,
        approve: bool,
        principal: &SessionPrincipal,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let code = normalise_user_code(typed);
        let now = self.clock.now();
        let guesses = self.admit_user_code_guess(principal, context, now)?;
        let origin = context.origin();
        let principal = principal.clone();
        let answered = self
            .store_write(move |txn| {
                let (digest, mut record, client) = pending_request(txn, &code, now)?;
                let session = txn
                    .session(&principal.session_id)?
                    .filter(|s| s.is_live(now))
                    .ok_or(ServiceError::InvalidToken)?;
                let user = txn
                    .user(&principal.user_id)?
                    .ok_or(ServiceError::InvalidToken)?;
                let kind = if approve {
                    if !may_use_client(&user, &client) {
                        return Err(ServiceError::Forbidden);
                    }
                    let org = txn.org(&client.org_id)?.ok_or(ServiceError::Forbidden)?;
                    if org
                        .mfa_policy
                        .requires_mfa_for(user.active_role_in(&org.id))
                        && !session.mfa_verified
                    {
                        return Err(if user.mfa_enrolled {
                            ServiceError::MfaRequired
                        } else {
                            ServiceError::MfaEnrollmentRequired
                        });
                    }
                    record.status = DeviceStatus::Approved {
                        user_id: user.id,
                        org_id: client.org_id.clone(),
                        auth_time: session.authenticated_at(),
                        amr: super::authorize::session_amr(&session),
                        mfa_verified: session.mfa_verified,
                    };
                    AuditKind::DeviceApproved
                } else {
                    record.status = DeviceStatus::Denied;
                    AuditKind::DeviceDenied
                };
                txn.put_device_authorization(&digest, &record)?;
                txn.audit(
                    AuditRecord::new(kind, now, &origin)
                        .user(user.id)
                        .org(&client.org_id)
                        .details(serde_json::json!({"client_id": client.id})),
                )?;
                Ok(())
            })
            .await;
        self.count_user_code_guess(guesses, &answered, now);
        answered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_eight_unambiguous_letters_typed_any_way() {
        for _ in 0..100 {
            let code = new_user_code();
            assert_eq!(code.len(), 8);
            assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
        }
        assert_eq!(normalise_user_code(" wdjb-mjht "), "WDJBMJHT");
        assert_eq!(display_user_code("WDJBMJHT"), "WDJB-MJHT");
    }
}
