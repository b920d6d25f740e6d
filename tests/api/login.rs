//! `POST /login`: the token set, the uniform failure, rate limits, lockout,
//! trusted proxies, hash upgrades and what is (not) stored.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{TestServer, FAST_HASHING, GOOD_PASSWORD, RELAXED_LIMITS};

/// Decodes a JWT's header and claims without checking them.
fn jwt_parts(token: &str) -> (Value, Value) {
    use base64::Engine;
    let mut parts = token.split('.');
    let decode = |part: Option<&str>| {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.expect("part"))
            .expect("base64url");
        serde_json::from_slice::<Value>(&bytes).expect("json")
    };
    (decode(parts.next()), decode(parts.next()))
}

#[tokio::test]
async fn a_login_returns_the_spec_token_set_verifiable_from_the_jwks_alone() {
    let server = TestServer::spawn_fast().await;
    let profile = server.register_ok("alice@example.com").await;
    let response = server
        .login(json!({"email": "alice@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: Value = response.json().await.expect("json");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert!(tokens["refresh_token"].as_str().expect("refresh").len() >= 43);
    let session_id = tokens["session_id"].as_str().expect("sid");

    let access = tokens["access_token"].as_str().expect("access");
    let (header, claims) = jwt_parts(access);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "at+jwt", "an access token, RFC 9068");
    assert_eq!(claims["sub"], profile["id"]);
    assert_eq!(claims["iss"], "http://localhost:9090");
    assert_eq!(claims["aud"], "authd");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["roles"], json!(["member"]));
    assert_eq!(claims["org"], profile["memberships"][0]["org_id"]);
    assert_eq!(claims["sid"], session_id);
    for claim in ["exp", "iat", "nbf"] {
        assert!(claims[claim].is_i64(), "{claim}");
    }
    assert!(claims["jti"].is_string());
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        3600
    );

    // An independent resource server: only the JWKS document, fetched over HTTP.
    let jwks_response = server
        .get("/.well-known/jwks.json")
        .send()
        .await
        .expect("jwks");
    assert_eq!(
        jwks_response.headers()["cache-control"],
        "public, max-age=300"
    );
    let etag = jwks_response.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_owned();
    let jwks: jsonwebtoken::jwk::JwkSet = jwks_response.json().await.expect("jwks json");
    let kid = header["kid"].as_str().expect("kid");
    let jwk = jwks.find(kid).expect("the token's kid is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("decoding key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["authd"]);
    validation.set_issuer(&["http://localhost:9090"]);
    let decoded = jsonwebtoken::decode::<Value>(access, &key, &validation).expect("verifies");
    assert_eq!(decoded.claims["sub"], profile["id"]);

    let not_modified = server
        .get("/.well-known/jwks.json")
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("jwks");
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn unknown_email_wrong_password_and_locked_account_get_one_identical_answer() {
    let server = TestServer::spawn_with(&format!(
        "{FAST_HASHING}\n[limits]\nlogin_per_ip_per_min = 1000\nlogin_per_account_per_min = 1000\nlockout_threshold = 3\n"
    ))
    .await;
    server.register_ok("known@example.com").await;
    server.register_ok("locked@example.com").await;
    for _ in 0..3 {
        server
            .login(json!({"email": "locked@example.com", "password": "Wrong-password-1"}))
            .await;
    }
    let mut bodies = Vec::new();
    for (email, password) in [
        ("nobody@example.com", GOOD_PASSWORD),
        ("known@example.com", "Wrong-password-1"),
        ("locked@example.com", GOOD_PASSWORD),
        ("not an email", GOOD_PASSWORD),
    ] {
        let response = server
            .login(json!({"email": email, "password": password}))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{email}");
        bodies.push(response.bytes().await.expect("body"));
    }
    assert_eq!(
        std::str::from_utf8(&bodies[0]).expect("utf8"),
        r#"{"error":"invalid_credentials","message":"invalid email or password"}"#
    );
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "byte-identical: {bodies:?}"
    );
    let reasons: Vec<String> = server
        .audit_events("type=user.login_failed&limit=4")
        .await
        .iter()
        .map(|e| e["reason"].as_str().expect("reason").to_owned())
        .collect();
    assert_eq!(
        reasons,
        ["unknown_email", "locked", "bad_password", "unknown_email"]
    );
}

#[tokio::test]
async fn the_account_limit_answers_429_with_retry_after() {
    let server = TestServer::spawn_with(&format!(
        "{FAST_HASHING}\n[limits]\nlogin_per_ip_per_min = 1000\nlogin_per_account_per_min = 3\n"
    ))
    .await;
    server.register_ok("target@example.com").await;
    for _ in 0..3 {
        let response = server
            .login(json!({"email": "target@example.com", "password": "Wrong-password-1"}))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = server
        .login(json!({"email": "target@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "rate_limited");
    // Another account from the same IP is unaffected.
    server.register_ok("other@example.com").await;
    server.login_ok("other@example.com").await;
}

#[tokio::test]
async fn the_ip_limit_spans_accounts_and_unknown_emails() {
    let server = TestServer::spawn_with(&format!(
        "{FAST_HASHING}\n[limits]\nlogin_per_ip_per_min = 4\nlogin_per_account_per_min = 100\n"
    ))
    .await;
    for i in 0..4 {
        let response = server
            .login(json!({"email": format!("ghost{i}@example.com"), "password": "Whatever-1"}))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = server
        .login(json!({"email": "ghost9@example.com", "password": "Whatever-1"}))
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn repeated_failures_lock_the_account_until_the_operator_unlocks_it() {
    let server = TestServer::spawn_with(&format!(
        "{FAST_HASHING}\n[limits]\nlogin_per_ip_per_min = 1000\nlogin_per_account_per_min = 1000\nlockout_threshold = 4\nlockout_duration = \"1h\"\n"
    ))
    .await;
    let profile = server.register_ok("victim@example.com").await;
    for _ in 0..4 {
        server
            .login(json!({"email": "victim@example.com", "password": "Wrong-password-1"}))
            .await;
    }
    let response = server
        .login(json!({"email": "victim@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "locked: even the right password fails"
    );
    let user_id = profile["id"].as_str().expect("id");
    let user: Value = server.operator_get(&format!("/v1/users/{user_id}")).await;
    assert_eq!(user["locked"], true);
    assert_eq!(server.audit_events("type=user.locked").await.len(), 1);

    let response = server
        .operator(Method::POST, &format!("/v1/users/{user_id}/unlock"))
        .send()
        .await
        .expect("unlock");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.expect("json")["locked"],
        false
    );
    assert_eq!(server.audit_events("type=user.unlocked").await.len(), 1);
    server.login_ok("victim@example.com").await;
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let untrusted = TestServer::spawn_fast().await;
    untrusted.register_ok("a@example.com").await;
    untrusted
        .post("/login")
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"email": "a@example.com", "password": GOOD_PASSWORD}))
        .send()
        .await
        .expect("login");
    let event = &untrusted.audit_events("type=user.login").await[0];
    assert_eq!(event["ip"], "127.0.0.1", "a client cannot pick its own IP");

    let trusted = TestServer::spawn_with(&format!(
        "{FAST_HASHING}\n{RELAXED_LIMITS}\n[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\nlisten = \"127.0.0.1:0\"\n"
    ))
    .await;
    trusted.register_ok("b@example.com").await;
    trusted
        .post("/login")
        .header("x-forwarded-for", "198.51.100.1, 203.0.113.9")
        .header("user-agent", "test-agent/1.0")
        .json(&json!({"email": "b@example.com", "password": GOOD_PASSWORD}))
        .send()
        .await
        .expect("login");
    let event = &trusted.audit_events("type=user.login").await[0];
    assert_eq!(event["ip"], "203.0.113.9", "the right-most untrusted hop");
    assert_eq!(event["user_agent"], "test-agent/1.0");
}

#[tokio::test]
async fn the_audit_trail_of_a_login_has_context_and_no_secret_appears_anywhere() {
    let server = TestServer::spawn_fast().await;
    let profile = server.register_ok("carol@example.com").await;
    server
        .login(json!({"email": "carol@example.com", "password": "Not-Her-Password-9"}))
        .await;
    let tokens = server.login_ok("carol@example.com").await;
    let user_id = profile["id"].as_str().expect("id");
    let events = server.audit_events(&format!("user={user_id}")).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds, ["user.login", "user.login_failed", "user.created"]);
    let login = &events[0];
    assert_eq!(login["ip"], "127.0.0.1");
    assert!(login["request_id"].as_str().expect("request id").len() >= 8);
    assert_eq!(login["org_id"], profile["memberships"][0]["org_id"]);
    assert_eq!(login["details"]["session_id"], tokens["session_id"]);

    // Every request above has its log line before the logs are searched.
    server.wait_for_log("/v1/audit").await;
    let everything = format!(
        "{}\n{}",
        serde_json::to_string(&server.audit_events("limit=500").await).expect("json"),
        server.logs()
    );
    for secret in [
        GOOD_PASSWORD,
        "Not-Her-Password-9",
        tokens["access_token"].as_str().expect("access"),
        tokens["refresh_token"].as_str().expect("refresh"),
        &server.admin_token(),
    ] {
        assert!(!everything.contains(secret), "a secret leaked: {secret}");
    }
}

#[tokio::test]
async fn data_survives_a_restart_and_tokens_are_stored_only_as_hashes() {
    let server = TestServer::spawn_fast().await;
    server.register_ok("dave@example.com").await;
    let tokens = server.login_ok("dave@example.com").await;
    let (dir, config) = server.stop();
    let database = crate::helpers::stored_bytes(&dir.path().join("data"));
    let contains = |needle: &str| {
        database
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    assert!(!contains(
        tokens["refresh_token"].as_str().expect("refresh")
    ));
    assert!(!contains(GOOD_PASSWORD));
    assert!(
        contains("$argon2id$v=19$"),
        "passwords are argon2id PHC strings"
    );

    let server = TestServer::start(dir, config, &[]).await;
    server.login_ok("dave@example.com").await;
    // The session issued before the restart is still honoured.
    let response = server
        .get("/api/account")
        .bearer_auth(tokens["access_token"].as_str().expect("access"))
        .send()
        .await
        .expect("profile");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_hash_made_with_older_parameters_is_upgraded_on_the_next_good_login() {
    let server = TestServer::spawn_with(&format!("{FAST_HASHING}\n{RELAXED_LIMITS}")).await;
    server.register_ok("erin@example.com").await;
    let (dir, config) = server.stop();
    let data = dir.path().join("data");
    let count = |needle: &str| {
        let bytes = crate::helpers::stored_bytes(&data);
        bytes
            .windows(needle.len())
            .filter(|w| *w == needle.as_bytes())
            .count()
    };
    assert!(count("m=1024,t=1,p=1") >= 1);
    let stronger = "[passwords]\nmemory_kib = 2048\niterations = 2\nparallelism = 1\n";
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace(FAST_HASHING, stronger);
    std::fs::write(&config, text).expect("write config");
    let server = TestServer::start(dir, config, &[]).await;
    server.login_ok("erin@example.com").await;
    let (dir, config) = server.stop();
    let bytes = crate::helpers::stored_bytes(&dir.path().join("data"));
    let needle = b"m=2048,t=2,p=1";
    assert!(
        bytes.windows(needle.len()).any(|w| w == needle),
        "rehashed with the new parameters"
    );
    let server = TestServer::start(dir, config, &[]).await;
    server.login_ok("erin@example.com").await;
}

#[tokio::test]
async fn in_flight_logins_finish_when_sigterm_arrives() {
    // Real argon2 defaults, so each login takes a noticeable time.
    // Request starts are logged (tower_http at debug), so the test can see
    // the logins arrive before it sends SIGTERM.
    let mut server = TestServer::spawn_with_env(
        RELAXED_LIMITS,
        &[("AUTHD_LOG__LEVEL", "info,tower_http=debug")],
    )
    .await;
    server.register_ok("frank@example.com").await;
    let logins: Vec<_> = (0..6)
        .map(|_| {
            let request = server
                .post("/login")
                .json(&json!({"email": "frank@example.com", "password": GOOD_PASSWORD}));
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    let started = |server: &TestServer| {
        server
            .logs()
            .lines()
            .filter(|l| l.contains("started processing request") && l.contains("\"/login\""))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while started(&server) < 6 {
        assert!(std::time::Instant::now() < deadline, "{}", server.logs());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Six arrived; two hash at a time, so most are still in flight now.
    assert!(
        server.audit_events("type=user.login").await.len() < 6,
        "the logins are still running when SIGTERM arrives"
    );
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, server)
    })
    .await
    .expect("join");
    for login in logins {
        assert_eq!(
            login.await.expect("join").expect("response"),
            StatusCode::OK
        );
    }
    assert!(status.0.success(), "{:?}", status.0);
}
