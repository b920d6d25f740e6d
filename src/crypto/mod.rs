//! Pure cryptographic building blocks: randomness, digests, constant-time
//! comparison, argon2id password hashing, JWT signing, and upstream
//! providers' ID tokens and Apple's client secret (`upstream`). Nothing here knows
//! about HTTP or storage.

pub mod jwt;
pub mod passwords;
pub mod pat;
pub mod random;
pub mod sealed;
pub mod signed_link;
pub mod totp;
pub mod upstream;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// SHA-256 of a secret, the only form in which token secrets are kept.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Compares two secrets in time independent of where they differ and of their
/// lengths: both sides are digested first, so only equal-length digests are
/// compared.
pub fn secrets_equal(presented: &[u8], expected_digest: &[u8; 32]) -> bool {
    sha256(presented).ct_eq(expected_digest).into()
}
