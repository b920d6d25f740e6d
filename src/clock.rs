//! The one place that reads the wall clock. Everything else takes `now` as a
//! parameter so that expiry logic can be tested with any instant.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, the unit of every stored timestamp.
pub type UnixSeconds = i64;

pub fn now() -> UnixSeconds {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(elapsed) => i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX),
        // A clock set before 1970 is a broken host; treat it as the epoch.
        Err(_) => 0,
    }
}

/// RFC 3339 rendering of a stored timestamp, for API responses.
pub fn rfc3339(seconds: UnixSeconds) -> String {
    let clamped = u64::try_from(seconds).unwrap_or(0);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(clamped))
        .to_string()
}
