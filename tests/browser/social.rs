//! Signing in with another authd as the upstream OpenID Provider, in a real
//! browser: the sign-in page's provider button, the upstream's own sign-in
//! page, and the way back to the account page, which lists the identity.

use serde_json::{json, Value};

use crate::helpers::{TestServer, FAST_HASHING, GOOD_PASSWORD, RELAXED_LIMITS};
use crate::support::{submit_login, Env};

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn a_person_signs_in_with_the_upstream_button_and_sees_the_linked_identity() {
    let Some(env) = Env::start_as_issuer().await else {
        return;
    };
    // The upstream on 127.0.0.1, the server under test on localhost: two
    // hosts, so their cookies stay apart as they would in the field.
    let upstream = TestServer::spawn_as_issuer(&format!("{FAST_HASHING}\n{RELAXED_LIMITS}")).await;
    upstream.register_ok("kim@example.com").await;
    let client: Value = upstream
        .operator_json(
            reqwest::Method::POST,
            "/v1/clients",
            json!({"name": "Home authd", "type": "confidential", "consent": "implicit",
                   "redirect_uris": [format!("{}/oauth/callback/upstream", env.base)]}),
        )
        .await
        .json()
        .await
        .expect("json");
    let provider = env
        .server
        .operator_json(
            reqwest::Method::POST,
            "/v1/providers",
            json!({"name": "upstream", "kind": "oidc", "create_users": true,
                   "client_id": client["client_id"], "client_secret": client["client_secret"],
                   "discovery_url": upstream.url("/.well-known/openid-configuration")}),
        )
        .await;
    assert_eq!(provider.status(), reqwest::StatusCode::CREATED);

    let b = env.browser("social").await;
    b.goto("/login").await;
    b.wait_page("login").await;
    b.click("[data-test=\"social-sign-in\"][data-provider=\"upstream\"]")
        .await;
    // The upstream's own sign-in page.
    b.wait_until(
        "the upstream's sign-in page",
        "return location.host !== arguments[0] && !!document.querySelector('body[data-page=\"login\"]')",
        json!([env.base.trim_start_matches("http://")]),
    )
    .await;
    submit_login(&b, "kim@example.com", GOOD_PASSWORD).await;
    b.wait_page("account").await;
    assert!(b.current_url().await.starts_with(&env.base));
    let identity = b
        .wait_for("#linked-identities li[data-identity-id]")
        .await
        .text()
        .await;
    assert!(identity.contains("upstream"), "{identity}");
    assert!(b.find("[data-test=\"identity-unlink\"]").await.is_some());
    env.finish(&[&b]).await;
}
