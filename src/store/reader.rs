//! Reading a table the same way from either kind of transaction: one point
//! read and a few ordered scans, each of which treats a table not yet
//! created as empty. [`super::Queries`] builds its typed reads on these.

use redb::{ReadableTable, TableHandle};
use serde::de::DeserializeOwned;

use super::error::StoreResult;
use super::memo::decode_memoized;
use super::postgres::{prefix_end, PgConn, Upper};
use super::tables::*;

/// Read access to the tables from either kind of transaction.
pub struct TableReader<'a>(pub(super) ReaderInner<'a>);

pub(super) enum ReaderInner<'a> {
    Read(&'a redb::ReadTransaction),
    Write(&'a redb::WriteTransaction),
    Postgres(&'a PgConn),
}

/// Decodes rows a PostgreSQL range query returned.
fn decode_rows<T: DeserializeOwned>(rows: Vec<(String, Vec<u8>)>) -> StoreResult<Vec<(String, T)>> {
    rows.into_iter()
        .map(|(key, value)| decode(&key, &value).map(|value| (key, value)))
        .collect()
}

impl TableReader<'_> {
    pub(crate) fn get<T: DeserializeOwned>(
        &self,
        table: JsonTable,
        key: &str,
    ) -> StoreResult<Option<T>> {
        self.get_decoded_by(table, key, decode)
    }

    /// [`Self::get`] for the records nearly every request reads (sessions,
    /// users, PATs): in a read transaction, decoded through the memo, which
    /// serves the decoded record while its bytes are unchanged. A write
    /// transaction decodes as usual: the single writer pays no copy.
    pub(crate) fn get_memoized<T>(&self, table: JsonTable, key: &str) -> StoreResult<Option<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.get_decoded_by(table, key, |key, bytes| {
            decode_memoized(table.name(), key, bytes)
        })
    }

    /// One point read; `in_read_txn` decodes what a read transaction finds.
    fn get_decoded_by<T: DeserializeOwned>(
        &self,
        table: JsonTable,
        key: &str,
        in_read_txn: impl FnOnce(&str, &[u8]) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        match &self.0 {
            ReaderInner::Read(txn) => match txn.open_table(table) {
                Ok(opened) => match opened.get(key)? {
                    Some(guard) => in_read_txn(key, guard.value()).map(Some),
                    None => Ok(None),
                },
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                Err(other) => Err(other.into()),
            },
            ReaderInner::Write(txn) => read_json(&txn.open_table(table)?, key),
            ReaderInner::Postgres(conn) => match conn.get(table.name(), key)? {
                Some(bytes) => decode(key, &bytes).map(Some),
                None => Ok(None),
            },
        }
    }

    pub(crate) fn scan<T: DeserializeOwned>(
        &self,
        table: JsonTable,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, T)>> {
        match &self.0 {
            ReaderInner::Read(txn) => match txn.open_table(table) {
                Ok(table) => scan_json(&table, prefix, after, limit),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(Vec::new()),
                Err(other) => Err(other.into()),
            },
            ReaderInner::Write(txn) => scan_json(&txn.open_table(table)?, prefix, after, limit),
            ReaderInner::Postgres(conn) => {
                let start = match after {
                    Some(after) if after >= prefix => after,
                    _ => prefix,
                };
                let end = prefix_end(prefix);
                let upper = end.as_deref().map_or(Upper::Unbounded, Upper::Before);
                let rows =
                    conn.range(table.name(), start, upper, false, limit.saturating_add(1))?;
                let rows = rows
                    .into_iter()
                    .filter(|(key, _)| Some(key.as_str()) != after)
                    .take_while(|(key, _)| key.starts_with(prefix))
                    .take(limit)
                    .collect();
                decode_rows(rows)
            }
        }
    }

    /// Up to `limit` keys in `start..end`, after `after` (exclusive), in key
    /// order; the values are not read.
    pub(crate) fn keys_between(
        &self,
        table: JsonTable,
        start: &str,
        end: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        fn collect(
            table: &impl ReadableTable<&'static str, &'static [u8]>,
            start: &str,
            end: &str,
            after: Option<&str>,
            limit: usize,
        ) -> StoreResult<Vec<String>> {
            let start = after.filter(|after| *after > start).unwrap_or(start);
            let mut keys = Vec::new();
            for entry in table.range(start..end)? {
                let key = entry?.0.value().to_owned();
                if Some(key.as_str()) == after {
                    continue;
                }
                keys.push(key);
                if keys.len() >= limit {
                    break;
                }
            }
            Ok(keys)
        }
        match &self.0 {
            ReaderInner::Read(txn) => match txn.open_table(table) {
                Ok(table) => collect(&table, start, end, after, limit),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(Vec::new()),
                Err(other) => Err(other.into()),
            },
            ReaderInner::Write(txn) => collect(&txn.open_table(table)?, start, end, after, limit),
            ReaderInner::Postgres(conn) => {
                let from = after.filter(|after| *after > start).unwrap_or(start);
                let rows = conn.range(
                    table.name(),
                    from,
                    Upper::Before(end),
                    false,
                    limit.saturating_add(1),
                )?;
                Ok(rows
                    .into_iter()
                    .map(|(key, _)| key)
                    .filter(|key| Some(key.as_str()) != after)
                    .take(limit)
                    .collect())
            }
        }
    }

    /// Rows in reverse key order (newest first for ULID keys), before `before`.
    pub(crate) fn scan_back<T: DeserializeOwned>(
        &self,
        table: JsonTable,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, T)>> {
        fn collect<T: DeserializeOwned>(
            table: &impl ReadableTable<&'static str, &'static [u8]>,
            prefix: &str,
            before: Option<&str>,
            limit: usize,
        ) -> StoreResult<Vec<(String, T)>> {
            let end = match before {
                Some(before) if before.starts_with(prefix) => before.to_owned(),
                _ => format!("{prefix}\u{10FFFF}"),
            };
            let mut rows = Vec::new();
            for entry in table.range(prefix..end.as_str())?.rev() {
                let (key, value) = entry?;
                rows.push((key.value().to_owned(), decode(key.value(), value.value())?));
                if rows.len() >= limit {
                    break;
                }
            }
            Ok(rows)
        }
        match &self.0 {
            ReaderInner::Read(txn) => match txn.open_table(table) {
                Ok(table) => collect(&table, prefix, before, limit),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(Vec::new()),
                Err(other) => Err(other.into()),
            },
            ReaderInner::Write(txn) => collect(&txn.open_table(table)?, prefix, before, limit),
            ReaderInner::Postgres(conn) => {
                let end = match before {
                    Some(before) if before.starts_with(prefix) => Some(before.to_owned()),
                    _ => prefix_end(prefix),
                };
                let upper = end.as_deref().map_or(Upper::Unbounded, Upper::Before);
                let rows = conn.range(table.name(), prefix, upper, true, limit)?;
                decode_rows(
                    rows.into_iter()
                        .filter(|(key, _)| key.starts_with(prefix))
                        .collect(),
                )
            }
        }
    }
}

impl TableReader<'_> {
    /// How many rows `table` holds (redb keeps the count; PostgreSQL counts).
    pub(crate) fn count(&self, table: JsonTable) -> StoreResult<u64> {
        use redb::ReadableTableMetadata;
        match &self.0 {
            ReaderInner::Read(txn) => match txn.open_table(table) {
                Ok(table) => Ok(table.len()?),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
                Err(other) => Err(other.into()),
            },
            ReaderInner::Write(txn) => Ok(txn.open_table(table)?.len()?),
            ReaderInner::Postgres(conn) => conn.count(table.name()),
        }
    }

    /// Every row of `table` as stored, in key order, a page at a time.
    pub(crate) fn each_raw(
        &self,
        table: JsonTable,
        mut visit: impl FnMut(&str, &[u8]) -> StoreResult<()>,
    ) -> StoreResult<()> {
        fn each(
            table: &impl ReadableTable<&'static str, &'static [u8]>,
            visit: &mut impl FnMut(&str, &[u8]) -> StoreResult<()>,
        ) -> StoreResult<()> {
            for entry in table.iter()? {
                let (key, value) = entry?;
                visit(key.value(), value.value())?;
            }
            Ok(())
        }
        match &self.0 {
            ReaderInner::Read(txn) => match txn.open_table(table) {
                Ok(table) => each(&table, &mut visit),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(()),
                Err(other) => Err(other.into()),
            },
            ReaderInner::Write(txn) => each(&txn.open_table(table)?, &mut visit),
            ReaderInner::Postgres(conn) => {
                const PAGE: usize = 1_000;
                let mut after: Option<String> = None;
                loop {
                    let start = after.clone().unwrap_or_default();
                    let rows =
                        conn.range(table.name(), &start, Upper::Unbounded, false, PAGE + 1)?;
                    let mut seen = 0;
                    for (key, value) in &rows {
                        if Some(key) == after.as_ref() {
                            continue;
                        }
                        visit(key, value)?;
                        seen += 1;
                    }
                    match rows.last() {
                        Some((last, _)) if seen > 0 => after = Some(last.clone()),
                        _ => return Ok(()),
                    }
                }
            }
        }
    }
}
