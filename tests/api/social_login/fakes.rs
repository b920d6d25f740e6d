//! Local stand-ins for the providers that CI cannot reach, each written
//! from the provider's public documentation and speaking only what it
//! documents:
//!
//! - Google ("OpenID Connect", developers.google.com/identity/openid-connect):
//!   discovery at `/.well-known/openid-configuration`, issuer
//!   `https://accounts.google.com`, RS256 ID tokens with `email_verified`.
//! - Microsoft identity platform v2.0 (learn.microsoft.com, "ID tokens",
//!   "OpenID Connect on the Microsoft identity platform"): the multi-tenant
//!   (`common`) discovery document's issuer is
//!   `https://login.microsoftonline.com/{tenantid}/v2.0`, literally; each
//!   token names its tenant in `tid` and its issuer with that id.
//! - Sign in with Apple (developer.apple.com, "Generate and validate
//!   tokens", "Creating a client secret"): `response_mode=form_post` with
//!   the `user` JSON on the first sign-in, the client secret an ES256 JWT
//!   (`kid` = key id; `iss` = team id, `sub` = client id, `aud` =
//!   `https://appleid.apple.com`) that this fake verifies with the public
//!   key, and `email_verified` as the string `"true"`.
//! - GitHub OAuth apps (docs.github.com, "Authorizing OAuth apps", REST
//!   "Users" and "Emails"): `/login/oauth/authorize`,
//!   `/login/oauth/access_token` (JSON only with `Accept:
//!   application/json`), `/user` with a numeric `id`, `/user/emails` with
//!   `primary` and `verified`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const PROVIDER_KEY: &str = include_str!("keys/provider_rsa.pem");
pub const STRANGER_KEY: &str = include_str!("keys/stranger_rsa.pem");
pub const APPLE_PRIVATE_KEY: &str = include_str!("keys/apple_p256.p8");
pub const APPLE_PUBLIC_KEY: &str = include_str!("keys/apple_p256_pub.pem");
pub const APPLE_TEAM: &str = "TEAM123456";
pub const APPLE_KEY_ID: &str = "KEY1234567";
pub const MICROSOFT_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
pub const CLIENT_ID: &str = "authd-client";
pub const CLIENT_SECRET: &str = "s3cret-of-the-upstream-client";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Google,
    Microsoft,
    Apple,
    Github,
}

/// Who is signed in at the provider.
#[derive(Debug, Clone)]
pub struct Person {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

/// What a hostile or broken provider does to its ID tokens.
#[derive(Debug, Clone, Default)]
pub struct Tamper {
    pub audience: Option<String>,
    pub expired: bool,
    pub nonce: Option<String>,
    pub stranger_key: bool,
    /// An `iss` other than the provider's own.
    pub issuer: Option<String>,
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    challenge: String,
}

struct Inner {
    flavor: Flavor,
    base: String,
    person: Person,
    tamper: Tamper,
    codes: HashMap<String, Grant>,
    tokens: HashMap<String, Person>,
    /// The claims of the last Apple client secret that verified.
    apple_secret_claims: Option<Value>,
    /// The provider rotated its signing key: the new one signs and is
    /// published beside the old one.
    rotated: bool,
    /// authd's clock when it runs on a manual one.
    clock: Option<authd::clock::Clock>,
}

#[derive(Clone)]
pub struct FakeProvider {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeProvider {
    pub async fn start(flavor: Flavor, person: Person) -> FakeProvider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let inner = Arc::new(Mutex::new(Inner {
            flavor,
            base: base.clone(),
            person,
            tamper: Tamper::default(),
            codes: HashMap::new(),
            tokens: HashMap::new(),
            apple_secret_claims: None,
            rotated: false,
            clock: None,
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/login/oauth/authorize", get(authorize))
            .route("/token", post(token))
            .route("/login/oauth/access_token", post(token))
            .route("/jwks", get(jwks))
            .route("/user", get(github_user))
            .route("/user/emails", get(github_emails))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeProvider { base, inner }
    }

    pub fn set_person(&self, person: Person) {
        self.inner.lock().expect("lock").person = person;
    }

    pub fn set_tamper(&self, tamper: Tamper) {
        self.inner.lock().expect("lock").tamper = tamper;
    }

    pub fn rotate_key(&self) {
        self.inner.lock().expect("lock").rotated = true;
    }

    /// Issues tokens at the time of `clock` (authd's manual clock).
    pub fn use_clock(&self, clock: authd::clock::Clock) {
        self.inner.lock().expect("lock").clock = Some(clock);
    }

    pub fn apple_secret_claims(&self) -> Option<Value> {
        self.inner.lock().expect("lock").apple_secret_claims.clone()
    }
}

fn now(inner: &Inner) -> i64 {
    if let Some(clock) = &inner.clock {
        return clock.now();
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

/// The RS256 public key of a PEM as a JWK.
pub fn rsa_jwk(pem: &str, kid: &str) -> Value {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).expect("rsa key");
    json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    })
}

fn issuer(inner: &Inner) -> String {
    match inner.flavor {
        Flavor::Google => "https://accounts.google.com".to_owned(),
        Flavor::Apple => "https://appleid.apple.com".to_owned(),
        Flavor::Microsoft => format!("{}/{{tenantid}}/v2.0", inner.base),
        Flavor::Github => inner.base.clone(),
    }
}

async fn discovery(State(inner): State<Arc<Mutex<Inner>>>) -> Json<Value> {
    let inner = inner.lock().expect("lock");
    let base = &inner.base;
    Json(json!({
        "issuer": issuer(&inner),
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks(State(inner): State<Arc<Mutex<Inner>>>) -> Json<Value> {
    let mut keys = vec![rsa_jwk(PROVIDER_KEY, "fake-1")];
    if inner.lock().expect("lock").rotated {
        keys.push(rsa_jwk(STRANGER_KEY, "stranger-1"));
    }
    Json(json!({ "keys": keys }))
}

async fn authorize(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().expect("lock");
    let param = |name: &str| query.get(name).cloned().unwrap_or_default();
    if param("response_type") != "code"
        || param("client_id") != CLIENT_ID
        || param("code_challenge_method") != "S256"
        || param("code_challenge").is_empty()
        || param("state").is_empty()
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    if inner.flavor != Flavor::Github && !query.contains_key("nonce") {
        return (StatusCode::BAD_REQUEST, "nonce required").into_response();
    }
    let code = format!("code-{}", inner.codes.len() + 1);
    inner.codes.insert(
        code.clone(),
        Grant {
            client_id: param("client_id"),
            redirect_uri: param("redirect_uri"),
            nonce: query.get("nonce").cloned(),
            challenge: param("code_challenge"),
        },
    );
    if inner.flavor == Flavor::Apple {
        // form_post: the page Apple shows posts these fields to the
        // redirect URI; the test's browser does the posting.
        if param("response_mode") != "form_post" {
            return (
                StatusCode::BAD_REQUEST,
                "name or email scope needs form_post",
            )
                .into_response();
        }
        let person = &inner.person;
        let user = json!({
            "name": {"firstName": "Ada", "lastName": "Lovelace"},
            "email": person.email,
        });
        return Json(json!({
            "action": param("redirect_uri"),
            "code": code,
            "state": param("state"),
            "user": user.to_string(),
        }))
        .into_response();
    }
    let mut target = url::Url::parse(&param("redirect_uri")).expect("redirect uri");
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &param("state"));
    Redirect::to(target.as_str()).into_response()
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({"error": error}))).into_response()
}

/// Apple's documented client-secret checks, by signature.
fn check_apple_secret(secret: &str) -> Option<Value> {
    let header = jsonwebtoken::decode_header(secret).ok()?;
    if header.alg != Algorithm::ES256 || header.kid.as_deref() != Some(APPLE_KEY_ID) {
        return None;
    }
    let key = DecodingKey::from_ec_pem(APPLE_PUBLIC_KEY.as_bytes()).ok()?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["https://appleid.apple.com"]);
    validation.set_issuer(&[APPLE_TEAM]);
    validation.sub = Some(CLIENT_ID.to_owned());
    let claims = jsonwebtoken::decode::<Value>(secret, &key, &validation)
        .ok()?
        .claims;
    let lifetime = claims["exp"].as_i64()? - claims["iat"].as_i64()?;
    (lifetime > 0 && lifetime <= 15_777_000).then_some(claims)
}

async fn token(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().expect("lock");
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    if field("grant_type") != "authorization_code" {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let secret_ok = match inner.flavor {
        Flavor::Apple => match check_apple_secret(&field("client_secret")) {
            Some(claims) => {
                inner.apple_secret_claims = Some(claims);
                true
            }
            None => false,
        },
        _ => field("client_secret") == CLIENT_SECRET,
    };
    if field("client_id") != CLIENT_ID || !secret_ok {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let Some(grant) = inner.codes.remove(&field("code")) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let verifier_digest = URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()));
    if grant.client_id != field("client_id")
        || grant.redirect_uri != field("redirect_uri")
        || verifier_digest != grant.challenge
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let access_token = format!("at-{}", inner.tokens.len() + 1);
    let person = inner.person.clone();
    inner.tokens.insert(access_token.clone(), person);
    if inner.flavor == Flavor::Github {
        let wants_json = headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
        let body = json!({"access_token": access_token, "token_type": "bearer", "scope": "read:user,user:email"});
        if !wants_json {
            return format!("access_token={access_token}&scope=read%3Auser&token_type=bearer")
                .into_response();
        }
        return Json(body).into_response();
    }
    let id_token = id_token(&inner, grant.nonce.as_deref().unwrap_or_default());
    Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 3599,
        "id_token": id_token,
    }))
    .into_response()
}

fn id_token(inner: &Inner, nonce: &str) -> String {
    let person = &inner.person;
    let tamper = &inner.tamper;
    let now = now(inner);
    let mut claims = json!({
        "iss": issuer(inner),
        "sub": person.subject,
        "aud": tamper.audience.clone().unwrap_or_else(|| CLIENT_ID.to_owned()),
        "iat": if tamper.expired { now - 7200 } else { now },
        "exp": if tamper.expired { now - 3600 } else { now + 3600 },
        "nonce": tamper.nonce.clone().unwrap_or_else(|| nonce.to_owned()),
    });
    let map = claims.as_object_mut().expect("object");
    if let Some(email) = &person.email {
        map.insert("email".into(), email.clone().into());
    }
    match inner.flavor {
        Flavor::Google => {
            map.insert("email_verified".into(), person.email_verified.into());
            map.insert("azp".into(), CLIENT_ID.into());
            if let Some(name) = &person.name {
                map.insert("name".into(), name.clone().into());
            }
        }
        Flavor::Microsoft => {
            map.insert(
                "iss".into(),
                format!("{}/{MICROSOFT_TENANT}/v2.0", inner.base).into(),
            );
            map.insert("tid".into(), MICROSOFT_TENANT.into());
            map.insert("ver".into(), "2.0".into());
            map.insert("xms_edov".into(), person.email_verified.into());
            if let Some(name) = &person.name {
                map.insert("name".into(), name.clone().into());
            }
        }
        Flavor::Apple => {
            // Apple sends these as strings.
            map.insert(
                "email_verified".into(),
                person.email_verified.to_string().into(),
            );
        }
        Flavor::Github => {}
    }
    if let Some(issuer) = &tamper.issuer {
        map.insert("iss".into(), issuer.clone().into());
    }
    let (pem, kid) = if tamper.stranger_key || inner.rotated {
        (STRANGER_KEY, "stranger-1")
    } else {
        (PROVIDER_KEY, "fake-1")
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).expect("key"),
    )
    .expect("sign")
}

fn bearer_person(inner: &Inner, headers: &HeaderMap) -> Option<Person> {
    let token = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    inner.tokens.get(token).cloned()
}

/// GitHub's API with the user's token: `answer` of the person, or 401.
fn with_token(
    inner: &Mutex<Inner>,
    headers: &HeaderMap,
    answer: impl FnOnce(Person) -> Value,
) -> Response {
    let inner = inner.lock().expect("lock");
    match bearer_person(&inner, headers) {
        Some(person) => Json(answer(person)).into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response(),
    }
}

async fn github_user(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Response {
    with_token(&inner, &headers, |person| {
        json!({
            "id": person.subject.parse::<u64>().expect("numeric id"),
            "login": "octocat",
            "name": person.name,
            // The public profile email is whatever the user typed: not proof.
            "email": person.email,
        })
    })
}

async fn github_emails(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Response {
    with_token(&inner, &headers, |person| {
        json!([
            {"email": "octocat-old@users.example", "primary": false, "verified": true, "visibility": null},
            {"email": person.email, "primary": true, "verified": person.email_verified, "visibility": "public"},
        ])
    })
}
