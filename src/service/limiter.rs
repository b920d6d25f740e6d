//! Brute-force defence in memory: failed credential checks per client
//! address and per account in one-minute windows (429 with `Retry-After`
//! past the limit), a progressive delay that grows with consecutive
//! failures on an account, sign-up attempts per address, and
//! password-recovery requests per address and per account in one-hour
//! windows.
//!
//! Only failures count for logins, so a person who types their password
//! right is never slowed by their own logins; every sign-up counts, since
//! each costs a hash and writes. An account is counted by what the input
//! resolved to (the user's id, or for an unknown email the org's id and the
//! normalised email), so spelling the org or email differently does not buy
//! a fresh counter; an IPv6 client is counted by its /64, which one
//! subscriber usually holds whole.
//!
//! The tables are bounded: keys are fixed-size digests, and past
//! [`MAX_TRACKED_KEYS`] keys, expired entries are dropped first and then the
//! oldest, so a flood of distinct addresses or emails cannot grow memory
//! without bound (it can at worst make the limiter forget the oldest keys).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::UnixSeconds;
use crate::config::LimitsConfig;
use crate::domain::{OrgId, UserId};
use crate::metrics::METRICS;
use crate::store::SharedCounts;

pub const MAX_TRACKED_KEYS: usize = 100_000;
const WINDOW_SECONDS: UnixSeconds = 60;
const RECOVERY_WINDOW_SECONDS: UnixSeconds = 3600;
/// Consecutive failures before the delay starts, and its ceiling.
const FREE_FAILURES: u32 = 3;
const MAX_DELAY: Duration = Duration::from_secs(2);

/// A table key: 128 bits of the SHA-256 of what is counted, so every entry
/// has the same small size whatever a client sends.
type Key = [u8; 16];

fn key_of(text: &str) -> Key {
    let digest = crate::crypto::sha256(text.as_bytes());
    let mut key = [0; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// The address a client is counted as: IPv4 as is (also when mapped into
/// IPv6), IPv6 by its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressKey(Key);

impl AddressKey {
    pub fn of(ip: IpAddr) -> Self {
        let text = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        };
        Self(key_of(&text))
    }
}

/// The account a credential check is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountKey(Key);

impl AccountKey {
    /// A user that exists: every check against them shares one counter.
    pub fn user(user: &UserId) -> Self {
        Self(key_of(&format!("user\n{user}")))
    }

    /// A user's second factors (codes at login and in step-up checks):
    /// counted apart from the password, which must not clear their count.
    pub fn second_factor(user: &UserId) -> Self {
        Self(key_of(&format!("second-factor\n{user}")))
    }

    /// Device user codes a person types (RFC 8628 §5.1: a wrong guess
    /// counts, so a signed-in browser cannot walk the code space).
    pub fn device_codes(user: &UserId) -> Self {
        Self(key_of(&format!("device-codes\n{user}")))
    }

    /// An email that resolves to no user, in the org it was tried in (none
    /// when the org is unknown). `email` is already bounded in length.
    pub fn unknown(org: Option<&OrgId>, email: &str) -> Self {
        let org = org.map(ToString::to_string).unwrap_or_default();
        Self(key_of(&format!(
            "unknown\n{org}\n{}",
            email.trim().to_lowercase()
        )))
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started_at: UnixSeconds,
    failures: u32,
    /// Failures since the last success, across windows.
    consecutive: u32,
    last_seen: UnixSeconds,
}

#[derive(Debug)]
struct Table {
    entries: HashMap<Key, Window>,
    /// How long one window lasts.
    window_seconds: UnixSeconds,
}

impl Default for Table {
    fn default() -> Self {
        Self::with_window(WINDOW_SECONDS)
    }
}

impl Table {
    fn with_window(window_seconds: UnixSeconds) -> Self {
        Self {
            entries: HashMap::new(),
            window_seconds,
        }
    }

    fn current(&self, key: &Key, now: UnixSeconds) -> Option<Window> {
        self.entries.get(key).copied().map(|mut window| {
            if now >= window.started_at + self.window_seconds {
                window.started_at = now;
                window.failures = 0;
            }
            window
        })
    }

    fn record(&mut self, key: Key, now: UnixSeconds) -> Window {
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_TRACKED_KEYS {
            self.make_room(now);
        }
        let mut window = self.current(&key, now).unwrap_or(Window {
            started_at: now,
            failures: 0,
            consecutive: 0,
            last_seen: now,
        });
        window.failures += 1;
        window.consecutive += 1;
        window.last_seen = now;
        self.entries.insert(key, window);
        window
    }

    /// `Some` when `key` has used up `limit` in its current window.
    fn over(&self, key: &Key, limit: u32, now: UnixSeconds) -> Option<Throttled> {
        self.current(key, now)
            .filter(|w| w.failures >= limit)
            .map(|w| Throttled {
                retry_after_seconds: u64::try_from(w.started_at + self.window_seconds - now)
                    .unwrap_or(1)
                    .max(1),
            })
    }

    fn make_room(&mut self, now: UnixSeconds) {
        // Entries idle for a few windows have nothing left to say.
        let idle = 5 * self.window_seconds;
        self.entries.retain(|_, w| now < w.last_seen + idle);
        if self.entries.len() >= MAX_TRACKED_KEYS {
            let mut by_age: Vec<(UnixSeconds, Key)> = self
                .entries
                .iter()
                .map(|(k, w)| (w.last_seen, *k))
                .collect();
            by_age.sort_unstable();
            for (_, key) in by_age.into_iter().take(MAX_TRACKED_KEYS / 10) {
                self.entries.remove(&key);
            }
        }
    }
}

pub struct LoginLimiter {
    /// The limits can change while running (a config reload).
    per_ip_per_minute: AtomicU32,
    per_account_per_minute: AtomicU32,
    registrations_per_ip_per_minute: AtomicU32,
    by_ip: Mutex<Table>,
    by_account: Mutex<Table>,
    registrations_by_ip: Mutex<Table>,
    recoveries_per_ip_per_hour: AtomicU32,
    recoveries_per_account_per_hour: AtomicU32,
    recoveries_by_ip: Mutex<Table>,
    recoveries_by_account: Mutex<Table>,
    /// With replicas on PostgreSQL: login failures are also counted there,
    /// so that the per-address and per-account limits hold across replicas.
    shared: std::sync::OnceLock<SharedCounts>,
}

/// The shared counts' kinds.
const SHARED_BY_IP: &str = "login_ip";
const SHARED_BY_ACCOUNT: &str = "login_account";

/// The fixed one-minute window `now` falls in, as the shared counts keep it.
fn shared_window(now: UnixSeconds) -> UnixSeconds {
    now - now.rem_euclid(WINDOW_SECONDS)
}

/// Why a login may not even be tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after_seconds: u64,
}

impl From<Throttled> for super::ServiceError {
    fn from(throttled: Throttled) -> Self {
        super::ServiceError::RateLimited {
            retry_after_seconds: throttled.retry_after_seconds,
        }
    }
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
            per_ip_per_minute: AtomicU32::new(config.login_per_ip_per_min),
            per_account_per_minute: AtomicU32::new(config.login_per_account_per_min),
            registrations_per_ip_per_minute: AtomicU32::new(config.register_per_ip_per_min),
            by_ip: Mutex::new(Table::default()),
            by_account: Mutex::new(Table::default()),
            registrations_by_ip: Mutex::new(Table::default()),
            recoveries_per_ip_per_hour: AtomicU32::new(config.recovery_per_ip_per_hour),
            recoveries_per_account_per_hour: AtomicU32::new(config.recovery_per_account_per_hour),
            recoveries_by_ip: Mutex::new(Table::with_window(RECOVERY_WINDOW_SECONDS)),
            recoveries_by_account: Mutex::new(Table::with_window(RECOVERY_WINDOW_SECONDS)),
            shared: std::sync::OnceLock::new(),
        }
    }

    /// Counts login failures in `counts` too, which every replica sharing
    /// the database reads.
    pub fn share_with(&self, counts: SharedCounts) {
        let _ = self.shared.set(counts);
    }

    /// `Some` when the shared count of `key` is at `limit` in this window.
    fn shared_over(
        &self,
        kind: &str,
        key: &Key,
        limit: u32,
        now: UnixSeconds,
    ) -> Option<Throttled> {
        let shared = self.shared.get()?;
        let window = shared_window(now);
        match shared.get(kind, key, window) {
            Ok(count) if count >= limit => Some(Throttled {
                retry_after_seconds: u64::try_from(window + WINDOW_SECONDS - now)
                    .unwrap_or(1)
                    .max(1),
            }),
            Ok(_) => None,
            Err(error) => {
                // The replica's own counts still hold.
                tracing::warn!(%error, "could not read the shared login counts");
                None
            }
        }
    }

    fn shared_record(&self, kind: &str, key: &Key, now: UnixSeconds) {
        if let Some(shared) = self.shared.get() {
            if let Err(error) = shared.add(kind, key, shared_window(now)) {
                tracing::warn!(%error, "could not count a login failure in the shared counts");
            }
        }
    }

    /// Drops shared windows long past (housekeeping, on one replica).
    pub fn forget_old_shared_windows(&self, now: UnixSeconds) {
        if let Some(shared) = self.shared.get() {
            if let Err(error) = shared.forget_before(now - 5 * WINDOW_SECONDS) {
                tracing::warn!(%error, "could not drop old shared login counts");
            }
        }
    }

    /// New limits (a config reload); the windows counted so far stay.
    pub fn set_limits(&self, config: &LimitsConfig) {
        self.per_ip_per_minute
            .store(config.login_per_ip_per_min, Ordering::Relaxed);
        self.per_account_per_minute
            .store(config.login_per_account_per_min, Ordering::Relaxed);
        self.registrations_per_ip_per_minute
            .store(config.register_per_ip_per_min, Ordering::Relaxed);
        self.recoveries_per_ip_per_hour
            .store(config.recovery_per_ip_per_hour, Ordering::Relaxed);
        self.recoveries_per_account_per_hour
            .store(config.recovery_per_account_per_hour, Ordering::Relaxed);
    }

    /// Checks both limits before any password or code is checked.
    pub fn check(
        &self,
        ip: AddressKey,
        account: AccountKey,
        now: UnixSeconds,
    ) -> Result<(), Throttled> {
        let (ip_limit, account_limit) = (
            self.per_ip_per_minute.load(Ordering::Relaxed),
            self.per_account_per_minute.load(Ordering::Relaxed),
        );
        let ip_over = lock(&self.by_ip)
            .over(&ip.0, ip_limit, now)
            .or_else(|| self.shared_over(SHARED_BY_IP, &ip.0, ip_limit, now));
        let account_over = lock(&self.by_account)
            .over(&account.0, account_limit, now)
            .or_else(|| self.shared_over(SHARED_BY_ACCOUNT, &account.0, account_limit, now));
        if ip_over.is_some() {
            METRICS.rate_limited.inc("login_per_ip");
        }
        if account_over.is_some() {
            METRICS.rate_limited.inc("login_per_account");
        }
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

    /// Checks the address limit alone: for input refused before it names an
    /// account (over-long emails).
    pub fn check_address(&self, ip: AddressKey, now: UnixSeconds) -> Result<(), Throttled> {
        match lock(&self.by_ip).over(&ip.0, self.per_ip_per_minute.load(Ordering::Relaxed), now) {
            Some(throttled) => {
                METRICS.rate_limited.inc("login_per_ip");
                Err(throttled)
            }
            None => Ok(()),
        }
    }

    /// The pause before answering an attempt on `account`, growing with its
    /// consecutive failures: 0 for the first few, then 250 ms doubling to 2 s.
    pub fn delay_for(&self, account: AccountKey, now: UnixSeconds) -> Duration {
        let consecutive = lock(&self.by_account)
            .entries
            .get(&account.0)
            .filter(|w| now < w.last_seen + 15 * WINDOW_SECONDS)
            .map_or(0, |w| w.consecutive);
        if consecutive < FREE_FAILURES {
            return Duration::ZERO;
        }
        let doublings = (consecutive - FREE_FAILURES).min(8);
        (Duration::from_millis(250) * 2u32.pow(doublings)).min(MAX_DELAY)
    }

    pub fn record_failure(&self, ip: AddressKey, account: AccountKey, now: UnixSeconds) {
        lock(&self.by_ip).record(ip.0, now);
        lock(&self.by_account).record(account.0, now);
        self.shared_record(SHARED_BY_IP, &ip.0, now);
        self.shared_record(SHARED_BY_ACCOUNT, &account.0, now);
    }

    /// A failure that named no account (an over-long email).
    pub fn record_address_failure(&self, ip: AddressKey, now: UnixSeconds) {
        lock(&self.by_ip).record(ip.0, now);
    }

    /// A success clears the account's failure streak (not the IP's window).
    pub fn record_success(&self, account: AccountKey) {
        lock(&self.by_account).entries.remove(&account.0);
    }

    /// Counts a sign-up attempt from `ip`, refusing it past the limit.
    pub fn admit_registration(&self, ip: AddressKey, now: UnixSeconds) -> Result<(), Throttled> {
        let mut table = lock(&self.registrations_by_ip);
        if let Some(throttled) = table.over(
            &ip.0,
            self.registrations_per_ip_per_minute.load(Ordering::Relaxed),
            now,
        ) {
            METRICS.rate_limited.inc("register_per_ip");
            return Err(throttled);
        }
        table.record(ip.0, now);
        Ok(())
    }

    /// Counts a recovery request (a forgotten password, a verification
    /// mail) from `ip` for `account`, whether or not the account exists;
    /// `false` once either is past its hourly limit. Both are counted
    /// either way, so the work is the same whatever the answer.
    pub fn admit_recovery(&self, ip: AddressKey, account: AccountKey, now: UnixSeconds) -> bool {
        let ip_over = {
            let mut table = lock(&self.recoveries_by_ip);
            let limit = self.recoveries_per_ip_per_hour.load(Ordering::Relaxed);
            let over = table.over(&ip.0, limit, now).is_some();
            table.record(ip.0, now);
            over
        };
        let account_over = {
            let mut table = lock(&self.recoveries_by_account);
            let limit = self.recoveries_per_account_per_hour.load(Ordering::Relaxed);
            let over = table.over(&account.0, limit, now).is_some();
            table.record(account.0, now);
            over
        };
        if ip_over {
            METRICS.rate_limited.inc("recovery_per_ip");
        }
        if account_over {
            METRICS.rate_limited.inc("recovery_per_account");
        }
        !(ip_over || account_over)
    }

    pub fn tracked_keys(&self) -> usize {
        lock(&self.by_ip).entries.len()
            + lock(&self.by_account).entries.len()
            + lock(&self.registrations_by_ip).entries.len()
            + lock(&self.recoveries_by_ip).entries.len()
            + lock(&self.recoveries_by_account).entries.len()
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

    fn ip(text: &str) -> AddressKey {
        AddressKey::of(text.parse().expect("an address"))
    }

    fn account(email: &str) -> AccountKey {
        AccountKey::unknown(None, email)
    }

    #[test]
    fn the_account_limit_trips_after_its_failures_and_resets_with_the_window() {
        let limiter = limiter(100, 5);
        for _ in 0..5 {
            assert!(limiter.check(ip("1.1.1.1"), account("a"), 1000).is_ok());
            limiter.record_failure(ip("1.1.1.1"), account("a"), 1000);
        }
        let throttled = limiter
            .check(ip("1.1.1.1"), account("a"), 1010)
            .expect_err("limited");
        assert_eq!(throttled.retry_after_seconds, 50);
        assert!(
            limiter.check(ip("1.1.1.1"), account("b"), 1010).is_ok(),
            "other accounts are fine"
        );
        assert!(
            limiter.check(ip("1.1.1.1"), account("a"), 1060).is_ok(),
            "a new window"
        );
    }

    #[test]
    fn the_ip_limit_spans_accounts() {
        let limiter = limiter(3, 100);
        for name in ["a", "b", "c"] {
            limiter.record_failure(ip("9.9.9.9"), account(name), 0);
        }
        assert!(limiter.check(ip("9.9.9.9"), account("d"), 1).is_err());
        assert!(limiter.check(ip("8.8.8.8"), account("d"), 1).is_ok());
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_slash_64() {
        let limiter = limiter(3, 100);
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"] {
            limiter.record_failure(ip(host), account(host), 0);
        }
        assert!(limiter
            .check(ip("2001:db8:1:2:abcd::9"), account("x"), 1)
            .is_err());
        assert!(limiter
            .check(ip("2001:db8:1:3::1"), account("x"), 1)
            .is_ok());
        assert_eq!(ip("::ffff:10.0.0.1"), ip("10.0.0.1"), "mapped IPv4 is IPv4");
    }

    #[test]
    fn an_account_key_ignores_case_and_padding_of_the_email() {
        let org = OrgId::random();
        assert_eq!(
            AccountKey::unknown(Some(&org), " Bob@Example.com "),
            AccountKey::unknown(Some(&org), "bob@example.com")
        );
        assert_ne!(
            AccountKey::unknown(Some(&org), "bob@example.com"),
            AccountKey::unknown(None, "bob@example.com")
        );
    }

    #[test]
    fn the_delay_grows_with_consecutive_failures_and_a_success_clears_it() {
        let limiter = limiter(1000, 1000);
        let mut delays = Vec::new();
        for _ in 0..8 {
            delays.push(limiter.delay_for(account("a"), 0));
            limiter.record_failure(ip("1.2.3.4"), account("a"), 0);
        }
        assert_eq!(delays[0], Duration::ZERO);
        assert_eq!(delays[3], Duration::from_millis(250));
        assert_eq!(delays[4], Duration::from_millis(500));
        assert_eq!(delays[7], MAX_DELAY);
        limiter.record_success(account("a"));
        assert_eq!(limiter.delay_for(account("a"), 0), Duration::ZERO);
    }

    #[test]
    fn sign_ups_are_counted_per_address_whatever_their_outcome() {
        let limiter = LoginLimiter::new(&LimitsConfig {
            register_per_ip_per_min: 2,
            ..LimitsConfig::default()
        });
        assert!(limiter.admit_registration(ip("5.5.5.5"), 0).is_ok());
        assert!(limiter.admit_registration(ip("5.5.5.5"), 1).is_ok());
        assert!(limiter.admit_registration(ip("5.5.5.5"), 2).is_err());
        assert!(limiter.admit_registration(ip("6.6.6.6"), 2).is_ok());
        assert!(limiter.admit_registration(ip("5.5.5.5"), 60).is_ok());
    }

    #[test]
    fn recovery_requests_are_counted_per_address_and_account_for_an_hour() {
        let limiter = LoginLimiter::new(&LimitsConfig::default());
        // Three an hour for one account, from any address.
        for n in 0..3 {
            assert!(limiter.admit_recovery(ip(&format!("7.7.7.{n}")), account("r"), n));
        }
        assert!(!limiter.admit_recovery(ip("7.7.7.9"), account("r"), 10));
        // Five an hour from one address, whatever the account.
        for n in 0..5 {
            let admitted = limiter.admit_recovery(ip("8.8.8.8"), account(&n.to_string()), 10);
            assert_eq!(admitted, n < 5, "request {n}");
        }
        assert!(!limiter.admit_recovery(ip("8.8.8.8"), account("x"), 20));
        // A refused request counted too; an hour after the window began, both reset.
        assert!(limiter.admit_recovery(ip("7.7.7.1"), account("r"), 3_600));
        assert!(limiter.admit_recovery(ip("8.8.8.8"), account("y"), 3_610));
    }

    mod properties {
        //! Never more than the limit per window, whatever the order and
        //! timing of attempts; tables never past their bound.

        use std::collections::HashMap;

        use proptest::prelude::*;

        use super::*;

        /// One attempt: which address and account (of a few, so that they
        /// collide), and how many seconds after the previous one.
        fn attempts() -> impl Strategy<Value = Vec<(u8, u8, i64)>> {
            proptest::collection::vec((0_u8..4, 0_u8..4, 0_i64..40), 1..200)
        }

        /// The limiter's windows as the module documents them: a key's
        /// window opens at its first counted attempt and lasts
        /// `window` seconds; counts how many were let through in each.
        #[derive(Default)]
        struct Windows(HashMap<u8, (UnixSeconds, u32)>);

        impl Windows {
            /// Counts a let-through attempt; returns the count in its window.
            fn count(&mut self, key: u8, now: UnixSeconds, window: UnixSeconds) -> u32 {
                let entry = self.0.entry(key).or_insert((now, 0));
                if now >= entry.0 + window {
                    *entry = (now, 0);
                }
                entry.1 += 1;
                entry.1
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

            #[test]
            fn login_failures_let_through_never_pass_either_limit(
                per_ip in 1_u32..6,
                per_account in 1_u32..6,
                attempts in attempts(),
            ) {
                let limiter = limiter(per_ip, per_account);
                let (mut by_ip, mut by_account) = (Windows::default(), Windows::default());
                let mut now = 1_000;
                for (address, account_number, after) in attempts {
                    now += after;
                    let ip = ip(&format!("10.0.0.{address}"));
                    let account = account(&format!("user{account_number}"));
                    if limiter.check(ip, account, now).is_ok() {
                        limiter.record_failure(ip, account, now);
                        prop_assert!(by_ip.count(address, now, WINDOW_SECONDS) <= per_ip);
                        prop_assert!(by_account.count(account_number, now, WINDOW_SECONDS) <= per_account);
                    } else {
                        // Refused only when a limit is really used up.
                        let ip_full = by_ip.0.get(&address).is_some_and(|&(start, n)| now < start + WINDOW_SECONDS && n >= per_ip);
                        let account_full = by_account.0.get(&account_number).is_some_and(|&(start, n)| now < start + WINDOW_SECONDS && n >= per_account);
                        prop_assert!(ip_full || account_full, "refused with room left");
                    }
                }
            }

            #[test]
            fn sign_ups_admitted_never_pass_the_limit(
                per_ip in 1_u32..6,
                attempts in attempts(),
            ) {
                let limiter = LoginLimiter::new(&LimitsConfig {
                    register_per_ip_per_min: per_ip,
                    ..LimitsConfig::default()
                });
                let mut windows = Windows::default();
                let mut now = 1_000;
                for (address, _, after) in attempts {
                    now += after;
                    if limiter.admit_registration(ip(&format!("10.0.0.{address}")), now).is_ok() {
                        prop_assert!(windows.count(address, now, WINDOW_SECONDS) <= per_ip);
                    }
                }
            }

            #[test]
            fn recovery_requests_admitted_never_pass_the_hourly_limits(
                per_ip in 1_u32..6,
                per_account in 1_u32..6,
                attempts in proptest::collection::vec((0_u8..4, 0_u8..4, 0_i64..1_200), 1..200),
            ) {
                let limiter = LoginLimiter::new(&LimitsConfig {
                    recovery_per_ip_per_hour: per_ip,
                    recovery_per_account_per_hour: per_account,
                    ..LimitsConfig::default()
                });
                let (mut by_ip, mut by_account) = (HashMap::<u8, Vec<UnixSeconds>>::new(), HashMap::<u8, Vec<UnixSeconds>>::new());
                let mut now = 1_000;
                for (address, account_number, after) in attempts {
                    now += after;
                    if limiter.admit_recovery(ip(&format!("10.0.0.{address}")), account(&format!("user{account_number}")), now) {
                        // Windows are fixed, not sliding: at most twice the
                        // limit in any hour, at most the limit in a window.
                        let ip_times = by_ip.entry(address).or_default();
                        ip_times.push(now);
                        let recent = ip_times.iter().filter(|&&t| t > now - RECOVERY_WINDOW_SECONDS).count();
                        prop_assert!(recent <= 2 * per_ip as usize);
                        let account_times = by_account.entry(account_number).or_default();
                        account_times.push(now);
                        let recent = account_times.iter().filter(|&&t| t > now - RECOVERY_WINDOW_SECONDS).count();
                        prop_assert!(recent <= 2 * per_account as usize);
                    }
                }
            }

            #[test]
            fn the_delay_never_passes_its_ceiling_and_a_success_clears_it(
                failures in 0_u32..40,
                after in 0_i64..2_000,
            ) {
                let limiter = limiter(1_000, 1_000);
                for _ in 0..failures {
                    limiter.record_failure(ip("1.2.3.4"), account("a"), 0);
                }
                let delay = limiter.delay_for(account("a"), after);
                prop_assert!(delay <= MAX_DELAY);
                prop_assert_eq!(delay.is_zero(), failures < FREE_FAILURES || after >= 15 * WINDOW_SECONDS);
                limiter.record_success(account("a"));
                prop_assert_eq!(limiter.delay_for(account("a"), after), Duration::ZERO);
            }
        }

        proptest! {
            // Each case writes past MAX_TRACKED_KEYS keys: few cases.
            #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]

            #[test]
            fn a_table_never_holds_more_than_its_bound(
                extra in 1_usize..5_000,
                spread in 0_i64..1_000,
            ) {
                let mut table = Table::default();
                for i in 0..(MAX_TRACKED_KEYS + extra) {
                    let mut key = [0; 16];
                    key[..8].copy_from_slice(&(i as u64).to_be_bytes());
                    // Some keys go idle (older than five windows), some not.
                    table.record(key, (i as i64 * spread) / 1_000);
                    prop_assert!(table.entries.len() <= MAX_TRACKED_KEYS);
                }
            }
        }
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_bounded() {
        let limiter = limiter(10, 5);
        for i in 0..(MAX_TRACKED_KEYS + 5_000) {
            let address = AddressKey::of(IpAddr::from((i as u32).to_be_bytes()));
            limiter.record_failure(address, account(&i.to_string()), 0);
        }
        assert!(limiter.tracked_keys() <= 2 * MAX_TRACKED_KEYS);
    }
}
