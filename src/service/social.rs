//! Signing in through an upstream provider ("social login") and the
//! identities it links to accounts.
//!
//! The flow: [`Services::begin_social_sign_in`] sends the browser to the
//! provider with a `state` (also set in a cookie, so that the answer is
//! accepted only in the browser that asked), a `nonce` and a PKCE S256
//! challenge; each pending flow is kept in memory, single-use, for ten
//! minutes. [`Services::finish_social_sign_in`] takes the flow back by its
//! state, exchanges the code, checks the ID token (or reads the user from
//! userinfo, GitHub's `/user` and `/user/emails`), then finds the account:
//!
//! 1. the identity (provider, subject) already linked;
//! 2. else, when `link_by_email` is on, the org's account with the same email
//!    — only if the provider says the email is verified **and** the local
//!    account's email is verified too. Without the second condition, someone
//!    could sign up here with a victim's address before the victim does and
//!    have the victim's later provider sign-in land in the account they
//!    control (pre-account takeover);
//! 3. else a new account, when `create_users` is on and the org takes
//!    sign-ups (`approval`: pending, as a password sign-up);
//! 4. else a page that says why.
//!
//! Then the org's MFA policy applies as after a password (an enrolled factor
//! is asked for; `required` without one gives an enrollment-only session).
//! Accounts made here have no password (an empty hash, like a passkey-only
//! account: `User::has_password`); unlinking never takes the last way in
//! (`identities`).

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::identities::link_identity;
use super::mfa_step::MfaRequired;
use super::sessions::SessionKind;
use super::tokens::{TokenGrant, TokenSet};
use super::upstream::{printable, UpstreamError};
use super::upstream_user::UpstreamUser;
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::UnixSeconds;
use crate::domain::provider::{Provider, ProviderKind};
use crate::domain::user::UserStatus;
use crate::domain::{Email, Org, OrgId, RegistrationMode, Role, User, UserId};
use crate::store::Queries;

/// How long a browser has to come back from the provider.
const FLOW_TTL_SECONDS: i64 = 600;
/// Pending flows kept at most; past it, new ones are refused until some end.
const MAX_PENDING_FLOWS: usize = 10_000;
/// Pending flows one address may have, so that one client cannot use up
/// the rest.
const MAX_PENDING_FLOWS_PER_ADDRESS: usize = 20;

/// authd's own pages a sign-in may return to.
const RETURN_PATHS: [&str; 6] = [
    "/oauth/authorize",
    "/consent",
    "/device",
    "/signout",
    "/account",
    "/",
];

struct PendingFlow {
    provider: String,
    nonce: String,
    verifier: String,
    return_to: String,
    /// Set when a signed-in user links another provider.
    link_user: Option<UserId>,
    /// Who began it, for the per-address cap.
    address: std::net::IpAddr,
    expires_at: UnixSeconds,
}

/// Sign-ins on their way to a provider and back, by SHA-256 of their state.
#[derive(Default)]
pub struct PendingFlows {
    flows: Mutex<HashMap<[u8; 32], PendingFlow>>,
}

impl PendingFlows {
    fn insert(&self, state: &str, flow: PendingFlow, now: UnixSeconds) -> bool {
        let mut flows = match self.flows.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let from_address = |flows: &HashMap<[u8; 32], PendingFlow>| {
            flows.values().filter(|f| f.address == flow.address).count()
        };
        if flows.len() >= MAX_PENDING_FLOWS || from_address(&flows) >= MAX_PENDING_FLOWS_PER_ADDRESS
        {
            flows.retain(|_, flow| flow.expires_at > now);
            if flows.len() >= MAX_PENDING_FLOWS
                || from_address(&flows) >= MAX_PENDING_FLOWS_PER_ADDRESS
            {
                return false;
            }
        }
        flows.insert(crate::crypto::sha256(state.as_bytes()), flow);
        true
    }

    /// The flow of `state`, once: taking it ends it.
    fn take(&self, state: &str, now: UnixSeconds) -> Option<PendingFlow> {
        let mut flows = match self.flows.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        flows
            .remove(&crate::crypto::sha256(state.as_bytes()))
            .filter(|flow| flow.expires_at > now)
    }
}

/// A page instead of a sign-in: what went wrong, in words, and how bad.
#[derive(Debug, Clone)]
pub struct SocialPage {
    pub status: PageStatus,
    pub title: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageStatus {
    /// The request itself is wrong (state, provider name).
    BadRequest,
    /// The person may not sign in this way (no account, closed sign-ups).
    Forbidden,
    /// The provider is down or answered nonsense.
    BadGateway,
    /// Known provider, unknown name.
    NotFound,
    /// Too many sign-ins begun from one address.
    TooMany,
}

fn page(status: PageStatus, title: &'static str, detail: impl Into<String>) -> SocialPage {
    SocialPage {
        status,
        title,
        detail: detail.into(),
    }
}

/// Where the browser goes to start.
pub struct SocialStart {
    pub redirect: String,
    /// Also the value of the browser-binding cookie.
    pub state: String,
    /// Apple posts its answer (`form_post`): the cookie must then be
    /// `SameSite=None` to come along on that cross-site POST.
    pub form_post: bool,
}

/// What the callback leads to.
pub enum SocialOutcome {
    /// A browser session (the cookie is in `tokens`); then `return_to`.
    SignedIn {
        tokens: TokenSet,
        return_to: String,
    },
    /// An enrolled second factor is asked for on the sign-in page.
    SecondFactor {
        challenge: MfaRequired,
        org_slug: String,
        return_to: String,
    },
    /// A signed-in user linked another provider.
    Linked {
        return_to: String,
    },
    Page(SocialPage),
}

/// The callback's query (or Apple's form).
#[derive(Debug, Default, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// Apple: `{"name":{"firstName","lastName"},"email"}`, first sign-in only.
    pub user: Option<String>,
    // Anything else a provider adds (`iss`, `scope`, `session_state`, …)
    // is ignored.
}

fn random_text() -> String {
    URL_SAFE_NO_PAD.encode(crate::crypto::random::bytes::<32>())
}

impl Services {
    /// A return URL a sign-in may go back to, or `/account`: one of
    /// authd's own pages (same origin, a path the UI lists), or a URL the
    /// forward-auth rules protect. Never anywhere else (no open redirect).
    pub fn safe_return_to(&self, raw: Option<&str>) -> String {
        let fallback = "/account".to_owned();
        let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
            return fallback;
        };
        if raw.chars().any(|c| c.is_control() || c == '\\') {
            return fallback;
        }
        if raw.starts_with('/') {
            if raw.starts_with("//") {
                return fallback;
            }
            let Ok(base) = url::Url::parse("http://authd.invalid") else {
                return fallback;
            };
            return match base.join(raw) {
                Ok(url) if url.origin() == base.origin() && RETURN_PATHS.contains(&url.path()) => {
                    match url.query() {
                        Some(query) => format!("{}?{query}", url.path()),
                        None => url.path().to_owned(),
                    }
                }
                _ => fallback,
            };
        }
        if crate::domain::forward_auth::return_url_allowed(&self.config().forward_auth.rules, raw) {
            return raw.to_owned();
        }
        fallback
    }

    /// `GET /oauth/authorize?provider=NAME`: the URL of the provider's
    /// authorization endpoint, and the state to bind to the browser.
    pub async fn begin_social_sign_in(
        &self,
        name: String,
        org: Option<String>,
        return_to: String,
        link_user: Option<UserId>,
        context: &RequestContext,
    ) -> ServiceResult<Result<SocialStart, SocialPage>> {
        let now = self.clock.now();
        let lookup = name.clone();
        let found = self
            .store_read(move |txn| {
                let Some(provider) = txn.provider(&lookup)? else {
                    return Ok(None);
                };
                let wanted_org = match org {
                    Some(reference) => super::orgs::resolve(txn, Some(&reference))?.map(|o| o.id),
                    None => Some(provider.org_id.clone()),
                };
                Ok(Some((provider, wanted_org)))
            })
            .await?;
        let Some((provider, wanted_org)) = found.filter(|(p, _)| p.enabled) else {
            return Ok(Err(page(
                PageStatus::NotFound,
                "This sign-in option does not exist",
                "No enabled sign-in provider has this name.",
            )));
        };
        if wanted_org.as_ref() != Some(&provider.org_id) {
            return Ok(Err(page(
                PageStatus::BadRequest,
                "This sign-in option is not offered here",
                "The provider belongs to another organization.",
            )));
        }
        let endpoints = match self.upstream.endpoints(&provider, now).await {
            Ok(endpoints) => endpoints,
            Err(error) => {
                self.audit_social_failure(&provider, None, &error, None)
                    .await?;
                return Ok(Err(upstream_page(&provider, &error)));
            }
        };
        let state = random_text();
        let nonce = random_text();
        let verifier = random_text();
        let challenge = URL_SAFE_NO_PAD.encode(crate::crypto::sha256(verifier.as_bytes()));
        let form_post = provider.kind == ProviderKind::Apple;
        let mut url = url::Url::parse(&endpoints.authorize).map_err(ServiceError::internal)?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &provider.client_id)
                .append_pair("redirect_uri", &self.provider_callback_url(&provider.name))
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if !provider.scopes.is_empty() {
                query.append_pair("scope", &provider.scopes.join(" "));
            }
            if provider.kind.speaks_oidc() {
                query.append_pair("nonce", &nonce);
            }
            if form_post {
                query.append_pair("response_mode", "form_post");
            }
        }
        let flow = PendingFlow {
            provider: provider.name.clone(),
            nonce,
            verifier,
            return_to,
            link_user,
            address: context.ip,
            expires_at: now + FLOW_TTL_SECONDS,
        };
        if !self.social_flows.insert(&state, flow, now) {
            return Ok(Err(page(
                PageStatus::TooMany,
                "Too many sign-ins at once",
                "Finish or abandon the ones begun, or try again in ten minutes.",
            )));
        }
        Ok(Ok(SocialStart {
            redirect: url.into(),
            state,
            form_post,
        }))
    }

    /// `GET`/`POST /oauth/callback/NAME`. `browser_state` is the binding
    /// cookie's value; without it matching `state`, nothing happens.
    pub async fn finish_social_sign_in(
        &self,
        name: String,
        params: CallbackParams,
        browser_state: Option<String>,
        context: &RequestContext,
    ) -> ServiceResult<SocialOutcome> {
        let now = self.clock.now();
        let provider = match self.stored_provider(name).await {
            Ok(provider) if provider.enabled => provider,
            Ok(_) | Err(ServiceError::NotFound(_)) => {
                return Ok(SocialOutcome::Page(page(
                    PageStatus::NotFound,
                    "This sign-in option does not exist",
                    "No enabled sign-in provider has this name.",
                )))
            }
            Err(other) => return Err(other),
        };
        let bound = match (&params.state, &browser_state) {
            (Some(state), Some(cookie)) => crate::crypto::secrets_equal(
                state.as_bytes(),
                &crate::crypto::sha256(cookie.as_bytes()),
            ),
            _ => false,
        };
        let flow = match (bound, &params.state) {
            (true, Some(state)) => self.social_flows.take(state, now),
            _ => None,
        };
        let Some(flow) = flow.filter(|flow| flow.provider == provider.name) else {
            return self.refuse(&provider, None, "state_mismatch", context, page(PageStatus::BadRequest,
                "This sign-in could not be completed",
                "It did not start in this browser, was already used, or took too long. Start again from the sign-in page.",)).await;
        };
        if let Some(error) = &params.error {
            let error = UpstreamError::Refused(
                printable(error),
                params.error_description.as_deref().map(printable),
            );
            self.audit_social_failure(&provider, None, &error, Some(context))
                .await?;
            return Ok(SocialOutcome::Page(upstream_page(&provider, &error)));
        }
        let Some(code) = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() < 4096)
        else {
            return self
                .refuse(
                    &provider,
                    None,
                    "missing_code",
                    context,
                    page(
                        PageStatus::BadRequest,
                        "This sign-in could not be completed",
                        "The provider sent no authorization code.",
                    ),
                )
                .await;
        };
        let upstream_user = match self
            .upstream_user(
                &provider,
                code,
                &flow.nonce,
                &flow.verifier,
                params.user.as_deref(),
                now,
            )
            .await
        {
            Ok(user) => user,
            Err(error) => {
                self.audit_social_failure(&provider, None, &error, Some(context))
                    .await?;
                return Ok(SocialOutcome::Page(upstream_page(&provider, &error)));
            }
        };
        self.sign_in_upstream_user(provider, upstream_user, flow, context)
            .await
    }

    /// Finds, links or creates the account; then MFA and a session.
    async fn sign_in_upstream_user(
        &self,
        provider: Provider,
        upstream: UpstreamUser,
        flow: PendingFlow,
        context: &RequestContext,
    ) -> ServiceResult<SocialOutcome> {
        let now = self.clock.now();
        if upstream.subject.is_empty() || upstream.subject.len() > 255 {
            return self
                .refuse(
                    &provider,
                    None,
                    "no_subject",
                    context,
                    page(
                        PageStatus::BadGateway,
                        "This sign-in could not be completed",
                        "The provider did not say who you are.",
                    ),
                )
                .await;
        }
        let email = upstream.email.as_deref().and_then(|e| Email::parse(e).ok());
        let origin = context.origin();
        if let Some(user_id) = flow.link_user {
            let (provider_name, org_id) = (provider.name.clone(), provider.org_id.clone());
            let upstream = upstream.clone();
            let linked = self
                .store_write(move |txn| {
                    let user = txn.user(&user_id)?.ok_or(ServiceError::NotFound("user"))?;
                    if let Some(existing) = txn.identity(&provider_name, &upstream.subject)? {
                        return Ok(existing.user_id == user.id);
                    }
                    link_identity(
                        txn,
                        &provider_name,
                        &upstream,
                        &user,
                        &org_id,
                        now,
                        &origin,
                        "linked_by_user",
                    )?;
                    Ok(true)
                })
                .await?;
            return Ok(if linked {
                SocialOutcome::Linked {
                    return_to: flow.return_to,
                }
            } else {
                self.refuse(
                    &provider,
                    Some(user_id),
                    "identity_linked_elsewhere",
                    context,
                    page(
                        PageStatus::Forbidden,
                        "This account is already linked",
                        format!(
                        "This {} account is linked to another account here. Unlink it there first.",
                        provider.name
                    ),
                    ),
                )
                .await?
            });
        }

        let (provider_for_read, upstream_for_read, email_for_read) =
            (provider.clone(), upstream.clone(), email.clone());
        let decision = self
            .store_write(move |txn| {
                let org = txn
                    .org(&provider_for_read.org_id)?
                    .ok_or(ServiceError::NotFound("org"))?;
                if let Some(mut identity) =
                    txn.identity(&provider_for_read.name, &upstream_for_read.subject)?
                {
                    let user = txn.user(&identity.user_id)?.ok_or(ServiceError::NotFound("user"))?;
                    identity.last_used_at = Some(now);
                    if upstream_for_read.email.is_some() {
                        identity.email = upstream_for_read.email.clone();
                    }
                    txn.put_identity(&identity)?;
                    return Ok(Decision::SignIn(user, org));
                }
                let Some(email) = email_for_read else {
                    return Ok(Decision::Refuse(
                        "no_email",
                        "No account is linked to this sign-in",
                        "The provider did not share an email address, so no account could be found or made. Sign in another way and link it from your account page.".to_owned(),
                    ));
                };
                if let Some(user) = txn.user_by_email(&org.id, &email)? {
                    let linkable = provider_for_read.link_by_email
                        && upstream_for_read.email_verified
                        && user.email_verified;
                    if !linkable {
                        return Ok(Decision::Refuse(
                            "email_not_linkable",
                            "An account with this email exists",
                            "It is not linked to this sign-in option. Sign in with your password and link it from your account page.".to_owned(),
                        ));
                    }
                    link_identity(txn, &provider_for_read.name, &upstream_for_read, &user, &org.id, now, &origin, "linked_by_email")?;
                    return Ok(Decision::SignIn(user, org));
                }
                if !provider_for_read.create_users || org.registration == RegistrationMode::Closed {
                    return Ok(Decision::Refuse(
                        "no_account",
                        "No account here for this sign-in",
                        format!("{} does not take new accounts through this provider. Ask whoever runs it to invite you.", org.name),
                    ));
                }
                Ok(Decision::Create(org, email))
            })
            .await?;
        let (user, org) = match decision {
            Decision::SignIn(user, org) => (user, org),
            Decision::Refuse(reason, title, detail) => {
                return self
                    .refuse(
                        &provider,
                        None,
                        reason,
                        context,
                        page(PageStatus::Forbidden, title, detail),
                    )
                    .await;
            }
            Decision::Create(org, email) => {
                match self
                    .create_social_user(&provider, &upstream, org.clone(), email, context)
                    .await?
                {
                    Some(user) => (user, org),
                    None => {
                        return Ok(SocialOutcome::Page(page(
                            PageStatus::Forbidden,
                            "Your account awaits approval",
                            "An administrator has to approve it before you can sign in.",
                        )))
                    }
                }
            }
        };
        if let Some(refusal) = refusal_for(&user, &org.id, now) {
            return self
                .refuse(
                    &provider,
                    Some(user.id),
                    refusal.0,
                    context,
                    page(PageStatus::Forbidden, refusal.1, refusal.2),
                )
                .await;
        }
        let grant = TokenGrant {
            amr: vec!["fed".to_owned()],
            method: Some(format!("social:{}", provider.name)),
            ..TokenGrant::default()
        };
        if user.mfa_enrolled {
            let challenge = self.begin_mfa_challenge(&user, &org, grant).await?;
            return Ok(SocialOutcome::SecondFactor {
                challenge,
                org_slug: org.slug,
                return_to: flow.return_to,
            });
        }
        let tokens = self
            .start_session(user, org, false, grant, SessionKind::Browser, context)
            .await?;
        let return_to = if tokens.mfa_enrollment_required == Some(true) {
            "/account#section-mfa".to_owned()
        } else {
            flow.return_to
        };
        Ok(SocialOutcome::SignedIn { tokens, return_to })
    }

    /// A new account for a provider's user: no password, the provider's
    /// word on the email, the identity linked; `None` when it awaits
    /// approval.
    async fn create_social_user(
        &self,
        provider: &Provider,
        upstream: &UpstreamUser,
        org: Org,
        email: Email,
        context: &RequestContext,
    ) -> ServiceResult<Option<User>> {
        let name = upstream
            .name
            .as_deref()
            .map(|n| {
                n.chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect::<String>()
            })
            .filter(|n| crate::domain::check_name(n, 200).is_ok());
        let pending = org.registration == RegistrationMode::Approval;
        let org_id = org.id.clone();
        let checked = super::accounts::CheckedUser {
            email,
            password: None,
            name,
        };
        let (user, approval) = self
            .insert_user(
                checked,
                org,
                Role::member(),
                pending,
                Some(upstream.email_verified),
                context,
            )
            .await?;
        let (now, origin) = (self.clock.now(), context.origin());
        let (provider_name, upstream) = (provider.name.clone(), upstream.clone());
        let linked = user.clone();
        self.store_write(move |txn| {
            link_identity(
                txn,
                &provider_name,
                &upstream,
                &linked,
                &org_id,
                now,
                &origin,
                "created",
            )
        })
        .await?;
        if let Some(approval_id) = approval {
            self.announce_approval(approval_id).await;
            return Ok(None);
        }
        Ok(Some(user))
    }

    /// `social.login_failed` for a failure the provider caused.
    async fn audit_social_failure(
        &self,
        provider: &Provider,
        user: Option<UserId>,
        error: &UpstreamError,
        context: Option<&RequestContext>,
    ) -> ServiceResult<()> {
        let details = match error {
            UpstreamError::Refused(code, description) => {
                serde_json::json!({"upstream_error": code, "upstream_error_description": description})
            }
            other => serde_json::json!({"error": printable(&other.to_string())}),
        };
        let origin = context.map(RequestContext::origin).unwrap_or_default();
        self.write_social_audit(provider, user, error.code(), details, origin)
            .await
    }

    /// Audits why a sign-in stops here, and shows it.
    async fn refuse(
        &self,
        provider: &Provider,
        user: Option<UserId>,
        reason: &str,
        context: &RequestContext,
        page: SocialPage,
    ) -> ServiceResult<SocialOutcome> {
        self.write_social_audit(
            provider,
            user,
            reason,
            serde_json::json!({}),
            context.origin(),
        )
        .await?;
        Ok(SocialOutcome::Page(page))
    }

    async fn write_social_audit(
        &self,
        provider: &Provider,
        user: Option<UserId>,
        reason: &str,
        mut details: Value,
        origin: crate::audit::RequestOrigin,
    ) -> ServiceResult<()> {
        let now = self.clock.now();
        // One label for them all: the audit record says which step failed.
        crate::metrics::METRICS.login_failures.inc("social");
        if let Some(map) = details.as_object_mut() {
            map.insert("provider".into(), provider.name.clone().into());
        }
        let org = provider.org_id.clone();
        let reason = reason.to_owned();
        self.store_write(move |txn| {
            let mut record = AuditRecord::new(AuditKind::SocialLoginFailed, now, &origin)
                .org(&org)
                .reason(&reason)
                .details(details);
            record.user_id = user;
            txn.audit(record)?;
            Ok(())
        })
        .await
    }
}

enum Decision {
    SignIn(User, Org),
    Create(Org, Email),
    Refuse(&'static str, &'static str, String),
}

/// Why an account found for a provider's user may not sign in now.
fn refusal_for(
    user: &User,
    org: &OrgId,
    now: UnixSeconds,
) -> Option<(&'static str, &'static str, &'static str)> {
    if user.status == UserStatus::PendingApproval {
        return Some((
            "pending_approval",
            "Your account awaits approval",
            "An administrator has to approve it before you can sign in.",
        ));
    }
    if !user.may_use_tokens() || user.active_role_in(org).is_none() {
        return Some((
            "account_disabled",
            "This account cannot sign in",
            "It is disabled or locked. Ask whoever runs this server.",
        ));
    }
    let _ = now;
    None
}

fn upstream_page(provider: &Provider, error: &UpstreamError) -> SocialPage {
    match error {
        UpstreamError::Unreachable(_) => page(
            PageStatus::BadGateway,
            "The sign-in provider is not reachable",
            format!(
                "authd could not reach {} just now. Try again in a moment, or sign in another way.",
                provider.name
            ),
        ),
        UpstreamError::Refused(code, description) => page(
            PageStatus::Forbidden,
            "The sign-in provider said no",
            match description {
                Some(description) => format!("{} answered: {code} ({description}).", provider.name),
                None => format!("{} answered: {code}.", provider.name),
            },
        ),
        UpstreamError::IdToken(_) => page(
            PageStatus::BadGateway,
            "This sign-in could not be verified",
            format!(
                "The answer from {} did not pass authd's checks ({error}).",
                provider.name
            ),
        ),
        UpstreamError::Invalid(_) | UpstreamError::Configuration(_) => page(
            PageStatus::BadGateway,
            "The sign-in provider is not working",
            format!(
                "The answer from {} could not be used. Whoever runs this server can see why in the audit log.",
                provider.name
            ),
        ),
    }
}
