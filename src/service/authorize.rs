//! `/oauth/authorize`: checking an app's authorization request (RFC 6749
//! §4.1, OpenID Connect Core §3.1.2, RFC 7636, RFC 9207, RFC 9700), deciding
//! what the browser sees next — an error page, the sign-in, the consent
//! page, or the app with a code — and the consents people give and revoke
//! ("connected apps").
//!
//! Nothing here is stored until a code is issued or a consent given: the
//! request travels in the URL (the sign-in and consent pages send the
//! browser back to the same `/oauth/authorize` URL), so a refused request
//! leaves the store as it was.

use serde::{Deserialize, Serialize};

use super::tokens::SessionPrincipal;
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::{self, UnixSeconds};
use crate::domain::{ClientKind, ConsentMode, GrantType, OAuthClient, Session, User};
use crate::store::{AuthorizationCode, Consent, Queries};

/// How long an authorization code is good for (RFC 9700 §4.5: short).
pub const CODE_TTL_SECONDS: i64 = 60;

/// The marker the authorize endpoint adds to the sign-in's return URL for
/// `prompt=login`: the session must have begun at or after this instant.
pub const LOGIN_AFTER_PARAMETER: &str = "authd_login_after";

/// The query of an authorization request, as sent.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AuthorizationParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub response_mode: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
    #[serde(rename = "authd_login_after")]
    pub login_after: Option<String>,
}

/// What the browser is shown next.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthorizeOutcome {
    /// The client or redirect URI cannot be trusted: a page, never a redirect.
    ErrorPage { title: &'static str, detail: String },
    /// Back to the app (a code, or an RFC 6749 §4.1.2.1 error).
    Redirect(String),
    /// The UI's sign-in, into `org`, then back to `return_to`.
    SignIn {
        org: String,
        login_hint: Option<String>,
        return_to: String,
    },
    /// The consent page for this request.
    Consent { query: String },
}

/// A request that passed every check that does not need the person.
#[derive(Debug, Clone)]
pub struct CheckedRequest {
    pub client: OAuthClient,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    prompt: Prompt,
    max_age: Option<i64>,
    login_after: Option<UnixSeconds>,
    params: AuthorizationParams,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Prompt {
    none: bool,
    login: bool,
    consent: bool,
}

/// The consent page's view of a request.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentRequest {
    pub client_id: String,
    pub client_name: String,
    pub scopes: Vec<String>,
    pub redirect_host: String,
}

/// A connected app on the account page.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectedApp {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub granted_at: Option<String>,
    pub active_sessions: usize,
}

impl Services {
    /// Checks the client and redirect URI (failures: an error page), then the
    /// rest (failures: back to the app with an error).
    pub fn check_authorization_request(
        &self,
        params: AuthorizationParams,
    ) -> Result<CheckedRequest, AuthorizeOutcome> {
        let error_page = |detail: &str| AuthorizeOutcome::ErrorPage {
            title: "This sign-in link is not valid",
            detail: detail.to_owned(),
        };
        let Some(client_id) = params.client_id.as_deref().filter(|c| !c.is_empty()) else {
            return Err(error_page("The link names no app (client_id is missing)."));
        };
        let client = self
            .store_lookup(|txn| Ok(txn.oauth_client(client_id)?))
            .map_err(|_| error_page("The sign-in service could not read its apps."))?
            .ok_or_else(|| error_page("The app this link names is not known to this server."))?;
        let redirect_uri = match params.redirect_uri.as_deref() {
            Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_owned(),
            Some(_) => {
                return Err(error_page(
                    "The address to return to is not one this app registered.",
                ))
            }
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => return Err(error_page("The link names no address to return to.")),
        };
        let state = params.state.clone();
        let fail = |code: &'static str, description: &str| {
            AuthorizeOutcome::Redirect(self.authorization_error(
                &redirect_uri,
                code,
                description,
                state.as_deref(),
            ))
        };
        if params.request.is_some() {
            return Err(fail(
                "request_not_supported",
                "request objects are not supported",
            ));
        }
        if params.request_uri.is_some() {
            return Err(fail(
                "request_uri_not_supported",
                "request_uri is not supported",
            ));
        }
        if params
            .response_mode
            .as_deref()
            .is_some_and(|mode| mode != "query")
        {
            return Err(fail(
                "invalid_request",
                "only response_mode=query is supported",
            ));
        }
        match params.response_type.as_deref() {
            Some("code") => {}
            None | Some("") => return Err(fail("invalid_request", "response_type is required")),
            Some(_) => {
                return Err(fail(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                ))
            }
        }
        if !client.allows_grant(GrantType::AuthorizationCode) {
            return Err(fail(
                "unauthorized_client",
                "this client may not use the authorization code grant",
            ));
        }
        let scopes = match client.narrow_scopes(params.scope.as_deref()) {
            Ok(scopes) => scopes,
            Err(unknown) => {
                return Err(fail(
                    "invalid_scope",
                    &format!("scope {unknown:?} is not allowed for this client"),
                ))
            }
        };
        let code_challenge = match (
            params.code_challenge.as_deref(),
            params.code_challenge_method.as_deref(),
        ) {
            (None, None) if client.kind == ClientKind::Public => {
                return Err(fail(
                    "invalid_request",
                    "public clients must use PKCE (code_challenge with S256)",
                ))
            }
            (None, None) => None,
            (None, Some(_)) => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method without code_challenge",
                ))
            }
            (Some(_), Some(method)) if method != "S256" => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method must be S256 (plain is refused)",
                ))
            }
            // RFC 7636 §4.3 defaults a missing method to plain, which is refused.
            (Some(_), None) => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method=S256 is required (plain is refused)",
                ))
            }
            (Some(challenge), Some(_)) => {
                let well_formed = challenge.len() == 43
                    && challenge
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !well_formed {
                    return Err(fail(
                        "invalid_request",
                        "code_challenge must be the base64url SHA-256 of the verifier",
                    ));
                }
                Some(challenge.to_owned())
            }
        };
        let mut prompt = Prompt::default();
        for value in params.prompt.as_deref().unwrap_or("").split(' ') {
            match value {
                "" | "select_account" => {}
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                other => {
                    return Err(fail(
                        "invalid_request",
                        &format!("unknown prompt value {other:?}"),
                    ))
                }
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(fail("invalid_request", "prompt=none cannot be combined"));
        }
        let max_age = match params.max_age.as_deref() {
            None | Some("") => None,
            Some(text) => match text.parse::<i64>() {
                Ok(seconds) if seconds >= 0 => Some(seconds),
                _ => {
                    return Err(fail(
                        "invalid_request",
                        "max_age must be a number of seconds",
                    ))
                }
            },
        };
        if params.nonce.as_deref().is_some_and(|n| n.len() > 512)
            || state.as_deref().is_some_and(|s| s.len() > 2048)
        {
            return Err(fail("invalid_request", "state or nonce is too long"));
        }
        let login_after = params
            .login_after
            .as_deref()
            .and_then(|text| text.parse::<UnixSeconds>().ok());
        Ok(CheckedRequest {
            client,
            redirect_uri,
            scopes,
            state,
            nonce: params.nonce.clone(),
            code_challenge,
            prompt,
            max_age,
            login_after,
            params,
        })
    }

    /// The whole decision for a request and the browser's session, if any.
    pub async fn authorize(
        &self,
        params: AuthorizationParams,
        browser: Option<SessionPrincipal>,
        context: &RequestContext,
    ) -> ServiceResult<AuthorizeOutcome> {
        let request = match self.check_authorization_request(params) {
            Ok(request) => request,
            Err(outcome) => return Ok(outcome),
        };
        let now = self.clock.now();
        let fail = |code: &'static str, description: &str| {
            Ok(AuthorizeOutcome::Redirect(self.authorization_error(
                &request.redirect_uri,
                code,
                description,
                request.state.as_deref(),
            )))
        };
        let org_id = request.client.org_id.clone();
        let found = match &browser {
            Some(principal) => {
                let session_id = principal.session_id;
                self.store_lookup(|txn| {
                    let session = txn.session(&session_id)?;
                    let user = txn.user(&principal.user_id)?;
                    let org = txn.org(&org_id)?;
                    Ok(session.zip(user).zip(org))
                })?
            }
            None => None,
        };
        let Some(((session, user), org)) = found else {
            if request.prompt.none {
                return fail("login_required", "no one is signed in");
            }
            return Ok(self.sign_in_first(&request, now));
        };
        let fresh_enough = request
            .login_after
            .is_none_or(|after| session.authenticated_at() >= after)
            && request
                .max_age
                .is_none_or(|max| now - session.authenticated_at() <= max);
        let needs_factor = org
            .mfa_policy
            .requires_mfa_for(user.active_role_in(&org.id))
            && (!session.mfa_verified || session.enrollment_only);
        if request.prompt.login || !fresh_enough || needs_factor || session.enrollment_only {
            if request.prompt.none {
                return fail(
                    if needs_factor {
                        "interaction_required"
                    } else {
                        "login_required"
                    },
                    "the person must sign in again",
                );
            }
            return Ok(self.sign_in_first(&request, now));
        }
        let Some(role) = user.active_role_in(&org.id).map(|r| r.as_str().to_owned()) else {
            return fail(
                "access_denied",
                "this account is not a member of the app's org",
            );
        };
        if !user.may_use_tokens() || !request.client.allows_role(&role) {
            return fail("access_denied", "this account may not use this app");
        }
        if request.client.consent == ConsentMode::Explicit {
            let client_id = request.client.id.clone();
            let user_id = user.id;
            let consent = self.store_lookup(|txn| Ok(txn.consent(&user_id, &client_id)?))?;
            let covered = consent
                .is_some_and(|consent| request.scopes.iter().all(|s| consent.scopes.contains(s)));
            if request.prompt.consent || !covered {
                if request.prompt.none {
                    return fail("consent_required", "the person has not allowed this app");
                }
                return Ok(AuthorizeOutcome::Consent {
                    query: encode_query(&request.params),
                });
            }
        }
        let code = self.issue_code(&request, &session, &user, context).await?;
        let mut url = url::Url::parse(&request.redirect_uri)
            .map_err(|_| ServiceError::internal(anyhow::anyhow!("a stored redirect URI")))?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("code", &code);
            if let Some(state) = &request.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.config().server.public_url);
        }
        Ok(AuthorizeOutcome::Redirect(url.into()))
    }

    fn sign_in_first(&self, request: &CheckedRequest, now: UnixSeconds) -> AuthorizeOutcome {
        let mut params = request.params.clone();
        if request.prompt.login || request.max_age.is_some() {
            // Back from the sign-in, the session is new: say so, or the
            // same prompt (or an old max_age) would send it round again.
            params.prompt = params.prompt.as_deref().and_then(|p| {
                let kept: Vec<&str> = p.split(' ').filter(|v| *v != "login").collect();
                (!kept.is_empty()).then(|| kept.join(" "))
            });
            params.login_after = Some(now.to_string());
        }
        AuthorizeOutcome::SignIn {
            org: request.client.org_id.to_string(),
            login_hint: request.params.login_hint.clone(),
            return_to: format!("/oauth/authorize?{}", encode_query(&params)),
        }
    }

    async fn issue_code(
        &self,
        request: &CheckedRequest,
        session: &Session,
        user: &User,
        context: &RequestContext,
    ) -> ServiceResult<String> {
        let now = self.clock.now();
        let code = super::tokens::new_refresh_token();
        let digest = super::tokens::refresh_token_digest(&code);
        let record = AuthorizationCode {
            client_id: request.client.id.clone(),
            user_id: user.id,
            org_id: request.client.org_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scopes: request.scopes.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth_time: session.authenticated_at(),
            amr: session_amr(session),
            mfa_verified: session.mfa_verified,
            expires_at: now + CODE_TTL_SECONDS,
            exchanged_for: None,
        };
        let _ = context;
        self.store_write(move |txn| Ok(txn.put_authorization_code(&digest, &record)?))
            .await?;
        Ok(code)
    }

    /// An RFC 6749 §4.1.2.1 error response, with RFC 9207's `iss`.
    pub fn authorization_error(
        &self,
        redirect_uri: &str,
        code: &str,
        description: &str,
        state: Option<&str>,
    ) -> String {
        let Ok(mut url) = url::Url::parse(redirect_uri) else {
            return redirect_uri.to_owned();
        };
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("error", code);
            query.append_pair("error_description", description);
            if let Some(state) = state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.config().server.public_url);
        }
        url.into()
    }

    /// What the consent page shows for a request (checked like the
    /// authorize endpoint does, for the signed-in person).
    pub fn describe_consent(&self, params: AuthorizationParams) -> ServiceResult<ConsentRequest> {
        let request = self.check_authorization_request(params).map_err(|_| {
            ServiceError::field("request", "this authorization request is not valid")
        })?;
        Ok(ConsentRequest {
            client_id: request.client.id.clone(),
            client_name: request.client.name.clone(),
            scopes: request.scopes.clone(),
            redirect_host: url::Url::parse(&request.redirect_uri)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default(),
        })
    }

    /// The person's answer on the consent page. Yes: the consent is stored
    /// and the browser goes back to `/oauth/authorize` (which now issues the
    /// code); no: the app hears `access_denied`.
    pub async fn answer_consent(
        &self,
        params: AuthorizationParams,
        approve: bool,
        principal: &SessionPrincipal,
        context: &RequestContext,
    ) -> ServiceResult<String> {
        let request = self.check_authorization_request(params).map_err(|_| {
            ServiceError::field("request", "this authorization request is not valid")
        })?;
        if !approve {
            return Ok(self.authorization_error(
                &request.redirect_uri,
                "access_denied",
                "the person did not allow this app",
                request.state.as_deref(),
            ));
        }
        let now = self.clock.now();
        let origin = context.origin();
        let user_id = principal.user_id;
        let client_id = request.client.id.clone();
        let scopes = request.scopes.clone();
        let org = request.client.org_id.clone();
        self.store_write(move |txn| {
            let mut granted = txn
                .consent(&user_id, &client_id)?
                .map(|c| c.scopes)
                .unwrap_or_default();
            for scope in &scopes {
                if !granted.contains(scope) {
                    granted.push(scope.clone());
                }
            }
            txn.put_consent(&Consent {
                user_id,
                client_id: client_id.clone(),
                scopes: granted.clone(),
                granted_at: now,
            })?;
            txn.audit(
                AuditRecord::new(AuditKind::ConsentGiven, now, &origin)
                    .user(user_id)
                    .org(&org)
                    .details(serde_json::json!({"client_id": client_id, "scopes": granted})),
            )?;
            Ok(())
        })
        .await?;
        let mut params = request.params;
        params.prompt = params.prompt.as_deref().and_then(|p| {
            let kept: Vec<&str> = p.split(' ').filter(|v| *v != "consent").collect();
            (!kept.is_empty()).then(|| kept.join(" "))
        });
        Ok(format!("/oauth/authorize?{}", encode_query(&params)))
    }

    /// The apps a person allowed or is signed in to, for the account page.
    pub async fn connected_apps(
        &self,
        user: crate::domain::UserId,
    ) -> ServiceResult<Vec<ConnectedApp>> {
        let now = self.clock.now();
        self.store_read(move |txn| {
            let consents = txn.consents_of_user(&user)?;
            let sessions: Vec<Session> = txn
                .sessions_of_user(&user)?
                .into_iter()
                .filter(|s| s.client_id.is_some() && s.is_live(now))
                .collect();
            let mut ids: Vec<String> = consents.iter().map(|c| c.client_id.clone()).collect();
            for session in &sessions {
                if let Some(id) = &session.client_id {
                    if !ids.contains(id) {
                        ids.push(id.clone());
                    }
                }
            }
            let mut apps = Vec::new();
            for id in ids {
                let Some(client) = txn.oauth_client(&id)? else {
                    continue;
                };
                let consent = consents.iter().find(|c| c.client_id == id);
                apps.push(ConnectedApp {
                    client_id: id.clone(),
                    name: client.name,
                    scopes: consent.map(|c| c.scopes.clone()).unwrap_or_default(),
                    granted_at: consent.map(|c| clock::rfc3339(c.granted_at)),
                    active_sessions: sessions
                        .iter()
                        .filter(|s| s.client_id.as_deref() == Some(&id))
                        .count(),
                });
            }
            Ok(apps)
        })
        .await
    }

    /// Revokes a connected app: its consent goes and its sessions (with
    /// their tokens) end.
    pub async fn revoke_connected_app(
        &self,
        user: crate::domain::UserId,
        client_id: String,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let had_consent = txn.consent(&user, &client_id)?.is_some();
            let ended = super::clients::end_client_grants(
                txn,
                &client_id,
                Some(user),
                now,
                "consent_revoked",
                &origin,
            )?;
            if !had_consent && ended == 0 {
                return Err(ServiceError::NotFound("connected app"));
            }
            txn.audit(
                AuditRecord::new(AuditKind::ConsentRevoked, now, &origin)
                    .user(user)
                    .details(serde_json::json!({"client_id": client_id, "sessions_ended": ended})),
            )?;
            Ok(())
        })
        .await
    }
}

/// RFC 8176 method references for what a session's sign-in involved.
pub fn session_amr(session: &Session) -> Vec<String> {
    if !session.amr.is_empty() {
        return session.amr.clone();
    }
    let mut amr = vec!["pwd".to_owned()];
    if session.mfa_verified {
        amr.push("mfa".to_owned());
    }
    amr
}

fn encode_query(params: &AuthorizationParams) -> String {
    serde_urlencoded::to_string(params).unwrap_or_default()
}
