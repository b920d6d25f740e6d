//! A user: one email within an org, a password hash with its history, the
//! orgs they belong to and the lockout state that brute-force defence keeps.

use serde::{Deserialize, Serialize};

use super::email::Email;
use super::ids::{OrgId, UserId};
use crate::clock::UnixSeconds;

/// A role name: `admin`, `member`, or a custom one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Role(String);

impl Role {
    pub fn admin() -> Self {
        Self("admin".to_owned())
    }

    pub fn member() -> Self {
        Self("member".to_owned())
    }

    /// Custom roles are allowed; they are short identifiers.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = (1..=32).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        valid.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_admin(&self) -> bool {
        self.0 == "admin"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub org_id: OrgId,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    #[default]
    Active,
    /// Signed up in an `approval` org and not yet approved: cannot log in.
    PendingApproval,
    Disabled,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: Option<String>,
    pub password_hash: String,
    /// Earlier hashes, newest first, for `history_count`.
    #[serde(default)]
    pub password_history: Vec<String>,
    pub memberships: Vec<Membership>,
    #[serde(default)]
    pub status: UserStatus,
    #[serde(default)]
    pub failed_logins: u32,
    #[serde(default)]
    pub locked_until: Option<UnixSeconds>,
    #[serde(default)]
    pub mfa_enrolled: bool,
    /// Whether the email was proven to be the user's; self-registration does
    /// not prove it. Absent from records written before it existed: false.
    #[serde(default)]
    pub email_verified: bool,
    pub created_at: UnixSeconds,
    #[serde(default)]
    pub password_changed_at: Option<UnixSeconds>,
}

impl User {
    pub fn is_locked(&self, now: UnixSeconds) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }

    pub fn role_in(&self, org: &OrgId) -> Option<&Role> {
        self.memberships
            .iter()
            .find(|m| &m.org_id == org)
            .map(|m| &m.role)
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("memberships", &self.memberships)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}
