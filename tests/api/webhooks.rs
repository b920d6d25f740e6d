//! Webhooks through the real server and a real receiver bound to 127.0.0.1
//! in the test: the receiver checks the HMAC signature, follows the approve
//! link, and the user can then log in; a dead receiver is retried, then
//! given up on, and sign-ups carry on.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{TestServer, FAST_HASHING, GOOD_PASSWORD, RELAXED_LIMITS};

/// Headers and body of one request the receiver got.
type Delivery = (HeaderMap, Vec<u8>);

/// What the receiver saw, in order.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Delivery>>>);

/// A webhook receiver on 127.0.0.1 that answers `statuses` in turn (then 200).
async fn receiver(statuses: Vec<u16>) -> (String, Received) {
    let received = Received::default();
    let seen = received.clone();
    let answers = Arc::new(Mutex::new(statuses.into_iter()));
    let app = axum::Router::new().route(
        "/hook/{*rest}",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            let answers = answers.clone();
            async move {
                seen.0.lock().expect("lock").push((headers, body.to_vec()));
                let status = answers.lock().expect("lock").next().unwrap_or(200);
                AxumStatus::from_u16(status).unwrap_or(AxumStatus::OK)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/hook/secret-path"), received)
}

async fn wait_until<T>(limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < limit, "gave up after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn gated_server(webhook: &str) -> TestServer {
    let server =
        TestServer::spawn_with(&format!("{FAST_HASHING}\n{RELAXED_LIMITS}\n{webhook}")).await;
    let response = server
        .operator_json(
            Method::POST,
            "/v1/orgs",
            json!({"slug": "gated", "name": "Gated", "registration": "approval"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    server
}

async fn sign_up(server: &TestServer, email: &str) {
    let response = server
        .register(json!({"email": email, "password": GOOD_PASSWORD, "org": "gated"}))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn the_receiver_checks_the_signature_and_its_approve_link_lets_the_user_in() {
    // The first attempt gets a 503: the delivery is retried.
    let (url, received) = receiver(vec![503]).await;
    let server = gated_server(&format!(
        "[[webhooks]]\nurl = \"{url}\"\nsecret = \"hook-secret-1\"\nbackoff = \"1s\"\n"
    ))
    .await;
    sign_up(&server, "newcomer@example.com").await;

    let (headers, body) = wait_until(Duration::from_secs(10), async || {
        let seen = received.0.lock().expect("lock");
        (seen.len() >= 2).then(|| seen[1].clone())
    })
    .await;
    assert_eq!(headers["x-authd-event"], "approval.created");
    assert_eq!(headers["content-type"], "application/json");
    let signature = headers["x-authd-signature"].to_str().expect("ascii");
    assert_eq!(
        signature,
        format!("sha256={}", hmac_hex("hook-secret-1", &body))
    );
    assert_ne!(
        signature,
        format!("sha256={}", hmac_hex("another-secret", &body))
    );
    let event: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(event["event"], "approval.created");
    assert_eq!(event["subject"]["email"], "newcomer@example.com");
    assert_eq!(event["subject"]["org"]["slug"], "gated");
    assert_eq!(event["approval"]["status"], "pending");
    // Both attempts carried the same delivery.
    let first: Value =
        serde_json::from_slice(&received.0.lock().expect("lock")[0].1).expect("json");
    assert_eq!(first["delivery_id"], event["delivery_id"]);

    // The receiver (a person in a chat app) follows the approve link.
    let approve = event["links"]["approve"].as_str().expect("link");
    let approve = server.url(&approve.replace("http://localhost:9090", ""));
    let login = || {
        server.login(
            json!({"email": "newcomer@example.com", "password": GOOD_PASSWORD, "org": "gated"}),
        )
    };
    assert_eq!(login().await.status(), StatusCode::UNAUTHORIZED);
    let resolved = server.client.post(&approve).send().await.expect("approve");
    assert_eq!(resolved.status(), StatusCode::OK);
    assert_eq!(login().await.status(), StatusCode::OK);
    let replay = server.client.post(&approve).send().await.expect("replay");
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    let deny = event["links"]["deny"].as_str().expect("link");
    let deny = server.url(&deny.replace("http://localhost:9090", ""));
    assert_eq!(
        server
            .client
            .post(&deny)
            .send()
            .await
            .expect("deny")
            .status(),
        StatusCode::UNAUTHORIZED,
        "the approval is resolved: its other link is spent too"
    );

    let failed = server.audit_events("type=webhook.failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["details"]["reason"], "http_503");
    assert_eq!(failed[0]["details"]["final"], false);
    let delivered = server.audit_events("type=webhook.delivered").await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["details"]["attempt"], 2);
    assert_eq!(delivered[0]["details"]["host"], "127.0.0.1");
    let audit_text = serde_json::to_string(&failed).expect("json")
        + &serde_json::to_string(&delivered).expect("json");
    assert!(
        !audit_text.contains("secret-path") && !audit_text.contains("hook-secret-1"),
        "no URL path or secret in the audit"
    );
    assert!(!server.logs().contains("hook-secret-1") && !server.logs().contains("secret-path"));
}

#[tokio::test]
async fn a_dead_receiver_is_retried_then_given_up_and_sign_ups_carry_on() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let server = gated_server(&format!(
        "[[webhooks]]\nurl = \"http://127.0.0.1:{port}/hook\"\nmax_attempts = 3\nbackoff = \"1s\"\ntimeout = \"2s\"\n"
    ))
    .await;
    let started = Instant::now();
    sign_up(&server, "first@example.com").await;
    sign_up(&server, "second@example.com").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "sign-ups do not wait for the webhook"
    );

    let failures = wait_until(Duration::from_secs(15), async || {
        let failed = server.audit_events("type=webhook.failed").await;
        (failed
            .iter()
            .filter(|e| e["details"]["final"] == true)
            .count()
            == 2)
            .then_some(failed)
    })
    .await;
    assert_eq!(failures.len(), 6, "three attempts for each of two events");
    assert!(failures.iter().all(|e| e["details"]["reason"] == "connect"));
    assert!(server
        .audit_events("type=webhook.delivered")
        .await
        .is_empty());
    // Still taking sign-ups, and the operator still sees both approvals.
    sign_up(&server, "third@example.com").await;
    let pending = server.operator_get("/v1/approvals?status=pending").await;
    assert_eq!(pending["items"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn webhook_config_errors_name_the_key() {
    for (config, key) in [
        ("[[webhooks]]\nurl = \"ftp://x\"\n", "webhooks.url"),
        (
            "[[webhooks]]\nurl = \"http://x\"\nevents = [\"user.created\"]\n",
            "webhooks.events",
        ),
        (
            "[[webhooks]]\nurl = \"http://x\"\nmax_attempts = 0\n",
            "webhooks.max_attempts",
        ),
    ] {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).expect("write");
        let output = std::process::Command::new(crate::helpers::AUTHD)
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .expect("run");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(key), "{key}: {stderr}");
    }
}
