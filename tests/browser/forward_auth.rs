//! Forward-auth as a person meets it: Chromium opens an app behind the real
//! nginx, is sent to authd's sign-in page, signs in, and lands on the app,
//! which sees who it is. Host names under `home.test` are mapped to loopback
//! in Chromium, so authd (`auth.home.test`) and the app (`app.home.test`)
//! share the sign-in cookie through `forward_auth.cookie_domain`.

use serde_json::Value;

use crate::helpers::{free_port, installed, start_echo_app, start_nginx, GOOD_PASSWORD};
use crate::support::{submit_login, Env, Totp};

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn a_protected_app_behind_nginx_sends_a_person_to_sign_in_and_back() {
    if !installed("/usr/sbin/nginx") {
        return;
    }
    let port = free_port();
    let public = format!("http://auth.home.test:{port}");
    let Some(env) = Env::start_with(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{public}\"\n\n\
         [forward_auth]\ncookie_domain = \"home.test\"\n\
         [[forward_auth.rules]]\nhosts = [\"app.home.test\"]\npolicy = \"one_factor\"\n\n\
         [[forward_auth.rules]]\nhosts = [\"vault.home.test\"]\npolicy = \"two_factor\"\n\n"
    ))
    .await
    else {
        return;
    };
    env.server.register_ok("kim@example.com").await;
    let app = start_echo_app().await;
    let nginx = start_nginx(&env.server.url(""), app).await;
    let b = env
        .browser_with_args(
            "forward-auth",
            &["--host-resolver-rules=MAP *.home.test 127.0.0.1".to_owned()],
        )
        .await;

    let protected = format!("http://app.home.test:{}/dashboard", nginx.address.port());
    b.open(&protected).await;
    b.wait_page("login").await;
    assert!(
        b.current_url()
            .await
            .starts_with(&format!("{public}/login?return_to=")),
        "{}",
        b.current_url().await
    );
    submit_login(&b, "kim@example.com", GOOD_PASSWORD).await;

    // Back on the app, which sees the identity nginx got from authd.
    let seen = b
        .wait_until(
            "the app's answer",
            "return location.host.startsWith('app.home.test') ? document.body.innerText : null",
            serde_json::json!([]),
        )
        .await;
    assert_eq!(b.current_url().await, protected);
    let headers: Value = serde_json::from_str(seen.as_str().expect("text")).expect("json");
    assert_eq!(headers["remote-user"], "kim@example.com", "{headers}");
    assert_eq!(headers["remote-groups"], "member");

    // A host that wants a second factor, which Kim has not set up: the
    // sign-in page says why, the account page enrolls one and offers the
    // way back, and the app is reached with the factor counted.
    let vault = format!("http://vault.home.test:{}/secrets", nginx.address.port());
    b.open(&vault).await;
    b.wait_page("step-up").await;
    assert!(
        b.text("#step-up-message")
            .await
            .contains(&format!("vault.home.test:{}", nginx.address.port())),
        "{}",
        b.text("#step-up-message").await
    );
    b.click("#step-up-link").await;
    b.wait_page("account").await;
    b.wait_for("#return-banner").await;
    b.click("#mfa-enroll-button").await;
    let secret = b
        .wait_for("#mfa-secret")
        .await
        .attribute("data-secret")
        .await
        .expect("data-secret");
    let mut totp = Totp::new(&secret);
    b.fill("#mfa-verify-code", &totp.next_code().await).await;
    b.click("#mfa-verify-submit").await;
    b.wait_for("#section-mfa[data-state=\"codes\"]").await;
    b.click("#recovery-codes-saved").await;
    b.wait_for("#section-mfa[data-state=\"on\"]").await;
    b.click("#return-continue").await;
    let seen = b
        .wait_until(
            "the second app's answer",
            "return location.host.startsWith('vault.home.test') ? document.body.innerText : null",
            serde_json::json!([]),
        )
        .await;
    assert_eq!(b.current_url().await, vault);
    let headers: Value = serde_json::from_str(seen.as_str().expect("text")).expect("json");
    assert_eq!(headers["remote-user"], "kim@example.com", "{headers}");

    // Signing out at authd ends it for the app too.
    b.open(&format!("{public}/account")).await;
    b.wait_page("account").await;
    b.click("#signout-button").await;
    b.wait_page("login").await;
    b.open(&protected).await;
    b.wait_page("login").await;

    env.finish(&[&b]).await;
}
