//! What the fuzz targets share: the real application in-process (the
//! router `authd::http::router` builds, every layer included, a real redb
//! file in a temp dir, a manual clock), requests sent to it with
//! `tower::ServiceExt::oneshot`, and the invariant every answer keeps.
//!
//! The invariant ([`check_answer`]): no 5xx other than a documented 503; an
//! error status carries a JSON object body in the shape of its API family
//! (`src/http/error.rs`), except on the few pages that answer HTML; and
//! nothing panics (a panic in a handler aborts the target: libFuzzer reports
//! it as a crash).
//!
//! [`jws`] holds the edits of a genuine token the token targets share.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

pub mod jws;

/// Fast hashing and limits no fuzz input can trip on its own, so that the
/// parsers behind them stay reachable; WebAuthn on for `localhost`.
pub const FUZZ_CONFIG: &str = "[passwords]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n\n\
[limits]\nlogin_per_ip_per_min = 1000000\nlogin_per_account_per_min = 1000000\nregister_per_ip_per_min = 1000000\n\n\
[tokens]\nsigning_alg = \"EdDSA\"\n";

/// A password the default policy accepts.
pub const GOOD_PASSWORD: &str = "Correct-Horse-42";

pub struct InProcess {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    /// Kept for its listener and its store; never run (the background
    /// tasks of `run_until_stopped`, sweeps and reloads, are not needed).
    app: authd::app::Application,
    pub clock: authd::clock::Clock,
    dir: tempfile::TempDir,
}

/// An answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The values of the `Set-Cookie` headers, `name=value` only.
    pub fn cookies(&self) -> Vec<(String, String)> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|value| value.split(';').next())
            .filter_map(|pair| pair.split_once('='))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }
}

impl InProcess {
    /// The server with [`FUZZ_CONFIG`] plus `extra_config` (whole sections).
    /// Panics if it cannot start: that is a broken harness, not a finding.
    pub fn start(extra_config: &str) -> InProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("config.toml");
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[storage]\ndata_dir = \"{}\"\n\n{FUZZ_CONFIG}\n{extra_config}\n",
            dir.path().join("data").display()
        );
        std::fs::write(&config_path, text).expect("write config");
        let config = authd::config::Config::load(&authd::config::ConfigSource::File(config_path))
            .expect("config");
        let clock = authd::clock::Clock::manual(1_800_000_000);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let app = runtime
            .block_on(authd::app::Application::build_with_clock(
                config,
                clock.clone(),
            ))
            .expect("build");
        let router = authd::http::router(app.state().clone());
        let server = InProcess {
            runtime,
            router,
            app,
            clock,
            dir,
        };
        // The first signing key is made in the background: wait for it, so
        // that no input meets a server still starting.
        let jwks = server.send(get("/.well-known/jwks.json"));
        assert_eq!(jwks.status, StatusCode::OK, "the server did not start");
        server
    }

    /// Sends one request from 192.0.2.1 (as the accept loop would say) and
    /// reads the whole answer.
    pub fn send(&self, mut request: Request<Body>) -> Answer {
        let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 40_000);
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let response = router.oneshot(request).await.expect("infallible");
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map(|collected| collected.to_bytes().to_vec())
                .unwrap_or_default();
            Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        })
    }

    /// Stops the server (dropping the store closes the file cleanly) and
    /// returns the bytes of its `authd.redb`.
    pub fn into_database_bytes(self) -> Vec<u8> {
        let InProcess {
            runtime,
            router,
            app,
            dir,
            ..
        } = self;
        drop(router);
        drop(app);
        // Ends the tasks that hold the store (webhooks, mail) and waits for
        // the blocking pool, where the store's last handles may be.
        runtime.shutdown_timeout(std::time::Duration::from_secs(10));
        std::fs::read(dir.path().join("data").join("authd.redb")).expect("read authd.redb")
    }

    /// Registers `email` with [`GOOD_PASSWORD`]; panics unless 201.
    pub fn register(&self, email: &str) {
        let answer = self.send(json_post(
            "/register",
            &serde_json::json!({"email": email, "password": GOOD_PASSWORD}),
        ));
        assert_eq!(answer.status, StatusCode::CREATED, "register {email}");
    }
}

pub fn get(path_and_query: &str) -> Request<Body> {
    Request::get(path_and_query)
        .body(Body::empty())
        .expect("request")
}

pub fn json_post(path: &str, body: &serde_json::Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

/// Pages a browser is sent to, whose errors are HTML by design (an app's
/// redirect that went wrong must never become a redirect, see
/// ARCHITECTURE.md "Life of an app sign-in").
fn answers_html(path: &str) -> bool {
    path == "/oauth/authorize"
        || path == "/oauth/end_session"
        || path.starts_with("/oauth/callback/")
        || (path.starts_with("/v1/approvals/") && path.ends_with("/resolve"))
}

/// The invariant of every answer to `path` (see the module comment).
pub fn check_answer(method: &str, path: &str, answer: &Answer) {
    let status = answer.status;
    assert!(
        !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
        "{method} {path} answered {status}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    if !(status.is_client_error() || status.is_server_error()) {
        return;
    }
    let content_type = answer
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("text/html") && answers_html(path) {
        return;
    }
    assert!(
        content_type.starts_with("application/json"),
        "{method} {path} answered {status} with content type {content_type:?}"
    );
    let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_else(|_| {
        panic!(
            "{method} {path} answered {status} with a body that is not JSON: {}",
            String::from_utf8_lossy(&answer.body)
        )
    });
    let error = body.get("error").and_then(|value| value.as_str());
    assert!(
        error.is_some_and(|error| !error.is_empty()),
        "{method} {path} answered {status} without an error string: {body}"
    );
    // The family's second member, where the family has one.
    match authd::http::error::ErrorFamily::of_path(path) {
        authd::http::error::ErrorFamily::OAuth => assert!(
            body.get("message").is_none(),
            "{method} {path}: an OAuth error says error_description, not message: {body}"
        ),
        authd::http::error::ErrorFamily::ControlPlane => assert!(
            error.is_some_and(|error| error
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())),
            "{method} {path}: a control-plane error code is upper case: {body}"
        ),
        authd::http::error::ErrorFamily::Identity => assert!(
            body.get("error_description").is_none(),
            "{method} {path}: an identity error says message, not error_description: {body}"
        ),
        authd::http::error::ErrorFamily::Operator => {}
    }
}
