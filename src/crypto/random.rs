//! The one source of randomness: the operating system's CSPRNG.

use rand::rngs::OsRng;
use rand::RngCore;

pub fn bytes<const N: usize>() -> [u8; N] {
    let mut buffer = [0u8; N];
    OsRng.fill_bytes(&mut buffer);
    buffer
}

/// 32 random bytes as 64 lowercase hex characters.
pub fn hex_token() -> String {
    hex::encode(bytes::<32>())
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_tokens_are_64_lowercase_hex_and_distinct() {
        let first = super::hex_token();
        let second = super::hex_token();
        assert_eq!(first.len(), 64);
        assert!(first
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(first, second);
    }
}
