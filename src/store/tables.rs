//! Every redb table authd keeps, in one place, and the JSON codec for the
//! records in them. Keys are strings; values are JSON documents so that a
//! migration can read an older record shape with `#[serde(default)]`.
//!
//! Composite keys join their parts with `/`, which none of the parts (ids,
//! normalised emails, ULIDs, hex digests) can contain, so a prefix scan over
//! `"<first part>/"` finds exactly the rows of that first part.

use redb::{ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{StoreError, StoreResult};

pub(crate) type JsonTable = TableDefinition<'static, &'static str, &'static [u8]>;

/// Schema version, instance id, creation time, the active signing key id.
pub(crate) const META: JsonTable = TableDefinition::new("meta");
/// `org_id` → `Org`.
pub(crate) const ORGS: JsonTable = TableDefinition::new("orgs");
/// `slug` → `org_id`.
pub(crate) const ORG_SLUGS: JsonTable = TableDefinition::new("org_slugs");
/// `user_id` → `User` (with memberships and lockout state).
pub(crate) const USERS: JsonTable = TableDefinition::new("users");
/// `org_id/email` → `user_id`: an email is unique within an org.
pub(crate) const USER_EMAILS: JsonTable = TableDefinition::new("user_emails");
/// `org_id/user_id` → role: the members of an org, for listing.
pub(crate) const ORG_MEMBERS: JsonTable = TableDefinition::new("org_members");
/// `session_id` → `Session`.
pub(crate) const SESSIONS: JsonTable = TableDefinition::new("sessions");
/// `user_id/session_id` → expires_at, for the sessions not revoked. A
/// revoked session stays in `sessions` until its sweep, but not here: each
/// sign-in reads its user's sessions to apply the cap, and a user signing
/// in again and again would otherwise make every sign-in read all the
/// sessions they ever ended (the soak found the writer's time growing so).
pub(crate) const USER_SESSIONS: JsonTable = TableDefinition::new("user_sessions");
/// SHA-256 (hex) of a refresh token → `RefreshToken`. The token itself is never stored.
pub(crate) const REFRESH_TOKENS: JsonTable = TableDefinition::new("refresh_tokens");
/// `kid` → `StoredSigningKey`.
pub(crate) const SIGNING_KEYS: JsonTable = TableDefinition::new("signing_keys");
/// ULID → `AuditRecord`, append-only and time-ordered.
pub(crate) const AUDIT: JsonTable = TableDefinition::new("audit");
/// `user_id/ULID` → null: the audit events of one user.
pub(crate) const AUDIT_BY_USER: JsonTable = TableDefinition::new("audit_by_user");
/// `approval_id` → `Approval`.
pub(crate) const APPROVALS: JsonTable = TableDefinition::new("approvals");
/// SHA-256 (hex) of a personal access token → `PersonalAccessToken`.
pub(crate) const PATS: JsonTable = TableDefinition::new("pats");
/// `pat_id` → SHA-256 (hex) of the token, to find a token by its public id.
pub(crate) const PAT_IDS: JsonTable = TableDefinition::new("pat_ids");
/// `user_id/pat_id` → null: the tokens of one user.
pub(crate) const USER_PATS: JsonTable = TableDefinition::new("user_pats");
/// `<kind>/<due at, 20 digits>/<key>` → null, for every session, refresh
/// token and PAT: when the housekeeping sweep is to remove it (`sweep`).
pub(crate) const SWEEP_DUE: JsonTable = TableDefinition::new("sweep_due");
/// `user_id` → `MfaFactors` (sealed TOTP seed, recovery-code hashes).
pub(crate) const MFA_FACTORS: JsonTable = TableDefinition::new("mfa_factors");
/// SHA-256 (hex) of an mfa_token → `MfaChallenge`.
pub(crate) const MFA_CHALLENGES: JsonTable = TableDefinition::new("mfa_challenges");
/// `user_id/credential_id` → `WebauthnCredential`.
pub(crate) const WEBAUTHN_CREDENTIALS: JsonTable = TableDefinition::new("webauthn_credentials");
/// `ceremony_id` → `WebauthnCeremony`: a registration between its two calls;
/// `link/<SHA-256 (hex) of a token>` → a passkey enrollment link until used.
pub(crate) const WEBAUTHN_CEREMONIES: JsonTable = TableDefinition::new("webauthn_ceremonies");
/// `client_id` → `OAuthClient`.
pub(crate) const OAUTH_CLIENTS: JsonTable = TableDefinition::new("oauth_clients");
/// SHA-256 (hex) of an authorization code → `AuthorizationCode`, kept a
/// while past its use so that a second use is seen as the replay it is.
pub(crate) const AUTHORIZATION_CODES: JsonTable = TableDefinition::new("authorization_codes");
/// `user_id/client_id` → `Consent`: what a person allowed an app.
pub(crate) const CONSENTS: JsonTable = TableDefinition::new("consents");
/// SHA-256 (hex) of a device code → `DeviceAuthorization`.
pub(crate) const DEVICE_AUTHORIZATIONS: JsonTable = TableDefinition::new("device_authorizations");
/// user code → SHA-256 (hex) of its device code.
pub(crate) const DEVICE_USER_CODES: JsonTable = TableDefinition::new("device_user_codes");
/// SHA-256 (hex) of a recovery or verification token → `RecoveryToken`:
/// good once, until it expires or (for a reset) the password changes.
pub(crate) const RECOVERY_TOKENS: JsonTable = TableDefinition::new("recovery_tokens");

/// Upstream sign-in provider name → `Provider` (secrets sealed).
pub(crate) const PROVIDERS: JsonTable = TableDefinition::new("providers");
/// `provider/subject` → `Identity`: who a provider's account is here.
pub(crate) const IDENTITIES: JsonTable = TableDefinition::new("identities");
/// `user_id/identity_id` → `provider/subject`: the identities of one user.
pub(crate) const USER_IDENTITIES: JsonTable = TableDefinition::new("user_identities");

/// Every table that exists at the current schema version, for backups.
pub(crate) const ALL_TABLES: &[JsonTable] = &[
    META,
    ORGS,
    ORG_SLUGS,
    USERS,
    USER_EMAILS,
    ORG_MEMBERS,
    SESSIONS,
    USER_SESSIONS,
    REFRESH_TOKENS,
    SIGNING_KEYS,
    AUDIT,
    AUDIT_BY_USER,
    APPROVALS,
    PATS,
    PAT_IDS,
    USER_PATS,
    SWEEP_DUE,
    MFA_FACTORS,
    MFA_CHALLENGES,
    WEBAUTHN_CREDENTIALS,
    WEBAUTHN_CEREMONIES,
    OAUTH_CLIENTS,
    AUTHORIZATION_CODES,
    CONSENTS,
    DEVICE_AUTHORIZATIONS,
    DEVICE_USER_CODES,
    RECOVERY_TOKENS,
    PROVIDERS,
    IDENTITIES,
    USER_IDENTITIES,
];

/// The tables an ordinary request reads, hottest first: what
/// `Store::warm_cache` loads after a start.
pub(crate) const REQUEST_PATH_TABLES: &[JsonTable] = &[
    META,
    SIGNING_KEYS,
    ORGS,
    ORG_SLUGS,
    USERS,
    USER_EMAILS,
    PATS,
    SESSIONS,
    REFRESH_TOKENS,
    MFA_FACTORS,
    WEBAUTHN_CREDENTIALS,
    USER_SESSIONS,
    USER_PATS,
    PAT_IDS,
    ORG_MEMBERS,
    OAUTH_CLIENTS,
];

pub(crate) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupt {
        key: key.to_owned(),
        message: error.to_string(),
    })
}

pub(crate) fn read_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> StoreResult<Option<T>> {
    match table.get(key)? {
        None => Ok(None),
        Some(guard) => decode(key, guard.value()).map(Some),
    }
}

pub(crate) fn encode<T: Serialize>(key: &str, value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|error| StoreError::Corrupt {
        key: key.to_owned(),
        message: error.to_string(),
    })
}

pub(crate) fn write_json<T: Serialize>(
    table: &mut redb::Table<&'static str, &'static [u8]>,
    key: &str,
    value: &T,
) -> StoreResult<()> {
    table.insert(key, encode(key, value)?.as_slice())?;
    Ok(())
}

/// Up to `limit` rows whose key starts with `prefix`, after `after` (a full
/// key, exclusive) if given, in key order.
pub(crate) fn scan_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> StoreResult<Vec<(String, T)>> {
    let mut rows = Vec::new();
    let start = match after {
        Some(after) if after >= prefix => after,
        _ => prefix,
    };
    for entry in table.range(start..)? {
        let (key, value) = entry?;
        let key = key.value();
        if Some(key) == after {
            continue;
        }
        if !key.starts_with(prefix) {
            break;
        }
        rows.push((key.to_owned(), decode(key, value.value())?));
        if rows.len() >= limit {
            break;
        }
    }
    Ok(rows)
}
