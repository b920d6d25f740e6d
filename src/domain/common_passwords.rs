//! The embedded list of common passwords (`common-passwords.txt` beside
//! this file): one sorted text blob, binary-searched where it lies. Plain
//! bytes need no relocations, so the list costs its ~0.8 MB of file and is
//! paged in only where a search touches it; the `passwords` crate's table
//! of 100k `&str`, which it replaces, needed a relocation per entry (~3.7
//! MiB of file, paged in at every start).
//!
//! The 99,838 entries are that crate's list (`passwords` 3.1.19,
//! `data/common-passwords.json`, MIT License, Copyright (c) 2018
//! magiclen.org (Ron Li)), one per line, sorted by bytes.

use std::cmp::Ordering;

static LIST: &str = include_str!("common-passwords.txt");

/// Whether `password` is on the list, exactly (byte for byte).
pub fn contains(password: &str) -> bool {
    let list = LIST.as_bytes();
    let wanted = password.as_bytes();
    // `low` and `high` are always line starts (or the end); each step looks
    // at the line around the middle byte.
    let (mut low, mut high) = (0, list.len());
    while low < high {
        let middle = low + (high - low) / 2;
        let start = list[low..middle]
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(low, |newline| low + newline + 1);
        let end = list[start..high]
            .iter()
            .position(|&byte| byte == b'\n')
            .map_or(high, |newline| start + newline);
        match list[start..end].cmp(wanted) {
            Ordering::Equal => return true,
            Ordering::Less => low = end + 1,
            Ordering::Greater => high = start,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> impl Iterator<Item = &'static str> {
        LIST.lines()
    }

    #[test]
    fn the_list_is_sorted_unique_and_has_no_empty_lines() {
        let all: Vec<&str> = entries().collect();
        assert_eq!(all.len(), 99_838);
        assert!(LIST.ends_with('\n'));
        assert!(all.iter().all(|entry| !entry.is_empty()));
        assert!(all.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn every_entry_is_found() {
        for entry in entries() {
            assert!(contains(entry), "{entry:?}");
        }
    }

    #[test]
    fn near_misses_are_not_found() {
        let all: Vec<&str> = entries().collect();
        for entry in entries().step_by(97) {
            for miss in [format!("{entry}\u{1}"), format!("\u{1}{entry}")] {
                assert!(!contains(&miss), "{miss:?}");
            }
            let shorter = &entry[..entry.len() - entry.chars().last().map_or(0, char::len_utf8)];
            if all.binary_search(&shorter).is_err() {
                assert!(!contains(shorter), "{shorter:?}");
            }
        }
        for miss in [
            "",
            "\n",
            "password\npassword",
            "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
            "\u{0}",
        ] {
            assert!(!contains(miss), "{miss:?}");
        }
    }

    #[test]
    fn well_known_ones_are_there() {
        for known in ["password", "123456", "qwerty", "letmein", "iloveyou"] {
            assert!(contains(known), "{known}");
        }
    }
}
