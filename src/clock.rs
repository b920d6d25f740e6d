//! The one place that reads the wall clock. Services take their time from
//! the [`Clock`] they hold — the system's in the server, a manual one in
//! tests, so expiry can be tested without waiting — and pass `now` down as
//! a parameter. `clippy.toml` keeps `SystemTime::now` in this file and
//! `Clock::system` at the edges (`app`, `cli`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, the unit of every stored timestamp.
pub type UnixSeconds = i64;

#[allow(clippy::disallowed_methods)] // The one read of the wall clock.
fn wall_clock() -> UnixSeconds {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(elapsed) => i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX),
        // A clock set before 1970 is a broken host; treat it as the epoch.
        Err(_) => 0,
    }
}

/// Where the time comes from: the system, or a hand that a test moves.
#[derive(Debug, Clone)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock that stands at `start` until a test moves it.
    pub fn manual(start: UnixSeconds) -> Self {
        Self {
            manual: Some(Arc::new(AtomicI64::new(start))),
        }
    }

    pub fn now(&self) -> UnixSeconds {
        match &self.manual {
            Some(time) => time.load(Ordering::SeqCst),
            None => wall_clock(),
        }
    }

    /// Moves a manual clock on; the system clock cannot be moved.
    pub fn advance(&self, seconds: UnixSeconds) {
        if let Some(time) = &self.manual {
            time.fetch_add(seconds, Ordering::SeqCst);
        }
    }
}

/// RFC 3339 rendering of a stored timestamp, for API responses.
pub fn rfc3339(seconds: UnixSeconds) -> String {
    let clamped = u64::try_from(seconds).unwrap_or(0);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(clamped))
        .to_string()
}
