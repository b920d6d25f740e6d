//! Tokens for apps: the token endpoint's `authorization_code` and
//! `client_credentials` grants, the tokens an app session gets (RFC 9068
//! access tokens and OpenID Connect ID tokens), checking those access
//! tokens, `/oauth/userinfo`, and the checks of RP-Initiated Logout.
//!
//! An app's access token has the app as its audience (`aud` =
//! `client_id`), never `tokens.audience`: authd's own APIs refuse it, so an
//! app holding a person's token cannot change their password or read their
//! sessions. Each code exchange begins an app session (`Session::client_id`)
//! that carries the sign-in's `auth_time`, `amr` and second-factor state;
//! its tokens die with it (revocation, "connected apps", deleting the app).

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::tokens::{refresh_token_digest, store_refresh_token, TokenGrant};
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::UnixSeconds;
use crate::crypto::jwt::{Expectations, KeyAlgorithm, TokenType};
use crate::domain::{ClientKind, GrantType, OAuthClient, Session, SessionId, User, UserId};
use crate::store::{AuthorizationCode, Queries};

impl super::tokens::ValidityWindow for ClientAccessClaims {
    fn not_before(&self) -> UnixSeconds {
        self.nbf
    }
    fn expires_at(&self) -> UnixSeconds {
        self.exp
    }
}

/// The claims of an app's access token (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientAccessClaims {
    pub iss: String,
    /// The person's id, or the client's own id for `client_credentials`.
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub exp: UnixSeconds,
    pub iat: UnixSeconds,
    pub nbf: UnixSeconds,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<SessionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<UnixSeconds>,
}

/// The claims of an ID token for an app (OpenID Connect Core §2, §5.1).
#[derive(Debug, Clone, Serialize)]
struct ClientIdClaims {
    iss: String,
    sub: UserId,
    aud: String,
    azp: String,
    exp: UnixSeconds,
    iat: UnixSeconds,
    auth_time: UnixSeconds,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    sid: SessionId,
    amr: Vec<String>,
    acr: &'static str,
    at_hash: String,
    #[serde(flatten)]
    profile: serde_json::Map<String, serde_json::Value>,
}

/// What the token endpoint answers an app.
#[derive(Debug, Clone, Serialize)]
pub struct ClientTokenSet {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// `acr` values: what the sign-in behind a token proved.
pub const ACR_VALUES: [&str; 2] = ["pwd", "mfa"];

/// Whether a PKCE verifier has the RFC 7636 §4.1 shape.
fn verifier_is_well_formed(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(crate::crypto::sha256(verifier.as_bytes()))
}

/// OpenID Connect Core §3.1.3.6: the left half of the hash of the access
/// token, with the hash of the signing algorithm (SHA-512 for Ed25519).
fn at_hash(access_token: &str, algorithm: KeyAlgorithm) -> String {
    let digest: Vec<u8> = match algorithm {
        KeyAlgorithm::EdDSA => sha2::Sha512::digest(access_token.as_bytes()).to_vec(),
        _ => sha2::Sha256::digest(access_token.as_bytes()).to_vec(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

/// The claims of a JWT, read without checking anything: only to learn
/// which audience to verify it against. Never trusted on its own.
fn unverified_claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The claims a scope brings, for ID tokens and userinfo.
pub fn claims_for_scopes(
    user: &User,
    org: &crate::domain::OrgId,
    scopes: &[String],
) -> serde_json::Map<String, serde_json::Value> {
    let mut claims = serde_json::Map::new();
    let has = |s: &str| scopes.iter().any(|x| x == s);
    if has("profile") {
        if let Some(name) = &user.name {
            claims.insert("name".into(), name.clone().into());
        }
        claims.insert("preferred_username".into(), user.email.as_str().into());
    }
    if has("email") {
        claims.insert("email".into(), user.email.as_str().into());
        claims.insert("email_verified".into(), user.email_verified.into());
    }
    if has("groups") {
        let groups: Vec<String> = user
            .active_role_in(org)
            .map(|r| vec![r.as_str().to_owned()])
            .unwrap_or_default();
        claims.insert("groups".into(), groups.into());
    }
    claims
}

/// What the sign-in behind an app session proved.
pub(crate) struct AppSignIn<'a> {
    pub scopes: &'a [String],
    pub auth_time: UnixSeconds,
    pub amr: &'a [String],
    pub mfa_verified: bool,
}

/// Begins an app session in the caller's transaction, with a refresh token
/// when `offline_access` was granted and the client may refresh.
pub(crate) fn begin_app_session(
    txn: &crate::store::WriteTxn,
    client: &OAuthClient,
    user: &User,
    sign_in: AppSignIn<'_>,
    (ip, user_agent): (String, String),
    now: UnixSeconds,
    (access_ttl, refresh_ttl): (u64, u64),
) -> ServiceResult<(Session, Option<String>)> {
    let refreshable = sign_in.scopes.iter().any(|s| s == "offline_access")
        && client.allows_grant(GrantType::RefreshToken);
    let lifetime = if refreshable { refresh_ttl } else { access_ttl };
    let session = Session {
        id: SessionId::random(),
        user_id: user.id,
        org_id: client.org_id.clone(),
        ip,
        user_agent,
        created_at: now,
        last_active: now,
        expires_at: now + lifetime as i64,
        mfa_verified: sign_in.mfa_verified,
        revoked_at: None,
        enrollment_only: false,
        cookie_digest: None,
        client_id: Some(client.id.clone()),
        amr: sign_in.amr.to_vec(),
        auth_time: Some(sign_in.auth_time),
    };
    txn.put_session(&session)?;
    let refresh_token = if refreshable {
        let grant = TokenGrant {
            scope: Some(sign_in.scopes.join(" ")),
            client_id: Some(client.id.clone()),
            nonce: None,
            auth_time: sign_in.auth_time,
            amr: sign_in.amr.to_vec(),
            method: None,
        };
        let family = uuid::Uuid::new_v4().to_string();
        Some(store_refresh_token(
            txn,
            &session,
            &family,
            &grant,
            now,
            refresh_ttl,
        )?)
    } else {
        None
    };
    Ok((session, refresh_token))
}

/// Refuses a grant the client was not registered for.
pub(crate) fn require_grant(client: &OAuthClient, grant: GrantType) -> ServiceResult<()> {
    if client.allows_grant(grant) {
        Ok(())
    } else {
        Err(ServiceError::oauth(
            "unauthorized_client",
            format!("this client may not use the {} grant", grant.as_str()),
        ))
    }
}

/// The scopes asked for, if every one is the client's (`invalid_scope` if not).
pub(crate) fn requested_scopes(
    client: &OAuthClient,
    asked: Option<&str>,
) -> ServiceResult<Vec<String>> {
    client.narrow_scopes(asked).map_err(|unknown| {
        ServiceError::oauth(
            "invalid_scope",
            format!("scope {unknown:?} is not allowed for this client"),
        )
    })
}

/// Where an app session is begun from, as its record keeps it.
pub(crate) fn session_origin(context: &RequestContext) -> (String, String) {
    (
        context.ip.to_string(),
        context.user_agent.chars().take(512).collect(),
    )
}

/// Whether `user` may sign in to `client` now.
pub(crate) fn may_use_client(user: &User, client: &OAuthClient) -> bool {
    user.may_use_tokens()
        && user
            .active_role_in(&client.org_id)
            .is_some_and(|role| client.allows_role(role.as_str()))
}

enum CodeExchange {
    Issued {
        user: Box<User>,
        session: Box<Session>,
        refresh_token: Option<String>,
        code: Box<AuthorizationCode>,
    },
    Refused(&'static str),
}

impl Services {
    /// `grant_type=authorization_code` for an authenticated client.
    pub async fn exchange_code(
        &self,
        client: OAuthClient,
        code: &str,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
        context: &RequestContext,
    ) -> ServiceResult<ClientTokenSet> {
        require_grant(&client, GrantType::AuthorizationCode)?;
        if code_verifier
            .as_deref()
            .is_some_and(|v| !verifier_is_well_formed(v))
        {
            return Err(ServiceError::oauth(
                "invalid_request",
                "code_verifier must be 43 to 128 unreserved characters",
            ));
        }
        let digest = refresh_token_digest(code);
        let now = self.clock.now();
        let origin = context.origin();
        let origin_of_session = session_origin(context);
        let ttls = self.client_ttls(&client);
        let client_for_txn = client.clone();
        let exchange = self
            .store_write(move |txn| {
                let client = client_for_txn;
                let Some(mut record) = txn.authorization_code(&digest)? else {
                    return Ok(CodeExchange::Refused("the code is unknown"));
                };
                if record.client_id != client.id {
                    return Ok(CodeExchange::Refused("the code is unknown"));
                }
                if let Some(issued) = record.exchanged_for {
                    // RFC 6749 §4.1.2: a code used twice was stolen or
                    // replayed; what it issued ends.
                    if let Some(session) = txn.session(&issued)? {
                        super::sessions::revoke_in(txn, session, now, "code_replayed", &origin)?;
                    }
                    txn.audit(
                        AuditRecord::new(AuditKind::CodeReplayed, now, &origin)
                            .user(record.user_id)
                            .org(&record.org_id)
                            .details(
                                serde_json::json!({"client_id": client.id, "session_id": issued}),
                            ),
                    )?;
                    return Ok(CodeExchange::Refused("the code was already used"));
                }
                if record.expires_at <= now {
                    return Ok(CodeExchange::Refused("the code has expired"));
                }
                if redirect_uri.as_deref() != Some(record.redirect_uri.as_str()) {
                    return Ok(CodeExchange::Refused(
                        "redirect_uri does not match the authorization request",
                    ));
                }
                match (&record.code_challenge, &code_verifier) {
                    (Some(challenge), Some(verifier)) => {
                        let matches: bool = subtle::ConstantTimeEq::ct_eq(
                            s256(verifier).as_bytes(),
                            challenge.as_bytes(),
                        )
                        .into();
                        if !matches {
                            return Ok(CodeExchange::Refused("the code_verifier does not match"));
                        }
                    }
                    (Some(_), None) => {
                        return Ok(CodeExchange::Refused("code_verifier is required"))
                    }
                    (None, Some(_)) => {
                        return Ok(CodeExchange::Refused(
                            "no code_challenge was sent for this code",
                        ))
                    }
                    (None, None) if client.kind == ClientKind::Public => {
                        return Ok(CodeExchange::Refused("public clients must use PKCE"))
                    }
                    (None, None) => {}
                }
                let Some(user) = txn.user(&record.user_id)? else {
                    return Ok(CodeExchange::Refused("the account is gone"));
                };
                if !may_use_client(&user, &client) {
                    return Ok(CodeExchange::Refused("the account may not use this app"));
                }
                let (session, refresh_token) = begin_app_session(
                    txn,
                    &client,
                    &user,
                    AppSignIn {
                        scopes: &record.scopes,
                        auth_time: record.auth_time,
                        amr: &record.amr,
                        mfa_verified: record.mfa_verified,
                    },
                    origin_of_session,
                    now,
                    ttls,
                )?;
                record.exchanged_for = Some(session.id);
                txn.put_authorization_code(&digest, &record)?;
                txn.audit(
                    AuditRecord::new(AuditKind::CodeExchanged, now, &origin)
                        .user(user.id)
                        .org(&client.org_id)
                        .details(serde_json::json!({
                            "client_id": client.id,
                            "session_id": session.id,
                            "scope": record.scopes.join(" "),
                        })),
                )?;
                Ok(CodeExchange::Issued {
                    user: Box::new(user),
                    session: Box::new(session),
                    refresh_token,
                    code: Box::new(record),
                })
            })
            .await?;
        match exchange {
            CodeExchange::Refused(why) => Err(ServiceError::oauth("invalid_grant", why)),
            CodeExchange::Issued {
                user,
                session,
                refresh_token,
                code,
            } => {
                self.issue_client_tokens(
                    &client,
                    &user,
                    &session,
                    &code.scopes,
                    code.nonce.clone(),
                    refresh_token,
                    now,
                )
                .await
            }
        }
    }

    /// Signs an app session's access token, and its ID token when `openid`
    /// was granted.
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_client_tokens(
        &self,
        client: &OAuthClient,
        user: &User,
        session: &Session,
        scopes: &[String],
        nonce: Option<String>,
        refresh_token: Option<String>,
        now: UnixSeconds,
    ) -> ServiceResult<ClientTokenSet> {
        let ttl = self.client_access_ttl(client);
        let scope = scopes.join(" ");
        let auth_time = session.authenticated_at();
        let access = ClientAccessClaims {
            iss: self.config().server.public_url.clone(),
            sub: user.id.to_string(),
            aud: client.id.clone(),
            client_id: client.id.clone(),
            scope: scope.clone(),
            exp: now + ttl as i64,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            sid: Some(session.id),
            auth_time: Some(auth_time),
        };
        let wants_id = scopes.iter().any(|s| s == "openid");
        let id = wants_id.then(|| ClientIdClaims {
            iss: self.config().server.public_url.clone(),
            sub: user.id,
            aud: client.id.clone(),
            azp: client.id.clone(),
            exp: now + self.config().tokens.id_ttl.as_secs() as i64,
            iat: now,
            auth_time,
            nonce,
            sid: session.id,
            amr: super::authorize::session_amr(session),
            acr: if session.mfa_verified { "mfa" } else { "pwd" },
            at_hash: String::new(),
            profile: claims_for_scopes(user, &client.org_id, scopes),
        });
        let signer = self.keys.signer().await?;
        let (access_token, id_token) = tokio::task::spawn_blocking(move || {
            let access_token = signer.sign(TokenType::Access, &access)?;
            let id_token = match id {
                Some(mut claims) => {
                    claims.at_hash = at_hash(&access_token, signer.algorithm());
                    Some(signer.sign(TokenType::Id, &claims)?)
                }
                None => None,
            };
            Ok::<_, crate::crypto::jwt::JwtError>((access_token, id_token))
        })
        .await
        .map_err(ServiceError::internal)?
        .map_err(ServiceError::internal)?;
        Ok(ClientTokenSet {
            access_token,
            token_type: "Bearer",
            expires_in: ttl,
            scope,
            refresh_token,
            id_token,
        })
    }

    /// `grant_type=client_credentials`: the app acting as itself.
    pub async fn client_credentials(
        &self,
        client: OAuthClient,
        scope: Option<String>,
    ) -> ServiceResult<ClientTokenSet> {
        require_grant(&client, GrantType::ClientCredentials)?;
        if client.kind != ClientKind::Confidential {
            return Err(ServiceError::oauth(
                "unauthorized_client",
                "only a confidential client may act as itself",
            ));
        }
        let scopes = requested_scopes(&client, scope.as_deref())?
            .into_iter()
            // There is no person: nothing to identify, nothing to refresh.
            .filter(|s| !matches!(s.as_str(), "openid" | "offline_access"))
            .collect::<Vec<_>>();
        let now = self.clock.now();
        let ttl = self.client_access_ttl(&client);
        let claims = ClientAccessClaims {
            iss: self.config().server.public_url.clone(),
            sub: client.id.clone(),
            aud: client.id.clone(),
            client_id: client.id.clone(),
            scope: scopes.join(" "),
            exp: now + ttl as i64,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            sid: None,
            auth_time: None,
        };
        let signer = self.keys.signer().await?;
        let access_token =
            tokio::task::spawn_blocking(move || signer.sign(TokenType::Access, &claims))
                .await
                .map_err(ServiceError::internal)?
                .map_err(ServiceError::internal)?;
        Ok(ClientTokenSet {
            access_token,
            token_type: "Bearer",
            expires_in: ttl,
            scope: scopes.join(" "),
            refresh_token: None,
            id_token: None,
        })
    }

    /// Verifies an app's access token: signature, type, issuer, lifetime,
    /// that its audience is an app that still exists, and — for a person's
    /// token — that its session is live.
    pub async fn verify_client_access_token(
        &self,
        token: &str,
    ) -> ServiceResult<(ClientAccessClaims, Option<Session>)> {
        let now = self.clock.now();
        let digest = crate::crypto::sha256(token.as_bytes());
        let verifier = self.keys.verifier_for(token).await?;
        let remembered = self
            .verified_client_tokens
            .get(&digest, now, |kid| verifier.knows(kid));
        let claims = match remembered {
            Some(claims) => claims,
            None => {
                let audience = unverified_claims(token)
                    .and_then(|claims| claims.get("client_id")?.as_str().map(str::to_owned))
                    .ok_or(ServiceError::InvalidToken)?;
                let (claims, kid): (ClientAccessClaims, String) = verifier
                    .verify_with_kid(
                        token,
                        &Expectations {
                            token_type: TokenType::Access,
                            issuer: &self.config().server.public_url,
                            audience: &audience,
                            now,
                            leeway_seconds: 0,
                        },
                    )
                    .map_err(|_| ServiceError::InvalidToken)?;
                self.verified_client_tokens
                    .insert(digest, kid, claims.clone(), now);
                claims
            }
        };
        let client_id = claims.client_id.clone();
        let sid = claims.sid;
        let (client, session) = self.store_lookup(|txn| {
            let client = txn.oauth_client(&client_id)?;
            let session = match sid {
                Some(sid) => txn.session(&sid)?,
                None => None,
            };
            Ok((client, session))
        })?;
        if client.is_none() {
            return Err(ServiceError::InvalidToken);
        }
        match (sid, session) {
            (None, _) => Ok((claims, None)),
            (Some(_), Some(session))
                if session.is_live(now)
                    && session.client_id.as_deref() == Some(claims.client_id.as_str())
                    && session.user_id.to_string() == claims.sub =>
            {
                self.activity.touch(session.id, now);
                Ok((claims, Some(session)))
            }
            _ => Err(ServiceError::InvalidToken),
        }
    }

    /// `/oauth/userinfo`: the claims the token's scopes allow.
    pub async fn userinfo(
        &self,
        token: &str,
    ) -> ServiceResult<serde_json::Map<String, serde_json::Value>> {
        let (claims, session) = self.verify_client_access_token(token).await?;
        let Some(session) = session else {
            // client_credentials: no person to describe.
            return Err(ServiceError::InvalidToken);
        };
        let scopes = crate::domain::client::scope_list(&claims.scope);
        if !scopes.iter().any(|s| s == "openid") {
            return Err(ServiceError::oauth(
                "insufficient_scope",
                "the access token was not granted openid",
            ));
        }
        let user_id = session.user_id;
        let user = self
            .store_lookup(|txn| Ok(txn.user(&user_id)?))?
            .filter(User::may_use_tokens)
            .ok_or(ServiceError::InvalidToken)?;
        let mut answer = serde_json::Map::new();
        answer.insert("sub".into(), user.id.to_string().into());
        answer.extend(claims_for_scopes(&user, &session.org_id, &scopes));
        Ok(answer)
    }

    /// An `id_token_hint` this server signed, expired or not (OpenID
    /// Connect RP-Initiated Logout §2): its audience and session.
    pub async fn check_id_token_hint(&self, token: &str) -> Option<(String, SessionId, UserId)> {
        #[derive(Deserialize)]
        struct Hint {
            aud: String,
            sid: SessionId,
            sub: UserId,
        }
        let peek = unverified_claims(token)?;
        let audience = peek.get("aud")?.as_str()?.to_owned();
        let exp = peek.get("exp")?.as_i64()?;
        let verifier = self.keys.verifier_for(token).await.ok()?;
        // An expired hint still says who signed in where; only the
        // signature, issuer, type and audience matter here.
        // Saturating: this `exp` is not verified yet.
        let now = self.clock.now().min(exp.saturating_sub(1));
        let hint: Hint = verifier
            .verify(
                token,
                &Expectations {
                    token_type: TokenType::Id,
                    issuer: &self.config().server.public_url,
                    audience: &audience,
                    now,
                    leeway_seconds: 0,
                },
            )
            .ok()?;
        Some((hint.aud, hint.sid, hint.sub))
    }

    /// Whether `uri` is a registered post-logout redirect of `client_id`.
    pub fn post_logout_redirect_allowed(&self, client_id: &str, uri: &str) -> bool {
        self.store_lookup(|txn| Ok(txn.oauth_client(client_id)?))
            .ok()
            .flatten()
            .is_some_and(|client| client.post_logout_redirect_uris.iter().any(|u| u == uri))
    }

    /// The name of a client, for pages that mention it.
    pub fn client_name(&self, client_id: &str) -> Option<String> {
        self.store_lookup(|txn| Ok(txn.oauth_client(client_id)?))
            .ok()
            .flatten()
            .map(|c| c.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_example_of_rfc_7636_appendix_b_holds() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(verifier_is_well_formed(verifier));
        assert_eq!(
            s256(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(!verifier_is_well_formed("short"));
        assert!(!verifier_is_well_formed(&"a".repeat(129)));
        assert!(!verifier_is_well_formed(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn at_hash_is_the_left_half_of_the_digest() {
        let rs = at_hash("token", KeyAlgorithm::RS256);
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(rs)
                .map(|b| b.len()),
            Ok(16)
        );
        let ed = at_hash("token", KeyAlgorithm::EdDSA);
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(ed)
                .map(|b| b.len()),
            Ok(32)
        );
    }
}
