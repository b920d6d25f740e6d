//! Transactions as the service layer sees them: [`Queries`] (typed reads,
//! available in both kinds) and [`WriteTxn`] (typed writes that keep every
//! index in step with its record, plus audit records committed with them).

use std::sync::Arc;

use redb::{ReadableTable, TableHandle};
use serde::Serialize;

use super::due::{due_key, session_due_key, Sweep};
use super::error::StoreResult;
use super::postgres::PgConn;
use super::reader::{ReaderInner, TableReader};
use super::records::*;
use super::tables::*;
use crate::audit::AuditRecord;
use crate::clock::UnixSeconds;
use crate::domain::provider::{Identity, Provider};
use crate::domain::{Email, OAuthClient, Org, OrgId, Role, Session, SessionId, User, UserId};

/// `provider/subject`. A subject may contain `/` (it is the provider's
/// string); it comes last, so the key stays unambiguous.
fn identity_key(provider: &str, subject: &str) -> String {
    format!("{provider}/{subject}")
}

fn email_key(org: &OrgId, email: &Email) -> String {
    format!("{org}/{}", email.as_str())
}

/// Typed reads, the same in read and write transactions.
pub trait Queries {
    fn reader(&self) -> TableReader<'_>;

    fn org(&self, id: &OrgId) -> StoreResult<Option<Org>> {
        self.reader().get(ORGS, id.as_str())
    }

    fn org_by_slug(&self, slug: &str) -> StoreResult<Option<Org>> {
        match self.reader().get::<OrgId>(ORG_SLUGS, slug)? {
            Some(id) => self.org(&id),
            None => Ok(None),
        }
    }

    /// Orgs in id order (creation order), after `cursor`.
    fn orgs(&self, cursor: Option<&str>, limit: usize) -> StoreResult<Vec<Org>> {
        Ok(self
            .reader()
            .scan::<Org>(ORGS, "", cursor, limit)?
            .into_iter()
            .map(|(_, org)| org)
            .collect())
    }

    /// One `meta` value (schema version, instance id, …).
    fn meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> StoreResult<Option<T>> {
        self.reader().get(META, key)
    }

    /// How many rows `table` holds.
    fn count_rows(&self, table: JsonTable) -> StoreResult<u64> {
        self.reader().count(table)
    }

    /// Every row of `table` as stored (key and JSON bytes), in key order.
    fn each_raw_row(
        &self,
        table: JsonTable,
        visit: impl FnMut(&str, &[u8]) -> StoreResult<()>,
    ) -> StoreResult<()> {
        self.reader().each_raw(table, visit)
    }

    fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        self.reader().get_memoized(USERS, &id.to_string())
    }

    fn user_id_by_email(&self, org: &OrgId, email: &Email) -> StoreResult<Option<UserId>> {
        self.reader().get(USER_EMAILS, &email_key(org, email))
    }

    fn recovery_token(&self, digest_hex: &str) -> StoreResult<Option<RecoveryToken>> {
        self.reader().get(RECOVERY_TOKENS, digest_hex)
    }

    fn user_by_email(&self, org: &OrgId, email: &Email) -> StoreResult<Option<User>> {
        match self.user_id_by_email(org, email)? {
            Some(id) => self.user(&id),
            None => Ok(None),
        }
    }

    /// Users in id order after `cursor`; with `org`, only its members.
    fn users(
        &self,
        org: Option<&OrgId>,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<User>> {
        let reader = self.reader();
        match org {
            None => Ok(reader
                .scan::<User>(USERS, "", cursor, limit)?
                .into_iter()
                .map(|(_, u)| u)
                .collect()),
            Some(org) => {
                let prefix = format!("{org}/");
                let after = cursor.map(|c| format!("{prefix}{c}"));
                let members = reader.scan::<Role>(ORG_MEMBERS, &prefix, after.as_deref(), limit)?;
                let mut users = Vec::with_capacity(members.len());
                for (key, _) in members {
                    let id = &key[prefix.len()..];
                    if let Some(user) = reader.get::<User>(USERS, id)? {
                        users.push(user);
                    }
                }
                Ok(users)
            }
        }
    }

    fn session(&self, id: &SessionId) -> StoreResult<Option<Session>> {
        self.reader().get_memoized(SESSIONS, &id.to_string())
    }

    /// Every session of a user (live or not), oldest first.
    fn sessions_of_user(&self, user: &UserId) -> StoreResult<Vec<Session>> {
        let reader = self.reader();
        let prefix = format!("{user}/");
        let mut sessions = Vec::new();
        for (key, _) in reader.scan::<UnixSeconds>(USER_SESSIONS, &prefix, None, usize::MAX)? {
            if let Some(session) = reader.get::<Session>(SESSIONS, &key[prefix.len()..])? {
                sessions.push(session);
            }
        }
        sessions.sort_by_key(|s| s.created_at);
        Ok(sessions)
    }

    fn refresh_token(&self, digest_hex: &str) -> StoreResult<Option<RefreshToken>> {
        self.reader().get(REFRESH_TOKENS, digest_hex)
    }

    fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        Ok(self
            .reader()
            .scan::<StoredSigningKey>(SIGNING_KEYS, "", None, usize::MAX)?
            .into_iter()
            .map(|(_, key)| key)
            .collect())
    }

    fn active_signing_kid(&self) -> StoreResult<Option<String>> {
        self.reader().get(META, ACTIVE_KID_KEY)
    }

    fn pat(&self, digest_hex: &str) -> StoreResult<Option<PersonalAccessToken>> {
        self.reader().get_memoized(PATS, digest_hex)
    }

    /// A token by its public id, with its digest.
    fn pat_by_id(&self, id: &str) -> StoreResult<Option<(String, PersonalAccessToken)>> {
        let Some(digest) = self.reader().get::<String>(PAT_IDS, id)? else {
            return Ok(None);
        };
        Ok(self.pat(&digest)?.map(|pat| (digest, pat)))
    }

    /// The tokens of a user, oldest first, after `cursor` (a token id).
    fn pats_of_user(
        &self,
        user: &UserId,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<PersonalAccessToken>> {
        let reader = self.reader();
        let prefix = format!("{user}/");
        let after = cursor.map(|c| format!("{prefix}{c}"));
        let mut pats = Vec::new();
        for (key, _) in
            reader.scan::<serde_json::Value>(USER_PATS, &prefix, after.as_deref(), limit)?
        {
            if let Some((_, pat)) = self.pat_by_id(&key[prefix.len()..])? {
                pats.push(pat);
            }
        }
        Ok(pats)
    }

    fn mfa_factors(&self, user: &UserId) -> StoreResult<Option<MfaFactors>> {
        self.reader().get(MFA_FACTORS, &user.to_string())
    }

    fn mfa_challenge(&self, digest_hex: &str) -> StoreResult<Option<MfaChallenge>> {
        self.reader().get(MFA_CHALLENGES, digest_hex)
    }

    fn webauthn_credentials(&self, user: &UserId) -> StoreResult<Vec<WebauthnCredential>> {
        Ok(self
            .reader()
            .scan::<WebauthnCredential>(
                WEBAUTHN_CREDENTIALS,
                &format!("{user}/"),
                None,
                usize::MAX,
            )?
            .into_iter()
            .map(|(_, credential)| credential)
            .collect())
    }

    fn webauthn_credential(
        &self,
        user: &UserId,
        id: &str,
    ) -> StoreResult<Option<WebauthnCredential>> {
        self.reader()
            .get(WEBAUTHN_CREDENTIALS, &format!("{user}/{id}"))
    }

    fn webauthn_ceremony(&self, id: &str) -> StoreResult<Option<WebauthnCeremony>> {
        self.reader().get(WEBAUTHN_CEREMONIES, id)
    }

    fn webauthn_ceremonies(&self) -> StoreResult<Vec<(String, WebauthnCeremony)>> {
        self.reader()
            .scan::<WebauthnCeremony>(WEBAUTHN_CEREMONIES, "", None, usize::MAX)
    }

    fn approval(&self, id: &str) -> StoreResult<Option<Approval>> {
        self.reader().get(APPROVALS, id)
    }

    /// Every approval, oldest first (ids are ULIDs).
    fn approvals(&self) -> StoreResult<Vec<Approval>> {
        Ok(self
            .reader()
            .scan::<Approval>(APPROVALS, "", None, usize::MAX)?
            .into_iter()
            .map(|(_, approval)| approval)
            .collect())
    }

    fn provider(&self, name: &str) -> StoreResult<Option<Provider>> {
        self.reader().get(PROVIDERS, name)
    }

    /// Every provider in name order (a handful per server).
    fn providers(&self) -> StoreResult<Vec<Provider>> {
        Ok(self
            .reader()
            .scan::<Provider>(PROVIDERS, "", None, usize::MAX)?
            .into_iter()
            .map(|(_, provider)| provider)
            .collect())
    }

    fn identity(&self, provider: &str, subject: &str) -> StoreResult<Option<Identity>> {
        self.reader()
            .get(IDENTITIES, &identity_key(provider, subject))
    }

    /// The identities linked to a user, in the order they were linked.
    fn identities_of_user(&self, user: &UserId) -> StoreResult<Vec<Identity>> {
        let reader = self.reader();
        let mut identities = Vec::new();
        for (_, key) in
            reader.scan::<String>(USER_IDENTITIES, &format!("{user}/"), None, usize::MAX)?
        {
            if let Some(identity) = reader.get::<Identity>(IDENTITIES, &key)? {
                identities.push(identity);
            }
        }
        identities.sort_by_key(|identity| identity.linked_at);
        Ok(identities)
    }

    fn oauth_client(&self, id: &str) -> StoreResult<Option<OAuthClient>> {
        self.reader().get(OAUTH_CLIENTS, id)
    }

    /// Clients in id order after `cursor`.
    fn oauth_clients(&self, cursor: Option<&str>, limit: usize) -> StoreResult<Vec<OAuthClient>> {
        Ok(self
            .reader()
            .scan::<OAuthClient>(OAUTH_CLIENTS, "", cursor, limit)?
            .into_iter()
            .map(|(_, client)| client)
            .collect())
    }

    /// The app sessions of a client. There is no index by client: this
    /// scans every session, which only deleting a client does.
    fn sessions_of_client(&self, client_id: &str) -> StoreResult<Vec<Session>> {
        Ok(self
            .reader()
            .scan::<Session>(SESSIONS, "", None, usize::MAX)?
            .into_iter()
            .map(|(_, session)| session)
            .filter(|session| session.client_id.as_deref() == Some(client_id))
            .collect())
    }

    fn authorization_code(&self, digest_hex: &str) -> StoreResult<Option<AuthorizationCode>> {
        self.reader().get(AUTHORIZATION_CODES, digest_hex)
    }

    fn consent(&self, user: &UserId, client_id: &str) -> StoreResult<Option<Consent>> {
        self.reader().get(CONSENTS, &format!("{user}/{client_id}"))
    }

    fn consents_of_user(&self, user: &UserId) -> StoreResult<Vec<Consent>> {
        Ok(self
            .reader()
            .scan::<Consent>(CONSENTS, &format!("{user}/"), None, usize::MAX)?
            .into_iter()
            .map(|(_, consent)| consent)
            .collect())
    }

    fn device_authorization(&self, digest_hex: &str) -> StoreResult<Option<DeviceAuthorization>> {
        self.reader().get(DEVICE_AUTHORIZATIONS, digest_hex)
    }

    /// A device authorization by the code its user types, with its digest.
    fn device_authorization_by_user_code(
        &self,
        user_code: &str,
    ) -> StoreResult<Option<(String, DeviceAuthorization)>> {
        let Some(digest) = self.reader().get::<String>(DEVICE_USER_CODES, user_code)? else {
            return Ok(None);
        };
        Ok(self.device_authorization(&digest)?.map(|d| (digest, d)))
    }

    /// Audit events newest first, filtered, after the cursor.
    fn audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        let reader = self.reader();
        let limit = query.limit.max(1);
        let upper = query
            .until
            .map(|until| crate::audit::cursor_at(until.saturating_add(1)));
        let before = match (&query.cursor, &upper) {
            (Some(cursor), Some(upper)) => Some(cursor.clone().min(upper.clone())),
            (Some(cursor), None) => Some(cursor.clone()),
            (None, upper) => upper.clone(),
        };
        let lower = query.since.map(crate::audit::cursor_at);
        let matches = |record: &AuditRecord| {
            query.kind.is_none_or(|kind| record.kind == kind)
                && query
                    .org
                    .as_ref()
                    .is_none_or(|org| record.org_id.as_ref() == Some(org))
                && query.user.is_none_or(|user| record.user_id == Some(user))
        };
        let mut found = Vec::new();
        let mut position = before;
        // Scan in pages so that a selective filter does not load everything.
        loop {
            let batch: Vec<(String, AuditRecord)> = match &query.user {
                Some(user) => {
                    let prefix = format!("{user}/");
                    let index_before = position.as_ref().map(|p| format!("{prefix}{p}"));
                    let keys = reader.scan_back::<serde_json::Value>(
                        AUDIT_BY_USER,
                        &prefix,
                        index_before.as_deref(),
                        256,
                    )?;
                    let mut records = Vec::with_capacity(keys.len());
                    for (key, _) in keys {
                        let id = key[prefix.len()..].to_owned();
                        if let Some(record) = reader.get::<AuditRecord>(AUDIT, &id)? {
                            records.push((id, record));
                        }
                    }
                    records
                }
                None => reader.scan_back::<AuditRecord>(AUDIT, "", position.as_deref(), 256)?,
            };
            let exhausted = batch.len() < 256;
            for (id, record) in batch {
                if lower.as_ref().is_some_and(|lower| &id < lower) {
                    return Ok(found);
                }
                position = Some(id);
                if matches(&record) {
                    found.push(record);
                    if found.len() >= limit {
                        return Ok(found);
                    }
                }
            }
            if exhausted {
                return Ok(found);
            }
        }
    }
}

pub(crate) const ACTIVE_KID_KEY: &str = "active_signing_kid";
/// Set when the file is to be rewritten into a fresh one at the next open.
pub(crate) const REWRITE_PENDING_KEY: &str = "rewrite_pending";

/// A read transaction: a redb snapshot, or a PostgreSQL `REPEATABLE READ`
/// transaction on a pooled connection.
pub struct ReadTxn(pub(crate) ReadInner);

pub(crate) enum ReadInner {
    Redb(redb::ReadTransaction),
    Postgres(PgConn),
}

impl Queries for ReadTxn {
    fn reader(&self) -> TableReader<'_> {
        match &self.0 {
            ReadInner::Redb(txn) => TableReader(ReaderInner::Read(txn)),
            ReadInner::Postgres(conn) => TableReader(ReaderInner::Postgres(conn)),
        }
    }
}

/// A write transaction: typed writes, committed by [`super::Store::write`]
/// only if the closure returns `Ok`.
pub struct WriteTxn {
    pub(crate) txn: WriteInner,
    pub(crate) audit: Vec<AuditRecord>,
    /// Whether the signing keys changed (other replicas reload them).
    pub(crate) keys_changed: std::cell::Cell<bool>,
}

/// Where a write transaction's changes go: a redb transaction, or a
/// savepoint in the write run open on the PostgreSQL writer connection.
/// (One lives at a time, on the writer thread: its size does not matter.)
#[allow(clippy::large_enum_variant)]
pub(crate) enum WriteInner {
    Redb(redb::WriteTransaction),
    Postgres(Arc<PgConn>),
}

impl Queries for WriteTxn {
    fn reader(&self) -> TableReader<'_> {
        match &self.txn {
            WriteInner::Redb(txn) => TableReader(ReaderInner::Write(txn)),
            WriteInner::Postgres(conn) => TableReader(ReaderInner::Postgres(conn)),
        }
    }
}

impl WriteTxn {
    fn put<T: Serialize>(&self, table: JsonTable, key: &str, value: &T) -> StoreResult<()> {
        match &self.txn {
            WriteInner::Redb(txn) => write_json(&mut txn.open_table(table)?, key, value),
            WriteInner::Postgres(conn) => conn.put(table.name(), key, &encode(key, value)?),
        }
    }

    fn remove(&self, table: JsonTable, key: &str) -> StoreResult<bool> {
        match &self.txn {
            WriteInner::Redb(txn) => Ok(txn.open_table(table)?.remove(key)?.is_some()),
            WriteInner::Postgres(conn) => conn.remove(table.name(), key),
        }
    }

    /// The greatest key in `table`.
    fn last_key(&self, table: JsonTable) -> StoreResult<Option<String>> {
        match &self.txn {
            WriteInner::Redb(txn) => {
                let table = txn.open_table(table)?;
                let last = table.last()?;
                Ok(last.map(|(key, _)| key.value().to_owned()))
            }
            WriteInner::Postgres(conn) => conn.last_key(table.name()),
        }
    }

    pub fn put_org(&self, org: &Org) -> StoreResult<()> {
        if let Some(old) = self.org(&org.id)? {
            if old.slug != org.slug {
                self.remove(ORG_SLUGS, &old.slug)?;
            }
        }
        self.put(ORG_SLUGS, &org.slug, &org.id)?;
        self.put(ORGS, org.id.as_str(), org)
    }

    pub fn delete_org(&self, org: &Org) -> StoreResult<()> {
        self.remove(ORG_SLUGS, &org.slug)?;
        self.remove(ORGS, org.id.as_str())?;
        Ok(())
    }

    /// Writes the user and brings the email and membership indexes in step
    /// with it. Uniqueness is the caller's to check, in this transaction.
    pub fn put_user(&self, user: &User) -> StoreResult<()> {
        let id = user.id.to_string();
        if let Some(old) = self.user(&user.id)? {
            for membership in &old.memberships {
                self.remove(USER_EMAILS, &email_key(&membership.org_id, &old.email))?;
                self.remove(ORG_MEMBERS, &format!("{}/{id}", membership.org_id))?;
            }
        }
        for membership in &user.memberships {
            self.put(
                USER_EMAILS,
                &email_key(&membership.org_id, &user.email),
                &user.id,
            )?;
            self.put(
                ORG_MEMBERS,
                &format!("{}/{id}", membership.org_id),
                &membership.role,
            )?;
        }
        self.put(USERS, &id, user)
    }

    /// Removes the user and what hangs off them. Their revoked sessions,
    /// out of the user index, go with the sweep a day after revocation, as
    /// everyone's do.
    pub fn delete_user(&self, user: &User) -> StoreResult<()> {
        let id = user.id.to_string();
        for membership in &user.memberships {
            self.remove(USER_EMAILS, &email_key(&membership.org_id, &user.email))?;
            self.remove(ORG_MEMBERS, &format!("{}/{id}", membership.org_id))?;
        }
        for session in self.sessions_of_user(&user.id)? {
            self.delete_session(&session)?;
        }
        for identity in self.identities_of_user(&user.id)? {
            self.delete_identity(&identity)?;
        }
        self.delete_mfa_factors(&user.id)?;
        for credential in self.webauthn_credentials(&user.id)? {
            self.delete_webauthn_credential(&user.id, &credential.id)?;
        }
        self.remove(USERS, &id)?;
        Ok(())
    }

    /// Moves a row's `sweep_due` key from `old` (its key before this write,
    /// `None` for a new row) to `due`. An unchanged key is not written again:
    /// a refresh rotation rewrites its session and the used token with the
    /// same expiry, and each rewrite was a copied path in a big tree.
    fn move_sweep_due(&self, old: Option<String>, due: &str) -> StoreResult<()> {
        match old {
            Some(old) if old == due => return Ok(()),
            Some(old) => self.remove_sweep_due(&old)?,
            None => {}
        }
        self.put(SWEEP_DUE, due, &serde_json::Value::Null)
    }

    pub(crate) fn remove_sweep_due(&self, due: &str) -> StoreResult<()> {
        self.remove(SWEEP_DUE, due)?;
        Ok(())
    }

    /// Writes the session and its index rows; a rewrite that leaves the
    /// owner, expiry and revocation as they were (recording activity, a
    /// rotation) writes only the session. A revoked session leaves its
    /// user's index (see `USER_SESSIONS`).
    pub fn put_session(&self, session: &Session) -> StoreResult<()> {
        let old = self.session(&session.id)?;
        self.move_sweep_due(old.as_ref().map(session_due_key), &session_due_key(session))?;
        let user_key = |s: &Session| format!("{}/{}", s.user_id, s.id);
        let indexed = |s: &Session| s.revoked_at.is_none();
        match &old {
            Some(old)
                if old.user_id == session.user_id
                    && old.expires_at == session.expires_at
                    && indexed(old) == indexed(session) => {}
            _ => {
                if let Some(old) = &old {
                    self.remove(USER_SESSIONS, &user_key(old))?;
                }
                if indexed(session) {
                    self.put(USER_SESSIONS, &user_key(session), &session.expires_at)?;
                }
            }
        }
        self.put(SESSIONS, &session.id.to_string(), session)
    }

    pub fn delete_session(&self, session: &Session) -> StoreResult<()> {
        self.remove_sweep_due(&session_due_key(session))?;
        self.remove(
            USER_SESSIONS,
            &format!("{}/{}", session.user_id, session.id),
        )?;
        self.remove(SESSIONS, &session.id.to_string())?;
        Ok(())
    }

    pub fn put_refresh_token(&self, digest_hex: &str, token: &RefreshToken) -> StoreResult<()> {
        let due = |token: &RefreshToken| {
            due_key(Sweep::ExpiredRefreshTokens, token.expires_at, digest_hex)
        };
        let old = self.refresh_token(digest_hex)?.map(|old| due(&old));
        self.move_sweep_due(old, &due(token))?;
        self.put(REFRESH_TOKENS, digest_hex, token)
    }

    pub fn delete_refresh_token(&self, digest_hex: &str) -> StoreResult<bool> {
        let Some(token) = self.refresh_token(digest_hex)? else {
            return Ok(false);
        };
        self.delete_read_refresh_token(digest_hex, &token)
    }

    /// [`WriteTxn::delete_refresh_token`] for a token the caller has read.
    pub(crate) fn delete_read_refresh_token(
        &self,
        digest_hex: &str,
        token: &RefreshToken,
    ) -> StoreResult<bool> {
        self.remove_sweep_due(&due_key(
            Sweep::ExpiredRefreshTokens,
            token.expires_at,
            digest_hex,
        ))?;
        self.remove(REFRESH_TOKENS, digest_hex)
    }

    pub fn put_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        self.keys_changed.set(true);
        self.put(SIGNING_KEYS, &key.key.kid, key)
    }

    pub fn delete_signing_key(&self, kid: &str) -> StoreResult<()> {
        self.keys_changed.set(true);
        self.remove(SIGNING_KEYS, kid)?;
        Ok(())
    }

    pub fn set_active_signing_kid(&self, kid: &str) -> StoreResult<()> {
        self.keys_changed.set(true);
        self.put(META, ACTIVE_KID_KEY, &kid)
    }

    /// Writes one `meta` value (schema version, instance id, …).
    pub(crate) fn put_meta<T: Serialize>(&self, key: &str, value: &T) -> StoreResult<()> {
        self.put(META, key, value)
    }

    /// Writes a signing key record exactly as given: how tests make the
    /// records of an earlier version, which the typed writes refuse to.
    #[cfg(test)]
    pub(crate) fn put_raw_signing_key(
        &self,
        kid: &str,
        record: &serde_json::Value,
    ) -> StoreResult<()> {
        self.put(SIGNING_KEYS, kid, record)
    }

    /// Asks for the file to be rewritten into a fresh one at the next open
    /// (see `Store::open`): after a secret that was stored in clear has been
    /// replaced, the pages that held it are free but not erased. Committed
    /// with the change, so a crash before the rewrite still leads to one.
    pub fn request_file_rewrite(&self) -> StoreResult<()> {
        self.put(META, REWRITE_PENDING_KEY, &true)
    }

    pub fn put_pat(&self, digest_hex: &str, pat: &PersonalAccessToken) -> StoreResult<()> {
        let due =
            |pat: &PersonalAccessToken| due_key(Sweep::ExpiredPats, pat.expires_at, digest_hex);
        let old = self.pat(digest_hex)?;
        self.move_sweep_due(old.as_ref().map(due), &due(pat))?;
        // Recording a token's last use leaves its id and owner as they were:
        // only the token is written then.
        let user_key = |pat: &PersonalAccessToken| format!("{}/{}", pat.user_id, pat.id);
        match &old {
            Some(old) if old.id == pat.id && old.user_id == pat.user_id => {}
            _ => {
                if let Some(old) = &old {
                    self.remove(PAT_IDS, &old.id)?;
                    self.remove(USER_PATS, &user_key(old))?;
                }
                self.put(PAT_IDS, &pat.id, &digest_hex)?;
                self.put(USER_PATS, &user_key(pat), &serde_json::Value::Null)?;
            }
        }
        self.put(PATS, digest_hex, pat)
    }

    pub fn delete_pat(&self, digest_hex: &str, pat: &PersonalAccessToken) -> StoreResult<()> {
        self.remove_sweep_due(&due_key(Sweep::ExpiredPats, pat.expires_at, digest_hex))?;
        self.remove(PAT_IDS, &pat.id)?;
        self.remove(USER_PATS, &format!("{}/{}", pat.user_id, pat.id))?;
        self.remove(PATS, digest_hex)?;
        Ok(())
    }

    pub fn put_mfa_factors(&self, user: &UserId, factors: &MfaFactors) -> StoreResult<()> {
        self.put(MFA_FACTORS, &user.to_string(), factors)
    }

    pub fn delete_mfa_factors(&self, user: &UserId) -> StoreResult<()> {
        self.remove(MFA_FACTORS, &user.to_string())?;
        Ok(())
    }

    pub fn put_mfa_challenge(&self, digest_hex: &str, challenge: &MfaChallenge) -> StoreResult<()> {
        self.put(MFA_CHALLENGES, digest_hex, challenge)
    }

    pub fn delete_mfa_challenge(&self, digest_hex: &str) -> StoreResult<()> {
        self.remove(MFA_CHALLENGES, digest_hex)?;
        Ok(())
    }

    pub fn put_webauthn_credential(&self, credential: &WebauthnCredential) -> StoreResult<()> {
        self.put(
            WEBAUTHN_CREDENTIALS,
            &format!("{}/{}", credential.user_id, credential.id),
            credential,
        )
    }

    pub fn delete_webauthn_credential(&self, user: &UserId, id: &str) -> StoreResult<bool> {
        self.remove(WEBAUTHN_CREDENTIALS, &format!("{user}/{id}"))
    }

    pub fn put_webauthn_ceremony(&self, id: &str, ceremony: &WebauthnCeremony) -> StoreResult<()> {
        self.put(WEBAUTHN_CEREMONIES, id, ceremony)
    }

    pub fn delete_webauthn_ceremony(&self, id: &str) -> StoreResult<bool> {
        self.remove(WEBAUTHN_CEREMONIES, id)
    }

    pub fn put_approval(&self, approval: &Approval) -> StoreResult<()> {
        self.put(APPROVALS, &approval.id, approval)
    }

    pub fn put_oauth_client(&self, client: &OAuthClient) -> StoreResult<()> {
        self.put(OAUTH_CLIENTS, &client.id, client)
    }

    pub fn put_provider(&self, provider: &Provider) -> StoreResult<()> {
        self.put(PROVIDERS, &provider.name, provider)
    }

    /// Removes the provider and every identity linked through it.
    pub fn delete_provider(&self, name: &str) -> StoreResult<bool> {
        let linked: Vec<(String, Identity)> =
            self.reader()
                .scan(IDENTITIES, &format!("{name}/"), None, usize::MAX)?;
        for (_, identity) in linked {
            self.delete_identity(&identity)?;
        }
        self.remove(PROVIDERS, name)
    }

    /// Writes the identity and its per-user index row.
    pub fn put_identity(&self, identity: &Identity) -> StoreResult<()> {
        let key = identity_key(&identity.provider, &identity.subject);
        self.put(
            USER_IDENTITIES,
            &format!("{}/{}", identity.user_id, identity.id),
            &key,
        )?;
        self.put(IDENTITIES, &key, identity)
    }

    pub fn delete_identity(&self, identity: &Identity) -> StoreResult<bool> {
        self.remove(
            USER_IDENTITIES,
            &format!("{}/{}", identity.user_id, identity.id),
        )?;
        self.remove(
            IDENTITIES,
            &identity_key(&identity.provider, &identity.subject),
        )
    }

    pub fn delete_oauth_client(&self, id: &str) -> StoreResult<bool> {
        self.remove(OAUTH_CLIENTS, id)
    }

    pub fn put_authorization_code(
        &self,
        digest_hex: &str,
        code: &AuthorizationCode,
    ) -> StoreResult<()> {
        self.put(AUTHORIZATION_CODES, digest_hex, code)
    }

    pub fn put_consent(&self, consent: &Consent) -> StoreResult<()> {
        self.put(
            CONSENTS,
            &format!("{}/{}", consent.user_id, consent.client_id),
            consent,
        )
    }

    pub fn delete_consent(&self, user: &UserId, client_id: &str) -> StoreResult<bool> {
        self.remove(CONSENTS, &format!("{user}/{client_id}"))
    }

    pub fn delete_consents_of_client(&self, client_id: &str) -> StoreResult<()> {
        let all: Vec<(String, Consent)> = self.reader().scan(CONSENTS, "", None, usize::MAX)?;
        for (key, consent) in all {
            if consent.client_id == client_id {
                self.remove(CONSENTS, &key)?;
            }
        }
        Ok(())
    }

    pub fn put_device_authorization(
        &self,
        digest_hex: &str,
        device: &DeviceAuthorization,
    ) -> StoreResult<()> {
        self.put(DEVICE_USER_CODES, &device.user_code, &digest_hex)?;
        self.put(DEVICE_AUTHORIZATIONS, digest_hex, device)
    }

    /// Removes authorization codes and device authorizations that ended
    /// before `before`; both live minutes, so the tables stay small and a
    /// whole scan is cheap. Returns how many went.
    pub fn put_recovery_token(&self, digest_hex: &str, token: &RecoveryToken) -> StoreResult<()> {
        self.put(RECOVERY_TOKENS, digest_hex, token)
    }

    pub fn delete_recovery_token(&self, digest_hex: &str) -> StoreResult<bool> {
        self.remove(RECOVERY_TOKENS, digest_hex)
    }

    /// Removes recovery tokens that expired before `before`.
    pub fn sweep_recovery_tokens(&self, before: UnixSeconds) -> StoreResult<usize> {
        let tokens: Vec<(String, RecoveryToken)> =
            self.reader().scan(RECOVERY_TOKENS, "", None, usize::MAX)?;
        let mut removed = 0;
        for (digest, token) in tokens {
            if token.expires_at < before {
                self.remove(RECOVERY_TOKENS, &digest)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub fn sweep_oauth_codes(&self, before: UnixSeconds) -> StoreResult<usize> {
        let mut removed = 0;
        let codes: Vec<(String, AuthorizationCode)> =
            self.reader()
                .scan(AUTHORIZATION_CODES, "", None, usize::MAX)?;
        for (digest, code) in codes {
            if code.expires_at < before {
                self.remove(AUTHORIZATION_CODES, &digest)?;
                removed += 1;
            }
        }
        let devices: Vec<(String, DeviceAuthorization)> =
            self.reader()
                .scan(DEVICE_AUTHORIZATIONS, "", None, usize::MAX)?;
        for (digest, device) in devices {
            if device.expires_at < before {
                self.remove(DEVICE_USER_CODES, &device.user_code)?;
                self.remove(DEVICE_AUTHORIZATIONS, &digest)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Appends an audit record; it is committed with the rest of the
    /// transaction and published to live subscribers after the commit.
    ///
    /// The id is assigned here: a ULID at the record's time, or one past the
    /// newest stored id if that is later. Writes are serialised, so ids grow
    /// in commit order even within one second, and the log reads back in the
    /// order things happened.
    pub fn audit(&mut self, mut record: AuditRecord) -> StoreResult<()> {
        let newest = self
            .last_key(AUDIT)?
            .and_then(|key| ulid::Ulid::from_string(&key).ok());
        let at_millis = u64::try_from(record.at).unwrap_or(0).saturating_mul(1000);
        let candidate = ulid::Ulid::from_parts(at_millis, 0);
        record.id = match newest {
            Some(newest) if newest >= candidate => newest.increment().unwrap_or(newest).to_string(),
            _ => candidate.to_string(),
        };
        if let Some(user) = record.user_id {
            self.put(
                AUDIT_BY_USER,
                &format!("{user}/{}", record.id),
                &serde_json::Value::Null,
            )?;
        }
        self.put(AUDIT, &record.id, &record)?;
        self.audit.push(record);
        Ok(())
    }

    /// Deletes audit records older than `before`; returns how many.
    pub fn prune_audit(&self, before: UnixSeconds, max: usize) -> StoreResult<usize> {
        let upper = crate::audit::cursor_at(before);
        let old: Vec<(String, AuditRecord)> = self.reader().scan(AUDIT, "", None, max)?;
        let mut removed = 0;
        for (id, record) in old {
            if id >= upper {
                break;
            }
            if let Some(user) = record.user_id {
                self.remove(AUDIT_BY_USER, &format!("{user}/{id}"))?;
            }
            self.remove(AUDIT, &id)?;
            removed += 1;
        }
        Ok(removed)
    }
}
