//! The token set a login returns (RS256/EdDSA access JWT, opaque refresh
//! token stored only as its SHA-256) and the check that turns a bearer access
//! token back into an authenticated session.
//!
//! Access and ID tokens are signed by the same key, so they are kept apart
//! by two things a resource server can check: the header `typ` (`at+jwt`
//! for access tokens, RFC 9068; `JWT` for ID tokens) and the audience, which
//! for an ID token is never `tokens.audience` — it is the `client_id`, or
//! [`ID_TOKEN_AUDIENCE`] when the login named none.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{ServiceError, ServiceResult, Services};
use crate::clock::UnixSeconds;
use crate::crypto::{
    self,
    jwt::{Expectations, TokenType},
};
use crate::domain::{OrgId, Session, SessionId, User, UserId};
use crate::store::{Queries, RefreshToken, WriteTxn};

/// The claims of an access token, as the README's "Tokens" section lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: UserId,
    pub iss: String,
    pub aud: String,
    pub exp: UnixSeconds,
    pub iat: UnixSeconds,
    pub nbf: UnixSeconds,
    pub jti: String,
    pub email: String,
    /// Self-registered emails are not verified (there is no verification
    /// flow yet); tokens say so rather than let a client assume.
    #[serde(default)]
    pub email_verified: bool,
    pub roles: Vec<String>,
    pub org: OrgId,
    pub sid: SessionId,
    /// Present (true) while the session may only enroll MFA: the org's
    /// policy requires a second factor the user does not have yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mfa_enrollment_required: bool,
    /// How the session's person signed in (RFC 8176): `pwd`, then `otp`,
    /// `hwk` or `kba` and `mfa` for a second factor; a passkey is `hwk`,
    /// `user`, `mfa`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

/// The claims of an OpenID Connect ID token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: UserId,
    pub aud: String,
    pub exp: UnixSeconds,
    pub iat: UnixSeconds,
    pub auth_time: UnixSeconds,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub email: String,
    pub email_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub sid: SessionId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

/// The `aud` of an ID token whose login named no `client_id`: the caller of
/// `/login` itself. Not the issuer URL, which operators often choose as
/// `tokens.audience` too; this value is refused as `tokens.audience` by the
/// config, so an ID token never carries the access tokens' audience.
pub use crate::config::ID_TOKEN_AUDIENCE;

/// What a login asked for beyond the access token: `scope=openid` brings an
/// ID token for `client_id` (else [`ID_TOKEN_AUDIENCE`]), echoing `nonce`.
#[derive(Debug, Clone, Default)]
pub struct TokenGrant {
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub nonce: Option<String>,
    pub auth_time: UnixSeconds,
    /// How the person signed in (RFC 8176), kept on the session.
    pub amr: Vec<String>,
    /// The first factor for the `user.login` audit record when it is not
    /// a password: `social:NAME`.
    pub method: Option<String>,
}

impl TokenGrant {
    /// The ID token's audience: the client, but never `access_audience`.
    /// A grant naming the access audience is refused when asked for
    /// ([`Services::check_token_grant`]); one stored before that check
    /// existed gets the first-party audience instead.
    fn id_token_audience(&self, access_audience: &str) -> String {
        self.client_id
            .as_deref()
            .filter(|client| *client != access_audience)
            .unwrap_or(ID_TOKEN_AUDIENCE)
            .to_owned()
    }

    pub fn wants_id_token(&self) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|scope| scope.split_whitespace().any(|s| s == "openid"))
    }
}

/// What `/login` and a refresh answer on success.
#[derive(Debug, Clone, Serialize)]
pub struct TokenSet {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    /// Absent for control-plane sessions, which are not refreshable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub session_id: SessionId,
    /// The org requires MFA and the user has none: this session may only
    /// enroll (every other endpoint answers 403 `mfa_enrollment_required`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_enrollment_required: Option<bool>,
    /// The org encourages MFA and the user has none: the UI should prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_enrollment_encouraged: Option<bool>,
    /// A browser session's cookie value; never in a JSON body.
    #[serde(skip)]
    pub browser_cookie: Option<String>,
}

/// Access tokens (authd's own, or apps' with `C` = their claims) that
/// verified, by the SHA-256 of the whole token, until they expire. An RS256 verification costs ~130 µs of CPU; a lookup ~1 µs.
/// Only the signature and claims checks are remembered — the session is
/// still read on every request, so revocation is seen at once — with the
/// key that signed, which must still be one the verifier knows: a revoked
/// key's tokens fail on their next request, remembered or not. Bounded: at
/// capacity, expired entries go, and if that is not enough, all of them.
pub struct VerifiedTokens<C = AccessClaims>(
    std::sync::Mutex<std::collections::HashMap<[u8; 32], VerifiedToken<C>>>,
);

impl<C> Default for VerifiedTokens<C> {
    fn default() -> Self {
        Self(std::sync::Mutex::default())
    }
}

/// Claims that say when they start and stop being good: what the cache of
/// verified tokens needs to know of them.
pub trait ValidityWindow {
    fn not_before(&self) -> UnixSeconds;
    fn expires_at(&self) -> UnixSeconds;
}

impl ValidityWindow for AccessClaims {
    fn not_before(&self) -> UnixSeconds {
        self.nbf
    }
    fn expires_at(&self) -> UnixSeconds {
        self.exp
    }
}

struct VerifiedToken<C> {
    kid: String,
    claims: C,
}

const VERIFIED_TOKENS_CAPACITY: usize = 16_384;

impl<C: ValidityWindow + Clone> VerifiedTokens<C> {
    pub fn get(
        &self,
        digest: &[u8; 32],
        now: UnixSeconds,
        key_is_known: impl FnOnce(&str) -> bool,
    ) -> Option<C> {
        let cache = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .get(digest)
            .filter(|entry| entry.claims.not_before() <= now && now < entry.claims.expires_at())
            .filter(|entry| key_is_known(&entry.kid))
            .map(|entry| entry.claims.clone())
    }

    pub fn insert(&self, digest: [u8; 32], kid: String, claims: C, now: UnixSeconds) {
        let mut cache = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= VERIFIED_TOKENS_CAPACITY {
            cache.retain(|_, entry| now < entry.claims.expires_at());
            if cache.len() >= VERIFIED_TOKENS_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(digest, VerifiedToken { kid, claims });
    }
}

/// A request authenticated by a live session's access token.
#[derive(Debug, Clone)]
pub struct SessionPrincipal {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub org_id: OrgId,
    /// The session may only enroll MFA (see `AccessClaims`).
    pub enrollment_only: bool,
    /// A second factor was checked when the session began (or enrolled in it).
    pub mfa_verified: bool,
}

/// A fresh opaque refresh token: 256 bits from the OS CSPRNG, base64url.
pub fn new_refresh_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crypto::random::bytes::<32>())
}

pub fn refresh_token_digest(token: &str) -> String {
    hex::encode(crypto::sha256(token.as_bytes()))
}

/// Stores a refresh token for `session` in the caller's transaction and
/// returns its plaintext, which is never stored. It cannot outlive the session.
pub(crate) fn store_refresh_token(
    txn: &WriteTxn,
    session: &Session,
    family_id: &str,
    grant: &TokenGrant,
    now: UnixSeconds,
    refresh_ttl_seconds: u64,
) -> ServiceResult<String> {
    crate::metrics::METRICS.tokens_issued.inc("refresh");
    let token = new_refresh_token();
    let expires_at = (now + refresh_ttl_seconds as i64).min(session.expires_at);
    txn.put_refresh_token(
        &refresh_token_digest(&token),
        &RefreshToken {
            family_id: family_id.to_owned(),
            session_id: session.id,
            user_id: session.user_id,
            org_id: session.org_id.clone(),
            issued_at: now,
            expires_at,
            used_at: None,
            used_by_ip: None,
            scope: grant.scope.clone(),
            client_id: grant.client_id.clone(),
            auth_time: grant.auth_time,
        },
    )?;
    Ok(token)
}

impl Services {
    /// Signs the access token (and the ID token if the grant asks for one)
    /// for `user` in `session`, off the async runtime.
    pub async fn issue_token_set(
        &self,
        user: &User,
        session: &Session,
        refresh_token: Option<String>,
        grant: &TokenGrant,
        now: UnixSeconds,
    ) -> ServiceResult<TokenSet> {
        let ttl = self.config().tokens.access_ttl.as_secs();
        let access = AccessClaims {
            sub: user.id,
            iss: self.config().server.public_url.clone(),
            aud: self.config().tokens.audience.clone(),
            exp: now + ttl as i64,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            email: user.email.as_str().to_owned(),
            email_verified: user.email_verified,
            roles: user
                .active_role_in(&session.org_id)
                .map(|r| vec![r.as_str().to_owned()])
                .unwrap_or_default(),
            org: session.org_id.clone(),
            sid: session.id,
            mfa_enrollment_required: session.enrollment_only,
            amr: session.amr.clone(),
        };
        let id = grant.wants_id_token().then(|| IdClaims {
            iss: self.config().server.public_url.clone(),
            sub: user.id,
            aud: grant.id_token_audience(&self.config().tokens.audience),
            exp: now + self.config().tokens.id_ttl.as_secs() as i64,
            iat: now,
            auth_time: grant.auth_time,
            nonce: grant.nonce.clone(),
            email: user.email.as_str().to_owned(),
            email_verified: user.email_verified,
            name: user.name.clone(),
            sid: session.id,
            amr: session.amr.clone(),
        });
        let signer = self.keys.signer().await?;
        let (access_token, id_token) = tokio::task::spawn_blocking(move || {
            let access = signer.sign(TokenType::Access, &access)?;
            let id = id
                .map(|claims| signer.sign(TokenType::Id, &claims))
                .transpose()?;
            Ok::<_, crate::crypto::jwt::JwtError>((access, id))
        })
        .await
        .map_err(ServiceError::internal)?
        .map_err(ServiceError::internal)?;
        Ok(TokenSet {
            access_token,
            token_type: "Bearer",
            expires_in: ttl,
            refresh_token,
            id_token,
            scope: grant.scope.clone(),
            session_id: session.id,
            mfa_enrollment_required: session.enrollment_only.then_some(true),
            mfa_enrollment_encouraged: None,
            browser_cookie: None,
        })
    }

    /// Verifies an access token's signature and claims, without the session check.
    pub async fn verify_access_token(
        &self,
        token: &str,
        now: UnixSeconds,
    ) -> ServiceResult<AccessClaims> {
        let digest = crypto::sha256(token.as_bytes());
        let verifier = self.keys.verifier_for(token).await?;
        if let Some(claims) = self
            .verified_tokens
            .get(&digest, now, |kid| verifier.knows(kid))
        {
            return Ok(claims);
        }
        let (claims, kid): (AccessClaims, String) = verifier
            .verify_with_kid(
                token,
                &Expectations {
                    token_type: TokenType::Access,
                    issuer: &self.config().server.public_url,
                    audience: &self.config().tokens.audience,
                    now,
                    // authd verifies what it signed itself: one clock, no skew.
                    leeway_seconds: 0,
                },
            )
            .map_err(|_| ServiceError::InvalidToken)?;
        self.verified_tokens
            .insert(digest, kid, claims.clone(), now);
        Ok(claims)
    }

    /// Refuses, before any work, a grant whose ID token would carry the
    /// access tokens' audience: a resource server checking only `aud` would
    /// take it for an access token.
    pub fn check_token_grant(&self, grant: &TokenGrant) -> ServiceResult<()> {
        if grant.client_id.as_deref() == Some(self.config().tokens.audience.as_str()) {
            return Err(ServiceError::field(
                "client_id",
                "must not be the access tokens' audience (tokens.audience)",
            ));
        }
        Ok(())
    }

    /// A browser session's cookie: `<session id>.<secret>`, the secret
    /// checked in constant time against the digest kept on the session.
    pub async fn authenticate_browser_cookie(
        &self,
        cookie: &str,
        now: UnixSeconds,
    ) -> ServiceResult<SessionPrincipal> {
        Ok(self
            .authenticate_browser_cookie_with(cookie, now, |_, _| Ok(()))?
            .0)
    }

    /// [`Services::authenticate_browser_cookie`], reading `also` (e.g. the
    /// session's user) in the same read as the session.
    pub fn authenticate_browser_cookie_with<T>(
        &self,
        cookie: &str,
        now: UnixSeconds,
        also: impl FnOnce(&crate::store::ReadTxn, &crate::domain::Session) -> ServiceResult<T>,
    ) -> ServiceResult<(SessionPrincipal, T)> {
        let (id, secret) = cookie.split_once('.').ok_or(ServiceError::InvalidToken)?;
        let session_id = crate::domain::SessionId::parse(id).ok_or(ServiceError::InvalidToken)?;
        let (session, extra) = self
            .store_lookup(|txn| {
                txn.session(&session_id)?
                    .map(|session| also(txn, &session).map(|extra| (session, extra)))
                    .transpose()
            })?
            .ok_or(ServiceError::InvalidToken)?;
        let presented = hex::encode(crypto::sha256(secret.as_bytes()));
        let genuine = session.cookie_digest.as_ref().is_some_and(|digest| {
            bool::from(subtle::ConstantTimeEq::ct_eq(
                digest.as_bytes(),
                presented.as_bytes(),
            ))
        });
        if !genuine || !session.is_live(now) {
            return Err(ServiceError::InvalidToken);
        }
        self.activity.touch(session.id, now);
        Ok((
            SessionPrincipal {
                user_id: session.user_id,
                session_id: session.id,
                org_id: session.org_id,
                enrollment_only: session.enrollment_only,
                mfa_verified: session.mfa_verified,
            },
            extra,
        ))
    }

    /// The CSRF token of a browser session: readable by the page's script
    /// (a second, non-HttpOnly cookie), sent back in `X-CSRF-Token`.
    pub fn csrf_token(&self, session: crate::domain::SessionId) -> String {
        self.cookie_key.tag(&format!("csrf\n{session}"))
    }

    pub fn csrf_token_is_valid(&self, session: crate::domain::SessionId, token: &str) -> bool {
        self.cookie_key
            .verify_tag(&format!("csrf\n{session}"), token)
    }

    /// Checks signature, lifetime, issuer, audience, and that the session is
    /// still live (one read, no write).
    pub async fn authenticate_access_token(
        &self,
        token: &str,
        now: UnixSeconds,
    ) -> ServiceResult<SessionPrincipal> {
        let claims = self.verify_access_token(token, now).await?;
        let session_id = claims.sid;
        let session = self
            .store_lookup(|txn| Ok(txn.session(&session_id)?))?
            .ok_or(ServiceError::InvalidToken)?;
        if !session.is_live(now) || session.user_id != claims.sub {
            return Err(ServiceError::InvalidToken);
        }
        self.activity.touch(session.id, now);
        Ok(SessionPrincipal {
            user_id: claims.sub,
            session_id: session.id,
            org_id: session.org_id,
            enrollment_only: session.enrollment_only,
            mfa_verified: session.mfa_verified,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: UnixSeconds) -> AccessClaims {
        AccessClaims {
            sub: UserId::random(),
            iss: "http://localhost:9090".into(),
            aud: "authd".into(),
            exp,
            iat: 0,
            nbf: 0,
            jti: "j".into(),
            email: "a@example.com".into(),
            email_verified: false,
            roles: vec![],
            org: OrgId::random(),
            sid: SessionId::random(),
            mfa_enrollment_required: false,
            amr: vec![],
        }
    }

    #[test]
    fn a_remembered_token_is_only_good_until_it_expires() {
        let cache = VerifiedTokens::default();
        cache.insert([1; 32], "k".into(), claims(100), 10);
        assert!(cache.get(&[1; 32], 99, |_| true).is_some());
        assert!(cache.get(&[1; 32], 100, |_| true).is_none(), "expired");
        assert!(
            cache.get(&[2; 32], 50, |_| true).is_none(),
            "never verified"
        );
    }

    #[test]
    fn a_remembered_token_is_only_good_while_its_key_is_known() {
        let cache = VerifiedTokens::default();
        cache.insert([1; 32], "kept".into(), claims(100), 10);
        cache.insert([2; 32], "revoked".into(), claims(100), 10);
        let known = |kid: &str| kid == "kept";
        assert!(cache.get(&[1; 32], 50, known).is_some());
        assert!(cache.get(&[2; 32], 50, known).is_none());
    }

    #[test]
    fn an_id_token_never_gets_the_access_audience() {
        let grant = |client: Option<&str>| TokenGrant {
            client_id: client.map(str::to_owned),
            ..TokenGrant::default()
        };
        assert_eq!(grant(Some("grafana")).id_token_audience("authd"), "grafana");
        assert_eq!(grant(None).id_token_audience("authd"), ID_TOKEN_AUDIENCE);
        assert_eq!(
            grant(Some("authd")).id_token_audience("authd"),
            ID_TOKEN_AUDIENCE
        );
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = VerifiedTokens::default();
        for n in 0..(VERIFIED_TOKENS_CAPACITY as u32 * 2 + 7) {
            let mut digest = [0; 32];
            digest[..4].copy_from_slice(&n.to_be_bytes());
            cache.insert(digest, String::new(), claims(1_000), 10);
        }
        let size = cache.0.lock().map(|c| c.len()).unwrap_or(usize::MAX);
        assert!(size <= VERIFIED_TOKENS_CAPACITY, "{size}");
    }
}
