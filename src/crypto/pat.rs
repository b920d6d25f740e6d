//! The personal access token format: `<prefix><52 chars of secret><7 chars
//! of checksum>`, all lowercase RFC 4648 base32 (`a-z`, `2-7`).
//!
//! The secret is 32 bytes (256 bits) from the OS CSPRNG. The checksum is the
//! CRC-32 of the prefix and the secret part, so a secret scanner (or authd
//! itself, before touching the database) can tell a real token from a
//! look-alike offline. The checksum is not a security feature: the secret is.
//! With the default prefix a scanner can match
//! `\bpat_authd_[a-z2-7]{59}\b` and verify the last 7 characters.

use base32::Alphabet;

const ALPHABET: Alphabet = Alphabet::Rfc4648Lower { padding: false };
const SECRET_CHARS: usize = 52;
const CHECKSUM_CHARS: usize = 7;

fn checksum(prefix: &str, secret: &str) -> String {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(prefix.as_bytes());
    hasher.update(secret.as_bytes());
    base32::encode(ALPHABET, &hasher.finalize().to_be_bytes())
}

/// A new token with `prefix`.
pub fn generate(prefix: &str) -> String {
    let secret = base32::encode(ALPHABET, &super::random::bytes::<32>());
    let check = checksum(prefix, &secret);
    format!("{prefix}{secret}{check}")
}

/// Whether `token` has the shape and checksum of a token with `prefix`.
pub fn is_well_formed(prefix: &str, token: &str) -> bool {
    let Some(body) = token.strip_prefix(prefix) else {
        return false;
    };
    if body.len() != SECRET_CHARS + CHECKSUM_CHARS
        || !body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    {
        return false;
    }
    let (secret, check) = body.split_at(SECRET_CHARS);
    checksum(prefix, secret) == check
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_and_distinct() {
        let first = generate("pat_authd_");
        let second = generate("pat_authd_");
        assert_ne!(first, second);
        assert_eq!(first.len(), "pat_authd_".len() + 59);
        assert!(is_well_formed("pat_authd_", &first));
    }

    #[test]
    fn look_alikes_fail_the_offline_check() {
        let token = generate("pat_authd_");
        let mut altered = token.clone().into_bytes();
        let index = 20;
        altered[index] = if altered[index] == b'a' { b'b' } else { b'a' };
        let altered = String::from_utf8(altered).expect("ascii");
        assert!(
            !is_well_formed("pat_authd_", &altered),
            "one changed character"
        );
        assert!(!is_well_formed("pat_other_", &token), "another prefix");
        assert!(
            !is_well_formed("pat_authd_", &token[..token.len() - 1]),
            "truncated"
        );
        assert!(
            !is_well_formed("pat_authd_", &token.to_uppercase()),
            "wrong case"
        );
        assert!(!is_well_formed("pat_authd_", "pat_authd_"), "empty");
    }

    #[test]
    fn the_checksum_covers_the_prefix() {
        let token = generate("corp_");
        let moved = format!("pat_authd_{}", &token["corp_".len()..]);
        assert!(!is_well_formed("pat_authd_", &moved));
    }
}
