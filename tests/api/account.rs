//! `/api/account` with a session's access token: profile, password change,
//! sessions (list, revoke one, log out everywhere), and the operator's view.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{TestServer, GOOD_PASSWORD};

async fn get_with(server: &TestServer, path: &str, token: &Value) -> reqwest::Response {
    server
        .get(path)
        .bearer_auth(token.as_str().expect("token"))
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn the_profile_needs_a_valid_access_token() {
    let server = TestServer::spawn_fast().await;
    let profile = server.register_ok("gina@example.com").await;
    let tokens = server.login_ok("gina@example.com").await;
    let response = get_with(&server, "/api/account", &tokens["access_token"]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["id"], profile["id"]);

    for header in [None, Some("Bearer garbage"), Some("Bearer a.b.c")] {
        let mut request = server.get("/api/account");
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header:?}");
        assert_eq!(
            response.json::<Value>().await.expect("json")["error"],
            "invalid_token"
        );
    }
    // A token whose signature was tampered with.
    let access = tokens["access_token"].as_str().expect("access");
    let tampered = crate::helpers::tamper_signature(access);
    let response = server
        .get("/api/account")
        .bearer_auth(tampered)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_are_listed_with_this_one_marked_and_can_be_revoked() {
    let server = TestServer::spawn_fast().await;
    server.register_ok("hank@example.com").await;
    let laptop = server.login_ok("hank@example.com").await;
    let phone = server.login_ok("hank@example.com").await;

    let sessions: Value = get_with(&server, "/api/account/sessions", &laptop["access_token"])
        .await
        .json()
        .await
        .expect("json");
    let items = sessions["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    for item in items {
        assert_eq!(item["current"], item["id"] == laptop["session_id"]);
        for field in [
            "ip",
            "user_agent",
            "created_at",
            "last_active",
            "expires_at",
            "mfa_verified",
        ] {
            assert!(item.get(field).is_some(), "{field}");
        }
    }

    let response = server
        .client
        .delete(server.url(&format!(
            "/api/account/sessions/{}",
            phone["session_id"].as_str().expect("sid")
        )))
        .bearer_auth(laptop["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get_with(&server, "/api/account", &phone["access_token"])
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get_with(&server, "/api/account", &laptop["access_token"])
            .await
            .status(),
        StatusCode::OK
    );

    // Another user's session id is simply not found.
    server.register_ok("ivy@example.com").await;
    let ivy = server.login_ok("ivy@example.com").await;
    let response = server
        .client
        .delete(server.url(&format!(
            "/api/account/sessions/{}",
            ivy["session_id"].as_str().expect("sid")
        )))
        .bearer_auth(laptop["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        get_with(&server, "/api/account", &ivy["access_token"])
            .await
            .status(),
        StatusCode::OK
    );

    let response = server
        .post("/api/account/sessions/revoke-all")
        .bearer_auth(laptop["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("revoke all");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        get_with(&server, "/api/account", &laptop["access_token"])
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(!server.audit_events("type=session.revoked").await.is_empty());
}

#[tokio::test]
async fn a_password_change_checks_the_current_one_and_ends_the_other_sessions() {
    let server = TestServer::spawn_fast().await;
    server.register_ok("jill@example.com").await;
    let here = server.login_ok("jill@example.com").await;
    let elsewhere = server.login_ok("jill@example.com").await;
    let change = |current: &str, new: &str| {
        let request = server
            .post("/api/account/password")
            .bearer_auth(here["access_token"].as_str().expect("token"))
            .json(&json!({"current_password": current, "new_password": new}));
        async move { request.send().await.expect("change") }
    };
    let response = change("Wrong-password-1", "Brand-New-Secret-77").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.expect("json")["fields"][0]["field"],
        "current_password"
    );
    let response = change(GOOD_PASSWORD, "short").await;
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "invalid_password"
    );

    let response = change(GOOD_PASSWORD, "Brand-New-Secret-77").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get_with(&server, "/api/account", &here["access_token"])
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        get_with(&server, "/api/account", &elsewhere["access_token"])
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let old = server
        .login(json!({"email": "jill@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = server
        .login(json!({"email": "jill@example.com", "password": "Brand-New-Secret-77"}))
        .await;
    assert_eq!(new.status(), StatusCode::OK);
    assert_eq!(server.audit_events("type=password.changed").await.len(), 1);
}

#[tokio::test]
async fn password_history_refuses_reuse() {
    let server = TestServer::spawn_fast().await;
    let response = server
        .operator_json(
            Method::PATCH,
            "/v1/orgs/default",
            json!({"password_policy": {"history_count": 3}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    server.register_ok("kim@example.com").await;
    let tokens = server.login_ok("kim@example.com").await;
    let change = |current: &'static str, new: &'static str| {
        let request = server
            .post("/api/account/password")
            .bearer_auth(tokens["access_token"].as_str().expect("token"))
            .json(&json!({"current_password": current, "new_password": new}));
        async move { request.send().await.expect("change") }
    };
    assert_eq!(
        change(GOOD_PASSWORD, "Second-Secret-22").await.status(),
        StatusCode::NO_CONTENT
    );
    let response = change("Second-Secret-22", GOOD_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.expect("json")["violations"],
        json!(["reused_password"])
    );
}

#[tokio::test]
async fn the_operator_lists_and_revokes_a_users_sessions() {
    let server = TestServer::spawn_fast().await;
    let profile = server.register_ok("lou@example.com").await;
    let tokens = server.login_ok("lou@example.com").await;
    let id = profile["id"].as_str().expect("id");
    let listed: Value = server
        .operator_get(&format!("/v1/users/{id}/sessions"))
        .await;
    assert_eq!(listed["items"][0]["id"], tokens["session_id"]);
    let response = server
        .operator(Method::POST, &format!("/v1/users/{id}/sessions/revoke"))
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.json::<Value>().await.expect("json")["revoked"], 1);
    assert_eq!(
        get_with(&server, "/api/account", &tokens["access_token"])
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}
