//! Secrets at rest that authd must read back (TOTP seeds, JWT signing
//! keys): sealed with ChaCha20-Poly1305 under a key derived (HKDF-SHA-256)
//! from the server secret, which lives in a 0600 file beside the admin token
//! and never in the database. A stolen database file alone does not reveal
//! them.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed data is malformed or was not sealed with this server's secret")]
    Open,
    #[error("sealing failed")]
    Seal,
}

/// A key for one purpose, derived from the server secret.
pub struct SealingKey(Key);

impl SealingKey {
    pub fn derive(server_secret: &[u8], purpose: &str) -> Self {
        let mut key = [0_u8; 32];
        // HKDF-Expand cannot fail for a 32-byte output.
        let _ = hkdf::Hkdf::<sha2::Sha256>::new(None, server_secret)
            .expand(purpose.as_bytes(), &mut key);
        Self(Key::from(key))
    }

    /// `nonce ‖ ciphertext+tag`; `context` (e.g. the user id) is
    /// authenticated, so a sealed value cannot be moved to another record.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce: [u8; NONCE_BYTES] = super::random::bytes();
        let cipher = ChaCha20Poly1305::new(&self.0);
        let ciphertext = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Seal)?;
        Ok([nonce.as_slice(), &ciphertext].concat())
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_BYTES {
            return Err(SealError::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SealError::Open)?;
        ChaCha20Poly1305::new(&self.0)
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Open)
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_the_same_secret_purpose_and_context() {
        let key = SealingKey::derive(&[7; 32], "mfa");
        let sealed = key.seal(b"seed", b"user-1").expect("seal");
        assert!(!sealed.windows(4).any(|w| w == b"seed"), "not in plaintext");
        assert_eq!(key.open(&sealed, b"user-1").expect("open"), b"seed");
        assert!(
            key.open(&sealed, b"user-2").is_err(),
            "bound to its context"
        );
        assert!(SealingKey::derive(&[8; 32], "mfa")
            .open(&sealed, b"user-1")
            .is_err());
        assert!(SealingKey::derive(&[7; 32], "other")
            .open(&sealed, b"user-1")
            .is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.open(&tampered, b"user-1").is_err());
        assert!(key.open(b"short", b"user-1").is_err());
    }
}
