//! The PostgreSQL backend (SPEC §9) with TWO authd replicas on one real
//! PostgreSQL server: what one replica does, the other sees at once —
//! refresh rotation is exactly-once across them, revocations and lockouts
//! hold everywhere, a key rotation reaches both, the audit stream of either
//! carries the other's events — and a stopped database gives 503, not a
//! wrong answer, until it is back. Also `authd migrate-storage` both ways.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{call, TestServer, FAST_HASHING, GOOD_PASSWORD, RELAXED_LIMITS};
use crate::pg_server::{self, PostgresServer};

fn postgres_env(url: &str) -> [(&'static str, String); 2] {
    [
        ("AUTHD_STORAGE__BACKEND", "postgres".to_owned()),
        ("AUTHD_STORAGE__POSTGRES_URL", url.to_owned()),
    ]
}

async fn replica(extra: &str, url: &str) -> TestServer {
    let env = postgres_env(url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestServer::spawn_with_env(extra, &env).await
}

/// A second replica beside `first`: its own data dir holding a copy of the
/// first's server secret and admin token, as an operator sets replicas up.
async fn second_replica(first: &TestServer, extra: &str, url: &str) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    for file in ["server.secret", "admin.token"] {
        std::fs::copy(first.data_dir().join(file), data.join(file)).expect("copy");
    }
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\ndata_dir = \"{}\"\nbackend = \"postgres\"\npostgres_url = \"{url}\"\n[log]\nformat = \"json\"\n{extra}\n",
            data.display()
        ),
    )
    .expect("config");
    TestServer::start(dir, config, &[]).await
}

async fn pair(extra: &str) -> (TestServer, TestServer) {
    let url = pg_server::shared().new_database();
    let a = replica(extra, &url).await;
    let b = second_replica(&a, extra, &url).await;
    (a, b)
}

fn fast() -> String {
    format!("{FAST_HASHING}\n{RELAXED_LIMITS}")
}

#[tokio::test]
async fn an_account_made_on_one_replica_signs_in_on_the_other_with_the_same_admin_token() {
    if !pg_server::installed(
        "an_account_made_on_one_replica_signs_in_on_the_other_with_the_same_admin_token",
    ) {
        return;
    }
    let (a, b) = pair(&fast()).await;
    a.register_ok("shared@example.com").await;
    let bearer = b.login_ok("shared@example.com").await;
    let access = bearer["access_token"].as_str().expect("access");
    assert_eq!(a.account_status(access).await, StatusCode::OK);
    // One admin token for both, and both report the backend.
    for replica in [&a, &b] {
        let status = replica.operator_get("/v1/status").await;
        assert_eq!(
            status["database"]["backend"]["kind"], "postgres",
            "{status}"
        );
        assert_eq!(status["database"]["backend"]["reachable"], true);
        assert!(
            !status["database"]["backend"]["location"]
                .as_str()
                .expect("location")
                .contains("authd@"),
            "no user info in {status}"
        );
    }
    let users = b.operator_get("/v1/users").await;
    assert!(users.to_string().contains("shared@example.com"), "{users}");
}

#[tokio::test]
async fn a_refresh_token_presented_to_both_replicas_at_once_rotates_on_exactly_one() {
    if !pg_server::installed(
        "a_refresh_token_presented_to_both_replicas_at_once_rotates_on_exactly_one",
    ) {
        return;
    }
    let (a, b) = pair(&fast()).await;
    a.register_ok("race@example.com").await;
    for round in 0..5 {
        let bearer = a.login_ok("race@example.com").await;
        let token = bearer["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned();
        let (left, right) = tokio::join!(a.refresh(&token), b.refresh(&token));
        let statuses = [left.status(), right.status()];
        let winners: Vec<Value> = futures_util::future::join_all(
            [left, right]
                .into_iter()
                .filter(|r| r.status() == StatusCode::OK)
                .map(|r| async move { r.json::<Value>().await.expect("json") }),
        )
        .await;
        assert_eq!(winners.len(), 1, "round {round}: {statuses:?}");
        assert!(
            statuses.contains(&StatusCode::BAD_REQUEST),
            "the loser is told invalid_grant: {statuses:?}"
        );
        // The replay ended the family everywhere: the winner's new token is
        // dead on both replicas.
        let newest = winners[0]["refresh_token"].as_str().expect("new refresh");
        assert_eq!(b.refresh(newest).await.status(), StatusCode::BAD_REQUEST);
        assert_eq!(a.refresh(newest).await.status(), StatusCode::BAD_REQUEST);
    }
}

async fn list_tokens(server: &TestServer, pat: &str, org: &str) -> StatusCode {
    call(
        server,
        Method::GET,
        "/api/v1/auth/api-tokens",
        pat,
        Some(org),
        None,
    )
    .await
    .status()
}

#[tokio::test]
async fn a_logout_or_a_revoked_pat_on_one_replica_fails_on_the_other_at_once() {
    if !pg_server::installed("a_logout_or_a_revoked_pat_on_one_replica_fails_on_the_other_at_once")
    {
        return;
    }
    let (a, b) = pair(&fast()).await;
    a.register_ok("revoked@example.com").await;
    let bearer = a.login_ok("revoked@example.com").await;
    let access = bearer["access_token"].as_str().expect("access");
    assert_eq!(
        a.account_status(access).await,
        StatusCode::OK,
        "cached on a"
    );
    let response = b
        .post("/logout")
        .bearer_auth(access)
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(a.account_status(access).await, StatusCode::UNAUTHORIZED);

    let profile = a.register_ok("pat-owner@example.com").await;
    let org = profile["memberships"][0]["org_id"]
        .as_str()
        .expect("org")
        .to_owned();
    let session = a.session_token("pat-owner@example.com").await;
    let created = call(
        &a,
        Method::POST,
        "/api/v1/auth/api-tokens",
        &session,
        Some(&org),
        Some(json!({"name": "ci", "scopes": ["tokens.read"], "expires_in_days": 30})),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let pat: Value = created.json().await.expect("json");
    let secret = pat["token"].as_str().expect("token").to_owned();
    assert_eq!(list_tokens(&b, &secret, &org).await, StatusCode::OK);
    let revoked = call(
        &b,
        Method::DELETE,
        &format!(
            "/api/v1/auth/api-tokens/{}",
            pat["id"].as_str().expect("id")
        ),
        &session,
        Some(&org),
        None,
    )
    .await;
    assert!(revoked.status().is_success(), "{}", revoked.status());
    assert_eq!(
        list_tokens(&a, &secret, &org).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn failed_logins_on_both_replicas_count_towards_one_lockout() {
    if !pg_server::installed("failed_logins_on_both_replicas_count_towards_one_lockout") {
        return;
    }
    let extra = format!(
        "{FAST_HASHING}\n[limits]\nlogin_per_ip_per_min = 100000\nlogin_per_account_per_min = 100000\nlockout_threshold = 4\n"
    );
    let (a, b) = pair(&extra).await;
    a.register_ok("locked@example.com").await;
    for n in 0..4 {
        let replica = if n % 2 == 0 { &a } else { &b };
        let response = replica
            .login(json!({"email": "locked@example.com", "password": "Wrong-password-1"}))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    for replica in [&a, &b] {
        let response = replica
            .login(json!({"email": "locked@example.com", "password": GOOD_PASSWORD}))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "locked on both replicas"
        );
    }
}

#[tokio::test]
async fn the_per_account_login_limit_counts_failures_on_every_replica() {
    if !pg_server::installed("the_per_account_login_limit_counts_failures_on_every_replica") {
        return;
    }
    let extra = format!(
        "{FAST_HASHING}\n[limits]\nlogin_per_ip_per_min = 100000\nlogin_per_account_per_min = 4\nlockout_threshold = 1000\n"
    );
    let (a, b) = pair(&extra).await;
    a.register_ok("limited@example.com").await;
    // The shared counts keep whole minutes: start well inside one.
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        % 60;
    if second > 45 {
        tokio::time::sleep(Duration::from_secs(61 - second)).await;
    }
    for n in 0..4 {
        let replica = if n % 2 == 0 { &a } else { &b };
        let response = replica
            .login(json!({"email": "limited@example.com", "password": "Wrong-password-1"}))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    // Each replica saw two failures; together they are at the limit.
    for replica in [&a, &b] {
        let response = replica
            .login(json!({"email": "limited@example.com", "password": GOOD_PASSWORD}))
            .await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().contains_key("retry-after"));
    }
}

async fn jwks_kids(server: &TestServer) -> Vec<String> {
    let jwks = server.get_json("/.well-known/jwks.json").await;
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["kid"].as_str().expect("kid").to_owned())
        .collect()
}

fn kid_of(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().expect("header");
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .expect("base64"),
    )
    .expect("json");
    header["kid"].as_str().expect("kid").to_owned()
}

#[tokio::test]
async fn a_key_rotated_on_one_replica_signs_and_is_published_on_both() {
    if !pg_server::installed("a_key_rotated_on_one_replica_signs_and_is_published_on_both") {
        return;
    }
    let (a, b) = pair(&fast()).await;
    a.register_ok("keys@example.com").await;
    let before = jwks_kids(&b).await;
    let rotated = a
        .operator(Method::POST, "/v1/keys/rotate")
        .send()
        .await
        .expect("rotate");
    assert!(rotated.status().is_success(), "{}", rotated.status());
    let new_kid = rotated.json::<Value>().await.expect("json")["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let kids = jwks_kids(&b).await;
        if kids.contains(&new_kid) {
            assert!(
                before.iter().all(|kid| kids.contains(kid)),
                "the old key stays published: {kids:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b never published {new_kid}: {kids:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bearer = b.login_ok("keys@example.com").await;
    let access = bearer["access_token"].as_str().expect("access");
    assert_eq!(kid_of(access), new_kid, "b signs with the new key");
    assert_eq!(a.account_status(access).await, StatusCode::OK);
}

#[tokio::test]
async fn the_audit_stream_of_one_replica_carries_the_others_events_and_one_replica_leads() {
    if !pg_server::installed(
        "the_audit_stream_of_one_replica_carries_the_others_events_and_one_replica_leads",
    ) {
        return;
    }
    let (a, b) = pair(&fast()).await;
    let response = b
        .get(&format!("/v1/events/stream?token={}", b.admin_token()))
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    a.register_ok("streamed-across@example.com").await;
    let mut received = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !received.contains("\"user.created\"") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("a's event on b's stream within 10 s")
            .expect("stream open")
            .expect("chunk");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(
        received.matches("\"user.created\"").count(),
        1,
        "delivered once: {received}"
    );
    // Exactly one replica runs the background work.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut leaders = 0;
        for replica in [&a, &b] {
            let status = replica.operator_get("/v1/status").await;
            if status["database"]["backend"]["leader"] == true {
                leaders += 1;
            }
        }
        if leaders == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{leaders} leaders");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_stopped_database_gives_503_and_everything_acknowledged_is_there_after_it_returns() {
    if !pg_server::installed(
        "a_stopped_database_gives_503_and_everything_acknowledged_is_there_after_it_returns",
    ) {
        return;
    }
    let postgres = PostgresServer::start();
    let url = postgres.new_database();
    let server = replica(&fast(), &url).await;
    server.register_ok("kept@example.com").await;
    let bearer = server.login_ok("kept@example.com").await;
    let access = bearer["access_token"].as_str().expect("access").to_owned();

    postgres.stop();
    let response = server
        .get("/api/account")
        .bearer_auth(&access)
        .send()
        .await
        .expect("account");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["error"], "unavailable", "{body}");
    let response = server
        .login(json!({"email": "kept@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health = server.get("/healthz").send().await.expect("healthz");
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);

    postgres.resume();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while server
        .get("/healthz")
        .send()
        .await
        .expect("healthz")
        .status()
        != StatusCode::OK
    {
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(server.account_status(&access).await, StatusCode::OK);
    server.login_ok("kept@example.com").await;
    server.register_ok("after@example.com").await;
    assert!(
        !server.logs().contains("panicked"),
        "no panic: {}",
        server.logs()
    );
}

fn migrate(config: &Path, to: &str, env: &[(&str, &str)]) -> (bool, String) {
    authd_cli(config, &["migrate-storage", "--to", to], env)
}

fn authd_cli(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let output = std::process::Command::new(crate::helpers::AUTHD)
        .arg("--config")
        .arg(config)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("AUTHD_TOKEN")
        .output()
        .expect("run migrate-storage");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn migrate_storage_copies_a_file_into_postgres_and_back() {
    if !pg_server::installed("migrate_storage_copies_a_file_into_postgres_and_back") {
        return;
    }
    if pg_server::suite_on_postgres() {
        return; // This test starts from a file on purpose.
    }
    let server = TestServer::spawn_with(&fast()).await;
    for n in 0..5 {
        server.register_ok(&format!("moved{n}@example.com")).await;
    }
    server.login_ok("moved0@example.com").await;
    let (dir, config) = server.stop();

    let url = pg_server::shared().new_database();
    let (ok, output) = migrate(&config, &url, &[]);
    assert!(ok, "{output}");
    assert!(
        output.contains("every table's row count matches"),
        "{output}"
    );
    assert!(output.contains("users"), "{output}");
    assert!(!output.contains("authd@"), "no user info printed: {output}");
    let (ok, output) = migrate(&config, &url, &[]);
    assert!(!ok, "a second copy into the same database is refused");
    assert!(output.contains("already holds authd data"), "{output}");

    let env = postgres_env(&url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let on_postgres = TestServer::start(dir, config.clone(), &env).await;
    on_postgres.login_ok("moved4@example.com").await;
    on_postgres
        .register_ok("made-on-postgres@example.com")
        .await;
    let (dir, config) = on_postgres.stop();

    let back = dir.path().join("back.redb");
    let (ok, output) = migrate(&config, back.to_str().expect("path"), &env);
    assert!(ok, "{output}");
    assert!(
        output.contains("every table's row count matches"),
        "{output}"
    );
    std::fs::rename(&back, dir.path().join("data").join("authd.redb")).expect("move");
    let on_file = TestServer::start(dir, config, &[]).await;
    on_file.login_ok("made-on-postgres@example.com").await;
    on_file.login_ok("moved1@example.com").await;
}

#[tokio::test]
async fn a_backup_is_one_snapshot_of_the_database_and_a_restore_points_to_migrate_storage() {
    if !pg_server::installed("a_backup_is_one_snapshot_of_the_database") {
        return;
    }
    let url = pg_server::shared().new_database();
    let server = replica(&fast(), &url).await;
    server.register_ok("backed-up@example.com").await;
    let env = postgres_env(&url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = server.dir.path().join("snapshot.redb");
    let (ok, output) = authd_cli(
        &server.config_path,
        &["backup", out.to_str().expect("path")],
        &env,
    );
    assert!(ok, "{output}");
    assert!(
        output.contains("snapshot of the PostgreSQL database"),
        "{output}"
    );
    assert!(output.contains("1 users"), "{output}");
    assert_eq!(crate::helpers::mode_of(&out) & 0o777, 0o600);
    let (ok, output) = authd_cli(
        &server.config_path,
        &["restore", out.to_str().expect("path")],
        &env,
    );
    assert!(!ok, "{output}");
    assert!(output.contains("migrate-storage"), "{output}");
}
