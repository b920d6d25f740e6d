//! The attacks of the security review (issue 17), replayed against the real
//! server: slow and half-open connections (finding 7), secrets that could be
//! cached and plain-http downgrades (14), secrets printed by `check-config`,
//! names that display as something they are not, cookies a subdomain could
//! plant, and webhooks over plain http (15).

use std::time::{Duration, Instant};

use reqwest::header::{CACHE_CONTROL, COOKIE, SET_COOKIE, STRICT_TRANSPORT_SECURITY};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{current_step, totp_at};
use crate::helpers::{run, TestServer, FAST_HASHING, GOOD_PASSWORD, RELAXED_LIMITS};

/// A `[server]` section on a random port with `extra` keys.
fn server_section(extra: &str) -> String {
    format!("[server]\nlisten = \"127.0.0.1:0\"\n{extra}\n{FAST_HASHING}\n{RELAXED_LIMITS}")
}

/// Reads until the server closes the connection (EOF or reset), for at most
/// `limit`; how long that took, or `None` if it was still open.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0_u8; 1024];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            // An error page (e.g. 408) before the close is fine.
            Ok(Ok(_)) => {}
        }
    }
}

/// A connection that has sent the start of a request line and nothing more.
async fn half_open(server: &TestServer) -> TcpStream {
    let mut stream = TcpStream::connect(server.address).await.expect("connect");
    stream.write_all(b"GET /heal").await.expect("write");
    stream
}

/// `/healthz` on a fresh connection, within `limit`.
async fn healthz_within(server: &TestServer, limit: Duration) -> StatusCode {
    let client = reqwest::Client::builder()
        .timeout(limit)
        .build()
        .expect("client");
    match client.get(server.url("/healthz")).send().await {
        Ok(response) => response.status(),
        Err(error) => panic!("/healthz did not answer within {limit:?}: {error}"),
    }
}

// ---- finding 7: slow clients ----------------------------------------------

#[tokio::test]
async fn a_request_head_that_does_not_arrive_within_header_timeout_is_cut_off() {
    let server = TestServer::spawn_with(&server_section("header_timeout = \"1s\"")).await;

    // The review's attack: a partial request line, then silence.
    let mut silent = half_open(&server).await;
    let took = closed_within(&mut silent, Duration::from_secs(6))
        .await
        .expect("a partial request line must not hold its connection");
    assert!(took >= Duration::from_millis(800), "closed after {took:?}");

    // A client that keeps sending, a header line every 300 ms, gains
    // nothing: the whole head must arrive within the timeout.
    let mut dribbling = TcpStream::connect(server.address).await.expect("connect");
    dribbling
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut closed = false;
    for n in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if dribbling
            .write_all(format!("X-Slow-{n}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
    }
    if !closed {
        closed = closed_within(&mut dribbling, Duration::from_millis(100))
            .await
            .is_some();
    }
    assert!(closed, "a dribbled head outlived header_timeout");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A prompt request on a kept-alive connection is unaffected.
    let response = server.get("/healthz").send().await.expect("healthz");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_slow_body_still_gets_408_after_the_request_timeout() {
    // The head arrives at once; the body never does. That is the request
    // timeout's to end (with an answer), not the head deadline's.
    let server = TestServer::spawn_with(&server_section(
        "request_timeout = \"1s\"\nheader_timeout = \"10s\"",
    ))
    .await;
    let mut stream = TcpStream::connect(server.address).await.expect("connect");
    stream
        .write_all(
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .expect("write");
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("no answer within 5 s");
        let read = tokio::time::timeout(left, stream.read(&mut buffer))
            .await
            .expect("no answer within 5 s")
            .expect("read");
        assert!(read > 0, "closed without an answer");
        answer.extend_from_slice(&buffer[..read]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn half_open_connections_at_the_cap_cannot_crowd_out_healthz() {
    // A head deadline far longer than the test: only the cap's eviction can
    // make room.
    let server = TestServer::spawn_with(&server_section(
        "max_connections = 20\nheader_timeout = \"60s\"",
    ))
    .await;
    let mut attackers = Vec::new();
    for _ in 0..40 {
        attackers.push(half_open(&server).await);
    }
    for _ in 0..3 {
        assert_eq!(
            healthz_within(&server, Duration::from_secs(3)).await,
            StatusCode::OK
        );
    }
    // Never more than 20 open: the older half-open ones were closed to make
    // room, the newest may still be waiting.
    let mut closed = 0;
    for stream in &mut attackers {
        if closed_within(stream, Duration::from_millis(50))
            .await
            .is_some()
        {
            closed += 1;
        }
    }
    assert!(
        closed >= 20,
        "only {closed} of 40 half-open connections closed"
    );
    let oldest = &mut attackers[0];
    assert!(closed_within(oldest, Duration::from_millis(50))
        .await
        .is_some());
}

#[tokio::test]
async fn half_open_connections_cannot_exhaust_the_open_files_limit() {
    // The review's reproduction: `ulimit -n 256`, 300 half-open requests.
    // The default cap is derived from that limit, so accepting never runs
    // out of descriptors and /healthz keeps answering.
    // No new keys, so the same test shows the attack on a server without
    // the cap; it ends long before the default 10 s head deadline could
    // help.
    let server = TestServer::spawn_customised(&server_section(""), &[], |command| {
        use std::os::unix::process::CommandExt;
        // SAFETY: only setrlimit, which is async-signal-safe, runs
        // between fork and exec.
        unsafe {
            command.pre_exec(|| {
                let mut limit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                limit.rlim_cur = 256;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
    .await;
    let mut attackers = Vec::new();
    for _ in 0..300 {
        attackers.push(half_open(&server).await);
    }
    for _ in 0..3 {
        assert_eq!(
            healthz_within(&server, Duration::from_secs(3)).await,
            StatusCode::OK
        );
    }
    let logs = server.logs();
    assert!(!logs.contains("Too many open files"), "{logs}");
    assert!(logs.contains("\"max_connections\":192"), "{logs}");
    drop(attackers);
}

#[tokio::test]
async fn sigterm_closes_half_open_connections_without_waiting_for_them() {
    // With the default 10 s head deadline, longer than this test waits.
    let mut server = TestServer::spawn_fast().await;
    let _attacker = half_open(&server).await;
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, server)
    })
    .await
    .expect("join");
    assert!(status.0.success(), "{:?}", status.0);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown waited {:?} for a half-sent head",
        started.elapsed()
    );
}

// ---- finding 14: caching and HSTS -----------------------------------------

fn assert_no_store(response: &reqwest::Response, what: &str) {
    assert_eq!(
        response
            .headers()
            .get(CACHE_CONTROL)
            .map(|v| v.to_str().expect("ascii")),
        Some("no-store"),
        "{what}"
    );
}

async fn post_json(
    server: &TestServer,
    path: &str,
    bearer: &str,
    org: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut request = server.post(path).bearer_auth(bearer).json(&body);
    if let Some(org) = org {
        request = request.header("X-Active-Org-Id", org);
    }
    request.send().await.expect("request")
}

#[tokio::test]
async fn responses_with_tokens_secrets_or_personal_data_are_never_stored() {
    let server = TestServer::spawn_fast().await;
    let profile = server.register_ok("nina@example.com").await;
    let org = profile["memberships"][0]["org_id"]
        .as_str()
        .expect("org id")
        .to_owned();

    let login = server
        .post("/api/v1/auth/login")
        .json(&json!({"email": "nina@example.com", "password": GOOD_PASSWORD}))
        .send()
        .await
        .expect("control-plane login");
    assert_eq!(login.status(), StatusCode::OK);
    assert_no_store(&login, "POST /api/v1/auth/login");
    let session: Value = login.json().await.expect("json");
    let session = session["access_token"].as_str().expect("token").to_owned();

    let pat = post_json(
        &server,
        "/api/v1/auth/api-tokens",
        &session,
        Some(&org),
        json!({"name": "ci", "scopes": ["tokens.read"], "expires_in_days": 1}),
    )
    .await;
    assert_eq!(pat.status(), StatusCode::CREATED);
    assert_no_store(&pat, "POST /api/v1/auth/api-tokens");

    let tokens = server.login_ok("nina@example.com").await;
    let access = tokens["access_token"].as_str().expect("access");
    let account = server
        .get("/api/account")
        .bearer_auth(access)
        .send()
        .await
        .expect("profile");
    assert_eq!(account.status(), StatusCode::OK);
    assert_no_store(&account, "GET /api/account");
    let sessions = server
        .get("/api/account/sessions")
        .bearer_auth(access)
        .send()
        .await
        .expect("sessions");
    assert_no_store(&sessions, "GET /api/account/sessions");

    let enroll = post_json(&server, "/api/account/mfa/enroll", access, None, json!({})).await;
    assert_eq!(enroll.status(), StatusCode::OK);
    assert_no_store(&enroll, "POST /api/account/mfa/enroll");
    let secret: Value = enroll.json().await.expect("json");
    let secret = secret["secret"].as_str().expect("secret").to_owned();
    let verify = post_json(
        &server,
        "/api/account/mfa/verify",
        access,
        None,
        json!({"code": totp_at(&secret, current_step() - 1)}),
    )
    .await;
    assert_eq!(verify.status(), StatusCode::OK);
    assert_no_store(&verify, "POST /api/account/mfa/verify (recovery codes)");
    let regenerated = post_json(
        &server,
        "/api/account/mfa/recovery-codes",
        access,
        None,
        json!({"password": GOOD_PASSWORD}),
    )
    .await;
    assert_eq!(regenerated.status(), StatusCode::OK);
    assert_no_store(&regenerated, "POST /api/account/mfa/recovery-codes");

    let users = server
        .operator(Method::GET, "/v1/users")
        .send()
        .await
        .expect("users");
    assert_no_store(&users, "GET /v1/users");
    let refused = server.get("/api/account").send().await.expect("401");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_no_store(&refused, "an error");

    // What may be cached still says so itself.
    let jwks = server
        .get("/.well-known/jwks.json")
        .send()
        .await
        .expect("jwks");
    assert_eq!(jwks.headers()[CACHE_CONTROL], "public, max-age=300");
    let asset = server.get("/ui/app.js").send().await.expect("asset");
    assert_eq!(asset.headers()[CACHE_CONTROL], "no-cache");
}

#[tokio::test]
async fn behind_https_every_response_carries_hsts_and_never_over_http() {
    let server = TestServer::spawn_with(&server_section(
        "public_url = \"https://auth.example.test\"",
    ))
    .await;
    for (path, status) in [
        ("/healthz", StatusCode::OK),
        ("/", StatusCode::OK),
        ("/ui/app.css", StatusCode::OK),
        ("/.well-known/jwks.json", StatusCode::OK),
        ("/api/account", StatusCode::UNAUTHORIZED),
        ("/nowhere", StatusCode::NOT_FOUND),
    ] {
        let response = server.get(path).send().await.expect("request");
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(
            response.headers().get(STRICT_TRANSPORT_SECURITY),
            Some(&reqwest::header::HeaderValue::from_static(
                "max-age=63072000; includeSubDomains"
            )),
            "{path}"
        );
    }

    let plain = TestServer::spawn_fast().await;
    for path in ["/healthz", "/", "/nowhere"] {
        let response = plain.get(path).send().await.expect("request");
        assert!(
            response.headers().get(STRICT_TRANSPORT_SECURITY).is_none(),
            "{path} over http"
        );
    }
}

// ---- finding 15: cookies a subdomain could plant --------------------------

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}

fn cookie<'a>(set_cookies: &'a [String], name: &str) -> Option<&'a str> {
    set_cookies
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|rest| rest.split(';').next())
}

#[tokio::test]
async fn behind_https_the_ui_cookies_are_host_prefixed_and_only_those_are_read() {
    let server = TestServer::spawn_with(&server_section(
        "public_url = \"https://auth.example.test\"",
    ))
    .await;
    server.register_ok("hugo@example.com").await;
    let response = server
        .post("/ui/api/login")
        .json(&json!({"email": "hugo@example.com", "password": GOOD_PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK);
    let set = set_cookies(&response);
    assert_eq!(set.len(), 2, "{set:?}");
    for line in &set {
        assert!(line.starts_with("__Host-authd_"), "{line}");
        assert!(line.contains("; Secure"), "{line}");
        assert!(line.contains("Path=/;"), "{line}");
        assert!(!line.to_ascii_lowercase().contains("domain="), "{line}");
    }
    let session = cookie(&set, "__Host-authd_session").expect("session cookie");
    let csrf = cookie(&set, "__Host-authd_csrf").expect("csrf cookie");

    let profile = server
        .get("/api/account")
        .header(
            COOKIE,
            format!("__Host-authd_session={session}; __Host-authd_csrf={csrf}"),
        )
        .send()
        .await
        .expect("profile");
    assert_eq!(profile.status(), StatusCode::OK);

    // The bare name is what a subdomain or an http page could plant: not
    // read behind https.
    let planted = server
        .get("/api/account")
        .header(COOKIE, format!("authd_session={session}"))
        .send()
        .await
        .expect("profile");
    assert_eq!(planted.status(), StatusCode::UNAUTHORIZED);

    let logout = server
        .post("/ui/api/logout")
        .header(COOKIE, format!("__Host-authd_session={session}"))
        .header("X-CSRF-Token", csrf)
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let cleared = set_cookies(&logout);
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("__Host-authd_session=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
}

#[test]
fn the_page_script_finds_the_csrf_cookie_under_either_name() {
    // The UI reads the token the server sets; behind https that is the
    // `__Host-` name (the browser tests run on http and see the bare one).
    let script = include_str!("../../web/api.js");
    assert!(script.contains("'__Host-authd_csrf='"), "web/api.js");
    assert!(script.contains("'authd_csrf='"), "web/api.js");
}

// ---- finding 15: names that display as something else -----------------------

/// The error body of a refused name: 400 naming the field `name`.
async fn assert_name_refused(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["fields"][0]["field"], "name", "{what}: {body}");
}

#[tokio::test]
async fn names_with_direction_overrides_or_invisible_characters_are_refused() {
    let server = TestServer::spawn_fast().await;
    let disguises = [
        "Admin\u{202E}nimdA",
        "Ali\u{200B}ce",
        "\u{2066}Ops\u{2069}",
        "Bob\u{200F}",
        "\u{FEFF}Eve",
        "Zero\u{2060}Width",
        "Join\u{200D}ed",
    ];
    for (n, name) in disguises.iter().enumerate() {
        let response = server
            .register(json!({"email": format!("u{n}@example.com"), "password": GOOD_PASSWORD, "name": name}))
            .await;
        assert_name_refused(response, &format!("register {name:?}")).await;
    }

    let org_response = server
        .operator_json(
            Method::POST,
            "/v1/orgs",
            json!({"slug": "lab", "name": "Home\u{202E}baL"}),
        )
        .await;
    assert_name_refused(org_response, "an org").await;

    let profile = server.register_ok("olga@example.com").await;
    let id = profile["id"].as_str().expect("id");
    let rename = server
        .operator_json(
            Method::PATCH,
            &format!("/v1/users/{id}"),
            json!({"name": "Olga\u{200B}"}),
        )
        .await;
    assert_name_refused(rename, "an operator rename").await;

    let org = profile["memberships"][0]["org_id"]
        .as_str()
        .expect("org id")
        .to_owned();
    let session = &server.session_token("olga@example.com").await;
    let pat = post_json(
        &server,
        "/api/v1/auth/api-tokens",
        session,
        Some(&org),
        json!({"name": "deploy\u{2067}", "scopes": ["tokens.read"], "expires_in_days": 1}),
    )
    .await;
    assert_name_refused(pat, "a PAT").await;

    // Names in any script, and plain emoji, are still welcome.
    let response = server
        .register(
            json!({"email": "yuki@example.com", "password": GOOD_PASSWORD, "name": "山田 ゆき 🌸"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

// ---- finding 15: secrets in check-config, webhooks over plain http ---------

#[tokio::test]
async fn check_config_and_the_log_hide_url_secrets_and_warn_about_plain_http_webhooks() {
    let server = TestServer::spawn_with(
        "[[webhooks]]\nurl = \"http://hooks.example.com/authd?token=s3cret-query\"\n\n\
         [[webhooks]]\nurl = \"https://bot:s3cret-password@chat.example.com/hook\"\n\n\
         [[webhooks]]\nurl = \"http://127.0.0.1:8080/local\"\n",
    )
    .await;
    let (status, stdout, stderr) = run(server.cli().arg("check-config"), None);
    assert!(status.success(), "{stderr}");
    assert!(!stdout.contains("s3cret"), "{stdout}");
    assert!(
        stdout.contains("url = \"http://hooks.example.com/authd?[redacted]\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("url = \"https://[redacted]@chat.example.com/hook\""),
        "{stdout}"
    );
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("# warning:"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "only the remote plain-http one: {stdout}"
    );
    assert!(warnings[0].contains("http://hooks.example.com/authd?[redacted]"));
    assert!(warnings[0].contains("not https"));

    let logs = server.logs();
    assert!(logs.contains("is not https"), "{logs}");
    assert!(!logs.contains("s3cret"), "{logs}");
}
