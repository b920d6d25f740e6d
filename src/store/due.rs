//! The `sweep_due` index's layout: one row `<kind>/<due at>/<key>` for every
//! row of the tables that grow with use, kept in step by the writes in
//! `txn` and read by the sweeps in `sweep`. Both stand on this module, so
//! neither depends on the other's internals.

use serde::Deserialize;

use super::tables::{JsonTable, PATS, REFRESH_TOKENS, SESSIONS};
use crate::clock::UnixSeconds;
use crate::domain::Session;

/// How long a revoked session is kept, for the record, before it is swept.
const REVOKED_SESSION_KEPT_SECONDS: UnixSeconds = 86_400;

/// What a sweep removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// Sessions past their expiry, or revoked more than a day ago, with
    /// their index rows.
    EndedSessions,
    ExpiredRefreshTokens,
    /// Personal access tokens past their expiry, with their index rows.
    ExpiredPats,
}

impl Sweep {
    pub(super) const ALL: [Sweep; 3] = [
        Sweep::EndedSessions,
        Sweep::ExpiredRefreshTokens,
        Sweep::ExpiredPats,
    ];

    pub(super) fn table(self) -> JsonTable {
        match self {
            Sweep::EndedSessions => SESSIONS,
            Sweep::ExpiredRefreshTokens => REFRESH_TOKENS,
            Sweep::ExpiredPats => PATS,
        }
    }

    pub(super) fn prefix(self) -> &'static str {
        match self {
            Sweep::EndedSessions => "session/",
            Sweep::ExpiredRefreshTokens => "refresh/",
            Sweep::ExpiredPats => "pat/",
        }
    }
}

/// The two fields a row's due time comes from. Decoding only these (serde
/// skips the rest without building it) keeps indexing a million rows cheap.
#[derive(Deserialize)]
pub(crate) struct Ending {
    pub(crate) expires_at: UnixSeconds,
    #[serde(default)]
    pub(crate) revoked_at: Option<UnixSeconds>,
}

impl Ending {
    /// The first second at which a sweep removes the row. A revoked session
    /// is due a day after its revocation, or at its expiry if sooner;
    /// `revoked_at` means nothing for the other kinds.
    pub(super) fn due_at(&self, sweep: Sweep) -> UnixSeconds {
        match (sweep, self.revoked_at) {
            (Sweep::EndedSessions, Some(at)) => self
                .expires_at
                .min(at.saturating_add(REVOKED_SESSION_KEPT_SECONDS + 1)),
            _ => self.expires_at,
        }
    }
}

/// The `sweep_due` key of a row. Times are zero-padded so that key order is
/// time order; a time before 1970 counts as 1970 (due at once).
pub(crate) fn due_key(sweep: Sweep, due_at: UnixSeconds, key: &str) -> String {
    format!("{}{:020}/{key}", sweep.prefix(), due_at.max(0))
}

pub(super) fn session_due_at(session: &Session) -> UnixSeconds {
    Ending {
        expires_at: session.expires_at,
        revoked_at: session.revoked_at,
    }
    .due_at(Sweep::EndedSessions)
}

pub(crate) fn session_due_key(session: &Session) -> String {
    due_key(
        Sweep::EndedSessions,
        session_due_at(session),
        &session.id.to_string(),
    )
}

/// The key of the swept row a `sweep_due` key points at.
pub(super) fn swept_key(sweep: Sweep, due: &str) -> Option<&str> {
    let (_, key) = due.strip_prefix(sweep.prefix())?.split_once('/')?;
    Some(key)
}
