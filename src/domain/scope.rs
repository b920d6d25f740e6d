//! The scopes a personal access token can carry (README: "Control-plane API"), and which of them
//! each role may grant.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::user::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "users.read")]
    UsersRead,
    #[serde(rename = "users.write")]
    UsersWrite,
    #[serde(rename = "sessions.read")]
    SessionsRead,
    #[serde(rename = "sessions.write")]
    SessionsWrite,
    #[serde(rename = "audit.read")]
    AuditRead,
    #[serde(rename = "tokens.read")]
    TokensRead,
    #[serde(rename = "tokens.write")]
    TokensWrite,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::UsersRead,
        Scope::UsersWrite,
        Scope::SessionsRead,
        Scope::SessionsWrite,
        Scope::AuditRead,
        Scope::TokensRead,
        Scope::TokensWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::UsersRead => "users.read",
            Scope::UsersWrite => "users.write",
            Scope::SessionsRead => "sessions.read",
            Scope::SessionsWrite => "sessions.write",
            Scope::AuditRead => "audit.read",
            Scope::TokensRead => "tokens.read",
            Scope::TokensWrite => "tokens.write",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }

    /// Admins may grant every scope. Everyone else manages only their own
    /// sessions and tokens; the org's users and audit log are for admins.
    pub fn grantable_by(self, role: &Role) -> bool {
        role.is_admin()
            || matches!(
                self,
                Scope::SessionsRead | Scope::SessionsWrite | Scope::TokensRead | Scope::TokensWrite
            )
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_round_trips_through_its_name() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            assert_eq!(serde_json::to_value(scope).expect("json"), scope.as_str());
        }
        assert_eq!(Scope::parse("users.delete"), None);
    }

    #[test]
    fn members_grant_only_their_own_sessions_and_tokens() {
        let member = Role::member();
        let granted: Vec<Scope> = Scope::ALL
            .into_iter()
            .filter(|s| s.grantable_by(&member))
            .collect();
        assert_eq!(
            granted,
            [
                Scope::SessionsRead,
                Scope::SessionsWrite,
                Scope::TokensRead,
                Scope::TokensWrite
            ]
        );
        assert!(Scope::ALL.iter().all(|s| s.grantable_by(&Role::admin())));
    }
}
