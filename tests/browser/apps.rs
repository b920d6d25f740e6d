//! An app signing its users in through authd, as a person sees it: Chromium
//! opens a tiny relying party (the `openidconnect` crate, run here on
//! loopback), is sent to authd's sign-in page, passes the TOTP step and the
//! consent page, and comes back to the app, which verifies the ID token;
//! then the app's sign-out ends the authd session too (RP-Initiated Logout).

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};
use serde_json::{json, Value};

use crate::helpers::GOOD_PASSWORD;
use crate::support::{capture, enroll_totp_over_api, submit_login, Env};

type RelyingParty = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What the app remembers between its redirects, and what it learned.
#[derive(Default)]
struct AppMemory {
    pending: Option<(CsrfToken, Nonce, PkceCodeVerifier)>,
    id_token: Option<String>,
    claims: Option<Value>,
}

#[derive(Clone)]
struct TestApp {
    client: Arc<RelyingParty>,
    http: openidconnect::reqwest::Client,
    memory: Arc<Mutex<AppMemory>>,
    base: String,
    end_session: String,
}

fn page(body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><title>Test app</title></head><body>{body}</body></html>"
    ))
}

async fn start_sign_in(State(app): State<TestApp>) -> Redirect {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = app
        .client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    app.memory.lock().expect("memory").pending = Some((state, nonce, verifier));
    Redirect::to(url.as_str())
}

#[derive(serde::Deserialize)]
struct Callback {
    code: String,
    state: String,
    iss: Option<String>,
}

async fn callback(State(app): State<TestApp>, Query(answer): Query<Callback>) -> Response {
    let Some((state, nonce, verifier)) = app.memory.lock().expect("memory").pending.take() else {
        return page("<p id=\"rp-error\">no sign-in was started</p>").into_response();
    };
    if answer.state != *state.secret() {
        return page("<p id=\"rp-error\">state does not match</p>").into_response();
    }
    let tokens = match app
        .client
        .exchange_code(AuthorizationCode::new(answer.code))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&app.http)
        .await
    {
        Ok(tokens) => tokens,
        Err(err) => {
            return page(&format!("<p id=\"rp-error\">code exchange: {err:?}</p>")).into_response()
        }
    };
    let Some(id_token) = tokens.id_token() else {
        return page("<p id=\"rp-error\">no ID token</p>").into_response();
    };
    let verifier = app.client.id_token_verifier();
    let claims = match id_token.claims(&verifier, &nonce) {
        Ok(claims) => claims,
        Err(err) => {
            return page(&format!("<p id=\"rp-error\">ID token: {err}</p>")).into_response()
        }
    };
    let email = claims
        .email()
        .map(|e| e.as_str().to_owned())
        .unwrap_or_default();
    let raw: Value = serde_json::to_value(claims).expect("claims");
    {
        let mut memory = app.memory.lock().expect("memory");
        memory.id_token = Some(id_token.to_string());
        memory.claims = Some(json!({"claims": raw, "iss_in_response": answer.iss}));
    }
    page(&format!(
        "<p>Signed in as <span id=\"rp-user\">{email}</span></p>\
         <a id=\"rp-logout\" href=\"/logout\">Sign out</a>"
    ))
    .into_response()
}

async fn logout(State(app): State<TestApp>) -> Redirect {
    let id_token = app
        .memory
        .lock()
        .expect("memory")
        .id_token
        .clone()
        .unwrap_or_default();
    let query = serde_urlencoded::to_string([
        ("id_token_hint", id_token.as_str()),
        (
            "post_logout_redirect_uri",
            &format!("{}/signed-out", app.base),
        ),
        ("state", "bye-42"),
    ])
    .expect("query");
    Redirect::to(&format!("{}?{query}", app.end_session))
}

#[derive(serde::Deserialize)]
struct SignedOut {
    state: Option<String>,
}

async fn signed_out(Query(query): Query<SignedOut>) -> Html<String> {
    page(&format!(
        "<p id=\"rp-signed-out\">Signed out ({})</p>",
        query.state.unwrap_or_default()
    ))
}

/// Registers the app with authd and starts it on a loopback port.
async fn start_test_app(env: &Env) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind app");
    let base = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let response = env
        .server
        .operator(reqwest::Method::POST, "/v1/clients")
        .json(&json!({
            "name": "Photo album",
            "type": "confidential",
            "redirect_uris": [format!("{base}/callback")],
            "post_logout_redirect_uris": [format!("{base}/signed-out")],
            "consent": "explicit",
        }))
        .send()
        .await
        .expect("create client");
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("json");

    let http = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .expect("http");
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(env.base.clone()).expect("issuer"),
        &http,
    )
    .await
    .expect("discovery");
    let end_session = format!("{}/oauth/end_session", env.base);
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(created["client_id"].as_str().expect("id").to_owned()),
        Some(ClientSecret::new(
            created["client_secret"]
                .as_str()
                .expect("secret")
                .to_owned(),
        )),
    )
    .set_redirect_uri(RedirectUrl::new(format!("{base}/callback")).expect("redirect"));
    let app = TestApp {
        client: Arc::new(client),
        http,
        memory: Arc::default(),
        base,
        end_session,
    };
    let router = axum::Router::new()
        .route("/start", get(start_sign_in))
        .route("/callback", get(callback))
        .route("/logout", get(logout))
        .route("/signed-out", get(signed_out))
        .with_state(app.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    app
}

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn an_app_signs_a_person_in_through_authd_with_totp_and_consent_then_signs_out() {
    let Some(env) = Env::start_as_issuer().await else {
        return;
    };
    let (mut totp, _) = enroll_totp_over_api(&env.server, "ivy@example.com").await;
    let app = start_test_app(&env).await;
    let b = env.browser("app-sign-in").await;

    // The app sends the browser to authd, which has no session: its sign-in.
    b.open(&format!("{}/start", app.base)).await;
    b.wait_page("login").await;
    let url = b.current_url().await;
    assert!(url.contains("return_to=%2Foauth%2Fauthorize"), "{url}");
    submit_login(&b, "ivy@example.com", GOOD_PASSWORD).await;
    b.wait_for("#login-page[data-step=\"mfa\"] #mfa-step").await;
    b.fill("#mfa-code", &totp.next_code().await).await;
    b.click("#mfa-submit").await;

    // Explicit consent, asked once.
    b.wait_page("consent").await;
    assert!(b.text("#consent-page").await.contains("Photo album"));
    capture(&b, "consent").await;
    b.click("#consent-allow").await;

    // Back at the app, which verified the ID token it got.
    let user = b.wait_for("#rp-user").await;
    assert_eq!(user.text().await, "ivy@example.com");
    let learned = app
        .memory
        .lock()
        .expect("memory")
        .claims
        .clone()
        .expect("claims");
    assert_eq!(learned["iss_in_response"], env.base.as_str(), "RFC 9207");
    let amr = learned["claims"]["amr"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for method in ["pwd", "otp", "mfa"] {
        assert!(amr.contains(&json!(method)), "amr {amr:?}");
    }
    assert_eq!(learned["claims"]["acr"], "mfa");

    // A second sign-in to the app needs neither the password nor consent.
    b.open(&format!("{}/start", app.base)).await;
    b.wait_for("#rp-user").await;

    // The app's sign-out ends the authd session as well.
    b.click("#rp-logout").await;
    b.wait_text("#rp-signed-out", "Signed out (bye-42)").await;
    b.goto("/account").await;
    b.wait_page("login").await;

    env.finish(&[&b]).await;
}

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn a_person_approves_a_device_by_typing_its_code() {
    let Some(env) = Env::start_as_issuer().await else {
        return;
    };
    env.server.register_ok("tv@example.com").await;
    let created: Value = env
        .server
        .operator(reqwest::Method::POST, "/v1/clients")
        .json(&json!({
            "name": "Living-room TV",
            "type": "public",
            "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"],
            "consent": "implicit",
        }))
        .send()
        .await
        .expect("create client")
        .json()
        .await
        .expect("json");
    let client_id = created["client_id"].as_str().expect("id").to_owned();
    let start: Value = env
        .server
        .post("/oauth/device_authorization")
        .form(&[
            ("client_id", client_id.as_str()),
            ("scope", "openid profile"),
        ])
        .send()
        .await
        .expect("device authorization")
        .json()
        .await
        .expect("json");
    let user_code = start["user_code"].as_str().expect("user code");

    // Not signed in: the device page sends the person to sign in first, and
    // back, with the code they followed kept.
    let b = env.browser("device").await;
    b.goto(&format!("/device?user_code={user_code}")).await;
    b.wait_page("login").await;
    submit_login(&b, "tv@example.com", GOOD_PASSWORD).await;
    b.wait_page("device").await;
    let typed = b.wait_for("#device-code").await.property("value").await;
    assert_eq!(typed, json!(user_code));
    b.wait_text("[data-test=signed-in-email]", "tv@example.com")
        .await;
    b.fill("#device-code", "BCDF-GGGG").await;
    b.click("#device-submit").await;
    b.wait_text("#device-error", "That code is not valid or has expired.")
        .await;
    b.fill("#device-code", user_code).await;
    b.click("#device-submit").await;
    b.wait_text("#device-client", "Living-room TV").await;
    capture(&b, "device").await;
    b.click("#device-allow").await;
    b.wait_for("#device-done[data-approved=\"true\"]").await;

    let tokens: Value = env
        .server
        .post("/oauth/token")
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", start["device_code"].as_str().expect("code")),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    assert!(tokens["access_token"].is_string(), "{tokens}");

    // Already signed in: a link through the sign-in page to an authd page
    // goes straight on, without asking for the password again.
    b.goto("/login?return_to=%2Fdevice").await;
    b.wait_page("device").await;
    b.wait_text("[data-test=signed-in-email]", "tv@example.com")
        .await;

    env.finish(&[&b]).await;
}

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn the_operator_registers_an_app_in_the_console_and_a_person_revokes_it() {
    let Some(env) = Env::start_as_issuer().await else {
        return;
    };
    env.server.register_ok("joe@example.com").await;

    // The console: create a client, see its secret once, edit, delete.
    let op = env.browser("console-clients").await;
    op.goto("/admin").await;
    op.wait_page("admin-login").await;
    op.fill("#admin-token-input", &env.server.admin_token())
        .await;
    op.click("#admin-token-submit").await;
    op.wait_page("admin-overview").await;
    op.click("#admin-nav a[data-test=\"admin-nav-clients\"]")
        .await;
    op.wait_page("admin-clients").await;
    op.fill("#client-name", "Wiki").await;
    op.fill("#client-redirect-uris", "http://wiki.home.test/cb")
        .await;
    op.click("#client-create").await;
    op.wait_text(
        "#clients-message",
        "Redirect uris \"http://wiki.home.test/cb\" http is only allowed for loopback hosts \
         (127.0.0.1, [::1], localhost).",
    )
    .await;
    op.fill("#client-redirect-uris", "https://wiki.home.test/cb")
        .await;
    op.click("#client-create").await;
    let secret = op.wait_for("#client-secret-value").await.text().await;
    assert!(secret.len() >= 32, "{secret}");
    let row = op.wait_for("#clients-list tr[data-client-id]").await;
    let client_id = row.attribute("data-client-id").await.expect("id");
    capture(&op, "admin-clients").await;
    // The secret works at the token endpoint (client_credentials is off:
    // unauthorized_client, not invalid_client).
    let answer = env
        .server
        .post("/oauth/token")
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body["error"], "unauthorized_client", "{body}");
    op.click(&format!(
        "#clients-list tr[data-client-id=\"{client_id}\"] [data-test=\"client-edit\"]"
    ))
    .await;
    op.fill(
        "#client-edit-redirect-uris",
        "https://wiki.home.test/cb\nhttps://wiki.home.test/cb2",
    )
    .await;
    op.click("#client-edit-save").await;
    op.wait_text("#clients-message", "Wiki was saved.").await;
    let stored = env
        .server
        .operator_get(&format!("/v1/clients/{client_id}"))
        .await;
    assert_eq!(stored["redirect_uris"].as_array().map(Vec::len), Some(2));
    op.click(&format!(
        "#clients-list tr[data-client-id=\"{client_id}\"] [data-test=\"client-delete\"]"
    ))
    .await;
    op.click("#confirm-ok").await;
    op.wait_text("#clients-message", "Wiki was deleted.").await;

    // The forward-auth view shows the rules (none configured here).
    op.goto("/admin/forward-auth").await;
    op.wait_page("admin-forward-auth").await;
    op.wait_text(
        "#forward-auth-summary",
        "Default for hosts no rule names: deny. Cookie domain: authd’s own host.",
    )
    .await;

    // A person signs in to an app, then revokes it from the account page.
    let app = start_test_app(&env).await;
    let b = env.browser("connected-apps").await;
    b.open(&format!("{}/start", app.base)).await;
    b.wait_page("login").await;
    submit_login(&b, "joe@example.com", GOOD_PASSWORD).await;
    b.wait_page("consent").await;
    b.click("#consent-allow").await;
    b.wait_for("#rp-user").await;
    b.goto("/account#section-apps").await;
    b.wait_page("account").await;
    let connected = b.wait_for("#connected-apps li[data-client-id]").await;
    assert!(connected.text().await.contains("Photo album"));
    capture(&b, "account-connected-apps").await;
    b.click("#connected-apps [data-test=\"connected-app-revoke\"]")
        .await;
    b.click("#confirm-ok").await;
    b.wait_text("#apps-message", "Photo album no longer has access.")
        .await;
    // Asked again next time.
    b.open(&format!("{}/start", app.base)).await;
    b.wait_page("consent").await;

    env.finish(&[&op, &b]).await;
}
