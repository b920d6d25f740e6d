//! The nouns of authd, parsed once at the edge: ids, emails, names, roles,
//! orgs, users, sessions and their policies. Plain data with serde; no I/O.

pub mod approval;
pub mod client;
pub mod common_passwords;
pub mod email;
pub mod forward_auth;
pub mod ids;
pub mod name;
pub mod org;
pub mod password_policy;
pub mod provider;
pub mod scope;
pub mod session;
pub mod user;

pub use approval::{ApprovalKind, ApprovalStatus};
pub use client::{ClientKind, ConsentMode, GrantType, OAuthClient};
pub use email::Email;
pub use ids::{OrgId, SessionId, UserId};
pub use name::{check_name, NameError};
pub use org::{MfaPolicy, Org, RegistrationMode};
pub use password_policy::PasswordPolicy;
pub use scope::Scope;
pub use session::Session;
pub use user::{Membership, Role, User};

/// A password as typed by a person: never printed.
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn new(text: String) -> Self {
        Self(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}
