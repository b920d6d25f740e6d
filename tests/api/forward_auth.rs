//! Forward-auth as a reverse proxy asks it (`/forward-auth` for Traefik and
//! Caddy, `/forward-auth/nginx` for `auth_request`): rules first match,
//! the credentials a browser or a script brings, the identity headers, the
//! sign-in page's return check, and what the operator sees. The real
//! proxies in front of a real app are in `forward_auth_proxies.rs`.

use reqwest::header::{COOKIE, LOCATION};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    browser_login, browser_login_with_totp, call, enroll_totp, BrowserSession, TestServer,
    FAST_HASHING, RELAXED_LIMITS,
};

/// The rules every test here runs with.
pub const RULES: &str = r#"
[forward_auth]
default_policy = "deny"

[[forward_auth.rules]]
hosts = ["public.home.test"]
policy = "bypass"

[[forward_auth.rules]]
hosts = ["app.home.test"]
paths = ["/admin"]
policy = "deny"

[[forward_auth.rules]]
hosts = ["app.home.test", "*.apps.home.test"]
policy = "one_factor"

[[forward_auth.rules]]
hosts = ["vault.home.test"]
policy = "two_factor"

[[forward_auth.rules]]
hosts = ["ops.home.test"]
policy = "one_factor"
roles = ["admin"]
"#;

pub async fn spawn() -> TestServer {
    TestServer::spawn_as_issuer(&format!("{FAST_HASHING}\n{RELAXED_LIMITS}\n{RULES}")).await
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// What nginx's `auth_request` sends for `url`.
pub async fn ask_nginx(
    server: &TestServer,
    url: &str,
    credential: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut request = no_redirects()
        .get(server.url("/forward-auth/nginx"))
        .header("X-Original-URL", url);
    if let Some((name, value)) = credential {
        request = request.header(name, value);
    }
    request.send().await.expect("forward-auth")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii"))
        .unwrap_or("<absent>")
}

/// A PAT for `email` in its first org (`profile` as registration answered).
pub async fn pat_for(server: &TestServer, email: &str, profile: &Value) -> String {
    let org = profile["memberships"][0]["org_id"].as_str().expect("org");
    let token = server.session_token(email).await;
    let response = call(
        server,
        reqwest::Method::POST,
        "/api/v1/auth/api-tokens",
        &token,
        Some(org),
        Some(json!({"name": "script", "scopes": ["sessions.read"], "expires_in_days": 1})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.expect("json");
    created["token"].as_str().expect("token").to_owned()
}

fn cookie_of(session: &BrowserSession) -> (&'static str, &str) {
    (COOKIE.as_str(), session.cookie_header.as_str())
}

#[tokio::test]
async fn rules_decide_first_match_with_the_browsers_cookie_a_token_or_a_pat() {
    let server = spawn().await;
    let profile = server.register_ok("ann@example.com").await;

    // Nobody: nginx gets 401; Traefik and Caddy a 302 to the sign-in page
    // carrying the original URL.
    let anonymous = ask_nginx(&server, "https://app.home.test/notes?id=1", None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let redirecting = no_redirects()
        .get(server.url("/forward-auth"))
        .header("X-Forwarded-Method", "GET")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "app.home.test")
        .header("X-Forwarded-Uri", "/notes?id=1")
        .send()
        .await
        .expect("forward-auth");
    assert_eq!(redirecting.status(), StatusCode::FOUND);
    let location = header(&redirecting, LOCATION.as_str()).to_owned();
    let expected = format!(
        "{}/login?return_to=https%3A%2F%2Fapp.home.test%2Fnotes%3Fid%3D1",
        server.url("")
    );
    assert_eq!(location, expected);

    // The UI's cookie: allowed, with who it is.
    let session = browser_login(&server, "ann@example.com").await;
    let allowed = ask_nginx(
        &server,
        "https://app.home.test/notes",
        Some(cookie_of(&session)),
    )
    .await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(header(&allowed, "remote-user"), "ann@example.com");
    // Traefik's contract: the same answer from X-Forwarded-* on /forward-auth.
    let by_traefik = no_redirects()
        .get(server.url("/forward-auth"))
        .header("X-Forwarded-Method", "GET")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "app.home.test")
        .header("X-Forwarded-Uri", "/notes")
        .header(COOKIE, &session.cookie_header)
        .send()
        .await
        .expect("forward-auth");
    assert_eq!(by_traefik.status(), StatusCode::OK);
    assert_eq!(header(&by_traefik, "remote-user"), "ann@example.com");
    assert_eq!(header(&by_traefik, "remote-name"), "ann@example.com");
    assert_eq!(header(&allowed, "remote-email"), "ann@example.com");
    assert_eq!(header(&allowed, "remote-groups"), "member");
    // Subdomain wildcard, first-match deny on a path, default deny, roles.
    let sub = ask_nginx(
        &server,
        "https://wiki.apps.home.test/",
        Some(cookie_of(&session)),
    )
    .await;
    assert_eq!(sub.status(), StatusCode::OK);
    for denied in [
        "https://app.home.test/admin/users",
        "https://unknown.home.test/",
        "https://ops.home.test/",
    ] {
        let response = ask_nginx(&server, denied, Some(cookie_of(&session))).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{denied}");
    }

    // Bypass: allowed for anyone, and the identity headers are there but
    // empty, so a proxy overwrites whatever the client sent.
    let bypass = ask_nginx(&server, "https://public.home.test/", None).await;
    assert_eq!(bypass.status(), StatusCode::OK);
    assert_eq!(header(&bypass, "remote-user"), "");
    assert_eq!(header(&bypass, "remote-groups"), "");

    // A session's access token and a PAT, as Bearer.
    let access = server.session_token("ann@example.com").await;
    let bearer = format!("Bearer {access}");
    let by_token = ask_nginx(
        &server,
        "https://app.home.test/",
        Some(("authorization", &bearer)),
    )
    .await;
    assert_eq!(by_token.status(), StatusCode::OK);
    let pat = pat_for(&server, "ann@example.com", &profile).await;
    let bearer = format!("Bearer {pat}");
    let by_pat = ask_nginx(
        &server,
        "https://app.home.test/",
        Some(("authorization", &bearer)),
    )
    .await;
    assert_eq!(by_pat.status(), StatusCode::OK);
    assert_eq!(header(&by_pat, "remote-user"), "ann@example.com");
    let forged = ask_nginx(
        &server,
        "https://app.home.test/",
        Some(("authorization", "Bearer authd_pat_forged")),
    )
    .await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    // Signing out ends it for every protected app.
    let logout = session
        .write(&server, reqwest::Method::POST, "/ui/api/logout")
        .json(&json!({}))
        .send()
        .await
        .expect("logout");
    assert!(logout.status().is_success());
    let after = ask_nginx(
        &server,
        "https://app.home.test/notes",
        Some(cookie_of(&session)),
    )
    .await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_two_factor_host_needs_a_session_that_passed_a_second_factor() {
    let server = spawn().await;
    server.register_ok("one@example.com").await;
    let session = browser_login(&server, "one@example.com").await;
    let one_factor = ask_nginx(
        &server,
        "https://vault.home.test/",
        Some(cookie_of(&session)),
    )
    .await;
    assert_eq!(one_factor.status(), StatusCode::UNAUTHORIZED, "step up");
    let returning: Value = server
        .get_json("/ui/api/return?url=https%3A%2F%2Fvault.home.test%2Fx")
        .await;
    assert_eq!(returning["second_factor_required"], true);

    // Enroll TOTP; a sign-in through the MFA step passes.
    let secret = enroll_totp(&server, "one@example.com").await;
    let session = browser_login_with_totp(&server, "one@example.com", &secret).await;
    let two_factor = ask_nginx(
        &server,
        "https://vault.home.test/",
        Some(cookie_of(&session)),
    )
    .await;
    assert_eq!(two_factor.status(), StatusCode::OK);
    assert_eq!(header(&two_factor, "remote-user"), "one@example.com");
}

#[tokio::test]
async fn the_sign_in_page_returns_only_to_hosts_the_rules_name() {
    let server = spawn().await;
    let allowed: Value = server
        .get_json("/ui/api/return?url=https%3A%2F%2Fwiki.apps.home.test%2Fpage")
        .await;
    assert_eq!(allowed["url"], "https://wiki.apps.home.test/page");
    assert_eq!(allowed["second_factor_required"], false);
    for refused in [
        "https://evil.example/",
        "https://app.home.test.evil.example/",
        "javascript:alert(1)",
        "https://user@app.home.test/",
        "//app.home.test/",
        "not a url",
    ] {
        let response = server
            .get(&format!(
                "/ui/api/return?{}",
                serde_urlencoded::to_string([("url", refused)]).expect("query")
            ))
            .send()
            .await
            .expect("return");
        assert!(
            response.status().is_client_error(),
            "{refused}: {}",
            response.status()
        );
    }
}

#[tokio::test]
async fn the_operator_sees_the_rules_and_who_may_reach_what() {
    let server = spawn().await;
    let profile = server.register_ok("rex@example.com").await;
    let rules = server.operator_get("/v1/forward-auth/rules").await;
    assert_eq!(rules["default_policy"], "deny");
    assert_eq!(rules["rules"].as_array().expect("rules").len(), 5);
    assert_eq!(rules["rules"][3]["policy"], "two_factor");
    let id = profile["id"].as_str().expect("id");
    let reachable = server
        .operator_get(&format!("/v1/users/{id}/forward-auth"))
        .await;
    let allowed = |host: &str| {
        reachable["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|rule| {
                rule["hosts"]
                    .as_array()
                    .is_some_and(|h| h.contains(&json!(host)))
            })
            .map(|rule| rule["allowed"].clone())
    };
    assert_eq!(allowed("public.home.test"), Some(json!(true)));
    assert_eq!(allowed("vault.home.test"), Some(json!(false)), "no factor");
    assert_eq!(allowed("ops.home.test"), Some(json!(false)), "not an admin");
    assert_eq!(
        allowed("*.apps.home.test"),
        Some(json!(true)),
        "{reachable}"
    );
    let unauthenticated = server
        .get("/v1/forward-auth/rules")
        .send()
        .await
        .expect("rules");
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn check_config_names_a_bad_rule() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[forward_auth]\n[[forward_auth.rules]]\nhosts = [\"ok.home.test\"]\npolicy = \"bypass\"\n\n\
         [[forward_auth.rules]]\nhosts = []\npolicy = \"one_factor\"\n",
    )
    .expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_authd"))
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .expect("authd");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("forward_auth.rules"), "{said}");
    assert!(said.contains("rule 2"), "{said}");
}
