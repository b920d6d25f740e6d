//! Signed links and tags (`authd::crypto::signed_link`): the `sig` of an
//! approval link (`?action=&exp=&sig=`), the recovery and verification
//! tokens (`<exp>.<nonce>.<sig>`), the CSRF tag. No input panics, and
//! nothing verifies but this key's own signature (hex, either case) for
//! exactly that method, path, action and expiry, before it expires. The
//! query strings themselves go through the router in `http_bodies`.
//!
//! Input: byte 0 picks the mode; the rest is split on `\n` into fields.
#![no_main]

use authd::crypto::signed_link::LinkKey;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let [mode, fuzz @ ..] = data else {
        return;
    };
    let key = LinkKey::derive(&[7; 32]);
    let text = String::from_utf8_lossy(fuzz);
    let mut fields = text.split('\n');
    let mut next = || fields.next().unwrap_or("");
    match mode % 3 {
        0 => {
            // Every field from the fuzzer, `exp` parsed as the routes do.
            let (method, path, action, exp, sig) = (next(), next(), next(), next(), next());
            let Ok(exp) = exp.parse::<i64>() else {
                return;
            };
            if key.verify(method, path, action, exp, sig, NOW) {
                assert_eq!(
                    sig.to_ascii_lowercase(),
                    key.sign(method, path, action, exp)
                );
                assert!(exp > NOW);
            }
        }
        1 => {
            // A genuine link with its signature edited by the fuzzer.
            let (path, action, edit) = (next(), next(), next());
            let exp = NOW + 600;
            let genuine = key.sign("POST", path, action, exp);
            for sig in [
                format!("{genuine}{edit}"),
                format!("{edit}{genuine}"),
                genuine.replacen(&genuine[..edit.len().min(genuine.len())], edit, 1),
            ] {
                if key.verify("POST", path, action, exp, &sig, NOW) {
                    assert!(
                        sig.eq_ignore_ascii_case(&genuine),
                        "an edited signature verified: {sig}"
                    );
                }
            }
            assert!(key.verify("POST", path, action, exp, &genuine, NOW));
            assert!(
                !key.verify("POST", path, action, exp, &genuine, exp),
                "expired"
            );
        }
        _ => {
            let (message, tag) = (next(), next());
            if key.verify_tag(message, tag) {
                assert_eq!(tag.to_ascii_lowercase(), key.tag(message));
            }
            assert!(key.verify_tag(message, &key.tag(message)));
        }
    }
});
