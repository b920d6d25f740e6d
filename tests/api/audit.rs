//! `GET /v1/audit` (filters, cursor) and `GET /v1/events/stream` (SSE).

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::TestServer;

#[tokio::test]
async fn the_audit_log_filters_by_type_and_user_and_pages_with_a_cursor() {
    let server = TestServer::spawn_fast().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(server.register_ok(&format!("user{i}@example.com")).await["id"].clone());
    }
    let first = server.audit_events("type=user.created&limit=2").await;
    assert_eq!(first.len(), 2);
    assert_eq!(first[0]["user_id"], ids[4], "newest first");
    let page: Value = server
        .operator_get("/v1/audit?type=user.created&limit=2")
        .await;
    let cursor = page["next_cursor"].as_str().expect("cursor");
    let second = server
        .audit_events(&format!("type=user.created&limit=2&cursor={cursor}"))
        .await;
    assert_eq!(second[0]["user_id"], ids[2]);
    assert_eq!(second[1]["user_id"], ids[1]);
    let third = server
        .audit_events(&format!(
            "type=user.created&limit=2&cursor={}",
            second[1]["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(third.len(), 1);

    let one = server
        .audit_events(&format!("user={}", ids[3].as_str().expect("id")))
        .await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["type"], "user.created");

    let future = server.audit_events("since=4102444800").await;
    assert!(future.is_empty(), "nothing after 2100-01-01");
    let past = server.audit_events("until=946684800").await;
    assert!(past.is_empty(), "nothing before 2000-01-01");

    let response = server
        .operator(Method::GET, "/v1/audit?type=no.such")
        .send()
        .await
        .expect("audit");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = server.get("/v1/audit").send().await.expect("audit");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_event_stream_delivers_events_produced_after_subscribing() {
    let server = TestServer::spawn_fast().await;
    let response = server
        .get(&format!("/v1/events/stream?token={}", server.admin_token()))
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();

    server.register_ok("streamed@example.com").await;
    let mut received = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !received.contains("user.created") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("an event within 10 s")
            .expect("stream open")
            .expect("chunk");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.contains("event: audit"), "{received}");
    let data = received
        .lines()
        .find(|line| line.starts_with("data:") && line.contains("user.created"))
        .expect("data line");
    let event: Value = serde_json::from_str(data.trim_start_matches("data:").trim()).expect("json");
    assert_eq!(event["type"], "user.created");

    // The header works too; a wrong token does not.
    let response = server
        .get("/v1/events/stream")
        .bearer_auth(server.admin_token())
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), StatusCode::OK);
    let response = server
        .get("/v1/events/stream?token=wrong")
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.text().await.expect("body"),
        r#"{"error":"invalid authorization token"}"#
    );
}

#[tokio::test]
async fn an_open_event_stream_does_not_hold_up_shutdown() {
    let mut server = TestServer::spawn_fast().await;
    let response = server
        .get(&format!("/v1/events/stream?token={}", server.admin_token()))
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), StatusCode::OK);
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("join");
    assert!(status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(response);
}
