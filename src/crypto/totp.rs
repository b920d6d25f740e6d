//! RFC 6238 TOTP as authd uses it: SHA-1, 6 digits, 30-second steps, ±1
//! step of clock drift. The check reports *which* step matched, so the
//! caller can refuse a code whose step was already used (replay).

use totp_rs::{Algorithm, TOTP};

use crate::clock::UnixSeconds;

pub const STEP_SECONDS: u64 = 30;
pub const DIGITS: usize = 6;
/// 160 bits, the size RFC 4226 recommends for HMAC-SHA-1.
pub const SECRET_BYTES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("invalid TOTP parameters: {0}")]
    Parameters(String),
    #[error("could not render the QR code: {0}")]
    Qr(String),
}

fn totp(secret: &[u8], issuer: Option<String>, account: String) -> Result<TOTP, TotpError> {
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_SECONDS,
        secret.to_vec(),
        issuer,
        account,
    )
    .map_err(|error| TotpError::Parameters(error.to_string()))
}

pub fn new_secret() -> [u8; SECRET_BYTES] {
    super::random::bytes()
}

/// The secret as people type it into an authenticator app (RFC 4648 base32).
pub fn secret_base32(secret: &[u8]) -> String {
    base32::encode(base32::Alphabet::Rfc4648 { padding: false }, secret)
}

/// `otpauth://totp/<issuer>:<account>?secret=…&issuer=…`, for QR codes.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> Result<String, TotpError> {
    Ok(totp(secret, Some(issuer.to_owned()), account.to_owned())?.get_url())
}

/// `text` as a QR code in SVG, rendered by the `qrcode` crate.
pub fn qr_svg(text: &str) -> Result<String, TotpError> {
    let code =
        qrcode::QrCode::new(text.as_bytes()).map_err(|error| TotpError::Qr(error.to_string()))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

/// The time step (Unix time / 30) whose code equals `code`, looking at the
/// current step and one either side; `None` if no step matches.
pub fn matching_step(
    secret: &[u8],
    code: &str,
    now: UnixSeconds,
) -> Result<Option<u64>, TotpError> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let generator = totp(secret, None, String::new())?;
    let current = u64::try_from(now).unwrap_or(0) / STEP_SECONDS;
    let mut found = None;
    // Every candidate is compared, in constant time, so the answer's timing
    // does not say which step matched.
    for step in [current.saturating_sub(1), current, current + 1] {
        let expected = generator.generate(step * STEP_SECONDS);
        if bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            code.as_bytes(),
        )) {
            found = Some(step);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, with the RFC's 20-byte ASCII secret.
    #[test]
    fn the_rfc_6238_sha1_vectors_match() {
        let secret = b"12345678901234567890";
        for (time, expected) in [
            (59_i64, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            // The RFC lists 8-digit codes; the 6-digit code is their tail.
            assert_eq!(
                matching_step(secret, expected, time).expect("check"),
                Some(time as u64 / 30),
                "{time}"
            );
        }
    }

    #[test]
    fn one_step_either_side_matches_and_two_do_not() {
        let secret = new_secret();
        let generator = totp(&secret, None, String::new()).expect("totp");
        let now = 1_700_000_000_i64;
        let step = now as u64 / 30;
        for offset in [-1_i64, 0, 1] {
            let code = generator.generate((step as i64 + offset) as u64 * 30);
            assert_eq!(
                matching_step(&secret, &code, now).expect("check"),
                Some((step as i64 + offset) as u64)
            );
        }
        for offset in [-3_i64, -2, 2, 3] {
            let code = generator.generate((step as i64 + offset) as u64 * 30);
            assert_eq!(
                matching_step(&secret, &code, now).expect("check"),
                None,
                "{offset} steps away"
            );
        }
        assert_eq!(matching_step(&secret, "12345", now).expect("check"), None);
        assert_eq!(matching_step(&secret, "abcdef", now).expect("check"), None);
    }

    #[test]
    fn the_uri_and_qr_code_carry_issuer_and_account() {
        let secret = new_secret();
        let uri = otpauth_uri(&secret, "authd", "me@example.com").expect("uri");
        assert!(
            uri.starts_with("otpauth://totp/authd:me%40example.com?"),
            "{uri}"
        );
        assert!(
            uri.contains(&format!("secret={}", secret_base32(&secret))),
            "{uri}"
        );
        assert!(uri.contains("issuer=authd"), "{uri}");
        let svg = qr_svg(&uri).expect("svg");
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{svg}");
    }
}
