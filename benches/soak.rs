//! The soak (`just soak [MINUTES]`, not in CI): mixed traffic from 1,000
//! clients, each on its own kept-alive connection, against the release
//! binary for `AUTHD_SOAK_MINUTES` (default 30). Per minute it prints the
//! requests, errors (any answer but the expected one, or none) and p99,
//! and the RSS (`VmRSS`) at start, after the first minute (warm-up) and at
//! the end, with the database file's size (redb's page cache, part of the
//! RSS, grows with the file the sign-ups grow). The mix: profile reads with an access token, PAT reads of the
//! control plane, refresh rotations, sign-ins (cheap argon2id, as the
//! crash harness: this is about staying flat, not about hashing), and
//! sign-ups. It fails if any request failed.
//! `AUTHD_SOAK_CONNECTIONS` changes the 1,000.

// A bench is a client: it reads the wall clock as one would.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{save, BenchServer};
use serde_json::{json, Value};

const PASSWORD: &str = "Correct-Horse-42";
/// Accounts whose sessions the load signs in to again and again, apart
/// from those holding the clients' refresh chains (a sign-in past
/// `sessions.max_per_user` ends the oldest session).
const SIGN_IN_ACCOUNTS: usize = 50;

/// One client's credentials: an access token, its refresh chain, a PAT.
struct Credentials {
    access_token: String,
    refresh_token: tokio::sync::Mutex<String>,
    pat: String,
    org_id: String,
}

/// One minute of the soak.
struct Phase {
    histogram: hdrhistogram::Histogram<u64>,
    errors: u64,
    /// The errors by the status they got (0: no answer).
    error_statuses: std::collections::BTreeMap<u16, u64>,
}

fn main() {
    let minutes: u64 = std::env::var("AUTHD_SOAK_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let connections: usize = std::env::var("AUTHD_SOAK_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    raise_open_files_limit();
    let server = BenchServer::start(
        "[passwords]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n\
         [limits]\nlogin_per_ip_per_min = 100000000\nlogin_per_account_per_min = 100000000\n\
         register_per_ip_per_min = 100000000\n",
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let failed = runtime.block_on(soak(&server, minutes, connections));
    if failed {
        std::process::exit(1);
    }
}

/// A thousand sockets on each side: the default soft limit may be 1,024.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to our own struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

async fn soak(server: &BenchServer, minutes: u64, connections: usize) -> bool {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let base = server.base.clone();
    println!(
        "soak: {connections} clients for {minutes} min against {}",
        common::AUTHD
    );

    // Set-up: one account per client (its chain, its PAT), and the accounts
    // the sign-ins use.
    let mut credentials = Vec::new();
    for n in 0..connections {
        credentials.push(Arc::new(set_up_client(&client, &base, n).await));
    }
    for n in 0..SIGN_IN_ACCOUNTS {
        register(&client, &base, &format!("signin{n}@soak.test")).await;
    }
    let start_rss = server.rss_mib().0;
    println!("soak: set up; RSS at start {start_rss:.1} MiB");

    let phases: Arc<Vec<Mutex<Phase>>> = Arc::new(
        (0..minutes)
            .map(|_| {
                Mutex::new(Phase {
                    histogram: hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3)
                        .expect("histogram"),
                    errors: 0,
                    error_statuses: Default::default(),
                })
            })
            .collect(),
    );
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sign_ups = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for (worker, own) in credentials.into_iter().enumerate() {
        let (client, base, phases, stop, sign_ups) = (
            client.clone(),
            base.clone(),
            phases.clone(),
            stop.clone(),
            sign_ups.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut iteration: u64 = worker as u64;
            while !stop.load(Ordering::Relaxed) {
                iteration += 1;
                let sent = Instant::now();
                let outcome = one_request(&client, &base, &own, iteration, &sign_ups).await;
                let phase = (started.elapsed().as_secs() / 60) as usize;
                let Some(phase) = phases.get(phase) else {
                    break;
                };
                let mut phase = phase.lock().expect("phase");
                match outcome {
                    Ok(()) => {
                        let micros = sent.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                        let _ = phase.histogram.record(micros);
                    }
                    Err(status) => {
                        phase.errors += 1;
                        *phase.error_statuses.entry(status).or_default() += 1;
                    }
                }
            }
        }));
    }

    let mut warm_rss = 0.0;
    println!("soak: minute  requests  errors   p50 ms   p99 ms   RSS MiB   file MiB");
    for minute in 0..minutes {
        let end_of_minute = Duration::from_secs((minute + 1) * 60);
        tokio::time::sleep(end_of_minute.saturating_sub(started.elapsed())).await;
        if minute + 1 == minutes {
            stop.store(true, Ordering::Relaxed);
        }
        let rss = server.rss_mib().0;
        if minute == 0 {
            warm_rss = rss;
        }
        // A request is counted in the minute it finishes: this one's
        // stragglers land in the next.
        let phase = phases[minute as usize].lock().expect("phase");
        println!(
            "soak:   {:>4}  {:>8}  {:>6}  {:>7.2}  {:>7.2}  {:>8.1}  {:>9.1}",
            minute + 1,
            phase.histogram.len(),
            phase.errors,
            phase.histogram.value_at_quantile(0.5) as f64 / 1000.0,
            phase.histogram.value_at_quantile(0.99) as f64 / 1000.0,
            rss,
            common::mib(server.database_bytes()),
        );
    }
    for worker in workers {
        let _ = worker.await;
    }
    let end_rss = server.rss_mib().0;
    let mut errors = 0;
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    let mut table = Vec::new();
    for minute in 0..minutes as usize {
        let phase = phases[minute].lock().expect("phase");
        errors += phase.errors;
        for (status, n) in &phase.error_statuses {
            *statuses.entry(*status).or_default() += n;
        }
        table.push(json!({
            "minute": minute + 1,
            "requests": phase.histogram.len(),
            "errors": phase.errors,
            "p50_ms": phase.histogram.value_at_quantile(0.5) as f64 / 1000.0,
            "p99_ms": phase.histogram.value_at_quantile(0.99) as f64 / 1000.0,
            "error_statuses": phase
                .error_statuses
                .iter()
                .map(|(status, n)| (status.to_string(), json!(n)))
                .collect::<serde_json::Map<String, Value>>(),
        }));
    }
    println!(
        "soak: {minutes} min, {connections} clients: RSS {start_rss:.1} MiB at start, {warm_rss:.1} MiB after the first minute, {end_rss:.1} MiB at the end; {} sign-ups; errors {errors}",
        sign_ups.load(Ordering::Relaxed)
    );
    if errors > 0 {
        println!("soak: errors by status (0: no answer): {statuses:?}");
    }
    save(
        "soak",
        &json!({
            "minutes": minutes,
            "connections": connections,
            "rss_mib": {"start": start_rss, "after_warm_up": warm_rss, "end": end_rss},
            "errors": errors,
            "per_minute": table,
        }),
    );
    errors > 0
}

async fn register(client: &reqwest::Client, base: &str, email: &str) -> Value {
    let response = client
        .post(format!("{base}/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("register");
    assert_eq!(response.status(), 201, "register {email}");
    response.json().await.expect("profile")
}

async fn set_up_client(client: &reqwest::Client, base: &str, n: usize) -> Credentials {
    let email = format!("client{n}@soak.test");
    let profile = register(client, base, &email).await;
    let org_id = profile["memberships"][0]["org_id"]
        .as_str()
        .expect("org")
        .to_owned();
    let tokens: Value = client
        .post(format!("{base}/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("tokens");
    let session: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("control-plane login")
        .json()
        .await
        .expect("session");
    let pat: Value = client
        .post(format!("{base}/api/v1/auth/api-tokens"))
        .bearer_auth(session["access_token"].as_str().expect("session token"))
        .header("X-Active-Org-Id", &org_id)
        .json(&json!({"name": "soak", "scopes": ["sessions.read"], "expires_in_days": 30}))
        .send()
        .await
        .expect("PAT")
        .json()
        .await
        .expect("PAT body");
    Credentials {
        access_token: tokens["access_token"].as_str().expect("access").to_owned(),
        refresh_token: tokio::sync::Mutex::new(
            tokens["refresh_token"]
                .as_str()
                .expect("refresh")
                .to_owned(),
        ),
        pat: pat["token"].as_str().expect("PAT token").to_owned(),
        org_id,
    }
}

/// One request of the mix: `Err` with the status it got instead of the
/// one it should (0 when no answer came).
async fn one_request(
    client: &reqwest::Client,
    base: &str,
    own: &Credentials,
    iteration: u64,
    sign_ups: &AtomicU64,
) -> Result<(), u16> {
    let expected = |status: u16, wanted: u16| {
        if status == wanted {
            Ok(())
        } else {
            Err(status)
        }
    };
    let status = |response: Result<reqwest::Response, reqwest::Error>| {
        response.map(|r| r.status().as_u16()).unwrap_or(0)
    };
    match iteration % 20 {
        // 45 %: the profile with an access token.
        0..=8 => expected(
            status(
                client
                    .get(format!("{base}/api/account"))
                    .bearer_auth(&own.access_token)
                    .send()
                    .await,
            ),
            200,
        ),
        // 20 %: a PAT on the control plane.
        9..=12 => expected(
            status(
                client
                    .get(format!("{base}/api/v1/sessions"))
                    .bearer_auth(&own.pat)
                    .header("X-Active-Org-Id", &own.org_id)
                    .send()
                    .await,
            ),
            200,
        ),
        // 15 %: a refresh rotation (a signature and a durable commit).
        13..=15 => expected(
            common::rotate(client, base, &own.refresh_token)
                .await
                .unwrap_or(0),
            200,
        ),
        // 10 %: a sign-in.
        16 | 17 => {
            let email = format!("signin{}@soak.test", iteration % SIGN_IN_ACCOUNTS as u64);
            expected(
                status(
                    client
                        .post(format!("{base}/login"))
                        .json(&json!({"email": email, "password": PASSWORD}))
                        .send()
                        .await,
                ),
                200,
            )
        }
        // 10 %: a sign-up.
        _ => {
            let n = sign_ups.fetch_add(1, Ordering::Relaxed);
            expected(
                status(
                    client
                        .post(format!("{base}/register"))
                        .json(&json!({"email": format!("new{n}@soak.test"), "password": PASSWORD}))
                        .send()
                        .await,
                ),
                201,
            )
        }
    }
}
