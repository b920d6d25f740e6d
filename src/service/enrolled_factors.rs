//! Which second factors a user has — a TOTP app, security keys, recovery
//! codes — read in one place, so the login step's `methods`, the profile's
//! `mfa_methods` and the user's `mfa_enrolled` flag always agree; and the
//! one rule that an account keeps a way to sign in (a password, a passkey
//! or a linked identity), for removing factors and unlinking identities.

use super::{ServiceError, ServiceResult};
use crate::domain::{User, UserId};
use crate::store::{Queries, WebauthnKind, WriteTxn};

/// What a change takes from a user's ways to sign in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Removing<'a> {
    /// One passkey or security key, by credential id.
    Credential(&'a str),
    /// Every second factor, passkeys among them.
    EveryFactor,
    /// One identity at an upstream provider, by id.
    Identity(&'a str),
}

/// Refuses a change that would leave an account without a password, a
/// passkey or a linked identity: nothing could sign in to it any more.
pub(crate) fn keep_a_way_to_sign_in(
    txn: &impl Queries,
    user: &User,
    removing: Removing<'_>,
) -> ServiceResult<()> {
    if user.has_password() {
        return Ok(());
    }
    let passkeys_left = txn
        .webauthn_credentials(&user.id)?
        .iter()
        .filter(|c| c.kind == WebauthnKind::Passkey)
        .filter(|c| match removing {
            Removing::Credential(id) => id != c.id,
            Removing::EveryFactor => false,
            Removing::Identity(_) => true,
        })
        .count();
    let identities_left = txn
        .identities_of_user(&user.id)?
        .iter()
        .filter(|i| !matches!(removing, Removing::Identity(id) if id == i.id))
        .count();
    if passkeys_left + identities_left == 0 {
        return Err(ServiceError::Conflict(
            "this account has no password: keep a passkey or a sign-in provider, or set a password first".into(),
        ));
    }
    Ok(())
}

/// A second factor a user can answer the login step with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorMethod {
    Totp,
    Webauthn,
    RecoveryCode,
}

impl FactorMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            FactorMethod::Totp => "totp",
            FactorMethod::Webauthn => "webauthn",
            FactorMethod::RecoveryCode => "recovery_code",
        }
    }
}

/// The user's factors in the order the UI offers them. Recovery codes only
/// stand in for another factor; they alone do not make a user enrolled.
pub fn methods_of(txn: &impl Queries, user: &UserId) -> ServiceResult<Vec<FactorMethod>> {
    let factors = txn.mfa_factors(user)?.unwrap_or_default();
    let mut methods = Vec::new();
    if factors.totp_sealed.is_some() {
        methods.push(FactorMethod::Totp);
    }
    if !txn.webauthn_credentials(user)?.is_empty() {
        methods.push(FactorMethod::Webauthn);
    }
    if !factors.recovery_code_hashes.is_empty() {
        methods.push(FactorMethod::RecoveryCode);
    }
    Ok(methods)
}

/// After a factor came or went: `mfa_enrolled` says whether a TOTP app or
/// a key is left. Returns whether the user is enrolled now.
pub fn refresh_mfa_enrolled(txn: &mut WriteTxn, user_id: &UserId) -> ServiceResult<bool> {
    let Some(mut user) = txn.user(user_id)? else {
        return Ok(false);
    };
    let enrolled = methods_of(txn, user_id)?
        .iter()
        .any(|m| *m != FactorMethod::RecoveryCode);
    if user.mfa_enrolled != enrolled {
        user.mfa_enrolled = enrolled;
        txn.put_user(&user)?;
    }
    Ok(enrolled)
}

/// TOTP, recovery codes and security keys: all of a user's second factors.
pub fn remove_every_factor(txn: &mut WriteTxn, user_id: &UserId) -> ServiceResult<()> {
    txn.delete_mfa_factors(user_id)?;
    for credential in txn.webauthn_credentials(user_id)? {
        txn.delete_webauthn_credential(user_id, &credential.id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{keep_a_way_to_sign_in, Removing};
    use crate::domain::provider::Identity;
    use crate::domain::user::UserStatus;
    use crate::domain::{Email, User, UserId};
    use crate::store::{Store, StoreError, WebauthnCredential, WebauthnKind};

    fn user(password_hash: &str) -> User {
        User {
            id: UserId::random(),
            email: Email::parse("ada@example.com").expect("email"),
            name: None,
            password_hash: password_hash.to_owned(),
            password_history: Vec::new(),
            memberships: Vec::new(),
            status: UserStatus::Active,
            failed_logins: 0,
            failed_second_factors: 0,
            locked_until: None,
            mfa_enrolled: false,
            email_verified: true,
            created_at: 0,
            password_changed_at: None,
        }
    }

    /// Whether each removal is allowed for a user with `password_hash`,
    /// `passkeys` and `identities` (ids `p0…`, `i0…`).
    fn check(
        password_hash: &str,
        passkeys: usize,
        identities: usize,
        expected: &[(Removing<'static>, bool)],
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(&dir.path().join("authd.redb"), 1 << 20, 0).expect("open");
        let user = user(password_hash);
        let stored = user.clone();
        let expected: Vec<(Removing<'static>, bool)> = expected.to_vec();
        store
            .write(move |txn| -> Result<(), StoreError> {
                txn.put_user(&stored)?;
                for n in 0..passkeys {
                    txn.put_webauthn_credential(&WebauthnCredential {
                        id: format!("p{n}"),
                        user_id: stored.id,
                        kind: WebauthnKind::Passkey,
                        name: "key".into(),
                        created_at: 0,
                        last_used_at: None,
                        key: String::new(),
                    })?;
                }
                for n in 0..identities {
                    txn.put_identity(&Identity {
                        id: format!("i{n}"),
                        provider: "google".into(),
                        subject: format!("s{n}"),
                        user_id: stored.id,
                        email: None,
                        linked_at: 0,
                        last_used_at: None,
                    })?;
                }
                for (removing, allowed) in expected {
                    let outcome = keep_a_way_to_sign_in(txn, &stored, removing);
                    assert_eq!(outcome.is_ok(), allowed, "{removing:?}: {outcome:?}");
                }
                Ok(())
            })
            .expect("write");
    }

    #[test]
    fn a_password_a_passkey_or_a_linked_identity_each_keep_the_account_reachable() {
        // With a password, anything else may go.
        check(
            "$argon2id$x",
            1,
            1,
            &[
                (Removing::Identity("i0"), true),
                (Removing::Credential("p0"), true),
                (Removing::EveryFactor, true),
            ],
        );
        // Without one, the only identity goes only while a passkey stays,
        check(
            "",
            1,
            1,
            &[
                (Removing::Identity("i0"), true),
                (Removing::Credential("p0"), true),
                (Removing::EveryFactor, true),
            ],
        );
        check(
            "",
            0,
            1,
            &[
                (Removing::Identity("i0"), false),
                (Removing::EveryFactor, true),
            ],
        );
        check("", 0, 2, &[(Removing::Identity("i0"), true)]);
        // and the last passkey only while an identity stays.
        check(
            "",
            1,
            0,
            &[
                (Removing::Credential("p0"), false),
                (Removing::EveryFactor, false),
            ],
        );
        check(
            "",
            2,
            0,
            &[
                (Removing::Credential("p0"), true),
                (Removing::EveryFactor, false),
            ],
        );
    }
}
