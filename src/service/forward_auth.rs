//! Forward-auth decisions for reverse proxies: the rule a request falls
//! under, the credential it carries (the UI's session cookie, an access
//! token or a PAT), and whether that person may through — with who they
//! are, for the app behind the proxy.

use serde::Serialize;

use super::pats::Caller;
use super::{RequestContext, ServiceResult, Services};
use crate::domain::forward_auth::{decide, Policy, Rule};
use crate::domain::{OrgId, User};
use crate::store::Queries;

/// What a proxy forwarded of the request it holds.
#[derive(Debug, Clone)]
pub struct OriginalRequest {
    pub host: String,
    pub path: String,
}

/// The credential that came with it.
#[derive(Debug, Clone)]
pub enum ForwardCredential {
    Bearer(String),
    Cookie(String),
    Nothing,
}

/// Who the app behind the proxy is told it is talking to.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RemoteIdentity {
    pub user: String,
    pub email: String,
    pub name: String,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ForwardDecision {
    /// Let it through (a bypass says nothing of who).
    Allow(Option<RemoteIdentity>),
    /// No valid credential, or one without the second factor the rule
    /// asks for: to the sign-in page, then back.
    SignIn,
    Deny,
}

/// One protected host and whether a person may reach it (the console's view).
#[derive(Debug, Clone, Serialize)]
pub struct ReachableHost {
    pub hosts: Vec<String>,
    pub paths: Vec<String>,
    pub policy: Policy,
    pub allowed: bool,
}

impl Services {
    pub async fn forward_auth(
        &self,
        request: &OriginalRequest,
        credential: ForwardCredential,
        context: &RequestContext,
    ) -> ServiceResult<ForwardDecision> {
        let config = &self.config().forward_auth;
        let (policy, rule) = decide(
            &config.rules,
            config.default_policy,
            &request.host,
            &request.path,
        );
        match policy {
            Policy::Bypass => return Ok(ForwardDecision::Allow(None)),
            Policy::Deny => return Ok(ForwardDecision::Deny),
            Policy::OneFactor | Policy::TwoFactor => {}
        }
        let now = self.clock.now();
        // The credential's check reads its owner in the same read.
        let (caller, owner) = match credential {
            ForwardCredential::Bearer(token) if token.starts_with(&self.config().pat.prefix) => {
                match self.authenticate_pat(&token, now, context) {
                    Ok((pat, owner)) => (Some(Caller::Pat(pat)), Some(owner)),
                    Err(_) => (None, None),
                }
            }
            ForwardCredential::Bearer(token) => {
                (self.authenticate_bearer(&token, context).await.ok(), None)
            }
            ForwardCredential::Cookie(cookie) => {
                match self.authenticate_browser_cookie_with(&cookie, now, |txn, session| {
                    Ok(txn.user(&session.user_id)?)
                }) {
                    Ok((session, owner)) => (Some(Caller::Session(session)), owner),
                    Err(_) => (None, None),
                }
            }
            ForwardCredential::Nothing => (None, None),
        };
        let Some(caller) = caller else {
            return Ok(ForwardDecision::SignIn);
        };
        let user_id = caller.user_id();
        let owner = match owner {
            Some(owner) => Some(owner),
            None => self.store_lookup(|txn| Ok(txn.user(&user_id)?))?,
        };
        let Some(user) = owner.filter(User::may_use_tokens) else {
            return Ok(ForwardDecision::SignIn);
        };
        // A session that has not finished its sign-in (an org requires a
        // factor it has not enrolled) has not signed in yet.
        if let Caller::Session(session) = &caller {
            if session.enrollment_only {
                return Ok(ForwardDecision::SignIn);
            }
        }
        if policy == Policy::TwoFactor {
            match &caller {
                Caller::Session(session) if !session.mfa_verified => {
                    return Ok(ForwardDecision::SignIn)
                }
                // A PAT stands for its user's sign-ins: good for a
                // two-factor app only if that user has a second factor.
                Caller::Pat(_) if !user.mfa_enrolled => return Ok(ForwardDecision::Deny),
                _ => {}
            }
        }
        let caller_org = match &caller {
            Caller::Session(session) => session.org_id.clone(),
            Caller::Pat(pat) => pat.org_id.clone(),
        };
        match self.groups_if_allowed(&user, rule, &caller_org)? {
            Some(groups) => Ok(ForwardDecision::Allow(Some(RemoteIdentity {
                user: user.email.as_str().to_owned(),
                email: user.email.as_str().to_owned(),
                name: user
                    .name
                    .clone()
                    .unwrap_or_else(|| user.email.as_str().to_owned()),
                groups,
            }))),
            None => Ok(ForwardDecision::Deny),
        }
    }

    /// The person's roles in the orgs the rule names (else in the org the
    /// credential is for), if they pass the rule's orgs and roles.
    fn groups_if_allowed(
        &self,
        user: &User,
        rule: Option<&Rule>,
        caller_org: &OrgId,
    ) -> ServiceResult<Option<Vec<String>>> {
        let (orgs, roles) = match rule {
            Some(rule) => (rule.orgs.as_slice(), rule.roles.as_slice()),
            None => (&[][..], &[][..]),
        };
        let org_ids: Vec<OrgId> = if orgs.is_empty() {
            vec![caller_org.clone()]
        } else {
            self.store_lookup(|txn| {
                let mut ids = Vec::new();
                for reference in orgs {
                    if let Some(org) = super::orgs::resolve(txn, Some(reference))? {
                        ids.push(org.id);
                    }
                }
                Ok(ids)
            })?
        };
        let held: Vec<String> = org_ids
            .iter()
            .filter_map(|org| user.active_role_in(org))
            .map(|role| role.as_str().to_owned())
            .collect();
        let passes =
            !held.is_empty() && (roles.is_empty() || held.iter().any(|r| roles.contains(r)));
        Ok(passes.then_some(held))
    }

    /// Each rule, and whether `user` would pass it with a session in their
    /// first org (and a second factor for `two_factor`, if they have one).
    pub async fn reachable_hosts(
        &self,
        user: crate::domain::UserId,
    ) -> ServiceResult<Vec<ReachableHost>> {
        let user = self
            .store_read(move |txn| Ok(txn.user(&user)?))
            .await?
            .ok_or(super::ServiceError::NotFound("user"))?;
        let home = user
            .memberships
            .first()
            .map(|m| m.org_id.clone())
            .unwrap_or_else(OrgId::random);
        let mut answer = Vec::new();
        for rule in &self.config().forward_auth.rules {
            let allowed = match rule.policy {
                Policy::Bypass => true,
                Policy::Deny => false,
                Policy::OneFactor => {
                    user.may_use_tokens()
                        && self.groups_if_allowed(&user, Some(rule), &home)?.is_some()
                }
                Policy::TwoFactor => {
                    user.may_use_tokens()
                        && user.mfa_enrolled
                        && self.groups_if_allowed(&user, Some(rule), &home)?.is_some()
                }
            };
            answer.push(ReachableHost {
                hosts: rule.hosts.clone(),
                paths: rule.paths.clone(),
                policy: rule.policy,
                allowed,
            });
        }
        Ok(answer)
    }
}
