//! JSON Web Token signing and verification for authd.
//!
//! This module owns the token signing keys (generation, storage encoding and
//! their public JWK form), the JWKS document that resource servers fetch, the
//! `Signer` that issues tokens and the `Verifier` that accepts them. Everything
//! that decides whether a token is trustworthy lives here, so the rules are
//! stated once: the key is chosen by `kid`, the header algorithm must be the
//! algorithm of that key, the signature must verify, and the registered claims
//! are checked against a caller-supplied clock.
//!
//! Private key material is held as PKCS#8 DER in a zeroising buffer and is
//! never written to `Debug` output or error messages. Its storage form,
//! [`StoredKeyPair`], carries it only sealed with a key derived from the
//! server secret: a copy of the database alone cannot sign tokens.
//!
//! Tokens say what they are in the header `typ`: access tokens `at+jwt`
//! (RFC 9068), ID tokens `JWT`. Verification states the type it expects and
//! refuses the other, so an ID token is never taken for an access token.

use std::collections::{HashMap, HashSet};
use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::rngs::OsRng;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::der::zeroize::Zeroizing;
use rsa::pkcs8::SecretDocument;
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::sealed::SealingKey;

/// The RSA modulus size used for new keys and the smallest one we accept.
const RSA_BITS: usize = 2048;

/// Tokens longer than this are rejected before any decoding work is done.
/// Our own tokens are a few hundred bytes; the cap only stops a caller from
/// making us base64-decode and parse arbitrarily large input.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Every way signing, key handling or verification can fail.
///
/// Messages are fixed strings on purpose: they never echo the token, its
/// claims or any key material, so they are safe to log and to return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// The token is not a well-formed compact JWS with a JSON header and payload.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The token has no `kid`, or its `kid` is not in the verification set.
    #[error("token is not signed by a known key")]
    UnknownKey,
    /// The header `alg` is not the algorithm of the key named by `kid`.
    #[error("token algorithm does not match its key")]
    AlgorithmMismatch,
    /// The signature does not verify under the key named by `kid`.
    #[error("token signature is invalid")]
    BadSignature,
    /// `now` is at or past `exp` plus leeway.
    #[error("token has expired")]
    Expired,
    /// `now` plus leeway is before `nbf`.
    #[error("token is not valid yet")]
    NotYetValid,
    /// A registered claim that this codebase requires is absent.
    #[error("token is missing the {0} claim")]
    MissingClaim(&'static str),
    /// A registered claim is present but has the wrong JSON type.
    #[error("token claim {0} has an invalid value")]
    InvalidClaim(&'static str),
    /// `iss` is not exactly the expected issuer.
    #[error("token issuer is not the expected issuer")]
    WrongIssuer,
    /// `aud` does not name the expected audience.
    #[error("token audience does not include the expected audience")]
    WrongAudience,
    /// The verified claims do not deserialize into the caller's claims type.
    #[error("token claims do not have the expected shape")]
    ClaimsShape,
    /// The operating system could not produce a new key.
    #[error("signing key generation failed")]
    KeyGeneration,
    /// A stored private key could not be encoded or decoded.
    #[error("signing key encoding is invalid: {0}")]
    KeyEncoding(&'static str),
    /// A public JWK given to the verifier is unusable.
    #[error("public key is unusable: {0}")]
    InvalidPublicKey(&'static str),
    /// The header `typ` is absent or names another kind of token.
    #[error("token is not of the expected type")]
    WrongType,
    /// A stored private key could not be sealed, or opened with this
    /// server's secret.
    #[error("signing key cannot be sealed or opened: {0}")]
    Sealing(&'static str),
    /// Producing a signed token failed.
    #[error("token signing failed: {0}")]
    Signing(&'static str),
}

/// The signature algorithms authd issues tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over a 2048-bit key.
    RS256,
    /// Ed25519.
    EdDSA,
}

impl KeyAlgorithm {
    /// The JOSE `alg` name, as it appears in JWT headers and JWKs.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::RS256 => "RS256",
            KeyAlgorithm::EdDSA => "EdDSA",
        }
    }

    /// An algorithm by its JOSE name (`RS256`, `EdDSA`).
    pub fn parse(text: &str) -> Option<Self> {
        [Self::RS256, Self::EdDSA]
            .into_iter()
            .find(|algorithm| algorithm.as_str() == text)
    }

    fn jwt_algorithm(self) -> Algorithm {
        match self {
            KeyAlgorithm::RS256 => Algorithm::RS256,
            KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        }
    }
}

/// What a token is, as its header `typ` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// An OAuth access token: `typ: at+jwt` (RFC 9068 §2.1).
    Access,
    /// An OpenID Connect ID token: `typ: JWT`.
    Id,
}

impl TokenType {
    /// The `typ` value written into the header.
    pub fn header_value(self) -> &'static str {
        match self {
            TokenType::Access => "at+jwt",
            TokenType::Id => "JWT",
        }
    }

    /// `typ` is a media type: case-insensitive, and `application/` may be
    /// left out (RFC 7515 §4.1.9), so `application/at+jwt` is an access token
    /// too (RFC 9068 §4).
    fn is_named_by(self, typ: &str) -> bool {
        let bare = match typ.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
            _ => typ,
        };
        bare.eq_ignore_ascii_case(self.header_value())
    }
}

/// A signing key in memory. It has no serialized form of its own: what is
/// stored is a [`StoredKeyPair`], with the private key sealed.
#[derive(Clone)]
pub struct KeyPair {
    /// The RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// The algorithm this key signs with.
    pub algorithm: KeyAlgorithm,
    // SecretDocument zeroes its buffer on drop, so copies of the private key
    // do not linger in freed memory after a KeyPair goes away.
    private_key: SecretDocument,
    /// Unix seconds at which the key was created; the caller supplies the clock.
    pub created_at: i64,
}

/// A signing key as the database keeps it: the public facts in clear, the
/// PKCS#8 private key sealed (ChaCha20-Poly1305 under a key derived from the
/// server secret, bound to the kid and algorithm so that a sealed key cannot
/// be moved to another record).
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredKeyPair {
    /// The RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// The algorithm this key signs with.
    pub algorithm: KeyAlgorithm,
    /// Unix seconds at which the key was created.
    pub created_at: i64,
    #[serde(
        default,
        rename = "private_key_sealed",
        skip_serializing_if = "Option::is_none",
        with = "sealed_base64"
    )]
    sealed_private_key: Option<Vec<u8>>,
    /// How versions before sealing stored the key: read so that it can be
    /// sealed, and never written (serializing a record that still holds it
    /// fails rather than write a key in clear or silently drop it).
    #[serde(
        default,
        rename = "private_key_pkcs8",
        skip_serializing_if = "Option::is_none",
        serialize_with = "refuse_clear_key",
        deserialize_with = "pkcs8_base64::deserialize_optional"
    )]
    clear_private_key: Option<SecretDocument>,
}

/// What the sealed private key is bound to besides the server secret.
fn sealing_context(kid: &str, algorithm: KeyAlgorithm) -> Vec<u8> {
    format!("authd signing key\n{kid}\n{}", algorithm.as_str()).into_bytes()
}

impl StoredKeyPair {
    /// Whether the private key is still in clear (a file from before sealing).
    pub fn in_clear(&self) -> bool {
        self.clear_private_key.is_some()
    }

    /// The usable key: the sealed private key opened with `sealing`, or for
    /// a record from before sealing, its clear key.
    pub fn open(&self, sealing: &SealingKey) -> Result<KeyPair, JwtError> {
        let private_key = match (&self.clear_private_key, &self.sealed_private_key) {
            (Some(clear), _) => clear.clone(),
            (None, Some(sealed)) => {
                let der = Zeroizing::new(
                    sealing
                        .open(sealed, &sealing_context(&self.kid, self.algorithm))
                        .map_err(|_| {
                            JwtError::Sealing(
                                "not sealed with this server's secret (server.secret)",
                            )
                        })?,
                );
                SecretDocument::try_from(der.as_slice())
                    .map_err(|_| JwtError::KeyEncoding("sealed key is not valid DER"))?
            }
            (None, None) => return Err(JwtError::KeyEncoding("stored key has no private key")),
        };
        Ok(KeyPair {
            kid: self.kid.clone(),
            algorithm: self.algorithm,
            private_key,
            created_at: self.created_at,
        })
    }
}

impl fmt::Debug for StoredKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKeyPair")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("sealed", &self.sealed_private_key.is_some())
            .field("in_clear", &self.in_clear())
            .finish()
    }
}

fn refuse_clear_key<S: serde::Serializer>(
    _: &Option<SecretDocument>,
    _: S,
) -> Result<S::Ok, S::Error> {
    Err(serde::ser::Error::custom(
        "a signing key is never written in clear; seal it first",
    ))
}

/// Serde adapter for the sealed bytes as standard base64.
mod sealed_base64 {
    use super::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        sealed: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match sealed {
            Some(bytes) => serializer.serialize_str(&STANDARD.encode(bytes)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|encoded| {
                STANDARD
                    .decode(encoded.as_bytes())
                    .map_err(|_| serde::de::Error::custom("sealed private key is not valid base64"))
            })
            .transpose()
    }
}

impl KeyPair {
    /// The storage form: the private key sealed with `sealing`.
    pub fn seal(&self, sealing: &SealingKey) -> Result<StoredKeyPair, JwtError> {
        let sealed = sealing
            .seal(
                self.private_key.as_bytes(),
                &sealing_context(&self.kid, self.algorithm),
            )
            .map_err(|_| JwtError::Sealing("sealing failed"))?;
        Ok(StoredKeyPair {
            kid: self.kid.clone(),
            algorithm: self.algorithm,
            created_at: self.created_at,
            sealed_private_key: Some(sealed),
            clear_private_key: None,
        })
    }

    /// Generates a fresh key from the operating system's RNG: RSA-2048 with
    /// e = 65537 for `RS256`, or Ed25519 for `EdDSA`.
    pub fn generate(algorithm: KeyAlgorithm, created_at: i64) -> Result<KeyPair, JwtError> {
        let (private_key, public) = match algorithm {
            KeyAlgorithm::RS256 => {
                // RsaPrivateKey::new always uses the public exponent 65537.
                let key = RsaPrivateKey::new(&mut OsRng, RSA_BITS)
                    .map_err(|_| JwtError::KeyGeneration)?;
                let der = rsa::pkcs8::EncodePrivateKey::to_pkcs8_der(&key)
                    .map_err(|_| JwtError::KeyEncoding("RSA key could not be encoded"))?;
                (der, rsa_public_params(&key))
            }
            KeyAlgorithm::EdDSA => {
                let key = ed25519_dalek::SigningKey::generate(&mut OsRng);
                let der = key
                    .to_pkcs8_der()
                    .map_err(|_| JwtError::KeyEncoding("Ed25519 key could not be encoded"))?;
                (der, ed25519_public_params(&key))
            }
        };
        Ok(KeyPair {
            kid: thumbprint(&public),
            algorithm,
            private_key,
            created_at,
        })
    }

    /// The public half of this key as an RFC 7517 JWK, ready for the JWKS document.
    pub fn public_jwk(&self) -> Result<PublicJwk, JwtError> {
        let params = match self.algorithm {
            KeyAlgorithm::RS256 => rsa_public_params(&self.rsa_private_key()?),
            KeyAlgorithm::EdDSA => ed25519_public_params(&self.ed25519_private_key()?),
        };
        Ok(PublicJwk {
            kid: self.kid.clone(),
            alg: self.algorithm,
            key_use: SIGNATURE_USE.to_owned(),
            params,
        })
    }

    /// Parses the private key once and returns a signer that can be shared
    /// across requests.
    pub fn signer(&self) -> Result<Signer, JwtError> {
        let key = match self.algorithm {
            KeyAlgorithm::RS256 => {
                // jsonwebtoken's RSA signer reads PKCS#1, not the PKCS#8 we store.
                let pkcs1 = self
                    .rsa_private_key()?
                    .to_pkcs1_der()
                    .map_err(|_| JwtError::KeyEncoding("RSA key could not be re-encoded"))?;
                EncodingKey::from_rsa_der(pkcs1.as_bytes())
            }
            KeyAlgorithm::EdDSA => {
                // Parsing here only proves the key is usable; jsonwebtoken's
                // Ed25519 signer reads PKCS#8 directly.
                self.ed25519_private_key()?;
                EncodingKey::from_ed_der(self.private_key.as_bytes())
            }
        };
        let header = |token_type: TokenType| {
            let mut header = Header::new(self.algorithm.jwt_algorithm());
            header.kid = Some(self.kid.clone());
            header.typ = Some(token_type.header_value().to_owned());
            header
        };
        Ok(Signer {
            kid: self.kid.clone(),
            algorithm: self.algorithm,
            access_header: header(TokenType::Access),
            id_header: header(TokenType::Id),
            key,
        })
    }

    fn rsa_private_key(&self) -> Result<RsaPrivateKey, JwtError> {
        let key: RsaPrivateKey =
            rsa::pkcs8::DecodePrivateKey::from_pkcs8_der(self.private_key.as_bytes())
                .map_err(|_| JwtError::KeyEncoding("stored key is not an RSA PKCS#8 key"))?;
        if key.size() * 8 < RSA_BITS {
            return Err(JwtError::KeyEncoding("stored RSA key is too small"));
        }
        Ok(key)
    }

    fn ed25519_private_key(&self) -> Result<ed25519_dalek::SigningKey, JwtError> {
        ed25519_dalek::SigningKey::from_pkcs8_der(self.private_key.as_bytes())
            .map_err(|_| JwtError::KeyEncoding("stored key is not an Ed25519 PKCS#8 key"))
    }
}

#[cfg(test)]
impl KeyPair {
    /// The record an earlier version stored: the private key in clear.
    pub(crate) fn stored_in_clear(&self) -> Value {
        serde_json::json!({
            "kid": self.kid,
            "algorithm": self.algorithm,
            "private_key_pkcs8": STANDARD.encode(self.private_key.as_bytes()),
            "created_at": self.created_at,
        })
    }

    pub(crate) fn private_key_der(&self) -> &[u8] {
        self.private_key.as_bytes()
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("private_key", &"[redacted]")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Serde adapter that reads the clear PKCS#8 document (standard base64)
/// that versions before sealing stored.
mod pkcs8_base64 {
    use super::{SecretDocument, Zeroizing, STANDARD};
    use base64::Engine as _;
    use serde::{Deserialize as _, Deserializer};

    pub fn deserialize_optional<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SecretDocument>, D::Error> {
        // The messages are fixed because base64 and DER errors quote the
        // offending input, which here is private key material.
        let Some(encoded) = Option::<String>::deserialize(deserializer)? else {
            return Ok(None);
        };
        let encoded = Zeroizing::new(encoded);
        let der = Zeroizing::new(
            STANDARD
                .decode(encoded.as_bytes())
                .map_err(|_| serde::de::Error::custom("private key is not valid base64"))?,
        );
        SecretDocument::try_from(der.as_slice())
            .map(Some)
            .map_err(|_| serde::de::Error::custom("private key is not valid DER"))
    }
}

/// The only `use` value authd publishes: these keys sign, they never encrypt.
const SIGNATURE_USE: &str = "sig";

/// RFC 7517 public key: RSA {kty:"RSA", n, e} or OKP {kty:"OKP", crv:"Ed25519", x}; always kid, alg ("RS256"/"EdDSA"), use:"sig". base64url without padding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    /// The RFC 7638 thumbprint of the key, used as the JWT `kid`.
    pub kid: String,
    /// The algorithm tokens signed by this key must declare.
    pub alg: KeyAlgorithm,
    /// Always `"sig"` for keys authd publishes.
    #[serde(rename = "use")]
    pub key_use: String,
    /// The key type and its public members.
    #[serde(flatten)]
    pub params: JwkParams,
}

/// The key-type-specific public members of a JWK, tagged by `kty`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kty")]
pub enum JwkParams {
    /// An RSA public key: modulus `n` and exponent `e`, big-endian base64url.
    #[serde(rename = "RSA")]
    Rsa {
        /// The modulus.
        n: String,
        /// The public exponent.
        e: String,
    },
    /// An octet key pair (RFC 8037); authd only uses `crv: "Ed25519"`.
    #[serde(rename = "OKP")]
    Okp {
        /// The curve name.
        crv: String,
        /// The 32-byte public key.
        x: String,
    },
}

impl PublicJwk {
    /// The RFC 7638 SHA-256 thumbprint of this key's required members.
    pub fn thumbprint(&self) -> String {
        thumbprint(&self.params)
    }

    // Built by hand rather than through serde_json::to_value so that the
    // JWKS document cannot fail; a test pins it to the derived Serialize output.
    fn to_json(&self) -> Value {
        let mut members = Map::new();
        members.insert("kid".to_owned(), Value::from(self.kid.as_str()));
        members.insert("alg".to_owned(), Value::from(self.alg.as_str()));
        members.insert("use".to_owned(), Value::from(self.key_use.as_str()));
        match &self.params {
            JwkParams::Rsa { n, e } => {
                members.insert("kty".to_owned(), Value::from("RSA"));
                members.insert("n".to_owned(), Value::from(n.as_str()));
                members.insert("e".to_owned(), Value::from(e.as_str()));
            }
            JwkParams::Okp { crv, x } => {
                members.insert("kty".to_owned(), Value::from("OKP"));
                members.insert("crv".to_owned(), Value::from(crv.as_str()));
                members.insert("x".to_owned(), Value::from(x.as_str()));
            }
        }
        Value::Object(members)
    }
}

/// The JWKS document served to resource servers: `{"keys":[...]}`.
pub fn jwks_document(keys: &[PublicJwk]) -> Value {
    let mut document = Map::new();
    document.insert(
        "keys".to_owned(),
        Value::Array(keys.iter().map(PublicJwk::to_json).collect()),
    );
    Value::Object(document)
}

fn rsa_public_params(key: &RsaPrivateKey) -> JwkParams {
    JwkParams::Rsa {
        n: URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        e: URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    }
}

fn ed25519_public_params(key: &ed25519_dalek::SigningKey) -> JwkParams {
    JwkParams::Okp {
        crv: "Ed25519".to_owned(),
        x: URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
    }
}

/// RFC 7638: SHA-256 over the required members in lexicographic order with no
/// whitespace, base64url without padding.
fn thumbprint(params: &JwkParams) -> String {
    // Value's Display writes a correctly escaped JSON string, which keeps the
    // canonical form right even for member values we did not produce.
    let quoted = |s: &str| Value::from(s).to_string();
    let canonical = match params {
        JwkParams::Rsa { n, e } => {
            format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, quoted(e), quoted(n))
        }
        JwkParams::Okp { crv, x } => {
            format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, quoted(crv), quoted(x))
        }
    };
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Issues tokens with one key. Cheap to clone and safe to share between tasks.
#[derive(Clone)]
pub struct Signer {
    kid: String,
    algorithm: KeyAlgorithm,
    // Built once: a header per token type, so signing never assembles one.
    access_header: Header,
    id_header: Header,
    key: EncodingKey,
}

impl Signer {
    /// The key id written into every token header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm written into every token header.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Signs `claims` into a compact JWT with header
    /// `{"typ":"at+jwt"|"JWT","alg":..,"kid":..}` as `token_type` says.
    pub fn sign<T: Serialize>(
        &self,
        token_type: TokenType,
        claims: &T,
    ) -> Result<String, JwtError> {
        let header = match token_type {
            TokenType::Access => &self.access_header,
            TokenType::Id => &self.id_header,
        };
        let token = jsonwebtoken::encode(header, claims, &self.key).map_err(|error| match error
            .kind()
        {
            ErrorKind::Json(_) => JwtError::Signing("claims could not be serialized"),
            _ => JwtError::Signing("the key could not produce a signature"),
        })?;
        crate::metrics::METRICS.tokens_issued.inc(match token_type {
            TokenType::Access => "access",
            TokenType::Id => "id",
        });
        Ok(token)
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// What a token must say about itself to be accepted.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    /// The kind of token the header `typ` must name.
    pub token_type: TokenType,
    /// The exact `iss` value required.
    pub issuer: &'a str,
    /// The audience that `aud` must name (as the string or inside the array).
    pub audience: &'a str,
    /// The current time in Unix seconds; the caller owns the clock.
    pub now: i64,
    /// Allowed clock skew applied to `exp` and `nbf`.
    pub leeway_seconds: i64,
}

/// Verifies tokens against a set of public keys, chosen by the token's kid.
#[derive(Clone)]
pub struct Verifier {
    keys: HashMap<String, VerificationKey>,
}

#[derive(Clone)]
struct VerificationKey {
    algorithm: KeyAlgorithm,
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    /// Builds a verifier from public JWKs, checking each key up front so a bad
    /// entry fails here rather than on the first request that names it.
    pub fn new(keys: &[PublicJwk]) -> Result<Verifier, JwtError> {
        let mut by_kid: HashMap<String, VerificationKey> = HashMap::new();
        let mut seen: HashMap<&str, &PublicJwk> = HashMap::new();
        for jwk in keys {
            // The same key listed twice is harmless, but two different keys
            // under one kid would make the choice of key ambiguous.
            if let Some(previous) = seen.insert(jwk.kid.as_str(), jwk) {
                if previous != jwk {
                    return Err(JwtError::InvalidPublicKey("two different keys share a kid"));
                }
                continue;
            }
            by_kid.insert(jwk.kid.clone(), verification_key(jwk)?);
        }
        Ok(Verifier { keys: by_kid })
    }

    /// Verifies `token` and returns its claims as `T`.
    ///
    /// The key is chosen by the header `kid`; the header `alg` must be that
    /// key's algorithm; the signature must verify; the header `typ` must name
    /// the expected type; then `exp`, `nbf`, `iat`, `iss` and `aud` are
    /// checked against `expect`.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        expect: &Expectations<'_>,
    ) -> Result<T, JwtError> {
        self.verify_with_kid(token, expect)
            .map(|(claims, _)| claims)
    }

    /// [`Verifier::verify`], also naming the key that signed the token.
    pub fn verify_with_kid<T: DeserializeOwned>(
        &self,
        token: &str,
        expect: &Expectations<'_>,
    ) -> Result<(T, String), JwtError> {
        let header = read_header(token)?;
        let kid = header.kid.ok_or(JwtError::UnknownKey)?;
        let entry = self.keys.get(&kid).ok_or(JwtError::UnknownKey)?;
        // Comparing against the key's own algorithm, never a list, is what
        // rules out "none", HMAC keyed with the public key, and RS256/EdDSA swaps.
        if header.alg != entry.algorithm.as_str() {
            return Err(JwtError::AlgorithmMismatch);
        }
        let data = jsonwebtoken::decode::<Value>(token, &entry.key, &entry.validation)
            .map_err(|error| map_decode_error(error.kind()))?;
        // Every token authd signs says its type, and one key signs both
        // kinds, so the signature alone does not tell an ID token from an
        // access token: the type does.
        if !header
            .typ
            .is_some_and(|typ| expect.token_type.is_named_by(&typ))
        {
            return Err(JwtError::WrongType);
        }
        let claims = data.claims;
        check_claims(&claims, expect)?;
        let claims = serde_json::from_value(claims).map_err(|_| JwtError::ClaimsShape)?;
        Ok((claims, kid))
    }

    /// Whether tokens signed by `kid` can still verify.
    pub fn knows(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }
}

/// The `kid` a token's header names, unverified: only to pick a key.
pub fn header_kid(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<(&str, KeyAlgorithm)> = self
            .keys
            .iter()
            .map(|(kid, entry)| (kid.as_str(), entry.algorithm))
            .collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
        f.debug_struct("Verifier").field("keys", &keys).finish()
    }
}

fn verification_key(jwk: &PublicJwk) -> Result<VerificationKey, JwtError> {
    if jwk.kid.is_empty() {
        return Err(JwtError::InvalidPublicKey("kid is empty"));
    }
    if jwk.key_use != SIGNATURE_USE {
        return Err(JwtError::InvalidPublicKey("use is not sig"));
    }
    let key = match (&jwk.params, jwk.alg) {
        (JwkParams::Rsa { n, e }, KeyAlgorithm::RS256) => {
            let n_bytes = decode_b64url(n, "n is not base64url")?;
            let e_bytes = decode_b64url(e, "e is not base64url")?;
            let public = RsaPublicKey::new(
                BigUint::from_bytes_be(&n_bytes),
                BigUint::from_bytes_be(&e_bytes),
            )
            .map_err(|_| JwtError::InvalidPublicKey("RSA key is invalid"))?;
            if public.size() * 8 < RSA_BITS {
                return Err(JwtError::InvalidPublicKey("RSA key is too small"));
            }
            DecodingKey::from_rsa_components(n, e)
                .map_err(|_| JwtError::InvalidPublicKey("RSA key is invalid"))?
        }
        (JwkParams::Okp { crv, x }, KeyAlgorithm::EdDSA) => {
            if crv != "Ed25519" {
                return Err(JwtError::InvalidPublicKey("OKP curve is not Ed25519"));
            }
            // jsonwebtoken slices the first 32 bytes without checking the
            // length, so the length must be enforced before it sees the key.
            let x_bytes: [u8; 32] = decode_b64url(x, "x is not base64url")?
                .try_into()
                .map_err(|_| JwtError::InvalidPublicKey("Ed25519 key is not 32 bytes"))?;
            let public = ed25519_dalek::VerifyingKey::from_bytes(&x_bytes)
                .map_err(|_| JwtError::InvalidPublicKey("Ed25519 key is not a curve point"))?;
            if public.is_weak() {
                return Err(JwtError::InvalidPublicKey("Ed25519 key has small order"));
            }
            DecodingKey::from_ed_components(x)
                .map_err(|_| JwtError::InvalidPublicKey("Ed25519 key is invalid"))?
        }
        _ => return Err(JwtError::InvalidPublicKey("alg does not match kty")),
    };
    Ok(VerificationKey {
        algorithm: jwk.alg,
        key,
        validation: signature_only_validation(jwk.alg),
    })
}

fn decode_b64url(value: &str, problem: &'static str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(value.as_bytes())
        .map_err(|_| JwtError::InvalidPublicKey(problem))
}

/// A `Validation` that lets jsonwebtoken check only the algorithm and the
/// signature. Time is a parameter in this codebase and jsonwebtoken reads the
/// system clock, so every claim check is switched off here and done by
/// `check_claims` instead.
fn signature_only_validation(algorithm: KeyAlgorithm) -> Validation {
    let mut validation = Validation::new(algorithm.jwt_algorithm());
    validation.required_spec_claims = HashSet::new();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    validation
}

struct TokenHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
}

/// Reads the unverified header, only to pick a key and to compare `alg` and
/// `typ`.
fn read_header(token: &str) -> Result<TokenHeader, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed("token is too long"));
    }
    let mut segments = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(JwtError::Malformed("token does not have three segments"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header.as_bytes())
        .map_err(|_| JwtError::Malformed("header is not base64url"))?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed("header is not JSON"))?;
    let Value::Object(members) = value else {
        return Err(JwtError::Malformed("header is not a JSON object"));
    };
    // RFC 7515 requires rejecting tokens whose critical extensions the
    // recipient does not understand, and we understand none.
    if members.contains_key("crit") {
        return Err(JwtError::Malformed("header has critical extensions"));
    }
    let alg = match members.get("alg") {
        Some(Value::String(alg)) => alg.clone(),
        _ => return Err(JwtError::Malformed("header has no alg")),
    };
    let kid = match members.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(JwtError::Malformed("header kid is not a string")),
    };
    let typ = match members.get("typ") {
        None => None,
        Some(Value::String(typ)) => Some(typ.clone()),
        Some(_) => return Err(JwtError::Malformed("header typ is not a string")),
    };
    Ok(TokenHeader { alg, kid, typ })
}

fn map_decode_error(kind: &ErrorKind) -> JwtError {
    match kind {
        ErrorKind::InvalidSignature => JwtError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => JwtError::AlgorithmMismatch,
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => JwtError::Malformed("token segments are not valid base64url JSON"),
        ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidKeyFormat => JwtError::InvalidPublicKey("key rejected by the verifier"),
        // Anything else means the token was not accepted for a reason we did
        // not anticipate; refusing it as unverified is the safe reading.
        _ => JwtError::BadSignature,
    }
}

/// Checks the registered claims against the caller's clock and expectations.
fn check_claims(claims: &Value, expect: &Expectations<'_>) -> Result<(), JwtError> {
    let Value::Object(claims) = claims else {
        return Err(JwtError::Malformed("claims are not a JSON object"));
    };
    let leeway = expect.leeway_seconds;

    // Fractional times are rounded towards the stricter side: exp down, nbf up.
    let exp = numeric_date(claims, "exp", Rounding::Down)?.ok_or(JwtError::MissingClaim("exp"))?;
    if expect.now >= exp.saturating_add(leeway) {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = numeric_date(claims, "nbf", Rounding::Up)? {
        if expect.now.saturating_add(leeway) < nbf {
            return Err(JwtError::NotYetValid);
        }
    }
    numeric_date(claims, "iat", Rounding::Down)?.ok_or(JwtError::MissingClaim("iat"))?;

    match claims.get("iss") {
        None => return Err(JwtError::MissingClaim("iss")),
        Some(Value::String(iss)) if iss == expect.issuer => {}
        Some(_) => return Err(JwtError::WrongIssuer),
    }

    let audience_matches = match claims.get("aud") {
        None => return Err(JwtError::MissingClaim("aud")),
        Some(Value::String(aud)) => aud == expect.audience,
        Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(expect.audience)),
        Some(_) => false,
    };
    if !audience_matches {
        return Err(JwtError::WrongAudience);
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Rounding {
    Down,
    Up,
}

/// Reads an RFC 7519 NumericDate. Absent is `None`; any non-number is an error.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
    rounding: Rounding,
) -> Result<Option<i64>, JwtError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let Value::Number(number) = value else {
        return Err(JwtError::InvalidClaim(name));
    };
    if let Some(seconds) = number.as_i64() {
        return Ok(Some(seconds));
    }
    match number.as_f64() {
        // `as` saturates, so values beyond i64 clamp instead of wrapping.
        Some(seconds) if seconds.is_finite() => Ok(Some(match rounding {
            Rounding::Down => seconds.floor() as i64,
            Rounding::Up => seconds.ceil() as i64,
        })),
        _ => Err(JwtError::InvalidClaim(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::{JwkSet, ThumbprintHash};
    use rsa::pkcs1::EncodeRsaPublicKey as _;
    use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
    use serde_json::json;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    const ISSUER: &str = "https://auth.example.test";
    const AUDIENCE: &str = "https://api.example.test";
    const NOW: i64 = 1_700_000_000;

    #[derive(Debug, Deserialize, PartialEq)]
    struct AccessClaims {
        sub: String,
        iss: String,
        aud: String,
        iat: i64,
        exp: i64,
    }

    // RSA generation costs a noticeable fraction of a second, so the tests
    // share one key of each kind.
    fn rsa_key() -> &'static KeyPair {
        static KEY: OnceLock<KeyPair> = OnceLock::new();
        KEY.get_or_init(|| KeyPair::generate(KeyAlgorithm::RS256, NOW).unwrap())
    }

    fn ed_key() -> &'static KeyPair {
        static KEY: OnceLock<KeyPair> = OnceLock::new();
        KEY.get_or_init(|| KeyPair::generate(KeyAlgorithm::EdDSA, NOW).unwrap())
    }

    fn keys() -> [&'static KeyPair; 2] {
        [rsa_key(), ed_key()]
    }

    fn verifier() -> Verifier {
        let jwks: Vec<PublicJwk> = keys().iter().map(|k| k.public_jwk().unwrap()).collect();
        Verifier::new(&jwks).unwrap()
    }

    fn expect() -> Expectations<'static> {
        Expectations {
            token_type: TokenType::Access,
            issuer: ISSUER,
            audience: AUDIENCE,
            now: NOW,
            leeway_seconds: 0,
        }
    }

    fn claims() -> Value {
        json!({"sub": "user-1", "iss": ISSUER, "aud": AUDIENCE, "iat": NOW, "exp": NOW + 300})
    }

    fn claims_with(key: &str, value: Value) -> Value {
        let mut claims = claims();
        claims[key] = value;
        claims
    }

    fn claims_without(key: &str) -> Value {
        let mut claims = claims();
        claims.as_object_mut().unwrap().remove(key);
        claims
    }

    fn sign(key: &KeyPair, claims: &Value) -> String {
        key.signer()
            .unwrap()
            .sign(TokenType::Access, claims)
            .unwrap()
    }

    fn sealing() -> SealingKey {
        SealingKey::derive(&[7; 32], "authd/signing-keys/test")
    }

    /// A token signed by `key` with the header `typ` set to `typ` (or none).
    fn sign_with_typ(key: &KeyPair, typ: Option<&str>) -> String {
        let mut header = Header::new(key.algorithm.jwt_algorithm());
        header.kid = Some(key.kid.clone());
        header.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(&header, &claims(), &key.signer().unwrap().key).unwrap()
    }

    fn verify(token: &str) -> Result<Value, JwtError> {
        verifier().verify::<Value>(token, &expect())
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn segments(token: &str) -> Vec<String> {
        token.split('.').map(str::to_owned).collect()
    }

    fn rsa_public_key(key: &KeyPair) -> RsaPublicKey {
        let JwkParams::Rsa { n, e } = key.public_jwk().unwrap().params else {
            panic!("not an RSA key");
        };
        RsaPublicKey::new(
            BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(n).unwrap()),
            BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(e).unwrap()),
        )
        .unwrap()
    }

    #[test]
    fn rs256_tokens_round_trip_through_sign_and_verify() {
        let token = sign(rsa_key(), &claims());
        let got: AccessClaims = verifier().verify(&token, &expect()).unwrap();
        assert_eq!(got.sub, "user-1");
        assert_eq!(got.iss, ISSUER);
        assert_eq!(got.aud, AUDIENCE);
        assert_eq!(got.iat, NOW);
        assert_eq!(got.exp, NOW + 300);
    }

    #[test]
    fn eddsa_tokens_round_trip_through_sign_and_verify() {
        let token = sign(ed_key(), &claims());
        let got: AccessClaims = verifier().verify(&token, &expect()).unwrap();
        assert_eq!(got.sub, "user-1");
    }

    #[test]
    fn signed_header_names_the_algorithm_the_token_type_and_the_key_id() {
        for key in keys() {
            let signer = key.signer().unwrap();
            for (token_type, typ) in [(TokenType::Access, "at+jwt"), (TokenType::Id, "JWT")] {
                let token = signer.sign(token_type, &claims()).unwrap();
                let header: Value =
                    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&segments(&token)[0]).unwrap())
                        .unwrap();
                assert_eq!(
                    header,
                    json!({"alg": key.algorithm.as_str(), "typ": typ, "kid": key.kid})
                );
            }
            assert_eq!(signer.kid(), key.kid);
            assert_eq!(signer.algorithm(), key.algorithm);
        }
    }

    #[test]
    fn an_id_token_is_refused_where_an_access_token_is_expected_and_the_reverse() {
        for key in keys() {
            let signer = key.signer().unwrap();
            let id = signer.sign(TokenType::Id, &claims()).unwrap();
            assert_eq!(verify(&id), Err(JwtError::WrongType));
            let access = signer.sign(TokenType::Access, &claims()).unwrap();
            let expect_id = Expectations {
                token_type: TokenType::Id,
                ..expect()
            };
            assert_eq!(
                verifier().verify::<Value>(&access, &expect_id),
                Err(JwtError::WrongType)
            );
            assert!(verifier().verify::<Value>(&id, &expect_id).is_ok());
        }
    }

    #[test]
    fn typ_is_compared_as_a_media_type_and_must_be_present() {
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+Jwt",
        ] {
            assert!(
                verify(&sign_with_typ(ed_key(), Some(typ))).is_ok(),
                "{typ} is an access token"
            );
        }
        for typ in [
            None,
            Some("JWT"),
            Some("jwt"),
            Some("application/jwt"),
            Some(""),
            Some("at+jwt "),
            Some("at+jwt2"),
            Some("application/"),
            Some("x-at+jwt"),
        ] {
            assert_eq!(
                verify(&sign_with_typ(rsa_key(), typ)),
                Err(JwtError::WrongType),
                "{typ:?}"
            );
        }
    }

    #[test]
    fn typ_that_is_not_a_string_is_malformed() {
        let payload = b64(claims().to_string().as_bytes());
        for typ in [json!(1), json!(["at+jwt"]), json!(null)] {
            let header = json!({"alg": "EdDSA", "kid": ed_key().kid, "typ": typ});
            let token = format!("{}.{payload}.AAAA", b64(header.to_string().as_bytes()));
            assert!(
                matches!(verify(&token), Err(JwtError::Malformed(_))),
                "{typ}"
            );
        }
    }

    #[test]
    fn verification_names_the_key_that_signed_and_the_verifier_knows_its_keys() {
        for key in keys() {
            let (_, kid) = verifier()
                .verify_with_kid::<Value>(&sign(key, &claims()), &expect())
                .unwrap();
            assert_eq!(kid, key.kid);
            assert!(verifier().knows(&key.kid));
        }
        assert!(!verifier().knows("another-kid"));
    }

    #[test]
    fn rsa_jwk_has_kty_n_e_and_no_private_members() {
        let jwk = jwks_document(&[rsa_key().public_jwk().unwrap()])["keys"][0].clone();
        let members = jwk.as_object().unwrap();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], rsa_key().kid.as_str());
        assert_eq!(jwk["e"], "AQAB", "the public exponent is 65537");
        let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), 256, "the modulus is 2048 bits");
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(!members.contains_key(private), "JWK leaks {private}");
        }
        let mut names: Vec<&str> = members.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["alg", "e", "kid", "kty", "n", "use"]);
    }

    #[test]
    fn okp_jwk_has_the_ed25519_curve_and_a_32_byte_x() {
        let jwk = jwks_document(&[ed_key().public_jwk().unwrap()])["keys"][0].clone();
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["alg"], "EdDSA");
        assert_eq!(jwk["use"], "sig");
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        assert_eq!(x.len(), 32);
        let mut names: Vec<&str> = jwk
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["alg", "crv", "kid", "kty", "use", "x"]);
    }

    #[test]
    fn jwk_values_are_base64url_without_padding() {
        for key in keys() {
            let jwk = key.public_jwk().unwrap();
            let values = match &jwk.params {
                JwkParams::Rsa { n, e } => vec![n.clone(), e.clone(), jwk.kid.clone()],
                JwkParams::Okp { x, .. } => vec![x.clone(), jwk.kid.clone()],
            };
            for value in values {
                assert!(
                    value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "{value} is not unpadded base64url"
                );
            }
        }
    }

    #[test]
    fn kid_is_the_thumbprint_jsonwebtoken_computes_from_the_published_jwks() {
        let jwks: Vec<PublicJwk> = keys().iter().map(|k| k.public_jwk().unwrap()).collect();
        let text = jwks_document(&jwks).to_string();
        let set: JwkSet = serde_json::from_str(&text).unwrap();
        for key in keys() {
            let jwk = set.find(&key.kid).unwrap();
            assert_eq!(jwk.thumbprint(ThumbprintHash::SHA256).unwrap(), key.kid);
            assert_eq!(key.public_jwk().unwrap().thumbprint(), key.kid);
        }
    }

    #[test]
    fn thumbprint_matches_the_rfc_7638_rsa_example() {
        let jwk = PublicJwk {
            kid: "2011-04-29".to_owned(),
            alg: KeyAlgorithm::RS256,
            key_use: "sig".to_owned(),
            params: JwkParams::Rsa {
                n: concat!(
                    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP",
                    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY",
                    "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f",
                    "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
                )
                .to_owned(),
                e: "AQAB".to_owned(),
            },
        };
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn thumbprint_matches_the_rfc_8037_ed25519_example() {
        let jwk = PublicJwk {
            kid: String::new(),
            alg: KeyAlgorithm::EdDSA,
            key_use: "sig".to_owned(),
            params: JwkParams::Okp {
                crv: "Ed25519".to_owned(),
                x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".to_owned(),
            },
        };
        assert_eq!(
            jwk.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn jwks_document_lists_keys_exactly_as_serde_would_write_them() {
        let jwks: Vec<PublicJwk> = keys().iter().map(|k| k.public_jwk().unwrap()).collect();
        let document = jwks_document(&jwks);
        assert_eq!(document.as_object().unwrap().len(), 1);
        assert_eq!(document["keys"], serde_json::to_value(&jwks).unwrap());
        let back: Vec<PublicJwk> = serde_json::from_value(document["keys"].clone()).unwrap();
        assert_eq!(back, jwks);
        assert_eq!(jwks_document(&[]), json!({"keys": []}));
    }

    #[test]
    fn resource_server_can_verify_an_rs256_token_using_only_the_jwks_json() {
        let text = jwks_document(&[rsa_key().public_jwk().unwrap()]).to_string();
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let token = sign(
            rsa_key(),
            &json!({"sub": "user-1", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60}),
        );

        // Everything below uses only the JWKS text and jsonwebtoken, the way
        // an independent resource server would.
        let set: JwkSet = serde_json::from_str(&text).unwrap();
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        let jwk = set.find(&kid).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        for key in [
            DecodingKey::from_jwk(jwk).unwrap(),
            DecodingKey::from_rsa_components(
                set.keys[0].algorithm_rsa_n(),
                set.keys[0].algorithm_rsa_e(),
            )
            .unwrap(),
        ] {
            let data = jsonwebtoken::decode::<AccessClaims>(&token, &key, &validation).unwrap();
            assert_eq!(data.claims.sub, "user-1");
        }
    }

    // Small accessors so the test above reads like a resource server's code.
    trait RsaMembers {
        fn algorithm_rsa_n(&self) -> &str;
        fn algorithm_rsa_e(&self) -> &str;
    }

    impl RsaMembers for jsonwebtoken::jwk::Jwk {
        fn algorithm_rsa_n(&self) -> &str {
            match &self.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) => &rsa.n,
                _ => panic!("not an RSA JWK"),
            }
        }
        fn algorithm_rsa_e(&self) -> &str {
            match &self.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) => &rsa.e,
                _ => panic!("not an RSA JWK"),
            }
        }
    }

    #[test]
    fn resource_server_can_verify_an_eddsa_token_using_only_the_jwks_json() {
        let text = jwks_document(&[ed_key().public_jwk().unwrap()]).to_string();
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let token = sign(
            ed_key(),
            &json!({"sub": "user-1", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60}),
        );
        let set: JwkSet = serde_json::from_str(&text).unwrap();
        let key = DecodingKey::from_jwk(&set.keys[0]).unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        let data = jsonwebtoken::decode::<AccessClaims>(&token, &key, &validation).unwrap();
        assert_eq!(data.claims.sub, "user-1");
    }

    #[test]
    fn tampered_payload_is_rejected_as_a_bad_signature() {
        for key in keys() {
            let parts = segments(&sign(key, &claims()));
            let forged = b64(claims_with("sub", json!("admin")).to_string().as_bytes());
            let token = format!("{}.{}.{}", parts[0], forged, parts[2]);
            assert_eq!(
                verify(&token),
                Err(JwtError::BadSignature),
                "{:?}",
                key.algorithm
            );
        }
    }

    #[test]
    fn tampered_signature_is_rejected_as_a_bad_signature() {
        for key in keys() {
            let parts = segments(&sign(key, &claims()));
            // Flip a bit in the decoded signature so the base64 stays canonical
            // and the failure is the signature check, not the decoding.
            let mut signature = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap();
            signature[10] ^= 0x01;
            let token = format!("{}.{}.{}", parts[0], parts[1], b64(&signature));
            assert_eq!(
                verify(&token),
                Err(JwtError::BadSignature),
                "{:?}",
                key.algorithm
            );

            let truncated = format!("{}.{}.{}", parts[0], parts[1], b64(&signature[..16]));
            assert_eq!(verify(&truncated), Err(JwtError::BadSignature));

            let empty = format!("{}.{}.", parts[0], parts[1]);
            assert_eq!(verify(&empty), Err(JwtError::BadSignature));
        }
    }

    #[test]
    fn alg_none_token_is_rejected_as_an_algorithm_mismatch() {
        for key in keys() {
            for alg in ["none", "None", "NONE"] {
                let header = json!({"alg": alg, "typ": "JWT", "kid": key.kid});
                let token = format!(
                    "{}.{}.",
                    b64(header.to_string().as_bytes()),
                    b64(claims().to_string().as_bytes())
                );
                assert_eq!(verify(&token), Err(JwtError::AlgorithmMismatch), "{alg}");
            }
        }
    }

    #[test]
    fn hs256_token_keyed_with_the_public_key_is_rejected_as_an_algorithm_mismatch() {
        let public = rsa_public_key(rsa_key());
        let JwkParams::Okp { x, .. } = ed_key().public_jwk().unwrap().params else {
            panic!("not an OKP key");
        };
        let secrets: Vec<(&KeyPair, Vec<u8>)> = vec![
            (
                rsa_key(),
                public
                    .to_public_key_pem(LineEnding::LF)
                    .unwrap()
                    .into_bytes(),
            ),
            (
                rsa_key(),
                public.to_pkcs1_pem(LineEnding::LF).unwrap().into_bytes(),
            ),
            (
                rsa_key(),
                public.to_public_key_der().unwrap().as_bytes().to_vec(),
            ),
            (
                rsa_key(),
                public.to_pkcs1_der().unwrap().as_bytes().to_vec(),
            ),
            (rsa_key(), public.n().to_bytes_be()),
            (ed_key(), URL_SAFE_NO_PAD.decode(x).unwrap()),
        ];
        for (key, secret) in secrets {
            for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                let mut header = Header::new(alg);
                header.kid = Some(key.kid.clone());
                let token =
                    jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(&secret))
                        .unwrap();
                assert_eq!(verify(&token), Err(JwtError::AlgorithmMismatch));
            }
        }
    }

    #[test]
    fn swapping_rs256_and_eddsa_between_keys_is_rejected_as_an_algorithm_mismatch() {
        // An EdDSA-signed token that names the RSA key, and the reverse.
        for (signing, named) in [(ed_key(), rsa_key()), (rsa_key(), ed_key())] {
            let mut header = Header::new(signing.algorithm.jwt_algorithm());
            header.kid = Some(named.kid.clone());
            let signer = signing.signer().unwrap();
            let token = jsonwebtoken::encode(&header, &claims(), &signer.key).unwrap();
            assert_eq!(verify(&token), Err(JwtError::AlgorithmMismatch));
        }
        // Other members of the RSA family are refused too, not just other families.
        let mut header = Header::new(Algorithm::PS256);
        header.kid = Some(rsa_key().kid.clone());
        let token =
            jsonwebtoken::encode(&header, &claims(), &rsa_key().signer().unwrap().key).unwrap();
        assert_eq!(verify(&token), Err(JwtError::AlgorithmMismatch));
    }

    #[test]
    fn token_from_a_key_outside_the_set_is_rejected_as_an_unknown_key() {
        let stranger = KeyPair::generate(KeyAlgorithm::EdDSA, NOW).unwrap();
        assert_eq!(
            verify(&sign(&stranger, &claims())),
            Err(JwtError::UnknownKey)
        );
    }

    #[test]
    fn token_signed_by_a_stranger_under_a_known_kid_is_rejected_as_a_bad_signature() {
        let stranger = KeyPair::generate(KeyAlgorithm::EdDSA, NOW).unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(ed_key().kid.clone());
        let token =
            jsonwebtoken::encode(&header, &claims(), &stranger.signer().unwrap().key).unwrap();
        assert_eq!(verify(&token), Err(JwtError::BadSignature));
    }

    #[test]
    fn token_without_a_kid_is_rejected_as_an_unknown_key() {
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims(),
            &ed_key().signer().unwrap().key,
        )
        .unwrap();
        assert_eq!(verify(&token), Err(JwtError::UnknownKey));
    }

    #[test]
    fn expired_token_is_rejected() {
        for key in keys() {
            let token = sign(key, &claims_with("exp", json!(NOW - 1)));
            assert_eq!(verify(&token), Err(JwtError::Expired));
        }
    }

    #[test]
    fn token_is_expired_at_the_exact_exp_second() {
        let token = sign(ed_key(), &claims_with("exp", json!(NOW)));
        assert_eq!(verify(&token), Err(JwtError::Expired));
    }

    #[test]
    fn recently_expired_token_is_accepted_within_the_leeway() {
        let token = sign(ed_key(), &claims_with("exp", json!(NOW - 5)));
        let lenient = Expectations {
            leeway_seconds: 10,
            ..expect()
        };
        assert!(verifier().verify::<Value>(&token, &lenient).is_ok());
        let strict = Expectations {
            leeway_seconds: 5,
            ..expect()
        };
        assert_eq!(
            verifier().verify::<Value>(&token, &strict),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn fractional_exp_is_rounded_down() {
        let token = sign(ed_key(), &claims_with("exp", json!(NOW as f64 + 0.5)));
        assert_eq!(verify(&token), Err(JwtError::Expired));
    }

    #[test]
    fn token_before_its_nbf_is_rejected_as_not_yet_valid() {
        for key in keys() {
            let token = sign(key, &claims_with("nbf", json!(NOW + 60)));
            assert_eq!(verify(&token), Err(JwtError::NotYetValid));
        }
    }

    #[test]
    fn nbf_at_now_or_within_the_leeway_is_accepted() {
        let at_now = sign(ed_key(), &claims_with("nbf", json!(NOW)));
        assert!(verify(&at_now).is_ok());
        let soon = sign(ed_key(), &claims_with("nbf", json!(NOW + 10)));
        let lenient = Expectations {
            leeway_seconds: 10,
            ..expect()
        };
        assert!(verifier().verify::<Value>(&soon, &lenient).is_ok());
    }

    #[test]
    fn missing_exp_iat_iss_or_aud_is_rejected_as_a_missing_claim() {
        for claim in ["exp", "iat", "iss", "aud"] {
            let token = sign(ed_key(), &claims_without(claim));
            assert_eq!(verify(&token), Err(JwtError::MissingClaim(claim)));
        }
    }

    #[test]
    fn non_numeric_time_claims_are_rejected_as_invalid() {
        for claim in ["exp", "nbf", "iat"] {
            for value in [json!("1700000300"), json!(null), json!(true)] {
                let token = sign(ed_key(), &claims_with(claim, value));
                assert_eq!(verify(&token), Err(JwtError::InvalidClaim(claim)));
            }
        }
    }

    #[test]
    fn wrong_issuer_is_rejected() {
        for iss in [
            json!("https://evil.example.test"),
            json!(format!("{ISSUER}/")),
            json!([ISSUER]),
        ] {
            let token = sign(rsa_key(), &claims_with("iss", iss));
            assert_eq!(verify(&token), Err(JwtError::WrongIssuer));
        }
    }

    #[test]
    fn wrong_audience_is_rejected() {
        for aud in [
            json!("https://other.example.test"),
            json!(["https://other.example.test"]),
            json!([]),
            json!(42),
        ] {
            let token = sign(rsa_key(), &claims_with("aud", aud));
            assert_eq!(verify(&token), Err(JwtError::WrongAudience));
        }
    }

    #[test]
    fn audience_array_containing_the_expected_audience_is_accepted() {
        let token = sign(
            ed_key(),
            &claims_with("aud", json!(["https://other.example.test", AUDIENCE])),
        );
        let got = verify(&token).unwrap();
        assert_eq!(got["aud"][1], AUDIENCE);
    }

    #[test]
    fn garbage_strings_are_rejected_as_malformed() {
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        for garbage in [
            "",
            "a",
            "a.b",
            "a.b.c",
            "a.b.c.d",
            "...",
            "€.€.€",
            long.as_str(),
        ] {
            assert!(
                matches!(verify(garbage), Err(JwtError::Malformed(_))),
                "{garbage:.20} was not rejected as malformed"
            );
        }
    }

    #[test]
    fn header_that_is_not_a_json_object_with_a_string_alg_is_malformed() {
        let payload = b64(claims().to_string().as_bytes());
        for header in [
            json!([1, 2]),
            json!({"typ": "JWT", "kid": ed_key().kid}),
            json!({"alg": 7, "kid": ed_key().kid}),
            json!({"alg": "EdDSA", "kid": 7}),
        ] {
            let token = format!("{}.{payload}.AAAA", b64(header.to_string().as_bytes()));
            assert!(
                matches!(verify(&token), Err(JwtError::Malformed(_))),
                "{header}"
            );
        }
    }

    #[test]
    fn payload_that_is_not_a_json_object_is_malformed_even_when_signed() {
        let signer = ed_key().signer().unwrap();
        for payload in [json!("just a string"), json!([1, 2, 3]), json!(null)] {
            let token = signer.sign(TokenType::Access, &payload).unwrap();
            assert!(
                matches!(verify(&token), Err(JwtError::Malformed(_))),
                "{payload}"
            );
        }
    }

    #[test]
    fn token_with_critical_header_extensions_is_rejected() {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(ed_key().kid.clone());
        header.crit = Some(vec!["exp".to_owned()]);
        let token =
            jsonwebtoken::encode(&header, &claims(), &ed_key().signer().unwrap().key).unwrap();
        assert!(matches!(verify(&token), Err(JwtError::Malformed(_))));
    }

    #[test]
    fn claims_that_do_not_fit_the_requested_type_are_rejected() {
        let token = sign(ed_key(), &claims_without("sub"));
        assert_eq!(
            verifier().verify::<AccessClaims>(&token, &expect()),
            Err(JwtError::ClaimsShape)
        );
    }

    #[test]
    fn error_messages_never_echo_the_token() {
        let token = sign(ed_key(), &claims_with("exp", json!(NOW - 1)));
        let tampered = format!("{token}x");
        for input in [token.as_str(), tampered.as_str(), "a.b.c.d"] {
            let message = verify(input).unwrap_err().to_string();
            for segment in input.split('.').filter(|s| s.len() > 1) {
                assert!(!message.contains(segment), "{message}");
            }
        }
    }

    /// Every 16-byte window of `secret`, so that no piece of it can hide in `haystack`.
    fn contains_any_piece_of(haystack: &[u8], secret: &[u8]) -> bool {
        secret
            .windows(16)
            .any(|piece| haystack.windows(16).any(|w| w == piece))
    }

    #[test]
    fn key_pair_debug_does_not_reveal_the_private_key() {
        for key in keys() {
            let private = STANDARD.encode(key.private_key.as_bytes());
            let stored = key.seal(&sealing()).unwrap();
            let sealed = serde_json::to_value(&stored).unwrap()["private_key_sealed"]
                .as_str()
                .unwrap()
                .to_owned();
            let debug = format!("{key:?} {:?} {stored:?}", key.signer().unwrap());
            for secret in [&private, &sealed] {
                assert!(!debug.contains(secret.as_str()));
                assert!(!debug.contains(&secret[..16]));
            }
            assert!(debug.contains("[redacted]"));
            assert!(debug.contains(&key.kid));
        }
    }

    #[test]
    fn a_stored_key_holds_its_private_key_only_sealed() {
        for key in keys() {
            let der = key.private_key.as_bytes();
            let text = serde_json::to_string(&key.seal(&sealing()).unwrap()).unwrap();
            let stored: Value = serde_json::from_str(&text).unwrap();
            let mut names: Vec<&str> = stored
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            names.sort_unstable();
            assert_eq!(
                names,
                ["algorithm", "created_at", "kid", "private_key_sealed"]
            );
            assert_eq!(stored["kid"], key.kid.as_str());
            assert_eq!(stored["algorithm"], key.algorithm.as_str());
            assert_eq!(stored["created_at"], NOW);
            let sealed = STANDARD
                .decode(stored["private_key_sealed"].as_str().unwrap())
                .unwrap();
            assert!(!contains_any_piece_of(&sealed, der));
            assert!(!contains_any_piece_of(text.as_bytes(), der));
            assert!(!text.contains(&STANDARD.encode(der)[..24]));
        }
    }

    #[test]
    fn a_sealed_key_opens_only_with_its_secret_and_under_its_own_kid() {
        for key in keys() {
            let stored = key.seal(&sealing()).unwrap();
            let text = serde_json::to_string(&stored).unwrap();
            let restored: StoredKeyPair = serde_json::from_str(&text).unwrap();
            assert!(!restored.in_clear());
            let opened = restored.open(&sealing()).unwrap();
            assert_eq!(opened.public_jwk().unwrap(), key.public_jwk().unwrap());
            assert!(verify(&sign(&opened, &claims())).is_ok());

            let other_secret = SealingKey::derive(&[8; 32], "authd/signing-keys/test");
            assert!(matches!(
                restored.open(&other_secret),
                Err(JwtError::Sealing(_))
            ));
            let mut moved: Value = serde_json::from_str(&text).unwrap();
            moved["kid"] = json!("another-kid");
            let moved: StoredKeyPair = serde_json::from_value(moved).unwrap();
            assert!(matches!(moved.open(&sealing()), Err(JwtError::Sealing(_))));
        }
    }

    #[test]
    fn a_key_stored_in_clear_by_an_earlier_version_opens_and_is_only_ever_written_sealed() {
        for key in keys() {
            let legacy = json!({
                "kid": key.kid,
                "algorithm": key.algorithm,
                "private_key_pkcs8": STANDARD.encode(key.private_key.as_bytes()),
                "created_at": NOW,
            });
            let stored: StoredKeyPair = serde_json::from_value(legacy).unwrap();
            assert!(stored.in_clear());
            let opened = stored.open(&sealing()).unwrap();
            assert_eq!(opened.public_jwk().unwrap(), key.public_jwk().unwrap());
            assert!(
                serde_json::to_string(&stored).is_err(),
                "a clear key is never written back"
            );
            let resealed = opened.seal(&sealing()).unwrap();
            assert!(!resealed.in_clear());
            let text = serde_json::to_string(&resealed).unwrap();
            assert!(!text.contains("private_key_pkcs8"));
            assert!(!contains_any_piece_of(
                text.as_bytes(),
                key.private_key.as_bytes()
            ));
        }
    }

    #[test]
    fn corrupt_stored_private_key_is_rejected_without_echoing_it() {
        let legacy = |private: Value| json!({"kid": ed_key().kid, "algorithm": "EdDSA", "private_key_pkcs8": private, "created_at": NOW});
        let error =
            serde_json::from_value::<StoredKeyPair>(legacy(json!("not*base64"))).unwrap_err();
        assert!(!error.to_string().contains("not*base64"));
        let mut sealed = serde_json::to_value(ed_key().seal(&sealing()).unwrap()).unwrap();
        sealed["private_key_sealed"] = json!("not*base64");
        let error = serde_json::from_value::<StoredKeyPair>(sealed).unwrap_err();
        assert!(!error.to_string().contains("not*base64"));

        // A well-formed document for the wrong algorithm fails when used.
        let mismatched: StoredKeyPair = serde_json::from_value(legacy(json!(
            STANDARD.encode(rsa_key().private_key.as_bytes())
        )))
        .unwrap();
        let mismatched = mismatched.open(&sealing()).unwrap();
        assert!(matches!(mismatched.signer(), Err(JwtError::KeyEncoding(_))));
        assert!(matches!(
            mismatched.public_jwk(),
            Err(JwtError::KeyEncoding(_))
        ));

        let empty: StoredKeyPair = serde_json::from_value(
            json!({"kid": ed_key().kid, "algorithm": "EdDSA", "created_at": NOW}),
        )
        .unwrap();
        assert!(matches!(
            empty.open(&sealing()),
            Err(JwtError::KeyEncoding(_))
        ));
    }

    #[test]
    fn generated_keys_get_distinct_thumbprint_kids() {
        let a = KeyPair::generate(KeyAlgorithm::EdDSA, NOW).unwrap();
        let b = KeyPair::generate(KeyAlgorithm::EdDSA, NOW).unwrap();
        assert_ne!(a.kid, b.kid);
        assert_eq!(a.kid, a.public_jwk().unwrap().thumbprint());
        assert_eq!(
            a.kid.len(),
            43,
            "a SHA-256 digest is 43 base64url characters"
        );
    }

    #[test]
    fn verifier_refuses_inconsistent_or_weak_public_keys() {
        let rsa = rsa_key().public_jwk().unwrap();
        let ed = ed_key().public_jwk().unwrap();
        let small_rsa = RsaPrivateKey::new(&mut OsRng, 1024).unwrap();
        let cases = [
            PublicJwk {
                alg: KeyAlgorithm::EdDSA,
                ..rsa.clone()
            },
            PublicJwk {
                alg: KeyAlgorithm::RS256,
                ..ed.clone()
            },
            PublicJwk {
                key_use: "enc".to_owned(),
                ..ed.clone()
            },
            PublicJwk {
                kid: String::new(),
                ..ed.clone()
            },
            PublicJwk {
                params: JwkParams::Okp {
                    crv: "Ed448".to_owned(),
                    x: b64(&[9; 57]),
                },
                ..ed.clone()
            },
            PublicJwk {
                params: JwkParams::Okp {
                    crv: "Ed25519".to_owned(),
                    x: b64(&[9; 16]),
                },
                ..ed.clone()
            },
            // The identity point has small order and would accept forged signatures.
            PublicJwk {
                params: JwkParams::Okp {
                    crv: "Ed25519".to_owned(),
                    x: b64(&{
                        let mut identity = [0u8; 32];
                        identity[0] = 1;
                        identity
                    }),
                },
                ..ed.clone()
            },
            PublicJwk {
                params: rsa_public_params(&small_rsa),
                ..rsa.clone()
            },
            PublicJwk {
                params: JwkParams::Rsa {
                    n: "!!".to_owned(),
                    e: "AQAB".to_owned(),
                },
                ..rsa.clone()
            },
        ];
        for jwk in cases {
            assert!(
                matches!(
                    Verifier::new(std::slice::from_ref(&jwk)),
                    Err(JwtError::InvalidPublicKey(_))
                ),
                "{jwk:?} was accepted"
            );
        }
    }

    #[test]
    fn verifier_accepts_a_repeated_key_but_not_two_keys_under_one_kid() {
        let ed = ed_key().public_jwk().unwrap();
        assert!(Verifier::new(&[ed.clone(), ed.clone()]).is_ok());
        let other = KeyPair::generate(KeyAlgorithm::EdDSA, NOW)
            .unwrap()
            .public_jwk()
            .unwrap();
        let impostor = PublicJwk {
            kid: ed.kid.clone(),
            ..other
        };
        assert_eq!(
            Verifier::new(&[ed, impostor]).unwrap_err(),
            JwtError::InvalidPublicKey("two different keys share a kid")
        );
    }

    #[test]
    fn verifier_debug_lists_key_ids_only() {
        let debug = format!("{:?}", verifier());
        assert!(debug.contains(&rsa_key().kid));
        assert!(debug.contains(&ed_key().kid));
    }

    /// Run with `cargo test --release -- --ignored --nocapture`.
    #[test]
    #[ignore = "micro-benchmark; run explicitly with --ignored --nocapture"]
    fn benchmark_reports_signs_and_verifies_per_second() {
        fn per_second(mut operation: impl FnMut()) -> f64 {
            let window = Duration::from_secs(1);
            let start = Instant::now();
            let mut count = 0u64;
            while start.elapsed() < window {
                operation();
                count += 1;
            }
            count as f64 / start.elapsed().as_secs_f64()
        }

        let verifier = verifier();
        let expect = expect();
        for key in keys() {
            let signer = key.signer().unwrap();
            let claims = claims();
            let signs = per_second(|| {
                std::hint::black_box(signer.sign(TokenType::Access, &claims).unwrap());
            });
            let token = signer.sign(TokenType::Access, &claims).unwrap();
            let verifies = per_second(|| {
                std::hint::black_box(verifier.verify::<Value>(&token, &expect).unwrap());
            });
            println!(
                "{:>5}: {signs:>9.0} signs/s  {verifies:>9.0} verifies/s",
                key.algorithm.as_str()
            );
        }

        // jsonwebtoken re-parses the PKCS#1 key on every RS256 signature;
        // this shows how much of the signing time that accounts for.
        let pkcs1 = rsa_key().rsa_private_key().unwrap().to_pkcs1_der().unwrap();
        let parses = per_second(|| {
            std::hint::black_box(
                <RsaPrivateKey as rsa::pkcs1::DecodeRsaPrivateKey>::from_pkcs1_der(
                    pkcs1.as_bytes(),
                )
                .unwrap(),
            );
        });
        println!("RS256 PKCS#1 parse alone: {parses:>9.0} /s");
    }
}
