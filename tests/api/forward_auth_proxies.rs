//! Forward-auth behind the real proxies: Debian's nginx (`auth_request`) and
//! Caddy (`forward_auth`), each started here as a process on a loopback port
//! with the README's config in a temp dir, in front of a tiny app that
//! answers with the headers it received. Without nginx or caddy the tests
//! say so and pass, except under `CI`, where `.ci/run` installs both and a
//! missing one fails.

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use reqwest::header::{COOKIE, HOST, LOCATION};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::forward_auth::{pat_for, spawn};
use crate::helpers::{
    browser_login, free_port, installed, readme_proxy_config, start_echo_app, start_nginx, Proxy,
    TestServer,
};

/// Caddy in front of `app`, asking authd at `authd`, with the README's site
/// block: in a `route` (so the order holds), what the client sent as
/// `Remote-*` (or `Remote_*`, which CGI-style gateways read the same way)
/// goes first, then `forward_auth` sets the headers from authd's answer. The
/// site answers every host here, so a test picks the host it asks for.
async fn start_caddy(authd: SocketAddr, app: SocketAddr) -> Proxy {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let site = readme_proxy_config(
        "caddyfile",
        &[
            (
                "files.home.example {",
                &format!("http://:{port} {{\n    bind 127.0.0.1"),
            ),
            ("127.0.0.1:9090", &authd.to_string()),
            ("127.0.0.1:3000", &app.to_string()),
        ],
    );
    let config = format!(
        "{{\n  admin off\n  auto_https off\n  storage file_system {root}/storage\n}}\n{site}",
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

/// What a client forges: an identity, and where it claims to be going.
const FORGED: &[(&str, &str)] = &[
    ("Remote-User", "mallory@example.com"),
    ("Remote-Email", "mallory@example.com"),
    ("Remote-Name", "Mallory"),
    ("Remote-Groups", "admin"),
    ("Remote_User", "mallory@example.com"),
    ("Remote_Groups", "admin"),
];

/// The identity headers the app got, with a value (an empty one says
/// nothing): `remote-*` and `remote_*`, by lower-case name.
fn identity_seen(seen: &Value) -> serde_json::Map<String, Value> {
    seen.as_object()
        .expect("object")
        .iter()
        .filter(|(name, value)| {
            (name.starts_with("remote-") || name.starts_with("remote_"))
                && value.as_str() != Some("")
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// authd's sign-in page, coming back to `url`.
fn sign_in(server: &TestServer, url: &str) -> String {
    format!(
        "{}/login?{}",
        server.url(""),
        serde_urlencoded::to_string([("return_to", url)]).expect("query")
    )
}

/// Every case, through one proxy.
async fn check_proxy(server: &TestServer, proxy: &Proxy, profile: &Value) {
    // Nobody: to authd's sign-in, carrying where they were going, query
    // and all.
    let anonymous = through(proxy, "app.home.test", "/notes?a=1&b=2", &[]).await;
    assert_eq!(anonymous.status(), StatusCode::FOUND);
    assert_eq!(
        anonymous.headers()[LOCATION],
        sign_in(server, "http://app.home.test/notes?a=1&b=2").as_str()
    );
    // Claiming to be going to the bypassed host changes nothing: the proxy
    // tells authd where the request really goes.
    let misdirected = through(
        proxy,
        "app.home.test",
        "/notes",
        &[
            ("X-Forwarded-Host", "public.home.test"),
            ("X-Forwarded-Uri", "/"),
            ("X-Forwarded-Proto", "https"),
            ("X-Original-URL", "http://public.home.test/"),
        ],
    )
    .await;
    assert_eq!(misdirected.status(), StatusCode::FOUND);
    assert_eq!(
        misdirected.headers()[LOCATION],
        sign_in(server, "http://app.home.test/notes").as_str()
    );

    // The UI's cookie: the app sees who it is, not what the client forged.
    let session = browser_login(server, "ann@example.com").await;
    let mut headers = vec![(COOKIE.as_str(), session.cookie_header.as_str())];
    headers.extend_from_slice(FORGED);
    let signed_in = through(proxy, "app.home.test", "/notes", &headers).await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    let seen: Value = signed_in.json().await.expect("echo");
    assert_eq!(
        Value::Object(identity_seen(&seen)),
        json!({
            "remote-user": "ann@example.com",
            "remote-email": "ann@example.com",
            "remote-name": "ann@example.com",
            "remote-groups": "member",
        }),
        "{seen}"
    );

    // A PAT as Bearer: a script reaches the app.
    let pat = pat_for(server, "ann@example.com", profile).await;
    let bearer = format!("Bearer {pat}");
    let mut headers = vec![("authorization", bearer.as_str())];
    headers.extend_from_slice(FORGED);
    let scripted = through(proxy, "app.home.test", "/api", &headers).await;
    assert_eq!(scripted.status(), StatusCode::OK);
    let seen: Value = scripted.json().await.expect("echo");
    assert_eq!(seen["remote-user"], "ann@example.com", "{seen}");
    assert_eq!(seen["remote-groups"], "member", "{seen}");
    assert!(seen.get("remote_user").is_none(), "{seen}");

    // deny on a path, the default for hosts no rule names, and a rule for
    // admins only.
    for (host, path) in [
        ("app.home.test", "/admin"),
        ("other.home.test", "/"),
        ("ops.home.test", "/"),
    ] {
        let denied = through(
            proxy,
            host,
            path,
            &[(COOKIE.as_str(), &session.cookie_header)],
        )
        .await;
        assert_eq!(denied.status(), StatusCode::FORBIDDEN, "{host}{path}");
    }

    // two_factor with a session that signed in with a password alone: back
    // to the sign-in page, for the second factor.
    let step_up = through(
        proxy,
        "vault.home.test",
        "/",
        &[(COOKIE.as_str(), &session.cookie_header)],
    )
    .await;
    assert_eq!(step_up.status(), StatusCode::FOUND);
    assert_eq!(
        step_up.headers()[LOCATION],
        sign_in(server, "http://vault.home.test/").as_str()
    );

    // bypass: through without a sign-in, and no identity reaches the app,
    // neither a forged one nor a proxy's placeholder text.
    let open = through(proxy, "public.home.test", "/", FORGED).await;
    assert_eq!(open.status(), StatusCode::OK);
    let seen: Value = open.json().await.expect("echo");
    assert_eq!(identity_seen(&seen), serde_json::Map::new(), "{seen}");
    assert!(
        !seen.to_string().contains("{http."),
        "a placeholder: {seen}"
    );

    // Signing out at authd ends the cookie for the app.
    let logout = session
        .write(server, reqwest::Method::POST, "/ui/api/logout")
        .json(&json!({}))
        .send()
        .await
        .expect("logout");
    assert!(logout.status().is_success());
    let after = through(
        proxy,
        "app.home.test",
        "/notes",
        &[(COOKIE.as_str(), &session.cookie_header)],
    )
    .await;
    assert_eq!(after.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn nginx_auth_request_protects_an_app() {
    if !installed("/usr/sbin/nginx") {
        return;
    }
    let server = spawn().await;
    let profile = server.register_ok("ann@example.com").await;
    let app = start_echo_app().await;
    let proxy = start_nginx(&server.url(""), app).await;
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
    let proxy = start_caddy(server.address, app).await;
    check_proxy(&server, &proxy, &profile).await;
}
