//! WebAuthn as a second factor through the real server, with a software
//! authenticator (webauthn-authenticator-rs's `SoftPasskey`) playing the
//! browser and the key: register, list, rename, remove, and the assertion at
//! the `mfa_token` step.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

use crate::helpers::{call, TestServer, FAST_HASHING, GOOD_PASSWORD, RELAXED_LIMITS};

/// The default `public_url` is http://localhost:9090; the test server listens
/// elsewhere, so any port on localhost is allowed.
async fn server() -> TestServer {
    TestServer::spawn_with(&format!(
        "{FAST_HASHING}\n{RELAXED_LIMITS}\n[webauthn]\nallow_any_port = true\n"
    ))
    .await
}

fn origin() -> Url {
    Url::parse("http://localhost:9090").expect("url")
}

fn authenticator() -> SoftPasskey {
    SoftPasskey::new(true)
}

/// Registers a key for the holder of `access`; returns the stored item.
async fn register_key(
    server: &TestServer,
    access: &str,
    key: &mut SoftPasskey,
    name: &str,
) -> Value {
    let mut options: Value = call(
        server,
        Method::POST,
        "/api/account/webauthn/register",
        access,
        None,
        Some(json!({"password": GOOD_PASSWORD})),
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
    let challenge: CreationChallengeResponse =
        serde_json::from_value(options).expect("creation options");
    let credential = key
        .do_registration(origin(), challenge)
        .expect("authenticator registers");
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
    response.json().await.expect("json")
}

/// Password, then the key: returns the token set of `/mfa/challenge`'s answer.
async fn sign_in_with_key(
    server: &TestServer,
    email: &str,
    key: &mut SoftPasskey,
) -> reqwest::Response {
    let step: Value = server
        .login(json!({"email": email, "password": GOOD_PASSWORD}))
        .await
        .json()
        .await
        .expect("json");
    let mfa_token = step["mfa_token"].as_str().expect("mfa_token");
    let options = server
        .post("/mfa/webauthn/options")
        .json(&json!({"mfa_token": mfa_token}))
        .send()
        .await
        .expect("options");
    assert_eq!(options.status(), StatusCode::OK);
    let request: RequestChallengeResponse = options.json().await.expect("request options");
    let assertion = key
        .do_authentication(origin(), request)
        .expect("authenticator signs");
    server
        .post("/mfa/challenge")
        .json(&json!({"mfa_token": mfa_token, "webauthn": assertion}))
        .send()
        .await
        .expect("challenge")
}

#[tokio::test]
async fn a_security_key_registers_then_answers_the_mfa_step() {
    let server = server().await;
    server.register_ok("kim@example.com").await;
    let tokens = server.login_ok("kim@example.com").await;
    let access = tokens["access_token"].as_str().expect("access");
    let mut key = authenticator();

    let item = register_key(&server, access, &mut key, "YubiKey 5").await;
    assert_eq!(item["name"], "YubiKey 5");
    assert!(item["last_used_at"].is_null());
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
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    let profile: Value = call(&server, Method::GET, "/api/account", access, None, None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(profile["mfa_enrolled"], true);
    assert_eq!(profile["mfa_methods"], json!(["webauthn"]), "a key, no app");
    assert_eq!(profile["orgs"][0]["slug"], "default");
    assert_eq!(profile["orgs"][0]["name"], "Default");

    // Password alone is no longer enough: the key is offered.
    let step = server
        .login(json!({"email": "kim@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(step.status(), StatusCode::ACCEPTED);
    let step: Value = step.json().await.expect("json");
    assert_eq!(step["methods"], json!(["webauthn"]));

    let answer = sign_in_with_key(&server, "kim@example.com", &mut key).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let signed_in: Value = answer.json().await.expect("json");
    let new_access = signed_in["access_token"].as_str().expect("access");
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
    let listed: Value = call(
        &server,
        Method::GET,
        "/api/account/webauthn",
        new_access,
        None,
        None,
    )
    .await
    .json()
    .await
    .expect("json");
    assert!(listed["items"][0]["last_used_at"].is_string(), "{listed}");

    // The key signs again next time (its counter moves on).
    let again = sign_in_with_key(&server, "kim@example.com", &mut key).await;
    assert_eq!(again.status(), StatusCode::OK);

    let types: Vec<String> = server
        .audit_events("type=webauthn.registered")
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(types, vec!["webauthn.registered"]);
}

#[tokio::test]
async fn an_assertion_is_good_once_and_only_for_its_own_login() {
    let server = server().await;
    server.register_ok("lee@example.com").await;
    let tokens = server.login_ok("lee@example.com").await;
    let access = tokens["access_token"].as_str().expect("access");
    let mut key = authenticator();
    register_key(&server, access, &mut key, "Key").await;

    // Login A gets options and an assertion.
    let step_a: Value = server
        .login(json!({"email": "lee@example.com", "password": GOOD_PASSWORD}))
        .await
        .json()
        .await
        .expect("json");
    let token_a = step_a["mfa_token"].as_str().expect("token");
    let request: RequestChallengeResponse = server
        .post("/mfa/webauthn/options")
        .json(&json!({"mfa_token": token_a}))
        .send()
        .await
        .expect("options")
        .json()
        .await
        .expect("json");
    let assertion = key.do_authentication(origin(), request).expect("signs");

    // Presented for login B (which asked for its own options): refused.
    let step_b: Value = server
        .login(json!({"email": "lee@example.com", "password": GOOD_PASSWORD}))
        .await
        .json()
        .await
        .expect("json");
    let token_b = step_b["mfa_token"].as_str().expect("token");
    let options_b = server
        .post("/mfa/webauthn/options")
        .json(&json!({"mfa_token": token_b}))
        .send()
        .await
        .expect("options");
    assert_eq!(options_b.status(), StatusCode::OK);
    let wrong = server
        .post("/mfa/challenge")
        .json(&json!({"mfa_token": token_b, "webauthn": assertion}))
        .send()
        .await
        .expect("challenge");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.json::<Value>().await.expect("json")["error"],
        "invalid_mfa_code"
    );

    // For login A it works, once.
    let right = server
        .post("/mfa/challenge")
        .json(&json!({"mfa_token": token_a, "webauthn": assertion}))
        .send()
        .await
        .expect("challenge");
    assert_eq!(right.status(), StatusCode::OK);
    let replay = server
        .post("/mfa/challenge")
        .json(&json!({"mfa_token": token_a, "webauthn": assertion}))
        .send()
        .await
        .expect("challenge");
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        replay.json::<Value>().await.expect("json")["error"],
        "invalid_mfa_token"
    );

    // A forged signature: the assertion of a fresh login with one byte changed.
    let step_c: Value = server
        .login(json!({"email": "lee@example.com", "password": GOOD_PASSWORD}))
        .await
        .json()
        .await
        .expect("json");
    let token_c = step_c["mfa_token"].as_str().expect("token");
    let request: RequestChallengeResponse = server
        .post("/mfa/webauthn/options")
        .json(&json!({"mfa_token": token_c}))
        .send()
        .await
        .expect("options")
        .json()
        .await
        .expect("json");
    let mut forged = serde_json::to_value(key.do_authentication(origin(), request).expect("signs"))
        .expect("json");
    // A byte of the signature, not a character of its base64url: changing
    // the last character can leave a non-canonical encoding, which is a
    // malformed request (422) rather than a bad signature.
    let mut signature = URL_SAFE_NO_PAD
        .decode(forged["response"]["signature"].as_str().expect("signature"))
        .expect("base64url");
    *signature.last_mut().expect("a signature") ^= 0x01;
    forged["response"]["signature"] = json!(URL_SAFE_NO_PAD.encode(signature));
    let stranger = server
        .post("/mfa/challenge")
        .json(&json!({"mfa_token": token_c, "webauthn": forged}))
        .send()
        .await
        .expect("challenge");
    assert_eq!(stranger.status(), StatusCode::UNAUTHORIZED);
    let failures = server.audit_events("type=mfa.challenge_failed").await;
    assert!(failures
        .iter()
        .any(|e| e["details"]["method"] == "webauthn"));
}

#[tokio::test]
async fn keys_are_renamed_removed_and_a_ceremony_is_used_once() {
    let server = server().await;
    server.register_ok("max@example.com").await;
    let tokens = server.login_ok("max@example.com").await;
    let access = tokens["access_token"].as_str().expect("access");
    let mut first = authenticator();
    let item = register_key(&server, access, &mut first, "Desk key").await;
    let id = item["id"].as_str().expect("id");

    // A second registration excludes the key already there.
    let options: Value = call(
        &server,
        Method::POST,
        "/api/account/webauthn/register",
        access,
        None,
        Some(json!({"password": GOOD_PASSWORD})),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(
        options["publicKey"]["excludeCredentials"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{options}"
    );
    // Chromium refuses an unenforced credProtect policy beside a preferred
    // user verification; the options carry none.
    assert!(options["publicKey"]["extensions"]
        .get("credentialProtectionPolicy")
        .is_none());
    // Answered once…
    let ceremony_id = options["ceremony_id"]
        .as_str()
        .expect("ceremony")
        .to_owned();
    let mut challenge_json = options.clone();
    challenge_json
        .as_object_mut()
        .expect("object")
        .remove("ceremony_id");
    let challenge: CreationChallengeResponse =
        serde_json::from_value(challenge_json).expect("options");
    let credential = authenticator()
        .do_registration(origin(), challenge)
        .expect("registers");
    let body = json!({"ceremony_id": ceremony_id, "name": "Phone", "credential": credential});
    let created = call(
        &server,
        Method::POST,
        "/api/account/webauthn",
        access,
        None,
        Some(body.clone()),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    // …and not twice.
    let again = call(
        &server,
        Method::POST,
        "/api/account/webauthn",
        access,
        None,
        Some(body),
    )
    .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);

    let renamed = call(
        &server,
        Method::PATCH,
        &format!("/api/account/webauthn/{id}"),
        access,
        None,
        Some(json!({"name": "Travel key"})),
    )
    .await;
    assert_eq!(renamed.status(), StatusCode::OK);
    assert_eq!(
        renamed.json::<Value>().await.expect("json")["name"],
        "Travel key"
    );
    let bad_name = call(
        &server,
        Method::PATCH,
        &format!("/api/account/webauthn/{id}"),
        access,
        None,
        Some(json!({"name": "x".repeat(65)})),
    )
    .await;
    assert_eq!(bad_name.status(), StatusCode::BAD_REQUEST);

    // Removing every key turns MFA off again.
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
    for item in listed["items"].as_array().expect("items") {
        let path = format!("/api/account/webauthn/{}", item["id"].as_str().expect("id"));
        let proof = json!({"password": GOOD_PASSWORD});
        let removed = call(
            &server,
            Method::DELETE,
            &path,
            access,
            None,
            Some(proof.clone()),
        )
        .await;
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);
        let twice = call(&server, Method::DELETE, &path, access, None, Some(proof)).await;
        assert_eq!(twice.status(), StatusCode::NOT_FOUND);
    }
    let login = server
        .login(json!({"email": "max@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(server.audit_events("type=webauthn.removed").await.len(), 2);
}

#[tokio::test]
async fn an_ip_address_public_url_turns_webauthn_off_with_a_clear_answer() {
    let server = TestServer::spawn_with(&format!(
        "{FAST_HASHING}\n[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:9090\"\n"
    ))
    .await;
    server.register_ok("ip@example.com").await;
    let tokens = server.login_ok("ip@example.com").await;
    let access = tokens["access_token"].as_str().expect("access");
    let response = call(
        &server,
        Method::POST,
        "/api/account/webauthn/register",
        access,
        None,
        Some(json!({"password": GOOD_PASSWORD})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let info: Value = server.get_json("/ui/api/info").await;
    assert_eq!(info["webauthn"], false);
    assert!(server.logs().contains("WebAuthn is off"));
}

#[tokio::test]
async fn changing_security_keys_needs_a_fresh_proof_and_the_last_one_going_is_mfa_off() {
    let server = server().await;
    server.register_ok("nia@example.com").await;
    let tokens = server.login_ok("nia@example.com").await;
    let access = tokens["access_token"].as_str().expect("access");
    let mut key = authenticator();
    // The first factor needs only the session, as TOTP enrollment does.
    let item = register_key(&server, access, &mut key, "Only key").await;
    let path = format!("/api/account/webauthn/{}", item["id"].as_str().expect("id"));

    // A stolen session alone can neither add the thief's key nor remove one.
    let add = call(
        &server,
        Method::POST,
        "/api/account/webauthn/register",
        access,
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(add.status(), StatusCode::BAD_REQUEST);
    for body in [json!({}), json!({"password": "Wrong-Horse-41"})] {
        let removed = call(&server, Method::DELETE, &path, access, None, Some(body)).await;
        assert_eq!(removed.status(), StatusCode::BAD_REQUEST);
    }
    let login = server
        .login(json!({"email": "nia@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(
        login.status(),
        StatusCode::ACCEPTED,
        "the key still guards the login"
    );

    let removed = call(
        &server,
        Method::DELETE,
        &path,
        access,
        None,
        Some(json!({"password": GOOD_PASSWORD})),
    )
    .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let disabled = server.audit_events("type=mfa.disabled").await;
    assert_eq!(disabled.len(), 1, "the last factor going is MFA turned off");
    assert_eq!(disabled[0]["reason"], "last_security_key_removed");
}
