//! Personal access tokens and the bearer credentials of the control plane:
//! who a caller is (a session or a PAT), what they may do in an org (role ∩
//! scopes), and the PAT life cycle (create, list, revoke — by id, or by the
//! token itself through RFC 7009 —, RFC 7662 introspection, sweep). Use is
//! recorded in memory and written once a minute with a `pat.used` audit
//! record at most once per token per hour, so authenticating a request never
//! writes to the database.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde::Serialize;

use super::refresh::Introspection;
use super::tokens::SessionPrincipal;
use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord, RequestOrigin};
use crate::clock::{self, UnixSeconds};
use crate::crypto;
use crate::domain::{OrgId, Role, Scope, User, UserId};
use crate::store::{PersonalAccessToken, Queries};

const HOUR: UnixSeconds = 3600;
/// Token uses written per transaction by an activity flush.
const ACTIVITY_CHUNK: usize = 1_000;

/// A request authenticated by a personal access token.
#[derive(Debug, Clone)]
pub struct PatPrincipal {
    pub pat_id: String,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub scopes: Vec<Scope>,
}

/// Whoever presented a bearer credential to the account or control-plane API.
#[derive(Debug, Clone)]
pub enum Caller {
    Session(SessionPrincipal),
    Pat(PatPrincipal),
}

impl Caller {
    pub fn user_id(&self) -> UserId {
        match self {
            Caller::Session(session) => session.user_id,
            Caller::Pat(pat) => pat.user_id,
        }
    }

    pub fn session_id(&self) -> Option<crate::domain::SessionId> {
        match self {
            Caller::Session(session) => Some(session.session_id),
            Caller::Pat(_) => None,
        }
    }

    /// Session tokens carry the user's full rights; a PAT only its scopes.
    pub fn require_scope(&self, scope: Scope) -> ServiceResult<()> {
        match self {
            Caller::Session(_) => Ok(()),
            Caller::Pat(pat) if pat.scopes.contains(&scope) => Ok(()),
            Caller::Pat(_) => Err(ServiceError::InsufficientScope(scope)),
        }
    }

    pub fn session(&self) -> ServiceResult<&SessionPrincipal> {
        match self {
            Caller::Session(session) => Ok(session),
            Caller::Pat(_) => Err(ServiceError::Forbidden),
        }
    }
}

/// A caller acting inside the org named by `X-Active-Org-Id`.
#[derive(Debug, Clone)]
pub struct OrgCaller {
    pub caller: Caller,
    pub org_id: OrgId,
    pub role: Role,
}

impl OrgCaller {
    /// The scope must be on the token (PATs) and within the role (everyone):
    /// a demoted user's old PAT loses what the new role does not allow.
    pub fn authorize(&self, scope: Scope) -> ServiceResult<()> {
        self.caller.require_scope(scope)?;
        if scope.grantable_by(&self.role) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden)
        }
    }
}

/// A token as listed: never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct PatView {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: String,
    pub expires_at: String,
    pub last_used_at: Option<String>,
}

impl PatView {
    fn of(pat: &PersonalAccessToken, pending_use: Option<UnixSeconds>) -> Self {
        Self {
            id: pat.id.clone(),
            name: pat.name.clone(),
            scopes: pat.scopes.clone(),
            created_at: clock::rfc3339(pat.created_at),
            expires_at: clock::rfc3339(pat.expires_at),
            last_used_at: pending_use.max(pat.last_used_at).map(clock::rfc3339),
        }
    }
}

/// The answer to a creation: the only time the secret is shown.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedPat {
    #[serde(flatten)]
    pub view: PatView,
    pub token: String,
}

/// The request to create a token, before checking.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct NewPat {
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// Checked by hand so that 0, negatives, fractions and strings all get
    /// a clear 400.
    pub expires_in_days: Option<serde_json::Value>,
}

/// Last use of each PAT since the last flush (when, and from where), and
/// when each was last audited.
#[derive(Default)]
pub struct PatActivity {
    seen: Mutex<HashMap<String, (UnixSeconds, RequestOrigin)>>,
    audited_at: Mutex<HashMap<String, UnixSeconds>>,
}

fn pat_digest(token: &str) -> String {
    hex::encode(crypto::sha256(token.as_bytes()))
}

/// The PAT stored under `digest` and its owner, if it may be used at `now`:
/// unexpired, its owner active, not locked and still a member of the org it
/// was made in. The one rule for bearer use and introspection alike.
fn live_pat(
    txn: &impl Queries,
    digest: &str,
    now: UnixSeconds,
) -> ServiceResult<Option<(PersonalAccessToken, User)>> {
    let Some(pat) = txn.pat(digest)?.filter(|p| p.expires_at > now) else {
        return Ok(None);
    };
    // A brute-force lock does not stop a PAT (see `lockout`); the
    // operator's lock, a disabled account or a suspended membership does.
    let owner = txn
        .user(&pat.user_id)?
        .filter(|user| user.may_use_tokens() && user.active_role_in(&pat.org_id).is_some());
    Ok(owner.map(|owner| (pat, owner)))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Deletes the user's PATs (those of `org` only, when given) in the
/// caller's transaction, auditing each as `pat.revoked` with `reason`.
pub(crate) fn revoke_pats_of_user(
    txn: &mut crate::store::WriteTxn,
    user: &UserId,
    org: Option<&OrgId>,
    reason: &str,
    now: UnixSeconds,
    origin: &RequestOrigin,
) -> ServiceResult<usize> {
    let pats = txn.pats_of_user(user, None, usize::MAX)?;
    let mut revoked = 0;
    for pat in pats
        .iter()
        .filter(|p| org.is_none_or(|org| &p.org_id == org))
    {
        let Some((digest, _)) = txn.pat_by_id(&pat.id)? else {
            continue;
        };
        txn.delete_pat(&digest, pat)?;
        txn.audit(
            AuditRecord::new(AuditKind::PatRevoked, now, origin)
                .user(pat.user_id)
                .org(&pat.org_id)
                .reason(reason)
                .details(serde_json::json!({"pat_id": pat.id})),
        )?;
        revoked += 1;
    }
    Ok(revoked)
}

impl Services {
    /// Any bearer credential: a PAT (by its prefix) or a session's access token.
    pub async fn authenticate_bearer(
        &self,
        token: &str,
        context: &RequestContext,
    ) -> ServiceResult<Caller> {
        let now = self.clock.now();
        let prefix = &self.config().pat.prefix;
        if !token.starts_with(prefix.as_str()) {
            return Ok(Caller::Session(
                self.authenticate_access_token(token, now).await?,
            ));
        }
        let (pat, _) = self.authenticate_pat(token, now, context)?;
        Ok(Caller::Pat(pat))
    }

    /// A PAT (the caller checked its prefix) and its owner, as one read.
    pub fn authenticate_pat(
        &self,
        token: &str,
        now: UnixSeconds,
        context: &RequestContext,
    ) -> ServiceResult<(PatPrincipal, User)> {
        // A look-alike is refused before the database is touched.
        if !crypto::pat::is_well_formed(&self.config().pat.prefix, token) {
            return Err(ServiceError::InvalidToken);
        }
        let digest = pat_digest(token);
        let (pat, owner) = self
            .store_lookup(|txn| live_pat(txn, &digest, now))?
            .ok_or(ServiceError::InvalidToken)?;
        lock(&self.pat_activity.seen).insert(pat.id.clone(), (now, context.origin()));
        Ok((
            PatPrincipal {
                pat_id: pat.id,
                user_id: pat.user_id,
                org_id: pat.org_id,
                scopes: pat.scopes,
            },
            owner,
        ))
    }

    /// Checks `X-Active-Org-Id` against the caller: a member of that org, and
    /// for a PAT, the org it was made in.
    pub async fn enter_org(
        &self,
        caller: Caller,
        org_header: Option<&str>,
    ) -> ServiceResult<OrgCaller> {
        let org_text = org_header
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(ServiceError::OrgRequired)?;
        let org_id = OrgId::parse(org_text).ok_or(ServiceError::Forbidden)?;
        if let Caller::Pat(pat) = &caller {
            if pat.org_id != org_id {
                return Err(ServiceError::Forbidden);
            }
        }
        let user_id = caller.user_id();
        let lookup = org_id.clone();
        let (role, org_policy, enrolled) = self
            .store_lookup(|txn| {
                let Some(user) = txn.user(&user_id)? else {
                    return Ok(None);
                };
                let Some(role) = user.active_role_in(&lookup).cloned() else {
                    return Ok(None);
                };
                let policy = txn.org(&lookup)?.map(|org| org.mfa_policy);
                Ok(policy.map(|policy| (role, policy, user.mfa_enrolled)))
            })?
            .ok_or(ServiceError::Forbidden)?;
        // A session may act in any org of its user, but only as far as that
        // org's policy allows: one begun without a second factor (say in an
        // org that does not ask for one) cannot act where one is required.
        if org_policy.requires_mfa_for(Some(&role)) {
            match &caller {
                Caller::Session(session) if !session.mfa_verified => {
                    return Err(if enrolled {
                        ServiceError::MfaRequired
                    } else {
                        ServiceError::MfaEnrollmentRequired
                    });
                }
                // A PAT was minted by such a session; if the policy came
                // later, it waits until its user has a second factor.
                Caller::Pat(_) if !enrolled => return Err(ServiceError::MfaEnrollmentRequired),
                _ => {}
            }
        }
        Ok(OrgCaller {
            caller,
            org_id,
            role,
        })
    }

    /// The route has checked `tokens.write` (see `OrgScoped`).
    pub async fn create_pat(
        &self,
        caller: &OrgCaller,
        new: NewPat,
        context: &RequestContext,
    ) -> ServiceResult<CreatedPat> {
        let name = match new
            .name
            .as_deref()
            .map(|n| crate::domain::check_name(n, 100))
        {
            Some(Ok(name)) if !name.is_empty() => name.to_owned(),
            Some(Err(problem)) => return Err(ServiceError::field("name", problem.to_string())),
            _ => return Err(ServiceError::field("name", "is required")),
        };
        let requested = new
            .scopes
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ServiceError::field("scopes", "at least one scope is required"))?;
        let mut scopes = Vec::new();
        for text in &requested {
            let scope = Scope::parse(text).ok_or_else(|| {
                ServiceError::field(
                    "scopes",
                    format!(
                        "unknown scope '{}'",
                        text.chars()
                            .filter(|c| !c.is_control())
                            .take(40)
                            .collect::<String>()
                    ),
                )
            })?;
            if !scope.grantable_by(&caller.role) {
                return Err(ServiceError::field(
                    "scopes",
                    format!("the role '{}' cannot grant '{scope}'", caller.role.as_str()),
                ));
            }
            // A token cannot mint a token stronger than itself.
            if let Caller::Pat(pat) = &caller.caller {
                if !pat.scopes.contains(&scope) {
                    return Err(ServiceError::field(
                        "scopes",
                        format!("'{scope}' is not among this token's scopes"),
                    ));
                }
            }
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        scopes.sort();
        let max_days = i64::from(self.config().pat.max_ttl_days);
        let days = new
            .expires_in_days
            .as_ref()
            .and_then(serde_json::Value::as_i64)
            .filter(|d| (1..=max_days).contains(d))
            .ok_or_else(|| {
                ServiceError::field(
                    "expires_in_days",
                    format!(
                        "must be a whole number of days from 1 to {max_days} (pat.max_ttl_days)"
                    ),
                )
            })?;
        let now = self.clock.now();
        let token = crypto::pat::generate(&self.config().pat.prefix);
        crate::metrics::METRICS.tokens_issued.inc("pat");
        let digest = hex::encode(crypto::sha256(token.as_bytes()));
        let pat = PersonalAccessToken {
            id: format!("pat_{}", ulid::Ulid::new()),
            name,
            user_id: caller.caller.user_id(),
            org_id: caller.org_id.clone(),
            scopes,
            created_at: now,
            expires_at: now + days * 86400,
            last_used_at: None,
        };
        let origin = context.origin();
        let stored = pat.clone();
        self.store_write(move |txn| {
            txn.put_pat(&digest, &stored)?;
            txn.audit(
                AuditRecord::new(AuditKind::PatCreated, now, &origin)
                    .user(stored.user_id)
                    .org(&stored.org_id)
                    .details(serde_json::json!({"pat_id": stored.id, "name": stored.name, "scopes": stored.scopes})),
            )?;
            Ok(())
        })
        .await?;
        Ok(CreatedPat {
            view: PatView::of(&pat, None),
            token,
        })
    }

    /// The caller's own tokens in the active org (the route has checked
    /// `tokens.read`).
    pub async fn list_pats(
        &self,
        caller: &OrgCaller,
        cursor: Option<String>,
        limit: usize,
    ) -> ServiceResult<Vec<PatView>> {
        let (user, org) = (caller.caller.user_id(), caller.org_id.clone());
        let pats = self
            .store_read(move |txn| Ok(txn.pats_of_user(&user, cursor.as_deref(), limit)?))
            .await?;
        let pending: HashMap<String, UnixSeconds> = lock(&self.pat_activity.seen)
            .iter()
            .map(|(id, (at, _))| (id.clone(), *at))
            .collect();
        Ok(pats
            .iter()
            .filter(|p| p.org_id == org)
            .map(|p| PatView::of(p, pending.get(&p.id).copied()))
            .collect())
    }

    /// Deletes one of the caller's tokens; it fails from the next request on
    /// (the route has checked `tokens.write`).
    pub async fn revoke_pat(
        &self,
        caller: &OrgCaller,
        id: String,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let (user, org) = (caller.caller.user_id(), caller.org_id.clone());
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let (digest, pat) = txn
                .pat_by_id(&id)?
                .filter(|(_, p)| p.user_id == user && p.org_id == org)
                .ok_or(ServiceError::NotFound("token"))?;
            txn.delete_pat(&digest, &pat)?;
            txn.audit(
                AuditRecord::new(AuditKind::PatRevoked, now, &origin)
                    .user(pat.user_id)
                    .org(&pat.org_id)
                    .details(serde_json::json!({"pat_id": pat.id})),
            )?;
            Ok(())
        })
        .await
    }

    /// Whether `token` is a PAT: the configured prefix and a checksum that
    /// holds. Only then is it one; a refresh token can start with the same
    /// characters, but cannot also carry the checksum.
    pub fn is_pat(&self, token: &str) -> bool {
        crypto::pat::is_well_formed(&self.config().pat.prefix, token)
    }

    /// RFC 7662 for a PAT: active while it may be used (see `live_pat`),
    /// with its owner, org, scopes (space-separated) and lifetime. A PAT
    /// belongs to no OAuth client, so there is no `client_id`.
    pub async fn introspect_pat(&self, token: &str) -> ServiceResult<Introspection> {
        let digest = pat_digest(token);
        let now = self.clock.now();
        self.store_read(move |txn| {
            let Some((pat, owner)) = live_pat(txn, &digest, now)? else {
                return Ok(Introspection::default());
            };
            let scope = pat
                .scopes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ");
            Ok(Introspection {
                active: true,
                token_type: Some("personal_access_token"),
                sub: Some(pat.user_id.to_string()),
                exp: Some(pat.expires_at),
                iat: Some(pat.created_at),
                org: Some(pat.org_id.to_string()),
                scope: Some(scope),
                username: Some(owner.email.as_str().to_owned()),
                ..Introspection::default()
            })
        })
        .await
    }

    /// RFC 7009 for a PAT: whoever holds it may end it. Deleted and audited
    /// (`pat.revoked`) before the answer; it fails from the next request.
    /// Unknown tokens succeed: the caller wanted it dead, and it is.
    pub async fn revoke_pat_by_token(
        &self,
        token: &str,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let digest = pat_digest(token);
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let Some(pat) = txn.pat(&digest)? else {
                return Ok(());
            };
            txn.delete_pat(&digest, &pat)?;
            txn.audit(
                AuditRecord::new(AuditKind::PatRevoked, now, &origin)
                    .user(pat.user_id)
                    .org(&pat.org_id)
                    .reason("token_revoked")
                    .details(serde_json::json!({"pat_id": pat.id})),
            )?;
            Ok(())
        })
        .await
    }

    /// Writes `last_used_at` gathered since the last flush, with a `pat.used`
    /// audit record for a token's first use in each hour.
    pub async fn flush_pat_activity(&self) -> ServiceResult<usize> {
        let seen: Vec<(String, (UnixSeconds, RequestOrigin))> =
            lock(&self.pat_activity.seen).drain().collect();
        if seen.is_empty() {
            return Ok(0);
        }
        let to_audit: HashSet<String> = {
            let mut audited = lock(&self.pat_activity.audited_at);
            let now = self.clock.now();
            audited.retain(|_, at| *at + HOUR > now);
            seen.iter()
                .filter(|(id, (used_at, _))| {
                    let due = audited.get(id).is_none_or(|at| *at + HOUR <= *used_at);
                    if due {
                        audited.insert(id.clone(), *used_at);
                    }
                    due
                })
                .map(|(id, _)| id.clone())
                .collect()
        };
        let to_audit = std::sync::Arc::new(to_audit);
        let mut written = 0;
        // In transactions of a bounded size, so that the logins and
        // rotations queued behind the flush of a busy minute (a write per
        // token used) wait for one chunk, not for all of it.
        let mut seen = seen.into_iter().peekable();
        while seen.peek().is_some() {
            let chunk: Vec<_> = seen.by_ref().take(ACTIVITY_CHUNK).collect();
            let to_audit = to_audit.clone();
            written += self
                .store_write(move |txn| {
                    let mut written = 0;
                    for (id, (used_at, origin)) in chunk {
                        let Some((digest, mut pat)) = txn.pat_by_id(&id)? else {
                            continue;
                        };
                        if pat.last_used_at.is_none_or(|at| at < used_at) {
                            pat.last_used_at = Some(used_at);
                            txn.put_pat(&digest, &pat)?;
                            written += 1;
                        }
                        if to_audit.contains(&id) {
                            txn.audit(
                                AuditRecord::new(AuditKind::PatUsed, used_at, &origin)
                                    .user(pat.user_id)
                                    .org(&pat.org_id)
                                    .reason("first_use_this_hour")
                                    .details(serde_json::json!({"pat_id": pat.id})),
                            )?;
                        }
                    }
                    Ok(written)
                })
                .await?;
        }
        Ok(written)
    }
}
