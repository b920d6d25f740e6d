//! Signed, expiring links (README: "Webhooks"): HMAC-SHA-256 over the method, path,
//! action and expiry, with a key derived from the server secret, checked in
//! constant time. A link proves the server issued it for exactly that
//! request; being single-use is the caller's business (the approval it
//! resolves can only be resolved once).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::clock::UnixSeconds;

/// A key for signing links, derived from the server secret.
pub struct LinkKey([u8; 32]);

impl LinkKey {
    pub fn derive(server_secret: &[u8]) -> Self {
        Self::derive_for(server_secret, "authd/signed-links/v1")
    }

    /// A key for another purpose: keys for different purposes are unrelated.
    pub fn derive_for(server_secret: &[u8], purpose: &str) -> Self {
        let mut key = [0_u8; 32];
        // HKDF-Expand cannot fail for a 32-byte output.
        let _ = hkdf::Hkdf::<Sha256>::new(None, server_secret).expand(purpose.as_bytes(), &mut key);
        Self(key)
    }

    /// HMAC-SHA-256 of one message, lowercase hex.
    pub fn tag(&self, message: &str) -> String {
        Hmac::<Sha256>::new_from_slice(&self.0)
            .map(|mut mac| {
                mac.update(message.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            })
            .unwrap_or_default()
    }

    /// Whether `tag` is [`LinkKey::tag`] of `message`, in constant time.
    pub fn verify_tag(&self, message: &str, tag: &str) -> bool {
        let Ok(given) = hex::decode(tag) else {
            return false;
        };
        Hmac::<Sha256>::new_from_slice(&self.0).is_ok_and(|mut mac| {
            mac.update(message.as_bytes());
            mac.verify_slice(&given).is_ok()
        })
    }

    /// HMAC accepts keys of any length, so this is always `Some`.
    fn mac(
        &self,
        method: &str,
        path: &str,
        action: &str,
        exp: UnixSeconds,
    ) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).ok()?;
        for part in [method, "\n", path, "\n", action, "\n", &exp.to_string()] {
            mac.update(part.as_bytes());
        }
        Some(mac)
    }

    /// The `sig` parameter (lowercase hex) for this request.
    pub fn sign(&self, method: &str, path: &str, action: &str, exp: UnixSeconds) -> String {
        self.mac(method, path, action, exp)
            .map(|mac| hex::encode(mac.finalize().into_bytes()))
            .unwrap_or_default()
    }

    /// Whether `sig` is this server's signature for the request and `exp` is
    /// still ahead of `now`.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        action: &str,
        exp: UnixSeconds,
        sig: &str,
        now: UnixSeconds,
    ) -> bool {
        let Ok(given) = hex::decode(sig) else {
            return false;
        };
        let genuine = self
            .mac(method, path, action, exp)
            .is_some_and(|mac| mac.verify_slice(&given).is_ok());
        genuine && exp > now
    }
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_method_path_action_and_expiry() {
        let key = LinkKey::derive(&[1; 32]);
        let sig = key.sign("POST", "/v1/approvals/a/resolve", "approve", 2_000);
        assert!(key.verify(
            "POST",
            "/v1/approvals/a/resolve",
            "approve",
            2_000,
            &sig,
            1_000
        ));
        assert!(
            !key.verify(
                "POST",
                "/v1/approvals/a/resolve",
                "approve",
                2_000,
                &sig,
                2_000
            ),
            "expired"
        );
        assert!(
            !key.verify(
                "POST",
                "/v1/approvals/a/resolve",
                "deny",
                2_000,
                &sig,
                1_000
            ),
            "action"
        );
        assert!(
            !key.verify(
                "POST",
                "/v1/approvals/b/resolve",
                "approve",
                2_000,
                &sig,
                1_000
            ),
            "path"
        );
        assert!(
            !key.verify(
                "GET",
                "/v1/approvals/a/resolve",
                "approve",
                2_000,
                &sig,
                1_000
            ),
            "method"
        );
        assert!(
            !key.verify(
                "POST",
                "/v1/approvals/a/resolve",
                "approve",
                3_000,
                &sig,
                1_000
            ),
            "exp"
        );
        assert!(!LinkKey::derive(&[2; 32]).verify(
            "POST",
            "/v1/approvals/a/resolve",
            "approve",
            2_000,
            &sig,
            1_000
        ));
        assert!(!key.verify(
            "POST",
            "/v1/approvals/a/resolve",
            "approve",
            2_000,
            "zz",
            1_000
        ));
    }
}
