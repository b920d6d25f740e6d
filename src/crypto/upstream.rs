//! Tokens of upstream sign-in providers: checking an ID token an OpenID
//! Provider (Google, Microsoft, Apple, any OIDC server) sent back — its
//! signature against the provider's JWKS, then `iss`, `aud`/`azp`, `exp`,
//! `iat` and `nonce` against what authd expects, with time as a parameter —
//! and making Apple's client secret, an ES256 JWT signed with the team's
//! private key.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

/// One public key of a provider's JWKS (RFC 7517), only the members authd
/// reads. A small type of its own rather than jsonwebtoken's `Jwk`, whose
/// deserialisation of every key type and parameter costs the static binary
/// far more than these few fields.
#[derive(Debug, Clone, Deserialize)]
pub struct UpstreamKey {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

/// A provider's JWKS. Keys authd cannot use (another `kty`, `use: "enc"`)
/// are kept but never match.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UpstreamKeys {
    #[serde(default)]
    pub keys: Vec<UpstreamKey>,
}

impl UpstreamKeys {
    pub fn find(&self, kid: &str) -> Option<&UpstreamKey> {
        self.keys.iter().find(|key| key.kid.as_deref() == Some(kid))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn text(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl UpstreamKey {
    /// The key for `alg`, if it is one of that family and for signatures.
    fn decoding_key(&self, alg: Algorithm) -> Option<DecodingKey> {
        if self.usage.as_deref().is_some_and(|usage| usage != "sig") {
            return None;
        }
        if self
            .alg
            .as_deref()
            .is_some_and(|named| named != format!("{alg:?}"))
        {
            return None;
        }
        match (self.kty.as_str(), alg) {
            ("RSA", Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256) => {
                DecodingKey::from_rsa_components(text(&self.n)?, text(&self.e)?).ok()
            }
            ("EC", Algorithm::ES256) if self.crv.as_deref() == Some("P-256") => {
                DecodingKey::from_ec_components(text(&self.x)?, text(&self.y)?).ok()
            }
            ("EC", Algorithm::ES384) if self.crv.as_deref() == Some("P-384") => {
                DecodingKey::from_ec_components(text(&self.x)?, text(&self.y)?).ok()
            }
            ("OKP", Algorithm::EdDSA) if self.crv.as_deref() == Some("Ed25519") => {
                DecodingKey::from_ed_components(text(&self.x)?).ok()
            }
            _ => None,
        }
    }
}

/// How far clocks may disagree, in seconds.
pub const LEEWAY_SECONDS: i64 = 60;

/// The longest ID token read (a header, claims and a signature).
const MAX_ID_TOKEN_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdTokenError {
    #[error("the ID token is malformed")]
    Malformed,
    #[error("the ID token uses an algorithm authd does not accept")]
    Algorithm,
    /// No key of the provider's JWKS has the token's `kid`.
    #[error("the ID token is signed by a key the provider does not publish")]
    UnknownKey,
    #[error("the ID token's signature does not verify")]
    Signature,
    #[error("the ID token is from another issuer")]
    Issuer,
    #[error("the ID token is for another client")]
    Audience,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token was issued in the future")]
    IssuedInFuture,
    #[error("the ID token's nonce is not the one sent")]
    Nonce,
    #[error("the ID token has no subject")]
    Subject,
}

impl IdTokenError {
    /// A short machine-readable reason for the audit record.
    pub fn code(&self) -> &'static str {
        match self {
            IdTokenError::Malformed => "id_token_malformed",
            IdTokenError::Algorithm => "id_token_algorithm",
            IdTokenError::UnknownKey => "id_token_unknown_key",
            IdTokenError::Signature => "id_token_signature",
            IdTokenError::Issuer => "id_token_issuer",
            IdTokenError::Audience => "id_token_audience",
            IdTokenError::Expired => "id_token_expired",
            IdTokenError::IssuedInFuture => "id_token_issued_in_future",
            IdTokenError::Nonce => "id_token_nonce",
            IdTokenError::Subject => "id_token_subject",
        }
    }
}

/// What the ID token must say.
pub struct IdTokenExpectations<'a> {
    /// The issuer of the discovery document. Microsoft's multi-tenant
    /// endpoints (`common`, `organizations`, `consumers`) publish
    /// `https://login.microsoftonline.com/{tenantid}/v2.0`: the token's `tid`
    /// takes the place of `{tenantid}`.
    pub issuer: &'a str,
    /// Other spellings of the same issuer (Google: `accounts.google.com`).
    pub issuer_aliases: &'a [&'a str],
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub now: i64,
}

const ACCEPTED_ALGORITHMS: [Algorithm; 7] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Whether `token` names a `kid` that `keys` lacks: then the provider may
/// have rotated, and its JWKS is worth fetching again.
pub fn names_unknown_key(token: &str, keys: &UpstreamKeys) -> bool {
    match jsonwebtoken::decode_header(token) {
        Ok(header) => header.kid.is_some_and(|kid| keys.find(&kid).is_none()),
        Err(_) => false,
    }
}

/// Verifies the signature, then every claim; answers the claims.
pub fn verify_id_token(
    token: &str,
    keys: &UpstreamKeys,
    expected: &IdTokenExpectations<'_>,
) -> Result<Map<String, Value>, IdTokenError> {
    if token.len() > MAX_ID_TOKEN_BYTES {
        return Err(IdTokenError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| IdTokenError::Malformed)?;
    if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
        return Err(IdTokenError::Algorithm);
    }
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid),
        // Without a kid, only a set of one key is unambiguous.
        None if keys.len() == 1 => keys.keys.first(),
        None => None,
    }
    .ok_or(IdTokenError::UnknownKey)?;
    let key = jwk
        .decoding_key(header.alg)
        .ok_or(IdTokenError::Algorithm)?;
    let mut validation = Validation::new(header.alg);
    // Time is a parameter: every claim is checked below, not by the library.
    validation.required_spec_claims = std::collections::HashSet::new();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => IdTokenError::Signature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => IdTokenError::Algorithm,
            _ => IdTokenError::Malformed,
        })?
        .claims;
    let Value::Object(claims) = claims else {
        return Err(IdTokenError::Malformed);
    };
    check_claims(&claims, expected)?;
    Ok(claims)
}

fn check_claims(
    claims: &Map<String, Value>,
    expected: &IdTokenExpectations<'_>,
) -> Result<(), IdTokenError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let issuer = text("iss").ok_or(IdTokenError::Issuer)?;
    let wanted_issuer = if expected.issuer.contains("{tenantid}") {
        let tenant = text("tid").ok_or(IdTokenError::Issuer)?;
        if tenant.is_empty()
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(IdTokenError::Issuer);
        }
        expected.issuer.replace("{tenantid}", tenant)
    } else {
        expected.issuer.to_owned()
    };
    if issuer != wanted_issuer && !expected.issuer_aliases.contains(&issuer) {
        return Err(IdTokenError::Issuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => return Err(IdTokenError::Audience),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(IdTokenError::Audience);
    }
    // OpenID Connect Core §3.1.3.7: with several audiences, `azp` names us.
    if audiences.len() > 1 && text("azp") != Some(expected.client_id) {
        return Err(IdTokenError::Audience);
    }
    if let Some(azp) = text("azp") {
        if azp != expected.client_id {
            return Err(IdTokenError::Audience);
        }
    }
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    let expires = number("exp").ok_or(IdTokenError::Expired)?;
    // Saturating: `exp` is the provider's number, and may be i64::MAX.
    if expires.saturating_add(LEEWAY_SECONDS) <= expected.now {
        return Err(IdTokenError::Expired);
    }
    if number("iat").is_some_and(|issued| issued > expected.now.saturating_add(LEEWAY_SECONDS)) {
        return Err(IdTokenError::IssuedInFuture);
    }
    let nonce = text("nonce").ok_or(IdTokenError::Nonce)?;
    if !super::secrets_equal(nonce.as_bytes(), &super::sha256(expected.nonce.as_bytes())) {
        return Err(IdTokenError::Nonce);
    }
    if text("sub").is_none_or(str::is_empty) {
        return Err(IdTokenError::Subject);
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("the Apple private key is not a P-256 PKCS#8 PEM key")]
pub struct AppleKeyError;

/// The DER inside a `-----BEGIN PRIVATE KEY-----` PEM (PKCS#8, what
/// Apple's `.p8` file holds). Read here rather than with jsonwebtoken's
/// PEM support, which would link an ASN.1 library (and its big-integer and
/// time crates) into the binary for this one file.
fn pkcs8_der(pem: &[u8]) -> Result<Vec<u8>, AppleKeyError> {
    use base64::Engine;
    let text = std::str::from_utf8(pem).map_err(|_| AppleKeyError)?;
    let body = text
        .trim()
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|rest| rest.strip_suffix("-----END PRIVATE KEY-----"))
        .ok_or(AppleKeyError)?;
    let base64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(base64)
        .map_err(|_| AppleKeyError)
}

/// Apple's client secret (Sign in with Apple, "Creating a client secret"):
/// an ES256 JWT with `kid` = the key id, `iss` = the team id, `sub` = the
/// client (Services) id, `aud` = `https://appleid.apple.com`, valid until
/// `expires_at` (Apple accepts at most six months).
pub fn apple_client_secret(
    team_id: &str,
    key_id: &str,
    client_id: &str,
    private_key_pem: &[u8],
    now: i64,
    expires_at: i64,
) -> Result<String, AppleKeyError> {
    let key = EncodingKey::from_ec_der(&pkcs8_der(private_key_pem)?);
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key_id.to_owned());
    let claims = serde_json::json!({
        "iss": team_id,
        "iat": now,
        "exp": expires_at,
        "aud": "https://appleid.apple.com",
        "sub": client_id,
    });
    jsonwebtoken::encode(&header, &claims, &key).map_err(|_| AppleKeyError)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expectations<'a>(issuer: &'a str) -> IdTokenExpectations<'a> {
        IdTokenExpectations {
            issuer,
            issuer_aliases: &[],
            client_id: "app",
            nonce: "n-1",
            now: 1_000,
        }
    }

    fn claims(json: Value) -> Map<String, Value> {
        json.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn claims_are_checked_one_by_one() {
        let good = serde_json::json!({"iss": "https://idp", "aud": "app", "exp": 2_000, "iat": 900, "nonce": "n-1", "sub": "u"});
        assert_eq!(
            check_claims(&claims(good.clone()), &expectations("https://idp")),
            Ok(())
        );
        let with = |key: &str, value: Value| {
            let mut changed = claims(good.clone());
            changed.insert(key.to_owned(), value);
            check_claims(&changed, &expectations("https://idp"))
        };
        assert_eq!(
            with("iss", "https://other".into()),
            Err(IdTokenError::Issuer)
        );
        assert_eq!(with("aud", "other".into()), Err(IdTokenError::Audience));
        assert_eq!(
            with("aud", serde_json::json!(["app", "other"])),
            Err(IdTokenError::Audience),
            "several audiences need azp"
        );
        assert_eq!(with("exp", 900.into()), Err(IdTokenError::Expired));
        // Found by fuzz/fuzz_targets/upstream_id_token.rs: `exp` near
        // i64::MAX overflowed the leeway addition (a panic where overflow
        // is checked, an expired token where it wraps).
        assert_eq!(with("exp", i64::MAX.into()), Ok(()));
        assert_eq!(
            with("iat", i64::MAX.into()),
            Err(IdTokenError::IssuedInFuture)
        );
        assert_eq!(with("iat", 2_000.into()), Err(IdTokenError::IssuedInFuture));
        assert_eq!(with("nonce", "n-2".into()), Err(IdTokenError::Nonce));
        assert_eq!(with("sub", "".into()), Err(IdTokenError::Subject));
    }

    #[test]
    fn a_microsoft_multi_tenant_issuer_takes_the_tokens_tenant() {
        let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
        let token = |iss: &str, tid: &str| {
            claims(
                serde_json::json!({"iss": iss, "tid": tid, "aud": "app", "exp": 2_000, "nonce": "n-1", "sub": "u"}),
            )
        };
        let tenant = "9188040d-6c67-4c5b-b112-36a304b66dad";
        let issuer = format!("https://login.microsoftonline.com/{tenant}/v2.0");
        assert_eq!(
            check_claims(&token(&issuer, tenant), &expectations(template)),
            Ok(())
        );
        assert_eq!(
            check_claims(&token(&issuer, "another-tenant"), &expectations(template)),
            Err(IdTokenError::Issuer)
        );
    }
}
