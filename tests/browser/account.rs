//! The signed-in user's journeys: registration, TOTP enrollment and the MFA
//! step, recovery codes, personal access tokens, sessions across two browser
//! contexts, and security keys through Chromium's virtual authenticator.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::GOOD_PASSWORD;
use crate::support::{
    capture, enroll_totp_over_api, sign_in, sign_in_to_mfa_step, sign_out, submit_login, Env, Totp,
};
use crate::webdriver::Browser;

async fn texts(b: &Browser, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for element in b.find_all(css).await {
        out.push(element.text().await);
    }
    out
}

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn register_enroll_totp_and_sign_in_again_with_a_code() {
    let Some(env) = Env::start().await else {
        return;
    };
    let b = env.browser("totp").await;
    let email = "alice@example.com";

    // Registration, with a password the policy refuses first.
    b.goto("/login").await;
    b.wait_page("login").await;
    capture(&b, "login").await;
    b.click("#register-link").await;
    b.wait_page("register").await;
    assert_eq!(b.path().await, "/register");
    b.fill("#register-name", "Alice Liddell").await;
    b.fill("#register-email", email).await;
    b.fill("#register-password", "short").await;
    b.click("#register-submit").await;
    b.wait_for("#register-violations li[data-violation=\"too_short\"]")
        .await;
    capture(&b, "register").await;
    b.fill("#register-password", GOOD_PASSWORD).await;
    b.click("#register-submit").await;
    b.wait_for("#register-result[data-status=\"created\"]")
        .await;
    b.click("#register-signin").await;

    // Sign in: the account page shows who is signed in.
    b.wait_page("login").await;
    submit_login(&b, email, GOOD_PASSWORD).await;
    b.wait_page("account").await;
    assert_eq!(b.text("#profile-email").await, email);
    assert_eq!(b.text("#profile-name").await, "Alice Liddell");
    assert_eq!(b.text("#topbar-user").await, email);
    b.wait_for("#section-mfa[data-state=\"off\"]").await;
    assert_eq!(b.text("#profile-mfa").await, "Off");

    // TOTP: the secret on the page, a code computed here.
    b.click("#mfa-enroll-button").await;
    b.wait_for("#section-mfa[data-state=\"enrolling\"]").await;
    b.wait_for("#mfa-qr").await;
    let secret_box = b.wait_for("#mfa-secret").await;
    let secret = secret_box
        .attribute("data-secret")
        .await
        .expect("data-secret");
    assert_eq!(secret.len(), 32, "160 bits in base32: {secret}");
    assert_eq!(secret_box.text().await.replace(' ', ""), secret);
    let otpauth = b
        .wait_for("#mfa-otpauth-link")
        .await
        .attribute("href")
        .await
        .unwrap_or_default();
    assert!(
        otpauth.starts_with("otpauth://totp/") && otpauth.contains(&format!("secret={secret}")),
        "{otpauth}"
    );
    capture(&b, "totp-enroll").await;
    let mut totp = Totp::new(&secret);
    b.fill("#mfa-verify-code", &totp.wrong_code()).await;
    b.click("#mfa-verify-submit").await;
    b.wait_text(
        "#mfa-message",
        "That code is not valid. Wait for the next code and try again.",
    )
    .await;
    b.fill("#mfa-verify-code", &totp.next_code().await).await;
    b.click("#mfa-verify-submit").await;

    // Recovery codes: ten, shown once.
    b.wait_for("#section-mfa[data-state=\"codes\"]").await;
    let codes = texts(&b, "#recovery-codes li[data-code]").await;
    assert_eq!(codes.len(), 10, "{codes:?}");
    let mut unique = codes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10, "distinct codes: {codes:?}");
    for (code, element) in codes
        .iter()
        .zip(b.find_all("#recovery-codes li[data-code]").await)
    {
        assert_eq!(element.attribute("data-code").await.as_ref(), Some(code));
    }
    capture(&b, "recovery-codes").await;
    b.click("#recovery-codes-saved").await;
    b.wait_for("#section-mfa[data-state=\"on\"]").await;
    assert!(b.find("#recovery-codes li").await.is_none());
    b.wait_text("#profile-mfa", "On").await;
    b.wait_for("#section-sessions[data-ready=\"true\"]").await;
    b.wait_for("#section-pats[data-ready=\"true\"]").await;
    capture(&b, "account").await;

    b.refresh().await;
    b.wait_page("account").await;
    b.wait_for("#section-mfa[data-state=\"on\"]").await;
    let page_text = b.script("return document.body.innerText", json!([])).await;
    for code in &codes {
        assert!(
            !page_text
                .as_str()
                .unwrap_or_default()
                .contains(code.as_str()),
            "recovery code {code} shown again"
        );
    }

    // Signing in again asks for a code.
    sign_out(&b).await;
    sign_in_to_mfa_step(&b, email).await;
    b.wait_for("#mfa-tab-totp").await;
    b.wait_for("#mfa-tab-recovery_code").await;
    assert!(
        b.find("#mfa-tab-webauthn").await.is_none(),
        "no key, no key tab"
    );
    assert_eq!(b.focused_id().await, "mfa-code");
    capture(&b, "login-mfa").await;
    b.fill("#mfa-code", &totp.wrong_code()).await;
    b.click("#mfa-submit").await;
    b.wait_text("#mfa-error", "That code is not valid. Try again.")
        .await;
    b.fill("#mfa-code", &totp.next_code().await).await;
    b.click("#mfa-submit").await;
    b.wait_page("account").await;
    b.wait_text("#topbar-user", email).await;
    b.wait_text("#profile-mfa", "On").await;
    b.wait_for("#section-sessions[data-ready=\"true\"]").await;
    assert!(
        b.find("#session-list li.session[data-current=\"true\"] .badge-success")
            .await
            .is_some(),
        "this session is marked 2-step verified"
    );

    env.finish(&[&b]).await;
}

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn a_recovery_code_signs_in_once() {
    let Some(env) = Env::start().await else {
        return;
    };
    let email = "rob@example.com";
    let (_totp, codes) = enroll_totp_over_api(&env.server, email).await;
    let b = env.browser("recovery").await;
    b.add_virtual_authenticator().await;

    sign_in_to_mfa_step(&b, email).await;
    b.click("#mfa-tab-recovery_code").await;
    assert_eq!(
        b.wait_for("#mfa-tab-recovery_code")
            .await
            .attribute("aria-selected")
            .await,
        Some("true".into())
    );
    b.fill("#mfa-recovery-code", &codes[0]).await;
    b.click("#mfa-recovery-submit").await;
    b.wait_page("account").await;
    b.wait_text("#topbar-user", email).await;
    // A security key as well: the next sign-in offers all three methods.
    b.wait_for("#section-webauthn[data-ready=\"true\"]").await;
    // The account has a second factor: adding another needs the password.
    b.fill("#webauthn-password", GOOD_PASSWORD).await;
    b.click("#webauthn-add").await;
    b.wait_for("#webauthn-list li[data-credential-id]").await;

    sign_out(&b).await;
    sign_in_to_mfa_step(&b, email).await;
    let tabs = b.find_all("#mfa-tabs [role=\"tab\"]").await;
    let mut methods = Vec::new();
    for tab in &tabs {
        methods.push(tab.attribute("data-method").await.unwrap_or_default());
    }
    assert_eq!(methods, ["totp", "webauthn", "recovery_code"]);
    capture(&b, "login-mfa-three-methods").await;
    b.click("#mfa-tab-recovery_code").await;
    b.fill("#mfa-recovery-code", &codes[0]).await;
    b.click("#mfa-recovery-submit").await;
    b.wait_text("#mfa-error", "That code is not valid. Try again.")
        .await;
    assert!(b.find("#login-page[data-step=\"mfa\"]").await.is_some());
    assert_eq!(
        b.wait_for("#mfa-recovery-code")
            .await
            .property("value")
            .await,
        json!("")
    );

    // Another code still works.
    b.fill("#mfa-recovery-code", &codes[1]).await;
    b.click("#mfa-recovery-submit").await;
    b.wait_page("account").await;

    env.finish(&[&b]).await;
}

async fn sessions_with(env: &Env, token: &str) -> StatusCode {
    env.server
        .get("/api/account/sessions")
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
}

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn a_personal_access_token_is_shown_once_works_and_is_revoked() {
    let Some(env) = Env::start().await else {
        return;
    };
    let email = "pat@example.com";
    env.server.register_ok(email).await;
    let b = env.browser("pat").await;
    sign_in(&b, email).await;
    b.wait_for("#section-pats[data-ready=\"true\"]").await;
    b.wait_for("#pat-org-label").await;

    b.fill("#pat-name", "backup script").await;
    b.click("#pat-scope-sessions-read").await;
    assert_eq!(
        b.wait_for("#pat-scope-sessions-read")
            .await
            .property("checked")
            .await,
        json!(true)
    );
    b.fill("#pat-expiry", "7").await;
    b.click("#pat-create").await;
    let token = b.text("#pat-created #pat-token").await;
    assert!(
        token.len() > 20 && !token.contains(char::is_whitespace),
        "{token:?}"
    );
    let row = "#pat-list li[data-pat-id]";
    b.wait_text(
        &format!("{row} [data-test=\"pat-row-name\"]"),
        "backup script",
    )
    .await;
    assert_eq!(
        texts(&b, &format!("{row} .chips .badge")).await,
        ["sessions.read"]
    );
    capture(&b, "pat-created").await;
    let expiry = b.wait_for("#pat-expiry").await.property("value").await;
    assert_eq!(expiry, json!("30"), "the form is back at its defaults");

    // The token works with an HTTP client, within its scope only.
    assert_eq!(sessions_with(&env, &token).await, StatusCode::OK);
    let body: Value = env
        .server
        .get("/api/account/sessions")
        .bearer_auth(&token)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "the browser's session: {body}");
    assert!(
        items[0]["user_agent"]
            .as_str()
            .unwrap_or_default()
            .contains("HeadlessChrome"),
        "{body}"
    );
    let write = env
        .server
        .post("/api/account/sessions/revoke-all")
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        write.status(),
        StatusCode::FORBIDDEN,
        "sessions.write needed"
    );

    // Shown once: gone after "Done" and after a reload.
    b.click("#pat-created-dismiss").await;
    b.wait_gone("#pat-created").await;
    b.refresh().await;
    b.wait_page("account").await;
    b.wait_for("#section-pats[data-ready=\"true\"]").await;
    b.wait_for(row).await;
    let shown = b
        .script(
            "return document.documentElement.outerHTML.includes(arguments[0])",
            json!([token]),
        )
        .await;
    assert_eq!(shown, json!(false), "the token is not on the page again");

    // Revoke in the UI (it asks first); the token stops working.
    b.click(&format!("{row} [data-test=\"pat-revoke\"]")).await;
    b.wait_for("#confirm-dialog[open]").await;
    b.click("#confirm-ok").await;
    b.wait_gone(row).await;
    b.wait_text("#pat-message", "Revoked “backup script”.")
        .await;
    assert_eq!(sessions_with(&env, &token).await, StatusCode::UNAUTHORIZED);

    env.finish(&[&b]).await;
}

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn a_session_revoked_from_another_browser_ends_there() {
    let Some(env) = Env::start().await else {
        return;
    };
    let email = "sam@example.com";
    env.server.register_ok(email).await;
    let a = env.browser("context-a").await;
    let b = env.browser("context-b").await;
    sign_in(&b, email).await;
    sign_in(&a, email).await;

    a.wait_for("#section-sessions[data-ready=\"true\"]").await;
    let sessions = "#session-list li.session[data-session-id]";
    assert_eq!(a.find_all(sessions).await.len(), 2, "both browsers");
    let current = a
        .find_all(&format!("{sessions}[data-current=\"true\"]"))
        .await;
    assert_eq!(current.len(), 1);
    assert_eq!(
        a.text("#session-list li.session[data-current=\"true\"] [data-test=\"session-current\"]")
            .await,
        "This device"
    );
    let other = a
        .wait_for(&format!("{sessions}[data-current=\"false\"]"))
        .await
        .attribute("data-session-id")
        .await
        .expect("session id");
    let other_row = format!("#session-list li[data-session-id=\"{other}\"]");
    a.click(&format!("{other_row} [data-test=\"session-revoke\"]"))
        .await;
    a.wait_gone(&other_row).await;
    a.wait_for("#sessions-message[data-kind=\"success\"]").await;

    // B's next page load finds its session gone.
    b.refresh().await;
    b.wait_page("login").await;
    assert_eq!(b.path().await, "/login");
    b.wait_text(
        "#login-flash",
        "Your session has ended. Please sign in again.",
    )
    .await;

    // A is still signed in, now alone.
    a.refresh().await;
    a.wait_page("account").await;
    a.wait_for("#section-sessions[data-ready=\"true\"]").await;
    assert_eq!(a.find_all(sessions).await.len(), 1);

    env.finish(&[&a, &b]).await;
}

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn a_security_key_is_added_renamed_used_at_sign_in_and_removed() {
    let Some(env) = Env::start().await else {
        return;
    };
    let email = "wendy@example.com";
    env.server.register_ok(email).await;
    let b = env.browser("webauthn").await;
    b.add_virtual_authenticator().await;
    sign_in(&b, email).await;

    b.wait_for("#section-webauthn[data-ready=\"true\"]").await;
    b.wait_for("#webauthn-empty").await;
    b.fill("#webauthn-name", "YubiKey 5C").await;
    b.click("#webauthn-add").await;
    let row = "#webauthn-list li[data-credential-id]";
    b.wait_text(
        &format!("{row} [data-test=\"webauthn-key-name\"]"),
        "YubiKey 5C",
    )
    .await;
    b.wait_text("#webauthn-message", "Added “YubiKey 5C”.")
        .await;
    assert!(b.find("#webauthn-empty").await.is_none());
    // The account has a second factor now; the authenticator app is still off.
    b.wait_text("#profile-mfa", "On").await;
    b.wait_for("#section-mfa[data-state=\"off\"] #mfa-enroll-button")
        .await;

    b.click(&format!("{row} [data-test=\"webauthn-rename\"]"))
        .await;
    b.fill(
        &format!("{row} [data-test=\"webauthn-rename-input\"]"),
        "Desk key",
    )
    .await;
    b.click(&format!("{row} [data-test=\"webauthn-rename-save\"]"))
        .await;
    b.wait_text(
        &format!("{row} [data-test=\"webauthn-key-name\"]"),
        "Desk key",
    )
    .await;
    b.wait_text("#webauthn-message", "Security key renamed.")
        .await;
    capture(&b, "account-security-key").await;

    // The key is the second factor now.
    sign_out(&b).await;
    sign_in_to_mfa_step(&b, email).await;
    b.wait_for("#mfa-webauthn-button").await;
    assert!(b.find("#mfa-tabs").await.is_none(), "one method, no tabs");
    b.click("#mfa-webauthn-button").await;
    b.wait_page("account").await;
    b.wait_text("#topbar-user", email).await;
    b.wait_text("#profile-mfa", "On").await;

    // Remove it (after confirming): sign-in is password-only again.
    b.wait_for("#section-webauthn[data-ready=\"true\"]").await;
    b.wait_text(
        &format!("{row} [data-test=\"webauthn-key-name\"]"),
        "Desk key",
    )
    .await;
    // Removing a second factor needs a fresh proof.
    b.fill("#webauthn-password", GOOD_PASSWORD).await;
    b.click(&format!("{row} [data-test=\"webauthn-remove\"]"))
        .await;
    b.wait_for("#confirm-dialog[open]").await;
    b.click("#confirm-ok").await;
    b.wait_gone(row).await;
    b.wait_for("#webauthn-empty").await;
    b.wait_text("#webauthn-message", "Removed “Desk key”.")
        .await;
    b.wait_text("#profile-mfa", "Off").await;
    b.wait_for("#section-mfa[data-state=\"off\"] #mfa-enroll-button")
        .await;
    sign_out(&b).await;
    sign_in(&b, email).await;

    env.finish(&[&b]).await;
}
