//! What an upstream sign-in provider sends back (`authd::crypto::upstream`):
//! its ID token, checked against its JWKS and what authd expects, and the
//! JWKS itself. No input panics, and no input forges: whatever verifies
//! carries exactly the claims the provider's key signed, or (mode 5, claims
//! of the fuzzer's choosing signed with that key) claims that pass every
//! documented check — issuer (an alias, or Microsoft's `{tenantid}` filled
//! from `tid`), audience and `azp`, `exp` and `iat` with the leeway, the
//! nonce sent, a subject.
//!
//! Input: byte 0 picks the mode, byte 1 the key (and in mode 5 the issuer
//! form), the rest is the fuzz text.
#![no_main]

use std::sync::OnceLock;

use authd::crypto::jwt::{KeyAlgorithm, KeyPair, TokenType};
use authd::crypto::upstream::{
    names_unknown_key, verify_id_token, IdTokenExpectations, UpstreamKeys, LEEWAY_SECONDS,
};
use authd_fuzz::jws::edited_token;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const ISSUER: &str = "https://accounts.example.com";
const TENANT_ISSUER: &str = "https://login.example.com/{tenantid}/v2.0";
const ALIASES: &[&str] = &["accounts.example.com"];
const CLIENT_ID: &str = "authd-client";
const NONCE: &str = "n-0S6_WzA2Mj";
const NOW: i64 = 1_800_000_000;

/// The provider: two signing keys (EdDSA, RS256), the JWKS publishing
/// them, and a genuine ID token from each with its claims.
struct Provider {
    keys: Vec<KeyPair>,
    jwks: UpstreamKeys,
    genuine: Vec<(String, Value)>,
}

fn provider() -> &'static Provider {
    static PROVIDER: OnceLock<Provider> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        let keys = [KeyAlgorithm::EdDSA, KeyAlgorithm::RS256]
            .map(|algorithm| KeyPair::generate(algorithm, NOW).expect("key"))
            .to_vec();
        let published: Vec<Value> = keys
            .iter()
            .map(|key| serde_json::to_value(key.public_jwk().expect("jwk")).expect("json"))
            .collect();
        let jwks = serde_json::from_value(json!({ "keys": published })).expect("a JWKS");
        let claims = json!({
            "iss": ISSUER, "aud": CLIENT_ID, "sub": "248289761001", "iat": NOW,
            "exp": NOW + 600, "nonce": NONCE, "email": "ada@example.com",
            "email_verified": true,
        });
        let genuine = keys
            .iter()
            .map(|key| (sign(key, &claims).expect("sign"), claims.clone()))
            .collect();
        Provider {
            keys,
            jwks,
            genuine,
        }
    })
}

fn sign(key: &KeyPair, claims: &Value) -> Option<String> {
    key.signer().ok()?.sign(TokenType::Id, claims).ok()
}

fn expectations(issuer: &str) -> IdTokenExpectations<'_> {
    IdTokenExpectations {
        issuer,
        issuer_aliases: ALIASES,
        client_id: CLIENT_ID,
        nonce: NONCE,
        now: NOW,
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, which, fuzz @ ..] = data else {
        return;
    };
    let provider = provider();
    let which = usize::from(*which);
    let (genuine, genuine_claims) = &provider.genuine[which % provider.genuine.len()];
    let token = match mode % 7 {
        // A genuine token edited (authd_fuzz::jws).
        mode @ 0..=4 => edited_token(genuine, mode, which, fuzz),
        5 => {
            // Claims of the fuzzer's choosing, signed with the provider's
            // key: the claim checks alone decide.
            let Ok(claims) = serde_json::from_slice::<Value>(fuzz) else {
                return;
            };
            let Some(token) = sign(&provider.keys[which % provider.keys.len()], &claims) else {
                return;
            };
            let issuer = if which & 2 == 0 {
                ISSUER
            } else {
                TENANT_ISSUER
            };
            if let Ok(verified) = verify_id_token(&token, &provider.jwks, &expectations(issuer)) {
                // The claims as they travel: serialised, then read back.
                let sent = serde_json::to_vec(&claims).expect("claims serialise");
                let sent: Value = serde_json::from_slice(&sent).expect("claims read back");
                assert_eq!(Value::Object(verified.clone()), sent);
                check_accepted_claims(&verified, issuer);
            }
            return;
        }
        _ => {
            // The provider's JWKS, as the fuzzer writes it.
            if let Ok(jwks) = serde_json::from_slice::<UpstreamKeys>(fuzz) {
                let _ = names_unknown_key(genuine, &jwks);
                if let Ok(claims) = verify_id_token(genuine, &jwks, &expectations(ISSUER)) {
                    assert_eq!(&Value::Object(claims), genuine_claims);
                }
            }
            return;
        }
    };
    let _ = names_unknown_key(&token, &provider.jwks);
    if let Ok(claims) = verify_id_token(&token, &provider.jwks, &expectations(ISSUER)) {
        assert_eq!(
            &Value::Object(claims),
            genuine_claims,
            "a token the provider did not sign verified: {token:?}"
        );
    }
});

/// What `verify_id_token` promises about the claims of a token it accepts.
fn check_accepted_claims(claims: &serde_json::Map<String, Value>, issuer: &str) {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let iss = text("iss").expect("an issuer");
    let issuer_ok = ALIASES.contains(&iss)
        || match issuer.split_once("{tenantid}") {
            None => iss == issuer,
            Some((before, after)) => text("tid").is_some_and(|tenant| {
                !tenant.is_empty()
                    && tenant
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && iss == format!("{before}{tenant}{after}")
            }),
        };
    assert!(issuer_ok, "issuer of {claims:?}");
    let audiences: Vec<&str> = match &claims["aud"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        other => panic!("audience {other}"),
    };
    assert!(audiences.contains(&CLIENT_ID), "audience of {claims:?}");
    if audiences.len() > 1 || text("azp").is_some() {
        assert_eq!(text("azp"), Some(CLIENT_ID), "azp of {claims:?}");
    }
    let exp = claims["exp"].as_i64().expect("an integer exp");
    assert!(
        exp.saturating_add(LEEWAY_SECONDS) > NOW,
        "expired: {claims:?}"
    );
    if let Some(iat) = claims.get("iat").and_then(Value::as_i64) {
        assert!(
            iat <= NOW + LEEWAY_SECONDS,
            "issued in the future: {claims:?}"
        );
    }
    assert_eq!(text("nonce"), Some(NONCE), "nonce of {claims:?}");
    assert!(
        text("sub").is_some_and(|sub| !sub.is_empty()),
        "sub of {claims:?}"
    );
}
