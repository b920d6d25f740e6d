//! Approvals through the operator API: a sign-up in an `approval` org waits,
//! is approved or denied once, and expires when nobody answers.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{TestServer, FAST_HASHING, GOOD_PASSWORD, RELAXED_LIMITS};

async fn gated(server: &TestServer) {
    let response = server
        .operator_json(
            Method::POST,
            "/v1/orgs",
            json!({"slug": "gated", "name": "Gated", "registration": "approval"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn sign_up(server: &TestServer, email: &str) {
    let response = server
        .post("/register")
        .header("user-agent", "signup-agent/2")
        .json(&json!({"email": email, "password": GOOD_PASSWORD, "org": "gated", "name": "Wendy Want"}))
        .send()
        .await
        .expect("register");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

async fn login_status(server: &TestServer, email: &str) -> StatusCode {
    server
        .login(json!({"email": email, "password": GOOD_PASSWORD, "org": "gated"}))
        .await
        .status()
}

async fn resolve(server: &TestServer, id: &str, approved: bool) -> reqwest::Response {
    server
        .operator_json(
            Method::POST,
            &format!("/v1/approvals/{id}/resolve"),
            json!({"approved": approved}),
        )
        .await
}

#[tokio::test]
async fn an_approved_sign_up_can_log_in_and_a_second_resolution_conflicts() {
    let server = TestServer::spawn_fast().await;
    gated(&server).await;
    sign_up(&server, "wants-in@example.com").await;
    assert_eq!(
        login_status(&server, "wants-in@example.com").await,
        StatusCode::UNAUTHORIZED
    );

    let pending = server.operator_get("/v1/approvals?status=pending").await;
    let items = pending["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    let approval = &items[0];
    assert_eq!(approval["kind"], "registration");
    assert_eq!(approval["status"], "pending");
    assert_eq!(approval["requested_by_ip"], "127.0.0.1");
    assert_eq!(approval["requested_by_user_agent"], "signup-agent/2");
    // Who asks, without a second lookup; times as RFC 3339, as everywhere.
    assert_eq!(
        approval["subject"],
        json!({"email": "wants-in@example.com", "name": "Wendy Want"})
    );
    for time in [&approval["requested_at"], &approval["links"]["expires_at"]] {
        let text = time.as_str().expect("an RFC 3339 string");
        assert!(humantime::parse_rfc3339(text).is_ok(), "{text}");
    }
    let id = approval["id"].as_str().expect("id");

    let response = server
        .post(&format!("/v1/approvals/{id}/resolve"))
        .json(&json!({"approved": true}))
        .send()
        .await
        .expect("r");
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "the operator token is required"
    );

    let response = resolve(&server, id, true).await;
    assert_eq!(response.status(), StatusCode::OK);
    let resolved: Value = response.json().await.expect("json");
    assert_eq!(resolved["status"], "approved");
    assert_eq!(resolved["resolved_by"], "operator_token");
    assert!(
        resolved["resolved_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{resolved}"
    );
    assert_eq!(
        login_status(&server, "wants-in@example.com").await,
        StatusCode::OK
    );

    for approved in [true, false] {
        let again = resolve(&server, id, approved).await;
        assert_eq!(again.status(), StatusCode::CONFLICT);
    }
    assert_eq!(
        login_status(&server, "wants-in@example.com").await,
        StatusCode::OK,
        "a late deny changes nothing"
    );
    assert!(
        server.operator_get("/v1/approvals?status=pending").await["items"]
            .as_array()
            .expect("items")
            .is_empty()
    );
    assert_eq!(server.audit_events("type=approval.resolved").await.len(), 1);

    let missing = resolve(&server, "apr_nope", true).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_denied_sign_up_is_removed() {
    let server = TestServer::spawn_fast().await;
    gated(&server).await;
    sign_up(&server, "no-thanks@example.com").await;
    let id = server.operator_get("/v1/approvals").await["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let response = resolve(&server, &id, false).await;
    assert_eq!(
        response.json::<Value>().await.expect("json")["status"],
        "denied"
    );
    assert_eq!(
        login_status(&server, "no-thanks@example.com").await,
        StatusCode::UNAUTHORIZED
    );
    let users = server.operator_get("/v1/users?org=gated").await;
    assert!(
        users["items"].as_array().expect("items").is_empty(),
        "the pending account is gone"
    );
    sign_up(&server, "no-thanks@example.com").await;
}

#[tokio::test]
async fn an_unanswered_approval_expires_and_its_account_goes() {
    let (server, clock) = TestServer::in_process(&format!(
        "{FAST_HASHING}\n{RELAXED_LIMITS}\n[approvals]\nttl = \"1s\"\n"
    ))
    .await;
    gated(&server).await;
    sign_up(&server, "too-late@example.com").await;
    clock.advance(2);
    let listed = server.operator_get("/v1/approvals").await;
    let approval = &listed["items"][0];
    assert_eq!(approval["status"], "expired");
    let response = resolve(&server, approval["id"].as_str().expect("id"), true).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(
        login_status(&server, "too-late@example.com").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.audit_events("type=approval.expired").await.len(), 1);
    sign_up(&server, "too-late@example.com").await;
}

/// The path and query of a link, on this test server.
fn local(server: &TestServer, link: &Value) -> String {
    let link = link.as_str().expect("link");
    server.url(&link.replace("http://localhost:9090", ""))
}

const BAD_SIGNATURE: &str = r#"{"error":"invalid or expired signature"}"#;

#[tokio::test]
async fn a_signed_link_resolves_once_without_the_token() {
    let server = TestServer::spawn_fast().await;
    gated(&server).await;
    sign_up(&server, "linked@example.com").await;
    sign_up(&server, "other@example.com").await;
    let listed = server.operator_get("/v1/approvals?status=pending").await;
    let items = listed["items"].as_array().expect("items");
    // Newest first: the second sign-up is listed first.
    let (mine, other) = (&items[1], &items[0]);
    let approve = local(&server, &mine["links"]["approve"]);
    let deny = local(&server, &mine["links"]["deny"]);

    // A GET (a link preview) shows a confirmation page and resolves nothing.
    let page = server.client.get(&approve).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/html"));
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .contains("default-src 'none'"));
    let html = page.text().await.expect("html");
    assert!(html.contains("<form method=\"post\"") && !html.contains("<script"));
    assert_eq!(
        login_status(&server, "linked@example.com").await,
        StatusCode::UNAUTHORIZED
    );

    // Tampering with the action, or using the link on another approval, fails.
    let tampered = approve.replace("action=approve", "action=deny");
    let response = server.client.post(&tampered).send().await.expect("post");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.text().await.expect("body"), BAD_SIGNATURE);
    let other_id = other["id"].as_str().expect("id");
    let mine_id = mine["id"].as_str().expect("id");
    let moved = approve.replace(mine_id, other_id);
    assert_eq!(
        server
            .client
            .post(&moved)
            .send()
            .await
            .expect("post")
            .status(),
        StatusCode::UNAUTHORIZED
    );

    let response = server.client.post(&approve).send().await.expect("post");
    assert_eq!(response.status(), StatusCode::OK);
    let resolved: Value = response.json().await.expect("json");
    assert_eq!(resolved["status"], "approved");
    assert_eq!(resolved["resolved_by"], "signed_link");
    assert_eq!(
        login_status(&server, "linked@example.com").await,
        StatusCode::OK
    );

    // Single use: the same link, or its deny twin, before they expire.
    for link in [&approve, &deny] {
        let response = server.client.post(link).send().await.expect("post");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.text().await.expect("body"), BAD_SIGNATURE);
    }
    let response = server
        .client
        .get(format!(
            "{}?action=approve&exp=1&sig=00",
            server.url(&format!("/v1/approvals/{mine_id}/resolve"))
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Pressed in a browser (the confirmation page's form): a page, not JSON.
    let pressed = server
        .client
        .post(local(&server, &other["links"]["deny"]))
        .header("accept", "text/html,application/xhtml+xml")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .expect("post");
    assert_eq!(pressed.status(), StatusCode::OK);
    assert!(pressed.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/html"));
    assert!(pressed.text().await.expect("html").contains("Denied"));
    let events = server.audit_events("type=approval.resolved").await;
    assert_eq!(events[0]["details"]["resolved_by"], "signed_link");
}

#[tokio::test]
async fn an_expired_signed_link_is_refused() {
    let (server, clock) = TestServer::in_process(&format!(
        "{FAST_HASHING}\n{RELAXED_LIMITS}\n[approvals]\nttl = \"1s\"\n"
    ))
    .await;
    gated(&server).await;
    sign_up(&server, "slow@example.com").await;
    let listed = server.operator_get("/v1/approvals").await;
    let approve = local(&server, &listed["items"][0]["links"]["approve"]);
    clock.advance(2);
    let response = server.client.post(&approve).send().await.expect("post");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.text().await.expect("body"), BAD_SIGNATURE);
    assert_eq!(
        login_status(&server, "slow@example.com").await,
        StatusCode::UNAUTHORIZED
    );
}
