//! Forward-auth as a reverse proxy asks it (`/forward-auth` for Traefik and
//! Caddy, `/forward-auth/nginx` for `auth_request`): rules first match,
//! the credentials a browser or a script brings, the identity headers, the
//! sign-in page's return check, and what the operator sees. The real
//! proxies in front of a real app are in `forward_auth_proxies.rs`.

use reqwest::header::{COOKIE, LOCATION};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    authd_with, browser_login, browser_login_with_totp, call, enroll_totp, BrowserSession,
    TestServer, FAST_HASHING, RELAXED_LIMITS,
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
    spawn_with_rules(RULES).await
}

async fn spawn_with_rules(rules: &str) -> TestServer {
    TestServer::spawn_as_issuer(&format!("{FAST_HASHING}\n{RELAXED_LIMITS}\n{rules}")).await
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
    let nginx_location = header(&anonymous, LOCATION.as_str()).to_owned();
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
    // nginx cannot encode the return URL itself: its 401 names the same page.
    assert_eq!(nginx_location, expected);

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
    let (ok, said) = authd_with(&path, &["check-config"]);
    assert!(!ok, "{said}");
    assert!(said.contains("forward_auth.rules"), "{said}");
    assert!(said.contains("rule 2"), "{said}");

    // A cookie domain that is not a parent of authd's own host.
    std::fs::write(
        &path,
        "[server]\npublic_url = \"https://auth.home.test\"\n\
         [forward_auth]\ncookie_domain = \"other.test\"\n",
    )
    .expect("write");
    let (ok, said) = authd_with(&path, &["check-config"]);
    assert!(!ok, "{said}");
    assert!(said.contains("forward_auth.cookie_domain"), "{said}");
}

/// What Traefik's ForwardAuth or Caddy's `forward_auth` sends for
/// `https://{host}{uri}`.
async fn ask_redirecting(
    server: &TestServer,
    host: &str,
    uri: &str,
    credential: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut request = no_redirects()
        .get(server.url("/forward-auth"))
        .header("X-Forwarded-Method", "GET")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", host)
        .header("X-Forwarded-Uri", uri);
    if let Some((name, value)) = credential {
        request = request.header(name, value);
    }
    request.send().await.expect("forward-auth")
}

#[tokio::test]
async fn the_redirecting_endpoint_decides_alike_and_sends_to_sign_in() {
    let server = spawn().await;
    server.register_ok("ivy@example.com").await;
    let session = browser_login(&server, "ivy@example.com").await;
    let sign_in = |url: &str| {
        format!(
            "{}/login?{}",
            server.url(""),
            serde_urlencoded::to_string([("return_to", url)]).expect("query")
        )
    };

    // deny on a path, the default for a host no rule names, a role rule.
    for (host, uri) in [
        ("app.home.test", "/admin"),
        ("unknown.home.test", "/"),
        ("ops.home.test", "/"),
    ] {
        let denied = ask_redirecting(&server, host, uri, Some(cookie_of(&session))).await;
        assert_eq!(denied.status(), StatusCode::FORBIDDEN, "{host}{uri}");
    }
    // A host no rule names is denied even to nobody: no sign-in to offer.
    let nobody = ask_redirecting(&server, "unknown.home.test", "/", None).await;
    assert_eq!(nobody.status(), StatusCode::FORBIDDEN);

    // two_factor with a password-only session: to the sign-in page, for
    // the second factor, and back.
    let step_up = ask_redirecting(
        &server,
        "vault.home.test",
        "/s?a=1&b=2",
        Some(cookie_of(&session)),
    )
    .await;
    assert_eq!(step_up.status(), StatusCode::FOUND);
    assert_eq!(
        header(&step_up, LOCATION.as_str()),
        sign_in("https://vault.home.test/s?a=1&b=2")
    );

    // bypass: 200 with the identity headers there and empty, credential
    // or not.
    for credential in [None, Some(cookie_of(&session))] {
        let open = ask_redirecting(&server, "public.home.test", "/", credential).await;
        assert_eq!(open.status(), StatusCode::OK);
        for name in [
            "remote-user",
            "remote-email",
            "remote-name",
            "remote-groups",
        ] {
            assert_eq!(header(&open, name), "", "{name}");
        }
    }

    // Allowed, then signed out: the same cookie goes to the sign-in page.
    let allowed = ask_redirecting(&server, "app.home.test", "/", Some(cookie_of(&session))).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(header(&allowed, "remote-groups"), "member");
    let logout = session
        .write(&server, reqwest::Method::POST, "/ui/api/logout")
        .json(&json!({}))
        .send()
        .await
        .expect("logout");
    assert!(logout.status().is_success());
    let after = ask_redirecting(&server, "app.home.test", "/", Some(cookie_of(&session))).await;
    assert_eq!(after.status(), StatusCode::FOUND);
    assert_eq!(
        header(&after, LOCATION.as_str()),
        sign_in("https://app.home.test/")
    );
}

#[tokio::test]
async fn a_rule_naming_orgs_and_roles_lets_through_only_their_members() {
    let server = spawn_with_rules(
        r#"
[[forward_auth.rules]]
hosts = ["family.home.test"]
paths = ["/admin"]
policy = "one_factor"
orgs = ["family"]
roles = ["admin"]

[[forward_auth.rules]]
hosts = ["family.home.test"]
policy = "one_factor"
orgs = ["family"]
"#,
    )
    .await;
    let profile = server.register_ok("kai@example.com").await;
    let id = profile["id"].as_str().expect("id");
    let created = server
        .operator_json(
            reqwest::Method::POST,
            "/v1/orgs",
            json!({"slug": "family", "name": "Family"}),
        )
        .await;
    assert!(created.status().is_success(), "{}", created.status());
    let session = browser_login(&server, "kai@example.com").await;
    let ask = |path: &'static str| {
        let server = &server;
        let session = &session;
        async move {
            ask_nginx(
                server,
                &format!("https://family.home.test{path}"),
                Some(cookie_of(session)),
            )
            .await
        }
    };

    // Signed in, but not in the org.
    assert_eq!(ask("/").await.status(), StatusCode::FORBIDDEN);

    // A member of it: in, with the role held there; not into the admins' part.
    let join = |role: &'static str| {
        let server = &server;
        async move {
            let added = server
                .operator_json(
                    reqwest::Method::POST,
                    &format!("/v1/users/{id}/memberships"),
                    json!({"org": "family", "role": role}),
                )
                .await;
            assert!(added.status().is_success(), "{}", added.status());
        }
    };
    join("member").await;
    let member = ask("/photos").await;
    assert_eq!(member.status(), StatusCode::OK);
    assert_eq!(header(&member, "remote-groups"), "member");
    assert_eq!(ask("/admin/users").await.status(), StatusCode::FORBIDDEN);

    // An admin there: the admins' part too.
    join("admin").await;
    let admin = ask("/admin/users").await;
    assert_eq!(
        admin.status(),
        StatusCode::OK,
        "{}",
        header(&admin, "remote-groups")
    );
    assert_eq!(header(&admin, "remote-groups"), "admin");

    // Out of the org again: out of the app, with the same session.
    let removed = server
        .operator(
            reqwest::Method::DELETE,
            &format!("/v1/users/{id}/memberships/family"),
        )
        .send()
        .await
        .expect("remove");
    assert!(removed.status().is_success(), "{}", removed.status());
    assert_eq!(ask("/photos").await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_cookie_domain_shares_the_sign_in_with_the_protected_subdomains() {
    // Plain http (local): the bare names, with the Domain.
    let port = crate::helpers::free_port();
    let server = TestServer::spawn_with(&format!(
        "{FAST_HASHING}\n{RELAXED_LIMITS}\n\
         [server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://auth.home.test:{port}\"\n\n\
         [forward_auth]\ncookie_domain = \"home.test\"\n\
         [[forward_auth.rules]]\nhosts = [\"app.home.test\"]\npolicy = \"one_factor\"\n"
    ))
    .await;
    server.register_ok("lou@example.com").await;
    let session = browser_login(&server, "lou@example.com").await;
    for name in ["authd_session=", "authd_csrf="] {
        let set = session
            .set_cookies
            .iter()
            .find(|c| c.starts_with(name))
            .expect(name);
        assert!(set.contains("; Domain=home.test"), "{set}");
        assert!(set.contains("; Path=/"), "{set}");
    }
    let allowed = ask_nginx(&server, "http://app.home.test/", Some(cookie_of(&session))).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(header(&allowed, "remote-user"), "lou@example.com");
    // Signing out clears the cookie for the same domain, or the browser
    // would keep it.
    let logout = session
        .write(&server, reqwest::Method::POST, "/ui/api/logout")
        .json(&json!({}))
        .send()
        .await
        .expect("logout");
    assert!(logout.status().is_success());
    let cleared = crate::helpers::cookies_of(logout.headers());
    assert!(
        cleared.iter().any(|c| c.starts_with("authd_session=;")
            && c.contains("Max-Age=0")
            && c.contains("; Domain=home.test")),
        "{cleared:?}"
    );

    // Behind https: `__Secure-` (a `__Host-` cookie cannot carry a Domain),
    // Secure, with the Domain; only that name counts.
    let server = TestServer::spawn_with(&format!(
        "{FAST_HASHING}\n{RELAXED_LIMITS}\n\
         [server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://auth.home.test\"\n\n\
         [forward_auth]\ncookie_domain = \"home.test\"\n\
         [[forward_auth.rules]]\nhosts = [\"app.home.test\"]\npolicy = \"one_factor\"\n"
    ))
    .await;
    server.register_ok("lou@example.com").await;
    let session = browser_login(&server, "lou@example.com").await;
    for name in ["__Secure-authd_session=", "__Secure-authd_csrf="] {
        let set = session
            .set_cookies
            .iter()
            .find(|c| c.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {:?}", session.set_cookies));
        assert!(set.contains("; Domain=home.test"), "{set}");
        assert!(set.contains("; Secure"), "{set}");
    }
    let allowed = ask_nginx(&server, "https://app.home.test/", Some(cookie_of(&session))).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(header(&allowed, "remote-user"), "lou@example.com");
    let value = crate::helpers::cookie_value(&session.set_cookies, "__Secure-authd_session");
    for other_name in ["authd_session", "__Host-authd_session"] {
        let cookie = format!("{other_name}={value}");
        let refused = ask_nginx(&server, "https://app.home.test/", Some(("cookie", &cookie))).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{other_name}");
    }
}
