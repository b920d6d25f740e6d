//! Signing in through upstream providers (SPEC §3b): another authd as a real
//! OpenID Provider, local stand-ins for Google, Microsoft, Apple and GitHub
//! (`fakes`), hostile answers, account linking, and the operator's
//! `/v1/providers`.

mod browser;
mod fakes;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;
use browser::{Answer, Browser};
use fakes::{FakeProvider, Flavor, Person, Tamper};

async fn spawn_server(extra: &str) -> TestServer {
    TestServer::spawn_as_issuer(&format!("{FAST_HASHING}\n{RELAXED_LIMITS}\n{extra}")).await
}

fn person(subject: &str, email: &str, verified: bool) -> Person {
    Person {
        subject: subject.to_owned(),
        email: Some(email.to_owned()),
        email_verified: verified,
        name: Some("Ada Lovelace".to_owned()),
    }
}

/// The provider body for a fake of `flavor`.
fn provider_body(name: &str, flavor: Flavor, fake: &FakeProvider, extra: Value) -> Value {
    let mut body = match flavor {
        Flavor::Google => json!({"kind": "google",
            "discovery_url": format!("{}/.well-known/openid-configuration", fake.base)}),
        Flavor::Microsoft => json!({"kind": "microsoft", "tenant": "common",
            "discovery_url": format!("{}/.well-known/openid-configuration", fake.base)}),
        Flavor::Apple => json!({"kind": "apple",
            "discovery_url": format!("{}/.well-known/openid-configuration", fake.base),
            "team_id": fakes::APPLE_TEAM, "key_id": fakes::APPLE_KEY_ID,
            "private_key": fakes::APPLE_PRIVATE_KEY}),
        Flavor::Github => json!({"kind": "github",
            "authorize_url": format!("{}/login/oauth/authorize", fake.base),
            "token_url": format!("{}/login/oauth/access_token", fake.base),
            "userinfo_url": format!("{}/user", fake.base)}),
    };
    let map = body.as_object_mut().expect("object");
    map.insert("name".into(), name.into());
    map.insert("client_id".into(), fakes::CLIENT_ID.into());
    if flavor != Flavor::Apple {
        map.insert("client_secret".into(), fakes::CLIENT_SECRET.into());
    }
    for (key, value) in extra.as_object().expect("object") {
        map.insert(key.clone(), value.clone());
    }
    body
}

/// A fake of `flavor` with `person` signed in, and authd's provider `name` for it.
async fn with_fake(
    server: &TestServer,
    name: &str,
    flavor: Flavor,
    person: Person,
    extra: Value,
) -> (FakeProvider, Value) {
    let fake = FakeProvider::start(flavor, person).await;
    let created = add_provider(server, provider_body(name, flavor, &fake, extra)).await;
    (fake, created)
}

async fn add_provider(server: &TestServer, body: Value) -> Value {
    let response = server
        .operator_json(Method::POST, "/v1/providers", body)
        .await;
    let status = response.status();
    let created: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// Starts at `/oauth/authorize?provider=NAME`, lets the provider answer
/// (following its redirect, or posting Apple's form), and answers what the
/// callback said.
async fn sign_in(
    browser: &mut Browser,
    server: &TestServer,
    name: &str,
    return_to: Option<&str>,
) -> Answer {
    let mut start = url::Url::parse(&server.url("/oauth/authorize")).expect("url");
    start.query_pairs_mut().append_pair("provider", name);
    if let Some(return_to) = return_to {
        start.query_pairs_mut().append_pair("return_to", return_to);
    }
    let first = browser.get(start.as_str()).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    let to_provider = first.location.expect("to the provider");
    answer_at_provider(browser, to_provider.as_str()).await
}

/// The provider's side: its redirect back, or Apple's form post.
async fn answer_at_provider(browser: &mut Browser, url: &str) -> Answer {
    let at_provider = browser.get(url).await;
    if at_provider.status == StatusCode::OK {
        let form = at_provider.json();
        let action = form["action"]
            .as_str()
            .expect("form_post action")
            .to_owned();
        let fields: Vec<(&str, &str)> = ["code", "state", "user"]
            .into_iter()
            .map(|k| (k, form[k].as_str().expect("field")))
            .collect();
        return browser.post_form(&action, &fields).await;
    }
    assert!(at_provider.status.is_redirection(), "{}", at_provider.body);
    let callback = at_provider.location.expect("back to authd");
    browser.get(callback.as_str()).await
}

/// The operator marks the user's email as theirs (SPEC §5).
async fn verify_email(server: &TestServer, user: &Value) {
    let id = user["id"].as_str().expect("id");
    let response = server
        .operator_json(
            Method::PATCH,
            &format!("/v1/users/{id}"),
            json!({"email_verified": true}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn account_of(browser: &mut Browser, server: &TestServer) -> Value {
    let answer = browser.get(&server.url("/api/account")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.json()
}

fn assert_signed_in_to(answer: &Answer, path: &str) {
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let location = answer.location.as_ref().expect("location");
    assert_eq!(
        &location.as_str()[location.origin().ascii_serialization().len()..],
        path
    );
}

fn assert_page(answer: &Answer, status: StatusCode, words: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert!(
        answer.body.contains("<!doctype html>"),
        "an HTML page: {}",
        answer.body
    );
    assert!(answer.body.contains(words), "{words:?} in {}", answer.body);
}

async fn audit_reasons(server: &TestServer, kind: &str) -> Vec<String> {
    server
        .audit_events(&format!("type={kind}"))
        .await
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_google_sign_in_creates_the_account_and_the_next_one_finds_it() {
    let server = spawn_server("").await;
    let (_google, _) = with_fake(
        &server,
        "google",
        Flavor::Google,
        person("g-1", "ada@example.com", true),
        json!({"create_users": true}),
    )
    .await;
    let listed = server.get_json("/ui/api/providers").await;
    assert_eq!(
        listed["items"],
        json!([{"name": "google", "kind": "google"}])
    );

    let mut browser = Browser::new();
    let answer = sign_in(&mut browser, &server, "google", None).await;
    assert_signed_in_to(&answer, "/account");
    assert!(
        browser
            .cookie(&server.url("/"), "authd_social_state")
            .is_none(),
        "the flow's cookie is gone"
    );
    let account = account_of(&mut browser, &server).await;
    assert_eq!(account["email"], "ada@example.com");
    assert_eq!(account["email_verified"], true, "Google said so");
    assert_eq!(account["name"], "Ada Lovelace");

    let login = &server.audit_events("type=user.login").await[0];
    assert_eq!(login["details"]["method"], "social:google");
    assert_eq!(audit_reasons(&server, "identity.linked").await, ["created"]);

    // Another browser, the same Google account: the same authd account.
    let mut other = Browser::new();
    assert_signed_in_to(
        &sign_in(&mut other, &server, "google", None).await,
        "/account",
    );
    assert_eq!(account_of(&mut other, &server).await["id"], account["id"]);
    assert_eq!(server.audit_events("type=identity.linked").await.len(), 1);

    // The only way into this account cannot be unlinked.
    let identities = browser
        .get(&server.url("/api/account/identities"))
        .await
        .json();
    let items = identities["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{identities}");
    assert_eq!(items[0]["provider"], "google");
    let id = items[0]["id"].as_str().expect("id");
    let refused = browser
        .ui_json(
            Method::DELETE,
            &server.url(""),
            &format!("/api/account/identities/{id}"),
            json!({}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    // No password was made up that anyone could type: the account has
    // none at all (an empty hash, which the profile reports).
    assert_eq!(account["passkeys_only"], true, "{account}");
    let password_login = server
        .login(json!({"email": "ada@example.com", "password": GOOD_PASSWORD}))
        .await;
    assert_eq!(password_login.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn linking_by_email_needs_a_verified_email_on_both_sides() {
    let server = spawn_server("").await;
    let user = server.register_ok("bob@example.com").await;
    let user_id = user["id"].as_str().expect("id").to_owned();
    let (google, _) = with_fake(
        &server,
        "google",
        Flavor::Google,
        person("g-bob", "bob@example.com", true),
        json!({"link_by_email": true, "create_users": true}),
    )
    .await;

    // The local account's email was never proven: whoever signed up with it
    // may not be its owner, so Google's word does not reach this account.
    let answer = sign_in(&mut Browser::new(), &server, "google", None).await;
    assert_page(
        &answer,
        StatusCode::FORBIDDEN,
        "An account with this email exists",
    );

    verify_email(&server, &user).await;

    // Google does not vouch for this email: no link.
    google.set_person(person("g-bob", "bob@example.com", false));
    let answer = sign_in(&mut Browser::new(), &server, "google", None).await;
    assert_page(
        &answer,
        StatusCode::FORBIDDEN,
        "An account with this email exists",
    );
    assert!(server.audit_events("type=identity.linked").await.is_empty());
    assert_eq!(
        audit_reasons(&server, "social.login_failed").await,
        ["email_not_linkable", "email_not_linkable"]
    );

    // Both verified: linked, signed in to Bob's account.
    google.set_person(person("g-bob", "bob@example.com", true));
    let mut browser = Browser::new();
    assert_signed_in_to(
        &sign_in(&mut browser, &server, "google", None).await,
        "/account",
    );
    assert_eq!(
        account_of(&mut browser, &server).await["id"],
        user_id.as_str()
    );
    assert_eq!(
        audit_reasons(&server, "identity.linked").await,
        ["linked_by_email"]
    );

    // Bob has a password too, so unlinking Google is fine.
    let identities = browser
        .get(&server.url("/api/account/identities"))
        .await
        .json();
    let id = identities["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let unlinked = browser
        .ui_json(
            Method::DELETE,
            &server.url(""),
            &format!("/api/account/identities/{id}"),
            json!({}),
        )
        .await;
    assert_eq!(unlinked.status, StatusCode::NO_CONTENT, "{}", unlinked.body);
    assert_eq!(server.audit_events("type=identity.unlinked").await.len(), 1);
}

#[tokio::test]
async fn github_counts_only_the_primary_verified_email() {
    let server = spawn_server("").await;
    let carol = server.register_ok("carol@example.com").await;
    verify_email(&server, &carol).await;
    let (github, _) = with_fake(
        &server,
        "github",
        Flavor::Github,
        person("583231", "carol@example.com", false),
        json!({"link_by_email": true}),
    )
    .await;

    // GitHub's primary email is unverified (a verified secondary one does
    // not count): not Carol's account.
    let answer = sign_in(&mut Browser::new(), &server, "github", None).await;
    assert_page(
        &answer,
        StatusCode::FORBIDDEN,
        "An account with this email exists",
    );
    assert!(server.audit_events("type=identity.linked").await.is_empty());

    github.set_person(person("583231", "carol@example.com", true));
    let mut browser = Browser::new();
    assert_signed_in_to(
        &sign_in(&mut browser, &server, "github", None).await,
        "/account",
    );
    assert_eq!(account_of(&mut browser, &server).await["id"], carol["id"]);
    let login = &server.audit_events("type=user.login").await[0];
    assert_eq!(login["details"]["method"], "social:github");

    // Sign-ups through GitHub are off for this provider.
    github.set_person(person("999", "dave@example.com", true));
    let answer = sign_in(&mut Browser::new(), &server, "github", None).await;
    assert_page(&answer, StatusCode::FORBIDDEN, "No account here");
}

#[tokio::test]
async fn microsofts_multi_tenant_tokens_are_checked_against_their_tenants_issuer() {
    let server = spawn_server("").await;
    let (microsoft, _) = with_fake(
        &server,
        "microsoft",
        Flavor::Microsoft,
        person("ms-1", "erin@contoso.example", true),
        json!({"create_users": true}),
    )
    .await;
    let mut browser = Browser::new();
    assert_signed_in_to(
        &sign_in(&mut browser, &server, "microsoft", None).await,
        "/account",
    );
    let account = account_of(&mut browser, &server).await;
    assert_eq!(account["email"], "erin@contoso.example");
    assert_eq!(account["email_verified"], true, "xms_edov");

    // A token that names another tenant in its issuer than in `tid`.
    microsoft.set_tamper(Tamper {
        issuer: Some(format!(
            "{}/00000000-0000-0000-0000-000000000000/v2.0",
            microsoft.base
        )),
        ..Tamper::default()
    });
    let answer = sign_in(&mut Browser::new(), &server, "microsoft", None).await;
    assert_page(&answer, StatusCode::BAD_GATEWAY, "could not be verified");
    assert_eq!(
        audit_reasons(&server, "social.login_failed").await,
        ["id_token_issuer"]
    );
    let metrics = server
        .operator(Method::GET, "/metrics")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("authd_login_failures_total{reason=\"social\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn apple_posts_its_answer_checks_authds_es256_client_secret_and_names_the_user_once() {
    let server = spawn_server("").await;
    let (apple, created) = with_fake(
        &server,
        "apple",
        Flavor::Apple,
        Person {
            name: None,
            ..person("001234.abcd", "frank@privaterelay.appleid.example", true)
        },
        json!({"create_users": true}),
    )
    .await;
    assert_eq!(created["private_key_set"], true);
    assert!(created.get("private_key").is_none(), "{created}");

    let mut browser = Browser::new();
    let answer = sign_in(&mut browser, &server, "apple", None).await;
    assert_signed_in_to(&answer, "/account");
    let account = account_of(&mut browser, &server).await;
    assert_eq!(account["email"], "frank@privaterelay.appleid.example");
    assert_eq!(
        account["name"], "Ada Lovelace",
        "from the form's user field"
    );

    let claims = apple
        .apple_secret_claims()
        .expect("the fake verified the client secret");
    assert_eq!(claims["iss"], fakes::APPLE_TEAM);
    assert_eq!(claims["sub"], fakes::CLIENT_ID);
    assert_eq!(claims["aud"], "https://appleid.apple.com");
}

#[tokio::test]
async fn hostile_or_broken_answers_get_a_page_and_no_session() {
    let server = spawn_server("").await;
    let (google, _) = with_fake(
        &server,
        "google",
        Flavor::Google,
        person("g-1", "ada@example.com", true),
        json!({"create_users": true}),
    )
    .await;
    let base = server.url("/");

    // No state at all.
    let mut browser = Browser::new();
    let answer = browser
        .get(&server.url("/oauth/callback/google?code=abc"))
        .await;
    assert_page(
        &answer,
        StatusCode::BAD_REQUEST,
        "did not start in this browser",
    );

    // The answer meant for another browser: refused there, and still
    // good in the browser that asked (the precondition: it was a real one).
    let mut victim = Browser::new();
    let first = victim
        .get(&format!(
            "{}?provider=google",
            server.url("/oauth/authorize")
        ))
        .await;
    let at_provider = victim
        .get(first.location.expect("to google").as_str())
        .await;
    let callback = at_provider.location.expect("back").to_string();
    let mut attacker = Browser::new();
    let stolen = attacker.get(&callback).await;
    assert_page(
        &stolen,
        StatusCode::BAD_REQUEST,
        "did not start in this browser",
    );
    assert!(attacker.cookie(&base, "authd_session").is_none());
    assert_signed_in_to(&victim.get(&callback).await, "/account");
    // A state is good once.
    let mut again = Browser::new();
    again.set_cookie(
        &base,
        "authd_social_state",
        &url::Url::parse(&callback)
            .expect("url")
            .query_pairs()
            .find(|(k, _)| k == "state")
            .expect("state")
            .1,
    );
    assert_page(
        &again.get(&callback).await,
        StatusCode::BAD_REQUEST,
        "already used",
    );

    for (tamper, reason) in [
        (
            Tamper {
                nonce: Some("not-the-nonce".into()),
                ..Tamper::default()
            },
            "id_token_nonce",
        ),
        (
            Tamper {
                audience: Some("someone-else".into()),
                ..Tamper::default()
            },
            "id_token_audience",
        ),
        (
            Tamper {
                expired: true,
                ..Tamper::default()
            },
            "id_token_expired",
        ),
        (
            Tamper {
                stranger_key: true,
                ..Tamper::default()
            },
            "id_token_unknown_key",
        ),
    ] {
        google.set_tamper(tamper);
        let mut browser = Browser::new();
        let answer = sign_in(&mut browser, &server, "google", None).await;
        assert_page(&answer, StatusCode::BAD_GATEWAY, "could not be verified");
        assert!(browser.cookie(&base, "authd_session").is_none(), "{reason}");
        assert_eq!(
            audit_reasons(&server, "social.login_failed").await[0],
            reason
        );
    }
    google.set_tamper(Tamper::default());

    // The provider refuses (the person said no): its error, in words.
    let mut browser = Browser::new();
    let first = browser
        .get(&format!(
            "{}?provider=google",
            server.url("/oauth/authorize")
        ))
        .await;
    let state = first
        .location
        .expect("to google")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .expect("state")
        .1
        .into_owned();
    let denied = browser
        .get(&server.url(&format!(
            "/oauth/callback/google?error=access_denied&state={state}"
        )))
        .await;
    assert_page(&denied, StatusCode::FORBIDDEN, "access_denied");
    let failed = &server.audit_events("type=social.login_failed").await[0];
    assert_eq!(failed["details"]["upstream_error"], "access_denied");

    // No open redirect: only authd's own pages (or forward-auth hosts).
    for (asked, landed) in [
        ("https://evil.example/", "/account"),
        ("//evil.example/x", "/account"),
        ("/\\evil.example", "/account"),
        ("/admin/users", "/account"),
        (
            "/oauth/authorize?client_id=x&state=y",
            "/oauth/authorize?client_id=x&state=y",
        ),
    ] {
        let mut browser = Browser::new();
        assert_signed_in_to(
            &sign_in(&mut browser, &server, "google", Some(asked)).await,
            landed,
        );
    }

    // An unknown provider, and one that is down.
    assert_page(
        &Browser::new()
            .get(&format!("{}?provider=nope", server.url("/oauth/authorize")))
            .await,
        StatusCode::NOT_FOUND,
        "does not exist",
    );
    add_provider(
        &server,
        json!({"name": "down", "kind": "oidc", "client_id": "x",
               "discovery_url": format!("http://127.0.0.1:{}/.well-known/openid-configuration", free_port())}),
    )
    .await;
    assert_page(
        &Browser::new()
            .get(&format!("{}?provider=down", server.url("/oauth/authorize")))
            .await,
        StatusCode::BAD_GATEWAY,
        "not reachable",
    );
    assert!(
        server.logs().contains("listening"),
        "the server is still up"
    );

    // One address cannot keep more than 20 sign-ins pending at once.
    let start = format!("{}?provider=google", server.url("/oauth/authorize"));
    let mut begun = 0;
    let refused = loop {
        let answer = Browser::new().get(&start).await;
        if answer.status != StatusCode::SEE_OTHER || begun > 25 {
            break answer;
        }
        begun += 1;
    };
    assert!(begun <= 20, "{begun}");
    assert_page(&refused, StatusCode::TOO_MANY_REQUESTS, "Too many sign-ins");
}

#[tokio::test]
async fn the_orgs_second_factor_is_still_asked_after_a_provider_sign_in() {
    let server = spawn_server("").await;
    let user = server.register_ok("gina@example.com").await;
    verify_email(&server, &user).await;
    let secret = enroll_totp(&server, "gina@example.com").await;
    let (_google, _) = with_fake(
        &server,
        "google",
        Flavor::Google,
        person("g-gina", "gina@example.com", true),
        json!({"link_by_email": true}),
    )
    .await;

    let mut browser = Browser::new();
    let answer = sign_in(
        &mut browser,
        &server,
        "google",
        Some("/oauth/authorize?client_id=x"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let location = answer.location.expect("to the MFA step");
    assert_eq!(location.path(), "/login");
    let query: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query["return_to"], "/oauth/authorize?client_id=x");
    assert!(query["mfa"].contains("totp"), "{query:?}");
    assert!(
        browser.cookie(&server.url("/"), "authd_session").is_none(),
        "no session yet"
    );
    let mfa_token = browser
        .cookie(&server.url("/"), "authd_social_mfa")
        .expect("the step's token");

    let done = server
        .post("/ui/api/mfa")
        .json(&json!({"mfa_token": mfa_token, "code": totp_at(&secret, current_step() + 1)}))
        .send()
        .await
        .expect("mfa");
    assert_eq!(done.status(), StatusCode::OK);
    let login = &server.audit_events("type=user.login").await[0];
    assert_eq!(login["details"]["method"], "social:google");
    assert_eq!(login["details"]["mfa_verified"], true);
}

#[tokio::test]
async fn a_signed_in_person_links_another_provider_and_unlinks_it() {
    let server = spawn_server("").await;
    server.register_ok("hal@example.com").await;
    let (_github, _) = with_fake(
        &server,
        "github",
        Flavor::Github,
        person("4242", "hal@elsewhere.example", false),
        json!({}),
    )
    .await;

    let session = browser_login(&server, "hal@example.com").await;
    let mut browser = Browser::new();
    browser.set_cookie(
        &server.url("/"),
        "authd_session",
        cookie_value(&session.set_cookies, "authd_session"),
    );
    browser.set_cookie(&server.url("/"), "authd_csrf", &session.csrf);

    // Starting a link is a write: without the CSRF token, nothing.
    let mut forged = Browser::new();
    forged.set_cookie(
        &server.url("/"),
        "authd_session",
        cookie_value(&session.set_cookies, "authd_session"),
    );
    let refused = forged
        .send(
            Method::POST,
            &server.url("/api/account/identities/link"),
            |r| r.json(&json!({"provider": "github"})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    let started = browser
        .ui_json(
            Method::POST,
            &server.url(""),
            "/api/account/identities/link",
            json!({"provider": "github"}),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let redirect = started.json()["redirect"]
        .as_str()
        .expect("redirect")
        .to_owned();
    let answer = answer_at_provider(&mut browser, &redirect).await;
    assert_signed_in_to(&answer, "/account");
    let identities = browser
        .get(&server.url("/api/account/identities"))
        .await
        .json();
    assert_eq!(identities["items"][0]["provider"], "github", "{identities}");
    assert_eq!(identities["items"][0]["email"], "hal@elsewhere.example");
    assert_eq!(
        audit_reasons(&server, "identity.linked").await,
        ["linked_by_user"]
    );

    // Now GitHub alone signs Hal in, unverified email and all: it is linked.
    let mut elsewhere = Browser::new();
    assert_signed_in_to(
        &sign_in(&mut elsewhere, &server, "github", None).await,
        "/account",
    );
    assert_eq!(
        account_of(&mut elsewhere, &server).await["email"],
        "hal@example.com"
    );

    let id = identities["items"][0]["id"].as_str().expect("id");
    let unlinked = browser
        .ui_json(
            Method::DELETE,
            &server.url(""),
            &format!("/api/account/identities/{id}"),
            json!({}),
        )
        .await;
    assert_eq!(unlinked.status, StatusCode::NO_CONTENT, "{}", unlinked.body);
    assert_page(
        &sign_in(&mut Browser::new(), &server, "github", None).await,
        StatusCode::FORBIDDEN,
        "No account here",
    );
}

#[tokio::test]
async fn providers_are_managed_with_write_only_secrets_and_checked_per_kind() {
    let server = spawn_server("").await;
    let created = add_provider(
        &server,
        json!({"name": "corp", "kind": "oidc", "client_id": "authd",
               "client_secret": "very-secret-value",
               "discovery_url": "https://idp.example/.well-known/openid-configuration",
               "link_by_email": true}),
    )
    .await;
    assert_eq!(created["client_secret_set"], true);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["scopes"], json!(["openid", "email", "profile"]));
    assert_eq!(created["callback_url"], server.url("/oauth/callback/corp"));
    let everything = [
        created.to_string(),
        server.operator_get("/v1/providers").await.to_string(),
        server.operator_get("/v1/providers/corp").await.to_string(),
        server.get_json("/ui/api/providers").await.to_string(),
    ];
    for text in &everything {
        assert!(!text.contains("very-secret-value"), "{text}");
    }
    let raw = crate::helpers::stored_bytes(&server.data_dir());
    assert!(
        !raw.windows(17).any(|w| w == b"very-secret-value"),
        "sealed at rest"
    );

    let changed = server
        .operator_json(
            Method::PATCH,
            "/v1/providers/corp",
            json!({"enabled": false, "client_secret": ""}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let changed: Value = changed.json().await.expect("json");
    assert_eq!(changed["client_secret_set"], false);
    assert_eq!(
        server.get_json("/ui/api/providers").await["items"],
        json!([])
    );

    for (body, field) in [
        (
            json!({"name": "x", "kind": "oidc", "client_id": "a"}),
            "discovery_url",
        ),
        (
            json!({"name": "Bad Name", "kind": "oidc", "client_id": "a", "discovery_url": "https://a.example/"}),
            "name",
        ),
        (
            json!({"name": "x", "kind": "oidc", "client_id": "a", "discovery_url": "http://idp.example/"}),
            "discovery_url",
        ),
        (
            json!({"name": "x", "kind": "google", "client_id": "a"}),
            "client_secret",
        ),
        (
            json!({"name": "x", "kind": "apple", "client_id": "a", "team_id": "T", "key_id": "K", "private_key": "nope"}),
            "private_key",
        ),
        (
            json!({"name": "x", "kind": "oauth2", "client_id": "a", "authorize_url": "https://a.example/a"}),
            "token_url",
        ),
    ] {
        let response = server
            .operator_json(Method::POST, "/v1/providers", body.clone())
            .await;
        let status = response.status();
        let error: Value = response.json().await.expect("json");
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {error}");
        assert!(error.to_string().contains(field), "{body} → {error}");
    }
    let unknown_kind = server
        .operator_json(
            Method::POST,
            "/v1/providers",
            json!({"name": "x", "kind": "nonsense", "client_id": "a"}),
        )
        .await;
    assert_eq!(unknown_kind.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let duplicate = server
        .operator_json(Method::POST, "/v1/providers",
            json!({"name": "corp", "kind": "oidc", "client_id": "a", "discovery_url": "https://a.example/"}))
        .await;
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    let unauthorised = server
        .post("/v1/providers")
        .json(&json!({}))
        .send()
        .await
        .expect("post");
    assert_error(
        unauthorised,
        StatusCode::UNAUTHORIZED,
        "missing authorization header",
    )
    .await;

    let deleted = server
        .operator(Method::DELETE, "/v1/providers/corp")
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = server
        .operator(Method::GET, "/v1/providers/corp")
        .send()
        .await
        .expect("get");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(server.audit_events("type=provider.created").await.len(), 1);
}

/// authd A is the OpenID Provider of authd B: a person signs in at B with
/// their account at A — directly, and as a step of an app's sign-in at B.
#[tokio::test]
async fn authd_signs_in_through_another_authd_as_its_openid_provider() {
    let upstream = spawn_server("").await;
    let server = spawn_server("").await;
    upstream.register_ok("ivy@example.com").await;
    let registered = upstream
        .operator_json(
            Method::POST,
            "/v1/clients",
            json!({"name": "authd B", "type": "confidential", "consent": "explicit",
                   "redirect_uris": [server.url("/oauth/callback/upstream")]}),
        )
        .await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    let registered: Value = registered.json().await.expect("json");
    add_provider(
        &server,
        json!({"name": "upstream", "kind": "oidc",
               "client_id": registered["client_id"], "client_secret": registered["client_secret"],
               "discovery_url": upstream.url("/.well-known/openid-configuration"),
               "create_users": true}),
    )
    .await;

    // An app at B whose sign-in the person starts.
    let app = server
        .operator_json(
            Method::POST,
            "/v1/clients",
            json!({"name": "App", "type": "public", "consent": "implicit",
                   "redirect_uris": ["http://127.0.0.1:9/cb"]}),
        )
        .await;
    let app: Value = app.json().await.expect("json");
    let app_authorize = format!(
        "/oauth/authorize?response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=openid&state=app-state&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuKE1gX1W6A&code_challenge_method=S256",
        app["client_id"].as_str().expect("id")
    );
    let mut browser = Browser::new();
    let to_sign_in = browser.get(&server.url(&app_authorize)).await;
    let sign_in_page = to_sign_in.location.expect("to B's sign-in");
    assert_eq!(sign_in_page.path(), "/login");
    let return_to = sign_in_page
        .query_pairs()
        .find(|(k, _)| k == "return_to")
        .expect("return_to")
        .1
        .into_owned();

    // "Sign in with upstream" on B's sign-in page, with that return_to:
    // B sends the browser to A, A to its own sign-in page.
    let mut start = url::Url::parse(&server.url("/oauth/authorize")).expect("url");
    start
        .query_pairs_mut()
        .append_pair("provider", "upstream")
        .append_pair("return_to", &return_to);
    let at_a = browser
        .follow_while(start.as_str(), |next| next.path() != "/login")
        .await;
    let a_sign_in = at_a.location.expect("to A's sign-in");
    assert_eq!(
        a_sign_in.origin(),
        url::Url::parse(&upstream.url("/")).expect("url").origin()
    );
    let a_return = a_sign_in
        .query_pairs()
        .find(|(k, _)| k == "return_to")
        .expect("return_to")
        .1
        .into_owned();

    // The person signs in at A (its UI's cookie sign-in) and consents.
    let signed_in = browser
        .ui_json(
            Method::POST,
            &upstream.url(""),
            "/ui/api/login",
            json!({"email": "ivy@example.com", "password": GOOD_PASSWORD}),
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    let consent = browser.get(&upstream.url(&a_return)).await;
    let consent_page = consent.location.expect("to A's consent page");
    assert_eq!(consent_page.path(), "/consent");
    let answered = browser
        .ui_json(
            Method::POST,
            &upstream.url(""),
            "/ui/api/consent",
            json!({"request": consent_page.query().expect("query"), "approve": true}),
        )
        .await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.body);
    let continued = answered.json()["redirect"]
        .as_str()
        .expect("redirect")
        .to_owned();
    let back_to_b = browser
        .get(&upstream.url(&continued))
        .await
        .location
        .expect("back to B")
        .to_string();
    assert!(
        back_to_b.starts_with(&server.url("/oauth/callback/upstream")),
        "{back_to_b}"
    );

    // B checks A's ID token, makes the account, and goes on with the app's
    // sign-in, which now ends with a code for the app.
    let callback = browser.get(&back_to_b).await;
    assert_signed_in_to(&callback, &return_to);
    let to_app = browser.get(callback.location.expect("on").as_str()).await;
    let to_app = to_app.location.expect("to the app");
    assert_eq!(to_app.origin().ascii_serialization(), "http://127.0.0.1:9");
    assert!(to_app.query_pairs().any(|(k, _)| k == "code"), "{to_app}");
    let account = account_of(&mut browser, &server).await;
    assert_eq!(account["email"], "ivy@example.com");
    assert_eq!(
        account["email_verified"], false,
        "A never verified Ivy's email"
    );
    let login = &server.audit_events("type=user.login").await[0];
    assert_eq!(login["details"]["method"], "social:upstream");

    // A second time, directly: A's session and consent are remembered.
    let mut start = url::Url::parse(&server.url("/oauth/authorize")).expect("url");
    start.query_pairs_mut().append_pair("provider", "upstream");
    let again = browser
        .follow_while(start.as_str(), |next| next.path() != "/account")
        .await;
    assert_signed_in_to(&again, "/account");
}

/// The provider's JWKS is cached; a token from a key it lacks makes authd
/// fetch it again, but not more than once a minute.
#[tokio::test]
async fn a_rotated_provider_key_is_fetched_on_its_first_unknown_kid_at_most_once_a_minute() {
    let port = free_port();
    let (server, clock) = TestServer::in_process(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\n{FAST_HASHING}\n{RELAXED_LIMITS}"
    ))
    .await;
    let (google, _) = with_fake(
        &server,
        "google",
        Flavor::Google,
        person("g-1", "ada@example.com", true),
        json!({"create_users": true}),
    )
    .await;
    google.use_clock(clock.clone());
    assert_signed_in_to(
        &sign_in(&mut Browser::new(), &server, "google", None).await,
        "/account",
    );

    google.rotate_key();
    assert_page(
        &sign_in(&mut Browser::new(), &server, "google", None).await,
        StatusCode::BAD_GATEWAY,
        "could not be verified",
    );
    assert_eq!(
        audit_reasons(&server, "social.login_failed").await,
        ["id_token_unknown_key"]
    );

    clock.advance(61);
    assert_signed_in_to(
        &sign_in(&mut Browser::new(), &server, "google", None).await,
        "/account",
    );
}

/// A sign-up through a provider follows the org like a password sign-up:
/// `approval` waits for the operator, `required` MFA gives an
/// enrollment-only session first.
#[tokio::test]
async fn the_orgs_registration_and_mfa_policies_hold_for_provider_sign_ups() {
    let server = spawn_server("").await;
    let org = server
        .operator_json(
            Method::POST,
            "/v1/orgs",
            json!({"slug": "gated", "name": "Gated", "registration": "approval", "mfa_policy": "required"}),
        )
        .await;
    assert_eq!(org.status(), StatusCode::CREATED);
    let (_google, _) = with_fake(
        &server,
        "google",
        Flavor::Google,
        person("g-jo", "jo@example.com", true),
        json!({"create_users": true, "org": "gated"}),
    )
    .await;

    let answer = sign_in(&mut Browser::new(), &server, "google", None).await;
    assert_page(&answer, StatusCode::FORBIDDEN, "awaits approval");
    let approvals = server.operator_get("/v1/approvals?status=pending").await;
    let approval = &approvals["items"][0];
    assert_eq!(
        approval["subject"]["email"], "jo@example.com",
        "{approvals}"
    );
    // Still waiting: the next try says so too.
    let again = sign_in(&mut Browser::new(), &server, "google", None).await;
    assert_page(&again, StatusCode::FORBIDDEN, "awaits approval");

    let approved = server
        .operator_json(
            Method::POST,
            &format!(
                "/v1/approvals/{}/resolve",
                approval["id"].as_str().expect("id")
            ),
            json!({"approved": true}),
        )
        .await;
    assert_eq!(approved.status(), StatusCode::OK);
    let mut browser = Browser::new();
    let answer = sign_in(
        &mut browser,
        &server,
        "google",
        Some("/oauth/authorize?client_id=x"),
    )
    .await;
    assert_signed_in_to(&answer, "/account#section-mfa");
    let account = account_of(&mut browser, &server).await;
    assert_eq!(account["session"]["enrollment_only"], true, "{account}");
}

/// A plain OAuth 2.0 provider, read through a claim mapping: an email it
/// does not vouch for makes an account whose email is not verified.
#[tokio::test]
async fn an_oauth2_provider_is_read_through_its_claim_mapping() {
    let server = spawn_server("").await;
    let upstream =
        FakeProvider::start(Flavor::Github, person("31337", "lee@example.com", true)).await;
    add_provider(
        &server,
        json!({"name": "forge", "kind": "oauth2", "client_id": fakes::CLIENT_ID,
               "client_secret": fakes::CLIENT_SECRET, "create_users": true,
               "authorize_url": format!("{}/login/oauth/authorize", upstream.base),
               "token_url": format!("{}/login/oauth/access_token", upstream.base),
               "userinfo_url": format!("{}/user", upstream.base),
               "scopes": ["read:user"],
               "claims": {"subject": "id", "email": "email", "email_verified": "email_verified", "name": "login"}}),
    )
    .await;
    let mut browser = Browser::new();
    assert_signed_in_to(
        &sign_in(&mut browser, &server, "forge", None).await,
        "/account",
    );
    let account = account_of(&mut browser, &server).await;
    assert_eq!(account["email"], "lee@example.com");
    assert_eq!(account["name"], "octocat", "name from `login`");
    assert_eq!(
        account["email_verified"], false,
        "the userinfo does not say"
    );
    let identities = browser
        .get(&server.url("/api/account/identities"))
        .await
        .json();
    assert_eq!(identities["items"][0]["provider"], "forge", "{identities}");
}
