//! The refresh-token life cycle: single-use rotation within a family,
//! replay detection (the whole family and its session die), logout, and
//! revocation (RFC 7009) and introspection (RFC 7662) of every kind of token:
//! access tokens, refresh tokens, and PATs (handed to `pats`).
//!
//! Every decision about a presented refresh token is made inside one write
//! transaction. redb runs write transactions one at a time, so of two
//! concurrent presentations of one token exactly one sees it unused and wins;
//! the other sees it used and is treated as the replay it is.

use serde::Serialize;

use super::sessions::revoke_in;
use super::tokens::{refresh_token_digest, store_refresh_token, TokenGrant, TokenSet};
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::UnixSeconds;
use crate::domain::{Session, User};
use crate::store::Queries;

/// Why a refresh was refused; all become `invalid_grant` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRefusal {
    Unknown,
    Expired,
    Replayed,
    SessionEnded,
    UserInactive,
}

enum Exchange {
    Rotated {
        user: Box<User>,
        session: Box<Session>,
        refresh_token: String,
        grant: TokenGrant,
    },
    Refused(RefreshRefusal),
}

/// A refresh's answer: the first-party token set, or an app's.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RefreshedTokens {
    FirstParty(TokenSet),
    App(super::client_tokens::ClientTokenSet),
}

/// RFC 7662's answer; inactive tokens say nothing else.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<UnixSeconds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<UnixSeconds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The app the token belongs to; none for authd's own tokens and PATs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl Services {
    /// `grant_type=refresh_token`: the presented token is spent and a new
    /// access + refresh pair is issued in the same family and session.
    ///
    /// An app session's token is good only in the hands of its app
    /// (`client`, authenticated by the caller); its answer is the app's
    /// kind of token set.
    pub async fn refresh(
        &self,
        presented: &str,
        client: Option<crate::domain::OAuthClient>,
        context: &RequestContext,
    ) -> Result<RefreshedTokens, RefreshError> {
        let digest = refresh_token_digest(presented);
        let now = self.clock.now();
        let origin = context.origin();
        let ip = context.ip.to_string();
        let default_refresh_ttl = self.config().tokens.refresh_ttl.as_secs();
        let client_refresh_ttl = client.as_ref().map(|c| self.client_refresh_ttl(c));
        let presenter = client.as_ref().map(|c| c.id.clone());
        let exchange = self
            .store_write(move |txn| {
                let Some(mut record) = txn.refresh_token(&digest)? else {
                    return Ok(Exchange::Refused(RefreshRefusal::Unknown));
                };
                let session = txn.session(&record.session_id)?;
                // An app's refresh token is refused to anyone but that app,
                // before it is spent: a stolen copy in other hands is
                // neither a rotation nor proof of a replay.
                let owner = session.as_ref().and_then(|s| s.client_id.clone());
                if owner.is_some() && owner != presenter {
                    return Ok(Exchange::Refused(RefreshRefusal::Unknown));
                }
                if record.used_at.is_some() {
                    // A spent token came back: someone holds a copy. End the
                    // family (its session) so that neither copy works again.
                    let first_ip = record.used_by_ip.clone();
                    if let Some(session) = session {
                        revoke_in(txn, session, now, "refresh_token_replay", &origin)?;
                    }
                    txn.audit(
                        AuditRecord::new(AuditKind::TokenReplayDetected, now, &origin)
                            .user(record.user_id)
                            .org(&record.org_id)
                            .reason("refresh_token_reused")
                            .details(serde_json::json!({
                                "family_id": record.family_id,
                                "session_id": record.session_id,
                                "first_use_ip": first_ip,
                                "replay_ip": origin.ip,
                            })),
                    )?;
                    return Ok(Exchange::Refused(RefreshRefusal::Replayed));
                }
                if record.expires_at <= now {
                    return Ok(Exchange::Refused(RefreshRefusal::Expired));
                }
                let Some(mut session) = session.filter(|s| s.is_live(now)) else {
                    return Ok(Exchange::Refused(RefreshRefusal::SessionEnded));
                };
                let user = txn.user(&record.user_id)?;
                let Some(user) = user.filter(|u| {
                    u.may_use_tokens() && u.active_role_in(&session.org_id).is_some()
                }) else {
                    return Ok(Exchange::Refused(RefreshRefusal::UserInactive));
                };
                record.used_at = Some(now);
                record.used_by_ip = Some(ip);
                txn.put_refresh_token(&digest, &record)?;
                let grant = TokenGrant {
                    scope: record.scope.clone(),
                    client_id: record.client_id.clone(),
                    nonce: None,
                    auth_time: record.auth_time,
                    amr: session.amr.clone(),
                    method: None,
                };
                let refresh_ttl = match owner {
                    // An app's session slides with its use, up to its TTL.
                    Some(_) => {
                        let ttl = client_refresh_ttl.unwrap_or(default_refresh_ttl);
                        session.expires_at = session.expires_at.max(now + ttl as i64);
                        ttl
                    }
                    None => default_refresh_ttl,
                };
                let refresh_token = store_refresh_token(txn, &session, &record.family_id, &grant, now, refresh_ttl)?;
                session.last_active = now;
                txn.put_session(&session)?;
                txn.audit(
                    AuditRecord::new(AuditKind::TokenRefreshed, now, &origin)
                        .user(user.id)
                        .org(&session.org_id)
                        .details(serde_json::json!({"family_id": record.family_id, "session_id": session.id})),
                )?;
                Ok(Exchange::Rotated {
                    user: Box::new(user),
                    session: Box::new(session),
                    refresh_token,
                    grant,
                })
            })
            .await?;
        match exchange {
            Exchange::Refused(refusal) => {
                if refusal == RefreshRefusal::Replayed {
                    crate::metrics::METRICS.refresh_replay();
                }
                Err(RefreshError::Refused(refusal))
            }
            Exchange::Rotated {
                user,
                session,
                refresh_token,
                grant,
            } => match client.filter(|c| session.client_id.as_deref() == Some(c.id.as_str())) {
                Some(client) => {
                    let scopes =
                        crate::domain::client::scope_list(grant.scope.as_deref().unwrap_or(""));
                    Ok(RefreshedTokens::App(
                        self.issue_client_tokens(
                            &client,
                            &user,
                            &session,
                            &scopes,
                            None,
                            Some(refresh_token),
                            now,
                        )
                        .await?,
                    ))
                }
                None => Ok(RefreshedTokens::FirstParty(
                    self.issue_token_set(&user, &session, Some(refresh_token), &grant, now)
                        .await?,
                )),
            },
        }
    }

    /// Ends the session a refresh token belongs to. Unknown tokens are not an
    /// error: the caller wanted the token dead, and it is.
    pub async fn logout_refresh_token(
        &self,
        presented: &str,
        reason: &'static str,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let digest = refresh_token_digest(presented);
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let Some(record) = txn.refresh_token(&digest)? else {
                return Ok(());
            };
            if let Some(session) = txn.session(&record.session_id)?.filter(|s| s.is_live(now)) {
                end_session(txn, session, now, reason, &origin)?;
            }
            Ok(())
        })
        .await
    }

    /// Ends the session of a verified access token.
    pub async fn logout_session(
        &self,
        session_id: crate::domain::SessionId,
        reason: &'static str,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            if let Some(session) = txn.session(&session_id)?.filter(|s| s.is_live(now)) {
                end_session(txn, session, now, reason, &origin)?;
            }
            Ok(())
        })
        .await
    }

    /// RFC 7009: revoking an access or refresh token ends its session (a JWT
    /// cannot be recalled on its own; its session can); revoking a PAT
    /// deletes it. Unknown tokens, and tokens that are not the caller's to
    /// revoke, succeed without effect: an app may revoke only its own
    /// tokens, and an unauthenticated caller only authd's own (first-party
    /// tokens and PATs, which whoever holds them may end).
    pub async fn revoke_token(
        &self,
        token: &str,
        caller: &TokenCaller,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let found = self.introspect(token, &TokenCaller::Operator).await?;
        if !found.active || !caller.may_see(found.client_id.as_deref()) {
            return Ok(());
        }
        match found.token_type {
            Some("personal_access_token") => self.revoke_pat_by_token(token, context).await,
            Some("refresh_token") => {
                self.logout_refresh_token(token, "token_revoked", context)
                    .await
            }
            _ => match found
                .sid
                .as_deref()
                .and_then(crate::domain::SessionId::parse)
            {
                Some(sid) => self.logout_session(sid, "token_revoked", context).await,
                // An app's own token (client_credentials) has no session to
                // end; it lives out its short lifetime.
                None => Ok(()),
            },
        }
    }

    /// RFC 7662 for access tokens (authd's and apps'), refresh tokens and
    /// PATs; an app sees only its own tokens as active.
    pub async fn introspect(
        &self,
        token: &str,
        caller: &TokenCaller,
    ) -> ServiceResult<Introspection> {
        let answer = self.introspect_any(token).await?;
        Ok(if caller.may_see(answer.client_id.as_deref()) {
            answer
        } else {
            Introspection::default()
        })
    }

    async fn introspect_any(&self, token: &str) -> ServiceResult<Introspection> {
        let now = self.clock.now();
        if self.is_pat(token) {
            return self.introspect_pat(token).await;
        }
        if token.contains('.') {
            if self.authenticate_access_token(token, now).await.is_ok() {
                let claims = self.verify_access_token(token, now).await?;
                return Ok(Introspection {
                    active: true,
                    token_type: Some("access_token"),
                    sub: Some(claims.sub.to_string()),
                    exp: Some(claims.exp),
                    iat: Some(claims.iat),
                    iss: Some(claims.iss),
                    aud: Some(claims.aud),
                    sid: Some(claims.sid.to_string()),
                    org: Some(claims.org.to_string()),
                    username: Some(claims.email),
                    scope: None,
                    client_id: None,
                });
            }
            return Ok(match self.verify_client_access_token(token).await {
                Ok((claims, session)) => Introspection {
                    active: true,
                    token_type: Some("access_token"),
                    sub: Some(claims.sub),
                    exp: Some(claims.exp),
                    iat: Some(claims.iat),
                    iss: Some(claims.iss),
                    aud: Some(claims.aud),
                    sid: claims.sid.map(|sid| sid.to_string()),
                    org: session.map(|s| s.org_id.to_string()),
                    scope: Some(claims.scope),
                    username: None,
                    client_id: Some(claims.client_id),
                },
                Err(_) => Introspection::default(),
            });
        }
        let digest = refresh_token_digest(token);
        self.store_read(move |txn| {
            let Some(record) = txn.refresh_token(&digest)? else {
                return Ok(Introspection::default());
            };
            let Some(session) = txn.session(&record.session_id)?.filter(|s| s.is_live(now)) else {
                return Ok(Introspection::default());
            };
            if record.used_at.is_some() || record.expires_at <= now {
                return Ok(Introspection::default());
            }
            let email = txn
                .user(&record.user_id)?
                .map(|u| u.email.as_str().to_owned());
            Ok(Introspection {
                active: true,
                token_type: Some("refresh_token"),
                sub: Some(record.user_id.to_string()),
                exp: Some(record.expires_at),
                iat: Some(record.issued_at),
                sid: Some(record.session_id.to_string()),
                org: Some(record.org_id.to_string()),
                scope: record.scope,
                username: email,
                client_id: session.client_id,
                ..Introspection::default()
            })
        })
        .await
    }
}

/// Who asks to introspect or revoke a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCaller {
    /// The admin token: every token.
    Operator,
    /// An authenticated app: its own tokens only.
    Client(String),
    /// No credentials (revocation only): authd's own tokens, not apps'.
    Anyone,
}

impl TokenCaller {
    fn may_see(&self, owner: Option<&str>) -> bool {
        match self {
            TokenCaller::Operator => true,
            TokenCaller::Client(id) => owner == Some(id.as_str()),
            TokenCaller::Anyone => owner.is_none(),
        }
    }
}

fn end_session(
    txn: &mut crate::store::WriteTxn,
    session: Session,
    now: UnixSeconds,
    reason: &'static str,
    origin: &crate::audit::RequestOrigin,
) -> ServiceResult<()> {
    let (user, org, id) = (session.user_id, session.org_id.clone(), session.id);
    revoke_in(txn, session, now, reason, origin)?;
    txn.audit(
        AuditRecord::new(AuditKind::SessionLogout, now, origin)
            .user(user)
            .org(&org)
            .reason(reason)
            .details(serde_json::json!({"session_id": id})),
    )?;
    Ok(())
}

/// A refresh either is refused for a reason the client must not learn in
/// detail, or fails inside.
#[derive(Debug)]
pub enum RefreshError {
    Refused(RefreshRefusal),
    Service(ServiceError),
}

impl From<ServiceError> for RefreshError {
    fn from(error: ServiceError) -> Self {
        RefreshError::Service(error)
    }
}

#[cfg(test)]
mod tests {
    //! The refresh family as a state machine, against a real store in a temp
    //! dir on a manual clock: whatever interleaving of rotations, replays
    //! (also two presentations racing), logouts and time passing, a family
    //! has exactly one live token (its newest) or none, and once a replay
    //! or a logout has ended it, none ever again.

    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::clock::Clock;
    use crate::config::{Config, HumanDuration};
    use crate::crypto::jwt::KeyAlgorithm;
    use crate::domain::Password;
    use crate::service::accounts::NewUser;
    use crate::service::login::{LoginOutcome, LoginRequest};
    use crate::service::sessions::SessionKind;
    use crate::service::tokens::TokenGrant;
    use crate::store::Store;

    const REFRESH_TTL_SECONDS: u64 = 600;
    const PASSWORD: &str = "Correct-Horse-42";

    #[derive(Debug, Clone)]
    enum Step {
        /// Present the family's newest token.
        Rotate(usize),
        /// Present the newest token twice at once.
        RaceRotate(usize),
        /// Present an older, spent token of the family (the n-th, modulo).
        Replay(usize, usize),
        Logout(usize),
        /// Let time pass (the refresh tokens live 600 s).
        Wait(i64),
    }

    fn step(families: usize) -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..families).prop_map(Step::Rotate),
            1 => (0..families).prop_map(Step::RaceRotate),
            2 => (0..families, any::<usize>()).prop_map(|(f, n)| Step::Replay(f, n)),
            1 => (0..families).prop_map(Step::Logout),
            2 => (0_i64..400).prop_map(Step::Wait),
        ]
    }

    /// What the model knows of one family: every token issued in it, oldest
    /// first, and whether a replay or a logout ended it.
    struct Family {
        tokens: Vec<String>,
        ended: bool,
    }

    struct Harness {
        runtime: tokio::runtime::Runtime,
        services: Services,
        clock: Clock,
        next_user: AtomicU32,
        _dir: tempfile::TempDir,
    }

    fn context() -> RequestContext {
        RequestContext {
            ip: std::net::IpAddr::from([127, 0, 0, 1]),
            user_agent: "proptest".into(),
            request_id: "proptest".into(),
        }
    }

    impl Harness {
        fn new() -> Harness {
            let dir = tempfile::tempdir().expect("tempdir");
            let clock = Clock::manual(1_800_000_000);
            let mut config = Config::default();
            config.storage.data_dir = dir.path().to_path_buf();
            config.passwords.memory_kib = 1024;
            config.passwords.iterations = 1;
            config.passwords.parallelism = 1;
            config.limits.login_per_ip_per_min = 1_000_000;
            config.limits.login_per_account_per_min = 1_000_000;
            config.limits.register_per_ip_per_min = 1_000_000;
            config.tokens.refresh_ttl = HumanDuration::from_secs(REFRESH_TTL_SECONDS);
            config.tokens.signing_alg = KeyAlgorithm::EdDSA;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            let (store, _) = Store::open(&dir.path().join("authd.redb"), 1 << 20, clock.now())
                .expect("open the store");
            let services = runtime
                .block_on(Services::build(
                    Arc::new(config),
                    Arc::new(store),
                    &[9; 32],
                    clock.clone(),
                ))
                .expect("services");
            Harness {
                runtime,
                services,
                clock,
                next_user: AtomicU32::new(0),
                _dir: dir,
            }
        }

        /// A new user with `count` sessions: one refresh family each.
        fn families(&self, count: usize) -> Vec<Family> {
            let n = self.next_user.fetch_add(1, Ordering::Relaxed);
            let email = format!("family{n}@example.com");
            self.runtime.block_on(async {
                self.services
                    .register(
                        NewUser {
                            email: Some(email.clone()),
                            password: Some(Password::new(PASSWORD.into())),
                            name: None,
                            org: None,
                            role: None,
                            email_verified: None,
                        },
                        &context(),
                    )
                    .await
                    .expect("register");
                let mut families = Vec::new();
                for _ in 0..count {
                    let outcome = self
                        .services
                        .login(
                            LoginRequest {
                                email: email.clone(),
                                password: Password::new(PASSWORD.into()),
                                org: None,
                                grant: TokenGrant::default(),
                            },
                            SessionKind::Refreshable,
                            &context(),
                        )
                        .await
                        .expect("login");
                    let LoginOutcome::Tokens(tokens) = outcome else {
                        panic!("no second factor was enrolled");
                    };
                    families.push(Family {
                        tokens: vec![tokens.refresh_token.expect("a refresh token")],
                        ended: false,
                    });
                }
                families
            })
        }

        fn refresh(&self, token: &str) -> Result<String, RefreshRefusal> {
            self.runtime.block_on(refresh_once(&self.services, token))
        }

        /// Two presentations of `token` at once.
        fn race(&self, token: &str) -> [Result<String, RefreshRefusal>; 2] {
            self.runtime.block_on(async {
                let (a, b) = tokio::join!(
                    refresh_once(&self.services, token),
                    refresh_once(&self.services, token)
                );
                [a, b]
            })
        }

        fn is_live(&self, token: &str) -> bool {
            self.runtime
                .block_on(self.services.introspect(token, &TokenCaller::Operator))
                .expect("introspect")
                .active
        }

        /// The family's tokens that introspection calls live.
        fn live(&self, family: &Family) -> Vec<usize> {
            (0..family.tokens.len())
                .filter(|&i| self.is_live(&family.tokens[i]))
                .collect()
        }
    }

    /// The new refresh token, or why there is none.
    async fn refresh_once(services: &Services, token: &str) -> Result<String, RefreshRefusal> {
        match services.refresh(token, None, &context()).await {
            Ok(RefreshedTokens::FirstParty(set)) => {
                Ok(set.refresh_token.expect("a rotated refresh token"))
            }
            Ok(RefreshedTokens::App(_)) => panic!("a first-party family"),
            Err(RefreshError::Refused(why)) => Err(why),
            Err(RefreshError::Service(error)) => panic!("refresh failed: {error}"),
        }
    }

    fn harness() -> &'static Harness {
        static HARNESS: std::sync::OnceLock<Harness> = std::sync::OnceLock::new();
        HARNESS.get_or_init(Harness::new)
    }

    fn check_family(harness: &Harness, family: &Family, after: &Step) {
        let live = harness.live(family);
        assert!(
            live.len() <= 1,
            "after {after:?}: {} live tokens in one family",
            live.len()
        );
        if let Some(&index) = live.first() {
            assert_eq!(
                index,
                family.tokens.len() - 1,
                "after {after:?}: a spent token is live"
            );
            assert!(!family.ended, "after {after:?}: an ended family lives");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 24,
            max_shrink_iters: 64,
            ..ProptestConfig::default()
        })]

        #[test]
        fn a_refresh_family_has_one_live_token_or_none(
            count in 1_usize..=3,
            steps in proptest::collection::vec(step(3), 1..24),
        ) {
            let harness = harness();
            let mut families = harness.families(count);
            for family in &families {
                prop_assert_eq!(harness.live(family), vec![0], "a fresh family lives");
            }
            for step in steps {
                match step {
                    Step::Rotate(f) => {
                        let family = &mut families[f % count];
                        let newest = family.tokens.last().expect("a token").clone();
                        let was_live = harness.is_live(&newest);
                        let answer = harness.refresh(&newest);
                        prop_assert_eq!(answer.is_ok(), was_live, "rotation of the newest token: {:?}", answer);
                        if let Ok(token) = answer {
                            family.tokens.push(token);
                        }
                    }
                    Step::RaceRotate(f) => {
                        let family = &mut families[f % count];
                        let newest = family.tokens.last().expect("a token").clone();
                        let was_live = harness.is_live(&newest);
                        let answers = harness.race(&newest);
                        let won: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
                        prop_assert!(won.len() <= 1, "two presentations of one token both rotated");
                        if was_live {
                            // One wins, the other is the replay it looks like,
                            // which ends the family, the winner's new token too.
                            prop_assert_eq!(won.len(), 1);
                            prop_assert!(answers.contains(&Err(RefreshRefusal::Replayed)));
                            family.tokens.push(won[0].clone());
                            family.ended = true;
                        }
                    }
                    Step::Replay(f, n) => {
                        let family = &mut families[f % count];
                        if family.tokens.len() < 2 {
                            continue;
                        }
                        let spent = family.tokens[n % (family.tokens.len() - 1)].clone();
                        prop_assert_eq!(harness.refresh(&spent), Err(RefreshRefusal::Replayed));
                        family.ended = true;
                    }
                    Step::Logout(f) => {
                        let family = &mut families[f % count];
                        let newest = family.tokens.last().expect("a token").clone();
                        harness
                            .runtime
                            .block_on(harness.services.logout_refresh_token(&newest, "logout", &context()))
                            .expect("logout");
                        family.ended = true;
                    }
                    Step::Wait(seconds) => harness.clock.advance(seconds),
                }
                for family in &families {
                    check_family(harness, family, &step);
                }
            }
        }
    }
}
