//! Reading a table the same way from either kind of transaction: one point
//! read and a few ordered scans, each of which treats a table not yet
//! created as empty. [`super::Queries`] builds its typed reads on these.

use redb::ReadableTable;
use serde::de::DeserializeOwned;

use super::error::StoreResult;
use super::tables::*;

/// Read access to the tables from either kind of transaction.
pub struct TableReader<'a>(pub(super) ReaderInner<'a>);

pub(super) enum ReaderInner<'a> {
    Read(&'a redb::ReadTransaction),
    Write(&'a redb::WriteTransaction),
}

impl TableReader<'_> {
    pub(crate) fn get<T: DeserializeOwned>(
        &self,
        table: JsonTable,
        key: &str,
    ) -> StoreResult<Option<T>> {
        match &self.0 {
            ReaderInner::Read(txn) => match txn.open_table(table) {
                Ok(table) => read_json(&table, key),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                Err(other) => Err(other.into()),
            },
            ReaderInner::Write(txn) => read_json(&txn.open_table(table)?, key),
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
        }
    }
}
