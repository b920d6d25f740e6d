//! Password work against its limit: argon2id hashes/s alone on these cores
//! vs, over HTTP, successful logins/s (one verification each), logins with a
//! TOTP challenge/s (one verification each; TOTP enrolled over HTTP, codes
//! from an independent RFC 6238 implementation) and registrations/s (one
//! hash each); peak RSS during a burst of 1,000 concurrent logins against
//! its bound; and mean latency of unknown-email vs wrong-password failures
//! (the uniform-timing check). Login users are seeded through the store's fast path with a hash
//! made with the server's parameters. `cargo bench --bench login` (`--
//! --quick` for a smoke run with cheap argon2 parameters). Prints a table and
//! writes `target/bench/login.json`.

// A bench is a client: it reads the wall clock as one would.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authd::crypto::passwords::{Argon2Params, PasswordHasher};
use common::seed::{self, PASSWORD};
use common::{
    closed_loop, cores, header, row, save, totp_at, totp_step_now, BenchServer, LoadResult,
    NO_LIMITS,
};
use serde_json::{json, Value};

/// Seeded users `0..LOGIN_USERS` log in with a password alone; users from
/// `MFA_FIRST` on are enrolled in TOTP as the login+TOTP scenario needs them.
const LOGIN_USERS: u64 = 48;
const MFA_FIRST: u64 = 1_000;
const MFA_SEEDED: u64 = 5_000;
/// Simultaneous logins in the burst, and what it may cost beyond the
/// memory of the hashes that run at once: each waiting request's
/// connection and buffers, the runtime's extra threads, allocator slack.
const BURST: usize = 1_000;
const BURST_OVERHEAD_MIB: f64 = 32.0;

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

    // Users for the logins, seeded with a hash made with the server's
    // parameters (so a login verifies once and never rehashes).
    let phc = seed::phc(params.memory_kib, params.iterations, params.parallelism);
    let server = BenchServer::start_seeded(&format!("{toml}{NO_LIMITS}"), |path| {
        let (store, org) = seed::open(path);
        seed::users(&store, &org, 0..LOGIN_USERS, &phc, false);
        seed::users(&store, &org, MFA_FIRST..MFA_FIRST + MFA_SEEDED, &phc, false);
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let base = server.base.clone();
    let users = LOGIN_USERS as usize;
    let idle_rss = server.rss_mib().0;

    let login = {
        let (client, base) = (client.clone(), base.clone());
        move |worker: usize, iteration: u64| {
            let request = client
                .post(format!("{base}/login"))
                .json(&json!({"email": seed::email(((worker + iteration as usize) % users) as u64), "password": PASSWORD}));
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

    // A burst of simultaneous logins; memory must stay bounded by
    // hash_concurrency × memory_kib (the hashes that run at once) plus a
    // fixed overhead, not grow with the burst: the others wait for a hash
    // slot holding only their request.
    let before_burst = server.rss_mib().0;
    let burst_started = Instant::now();
    let burst: Vec<_> = (0..BURST).map(|i| tokio::spawn(login(i, 0))).collect();
    let mut burst_statuses = std::collections::BTreeMap::<String, u64>::new();
    for task in burst {
        let status = match task.await.expect("join") {
            Ok(status) => status.to_string(),
            Err(_) => "error".to_owned(),
        };
        *burst_statuses.entry(status).or_default() += 1;
    }
    let burst_ok = burst_statuses.get("200").copied().unwrap_or(0);
    let burst_seconds = burst_started.elapsed().as_secs_f64();
    let (_, peak_rss) = server.rss_mib();
    let hashing_mib = (cores * params.memory_kib as usize) as f64 / 1024.0;
    let burst_overhead = peak_rss - before_burst - hashing_mib;

    // Uniform failures: alternate unknown emails and wrong passwords on
    // distinct accounts (so the progressive delay does not apply), one at a time.
    let rounds = if quick { 10 } else { users };
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for i in 0..rounds {
        for (email, password, bucket) in [
            (format!("nobody{i}@example.com"), PASSWORD, &mut unknown),
            (seed::email(i as u64), "Wrong-Password-99", &mut wrong),
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

    // Registrations: one argon2id hash (and one durable commit) each, with
    // an email no one has used.
    let nonce = rand::random::<u32>();
    let register = {
        let (client, base) = (client.clone(), base.clone());
        move |worker: usize, iteration: u64| {
            let request = client.post(format!("{base}/register")).json(&json!({
                "email": format!("new-{nonce:08x}-{worker}-{iteration}@example.com"),
                "password": PASSWORD,
            }));
            async move {
                request
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .map_err(|e| e.to_string())
            }
        }
    };
    let registrations = closed_loop(cores * 4, duration, 201, register).await;

    // Login + TOTP challenge: one argon2id verification each. A code is
    // accepted once per user per 30 s step and only within ±1 step, so each
    // enrolled user is good for about two logins now and one more per step:
    // enroll enough users for the expected number of logins.
    let expected = logins.per_second() * duration.as_secs_f64() * 1.5;
    let mfa_users =
        ((expected / 2.0).ceil() as u64 + (cores * 8) as u64).clamp((cores * 8) as u64, MFA_SEEDED);
    let enrolled = enroll_totp(&client, &base, mfa_users, cores * 4).await;
    let pool = Arc::new(Mutex::new(enrolled.into_iter().collect::<VecDeque<_>>()));
    let mfa_login = {
        let (client, base) = (client.clone(), base.clone());
        move |_: usize, _: u64| {
            let (client, base, pool) = (client.clone(), base.clone(), pool.clone());
            async move {
                let now = totp_step_now();
                // The least recently used user with a step it has not spent.
                let picked = {
                    let mut pool = pool.lock().expect("pool");
                    pool.iter()
                        .position(|user| user.last_step <= now)
                        .and_then(|at| pool.remove(at))
                };
                let Some(mut user) = picked else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    return Err("every enrolled user has spent its usable TOTP steps".to_owned());
                };
                let step = (user.last_step + 1).max(now);
                let result = login_with_totp(&client, &base, &user, step).await;
                user.last_step = step;
                pool.lock().expect("pool").push_back(user);
                result
            }
        }
    };
    let mfa_logins = closed_loop(cores * 4, duration, 200, mfa_login).await;

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
        "logins with a TOTP challenge/s over HTTP",
        format!("{:.1}/s", mfa_logins.per_second()),
        format!(
            "ratio {:.2} (one verify each)",
            mfa_logins.per_second() / hashes_per_second
        ),
    );
    latency_row("login + TOTP latency p50 / p99 / p999", &mfa_logins);
    row(
        "  TOTP users enrolled over HTTP / failed requests",
        format!("{mfa_users}"),
        format!("{} failed", mfa_logins.errors),
    );
    row(
        "registrations/s over HTTP",
        format!("{:.1}/s", registrations.per_second()),
        format!(
            "ratio {:.2} (one hash each)",
            registrations.per_second() / hashes_per_second
        ),
    );
    latency_row("registration latency p50 / p99 / p999", &registrations);
    row(
        "RSS idle after start (users seeded)",
        format!("{idle_rss:.1} MiB"),
        "-".into(),
    );
    row(
        &format!("peak RSS (VmHWM) through a burst of {BURST} logins"),
        format!("{peak_rss:.1} MiB"),
        format!("{burst_ok}/{BURST} ok in {burst_seconds:.1} s, answers {burst_statuses:?}"),
    );
    row(
        "  = RSS before + hash_concurrency × memory_kib + overhead",
        format!("{before_burst:.1} + {hashing_mib:.0} + {burst_overhead:.1} MiB"),
        format!("overhead limit {BURST_OVERHEAD_MIB} MiB"),
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
            "mfa_logins": mfa_logins.json(),
            "mfa_login_to_hash_ratio": mfa_logins.per_second() / hashes_per_second,
            "mfa_users_enrolled": mfa_users,
            "registrations": registrations.json(),
            "registration_to_hash_ratio": registrations.per_second() / hashes_per_second,
            "idle_rss_mib": idle_rss,
            "burst": {"concurrent": BURST, "ok": burst_ok, "answers": burst_statuses, "seconds": burst_seconds, "rss_before_mib": before_burst, "peak_rss_mib": peak_rss, "hashing_mib": hashing_mib, "overhead_mib": burst_overhead, "overhead_limit_mib": BURST_OVERHEAD_MIB},
            "failure_latency_ms": {"unknown_email": unknown_ms, "wrong_password": wrong_ms, "difference_percent": timing_gap},
        }),
    );
}

fn latency_row(figure: &str, result: &LoadResult) {
    row(
        figure,
        format!(
            "{:.0}/{:.0}/{:.0} ms",
            result.p50_ms, result.p99_ms, result.p999_ms
        ),
        String::new(),
    );
}

/// A user enrolled in TOTP, and the last time step a code of theirs was
/// accepted (a later one is needed next).
struct TotpUser {
    email: String,
    secret: String,
    last_step: u64,
}

/// Enrolls seeded users `MFA_FIRST..MFA_FIRST + count` in TOTP over HTTP,
/// `parallel` at a time: login, `POST /api/account/mfa/enroll`, then
/// `POST /api/account/mfa/verify` with the previous step's code.
async fn enroll_totp(
    client: &reqwest::Client,
    base: &str,
    count: u64,
    parallel: usize,
) -> Vec<TotpUser> {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(MFA_FIRST));
    let tasks: Vec<_> = (0..parallel)
        .map(|_| {
            let (client, base, next) = (client.clone(), base.to_owned(), next.clone());
            tokio::spawn(async move {
                let mut enrolled = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= MFA_FIRST + count {
                        return enrolled;
                    }
                    enrolled.push(enroll_one(&client, &base, i).await);
                }
            })
        })
        .collect();
    let mut enrolled = Vec::new();
    for task in tasks {
        enrolled.extend(task.await.expect("enroll"));
    }
    enrolled
}

async fn enroll_one(client: &reqwest::Client, base: &str, i: u64) -> TotpUser {
    let email = seed::email(i);
    let post = |path: &str, bearer: Option<&str>, body: Value| {
        let mut request = client.post(format!("{base}{path}")).json(&body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, tokens) = post(
        "/login",
        None,
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "login before enrollment: {tokens}");
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    let (status, enrollment) = post("/api/account/mfa/enroll", Some(&access), json!({})).await;
    assert_eq!(status, 200, "enroll: {enrollment}");
    let secret = enrollment["secret"].as_str().expect("secret").to_owned();
    // The previous step's code, so that the current and the next step are
    // left for logins; retried once if a step boundary passed meanwhile.
    for _ in 0..3 {
        let step = totp_step_now() - 1;
        let (status, _) = post(
            "/api/account/mfa/verify",
            Some(&access),
            json!({"code": totp_at(&secret, step)}),
        )
        .await;
        if status == 200 {
            return TotpUser {
                email,
                secret,
                last_step: step,
            };
        }
    }
    panic!("TOTP enrollment of {email} was not confirmed");
}

/// `POST /login` (202 with an `mfa_token`), then `POST /mfa/challenge` with
/// the code of `step`; the status of the challenge.
async fn login_with_totp(
    client: &reqwest::Client,
    base: &str,
    user: &TotpUser,
    step: u64,
) -> Result<u16, String> {
    let response = client
        .post(format!("{base}/login"))
        .json(&json!({"email": user.email, "password": PASSWORD}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().as_u16() != 202 {
        return Err(format!("login answered {}", response.status()));
    }
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    let token = body["mfa_token"].as_str().ok_or("no mfa_token")?.to_owned();
    client
        .post(format!("{base}/mfa/challenge"))
        .json(&json!({"mfa_token": token, "code": totp_at(&user.secret, step)}))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}
