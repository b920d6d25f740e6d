//! Edits of a genuine compact JWS that the token targets (`jwt_verify`,
//! `upstream_id_token`) share, so that their modes 0–4 mean the same bytes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The token for `mode` 0–4: the fuzz text whole (0); one segment of
/// `genuine` (header, claims, signature) replaced by the base64url of the
/// fuzz bytes (1–3); or the segment `which` picks replaced by the fuzz text
/// itself (4).
pub fn edited_token(genuine: &str, mode: u8, which: usize, fuzz: &[u8]) -> String {
    let text = String::from_utf8_lossy(fuzz);
    match mode {
        0 => text.into_owned(),
        1..=3 => splice(
            genuine,
            usize::from(mode - 1),
            &URL_SAFE_NO_PAD.encode(fuzz),
        ),
        _ => splice(genuine, which % 3, &text),
    }
}

/// Replaces segment `index` of `token` with `segment`.
fn splice(token: &str, index: usize, segment: &str) -> String {
    let mut segments: Vec<&str> = token.split('.').collect();
    segments[index] = segment;
    segments.join(".")
}
