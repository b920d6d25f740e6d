//! Forward-auth behind the real proxies: Debian's nginx (`auth_request`) and
//! Caddy (`forward_auth`), each started here as a process on a loopback port
//! with a config in a temp dir, in front of a tiny app that answers with the
//! headers it received. Without nginx or caddy the tests say so and pass,
//! except under `CI`, where `.ci/run` installs both and a missing one fails.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::http::HeaderMap;
use reqwest::header::{COOKIE, HOST, LOCATION};
use reqwest::StatusCode;
use serde_json::Value;

use crate::forward_auth::{pat_for, spawn};
use crate::helpers::{browser_login, TestServer};

/// A proxy process, stopped when the test ends.
struct Proxy {
    child: Child,
    address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Whether `binary` is installed; outside CI a missing one skips the test.
fn installed(binary: &str) -> bool {
    if Path::new(binary).is_file() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but {binary} is missing: apt-get install -y nginx caddy"
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "{binary} is missing: forward-auth proxy test skipped (apt-get install -y nginx caddy)"
    );
    false
}

async fn wait_until_listening(proxy: &mut Proxy) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(proxy.address).await.is_ok() {
            return;
        }
        if let Ok(Some(status)) = proxy.child.try_wait() {
            panic!("the proxy exited: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the proxy did not listen on {}", proxy.address);
}

/// The app behind the proxy: answers every request with its headers.
async fn start_echo_app() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
        let seen: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    Value::String(value.to_str().unwrap_or("<binary>").to_owned()),
                )
            })
            .collect();
        axum::Json(seen)
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

async fn start_nginx(authd: &TestServer, app: SocketAddr) -> Proxy {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let root = dir.path().display();
    let config = format!(
        r#"
pid {root}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location = /authd-check {{
      internal;
      proxy_pass {authd}/forward-auth/nginx;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
    }}
    location @sign_in {{
      return 302 {authd}/login?return_to=$scheme://$http_host$request_uri;
    }}
    location / {{
      auth_request /authd-check;
      auth_request_set $authd_user $upstream_http_remote_user;
      auth_request_set $authd_email $upstream_http_remote_email;
      auth_request_set $authd_name $upstream_http_remote_name;
      auth_request_set $authd_groups $upstream_http_remote_groups;
      proxy_set_header Remote-User $authd_user;
      proxy_set_header Remote-Email $authd_email;
      proxy_set_header Remote-Name $authd_name;
      proxy_set_header Remote-Groups $authd_groups;
      error_page 401 = @sign_in;
      proxy_pass http://{app};
    }}
  }}
}}
"#,
        authd = authd.url(""),
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, config).expect("write nginx.conf");
    let child = Command::new("/usr/sbin/nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&path)
        .arg("-g")
        .arg("daemon off; master_process off;")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start nginx");
    let mut proxy = Proxy {
        child,
        address: ([127, 0, 0, 1], port).into(),
        _dir: dir,
    };
    wait_until_listening(&mut proxy).await;
    proxy
}

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
    let child = Command::new("/usr/bin/caddy")
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
        .stderr(Stdio::null())
        .spawn()
        .expect("start caddy");
    let mut proxy = Proxy {
        child,
        address: ([127, 0, 0, 1], port).into(),
        _dir: dir,
    };
    wait_until_listening(&mut proxy).await;
    proxy
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
    let proxy = start_nginx(&server, app).await;
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
