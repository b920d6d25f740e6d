//! Account recovery and verified emails (SPEC §3d), through the real
//! binary and a real SMTP server on loopback (`MailSink`): the links are
//! read out of the mails that arrive and followed like a person would.

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_error, current_step, enroll_totp, link_token, totp_at, MailSink, TestServer,
    FAST_HASHING, GOOD_PASSWORD, RELAXED_LIMITS,
};

const NEW_PASSWORD: &str = "Battery-Staple-97";

/// A mail sink and a server that mails to it (`extra` continues the
/// `[limits]` section); `None` without aiosmtpd outside CI.
async fn start_with_mail(extra: &str) -> Option<(MailSink, TestServer)> {
    let sink = MailSink::start()?;
    let server = server_with_mail(&sink, extra).await;
    Some((sink, server))
}

/// Fast hashing, relaxed sign-in limits, mail to `sink`, and `extra`.
async fn server_with_mail(sink: &MailSink, extra: &str) -> TestServer {
    TestServer::spawn_with(&format!(
        "{FAST_HASHING}\n{RELAXED_LIMITS}{extra}\n{}",
        sink.config()
    ))
    .await
}

async fn forgot(server: &TestServer, email: &str) -> reqwest::Response {
    server
        .post("/password/forgot")
        .json(&json!({ "email": email }))
        .send()
        .await
        .expect("forgot")
}

async fn reset(server: &TestServer, token: &str, password: &str) -> reqwest::Response {
    server
        .post("/password/reset")
        .json(&json!({ "token": token, "new_password": password }))
        .send()
        .await
        .expect("reset")
}

/// Sets [`NEW_PASSWORD`] through the link's token.
async fn reset_ok(server: &TestServer, token: &str) {
    let response = reset(server, token, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

/// The link's token no longer sets any password.
async fn assert_link_refused(server: &TestServer, token: &str) {
    let response = reset(server, token, "Another-Password-55").await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_link").await;
}

/// A user the operator created with a verified email (so no verification
/// mail is sent: the sink sees only what a test asks for).
async fn verified_user(server: &TestServer, email: &str) -> Value {
    let (status, body) = operator(
        server,
        reqwest::Method::POST,
        "/v1/users",
        json!({"email": email, "password": GOOD_PASSWORD, "email_verified": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["email_verified"], true);
    body
}

/// An operator call: the status and the JSON body.
async fn operator(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = server.operator_json(method, path, body).await;
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("claims")
}

#[tokio::test]
async fn the_mail_sent_at_registration_verifies_the_email_once() {
    let Some((sink, server)) = start_with_mail("").await else {
        return;
    };
    let profile = server.register_ok("vera@example.com").await;
    assert_eq!(profile["email_verified"], false);

    let mails = sink.wait_for("vera@example.com", 1).await;
    assert_eq!(mails[0]["subject"], "Confirm your email address");
    let body = mails[0]["body"].as_str().expect("body");
    assert!(
        body.contains("http://localhost:9090"),
        "names public_url: {body}"
    );
    let token = link_token(body, "verify-email");

    // The link's page is the UI's, and it confirms with a POST.
    let page = server.get("/verify-email").send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let confirmed = server
        .post("/email/verify")
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("verify");
    assert_eq!(confirmed.status(), StatusCode::NO_CONTENT);

    let tokens = server
        .login(json!({"email": "vera@example.com", "password": GOOD_PASSWORD, "scope": "openid email", "client_id": "app"}))
        .await
        .json::<Value>()
        .await
        .expect("json");
    let me: Value = server
        .bearer(tokens["access_token"].as_str().expect("access"))
        .get("/api/account")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["email_verified"], true);
    let id_token = claims_of(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(id_token["email_verified"], true);
    let id = profile["id"].as_str().expect("id");
    assert_eq!(
        server.operator_get(&format!("/v1/users/{id}")).await["email_verified"],
        true
    );

    // Used once: the same link again, or a forged one, is refused.
    let again = server
        .post("/email/verify")
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("verify");
    assert_error(again, StatusCode::BAD_REQUEST, "invalid_link").await;
    let forged = format!("{}0", &token[..token.len() - 1]);
    let forged = server
        .post("/email/verify")
        .json(&json!({ "token": forged }))
        .send()
        .await
        .expect("verify");
    assert_error(forged, StatusCode::BAD_REQUEST, "invalid_link").await;

    let sent = server.audit_events("type=email.sent").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["details"]["purpose"], "email_verification");
    assert!(!sent[0].to_string().contains(&token[20..60]));
    assert_eq!(
        server.audit_events("type=user.email_verified").await.len(),
        1
    );
}

#[tokio::test]
async fn a_user_can_ask_for_another_verification_mail() {
    let Some((sink, server)) = start_with_mail("").await else {
        return;
    };
    server.register_ok("again@example.com").await;
    sink.wait_for("again@example.com", 1).await;
    let session = server.session_token("again@example.com").await;
    let asked = server
        .bearer(&session)
        .post("/api/account/email/verify-request", json!({}))
        .await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let token = sink
        .token_in_mail("again@example.com", 2, "verify-email")
        .await;
    let confirmed = server
        .post("/email/verify")
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("verify");
    assert_eq!(confirmed.status(), StatusCode::NO_CONTENT);
    let asked = server
        .bearer(&session)
        .post("/api/account/email/verify-request", json!({}))
        .await;
    assert_error(asked, StatusCode::CONFLICT, "conflict").await;
}

#[tokio::test]
async fn a_reset_ends_every_session_clears_the_lockout_and_keeps_the_second_factor() {
    // `extra` continues RELAXED_LIMITS' [limits] section.
    let Some((sink, server)) = start_with_mail("lockout_threshold = 3\n").await else {
        return;
    };
    verified_user(&server, "rita@example.com").await;
    let secret = enroll_totp(&server, "rita@example.com").await;

    // A signed-in session with a refresh token, from before the reset.
    let step: Value = server
        .login(json!({"email": "rita@example.com", "password": GOOD_PASSWORD}))
        .await
        .json()
        .await
        .expect("json");
    let tokens: Value = server
        .post("/mfa/challenge")
        .json(
            &json!({"mfa_token": step["mfa_token"], "code": totp_at(&secret, current_step() + 1)}),
        )
        .send()
        .await
        .expect("mfa")
        .json()
        .await
        .expect("json");
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    assert_eq!(server.account_status(&access).await, StatusCode::OK);

    // Locked out by wrong guesses: the right password no longer works.
    for _ in 0..3 {
        let wrong = server
            .login(json!({"email": "rita@example.com", "password": "Wrong-Password-1"}))
            .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = server
        .login(json!({"email": "rita@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(locked.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(
        forgot(&server, "rita@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    let mails = sink.wait_for("rita@example.com", 1).await;
    assert_eq!(mails[0]["subject"], "Reset your password");
    let token = link_token(mails[0]["body"].as_str().expect("body"), "reset-password");
    reset_ok(&server, &token).await;

    // Every session and refresh family ended.
    assert_eq!(
        server.account_status(&access).await,
        StatusCode::UNAUTHORIZED
    );
    assert_error(
        server.refresh(&refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // The old password is gone; the new one works at once (no lockout)
    // and still leads to the second factor.
    let old = server
        .login(json!({"email": "rita@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = server
        .login(json!({"email": "rita@example.com", "password": NEW_PASSWORD}))
        .await;
    assert_eq!(new.status(), StatusCode::ACCEPTED);
    let step: Value = new.json().await.expect("json");
    assert_eq!(step["mfa_required"], true);

    // The link died with its use.
    assert_link_refused(&server, &token).await;
    let audited = server.audit_events("type=user.password_reset").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["reason"], "mail");
}

#[tokio::test]
async fn a_reset_applies_the_password_policy_and_history_and_keeps_the_link_until_then() {
    let Some((sink, server)) = start_with_mail("").await else {
        return;
    };
    let (status, body) = operator(
        &server,
        reqwest::Method::PATCH,
        "/v1/orgs/default",
        json!({"password_policy": {"history_count": 3}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    verified_user(&server, "hank@example.com").await;
    forgot(&server, "hank@example.com").await;
    let token = sink
        .token_in_mail("hank@example.com", 1, "reset-password")
        .await;

    let weak = assert_error(
        reset(&server, &token, "short").await,
        StatusCode::BAD_REQUEST,
        "invalid_password",
    )
    .await;
    assert!(!weak["violations"].as_array().expect("list").is_empty());
    let reused = assert_error(
        reset(&server, &token, GOOD_PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_password",
    )
    .await;
    assert_eq!(reused["violations"], json!(["reused_password"]));
    reset_ok(&server, &token).await;
}

#[tokio::test]
async fn a_password_change_kills_an_outstanding_link() {
    let Some((sink, server)) = start_with_mail("").await else {
        return;
    };
    verified_user(&server, "carl@example.com").await;
    forgot(&server, "carl@example.com").await;
    let token = sink
        .token_in_mail("carl@example.com", 1, "reset-password")
        .await;
    let session = server.session_token("carl@example.com").await;
    let changed = server
        .bearer(&session)
        .post(
            "/api/account/password",
            json!({"current_password": GOOD_PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_link_refused(&server, &token).await;
}

#[tokio::test]
async fn an_expired_link_is_refused() {
    let Some(sink) = MailSink::start() else {
        return;
    };
    let (server, clock) = TestServer::in_process(&format!(
        "{FAST_HASHING}\n{RELAXED_LIMITS}\n{}",
        sink.config()
    ))
    .await;
    verified_user(&server, "otto@example.com").await;
    forgot(&server, "otto@example.com").await;
    let token = sink
        .token_in_mail("otto@example.com", 1, "reset-password")
        .await;
    // The default TTL is 30 minutes.
    clock.advance(30 * 60 + 1);
    assert_link_refused(&server, &token).await;
}

#[tokio::test]
async fn past_the_limits_the_answer_is_the_same_and_nothing_is_sent() {
    // Addresses come from X-Forwarded-For, so each part of the test has its own.
    let Some((sink, server)) = start_with_mail(
        "\n[server]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    )
    .await
    else {
        return;
    };
    verified_user(&server, "lim@example.com").await;
    verified_user(&server, "other@example.com").await;
    let forgot_from = |ip: &'static str, email: &'static str| {
        server
            .post("/password/forgot")
            .header("x-forwarded-for", ip)
            .json(&json!({ "email": email }))
            .send()
    };
    // Per account (3 an hour), each request from another address.
    let mut bodies = Vec::new();
    for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"] {
        let response = forgot_from(ip, "lim@example.com").await.expect("forgot");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        bodies.push(response.text().await.expect("body"));
    }
    // Per address (5 an hour): the sixth from one address sends nothing.
    for _ in 0..5 {
        forgot_from("10.0.1.1", "nobody@example.com")
            .await
            .expect("forgot");
    }
    let response = forgot_from("10.0.1.1", "other@example.com")
        .await
        .expect("forgot");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    bodies.push(response.text().await.expect("body"));
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "{bodies:?}"
    );

    // A request within the limits still mails, and only then do we count.
    forgot_from("10.0.2.1", "other@example.com")
        .await
        .expect("forgot");
    sink.wait_for("other@example.com", 1).await;
    // Each mail leaves within a random 250 ms of its request; give the
    // earlier ones time to arrive, had they been sent.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.wait_for("lim@example.com", 3).await.len(), 3);
    assert_eq!(sink.wait_for("other@example.com", 1).await.len(), 1);
}

#[tokio::test]
async fn without_smtp_nothing_is_sent_and_the_ui_says_to_ask_the_operator() {
    let server = TestServer::spawn_fast().await;
    let info = server.get_json("/ui/api/info").await;
    assert_eq!(info["self_service_recovery"], false);
    server.register_ok("nomail@example.com").await;
    let response = forgot(&server, "nomail@example.com").await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let session = server.session_token("nomail@example.com").await;
    let asked = server
        .bearer(&session)
        .post("/api/account/email/verify-request", json!({}))
        .await;
    assert_error(asked, StatusCode::CONFLICT, "conflict").await;
    // The sign-up and the request above are audited; no mail was tried.
    assert_eq!(server.audit_events("type=user.created").await.len(), 1);
    assert!(server.audit_events("type=email.sent").await.is_empty());
    assert!(server.audit_events("type=email.failed").await.is_empty());

    let Some(sink) = MailSink::start() else {
        return;
    };
    let with_mail = server_with_mail(&sink, "").await;
    assert_eq!(
        with_mail.get_json("/ui/api/info").await["self_service_recovery"],
        true
    );
}

#[tokio::test]
async fn an_operator_recovery_link_works_once_and_its_audit_holds_no_link() {
    let server = TestServer::spawn_fast().await;
    let (status, user) = operator(
        &server,
        reqwest::Method::POST,
        "/v1/users",
        json!({"email": "olga@example.com", "password": GOOD_PASSWORD, "email_verified": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["email_verified"], true);
    let id = user["id"].as_str().expect("id");
    let session = server.session_token("olga@example.com").await;

    let (status, link) = operator(
        &server,
        reqwest::Method::POST,
        &format!("/v1/users/{id}/recovery-link"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let url = link["url"].as_str().expect("url");
    assert!(
        url.starts_with("http://localhost:9090/reset-password#token="),
        "{url}"
    );
    assert!(link["expires_at"].as_str().is_some());
    let token = link_token(url, "reset-password");
    reset_ok(&server, &token).await;
    assert_eq!(
        server.account_status(&session).await,
        StatusCode::UNAUTHORIZED
    );
    assert_link_refused(&server, &token).await;
    let audited = server.audit_events("type=user.recovery_link_created").await;
    assert_eq!(audited.len(), 1);
    assert!(!audited[0].to_string().contains(&token[20..60]));
    let reset_audit = server.audit_events("type=user.password_reset").await;
    assert_eq!(reset_audit[0]["reason"], "operator");

    let (status, unknown) = operator(
        &server,
        reqwest::Method::POST,
        "/v1/users/00000000-0000-4000-8000-000000000000/recovery-link",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");

    // A disabled account could not use the link: refused up front.
    let (status, _) = operator(
        &server,
        reqwest::Method::PATCH,
        &format!("/v1/users/{id}"),
        json!({"disabled": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, refused) = operator(
        &server,
        reqwest::Method::POST,
        &format!("/v1/users/{id}/recovery-link"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
}

#[tokio::test]
async fn a_relay_that_fails_is_retried_and_audited_off_the_request_path() {
    let dead_port = crate::helpers::free_port();
    let server = TestServer::spawn_with(&format!(
        "{FAST_HASHING}\n{RELAXED_LIMITS}\n[smtp]\nhost = \"127.0.0.1\"\nport = {dead_port}\nsecurity = \"none\"\nfrom = \"authd@example.com\"\nmax_attempts = 2\nbackoff = \"1s\"\n"
    ))
    .await;
    let started = Instant::now();
    server.register_ok("lost@example.com").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let failed = server.audit_events("type=email.failed").await;
        if failed.iter().any(|event| event["details"]["final"] == true) {
            assert_eq!(failed.len(), 2, "{failed:?}");
            assert_eq!(failed[0]["details"]["reason"], "connection");
            break;
        }
        assert!(Instant::now() < deadline, "no final failure: {failed:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!server.logs().contains("lost@example.com"));
}

/// Median of the durations, in microseconds.
fn median(mut samples: Vec<u128>) -> u128 {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn forgot_password_answers_alike_for_known_and_unknown_emails() {
    let Some((sink, server)) = start_with_mail(
        "recovery_per_ip_per_hour = 100000\nrecovery_per_account_per_hour = 100000\n",
    )
    .await
    else {
        return;
    };
    verified_user(&server, "known@example.com").await;

    let known = forgot(&server, "known@example.com").await;
    let unknown = forgot(&server, "unknown@example.com").await;
    assert_eq!(known.status(), StatusCode::ACCEPTED);
    assert_eq!(known.status(), unknown.status());
    let known_headers: Vec<_> = ["content-type", "content-length"]
        .iter()
        .map(|h| known.headers().get(*h).cloned())
        .collect();
    let unknown_headers: Vec<_> = ["content-type", "content-length"]
        .iter()
        .map(|h| unknown.headers().get(*h).cloned())
        .collect();
    assert_eq!(known_headers, unknown_headers);
    assert_eq!(
        known.bytes().await.expect("body"),
        unknown.bytes().await.expect("body")
    );
    // The known email really is mailed, so the timing compares real work.
    sink.wait_for("known@example.com", 1).await;

    // Interleaved in a shuffled order, so that background work after one
    // request (the mail of a known email) falls on either kind alike.
    let mut order: Vec<bool> = (0..600).map(|n| n % 2 == 0).collect();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for i in (1..order.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (mut known_times, mut unknown_times) = (Vec::new(), Vec::new());
        for (n, &is_known) in order.iter().enumerate() {
            let email = if is_known {
                "known@example.com".to_owned()
            } else {
                format!("unknown-{n}@example.com")
            };
            let started = Instant::now();
            let response = forgot(&server, &email).await;
            let _ = response.bytes().await;
            let elapsed = started.elapsed().as_micros();
            if is_known {
                known_times.push(elapsed);
            } else {
                unknown_times.push(elapsed);
            }
        }
        let (known_median, unknown_median) = (median(known_times), median(unknown_times));
        eprintln!("forgot-password medians: known {known_median} µs, unknown {unknown_median} µs");
        let (low, high) = (
            known_median.min(unknown_median),
            known_median.max(unknown_median),
        );
        // Within 5%, or 250 µs: a known email's real work (reading the
        // account, writing the token with its commit, the mail) happens
        // later and off the request path; on the path it would add a
        // commit (0.5 ms on PostgreSQL, an fsync on a file) or more. The
        // floor is for CI, where this runs beside the rest of the suite
        // on 2 cores: there a hit of the email index (against a miss)
        // came out 100-200 µs slower in 3 attempts of 3, while idle the
        // two are within 1-2 %.
        let close = (high - low) * 100 <= low * 5 || high - low <= 250;
        if close {
            break;
        }
        assert!(
            attempts < 3,
            "medians differ: known {known_median} µs, unknown {unknown_median} µs"
        );
    }
}

#[test]
fn check_config_validates_smtp_and_masks_its_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let check = |smtp: &str, password: Option<&str>| {
        std::fs::write(&config, format!("[smtp]\n{smtp}")).expect("write");
        let mut command = std::process::Command::new(crate::helpers::AUTHD);
        command.arg("--config").arg(&config).arg("check-config");
        if let Some(password) = password {
            command.env("AUTHD_SMTP__PASSWORD", password);
        }
        let (status, stdout, stderr) = crate::helpers::run(&mut command, None);
        (status.success(), format!("{stdout}{stderr}"))
    };
    let good =
        "host = \"mail.example.com\"\nfrom = \"authd <authd@example.com>\"\nusername = \"authd\"\n";
    let (ok, output) = check(good, Some("hunter2-secret"));
    assert!(ok, "{output}");
    assert!(output.contains("password = \"[redacted]\""), "{output}");
    assert!(!output.contains("hunter2-secret"), "{output}");
    assert!(output.contains("port = 587"), "{output}");
    let (ok, output) = check(
        "host = \"mail.example.com\"\nfrom = \"a@example.com\"\nsecurity = \"none\"\n",
        None,
    );
    assert!(ok, "{output}");
    assert!(output.contains("smtp.security is \"none\""), "{output}");

    for (smtp, password, key) in [
        (good, None, "smtp.password"),
        ("host = \"mail.example.com\"\nfrom = \"not an address\"\n", None, "smtp.from"),
        ("host = \"smtp://mail.example.com:587\"\nfrom = \"a@example.com\"\n", None, "smtp.host"),
        (
            "host = \"mail.example.com\"\nfrom = \"a@example.com\"\nsecurity = \"none\"\nusername = \"u\"\n",
            Some("p"),
            "smtp.security",
        ),
        ("host = \"mail.example.com\"\nfrom = \"a@example.com\"\nsecurity = \"ssl\"\n", None, "security"),
    ] {
        let (ok, output) = check(smtp, password);
        assert!(!ok, "{smtp} should fail");
        assert!(output.contains(key), "{smtp}: {output}");
    }
}
