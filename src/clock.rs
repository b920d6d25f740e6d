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

fn parse_time(text: &str) -> Option<UnixSeconds> {
    humantime::parse_rfc3339_weak(text)
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|since| UnixSeconds::try_from(since.as_secs()).ok())
}

/// A time as the API shows every time, RFC 3339 (`2026-12-04T05:59:47Z`),
/// for `#[serde(with = "crate::clock::as_rfc3339")]`. Read back from that
/// or from Unix seconds, as records written by earlier versions hold it.
pub mod as_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::UnixSeconds;

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub(super) enum Stored {
        Seconds(UnixSeconds),
        Text(String),
    }

    impl Stored {
        pub(super) fn seconds<E: serde::de::Error>(self) -> Result<UnixSeconds, E> {
            match self {
                Stored::Seconds(seconds) => Ok(seconds),
                Stored::Text(text) => super::parse_time(&text)
                    .ok_or_else(|| E::custom(format!("{text:?} is not an RFC 3339 time"))),
            }
        }
    }

    pub fn serialize<S: Serializer>(
        seconds: &UnixSeconds,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::rfc3339(*seconds))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<UnixSeconds, D::Error> {
        Stored::deserialize(deserializer)?.seconds()
    }
}

/// [`as_rfc3339`] for an optional time (`null` when absent).
pub mod as_rfc3339_option {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::as_rfc3339::Stored;
    use super::UnixSeconds;

    pub fn serialize<S: Serializer>(
        seconds: &Option<UnixSeconds>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match seconds {
            Some(seconds) => serializer.serialize_str(&super::rfc3339(*seconds)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<UnixSeconds>, D::Error> {
        Option::<Stored>::deserialize(deserializer)?
            .map(Stored::seconds)
            .transpose()
    }
}

#[cfg(test)]
mod wire_time_tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Record {
        #[serde(with = "as_rfc3339")]
        at: UnixSeconds,
        #[serde(with = "as_rfc3339_option", default)]
        resolved_at: Option<UnixSeconds>,
    }

    #[test]
    fn times_are_written_as_rfc3339_and_read_from_either_form() {
        let record = Record {
            at: 1_796_363_987,
            resolved_at: None,
        };
        let text = serde_json::to_string(&record).expect("json");
        assert_eq!(text, r#"{"at":"2026-12-04T05:59:47Z","resolved_at":null}"#);
        assert_eq!(serde_json::from_str::<Record>(&text).expect("back"), record);
        let older: Record =
            serde_json::from_str(r#"{"at":1796363987,"resolved_at":1796363990}"#).expect("older");
        assert_eq!(
            older,
            Record {
                at: 1_796_363_987,
                resolved_at: Some(1_796_363_990)
            }
        );
        assert!(serde_json::from_str::<Record>(r#"{"at":"yesterday"}"#).is_err());
    }
}
