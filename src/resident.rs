//! Giving back the resident pages that only start-up used.
//!
//! A static-PIE binary applies its own relocations at start, reading its
//! whole relocation table, and start-up runs code that requests never run
//! again (the CLI, config parsing, migrations, the first signing key). The
//! kernel keeps every page it mapped for that, and the neighbours of each
//! (fault-around maps 64 KiB at a time), so they count in the RSS for the
//! life of the process: on a 14 MiB binary, most of its text.
//!
//! Once start-up is over, the read-only mappings of our own binary are
//! dropped with `MADV_DONTNEED`. The pages stay in the page cache; what
//! requests still run is mapped again on first use, a minor fault with no
//! I/O. Only mappings with no private copy of any page are dropped: for a
//! writable mapping, or a read-only one written before (relocated data made
//! read-only after), dropping would throw away the written bytes.

use std::path::{Path, PathBuf};

/// Drops the clean, read-only mappings of the running binary and says how
/// many bytes were resident in them.
pub fn release_start_up_pages() -> std::io::Result<u64> {
    let executable = std::fs::read_link("/proc/self/exe")?;
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut released = 0;
    for mapping in droppable(&smaps, &executable) {
        // SAFETY: the range is a whole mapping of our own binary's file,
        // not writable and with no private page (checked in `droppable`),
        // so after `MADV_DONTNEED` every byte reads back the same from the
        // file on the next access; no Rust reference can observe a change.
        let status = unsafe {
            libc::madvise(
                mapping.start as *mut libc::c_void,
                mapping.length,
                libc::MADV_DONTNEED,
            )
        };
        if status == 0 {
            released += mapping.resident_bytes;
        }
    }
    Ok(released)
}

#[derive(Debug, PartialEq)]
struct Mapping {
    start: usize,
    length: usize,
    resident_bytes: u64,
}

/// The mappings of `executable` in `smaps` that are read-only and hold no
/// private (anonymous) page.
fn droppable(smaps: &str, executable: &Path) -> Vec<Mapping> {
    struct Current {
        start: usize,
        end: usize,
        eligible: bool,
        resident_kib: u64,
        private_kib: u64,
    }
    let mut found = Vec::new();
    let mut current: Option<Current> = None;
    let mut finish = |current: Option<Current>| {
        if let Some(c) = current.filter(|c| c.eligible && c.private_kib == 0) {
            found.push(Mapping {
                start: c.start,
                length: c.end - c.start,
                resident_bytes: c.resident_kib * 1024,
            });
        }
    };
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            finish(current.take());
            let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) else {
                continue;
            };
            let permissions = fields.next().unwrap_or_default();
            let path = fields.nth(3).map(PathBuf::from);
            current = Some(Current {
                start,
                end,
                eligible: permissions.starts_with('r')
                    && !permissions.contains('w')
                    && path.as_deref() == Some(executable),
                resident_kib: 0,
                private_kib: 0,
            });
        } else if let Some(current) = current.as_mut() {
            let kib = fields
                .next()
                .and_then(|k| k.parse::<u64>().ok())
                .unwrap_or(0);
            match first {
                "Rss:" => current.resident_kib = kib,
                // A written page of a private file mapping is an anonymous
                // copy. (`Private_Dirty` also counts page-cache pages not
                // yet written back, e.g. of a binary just linked: those
                // are the file's and safe to drop.)
                "Anonymous:" | "Swap:" => current.private_kib += kib,
                _ => {}
            }
        }
    }
    finish(current);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d000000000-55d000010000 r--p 00000000 fe:00 42 /usr/bin/authd
Rss:                  64 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
55d000010000-55d000090000 r-xp 00010000 fe:00 42 /usr/bin/authd
Rss:                 512 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d000090000-55d0000a0000 r--p 00090000 fe:00 42 /usr/bin/authd
Rss:                  64 kB
Private_Dirty:        64 kB
Anonymous:            32 kB
55d0000a0000-55d0000b0000 rw-p 000a0000 fe:00 42 /usr/bin/authd
Rss:                  64 kB
Private_Dirty:         8 kB
Anonymous:             8 kB
7f0000000000-7f0000010000 r-xp 00000000 fe:00 7 /usr/lib/other.so
Rss:                  64 kB
Anonymous:             0 kB
7f0000020000-7f0000030000 rw-p 00000000 00:00 0
Rss:                  64 kB
Anonymous:            64 kB
";

    #[test]
    fn only_clean_read_only_mappings_of_the_binary_are_dropped() {
        let found = droppable(SMAPS, Path::new("/usr/bin/authd"));
        assert_eq!(
            found,
            vec![
                Mapping {
                    start: 0x55d0_0000_0000,
                    length: 0x10000,
                    resident_bytes: 64 * 1024
                },
                Mapping {
                    start: 0x55d0_0001_0000,
                    length: 0x80000,
                    resident_bytes: 512 * 1024
                },
            ]
        );
    }

    #[test]
    fn the_running_test_binary_can_drop_its_own_pages() {
        let released = release_start_up_pages().expect("smaps");
        // Whatever was dropped is read back: this call runs code from it.
        assert!(released > 0, "{released}");
    }
}
