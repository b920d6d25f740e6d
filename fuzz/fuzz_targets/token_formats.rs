//! The offline token formats: PATs (`<prefix><52 base32><7 base32 CRC>`,
//! `authd::crypto::pat`), refresh tokens (opaque base64url, looked up by
//! their digest), the ids a session cookie and the URLs carry (UUIDs,
//! `org_<ULID>`). No input panics; a PAT's checksum catches every changed
//! character; an id that parses prints back as what parses to it again.
//!
//! Input: byte 0 picks the mode, the rest is the fuzz text.
#![no_main]

use authd::crypto::pat;
use authd::domain::{OrgId, SessionId, UserId};
use libfuzzer_sys::fuzz_target;

const PREFIX: &str = "pat_authd_";

fuzz_target!(|data: &[u8]| {
    let [mode, fuzz @ ..] = data else {
        return;
    };
    let text = String::from_utf8_lossy(fuzz);
    match mode % 4 {
        0 => {
            // Any text as a PAT, under the default prefix and under a prefix
            // taken from its own first bytes.
            for prefix in [PREFIX, text.get(..text.len().min(12)).unwrap_or("")] {
                if pat::is_well_formed(prefix, &text) {
                    let body = &text[prefix.len()..];
                    assert_eq!(body.len(), 59, "{text:?}");
                    assert!(
                        body.bytes()
                            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)),
                        "{text:?}"
                    );
                }
            }
        }
        1 => {
            // A genuine PAT with one character changed at a place and to a
            // value the fuzzer picks: never well-formed.
            let token = pat::generate(PREFIX);
            let [at, value, ..] = fuzz else {
                return;
            };
            let mut altered = token.clone().into_bytes();
            let at = PREFIX.len() + usize::from(*at) % (altered.len() - PREFIX.len());
            altered[at] = *value;
            if let Ok(altered) = String::from_utf8(altered) {
                if altered != token {
                    assert!(
                        !pat::is_well_formed(PREFIX, &altered),
                        "one changed character passed the checksum: {altered}"
                    );
                }
            }
        }
        2 => {
            // A refresh token is whatever the client sent; its digest is
            // the lookup key, so any text must hash.
            let digest = authd::service::tokens::refresh_token_digest(&text);
            assert_eq!(digest.len(), 64);
        }
        _ => {
            // The ids in session cookies (`<session id>.<secret>`) and URLs.
            let (id, _secret) = text.split_once('.').unwrap_or((&text, ""));
            if let Some(session) = SessionId::parse(id) {
                assert_eq!(SessionId::parse(&session.to_string()), Some(session));
            }
            if let Some(user) = UserId::parse(&text) {
                assert_eq!(UserId::parse(&user.to_string()), Some(user));
            }
            if let Some(org) = OrgId::parse(&text) {
                assert_eq!(OrgId::parse(org.as_str()).as_ref(), Some(&org));
            }
        }
    }
});
