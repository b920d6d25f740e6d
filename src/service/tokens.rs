//! The token set a login returns (RS256/EdDSA access JWT, opaque refresh
//! token stored only as its SHA-256) and the check that turns a bearer access
//! token back into an authenticated session.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{ServiceError, ServiceResult, Services};
use crate::clock::UnixSeconds;
use crate::crypto::{self, jwt::Expectations};
use crate::domain::{OrgId, Session, SessionId, User, UserId};
use crate::store::{Queries, RefreshToken, WriteTxn};

/// The claims of an access token, exactly as SPEC §3 lists them.
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
    pub roles: Vec<String>,
    pub org: OrgId,
    pub sid: SessionId,
}

/// What `/login` answers on success.
#[derive(Debug, Clone, Serialize)]
pub struct TokenSet {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub session_id: SessionId,
}

/// A request authenticated by a live session's access token.
#[derive(Debug, Clone)]
pub struct SessionPrincipal {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub org_id: OrgId,
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
    now: UnixSeconds,
    refresh_ttl_seconds: u64,
) -> ServiceResult<String> {
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
        },
    )?;
    Ok(token)
}

impl Services {
    /// Signs an access token for `user` in `session`, off the async runtime.
    pub async fn sign_access_token(
        &self,
        user: &User,
        session: &Session,
        now: UnixSeconds,
    ) -> ServiceResult<(String, u64)> {
        let ttl = self.config.tokens.access_ttl.as_secs();
        let claims = AccessClaims {
            sub: user.id,
            iss: self.config.server.public_url.clone(),
            aud: self.config.tokens.audience.clone(),
            exp: now + ttl as i64,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            email: user.email.as_str().to_owned(),
            roles: user
                .role_in(&session.org_id)
                .map(|r| vec![r.as_str().to_owned()])
                .unwrap_or_default(),
            org: session.org_id.clone(),
            sid: session.id,
        };
        let signer = self.keys.signer();
        let token = tokio::task::spawn_blocking(move || signer.sign(&claims))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok((token, ttl))
    }

    /// Checks signature, lifetime, issuer, audience, and that the session is
    /// still live (one read, no write).
    pub async fn authenticate_access_token(
        &self,
        token: &str,
        now: UnixSeconds,
    ) -> ServiceResult<SessionPrincipal> {
        let claims: AccessClaims = self
            .keys
            .verifier()
            .verify(
                token,
                &Expectations {
                    issuer: &self.config.server.public_url,
                    audience: &self.config.tokens.audience,
                    now,
                    leeway_seconds: 5,
                },
            )
            .map_err(|_| ServiceError::InvalidToken)?;
        let session_id = claims.sid;
        let session = self
            .store_read(move |txn| Ok(txn.session(&session_id)?))
            .await?
            .ok_or(ServiceError::InvalidToken)?;
        if !session.is_live(now) || session.user_id != claims.sub {
            return Err(ServiceError::InvalidToken);
        }
        self.activity.touch(session.id, now);
        Ok(SessionPrincipal {
            user_id: claims.sub,
            session_id: session.id,
            org_id: session.org_id,
        })
    }
}
