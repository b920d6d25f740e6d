//! Housekeeping sweeps of the tables that grow with use (sessions, refresh
//! tokens, PATs), a page at a time. A page is *found* in a read transaction,
//! which never holds up writers, and only a page with something due costs a
//! write, which checks each row again. Sweeping a million sessions inside
//! one write transaction held every login behind it for seconds.

use serde::Deserialize;

use super::error::StoreResult;
use super::tables::{PATS, REFRESH_TOKENS, SESSIONS};
use super::txn::{Queries, ReadTxn, WriteTxn};
use super::Store;
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

/// One page of a sweep: the keys found due, and where the next page starts
/// (`None` once the table has been read to its end).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepPage {
    pub due: Vec<String>,
    pub next: Option<String>,
}

/// The two fields a sweep judges a row by. Decoding only these (serde skips
/// the rest without building it) keeps a sweep of a million rows cheap.
#[derive(Deserialize)]
struct Ending {
    expires_at: UnixSeconds,
    #[serde(default)]
    revoked_at: Option<UnixSeconds>,
}

impl Ending {
    fn is_due(&self, sweep: Sweep, now: UnixSeconds) -> bool {
        let revoked_long_ago = sweep == Sweep::EndedSessions
            && self
                .revoked_at
                .is_some_and(|at| at + REVOKED_SESSION_KEPT_SECONDS < now);
        revoked_long_ago || self.expires_at <= now
    }
}

fn session_ended(session: &Session, now: UnixSeconds) -> bool {
    Ending {
        expires_at: session.expires_at,
        revoked_at: session.revoked_at,
    }
    .is_due(Sweep::EndedSessions, now)
}

impl ReadTxn {
    /// Reads up to `limit` rows after `after` and returns those due at `now`.
    pub fn sweep_page(
        &self,
        sweep: Sweep,
        now: UnixSeconds,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<SweepPage> {
        let table = match sweep {
            Sweep::EndedSessions => SESSIONS,
            Sweep::ExpiredRefreshTokens => REFRESH_TOKENS,
            Sweep::ExpiredPats => PATS,
        };
        let rows: Vec<(String, Ending)> = self.reader().scan(table, "", after, limit)?;
        let next = (rows.len() >= limit)
            .then(|| rows.last().map(|(key, _)| key.clone()))
            .flatten();
        Ok(SweepPage {
            due: rows
                .into_iter()
                .filter(|(_, ending)| ending.is_due(sweep, now))
                .map(|(key, _)| key)
                .collect(),
            next,
        })
    }
}

impl WriteTxn {
    /// Deletes those of `keys` that are still due at `now` (a row may have
    /// changed since its page was read); returns how many.
    pub fn sweep_delete(
        &self,
        sweep: Sweep,
        now: UnixSeconds,
        keys: &[String],
    ) -> StoreResult<usize> {
        let reader = self.reader();
        let mut removed = 0;
        for key in keys {
            let deleted = match sweep {
                Sweep::EndedSessions => match reader.get::<Session>(SESSIONS, key)? {
                    Some(session) if session_ended(&session, now) => {
                        self.delete_session(&session)?;
                        true
                    }
                    _ => false,
                },
                Sweep::ExpiredRefreshTokens => match self.refresh_token(key)? {
                    Some(token) if token.expires_at <= now => self.delete_refresh_token(key)?,
                    _ => false,
                },
                Sweep::ExpiredPats => match self.pat(key)? {
                    Some(pat) if pat.expires_at <= now => {
                        self.delete_pat(key, &pat)?;
                        true
                    }
                    _ => false,
                },
            };
            removed += usize::from(deleted);
        }
        Ok(removed)
    }
}

impl Store {
    /// Runs one sweep through its whole table in pages of `page_rows`: each
    /// page read in its own read transaction, and only a page with something
    /// due written, in its own transaction. Blocking; returns how many rows
    /// it removed.
    pub fn sweep(&self, sweep: Sweep, now: UnixSeconds, page_rows: usize) -> StoreResult<usize> {
        let mut after: Option<String> = None;
        let mut removed = 0;
        loop {
            let page = self.read(|txn| txn.sweep_page(sweep, now, after.as_deref(), page_rows))?;
            if !page.due.is_empty() {
                let due = page.due;
                removed += self.write(move |txn| txn.sweep_delete(sweep, now, &due))?;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(removed),
            }
        }
    }
}
