//! Approvals: things that wait for an operator's yes or no (today: sign-ups
//! in an org whose registration is `approval`). Approving activates the
//! account; denying removes it; nobody answering within `approvals.ttl`
//! expires it, which also removes the pending account. An approval is
//! resolved once: the check and the change are one transaction.

use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord, RequestOrigin};
use crate::clock::UnixSeconds;
use crate::domain::user::UserStatus;
use crate::domain::ApprovalStatus;
use crate::store::{Approval, Queries, WriteTxn};

/// Who resolved an approval, for the record.
#[derive(Debug, Clone, Copy)]
pub enum Resolver {
    OperatorToken,
    SignedLink,
}

impl Resolver {
    fn name(self) -> &'static str {
        match self {
            Resolver::OperatorToken => "operator_token",
            Resolver::SignedLink => "signed_link",
        }
    }
}

/// Signed approve and deny links for a pending approval (README: "Webhooks").
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApprovalLinks {
    pub approve: String,
    pub deny: String,
    #[serde(with = "crate::clock::as_rfc3339")]
    pub expires_at: UnixSeconds,
}

/// Who an approval is about, so the operator decides without a second
/// lookup (a sign-up: the email and name it gave).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApprovalSubject {
    pub email: String,
    pub name: Option<String>,
}

/// An approval as listed: pending ones carry their signed links.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApprovalView {
    #[serde(flatten)]
    pub approval: Approval,
    /// `None` once the account is gone (a denied or expired sign-up).
    pub subject: Option<ApprovalSubject>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<ApprovalLinks>,
}

pub fn resolve_path(id: &str) -> String {
    format!("/v1/approvals/{id}/resolve")
}

fn is_expired(approval: &Approval, now: UnixSeconds, ttl: i64) -> bool {
    approval.status == ApprovalStatus::Pending && approval.requested_at + ttl <= now
}

/// Marks `approval` expired and removes its pending account.
fn expire(
    txn: &mut WriteTxn,
    mut approval: Approval,
    now: UnixSeconds,
    origin: &RequestOrigin,
) -> ServiceResult<Approval> {
    approval.status = ApprovalStatus::Expired;
    approval.resolved_at = Some(now);
    remove_pending_account(txn, &approval)?;
    txn.put_approval(&approval)?;
    let mut record = AuditRecord::new(AuditKind::ApprovalExpired, now, origin)
        .details(serde_json::json!({"approval_id": approval.id}));
    if let Some(user) = approval.subject_user_id {
        record = record.user(user);
    }
    txn.audit(record)?;
    Ok(approval)
}

fn remove_pending_account(txn: &WriteTxn, approval: &Approval) -> ServiceResult<()> {
    if let Some(user_id) = approval.subject_user_id {
        if let Some(user) = txn
            .user(&user_id)?
            .filter(|u| u.status == UserStatus::PendingApproval)
        {
            txn.delete_user(&user)?;
        }
    }
    Ok(())
}

impl Services {
    /// Approvals, newest first, optionally of one status. Pending ones past
    /// their time are shown (and stored) as expired.
    pub async fn list_approvals(&self, status: Option<String>) -> ServiceResult<Vec<ApprovalView>> {
        let status = status
            .map(|text| {
                ApprovalStatus::parse(&text).ok_or_else(|| {
                    ServiceError::field("status", "must be pending, approved, denied or expired")
                })
            })
            .transpose()?;
        self.expire_approvals().await?;
        let mut approvals = self
            .store_read(move |txn| {
                let mut listed = Vec::new();
                for approval in txn.approvals()? {
                    if status.is_some_and(|s| approval.status != s) {
                        continue;
                    }
                    let subject = match approval.subject_user_id {
                        Some(id) => txn.user(&id)?.map(|user| ApprovalSubject {
                            email: user.email.as_str().to_owned(),
                            name: user.name,
                        }),
                        None => None,
                    };
                    listed.push((approval, subject));
                }
                Ok(listed)
            })
            .await?;
        approvals.reverse();
        Ok(approvals
            .into_iter()
            .map(|(approval, subject)| ApprovalView {
                links: (approval.status == ApprovalStatus::Pending)
                    .then(|| self.approval_links(&approval)),
                approval,
                subject,
            })
            .collect())
    }

    /// Tells the webhooks about a new approval, with its signed links and
    /// who it is about. Never fails the request that created it.
    pub async fn announce_approval(&self, approval_id: String) {
        let found = self
            .store_read(move |txn| {
                let Some(approval) = txn.approval(&approval_id)? else {
                    return Ok(None);
                };
                let user = match approval.subject_user_id {
                    Some(id) => txn.user(&id)?,
                    None => None,
                };
                let org = match &user {
                    Some(user) => match user.memberships.first() {
                        Some(membership) => txn.org(&membership.org_id)?,
                        None => None,
                    },
                    None => None,
                };
                Ok(Some((approval, user, org)))
            })
            .await;
        let (approval, user, org) = match found {
            Ok(Some(found)) => found,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "could not read a new approval for its webhook");
                return;
            }
        };
        let links = self.approval_links(&approval);
        let payload = serde_json::json!({
            "approval": approval,
            "subject": {
                "email": user.as_ref().map(|u| u.email.as_str().to_owned()),
                "name": user.as_ref().and_then(|u| u.name.clone()),
                "org": org.as_ref().map(|o| serde_json::json!({"id": o.id, "slug": o.slug, "name": o.name})),
            },
            "links": links,
        });
        self.webhooks.notify("approval.created", payload);
    }

    /// Links that resolve `approval` without the bearer token, valid until
    /// the approval itself would expire.
    pub fn approval_links(&self, approval: &Approval) -> ApprovalLinks {
        let exp = approval.requested_at + self.config().approvals.ttl.as_secs() as i64;
        let path = resolve_path(&approval.id);
        let config = self.config();
        let base = config.server.public_url.trim_end_matches('/');
        let link = |action: &str| {
            let sig = self.link_key.sign("POST", &path, action, exp);
            format!("{base}{path}?action={action}&exp={exp}&sig={sig}")
        };
        ApprovalLinks {
            approve: link("approve"),
            deny: link("deny"),
            expires_at: exp,
        }
    }

    /// Checks a signed link without resolving anything (for the GET page).
    pub fn check_approval_link(
        &self,
        id: &str,
        method: &str,
        action: &str,
        exp: UnixSeconds,
        sig: &str,
    ) -> ServiceResult<bool> {
        let approved = match action {
            "approve" => true,
            "deny" => false,
            _ => return Err(ServiceError::InvalidSignature),
        };
        if self.link_key.verify(
            method,
            &resolve_path(id),
            action,
            exp,
            sig,
            self.clock.now(),
        ) {
            Ok(approved)
        } else {
            Err(ServiceError::InvalidSignature)
        }
    }

    /// Resolves through a signed link. A link works once: once the approval
    /// is resolved (by this link or any other way) it is refused like a
    /// forged one, even before it expires.
    pub async fn resolve_approval_by_link(
        &self,
        id: String,
        action: &str,
        exp: UnixSeconds,
        sig: &str,
        context: &RequestContext,
    ) -> ServiceResult<Approval> {
        let approved = self.check_approval_link(&id, "POST", action, exp, sig)?;
        match self
            .resolve_approval(id, approved, Resolver::SignedLink, context)
            .await
        {
            Err(ServiceError::Conflict(_) | ServiceError::NotFound(_)) => {
                Err(ServiceError::InvalidSignature)
            }
            other => other,
        }
    }

    /// Approves or denies, once; a second resolution is a conflict.
    pub async fn resolve_approval(
        &self,
        id: String,
        approved: bool,
        resolver: Resolver,
        context: &RequestContext,
    ) -> ServiceResult<Approval> {
        let now = self.clock.now();
        let ttl = self.config().approvals.ttl.as_secs() as i64;
        let origin = context.origin();
        self.store_write(move |txn| {
            let mut approval = txn
                .approval(&id)?
                .ok_or(ServiceError::NotFound("approval"))?;
            if is_expired(&approval, now, ttl) {
                expire(txn, approval, now, &origin)?;
                return Err(ServiceError::Conflict("the approval has expired".into()));
            }
            if approval.status != ApprovalStatus::Pending {
                return Err(ServiceError::Conflict(format!(
                    "the approval is already {}",
                    approval.status.as_str()
                )));
            }
            if approved {
                if let Some(user_id) = approval.subject_user_id {
                    if let Some(mut user) = txn.user(&user_id)? {
                        user.status = UserStatus::Active;
                        txn.put_user(&user)?;
                    }
                }
            } else {
                remove_pending_account(txn, &approval)?;
            }
            approval.status = if approved {
                ApprovalStatus::Approved
            } else {
                ApprovalStatus::Denied
            };
            approval.resolved_by = Some(resolver.name().to_owned());
            approval.resolved_at = Some(now);
            txn.put_approval(&approval)?;
            let mut record = AuditRecord::new(AuditKind::ApprovalResolved, now, &origin).details(
                serde_json::json!({
                    "approval_id": approval.id,
                    "approved": approved,
                    "resolved_by": resolver.name(),
                }),
            );
            if let Some(user) = approval.subject_user_id {
                record = record.user(user);
            }
            if let Some(org) = &approval.org_id {
                record = record.org(org);
            }
            txn.audit(record)?;
            Ok(approval)
        })
        .await
    }

    /// Expires every pending approval past `approvals.ttl` (housekeeping).
    pub async fn expire_approvals(&self) -> ServiceResult<usize> {
        let now = self.clock.now();
        let ttl = self.config().approvals.ttl.as_secs() as i64;
        // Most calls find nothing due: answer them from a read, without a commit.
        let any_due = self
            .store_read(move |txn| Ok(txn.approvals()?.iter().any(|a| is_expired(a, now, ttl))))
            .await?;
        if !any_due {
            return Ok(0);
        }
        self.store_write(move |txn| {
            let due: Vec<Approval> = txn
                .approvals()?
                .into_iter()
                .filter(|a| is_expired(a, now, ttl))
                .collect();
            let count = due.len();
            for approval in due {
                expire(txn, approval, now, &RequestOrigin::default())?;
            }
            Ok(count)
        })
        .await
    }
}
