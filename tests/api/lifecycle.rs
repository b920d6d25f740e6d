//! First start, restart, shutdown and the single-instance lock.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{mode_of, run, wait_with_timeout, TestServer, AUTHD};

#[tokio::test]
async fn first_start_creates_owner_only_files_and_logs_where_they_are() {
    if crate::helpers::redb_file_only(
        "first_start_creates_owner_only_files_and_logs_where_they_are",
    ) {
        return;
    }
    let server = TestServer::spawn().await;
    let data = server.data_dir();
    assert_eq!(mode_of(&data), 0o700);
    assert_eq!(mode_of(&data.join("authd.redb")), 0o600);
    assert_eq!(mode_of(&data.join("admin.token")), 0o600);
    let logs = server.logs();
    assert!(
        logs.contains(&data.join("authd.redb").display().to_string()),
        "{logs}"
    );
    assert!(
        logs.contains(&data.join("admin.token").display().to_string()),
        "{logs}"
    );
    assert!(
        !logs.contains(&server.admin_token()),
        "the token is never logged"
    );
}

#[tokio::test]
async fn the_first_key_is_made_while_serving_and_what_signs_waits_for_it() {
    // Ready at once: the RSA key of a first start is generated in the
    // background, and only what needs it waits.
    let server = TestServer::spawn_fast().await;
    let health = server.get("/healthz").send().await.expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
    let (jwks, login) = tokio::join!(server.get_json("/.well-known/jwks.json"), async {
        server.register_ok("first@example.com").await;
        server.login_ok("first@example.com").await
    });
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "never an empty key set: {jwks}");
    assert_eq!(keys[0]["alg"], "RS256");
    let kid = keys[0]["kid"].clone();
    let access = login["access_token"].as_str().expect("access token");
    let account = server
        .get("/api/account")
        .bearer_auth(access)
        .send()
        .await
        .expect("account");
    assert_eq!(account.status(), StatusCode::OK);
    // Serving began before the key existed: the server said it was
    // listening before it logged the key (RSA generation takes far longer
    // than the few steps between starting it and listening).
    let logs = server.logs();
    let line_of = |needle: &str| {
        logs.lines()
            .position(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{logs}"))
    };
    assert!(
        line_of("authd listening") < line_of("generated the first signing key"),
        "{logs}"
    );

    // A restart serves the same key and makes none.
    let (dir, config) = server.stop();
    let server = TestServer::start(dir, config, &[]).await;
    let jwks = server.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"][0]["kid"], kid);
    assert!(!server.logs().contains("generated the first signing key"));
}

#[tokio::test]
async fn sigterm_exits_zero_and_a_restart_keeps_the_token() {
    let server = TestServer::spawn().await;
    let token = server.admin_token();
    let (dir, config) = server.stop();
    let server = TestServer::start(dir, config, &[]).await;
    assert_eq!(server.admin_token(), token);
    let response = server
        .get("/v1/status")
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let mut server = server;
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        server.logs().contains("database closed"),
        "{}",
        server.logs()
    );
}

#[tokio::test]
async fn a_second_instance_on_the_same_data_dir_fails_at_once() {
    if crate::helpers::redb_file_only("a_second_instance_on_the_same_data_dir_fails_at_once") {
        return;
    }
    let server = TestServer::spawn().await;
    let started = Instant::now();
    let mut command = std::process::Command::new(AUTHD);
    // Another port, same data dir: only the lock can stop it.
    command
        .arg("--config")
        .arg(&server.config_path)
        .env("AUTHD_SERVER__LISTEN", "127.0.0.1:0");
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let status = wait_with_timeout(&mut child, Duration::from_secs(10));
    assert!(!status.success());
    assert!(started.elapsed() < Duration::from_secs(5));
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("locked by another process"), "{stderr}");
    // The first instance is unharmed.
    let response = server.get("/healthz").send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_environment_overrides_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\ndata_dir = \"{}\"\n[log]\nformat = \"json\"\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write");
    let server = TestServer::start(
        dir,
        config,
        &[("AUTHD_TOKEN", "operator-from-env-0123456789")],
    )
    .await;
    let response = server
        .get("/v1/status")
        .bearer_auth("operator-from-env-0123456789")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    // The file is not created when the environment provides the token, so a
    // CLI without AUTHD_TOKEN cannot hand out a token the server rejects.
    let (status, _, stderr) = run(server.cli().args(["token", "show"]), None);
    assert!(!status.success());
    assert!(stderr.contains("no token found"), "{stderr}");
}
