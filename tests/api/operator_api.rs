//! The operator API's authentication and the error bodies every client sees.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestServer, GOOD_PASSWORD};

#[tokio::test]
async fn healthz_is_public_and_ok() {
    let server = TestServer::spawn().await;
    let response = server.get("/healthz").send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("body"), r#"{"status":"ok"}"#);
}

#[tokio::test]
async fn status_without_a_header_is_401_missing() {
    let server = TestServer::spawn().await;
    let response = server.get("/v1/status").send().await.expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.text().await.expect("body"),
        r#"{"error":"missing authorization header"}"#
    );
}

#[tokio::test]
async fn status_with_a_wrong_or_malformed_token_is_401_invalid() {
    let server = TestServer::spawn().await;
    let wrong = "0".repeat(64);
    for header in [
        format!("Bearer {wrong}"),
        "Bearer".to_owned(),
        "Basic dXNlcjpwYXNz".to_owned(),
        format!("Bearer {}x", server.admin_token()),
    ] {
        let response = server
            .get("/v1/status")
            .header("Authorization", header.clone())
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header}");
        assert_eq!(
            response.text().await.expect("body"),
            r#"{"error":"invalid authorization token"}"#,
            "{header}"
        );
    }
}

#[tokio::test]
async fn status_with_the_token_reports_version_uptime_and_database() {
    let server = TestServer::spawn().await;
    let response = server
        .operator(reqwest::Method::GET, "/v1/status")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptime_seconds"].is_u64());
    let path = body["database"]["path"].as_str().expect("path");
    if crate::pg_server::suite_on_postgres() {
        assert_eq!(body["database"]["backend"]["kind"], "postgres");
        assert!(path.starts_with("postgres://"), "{path}");
    } else {
        assert_eq!(body["database"]["backend"]["kind"], "redb");
        assert!(path.ends_with("data/authd.redb"), "{path}");
    }
    assert!(body["database"]["size_bytes"].as_u64().expect("size") > 0);
    let cache = &body["database"]["page_cache"];
    if !crate::pg_server::suite_on_postgres() {
        // PostgreSQL caches beside authd, not in it.
        assert!(cache["ceiling_bytes"].as_u64().expect("ceiling") >= 32 << 20);
    }
    assert!(
        ["warming", "done"].contains(&cache["warm_up"].as_str().expect("warm-up")),
        "{cache}"
    );
    assert_eq!(body["counts"]["orgs"], 1, "the default org");
    assert_eq!(body["counts"]["users"], 0);
    let keys = body["signing_keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["active"], true);
    assert!(keys[0]["kid"].is_string());
    assert!(!body.to_string().contains("private"), "no key material");

    server.register_ok("counted@example.com").await;
    server.login_ok("counted@example.com").await;
    let body = server.operator_get("/v1/status").await;
    assert_eq!(body["counts"]["users"], 1);
    assert_eq!(body["counts"]["sessions"], 1);
    assert_eq!(body["counts"]["refresh_tokens"], 1);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors_in_their_family() {
    let server = TestServer::spawn().await;
    let response = server
        .get("/v1/nothing-here")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.text().await.expect("body"),
        r#"{"error":"not found"}"#
    );

    let response = server.get("/nothing-here").send().await.expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.text().await.expect("body"),
        r#"{"error":"not_found","message":"not found"}"#
    );

    let response = server.post("/healthz").send().await.expect("request");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "405 is JSON too"
    );
    assert_eq!(
        response.text().await.expect("body"),
        r#"{"error":"method not allowed"}"#
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_a_given_one() {
    let server = TestServer::spawn().await;
    let response = server.get("/healthz").send().await.expect("request");
    let generated = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");

    let response = server
        .get("/v1/status")
        .header("X-Request-Id", "trace-me-123")
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    // The id is in the log line of that request.
    server.wait_for_log("trace-me-123").await;
}

#[tokio::test]
async fn the_authorization_header_never_reaches_the_log() {
    let server = TestServer::spawn().await;
    let token = server.admin_token();
    for (n, header) in [
        format!("Bearer {token}"),
        "Bearer not-the-token-xyz".to_owned(),
    ]
    .into_iter()
    .enumerate()
    {
        server
            .get("/v1/status?token=query-secret-abc")
            .header("Authorization", header)
            .header("X-Request-Id", format!("logged-request-{n}"))
            .send()
            .await
            .expect("request");
    }
    // Both requests were logged before their absence is checked.
    server.wait_for_log("logged-request-0").await;
    server.wait_for_log("logged-request-1").await;
    let logs = server.logs();
    assert!(logs.contains("/v1/status"), "requests are logged");
    for secret in [
        token.as_str(),
        "not-the-token-xyz",
        "query-secret-abc",
        "Bearer",
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into:\n{logs}");
    }
}

/// Every time in `value` — a key `at` or ending in `_at` — is null or an
/// RFC 3339 string; returns how many it saw.
fn times_are_rfc3339(value: &serde_json::Value, path: &str) -> usize {
    match value {
        serde_json::Value::Object(fields) => fields
            .iter()
            .map(|(key, field)| {
                let here = format!("{path}.{key}");
                let own = if key == "at" || key.ends_with("_at") {
                    match field {
                        serde_json::Value::Null => 0,
                        serde_json::Value::String(text) => {
                            assert!(humantime::parse_rfc3339(text).is_ok(), "{here} = {text}");
                            1
                        }
                        other => panic!("{here} is not an RFC 3339 string: {other}"),
                    }
                } else {
                    0
                };
                own + times_are_rfc3339(field, &here)
            })
            .sum(),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| times_are_rfc3339(item, &format!("{path}[{i}]")))
            .sum(),
        _ => 0,
    }
}

#[tokio::test]
async fn every_time_the_operator_api_shows_is_rfc3339() {
    let server = TestServer::spawn_fast().await;
    server
        .operator_json(
            reqwest::Method::POST,
            "/v1/orgs",
            serde_json::json!({"slug": "gated", "name": "Gated", "registration": "approval"}),
        )
        .await;
    server.register_ok("kim@example.com").await;
    server.login_ok("kim@example.com").await;
    let pending = server
        .register(serde_json::json!({"email": "new@example.com", "password": GOOD_PASSWORD, "org": "gated"}))
        .await;
    assert_eq!(pending.status(), 202);
    let mut seen = 0;
    for path in [
        "/v1/orgs",
        "/v1/users",
        "/v1/keys",
        "/v1/audit",
        "/v1/approvals",
    ] {
        seen += times_are_rfc3339(&server.operator_get(path).await, path);
    }
    assert!(seen >= 8, "times were seen: {seen}");
}
