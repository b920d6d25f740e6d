//! The records the store keeps beside the domain types: signing keys,
//! refresh tokens, approvals, PATs, second factors, challenges and WebAuthn
//! ceremonies — plain data, no rules — and the audit log's query.

use serde::{Deserialize, Serialize};

use crate::audit::AuditKind;
use crate::clock::UnixSeconds;
use crate::domain::{OrgId, SessionId, UserId};

/// A signing key as kept in the database (its private key sealed).
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredSigningKey {
    pub key: crate::crypto::jwt::StoredKeyPair,
    /// When it stopped signing; it stays published until `retire_after`.
    pub rotated_out_at: Option<UnixSeconds>,
    /// After this instant no token it signed can still be valid.
    pub retire_after: Option<UnixSeconds>,
}

/// An issued refresh token, keyed by its SHA-256. A family is the chain of
/// tokens issued from one login; it lives and dies with its session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshToken {
    pub family_id: String,
    pub session_id: SessionId,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub issued_at: UnixSeconds,
    pub expires_at: UnixSeconds,
    /// Set when it was exchanged; a second exchange is a replay.
    pub used_at: Option<UnixSeconds>,
    #[serde(default)]
    pub used_by_ip: Option<String>,
    /// What the login asked for (`openid` brings an ID token on refresh too).
    #[serde(default)]
    pub scope: Option<String>,
    /// The audience of ID tokens of this family.
    #[serde(default)]
    pub client_id: Option<String>,
    /// When the user actually authenticated (the ID token's `auth_time`).
    #[serde(default)]
    pub auth_time: UnixSeconds,
}

/// Something waiting for an operator's yes or no.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub kind: crate::domain::ApprovalKind,
    pub subject_user_id: Option<UserId>,
    pub org_id: Option<OrgId>,
    #[serde(with = "crate::clock::as_rfc3339")]
    pub requested_at: UnixSeconds,
    pub requested_by_ip: Option<String>,
    pub requested_by_user_agent: Option<String>,
    pub status: crate::domain::ApprovalStatus,
    pub resolved_by: Option<String>,
    #[serde(with = "crate::clock::as_rfc3339_option", default)]
    pub resolved_at: Option<UnixSeconds>,
}

/// A personal access token, keyed by the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonalAccessToken {
    pub id: String,
    pub name: String,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub scopes: Vec<crate::domain::Scope>,
    pub created_at: UnixSeconds,
    pub expires_at: UnixSeconds,
    pub last_used_at: Option<UnixSeconds>,
}

/// A user's second factors. The TOTP seed is sealed (see `crypto::sealed`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MfaFactors {
    /// The active TOTP seed, sealed.
    pub totp_sealed: Option<Vec<u8>>,
    /// A seed being enrolled, not yet confirmed by a code.
    pub pending_totp_sealed: Option<Vec<u8>>,
    /// The last time step whose code was accepted: a code is good once.
    pub totp_last_step: u64,
    /// SHA-256 (hex) of each unused recovery code.
    pub recovery_code_hashes: Vec<String>,
    pub enrolled_at: Option<UnixSeconds>,
}

/// The state between a password and a second factor, keyed by the SHA-256
/// of its `mfa_token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MfaChallenge {
    pub user_id: UserId,
    pub org_id: OrgId,
    pub expires_at: UnixSeconds,
    pub failures: u32,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub nonce: Option<String>,
    /// The WebAuthn assertion state once `/mfa/webauthn/options` was asked.
    #[serde(default)]
    pub webauthn_state: Option<String>,
    /// `social:NAME` when the first factor was an upstream provider.
    #[serde(default)]
    pub method: Option<String>,
}

/// A registered WebAuthn credential. `key` is the relying-party crate's
/// serialised credential (public key, counter, flags); the name and dates
/// are ours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebauthnCredential {
    /// The credential id, base64url.
    pub id: String,
    pub user_id: UserId,
    /// A second factor, or a passkey that also signs in alone. Records
    /// written before passkeys existed are security keys.
    #[serde(default)]
    pub kind: WebauthnKind,
    pub name: String,
    pub created_at: UnixSeconds,
    pub last_used_at: Option<UnixSeconds>,
    pub key: String,
}

/// What a WebAuthn credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebauthnKind {
    /// A second factor after the password (user verification preferred).
    #[default]
    SecurityKey,
    /// A discoverable credential with user verification: signs in alone
    /// (and also answers the second-factor step).
    Passkey,
}

/// A registration ceremony between its options and its answer (or an
/// enrollment link, see [`CeremonyKind`]): used once, until `expires_at`. (Passkey sign-ins are anonymous until answered and
/// wait in memory instead: `service::passkey_login`.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebauthnCeremony {
    pub user_id: UserId,
    #[serde(default)]
    pub kind: CeremonyKind,
    pub state: String,
    pub expires_at: UnixSeconds,
}

/// Which registration a [`WebauthnCeremony`] holds the state of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CeremonyKind {
    #[default]
    SecurityKey,
    Passkey,
    /// Not a ceremony but what starts one: an operator's single-use link
    /// for adding a passkey, kept under `link/<SHA-256 of its token>` with
    /// an empty `state` until used or expired.
    EnrollmentLink,
}

/// A code `/oauth/authorize` gave an app, keyed by its SHA-256: good once,
/// for a minute, for that client, redirect URI and PKCE verifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationCode {
    pub client_id: String,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    /// The S256 challenge (base64url of SHA-256 of the verifier).
    pub code_challenge: Option<String>,
    pub auth_time: UnixSeconds,
    pub amr: Vec<String>,
    pub mfa_verified: bool,
    pub expires_at: UnixSeconds,
    /// The app session its exchange began; a second exchange ends it.
    pub exchanged_for: Option<SessionId>,
}

/// What a person allowed an app to have, remembered per client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    pub user_id: UserId,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub granted_at: UnixSeconds,
}

/// Where a device authorization (RFC 8628) stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DeviceStatus {
    Pending,
    Approved {
        user_id: UserId,
        org_id: OrgId,
        auth_time: UnixSeconds,
        amr: Vec<String>,
        mfa_verified: bool,
    },
    Denied,
    /// Tokens were issued; the device code is good for nothing more.
    Spent,
}

/// A device authorization, keyed by the SHA-256 of its device code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceAuthorization {
    pub client_id: String,
    pub user_code: String,
    pub scopes: Vec<String>,
    pub expires_at: UnixSeconds,
    /// Seconds the device must wait between polls; grows on `slow_down`.
    pub interval: u64,
    pub last_polled_at: Option<UnixSeconds>,
    #[serde(flatten)]
    pub status: DeviceStatus,
}

/// Filters for the audit log; all optional.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub kind: Option<AuditKind>,
    pub user: Option<UserId>,
    pub org: Option<OrgId>,
    pub since: Option<UnixSeconds>,
    pub until: Option<UnixSeconds>,
    /// Return events older than this id (the previous page's `next_cursor`).
    pub cursor: Option<String>,
    pub limit: usize,
}

/// What a recovery token is good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryPurpose {
    PasswordReset,
    EmailVerification,
}

/// A password-reset or email-verification link, keyed by the SHA-256 of
/// its token: the token itself is never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryToken {
    pub user_id: UserId,
    pub purpose: RecoveryPurpose,
    pub expires_at: UnixSeconds,
    /// SHA-256 (hex) of the user's password hash when the link was made: a
    /// reset link dies with any change of the password.
    pub password_digest: String,
    /// The address a verification link was sent to: it proves only that one.
    pub email: String,
    /// `mail` or `operator`.
    pub issued_by: String,
}
