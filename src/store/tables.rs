//! Every redb table authd keeps, in one place, and the JSON codec for the
//! records in them. Keys are strings; values are JSON documents so that a
//! migration can read an older record shape with `#[serde(default)]`.

use redb::{ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{StoreError, StoreResult};

pub(crate) type JsonTable = TableDefinition<'static, &'static str, &'static [u8]>;

/// Schema version, instance id, creation time.
pub(crate) const META: JsonTable = TableDefinition::new("meta");

/// Every table that exists at the current schema version, for backups.
pub(crate) const ALL_TABLES: &[JsonTable] = &[META];

pub(crate) fn read_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> StoreResult<Option<T>> {
    match table.get(key)? {
        None => Ok(None),
        Some(guard) => serde_json::from_slice(guard.value())
            .map(Some)
            .map_err(|error| StoreError::Corrupt {
                key: key.to_owned(),
                message: error.to_string(),
            }),
    }
}

pub(crate) fn write_json<T: Serialize>(
    table: &mut redb::Table<&'static str, &'static [u8]>,
    key: &str,
    value: &T,
) -> StoreResult<()> {
    let bytes = serde_json::to_vec(value).map_err(|error| StoreError::Corrupt {
        key: key.to_owned(),
        message: error.to_string(),
    })?;
    table.insert(key, bytes.as_slice())?;
    Ok(())
}
