//! The sign-in page on its own: the CSP watcher every scenario relies on,
//! error texts that do not tell whether an account exists, and the keyboard
//! alone.

use serde_json::json;

use crate::helpers::GOOD_PASSWORD;
use crate::support::{submit_login, Env};
use crate::webdriver::{ENTER, TAB};

const INCORRECT: &str = "Email or password is incorrect.";

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn sign_in_errors_do_not_enumerate_and_the_keyboard_is_enough() {
    let Some(env) = Env::start().await else {
        return;
    };
    env.server.register_ok("erin@example.com").await;
    let b = env.browser("login").await;

    // The start page sends a visitor without a session to the login page.
    b.goto("/").await;
    b.wait_page("login").await;
    assert_eq!(b.path().await, "/login");
    assert!(
        b.find("#register-link").await.is_some(),
        "registration is open"
    );

    // The watcher sees a violation (an inline style attribute, which
    // `style-src 'self'` forbids), so an empty list elsewhere means something.
    assert!(b.problems().await.is_empty());
    b.script(
        "document.getElementById('login-title').setAttribute('style', 'color: red')",
        json!([]),
    )
    .await;
    let problems = b
        .wait_until(
            "the violation to be recorded",
            "return (window.__e2eProblems || []).join('\\n')",
            json!([]),
        )
        .await;
    assert!(
        problems.as_str().unwrap_or_default().contains("style-src"),
        "{problems}"
    );
    b.script(
        "window.__e2eProblems = []; document.getElementById('login-title').removeAttribute('style')",
        json!([]),
    )
    .await;

    // Errors: empty form, wrong password, unknown email.
    b.click("#login-submit").await;
    b.wait_text("#login-error", "Enter your email and password.")
        .await;

    submit_login(&b, "erin@example.com", "Wrong-Password-1").await;
    b.wait_text("#login-error", INCORRECT).await;
    let password = b.wait_for("#login-password").await;
    assert_eq!(password.property("value").await, json!(""), "cleared");
    assert_eq!(b.focused_id().await, "login-password");

    submit_login(&b, "nobody@example.com", GOOD_PASSWORD).await;
    b.wait_text("#login-error", INCORRECT).await;
    assert_eq!(
        b.wait_for("#login-error")
            .await
            .attribute("data-kind")
            .await,
        Some("error".into())
    );

    // The keyboard alone: the page focuses the email field, Tab moves to the
    // password, Enter submits.
    b.goto("/login").await;
    b.wait_page("login").await;
    assert_eq!(b.focused_id().await, "login-email");
    b.press_keys(&format!("erin@example.com{TAB}")).await;
    assert_eq!(b.focused_id().await, "login-password");
    b.press_keys(&format!("{GOOD_PASSWORD}{ENTER}")).await;
    b.wait_page("account").await;
    b.wait_text("#topbar-user", "erin@example.com").await;

    env.finish(&[&b]).await;
}
