//! Housekeeping sweeps of the tables that grow with use (sessions, refresh
//! tokens, PATs), and the index that makes them cheap: `sweep_due` holds one
//! row `<kind>/<due at>/<key>` for every row of those tables, kept in step
//! by the writes in `txn`, so a sweep reads only the rows that are due, in
//! time order, instead of the whole table (a million PATs took 4.3 s of a
//! core to read at every start). A page of due keys is found in a read
//! transaction, which never holds up writers, and deleted in a write that
//! checks each row again.

use super::due::{due_key, session_due_at, swept_key, Ending, Sweep};
use super::error::StoreResult;
use super::tables::{SESSIONS, SWEEP_DUE};
use super::txn::{Queries, ReadTxn, WriteTxn};
use super::Store;
use crate::clock::UnixSeconds;
use crate::domain::Session;

/// One page of a sweep: the `sweep_due` keys found due, and where the next
/// page starts (`None` once every due key has been read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepPage {
    pub due: Vec<String>,
    pub next: Option<String>,
}

/// Builds `sweep_due` from the rows already in a file (schema v6).
pub(crate) fn index_existing_rows(txn: &redb::WriteTransaction) -> StoreResult<()> {
    use redb::ReadableTable;
    let mut due = txn.open_table(SWEEP_DUE)?;
    for sweep in Sweep::ALL {
        let rows = txn.open_table(sweep.table())?;
        for entry in rows.iter()? {
            let (key, value) = entry?;
            let key = key.value();
            let ending: Ending = super::tables::decode(key, value.value())?;
            due.insert(
                due_key(sweep, ending.due_at(sweep), key).as_str(),
                b"null".as_slice(),
            )?;
        }
    }
    Ok(())
}

impl ReadTxn {
    /// Up to `limit` `sweep_due` keys of `sweep` that are due at `now`,
    /// after `after` (exclusive), oldest first.
    pub fn sweep_page(
        &self,
        sweep: Sweep,
        now: UnixSeconds,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<SweepPage> {
        let first_not_due = due_key(sweep, now.saturating_add(1), "");
        let due: Vec<String> =
            self.reader()
                .keys_between(SWEEP_DUE, sweep.prefix(), &first_not_due, after, limit)?;
        let next = (due.len() >= limit).then(|| due.last().cloned()).flatten();
        Ok(SweepPage { due, next })
    }
}

impl WriteTxn {
    /// Deletes the rows that `due` (keys of `sweep_due`) point at if they are
    /// still due at `now` (a row may have changed since its page was read),
    /// with their index rows; returns how many rows it deleted.
    pub fn sweep_delete(
        &self,
        sweep: Sweep,
        now: UnixSeconds,
        due: &[String],
    ) -> StoreResult<usize> {
        let mut removed = 0;
        for due_key in due {
            let Some(key) = swept_key(sweep, due_key) else {
                continue;
            };
            let deleted = match sweep {
                Sweep::EndedSessions => match self.reader().get::<Session>(SESSIONS, key)? {
                    Some(session) if session_due_at(&session) <= now => {
                        self.delete_session(&session)?;
                        true
                    }
                    _ => false,
                },
                Sweep::ExpiredRefreshTokens => match self.refresh_token(key)? {
                    Some(token) if token.expires_at <= now => {
                        self.delete_read_refresh_token(key, &token)?
                    }
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
            // A key whose row moved on (or went) since the page was read is
            // stale; the row's current key was written beside it.
            self.remove_sweep_due(due_key)?;
            removed += usize::from(deleted);
        }
        Ok(removed)
    }
}

impl Store {
    /// Runs one sweep over what is due at `now`, in pages of `page_rows`:
    /// each page found in its own read transaction and deleted in its own
    /// write. Blocking; returns how many rows it removed.
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
