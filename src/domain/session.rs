//! A login session: what an access token's `sid` points at. Revoking it makes
//! every token of the session fail.

use serde::{Deserialize, Serialize};

use super::ids::{OrgId, SessionId, UserId};
use crate::clock::UnixSeconds;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub ip: String,
    pub user_agent: String,
    pub created_at: UnixSeconds,
    pub last_active: UnixSeconds,
    pub expires_at: UnixSeconds,
    pub mfa_verified: bool,
    #[serde(default)]
    pub revoked_at: Option<UnixSeconds>,
    /// The org requires MFA the user has not enrolled: only enrollment is allowed.
    #[serde(default)]
    pub enrollment_only: bool,
    /// A browser session: SHA-256 (hex) of its cookie's secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_digest: Option<String>,
    /// An app's session, begun through `/oauth/authorize` or the device
    /// grant: its tokens are that client's, and it lives beside (not
    /// inside) the person's own sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// How the person proved who they are (RFC 8176 values: `pwd`, `otp`,
    /// `hwk`, `mfa`), for an ID token's `amr`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// When the person last authenticated, if not when the session began
    /// (an app's session inherits it from the sign-in it came from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<UnixSeconds>,
}

impl Session {
    pub fn is_live(&self, now: UnixSeconds) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }

    pub fn authenticated_at(&self) -> UnixSeconds {
        self.auth_time.unwrap_or(self.created_at)
    }
}
