//! `GET /metrics` (SPEC §8): Prometheus text that the Prometheus project's
//! own parser (Python `prometheus_client`) reads, whose counters move with what happened —
//! logins, failures, rate-limit hits, token issuance, refresh replays —
//! with route templates, never raw paths, as labels; behind the admin token,
//! or open on `metrics.listen`.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::helpers::{free_port, python_has, TestServer, FAST_HASHING, GOOD_PASSWORD};

/// One sample as the Prometheus project's own Python parser
/// (`prometheus_client.parser`) read it: histograms come as their
/// `_bucket`, `_sum` and `_count` samples.
#[derive(Debug, Deserialize)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// `text` through the reference parser, which refuses what is not valid
/// exposition text; `None` without it (outside CI).
fn parse(text: &str) -> Option<Vec<Sample>> {
    if !python_has("prometheus_client", "prometheus-client") {
        return None;
    }
    let mut parser = Command::new("python3")
        .args([
            "-c",
            "import json, sys\n\
             from prometheus_client.parser import text_string_to_metric_families as parse\n\
             print(json.dumps([{'name': s.name, 'labels': s.labels, 'value': s.value}\n\
                 for family in parse(sys.stdin.read()) for s in family.samples]))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    parser
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let output = parser.wait_with_output().expect("parser");
    assert!(output.status.success(), "the parser refused:\n{text}");
    Some(serde_json::from_slice(&output.stdout).expect("samples"))
}

async fn scrape(server: &TestServer) -> Option<Vec<Sample>> {
    let response = server
        .operator(Method::GET, "/metrics")
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse(&response.text().await.expect("text"))
}

/// The sum of the samples `name` whose labels include `labels` (0 if it
/// was never counted).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|sample| sample.name == name)
        .filter(|sample| {
            labels
                .iter()
                .all(|(k, v)| sample.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|sample| sample.value)
        .sum()
}

async fn login(server: &TestServer, email: &str, password: &str) -> reqwest::Response {
    server
        .login(json!({"email": email, "password": password}))
        .await
}

#[tokio::test]
async fn counters_move_with_logins_failures_limits_tokens_and_replays() {
    let server = TestServer::spawn_with(&format!(
        "{FAST_HASHING}\n[limits]\nlogin_per_ip_per_min = 3\nlogin_per_account_per_min = 1000\n"
    ))
    .await;

    // The operator's token, as for every /v1 call.
    let anonymous = server.get("/metrics").send().await.expect("metrics");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let body: Value = anonymous.json().await.expect("json");
    assert_eq!(body, json!({"error": "missing authorization header"}));

    let Some(before) = scrape(&server).await else {
        return;
    };
    let created = server.register_ok("kim@example.com").await;
    let signed_in: Value = login(&server, "kim@example.com", GOOD_PASSWORD)
        .await
        .json()
        .await
        .expect("json");
    let first_refresh = signed_in["refresh_token"].as_str().expect("refresh");
    assert_eq!(
        login(&server, "kim@example.com", "Wrong-Horse-42")
            .await
            .status(),
        401
    );
    assert_eq!(
        login(&server, "nobody@example.com", GOOD_PASSWORD)
            .await
            .status(),
        401
    );
    assert_eq!(
        login(&server, "kim@example.com", "Wrong-Horse-43")
            .await
            .status(),
        401
    );
    assert_eq!(
        login(&server, "kim@example.com", GOOD_PASSWORD)
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let rotated = server.refresh(first_refresh).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let replayed = server.refresh(first_refresh).await;
    assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);
    let user_id = created["user"]["id"]
        .as_str()
        .or(created["id"].as_str())
        .or(created["profile"]["id"].as_str())
        .expect("user id")
        .to_owned();
    let user = server
        .operator(Method::GET, &format!("/v1/users/{user_id}"))
        .send()
        .await
        .expect("user");
    assert_eq!(user.status(), StatusCode::OK);
    let unknown = server.get("/no/such/path/12345").send().await.expect("get");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    let after = scrape(&server).await.expect("parsed before");
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(moved("authd_logins_total", &[("result", "success")]), 1.0);
    assert_eq!(moved("authd_logins_total", &[("result", "failure")]), 3.0);
    assert_eq!(
        moved("authd_login_failures_total", &[("reason", "bad_password")]),
        2.0
    );
    assert_eq!(
        moved("authd_login_failures_total", &[("reason", "unknown_email")]),
        1.0
    );
    assert_eq!(
        moved("authd_rate_limited_total", &[("limit", "login_per_ip")]),
        1.0
    );
    assert_eq!(moved("authd_refresh_replays_total", &[]), 1.0);
    // The login and the rotation: an access token and a refresh token each.
    assert_eq!(
        moved("authd_tokens_issued_total", &[("kind", "access")]),
        2.0
    );
    assert_eq!(
        moved("authd_tokens_issued_total", &[("kind", "refresh")]),
        2.0
    );
    assert!(
        value(&after, "authd_password_hash_seconds_count", &[])
            >= value(&before, "authd_password_hash_seconds_count", &[]) + 4.0
    );

    // Route templates, never the raw path or an id.
    assert_eq!(
        moved(
            "authd_http_requests_total",
            &[("route", "/login"), ("status", "401")]
        ),
        3.0
    );
    assert_eq!(
        moved(
            "authd_http_requests_total",
            &[("route", "/login"), ("status", "429")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "authd_http_requests_total",
            &[("route", "/v1/users/{id}"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "authd_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    assert!(
        value(
            &after,
            "authd_http_request_duration_seconds_count",
            &[("route", "/login")]
        ) >= 5.0
    );
    for sample in &after {
        for value in sample.labels.values() {
            assert!(
                !value.contains(&user_id) && !value.contains("12345"),
                "a raw path or id became a label: {} {value}",
                sample.name
            );
        }
    }

    // Gauges and the process.
    assert!(value(&after, "authd_sessions_active", &[]) >= 1.0);
    assert!(value(&after, "authd_db_size_bytes", &[]) > 0.0);
    assert!(value(&after, "process_resident_memory_bytes", &[]) > 1_000_000.0);
    assert!(value(&after, "process_open_fds", &[]) > 3.0);
    assert!(value(&after, "process_cpu_seconds_total", &[]) > 0.0);
}

#[tokio::test]
async fn metrics_listen_serves_metrics_alone_without_a_token() {
    let port = free_port();
    let server =
        TestServer::spawn_with(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")).await;
    server.wait_for_log("metrics listening").await;
    let client = reqwest::Client::new();
    let open = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(open.status(), StatusCode::OK);
    if let Some(scraped) = parse(&open.text().await.expect("text")) {
        assert!(scraped.iter().any(|s| s.name == "authd_db_size_bytes"));
    }
    let elsewhere = client
        .get(format!("http://127.0.0.1:{port}/v1/status"))
        .send()
        .await
        .expect("status");
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
    // The main listener still asks for the token.
    assert_eq!(
        server
            .get("/metrics")
            .send()
            .await
            .expect("metrics")
            .status(),
        StatusCode::UNAUTHORIZED
    );
}
