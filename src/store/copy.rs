//! Copying every table from one backend to another, for
//! `authd migrate-storage`: a redb file into an empty PostgreSQL database, or
//! either backend into a new redb file. Rows are copied as stored (the same
//! JSON either way) from one read snapshot, and each table's rows are then
//! counted again at the destination.

use std::path::Path;

use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};

use super::error::{StoreError, StoreResult};
use super::postgres::Postgres;
use super::tables::{ALL_TABLES, META};
use super::txn::{Queries, REWRITE_PENDING_KEY};
use super::Store;

/// One table's rows: how many the snapshot held and how many the copy has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: &'static str,
    pub source_rows: u64,
    pub copied_rows: u64,
}

impl TableCopy {
    pub fn matches(&self) -> bool {
        self.source_rows == self.copied_rows
    }
}

impl Store {
    /// Copies every row into the PostgreSQL database at `url`, which must
    /// hold no authd rows yet, in one transaction. Blocking.
    pub fn copy_to_postgres(&self, url: &str) -> StoreResult<Vec<TableCopy>> {
        let target = Postgres::new(url)?;
        target.prepare_schema()?;
        let conn = target.connect()?;
        conn.begin_write_run()?;
        let copied = (|| {
            if conn.range_is_empty()? {
                let mut copies = Vec::new();
                self.read(|txn| {
                    for definition in ALL_TABLES {
                        let table = definition.name();
                        let mut source_rows = 0;
                        txn.each_raw_row(*definition, |key, value| {
                            source_rows += 1;
                            conn.put(table, key, value)
                        })?;
                        copies.push((table, source_rows));
                    }
                    Ok::<_, StoreError>(())
                })?;
                Ok(copies)
            } else {
                Err(StoreError::Writer(format!(
                    "{} already holds authd data; migrate into an empty database",
                    crate::config::mask_url(url)
                )))
            }
        })();
        let copies = match copied {
            Ok(copies) => copies,
            Err(error) => {
                let _ = conn.batch("ROLLBACK");
                return Err(error);
            }
        };
        conn.batch("COMMIT")?;
        copies
            .into_iter()
            .map(|(table, source_rows)| {
                Ok(TableCopy {
                    table,
                    source_rows,
                    copied_rows: conn.count(table)?,
                })
            })
            .collect()
    }

    /// Copies every row into a new redb file at `destination` (mode 0600;
    /// it must not exist). Blocking.
    pub fn copy_to_file(&self, destination: &Path) -> StoreResult<Vec<TableCopy>> {
        let mut source_counts = Vec::new();
        self.read(|txn| {
            // A copy leaves out the rewrite marker: it is a fresh file.
            let marker = txn.meta::<bool>(REWRITE_PENDING_KEY)?.is_some();
            for definition in ALL_TABLES {
                let mut rows = txn.count_rows(*definition)?;
                if definition.name() == META.name() && marker {
                    rows -= 1;
                }
                source_counts.push((definition.name(), rows));
            }
            Ok::<_, StoreError>(())
        })?;
        self.backup_to(destination)?;
        let copy = redb::Database::open(destination).map_err(|e| StoreError::Database(e.into()))?;
        let txn = copy.begin_read()?;
        source_counts
            .into_iter()
            .zip(ALL_TABLES)
            .map(|((table, source_rows), definition)| {
                let copied_rows = match txn.open_table(*definition) {
                    Ok(rows) => rows.len()?,
                    Err(redb::TableError::TableDoesNotExist(_)) => 0,
                    Err(other) => return Err(other.into()),
                };
                Ok(TableCopy {
                    table,
                    source_rows,
                    copied_rows,
                })
            })
            .collect()
    }
}
