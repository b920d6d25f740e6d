//! Decoded records the request path reads again and again (a session, its
//! user, a PAT), kept beside the bytes they were decoded from.
//!
//! Decoding a record's JSON was a quarter of a forward-auth check's
//! instructions, spent again on every request for the same few records.
//! An entry is used only when the bytes just read are exactly the bytes it
//! was decoded from, so it can never be stale: a record that changed, moved
//! or went away reads differently and is decoded afresh. Nothing has to be
//! invalidated, and the memo needs no tie to a particular store.
//!
//! Direct-mapped: a fixed number of slots, each holding one record, picked
//! by a hash of table and key; a colliding record replaces the one there.
//! Memory is bounded by the slot count times the size of a hot record (a
//! few hundred bytes), and a slot's lock is held for a compare and a clone.

use std::any::Any;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use serde::de::DeserializeOwned;

use super::error::StoreResult;
use super::tables::decode;

const SLOTS: usize = 256;

struct Entry {
    table: Box<str>,
    key: Box<str>,
    bytes: Box<[u8]>,
    value: Box<dyn Any + Send + Sync>,
}

static MEMO: [Mutex<Option<Entry>>; SLOTS] = [const { Mutex::new(None) }; SLOTS];

fn slot(table: &str, key: &str) -> &'static Mutex<Option<Entry>> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    table.hash(&mut hasher);
    key.hash(&mut hasher);
    &MEMO[(hasher.finish() as usize) % SLOTS]
}

/// `bytes` (the record `key` of `table`) decoded: the memo's copy when it
/// was decoded from these very bytes, else decoded now and remembered.
pub(crate) fn decode_memoized<T>(table: &str, key: &str, bytes: &[u8]) -> StoreResult<T>
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    let slot = slot(table, key);
    if let Ok(entry) = slot.lock() {
        if let Some(entry) = entry.as_ref() {
            if &*entry.table == table && &*entry.key == key && &*entry.bytes == bytes {
                if let Some(value) = entry.value.downcast_ref::<T>() {
                    return Ok(value.clone());
                }
            }
        }
    }
    let value: T = decode(key, bytes)?;
    let entry = Entry {
        table: table.into(),
        key: key.into(),
        bytes: bytes.into(),
        value: Box::new(value.clone()),
    };
    if let Ok(mut slot) = slot.lock() {
        // The entry replaced is freed before the guard is let go (its
        // binding outlives the block): a few frees, and only on a miss.
        let _replaced = slot.replace(entry);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
    struct Record {
        n: u32,
    }

    #[test]
    fn a_changed_record_is_decoded_again_and_never_served_stale() {
        let first: Record = decode_memoized("memo_test", "k", br#"{"n":1}"#).unwrap();
        let again: Record = decode_memoized("memo_test", "k", br#"{"n":1}"#).unwrap();
        let changed: Record = decode_memoized("memo_test", "k", br#"{"n":2}"#).unwrap();
        assert_eq!((first.n, again.n, changed.n), (1, 1, 2));
        // Same bytes under another key or table are that record's own.
        let other: Record = decode_memoized("memo_test", "other", br#"{"n":3}"#).unwrap();
        let elsewhere: Record = decode_memoized("memo_test2", "k", br#"{"n":4}"#).unwrap();
        assert_eq!((other.n, elsewhere.n), (3, 4));
        assert_eq!(
            decode_memoized::<Record>("memo_test", "k", br#"{"n":2}"#).unwrap(),
            Record { n: 2 }
        );
    }

    #[test]
    fn bytes_that_decode_to_another_type_are_decoded_as_the_type_asked_for() {
        let number: u32 = decode_memoized("memo_test_types", "k", b"7").unwrap();
        let float: f64 = decode_memoized("memo_test_types", "k", b"7").unwrap();
        assert_eq!((number, float), (7, 7.0));
        assert!(decode_memoized::<Record>("memo_test_types", "k", b"7").is_err());
    }
}
