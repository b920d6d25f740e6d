//! The soak (`just soak [MINUTES]`, not in CI): mixed traffic at a steady
//! rate over 1,000 kept-alive connections (one client and one connection
//! per simulated user) against the static release binary (what `just
//! release` builds, which `just soak` does first; else the glibc one cargo
//! builds for benches) for `AUTHD_SOAK_MINUTES` (default 30).
//!
//! The load is open-loop: each connection sends its next request on a
//! schedule (`AUTHD_SOAK_RATE` requests/s in all, default 1,000, so one a
//! second per connection) whether or not the server kept up, and latency is
//! counted from when the request was due, so a stall shows in the p99
//! instead of slowing the load that would reveal it (a closed loop of
//! 1,000 clients only measures overload). The mix: profile reads with an
//! access token, PAT reads of the control plane, refresh rotations (each
//! connection its own chain; the rotated access token replaces the old),
//! sign-ins (cheap argon2id, as the crash harness: this is about staying
//! flat, not about hashing) and a few sign-ups.
//!
//! Per minute it prints requests, errors (any answer but the expected one,
//! or none), p50/p99, RSS (`VmRSS`), the server's open sockets and the
//! file's size; at the end the p99 of each kind of request. redb's page
//! cache is capped at `CACHE_MIB`, so that the file growing under sign-ins'
//! sessions and audit events can neither pass for a leak nor hide one. It
//! fails (exit 1) on any error, on an RSS in the last minute more than 10 %
//! above the RSS after warm-up (the first sixth of the run), both under the
//! load, or on a minute whose p99 is over three times the median minute's
//! after warm-up.
//! `AUTHD_SOAK_CONNECTIONS` changes the 1,000.

// A bench is a client: it reads the wall clock as one would.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{save, BenchServer, Launch};
use serde_json::{json, Value};

const PASSWORD: &str = "Correct-Horse-42";
/// Accounts the sign-ins use, apart from those holding the connections'
/// refresh chains (a sign-in past `sessions.max_per_user` ends the oldest
/// session, which must not be a chain the load rotates).
const SIGN_IN_ACCOUNTS: usize = 50;
/// redb's page cache ceiling for the soak (MiB): the smallest "auto" gives.
const CACHE_MIB: u64 = 32;

/// The kinds of request, in the order the mix deals them out of 100.
#[derive(Clone, Copy)]
enum Kind {
    Profile,
    Pat,
    Rotation,
    SignIn,
    SignUp,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Profile,
        Kind::Pat,
        Kind::Rotation,
        Kind::SignIn,
        Kind::SignUp,
    ];

    /// Percent of the requests: 50 profile reads, 29 PAT reads, 15
    /// rotations, 5 sign-ins, 1 sign-up. Most traffic of a running site
    /// carries a token; a session is signed in to once and then refreshed.
    fn of(iteration: u64) -> Kind {
        match iteration % 100 {
            0..=49 => Kind::Profile,
            50..=78 => Kind::Pat,
            79..=93 => Kind::Rotation,
            94..=98 => Kind::SignIn,
            _ => Kind::SignUp,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Profile => "profile GET (access token)",
            Kind::Pat => "control-plane GET (PAT)",
            Kind::Rotation => "refresh rotation",
            Kind::SignIn => "sign-in",
            Kind::SignUp => "sign-up",
        }
    }
}

/// One connection's client and credentials.
struct Connection {
    http: reqwest::Client,
    access_token: String,
    refresh_token: String,
    pat: String,
    org_id: String,
}

fn histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram")
}

/// One minute of the soak.
struct Phase {
    all: hdrhistogram::Histogram<u64>,
    errors: u64,
    /// The errors by the status they got (0: no answer).
    error_statuses: BTreeMap<u16, u64>,
}

fn main() {
    let variable = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let minutes = variable("AUTHD_SOAK_MINUTES", 30).max(1);
    let connections = variable("AUTHD_SOAK_CONNECTIONS", 1000).max(1) as usize;
    let rate = variable("AUTHD_SOAK_RATE", 1000).max(1);
    raise_open_files_limit();
    let cache_mib = CACHE_MIB.to_string();
    let (binary, binary_kind) = common::measured_binary();
    println!("soak: the {binary_kind} binary, {}", binary.display());
    let server = BenchServer::launch(
        &Launch {
            binary: Some(&binary),
            env: &[("AUTHD_STORAGE__CACHE_MIB", &cache_mib)],
        },
        "[passwords]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n\
         [limits]\nlogin_per_ip_per_min = 100000000\nlogin_per_account_per_min = 100000000\n\
         register_per_ip_per_min = 100000000\n",
        |_| {},
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let failed = runtime.block_on(soak(&server, minutes, connections, rate));
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

/// The server's open TCP sockets (its listener among them).
fn server_sockets(server: &BenchServer) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| {
                    std::fs::read_link(entry.path())
                        .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

async fn soak(server: &BenchServer, minutes: u64, connections: usize, rate: u64) -> bool {
    let base = server.base.clone();
    let period = Duration::from_secs_f64(connections as f64 / rate as f64);
    let warm_up = (minutes / 6).max(1);
    println!(
        "soak: {connections} connections, {rate} requests/s in all (one every {:.0} ms each), for {minutes} min ({warm_up} of warm-up)",
        period.as_secs_f64() * 1000.0,
    );

    // Set-up: one account per connection (its chain, its PAT), and the
    // accounts the sign-ins use.
    let mut own = Vec::new();
    for n in 0..connections {
        own.push(set_up_connection(&base, n).await);
    }
    let setup = reqwest::Client::new();
    for n in 0..SIGN_IN_ACCOUNTS {
        register(&setup, &base, &format!("signin{n}@soak.test")).await;
    }
    let start_rss = server.rss_mib().0;
    println!("soak: set up; RSS at start {start_rss:.1} MiB");

    let phases: Arc<Vec<Mutex<Phase>>> = Arc::new(
        (0..minutes)
            .map(|_| {
                Mutex::new(Phase {
                    all: histogram(),
                    errors: 0,
                    error_statuses: BTreeMap::new(),
                })
            })
            .collect(),
    );
    // Per kind, after warm-up.
    let kinds: Arc<Vec<Mutex<hdrhistogram::Histogram<u64>>>> =
        Arc::new(Kind::ALL.iter().map(|_| Mutex::new(histogram())).collect());
    let started = tokio::time::Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sign_ups = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for (worker, mut own) in own.into_iter().enumerate() {
        let (base, phases, kinds, stop, sign_ups) = (
            base.clone(),
            phases.clone(),
            kinds.clone(),
            stop.clone(),
            sign_ups.clone(),
        );
        workers.push(tokio::spawn(async move {
            // Spread the connections' turns evenly over a period.
            let mut due = started + period.mul_f64(worker as f64 / connections as f64);
            let mut iteration = worker as u64;
            loop {
                tokio::time::sleep_until(due).await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                iteration += 1;
                let kind = Kind::of(iteration);
                let outcome = one_request(&mut own, &base, kind, iteration, &sign_ups).await;
                let finished = tokio::time::Instant::now();
                let minute = (finished.duration_since(started).as_secs() / 60) as usize;
                let Some(phase) = phases.get(minute) else {
                    break;
                };
                let micros = finished
                    .duration_since(due)
                    .as_micros()
                    .clamp(1, 600_000_000) as u64;
                {
                    let mut phase = phase.lock().expect("phase");
                    match outcome {
                        Ok(()) => {
                            let _ = phase.all.record(micros);
                        }
                        Err(status) => {
                            phase.errors += 1;
                            *phase.error_statuses.entry(status).or_default() += 1;
                        }
                    }
                }
                if outcome.is_ok() && minute as u64 >= warm_up {
                    let _ = kinds[kind as usize].lock().expect("kind").record(micros);
                }
                // Behind schedule, the next request is due at once: the
                // load does not ease off because the server is slow.
                due += period;
            }
        }));
    }

    let (mut rss_after_warm_up, mut rss_last_minute) = (0.0, 0.0);
    println!("soak: minute  requests  errors   p50 ms   p99 ms   RSS MiB   sockets   file MiB");
    let mut table = Vec::new();
    let mut p99s_after_warm_up = Vec::new();
    let mut errors = 0;
    let mut statuses = BTreeMap::<u16, u64>::new();
    for minute in 0..minutes {
        tokio::time::sleep_until(started + Duration::from_secs((minute + 1) * 60)).await;
        if minute + 1 == minutes {
            stop.store(true, Ordering::Relaxed);
        }
        let rss = server.rss_mib().0;
        let sockets = server_sockets(server);
        if minute + 1 == warm_up {
            rss_after_warm_up = rss;
        }
        rss_last_minute = rss;
        // A request is counted in the minute it finishes: this one's
        // stragglers land in the next; give them a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let phase = phases[minute as usize].lock().expect("phase");
        let p50 = phase.all.value_at_quantile(0.5) as f64 / 1000.0;
        let p99 = phase.all.value_at_quantile(0.99) as f64 / 1000.0;
        let file = common::mib(server.database_bytes());
        println!(
            "soak:   {:>4}  {:>8}  {:>6}  {p50:>7.2}  {p99:>7.2}  {rss:>8.1}  {sockets:>8}  {file:>9.1}",
            minute + 1,
            phase.all.len(),
            phase.errors,
        );
        if minute >= warm_up {
            p99s_after_warm_up.push(p99);
        }
        errors += phase.errors;
        for (status, n) in &phase.error_statuses {
            *statuses.entry(*status).or_default() += n;
        }
        table.push(json!({
            "minute": minute + 1,
            "requests": phase.all.len(),
            "errors": phase.errors,
            "p50_ms": p50,
            "p99_ms": p99,
            "rss_mib": rss,
            "server_sockets": sockets,
            "file_mib": file,
            "error_statuses": phase
                .error_statuses
                .iter()
                .map(|(status, n)| (status.to_string(), json!(n)))
                .collect::<serde_json::Map<String, Value>>(),
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    // Once the clients have gone: what the load left behind.
    let idle_rss = server.rss_mib().0;

    let mut per_kind = serde_json::Map::new();
    println!("soak: after warm-up, by kind:   requests   p50 ms   p99 ms   max ms");
    for kind in Kind::ALL {
        let histogram = kinds[kind as usize].lock().expect("kind");
        let ms = |micros: u64| micros as f64 / 1000.0;
        println!(
            "soak:   {:<28} {:>9}  {:>7.2}  {:>7.2}  {:>7.1}",
            kind.name(),
            histogram.len(),
            ms(histogram.value_at_quantile(0.5)),
            ms(histogram.value_at_quantile(0.99)),
            ms(histogram.max()),
        );
        per_kind.insert(
            kind.name().to_owned(),
            json!({
                "requests": histogram.len(),
                "p50_ms": ms(histogram.value_at_quantile(0.5)),
                "p99_ms": ms(histogram.value_at_quantile(0.99)),
                "max_ms": ms(histogram.max()),
            }),
        );
    }

    // The verdicts. With a run no longer than its warm-up there is
    // nothing after it to judge.
    let rss_growth = if rss_after_warm_up > 0.0 {
        rss_last_minute / rss_after_warm_up - 1.0
    } else {
        0.0
    };
    let rss_flat = rss_growth <= 0.10;
    let typical_p99 = median(p99s_after_warm_up.clone());
    let worst_p99 = p99s_after_warm_up.iter().copied().fold(0.0, f64::max);
    let p99_stable = worst_p99 <= 3.0 * typical_p99;
    println!(
        "soak: {minutes} min, {connections} connections at {rate}/s: RSS {start_rss:.1} MiB at start, {rss_after_warm_up:.1} after warm-up, {rss_last_minute:.1} in the last minute ({:+.1} %: {}), {idle_rss:.1} once the clients left; p99 after warm-up {typical_p99:.2} ms typical, {worst_p99:.2} worst ({}); {} sign-ups; errors {errors}",
        rss_growth * 100.0,
        if rss_flat { "flat" } else { "NOT FLAT" },
        if p99_stable { "stable" } else { "NOT STABLE" },
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
            "rate_per_s": rate,
            "warm_up_minutes": warm_up,
            "cache_mib": CACHE_MIB,
            "rss_mib": {"start": start_rss, "after_warm_up": rss_after_warm_up, "last_minute": rss_last_minute, "idle_after": idle_rss},
            "rss_flat": rss_flat,
            "p99_ms_after_warm_up": {"typical": typical_p99, "worst": worst_p99},
            "p99_stable": p99_stable,
            "errors": errors,
            "sign_ups": sign_ups.load(Ordering::Relaxed),
            "per_minute": table,
            "per_kind_after_warm_up": per_kind,
        }),
    );
    errors > 0 || !rss_flat || !p99_stable
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

/// An account of its own for connection `n`, signed in on both planes, with
/// a PAT; the client keeps one connection, the one the load uses.
async fn set_up_connection(base: &str, n: usize) -> Connection {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let email = format!("client{n}@soak.test");
    let profile = register(&http, base, &email).await;
    let org_id = profile["memberships"][0]["org_id"]
        .as_str()
        .expect("org")
        .to_owned();
    let tokens: Value = http
        .post(format!("{base}/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("tokens");
    let session: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("control-plane login")
        .json()
        .await
        .expect("session");
    let pat: Value = http
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
    Connection {
        http,
        access_token: tokens["access_token"].as_str().expect("access").to_owned(),
        refresh_token: tokens["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned(),
        pat: pat["token"].as_str().expect("PAT token").to_owned(),
        org_id,
    }
}

/// One request of the mix: `Err` with the status it got instead of the
/// one it should (0 when no answer came).
async fn one_request(
    own: &mut Connection,
    base: &str,
    kind: Kind,
    iteration: u64,
    sign_ups: &AtomicU64,
) -> Result<(), u16> {
    let http = &own.http;
    let (response, wanted) = match kind {
        Kind::Profile => (
            http.get(format!("{base}/api/account"))
                .bearer_auth(&own.access_token)
                .send()
                .await,
            200,
        ),
        Kind::Pat => (
            http.get(format!("{base}/api/v1/sessions"))
                .bearer_auth(&own.pat)
                .header("X-Active-Org-Id", &own.org_id)
                .send()
                .await,
            200,
        ),
        Kind::Rotation => {
            let response = http
                .post(format!("{base}/oauth/token"))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", own.refresh_token.as_str()),
                ])
                .send()
                .await;
            let Ok(response) = response else {
                return Err(0);
            };
            let status = response.status().as_u16();
            let body: Value = response.json().await.map_err(|_| status)?;
            if let (Some(access), Some(refresh)) = (
                body["access_token"].as_str(),
                body["refresh_token"].as_str(),
            ) {
                own.access_token = access.to_owned();
                own.refresh_token = refresh.to_owned();
            }
            return if status == 200 { Ok(()) } else { Err(status) };
        }
        Kind::SignIn => {
            let email = format!("signin{}@soak.test", iteration % SIGN_IN_ACCOUNTS as u64);
            (
                http.post(format!("{base}/login"))
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await,
                200,
            )
        }
        Kind::SignUp => {
            let n = sign_ups.fetch_add(1, Ordering::Relaxed);
            (
                http.post(format!("{base}/register"))
                    .json(&json!({"email": format!("new{n}@soak.test"), "password": PASSWORD}))
                    .send()
                    .await,
                201,
            )
        }
    };
    let response = response.map_err(|_| 0u16)?;
    let status = response.status().as_u16();
    // Read the body whole, as a client would, so the connection is kept.
    response.bytes().await.map_err(|_| status)?;
    if status == wanted {
        Ok(())
    } else {
        Err(status)
    }
}
