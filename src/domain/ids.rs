//! Identifiers: users and sessions are UUIDs (as the README's "Tokens" says), orgs are
//! `org_<ULID>` so they sort by creation and read as what they are.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub uuid::Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub uuid::Uuid);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrgId(String);

impl UserId {
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    pub fn parse(text: &str) -> Option<Self> {
        uuid::Uuid::parse_str(text).ok().map(Self)
    }
}

impl SessionId {
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    pub fn parse(text: &str) -> Option<Self> {
        uuid::Uuid::parse_str(text).ok().map(Self)
    }
}

impl OrgId {
    pub fn random() -> Self {
        Self(format!("org_{}", ulid::Ulid::new()))
    }

    /// Accepts only the `org_<ULID>` shape; anything else is a slug.
    pub fn parse(text: &str) -> Option<Self> {
        let ulid = text.strip_prefix("org_")?;
        ulid::Ulid::from_string(ulid).ok()?;
        Some(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_ids_are_prefixed_ulids_and_slugs_are_not_ids() {
        let id = OrgId::random();
        assert!(id.as_str().starts_with("org_"));
        assert_eq!(OrgId::parse(id.as_str()), Some(id));
        assert_eq!(OrgId::parse("default"), None);
        assert_eq!(OrgId::parse("org_not-a-ulid"), None);
    }
}
