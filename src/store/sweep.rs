//! Housekeeping sweeps of the tables that grow with use (sessions, refresh
//! tokens, PATs), a page at a time. A page is *found* in a read transaction,
//! which never holds up writers, and only a page with something due costs a
//! write, which checks each row again. Sweeping a million sessions inside
//! one write transaction held every login behind it for seconds.

use serde::de::DeserializeOwned;

use super::error::StoreResult;
use super::tables::{JsonTable, PATS, REFRESH_TOKENS, SESSIONS};
use super::txn::{PersonalAccessToken, Queries, ReadTxn, RefreshToken, TableReader, WriteTxn};
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

fn session_ended(session: &Session, now: UnixSeconds) -> bool {
    session
        .revoked_at
        .is_some_and(|at| at + REVOKED_SESSION_KEPT_SECONDS < now)
        || session.expires_at <= now
}

fn page<T: DeserializeOwned>(
    reader: TableReader<'_>,
    table: JsonTable,
    after: Option<&str>,
    limit: usize,
    due: impl Fn(&T) -> bool,
) -> StoreResult<SweepPage> {
    let rows: Vec<(String, T)> = reader.scan(table, "", after, limit)?;
    let next = (rows.len() >= limit)
        .then(|| rows.last().map(|(key, _)| key.clone()))
        .flatten();
    Ok(SweepPage {
        due: rows
            .into_iter()
            .filter(|(_, row)| due(row))
            .map(|(key, _)| key)
            .collect(),
        next,
    })
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
        let reader = self.reader();
        match sweep {
            Sweep::EndedSessions => page(reader, SESSIONS, after, limit, |s: &Session| {
                session_ended(s, now)
            }),
            Sweep::ExpiredRefreshTokens => {
                page(reader, REFRESH_TOKENS, after, limit, |t: &RefreshToken| {
                    t.expires_at <= now
                })
            }
            Sweep::ExpiredPats => page(reader, PATS, after, limit, |p: &PersonalAccessToken| {
                p.expires_at <= now
            }),
        }
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
                Sweep::ExpiredRefreshTokens => {
                    match reader.get::<RefreshToken>(REFRESH_TOKENS, key)? {
                        Some(token) if token.expires_at <= now => self.delete_refresh_token(key)?,
                        _ => false,
                    }
                }
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
