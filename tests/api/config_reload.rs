//! Config reload without a restart (SPEC §8): `POST /v1/config/reload` and
//! SIGHUP read the file again; reloadable keys (limits, forward-auth rules,
//! log level, …) apply at once, any other changed key is named and waits
//! for a restart, and a broken file changes nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::forward_auth::ask_nginx;
use crate::helpers::{TestServer, FAST_HASHING};

/// What the test servers start with: logins hardly limited, and one app
/// (`open.example`) that anyone may reach.
fn first_config() -> String {
    format!(
        "{FAST_HASHING}\n[limits]\nlogin_per_ip_per_min = 1000\nlogin_per_account_per_min = 1000\n\n\
         [[forward_auth.rules]]\nhosts = [\"open.example\"]\npolicy = \"bypass\"\n"
    )
}

/// The server's config file with `[server]`, `[storage]` and `[log]` as the
/// harness wrote them, and `rest` after them.
fn rewrite(server: &TestServer, log_level: &str, listen: Option<&str>, rest: &str) {
    let written = std::fs::read_to_string(&server.config_path).expect("config");
    let head = written
        .split_once("[passwords]")
        .map_or(written.as_str(), |(head, _)| head)
        .replace("level = \"info\"", &format!("level = \"{log_level}\""));
    let head = match listen {
        Some(listen) => head.replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"{listen}\""),
        ),
        None => head,
    };
    std::fs::write(&server.config_path, format!("{head}{FAST_HASHING}\n{rest}")).expect("write");
}

async fn reload(server: &TestServer) -> reqwest::Response {
    server
        .operator(reqwest::Method::POST, "/v1/config/reload")
        .send()
        .await
        .expect("reload")
}

/// What forward-auth answers (no credential) for `wiki.example` and for
/// `open.example`.
async fn reach(server: &TestServer) -> (u16, u16) {
    let wiki = ask_nginx(server, "http://wiki.example/", None)
        .await
        .status();
    let open = ask_nginx(server, "http://open.example/", None)
        .await
        .status();
    (wiki.as_u16(), open.as_u16())
}

async fn wrong_login(server: &TestServer) -> StatusCode {
    server
        .login(json!({"email": "kim@example.com", "password": "Wrong-Horse-42"}))
        .await
        .status()
}

#[tokio::test]
async fn a_reload_applies_limits_and_rules_names_what_needs_a_restart_and_survives_a_broken_file() {
    let server = TestServer::spawn_with(&first_config()).await;
    server.register_ok("kim@example.com").await;
    assert!(!server.logs().contains("\"level\":\"DEBUG\""));
    assert_eq!(reach(&server).await, (403, 200));

    // Nothing changed: nothing to report.
    let unchanged = reload(&server).await;
    assert_eq!(unchanged.status(), StatusCode::OK);
    let body: Value = unchanged.json().await.expect("json");
    assert_eq!(body, json!({"applied": [], "restart_required": []}));

    rewrite(
        &server,
        "debug",
        Some("127.0.0.1:1"),
        "[limits]\nlogin_per_ip_per_min = 2\nlogin_per_account_per_min = 1000\n\n\
         [[forward_auth.rules]]\nhosts = [\"wiki.example\"]\npolicy = \"bypass\"\n",
    );
    let reloaded = reload(&server).await;
    assert_eq!(reloaded.status(), StatusCode::OK);
    let body: Value = reloaded.json().await.expect("json");
    assert_eq!(
        body,
        json!({
            "applied": ["forward_auth.rules", "limits.login_per_ip_per_min", "log.level"],
            "restart_required": ["server.listen"],
        })
    );
    server.wait_for_log("config reloaded").await;

    // The new rules and limits hold at once; the listener stays where it was.
    assert_eq!(reach(&server).await, (200, 403));
    assert_eq!(wrong_login(&server).await, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_login(&server).await, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_login(&server).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        server
            .get("/healthz")
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    server.wait_for_log("\"level\":\"DEBUG\"").await;

    // A broken file: 422 naming the key, and the running config stays.
    rewrite(
        &server,
        "debug",
        None,
        "[limits]\nlogin_per_ip_per_min = \"many\"\n",
    );
    let refused = reload(&server).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = refused.json().await.expect("json");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("config not reloaded: ")
            && message.contains("limits.login_per_ip_per_min"),
        "{body}"
    );
    assert_eq!(reach(&server).await, (200, 403));

    // Only the operator may ask.
    let anonymous = server
        .post("/v1/config/reload")
        .send()
        .await
        .expect("reload");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sighup_reloads_the_file() {
    let server = TestServer::spawn_with(&first_config()).await;
    rewrite(
        &server,
        "info",
        None,
        "[[forward_auth.rules]]\nhosts = [\"wiki.example\"]\npolicy = \"bypass\"\n",
    );
    let pid = server.pid().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    server.wait_for_log("config reloaded").await;
    assert_eq!(reach(&server).await, (200, 403));
}
