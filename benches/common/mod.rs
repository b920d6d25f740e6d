//! What every benchmark shares: starting the release `authd` on a free port
//! with a temp data dir, a closed-loop HTTP load generator with an HDR
//! latency histogram, RSS readings, printing/saving the figures, and (in
//! `seed`) the fast path that fills a database without HTTP.

#![allow(dead_code)]

pub mod seed;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const AUTHD: &str = env!("CARGO_BIN_EXE_authd");

/// A reading of [`BenchServer::resident`].
#[derive(Debug, Clone, Copy)]
pub struct Resident {
    pub rss_mib: f64,
    pub binary_mib: f64,
    pub anonymous_mib: f64,
}

impl Resident {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "rss_mib": self.rss_mib,
            "binary_pages_mib": self.binary_mib,
            "anonymous_mib": self.anonymous_mib,
        })
    }
}

/// How to start authd beyond its config: another binary than the release
/// one cargo built for the benches (the static one, say), and extra
/// environment.
#[derive(Default)]
pub struct Launch<'a> {
    pub binary: Option<&'a Path>,
    pub env: &'a [(&'a str, &'a str)],
}

pub struct BenchServer {
    child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    /// When `/healthz` first answered 200.
    pub ready_at: Instant,
    /// From the spawn to that first 200 (on a seeded file: the open's
    /// check of every page included).
    pub started_in: Duration,
}

impl BenchServer {
    /// Starts authd with `extra` TOML appended to a base config.
    pub fn start(extra: &str) -> BenchServer {
        Self::start_seeded(extra, |_| {})
    }

    /// Like [`BenchServer::start`], but first creates the data dir and hands
    /// the path of its (not yet existing) database file to `seed`, which
    /// fills it through `authd::store` (see `seed`) and must drop the store
    /// before returning: redb locks the file. Opening the store runs the
    /// migrations, so the default org exists for the seed; the server then
    /// adds its signing key and admin token on this first start.
    pub fn start_seeded(extra: &str, seed: impl FnOnce(&Path)) -> BenchServer {
        Self::launch(&Launch::default(), extra, seed)
    }

    /// Like [`BenchServer::start_seeded`], with the binary and extra
    /// environment of `launch`.
    pub fn launch(launch: &Launch, extra: &str, seed: impl FnOnce(&Path)) -> BenchServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        authd::app::ensure_data_dir(&data).expect("data dir");
        seed(&data.join("authd.redb"));
        let port = free_port();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\ndata_dir = \"{}\"\n[log]\nlevel = \"warn\"\n{extra}\n",
                data.display()
            ),
        )
        .expect("config");
        let spawned = Instant::now();
        let child = Command::new(launch.binary.unwrap_or(Path::new(AUTHD)))
            .envs(launch.env.iter().copied())
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn authd");
        let base = format!("http://127.0.0.1:{port}");
        // The port accepts connections once bound, before the server is
        // ready (the first start generates a signing key): wait for a 200.
        let started = Instant::now();
        while !healthz_ok(port) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "authd did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        BenchServer {
            child,
            base,
            dir,
            ready_at: Instant::now(),
            started_in: spawned.elapsed(),
        }
    }

    /// The database file (`<data_dir>/authd.redb`).
    pub fn database_path(&self) -> PathBuf {
        self.dir.path().join("data/authd.redb")
    }

    /// The database file's size in bytes.
    pub fn database_bytes(&self) -> u64 {
        std::fs::metadata(self.database_path())
            .map(|m| m.len())
            .unwrap_or(0)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data/admin.token"))
            .expect("token")
            .trim()
            .to_owned()
    }

    /// Where the resident memory is, from `/proc/PID/smaps`: the whole
    /// (`VmRSS`), the pages of the binary (text, read-only data), and
    /// anonymous memory (heap, thread stacks, redb's cache), in MiB.
    pub fn resident(&self) -> Resident {
        let pid = self.pid();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
        let (mut binary_kib, mut anonymous_kib, mut in_binary) = (0.0, 0.0, false);
        for line in smaps.lines() {
            let mut fields = line.split_whitespace();
            let first = fields.next().unwrap_or_default();
            let kib = || {
                line.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            if first.contains('-') && !first.ends_with(':') {
                in_binary = fields.nth(4).is_some_and(|path| Path::new(path) == exe);
            } else if first == "Rss:" && in_binary {
                binary_kib += kib();
            } else if first == "Anonymous:" {
                anonymous_kib += kib();
                // The binary's relocated data is an anonymous copy: count
                // it once, as anonymous.
                if in_binary {
                    binary_kib -= kib();
                }
            }
        }
        Resident {
            rss_mib: self.rss_mib().0,
            binary_mib: binary_kib / 1024.0,
            anonymous_mib: anonymous_kib / 1024.0,
        }
    }

    /// CPU time the server has used so far (user and system, all its
    /// threads), in seconds: the difference over a phase is what the phase
    /// cost the server, whatever the client cost on the same cores.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // The command may hold spaces, so fields are counted from its
        // closing `)`: utime and stime are the 14th and 15th of the line.
        let after_command = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let ticks: f64 = after_command
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|field| field.parse::<f64>().ok())
            .sum();
        // SAFETY: sysconf only reads a system constant.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        ticks / per_second.max(1) as f64
    }

    /// `VmRSS` and `VmHWM` (peak) in MiB.
    pub fn rss_mib(&self) -> (f64, f64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1024.0
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// The binary whose memory counts: the static one if `just release` built
/// it (what a Pi runs; musl's allocator is not glibc's), else the release
/// binary cargo built for the benches.
pub fn measured_binary() -> (PathBuf, &'static str) {
    let musl = PathBuf::from("target/x86_64-unknown-linux-musl/release/authd");
    if musl.exists() {
        (musl, "static musl")
    } else {
        (PathBuf::from(AUTHD), "glibc (musl not built)")
    }
}

/// One plain HTTP/1.1 `GET /healthz`; whether it answered 200.
pub fn healthz_ok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
}

/// Throughput and latency of one scenario.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub mean_ms: f64,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests, "errors": self.errors, "seconds": self.seconds,
            "per_second": self.per_second(), "p50_ms": self.p50_ms, "p99_ms": self.p99_ms,
            "p999_ms": self.p999_ms, "mean_ms": self.mean_ms,
        })
    }
}

/// Runs `connections` closed-loop workers for `duration`; each calls
/// `request(worker, iteration)` and counts an answer whose status is
/// `expected` as a success.
pub async fn closed_loop<F, Fut>(
    connections: usize,
    duration: Duration,
    expected: u16,
    request: F,
) -> LoadResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<u16, String>> + Send,
{
    let request = Arc::new(request);
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..connections {
        let (request, stop, errors) = (request.clone(), stop.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .expect("histogram");
            let mut iteration = 0;
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                match request(worker, iteration).await {
                    Ok(status) if status == expected => {
                        let micros = sent.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                        let _ = histogram.record(micros);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                iteration += 1;
            }
            histogram
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut total =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    for worker in workers {
        total.add(worker.await.expect("worker")).expect("merge");
    }
    let seconds = started.elapsed().as_secs_f64();
    LoadResult {
        requests: total.len(),
        errors: errors.load(Ordering::Relaxed),
        seconds,
        p50_ms: total.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: total.value_at_quantile(0.99) as f64 / 1000.0,
        p999_ms: total.value_at_quantile(0.999) as f64 / 1000.0,
        mean_ms: total.mean() / 1000.0,
    }
}

/// What a `closed_loop` request returns: the answer's status.
pub type RequestFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<u16, String>> + Send>>;

/// Sends `request` and yields its status.
pub fn status_of(request: reqwest::RequestBuilder) -> RequestFuture {
    Box::pin(async move {
        request
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    })
}

/// A `closed_loop` request: GET `url`, with a bearer token if given.
pub fn get_request(
    client: &reqwest::Client,
    url: String,
    bearer: Option<String>,
) -> impl Fn(usize, u64) -> RequestFuture + Send + Sync + 'static {
    let client = client.clone();
    move |_, _| {
        let mut request = client.get(&url);
        if let Some(token) = &bearer {
            request = request.bearer_auth(token);
        }
        status_of(request)
    }
}

/// One step of a refresh chain: spends the token in `chain` at
/// `{base}/oauth/token` and keeps the one it is exchanged for.
pub async fn rotate(
    client: &reqwest::Client,
    base: &str,
    chain: &tokio::sync::Mutex<String>,
) -> Result<u16, String> {
    let mut chain = chain.lock().await;
    let response = client
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", chain.as_str()),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if let Some(next) = body["refresh_token"].as_str() {
        *chain = next.to_owned();
    }
    Ok(status)
}

// ---- limits measured alone ---------------------------------------------------

/// Signs/s and verifies/s on every core, no I/O.
pub fn jwt_alone(algorithm: authd::crypto::jwt::KeyAlgorithm, duration: Duration) -> (f64, f64) {
    let key = authd::crypto::jwt::KeyPair::generate(algorithm, 0).expect("key");
    let signer = key.signer().expect("signer");
    let verifier =
        authd::crypto::jwt::Verifier::new(&[key.public_jwk().expect("jwk")]).expect("verifier");
    let claims = serde_json::json!({"sub": "00000000-0000-0000-0000-000000000000", "iss": "http://localhost:9090", "aud": "authd",
        "exp": 4_102_444_800_i64, "iat": 0, "nbf": 0, "jti": "x", "email": "a@example.com", "roles": ["member"],
        "org": "org_x", "sid": "00000000-0000-0000-0000-000000000000"});
    let token = signer
        .sign(authd::crypto::jwt::TokenType::Access, &claims)
        .expect("sign");
    let signs = {
        let (signer, claims) = (signer.clone(), claims.clone());
        per_second_on_every_core(duration, move |_| {
            signer
                .sign(authd::crypto::jwt::TokenType::Access, &claims)
                .expect("sign");
        })
    };
    let verifies = per_second_on_every_core(duration, move |_| {
        let expect = authd::crypto::jwt::Expectations {
            token_type: authd::crypto::jwt::TokenType::Access,
            issuer: "http://localhost:9090",
            audience: "authd",
            now: 1,
            leeway_seconds: 0,
        };
        verifier
            .verify::<serde_json::Value>(&token, &expect)
            .expect("verify");
    });
    (signs, verifies)
}

/// Runs `work(n)` (n: a different number each call) on one thread per core
/// for `duration`; returns calls per second.
pub fn per_second_on_every_core(
    duration: Duration,
    work: impl Fn(usize) + Send + Sync + 'static,
) -> f64 {
    let work = Arc::new(work);
    let started = Instant::now();
    let threads: Vec<_> = (0..cores())
        .map(|thread| {
            let work = work.clone();
            std::thread::spawn(move || {
                let mut done = 0usize;
                while started.elapsed() < duration {
                    work(done * cores() + thread);
                    done += 1;
                }
                done as u64
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    total as f64 / started.elapsed().as_secs_f64()
}

/// Durable (fsync'd) redb commits/s of one small record, through the store.
pub fn commits_alone(duration: Duration) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) =
        authd::store::Store::open(&dir.path().join("bench.redb"), 32 << 20, 0).expect("store");
    let started = Instant::now();
    let mut commits = 0u64;
    while started.elapsed() < duration {
        store
            .write(move |txn| {
                txn.put_approval(&authd::store::Approval {
                    id: format!("apr_{commits}"),
                    kind: authd::domain::ApprovalKind::Registration,
                    subject_user_id: None,
                    org_id: None,
                    requested_at: 0,
                    requested_by_ip: None,
                    requested_by_user_agent: None,
                    status: authd::domain::ApprovalStatus::Pending,
                    resolved_by: None,
                    resolved_at: None,
                })
            })
            .expect("commit");
        commits += 1;
    }
    commits as f64 / started.elapsed().as_secs_f64()
}

/// A table row: figure, value, and what it is compared with.
pub fn row(figure: &str, value: String, limit: String) {
    println!("{figure:<52} {value:>16} {limit:>24}");
}

pub fn header(title: &str) {
    println!("\n== {title}");
    println!("{:<52} {:>16} {:>24}", "figure", "value", "limit / target");
}

pub fn save(name: &str, json: &serde_json::Value) {
    std::fs::create_dir_all("target/bench").expect("mkdir");
    let path = format!("target/bench/{name}.json");
    std::fs::write(&path, serde_json::to_vec_pretty(json).expect("json")).expect("write");
    println!("(saved {path})");
}

/// Argon2id parameters cheap enough that the store and HTTP, not hashing,
/// bound a login (the `[passwords]` table of a config).
pub const CHEAP_ARGON2: &str = "[passwords]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n";

/// Rate limits and lockout out of the way of a load generator that sends
/// everything from one IP (the `[limits]` table of a config).
pub const NO_LIMITS: &str = "[limits]\nlogin_per_ip_per_min = 100000000\nlogin_per_account_per_min = 100000000\nlockout_threshold = 100000000\nregister_per_ip_per_min = 100000000\n";

#[path = "../../tests/shared/totp.rs"]
mod totp;
// Not every bench signs in with a second factor.
#[allow(unused_imports)]
pub use totp::{current_step as totp_step_now, totp_at};

/// Percentiles (ms) of latencies given in ms: (p50, p99, max).
pub fn percentiles(samples: &[f64]) -> (f64, f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let at = |q: f64| {
        sorted
            .get(((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0)
    };
    (at(0.5), at(0.99), sorted.last().copied().unwrap_or(0.0))
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}
