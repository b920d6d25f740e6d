//! The seeding fast path: users, personal access tokens and audit events
//! written straight into a database file through `authd::store`, in large
//! transactions, before the server is started on it (no HTTP, no argon2 per
//! user). Everything is derived from the user's index `i`, so a bench can
//! name any seeded user (email, id, PAT) without keeping a list of a million.
//!
//! Every seeded user shares one argon2id PHC hash of [`PASSWORD`]; hash it
//! with the parameters the server is configured with ([`phc`]), so that a
//! login does one real verification and no rehash.

use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use authd::audit::{AuditKind, AuditRecord, RequestOrigin};
use authd::clock::UnixSeconds;
use authd::domain::user::UserStatus;
use authd::domain::{Email, Membership, OrgId, Role, Scope, User, UserId};
use authd::store::{PersonalAccessToken, Queries, Store, StoreError};

/// The password of every seeded user.
pub const PASSWORD: &str = "Correct-Horse-42";
/// The server's default PAT prefix.
pub const PAT_PREFIX: &str = "pat_authd_";
/// Users (or audit events) per write transaction.
const CHUNK: u64 = 20_000;
/// The cache the seeding store uses.
const CACHE_BYTES: usize = 64 << 20;

/// The email of seeded user `i`.
pub fn email(i: u64) -> String {
    format!("user{i}@example.com")
}

/// The id of seeded user `i`: a v4 UUID made of the hash of `i`, so ids are
/// spread over the key space as random ones are.
pub fn user_id(i: u64) -> UserId {
    let digest = authd::crypto::sha256(format!("authd-bench-user-{i}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    UserId(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// The personal access token of seeded user `i` (scope `sessions.read`), in
/// the server's format: prefix, 52 base32 characters of secret, 7 of CRC-32.
pub fn pat_token(i: u64) -> String {
    const ALPHABET: base32::Alphabet = base32::Alphabet::Rfc4648Lower { padding: false };
    let secret = base32::encode(
        ALPHABET,
        &authd::crypto::sha256(format!("authd-bench-pat-{i}").as_bytes()),
    );
    let mut crc = crc32fast::Hasher::new();
    crc.update(PAT_PREFIX.as_bytes());
    crc.update(secret.as_bytes());
    let check = base32::encode(ALPHABET, &crc.finalize().to_be_bytes());
    format!("{PAT_PREFIX}{secret}{check}")
}

/// An argon2id PHC string of [`PASSWORD`] with these parameters (the same
/// algorithm, version and output length as `authd::crypto::passwords`).
pub fn phc(memory_kib: u32, iterations: u32, parallelism: u32) -> String {
    use argon2::password_hash::{PasswordHasher as _, SaltString};
    let params = argon2::Params::new(
        memory_kib,
        iterations,
        parallelism,
        Some(authd::crypto::passwords::OUTPUT_LENGTH),
    )
    .expect("argon2 params");
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(PASSWORD.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}

/// Seeded records are dated by the wall clock, like the server's own.
fn now() -> UnixSeconds {
    authd::clock::Clock::system().now()
}

/// The database at `path`, created and migrated if new (which creates the
/// default org), and that org's id.
pub fn open(path: &Path) -> (Store, OrgId) {
    let (store, _) = Store::open(path, CACHE_BYTES, now()).expect("open store");
    let org = store
        .read(|txn| txn.org_by_slug("default"))
        .expect("read")
        .expect("the default org")
        .id;
    (store, org)
}

fn user(i: u64, org: &OrgId, phc: &str, now: UnixSeconds) -> User {
    User {
        id: user_id(i),
        email: Email::parse(&email(i)).expect("email"),
        name: Some(format!("Bench User {i}")),
        password_hash: phc.to_owned(),
        password_history: Vec::new(),
        memberships: vec![Membership {
            org_id: org.clone(),
            role: Role::member(),
            suspended: false,
        }],
        status: UserStatus::Active,
        failed_logins: 0,
        failed_second_factors: 0,
        locked_until: None,
        mfa_enrolled: false,
        email_verified: false,
        created_at: now,
        password_changed_at: Some(now),
    }
}

/// Writes users `range` (members of `org`), and with `pats` one PAT each,
/// `CHUNK` users per transaction. Returns the seconds it took.
pub fn users(store: &Store, org: &OrgId, range: Range<u64>, phc: &str, pats: bool) -> f64 {
    let started = Instant::now();
    let now = now();
    assert!(authd::crypto::pat::is_well_formed(
        PAT_PREFIX,
        &pat_token(0)
    ));
    let mut start = range.start;
    while start < range.end {
        let end = (start + CHUNK).min(range.end);
        let (org, phc) = (org.clone(), phc.to_owned());
        store
            .write(move |txn| -> Result<(), StoreError> {
                for i in start..end {
                    let user = user(i, &org, &phc, now);
                    txn.put_user(&user)?;
                    if pats {
                        let digest = hex::encode(authd::crypto::sha256(pat_token(i).as_bytes()));
                        txn.put_pat(
                            &digest,
                            &PersonalAccessToken {
                                id: format!(
                                    "pat_{}",
                                    ulid::Ulid::from_parts(now as u64 * 1000, u128::from(i))
                                ),
                                name: "bench".to_owned(),
                                user_id: user.id,
                                org_id: org.clone(),
                                scopes: vec![Scope::SessionsRead],
                                created_at: now,
                                expires_at: now + 30 * 86400,
                                last_used_at: None,
                            },
                        )?;
                    }
                }
                Ok(())
            })
            .expect("seed users");
        start = end;
    }
    started.elapsed().as_secs_f64()
}

/// Appends `count` audit events about users `0..users` (chosen by a hash of
/// the event's index), spread evenly over the last 30 days (well inside the
/// default retention), shaped like the server's own: logins, refreshes,
/// failed logins and logouts, with an origin and details. Every `heavy`-th
/// event is about user 0 instead, so that user has a long history. Returns
/// the seconds it took.
pub fn audit_events(store: &Store, org: &OrgId, count: u64, users: u64, heavy: u64) -> f64 {
    let started = Instant::now();
    let now = now();
    let span: u64 = 30 * 86400;
    let first = now - span as UnixSeconds;
    let mut start = 0;
    while start < count {
        let end = (start + CHUNK).min(count);
        let org = org.clone();
        store
            .write(move |txn| -> Result<(), StoreError> {
                for n in start..end {
                    let at = first + (n as u128 * span as u128 / count as u128) as UnixSeconds;
                    let digest = authd::crypto::sha256(&n.to_be_bytes());
                    let pick = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
                    let who = if heavy > 0 && n.is_multiple_of(heavy) {
                        0
                    } else {
                        pick % users
                    };
                    let origin = RequestOrigin {
                        ip: Some(format!("203.0.113.{}", digest[8])),
                        user_agent: Some(
                            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
                                .to_owned(),
                        ),
                        request_id: Some(uuid::Uuid::from_u128(u128::from(pick)).to_string()),
                    };
                    let session = uuid::Uuid::from_u128(u128::from(pick) << 64 | u128::from(n));
                    let record = match digest[9] % 10 {
                        0..=4 => AuditRecord::new(AuditKind::UserLogin, at, &origin).details(
                            serde_json::json!({"session_id": session, "mfa_verified": false}),
                        ),
                        5..=7 => AuditRecord::new(AuditKind::TokenRefreshed, at, &origin).details(
                            serde_json::json!({"family_id": format!("{session}"), "session_id": session}),
                        ),
                        8 => AuditRecord::new(AuditKind::UserLoginFailed, at, &origin)
                            .reason("bad_password"),
                        _ => AuditRecord::new(AuditKind::SessionLogout, at, &origin)
                            .details(serde_json::json!({"session_id": session})),
                    };
                    txn.audit(record.user(user_id(who)).org(&org))?;
                }
                Ok(())
            })
            .expect("seed audit events");
        start = end;
    }
    started.elapsed().as_secs_f64()
}
