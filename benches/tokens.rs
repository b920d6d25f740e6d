//! Tokens against their limits: JWT signs/s and verifies/s alone (RS256 and
//! EdDSA, all cores) and redb durable commits/s alone, vs refresh rotations/s
//! over HTTP (one sign + one durable commit each), access-token GETs/s vs
//! verifies/s alone, PAT GETs/s vs the same store reads alone, and JWKS
//! GETs/s; and the server's CPU time per rotation, steadier than the ratio
//! when two builds are compared. `cargo bench --bench tokens` (`-- --quick`
//! for a smoke run).

// A bench is a client: it reads the wall clock as one would.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use authd::crypto::jwt::KeyAlgorithm;
use common::{
    closed_loop, commits_alone, cores, header, jwt_alone, per_second_on_every_core, row, save,
    BenchServer,
};
use serde_json::{json, Value};

const PASSWORD: &str = "Correct-Horse-42";

/// The store work of one PAT-authenticated `GET /api/account`, alone, on
/// every core: the two read transactions the server runs (the PAT by its
/// digest and its user; then the profile: user, orgs, MFA factors, security
/// keys) against 10,000 seeded users, digests computed beforehand. The limit
/// that PAT GETs over HTTP are held against.
fn pat_reads_alone(duration: Duration) -> f64 {
    use authd::store::Queries;
    const USERS: u64 = 10_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, org) = common::seed::open(&dir.path().join("bench.redb"));
    common::seed::users(&store, &org, 0..USERS, &common::seed::phc(1024, 1, 1), true);
    let digests: Vec<String> = (0..USERS)
        .map(|i| hex::encode(authd::crypto::sha256(common::seed::pat_token(i).as_bytes())))
        .collect();
    per_second_on_every_core(duration, move |n| {
        let digest = &digests[n * 7919 % digests.len()];
        let user_id = store
            .read(|txn| {
                let pat = txn.pat(digest)?.expect("seeded pat");
                txn.user(&pat.user_id)?.expect("seeded user");
                Ok::<_, authd::store::StoreError>(pat.user_id)
            })
            .expect("read");
        store
            .read(|txn| {
                let user = txn.user(&user_id)?.expect("seeded user");
                for membership in &user.memberships {
                    txn.org(&membership.org_id)?;
                }
                txn.mfa_factors(&user_id)?;
                txn.webauthn_credentials(&user_id)?;
                Ok::<_, authd::store::StoreError>(())
            })
            .expect("read");
    })
}

async fn over_http(algorithm: &str, duration: Duration, connections: usize) -> Value {
    let server = BenchServer::start(&format!(
        "[passwords]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n[limits]\nlogin_per_ip_per_min = 100000000\nlogin_per_account_per_min = 100000000\n[tokens]\nsigning_alg = \"{algorithm}\"\n"
    ));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .expect("client");
    let base = server.base.clone();
    let status = client
        .post(format!("{base}/register"))
        .json(&json!({"email": "bench@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("register")
        .status();
    assert_eq!(status, 201);
    let login = || async {
        client
            .post(format!("{base}/login"))
            .json(&json!({"email": "bench@example.com", "password": PASSWORD}))
            .send()
            .await
            .expect("login")
            .json::<Value>()
            .await
            .expect("json")
    };
    // One refresh chain per connection: each request spends the previous token.
    let mut chains = Vec::new();
    for _ in 0..connections {
        chains.push(tokio::sync::Mutex::new(
            login().await["refresh_token"]
                .as_str()
                .expect("refresh")
                .to_owned(),
        ));
    }
    let access = login().await["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    let org = client
        .get(format!("{base}/api/v1/org/memberships"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("memberships")
        .json::<Value>()
        .await
        .expect("json")["active_org_id"]
        .as_str()
        .expect("org")
        .to_owned();
    let pat = client
        .post(format!("{base}/api/v1/auth/api-tokens"))
        .bearer_auth(&access)
        .header("X-Active-Org-Id", &org)
        .json(&json!({"name": "bench", "scopes": ["sessions.read"], "expires_in_days": 1}))
        .send()
        .await
        .expect("pat")
        .json::<Value>()
        .await
        .expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let chains = Arc::new(chains);
    let refresh = {
        let (client, base, chains) = (client.clone(), base.clone(), chains.clone());
        move |worker: usize, _| {
            let (client, base, chains) = (client.clone(), base.clone(), chains.clone());
            async move { common::rotate(&client, &base, &chains[worker]).await }
        }
    };
    let cpu_before = server.cpu_seconds();
    let rotations = closed_loop(connections, duration, 200, refresh).await;
    let server_ms_per_rotation =
        (server.cpu_seconds() - cpu_before) * 1000.0 / rotations.requests.max(1) as f64;
    let get = |path: &str, bearer: Option<&str>| {
        common::get_request(&client, format!("{base}{path}"), bearer.map(str::to_owned))
    };
    let account_gets = closed_loop(
        connections,
        duration,
        200,
        get("/api/account", Some(&access)),
    )
    .await;
    let pat_gets = closed_loop(connections, duration, 200, get("/api/account", Some(&pat))).await;
    let jwks_gets = closed_loop(
        connections,
        duration,
        200,
        get("/.well-known/jwks.json", None),
    )
    .await;
    let floor = closed_loop(connections, duration, 200, get("/healthz", None)).await;
    json!({
        "refresh_rotations": rotations.json(),
        "server_cpu_ms_per_rotation": server_ms_per_rotation,
        "access_token_gets": account_gets.json(),
        "pat_gets": pat_gets.json(),
        "jwks_gets": jwks_gets.json(),
        "healthz_gets": floor.json(),
    })
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let duration = Duration::from_secs(if quick { 1 } else { 5 });
    let connections = if quick { 4 } else { 32 };

    let (rs_sign, rs_verify) =
        tokio::task::spawn_blocking(move || jwt_alone(KeyAlgorithm::RS256, duration))
            .await
            .expect("join");
    let (ed_sign, ed_verify) =
        tokio::task::spawn_blocking(move || jwt_alone(KeyAlgorithm::EdDSA, duration))
            .await
            .expect("join");
    let pat_reads = tokio::task::spawn_blocking(move || pat_reads_alone(duration))
        .await
        .expect("join");
    let commits = tokio::task::spawn_blocking(move || commits_alone(duration))
        .await
        .expect("join");
    let rs_http = over_http("RS256", duration, connections).await;
    let ed_http = over_http("EdDSA", duration, connections).await;

    let per_second = |v: &Value, key: &str| v[key]["per_second"].as_f64().unwrap_or(0.0);
    let latency = |v: &Value, key: &str| {
        format!(
            "p50 {:.1} / p99 {:.1} ms",
            v[key]["p50_ms"].as_f64().unwrap_or(0.0),
            v[key]["p99_ms"].as_f64().unwrap_or(0.0)
        )
    };
    header(&format!(
        "tokens ({} cores, {connections} connections{})",
        cores(),
        if quick { ", QUICK" } else { "" }
    ));
    row("RS256 signs/s alone", format!("{rs_sign:.0}/s"), "-".into());
    row(
        "RS256 verifies/s alone",
        format!("{rs_verify:.0}/s"),
        "-".into(),
    );
    row("EdDSA signs/s alone", format!("{ed_sign:.0}/s"), "-".into());
    row(
        "EdDSA verifies/s alone",
        format!("{ed_verify:.0}/s"),
        "-".into(),
    );
    row(
        "redb durable commits/s alone (one writer)",
        format!("{commits:.0}/s"),
        "-".into(),
    );
    row(
        "store reads of one PAT GET/s alone (all cores)",
        format!("{pat_reads:.0}/s"),
        "-".into(),
    );
    for (name, http, sign) in [("RS256", &rs_http, rs_sign), ("EdDSA", &ed_http, ed_sign)] {
        let rotations = per_second(http, "refresh_rotations");
        let limit = sign.min(commits);
        row(
            &format!("{name}: refresh rotations/s over HTTP"),
            format!("{rotations:.0}/s"),
            format!(
                "ratio {:.2} of min(sign, commit) (>= 0.8)",
                rotations / limit
            ),
        );
        row(
            &format!("{name}:   server CPU per rotation"),
            format!(
                "{:.2} ms",
                http["server_cpu_ms_per_rotation"].as_f64().unwrap_or(0.0)
            ),
            "steadier than the ratio: compare builds by this".into(),
        );
        row(
            &format!("{name}:   rotation latency"),
            latency(http, "refresh_rotations"),
            String::new(),
        );
        row(
            &format!("{name}: access-token GET /api/account/s"),
            format!("{:.0}/s", per_second(http, "access_token_gets")),
            format!(
                "verify alone {:.0}/s",
                if name == "RS256" {
                    rs_verify
                } else {
                    ed_verify
                }
            ),
        );
        row(
            &format!("{name}:   access-token GET latency"),
            latency(http, "access_token_gets"),
            String::new(),
        );
        row(
            &format!("{name}: PAT GET /api/account/s"),
            format!("{:.0}/s", per_second(http, "pat_gets")),
            format!("store alone {pat_reads:.0}/s; target >= 20,000/s"),
        );
        row(
            &format!("{name}:   PAT GET latency"),
            latency(http, "pat_gets"),
            String::new(),
        );
        row(
            &format!("{name}: JWKS GETs/s"),
            format!("{:.0}/s", per_second(http, "jwks_gets")),
            String::new(),
        );
        row(
            &format!("{name}: /healthz GETs/s (the floor)"),
            format!("{:.0}/s", per_second(http, "healthz_gets")),
            String::new(),
        );
    }
    save(
        "tokens",
        &json!({
            "quick": quick, "cores": cores(), "connections": connections,
            "rs256": {"signs_per_second": rs_sign, "verifies_per_second": rs_verify, "http": rs_http},
            "eddsa": {"signs_per_second": ed_sign, "verifies_per_second": ed_verify, "http": ed_http},
            "durable_commits_per_second": commits,
            "pat_get_store_reads_per_second": pat_reads,
        }),
    );
}
