//! Sessions after login: listing and revoking them (one, all, all but this
//! one), keeping `last_active` without a write per request, and sweeping
//! the ended ones.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::{self, UnixSeconds};
use crate::domain::{Session, SessionId, UserId};
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

impl Services {
    /// The live sessions of a user; `current` marks the caller's own.
    pub async fn list_sessions(
        &self,
        user: UserId,
        current: Option<SessionId>,
    ) -> ServiceResult<Vec<SessionView>> {
        let now = clock::now();
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
            .filter(|s| s.is_live(now))
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
        let now = clock::now();
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
        let now = clock::now();
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
        let now = clock::now();
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
