//! "Forgot password?" from the sign-in page to signed in again, with the
//! reset link read out of the mail a real SMTP server on loopback received.

use serde_json::json;

use crate::helpers::{free_port, link_token, MailSink, GOOD_PASSWORD};
use crate::support::{capture, submit_login, Env};

const NEW_PASSWORD: &str = "Battery-Staple-97";

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn a_forgotten_password_is_reset_from_the_mailed_link() {
    let Some(sink) = MailSink::start() else {
        return;
    };
    // public_url is where the browser reaches the server: the mailed link
    // must lead back to it.
    let port = free_port();
    let Some(env) = Env::start_with(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://localhost:{port}\"\n\n{}\n",
        sink.config()
    ))
    .await
    else {
        return;
    };
    let response = env
        .server
        .operator(reqwest::Method::POST, "/v1/users")
        .json(
            &json!({"email": "fay@example.com", "password": GOOD_PASSWORD, "email_verified": true}),
        )
        .send()
        .await
        .expect("create user");
    assert_eq!(response.status(), 201);
    let b = env.browser("recovery").await;

    b.goto("/login").await;
    b.wait_page("login").await;
    b.fill("#login-email", "fay@example.com").await;
    b.click("#forgot-link").await;
    b.wait_page("forgot-password").await;
    assert_eq!(
        b.find("#forgot-email")
            .await
            .expect("email field")
            .property("value")
            .await,
        "fay@example.com",
        "the typed email comes along"
    );
    capture(&b, "forgot-password").await;
    b.click("#forgot-submit").await;
    b.wait_text(
        "#forgot-message",
        "If an account with this email exists and can receive mail, a link to reset its \
         password is on its way. Check your inbox (and the spam folder).",
    )
    .await;

    let mails = sink.wait_for("fay@example.com", 1).await;
    let body = mails[0]["body"].as_str().expect("body");
    assert!(
        body.contains(&format!("http://localhost:{port}/reset-password#token=")),
        "{body}"
    );
    let token = link_token(body, "reset-password");
    b.goto(&format!("/reset-password#token={token}")).await;
    b.wait_page("reset-password").await;
    assert!(
        !b.current_url().await.contains(&token),
        "the token leaves the address bar"
    );
    capture(&b, "reset-password").await;
    // A weak password is refused with the policy's advice; the link stays good.
    b.fill("#reset-password", "short").await;
    b.fill("#reset-password-again", "short").await;
    b.click("#reset-submit").await;
    b.wait_for("#reset-violations li[data-violation]").await;
    b.fill("#reset-password", NEW_PASSWORD).await;
    b.fill("#reset-password-again", NEW_PASSWORD).await;
    b.click("#reset-submit").await;
    b.wait_page("login").await;
    b.wait_text(
        "#login-flash",
        "Your password is changed. Sign in with the new one.",
    )
    .await;

    // The old password no longer works; the new one signs in.
    submit_login(&b, "fay@example.com", GOOD_PASSWORD).await;
    b.wait_text("#login-error", "Email or password is incorrect.")
        .await;
    b.fill("#login-password", NEW_PASSWORD).await;
    b.click("#login-submit").await;
    b.wait_page("account").await;
    b.wait_text("#topbar-user", "fay@example.com").await;
    b.wait_text("#profile-email-verified", "Verified").await;
    env.finish(&[&b]).await;
}

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn without_mail_the_operator_hands_over_a_recovery_link_from_the_console() {
    let Some(env) = Env::start_as_issuer().await else {
        return;
    };
    let email = "gus@example.com";
    env.server.register_ok(email).await;
    let person = env.browser("no-mail").await;
    let op = env.browser("operator-recovery").await;

    // No [smtp]: the page says whom to ask instead of offering a form.
    person.goto("/login").await;
    person.wait_page("login").await;
    person.click("#forgot-link").await;
    person.wait_page("forgot-password").await;
    person.wait_for("#forgot-ask-operator").await;
    assert!(person.find("#forgot-form").await.is_none());

    op.goto("/admin").await;
    op.wait_page("admin-login").await;
    op.fill("#admin-token-input", &env.server.admin_token())
        .await;
    op.click("#admin-token-submit").await;
    op.wait_page("admin-overview").await;
    op.click("#admin-nav a[data-test=\"admin-nav-users\"]")
        .await;
    op.wait_page("admin-users").await;
    let row = format!("#admin-user-list tr[data-email=\"{email}\"]");
    op.click(&format!("{row} [data-test=\"user-recovery-link\"]"))
        .await;
    op.wait_for("#recovery-link-qr").await;
    op.wait_for("#recovery-link-copy").await;
    let url = op.text("#recovery-link-url").await;
    assert!(
        url.starts_with(&format!("{}/reset-password#token=", env.base)),
        "{url}"
    );
    capture(&op, "admin-recovery-link").await;

    person.open(&url).await;
    person.wait_page("reset-password").await;
    person.fill("#reset-password", NEW_PASSWORD).await;
    person.fill("#reset-password-again", NEW_PASSWORD).await;
    person.click("#reset-submit").await;
    person.wait_page("login").await;
    submit_login(&person, email, NEW_PASSWORD).await;
    person.wait_page("account").await;
    person.wait_text("#topbar-user", email).await;

    // Shown once, used once: the same link again is dead.
    person.open(&url).await;
    person.wait_page("reset-password").await;
    person.fill("#reset-password", "Another-Password-55").await;
    person
        .fill("#reset-password-again", "Another-Password-55")
        .await;
    person.click("#reset-submit").await;
    person.wait_for("#reset-new-link").await;
    env.finish(&[&person, &op]).await;
}
