//! Passkeys in the browser, with Chromium's virtual authenticator (a CTAP2
//! key with a resident-key store and user verification): added on the
//! account page, then the sign-in page's "Sign in with a passkey" button
//! signs in without the email or the password; and an account without a
//! password gets its first passkey from the operator's enrollment link.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{capture, sign_in, sign_out, Env};

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn a_passkey_added_on_the_account_page_signs_in_alone() {
    let Some(env) = Env::start().await else {
        return;
    };
    let email = "pat@example.com";
    env.server.register_ok(email).await;
    let b = env.browser("passkey").await;
    b.add_virtual_authenticator().await;
    sign_in(&b, email).await;

    b.wait_for("#section-webauthn[data-ready=\"true\"]").await;
    b.fill("#webauthn-name", "This laptop").await;
    b.click("#passkey-add").await;
    let row = "#webauthn-list li[data-credential-id]";
    b.wait_text(&format!("{row} [data-test=\"webauthn-kind\"]"), "Passkey")
        .await;
    b.wait_text("#webauthn-message", "Added “This laptop”.")
        .await;

    sign_out(&b).await;
    // The email field offers passkeys in its autofill.
    let autocomplete = b
        .wait_for("#login-email")
        .await
        .attribute("autocomplete")
        .await;
    assert_eq!(autocomplete.as_deref(), Some("username webauthn"));
    capture(&b, "login-with-passkey").await;
    b.click("#passkey-signin").await;
    b.wait_page("account").await;
    b.wait_text("#topbar-user", email).await;

    let logins = env.server.audit_events("type=user.login").await;
    assert_eq!(logins[0]["details"]["method"], "passkey", "{:?}", logins[0]);
    assert_eq!(logins[0]["details"]["mfa_verified"], true);

    env.finish(&[&b]).await;
}

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn an_enrollment_link_gives_an_account_without_a_password_its_passkey() {
    let Some(env) = Env::start().await else {
        return;
    };
    let server = &env.server;
    let allowed = server
        .operator_json(
            Method::PATCH,
            "/v1/orgs/default",
            json!({"allow_passwordless": true}),
        )
        .await;
    assert_eq!(allowed.status(), 200);
    let user: Value = server
        .operator_json(
            Method::POST,
            "/v1/users",
            json!({"email": "quinn@example.com"}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(user["passkeys_only"], true);

    // The operator hands out the link from the console.
    let op = env.browser("operator").await;
    op.goto("/admin").await;
    op.wait_page("admin-login").await;
    op.fill("#admin-token-input", &server.admin_token()).await;
    op.click("#admin-token-submit").await;
    op.wait_page("admin-overview").await;
    op.goto("/admin/users?q=quinn").await;
    let row = "#admin-user-list tr[data-email=\"quinn@example.com\"]";
    op.wait_text(
        &format!("{row} [data-test=\"badge-passwordless\"]"),
        "Passkeys only",
    )
    .await;
    op.click(&format!("{row} [data-test=\"user-passkey-link\"]"))
        .await;
    let url = op.text("#passkey-link-url").await;
    let fragment = url.split_once('#').expect("fragment").1.to_owned();

    let b = env.browser("passkey-enroll").await;
    b.add_virtual_authenticator().await;
    b.goto(&format!("/enroll#{fragment}")).await;
    b.wait_page("enroll").await;
    b.click("#enroll-submit").await;
    b.wait_for("#enroll-done").await;
    assert_eq!(b.path().await, "/enroll", "the token left the address bar");
    b.click("#enroll-signin").await;
    b.wait_page("login").await;
    b.click("#passkey-signin").await;
    b.wait_page("account").await;
    b.wait_text("#topbar-user", "quinn@example.com").await;
    // Its only passkey: the account page asks for no password.
    b.wait_for("#section-webauthn[data-ready=\"true\"]").await;
    b.wait_text(
        "#section-password .card-lead",
        "This account has no password: it signs in with its passkeys or sign-in \
         providers (below). Keep more than one if you can.",
    )
    .await;
    let password_field = b.find("#webauthn-password").await.expect("field");
    assert_eq!(password_field.property("offsetParent").await, Value::Null);

    // The console lists it among the user's keys.
    op.click(&format!("{row} [data-test=\"user-sessions\"]"))
        .await;
    op.wait_text(
        "[data-test=\"user-key-list\"] [data-test=\"user-key-kind\"]",
        "Passkey",
    )
    .await;
    capture(&op, "admin-user-passkeys").await;

    sign_out(&b).await;
    env.finish(&[&b, &op]).await;
}

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn the_email_fields_autofill_offers_the_passkey() {
    let Some(env) = Env::start().await else {
        return;
    };
    let email = "ava@example.com";
    env.server.register_ok(email).await;
    let b = env.browser("passkey-autofill").await;
    b.add_virtual_authenticator().await;
    sign_in(&b, email).await;
    b.wait_for("#section-webauthn[data-ready=\"true\"]").await;
    b.click("#passkey-add").await;
    b.wait_for("#webauthn-list [data-test=\"webauthn-kind\"]")
        .await;
    sign_out(&b).await;
    // Headless Chromium has no autofill to show passkeys in (it answers
    // isConditionalMediationAvailable() with false), so the browser's part
    // is played here: it says it can, and when the page asks with
    // `mediation: "conditional"` the person "picks" the passkey — the
    // request goes on as a modal one, which the virtual authenticator
    // answers. Everything of the page's (options, the conditional request,
    // the answer to the server, the sign-in) runs as written.
    b.script(
        "PublicKeyCredential.isConditionalMediationAvailable = async () => true;
         const get = navigator.credentials.get.bind(navigator.credentials);
         window.conditionalAsked = 0;
         navigator.credentials.get = (options) => {
           if (options.mediation !== 'conditional') return get(options);
           window.conditionalAsked += 1;
           const { mediation, signal, ...modal } = options;
           return get(modal);
         };
         history.pushState(null, '', '/login?autofill=1');
         dispatchEvent(new PopStateEvent('popstate'));",
        json!([]),
    )
    .await;
    b.wait_page("account").await;
    b.wait_text("#topbar-user", email).await;
    let asked = b.script("return window.conditionalAsked", json!([])).await;
    assert_eq!(asked, json!(1), "one conditional request, answered");
    let logins = env.server.audit_events("type=user.login").await;
    assert_eq!(logins[0]["details"]["method"], "passkey");
    env.finish(&[&b]).await;
}
