//! The schema version of the database file and the steps that bring an older
//! file up to date. Each step runs in the same write transaction as the
//! version bump, so a crash mid-migration leaves the file at the old version.

use redb::{Database, ReadableDatabase, WriteTransaction};

use super::error::{StoreError, StoreResult};
use super::tables::{
    read_json, write_json, ALL_TABLES, META, MFA_CHALLENGES, MFA_FACTORS, ORGS, ORG_SLUGS, PATS,
    PAT_IDS, USER_PATS, WEBAUTHN_CEREMONIES, WEBAUTHN_CREDENTIALS,
};
use super::txn::WriteTxn;
use crate::clock::UnixSeconds;
use crate::domain::org::DEFAULT_ORG_SLUG;
use crate::domain::{MfaPolicy, Org, OrgId, PasswordPolicy, RegistrationMode};

pub(crate) const SCHEMA_VERSION_KEY: &str = "schema_version";
pub(crate) const CREATED_AT_KEY: &str = "created_at";
pub(crate) const INSTANCE_ID_KEY: &str = "instance_id";

type Migration = fn(&WriteTransaction, UnixSeconds) -> StoreResult<()>;

/// `MIGRATIONS[n]` takes a file from version `n` to version `n + 1`.
const MIGRATIONS: &[Migration] = &[
    to_v1_record_instance,
    to_v2_accounts_and_default_org,
    to_v3_personal_access_tokens,
    to_v4_mfa,
    to_v5_webauthn,
    to_v6_sweep_due_index,
];

pub const CURRENT_SCHEMA_VERSION: u64 = MIGRATIONS.len() as u64;

/// v0 is a file without a version: either brand new or written before
/// versioning. v1 records when and as which instance the file was created.
fn to_v1_record_instance(txn: &WriteTransaction, now: UnixSeconds) -> StoreResult<()> {
    let mut meta = txn.open_table(META)?;
    if read_json::<UnixSeconds>(&meta, CREATED_AT_KEY)?.is_none() {
        write_json(&mut meta, CREATED_AT_KEY, &now)?;
    }
    if read_json::<String>(&meta, INSTANCE_ID_KEY)?.is_none() {
        write_json(
            &mut meta,
            INSTANCE_ID_KEY,
            &uuid::Uuid::new_v4().to_string(),
        )?;
    }
    Ok(())
}

/// v2 adds the account tables (orgs, users, sessions, tokens, keys, audit,
/// approvals) and the `default` org that exists from the start.
fn to_v2_accounts_and_default_org(txn: &WriteTransaction, now: UnixSeconds) -> StoreResult<()> {
    for table in ALL_TABLES {
        txn.open_table(*table)?;
    }
    let mut slugs = txn.open_table(ORG_SLUGS)?;
    if read_json::<OrgId>(&slugs, DEFAULT_ORG_SLUG)?.is_none() {
        let org = default_org(now);
        write_json(&mut slugs, DEFAULT_ORG_SLUG, &org.id)?;
        write_json(&mut txn.open_table(ORGS)?, org.id.as_str(), &org)?;
    }
    Ok(())
}

/// The org every new database starts with.
fn default_org(now: UnixSeconds) -> Org {
    Org {
        id: OrgId::random(),
        slug: DEFAULT_ORG_SLUG.to_owned(),
        name: "Default".to_owned(),
        registration: RegistrationMode::Open,
        mfa_policy: MfaPolicy::Optional,
        password_policy: PasswordPolicy::default(),
        max_sessions_per_user: None,
        allow_passwordless: false,
        created_at: now,
    }
}

/// What a new PostgreSQL database holds before its first use, as a new
/// file after every step above: when and as which instance it was made,
/// the `default` org, and the current version.
pub(crate) fn initialise(txn: &WriteTxn, now: UnixSeconds) -> StoreResult<()> {
    txn.put_meta(CREATED_AT_KEY, &now)?;
    txn.put_meta(INSTANCE_ID_KEY, &uuid::Uuid::new_v4().to_string())?;
    txn.put_org(&default_org(now))?;
    txn.put_meta(SCHEMA_VERSION_KEY, &CURRENT_SCHEMA_VERSION)
}

/// v3 adds personal access tokens.
fn to_v3_personal_access_tokens(txn: &WriteTransaction, _now: UnixSeconds) -> StoreResult<()> {
    for table in [PATS, PAT_IDS, USER_PATS] {
        txn.open_table(table)?;
    }
    Ok(())
}

/// v4 adds MFA factors and pending MFA challenges.
fn to_v4_mfa(txn: &WriteTransaction, _now: UnixSeconds) -> StoreResult<()> {
    for table in [MFA_FACTORS, MFA_CHALLENGES] {
        txn.open_table(table)?;
    }
    Ok(())
}

/// v5 adds WebAuthn credentials and registration ceremonies.
fn to_v5_webauthn(txn: &WriteTransaction, _now: UnixSeconds) -> StoreResult<()> {
    for table in [WEBAUTHN_CREDENTIALS, WEBAUTHN_CEREMONIES] {
        txn.open_table(table)?;
    }
    Ok(())
}

/// v6 indexes sessions, refresh tokens and PATs by when they are due for the
/// sweep, so that a sweep reads only what is due.
fn to_v6_sweep_due_index(txn: &WriteTransaction, _now: UnixSeconds) -> StoreResult<()> {
    super::sweep::index_existing_rows(txn)
}

pub(crate) fn read_version(db: &Database) -> StoreResult<u64> {
    let txn = db.begin_read()?;
    match txn.open_table(META) {
        Ok(meta) => Ok(read_json::<u64>(&meta, SCHEMA_VERSION_KEY)?.unwrap_or(0)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(other) => Err(other.into()),
    }
}

/// Runs every step the file has not seen yet. Returns the versions migrated
/// from and to.
pub(crate) fn migrate(
    db: &Database,
    path: &std::path::Path,
    now: UnixSeconds,
) -> StoreResult<(u64, u64)> {
    let found = read_version(db)?;
    if found > CURRENT_SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: CURRENT_SCHEMA_VERSION,
        });
    }
    for version in found..CURRENT_SCHEMA_VERSION {
        let txn = db.begin_write()?;
        let index = usize::try_from(version).unwrap_or(usize::MAX);
        if let Some(step) = MIGRATIONS.get(index) {
            step(&txn, now)?;
        }
        {
            let mut meta = txn.open_table(META)?;
            write_json(&mut meta, SCHEMA_VERSION_KEY, &(version + 1))?;
        }
        txn.commit()?;
    }
    Ok((found, CURRENT_SCHEMA_VERSION))
}
