//! An org: a tenant with its own registration mode, MFA policy and password
//! policy. The `default` org exists from the first start.

use serde::{Deserialize, Serialize};

use super::ids::OrgId;
use super::password_policy::PasswordPolicy;
use crate::clock::UnixSeconds;

pub const DEFAULT_ORG_SLUG: &str = "default";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationMode {
    #[default]
    Open,
    Approval,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MfaPolicy {
    #[default]
    Optional,
    Encouraged,
    Required,
    RequiredForAdmins,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Org {
    pub id: OrgId,
    pub slug: String,
    pub name: String,
    pub registration: RegistrationMode,
    pub mfa_policy: MfaPolicy,
    pub password_policy: PasswordPolicy,
    pub max_sessions_per_user: Option<u32>,
    /// Accounts may have passkeys and no password (made by the operator,
    /// who hands out an enrollment link). Off unless turned on.
    #[serde(default)]
    pub allow_passwordless: bool,
    #[serde(with = "crate::clock::as_rfc3339")]
    pub created_at: UnixSeconds,
}

impl MfaPolicy {
    /// Whether a user with `role` must have a second factor to use the org.
    pub fn requires_mfa_for(self, role: Option<&super::Role>) -> bool {
        match self {
            MfaPolicy::Required => true,
            MfaPolicy::RequiredForAdmins => role.is_some_and(super::Role::is_admin),
            MfaPolicy::Optional | MfaPolicy::Encouraged => false,
        }
    }
}

/// Slugs are what people type in URLs and bodies: short, lowercase, plain.
pub fn slug_is_valid(slug: &str) -> bool {
    (1..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !slug.starts_with('-')
        && !slug.starts_with("org_")
}

#[cfg(test)]
mod tests {
    use super::slug_is_valid;

    #[test]
    fn slugs_are_short_lowercase_and_never_look_like_ids() {
        for good in ["default", "home-lab", "team_2"] {
            assert!(slug_is_valid(good), "{good}");
        }
        for bad in ["", "Home", "a b", "org_01H", "-x", &"x".repeat(64)] {
            assert!(!slug_is_valid(bad), "{bad}");
        }
    }
}
