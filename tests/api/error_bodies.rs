//! The exact bodies of each error family, byte for byte, from the real
//! server: a snapshot of what clients parse (operator `/v1`, control plane
//! `/api/v1`, OAuth `/oauth`, identity). A change here is a change of the
//! wire contract and must be deliberate.

use crate::helpers::TestServer;

async fn body_of(response: reqwest::Response) -> (u16, String) {
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

#[tokio::test]
async fn each_family_renders_its_errors_in_its_own_shape() {
    let server = TestServer::spawn_fast().await;
    let cases: Vec<(&str, reqwest::Response, u16, &str)> = vec![
        (
            "operator: no token",
            server.get("/v1/status").send().await.expect("request"),
            401,
            r#"{"error":"missing authorization header"}"#,
        ),
        (
            "operator: wrong token",
            server
                .get("/v1/status")
                .bearer_auth("not-the-token")
                .send()
                .await
                .expect("request"),
            401,
            r#"{"error":"invalid authorization token"}"#,
        ),
        (
            "control plane: failed login",
            server
                .post("/api/v1/auth/login")
                .json(&serde_json::json!({"email": "nobody@example.com", "password": "x"}))
                .send()
                .await
                .expect("request"),
            401,
            r#"{"error":"AUTH_FAILED","message":"Authentication failed."}"#,
        ),
        (
            "control plane: refresh does not exist",
            server
                .post("/api/v1/auth/refresh")
                .send()
                .await
                .expect("request"),
            404,
            r#"{"error":"NOT_FOUND","message":"not found"}"#,
        ),
        (
            "oauth: unknown refresh token",
            server
                .post("/oauth/token")
                .form(&[("grant_type", "refresh_token"), ("refresh_token", "nope")])
                .send()
                .await
                .expect("request"),
            400,
            r#"{"error":"invalid_grant","error_description":"the refresh token is invalid, expired, revoked or already used"}"#,
        ),
        (
            "identity: wrong credentials",
            server
                .login(serde_json::json!({"email": "nobody@example.com", "password": "x"}))
                .await,
            401,
            r#"{"error":"invalid_credentials","message":"invalid email or password"}"#,
        ),
        (
            "identity: malformed JSON",
            server
                .post("/login")
                .header("content-type", "application/json")
                .body("{")
                .send()
                .await
                .expect("request"),
            400,
            r#"{"error":"malformed_json","message":"malformed JSON body"}"#,
        ),
    ];
    let mut mismatches = Vec::new();
    for (what, response, status, body) in cases {
        let actual = body_of(response).await;
        if actual != (status, body.to_owned()) {
            mismatches.push(format!("{what}: got {actual:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
