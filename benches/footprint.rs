//! Footprint figures: stripped binary size, time from exec to the first 200
//! on `/healthz`, and on a first start also to the first JWKS with a key
//! (beside RSA-2048 key generation alone, which the first signature waits
//! for), idle RSS, and the database file size after 100,000 users +
//! 1,000,000 audit events (quick: 1,000 + 10,000; seeded through the store's
//! fast path) with the latency of `GET /v1/audit?user=<id>&limit=50` on it.
//! Run with `cargo bench --bench footprint` (`-- --quick` for a smoke run).
//! Prints a table and writes `target/bench/footprint.json`.

// A bench is a client: it reads the wall clock as one would.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, header, mib, percentiles, row, seed, BenchServer, AUTHD};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 2 } else { 15 };

    let binary_bytes = std::fs::metadata(AUTHD).expect("binary").len();
    let musl = Path::new("target/x86_64-unknown-linux-musl/release/authd");
    let musl_bytes = std::fs::metadata(musl).map(|m| m.len()).ok();

    let mut first_start = Vec::new();
    let mut first_key = Vec::new();
    let mut warm_start = Vec::new();
    let mut idle_rss_kib = Vec::new();
    for _ in 0..runs {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let started = start_and_measure(dir.path(), port, !quick);
        first_start.push(started.ready_ms);
        first_key.push(started.signing_ms);
        let warm = start_and_measure(dir.path(), port, !quick);
        warm_start.push(warm.ready_ms);
        idle_rss_kib.push(started.rss_kib.max(warm.rss_kib));
    }

    let median = |values: &mut Vec<f64>| {
        values.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        values[values.len() / 2]
    };
    // The first start's limit: generating its RSA-2048 signing key.
    let mut keygen_times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            authd::crypto::jwt::KeyPair::generate(authd::crypto::jwt::KeyAlgorithm::RS256, 0)
                .expect("key");
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    let keygen_ms = median(&mut keygen_times);
    let first_ms = median(&mut first_start);
    let first_key_ms = median(&mut first_key);
    let warm_ms = median(&mut warm_start);
    let mut rss: Vec<f64> = idle_rss_kib.iter().map(|&k| k as f64 / 1024.0).collect();
    let rss_mib = median(&mut rss);

    println!("{:<44} {:>12} {:>12}", "figure", "value", "limit");
    println!(
        "{:<44} {:>10.2}MiB {:>12}",
        "release binary (stripped, glibc)",
        binary_bytes as f64 / 1048576.0,
        "20 MiB"
    );
    if let Some(bytes) = musl_bytes {
        println!(
            "{:<44} {:>10.2}MiB {:>12}",
            "release binary (static musl)",
            bytes as f64 / 1048576.0,
            "20 MiB"
        );
    }
    println!(
        "{:<44} {:>10.1}ms {:>12}",
        "exec → first 200 /healthz (first start)", first_ms, "100 ms"
    );
    println!(
        "{:<44} {:>10.1}ms {:>12}",
        "exec → first JWKS with a key (first start)", first_key_ms, "-"
    );
    println!(
        "{:<44} {:>10.1}ms {:>12}",
        "  RSA-2048 key generation alone", keygen_ms, "-"
    );
    println!(
        "{:<44} {:>10.1}ms {:>12}",
        "exec → first 200 /healthz (existing data)", warm_ms, "100 ms"
    );
    println!(
        "{:<44} {:>10.2}MiB {:>12}",
        "idle RSS after start (VmRSS)", rss_mib, "20 MiB"
    );

    let audit = audit_database(quick);

    let json = serde_json::json!({
        "quick": quick,
        "audit_database": audit,
        "binary_bytes": binary_bytes,
        "musl_binary_bytes": musl_bytes,
        "startup_first_ms_median": first_ms,
        "startup_first_signing_key_ms_median": first_key_ms,
        "startup_warm_ms_median": warm_ms,
        "rsa_keygen_ms_median": keygen_ms,
        "idle_rss_mib_median": rss_mib,
        "runs": runs,
    });
    std::fs::create_dir_all("target/bench").expect("mkdir");
    std::fs::write(
        "target/bench/footprint.json",
        serde_json::to_vec_pretty(&json).expect("json"),
    )
    .expect("write");
}

/// What one start measured.
struct Start {
    /// exec → the first 200 on `/healthz`.
    ready_ms: f64,
    /// exec → the first JWKS with a key in it (which waits for the first
    /// signing key on a first start).
    signing_ms: f64,
    /// VmRSS once idle.
    rss_kib: u64,
}

/// Starts authd on `data` and measures it.
fn start_and_measure(data: &Path, port: u16, settle: bool) -> Start {
    let started = Instant::now();
    let mut child = Command::new(AUTHD)
        .env("AUTHD_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("AUTHD_STORAGE__DATA_DIR", data.join("data"))
        .env("AUTHD_LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn authd");
    let ready = loop {
        if get_ok(port, "/healthz").is_some() {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "authd did not start"
        );
        std::thread::sleep(Duration::from_micros(500));
    };
    let jwks = get_ok(port, "/.well-known/jwks.json").expect("JWKS");
    let signing = started.elapsed();
    assert!(jwks.contains("\"kid\""), "a key is published: {jwks}");
    if settle {
        std::thread::sleep(Duration::from_millis(500));
    }
    let rss_kib = vm_rss_kib(child.id());
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    child.wait().expect("wait");
    Start {
        ready_ms: ready.as_secs_f64() * 1000.0,
        signing_ms: signing.as_secs_f64() * 1000.0,
        rss_kib,
    }
}

/// The response to `GET path` if it was a 200.
fn get_ok(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200").then_some(response)
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// Seeds users and audit events (every 100th event about user 0, so one user
/// has a long history), starts authd on them, and times audit queries by
/// user with the operator token, one at a time.
fn audit_database(quick: bool) -> serde_json::Value {
    let (users, events, queries) = if quick {
        (1_000, 10_000, 50)
    } else {
        (100_000, 1_000_000, 200)
    };
    let heavy_every = 100;
    let phc = seed::phc(1024, 1, 1);
    let (mut users_seconds, mut events_seconds) = (0.0, 0.0);
    let server = BenchServer::start_seeded("", |path| {
        let (store, org) = seed::open(path);
        users_seconds = seed::users(&store, &org, 0..users, &phc, false);
        events_seconds = seed::audit_events(&store, &org, events, users, heavy_every);
    });
    let bytes = server.database_bytes();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = reqwest::Client::new();
    let token = server.admin_token();
    let query = |user: u64| {
        let request = client
            .get(format!(
                "{}/v1/audit?user={}&limit=50",
                server.base,
                seed::user_id(user)
            ))
            .bearer_auth(&token);
        runtime.block_on(async move {
            let started = Instant::now();
            let response = request.send().await.expect("audit query");
            assert_eq!(response.status(), 200, "audit query");
            let body: serde_json::Value = response.json().await.expect("json");
            let items = body["items"].as_array().map_or(0, Vec::len);
            (started.elapsed().as_secs_f64() * 1000.0, items)
        })
    };
    // Warm-up, not counted.
    for user in 0..10 {
        query(1 + user);
    }
    let (mut latencies, mut items) = (Vec::new(), 0);
    for _ in 0..queries {
        let (ms, found) = query(1 + rand::random::<u64>() % (users - 1));
        latencies.push(ms);
        items += found;
    }
    let (p50, p99, max) = percentiles(&latencies);
    let mut heavy = Vec::new();
    for _ in 0..queries / 4 {
        heavy.push(query(0).0);
    }
    let (heavy_p50, heavy_p99, heavy_max) = percentiles(&heavy);
    let mean_items = items as f64 / queries as f64;

    header(&format!(
        "audit database ({users} users + {events} audit events{})",
        if quick { ", QUICK" } else { "" }
    ));
    row(
        "database file",
        format!("{:.1} MiB", mib(bytes)),
        format!("seeded in {:.1} s", users_seconds + events_seconds),
    );
    row(
        "GET /v1/audit?user=<random>&limit=50 p50 / p99",
        format!("{p50:.2}/{p99:.2} ms"),
        format!("{queries} queries, {mean_items:.1} events each"),
    );
    row(
        "  the same for a user with 1% of all events",
        format!("{heavy_p50:.2}/{heavy_p99:.2} ms"),
        format!("{} queries, 50 events each", queries / 4),
    );
    serde_json::json!({
        "users": users,
        "events": events,
        "bytes": bytes,
        "seed_seconds": {"users": users_seconds, "events": events_seconds},
        "query_by_user": {"queries": queries, "p50_ms": p50, "p99_ms": p99, "max_ms": max, "mean_items": mean_items},
        "query_heavy_user": {"queries": queries / 4, "events_of_user": events / heavy_every, "p50_ms": heavy_p50, "p99_ms": heavy_p99, "max_ms": heavy_max},
    })
}
