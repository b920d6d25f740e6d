//! The attacks of the security review (issue 17) on the sign-in path,
//! replayed through the real server: org policies crossed with
//! `X-Active-Org-Id`, second factors and step-up checks guessed without
//! limit, locks that never end or break automation, an org admin reaching
//! beyond their org, unbounded sign-ups and sessions, dodgeable limiter
//! keys, and a session that could not log out.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_error, call, current_step, totp_at, TestServer, FAST_HASHING, GOOD_PASSWORD,
    RELAXED_LIMITS,
};
use crate::mfa::{enrolled, mfa_token};

/// The default per-account limit (5 a minute) with the address limits out
/// of the way: one client may try as many accounts as it likes.
fn per_account_limit_only() -> String {
    format!(
        "{FAST_HASHING}\n[limits]\nlogin_per_ip_per_min = 100000\nregister_per_ip_per_min = 100000\n"
    )
}

/// Limits out of the way except the lock: `threshold` failures lock for
/// `duration`.
fn lock_after(threshold: u32, duration: &str) -> String {
    format!(
        "{FAST_HASHING}\n[limits]\nlogin_per_ip_per_min = 100000\nlogin_per_account_per_min = 100000\n\
         register_per_ip_per_min = 100000\nlockout_threshold = {threshold}\nlockout_duration = \"{duration}\"\n"
    )
}

async fn create_org(server: &TestServer, body: Value) -> String {
    let response = server.operator_json(Method::POST, "/v1/orgs", body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let org: Value = response.json().await.expect("json");
    org["id"].as_str().expect("id").to_owned()
}

async fn add_membership(server: &TestServer, user: &str, org: &str, role: &str) {
    let response = server
        .operator_json(
            Method::POST,
            &format!("/v1/users/{user}/memberships"),
            json!({"org": org, "role": role}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn control_plane_login(server: &TestServer, body: Value) -> reqwest::Response {
    server
        .post("/api/v1/auth/login")
        .json(&body)
        .send()
        .await
        .expect("login")
}

async fn control_plane_token(server: &TestServer, body: Value) -> String {
    let response = control_plane_login(server, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_owned()
}

async fn default_org(server: &TestServer) -> String {
    server.operator_get("/v1/orgs/default").await["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[tokio::test]
async fn a_session_acts_in_another_org_only_as_far_as_that_orgs_mfa_policy_allows() {
    let server = TestServer::spawn_fast().await;
    let secure = create_org(
        &server,
        json!({"slug": "secure", "name": "Secure", "mfa_policy": "required"}),
    )
    .await;
    let user = server.register_ok("ada@example.com").await;
    add_membership(&server, user["id"].as_str().expect("id"), "secure", "admin").await;

    // Password only, into the default org, which does not ask for a factor.
    let token = server.session_token("ada@example.com").await;
    let default = default_org(&server).await;
    let home = call(
        &server,
        Method::GET,
        "/api/v1/auth/api-tokens",
        &token,
        Some(&default),
        None,
    )
    .await;
    assert_eq!(home.status(), StatusCode::OK, "its own org is fine");
    for (method, path, body) in [
        (Method::GET, "/api/v1/users", None),
        (
            Method::POST,
            "/api/v1/auth/api-tokens",
            Some(json!({"name": "x", "scopes": ["users.read"], "expires_in_days": 180})),
        ),
    ] {
        let response = call(&server, method, path, &token, Some(&secure), body).await;
        assert_error(response, StatusCode::FORBIDDEN, "MFA_ENROLLMENT_REQUIRED").await;
    }
}

#[tokio::test]
async fn every_org_of_a_user_caps_all_of_their_sessions() {
    let server = TestServer::spawn_fast().await;
    create_org(
        &server,
        json!({"slug": "tight", "name": "Tight", "max_sessions_per_user": 2}),
    )
    .await;
    let user = server.register_ok("bo@example.com").await;
    add_membership(&server, user["id"].as_str().expect("id"), "tight", "admin").await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        // Logins into the default org, which has no cap of its own.
        let set = server.login_ok("bo@example.com").await;
        tokens.push(set["access_token"].as_str().expect("access").to_owned());
    }
    let status = |token: String| {
        let server = &server;
        async move { server.bearer(&token).get("/api/account").await.status() }
    };
    // Sessions begun in the same second are equally old: one of them ends.
    let mut ended = 0;
    for token in &tokens[..2] {
        if status(token.clone()).await == StatusCode::UNAUTHORIZED {
            ended += 1;
        }
    }
    assert_eq!(ended, 1, "one of the older sessions ended");
    assert_eq!(
        status(tokens[2].clone()).await,
        StatusCode::OK,
        "the new one lives"
    );
}

#[tokio::test]
async fn sessions_are_capped_per_user_by_default_the_oldest_ending() {
    let server = TestServer::spawn_with(&format!(
        "{FAST_HASHING}\n{RELAXED_LIMITS}\n[sessions]\nmax_per_user = 3\n"
    ))
    .await;
    server.register_ok("cy@example.com").await;
    let mut tokens = Vec::new();
    for _ in 0..4 {
        let set = server.login_ok("cy@example.com").await;
        tokens.push(set["access_token"].as_str().expect("access").to_owned());
    }
    let mut live = Vec::new();
    for token in &tokens {
        let response = server.bearer(token).get("/api/account").await;
        live.push(response.status() == StatusCode::OK);
    }
    // Sessions begun in the same second are equally old: one of them ends.
    assert_eq!(live.iter().filter(|l| **l).count(), 3, "{live:?}");
    assert!(live[3], "the newest lives");
    let revoked = server.audit_events("type=session.revoked").await;
    assert!(
        revoked.iter().any(|e| e["reason"] == "max_sessions"),
        "{revoked:?}"
    );
}

/// A code that is not valid now (nor one step either side).
fn wrong_code(secret: &str) -> String {
    let now = current_step();
    let valid: Vec<String> = (now - 1..=now + 1).map(|s| totp_at(secret, s)).collect();
    (0..)
        .map(|n: u32| format!("{:06}", (100_003 + n * 7) % 1_000_000))
        .find(|code| !valid.contains(code))
        .expect("a wrong code")
}

#[tokio::test]
async fn wrong_codes_are_throttled_per_account_across_fresh_mfa_tokens() {
    let server = TestServer::spawn_with(&per_account_limit_only()).await;
    let (secret, _) = enrolled(&server, "dee@example.com").await;
    let wrong = wrong_code(&secret);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        // A right password brings a new mfa_token, never a new budget.
        let token = mfa_token(&server, "dee@example.com").await;
        for _ in 0..2 {
            let response = server
                .post("/mfa/challenge")
                .json(&json!({"mfa_token": token, "code": wrong}))
                .send()
                .await
                .expect("challenge");
            statuses.push(response.status());
        }
    }
    assert_eq!(
        statuses[..5],
        [StatusCode::UNAUTHORIZED; 5],
        "five wrong codes are answered"
    );
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    // The right code is refused too while the limit holds.
    let token = mfa_token(&server, "dee@example.com").await;
    let response = server
        .post("/mfa/challenge")
        .json(&json!({"mfa_token": token, "code": totp_at(&secret, current_step())}))
        .send()
        .await
        .expect("challenge");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn wrong_codes_lock_the_account_on_both_login_apis() {
    let server = TestServer::spawn_with(&lock_after(4, "15m")).await;
    let (secret, _) = enrolled(&server, "eve@example.com").await;
    let wrong = wrong_code(&secret);
    // Two wrong codes at the mfa_token step, two in the control-plane login.
    let token = mfa_token(&server, "eve@example.com").await;
    for _ in 0..2 {
        let response = server
            .post("/mfa/challenge")
            .json(&json!({"mfa_token": token, "code": wrong}))
            .send()
            .await
            .expect("challenge");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    for _ in 0..2 {
        let response = control_plane_login(
            &server,
            json!({"email": "eve@example.com", "password": GOOD_PASSWORD, "otp": wrong}),
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert!(
        server
            .audit_events("type=user.locked")
            .await
            .iter()
            .any(|e| e["reason"] == "too_many_second_factor_failures"),
        "the fourth wrong code locked the account"
    );
    // Locked: the right password and the right code get nowhere now.
    let response = control_plane_login(
        &server,
        json!({"email": "eve@example.com", "password": GOOD_PASSWORD, "otp": totp_at(&secret, current_step())}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = server
        .login(json!({"email": "eve@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

#[tokio::test]
async fn step_up_checks_are_limited_like_logins() {
    let server = TestServer::spawn_with(&per_account_limit_only()).await;
    let (secret, _) = enrolled(&server, "fay@example.com").await;
    let wrong = wrong_code(&secret);
    let login = server
        .login(json!({"email": "fay@example.com", "password": GOOD_PASSWORD}))
        .await;
    let token: Value = login.json().await.expect("json");
    let tokens: Value = server
        .post("/mfa/challenge")
        .json(
            &json!({"mfa_token": token["mfa_token"], "code": totp_at(&secret, current_step() + 1)}),
        )
        .send()
        .await
        .expect("challenge")
        .json()
        .await
        .expect("json");
    let access = tokens["access_token"].as_str().expect("access");

    // Codes: disabling MFA and new recovery codes share one count.
    let mut statuses = Vec::new();
    for path in ["/api/account/mfa/recovery-codes", "/api/account/mfa"] {
        for _ in 0..3 {
            let method = if path.ends_with("/mfa") {
                Method::DELETE
            } else {
                Method::POST
            };
            let response = call(
                &server,
                method,
                path,
                access,
                None,
                Some(json!({"code": wrong})),
            )
            .await;
            statuses.push(response.status());
        }
    }
    assert_eq!(statuses[..5], [StatusCode::BAD_REQUEST; 5]);
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");

    // Passwords: the password change's current password.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = call(
            &server,
            Method::POST,
            "/api/account/password",
            access,
            None,
            Some(json!({"current_password": "Wrong-Horse-41", "new_password": "Another-Horse-43"})),
        )
        .await;
        statuses.push(response.status());
    }
    assert_eq!(statuses[..5], [StatusCode::BAD_REQUEST; 5]);
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    assert_eq!(
        server
            .audit_events("type=step_up.failed&limit=50")
            .await
            .len(),
        10
    );
}

#[tokio::test]
async fn a_lock_that_ran_out_forgives_its_failures_and_never_stops_tokens() {
    let (server, clock) = TestServer::in_process(&lock_after(3, "2s")).await;
    server.register_ok("gus@example.com").await;
    let tokens = server.login_ok("gus@example.com").await;
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let session = server.session_token("gus@example.com").await;
    let org = default_org(&server).await;
    let pat = call(
        &server,
        Method::POST,
        "/api/v1/auth/api-tokens",
        &session,
        Some(&org),
        Some(json!({"name": "backup job", "scopes": ["tokens.read"], "expires_in_days": 30})),
    )
    .await;
    assert_eq!(pat.status(), StatusCode::CREATED);
    let pat: Value = pat.json().await.expect("json");
    let pat = pat["token"].as_str().expect("token").to_owned();

    let wrong = json!({"email": "gus@example.com", "password": "Wrong-Horse-41"});
    for _ in 0..3 {
        assert_eq!(
            server.login(wrong.clone()).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let right = json!({"email": "gus@example.com", "password": GOOD_PASSWORD});
    assert_eq!(
        server.login(right.clone()).await.status(),
        StatusCode::UNAUTHORIZED,
        "locked"
    );

    // An anonymous guesser locked the login, not the owner's automation.
    let listed = call(
        &server,
        Method::GET,
        "/api/v1/auth/api-tokens",
        &pat,
        Some(&org),
        None,
    )
    .await;
    assert_eq!(listed.status(), StatusCode::OK, "the PAT still works");
    let refreshed = server
        .post("/oauth/token")
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .expect("refresh");
    assert_eq!(
        refreshed.status(),
        StatusCode::OK,
        "the refresh token still works"
    );

    // The lock runs out; one more wrong guess must not lock it again.
    clock.advance(3);
    assert_eq!(server.login(wrong).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.login(right).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_org_admin_sees_and_disables_a_member_in_their_org_only() {
    let server = TestServer::spawn_fast().await;
    let lab = create_org(&server, json!({"slug": "lab", "name": "Lab"})).await;
    let admin = server
        .operator_json(
            Method::POST,
            "/v1/users",
            json!({"email": "hal@example.com", "password": GOOD_PASSWORD, "org": "lab", "role": "admin"}),
        )
        .await;
    assert_eq!(admin.status(), StatusCode::CREATED);
    // A person of the default org who also joined the lab.
    let member = server.register_ok("ivy@example.com").await;
    let member_id = member["id"].as_str().expect("id").to_owned();
    add_membership(&server, &member_id, "lab", "member").await;
    let elsewhere = server.login_ok("ivy@example.com").await;
    let in_lab = control_plane_token(
        &server,
        json!({"email": "ivy@example.com", "password": GOOD_PASSWORD, "org": "lab"}),
    )
    .await;

    let admin_token = control_plane_token(
        &server,
        json!({"email": "hal@example.com", "password": GOOD_PASSWORD, "org": "lab"}),
    )
    .await;
    let seen: Value = call(
        &server,
        Method::GET,
        &format!("/api/v1/users/{member_id}"),
        &admin_token,
        Some(&lab),
        None,
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(
        seen["memberships"],
        json!([{"org_id": lab, "role": "member"}]),
        "no other org shows"
    );
    assert!(seen.get("orgs").is_none());

    let disabled = call(
        &server,
        Method::POST,
        &format!("/api/v1/users/{member_id}/disable"),
        &admin_token,
        Some(&lab),
        None,
    )
    .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    let disabled: Value = disabled.json().await.expect("json");
    assert_eq!(disabled["disabled"], true);

    // Gone from the lab: its session, and a new login into it.
    let lab_call = call(
        &server,
        Method::GET,
        "/api/v1/org/memberships",
        &in_lab,
        None,
        None,
    )
    .await;
    assert_eq!(lab_call.status(), StatusCode::UNAUTHORIZED);
    let again = control_plane_login(
        &server,
        json!({"email": "ivy@example.com", "password": GOOD_PASSWORD, "org": "lab"}),
    )
    .await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    // Untouched elsewhere: the default-org session and account stand.
    let account = server
        .get("/api/account")
        .bearer_auth(elsewhere["access_token"].as_str().expect("access"))
        .send()
        .await
        .expect("request");
    assert_eq!(account.status(), StatusCode::OK);
    let profile: Value = server.operator_get(&format!("/v1/users/{member_id}")).await;
    assert_eq!(
        profile["disabled"], false,
        "the account itself is not disabled"
    );
    server.login_ok("ivy@example.com").await;

    // The admin can lift it again.
    let enabled = call(
        &server,
        Method::POST,
        &format!("/api/v1/users/{member_id}/enable"),
        &admin_token,
        Some(&lab),
        None,
    )
    .await;
    assert_eq!(enabled.status(), StatusCode::OK);
    control_plane_token(
        &server,
        json!({"email": "ivy@example.com", "password": GOOD_PASSWORD, "org": "lab"}),
    )
    .await;
}

#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let server = TestServer::spawn_with(FAST_HASHING).await;
    for n in 0..10 {
        server.register_ok(&format!("signup{n}@example.com")).await;
    }
    let response = server
        .register(json!({"email": "signup10@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    // Malformed attempts count too: each could have cost a hash.
    let response = server.register(json!({"email": "nope"})).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_login_limiter_counts_the_resolved_account_however_it_is_spelled() {
    let server = TestServer::spawn_with(&per_account_limit_only()).await;
    server.register_ok("jo@example.com").await;
    let org = default_org(&server).await;
    let spellings = [
        json!({"email": "jo@example.com", "password": "Wrong-1a"}),
        json!({"email": "JO@Example.com", "password": "Wrong-1a", "org": "default"}),
        json!({"email": "jo@example.com", "password": "Wrong-1a", "org": org}),
        json!({"email": " jo@example.com ", "password": "Wrong-1a", "org": " default"}),
        json!({"email": "jo@example.com", "password": "Wrong-1a"}),
    ];
    for body in spellings {
        assert_eq!(server.login(body).await.status(), StatusCode::UNAUTHORIZED);
    }
    let response = server
        .login(json!({"email": "jo@example.com", "password": GOOD_PASSWORD, "org": org}))
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn over_long_login_input_is_refused_before_it_is_remembered() {
    let server = TestServer::spawn_fast().await;
    let email = format!("{}@example.com", "a".repeat(60_000));
    let response = server
        .login(json!({"email": email, "password": GOOD_PASSWORD}))
        .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let response = server
        .login(
            json!({"email": "x@example.com", "password": GOOD_PASSWORD, "org": "o".repeat(5_000)}),
        )
        .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let status = server.operator_get("/v1/status").await;
    assert_eq!(status["status"].as_str().unwrap_or("ok"), "ok");
}

#[tokio::test]
async fn an_enrollment_only_session_can_always_log_out() {
    let server = TestServer::spawn_fast().await;
    let patched = server
        .operator_json(
            Method::PATCH,
            "/v1/orgs/default",
            json!({"mfa_policy": "required"}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    server.register_ok("kay@example.com").await;

    // The web UI's cookie session.
    let login = server
        .post("/ui/api/login")
        .json(&json!({"email": "kay@example.com", "password": GOOD_PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), StatusCode::OK);
    let cookies: Vec<String> = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .collect();
    let csrf = cookies
        .iter()
        .find_map(|c| c.split_once("csrf=").map(|(_, v)| v.to_owned()))
        .expect("csrf cookie");
    let logout = server
        .post("/ui/api/logout")
        .header("cookie", cookies.join("; "))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);

    // The control plane's bearer session.
    let token = server.session_token("kay@example.com").await;
    let logout = call(
        &server,
        Method::POST,
        "/api/v1/auth/logout",
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let after = call(&server, Method::GET, "/api/account", &token, None, None).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_password_change_revokes_pats_unless_asked_to_keep_them() {
    let server = TestServer::spawn_fast().await;
    server.register_ok("lou@example.com").await;
    let org = default_org(&server).await;
    let session = server.session_token("lou@example.com").await;
    let mint = || {
        call(
            &server,
            Method::POST,
            "/api/v1/auth/api-tokens",
            &session,
            Some(&org),
            Some(json!({"name": "job", "scopes": ["tokens.read"], "expires_in_days": 30})),
        )
    };
    let pat_works = |pat: String| {
        let (server, org) = (&server, &org);
        async move {
            call(
                server,
                Method::GET,
                "/api/v1/auth/api-tokens",
                &pat,
                Some(org),
                None,
            )
            .await
            .status()
                == StatusCode::OK
        }
    };
    let pat: Value = mint().await.json().await.expect("json");
    let pat = pat["token"].as_str().expect("token").to_owned();
    let change = |current: &str, new: &str, keep: bool| {
        call(
            &server,
            Method::POST,
            "/api/account/password",
            &session,
            None,
            Some(
                json!({"current_password": current, "new_password": new, "keep_api_tokens": keep}),
            ),
        )
    };
    assert_eq!(
        change(GOOD_PASSWORD, "Second-Horse-43", true)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert!(pat_works(pat.clone()).await, "kept when asked");
    assert_eq!(
        change("Second-Horse-43", "Third-Horse-44", false)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert!(!pat_works(pat).await, "revoked by default");
    let revoked = server.audit_events("type=pat.revoked").await;
    assert_eq!(revoked[0]["reason"], "password_changed");
}
