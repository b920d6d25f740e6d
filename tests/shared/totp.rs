//! An independent TOTP (RFC 6238: HMAC-SHA-1 over the big-endian 30 s
//! step, dynamic truncation, 6 digits), so the server's own code is not
//! what checks it. One copy for the API and browser tests, the crash
//! harness and the benches (each includes it with `#[path]`).

use hmac::{Hmac, Mac};

pub fn totp_at(secret_base32: &str, step: u64) -> String {
    let secret = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, secret_base32)
        .expect("base32 secret");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&secret).expect("hmac key");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let value = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", value % 1_000_000)
}

pub fn current_step() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
        / 30
}
