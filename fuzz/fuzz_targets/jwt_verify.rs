//! JWT/JWS parsing and strict verification (`authd::crypto::jwt`): the
//! header reader, jsonwebtoken's decoding under our key choice, the claim
//! checks, and JWK sets read into a `Verifier`. No input panics, and no
//! input forges: whatever verifies carries exactly the claims our key
//! signed, or (mode 5, claims of the fuzzer's choosing signed with our key)
//! claims that pass every documented check.
//!
//! Input: byte 0 picks the mode, the rest is the fuzz text.
#![no_main]

use std::sync::OnceLock;

use authd::crypto::jwt::{Expectations, KeyAlgorithm, KeyPair, PublicJwk, TokenType, Verifier};
use authd_fuzz::jws::edited_token;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const ISSUER: &str = "http://localhost:9090";
const AUDIENCE: &str = "authd";
const NOW: i64 = 1_800_000_000;
const LEEWAY: i64 = 30;

struct Keys {
    ed25519: KeyPair,
    verifier: Verifier,
    /// A token each key signed, and its claims.
    genuine: Vec<(String, Value)>,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ed25519 = KeyPair::generate(KeyAlgorithm::EdDSA, NOW).expect("Ed25519 key");
        let rsa = KeyPair::generate(KeyAlgorithm::RS256, NOW).expect("RSA key");
        let jwks = [
            ed25519.public_jwk().expect("jwk"),
            rsa.public_jwk().expect("jwk"),
        ];
        let verifier = Verifier::new(&jwks).expect("verifier");
        let claims =
            json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "u", "iat": NOW, "exp": NOW + 600});
        let genuine = [&ed25519, &rsa]
            .iter()
            .map(|key| {
                let token = key
                    .signer()
                    .expect("signer")
                    .sign(TokenType::Access, &claims)
                    .expect("sign");
                (token, claims.clone())
            })
            .collect();
        Keys {
            ed25519,
            verifier,
            genuine,
        }
    })
}

fn expectations() -> Expectations<'static> {
    Expectations {
        token_type: TokenType::Access,
        issuer: ISSUER,
        audience: AUDIENCE,
        now: NOW,
        leeway_seconds: LEEWAY,
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, which, fuzz @ ..] = data else {
        return;
    };
    let keys = keys();
    let (genuine, genuine_claims) = &keys.genuine[usize::from(*which) % keys.genuine.len()];
    let token = match mode % 7 {
        // A genuine token edited (authd_fuzz::jws).
        mode @ 0..=4 => edited_token(genuine, mode, usize::from(*which), fuzz),
        5 => {
            // Claims of the fuzzer's choosing, signed with our key: the
            // claim checks alone decide.
            let Ok(claims) = serde_json::from_slice::<Value>(fuzz) else {
                return;
            };
            let Ok(token) = keys
                .ed25519
                .signer()
                .expect("signer")
                .sign(TokenType::Access, &claims)
            else {
                return;
            };
            if let Ok(verified) = keys.verifier.verify::<Value>(&token, &expectations()) {
                check_accepted_claims(&verified);
            }
            return;
        }
        _ => {
            // A JWK set read into a verifier.
            if let Ok(jwks) = serde_json::from_slice::<Vec<PublicJwk>>(fuzz) {
                if let Ok(verifier) = Verifier::new(&jwks) {
                    let _ = verifier.verify::<Value>(genuine, &expectations());
                }
            }
            return;
        }
    };
    if let Ok(claims) = keys.verifier.verify::<Value>(&token, &expectations()) {
        assert_eq!(
            &claims, genuine_claims,
            "a token that is not ours verified: {token:?}"
        );
    }
});

/// What `Verifier::verify` promises about the claims of a token it accepts.
fn check_accepted_claims(claims: &Value) {
    assert_eq!(claims["iss"], ISSUER, "issuer of {claims}");
    let audience_ok = match &claims["aud"] {
        Value::String(aud) => aud == AUDIENCE,
        Value::Array(auds) => auds.iter().any(|aud| aud == AUDIENCE),
        _ => false,
    };
    assert!(audience_ok, "audience of {claims}");
    let exp = claims["exp"].as_f64().expect("a numeric exp");
    assert!(
        exp.floor() + (LEEWAY as f64) > NOW as f64,
        "expired: {claims}"
    );
    assert!(claims["iat"].is_number(), "iat of {claims}");
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().expect("a numeric nbf");
        assert!(
            nbf.ceil() <= (NOW + LEEWAY) as f64,
            "not yet valid: {claims}"
        );
    }
}
