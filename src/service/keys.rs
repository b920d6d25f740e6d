//! The signing keys in memory: the active signer, a verifier over every
//! published key, and the JWKS document with its ETag. Loaded from the store
//! at start; the first start generates the key (off the async runtime).

use std::sync::{Arc, RwLock};

use crate::audit::{AuditKind, AuditRecord, RequestOrigin};
use crate::clock::UnixSeconds;
use crate::config::{Config, SigningAlgorithm};
use crate::crypto::jwt::{jwks_document, KeyAlgorithm, KeyPair, PublicJwk, Signer, Verifier};
use crate::store::{Queries, Store, StoredSigningKey};

struct KeyState {
    signer: Signer,
    verifier: Verifier,
    jwks_json: Arc<str>,
    etag: Arc<str>,
}

pub struct KeyRing {
    state: RwLock<Arc<KeyState>>,
}

fn algorithm_of(config: &Config) -> KeyAlgorithm {
    match config.tokens.signing_alg {
        SigningAlgorithm::RS256 => KeyAlgorithm::RS256,
        SigningAlgorithm::EdDSA => KeyAlgorithm::EdDSA,
    }
}

impl KeyRing {
    pub async fn load_or_create(
        store: &Arc<Store>,
        config: &Config,
        now: UnixSeconds,
    ) -> anyhow::Result<KeyRing> {
        let algorithm = algorithm_of(config);
        let store = store.clone();
        let state = tokio::task::spawn_blocking(move || -> anyhow::Result<KeyState> {
            let (active, keys) = store.read(|txn| Ok::<_, crate::store::StoreError>((txn.active_signing_kid()?, txn.signing_keys()?)))?;
            let active = active.and_then(|kid| keys.iter().find(|k| k.key.kid == kid).cloned());
            let (active, keys) = match active {
                Some(active) => (active, keys),
                None => {
                    let generated = StoredSigningKey {
                        key: KeyPair::generate(algorithm, now)?,
                        rotated_out_at: None,
                        retire_after: None,
                    };
                    let origin = RequestOrigin::default();
                    let to_store = generated.clone();
                    store.write(|txn| {
                        txn.put_signing_key(&to_store)?;
                        txn.set_active_signing_kid(&to_store.key.kid)?;
                        txn.audit(
                            AuditRecord::new(AuditKind::KeyCreated, now, &origin)
                                .details(serde_json::json!({"kid": to_store.key.kid, "alg": to_store.key.algorithm})),
                        )
                    })?;
                    tracing::info!(kid = %generated.key.kid, "generated the first signing key");
                    let mut keys = keys;
                    keys.push(generated.clone());
                    (generated, keys)
                }
            };
            build_state(&active, &keys, now)
        })
        .await??;
        Ok(KeyRing {
            state: RwLock::new(Arc::new(state)),
        })
    }

    fn current(&self) -> Arc<KeyState> {
        match self.state.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn signer(&self) -> Signer {
        self.current().signer.clone()
    }

    pub fn verifier(&self) -> Verifier {
        self.current().verifier.clone()
    }

    /// The JWKS document and its ETag.
    pub fn jwks(&self) -> (Arc<str>, Arc<str>) {
        let state = self.current();
        (state.jwks_json.clone(), state.etag.clone())
    }
}

/// Publishes every key that may still verify a live token.
fn build_state(
    active: &StoredSigningKey,
    keys: &[StoredSigningKey],
    now: UnixSeconds,
) -> anyhow::Result<KeyState> {
    let published: Vec<PublicJwk> = keys
        .iter()
        .filter(|k| k.key.kid == active.key.kid || k.retire_after.is_none_or(|after| after > now))
        .map(|k| k.key.public_jwk())
        .collect::<Result<_, _>>()?;
    let jwks_json: Arc<str> = Arc::from(jwks_document(&published).to_string());
    let etag: Arc<str> = Arc::from(format!(
        "\"{}\"",
        &hex::encode(crate::crypto::sha256(jwks_json.as_bytes()))[..32]
    ));
    Ok(KeyState {
        signer: active.key.signer()?,
        verifier: Verifier::new(&published)?,
        jwks_json,
        etag,
    })
}
