//! The mixed write load: concurrent clients that each run short stories
//! with a fresh account (register → sign in → rotate a refresh chain; make
//! a PAT and maybe revoke it; enroll TOTP; sign up in an approval org and
//! have the operator decide) and write down in the [`Ledger`] every answer
//! they saw as success, or what they sent when no answer came.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::ledger::{
    Account, Approval, Chain, ChainState, Ledger, Pat, PatState, RegistrationInFlight, Writes,
};

pub const PASSWORD: &str = "Correct-Horse-42";

/// What every client and check shares.
pub struct Target {
    pub client: reqwest::Client,
    pub base: String,
    pub admin_token: String,
    pub ledger: Arc<Mutex<Ledger>>,
}

/// The answer of a request: status and JSON body, or `None` when no
/// complete answer arrived (the server was killed).
pub type Answer = Option<(u16, Value)>;

impl Target {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn answer(request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.ok()?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Some((status, body))
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Answer {
        Self::answer(self.client.post(self.url(path)).json(&body)).await
    }

    pub async fn operator(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.admin_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::answer(request).await
    }

    pub async fn register(&self, email: &str, org: &str) -> Answer {
        self.post_json(
            "/register",
            json!({"email": email, "password": PASSWORD, "org": org, "name": "Crash Test"}),
        )
        .await
    }

    pub async fn login(&self, email: &str, org: &str) -> Answer {
        self.post_json(
            "/login",
            json!({"email": email, "password": PASSWORD, "org": org}),
        )
        .await
    }

    /// Ends the session a check's sign-in made, so checks do not pile
    /// sessions up against `sessions.max_per_user`.
    pub async fn logout(&self, access_token: &str) -> Answer {
        Self::answer(
            self.client
                .post(self.url("/logout"))
                .bearer_auth(access_token),
        )
        .await
    }

    pub async fn rotate(&self, refresh_token: &str) -> Answer {
        Self::answer(self.client.post(self.url("/oauth/token")).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ]))
        .await
    }

    pub async fn control_plane_token(&self, email: &str) -> Option<String> {
        match self
            .post_json(
                "/api/v1/auth/login",
                json!({"email": email, "password": PASSWORD}),
            )
            .await
        {
            Some((200, body)) => body["access_token"].as_str().map(str::to_owned),
            _ => None,
        }
    }

    pub async fn bearer(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        org: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(org) = org {
            request = request.header("X-Active-Org-Id", org);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::answer(request).await
    }
}

/// One client until `stop` (the kill is near) or its first unanswered
/// request (the kill happened).
pub async fn client(
    target: Arc<Target>,
    worker: usize,
    round: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ ((round as u64) << 32) ^ worker as u64);
    let mut story = 0;
    while !stop.load(Ordering::Relaxed) {
        story += 1;
        let email = format!("r{round}-w{worker}-{story}@crash.test");
        let answered = match rng.gen_range(0..10) {
            0..=3 => refresh_chain_story(&target, &email, &mut rng).await,
            4..=5 => pat_story(&target, &email, &mut rng).await,
            6 => totp_story(&target, &email).await,
            _ if worker == 0 => approval_story(&target, &email, &mut rng).await,
            _ => refresh_chain_story(&target, &email, &mut rng).await,
        };
        if !answered {
            return;
        }
    }
}

/// Registers `email` in the default org; the account, or `None` when it
/// failed (an unanswered registration is written down as in flight).
async fn register_account(target: &Target, email: &str) -> Option<Account> {
    let Some((status, profile)) = target.register(email, "default").await else {
        let mut ledger = target.ledger.lock().expect("ledger");
        ledger.registrations_in_flight.push(RegistrationInFlight {
            email: email.to_owned(),
            org_slug: "default".to_owned(),
        });
        return None;
    };
    if status != 201 {
        eprintln!("crash: registration of {email} answered {status}: {profile}");
        return None;
    }
    let account = Account {
        email: email.to_owned(),
        org_slug: "default".to_owned(),
        org_id: profile["memberships"][0]["org_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        totp: None,
        last_totp_step: 0,
    };
    target
        .ledger
        .lock()
        .expect("ledger")
        .add_account(account.clone());
    Some(account)
}

/// Register, sign in, rotate the refresh token a few times. Returns false
/// once a request went unanswered.
async fn refresh_chain_story(target: &Target, email: &str, rng: &mut StdRng) -> bool {
    let Some(account) = register_account(target, email).await else {
        return false;
    };
    let Some((status, tokens)) = target.login(&account.email, "default").await else {
        return false;
    };
    let Some(first) = tokens["refresh_token"].as_str().filter(|_| status == 200) else {
        eprintln!("crash: login of {email} answered {status}: {tokens}");
        return true;
    };
    let index = {
        let mut ledger = target.ledger.lock().expect("ledger");
        ledger.acknowledged_total += 1;
        ledger.chains.push((
            Chain {
                email: email.to_owned(),
                current: first.to_owned(),
                previous: None,
                state: ChainState::Live,
            },
            Writes::one(),
        ));
        ledger.chains.len() - 1
    };
    for _ in 0..rng.gen_range(1..=6) {
        let current = target.ledger.lock().expect("ledger").chains[index]
            .0
            .current
            .clone();
        let answer = target.rotate(&current).await;
        let mut guard = target.ledger.lock().expect("ledger");
        let ledger = &mut *guard;
        let (chain, writes) = &mut ledger.chains[index];
        match answer {
            Some((200, body)) => match body["refresh_token"].as_str() {
                Some(next) => {
                    chain.previous = Some(std::mem::replace(&mut chain.current, next.to_owned()));
                    writes.add();
                    ledger.acknowledged_total += 1;
                }
                None => return true,
            },
            Some((status, body)) => {
                eprintln!("crash: a rotation answered {status}: {body}");
                return true;
            }
            None => {
                chain.state = ChainState::RotationInFlight;
                return false;
            }
        }
    }
    true
}

/// Register, sign in to the control plane, make a PAT, revoke it half the
/// time.
async fn pat_story(target: &Target, email: &str, rng: &mut StdRng) -> bool {
    let Some(account) = register_account(target, email).await else {
        return false;
    };
    let Some(session) = target.control_plane_token(email).await else {
        return false;
    };
    let created = target
        .bearer(
            reqwest::Method::POST,
            "/api/v1/auth/api-tokens",
            &session,
            Some(&account.org_id),
            Some(json!({"name": "crash", "scopes": ["sessions.read"], "expires_in_days": 30})),
        )
        .await;
    let Some((status, body)) = created else {
        return false;
    };
    let (Some(id), Some(token)) = (body["id"].as_str(), body["token"].as_str()) else {
        eprintln!("crash: PAT creation answered {status}: {body}");
        return true;
    };
    let index = {
        let mut ledger = target.ledger.lock().expect("ledger");
        ledger.acknowledged_total += 1;
        ledger.pats.push((
            Pat {
                email: email.to_owned(),
                org_id: account.org_id.clone(),
                id: id.to_owned(),
                token: token.to_owned(),
                state: PatState::Live,
            },
            Writes::one(),
        ));
        ledger.pats.len() - 1
    };
    if rng.gen_bool(0.5) {
        let revoked = target
            .bearer(
                reqwest::Method::DELETE,
                &format!("/api/v1/auth/api-tokens/{id}"),
                &session,
                Some(&account.org_id),
                None,
            )
            .await;
        let mut ledger = target.ledger.lock().expect("ledger");
        match revoked {
            Some((204, _)) => {
                ledger.pats[index].0.state = PatState::Revoked;
                ledger.pats[index].1.add();
                ledger.acknowledged_total += 1;
            }
            Some((status, body)) => eprintln!("crash: PAT revocation answered {status}: {body}"),
            None => {
                ledger.pats[index].0.state = PatState::RevocationInFlight;
                return false;
            }
        }
    }
    true
}

/// Register, enroll TOTP and confirm it with the current step's code.
async fn totp_story(target: &Target, email: &str) -> bool {
    let Some(account) = register_account(target, email).await else {
        return false;
    };
    let Some(session) = target.control_plane_token(email).await else {
        return false;
    };
    let Some((_, enrollment)) = target
        .bearer(
            reqwest::Method::POST,
            "/api/account/mfa/enroll",
            &session,
            None,
            Some(json!({})),
        )
        .await
    else {
        return false;
    };
    let Some(secret) = enrollment["secret"].as_str() else {
        eprintln!("crash: TOTP enrollment answered {enrollment}");
        return true;
    };
    let step = crate::totp::current_step();
    let verified = target
        .bearer(
            reqwest::Method::POST,
            "/api/account/mfa/verify",
            &session,
            None,
            Some(json!({"code": crate::totp::totp_at(secret, step)})),
        )
        .await;
    let mut ledger = target.ledger.lock().expect("ledger");
    match verified {
        Some((200, _)) => {
            if let Some((account, writes)) = ledger.account_mut(email) {
                account.totp = Some(secret.to_owned());
                account.last_totp_step = step;
                writes.add();
            }
            ledger.acknowledged_total += 1;
            true
        }
        Some((status, body)) => {
            eprintln!("crash: TOTP confirmation answered {status}: {body}");
            true
        }
        None => {
            ledger
                .enrollments_in_flight
                .push((account, secret.to_owned(), step));
            false
        }
    }
}

/// Sign up in the approval org, find the approval, and (two times in
/// three) have the operator approve or deny it.
async fn approval_story(target: &Target, email: &str, rng: &mut StdRng) -> bool {
    let Some((status, body)) = target.register(email, "gated").await else {
        target
            .ledger
            .lock()
            .expect("ledger")
            .registrations_in_flight
            .push(RegistrationInFlight {
                email: email.to_owned(),
                org_slug: "gated".to_owned(),
            });
        return false;
    };
    if status != 202 {
        eprintln!("crash: a gated sign-up answered {status}: {body}");
        return true;
    }
    let Some((_, approvals)) = target
        .operator(reqwest::Method::GET, "/v1/approvals", None)
        .await
    else {
        // The sign-up was acknowledged; its approval is looked up by email
        // at the check.
        let mut ledger = target.ledger.lock().expect("ledger");
        ledger.acknowledged_total += 1;
        ledger.approvals.push((
            Approval {
                id: String::new(),
                email: email.to_owned(),
                decision: None,
                in_flight: None,
            },
            Writes::one(),
        ));
        return false;
    };
    let id = approval_id_of(&approvals, email).unwrap_or_default();
    let index = {
        let mut ledger = target.ledger.lock().expect("ledger");
        ledger.acknowledged_total += 1;
        ledger.approvals.push((
            Approval {
                id: id.clone(),
                email: email.to_owned(),
                decision: None,
                in_flight: None,
            },
            Writes::one(),
        ));
        ledger.approvals.len() - 1
    };
    if id.is_empty() {
        eprintln!("crash: no approval listed for {email}");
        return true;
    }
    if rng.gen_range(0..3) == 0 {
        return true;
    }
    let approved = rng.gen_bool(0.5);
    let resolved = target
        .operator(
            reqwest::Method::POST,
            &format!("/v1/approvals/{id}/resolve"),
            Some(json!({"approved": approved})),
        )
        .await;
    let mut ledger = target.ledger.lock().expect("ledger");
    match resolved {
        Some((200, _)) => {
            ledger.approvals[index].0.decision = Some(approved);
            ledger.approvals[index].1.add();
            ledger.acknowledged_total += 1;
            true
        }
        Some((status, body)) => {
            eprintln!("crash: a resolution answered {status}: {body}");
            true
        }
        None => {
            ledger.approvals[index].0.in_flight = Some(approved);
            false
        }
    }
}

/// The id of the approval whose subject is `email` in a `/v1/approvals` page.
pub fn approval_id_of(page: &Value, email: &str) -> Option<String> {
    page["items"]
        .as_array()?
        .iter()
        .find(|item| item["subject"]["email"] == email)
        .and_then(|item| item["id"].as_str())
        .map(str::to_owned)
}

/// Signing-key rotations through the operator API, one after another
/// until `stop` or an unanswered one.
pub async fn key_rotations(target: Arc<Target>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match target
            .operator(reqwest::Method::POST, "/v1/keys/rotate", None)
            .await
        {
            Some((201, body)) => {
                if let Some(kid) = body["kid"].as_str() {
                    let mut ledger = target.ledger.lock().expect("ledger");
                    ledger.acknowledged_total += 1;
                    ledger.keys.push((kid.to_owned(), Writes::one()));
                }
            }
            Some((status, body)) => {
                eprintln!("crash: a key rotation answered {status}: {body}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            None => return,
        }
    }
}
