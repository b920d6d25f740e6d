//! Apps signing in through authd, against their limits: authorization-code
//! exchanges/s (code → access + ID + refresh token: one durable commit and
//! two signatures each) vs min(signs/s, commits/s) alone, `client_credentials`
//! tokens/s, `/oauth/userinfo` GETs/s; and forward-auth checks/s with a
//! cookie and with a PAT vs `/healthz`, and their p99 while argon2 logins
//! storm. `cargo bench --bench apps` (`-- --quick` for a smoke run).

// A bench is a client: it reads the wall clock as one would.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authd::crypto::jwt::KeyAlgorithm;
use common::{closed_loop, commits_alone, cores, header, jwt_alone, row, save, BenchServer};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{json, Value};

const PASSWORD: &str = "Correct-Horse-42";
const REDIRECT: &str = "http://127.0.0.1:7000/cb";

struct World {
    server: BenchServer,
    client: reqwest::Client,
    client_id: String,
    secret: String,
    cookie: String,
    pat: String,
}

async fn world(extra: &str) -> World {
    let server = BenchServer::start(&format!(
        "[limits]\nlogin_per_ip_per_min = 100000000\nlogin_per_account_per_min = 100000000\n\
         register_per_ip_per_min = 100000000\n{extra}"
    ));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let base = &server.base;
    let status = client
        .post(format!("{base}/register"))
        .json(&json!({"email": "bench@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("register")
        .status();
    assert_eq!(status, 201);
    let created: Value = client
        .post(format!("{base}/v1/clients"))
        .bearer_auth(server.admin_token())
        .json(&json!({
            "name": "Bench", "type": "confidential", "redirect_uris": [REDIRECT],
            "consent": "implicit",
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        }))
        .send()
        .await
        .expect("client")
        .json()
        .await
        .expect("json");
    let signed_in = client
        .post(format!("{base}/ui/api/login"))
        .json(&json!({"email": "bench@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("ui login");
    let cookie = signed_in
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ");
    let login: Value = client
        .post(format!("{base}/login"))
        .json(&json!({"email": "bench@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let access = login["access_token"].as_str().expect("access");
    let org: Value = client
        .get(format!("{base}/api/v1/org/memberships"))
        .bearer_auth(access)
        .send()
        .await
        .expect("memberships")
        .json()
        .await
        .expect("json");
    let pat: Value = client
        .post(format!("{base}/api/v1/auth/api-tokens"))
        .bearer_auth(access)
        .header(
            "X-Active-Org-Id",
            org["active_org_id"].as_str().expect("org"),
        )
        .json(&json!({"name": "bench", "scopes": ["sessions.read"], "expires_in_days": 1}))
        .send()
        .await
        .expect("pat")
        .json()
        .await
        .expect("json");
    World {
        client_id: created["client_id"].as_str().expect("id").to_owned(),
        secret: created["client_secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
        pat: pat["token"].as_str().expect("token").to_owned(),
        server,
        client,
        cookie,
    }
}

/// `POST /oauth/token` with the client's credentials and `form`.
fn token_request(world: &World, base: &str, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
    world
        .client
        .post(format!("{base}/oauth/token"))
        .basic_auth(&world.client_id, Some(&world.secret))
        .form(form)
}

/// The form that exchanges `code`.
fn code_form(code: &str) -> [(&'static str, &str); 3] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ]
}

/// One code from `/oauth/authorize` for the browser with `cookie`.
async fn mint_code(
    client: &reqwest::Client,
    base: &str,
    client_id: &str,
    cookie: &str,
) -> Option<String> {
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile email offline_access"),
        ("state", "s"),
        ("nonce", "n"),
    ])
    .expect("query");
    let response = client
        .get(format!("{base}/oauth/authorize?{query}"))
        .header(COOKIE, cookie)
        .send()
        .await
        .ok()?;
    let location = response.headers().get(LOCATION)?.to_str().ok()?;
    let url = url::Url::parse(location).ok()?;
    let code = url.query_pairs().find(|(k, _)| k == "code")?.1.into_owned();
    Some(code)
}

async fn oidc_over_http(duration: Duration, connections: usize) -> Value {
    let world = world("").await;
    let base = world.server.base.clone();
    let world = Arc::new(world);

    // Codes first (they live 60 s), timed apart: the exchange is the figure.
    let codes = Arc::new(Mutex::new(Vec::new()));
    let minting = {
        let (world, base, codes) = (world.clone(), base.clone(), codes.clone());
        move |_, _| {
            let (world, base, codes) = (world.clone(), base.clone(), codes.clone());
            async move {
                match mint_code(&world.client, &base, &world.client_id, &world.cookie).await {
                    Some(code) => {
                        codes.lock().expect("codes").push(code);
                        Ok(302)
                    }
                    None => Err("no code".into()),
                }
            }
        }
    };
    let minted = closed_loop(connections, duration, 302, minting).await;
    let exchange = {
        let (world, base, codes) = (world.clone(), base.clone(), codes.clone());
        move |_, _| {
            let (world, base, codes) = (world.clone(), base.clone(), codes.clone());
            async move {
                let Some(code) = codes.lock().expect("codes").pop() else {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    return Err("out of codes".to_owned());
                };
                common::status_of(token_request(&world, &base, &code_form(&code))).await
            }
        }
    };
    let exchanges = closed_loop(connections, duration, 200, exchange).await;

    let credentials = {
        let (world, base) = (world.clone(), base.clone());
        move |_, _| {
            let (world, base) = (world.clone(), base.clone());
            async move {
                common::status_of(token_request(
                    &world,
                    &base,
                    &[("grant_type", "client_credentials")],
                ))
                .await
            }
        }
    };
    let client_credentials = closed_loop(connections, duration, 200, credentials).await;

    let code = mint_code(&world.client, &base, &world.client_id, &world.cookie)
        .await
        .expect("a code");
    let tokens: Value = token_request(&world, &base, &code_form(&code))
        .send()
        .await
        .expect("exchange")
        .json()
        .await
        .expect("json");
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    let userinfo = closed_loop(
        connections,
        duration,
        200,
        common::get_request(
            &world.client,
            format!("{base}/oauth/userinfo"),
            Some(access),
        ),
    )
    .await;
    json!({
        "codes_minted": minted.json(),
        "code_exchanges": exchanges.json(),
        "client_credentials": client_credentials.json(),
        "userinfo_gets": userinfo.json(),
    })
}

async fn forward_auth_over_http(duration: Duration, connections: usize) -> Value {
    // Real argon2 cost (the defaults) for the login storm.
    let world = world(
        "[forward_auth]\n[[forward_auth.rules]]\nhosts = [\"app.home.test\"]\npolicy = \"one_factor\"\n",
    )
    .await;
    let base = world.server.base.clone();
    let check = |credential: (&'static str, String)| {
        let (client, url) = (world.client.clone(), format!("{base}/forward-auth/nginx"));
        move |_, _| {
            common::status_of(
                client
                    .get(&url)
                    .header("X-Original-URL", "https://app.home.test/dashboard")
                    .header(credential.0, credential.1.clone()),
            )
        }
    };
    let with_cookie = closed_loop(
        connections,
        duration,
        200,
        check((COOKIE.as_str(), world.cookie.clone())),
    )
    .await;
    let with_pat = closed_loop(
        connections,
        duration,
        200,
        check(("authorization", format!("Bearer {}", world.pat))),
    )
    .await;
    let floor = closed_loop(
        connections,
        duration,
        200,
        common::get_request(&world.client, format!("{base}/healthz"), None),
    )
    .await;
    // A login storm (one login per core in flight, each an argon2id hash)
    // beside the checks: the checks' p99 is the figure.
    let storm = {
        let (client, base) = (world.client.clone(), base.clone());
        tokio::spawn(closed_loop(cores(), duration, 200, move |_, _| {
            common::status_of(
                client
                    .post(format!("{base}/login"))
                    .json(&json!({"email": "bench@example.com", "password": PASSWORD})),
            )
        }))
    };
    let during_storm = closed_loop(
        connections,
        duration,
        200,
        check((COOKIE.as_str(), world.cookie.clone())),
    )
    .await;
    let storm = storm.await.expect("storm");
    json!({
        "cookie_checks": with_cookie.json(),
        "pat_checks": with_pat.json(),
        "healthz_gets": floor.json(),
        "cookie_checks_during_login_storm": during_storm.json(),
        "logins_during_storm": storm.json(),
    })
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let duration = Duration::from_secs(if quick { 1 } else { 5 });
    let connections = if quick { 4 } else { 32 };

    let (signs, _) = tokio::task::spawn_blocking(move || jwt_alone(KeyAlgorithm::RS256, duration))
        .await
        .expect("join");
    let commits = tokio::task::spawn_blocking(move || commits_alone(duration))
        .await
        .expect("join");
    let oidc = oidc_over_http(duration, connections).await;
    let forward = forward_auth_over_http(duration, connections).await;

    let per_second = |v: &Value, key: &str| v[key]["per_second"].as_f64().unwrap_or(0.0);
    let p99 = |v: &Value, key: &str| v[key]["p99_ms"].as_f64().unwrap_or(0.0);
    header(&format!(
        "apps ({} cores, {connections} connections, RS256{})",
        cores(),
        if quick { ", QUICK" } else { "" }
    ));
    row("RS256 signs/s alone", format!("{signs:.0}/s"), "-".into());
    row(
        "redb durable commits/s alone",
        format!("{commits:.0}/s"),
        "-".into(),
    );
    let exchanges = per_second(&oidc, "code_exchanges");
    row(
        "code exchanges/s (code -> token set)",
        format!("{exchanges:.0}/s"),
        format!(
            "ratio {:.2} of min(sign, commit) (>= 0.8)",
            exchanges / signs.min(commits)
        ),
    );
    row(
        "  (two signatures each: ID + access token)",
        String::new(),
        format!(
            "ratio {:.2} of min(sign/2, commit)",
            exchanges / (signs / 2.0).min(commits)
        ),
    );
    row(
        "client_credentials tokens/s",
        format!("{:.0}/s", per_second(&oidc, "client_credentials")),
        format!("signs alone {signs:.0}/s"),
    );
    row(
        "userinfo GETs/s",
        format!("{:.0}/s", per_second(&oidc, "userinfo_gets")),
        "target >= 20,000/s".into(),
    );
    let floor = per_second(&forward, "healthz_gets");
    for (label, key) in [("cookie", "cookie_checks"), ("PAT", "pat_checks")] {
        let checks = per_second(&forward, key);
        row(
            &format!("forward-auth checks/s ({label})"),
            format!("{checks:.0}/s"),
            format!(
                "ratio {:.2} of /healthz (>= 0.7; >= 25,000/s)",
                checks / floor
            ),
        );
    }
    row(
        "/healthz GETs/s (the floor)",
        format!("{floor:.0}/s"),
        String::new(),
    );
    row(
        "forward-auth p99 during a login storm",
        format!(
            "{:.1} ms",
            p99(&forward, "cookie_checks_during_login_storm")
        ),
        "target <= 10 ms".into(),
    );
    save(
        "apps",
        &json!({
            "quick": quick, "cores": cores(), "connections": connections,
            "rs256_signs_per_second": signs, "durable_commits_per_second": commits,
            "oidc": oidc, "forward_auth": forward,
        }),
    );
}
