//! `POST /register`: validation, password policy, per-org uniqueness,
//! registration modes, email normalisation and hostile input.

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{TestServer, GOOD_PASSWORD};

#[tokio::test]
async fn a_registration_returns_the_profile_and_never_a_hash() {
    let server = TestServer::spawn_fast().await;
    let response = server
        .register(json!({"email": "alice@example.com", "password": GOOD_PASSWORD, "name": "Alice"}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let text = response.text().await.expect("body");
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "{text}"
    );
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["email"], "alice@example.com");
    assert_eq!(body["name"], "Alice");
    assert_eq!(body["memberships"][0]["role"], "member");
    assert!(body["memberships"][0]["org_id"]
        .as_str()
        .expect("org")
        .starts_with("org_"));
    assert_eq!(body["locked"], false);
    assert_eq!(
        body["email_verified"], false,
        "a self-registered email is unverified"
    );
    assert!(uuid::Uuid::parse_str(body["id"].as_str().expect("id")).is_ok());
}

#[tokio::test]
async fn missing_and_malformed_fields_are_named() {
    let server = TestServer::spawn_fast().await;
    let response = server.register(json!({})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "invalid_request");
    let fields: Vec<&str> = body["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["field"].as_str().expect("field"))
        .collect();
    assert_eq!(fields, ["email", "password"]);

    for email in [
        "not-an-email",
        "a@b",
        "ü@example.com",
        "a b@example.com",
        "a@exa mple.com",
        "a\u{0}@x.com",
    ] {
        let response = server
            .register(json!({"email": email, "password": GOOD_PASSWORD}))
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{email:?}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["fields"][0]["field"], "email", "{email:?}");
    }
}

#[tokio::test]
async fn every_violated_password_rule_is_listed() {
    let server = TestServer::spawn_fast().await;
    let violations = |password: &'static str, email: &'static str| {
        let server = &server;
        async move {
            let response = server
                .register(json!({"email": email, "password": password, "name": "Zed Xylophone"}))
                .await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{password}");
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["error"], "invalid_password");
            body["violations"]
                .as_array()
                .expect("violations")
                .iter()
                .map(|v| v.as_str().expect("code").to_owned())
                .collect::<Vec<String>>()
        }
    };
    let found = violations("abc", "u1@example.com").await;
    for rule in ["too_short", "missing_uppercase", "missing_digit"] {
        assert!(found.iter().any(|v| v == rule), "{rule} in {found:?}");
    }
    assert!(violations("Password123", "u2@example.com")
        .await
        .contains(&"common".to_owned()));
    assert!(violations("Xylophone-2024", "u3@example.com")
        .await
        .contains(&"contains_user_info".to_owned()));
    assert!(violations("Correct-maryjane-7", "maryjane@example.com")
        .await
        .contains(&"contains_user_info".to_owned()));
    let huge = "Aa1".repeat(350_000);
    // The server closes a connection whose body it refused; use one of its own
    // so the shared client's pool is not handed a dead connection.
    let response = reqwest::Client::new()
        .post(server.url("/register"))
        .json(&json!({"email": "u4@example.com", "password": huge}))
        .send()
        .await
        .expect("request");
    // A 1 MB password is over the body limit before it is over the policy.
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let long = "Aa1-".repeat(40);
    let response = server
        .register(json!({"email": "u5@example.com", "password": long}))
        .await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["violations"], json!(["too_long"]));
    let response = server
        .register(json!({"email": "u6@example.com", "password": "Correct\u{0}Horse-42"}))
        .await;
    let body: Value = response.json().await.expect("json");
    assert!(
        body["violations"]
            .as_array()
            .expect("list")
            .contains(&json!("contains_nul")),
        "{body}"
    );
}

#[tokio::test]
async fn an_email_is_unique_per_org_after_normalisation() {
    let server = TestServer::spawn_fast().await;
    let first = server
        .register(json!({"email": "  Bob@Example.COM ", "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let body: Value = first.json().await.expect("json");
    assert_eq!(body["email"], "bob@example.com");

    let again = server
        .register(json!({"email": "bob@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let body: Value = again.json().await.expect("json");
    assert_eq!(body["error"], "email_taken");

    let created = server
        .operator_json(
            Method::POST,
            "/v1/orgs",
            json!({"slug": "lab", "name": "Lab"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let elsewhere = server
        .register(json!({"email": "bob@example.com", "password": GOOD_PASSWORD, "org": "lab"}))
        .await;
    assert_eq!(
        elsewhere.status(),
        StatusCode::CREATED,
        "another org is another namespace"
    );
}

#[tokio::test]
async fn closed_orgs_refuse_and_approval_orgs_hold_the_account() {
    let server = TestServer::spawn_fast().await;
    for (slug, mode) in [("shut", "closed"), ("gated", "approval")] {
        let response = server
            .operator_json(
                Method::POST,
                "/v1/orgs",
                json!({"slug": slug, "name": slug, "registration": mode}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let response = server
        .register(json!({"email": "c@example.com", "password": GOOD_PASSWORD, "org": "shut"}))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "registration_closed");

    let response = server
        .register(json!({"email": "g@example.com", "password": GOOD_PASSWORD, "org": "gated"}))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        response.text().await.expect("body"),
        r#"{"status":"pending_approval"}"#
    );
    let approvals = server.audit_events("type=approval.created").await;
    assert_eq!(approvals.len(), 1);
    assert!(approvals[0]["details"]["approval_id"]
        .as_str()
        .expect("id")
        .starts_with("apr_"));

    let login = server
        .login(json!({"email": "g@example.com", "password": GOOD_PASSWORD, "org": "gated"}))
        .await;
    assert_eq!(
        login.status(),
        StatusCode::UNAUTHORIZED,
        "pending accounts cannot log in"
    );
    let failures = server.audit_events("type=user.login_failed").await;
    assert_eq!(failures[0]["reason"], "pending_approval");
}

#[tokio::test]
async fn hostile_bodies_get_their_documented_errors() {
    let server = TestServer::spawn_fast().await;
    let send = |body: Vec<u8>, content_type: &'static str| {
        let request = server
            .post("/register")
            .header("content-type", content_type)
            .body(body);
        async move { request.send().await.expect("request") }
    };
    let response = send(b"{not json".to_vec(), "application/json").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "malformed_json"
    );

    let response = send(br#"{"email":"a@b.co"}"#.to_vec(), "text/plain").await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "unsupported_media_type"
    );

    let mut invalid_utf8 = br#"{"email":"a@example.com","password":""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xfd]);
    invalid_utf8.extend_from_slice(br#""}"#);
    let response = send(invalid_utf8, "application/json").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let response = send(
        br#"{"email": 7, "password": []}"#.to_vec(),
        "application/json",
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "invalid_body"
    );

    // The server closes a connection whose body it refused; use one of its own.
    let response = reqwest::Client::new()
        .post(server.url("/register"))
        .header("content-type", "application/json")
        .body(vec![b'a'; 2 * 1024 * 1024])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "payload_too_large"
    );

    // Still up, still consistent.
    server.register_ok("after-the-storm@example.com").await;
}

#[tokio::test]
async fn racing_registrations_of_one_email_create_exactly_one_account() {
    let server = TestServer::spawn_fast().await;
    let attempts = 10_000;
    let statuses: Vec<StatusCode> = futures_util::stream::iter(0..attempts)
        .map(|_| {
            let request = server
                .post("/register")
                .json(&json!({"email": "race@example.com", "password": GOOD_PASSWORD}));
            async move { request.send().await.expect("request").status() }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!(created, 1, "{statuses:?}");
    assert_eq!(conflicts, attempts - 1);
    let users = server.operator_get("/v1/users?limit=500").await;
    assert_eq!(users["items"].as_array().expect("items").len(), 1);
}
