//! The refresh-token life cycle: single-use rotation within a family,
//! replay detection (the whole family and its session die), logout, and
//! revocation (RFC 7009) and introspection (RFC 7662) of every kind of token:
//! access tokens, refresh tokens, and PATs (handed to `pats`).
//!
//! Every decision about a presented refresh token is made inside one write
//! transaction. redb runs write transactions one at a time, so of two
//! concurrent presentations of one token exactly one sees it unused and wins;
//! the other sees it used and is treated as the replay it is.

use serde::Serialize;

use super::sessions::revoke_in;
use super::tokens::{refresh_token_digest, store_refresh_token, TokenGrant, TokenSet};
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::UnixSeconds;
use crate::domain::{Session, User};
use crate::store::Queries;

/// Why a refresh was refused; all become `invalid_grant` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRefusal {
    Unknown,
    Expired,
    Replayed,
    SessionEnded,
    UserInactive,
}

enum Exchange {
    Rotated {
        user: Box<User>,
        session: Box<Session>,
        refresh_token: String,
        grant: TokenGrant,
    },
    Refused(RefreshRefusal),
}

/// A refresh's answer: the first-party token set, or an app's.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RefreshedTokens {
    FirstParty(TokenSet),
    App(super::client_tokens::ClientTokenSet),
}

/// RFC 7662's answer; inactive tokens say nothing else.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<UnixSeconds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<UnixSeconds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The app the token belongs to; none for authd's own tokens and PATs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl Services {
    /// `grant_type=refresh_token`: the presented token is spent and a new
    /// access + refresh pair is issued in the same family and session.
    ///
    /// An app session's token is good only in the hands of its app
    /// (`client`, authenticated by the caller); its answer is the app's
    /// kind of token set.
    pub async fn refresh(
        &self,
        presented: &str,
        client: Option<crate::domain::OAuthClient>,
        context: &RequestContext,
    ) -> Result<RefreshedTokens, RefreshError> {
        let digest = refresh_token_digest(presented);
        let now = self.clock.now();
        let origin = context.origin();
        let ip = context.ip.to_string();
        let default_refresh_ttl = self.config().tokens.refresh_ttl.as_secs();
        let client_refresh_ttl = client.as_ref().map(|c| self.client_refresh_ttl(c));
        let presenter = client.as_ref().map(|c| c.id.clone());
        let exchange = self
            .store_write(move |txn| {
                let Some(mut record) = txn.refresh_token(&digest)? else {
                    return Ok(Exchange::Refused(RefreshRefusal::Unknown));
                };
                let session = txn.session(&record.session_id)?;
                // An app's refresh token is refused to anyone but that app,
                // before it is spent: a stolen copy in other hands is
                // neither a rotation nor proof of a replay.
                let owner = session.as_ref().and_then(|s| s.client_id.clone());
                if owner.is_some() && owner != presenter {
                    return Ok(Exchange::Refused(RefreshRefusal::Unknown));
                }
                if record.used_at.is_some() {
                    // A spent token came back: someone holds a copy. End the
                    // family (its session) so that neither copy works again.
                    let first_ip = record.used_by_ip.clone();
                    if let Some(session) = session {
                        revoke_in(txn, session, now, "refresh_token_replay", &origin)?;
                    }
                    txn.audit(
                        AuditRecord::new(AuditKind::TokenReplayDetected, now, &origin)
                            .user(record.user_id)
                            .org(&record.org_id)
                            .reason("refresh_token_reused")
                            .details(serde_json::json!({
                                "family_id": record.family_id,
                                "session_id": record.session_id,
                                "first_use_ip": first_ip,
                                "replay_ip": origin.ip,
                            })),
                    )?;
                    return Ok(Exchange::Refused(RefreshRefusal::Replayed));
                }
                if record.expires_at <= now {
                    return Ok(Exchange::Refused(RefreshRefusal::Expired));
                }
                let Some(mut session) = session.filter(|s| s.is_live(now)) else {
                    return Ok(Exchange::Refused(RefreshRefusal::SessionEnded));
                };
                let user = txn.user(&record.user_id)?;
                let Some(user) = user.filter(|u| {
                    u.may_use_tokens() && u.active_role_in(&session.org_id).is_some()
                }) else {
                    return Ok(Exchange::Refused(RefreshRefusal::UserInactive));
                };
                record.used_at = Some(now);
                record.used_by_ip = Some(ip);
                txn.put_refresh_token(&digest, &record)?;
                let grant = TokenGrant {
                    scope: record.scope.clone(),
                    client_id: record.client_id.clone(),
                    nonce: None,
                    auth_time: record.auth_time,
                    amr: session.amr.clone(),
                    method: None,
                };
                let refresh_ttl = match owner {
                    // An app's session slides with its use, up to its TTL.
                    Some(_) => {
                        let ttl = client_refresh_ttl.unwrap_or(default_refresh_ttl);
                        session.expires_at = session.expires_at.max(now + ttl as i64);
                        ttl
                    }
                    None => default_refresh_ttl,
                };
                let refresh_token = store_refresh_token(txn, &session, &record.family_id, &grant, now, refresh_ttl)?;
                session.last_active = now;
                txn.put_session(&session)?;
                txn.audit(
                    AuditRecord::new(AuditKind::TokenRefreshed, now, &origin)
                        .user(user.id)
                        .org(&session.org_id)
                        .details(serde_json::json!({"family_id": record.family_id, "session_id": session.id})),
                )?;
                Ok(Exchange::Rotated {
                    user: Box::new(user),
                    session: Box::new(session),
                    refresh_token,
                    grant,
                })
            })
            .await?;
        match exchange {
            Exchange::Refused(refusal) => {
                if refusal == RefreshRefusal::Replayed {
                    crate::metrics::METRICS.refresh_replay();
                }
                Err(RefreshError::Refused(refusal))
            }
            Exchange::Rotated {
                user,
                session,
                refresh_token,
                grant,
            } => match client.filter(|c| session.client_id.as_deref() == Some(c.id.as_str())) {
                Some(client) => {
                    let scopes =
                        crate::domain::client::scope_list(grant.scope.as_deref().unwrap_or(""));
                    Ok(RefreshedTokens::App(
                        self.issue_client_tokens(
                            &client,
                            &user,
                            &session,
                            &scopes,
                            None,
                            Some(refresh_token),
                            now,
                        )
                        .await?,
                    ))
                }
                None => Ok(RefreshedTokens::FirstParty(
                    self.issue_token_set(&user, &session, Some(refresh_token), &grant, now)
                        .await?,
                )),
            },
        }
    }

    /// Ends the session a refresh token belongs to. Unknown tokens are not an
    /// error: the caller wanted the token dead, and it is.
    pub async fn logout_refresh_token(
        &self,
        presented: &str,
        reason: &'static str,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let digest = refresh_token_digest(presented);
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let Some(record) = txn.refresh_token(&digest)? else {
                return Ok(());
            };
            if let Some(session) = txn.session(&record.session_id)?.filter(|s| s.is_live(now)) {
                end_session(txn, session, now, reason, &origin)?;
            }
            Ok(())
        })
        .await
    }

    /// Ends the session of a verified access token.
    pub async fn logout_session(
        &self,
        session_id: crate::domain::SessionId,
        reason: &'static str,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            if let Some(session) = txn.session(&session_id)?.filter(|s| s.is_live(now)) {
                end_session(txn, session, now, reason, &origin)?;
            }
            Ok(())
        })
        .await
    }

    /// RFC 7009: revoking an access or refresh token ends its session (a JWT
    /// cannot be recalled on its own; its session can); revoking a PAT
    /// deletes it. Unknown tokens, and tokens that are not the caller's to
    /// revoke, succeed without effect: an app may revoke only its own
    /// tokens, and an unauthenticated caller only authd's own (first-party
    /// tokens and PATs, which whoever holds them may end).
    pub async fn revoke_token(
        &self,
        token: &str,
        caller: &TokenCaller,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let found = self.introspect(token, &TokenCaller::Operator).await?;
        if !found.active || !caller.may_see(found.client_id.as_deref()) {
            return Ok(());
        }
        match found.token_type {
            Some("personal_access_token") => self.revoke_pat_by_token(token, context).await,
            Some("refresh_token") => {
                self.logout_refresh_token(token, "token_revoked", context)
                    .await
            }
            _ => match found
                .sid
                .as_deref()
                .and_then(crate::domain::SessionId::parse)
            {
                Some(sid) => self.logout_session(sid, "token_revoked", context).await,
                // An app's own token (client_credentials) has no session to
                // end; it lives out its short lifetime.
                None => Ok(()),
            },
        }
    }

    /// RFC 7662 for access tokens (authd's and apps'), refresh tokens and
    /// PATs; an app sees only its own tokens as active.
    pub async fn introspect(
        &self,
        token: &str,
        caller: &TokenCaller,
    ) -> ServiceResult<Introspection> {
        let answer = self.introspect_any(token).await?;
        Ok(if caller.may_see(answer.client_id.as_deref()) {
            answer
        } else {
            Introspection::default()
        })
    }

    async fn introspect_any(&self, token: &str) -> ServiceResult<Introspection> {
        let now = self.clock.now();
        if self.is_pat(token) {
            return self.introspect_pat(token).await;
        }
        if token.contains('.') {
            if self.authenticate_access_token(token, now).await.is_ok() {
                let claims = self.verify_access_token(token, now).await?;
                return Ok(Introspection {
                    active: true,
                    token_type: Some("access_token"),
                    sub: Some(claims.sub.to_string()),
                    exp: Some(claims.exp),
                    iat: Some(claims.iat),
                    iss: Some(claims.iss),
                    aud: Some(claims.aud),
                    sid: Some(claims.sid.to_string()),
                    org: Some(claims.org.to_string()),
                    username: Some(claims.email),
                    scope: None,
                    client_id: None,
                });
            }
            return Ok(match self.verify_client_access_token(token).await {
                Ok((claims, session)) => Introspection {
                    active: true,
                    token_type: Some("access_token"),
                    sub: Some(claims.sub),
                    exp: Some(claims.exp),
                    iat: Some(claims.iat),
                    iss: Some(claims.iss),
                    aud: Some(claims.aud),
                    sid: claims.sid.map(|sid| sid.to_string()),
                    org: session.map(|s| s.org_id.to_string()),
                    scope: Some(claims.scope),
                    username: None,
                    client_id: Some(claims.client_id),
                },
                Err(_) => Introspection::default(),
            });
        }
        let digest = refresh_token_digest(token);
        self.store_read(move |txn| {
            let Some(record) = txn.refresh_token(&digest)? else {
                return Ok(Introspection::default());
            };
            let Some(session) = txn.session(&record.session_id)?.filter(|s| s.is_live(now)) else {
                return Ok(Introspection::default());
            };
            if record.used_at.is_some() || record.expires_at <= now {
                return Ok(Introspection::default());
            }
            let email = txn
                .user(&record.user_id)?
                .map(|u| u.email.as_str().to_owned());
            Ok(Introspection {
                active: true,
                token_type: Some("refresh_token"),
                sub: Some(record.user_id.to_string()),
                exp: Some(record.expires_at),
                iat: Some(record.issued_at),
                sid: Some(record.session_id.to_string()),
                org: Some(record.org_id.to_string()),
                scope: record.scope,
                username: email,
                client_id: session.client_id,
                ..Introspection::default()
            })
        })
        .await
    }
}

/// Who asks to introspect or revoke a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCaller {
    /// The admin token: every token.
    Operator,
    /// An authenticated app: its own tokens only.
    Client(String),
    /// No credentials (revocation only): authd's own tokens, not apps'.
    Anyone,
}

impl TokenCaller {
    fn may_see(&self, owner: Option<&str>) -> bool {
        match self {
            TokenCaller::Operator => true,
            TokenCaller::Client(id) => owner == Some(id.as_str()),
            TokenCaller::Anyone => owner.is_none(),
        }
    }
}

fn end_session(
    txn: &mut crate::store::WriteTxn,
    session: Session,
    now: UnixSeconds,
    reason: &'static str,
    origin: &crate::audit::RequestOrigin,
) -> ServiceResult<()> {
    let (user, org, id) = (session.user_id, session.org_id.clone(), session.id);
    revoke_in(txn, session, now, reason, origin)?;
    txn.audit(
        AuditRecord::new(AuditKind::SessionLogout, now, origin)
            .user(user)
            .org(&org)
            .reason(reason)
            .details(serde_json::json!({"session_id": id})),
    )?;
    Ok(())
}

/// A refresh either is refused for a reason the client must not learn in
/// detail, or fails inside.
#[derive(Debug)]
pub enum RefreshError {
    Refused(RefreshRefusal),
    Service(ServiceError),
}

impl From<ServiceError> for RefreshError {
    fn from(error: ServiceError) -> Self {
        RefreshError::Service(error)
    }
}
