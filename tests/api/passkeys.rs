//! Passkeys through the real server: adding one from the account API,
//! signing in with it alone (discoverable, user verification required),
//! the ways that must fail, and accounts without a password that get their
//! first passkey from the operator's enrollment link.
//!
//! webauthn-authenticator-rs's `SoftPasskey` plays the authenticator. It
//! cannot keep a resident credential, so this file plays that part of a
//! passkey: it tells the soft key which credential to use (a browser finds
//! it by discovery) and attaches the user handle the credential was
//! registered with (an authenticator returns it; it is not signed).
//! Everything the server checks — challenge, origin, signature, flags,
//! counter — is the soft key's real output.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

use crate::helpers::{
    assert_error, call, cookies_of, TestServer, FAST_HASHING, GOOD_PASSWORD, RELAXED_LIMITS,
};

async fn server() -> TestServer {
    TestServer::spawn_with(&format!(
        "{FAST_HASHING}\n{RELAXED_LIMITS}\n[webauthn]\nallow_any_port = true\n"
    ))
    .await
}

fn origin() -> Url {
    Url::parse("http://localhost:9090").expect("url")
}

/// A person's passkey: the soft key, its credential id and the user handle
/// (the user id) a discoverable credential would hand back.
struct Passkey {
    key: SoftPasskey,
    credential_id: String,
    user_handle: String,
}

/// Answers creation options the way a passkey authenticator would. The
/// options must ask for a discoverable credential and user verification.
fn create(options: Value, user_id: &str) -> (String, Value, Passkey) {
    let mut options = options;
    let ceremony_id = options["ceremony_id"]
        .as_str()
        .expect("ceremony")
        .to_owned();
    let selection = &options["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required", "{options}");
    assert_eq!(selection["requireResidentKey"], true);
    assert_eq!(selection["userVerification"], "required");
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = json!(false);
    options
        .as_object_mut()
        .expect("object")
        .remove("ceremony_id");
    let challenge: CreationChallengeResponse =
        serde_json::from_value(options).expect("creation options");
    let mut key = SoftPasskey::new(true);
    let credential = key
        .do_registration(origin(), challenge)
        .expect("authenticator registers");
    let credential = serde_json::to_value(credential).expect("json");
    let credential_id = credential["id"].as_str().expect("id").to_owned();
    let user_handle =
        URL_SAFE_NO_PAD.encode(uuid::Uuid::parse_str(user_id).expect("uuid").as_bytes());
    (
        ceremony_id,
        credential,
        Passkey {
            key,
            credential_id,
            user_handle,
        },
    )
}

/// Adds a passkey to the account of `access` (no second factor yet, so no
/// proof is asked); returns the stored item and the passkey.
async fn add_passkey(server: &TestServer, access: &str, name: &str) -> (Value, Passkey) {
    let profile: Value = call(server, Method::GET, "/api/account", access, None, None)
        .await
        .json()
        .await
        .expect("json");
    let options: Value = call(
        server,
        Method::POST,
        "/api/account/webauthn/register",
        access,
        None,
        Some(json!({"kind": "passkey"})),
    )
    .await
    .json()
    .await
    .expect("json");
    let (ceremony_id, credential, passkey) = create(options, profile["id"].as_str().expect("id"));
    let response = call(
        server,
        Method::POST,
        "/api/account/webauthn",
        access,
        None,
        Some(json!({"ceremony_id": ceremony_id, "name": name, "credential": credential})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    (response.json().await.expect("json"), passkey)
}

/// How an assertion is to be made, to play the ways one must fail.
#[derive(Clone, Copy, PartialEq)]
enum Assert {
    AsABrowserWould,
    WithoutUserVerification,
    ForAnotherOrigin,
}

/// `/webauthn/login/options`: the ceremony id and the options.
async fn sign_in_options(server: &TestServer) -> (String, Value) {
    let response = server
        .post("/webauthn/login/options")
        .json(&json!({}))
        .send()
        .await
        .expect("options");
    assert_eq!(response.status(), StatusCode::OK);
    let mut options: Value = response.json().await.expect("json");
    let ceremony_id = options["ceremony_id"]
        .as_str()
        .expect("ceremony")
        .to_owned();
    options
        .as_object_mut()
        .expect("object")
        .remove("ceremony_id");
    (ceremony_id, options)
}

/// The passkey's answer to `options`.
fn assertion(passkey: &mut Passkey, options: &Value, how: Assert) -> Value {
    let mut options = options.clone();
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert_eq!(
        options["publicKey"]["allowCredentials"],
        json!([]),
        "no identity: the authenticator discovers the credential"
    );
    options["publicKey"]["allowCredentials"] =
        json!([{"type": "public-key", "id": passkey.credential_id}]);
    if how == Assert::WithoutUserVerification {
        options["publicKey"]["userVerification"] = json!("discouraged");
    }
    // A look-alike site relays the options under its own name (the soft
    // key, unlike a real one, signs for any relying party it is shown).
    if how == Assert::ForAnotherOrigin {
        options["publicKey"]["rpId"] = json!("evil.example");
    }
    let request: RequestChallengeResponse =
        serde_json::from_value(options).expect("request options");
    let origin = match how {
        Assert::ForAnotherOrigin => Url::parse("https://evil.example").expect("url"),
        _ => origin(),
    };
    let signed = passkey
        .key
        .do_authentication(origin, request)
        .expect("authenticator signs");
    let mut signed = serde_json::to_value(signed).expect("json");
    signed["response"]["userHandle"] = json!(passkey.user_handle);
    signed
}

async fn post_sign_in(
    server: &TestServer,
    path: &str,
    ceremony_id: &str,
    credential: &Value,
) -> reqwest::Response {
    server
        .post(path)
        .json(&json!({"ceremony_id": ceremony_id, "credential": credential}))
        .send()
        .await
        .expect("sign in")
}

/// A fresh ceremony answered by `passkey`: `/webauthn/login`'s response.
async fn sign_in(server: &TestServer, passkey: &mut Passkey, how: Assert) -> reqwest::Response {
    let (ceremony_id, options) = sign_in_options(server).await;
    let credential = assertion(passkey, &options, how);
    post_sign_in(server, "/webauthn/login", &ceremony_id, &credential).await
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json")
}

/// A user with a password and one passkey: their access token and passkey.
async fn user_with_passkey(server: &TestServer, email: &str) -> (String, Passkey) {
    server.register_ok(email).await;
    let tokens = server.login_ok(email).await;
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    let (_, passkey) = add_passkey(server, &access, "Laptop").await;
    (access, passkey)
}

#[tokio::test]
async fn a_passkey_signs_in_alone_and_counts_as_multi_factor() {
    let server = server().await;
    server.register_ok("pia@example.com").await;
    let tokens = server.login_ok("pia@example.com").await;
    let access = tokens["access_token"].as_str().expect("access");
    let (item, mut passkey) = add_passkey(&server, access, "Phone").await;
    assert_eq!(item["kind"], "passkey");
    assert_eq!(item["name"], "Phone");

    let answer = sign_in(&server, &mut passkey, Assert::AsABrowserWould).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let signed_in: Value = answer.json().await.expect("json");
    for field in ["access_token", "refresh_token", "session_id", "expires_in"] {
        assert!(
            !signed_in[field].is_null(),
            "{field} as /login answers: {signed_in}"
        );
    }
    assert_eq!(signed_in["token_type"], "Bearer");
    let new_access = signed_in["access_token"].as_str().expect("access");
    assert_eq!(claims_of(new_access)["amr"], json!(["hwk", "user", "mfa"]));
    assert_eq!(server.account_status(new_access).await, StatusCode::OK);
    let sessions: Value = call(
        &server,
        Method::GET,
        "/api/account/sessions",
        new_access,
        None,
        None,
    )
    .await
    .json()
    .await
    .expect("json");
    let current = sessions["items"]
        .as_array()
        .and_then(|items| items.iter().find(|s| s["current"] == true).cloned())
        .expect("current session");
    assert_eq!(current["mfa_verified"], true);

    // The refresh token carries on the same session and its amr.
    let refreshed: Value = server
        .refresh(signed_in["refresh_token"].as_str().expect("refresh"))
        .await
        .json()
        .await
        .expect("json");
    let refreshed_access = refreshed["access_token"].as_str().expect("access");
    assert_eq!(
        claims_of(refreshed_access)["amr"],
        json!(["hwk", "user", "mfa"])
    );

    // It signs in again (the counter moves on), and both are audited.
    let again = sign_in(&server, &mut passkey, Assert::AsABrowserWould).await;
    assert_eq!(again.status(), StatusCode::OK);
    let logins = server.audit_events("type=user.login").await;
    let by_passkey = logins
        .iter()
        .filter(|e| e["details"]["method"] == "passkey")
        .count();
    assert_eq!(by_passkey, 2, "{logins:?}");
    assert!(logins.iter().any(|e| e["details"]["method"] == "password"));

    // A password login now needs a second factor, which the passkey is
    // (a passkey verifies its user there too: it was registered so).
    let step = server
        .login(json!({"email": "pia@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(step.status(), StatusCode::ACCEPTED);
    let step: Value = step.json().await.expect("json");
    assert_eq!(step["methods"], json!(["webauthn"]));
    let mfa_token = step["mfa_token"].as_str().expect("mfa_token");
    let mut options: Value = server
        .post("/mfa/webauthn/options")
        .json(&json!({"mfa_token": mfa_token}))
        .send()
        .await
        .expect("options")
        .json()
        .await
        .expect("json");
    options["publicKey"]["userVerification"] = json!("required");
    let request: RequestChallengeResponse = serde_json::from_value(options).expect("options");
    let second = passkey
        .key
        .do_authentication(origin(), request)
        .expect("authenticator signs");
    let answer = server
        .post("/mfa/challenge")
        .json(&json!({"mfa_token": mfa_token, "webauthn": second}))
        .send()
        .await
        .expect("challenge");
    assert_eq!(answer.status(), StatusCode::OK);
    let tokens: Value = answer.json().await.expect("json");
    let amr = claims_of(tokens["access_token"].as_str().expect("access"))["amr"].clone();
    assert_eq!(amr, json!(["pwd", "hwk", "mfa"]));
}

#[tokio::test]
async fn the_browser_gets_the_session_cookie_and_never_a_token() {
    let server = server().await;
    let (_, mut passkey) = user_with_passkey(&server, "bo@example.com").await;
    let (ceremony_id, options) = sign_in_options(&server).await;
    let credential = assertion(&mut passkey, &options, Assert::AsABrowserWould);
    let response = post_sign_in(&server, "/ui/api/passkey", &ceremony_id, &credential).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookies = cookies_of(response.headers());
    assert!(
        cookies.iter().any(|c| c.contains("HttpOnly")),
        "{cookies:?}"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["profile"]["email"], "bo@example.com");
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
}

#[tokio::test]
async fn a_ceremony_is_good_once_and_only_for_its_own_answer() {
    let server = server().await;
    let (_, mut passkey) = user_with_passkey(&server, "cy@example.com").await;

    // Used once: the same ceremony and answer again fail.
    let (ceremony_id, options) = sign_in_options(&server).await;
    let credential = assertion(&mut passkey, &options, Assert::AsABrowserWould);
    let first = post_sign_in(&server, "/webauthn/login", &ceremony_id, &credential).await;
    assert_eq!(first.status(), StatusCode::OK);
    let replayed = post_sign_in(&server, "/webauthn/login", &ceremony_id, &credential).await;
    assert_error(replayed, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // An answer to one ceremony does not finish another (its challenge).
    let (_, options) = sign_in_options(&server).await;
    let (other_ceremony, _) = sign_in_options(&server).await;
    let credential = assertion(&mut passkey, &options, Assert::AsABrowserWould);
    let foreign = post_sign_in(&server, "/webauthn/login", &other_ceremony, &credential).await;
    assert_error(foreign, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // A handle the server never gave out.
    let made_up = post_sign_in(
        &server,
        "/webauthn/login",
        "bm90LWEtY2VyZW1vbnk",
        &credential,
    )
    .await;
    assert_error(made_up, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    let failures = server.audit_events("type=user.login_failed").await;
    let reasons: Vec<&str> = failures
        .iter()
        .filter(|e| e["details"]["method"] == "passkey")
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert_eq!(reasons.len(), 3, "{failures:?}");
    assert!(reasons.contains(&"unknown_ceremony") && reasons.contains(&"bad_assertion"));
}

#[tokio::test]
async fn another_origin_and_an_unverified_user_are_refused() {
    let server = server().await;
    let (_, mut passkey) = user_with_passkey(&server, "di@example.com").await;
    let phished = sign_in(&server, &mut passkey, Assert::ForAnotherOrigin).await;
    assert_error(phished, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let presence_only = sign_in(&server, &mut passkey, Assert::WithoutUserVerification).await;
    assert_error(
        presence_only,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    // The passkey itself still works: the failures were the assertions'.
    let good = sign_in(&server, &mut passkey, Assert::AsABrowserWould).await;
    assert_eq!(good.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_removed_passkey_a_disabled_user_and_a_security_key_do_not_sign_in() {
    let server = server().await;
    let (access, mut removed) = user_with_passkey(&server, "ed@example.com").await;
    let listed: Value = call(
        &server,
        Method::GET,
        "/api/account/webauthn",
        &access,
        None,
        None,
    )
    .await
    .json()
    .await
    .expect("json");
    let id = listed["items"][0]["id"].as_str().expect("id");
    let gone = call(
        &server,
        Method::DELETE,
        &format!("/api/account/webauthn/{id}"),
        &access,
        None,
        Some(json!({"password": GOOD_PASSWORD})),
    )
    .await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let refused = sign_in(&server, &mut removed, Assert::AsABrowserWould).await;
    assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    let (_, mut passkey) = user_with_passkey(&server, "fay@example.com").await;
    let user = server.operator_get("/v1/users?q=fay").await["items"][0].clone();
    assert_eq!(user["webauthn"], Value::Null, "lists stay small");
    let user_id = user["id"].as_str().expect("id");
    let detail = server.operator_get(&format!("/v1/users/{user_id}")).await;
    assert_eq!(detail["webauthn"][0]["kind"], "passkey", "{detail}");
    let disabled = server
        .operator_json(
            Method::PATCH,
            &format!("/v1/users/{user_id}"),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    let refused = sign_in(&server, &mut passkey, Assert::AsABrowserWould).await;
    assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // A security key added as a second factor was never a passkey.
    server.register_ok("gus@example.com").await;
    let tokens = server.login_ok("gus@example.com").await;
    let access = tokens["access_token"].as_str().expect("access");
    let profile: Value = call(&server, Method::GET, "/api/account", access, None, None)
        .await
        .json()
        .await
        .expect("json");
    let mut options: Value = call(
        &server,
        Method::POST,
        "/api/account/webauthn/register",
        access,
        None,
        Some(json!({})),
    )
    .await
    .json()
    .await
    .expect("json");
    let ceremony_id = options["ceremony_id"]
        .as_str()
        .expect("ceremony")
        .to_owned();
    options
        .as_object_mut()
        .expect("object")
        .remove("ceremony_id");
    let mut key = SoftPasskey::new(true);
    let credential = key
        .do_registration(origin(), serde_json::from_value(options).expect("options"))
        .expect("registers");
    let credential = serde_json::to_value(credential).expect("json");
    let added = call(
        &server,
        Method::POST,
        "/api/account/webauthn",
        access,
        None,
        Some(json!({"ceremony_id": ceremony_id, "credential": credential})),
    )
    .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    assert_eq!(
        added.json::<Value>().await.expect("json")["kind"],
        "security_key"
    );
    let mut security_key = Passkey {
        key,
        credential_id: credential["id"].as_str().expect("id").to_owned(),
        user_handle: URL_SAFE_NO_PAD.encode(
            uuid::Uuid::parse_str(profile["id"].as_str().expect("id"))
                .expect("uuid")
                .as_bytes(),
        ),
    };
    let refused = sign_in(&server, &mut security_key, Assert::AsABrowserWould).await;
    assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

#[tokio::test]
async fn an_account_without_a_password_enrolls_by_link_and_keeps_its_last_passkey() {
    let server = server().await;
    // Only where the org allows it.
    let refused = server
        .operator_json(
            Method::POST,
            "/v1/users",
            json!({"email": "hal@example.com"}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["fields"][0]["field"], "password", "{body}");
    let allowed = server
        .operator_json(
            Method::PATCH,
            "/v1/orgs/default",
            json!({"allow_passwordless": true}),
        )
        .await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        allowed.json::<Value>().await.expect("json")["allow_passwordless"],
        true
    );
    let created = server
        .operator_json(
            Method::POST,
            "/v1/users",
            json!({"email": "hal@example.com"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let user: Value = created.json().await.expect("json");
    assert_eq!(user["passkeys_only"], true);
    let user_id = user["id"].as_str().expect("id");

    // Its password login fails exactly like a wrong password.
    let password = server
        .login(json!({"email": "hal@example.com", "password": GOOD_PASSWORD}))
        .await;
    let body = assert_error(password, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let wrong = server
        .login(json!({"email": "nobody@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(wrong.json::<Value>().await.expect("json"), body);

    // The operator's link, good once.
    let link = server
        .operator_json(
            Method::POST,
            &format!("/v1/users/{user_id}/passkey-link"),
            json!({}),
        )
        .await;
    assert_eq!(link.status(), StatusCode::CREATED);
    let link: Value = link.json().await.expect("json");
    let url = link["url"].as_str().expect("url");
    let (page, token) = url.split_once('#').expect("token in the fragment");
    assert!(page.ends_with("/enroll"), "{url}");
    assert!(link["expires_at"].is_string());
    let options: Value = server
        .post("/webauthn/enroll/options")
        .json(&json!({"token": token}))
        .send()
        .await
        .expect("options")
        .json()
        .await
        .expect("json");
    let (ceremony_id, credential, mut passkey) = create(options, user_id);
    let enrolled = server
        .post("/webauthn/enroll")
        .json(&json!({"token": token, "ceremony_id": ceremony_id, "name": "Phone", "credential": credential}))
        .send()
        .await
        .expect("enroll");
    assert_eq!(enrolled.status(), StatusCode::CREATED);
    let again = server
        .post("/webauthn/enroll/options")
        .json(&json!({"token": token}))
        .send()
        .await
        .expect("options");
    assert_error(again, StatusCode::BAD_REQUEST, "invalid_request").await;
    let issued = server.audit_events("type=passkey.link_issued").await;
    assert_eq!(issued.len(), 1);
    assert!(
        !issued[0].to_string().contains(token),
        "no token in the audit"
    );

    // It signs in with the passkey, renames it, and may not remove the last.
    let signed_in: Value = sign_in(&server, &mut passkey, Assert::AsABrowserWould)
        .await
        .json()
        .await
        .expect("json");
    let access = signed_in["access_token"].as_str().expect("access");
    let listed: Value = call(
        &server,
        Method::GET,
        "/api/account/webauthn",
        access,
        None,
        None,
    )
    .await
    .json()
    .await
    .expect("json");
    let id = listed["items"][0]["id"].as_str().expect("id").to_owned();
    let renamed = call(
        &server,
        Method::PATCH,
        &format!("/api/account/webauthn/{id}"),
        access,
        None,
        Some(json!({"name": "Work phone"})),
    )
    .await;
    assert_eq!(
        renamed.json::<Value>().await.expect("json")["name"],
        "Work phone"
    );
    // The proof an account without a password has: its passkey again.
    let (proof_ceremony, options) = sign_in_options(&server).await;
    let proof = assertion(&mut passkey, &options, Assert::AsABrowserWould);
    let last = call(
        &server,
        Method::DELETE,
        &format!("/api/account/webauthn/{id}"),
        access,
        None,
        Some(json!({"passkey": {"ceremony_id": proof_ceremony, "credential": proof}})),
    )
    .await;
    assert_error(last, StatusCode::CONFLICT, "conflict").await;
    let disable_all = call(
        &server,
        Method::DELETE,
        "/api/account/mfa",
        access,
        None,
        Some(json!({"password": GOOD_PASSWORD})),
    )
    .await;
    assert_eq!(
        disable_all.status(),
        StatusCode::BAD_REQUEST,
        "no password to prove with"
    );
    let still = sign_in(&server, &mut passkey, Assert::AsABrowserWould).await;
    assert_eq!(still.status(), StatusCode::OK);
}

#[tokio::test]
async fn one_address_cannot_hoard_sign_in_ceremonies() {
    let server = server().await;
    for _ in 0..64 {
        sign_in_options(&server).await;
    }
    let over = server
        .post("/webauthn/login/options")
        .json(&json!({}))
        .send()
        .await
        .expect("options");
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(over.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn a_credential_the_browser_says_is_not_discoverable_is_no_passkey() {
    let server = server().await;
    server.register_ok("ivy@example.com").await;
    let tokens = server.login_ok("ivy@example.com").await;
    let access = tokens["access_token"].as_str().expect("access");
    let profile: Value = call(&server, Method::GET, "/api/account", access, None, None)
        .await
        .json()
        .await
        .expect("json");
    let options: Value = call(
        &server,
        Method::POST,
        "/api/account/webauthn/register",
        access,
        None,
        Some(json!({"kind": "passkey"})),
    )
    .await
    .json()
    .await
    .expect("json");
    let (ceremony_id, mut credential, _) = create(options, profile["id"].as_str().expect("id"));
    // credProps is the browser's word (unsigned): a usability check, so
    // that nobody keeps a "passkey" that could never sign in alone.
    credential["extensions"]["credProps"] = json!({"rk": false});
    let refused = call(
        &server,
        Method::POST,
        "/api/account/webauthn",
        access,
        None,
        Some(json!({"ceremony_id": ceremony_id, "credential": credential})),
    )
    .await;
    let body = assert_error(refused, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_eq!(body["fields"][0]["field"], "credential", "{body}");
    assert!(
        body["fields"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not discoverable")),
        "{body}"
    );
}

#[tokio::test]
async fn a_lockout_from_wrong_passwords_does_not_stop_a_passkey_but_the_operators_lock_does() {
    let server = TestServer::spawn_with(&format!(
        "{FAST_HASHING}\n[limits]\nlogin_per_ip_per_min = 100000\n\
         login_per_account_per_min = 100000\nlockout_threshold = 3\n\
         [webauthn]\nallow_any_port = true\n"
    ))
    .await;
    let (_, mut passkey) = user_with_passkey(&server, "jo@example.com").await;
    for _ in 0..3 {
        let wrong = server
            .login(json!({"email": "jo@example.com", "password": "Wrong-Horse-42"}))
            .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let locked_out = server
        .login(json!({"email": "jo@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_error(locked_out, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let user = server.operator_get("/v1/users?q=jo@").await["items"][0].clone();
    assert_eq!(user["locked"], true, "the wrong passwords locked it");
    let passkey_in = sign_in(&server, &mut passkey, Assert::AsABrowserWould).await;
    assert_eq!(
        passkey_in.status(),
        StatusCode::OK,
        "anyone can set off a lockout"
    );

    let user_id = user["id"].as_str().expect("id");
    let locked = server
        .operator_json(
            Method::POST,
            &format!("/v1/users/{user_id}/lock"),
            json!({}),
        )
        .await;
    assert!(locked.status().is_success());
    let refused = sign_in(&server, &mut passkey, Assert::AsABrowserWould).await;
    assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let failures = server.audit_events("type=user.login_failed").await;
    assert_eq!(failures[0]["reason"], "locked");
    assert_eq!(failures[0]["details"]["method"], "passkey");
}

#[tokio::test]
async fn an_id_token_from_a_passkey_says_how_the_person_signed_in() {
    let server = server().await;
    let (_, mut passkey) = user_with_passkey(&server, "kit@example.com").await;
    let (ceremony_id, options) = sign_in_options(&server).await;
    let credential = assertion(&mut passkey, &options, Assert::AsABrowserWould);
    let response = server
        .post("/webauthn/login")
        .json(&json!({
            "ceremony_id": ceremony_id,
            "credential": credential,
            "scope": "openid",
            "nonce": "n-0S6_WzA2Mj",
        }))
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.expect("json");
    let id_token = claims_of(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(id_token["amr"], json!(["hwk", "user", "mfa"]));
    assert_eq!(id_token["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(id_token["email"], "kit@example.com");
}
