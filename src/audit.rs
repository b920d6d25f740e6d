//! The audit trail: a closed set of event kinds and the record written for
//! each, in the same transaction as the change it describes. Records never
//! carry a password, token, secret or code — only who, what, when, from where
//! and why.

use serde::{Deserialize, Serialize};

use crate::clock::UnixSeconds;
use crate::domain::{OrgId, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditKind {
    #[serde(rename = "user.created")]
    UserCreated,
    #[serde(rename = "user.updated")]
    UserUpdated,
    #[serde(rename = "user.deleted")]
    UserDeleted,
    #[serde(rename = "user.login")]
    UserLogin,
    #[serde(rename = "user.login_failed")]
    UserLoginFailed,
    /// An org admin disabled a member in their org only.
    #[serde(rename = "membership.suspended")]
    MembershipSuspended,
    #[serde(rename = "membership.restored")]
    MembershipRestored,
    #[serde(rename = "user.locked")]
    UserLocked,
    #[serde(rename = "user.unlocked")]
    UserUnlocked,
    #[serde(rename = "user.registration_pending")]
    UserRegistrationPending,
    #[serde(rename = "password.changed")]
    PasswordChanged,
    #[serde(rename = "session.revoked")]
    SessionRevoked,
    #[serde(rename = "org.created")]
    OrgCreated,
    #[serde(rename = "org.updated")]
    OrgUpdated,
    #[serde(rename = "org.deleted")]
    OrgDeleted,
    #[serde(rename = "membership.changed")]
    MembershipChanged,
    #[serde(rename = "approval.created")]
    ApprovalCreated,
    #[serde(rename = "approval.resolved")]
    ApprovalResolved,
    #[serde(rename = "approval.expired")]
    ApprovalExpired,
    #[serde(rename = "key.created")]
    KeyCreated,
    #[serde(rename = "key.rotated")]
    KeyRotated,
    #[serde(rename = "key.retired")]
    KeyRetired,
    /// Dropped at once by the operator (compromise), whatever its window.
    #[serde(rename = "key.revoked")]
    KeyRevoked,
    /// Keys an earlier version stored in clear were sealed at start.
    #[serde(rename = "key.sealed")]
    KeySealed,
    #[serde(rename = "token.refreshed")]
    TokenRefreshed,
    #[serde(rename = "token.replay_detected")]
    TokenReplayDetected,
    #[serde(rename = "token.revoked")]
    TokenRevoked,
    #[serde(rename = "session.logout")]
    SessionLogout,
    #[serde(rename = "pat.created")]
    PatCreated,
    #[serde(rename = "pat.revoked")]
    PatRevoked,
    #[serde(rename = "pat.used")]
    PatUsed,
    #[serde(rename = "mfa.enrolled")]
    MfaEnrolled,
    #[serde(rename = "mfa.disabled")]
    MfaDisabled,
    #[serde(rename = "mfa.challenge_failed")]
    MfaChallengeFailed,
    /// A wrong password or code where a signed-in user had to prove it
    /// is them before changing their credentials.
    #[serde(rename = "step_up.failed")]
    StepUpFailed,
    #[serde(rename = "mfa.recovery_code_used")]
    MfaRecoveryCodeUsed,
    #[serde(rename = "mfa.recovery_codes_regenerated")]
    MfaRecoveryCodesRegenerated,
    #[serde(rename = "webauthn.registered")]
    WebauthnRegistered,
    #[serde(rename = "webauthn.renamed")]
    WebauthnRenamed,
    #[serde(rename = "webauthn.removed")]
    WebauthnRemoved,
    #[serde(rename = "webhook.delivered")]
    WebhookDelivered,
    #[serde(rename = "webhook.failed")]
    WebhookFailed,
    #[serde(rename = "user.mfa_reset")]
    UserMfaReset,
    #[serde(rename = "audit.pruned")]
    AuditPruned,
}

/// Who did it and from where; `None` fields were not known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestOrigin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// A ULID: unique and ordered by commit time, so it doubles as the cursor.
    pub id: String,
    pub at: UnixSeconds,
    #[serde(rename = "type")]
    pub kind: AuditKind,
    pub org_id: Option<OrgId>,
    pub user_id: Option<UserId>,
    #[serde(flatten)]
    pub origin: RequestOrigin,
    /// A short machine-readable why: `bad_password`, `unknown_email`, …
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

impl AuditRecord {
    pub fn new(kind: AuditKind, at: UnixSeconds, origin: &RequestOrigin) -> Self {
        Self {
            // Assigned when the record is written; see `WriteTxn::audit`.
            id: String::new(),
            at,
            kind,
            org_id: None,
            user_id: None,
            origin: origin.clone(),
            reason: None,
            details: serde_json::Value::Null,
        }
    }

    pub fn org(mut self, org: &OrgId) -> Self {
        self.org_id = Some(org.clone());
        self
    }

    /// The org when there is one (a user-level change may have none).
    pub fn org_if_any(mut self, org: Option<&OrgId>) -> Self {
        self.org_id = org.cloned();
        self
    }

    pub fn user(mut self, user: UserId) -> Self {
        self.user_id = Some(user);
        self
    }

    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// The ULID prefix of the first possible id at `at`, for time-range queries.
pub fn cursor_at(at: UnixSeconds) -> String {
    let millis = u64::try_from(at).unwrap_or(0).saturating_mul(1000);
    ulid::Ulid::from_parts(millis, 0).to_string()
}
