//! Footprint figures: stripped binary sizes (x86_64 and aarch64 static
//! builds when `just release` made them), time from exec to the first 200
//! on `/healthz`, and on a first start also to the first JWKS with a key
//! (beside RSA-2048 key generation alone, which the first signature waits
//! for); resident memory at idle after a first start, after a registration
//! and a login, and after mixed load, with what a held keep-alive
//! connection and an SSE subscriber cost each; and the database file size
//! after 100,000 users + 1,000,000 audit events (quick: 1,000 + 10,000;
//! seeded through the store's fast path) with the latency of
//! `GET /v1/audit?user=<id>&limit=50` on it. The static binary is the one
//! started when it exists. Run with `cargo bench --bench footprint` (`--
//! --quick` for a smoke run). Prints a table and writes
//! `target/bench/footprint.json`.

// A bench is a client: it reads the wall clock as one would.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::seed::PASSWORD;
use common::{
    closed_loop, free_port, header, mib, percentiles, rotate, row, seed, status_of, BenchServer,
    Launch, LoadResult, AUTHD, NO_LIMITS,
};
use serde_json::json;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 2 } else { 15 };

    let binary_bytes = std::fs::metadata(AUTHD).expect("binary").len();
    let size_of = |path: &str| std::fs::metadata(path).map(|m| m.len()).ok();
    let musl_bytes = size_of("target/x86_64-unknown-linux-musl/release/authd");
    let aarch64_bytes = size_of("target/aarch64-unknown-linux-musl/release/authd");

    let (binary, _) = common::measured_binary();
    let mut first_start = Vec::new();
    let mut first_key = Vec::new();
    let mut warm_start = Vec::new();
    for _ in 0..runs {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let started = start_and_measure(&binary, dir.path(), port);
        first_start.push(started.ready_ms);
        first_key.push(started.signing_ms);
        let warm = start_and_measure(&binary, dir.path(), port);
        warm_start.push(warm.ready_ms);
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

    println!("{:<44} {:>12} {:>12}", "figure", "value", "limit");
    println!(
        "{:<44} {:>10.2}MiB {:>12}",
        "release binary (stripped, glibc)",
        binary_bytes as f64 / 1048576.0,
        "-"
    );
    for (name, bytes) in [
        ("release binary (static musl, x86_64)", musl_bytes),
        ("release binary (static musl, aarch64)", aarch64_bytes),
    ] {
        if let Some(bytes) = bytes {
            println!(
                "{:<44} {:>10.2}MiB {:>12}",
                name,
                bytes as f64 / 1048576.0,
                "15 MiB"
            );
        }
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

    let resident = resident_memory(quick);
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
        "aarch64_binary_bytes": aarch64_bytes,
        "resident": resident,
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
}

/// Starts authd on `data` and measures it.
fn start_and_measure(binary: &Path, data: &Path, port: u16) -> Start {
    let started = Instant::now();
    let mut child = Command::new(binary)
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
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    child.wait().expect("wait");
    Start {
        ready_ms: ready.as_secs_f64() * 1000.0,
        signing_ms: signing.as_secs_f64() * 1000.0,
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
    let (mut users_seconds, mut events_seconds, mut users_bytes) = (0.0, 0.0, 0);
    let server = BenchServer::start_seeded("", |path| {
        let (store, org) = seed::open(path);
        users_seconds = seed::users(&store, &org, 0..users, &phc, false);
        users_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        events_seconds = seed::audit_events(&store, &org, events, users, heavy_every);
    });
    let bytes = server.database_bytes();
    // redb grows its file in steps, so these are upper bounds.
    let bytes_per_user = users_bytes as f64 / users as f64;
    let bytes_per_event = bytes.saturating_sub(users_bytes) as f64 / events as f64;
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
        "file bytes per user / per audit event",
        format!("{bytes_per_user:.0} / {bytes_per_event:.0} B"),
        format!("{:.1} MiB after the users alone", mib(users_bytes)),
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
        "bytes_after_users": users_bytes,
        "bytes_per_user": bytes_per_user,
        "bytes_per_event": bytes_per_event,
        "seed_seconds": {"users": users_seconds, "events": events_seconds},
        "query_by_user": {"queries": queries, "p50_ms": p50, "p99_ms": p99, "max_ms": max, "mean_items": mean_items},
        "query_heavy_user": {"queries": queries / 4, "events_of_user": events / heavy_every, "p50_ms": heavy_p50, "p99_ms": heavy_p99, "max_ms": heavy_max},
    })
}

/// Resident memory through a life, each reading after 3 s idle: a first
/// start, then a registration and a login with the default argon2
/// parameters, then mixed load (logins, registrations, refresh rotations,
/// authenticated GETs); then what an idle keep-alive connection and an SSE
/// subscriber of the audit stream cost each.
fn resident_memory(quick: bool) -> serde_json::Value {
    let (connections, subscribers, load) = if quick {
        (500, 100, Duration::from_secs(2))
    } else {
        (10_000, 1_000, Duration::from_secs(30))
    };
    // `AUTHD_BENCH_LOAD_SECONDS` sets the mixed load's length (e.g. 600 for
    // the ten minutes of docs/performance.md).
    let load = std::env::var("AUTHD_BENCH_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(load, Duration::from_secs);
    let idle = Duration::from_secs(3);
    let (binary, binary_kind) = common::measured_binary();
    // Idle connections must outlive the wait for a next request, and all of
    // them fit under the connection cap.
    let env = [
        ("AUTHD_SERVER__HEADER_TIMEOUT", "10m"),
        ("AUTHD_SERVER__MAX_CONNECTIONS", "12000"),
    ];
    let launch = Launch {
        binary: Some(&binary),
        env: &env,
    };
    let server = Arc::new(BenchServer::launch(&launch, NO_LIMITS, |_| {}));
    std::thread::sleep(idle);
    let first_start = server.resident();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (after_login, load_figures) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let base = server.base.clone();
        let account = json!({"email": "pi@home.example", "password": PASSWORD});
        let registered = client
            .post(format!("{base}/register"))
            .json(&account)
            .send()
            .await
            .expect("register");
        assert_eq!(registered.status(), 201, "registration");
        let login = || async {
            let response = client
                .post(format!("{base}/login"))
                .json(&account)
                .send()
                .await
                .expect("login");
            assert_eq!(response.status(), 200, "login");
            response.json::<serde_json::Value>().await.expect("json")
        };
        let tokens = login().await;
        tokio::time::sleep(idle).await;
        let after_login = server.resident();

        let access = tokens["access_token"].as_str().expect("access").to_owned();
        let chains: Vec<_> = [login().await, login().await]
            .iter()
            .map(|t| {
                Arc::new(tokio::sync::Mutex::new(
                    t["refresh_token"].as_str().expect("refresh").to_owned(),
                ))
            })
            .collect();
        // The logins of the load are another account's: each starts a
        // session, and past the per-user cap the oldest go, which would end
        // the sessions the GETs and rotations use.
        let churn = json!({"email": "churn@home.example", "password": PASSWORD});
        let registered = client
            .post(format!("{base}/register"))
            .json(&churn)
            .send()
            .await
            .expect("register");
        assert_eq!(registered.status(), 201, "registration");
        let scenario = |name: &str, result: LoadResult| (name.to_owned(), result.json());
        let (logins, registrations, rotations, gets) = tokio::join!(
            closed_loop(2, load, 200, {
                let (client, url) = (client.clone(), format!("{base}/login"));
                move |_, _| status_of(client.post(&url).json(&churn))
            }),
            closed_loop(1, load, 201, {
                let (client, url) = (client.clone(), format!("{base}/register"));
                move |worker, i| {
                    status_of(client.post(&url).json(
                        &json!({"email": format!("load{worker}-{i}@home.example"), "password": PASSWORD}),
                    ))
                }
            }),
            closed_loop(chains.len(), load, 200, {
                let (client, base) = (client.clone(), base.clone());
                move |worker, _| {
                    let (client, base, chain) = (client.clone(), base.clone(), chains[worker].clone());
                    Box::pin(async move { rotate(&client, &base, &chain).await })
                        as common::RequestFuture
                }
            }),
            closed_loop(4, load, 200, {
                let (client, url) = (client.clone(), format!("{base}/api/account"));
                move |_, _| status_of(client.get(&url).bearer_auth(&access))
            }),
        );
        let figures = json!(Object::from_iter([
            scenario("logins", logins),
            scenario("registrations", registrations),
            scenario("refresh_rotations", rotations),
            scenario("account_gets", gets),
        ]));
        (after_login, figures)
    });
    std::thread::sleep(idle);
    let after_load = server.resident();

    let port = server
        .base
        .rsplit(':')
        .next()
        .expect("port")
        .parse::<u16>()
        .expect("port");
    let per_connection_kib = held_cost(&server, connections, || {
        open(
            port,
            "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".into(),
        )
    });
    let token = server.admin_token();
    let per_subscriber_kib = held_cost(&server, subscribers, || {
        open(
            port,
            format!("GET /v1/events/stream HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"),
        )
    });

    header(&format!(
        "resident memory ({binary_kind} binary, each after 3 s idle)"
    ));
    for (figure, reading, limit) in [
        ("idle RSS, first start", first_start, "limit 10 MiB"),
        (
            "idle RSS after a registration and a login",
            after_login,
            "limit 10 MiB",
        ),
        (
            "idle RSS after mixed load",
            after_load,
            "anonymous holds redb's cache",
        ),
    ] {
        row(
            figure,
            format!("{:.2} MiB", reading.rss_mib),
            format!(
                "binary pages {:.1}, anonymous {:.1} MiB ({limit})",
                reading.binary_mib, reading.anonymous_mib
            ),
        );
    }
    row(
        &format!("cost of an idle keep-alive connection ({connections})"),
        format!("{per_connection_kib:.1} KiB"),
        "-".into(),
    );
    row(
        &format!("cost of an SSE audit subscriber ({subscribers})"),
        format!("{per_subscriber_kib:.1} KiB"),
        "-".into(),
    );
    json!({
        "binary": binary_kind,
        "first_start": first_start.json(),
        "after_login": after_login.json(),
        "after_load": after_load.json(),
        "load_seconds": load.as_secs(),
        "load": load_figures,
        "idle_connections": {"count": connections, "per_connection_kib": per_connection_kib},
        "sse_subscribers": {"count": subscribers, "per_subscriber_kib": per_subscriber_kib},
    })
}

type Object = serde_json::Map<String, serde_json::Value>;

/// What each of `count` connections made by `open` adds to the server's
/// RSS while they are held, in KiB.
fn held_cost(server: &BenchServer, count: usize, open: impl Fn() -> TcpStream) -> f64 {
    let before = server.resident().rss_mib;
    let held: Vec<TcpStream> = (0..count).map(|_| open()).collect();
    std::thread::sleep(Duration::from_secs(1));
    let after = server.resident().rss_mib;
    drop(held);
    std::thread::sleep(Duration::from_secs(1));
    (after - before) * 1024.0 / count as f64
}

/// A connection that sent `request` and read the head of a 200.
fn open(port: u16, request: String) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.write_all(request.as_bytes()).expect("send");
    let mut head = [0u8; 512];
    let read = stream.read(&mut head).expect("answer");
    assert!(
        head[..read].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head[..read])
    );
    stream
}
