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
