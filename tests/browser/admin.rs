//! The operator console: the admin token, users (search, sessions, lock and
//! unlock, seen from the locked user's browser too), and a look at every
//! other section with data in it.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::GOOD_PASSWORD;
use crate::support::{capture, sign_in, submit_login, Env};

#[tokio::test]
#[cfg_attr(
    browser_missing,
    ignore = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver"
)]
async fn the_operator_locks_and_unlocks_a_user_from_the_console() {
    let Some(env) = Env::start().await else {
        return;
    };
    let email = "lucy@example.com";
    env.server.register_ok(email).await;
    env.server.register_ok("other@example.com").await;
    // An org whose sign-ups wait for approval, with one waiting.
    let org = env
        .server
        .operator_json(
            Method::POST,
            "/v1/orgs",
            json!({"slug": "acme", "name": "Acme Corp", "registration": "approval"}),
        )
        .await;
    assert_eq!(org.status(), StatusCode::CREATED);
    let pending = env
        .server
        .register(json!({"email": "newbie@example.com", "password": GOOD_PASSWORD, "org": "acme"}))
        .await;
    assert_eq!(pending.status(), StatusCode::ACCEPTED);

    let user = env.browser("locked-user").await;
    let op = env.browser("operator").await;
    sign_in(&user, email).await;

    // The console asks for the token and refuses a wrong one.
    op.goto("/admin").await;
    op.wait_page("admin-login").await;
    op.fill("#admin-token-input", "not-the-token").await;
    op.click("#admin-token-submit").await;
    op.wait_text("#admin-token-error", "That token is not valid.")
        .await;
    op.fill("#admin-token-input", &env.server.admin_token())
        .await;
    op.click("#admin-token-submit").await;
    op.wait_page("admin-overview").await;
    op.wait_for("#admin-status .stat[data-key=\"version\"]")
        .await;
    capture(&op, "admin-overview").await;

    // Find the user.
    op.click("#admin-nav a[data-test=\"admin-nav-users\"]")
        .await;
    op.wait_page("admin-users").await;
    assert_eq!(op.path().await, "/admin/users");
    op.fill("#admin-user-search", "lucy").await;
    op.click("#admin-user-search-submit").await;
    let row = format!("#admin-user-list tr[data-email=\"{email}\"]");
    op.wait_until(
        "the search to leave one user",
        "return document.querySelectorAll('#admin-user-list tr[data-user-id]').length === 1\
         && document.querySelector('#admin-users').dataset.ready === 'true'",
        json!([]),
    )
    .await;
    op.wait_for(&format!("{row} [data-test=\"badge-active\"]"))
        .await;
    assert!(op.current_url().await.ends_with("/admin/users?q=lucy"));

    // Their session is listed.
    op.click(&format!("{row} [data-test=\"user-sessions\"]"))
        .await;
    op.wait_for("td[id^=\"user-sessions-\"][data-ready=\"true\"]")
        .await;
    assert_eq!(
        op.find_all("tr.detail-row [data-test=\"user-session-list\"] li[data-session-id]")
            .await
            .len(),
        1
    );

    // Lock.
    op.click(&format!("{row} [data-test=\"user-lock\"]")).await;
    op.wait_for(&format!("{row} [data-test=\"badge-locked\"]"))
        .await;
    op.wait_text("#admin-users-message", &format!("Locked {email}."))
        .await;
    op.wait_for(&format!("{row} [data-test=\"user-unlock\"]"))
        .await;
    // Locking signed them out: the open session list says so.
    op.wait_text(
        "td[id^=\"user-sessions-\"][data-ready=\"true\"] .empty",
        "No active sessions.",
    )
    .await;
    capture(&op, "admin-users").await;

    // The user's next action sends them to the login page, and signing in
    // says no more than a wrong password would.
    user.click("#mfa-enroll-button").await;
    user.wait_page("login").await;
    user.wait_text(
        "#login-flash",
        "Your session has ended. Please sign in again.",
    )
    .await;
    submit_login(&user, email, GOOD_PASSWORD).await;
    user.wait_text("#login-error", "Email or password is incorrect.")
        .await;

    // Unlock: signing in works again.
    op.click(&format!("{row} [data-test=\"user-unlock\"]"))
        .await;
    op.wait_for(&format!("{row} [data-test=\"badge-active\"]"))
        .await;
    op.wait_for(&format!("{row} [data-test=\"user-lock\"]"))
        .await;
    op.wait_text("#admin-users-message", &format!("Unlocked {email}."))
        .await;
    sign_in(&user, email).await;

    // The other sections, each with something in it.
    op.click("#admin-nav a[data-test=\"admin-nav-orgs\"]").await;
    op.wait_page("admin-orgs").await;
    op.wait_for("#admin-org-list tr[data-slug=\"acme\"]").await;
    op.wait_for("#admin-org-list tr[data-slug=\"default\"]")
        .await;
    capture(&op, "admin-orgs").await;
    op.click("#admin-org-list tr[data-slug=\"acme\"] [data-test=\"org-edit\"]")
        .await;
    op.wait_for("#org-edit-form #org-edit-name").await;
    capture(&op, "admin-org-edit").await;
    op.click("#org-edit-cancel").await;
    op.wait_gone("#org-edit-form").await;

    op.click("#admin-nav a[data-test=\"admin-nav-audit\"]")
        .await;
    op.wait_page("admin-audit").await;
    op.wait_for("#audit-list tr[data-type=\"user.locked\"]")
        .await;
    op.wait_for("#audit-list tr[data-type=\"user.unlocked\"]")
        .await;
    // Red for the lock, not for the unlock.
    assert!(op
        .find("#audit-list tr[data-type=\"user.locked\"] .badge-danger")
        .await
        .is_some());
    assert!(op
        .find("#audit-list tr[data-type=\"user.unlocked\"] .badge-danger")
        .await
        .is_none());
    capture(&op, "admin-audit").await;

    op.click("#admin-nav a[data-test=\"admin-nav-keys\"]").await;
    op.wait_page("admin-keys").await;
    op.wait_for("#keys-list tr[data-kid][data-active=\"true\"]")
        .await;
    capture(&op, "admin-keys").await;

    op.click("#admin-nav a[data-test=\"admin-nav-approvals\"]")
        .await;
    op.wait_page("admin-approvals").await;
    op.wait_for("#approvals-list tr[data-status=\"pending\"][data-email=\"newbie@example.com\"]")
        .await;
    capture(&op, "admin-approvals").await;

    op.click("#admin-nav a[data-test=\"admin-nav-events\"]")
        .await;
    op.wait_page("admin-events").await;
    op.wait_for("#events-status[data-state=\"open\"]").await;
    env.server.login_ok("other@example.com").await;
    op.wait_for("#events-list li[data-type=\"user.login\"]")
        .await;
    capture(&op, "admin-events").await;

    env.finish(&[&user, &op]).await;
}
