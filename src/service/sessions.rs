//! Sessions: starting one after a login (within the per-user caps, and
//! enrollment-only while the org requires a factor the user lacks), the
//! end of that state once a factor is enrolled, listing and revoking them
//! (one, all, all but this one), keeping `last_active` without a write per
//! request, and sweeping the ended ones.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use super::tokens::{store_refresh_token, TokenGrant, TokenSet};
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::{self, UnixSeconds};
use crate::domain::{Org, Session, SessionId, User, UserId};
use crate::store::{Queries, WriteTxn};

/// How stale `last_active` may get: it is written at most this often.
pub const ACTIVITY_FLUSH_SECONDS: u64 = 60;

/// `last_active` times seen since the last flush, in memory.
#[derive(Default)]
pub struct SessionActivity {
    seen: Mutex<HashMap<SessionId, UnixSeconds>>,
}

impl SessionActivity {
    pub fn touch(&self, session: SessionId, now: UnixSeconds) {
        let mut seen = match self.seen.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Bounded by the number of live sessions used within one flush period.
        seen.insert(session, now);
    }

    fn take(&self) -> HashMap<SessionId, UnixSeconds> {
        match self.seen.lock() {
            Ok(mut guard) => std::mem::take(&mut *guard),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

/// A session as its owner or the operator sees it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub id: SessionId,
    pub user_id: UserId,
    pub org_id: crate::domain::OrgId,
    pub ip: String,
    pub user_agent: String,
    pub created_at: String,
    pub last_active: String,
    pub expires_at: String,
    pub mfa_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<bool>,
}

impl SessionView {
    pub fn new(
        session: &Session,
        pending_activity: Option<UnixSeconds>,
        current: Option<SessionId>,
    ) -> Self {
        Self {
            id: session.id,
            user_id: session.user_id,
            org_id: session.org_id.clone(),
            ip: session.ip.clone(),
            user_agent: session.user_agent.clone(),
            created_at: clock::rfc3339(session.created_at),
            last_active: clock::rfc3339(
                pending_activity
                    .unwrap_or(session.last_active)
                    .max(session.last_active),
            ),
            expires_at: clock::rfc3339(session.expires_at),
            mfa_verified: session.mfa_verified,
            current: current.map(|c| c == session.id),
        }
    }
}

/// What a login leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// `/login`: access and refresh tokens.
    Refreshable,
    /// The control plane: an access token only.
    AccessOnly,
    /// The web UI: an HttpOnly cookie (`TokenSet::browser_cookie`).
    Browser,
}

/// The session that just enrolled a second factor (if the change came from
/// one) has it now: it leaves its enrollment-only state and counts as
/// verified, like a session that began with the factor.
pub(crate) fn finish_enrollment(
    txn: &mut WriteTxn,
    session: Option<SessionId>,
) -> ServiceResult<()> {
    let Some(id) = session else {
        return Ok(());
    };
    if let Some(mut session) = txn.session(&id)? {
        if session.enrollment_only || !session.mfa_verified {
            session.enrollment_only = false;
            session.mfa_verified = true;
            txn.put_session(&session)?;
        }
    }
    Ok(())
}

/// Revokes `session` in `txn` with an audit record saying why.
pub(crate) fn revoke_in(
    txn: &mut WriteTxn,
    mut session: Session,
    now: UnixSeconds,
    reason: &str,
    origin: &crate::audit::RequestOrigin,
) -> ServiceResult<()> {
    if session.revoked_at.is_some() {
        return Ok(());
    }
    session.revoked_at = Some(now);
    txn.put_session(&session)?;
    txn.audit(
        AuditRecord::new(AuditKind::SessionRevoked, now, origin)
            .user(session.user_id)
            .org(&session.org_id)
            .reason(reason)
            .details(serde_json::json!({"session_id": session.id})),
    )?;
    Ok(())
}

/// How a session began, for its `user.login` record, when the grant does
/// not name it (a provider sign-in does: `social:NAME`): read off its `amr`.
fn sign_in_method(amr: &[String]) -> &'static str {
    let has = |method: &str| amr.iter().any(|m| m == method);
    if !has("pwd") && has("hwk") && has("user") {
        "passkey"
    } else {
        "password"
    }
}

impl Services {
    /// Creates the session, its refresh family and first refresh token, and
    /// audits the login, in one transaction; then signs the access token.
    pub async fn start_session(
        &self,
        user: User,
        org: Org,
        mfa_verified: bool,
        mut grant: TokenGrant,
        kind: SessionKind,
        context: &RequestContext,
    ) -> ServiceResult<TokenSet> {
        let now = self.clock.now();
        grant.auth_time = now;
        let session_id = SessionId::random();
        let refreshable = kind == SessionKind::Refreshable;
        // `<session id>.<secret>`: the id finds the session, the secret proves it.
        let cookie_secret = (kind == SessionKind::Browser)
            .then(|| hex::encode(crate::crypto::random::bytes::<32>()));
        let session = Session {
            id: session_id,
            user_id: user.id,
            org_id: org.id.clone(),
            ip: context.ip.to_string(),
            user_agent: context.user_agent.chars().take(512).collect(),
            created_at: now,
            last_active: now,
            expires_at: now + self.config().sessions.ttl.as_secs() as i64,
            mfa_verified,
            revoked_at: None,
            enrollment_only: !user.mfa_enrolled
                && org.mfa_policy.requires_mfa_for(user.role_in(&org.id)),
            cookie_digest: cookie_secret
                .as_ref()
                .map(|secret| hex::encode(crate::crypto::sha256(secret.as_bytes()))),
            client_id: None,
            amr: if grant.amr.is_empty() {
                vec!["pwd".to_owned()]
            } else {
                grant.amr.clone()
            },
            auth_time: None,
        };
        let origin = context.origin();
        let default_cap = self.config().sessions.max_per_user;
        let member_of: Vec<crate::domain::OrgId> =
            user.memberships.iter().map(|m| m.org_id.clone()).collect();
        let stored = session.clone();
        let refresh_ttl = self.config().tokens.refresh_ttl.as_secs();
        let stored_grant = grant.clone();
        let refresh_token = self
            .store_write(move |txn| {
                // A session may act in every org of its user (`enter_org`), so
                // every one of their orgs' caps bounds all of their sessions.
                let mut cap = default_cap;
                for org_id in &member_of {
                    if let Some(org_cap) = txn.org(org_id)?.and_then(|o| o.max_sessions_per_user) {
                        cap = cap.min(org_cap);
                    }
                }
                // Over the cap, the oldest live sessions end first.
                let mut live: Vec<Session> = txn
                    .sessions_of_user(&stored.user_id)?
                    .into_iter()
                    .filter(|s| s.is_live(now) && s.client_id.is_none())
                    .collect();
                live.sort_by_key(|s| s.created_at);
                let excess = (live.len() + 1).saturating_sub(cap.max(1) as usize);
                for mut oldest in live.into_iter().take(excess) {
                    oldest.revoked_at = Some(now);
                    txn.put_session(&oldest)?;
                    txn.audit(
                        AuditRecord::new(AuditKind::SessionRevoked, now, &origin)
                            .user(oldest.user_id)
                            .org(&oldest.org_id)
                            .reason("max_sessions")
                            .details(serde_json::json!({"session_id": oldest.id})),
                    )?;
                }
                txn.put_session(&stored)?;
                let family_id = uuid::Uuid::new_v4().to_string();
                let refresh_token = if refreshable {
                    Some(store_refresh_token(
                        txn,
                        &stored,
                        &family_id,
                        &stored_grant,
                        now,
                        refresh_ttl,
                    )?)
                } else {
                    None
                };
                txn.audit(
                    AuditRecord::new(AuditKind::UserLogin, now, &origin)
                        .user(stored.user_id)
                        .org(&stored.org_id)
                        .details(serde_json::json!({
                            "session_id": stored.id,
                            "mfa_verified": stored.mfa_verified,
                            "method": stored_grant
                                .method
                                .as_deref()
                                .unwrap_or_else(|| sign_in_method(&stored.amr)),
                        })),
                )?;
                Ok(refresh_token)
            })
            .await?;
        let mut tokens = self
            .issue_token_set(&user, &session, refresh_token, &grant, now)
            .await?;
        if org.mfa_policy == crate::domain::MfaPolicy::Encouraged && !user.mfa_enrolled {
            tokens.mfa_enrollment_encouraged = Some(true);
        }
        tokens.browser_cookie = cookie_secret.map(|secret| format!("{session_id}.{secret}"));
        Ok(tokens)
    }

    /// The live sessions of a user; `current` marks the caller's own.
    pub async fn list_sessions(
        &self,
        user: UserId,
        current: Option<SessionId>,
    ) -> ServiceResult<Vec<SessionView>> {
        let now = self.clock.now();
        let sessions = self
            .store_read(move |txn| Ok(txn.sessions_of_user(&user)?))
            .await?;
        let pending = {
            match self.activity.seen.lock() {
                Ok(guard) => guard.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            }
        };
        Ok(sessions
            .iter()
            // Apps' sessions are on the account page as connected apps.
            .filter(|s| s.is_live(now) && s.client_id.is_none())
            .map(|s| SessionView::new(s, pending.get(&s.id).copied(), current))
            .collect())
    }

    /// Revokes one session of `user`; another user's session is "not found".
    pub async fn revoke_session(
        &self,
        user: UserId,
        session: SessionId,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let found = txn
                .session(&session)?
                .filter(|s| s.user_id == user && s.is_live(now))
                .ok_or(ServiceError::NotFound("session"))?;
            revoke_in(txn, found, now, "revoked", &origin)
        })
        .await
    }

    /// Revokes a session of `org`; with `owner`, only if it is theirs.
    pub async fn revoke_org_session(
        &self,
        org: &crate::domain::OrgId,
        owner: Option<UserId>,
        session: SessionId,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let now = self.clock.now();
        let origin = context.origin();
        let org = org.clone();
        self.store_write(move |txn| {
            let found = txn
                .session(&session)?
                .filter(|s| {
                    s.org_id == org
                        && s.is_live(now)
                        && owner.is_none_or(|owner| s.user_id == owner)
                })
                .ok_or(ServiceError::NotFound("session"))?;
            revoke_in(txn, found, now, "revoked", &origin)
        })
        .await
    }

    /// Revokes every live session of `user` except `keep`; returns how many.
    pub async fn revoke_all_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        reason: &'static str,
        context: &RequestContext,
    ) -> ServiceResult<usize> {
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let mut revoked = 0;
            for session in txn.sessions_of_user(&user)? {
                if Some(session.id) != keep && session.is_live(now) {
                    revoke_in(txn, session, now, reason, &origin)?;
                    revoked += 1;
                }
            }
            Ok(revoked)
        })
        .await
    }

    /// Writes the `last_active` times gathered since the last flush, in one
    /// transaction.
    pub async fn flush_session_activity(&self) -> ServiceResult<usize> {
        let seen = self.activity.take();
        if seen.is_empty() {
            return Ok(0);
        }
        self.store_write(move |txn| {
            let mut written = 0;
            for (id, at) in seen {
                if let Some(mut session) = txn.session(&id)? {
                    if at > session.last_active {
                        session.last_active = at;
                        txn.put_session(&session)?;
                        written += 1;
                    }
                }
            }
            Ok(written)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::sign_in_method;

    fn check(amr: &[&str], expected: &str) {
        let amr: Vec<String> = amr.iter().map(|m| (*m).to_owned()).collect();
        assert_eq!(sign_in_method(&amr), expected, "{amr:?}");
    }

    #[test]
    fn the_login_record_names_the_method_from_the_amr() {
        check(&["pwd"], "password");
        check(&["pwd", "hwk", "mfa"], "password");
        check(&["pwd", "otp", "mfa"], "password");
        check(&["hwk", "user", "mfa"], "passkey");
        check(&[], "password");
    }
}
