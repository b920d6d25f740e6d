//! Forward-auth behind the real proxies: Debian's nginx (`auth_request`) and
//! Caddy (`forward_auth`), each started here as a process on a loopback port
//! with a config in a temp dir, in front of a tiny app that answers with the
//! headers it received. Without nginx or caddy the tests say so and pass,
//! except under `CI`, where `.ci/run` installs both and a missing one fails.

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use reqwest::header::{COOKIE, HOST, LOCATION};
use reqwest::StatusCode;
use serde_json::Value;

use crate::forward_auth::{pat_for, spawn};
use crate::helpers::{
    browser_login, free_port, installed, start_echo_app, start_nginx, Proxy, TestServer,
};

async fn start_caddy(authd: &TestServer, app: SocketAddr) -> Proxy {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let authd_address = authd.address;
    let config = format!(
        r#"{{
  admin off
  auto_https off
  storage file_system {root}/storage
}}
http://:{port} {{
  bind 127.0.0.1
  forward_auth {authd_address} {{
    uri /forward-auth
    copy_headers Remote-User Remote-Email Remote-Name Remote-Groups
  }}
  reverse_proxy {app}
}}
"#,
        root = dir.path().display(),
    );
    let path = dir.path().join("Caddyfile");
    std::fs::write(&path, config).expect("write Caddyfile");
    let mut command = Command::new("/usr/bin/caddy");
    command
        .arg("run")
        .arg("--config")
        .arg(&path)
        .arg("--adapter")
        .arg("caddyfile")
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Proxy::start(command, port, dir).await
}

/// A browser's request for `host` `path` through the proxy.
async fn through(
    proxy: &Proxy,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut request = client
        .get(format!("http://{}{path}", proxy.address))
        .header(HOST, host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("through the proxy")
}

/// Every case, through one proxy.
async fn check_proxy(server: &TestServer, proxy: &Proxy, profile: &Value) {
    // Nobody: to authd's sign-in, carrying where they were going.
    let anonymous = through(proxy, "app.home.test", "/notes", &[]).await;
    assert_eq!(anonymous.status(), StatusCode::FOUND);
    let location = anonymous.headers()[LOCATION].to_str().expect("location");
    assert!(
        location.starts_with(&format!("{}/login?return_to=http", server.url(""))),
        "{location}"
    );
    assert!(location.contains("app.home.test"), "{location}");

    // The UI's cookie: the app sees who it is, not what the client forged.
    let session = browser_login(server, "ann@example.com").await;
    let signed_in = through(
        proxy,
        "app.home.test",
        "/notes",
        &[
            (COOKIE.as_str(), &session.cookie_header),
            ("Remote-User", "mallory@example.com"),
        ],
    )
    .await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    let seen: Value = signed_in.json().await.expect("echo");
    assert_eq!(seen["remote-user"], "ann@example.com", "{seen}");
    assert_eq!(seen["remote-email"], "ann@example.com");
    assert_eq!(seen["remote-groups"], "member");

    // A PAT as Bearer: a script reaches the app.
    let pat = pat_for(server, "ann@example.com", profile).await;
    let bearer = format!("Bearer {pat}");
    let scripted = through(
        proxy,
        "app.home.test",
        "/api",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(scripted.status(), StatusCode::OK);
    let seen: Value = scripted.json().await.expect("echo");
    assert_eq!(seen["remote-user"], "ann@example.com", "{seen}");

    // deny, and the default for hosts no rule names.
    for (host, path) in [("app.home.test", "/admin"), ("other.home.test", "/")] {
        let denied = through(
            proxy,
            host,
            path,
            &[(COOKIE.as_str(), &session.cookie_header)],
        )
        .await;
        assert_eq!(denied.status(), StatusCode::FORBIDDEN, "{host}{path}");
    }

    // bypass: through without a sign-in, and a forged identity does not
    // reach the app.
    let open = through(
        proxy,
        "public.home.test",
        "/",
        &[("Remote-User", "mallory@example.com")],
    )
    .await;
    assert_eq!(open.status(), StatusCode::OK);
    let seen: Value = open.json().await.expect("echo");
    let user = seen
        .get("remote-user")
        .and_then(Value::as_str)
        .unwrap_or("");
    assert_eq!(user, "", "{seen}");
    assert!(
        !seen.to_string().contains("{http."),
        "a placeholder: {seen}"
    );
}

#[tokio::test]
async fn nginx_auth_request_protects_an_app() {
    if !installed("/usr/sbin/nginx") {
        return;
    }
    let server = spawn().await;
    let profile = server.register_ok("ann@example.com").await;
    let app = start_echo_app().await;
    let proxy = start_nginx(&server.url(""), &server.url(""), app).await;
    check_proxy(&server, &proxy, &profile).await;
}

#[tokio::test]
async fn caddy_forward_auth_protects_an_app() {
    if !installed("/usr/bin/caddy") {
        return;
    }
    let server = spawn().await;
    let profile = server.register_ok("ann@example.com").await;
    let app = start_echo_app().await;
    let proxy = start_caddy(&server, app).await;
    check_proxy(&server, &proxy, &profile).await;
}
