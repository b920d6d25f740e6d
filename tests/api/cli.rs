//! `authd token`, `authd check-config` and `--help` against real files.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{mode_of, run, TestServer, AUTHD};

#[tokio::test]
async fn token_show_prints_the_file_token_and_the_environment_wins() {
    let server = TestServer::spawn().await;
    let file_token = server.admin_token();

    let (status, stdout, _) = run(server.cli().args(["token"]), None);
    assert!(status.success());
    assert_eq!(stdout.trim(), file_token);

    let (status, stdout, _) = run(server.cli().args(["token", "show"]), None);
    assert!(status.success());
    assert_eq!(stdout.trim(), file_token);

    let mut command = server.cli();
    command
        .args(["token", "show"])
        .env("AUTHD_TOKEN", "from-the-environment");
    let (status, stdout, _) = run(&mut command, None);
    assert!(status.success());
    assert_eq!(stdout.trim(), "from-the-environment");
}

#[tokio::test]
async fn token_show_without_a_token_says_how_to_get_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{}\"\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write");
    let mut command = std::process::Command::new(AUTHD);
    command
        .arg("--config")
        .arg(&config)
        .args(["token", "show"])
        .env_remove("AUTHD_TOKEN");
    let (status, _, stderr) = run(&mut command, None);
    assert!(!status.success());
    assert!(
        stderr.contains("no token found - run 'authd --config"),
        "{stderr}"
    );
}

#[tokio::test]
async fn rotate_asks_first_and_no_answer_changes_nothing() {
    let server = TestServer::spawn().await;
    let before = server.admin_token();
    let path = server.data_dir().join("admin.token");

    let (status, stdout, stderr) = run(server.cli().args(["token", "rotate"]), None);
    assert!(!status.success());
    assert!(
        stderr.contains(&format!(
            "Rotate token and overwrite {}? [y/N]: ",
            path.display()
        )),
        "{stderr}"
    );
    assert!(stdout.is_empty());
    assert_eq!(server.admin_token(), before);

    let (status, _, _) = run(server.cli().args(["token", "rotate"]), Some("n\n"));
    assert!(!status.success());
    assert_eq!(server.admin_token(), before);

    let (status, stdout, _) = run(server.cli().args(["token", "rotate"]), Some("y\n"));
    assert!(status.success());
    let after = server.admin_token();
    assert_ne!(after, before);
    assert_eq!(stdout.trim(), after);
    assert_eq!(mode_of(&path), 0o600);
}

#[tokio::test]
async fn a_forced_rotation_is_seen_by_the_running_server_within_a_second() {
    let server = TestServer::spawn().await;
    let old = server.admin_token();
    let status_with = |token: String| {
        let request = server.get("/v1/status").bearer_auth(token);
        async move { request.send().await.expect("request").status() }
    };
    assert_eq!(status_with(old.clone()).await, StatusCode::OK);

    let (status, stdout, _) = run(server.cli().args(["token", "rotate", "--force"]), None);
    assert!(status.success());
    let new = stdout.trim().to_owned();
    assert_eq!(new.len(), 64);
    assert!(new
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(mode_of(&server.data_dir().join("admin.token")), 0o600);

    let rotated_at = Instant::now();
    loop {
        if status_with(new.clone()).await == StatusCode::OK {
            break;
        }
        assert!(
            rotated_at.elapsed() < Duration::from_secs(1),
            "new token not accepted within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rotated_at.elapsed() < Duration::from_secs(1));
    assert_eq!(status_with(old).await, StatusCode::UNAUTHORIZED);
    assert!(!server.logs().contains(&new), "the token is never logged");
}

#[tokio::test]
async fn check_config_prints_effective_values_and_environment_overrides() {
    let server = TestServer::spawn().await;
    let mut command = server.cli();
    command
        .arg("check-config")
        .env("AUTHD_TOKENS__ACCESS_TTL", "15m");
    let (status, stdout, stderr) = run(&mut command, None);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("access_ttl = \"15m\""), "{stdout}");
    assert!(stdout.contains("refresh_ttl = \"7d\""), "{stdout}");
    assert!(stdout.contains("listen = \"127.0.0.1:0\""), "{stdout}");
    assert!(stdout.contains("# admin token:"), "{stdout}");
    assert!(
        !stdout.contains(&server.admin_token()),
        "secrets are masked"
    );
}

fn check_config_with(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        text.replace("$DIR", &dir.path().display().to_string()),
    )
    .expect("write");
    let mut command = std::process::Command::new(AUTHD);
    command.arg("--config").arg(&config).arg("check-config");
    let (status, _, stderr) = run(&mut command, None);
    (status.success(), stderr)
}

#[test]
fn check_config_names_the_key_of_each_error() {
    for (text, key) in [
        ("[server]\nlisten_addr = \"x\"\n", "listen_addr"),
        ("[nope]\nx = 1\n", "nope"),
        ("[tokens]\naccess_ttl = \"an hour\"\n", "tokens.access_ttl"),
        ("[sessions]\nttl = \"0s\"\n", "sessions.ttl"),
        ("[tokens]\nsigning_alg = \"HS256\"\n", "tokens.signing_alg"),
        (
            "[storage]\ndata_dir = \"$DIR/config.toml/data\"\n",
            "storage.data_dir",
        ),
        ("[server]\npublic_url = \"ftp://x\"\n", "server.public_url"),
    ] {
        let (ok, stderr) = check_config_with(text);
        assert!(!ok, "{text} should fail");
        assert!(stderr.contains(key), "{text}: {stderr}");
    }
    let (ok, stderr) = check_config_with("[storage]\ndata_dir = \"$DIR/fresh/data\"\n");
    assert!(ok, "a creatable data dir is fine: {stderr}");
}

#[test]
fn a_missing_config_file_is_an_error_naming_it() {
    let (status, _, stderr) = run(
        std::process::Command::new(AUTHD).args([
            "--config",
            "/nonexistent/authd.toml",
            "check-config",
        ]),
        None,
    );
    assert!(!status.success());
    assert!(stderr.contains("/nonexistent/authd.toml"), "{stderr}");
}

#[test]
fn help_and_version_work() {
    let (status, stdout, _) = run(std::process::Command::new(AUTHD).arg("--help"), None);
    assert!(status.success());
    for word in ["serve", "token", "check-config", "--config"] {
        assert!(stdout.contains(word), "{word} in --help:\n{stdout}");
    }
    let (status, stdout, _) = run(std::process::Command::new(AUTHD).arg("--version"), None);
    assert!(status.success());
    assert!(stdout.contains(env!("CARGO_PKG_VERSION")));
}
