//! What every benchmark shares: starting the release `authd` on a free port
//! with a temp data dir, a closed-loop HTTP load generator with an HDR
//! latency histogram, RSS readings, and printing/saving the figures.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const AUTHD: &str = env!("CARGO_BIN_EXE_authd");

pub struct BenchServer {
    child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
}

impl BenchServer {
    /// Starts authd with `extra` TOML appended to a base config.
    pub fn start(extra: &str) -> BenchServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\ndata_dir = \"{}\"\n[log]\nlevel = \"warn\"\n{extra}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("config");
        let child = Command::new(AUTHD)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn authd");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "authd did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        BenchServer { child, base, dir }
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

/// A `closed_loop` request: GET `url`, with a bearer token if given.
pub fn get_request(
    client: &reqwest::Client,
    url: String,
    bearer: Option<String>,
) -> impl Fn(
    usize,
    u64,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u16, String>> + Send>>
       + Send
       + Sync
       + 'static {
    let client = client.clone();
    move |_, _| {
        let mut request = client.get(&url);
        if let Some(token) = &bearer {
            request = request.bearer_auth(token);
        }
        Box::pin(async move {
            request
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        })
    }
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
