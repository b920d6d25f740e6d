//! authd as an OpenID Provider, spoken to by a real relying party (the
//! `openidconnect` crate): discovery, code + PKCE for a confidential and a
//! public client, ID-token verification, userinfo, refresh, client
//! credentials, the device grant; and every hostile case of RFC 9700 that
//! applies, each answered per RFC 6749 with nothing changed in the store.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreDeviceAuthorizationResponse, CoreProviderMetadata,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, DeviceAuthorizationUrl,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_error, browser_login, BrowserSession, TestServer, FAST_HASHING, RELAXED_LIMITS,
};

const REDIRECT: &str = "http://127.0.0.1:7000/cb";
const AFTER_LOGOUT: &str = "http://127.0.0.1:7000/bye";

fn quick() -> String {
    format!("{FAST_HASHING}\n{RELAXED_LIMITS}")
}

/// An HTTP client for the relying party: never follows redirects (the
/// openidconnect crate's own advice, against SSRF).
fn rp_http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A browser-like client that does not follow redirects.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn create_client(server: &TestServer, body: Value) -> Value {
    let response = server
        .operator(reqwest::Method::POST, "/v1/clients")
        .json(&body)
        .send()
        .await
        .expect("create client");
    let status = response.status();
    let created: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn confidential_client(server: &TestServer, consent: &str) -> (String, String) {
    let created = create_client(
        server,
        json!({
            "name": "Grafana",
            "type": "confidential",
            "redirect_uris": [REDIRECT],
            "post_logout_redirect_uris": [AFTER_LOGOUT],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials",
                            "urn:ietf:params:oauth:grant-type:device_code"],
            "consent": consent,
        }),
    )
    .await;
    (
        created["client_id"].as_str().expect("id").to_owned(),
        created["client_secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
    )
}

async fn public_client(server: &TestServer) -> String {
    let created = create_client(
        server,
        json!({
            "name": "CLI",
            "type": "public",
            "redirect_uris": [REDIRECT],
            "consent": "implicit",
            "grant_types": ["authorization_code", "refresh_token",
                            "urn:ietf:params:oauth:grant-type:device_code"],
        }),
    )
    .await;
    assert!(created.get("client_secret").is_none(), "{created}");
    created["client_id"].as_str().expect("id").to_owned()
}

async fn relying_party(
    server: &TestServer,
    client_id: &str,
    secret: Option<&str>,
) -> CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
> {
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(server.url("")).expect("issuer"),
        &rp_http(),
    )
    .await
    .expect("discovery");
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.to_owned()),
        secret.map(|s| ClientSecret::new(s.to_owned())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).expect("redirect"))
}

/// Follows `/oauth/authorize` as a browser would with `session`'s cookie,
/// answering the consent page with yes when it comes; the final redirect
/// to the app.
async fn authorize_in_browser(
    server: &TestServer,
    url: &str,
    session: Option<&BrowserSession>,
) -> reqwest::Response {
    let browser = no_redirects();
    let mut request = browser.get(url);
    if let Some(session) = session {
        request = request.header(COOKIE, &session.cookie_header);
    }
    let response = request.send().await.expect("authorize");
    let Some(location) = location_of(&response) else {
        return response;
    };
    let Some(query) = location.strip_prefix("/consent?") else {
        return response;
    };
    let session = session.expect("a consent page needs a session");
    let answer: Value = browser
        .post(server.url("/ui/api/consent"))
        .header(COOKIE, &session.cookie_header)
        .header("x-csrf-token", &session.csrf)
        .json(&json!({"request": query, "approve": true}))
        .send()
        .await
        .expect("consent")
        .json()
        .await
        .expect("json");
    let again = answer["redirect"].as_str().expect("redirect");
    browser
        .get(server.url(again))
        .header(COOKIE, &session.cookie_header)
        .send()
        .await
        .expect("authorize again")
}

fn location_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().expect("ascii").to_owned())
}

fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(location)
        .expect("absolute redirect")
        .query_pairs()
        .into_owned()
        .collect()
}

/// The code (and the rest of the answer) an app's callback receives.
async fn code_for(server: &TestServer, url: &str, session: &BrowserSession) -> (String, Value) {
    let response = authorize_in_browser(server, url, Some(session)).await;
    let location = location_of(&response).expect("a redirect");
    assert!(location.starts_with(REDIRECT), "{location}");
    let query = query_of(&location);
    assert_eq!(
        query.get("iss").map(String::as_str),
        Some(server.url("").as_str()),
        "RFC 9207"
    );
    let code = query
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code: {location}"));
    (code, serde_json::to_value(&query).expect("json"))
}

fn authorize_url(server: &TestServer, pairs: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&server.url("/oauth/authorize")).expect("url");
    url.query_pairs_mut().extend_pairs(pairs);
    url.into()
}

async fn token_form(
    server: &TestServer,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = server.post("/oauth/token").form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    request.send().await.expect("token")
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A code for `client` by the signed-in `session`, with the PKCE pair above.
async fn plain_code(
    server: &TestServer,
    client: &str,
    session: &BrowserSession,
    scope: &str,
) -> String {
    let url = authorize_url(
        server,
        &[
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", "s1"),
            ("nonce", "n1"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    );
    code_for(server, &url, session).await.0
}

async fn exchange(server: &TestServer, client: (&str, &str), code: &str) -> reqwest::Response {
    token_form(
        server,
        Some(client),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

async fn exchange_json(server: &TestServer, client: (&str, &str), code: &str) -> Value {
    let response = exchange(server, client, code).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

async fn userinfo_status(server: &TestServer, access_token: &str) -> StatusCode {
    server
        .get("/oauth/userinfo")
        .bearer_auth(access_token)
        .send()
        .await
        .expect("userinfo")
        .status()
}

#[tokio::test]
async fn a_confidential_client_signs_a_person_in_with_code_pkce_consent_and_verified_tokens() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    server
        .register(json!({"email": "ada@example.com", "password": crate::helpers::GOOD_PASSWORD, "name": "Ada"}))
        .await;
    let (client_id, secret) = confidential_client(&server, "explicit").await;
    let rp = relying_party(&server, &client_id, Some(&secret)).await;
    let http = rp_http();

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("groups".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    // No session: the UI's sign-in, told where to come back to.
    let first = authorize_in_browser(&server, url.as_str(), None).await;
    let sign_in = location_of(&first).expect("redirect to sign-in");
    assert!(sign_in.starts_with("/login?"), "{sign_in}");
    let sign_in_query: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(sign_in.split_once('?').expect("query").1.as_bytes())
            .into_owned()
            .collect();
    assert!(sign_in_query["return_to"].starts_with("/oauth/authorize?"));

    let session = browser_login(&server, "ada@example.com").await;
    let response = authorize_in_browser(
        &server,
        &server.url(&sign_in_query["return_to"]),
        Some(&session),
    )
    .await;
    let location = location_of(&response).expect("redirect to the app");
    let answer = query_of(&location);
    assert_eq!(answer["state"], *state.secret(), "state carried through");
    let tokens = rp
        .exchange_code(AuthorizationCode::new(answer["code"].clone()))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");

    let id_token = tokens.id_token().expect("an ID token");
    let verifier = rp.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("a valid ID token");
    assert_eq!(claims.email().map(|e| e.as_str()), Some("ada@example.com"));
    let expected_hash = claims.access_token_hash().expect("at_hash");
    let actual_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().expect("alg"),
        id_token.signing_key(&verifier).expect("key"),
    )
    .expect("hash");
    assert_eq!(*expected_hash, actual_hash);
    assert!(claims.auth_time().is_some());
    let raw = decode_payload(&id_token.to_string());
    assert_eq!(raw["azp"], client_id.as_str());
    assert_eq!(raw["amr"], json!(["pwd"]));
    assert_eq!(raw["acr"], "pwd");
    assert!(raw["sid"].is_string());

    // The access token is an RFC 9068 JWT for this app, not for authd's APIs.
    let access = tokens.access_token().secret().clone();
    let header = decode_header(&access);
    assert_eq!(header["typ"], "at+jwt");
    let access_claims = decode_payload(&access);
    assert_eq!(access_claims["client_id"], client_id.as_str());
    assert_eq!(access_claims["aud"], client_id.as_str());
    assert_eq!(
        access_claims["scope"],
        "openid email profile groups offline_access"
    );
    let own_api = server
        .get("/api/account")
        .bearer_auth(&access)
        .send()
        .await
        .expect("account");
    assert_eq!(
        own_api.status(),
        StatusCode::UNAUTHORIZED,
        "an app's token is not authd's"
    );

    let userinfo: CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), None)
        .expect("userinfo endpoint")
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(
        userinfo.email().map(|e| e.as_str()),
        Some("ada@example.com")
    );
    let raw_userinfo: Value = server
        .get("/oauth/userinfo")
        .bearer_auth(&access)
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(raw_userinfo["groups"], json!(["member"]));
    assert_eq!(raw_userinfo["name"], "Ada");
    assert_eq!(raw_userinfo["email_verified"], false);

    // Refresh rotates; the spent token is a replay that ends the family.
    let refresh = tokens
        .refresh_token()
        .expect("offline_access brings one")
        .clone();
    let rotated = rp
        .exchange_refresh_token(&refresh)
        .expect("token endpoint")
        .request_async(&http)
        .await
        .expect("refresh");
    assert_ne!(
        rotated.refresh_token().expect("rotated").secret(),
        refresh.secret()
    );
    assert_eq!(
        userinfo_status(&server, rotated.access_token().secret()).await,
        StatusCode::OK
    );
    let replay = rp
        .exchange_refresh_token(&refresh)
        .expect("token endpoint")
        .request_async(&http)
        .await;
    assert!(replay.is_err(), "a spent refresh token is refused");
    assert_eq!(
        userinfo_status(&server, rotated.access_token().secret()).await,
        StatusCode::UNAUTHORIZED,
        "the replay ended the app's session"
    );

    // The second sign-in asks no consent: the answer was remembered.
    let again = authorize_url(
        &server,
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("scope", "openid email"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    );
    let direct = no_redirects()
        .get(&again)
        .header(COOKIE, &session.cookie_header)
        .send()
        .await
        .expect("authorize");
    assert!(location_of(&direct)
        .expect("redirect")
        .starts_with(REDIRECT));

    let kinds: Vec<String> = server
        .audit_events("")
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    for kind in [
        "client.created",
        "consent.given",
        "oauth.code_exchanged",
        "token.replay_detected",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

fn decode_part(token: &str, index: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(index).expect("part");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .expect("base64url"),
    )
    .expect("json")
}

fn decode_payload(token: &str) -> Value {
    decode_part(token, 1)
}

fn decode_header(token: &str) -> Value {
    decode_part(token, 0)
}

#[tokio::test]
async fn a_public_client_uses_pkce_without_a_secret_and_without_pkce_gets_nothing() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    server.register_ok("pub@example.com").await;
    let client_id = public_client(&server).await;
    let rp = relying_party(&server, &client_id, None).await;
    let session = browser_login(&server, "pub@example.com").await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let (code, _) = code_for(&server, url.as_str(), &session).await;
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&rp_http())
        .await
        .expect("exchange without a secret");
    tokens
        .id_token()
        .expect("id token")
        .claims(&rp.id_token_verifier(), &nonce)
        .expect("verified");
    assert!(
        tokens.refresh_token().is_none(),
        "no offline_access, no refresh token"
    );

    // Without PKCE, and with plain PKCE: back to the app with the error.
    for extra in [
        vec![],
        vec![
            ("code_challenge", "abc"),
            ("code_challenge_method", "plain"),
        ],
    ] {
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("state", "keep-me"),
        ];
        pairs.extend(extra);
        let response =
            authorize_in_browser(&server, &authorize_url(&server, &pairs), Some(&session)).await;
        let answer = query_of(&location_of(&response).expect("redirect"));
        assert_eq!(answer["error"], "invalid_request");
        assert_eq!(answer["state"], "keep-me");
        assert!(!answer.contains_key("code"));
    }
}

#[tokio::test]
async fn unknown_clients_and_unregistered_redirects_get_a_page_never_a_redirect() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    server.register_ok("page@example.com").await;
    let (client_id, _) = confidential_client(&server, "implicit").await;
    let session = browser_login(&server, "page@example.com").await;
    for pairs in [
        vec![
            ("response_type", "code"),
            ("client_id", "nope"),
            ("redirect_uri", REDIRECT),
        ],
        vec![
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", "https://evil.example/cb"),
        ],
        vec![
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:7000/cb/extra"),
        ],
        vec![
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:7000/CB"),
        ],
    ] {
        let response = no_redirects()
            .get(authorize_url(&server, &pairs))
            .header(COOKIE, &session.cookie_header)
            .send()
            .await
            .expect("authorize");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{pairs:?}");
        assert!(response.headers().get(LOCATION).is_none());
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .to_owned();
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(response.headers()[CONTENT_TYPE]
            .to_str()
            .expect("ct")
            .starts_with("text/html"));
        let page = response.text().await.expect("page");
        assert!(
            !page.contains("evil.example"),
            "nothing of the request is echoed"
        );
    }
}

#[tokio::test]
async fn authorize_errors_go_back_with_state_and_store_nothing() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    server.register_ok("err@example.com").await;
    let (client_id, secret) = confidential_client(&server, "explicit").await;
    let session = browser_login(&server, "err@example.com").await;
    let base = |extra: &[(&'static str, &'static str)]| {
        let mut pairs: Vec<(&str, &str)> = vec![
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("state", "st"),
        ];
        pairs.extend_from_slice(extra);
        authorize_url(&server, &pairs)
    };
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![], "invalid_request"),
        (
            vec![("response_type", "code"), ("scope", "openid admin")],
            "invalid_scope",
        ),
        (
            vec![("response_type", "code"), ("prompt", "none login")],
            "invalid_request",
        ),
        (
            vec![("response_type", "code"), ("request", "eyJ")],
            "request_not_supported",
        ),
        (
            vec![
                ("response_type", "code"),
                ("prompt", "none"),
                ("scope", "openid"),
            ],
            "consent_required",
        ),
    ];
    for (extra, error) in cases {
        let response = no_redirects()
            .get(base(&extra))
            .header(COOKIE, &session.cookie_header)
            .send()
            .await
            .expect("authorize");
        let location = location_of(&response).expect("redirect");
        let answer = query_of(&location);
        assert_eq!(
            answer.get("error").map(String::as_str),
            Some(error),
            "{extra:?}"
        );
        assert_eq!(answer["state"], "st");
        assert!(answer.contains_key("iss"));
    }
    // prompt=none without a session: login_required.
    let response = no_redirects()
        .get(base(&[("response_type", "code"), ("prompt", "none")]))
        .send()
        .await
        .expect("authorize");
    assert_eq!(
        query_of(&location_of(&response).expect("redirect"))["error"],
        "login_required"
    );
    // Nothing was consented to or issued by any of that.
    let apps: Value = session
        .read(&server, "/api/account/apps")
        .send()
        .await
        .expect("apps")
        .json()
        .await
        .expect("json");
    assert_eq!(apps["items"], json!([]));
    let _ = secret;
}

#[tokio::test]
async fn a_code_is_good_once_for_its_client_redirect_and_verifier_and_a_replay_ends_what_it_gave() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    server.register_ok("code@example.com").await;
    let (client_id, secret) = confidential_client(&server, "implicit").await;
    let (other_id, other_secret) = confidential_client(&server, "implicit").await;
    let session = browser_login(&server, "code@example.com").await;
    let scope = "openid offline_access";
    let code = plain_code(&server, &client_id, &session, scope).await;

    // Bound to its client, redirect URI and verifier; wrong ones change nothing.
    let other = exchange(&server, (&other_id, &other_secret), &code).await;
    assert_error(other, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let wrong_redirect = token_form(
        &server,
        Some((&client_id, &secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:7000/other"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_error(wrong_redirect, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let wrong_verifier = token_form(
        &server,
        Some((&client_id, &secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", "x".repeat(43).as_str()),
        ],
    )
    .await;
    assert_error(wrong_verifier, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let no_verifier = token_form(
        &server,
        Some((&client_id, &secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_error(no_verifier, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // The right exchange still works, once.
    let tokens: Value = exchange_json(&server, (&client_id, &secret), &code).await;
    let access = tokens["access_token"].as_str().expect("access");
    let refresh = tokens["refresh_token"].as_str().expect("refresh");
    assert_eq!(userinfo_status(&server, access).await, StatusCode::OK);

    let replay = exchange(&server, (&client_id, &secret), &code).await;
    assert_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(
        userinfo_status(&server, access).await,
        StatusCode::UNAUTHORIZED
    );
    let refreshed = token_form(
        &server,
        Some((&client_id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_error(refreshed, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let replays = server.audit_events("type=oauth.code_replayed").await;
    assert_eq!(replays.len(), 1);
}

#[tokio::test]
async fn client_authentication_failures_are_one_uniform_invalid_client() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    let (client_id, secret) = confidential_client(&server, "implicit").await;
    let mut bodies = Vec::new();
    for (id, key) in [
        (client_id.as_str(), "wrong-secret"),
        ("no-such-client", secret.as_str()),
    ] {
        let response = token_form(
            &server,
            Some((id, key)),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers()[WWW_AUTHENTICATE]
            .to_str()
            .expect("ascii")
            .starts_with("Basic"));
        bodies.push(response.text().await.expect("body"));
    }
    // client_secret_post, wrong: the same body.
    let post = token_form(
        &server,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", "nope"),
        ],
    )
    .await;
    assert_eq!(post.status(), StatusCode::UNAUTHORIZED);
    bodies.push(post.text().await.expect("body"));
    // A confidential client with no secret at all.
    let bare = token_form(
        &server,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    bodies.push(bare.text().await.expect("body"));
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "{bodies:?}"
    );
    assert!(bodies[0].contains("invalid_client"));
}

#[tokio::test]
async fn client_credentials_give_the_app_its_own_token_only() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    let (client_id, secret) = confidential_client(&server, "implicit").await;
    let rp = relying_party(&server, &client_id, Some(&secret)).await;
    let tokens = rp
        .exchange_client_credentials()
        .expect("token endpoint")
        .add_scope(Scope::new("email".into()))
        .request_async(&rp_http())
        .await
        .expect("client credentials");
    assert!(tokens.refresh_token().is_none());
    assert!(tokens.id_token().is_none());
    let claims = decode_payload(tokens.access_token().secret());
    assert_eq!(claims["sub"], client_id.as_str());
    assert_eq!(claims["scope"], "email");
    assert!(claims.get("sid").is_none());
    // Not a person: no userinfo.
    assert_eq!(
        userinfo_status(&server, tokens.access_token().secret()).await,
        StatusCode::UNAUTHORIZED
    );
    // The client sees its own token in introspection.
    let seen: Value = server
        .post("/oauth/introspect")
        .basic_auth(&client_id, Some(&secret))
        .form(&[("token", tokens.access_token().secret().as_str())])
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(seen["active"], true);
    assert_eq!(seen["client_id"], client_id.as_str());
    // A public client may not.
    let public = public_client(&server).await;
    let refused = token_form(
        &server,
        None,
        &[("grant_type", "client_credentials"), ("client_id", &public)],
    )
    .await;
    assert_error(refused, StatusCode::BAD_REQUEST, "unauthorized_client").await;
}

#[tokio::test]
async fn introspection_and_revocation_show_and_end_only_what_the_caller_owns() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    server.register_ok("intro@example.com").await;
    let (client_id, secret) = confidential_client(&server, "implicit").await;
    let (other_id, other_secret) = confidential_client(&server, "implicit").await;
    let session = browser_login(&server, "intro@example.com").await;
    let code = plain_code(&server, &client_id, &session, "openid offline_access").await;
    let tokens: Value = exchange_json(&server, (&client_id, &secret), &code).await;
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();

    let introspect = |id: String, key: String, token: String| {
        let server = &server;
        async move {
            server
                .post("/oauth/introspect")
                .basic_auth(id, Some(key))
                .form(&[("token", token)])
                .send()
                .await
                .expect("introspect")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    for token in [&access, &refresh] {
        let own = introspect(client_id.clone(), secret.clone(), token.clone()).await;
        assert_eq!(own["active"], true, "{own}");
        let foreign = introspect(other_id.clone(), other_secret.clone(), token.clone()).await;
        assert_eq!(foreign, json!({"active": false}));
    }
    // No credentials: no introspection.
    let anonymous = server
        .post("/oauth/introspect")
        .form(&[("token", &access)])
        .send()
        .await
        .expect("introspect");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Another app (or anyone) revoking this app's token does nothing.
    for request in [
        server
            .post("/oauth/revoke")
            .basic_auth(&other_id, Some(&other_secret))
            .form(&[("token", &refresh)]),
        server.post("/oauth/revoke").form(&[("token", &refresh)]),
    ] {
        assert_eq!(
            request.send().await.expect("revoke").status(),
            StatusCode::OK
        );
    }
    assert_eq!(userinfo_status(&server, &access).await, StatusCode::OK);
    // Its own app revoking it ends the session: both tokens die.
    let own = server
        .post("/oauth/revoke")
        .basic_auth(&client_id, Some(&secret))
        .form(&[("token", &refresh)]);
    assert_eq!(own.send().await.expect("revoke").status(), StatusCode::OK);
    assert_eq!(
        userinfo_status(&server, &access).await,
        StatusCode::UNAUTHORIZED
    );

    // PATs: the operator introspects and revokes them.
    let control = server.session_token("intro@example.com").await;
    let login = server.login_ok("intro@example.com").await;
    let org = login_org(&server, login["access_token"].as_str().expect("token")).await;
    let pat: Value = crate::helpers::call(
        &server,
        reqwest::Method::POST,
        "/api/v1/auth/api-tokens",
        &control,
        Some(&org),
        Some(json!({"name": "script", "scopes": ["sessions.read"], "expires_in_days": 30})),
    )
    .await
    .json()
    .await
    .expect("json");
    let pat = pat["token"].as_str().expect("pat").to_owned();
    let admin = server.admin_token();
    let seen: Value = server
        .post("/oauth/introspect")
        .bearer_auth(&admin)
        .form(&[("token", &pat)])
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["token_type"], "personal_access_token");
    let by_client = introspect(client_id.clone(), secret.clone(), pat.clone()).await;
    assert_eq!(
        by_client,
        json!({"active": false}),
        "an app never sees a PAT"
    );
    let revoked = server
        .post("/oauth/revoke")
        .bearer_auth(&admin)
        .form(&[("token", &pat)])
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), StatusCode::OK);
    let after = server
        .get("/api/account/sessions")
        .bearer_auth(&pat)
        .send()
        .await
        .expect("account");
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

async fn login_org(server: &TestServer, access_token: &str) -> String {
    let profile: Value = server
        .get("/api/account")
        .bearer_auth(access_token)
        .send()
        .await
        .expect("profile")
        .json()
        .await
        .expect("json");
    profile["memberships"][0]["org_id"]
        .as_str()
        .expect("org")
        .to_owned()
}

#[tokio::test]
async fn connected_apps_are_listed_and_revoking_one_ends_its_tokens_as_does_deleting_the_app() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    server.register_ok("apps@example.com").await;
    let (client_id, secret) = confidential_client(&server, "explicit").await;
    let session = browser_login(&server, "apps@example.com").await;
    let code = plain_code(&server, &client_id, &session, "openid email").await;
    let tokens: Value = exchange_json(&server, (&client_id, &secret), &code).await;
    let access = tokens["access_token"].as_str().expect("access").to_owned();

    let apps = |session: &BrowserSession| {
        let request = server
            .client
            .get(server.url("/api/account/apps"))
            .header(COOKIE, session.cookie_header.clone());
        async move {
            request
                .send()
                .await
                .expect("apps")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let listed = apps(&session).await;
    assert_eq!(listed["items"][0]["client_id"], client_id.as_str());
    assert_eq!(listed["items"][0]["name"], "Grafana");
    assert_eq!(listed["items"][0]["scopes"], json!(["openid", "email"]));
    assert_eq!(listed["items"][0]["active_sessions"], 1);
    // The app's session is not among the person's own sessions.
    let sessions: Value = session
        .read(&server, "/api/account/sessions")
        .send()
        .await
        .expect("sessions")
        .json()
        .await
        .expect("json");
    assert_eq!(sessions["items"].as_array().map(Vec::len), Some(1));

    let revoke = session
        .write(
            &server,
            reqwest::Method::DELETE,
            &format!("/api/account/apps/{client_id}"),
        )
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        userinfo_status(&server, &access).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(apps(&session).await["items"], json!([]));
    assert_eq!(server.audit_events("type=consent.revoked").await.len(), 1);

    // Consent is asked again; then the operator deletes the app.
    let code = plain_code(&server, &client_id, &session, "openid").await;
    let tokens: Value = exchange_json(&server, (&client_id, &secret), &code).await;
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    let deleted = server
        .operator(reqwest::Method::DELETE, &format!("/v1/clients/{client_id}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        userinfo_status(&server, &access).await,
        StatusCode::UNAUTHORIZED
    );
    let gone = token_form(
        &server,
        Some((&client_id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(gone.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn only_the_clients_org_and_allowed_roles_may_sign_in_and_its_mfa_policy_holds() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    server.register_ok("member@example.com").await;
    let created = create_client(
        &server,
        json!({
        "name": "Admins only", "type": "confidential", "redirect_uris": [REDIRECT],
        "allowed_roles": ["admin"], "consent": "implicit"}),
    )
    .await;
    let client_id = created["client_id"].as_str().expect("id");
    let session = browser_login(&server, "member@example.com").await;
    let url = authorize_url(
        &server,
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("state", "r"),
        ],
    );
    let response = authorize_in_browser(&server, &url, Some(&session)).await;
    let answer = query_of(&location_of(&response).expect("redirect"));
    assert_eq!(answer["error"], "access_denied");
    assert_eq!(answer["state"], "r");

    // An org that requires MFA: a session without a second factor is sent
    // to sign in again (which asks for it), not given a code.
    let org: Value = server
        .operator_json(
            reqwest::Method::POST,
            "/v1/orgs",
            json!({"slug": "family", "name": "Family", "mfa_policy": "required"}),
        )
        .await
        .json()
        .await
        .expect("json");
    let org_id = org["id"].as_str().expect("org id");
    let user_id = server.operator_get("/v1/users?q=member").await["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let membership = server
        .operator(
            reqwest::Method::POST,
            &format!("/v1/users/{user_id}/memberships"),
        )
        .json(&json!({"org": org_id, "role": "member"}))
        .send()
        .await
        .expect("membership");
    assert!(
        membership.status().is_success(),
        "{}",
        membership.text().await.unwrap_or_default()
    );
    let family = create_client(
        &server,
        json!({
        "name": "Photos", "type": "confidential", "org": "family", "redirect_uris": [REDIRECT],
        "consent": "implicit"}),
    )
    .await;
    let url = authorize_url(
        &server,
        &[
            ("response_type", "code"),
            ("client_id", family["client_id"].as_str().expect("id")),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
        ],
    );
    let response = authorize_in_browser(&server, &url, Some(&session)).await;
    let location = location_of(&response).expect("redirect");
    assert!(location.starts_with("/login?"), "{location}");
    assert!(
        location.contains(org_id),
        "signs in to the app's org: {location}"
    );
}

#[tokio::test]
async fn prompt_login_and_max_age_send_a_signed_in_person_to_sign_in_again_once() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    server.register_ok("again@example.com").await;
    let (client_id, _) = confidential_client(&server, "implicit").await;
    let session = browser_login(&server, "again@example.com").await;
    for extra in [("prompt", "login"), ("max_age", "0")] {
        // max_age=0 is spent within the same second only by luck; wait one.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let url = authorize_url(
            &server,
            &[
                ("response_type", "code"),
                ("client_id", &client_id),
                ("redirect_uri", REDIRECT),
                ("scope", "openid"),
                extra,
            ],
        );
        let response = authorize_in_browser(&server, &url, Some(&session)).await;
        let location = location_of(&response).expect("redirect");
        assert!(location.starts_with("/login?"), "{extra:?}: {location}");
        let return_to: String =
            url::form_urlencoded::parse(location.split_once('?').expect("q").1.as_bytes())
                .find(|(k, _)| k == "return_to")
                .map(|(_, v)| v.into_owned())
                .expect("return_to");
        assert!(!return_to.contains("prompt=login"));
        // Signed in afresh, the same return URL gives a code.
        let fresh = browser_login(&server, "again@example.com").await;
        let back = authorize_in_browser(&server, &server.url(&return_to), Some(&fresh)).await;
        assert!(
            location_of(&back).expect("redirect").starts_with(REDIRECT),
            "{extra:?}"
        );
    }
}

#[tokio::test]
async fn the_consent_page_answers_need_the_csrf_token_and_deny_tells_the_app() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    server.register_ok("csrf@example.com").await;
    let (client_id, _) = confidential_client(&server, "explicit").await;
    let session = browser_login(&server, "csrf@example.com").await;
    let url = authorize_url(
        &server,
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("scope", "openid email"),
            ("state", "d"),
        ],
    );
    let response = no_redirects()
        .get(&url)
        .header(COOKIE, &session.cookie_header)
        .send()
        .await
        .expect("authorize");
    let consent = location_of(&response).expect("consent page");
    let query = consent
        .strip_prefix("/consent?")
        .expect("consent")
        .to_owned();
    let page = server.get(&consent).send().await.expect("page");
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .contains("frame-ancestors 'none'"));
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let shown: Value = session
        .read(&server, &format!("/ui/api/consent?{query}"))
        .send()
        .await
        .expect("describe")
        .json()
        .await
        .expect("json");
    assert_eq!(shown["client_name"], "Grafana");
    assert_eq!(shown["scopes"], json!(["openid", "email"]));

    let forged = server
        .client
        .post(server.url("/ui/api/consent"))
        .header(COOKIE, &session.cookie_header)
        .json(&json!({"request": query, "approve": true}))
        .send()
        .await
        .expect("consent");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(server.audit_events("type=consent.given").await.len(), 0);

    let denied: Value = session
        .write(&server, reqwest::Method::POST, "/ui/api/consent")
        .json(&json!({"request": query, "approve": false}))
        .send()
        .await
        .expect("deny")
        .json()
        .await
        .expect("json");
    let answer = query_of(denied["redirect"].as_str().expect("redirect"));
    assert_eq!(answer["error"], "access_denied");
    assert_eq!(answer["state"], "d");
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_sessions_and_returns_only_to_registered_uris() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    server.register_ok("bye@example.com").await;
    let (client_id, secret) = confidential_client(&server, "implicit").await;
    let session = browser_login(&server, "bye@example.com").await;
    let code = plain_code(&server, &client_id, &session, "openid").await;
    let tokens: Value = exchange_json(&server, (&client_id, &secret), &code).await;
    let id_token = tokens["id_token"].as_str().expect("id token");
    let access = tokens["access_token"].as_str().expect("access");

    // An unregistered post-logout URI: a page, nothing ended.
    let mut bad = url::Url::parse(&server.url("/oauth/end_session")).expect("url");
    bad.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", "https://evil.example/");
    let refused = no_redirects()
        .get(bad.as_str())
        .header(COOKIE, &session.cookie_header)
        .send()
        .await
        .expect("end");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.headers().get(LOCATION).is_none());
    assert_eq!(userinfo_status(&server, access).await, StatusCode::OK);

    // Without a hint: the sign-out page asks first.
    let mut unhinted = url::Url::parse(&server.url("/oauth/end_session")).expect("url");
    unhinted
        .query_pairs_mut()
        .append_pair("client_id", &client_id)
        .append_pair("post_logout_redirect_uri", AFTER_LOGOUT);
    let asked = no_redirects()
        .get(unhinted.as_str())
        .header(COOKIE, &session.cookie_header)
        .send()
        .await
        .expect("end");
    assert!(location_of(&asked)
        .expect("redirect")
        .starts_with("/signout?"));
    assert_eq!(userinfo_status(&server, access).await, StatusCode::OK);

    // A hint with forged claims (the earliest `exp` there is) ends nothing,
    // and reading its unverified `exp` does not overflow.
    let forged_hint = {
        use base64::Engine;
        let claims = json!({"aud": client_id, "exp": i64::MIN});
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims).expect("json"));
        let segments: Vec<&str> = id_token.split('.').collect();
        format!("{}.{claims}.{}", segments[0], segments[2])
    };
    let mut forged = url::Url::parse(&server.url("/oauth/end_session")).expect("url");
    forged
        .query_pairs_mut()
        .append_pair("id_token_hint", &forged_hint)
        .append_pair("post_logout_redirect_uri", AFTER_LOGOUT);
    let kept = no_redirects()
        .get(forged.as_str())
        .header(COOKIE, &session.cookie_header)
        .send()
        .await
        .expect("end");
    assert!(!kept.status().is_server_error(), "{}", kept.status());
    assert_eq!(userinfo_status(&server, access).await, StatusCode::OK);

    let mut good = url::Url::parse(&server.url("/oauth/end_session")).expect("url");
    good.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", AFTER_LOGOUT)
        .append_pair("state", "bye-state");
    let ended = no_redirects()
        .get(good.as_str())
        .header(COOKIE, &session.cookie_header)
        .send()
        .await
        .expect("end");
    let location = location_of(&ended).expect("redirect");
    assert!(location.starts_with(AFTER_LOGOUT), "{location}");
    assert_eq!(query_of(&location)["state"], "bye-state");
    assert_eq!(
        userinfo_status(&server, access).await,
        StatusCode::UNAUTHORIZED
    );
    let account = session
        .read(&server, "/api/account")
        .send()
        .await
        .expect("account");
    assert_eq!(
        account.status(),
        StatusCode::UNAUTHORIZED,
        "the authd session ended too"
    );
}

#[tokio::test]
async fn the_device_grant_polls_pending_then_slows_down_then_gets_tokens_once() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    server.register_ok("tv@example.com").await;
    let client_id = public_client(&server).await;
    let started: Value = server
        .post("/oauth/device_authorization")
        .form(&[
            ("client_id", client_id.as_str()),
            ("scope", "openid offline_access"),
        ])
        .send()
        .await
        .expect("device")
        .json()
        .await
        .expect("json");
    let user_code = started["user_code"].as_str().expect("user code").to_owned();
    assert_eq!(user_code.len(), 9, "XXXX-XXXX: {user_code}");
    assert_eq!(started["verification_uri"], server.url("/device"));
    assert!(started["verification_uri_complete"]
        .as_str()
        .expect("complete")
        .contains(&user_code));
    let device_code = started["device_code"]
        .as_str()
        .expect("device code")
        .to_owned();
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code.as_str()),
        ("client_id", client_id.as_str()),
    ];
    let poll = || token_form(&server, None, &form);
    assert_error(
        poll().await,
        StatusCode::BAD_REQUEST,
        "authorization_pending",
    )
    .await;
    assert_error(poll().await, StatusCode::BAD_REQUEST, "slow_down").await;

    let session = browser_login(&server, "tv@example.com").await;
    let shown: Value = server
        .client
        .get(server.url(&format!(
            "/ui/api/device?user_code={}",
            user_code.to_lowercase()
        )))
        .header(COOKIE, &session.cookie_header)
        .send()
        .await
        .expect("describe")
        .json()
        .await
        .expect("json");
    assert_eq!(shown["client_name"], "CLI");
    // The page's answer needs its CSRF token, like every cookie write.
    let forged =
        crate::helpers::with_cookie(&server, reqwest::Method::POST, "/ui/api/device", &session)
            .json(&json!({"user_code": user_code, "approve": true}))
            .send()
            .await
            .expect("forged");
    assert_error(forged, StatusCode::FORBIDDEN, "csrf_failed").await;
    let device_page = server.get("/device").send().await.expect("page");
    assert!(device_page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .contains("frame-ancestors 'none'"));
    let approve = session
        .write(&server, reqwest::Method::POST, "/ui/api/device")
        .json(&json!({"user_code": user_code, "approve": true}))
        .send()
        .await
        .expect("approve");
    assert_eq!(approve.status(), StatusCode::NO_CONTENT);
    // slow_down asked for 10 s between polls now.
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let tokens: Value = poll().await.json().await.expect("json");
    assert!(
        tokens["access_token"].is_string() && tokens["refresh_token"].is_string(),
        "{tokens}"
    );
    assert!(tokens["id_token"].is_string());
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    assert_error(poll().await, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn a_relying_party_library_completes_the_device_grant_and_a_refusal_is_access_denied() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    server.register_ok("lib@example.com").await;
    let (client_id, secret) = confidential_client(&server, "implicit").await;
    let rp = relying_party(&server, &client_id, Some(&secret))
        .await
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(server.url("/oauth/device_authorization")).expect("url"),
        );
    let http = rp_http();
    let details: CoreDeviceAuthorizationResponse = rp
        .exchange_device_code()
        .request_async(&http)
        .await
        .expect("device authorization");
    let session = browser_login(&server, "lib@example.com").await;
    let approve = session
        .write(&server, reqwest::Method::POST, "/ui/api/device")
        .json(&json!({"user_code": details.user_code().secret(), "approve": true}))
        .send()
        .await
        .expect("approve");
    assert_eq!(approve.status(), StatusCode::NO_CONTENT);
    let tokens = rp
        .exchange_device_access_token(&details)
        .expect("token endpoint")
        .request_async(&http, tokio::time::sleep, None)
        .await
        .expect("tokens after approval");
    assert!(tokens.id_token().is_some());

    // Refused on the page: the device hears access_denied.
    let refused: Value = server
        .post("/oauth/device_authorization")
        .basic_auth(&client_id, Some(&secret))
        .form(&[("scope", "openid")])
        .send()
        .await
        .expect("device")
        .json()
        .await
        .expect("json");
    let deny = session
        .write(&server, reqwest::Method::POST, "/ui/api/device")
        .json(&json!({"user_code": refused["user_code"], "approve": false}))
        .send()
        .await
        .expect("deny");
    assert_eq!(deny.status(), StatusCode::NO_CONTENT);
    let answer = token_form(
        &server,
        Some((&client_id, &secret)),
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            (
                "device_code",
                refused["device_code"].as_str().expect("code"),
            ),
        ],
    )
    .await;
    assert_error(answer, StatusCode::BAD_REQUEST, "access_denied").await;
}

#[tokio::test]
async fn codes_and_device_codes_expire_on_time() {
    let (server, clock) = TestServer::in_process(&quick()).await;
    server.register_ok("late@example.com").await;
    let client_id = public_client(&server).await;
    let session = browser_login(&server, "late@example.com").await;
    let url = authorize_url(
        &server,
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    );
    let response = no_redirects()
        .get(&url)
        .header(COOKIE, &session.cookie_header)
        .send()
        .await
        .expect("authorize");
    let code = query_of(&location_of(&response).expect("redirect"))["code"].clone();
    clock.advance(61);
    let late = token_form(
        &server,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_error(late, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let started: Value = server
        .post("/oauth/device_authorization")
        .form(&[("client_id", client_id.as_str())])
        .send()
        .await
        .expect("device")
        .json()
        .await
        .expect("json");
    clock.advance(601);
    let expired = token_form(
        &server,
        None,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            (
                "device_code",
                started["device_code"].as_str().expect("code"),
            ),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_error(expired, StatusCode::BAD_REQUEST, "expired_token").await;
}

#[tokio::test]
async fn the_totp_step_is_part_of_an_apps_sign_in_and_shows_in_amr() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    server.register_ok("otp@example.com").await;
    let secret = crate::helpers::enroll_totp(&server, "otp@example.com").await;
    let (client_id, client_secret) = confidential_client(&server, "implicit").await;
    let session =
        crate::helpers::browser_login_with_totp(&server, "otp@example.com", &secret).await;
    let code = plain_code(&server, &client_id, &session, "openid").await;
    let tokens: Value = exchange_json(&server, (&client_id, &client_secret), &code).await;
    let claims = decode_payload(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(claims["acr"], "mfa");
}

#[tokio::test]
async fn discovery_names_every_endpoint_and_method_that_exists_and_nothing_else() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    let openid = server.get_json("/.well-known/openid-configuration").await;
    let oauth = server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(openid, oauth);
    assert_eq!(openid["issuer"], server.url(""));
    assert_eq!(openid["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(openid["response_types_supported"], json!(["code"]));
    assert_eq!(
        openid["authorization_response_iss_parameter_supported"],
        true
    );
    // Every endpoint it names answers (not 404).
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "end_session_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "device_authorization_endpoint",
    ] {
        let url = openid[key].as_str().unwrap_or_else(|| panic!("{key}"));
        let get = no_redirects().get(url).send().await.expect("get");
        let post = no_redirects().post(url).send().await.expect("post");
        assert!(
            get.status() != StatusCode::NOT_FOUND || post.status() != StatusCode::NOT_FOUND,
            "{key}"
        );
        assert!(
            get.status() != StatusCode::METHOD_NOT_ALLOWED
                || post.status() != StatusCode::METHOD_NOT_ALLOWED,
            "{key}"
        );
    }
    let grants: Vec<&str> = openid["grant_types_supported"]
        .as_array()
        .expect("grants")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        grants,
        [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code"
        ]
    );
    // A grant it does not list is refused as unsupported.
    let password = token_form(&server, None, &[("grant_type", "password")]).await;
    assert_error(password, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
}

#[tokio::test]
async fn clients_are_validated_managed_and_their_secrets_shown_once() {
    let server = TestServer::spawn_as_issuer(&quick()).await;
    for (body, field) in [
        (
            json!({"name": "x", "type": "confidential", "redirect_uris": ["http://grafana.example/cb"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "x", "type": "confidential", "redirect_uris": ["https://a.example/cb#frag"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "x", "type": "public", "redirect_uris": [REDIRECT], "grant_types": ["client_credentials"]}),
            "grant_types",
        ),
        (
            json!({"name": "x", "type": "public", "redirect_uris": [REDIRECT], "scopes": ["admin"]}),
            "scopes",
        ),
        (
            json!({"name": "", "type": "public", "redirect_uris": [REDIRECT]}),
            "name",
        ),
        (
            json!({"name": "x", "type": "confidential", "redirect_uris": []}),
            "redirect_uris",
        ),
    ] {
        let response = server
            .operator(reqwest::Method::POST, "/v1/clients")
            .json(&body)
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await.expect("json");
        assert!(
            error["fields"]
                .as_array()
                .expect("fields")
                .iter()
                .any(|f| f["field"] == field),
            "{error}"
        );
    }
    let (client_id, secret) = confidential_client(&server, "explicit").await;
    let shown = server
        .operator_get(&format!("/v1/clients/{client_id}"))
        .await;
    assert!(shown.get("client_secret").is_none() && !shown.to_string().contains(&secret));
    let listed = server.operator_get("/v1/clients").await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));

    let changed = server
        .operator(reqwest::Method::PATCH, &format!("/v1/clients/{client_id}"))
        .json(&json!({"redirect_uris": ["https://grafana.example/login/generic_oauth"]}))
        .send()
        .await
        .expect("patch");
    assert_eq!(changed.status(), StatusCode::OK);
    let rotated: Value = server
        .operator(
            reqwest::Method::POST,
            &format!("/v1/clients/{client_id}/secret"),
        )
        .send()
        .await
        .expect("rotate")
        .json()
        .await
        .expect("json");
    let new_secret = rotated["client_secret"].as_str().expect("new secret");
    assert_ne!(new_secret, secret);
    let old = token_form(
        &server,
        Some((&client_id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = token_form(
        &server,
        Some((&client_id, new_secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(new.status(), StatusCode::OK);
    // The secret is stored only as a digest.
    let file = crate::helpers::stored_bytes(&server.data_dir());
    assert!(!file
        .windows(new_secret.len())
        .any(|w| w == new_secret.as_bytes()));
    for kind in ["client.created", "client.updated", "client.secret_rotated"] {
        assert_eq!(
            server.audit_events(&format!("type={kind}")).await.len(),
            1,
            "{kind}"
        );
    }
    let logs = server.logs();
    assert!(
        !logs.contains(new_secret) && !logs.contains(&secret),
        "secrets never logged"
    );
}

/// The README's device-grant script, copied from the README as a reader
/// would, run by the real Python against the real server; a person approves
/// the code it prints.
#[tokio::test]
async fn the_readme_device_script_signs_in_once_the_code_is_approved() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let from_section = readme
        .split_once("**A script or a device without a browser**")
        .expect("the README's device-grant section")
        .1;
    let script = from_section
        .split_once("```python\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("its python block")
        .0;
    let server = TestServer::spawn_as_issuer(&quick()).await;
    server.register_ok("pi@example.com").await;
    let created = create_client(
        &server,
        json!({
            "name": "Backup script",
            "type": "public",
            "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
            "consent": "implicit",
        }),
    )
    .await;
    let client_id = created["client_id"].as_str().expect("id");
    let script = script
        .replace("https://auth.home.example", &server.url(""))
        .replace("<client_id>", client_id);
    assert!(!script.contains("home.example"), "{script}");

    let mut python = std::process::Command::new("python3")
        .arg("-u")
        .arg("-c")
        .arg(&script)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("python3");
    let stdout = python.stdout.take().expect("stdout");
    let (line_sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = line_sender.send(line);
        }
    });
    let next_line = || {
        lines
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a line from the script")
    };
    let prompt = next_line();
    let user_code = prompt
        .rsplit_once(" and type ")
        .expect("the prompt names the code")
        .1
        .trim()
        .to_owned();
    assert!(
        prompt.starts_with(&format!("Open {}", server.url("/device"))),
        "{prompt}"
    );

    let session = browser_login(&server, "pi@example.com").await;
    let approve = session
        .write(&server, reqwest::Method::POST, "/ui/api/device")
        .json(&json!({"user_code": user_code, "approve": true}))
        .send()
        .await
        .expect("approve");
    assert_eq!(approve.status(), StatusCode::NO_CONTENT);

    // The server is another process: blocking this thread while the script
    // polls holds nothing up.
    let userinfo = next_line();
    let status = python.wait().expect("exit");
    assert!(status.success(), "{userinfo}");
    assert!(userinfo.contains("'sub'"), "{userinfo}");
}

/// RFC 8628 §5.1: a signed-in browser cannot walk the user-code space;
/// wrong codes count like wrong passwords and then get 429.
#[tokio::test]
async fn guessing_device_user_codes_is_limited() {
    let server = TestServer::spawn_as_issuer(&format!(
        "{FAST_HASHING}\n[limits]\nlogin_per_ip_per_min = 1000\nlogin_per_account_per_min = 5\n"
    ))
    .await;
    server.register_ok("guess@example.com").await;
    let session = browser_login(&server, "guess@example.com").await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let response = session
            .read(&server, "/ui/api/device?user_code=BCDFGGGG")
            .send()
            .await
            .expect("describe");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[404; 5], "{statuses:?}");
    assert_eq!(statuses[6], 429, "{statuses:?}");
    let answer = session
        .write(&server, reqwest::Method::POST, "/ui/api/device")
        .json(&json!({"user_code": "BCDFGHJK", "approve": true}))
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.headers().contains_key("retry-after"));
}
