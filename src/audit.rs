//! The audit trail: a closed set of event kinds and the record written for
//! each, in the same transaction as the change it describes. Records never
//! carry a password, token, secret or code — only who, what, when, from where
//! and why.

use serde::{Deserialize, Serialize};

use crate::clock::UnixSeconds;
use crate::domain::{OrgId, UserId};

/// Declares [`AuditKind`] with each kind's wire name once, and from that
/// the list of every kind (`AuditKind::ALL`) the UI is served, so the two
/// can never drift.
macro_rules! audit_kinds {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, )*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum AuditKind {
            $( $(#[$doc])* #[serde(rename = $name)] $variant, )*
        }

        impl AuditKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [AuditKind] = &[$(AuditKind::$variant,)*];

            /// The wire name, e.g. `user.login`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(AuditKind::$variant => $name,)*
                }
            }
        }
    };
}

audit_kinds! {
    UserCreated = "user.created",
    UserUpdated = "user.updated",
    UserDeleted = "user.deleted",
    UserLogin = "user.login",
    UserLoginFailed = "user.login_failed",
    /// An org admin disabled a member in their org only.
    MembershipSuspended = "membership.suspended",
    MembershipRestored = "membership.restored",
    UserLocked = "user.locked",
    UserUnlocked = "user.unlocked",
    UserRegistrationPending = "user.registration_pending",
    PasswordChanged = "password.changed",
    /// A password set again through a recovery link (mailed or the operator's).
    UserPasswordReset = "user.password_reset",
    /// The operator made a recovery link for a user (never the link itself).
    RecoveryLinkCreated = "user.recovery_link_created",
    /// A user followed an email-verification link.
    UserEmailVerified = "user.email_verified",
    /// A recovery or verification mail reached the relay.
    EmailSent = "email.sent",
    /// A mail attempt failed (with `final` once given up).
    EmailFailed = "email.failed",
    SessionRevoked = "session.revoked",
    OrgCreated = "org.created",
    OrgUpdated = "org.updated",
    OrgDeleted = "org.deleted",
    MembershipChanged = "membership.changed",
    ApprovalCreated = "approval.created",
    ApprovalResolved = "approval.resolved",
    ApprovalExpired = "approval.expired",
    KeyCreated = "key.created",
    KeyRotated = "key.rotated",
    KeyRetired = "key.retired",
    /// Dropped at once by the operator (compromise), whatever its window.
    KeyRevoked = "key.revoked",
    /// Keys an earlier version stored in clear were sealed at start.
    KeySealed = "key.sealed",
    TokenRefreshed = "token.refreshed",
    TokenReplayDetected = "token.replay_detected",
    TokenRevoked = "token.revoked",
    SessionLogout = "session.logout",
    PatCreated = "pat.created",
    PatRevoked = "pat.revoked",
    PatUsed = "pat.used",
    MfaEnrolled = "mfa.enrolled",
    MfaDisabled = "mfa.disabled",
    MfaChallengeFailed = "mfa.challenge_failed",
    /// A wrong password or code where a signed-in user had to prove it
    /// is them before changing their credentials.
    StepUpFailed = "step_up.failed",
    MfaRecoveryCodeUsed = "mfa.recovery_code_used",
    MfaRecoveryCodesRegenerated = "mfa.recovery_codes_regenerated",
    WebauthnRegistered = "webauthn.registered",
    WebauthnRenamed = "webauthn.renamed",
    WebauthnRemoved = "webauthn.removed",
    /// The operator made a single-use link for a person to add a passkey.
    PasskeyLinkIssued = "passkey.link_issued",
    WebhookDelivered = "webhook.delivered",
    WebhookFailed = "webhook.failed",
    UserMfaReset = "user.mfa_reset",
    AuditPruned = "audit.pruned",
    ClientCreated = "client.created",
    ClientUpdated = "client.updated",
    ClientDeleted = "client.deleted",
    ClientSecretRotated = "client.secret_rotated",
    ConsentGiven = "consent.given",
    ConsentRevoked = "consent.revoked",
    /// An authorization code became tokens.
    CodeExchanged = "oauth.code_exchanged",
    /// A spent authorization code came back; what it issued was ended.
    CodeReplayed = "oauth.code_replayed",
    DeviceApproved = "oauth.device_approved",
    DeviceDenied = "oauth.device_denied",
    /// An upstream provider's identity was linked to an account.
    IdentityLinked = "identity.linked",
    IdentityUnlinked = "identity.unlinked",
    /// A sign-in through an upstream provider failed (with the provider's
    /// error, never its codes or tokens).
    SocialLoginFailed = "social.login_failed",
    ProviderCreated = "provider.created",
    ProviderUpdated = "provider.updated",
    ProviderDeleted = "provider.deleted",
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
    #[serde(with = "crate::clock::as_rfc3339")]
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

#[cfg(test)]
mod kind_tests {
    use super::AuditKind;

    #[test]
    fn every_kind_is_listed_once_under_its_wire_name() {
        let mut names: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
        for kind in AuditKind::ALL {
            let json = serde_json::to_string(kind).expect("json");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), AuditKind::ALL.len(), "no name twice");
    }
}
