//! Password login against its limit: argon2id hashes/s alone on these cores
//! vs successful logins/s over HTTP; peak RSS during a burst of 200
//! concurrent logins; and mean latency of unknown-email vs wrong-password
//! failures (the uniform-timing check). `cargo bench --bench login`
//! (`-- --quick` for a smoke run with cheap argon2 parameters).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use authd::crypto::passwords::{Argon2Params, PasswordHasher};
use common::{closed_loop, cores, header, row, save, BenchServer};
use serde_json::json;

const PASSWORD: &str = "Correct-Horse-42";

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (params, seconds, toml) = if quick {
        (
            Argon2Params {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            1,
            "[passwords]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n",
        )
    } else {
        (
            Argon2Params {
                memory_kib: 65536,
                iterations: 3,
                parallelism: 4,
            },
            8,
            "",
        )
    };
    let duration = Duration::from_secs(seconds);
    let cores = cores();

    // The limit: argon2id alone, one hash per core at a time, no HTTP.
    let hasher = PasswordHasher::new(params, cores).expect("hasher");
    let phc = hasher.hash(PASSWORD.to_owned()).await.expect("hash");
    let started = Instant::now();
    let mut verified = 0u64;
    while started.elapsed() < duration {
        let batch: Vec<_> = (0..cores * 2)
            .map(|_| {
                let hasher = hasher.clone();
                let phc = phc.clone();
                tokio::spawn(async move { hasher.verify(PASSWORD.to_owned(), Some(phc)).await })
            })
            .collect();
        for task in batch {
            task.await.expect("join").expect("verify");
            verified += 1;
        }
    }
    let hashes_per_second = verified as f64 / started.elapsed().as_secs_f64();
    drop(hasher);

    let server = BenchServer::start(&format!(
        "{toml}[limits]\nlogin_per_ip_per_min = 100000000\nlogin_per_account_per_min = 100000000\nlockout_threshold = 100000000\n"
    ));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let base = server.base.clone();
    // Users for the logins, registered over HTTP.
    let users = 48;
    for i in 0..users {
        let status = client
            .post(format!("{base}/register"))
            .json(&json!({"email": format!("bench{i}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .expect("register")
            .status();
        assert_eq!(status, 201);
    }
    let idle_rss = server.rss_mib().0;

    let login = {
        let (client, base) = (client.clone(), base.clone());
        move |worker: usize, iteration: u64| {
            let request = client
                .post(format!("{base}/login"))
                .json(&json!({"email": format!("bench{}@example.com", (worker + iteration as usize) % users), "password": PASSWORD}));
            async move {
                request
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .map_err(|e| e.to_string())
            }
        }
    };
    let logins = closed_loop(cores * 4, duration, 200, login.clone()).await;

    // A burst of 200 simultaneous logins; memory must stay bounded by
    // hash_concurrency × memory_kib, not 200 × memory_kib.
    let burst_started = Instant::now();
    let burst: Vec<_> = (0..200).map(|i| tokio::spawn(login(i, 0))).collect();
    let mut burst_ok = 0;
    for task in burst {
        if task.await.expect("join") == Ok(200) {
            burst_ok += 1;
        }
    }
    let burst_seconds = burst_started.elapsed().as_secs_f64();
    let (_, peak_rss) = server.rss_mib();

    // Uniform failures: alternate unknown emails and wrong passwords on
    // distinct accounts (so the progressive delay does not apply), one at a time.
    let rounds = if quick { 10 } else { users };
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for i in 0..rounds {
        for (email, password, bucket) in [
            (format!("nobody{i}@example.com"), PASSWORD, &mut unknown),
            (
                format!("bench{i}@example.com"),
                "Wrong-Password-99",
                &mut wrong,
            ),
        ] {
            let sent = Instant::now();
            let status = client
                .post(format!("{base}/login"))
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .expect("login")
                .status();
            assert_eq!(status, 401);
            bucket.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    let (unknown_ms, wrong_ms) = (mean(&unknown), mean(&wrong));
    let timing_gap = (unknown_ms - wrong_ms).abs() / wrong_ms * 100.0;

    header(&format!(
        "login (argon2id m={} KiB t={} p={}, {cores} cores{})",
        params.memory_kib,
        params.iterations,
        params.parallelism,
        if quick { ", QUICK" } else { "" }
    ));
    row(
        "argon2id verifications/s alone (the limit)",
        format!("{hashes_per_second:.1}/s"),
        "-".into(),
    );
    row(
        "successful logins/s over HTTP",
        format!("{:.1}/s", logins.per_second()),
        format!(
            "ratio {:.2} (target >= 0.9)",
            logins.per_second() / hashes_per_second
        ),
    );
    row(
        "login latency p50 / p99 / p999",
        format!(
            "{:.0}/{:.0}/{:.0} ms",
            logins.p50_ms, logins.p99_ms, logins.p999_ms
        ),
        format!("{} connections", cores * 4),
    );
    row(
        "RSS idle after registrations",
        format!("{idle_rss:.1} MiB"),
        "-".into(),
    );
    row(
        "peak RSS (VmHWM) through a burst of 200 logins",
        format!("{peak_rss:.1} MiB"),
        format!("{burst_ok}/200 ok in {burst_seconds:.1} s"),
    );
    row(
        "mean 401 latency, unknown email",
        format!("{unknown_ms:.1} ms"),
        format!("{rounds} samples"),
    );
    row(
        "mean 401 latency, wrong password",
        format!("{wrong_ms:.1} ms"),
        format!("{rounds} samples"),
    );
    row(
        "difference",
        format!("{timing_gap:.1} %"),
        "target <= 5 %".into(),
    );

    save(
        "login",
        &json!({
            "quick": quick,
            "argon2": {"memory_kib": params.memory_kib, "iterations": params.iterations, "parallelism": params.parallelism},
            "cores": cores,
            "hashes_per_second": hashes_per_second,
            "logins": logins.json(),
            "login_to_hash_ratio": logins.per_second() / hashes_per_second,
            "idle_rss_mib": idle_rss,
            "burst": {"concurrent": 200, "ok": burst_ok, "seconds": burst_seconds, "peak_rss_mib": peak_rss},
            "failure_latency_ms": {"unknown_email": unknown_ms, "wrong_password": wrong_ms, "difference_percent": timing_gap},
        }),
    );
}
