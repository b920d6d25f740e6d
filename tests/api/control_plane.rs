//! The control-plane API (`/api/v1`, SPEC §4) with raw HTTP: session tokens,
//! the uniform AUTH_FAILED, org context, PATs and their scope matrix.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{call, TestServer, FAST_HASHING, GOOD_PASSWORD, RELAXED_LIMITS};

const AUTH_FAILED: &str = r#"{"error":"AUTH_FAILED","message":"Authentication failed."}"#;

/// An operator-created user with `role` in the default org.
async fn user_with_role(server: &TestServer, email: &str, role: &str) -> Value {
    let response = server
        .operator_json(
            Method::POST,
            "/v1/users",
            json!({"email": email, "password": GOOD_PASSWORD, "role": role}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.expect("json")
}

async fn create_pat(server: &TestServer, token: &str, org: &str, scopes: &[&str]) -> Value {
    let response = call(
        server,
        Method::POST,
        "/api/v1/auth/api-tokens",
        token,
        Some(org),
        Some(json!({"name": format!("{scopes:?}"), "scopes": scopes, "expires_in_days": 30})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED, "{scopes:?}");
    response.json().await.expect("json")
}

#[tokio::test]
async fn login_returns_a_session_token_with_its_authoritative_lifetime() {
    let server = TestServer::spawn_fast().await;
    server.register_ok("op@example.com").await;
    let response = server
        .post("/api/v1/auth/login")
        .json(&json!({"email": "op@example.com", "password": GOOD_PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["access_token", "expires_in"], "no refresh token");
    assert_eq!(body["expires_in"], 3600);
}

#[tokio::test]
async fn every_login_failure_is_the_same_auth_failed_byte_for_byte() {
    let server = TestServer::spawn_with(&format!(
        "{FAST_HASHING}\n[limits]\nlogin_per_ip_per_min = 1000\nlogin_per_account_per_min = 4\nlockout_threshold = 3\n"
    ))
    .await;
    server.register_ok("known@example.com").await;
    server.register_ok("locked@example.com").await;
    for _ in 0..3 {
        server
            .post("/api/v1/auth/login")
            .json(&json!({"email": "locked@example.com", "password": "Wrong-password-1"}))
            .send()
            .await
            .expect("login");
    }
    let raw = |body: &'static str, content_type: &'static str| {
        let request = server
            .post("/api/v1/auth/login")
            .header("content-type", content_type)
            .body(body);
        async move { request.send().await.expect("login") }
    };
    let cases = [
        raw(
            r#"{"email":"nobody@example.com","password":"Correct-Horse-42"}"#,
            "application/json",
        )
        .await,
        raw(
            r#"{"email":"known@example.com","password":"Wrong-password-1"}"#,
            "application/json",
        )
        .await,
        raw(
            r#"{"email":"locked@example.com","password":"Correct-Horse-42"}"#,
            "application/json",
        )
        .await,
        raw(r#"{"email":"known@example.com"}"#, "application/json").await,
        raw("{not json", "application/json").await,
        raw(
            "email=known@example.com",
            "application/x-www-form-urlencoded",
        )
        .await,
    ];
    for response in cases {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.text().await.expect("body"), AUTH_FAILED);
    }
    // Past the per-account limit the answer is still the same 401.
    for _ in 0..4 {
        raw(
            r#"{"email":"known@example.com","password":"Wrong-password-2"}"#,
            "application/json",
        )
        .await;
    }
    let throttled = raw(
        r#"{"email":"known@example.com","password":"Correct-Horse-42"}"#,
        "application/json",
    )
    .await;
    assert_eq!(throttled.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(throttled.text().await.expect("body"), AUTH_FAILED);
}

#[tokio::test]
async fn memberships_name_the_active_org_and_other_calls_need_it() {
    let server = TestServer::spawn_fast().await;
    let profile = server.register_ok("m@example.com").await;
    let token = server.session_token("m@example.com").await;
    let org = profile["memberships"][0]["org_id"]
        .as_str()
        .expect("org")
        .to_owned();

    let response = call(
        &server,
        Method::GET,
        "/api/v1/org/memberships",
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({"active_org_id": org, "memberships": [{"org_id": org, "role": "member"}]})
    );

    let response = call(
        &server,
        Method::GET,
        "/api/v1/auth/api-tokens",
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.text().await.expect("body"),
        r#"{"error":"ORG_REQUIRED"}"#
    );

    let other: Value = server
        .operator_json(
            Method::POST,
            "/v1/orgs",
            json!({"slug": "other", "name": "Other"}),
        )
        .await
        .json()
        .await
        .expect("json");
    for header in [
        other["id"].as_str().expect("id"),
        "default",
        "org_not-an-id",
    ] {
        let response = call(
            &server,
            Method::GET,
            "/api/v1/auth/api-tokens",
            &token,
            Some(header),
            None,
        )
        .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{header}");
        assert_eq!(
            response.text().await.expect("body"),
            r#"{"error":"FORBIDDEN"}"#
        );
    }
    let response = call(
        &server,
        Method::GET,
        "/api/v1/auth/api-tokens",
        &token,
        Some(&org),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);

    let response = server
        .get("/api/v1/auth/api-tokens")
        .header("X-Active-Org-Id", &org)
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "credentials come before the org"
    );
}

#[tokio::test]
async fn sessions_are_not_refreshable_and_logout_ends_them_at_once() {
    let server = TestServer::spawn_fast().await;
    let profile = server.register_ok("n@example.com").await;
    let org = profile["memberships"][0]["org_id"]
        .as_str()
        .expect("org")
        .to_owned();
    let token = server.session_token("n@example.com").await;
    let response = call(
        &server,
        Method::POST,
        "/api/v1/auth/refresh",
        &token,
        Some(&org),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = call(
        &server,
        Method::POST,
        "/api/v1/auth/logout",
        &token,
        Some(&org),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = call(
        &server,
        Method::GET,
        "/api/v1/org/memberships",
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.audit_events("type=session.logout").await.len(), 1);
}

#[tokio::test]
async fn a_pat_is_shown_once_listed_without_secret_works_and_dies_on_revocation() {
    let server = TestServer::spawn_fast().await;
    let profile = server.register_ok("p@example.com").await;
    let org = profile["memberships"][0]["org_id"]
        .as_str()
        .expect("org")
        .to_owned();
    let session = server.session_token("p@example.com").await;
    let created = create_pat(&server, &session, &org, &["tokens.read", "sessions.read"]).await;
    let token = created["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("pat_authd_"));
    assert_eq!(token.len(), "pat_authd_".len() + 59);
    assert!(token["pat_authd_".len()..]
        .bytes()
        .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)));
    for field in ["id", "name", "scopes", "created_at", "expires_at"] {
        assert!(created.get(field).is_some(), "{field}");
    }
    assert_eq!(created["scopes"], json!(["sessions.read", "tokens.read"]));

    let listed: Value = call(
        &server,
        Method::GET,
        "/api/v1/auth/api-tokens",
        &token,
        Some(&org),
        None,
    )
    .await
    .json()
    .await
    .expect("json");
    let item = &listed["items"][0];
    assert_eq!(item["id"], created["id"]);
    assert!(item.get("token").is_none(), "the secret is never listed");
    assert!(
        item["last_used_at"].is_string(),
        "this very use is recorded"
    );
    assert!(!listed.to_string().contains(&token));

    let response = call(&server, Method::GET, "/api/account", &token, None, None).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "PATs work on the account API"
    );
    let response = call(
        &server,
        Method::GET,
        "/api/account/sessions",
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = call(
        &server,
        Method::POST,
        "/api/account/sessions/revoke-all",
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"error": "insufficient_scope", "required": "sessions.write"})
    );
    let response = call(
        &server,
        Method::POST,
        "/api/account/password",
        &token,
        None,
        Some(json!({"current_password": GOOD_PASSWORD, "new_password": "Another-Secret-9"})),
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "a PAT cannot change the password"
    );

    let id = created["id"].as_str().expect("id");
    let response = call(
        &server,
        Method::DELETE,
        &format!("/api/v1/auth/api-tokens/{id}"),
        &session,
        Some(&org),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = call(
        &server,
        Method::GET,
        "/api/v1/auth/api-tokens",
        &token,
        Some(&org),
        None,
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "fails on the very next request"
    );
    let response = call(
        &server,
        Method::DELETE,
        &format!("/api/v1/auth/api-tokens/{id}"),
        &session,
        Some(&org),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(server.audit_events("type=pat.created").await.len(), 1);
    assert_eq!(server.audit_events("type=pat.revoked").await.len(), 1);
}

#[tokio::test]
async fn each_scope_opens_exactly_its_endpoints() {
    let server = TestServer::spawn_fast().await;
    let admin = user_with_role(&server, "admin@example.com", "admin").await;
    let org = admin["memberships"][0]["org_id"]
        .as_str()
        .expect("org")
        .to_owned();
    let admin_id = admin["id"].as_str().expect("id").to_owned();
    let session = server.session_token("admin@example.com").await;
    let other_session = server.session_token("admin@example.com").await;
    let other_sid = call(
        &server,
        Method::GET,
        "/api/v1/sessions",
        &other_session,
        Some(&org),
        None,
    )
    .await
    .json::<Value>()
    .await
    .expect("json")["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|s| s["current"] == true)
        .expect("current")["id"]
        .as_str()
        .expect("sid")
        .to_owned();

    // (scope, method, path, body)
    let endpoints: Vec<(&str, Method, String, Option<Value>)> = vec![
        ("users.read", Method::GET, "/api/v1/users".into(), None),
        (
            "users.read",
            Method::GET,
            format!("/api/v1/users/{admin_id}"),
            None,
        ),
        (
            "users.write",
            Method::POST,
            "/api/v1/users".into(),
            Some(json!({"email": "new@example.com", "password": GOOD_PASSWORD})),
        ),
        (
            "sessions.read",
            Method::GET,
            "/api/v1/sessions".into(),
            None,
        ),
        (
            "sessions.write",
            Method::DELETE,
            format!("/api/v1/sessions/{other_sid}"),
            None,
        ),
        ("audit.read", Method::GET, "/api/v1/audit".into(), None),
        (
            "tokens.read",
            Method::GET,
            "/api/v1/auth/api-tokens".into(),
            None,
        ),
        (
            "tokens.write",
            Method::POST,
            "/api/v1/auth/api-tokens".into(),
            Some(json!({"name": "child", "scopes": ["tokens.write"], "expires_in_days": 1})),
        ),
    ];
    let all = [
        "users.read",
        "users.write",
        "sessions.read",
        "sessions.write",
        "audit.read",
        "tokens.read",
        "tokens.write",
    ];
    for scope in all {
        let pat = create_pat(&server, &session, &org, &[scope]).await;
        let token = pat["token"].as_str().expect("token");
        for (required, method, path, body) in &endpoints {
            // Only the tokens.write row may succeed twice; others are read-only or idempotent.
            if *required == "users.write" && scope == "users.write" {
                continue;
            }
            if *required == "sessions.write" && scope == "sessions.write" {
                continue;
            }
            let response = call(
                &server,
                method.clone(),
                path,
                token,
                Some(&org),
                body.clone(),
            )
            .await;
            if *required == scope {
                assert!(
                    response.status().is_success(),
                    "{scope} on {method} {path}: {}",
                    response.status()
                );
            } else {
                assert_eq!(
                    response.status(),
                    StatusCode::FORBIDDEN,
                    "{scope} on {method} {path}"
                );
                assert_eq!(
                    response.text().await.expect("body"),
                    format!(r#"{{"error":"INSUFFICIENT_SCOPE","required":"{required}"}}"#),
                    "{scope} on {method} {path}"
                );
            }
        }
    }
    // The write rows, once each with their own scope.
    let writer = create_pat(&server, &session, &org, &["users.write"]).await;
    let response = call(
        &server,
        Method::POST,
        "/api/v1/users",
        writer["token"].as_str().expect("t"),
        Some(&org),
        endpoints[2].3.clone(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let revoker = create_pat(&server, &session, &org, &["sessions.write"]).await;
    let response = call(
        &server,
        Method::DELETE,
        &endpoints[4].2,
        revoker["token"].as_str().expect("t"),
        Some(&org),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // The session token carries the user's full rights.
    for (_, method, path, body) in endpoints.iter().filter(|(s, ..)| !s.ends_with("write")) {
        let response = call(
            &server,
            method.clone(),
            path,
            &session,
            Some(&org),
            body.clone(),
        )
        .await;
        assert!(response.status().is_success(), "session on {method} {path}");
    }
}

#[tokio::test]
async fn roles_bound_what_a_pat_may_be_granted_and_what_a_session_may_do() {
    let server = TestServer::spawn_fast().await;
    let member = server.register_ok("mem@example.com").await;
    let org = member["memberships"][0]["org_id"]
        .as_str()
        .expect("org")
        .to_owned();
    let session = server.session_token("mem@example.com").await;
    for scope in ["users.read", "users.write", "audit.read"] {
        let response = call(
            &server,
            Method::POST,
            "/api/v1/auth/api-tokens",
            &session,
            Some(&org),
            Some(json!({"name": "x", "scopes": [scope], "expires_in_days": 1})),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{scope}");
    }
    let response = call(
        &server,
        Method::GET,
        "/api/v1/users",
        &session,
        Some(&org),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.text().await.expect("body"),
        r#"{"error":"FORBIDDEN"}"#
    );
    // A PAT cannot mint a stronger PAT.
    let pat = create_pat(&server, &session, &org, &["tokens.write"]).await;
    let response = call(
        &server,
        Method::POST,
        "/api/v1/auth/api-tokens",
        pat["token"].as_str().expect("token"),
        Some(&org),
        Some(json!({"name": "x", "scopes": ["tokens.write", "sessions.write"], "expires_in_days": 1})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn hostile_pats_and_bad_parameters_get_their_documented_errors() {
    let server = TestServer::spawn_fast().await;
    let profile = server.register_ok("q@example.com").await;
    let org = profile["memberships"][0]["org_id"]
        .as_str()
        .expect("org")
        .to_owned();
    let session = server.session_token("q@example.com").await;
    let pat = create_pat(&server, &session, &org, &["tokens.read"]).await;
    let token = pat["token"].as_str().expect("token").to_owned();

    let mut bad_checksum = token.clone().into_bytes();
    let last = bad_checksum.len() - 1;
    bad_checksum[last] = if bad_checksum[last] == b'a' {
        b'b'
    } else {
        b'a'
    };
    let bad_checksum = String::from_utf8(bad_checksum).expect("ascii");
    let wrong_prefix = token.replacen("pat_authd_", "pat_other_", 1);
    for (name, candidate) in [
        ("bad checksum", bad_checksum.as_str()),
        ("wrong prefix", wrong_prefix.as_str()),
        ("bare prefix", "pat_authd_"),
    ] {
        let response = call(
            &server,
            Method::GET,
            "/api/v1/auth/api-tokens",
            candidate,
            Some(&org),
            None,
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
    }

    // Another org's PAT with a spoofed X-Active-Org-Id.
    let other: Value = server
        .operator_json(
            Method::POST,
            "/v1/orgs",
            json!({"slug": "elsewhere", "name": "Elsewhere"}),
        )
        .await
        .json()
        .await
        .expect("json");
    let other_org = other["id"].as_str().expect("id");
    server
        .operator_json(
            Method::POST,
            &format!(
                "/v1/users/{}/memberships",
                profile["id"].as_str().expect("id")
            ),
            json!({"org": "elsewhere", "role": "member"}),
        )
        .await;
    let response = call(
        &server,
        Method::GET,
        "/api/v1/auth/api-tokens",
        &token,
        Some(other_org),
        None,
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "a PAT acts only in its own org"
    );

    let invalid = |body: Value| {
        let request = server
            .client
            .post(server.url("/api/v1/auth/api-tokens"))
            .bearer_auth(&session)
            .header("X-Active-Org-Id", &org)
            .json(&body);
        async move { request.send().await.expect("request") }
    };
    for (body, field) in [
        (
            json!({"name": "x", "scopes": ["users.delete"], "expires_in_days": 1}),
            "scopes",
        ),
        (
            json!({"name": "x", "scopes": [], "expires_in_days": 1}),
            "scopes",
        ),
        (
            json!({"name": "x", "scopes": ["tokens.read"], "expires_in_days": 0}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "scopes": ["tokens.read"], "expires_in_days": -5}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "scopes": ["tokens.read"], "expires_in_days": 181}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "scopes": ["tokens.read"], "expires_in_days": 1.5}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "scopes": ["tokens.read"], "expires_in_days": "30"}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "scopes": ["tokens.read"]}),
            "expires_in_days",
        ),
        (
            json!({"name": "evil\r\nX-Injected: 1", "scopes": ["tokens.read"], "expires_in_days": 1}),
            "name",
        ),
        (
            json!({"scopes": ["tokens.read"], "expires_in_days": 1}),
            "name",
        ),
    ] {
        let response = invalid(body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let answer: Value = response.json().await.expect("json");
        assert_eq!(answer["error"], "INVALID_REQUEST", "{body}");
        assert_eq!(answer["fields"][0]["field"], field, "{body}");
    }
    let response =
        invalid(json!({"name": "max", "scopes": ["tokens.read"], "expires_in_days": 180})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_pat_dies_with_its_owners_membership_and_its_use_is_audited() {
    let server = TestServer::spawn_with(&format!("{FAST_HASHING}\n{RELAXED_LIMITS}")).await;
    let profile = server.register_ok("r@example.com").await;
    let org = profile["memberships"][0]["org_id"]
        .as_str()
        .expect("org")
        .to_owned();
    server
        .operator_json(
            Method::POST,
            "/v1/orgs",
            json!({"slug": "team", "name": "Team"}),
        )
        .await;
    let user_id = profile["id"].as_str().expect("id").to_owned();
    server
        .operator_json(
            Method::POST,
            &format!("/v1/users/{user_id}/memberships"),
            json!({"org": "team", "role": "member"}),
        )
        .await;
    let session = server.session_token("r@example.com").await;
    let pat = create_pat(&server, &session, &org, &["tokens.read"]).await;
    let token = pat["token"].as_str().expect("token").to_owned();
    for _ in 0..3 {
        let response = call(
            &server,
            Method::GET,
            "/api/v1/auth/api-tokens",
            &token,
            Some(&org),
            None,
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    // Use is written at the next flush (here: shutdown), audited once per hour.
    let (dir, config) = server.stop();
    let server = TestServer::start(dir, config, &[]).await;
    let used = server.audit_events("type=pat.used").await;
    assert_eq!(used.len(), 1, "{used:?}");
    assert_eq!(used[0]["details"]["pat_id"], pat["id"]);
    let listed: Value = call(
        &server,
        Method::GET,
        "/api/v1/auth/api-tokens",
        &session,
        Some(&org),
        None,
    )
    .await
    .json()
    .await
    .expect("json");
    assert!(listed["items"][0]["last_used_at"].is_string());

    let response = server
        .operator(
            Method::DELETE,
            &format!("/v1/users/{user_id}/memberships/default"),
        )
        .send()
        .await
        .expect("remove");
    assert_eq!(response.status(), StatusCode::OK);
    let response = call(
        &server,
        Method::GET,
        "/api/v1/auth/api-tokens",
        &token,
        Some(&org),
        None,
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "the PAT died with the membership"
    );
}
