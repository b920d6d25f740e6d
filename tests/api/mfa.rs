//! TOTP MFA through the real server, with codes computed here by an
//! independent RFC 6238 implementation (HMAC-SHA-1 written out below, not the
//! server's totp-rs).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    current_step, mode_of, totp_at, TestServer, FAST_HASHING, GOOD_PASSWORD, RELAXED_LIMITS,
};

#[test]
fn the_independent_totp_matches_rfc_6238() {
    // RFC 6238 appendix B, SHA-1 seed "12345678901234567890", T = 59 s.
    let secret = base32::encode(
        base32::Alphabet::Rfc4648 { padding: false },
        b"12345678901234567890",
    );
    assert_eq!(totp_at(&secret, 59 / 30), "287082");
    assert_eq!(totp_at(&secret, 1_111_111_109 / 30), "081804");
}

/// Registers, logs in, enrolls and verifies TOTP (with the previous step's
/// code); returns (secret, recovery codes).
pub(crate) async fn enrolled(server: &TestServer, email: &str) -> (String, Vec<String>) {
    enrolled_at(server, email, current_step).await
}

/// [`enrolled`] for a server whose TOTP step `step` tells.
pub(crate) async fn enrolled_at(
    server: &TestServer,
    email: &str,
    step: impl Fn() -> u64,
) -> (String, Vec<String>) {
    server.register_ok(email).await;
    let tokens = server.login_ok(email).await;
    let access = tokens["access_token"].as_str().expect("access");
    let enrollment: Value = server
        .bearer(access)
        .post("/api/account/mfa/enroll", json!({}))
        .await
        .json()
        .await
        .expect("json");
    let secret = enrollment["secret"].as_str().expect("secret").to_owned();
    // The previous step's code, so the current one is left for a login. A
    // step that ended between our reading of the clock and the server's
    // makes it two steps old: then once more with the new step.
    let mut response = None;
    for _ in 0..2 {
        let attempt = server
            .bearer(access)
            .post(
                "/api/account/mfa/verify",
                json!({"code": totp_at(&secret, step() - 1)}),
            )
            .await;
        if attempt.status() == StatusCode::OK {
            response = Some(attempt);
            break;
        }
    }
    let response = response.expect("the enrollment is verified");
    let body: Value = response.json().await.expect("json");
    let codes = body["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    (secret, codes)
}

pub(crate) async fn mfa_token(server: &TestServer, email: &str) -> String {
    let response = server
        .login(json!({"email": email, "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["mfa_required"], true);
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    body["mfa_token"].as_str().expect("mfa token").to_owned()
}

async fn challenge(server: &TestServer, body: Value) -> reqwest::Response {
    server
        .post("/mfa/challenge")
        .json(&body)
        .send()
        .await
        .expect("challenge")
}

#[tokio::test]
async fn enrollment_is_inactive_until_a_code_confirms_it() {
    let server = TestServer::spawn_fast().await;
    server.register_ok("amy@example.com").await;
    let tokens = server.login_ok("amy@example.com").await;
    let access = tokens["access_token"].as_str().expect("access");
    let response = server
        .bearer(access)
        .post("/api/account/mfa/enroll", json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let enrollment: Value = response.json().await.expect("json");
    let secret = enrollment["secret"].as_str().expect("secret");
    assert_eq!(secret.len(), 32, "160-bit seed in base32");
    let uri = enrollment["otpauth_uri"].as_str().expect("uri");
    assert!(
        uri.starts_with("otpauth://totp/authd:amy%40example.com?"),
        "{uri}"
    );
    assert!(
        uri.contains(&format!("secret={secret}")) && uri.contains("issuer=authd"),
        "{uri}"
    );
    assert!(enrollment["qr_svg"].as_str().expect("svg").contains("<svg"));

    server.login_ok("amy@example.com").await;
    let response = server
        .bearer(access)
        .post("/api/account/mfa/verify", json!({"code": "000000"}))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = server
        .bearer(access)
        .post(
            "/api/account/mfa/verify",
            json!({"code": totp_at(secret, current_step())}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let codes: Value = response.json().await.expect("json");
    let codes = codes["recovery_codes"].as_array().expect("codes");
    assert_eq!(codes.len(), 10);
    let profile: Value = server
        .get("/api/account")
        .bearer_auth(access)
        .send()
        .await
        .expect("profile")
        .json()
        .await
        .expect("json");
    assert_eq!(profile["mfa_enrolled"], true);
    assert_eq!(server.audit_events("type=mfa.enrolled").await.len(), 1);

    // The seed is sealed at rest, under a key that is not in the database.
    let (dir, _) = server.stop();
    let database = crate::helpers::stored_bytes(&dir.path().join("data"));
    assert!(!database
        .windows(secret.len())
        .any(|w| w == secret.as_bytes()));
    let seed = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, secret).expect("seed");
    assert!(!database.windows(seed.len()).any(|w| w == seed.as_slice()));
    for code in codes {
        let code = code.as_str().expect("code");
        assert!(
            !database.windows(code.len()).any(|w| w == code.as_bytes()),
            "recovery codes are hashed"
        );
    }
    assert_eq!(mode_of(&dir.path().join("data/server.secret")), 0o600);
}

#[tokio::test]
async fn login_takes_the_mfa_step_and_each_code_is_good_once() {
    let server = TestServer::spawn_fast().await;
    let (secret, _) = enrolled(&server, "bea@example.com").await;

    let token = mfa_token(&server, "bea@example.com").await;
    let code = totp_at(&secret, current_step());
    let response = challenge(&server, json!({"mfa_token": token, "code": code})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.expect("json");
    let access = tokens["access_token"].as_str().expect("access");
    assert!(tokens["refresh_token"].is_string());
    let sessions: Value = server
        .get("/api/account/sessions")
        .bearer_auth(access)
        .send()
        .await
        .expect("s")
        .json()
        .await
        .expect("json");
    let current = sessions["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|s| s["current"] == true)
        .expect("current");
    assert_eq!(current["mfa_verified"], true);

    // The mfa_token is single-use.
    let response = challenge(
        &server,
        json!({"mfa_token": token, "code": totp_at(&secret, current_step() + 1)}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "invalid_mfa_token"
    );

    // The same code again, in a fresh login: a replay.
    let token = mfa_token(&server, "bea@example.com").await;
    let response = challenge(&server, json!({"mfa_token": token, "code": code})).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "invalid_mfa_code"
    );
    // The next step's code (clock drift of +1 step) is still accepted.
    let response = challenge(
        &server,
        json!({"mfa_token": token, "code": totp_at(&secret, current_step() + 1)}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    // Two steps ahead is outside the window.
    let token = mfa_token(&server, "bea@example.com").await;
    let response = challenge(
        &server,
        json!({"mfa_token": token, "code": totp_at(&secret, current_step() + 3)}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn five_wrong_codes_kill_the_mfa_token() {
    let server = TestServer::spawn_fast().await;
    let (secret, _) = enrolled(&server, "cal@example.com").await;
    let token = mfa_token(&server, "cal@example.com").await;
    for _ in 0..5 {
        let response = challenge(&server, json!({"mfa_token": token, "code": "123456"})).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = challenge(
        &server,
        json!({"mfa_token": token, "code": totp_at(&secret, current_step())}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "invalid_mfa_token"
    );
    assert_eq!(
        server.audit_events("type=mfa.challenge_failed").await.len(),
        5
    );
    let response = challenge(&server, json!({"mfa_token": "forged", "code": "123456"})).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_mfa_token_expires_and_is_single_use() {
    let (server, clock) = TestServer::in_process(&format!(
        "{FAST_HASHING}\n{RELAXED_LIMITS}\n[mfa]\nchallenge_ttl = \"2s\"\n"
    ))
    .await;
    let (secret, codes) =
        enrolled_at(&server, "late@example.com", || clock.now() as u64 / 30).await;
    let token = mfa_token(&server, "late@example.com").await;
    clock.advance(3);
    let response = challenge(
        &server,
        json!({"mfa_token": token, "code": totp_at(&secret, clock.now() as u64 / 30 + 1)}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "invalid_mfa_token"
    );

    // In time it works, and only once.
    let token = mfa_token(&server, "late@example.com").await;
    let body = json!({"mfa_token": token, "recovery_code": codes[0]});
    assert_eq!(challenge(&server, body).await.status(), StatusCode::OK);
    let again = json!({"mfa_token": token, "recovery_code": codes[1]});
    let response = challenge(&server, again).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "invalid_mfa_token"
    );
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let server = TestServer::spawn_fast().await;
    let (_, codes) = enrolled(&server, "dot@example.com").await;
    let token = mfa_token(&server, "dot@example.com").await;
    let response = challenge(
        &server,
        json!({"mfa_token": token, "recovery_code": codes[3].to_uppercase()}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let token = mfa_token(&server, "dot@example.com").await;
    let response = challenge(
        &server,
        json!({"mfa_token": token, "recovery_code": codes[3]}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = challenge(
        &server,
        json!({"mfa_token": token, "recovery_code": codes[4]}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let used = server.audit_events("type=mfa.recovery_code_used").await;
    assert_eq!(used.len(), 2);
    assert_eq!(used[0]["details"]["remaining"], 8);
}

#[tokio::test]
async fn disabling_and_regenerating_need_a_code_or_the_password() {
    let server = TestServer::spawn_fast().await;
    let (secret, old_codes) = enrolled(&server, "eve@example.com").await;
    let token = mfa_token(&server, "eve@example.com").await;
    let tokens: Value = challenge(
        &server,
        json!({"mfa_token": token, "code": totp_at(&secret, current_step())}),
    )
    .await
    .json()
    .await
    .expect("json");
    let access = tokens["access_token"].as_str().expect("access");

    let response = server
        .bearer(access)
        .post(
            "/api/account/mfa/recovery-codes",
            json!({"password": "Wrong-password-1"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = server
        .bearer(access)
        .post(
            "/api/account/mfa/recovery-codes",
            json!({"password": GOOD_PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let fresh: Value = response.json().await.expect("json");
    assert_eq!(fresh["recovery_codes"].as_array().expect("codes").len(), 10);
    let token = mfa_token(&server, "eve@example.com").await;
    let response = challenge(
        &server,
        json!({"mfa_token": token, "recovery_code": old_codes[0]}),
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "old codes are void"
    );

    let response = server
        .client
        .request(Method::DELETE, server.url("/api/account/mfa"))
        .bearer_auth(access)
        .json(&json!({"code": "000000"}))
        .send()
        .await
        .expect("disable");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = server
        .client
        .request(Method::DELETE, server.url("/api/account/mfa"))
        .bearer_auth(access)
        .json(&json!({"password": GOOD_PASSWORD}))
        .send()
        .await
        .expect("disable");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    server.login_ok("eve@example.com").await;
    assert_eq!(server.audit_events("type=mfa.disabled").await.len(), 1);
}

#[tokio::test]
async fn the_control_plane_login_takes_the_otp_in_the_body() {
    let server = TestServer::spawn_fast().await;
    let (secret, _) = enrolled(&server, "fox@example.com").await;
    let login = |body: Value| {
        let request = server.post("/api/v1/auth/login").json(&body);
        async move { request.send().await.expect("login") }
    };
    for body in [
        json!({"email": "fox@example.com", "password": GOOD_PASSWORD}),
        json!({"email": "fox@example.com", "password": GOOD_PASSWORD, "otp": "000000"}),
    ] {
        let response = login(body).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.text().await.expect("body"),
            r#"{"error":"AUTH_FAILED","message":"Authentication failed."}"#
        );
    }
    let response = login(json!({"email": "fox@example.com", "password": GOOD_PASSWORD, "otp": totp_at(&secret, current_step())})).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn set_policy(server: &TestServer, policy: &str) {
    let response = server
        .operator_json(
            Method::PATCH,
            "/v1/orgs/default",
            json!({"mfa_policy": policy}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn status_of(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
) -> (StatusCode, Value) {
    let response = server
        .client
        .request(method, server.url(path))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_required_policy_allows_only_enrollment_until_it_is_done() {
    let server = TestServer::spawn_fast().await;
    set_policy(&server, "required").await;
    server.register_ok("gil@example.com").await;
    let tokens = server.login_ok("gil@example.com").await;
    assert_eq!(tokens["mfa_enrollment_required"], true);
    let access = tokens["access_token"].as_str().expect("access");
    let claims: Value = {
        use base64::Engine;
        let part = access.split('.').nth(1).expect("claims");
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .expect("b64"),
        )
        .expect("json")
    };
    assert_eq!(
        claims["mfa_enrollment_required"], true,
        "the token carries the restriction"
    );

    for (method, path) in [
        (Method::GET, "/api/account/sessions"),
        (Method::POST, "/api/account/sessions/revoke-all"),
        (Method::POST, "/api/account/password"),
        (Method::GET, "/api/v1/org/memberships"),
    ] {
        let (status, body) = status_of(&server, method.clone(), path, access).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(
            body["error"].as_str().map(str::to_lowercase).as_deref(),
            Some("mfa_enrollment_required"),
            "{method} {path}"
        );
    }
    let (status, _) = status_of(&server, Method::GET, "/api/account", access).await;
    assert_eq!(status, StatusCode::OK);

    let (status, enrollment) =
        status_of(&server, Method::POST, "/api/account/mfa/enroll", access).await;
    assert_eq!(status, StatusCode::OK);
    let secret = enrollment["secret"].as_str().expect("secret");
    let response = server
        .bearer(access)
        .post(
            "/api/account/mfa/verify",
            json!({"code": totp_at(secret, current_step())}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = status_of(&server, Method::GET, "/api/account/sessions", access).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "enrollment lifts the restriction on this session"
    );
    // From now on, logins take the MFA step.
    mfa_token(&server, "gil@example.com").await;
}

#[tokio::test]
async fn required_for_admins_restricts_only_admins_and_encouraged_only_hints() {
    let server = TestServer::spawn_fast().await;
    set_policy(&server, "required_for_admins").await;
    server
        .operator_json(
            Method::POST,
            "/v1/users",
            json!({"email": "boss@example.com", "password": GOOD_PASSWORD, "role": "admin"}),
        )
        .await;
    server.register_ok("staff@example.com").await;
    let admin = server.login_ok("boss@example.com").await;
    assert_eq!(admin["mfa_enrollment_required"], true);
    let (status, _) = status_of(
        &server,
        Method::GET,
        "/api/account/sessions",
        admin["access_token"].as_str().expect("a"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let member = server.login_ok("staff@example.com").await;
    assert!(member.get("mfa_enrollment_required").is_none());
    let (status, _) = status_of(
        &server,
        Method::GET,
        "/api/account/sessions",
        member["access_token"].as_str().expect("m"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    set_policy(&server, "encouraged").await;
    let hinted = server.login_ok("staff@example.com").await;
    assert_eq!(hinted["mfa_enrollment_encouraged"], true);
    let (status, _) = status_of(
        &server,
        Method::GET,
        "/api/account/sessions",
        hinted["access_token"].as_str().expect("h"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "encouraged is only a hint");
}

#[tokio::test]
async fn the_login_step_takes_one_step_of_drift_either_way_and_each_step_once() {
    let (server, clock) =
        TestServer::in_process(&format!("{FAST_HASHING}\n{RELAXED_LIMITS}")).await;
    let step = clock.now() as u64 / 30;
    // Enrollment spends the code of `step - 1`.
    let (secret, _) = enrolled_at(&server, "drift@example.com", || step).await;
    let answer = |code_step: u64| {
        let (server, secret) = (&server, &secret);
        async move {
            let token = mfa_token(server, "drift@example.com").await;
            challenge(
                server,
                json!({"mfa_token": token, "code": totp_at(secret, code_step)}),
            )
            .await
            .status()
        }
    };
    assert_eq!(
        answer(step - 2).await,
        StatusCode::UNAUTHORIZED,
        "two steps back"
    );
    assert_eq!(
        answer(step + 2).await,
        StatusCode::UNAUTHORIZED,
        "two steps ahead"
    );
    assert_eq!(answer(step + 1).await, StatusCode::OK, "one step ahead");
    assert_eq!(
        answer(step).await,
        StatusCode::UNAUTHORIZED,
        "older than the last one used"
    );
    // A minute on, `step + 1` is one step back and already spent.
    clock.advance(60);
    assert_eq!(answer(step + 1).await, StatusCode::UNAUTHORIZED, "spent");
    assert_eq!(answer(step + 2).await, StatusCode::OK, "the current step");
    assert_eq!(answer(step + 3).await, StatusCode::OK, "one step ahead");
}
