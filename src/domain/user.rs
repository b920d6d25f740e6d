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
    /// An org admin disabled the user in this org only: the membership stays
    /// (so it can be lifted) but grants nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
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
    /// The argon2id PHC string; empty for an account without a password
    /// (it signs in with a passkey: see [`User::password_phc`]).
    pub password_hash: String,
    /// Earlier hashes, newest first, for `history_count`.
    #[serde(default)]
    pub password_history: Vec<String>,
    pub memberships: Vec<Membership>,
    #[serde(default)]
    pub status: UserStatus,
    /// Wrong passwords since the last right one (or the last lock's end).
    #[serde(default)]
    pub failed_logins: u32,
    /// Wrong second factors (TOTP, recovery or step-up codes) since the last
    /// right one: a correct password does not clear these, so knowing the
    /// password does not buy fresh guesses at the code.
    #[serde(default)]
    pub failed_second_factors: u32,
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

/// `locked_until` of an account the operator locked: until unlocked.
pub const LOCKED_BY_OPERATOR: UnixSeconds = UnixSeconds::MAX;

impl User {
    /// Whether the user's existing credentials (refresh tokens, PATs) still
    /// work. A brute-force lock does not stop them — it is there to stop
    /// guessing, and anyone can trigger it — but the operator's lock does.
    pub fn may_use_tokens(&self) -> bool {
        self.status == UserStatus::Active && self.locked_until != Some(LOCKED_BY_OPERATOR)
    }

    /// The password hash to verify against; `None` for an account without
    /// a password, which callers verify against the dummy hash instead so
    /// that it fails like a wrong password, in the same time.
    pub fn password_phc(&self) -> Option<String> {
        self.has_password().then(|| self.password_hash.clone())
    }

    pub fn has_password(&self) -> bool {
        !self.password_hash.is_empty()
    }

    pub fn is_locked(&self, now: UnixSeconds) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }

    /// The role the user holds in `org`, suspended or not: for managing the
    /// membership itself.
    pub fn role_in(&self, org: &OrgId) -> Option<&Role> {
        self.membership_in(org).map(|m| &m.role)
    }

    /// The role the user may act with in `org`: none while suspended there.
    pub fn active_role_in(&self, org: &OrgId) -> Option<&Role> {
        self.membership_in(org)
            .filter(|m| !m.suspended)
            .map(|m| &m.role)
    }

    pub fn membership_in(&self, org: &OrgId) -> Option<&Membership> {
        self.memberships.iter().find(|m| &m.org_id == org)
    }

    /// A lock that has run out no longer counts, and neither do the failures
    /// that led to it: otherwise one wrong guess per lock period would keep
    /// the account locked for ever.
    pub fn forget_expired_lock(&mut self, now: UnixSeconds) {
        if self.locked_until.is_some_and(|until| until <= now) {
            self.locked_until = None;
            self.failed_logins = 0;
            self.failed_second_factors = 0;
        }
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
