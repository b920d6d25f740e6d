//! Brute-force defence in memory: failed logins per client IP and per account
//! in one-minute windows (429 with `Retry-After` past the limit), and a
//! progressive delay that grows with consecutive failures on an account.
//!
//! Only failures count, so a person who types their password right is never
//! slowed by their own logins. The tables are bounded: past
//! [`MAX_TRACKED_KEYS`] keys, expired entries are dropped first and then the
//! oldest, so a flood of distinct IPs or emails cannot grow memory without
//! bound (it can at worst make the limiter forget the oldest keys).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::UnixSeconds;
use crate::config::LimitsConfig;

pub const MAX_TRACKED_KEYS: usize = 100_000;
const WINDOW_SECONDS: UnixSeconds = 60;
/// Consecutive failures before the delay starts, and its ceiling.
const FREE_FAILURES: u32 = 3;
const MAX_DELAY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
struct Window {
    started_at: UnixSeconds,
    failures: u32,
    /// Failures since the last success, across windows.
    consecutive: u32,
    last_seen: UnixSeconds,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<String, Window>,
}

impl Table {
    fn current(&self, key: &str, now: UnixSeconds) -> Option<Window> {
        self.entries.get(key).copied().map(|mut window| {
            if now >= window.started_at + WINDOW_SECONDS {
                window.started_at = now;
                window.failures = 0;
            }
            window
        })
    }

    fn record_failure(&mut self, key: &str, now: UnixSeconds) -> Window {
        if !self.entries.contains_key(key) && self.entries.len() >= MAX_TRACKED_KEYS {
            self.make_room(now);
        }
        let mut window = self.current(key, now).unwrap_or(Window {
            started_at: now,
            failures: 0,
            consecutive: 0,
            last_seen: now,
        });
        window.failures += 1;
        window.consecutive += 1;
        window.last_seen = now;
        self.entries.insert(key.to_owned(), window);
        window
    }

    fn make_room(&mut self, now: UnixSeconds) {
        // Entries idle for a few windows have nothing left to say.
        self.entries
            .retain(|_, w| now < w.last_seen + 5 * WINDOW_SECONDS);
        if self.entries.len() >= MAX_TRACKED_KEYS {
            let mut by_age: Vec<(UnixSeconds, String)> = self
                .entries
                .iter()
                .map(|(k, w)| (w.last_seen, k.clone()))
                .collect();
            by_age.sort_unstable();
            for (_, key) in by_age.into_iter().take(MAX_TRACKED_KEYS / 10) {
                self.entries.remove(&key);
            }
        }
    }
}

pub struct LoginLimiter {
    per_ip_per_minute: u32,
    per_account_per_minute: u32,
    by_ip: Mutex<Table>,
    by_account: Mutex<Table>,
}

/// Why a login may not even be tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after_seconds: u64,
}

fn lock(table: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    match table.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl LoginLimiter {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            per_ip_per_minute: config.login_per_ip_per_min,
            per_account_per_minute: config.login_per_account_per_min,
            by_ip: Mutex::new(Table::default()),
            by_account: Mutex::new(Table::default()),
        }
    }

    /// Checks both limits before any password work is done.
    pub fn check(&self, ip: &str, account: &str, now: UnixSeconds) -> Result<(), Throttled> {
        let over = |table: &Mutex<Table>, key: &str, limit: u32| {
            lock(table)
                .current(key, now)
                .filter(|w| w.failures >= limit)
                .map(|w| Throttled {
                    retry_after_seconds: u64::try_from(w.started_at + WINDOW_SECONDS - now)
                        .unwrap_or(1)
                        .max(1),
                })
        };
        let ip_over = over(&self.by_ip, ip, self.per_ip_per_minute);
        let account_over = over(&self.by_account, account, self.per_account_per_minute);
        match (ip_over, account_over) {
            (Some(a), Some(b)) => Err(if a.retry_after_seconds >= b.retry_after_seconds {
                a
            } else {
                b
            }),
            (Some(t), None) | (None, Some(t)) => Err(t),
            (None, None) => Ok(()),
        }
    }

    /// The pause before answering an attempt on `account`, growing with its
    /// consecutive failures: 0 for the first few, then 250 ms doubling to 2 s.
    pub fn delay_for(&self, account: &str, now: UnixSeconds) -> Duration {
        let consecutive = lock(&self.by_account)
            .entries
            .get(account)
            .filter(|w| now < w.last_seen + 15 * WINDOW_SECONDS)
            .map_or(0, |w| w.consecutive);
        if consecutive < FREE_FAILURES {
            return Duration::ZERO;
        }
        let doublings = (consecutive - FREE_FAILURES).min(8);
        (Duration::from_millis(250) * 2u32.pow(doublings)).min(MAX_DELAY)
    }

    pub fn record_failure(&self, ip: &str, account: &str, now: UnixSeconds) {
        lock(&self.by_ip).record_failure(ip, now);
        lock(&self.by_account).record_failure(account, now);
    }

    /// A success clears the account's failure streak (not the IP's window).
    pub fn record_success(&self, account: &str) {
        lock(&self.by_account).entries.remove(account);
    }

    pub fn tracked_keys(&self) -> usize {
        lock(&self.by_ip).entries.len() + lock(&self.by_account).entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_ip: u32, per_account: u32) -> LoginLimiter {
        LoginLimiter::new(&LimitsConfig {
            login_per_ip_per_min: per_ip,
            login_per_account_per_min: per_account,
            ..LimitsConfig::default()
        })
    }

    #[test]
    fn the_account_limit_trips_after_its_failures_and_resets_with_the_window() {
        let limiter = limiter(100, 5);
        for _ in 0..5 {
            assert!(limiter.check("1.1.1.1", "a", 1000).is_ok());
            limiter.record_failure("1.1.1.1", "a", 1000);
        }
        let throttled = limiter.check("1.1.1.1", "a", 1010).expect_err("limited");
        assert_eq!(throttled.retry_after_seconds, 50);
        assert!(
            limiter.check("1.1.1.1", "b", 1010).is_ok(),
            "other accounts are fine"
        );
        assert!(limiter.check("1.1.1.1", "a", 1060).is_ok(), "a new window");
    }

    #[test]
    fn the_ip_limit_spans_accounts() {
        let limiter = limiter(3, 100);
        for account in ["a", "b", "c"] {
            limiter.record_failure("9.9.9.9", account, 0);
        }
        assert!(limiter.check("9.9.9.9", "d", 1).is_err());
        assert!(limiter.check("8.8.8.8", "d", 1).is_ok());
    }

    #[test]
    fn the_delay_grows_with_consecutive_failures_and_a_success_clears_it() {
        let limiter = limiter(1000, 1000);
        let mut delays = Vec::new();
        for _ in 0..8 {
            delays.push(limiter.delay_for("a", 0));
            limiter.record_failure("ip", "a", 0);
        }
        assert_eq!(delays[0], Duration::ZERO);
        assert_eq!(delays[3], Duration::from_millis(250));
        assert_eq!(delays[4], Duration::from_millis(500));
        assert_eq!(delays[7], MAX_DELAY);
        limiter.record_success("a");
        assert_eq!(limiter.delay_for("a", 0), Duration::ZERO);
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_bounded() {
        let limiter = limiter(10, 5);
        for i in 0..(MAX_TRACKED_KEYS + 5_000) {
            let key = i.to_string();
            limiter.record_failure(&key, &key, 0);
        }
        assert!(limiter.tracked_keys() <= 2 * MAX_TRACKED_KEYS);
    }
}
