//! The token life cycle through the real server: refresh rotation, replay
//! and race detection, logout, revocation, introspection, ID tokens, key
//! rotation, EdDSA, and hostile tokens — checked with an independent
//! verifier that knows only the JWKS.

use base64::Engine;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{TestServer, FAST_HASHING, GOOD_PASSWORD, RELAXED_LIMITS};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn header_of(token: &str) -> Value {
    let part = token.split('.').next().expect("header");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .expect("b64"),
    )
    .expect("json")
}

/// Verifies `token` the way a resource server would: JWKS over HTTP only.
async fn verify_independently(
    server: &TestServer,
    token: &str,
    audience: &str,
) -> Result<Value, String> {
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(server.get_json("/.well-known/jwks.json").await).expect("a JWK set");
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or("kid not published")?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&["http://localhost:9090"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_refresh_rotates_within_the_family_and_a_replay_kills_it() {
    let server = TestServer::spawn_fast().await;
    server.register_ok("ann@example.com").await;
    let first = server.login_ok("ann@example.com").await;
    let first_refresh = first["refresh_token"].as_str().expect("refresh");

    let response = server.refresh(first_refresh).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let second: Value = response.json().await.expect("json");
    assert_eq!(second["session_id"], first["session_id"], "same session");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(second["token_type"], "Bearer");
    let second_access = second["access_token"].as_str().expect("access");
    assert_eq!(server.account_status(second_access).await, StatusCode::OK);
    verify_independently(&server, second_access, "authd")
        .await
        .expect("verifies");

    // The spent token comes back: replay.
    let replay = server
        .post("/oauth/token")
        .header("x-forwarded-for", "203.0.113.66")
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", first_refresh),
        ])
        .send()
        .await
        .expect("replay");
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    let body: Value = replay.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"].is_string());

    // The whole family and its session are dead.
    let after = server
        .refresh(second["refresh_token"].as_str().expect("refresh"))
        .await;
    assert_eq!(after.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        server.account_status(second_access).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.introspect(second_access).await,
        json!({"active": false})
    );

    let events = server.audit_events("type=token.replay_detected").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["details"]["first_use_ip"], "127.0.0.1");
    assert_eq!(events[0]["details"]["replay_ip"], "127.0.0.1");
    assert_eq!(events[0]["details"]["session_id"], first["session_id"]);
}

#[tokio::test]
async fn of_fifty_concurrent_presentations_of_one_token_exactly_one_wins() {
    let server = TestServer::spawn_fast().await;
    server.register_ok("bo@example.com").await;
    let tokens = server.login_ok("bo@example.com").await;
    let token = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let statuses: Vec<(StatusCode, Value)> = futures_util::stream::iter(0..50)
        .map(|_| {
            let request = server.post("/oauth/token").form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
            ]);
            async move {
                let response = request.send().await.expect("refresh");
                (
                    response.status(),
                    response.json::<Value>().await.expect("json"),
                )
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let winners = statuses
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .count();
    assert_eq!(winners, 1, "{statuses:?}");
    for (status, body) in statuses.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");
    }
    assert_eq!(
        server
            .audit_events("type=token.replay_detected&limit=100")
            .await
            .len(),
        49
    );
    assert_eq!(server.audit_events("type=token.refreshed").await.len(), 1);
}

#[tokio::test]
async fn the_token_endpoint_speaks_rfc_6749_errors() {
    let server = TestServer::spawn_fast().await;
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[], "invalid_request"),
        (
            &[("grant_type", "password"), ("username", "x")],
            "unsupported_grant_type",
        ),
        (
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", "x"),
            ],
            "unsupported_grant_type",
        ),
        (&[("grant_type", "refresh_token")], "invalid_request"),
        (
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "garbage"),
            ],
            "invalid_grant",
        ),
    ];
    for (form, error) in cases {
        let response = server
            .post("/oauth/token")
            .form(form)
            .send()
            .await
            .expect("token");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{form:?}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"], error, "{form:?}");
    }
    let response = server
        .post("/oauth/token")
        .json(&json!({"grant_type": "refresh_token", "refresh_token": "x"}))
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "invalid_request"
    );
    let response = server.get("/oauth/token").send().await.expect("token");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "method_not_allowed"
    );
}

#[tokio::test]
async fn logout_ends_the_session_family_and_access_tokens() {
    let server = TestServer::spawn_fast().await;
    server.register_ok("cy@example.com").await;
    let bearer = server.login_ok("cy@example.com").await;
    let access = bearer["access_token"].as_str().expect("access");
    assert_eq!(server.introspect(access).await["active"], true);
    let response = server
        .post("/logout")
        .bearer_auth(access)
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        server.account_status(access).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.introspect(access).await, json!({"active": false}));
    let response = server
        .refresh(bearer["refresh_token"].as_str().expect("refresh"))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let form = server.login_ok("cy@example.com").await;
    let response = server
        .post("/logout")
        .form(&[(
            "refresh_token",
            form["refresh_token"].as_str().expect("refresh"),
        )])
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        server
            .account_status(form["access_token"].as_str().expect("access"))
            .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.audit_events("type=session.logout").await.len(), 2);

    let response = server.post("/logout").send().await.expect("logout");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = server
        .post("/logout")
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn revocation_and_introspection_follow_rfc_7009_and_7662() {
    let server = TestServer::spawn_fast().await;
    let profile = server.register_ok("di@example.com").await;
    let tokens = server.login_ok("di@example.com").await;
    let (access, refresh_token) = (
        tokens["access_token"].as_str().expect("access"),
        tokens["refresh_token"].as_str().expect("refresh"),
    );

    let unauthenticated = server
        .post("/oauth/introspect")
        .form(&[("token", access)])
        .send()
        .await
        .expect("introspect");
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);

    let active = server.introspect(access).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["token_type"], "access_token");
    assert_eq!(active["sub"], profile["id"]);
    assert_eq!(active["sid"], tokens["session_id"]);
    assert!(active["exp"].is_i64());
    let active = server.introspect(refresh_token).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["token_type"], "refresh_token");
    assert_eq!(server.introspect("garbage").await, json!({"active": false}));

    for token in ["unknown-token", "a.b.c"] {
        let response = server
            .post("/oauth/revoke")
            .form(&[("token", token)])
            .send()
            .await
            .expect("revoke");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "unknown tokens revoke fine"
        );
    }
    let response = server
        .post("/oauth/revoke")
        .form(&[("token", refresh_token)])
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        server.introspect(refresh_token).await,
        json!({"active": false})
    );
    assert_eq!(
        server.refresh(refresh_token).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        server.account_status(access).await,
        StatusCode::UNAUTHORIZED
    );

    let again = server.login_ok("di@example.com").await;
    let access = again["access_token"].as_str().expect("access");
    let response = server
        .post("/oauth/revoke")
        .form(&[("token", access)])
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.introspect(access).await, json!({"active": false}));
}

#[tokio::test]
async fn the_openid_scope_brings_an_id_token_for_the_client() {
    let server = TestServer::spawn_fast().await;
    let profile = server.register_ok("ed@example.com").await;
    let plain = server.login_ok("ed@example.com").await;
    assert!(plain.get("id_token").is_none());

    let response = server
        .login(json!({"email": "ed@example.com", "password": GOOD_PASSWORD, "scope": "openid email", "client_id": "grafana", "nonce": "n-0S6_WzA2Mj"}))
        .await;
    let tokens: Value = response.json().await.expect("json");
    let id_token = tokens["id_token"].as_str().expect("id token");
    let claims = verify_independently(&server, id_token, "grafana")
        .await
        .expect("verifies");
    assert_eq!(claims["sub"], profile["id"]);
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["email"], "ed@example.com");
    assert_eq!(claims["sid"], tokens["session_id"]);
    assert!(claims["auth_time"].is_i64());
    assert_eq!(tokens["scope"], "openid email");

    let refreshed: Value = server
        .refresh(tokens["refresh_token"].as_str().expect("refresh"))
        .await
        .json()
        .await
        .expect("json");
    let claims = verify_independently(
        &server,
        refreshed["id_token"].as_str().expect("id token"),
        "grafana",
    )
    .await
    .expect("verifies");
    assert_eq!(
        claims["auth_time"],
        verify_independently(&server, id_token, "grafana")
            .await
            .expect("ok")["auth_time"]
    );
    assert!(
        claims.get("nonce").is_none(),
        "a refreshed ID token carries no nonce"
    );
}

#[tokio::test]
async fn the_jwks_follows_rfc_7517_and_discovery_lists_what_exists() {
    let server = TestServer::spawn_fast().await;
    let jwks: Value = server.get_json("/.well-known/jwks.json").await;
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert!(key["kid"].is_string());
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key["n"].as_str().expect("n"))
        .expect("n b64url");
    assert!(n.len() >= 256, "RSA-2048 or stronger");
    assert_eq!(key["e"], "AQAB");
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(
            key.get(private).is_none(),
            "{private} must not be published"
        );
    }

    let discovery: Value = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["issuer"], "http://localhost:9090");
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    let local = |url: &Value| {
        url.as_str()
            .expect("url")
            .replace("http://localhost:9090", "")
    };
    let jwks_status = server
        .get(&local(&discovery["jwks_uri"]))
        .send()
        .await
        .expect("jwks")
        .status();
    assert_eq!(jwks_status, StatusCode::OK);
    for endpoint in [
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "end_session_endpoint",
    ] {
        let status = server
            .post(&local(&discovery[endpoint]))
            .send()
            .await
            .expect("endpoint")
            .status();
        assert_ne!(status, StatusCode::NOT_FOUND, "{endpoint} exists");
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{endpoint} takes POST"
        );
    }
}

#[tokio::test]
async fn a_rotated_key_stays_published_for_its_tokens_lifetime_then_leaves() {
    let (server, clock) = TestServer::in_process(&format!(
        "{FAST_HASHING}\n{RELAXED_LIMITS}\n[tokens]\naccess_ttl = \"3s\"\nid_ttl = \"2s\"\n"
    ))
    .await;
    server.register_ok("fay@example.com").await;
    let before = server.login_ok("fay@example.com").await;
    let old_access = before["access_token"].as_str().expect("access");
    let old_kid = header_of(old_access)["kid"]
        .as_str()
        .expect("kid")
        .to_owned();

    let rotated = server
        .operator(Method::POST, "/v1/keys/rotate")
        .send()
        .await
        .expect("rotate");
    assert_eq!(rotated.status(), StatusCode::CREATED);
    let new_key: Value = rotated.json().await.expect("json");
    let new_kid = new_key["kid"].as_str().expect("kid").to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(new_key["active"], true);

    let keys: Value = server.operator_get("/v1/keys").await;
    let items = keys["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    let old = items
        .iter()
        .find(|k| k["kid"] == old_kid.as_str())
        .expect("old key listed");
    assert_eq!(old["active"], false);
    assert!(old["retire_after"].is_string() && old["rotated_out_at"].is_string());

    let jwks: Value = server.get_json("/.well-known/jwks.json").await;
    assert_eq!(
        jwks["keys"].as_array().expect("keys").len(),
        2,
        "both keys published during the overlap"
    );
    assert_eq!(
        server.account_status(old_access).await,
        StatusCode::OK,
        "old tokens still verify"
    );
    let after = server.login_ok("fay@example.com").await;
    let new_access = after["access_token"].as_str().expect("access");
    assert_eq!(header_of(new_access)["kid"], new_kid.as_str());

    clock.advance(4);
    let jwks: Value = server.get_json("/.well-known/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid"))
        .collect();
    assert_eq!(
        kids,
        [new_kid.as_str()],
        "the old key left once its last token expired"
    );
    assert_eq!(
        server.account_status(old_access).await,
        StatusCode::UNAUTHORIZED
    );
    let fresh = server.login_ok("fay@example.com").await;
    assert_eq!(
        server
            .account_status(fresh["access_token"].as_str().expect("access"))
            .await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn eddsa_by_config_and_an_algorithm_switch_keeps_old_tokens_valid() {
    let server = TestServer::spawn_fast().await;
    server.register_ok("gus@example.com").await;
    let rsa = server.login_ok("gus@example.com").await;
    let (dir, config) = server.stop();
    let text =
        std::fs::read_to_string(&config).expect("config") + "\n[tokens]\nsigning_alg = \"EdDSA\"\n";
    std::fs::write(&config, text).expect("write");
    let server = TestServer::start(dir, config, &[]).await;

    let jwks: Value = server.get_json("/.well-known/jwks.json").await;
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "RSA stays during its window: {jwks}");
    let okp = keys
        .iter()
        .find(|k| k["kty"] == "OKP")
        .expect("an Ed25519 key");
    assert_eq!(okp["crv"], "Ed25519");
    assert_eq!(okp["alg"], "EdDSA");
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(okp["x"].as_str().expect("x"))
        .expect("b64url");
    assert_eq!(x.len(), 32);

    let ed = server.login_ok("gus@example.com").await;
    let access = ed["access_token"].as_str().expect("access");
    assert_eq!(header_of(access)["alg"], "EdDSA");
    verify_independently(&server, access, "authd")
        .await
        .expect("EdDSA verifies from the JWKS");
    let old = rsa["access_token"].as_str().expect("access");
    verify_independently(&server, old, "authd")
        .await
        .expect("the RS256 token still verifies");
    assert_eq!(server.account_status(old).await, StatusCode::OK);
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_rejected() {
    let server = TestServer::spawn_fast().await;
    server.register_ok("hal@example.com").await;
    let tokens = server.login_ok("hal@example.com").await;
    let access = tokens["access_token"].as_str().expect("access");
    let mut parts = access.split('.');
    let (header_part, payload_part, signature) = (
        parts.next().expect("h"),
        parts.next().expect("p"),
        parts.next().expect("s"),
    );
    let header = header_of(access);
    let mut claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload_part)
            .expect("b64"),
    )
    .expect("json");

    // Payload changed, signature kept.
    claims["email"] = json!("admin@example.com");
    let tampered = format!(
        "{header_part}.{}.{signature}",
        b64(claims.to_string().as_bytes())
    );
    // alg none.
    let none_header = json!({"alg": "none", "typ": "JWT", "kid": header["kid"]});
    let alg_none = format!(
        "{}.{payload_part}.",
        b64(none_header.to_string().as_bytes())
    );
    // HS256 with the published RSA public key as the HMAC secret.
    let jwks: Value = server.get_json("/.well-known/jwks.json").await;
    let jwk = &jwks["keys"][0];
    let decode = |field: &str| {
        rsa::BigUint::from_bytes_be(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwk[field].as_str().expect("field"))
                .expect("b64"),
        )
    };
    let public = rsa::RsaPublicKey::new(decode("n"), decode("e")).expect("public key");
    use rsa::pkcs8::EncodePublicKey;
    let pem = public
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .expect("pem");
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = header["kid"].as_str().map(str::to_owned);
    let original_claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload_part)
            .expect("b64"),
    )
    .expect("json");
    let confused = jsonwebtoken::encode(
        &hs_header,
        &original_claims,
        &jsonwebtoken::EncodingKey::from_secret(pem.as_bytes()),
    )
    .expect("hs256");
    // A well-formed token signed by a key authd never published.
    let mut rng = rand::rngs::OsRng;
    let stranger = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("key");
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let stranger_der = stranger.to_pkcs1_der().expect("der");
    let mut foreign_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    foreign_header.kid = Some("not-a-real-kid".to_owned());
    let foreign = jsonwebtoken::encode(
        &foreign_header,
        &original_claims,
        &jsonwebtoken::EncodingKey::from_rsa_der(stranger_der.as_bytes()),
    )
    .expect("foreign");
    foreign_header.kid = header["kid"].as_str().map(str::to_owned);
    let impostor = jsonwebtoken::encode(
        &foreign_header,
        &original_claims,
        &jsonwebtoken::EncodingKey::from_rsa_der(stranger_der.as_bytes()),
    )
    .expect("impostor");

    for (name, token) in [
        ("tampered payload", tampered.as_str()),
        ("alg none", alg_none.as_str()),
        ("HS256 with the public key", confused.as_str()),
        ("unknown kid", foreign.as_str()),
        ("our kid, another key", impostor.as_str()),
        ("garbage", "garbage"),
        ("empty parts", ".."),
    ] {
        assert_eq!(
            server.account_status(token).await,
            StatusCode::UNAUTHORIZED,
            "{name}"
        );
        assert_eq!(
            server.introspect(token).await,
            json!({"active": false}),
            "{name}"
        );
    }
    assert_eq!(
        server.account_status(access).await,
        StatusCode::OK,
        "the genuine token still works"
    );
}

#[tokio::test]
async fn expired_tokens_and_tokens_for_another_issuer_or_audience_are_rejected() {
    let (server, clock) = TestServer::in_process(&format!(
        "{FAST_HASHING}\n{RELAXED_LIMITS}\n[tokens]\naccess_ttl = \"1s\"\n"
    ))
    .await;
    server.register_ok("ida@example.com").await;
    let short = server.login_ok("ida@example.com").await;
    clock.advance(2);
    assert_eq!(
        server
            .account_status(short["access_token"].as_str().expect("access"))
            .await,
        StatusCode::UNAUTHORIZED
    );

    let server = TestServer::spawn_fast().await;
    server.register_ok("jo@example.com").await;
    let tokens = server.login_ok("jo@example.com").await;
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    let (dir, config) = server.stop();
    let original = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        format!("{original}\n[tokens]\naudience = \"another-api\"\n"),
    )
    .expect("write");
    let server = TestServer::start(dir, config.clone(), &[]).await;
    assert_eq!(
        server.account_status(&access).await,
        StatusCode::UNAUTHORIZED,
        "wrong aud"
    );
    let (dir, config) = server.stop();
    let with_issuer = original.replace("[storage]", "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://id.example.net\"\n\n[storage]").replacen("[server]\nlisten = \"127.0.0.1:0\"\n\n", "", 1);
    std::fs::write(&config, with_issuer).expect("write");
    let server = TestServer::start(dir, config, &[]).await;
    assert_eq!(
        server.account_status(&access).await,
        StatusCode::UNAUTHORIZED,
        "wrong iss"
    );
}

#[tokio::test]
async fn a_refresh_token_only_ever_yields_its_own_users_tokens() {
    let server = TestServer::spawn_fast().await;
    let kim = server.register_ok("kim@example.com").await;
    server.register_ok("lee@example.com").await;
    let kim_tokens = server.login_ok("kim@example.com").await;
    let lee_tokens = server.login_ok("lee@example.com").await;
    let refreshed: Value = server
        .post("/oauth/token")
        .bearer_auth(lee_tokens["access_token"].as_str().expect("access"))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                kim_tokens["refresh_token"].as_str().expect("refresh"),
            ),
        ])
        .send()
        .await
        .expect("refresh")
        .json()
        .await
        .expect("json");
    let claims = verify_independently(
        &server,
        refreshed["access_token"].as_str().expect("access"),
        "authd",
    )
    .await
    .expect("verifies");
    assert_eq!(
        claims["sub"], kim["id"],
        "another user's bearer header changes nothing"
    );
    assert_eq!(refreshed["session_id"], kim_tokens["session_id"]);
}

/// The README's Python resource-server snippet, run for real. It needs
/// PyJWT (`pip install "pyjwt[crypto]"`, which `.ci/run` does); without it
/// the test says so and passes only outside CI.
#[tokio::test]
async fn the_readme_python_verifier_accepts_our_tokens_and_rejects_a_forgery() {
    if !crate::helpers::pyjwt_available() {
        return;
    }
    let server = TestServer::spawn_fast().await;
    let profile = server.register_ok("py@example.com").await;
    let tokens = server.login_ok("py@example.com").await;
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    let jwks_url = server.url("/.well-known/jwks.json");
    let run = |token: String| {
        let jwks_url = jwks_url.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/examples/verify_token.py"
                ))
                .arg(jwks_url)
                .arg(token)
                .output()
                .expect("python3")
        })
    };
    let output = run(access.clone()).await.expect("join");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let claims: Value = serde_json::from_slice(&output.stdout).expect("claims json");
    assert_eq!(claims["sub"], profile["id"]);
    let forged = crate::helpers::tamper_signature(&access);
    let output = run(forged).await.expect("join");
    assert!(!output.status.success(), "a forged signature must fail");
}
