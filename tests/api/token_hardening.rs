//! The security review's token findings (issue 17), each attack replayed
//! through the real server: signing keys in clear in the database file (and
//! the operator's way to drop a compromised key), PATs that introspection
//! and revocation did not know, and ID tokens that passed for access tokens.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{TestServer, FAST_HASHING, GOOD_PASSWORD, RELAXED_LIMITS};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Fails if `file` holds anything that looks like a private key in clear:
/// the field earlier versions stored it in, or the PKCS#8 prefix of an RSA
/// or Ed25519 key, as DER or as the base64 of a DER document. The needles
/// are long enough that sealed (random-looking) bytes never match by chance.
fn assert_no_private_key_in_clear(file: &[u8]) {
    let needles: [(&str, &[u8]); 5] = [
        ("the clear key field", b"private_key_pkcs8"),
        (
            "RSA PKCS#8 DER",
            &[
                0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
                0x01, 0x01, 0x05, 0x00,
            ],
        ),
        ("RSA PKCS#8 DER in base64", b"ADANBgkqhkiG9w0BAQEFAASC"),
        (
            "Ed25519 PKCS#8 DER",
            &[
                0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
            ],
        ),
        ("Ed25519 PKCS#8 DER in base64", b"BQYDK2VwBCIE"),
    ];
    for (what, needle) in needles {
        assert!(!contains(file, needle), "the database file holds {what}");
    }
}

fn database_bytes(data_dir: &std::path::Path) -> Vec<u8> {
    crate::helpers::stored_bytes(data_dir)
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn part_of(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("b64url")).expect("json")
}

fn kid_of(token: &str) -> String {
    part_of(token, 0)["kid"].as_str().expect("kid").to_owned()
}

async fn revoke(server: &TestServer, token: &str) -> StatusCode {
    server
        .post("/oauth/revoke")
        .form(&[("token", token)])
        .send()
        .await
        .expect("revoke")
        .status()
}

async fn published_kids(server: &TestServer) -> Vec<String> {
    let jwks = server.get_json("/.well-known/jwks.json").await;
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// An Ed25519 key made by the test, so that it knows the private half.
struct KnownKey {
    kid: String,
    x: String,
    pkcs8_der: Vec<u8>,
    seed: [u8; 32],
}

impl KnownKey {
    fn generate() -> KnownKey {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        use sha2::Digest;
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let x = b64url(key.verifying_key().as_bytes());
        // RFC 7638, as authd names its keys.
        let kid = b64url(&sha2::Sha256::digest(
            format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#).as_bytes(),
        ));
        KnownKey {
            kid,
            x,
            pkcs8_der: key.to_pkcs8_der().expect("der").as_bytes().to_vec(),
            seed: key.to_bytes(),
        }
    }

    /// Signs `claims` with this key, the header `typ` set to `typ`.
    fn sign(&self, typ: &str, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_ed_der(&self.pkcs8_der),
        )
        .expect("sign")
    }

    /// Writes this key into a stopped server's database the way versions
    /// before sealing did (`"private_key_pkcs8": <base64 PKCS#8 DER>`) and
    /// makes it the signer.
    fn install_in_clear(&self, data_dir: &std::path::Path) {
        const META: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
        const SIGNING_KEYS: redb::TableDefinition<&str, &[u8]> =
            redb::TableDefinition::new("signing_keys");
        let record = json!({
            "key": {
                "kid": self.kid,
                "algorithm": "EdDSA",
                "private_key_pkcs8": STANDARD.encode(&self.pkcs8_der),
                "created_at": 1_700_000_000,
            },
            "rotated_out_at": null,
            "retire_after": null,
        });
        let database = redb::Database::open(data_dir.join("authd.redb")).expect("open");
        let txn = database.begin_write().expect("txn");
        {
            let mut keys = txn.open_table(SIGNING_KEYS).expect("signing keys");
            keys.insert(self.kid.as_str(), record.to_string().as_bytes())
                .expect("insert");
            let mut meta = txn.open_table(META).expect("meta");
            meta.insert("active_signing_kid", json!(self.kid).to_string().as_bytes())
                .expect("insert");
        }
        txn.commit().expect("commit");
    }
}

const EDDSA: &str = "[tokens]\nsigning_alg = \"EdDSA\"\n";

#[tokio::test]
async fn the_database_file_never_holds_a_signing_key_in_clear() {
    let server = TestServer::spawn_fast().await;
    server.register_ok("kit@example.com").await;
    let tokens = server.login_ok("kit@example.com").await;
    let access = tokens["access_token"].as_str().expect("access");
    assert_eq!(part_of(access, 0)["alg"], "RS256");
    // One key of each algorithm.
    let rotated = server
        .operator(Method::POST, "/v1/keys/rotate?alg=EdDSA")
        .send()
        .await
        .expect("rotate");
    assert_eq!(rotated.status(), StatusCode::CREATED);
    assert_eq!(published_kids(&server).await.len(), 2);
    let data_dir = server.data_dir();
    let (_dir, _config) = server.stop();
    assert_no_private_key_in_clear(&database_bytes(&data_dir));
}

#[tokio::test]
async fn a_database_with_a_key_in_clear_comes_up_sealed_and_the_key_still_verifies_and_signs() {
    if crate::helpers::redb_file_only("a_database_with_a_key_in_clear") {
        return;
    }
    let server =
        TestServer::spawn_with(&format!("{FAST_HASHING}\n{RELAXED_LIMITS}\n{EDDSA}")).await;
    server.register_ok("lou@example.com").await;
    let before = server.login_ok("lou@example.com").await;
    let first_access = before["access_token"].as_str().expect("access").to_owned();
    let data_dir = server.data_dir();
    let (dir, config) = server.stop();

    // The file as a version before sealing would have left it.
    let known = KnownKey::generate();
    known.install_in_clear(&data_dir);
    let der_base64 = STANDARD.encode(&known.pkcs8_der);
    assert!(contains(&database_bytes(&data_dir), der_base64.as_bytes()));
    // A token that key signed for a live session before the upgrade.
    let mut claims = part_of(&first_access, 1);
    claims["jti"] = json!("signed-before-the-upgrade");
    let signed_before = known.sign("at+jwt", &claims);

    let server = TestServer::start(dir, config, &[]).await;
    let file = database_bytes(&data_dir);
    assert_no_private_key_in_clear(&file);
    assert!(!contains(&file, der_base64.as_bytes()));
    assert!(!contains(&file, &known.pkcs8_der));
    assert!(!contains(&file, &known.seed), "not even the bare key");
    assert!(!data_dir.join("authd.redb.rewrite").exists());

    let jwks = server.get_json("/.well-known/jwks.json").await;
    let published = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == known.kid.as_str())
        .expect("the sealed key is still published")
        .clone();
    assert_eq!(published["x"], known.x.as_str());
    assert_eq!(server.account_status(&signed_before).await, StatusCode::OK);
    assert_eq!(
        server.account_status(&first_access).await,
        StatusCode::OK,
        "tokens of the other key too"
    );
    let after = server.login_ok("lou@example.com").await;
    let new_access = after["access_token"].as_str().expect("access");
    assert_eq!(kid_of(new_access), known.kid, "the sealed key signs");
    assert_eq!(server.account_status(new_access).await, StatusCode::OK);

    // authd itself takes only an access token: the same claims and key,
    // typed as anything else, are refused.
    for typ in ["JWT", "jwt", "id_token+jwt", ""] {
        claims["jti"] = json!(format!("typed-{typ}"));
        assert_eq!(
            server.account_status(&known.sign(typ, &claims)).await,
            StatusCode::UNAUTHORIZED,
            "typ {typ:?}"
        );
    }
    claims["jti"] = json!("typed-application");
    assert_eq!(
        server
            .account_status(&known.sign("application/at+jwt", &claims))
            .await,
        StatusCode::OK
    );

    let sealed = server.audit_events("type=key.sealed").await;
    assert_eq!(sealed.len(), 1);
    assert_eq!(sealed[0]["details"]["kids"], json!([known.kid]));
    assert!(server.logs().contains("rewrote the database file"));
}

#[tokio::test]
async fn a_revoked_key_leaves_the_jwks_and_its_tokens_fail_at_once() {
    let server = TestServer::spawn_fast().await;
    server.register_ok("max@example.com").await;
    let first = server.login_ok("max@example.com").await;
    let first_access = first["access_token"].as_str().expect("access");
    let first_kid = kid_of(first_access);
    // Verified once, so that authd remembers it.
    assert_eq!(server.account_status(first_access).await, StatusCode::OK);

    let rotated: Value = server
        .operator(Method::POST, "/v1/keys/rotate")
        .send()
        .await
        .expect("rotate")
        .json()
        .await
        .expect("json");
    let second_kid = rotated["kid"].as_str().expect("kid").to_owned();
    let second = server.login_ok("max@example.com").await;
    let second_access = second["access_token"].as_str().expect("access");
    assert_eq!(kid_of(second_access), second_kid);
    assert_eq!(published_kids(&server).await.len(), 2);

    let path = format!("/v1/keys/{first_kid}");
    let anonymous = server
        .client
        .delete(server.url(&path))
        .send()
        .await
        .expect("delete");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(published_kids(&server).await.len(), 2, "nothing changed");

    // A key that is no longer the signer: dropped, the signer stays.
    let response = server
        .operator(Method::DELETE, &path)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({"revoked_kid": first_kid, "active_kid": second_kid, "replaced_signer": false})
    );
    assert_eq!(published_kids(&server).await, [second_kid.as_str()]);
    assert_eq!(
        server.account_status(first_access).await,
        StatusCode::UNAUTHORIZED,
        "a remembered verification does not outlive its key"
    );
    assert_eq!(
        server.introspect(first_access).await,
        json!({"active": false})
    );
    assert_eq!(server.account_status(second_access).await, StatusCode::OK);
    let listed = server.operator_get("/v1/keys").await;
    assert!(listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|k| k["kid"] != first_kid.as_str()));
    let again = server
        .operator(Method::DELETE, &path)
        .send()
        .await
        .expect("delete");
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    // The signer itself: a new key signs from then on, never none.
    let response = server
        .operator(Method::DELETE, &format!("/v1/keys/{second_kid}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["revoked_kid"], second_kid.as_str());
    assert_eq!(body["replaced_signer"], true);
    let third_kid = body["active_kid"].as_str().expect("kid").to_owned();
    assert!(third_kid != first_kid && third_kid != second_kid);
    assert_eq!(published_kids(&server).await, [third_kid.as_str()]);
    assert_eq!(
        server.account_status(second_access).await,
        StatusCode::UNAUTHORIZED
    );
    // A compromised key is not a compromised session: refresh still works.
    let refreshed = server
        .post("/oauth/token")
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                second["refresh_token"].as_str().expect("refresh"),
            ),
        ])
        .send()
        .await
        .expect("refresh");
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.expect("json");
    let third_access = refreshed["access_token"].as_str().expect("access");
    assert_eq!(kid_of(third_access), third_kid);
    assert_eq!(server.account_status(third_access).await, StatusCode::OK);

    let revoked = server.audit_events("type=key.revoked").await;
    assert_eq!(revoked.len(), 2);
    assert_eq!(revoked[0]["details"]["kid"], second_kid.as_str());
    assert_eq!(revoked[0]["details"]["was_signer"], true);
    assert_eq!(revoked[1]["details"]["kid"], first_kid.as_str());

    // Committed before the answer: a restart does not bring them back.
    let (dir, config) = server.stop();
    let server = TestServer::start(dir, config, &[]).await;
    assert_eq!(published_kids(&server).await, [third_kid]);
}

#[tokio::test]
async fn pats_are_introspected_and_revoked_through_the_oauth_endpoints() {
    let server = TestServer::spawn_fast().await;
    let created = server
        .operator_json(
            Method::POST,
            "/v1/users",
            json!({"email": "ned@example.com", "password": GOOD_PASSWORD, "role": "member"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let user: Value = created.json().await.expect("json");
    let user_id = user["id"].as_str().expect("id").to_owned();
    let org = user["memberships"][0]["org_id"]
        .as_str()
        .expect("org")
        .to_owned();
    let session = &server.session_token("ned@example.com").await;
    let response = server
        .post("/api/v1/auth/api-tokens")
        .bearer_auth(session)
        .header("X-Active-Org-Id", &org)
        .json(&json!({"name": "ci", "scopes": ["tokens.read", "sessions.read"], "expires_in_days": 30}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), StatusCode::CREATED);
    let pat: Value = response.json().await.expect("json");
    let token = pat["token"].as_str().expect("token").to_owned();
    let list_status = |token: String| {
        let request = server
            .get("/api/v1/auth/api-tokens")
            .bearer_auth(token)
            .header("X-Active-Org-Id", &org);
        async move { request.send().await.expect("list").status() }
    };
    assert_eq!(list_status(token.clone()).await, StatusCode::OK);

    // Who may introspect is unchanged: the operator only.
    let anonymous = server
        .post("/oauth/introspect")
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("introspect");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let with_the_pat = server
        .post("/oauth/introspect")
        .bearer_auth(&token)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("introspect");
    assert_eq!(with_the_pat.status(), StatusCode::UNAUTHORIZED);

    let active = server.introspect(&token).await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["token_type"], "personal_access_token");
    assert_eq!(active["scope"], "sessions.read tokens.read");
    assert_eq!(active["sub"], user_id.as_str());
    assert_eq!(active["org"], org.as_str());
    assert_eq!(active["username"], "ned@example.com");
    let exp = active["exp"].as_i64().expect("exp");
    let iat = active["iat"].as_i64().expect("iat");
    assert_eq!(exp - iat, 30 * 86_400);
    assert!(
        active.get("client_id").is_none(),
        "a PAT has no OAuth client"
    );

    // A look-alike (a changed character breaks the checksum) is no PAT.
    let mut look_alike = token.clone().into_bytes();
    let middle = look_alike.len() / 2;
    look_alike[middle] = if look_alike[middle] == b'a' {
        b'b'
    } else {
        b'a'
    };
    let look_alike = String::from_utf8(look_alike).expect("ascii");
    assert_eq!(
        server.introspect(&look_alike).await,
        json!({"active": false})
    );

    // Its owner disabled: not active; enabled again: active again.
    for (disabled, active) in [(true, false), (false, true)] {
        let response = server
            .operator_json(
                Method::PATCH,
                &format!("/v1/users/{user_id}"),
                json!({"disabled": disabled}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(server.introspect(&token).await["active"], active);
    }

    // RFC 7009: whoever holds it may end it; it fails from the next request.
    assert_eq!(revoke(&server, &look_alike).await, StatusCode::OK);
    assert_eq!(
        list_status(token.clone()).await,
        StatusCode::OK,
        "a look-alike revokes nothing"
    );
    assert_eq!(revoke(&server, &token).await, StatusCode::OK);
    assert_eq!(list_status(token.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(server.introspect(&token).await, json!({"active": false}));
    assert_eq!(
        revoke(&server, &token).await,
        StatusCode::OK,
        "again: nothing left"
    );
    let events = server.audit_events("type=pat.revoked").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["details"]["pat_id"], pat["id"]);
    assert_eq!(events[0]["reason"], "token_revoked");
    assert_eq!(events[0]["user_id"], user_id.as_str());
}

/// Runs `examples/verify_token.py` on `token`: its exit status and stderr.
/// `None` when python3 with PyJWT is missing (outside CI only).
async fn example_verifier(server: &TestServer, token: &str) -> Option<(bool, String)> {
    if !crate::helpers::pyjwt_available() {
        return None;
    }
    let (jwks_url, token) = (server.url("/.well-known/jwks.json"), token.to_owned());
    let output = tokio::task::spawn_blocking(move || {
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
    .await
    .expect("join");
    Some((
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn an_id_token_is_never_taken_for_an_access_token() {
    let server = TestServer::spawn_fast().await;
    server.register_ok("oli@example.com").await;
    let response = server
        .login(
            json!({"email": "oli@example.com", "password": GOOD_PASSWORD, "scope": "openid email"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.expect("json");
    let access = tokens["access_token"].as_str().expect("access");
    let id_token = tokens["id_token"].as_str().expect("id token");

    assert_eq!(part_of(access, 0)["typ"], "at+jwt");
    assert_eq!(part_of(id_token, 0)["typ"], "JWT");
    let id_claims = part_of(id_token, 1);
    let access_claims = part_of(access, 1);
    assert_eq!(access_claims["aud"], "authd");
    assert_eq!(
        id_claims["aud"], "authd-id-token",
        "never the access tokens' audience"
    );
    assert_eq!(id_claims["email_verified"], false);
    assert_eq!(access_claims["email_verified"], false);

    // authd itself refuses it wherever an access token goes.
    assert_eq!(
        server.account_status(id_token).await,
        StatusCode::UNAUTHORIZED
    );
    let memberships = server
        .get("/api/v1/org/memberships")
        .bearer_auth(id_token)
        .send()
        .await
        .expect("memberships");
    assert_eq!(memberships.status(), StatusCode::UNAUTHORIZED);
    let logout = server
        .post("/logout")
        .bearer_auth(id_token)
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.introspect(id_token).await, json!({"active": false}));
    assert_eq!(server.account_status(access).await, StatusCode::OK);

    // A client_id equal to the access audience would bring the confusion back.
    let response = server
        .login(json!({"email": "oli@example.com", "password": GOOD_PASSWORD, "scope": "openid", "client_id": "authd"}))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["fields"][0]["field"], "client_id", "{body}");

    // The README's resource-server example takes the access token only.
    if let Some((accepted, stderr)) = example_verifier(&server, access).await {
        assert!(accepted, "{stderr}");
        let (accepted, stderr) = example_verifier(&server, id_token).await.expect("ran");
        assert!(!accepted, "the example verifier took an ID token");
        assert!(stderr.contains("at+jwt"), "refused for its type: {stderr}");
    }
}
