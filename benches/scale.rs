//! Scale: throughput of password login, refresh rotation and
//! PAT-authenticated GET, and the database file size, at 1,000 / 100,000 /
//! 1,000,000 users (quick: 1,000 / 10,000), and the ratio of each throughput
//! at the largest size to that at 1,000 (target: ≥ 0.8). Users, each with one
//! PAT, are seeded through the store's fast path (`common::seed`), not HTTP;
//! every request picks a random seeded user. All sizes' servers run at once
//! and each scenario is measured in rounds that take the sizes in turn
//! (forwards, then backwards); a figure is the median round, so that the
//! machine's drift between minutes (as large as the effect measured) falls on
//! every size alike. Logins use cheap argon2id (m=1024 KiB, t=1, p=1) and
//! tokens EdDSA, so that the store, not hashing or RSA signing, bounds them.
//! `cargo bench --bench scale` (5 rounds of 2 s; `-- --quick` for a smoke
//! run, 2 rounds of 0.5 s; `AUTHD_BENCH_SCALE_SIZES=1000,300000`
//! to choose the user counts). Prints a table and writes
//! `target/bench/scale.json`.

// A bench is a client: it reads the wall clock as one would.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::seed::{self, PASSWORD};
use common::{
    closed_loop, cores, header, mib, row, save, status_of, BenchServer, LoadResult, RequestFuture,
    CHEAP_ARGON2, NO_LIMITS,
};
use serde_json::{json, Value};

/// The cheap argon2id parameters of `CHEAP_ARGON2`.
const ARGON2: (u32, u32, u32) = (1024, 1, 1);
/// EdDSA signs ~50× faster than RS256, so signing does not hide the store.
const SIGNING: &str = "[tokens]\nsigning_alg = \"EdDSA\"\n";

fn random_user(users: u64) -> u64 {
    rand::random::<u64>() % users
}

async fn login_status(
    client: &reqwest::Client,
    base: &str,
    user: u64,
) -> Result<(u16, Value), String> {
    let response = client
        .post(format!("{base}/login"))
        .json(&json!({"email": seed::email(user), "password": PASSWORD}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// One seeded server, ready to be measured.
struct Size {
    users: u64,
    server: BenchServer,
    seed_seconds: f64,
    /// Spawn to the first 200: every open verifies every page of the file.
    start_ms: f64,
    database_bytes: u64,
    first_login_ms: f64,
    warm_up_seconds: f64,
    warmed_bytes: u64,
    /// Median time of one `GET /metrics`, and its size.
    metrics_scrape_ms: f64,
    metrics_bytes: usize,
}

async fn seeded(client: &reqwest::Client, users: u64) -> Size {
    let phc = seed::phc(ARGON2.0, ARGON2.1, ARGON2.2);
    let mut seed_seconds = 0.0;
    let server =
        BenchServer::start_seeded(&format!("{CHEAP_ARGON2}{NO_LIMITS}{SIGNING}"), |path| {
            let (store, org) = seed::open(path);
            seed_seconds = seed::users(&store, &org, 0..users, &phc, true);
        });
    let database_bytes = server.database_bytes();
    let start_ms = server.started_in.as_secs_f64() * 1000.0;

    // The first write after start waits for the start-up housekeeping (the
    // sweeps of sessions and PATs run at once), so it shows what that costs.
    let first = Instant::now();
    let (status, _) = login_status(client, &server.base, random_user(users))
        .await
        .expect("first login");
    assert_eq!(status, 200, "first login");
    let first_login_ms = first.elapsed().as_secs_f64() * 1000.0;

    // The figures are of a server in its steady state: after start it reads
    // the request-path tables into its page cache in the background (a few
    // seconds of one core for a million users), which is reported on its own.
    let (warm_up_seconds, warmed_bytes) = wait_for_warm_cache(client, &server).await;
    let (metrics_scrape_ms, metrics_bytes) = metrics_scrape(client, &server).await;
    Size {
        users,
        server,
        seed_seconds,
        start_ms,
        database_bytes,
        first_login_ms,
        warm_up_seconds,
        warmed_bytes,
        metrics_scrape_ms,
        metrics_bytes,
    }
}

/// What Prometheus pays per scrape: the median of 51 sequential `GET
/// /metrics` (counters and two cheap gauges, so it should not grow with
/// the number of users), and the size of the answer.
async fn metrics_scrape(client: &reqwest::Client, server: &BenchServer) -> (f64, usize) {
    let token = server.admin_token();
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..51 {
        let started = Instant::now();
        let text = client
            .get(format!("{}/metrics", server.base))
            .bearer_auth(&token)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        bytes = text.len();
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], bytes)
}

/// How long each measurement is, and how often each size is measured.
#[derive(Clone, Copy)]
struct Rounds {
    count: usize,
    measure: Duration,
    warmup: Duration,
    connections: usize,
}

/// Measures one scenario at every size, `rounds.count` times, taking the
/// sizes in turn (forwards, then backwards) so that a drift in the
/// machine's speed falls on every size alike; returns each size's rounds.
async fn interleaved<F, Fut>(
    sizes: &[Size],
    rounds: Rounds,
    scenario: impl Fn(usize, &Size) -> F,
) -> Vec<Vec<LoadResult>>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<u16, String>> + Send,
{
    let requests: Vec<F> = sizes
        .iter()
        .enumerate()
        .map(|(i, size)| scenario(i, size))
        .collect();
    let mut results = vec![Vec::new(); sizes.len()];
    for round in 0..rounds.count {
        let mut order: Vec<usize> = (0..sizes.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let request = requests[i].clone();
            closed_loop(rounds.connections, rounds.warmup, 200, request.clone()).await;
            results[i].push(closed_loop(rounds.connections, rounds.measure, 200, request).await);
        }
    }
    results
}

/// The median round (by throughput) and every round's throughput.
fn summarised(rounds: &[LoadResult]) -> Value {
    let mut sorted: Vec<&LoadResult> = rounds.iter().collect();
    sorted.sort_by(|a, b| a.per_second().total_cmp(&b.per_second()));
    let median = sorted[sorted.len() / 2];
    let mut json = median.json();
    json["per_second"] = json!(median.per_second());
    json["errors"] = json!(rounds.iter().map(|r| r.errors).sum::<u64>());
    json["rounds_per_second"] = json!(rounds
        .iter()
        .map(LoadResult::per_second)
        .collect::<Vec<_>>());
    json
}

fn login_scenario(size: &Size) -> impl Fn(usize, u64) -> RequestFuture + Clone {
    let client = client();
    let (base, users) = (size.server.base.clone(), size.users);
    move |_: usize, _: u64| {
        let (client, base) = (client.clone(), base.clone());
        Box::pin(async move {
            login_status(&client, &base, random_user(users))
                .await
                .map(|(status, _)| status)
        })
    }
}

/// One refresh chain per connection, each from a login of a random user.
async fn refresh_chains(size: &Size, connections: usize) -> Arc<Vec<tokio::sync::Mutex<String>>> {
    let client = client();
    let mut chains = Vec::new();
    for _ in 0..connections {
        let (status, body) = login_status(&client, &size.server.base, random_user(size.users))
            .await
            .expect("login");
        assert_eq!(status, 200);
        chains.push(tokio::sync::Mutex::new(
            body["refresh_token"].as_str().expect("refresh").to_owned(),
        ));
    }
    Arc::new(chains)
}

fn refresh_scenario(
    size: &Size,
    chains: Arc<Vec<tokio::sync::Mutex<String>>>,
) -> impl Fn(usize, u64) -> RequestFuture + Clone {
    let client = client();
    let base = size.server.base.clone();
    move |worker: usize, _: u64| {
        let (client, base, chains) = (client.clone(), base.clone(), chains.clone());
        Box::pin(async move { common::rotate(&client, &base, &chains[worker]).await })
    }
}

fn pat_get_scenario(size: &Size) -> impl Fn(usize, u64) -> RequestFuture + Clone {
    let client = client();
    let (base, users) = (size.server.base.clone(), size.users);
    move |_: usize, _: u64| {
        status_of(
            client
                .get(format!("{base}/api/account"))
                .bearer_auth(seed::pat_token(random_user(users))),
        )
    }
}

/// Each server gets its own connection pool.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .expect("client")
}

/// Polls `/v1/status` until the page-cache warm-up has finished; returns the
/// seconds since the server answered and the bytes it read.
async fn wait_for_warm_cache(client: &reqwest::Client, server: &BenchServer) -> (f64, u64) {
    let token = server.admin_token();
    loop {
        let status: Value = client
            .get(format!("{}/v1/status", server.base))
            .bearer_auth(&token)
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("status json");
        let cache = &status["database"]["page_cache"];
        if cache["warm_up"] == "done" {
            return (
                server.ready_at.elapsed().as_secs_f64(),
                cache["warmed_bytes"].as_u64().unwrap_or(0),
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes: Vec<u64> = match std::env::var("AUTHD_BENCH_SCALE_SIZES") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .replace('_', "")
                    .parse()
                    .expect("AUTHD_BENCH_SCALE_SIZES: numbers")
            })
            .collect(),
        Err(_) if quick => vec![1_000, 10_000],
        Err(_) => vec![1_000, 100_000, 1_000_000],
    };
    let rounds = if quick {
        Rounds {
            count: 2,
            measure: Duration::from_millis(500),
            warmup: Duration::from_millis(100),
            connections: 4,
        }
    } else {
        Rounds {
            count: 5,
            measure: Duration::from_secs(2),
            warmup: Duration::from_millis(500),
            connections: 32,
        }
    };
    let connections = rounds.connections;

    // Every size's server is seeded and started first and stays up, so that
    // the rounds of each scenario can alternate between them.
    let setup = client();
    let mut servers = Vec::new();
    for &users in &sizes {
        servers.push(seeded(&setup, users).await);
    }
    let logins = interleaved(&servers, rounds, |_, size| login_scenario(size)).await;
    let mut chains = Vec::new();
    for size in &servers {
        chains.push(refresh_chains(size, connections).await);
    }
    let rotations = interleaved(&servers, rounds, |i, size| {
        refresh_scenario(size, chains[i].clone())
    })
    .await;
    let pat_gets = interleaved(&servers, rounds, |_, size| pat_get_scenario(size)).await;

    let results: Vec<Value> = servers
        .iter()
        .enumerate()
        .map(|(i, size)| {
            json!({
                "users": size.users,
                "seed_seconds": size.seed_seconds,
                "start_ms": size.start_ms,
                "database_bytes": size.database_bytes,
                "database_bytes_after": size.server.database_bytes(),
                "first_login_after_start_ms": size.first_login_ms,
                "cache_warm_up_seconds": size.warm_up_seconds,
                "cache_warmed_bytes": size.warmed_bytes,
                "metrics_scrape_ms": size.metrics_scrape_ms,
                "metrics_bytes": size.metrics_bytes,
                "logins": summarised(&logins[i]),
                "refresh_rotations": summarised(&rotations[i]),
                "pat_gets": summarised(&pat_gets[i]),
            })
        })
        .collect();
    drop(servers);

    let per_second = |v: &Value, key: &str| v[key]["per_second"].as_f64().unwrap_or(0.0);
    let latency = |v: &Value, key: &str| {
        format!(
            "p50 {:.1} / p99 {:.1} ms",
            v[key]["p50_ms"].as_f64().unwrap_or(0.0),
            v[key]["p99_ms"].as_f64().unwrap_or(0.0)
        )
    };
    header(&format!(
        "scale (argon2id m={} KiB t={} p={} and EdDSA, so the store, not hashing, bounds logins; {} cores, {connections} connections, median of {} rounds of {:.1} s{})",
        ARGON2.0,
        ARGON2.1,
        ARGON2.2,
        cores(),
        rounds.count,
        rounds.measure.as_secs_f64(),
        if quick { ", QUICK" } else { "" }
    ));
    for result in &results {
        let users = result["users"].as_u64().unwrap_or(0);
        let bytes = result["database_bytes"].as_u64().unwrap_or(0);
        let n = format_count(users);
        row(
            &format!("{n} users (+1 PAT each): database file"),
            format!("{:.1} MiB", mib(bytes)),
            format!("{:.0} B/user", bytes as f64 / users as f64),
        );
        row(
            &format!("{n} users:   seeded in"),
            format!("{:.1} s", result["seed_seconds"].as_f64().unwrap_or(0.0)),
            format!(
                "first login after start {:.0} ms",
                result["first_login_after_start_ms"].as_f64().unwrap_or(0.0)
            ),
        );
        row(
            &format!("{n} users:   start (spawn -> first 200)"),
            format!("{:.0} ms", result["start_ms"].as_f64().unwrap_or(0.0)),
            "the open checks every page".to_string(),
        );
        row(
            &format!("{n} users:   page cache warm after"),
            format!(
                "{:.1} s",
                result["cache_warm_up_seconds"].as_f64().unwrap_or(0.0)
            ),
            format!(
                "{:.0} MiB of rows read",
                mib(result["cache_warmed_bytes"].as_u64().unwrap_or(0))
            ),
        );
        row(
            &format!("{n} users:   GET /metrics (median)"),
            format!(
                "{:.2} ms",
                result["metrics_scrape_ms"].as_f64().unwrap_or(0.0)
            ),
            format!(
                "{:.1} KiB, no table scan",
                result["metrics_bytes"].as_u64().unwrap_or(0) as f64 / 1024.0
            ),
        );
        for (key, what) in [
            ("logins", "logins/s"),
            ("refresh_rotations", "refresh rotations/s"),
            ("pat_gets", "PAT GET /api/account/s"),
        ] {
            row(
                &format!("{n} users:   {what}"),
                format!("{:.0}/s", per_second(result, key)),
                latency(result, key),
            );
        }
    }
    let (smallest, largest) = (&results[0], &results[results.len() - 1]);
    let largest_users = largest["users"].as_u64().unwrap_or(0);
    let mut ratios = serde_json::Map::new();
    for (key, what) in [
        ("logins", "logins/s"),
        ("refresh_rotations", "refresh rotations/s"),
        ("pat_gets", "PAT GETs/s"),
    ] {
        let ratio = per_second(largest, key) / per_second(smallest, key);
        ratios.insert(key.to_owned(), json!(ratio));
        row(
            &format!(
                "{what} at {} vs at {}",
                format_count(largest_users),
                format_count(smallest["users"].as_u64().unwrap_or(0))
            ),
            format!("ratio {ratio:.2}"),
            "target >= 0.8".into(),
        );
    }
    let errors: u64 = results
        .iter()
        .flat_map(|r| {
            ["logins", "refresh_rotations", "pat_gets"]
                .map(|key| r[key]["errors"].as_u64().unwrap_or(0))
        })
        .sum();
    if errors > 0 {
        row(
            "requests that failed",
            format!("{errors}"),
            "should be 0".into(),
        );
    }

    save(
        "scale",
        &json!({
            "quick": quick,
            "cores": cores(),
            "connections": connections,
            "rounds": rounds.count,
            "seconds_per_round": rounds.measure.as_secs_f64(),
            "argon2": {"memory_kib": ARGON2.0, "iterations": ARGON2.1, "parallelism": ARGON2.2},
            "signing_alg": "EdDSA",
            "sizes": results,
            "largest_users": largest_users,
            "ratio_largest_to_smallest": ratios,
        }),
    );
}

fn format_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
