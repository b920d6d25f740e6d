//! Counters and histograms for `GET /metrics` (SPEC §8), and their
//! Prometheus text exposition (format 0.0.4).
//!
//! One set per process ([`METRICS`]): the places that count (the login and
//! MFA steps, the limiter, token issuance, refresh replays, the hasher, the
//! HTTP layer) add to it with a relaxed atomic or a short lock, and a scrape
//! only reads what was counted — it never scans a table, so its cost does
//! not grow with the number of users. Labels are closed sets of static
//! names or route templates (`/v1/users/{id}`), never raw paths or ids.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

const HASH_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A counter per value of one label.
#[derive(Default)]
pub struct CounterVec {
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl CounterVec {
    pub fn inc(&self, label: &'static str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(label)
            .or_default() += 1;
    }

    fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        counts
            .iter()
            .map(|(label, count)| (*label, *count))
            .collect()
    }
}

/// Cumulative buckets, a sum and a count, as Prometheus histograms are.
struct Histogram {
    bounds: &'static [f64],
    /// Per bound, observations at or below it (not yet cumulative).
    buckets: Vec<u64>,
    sum_seconds: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: vec![0; bounds.len()],
            sum_seconds: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(index) = self.bounds.iter().position(|bound| seconds <= *bound) {
            self.buckets[index] += 1;
        }
        self.sum_seconds += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let separator = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.buckets) {
            cumulative += count;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum_seconds);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Requests per status and their durations, of one route template.
struct RouteRequests {
    by_status: BTreeMap<u16, u64>,
    durations: Histogram,
}

pub struct Metrics {
    /// Password sign-ins by `result`: `success` (the password was right),
    /// `failure`.
    pub logins: CounterVec,
    /// Failed sign-in steps by `reason` (`bad_password`, `unknown_email`,
    /// `locked`, …, `bad_second_factor`).
    pub login_failures: CounterVec,
    /// Requests refused by a rate limit, by `limit`.
    pub rate_limited: CounterVec,
    /// Tokens issued by `kind`: `access`, `refresh`, `id`, `pat`.
    pub tokens_issued: CounterVec,
    refresh_replays: AtomicU64,
    password_hashes: Mutex<Histogram>,
    /// By route template: found without allocating on every request.
    http: Mutex<BTreeMap<String, RouteRequests>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            logins: CounterVec::default(),
            login_failures: CounterVec::default(),
            rate_limited: CounterVec::default(),
            tokens_issued: CounterVec::default(),
            refresh_replays: AtomicU64::new(0),
            password_hashes: Mutex::new(Histogram::new(HASH_BUCKETS)),
            http: Mutex::new(BTreeMap::new()),
        }
    }
}

/// What a scrape reads besides the counters: cheap values the caller has.
pub struct Gauges {
    pub db_size_bytes: u64,
    pub sessions: u64,
}

impl Metrics {
    pub fn refresh_replay(&self) {
        self.refresh_replays.fetch_add(1, Ordering::Relaxed);
    }

    /// One argon2id hash or verification, as long as it took.
    pub fn password_hashed(&self, elapsed: Duration) {
        self.password_hashes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .observe(elapsed);
    }

    /// One answered request; `route` is the matched template, or
    /// `unmatched` for a path no route has.
    pub fn http_request(&self, route: &str, status: u16, elapsed: Duration) {
        let mut http = self
            .http
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let requests = match http.get_mut(route) {
            Some(requests) => requests,
            None => http
                .entry(route.to_owned())
                .or_insert_with(|| RouteRequests {
                    by_status: BTreeMap::new(),
                    durations: Histogram::new(HTTP_BUCKETS),
                }),
        };
        *requests.by_status.entry(status).or_default() += 1;
        requests.durations.observe(elapsed);
    }

    /// The exposition text of everything counted, `gauges` and the process.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let counters: [(&str, &str, &str, &CounterVec); 4] = [
            (
                "authd_logins_total",
                "Password sign-ins by result.",
                "result",
                &self.logins,
            ),
            (
                "authd_login_failures_total",
                "Failed sign-in steps by reason.",
                "reason",
                &self.login_failures,
            ),
            (
                "authd_rate_limited_total",
                "Requests refused by a rate limit.",
                "limit",
                &self.rate_limited,
            ),
            (
                "authd_tokens_issued_total",
                "Tokens issued by kind.",
                "kind",
                &self.tokens_issued,
            ),
        ];
        for (name, help, label, counter) in counters {
            header(&mut out, name, help, "counter");
            for (value, count) in counter.snapshot() {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
            }
        }
        header(
            &mut out,
            "authd_refresh_replays_total",
            "Refresh tokens presented again after rotation (the family was ended).",
            "counter",
        );
        let _ = writeln!(
            out,
            "authd_refresh_replays_total {}",
            self.refresh_replays.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "authd_password_hash_seconds",
            "Time of one argon2id hash or verification.",
            "histogram",
        );
        self.password_hashes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .render(&mut out, "authd_password_hash_seconds", "");
        {
            let http = self
                .http
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            header(
                &mut out,
                "authd_http_requests_total",
                "Answered requests by route template and status.",
                "counter",
            );
            for (route, requests) in http.iter() {
                for (status, count) in &requests.by_status {
                    let _ = writeln!(
                        out,
                        "authd_http_requests_total{{route=\"{}\",status=\"{status}\"}} {count}",
                        escape(route)
                    );
                }
            }
            header(
                &mut out,
                "authd_http_request_duration_seconds",
                "Time to answer a request, by route template.",
                "histogram",
            );
            for (route, requests) in http.iter() {
                let labels = format!("route=\"{}\"", escape(route));
                requests
                    .durations
                    .render(&mut out, "authd_http_request_duration_seconds", &labels);
            }
        }
        gauge(
            &mut out,
            "authd_db_size_bytes",
            "Size of the database file.",
            gauges.db_size_bytes as f64,
        );
        gauge(
            &mut out,
            "authd_sessions_active",
            "Sessions stored and not yet swept (expired ones leave at the next sweep).",
            gauges.sessions as f64,
        );
        render_process(&mut out);
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    header(out, name, help, "gauge");
    let _ = writeln!(out, "{name} {value}");
}

/// A label value in the exposition format: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The process series every Prometheus client exports, from `/proc/self`.
fn render_process(out: &mut String) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces), from field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    // SAFETY: sysconf only reads a constant of the running system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as f64;
    if let (Some(user), Some(system)) = (field(14), field(15)) {
        header(
            out,
            "process_cpu_seconds_total",
            "User and system CPU time.",
            "counter",
        );
        let _ = writeln!(out, "process_cpu_seconds_total {}", (user + system) / ticks);
    }
    if let Some(pages) = field(24) {
        gauge(
            out,
            "process_resident_memory_bytes",
            "Resident memory.",
            pages * page,
        );
    }
    if let Some(bytes) = field(23) {
        gauge(
            out,
            "process_virtual_memory_bytes",
            "Virtual memory.",
            bytes,
        );
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            out,
            "process_open_fds",
            "Open file descriptors.",
            entries.count() as f64,
        );
    }
    if let Some(limit) = crate::config::open_files_limit() {
        gauge(
            out,
            "process_max_fds",
            "The open-files limit.",
            limit as f64,
        );
    }
    if let Some(started_ticks) = field(22) {
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|stat| {
            stat.lines()
                .find_map(|line| line.strip_prefix("btime "))
                .and_then(|value| value.trim().parse::<f64>().ok())
        });
        if let Some(boot) = boot {
            gauge(
                out,
                "process_start_time_seconds",
                "Start time since the Unix epoch.",
                boot + started_ticks / ticks,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_end_at_the_count() {
        let mut histogram = Histogram::new(&[0.1, 1.0]);
        histogram.observe(Duration::from_millis(50));
        histogram.observe(Duration::from_millis(500));
        histogram.observe(Duration::from_secs(5));
        let mut out = String::new();
        histogram.render(&mut out, "x", "route=\"/a\"");
        assert_eq!(
            out,
            "x_bucket{route=\"/a\",le=\"0.1\"} 1\nx_bucket{route=\"/a\",le=\"1\"} 2\n\
             x_bucket{route=\"/a\",le=\"+Inf\"} 3\nx_sum{route=\"/a\"} 5.55\nx_count{route=\"/a\"} 3\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn the_process_series_are_read() {
        let mut out = String::new();
        render_process(&mut out);
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
        ] {
            assert!(out.contains(name), "{name} in {out}");
        }
    }
}
