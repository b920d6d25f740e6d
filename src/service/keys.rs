//! Signing keys: the active signer, a verifier over every published key, and
//! the JWKS document with its ETag, kept in memory and rebuilt from the store
//! whenever the set changes.
//!
//! Rotation makes a new key the signer; the old one stays published until
//! `max(access_ttl, id_ttl)` after it stopped signing, when no token it signed
//! can still be valid, and then leaves the JWKS (at once, in memory) and the
//! database (at the next housekeeping pass). Changing `tokens.signing_alg`
//! rotates at start-up along the same path. Key generation (RSA-2048 takes a
//! few hundred milliseconds) runs on the blocking pool.
//!
//! On the very first start the first key is generated while the server
//! already answers: everything that signs, verifies or publishes keys waits
//! for it (a login spends that time in argon2 anyway), and everything else
//! (health, the UI, the operator API, registration) does not. Should that
//! key fail to be made, the server stops with an error.

use std::sync::{Arc, RwLock};

use serde::Serialize;
use tokio::sync::watch;

use super::{ServiceError, ServiceResult};
use crate::audit::{AuditKind, AuditRecord, RequestOrigin};
use crate::clock::{self, UnixSeconds};
use crate::config::{Config, SigningAlgorithm};
use crate::crypto::jwt::{jwks_document, KeyAlgorithm, KeyPair, PublicJwk, Signer, Verifier};
use crate::store::{Queries, Store, StoreError, StoredSigningKey};

struct KeyState {
    // Shared, not cloned per request: a clone copies every key's big integers.
    signer: Arc<Signer>,
    verifier: Arc<Verifier>,
    jwks_json: Arc<str>,
    etag: Arc<str>,
    /// The earliest instant a published key must leave the JWKS.
    next_retirement: Option<UnixSeconds>,
}

/// The keys in memory; `None` until the first key exists.
type SharedState = Arc<RwLock<Option<Arc<KeyState>>>>;

pub struct KeyRing {
    store: Arc<Store>,
    state: SharedState,
    /// Turns `true` once `state` holds keys; closed without turning if the
    /// first key could not be made.
    ready: watch::Receiver<bool>,
    /// How long a rotated-out key stays published.
    overlap_seconds: i64,
}

/// A key as `GET /v1/keys` shows it: never the private part.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: KeyAlgorithm,
    pub active: bool,
    pub created_at: String,
    pub rotated_out_at: Option<String>,
    pub retire_after: Option<String>,
}

pub fn configured_algorithm(config: &Config) -> KeyAlgorithm {
    match config.tokens.signing_alg {
        SigningAlgorithm::RS256 => KeyAlgorithm::RS256,
        SigningAlgorithm::EdDSA => KeyAlgorithm::EdDSA,
    }
}

fn internal(error: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(error.to_string())
}

impl KeyRing {
    /// Loads the keys; creates the first one, or rotates to the configured
    /// algorithm if the active key uses another.
    pub async fn load_or_create(
        store: &Arc<Store>,
        config: &Config,
        now: UnixSeconds,
    ) -> anyhow::Result<KeyRing> {
        let algorithm = configured_algorithm(config);
        let overlap_seconds = config
            .tokens
            .access_ttl
            .as_secs()
            .max(config.tokens.id_ttl.as_secs()) as i64;
        let ring_store = store.clone();
        let active = tokio::task::spawn_blocking(move || {
            ring_store.read(|txn| {
                let kid = txn.active_signing_kid()?;
                Ok::<_, StoreError>(match kid {
                    Some(kid) => txn.signing_keys()?.into_iter().find(|k| k.key.kid == kid),
                    None => None,
                })
            })
        })
        .await??;
        // Only the very first key is made in the background; a changed
        // algorithm rotates before the server answers, as an operator expects.
        let first_start = active.is_none();
        let state: SharedState = Arc::default();
        let (ready_sender, ready) = watch::channel(false);
        let ring_store = store.clone();
        let prepare = move || -> anyhow::Result<KeyState> {
            match active {
                Some(active) if active.key.algorithm == algorithm => {}
                Some(_) => {
                    let kid = install_new_key(
                        &ring_store,
                        algorithm,
                        now,
                        overlap_seconds,
                        "algorithm_changed",
                        &RequestOrigin::default(),
                    )?;
                    tracing::info!(%kid, alg = algorithm.as_str(), "signing algorithm changed; rotated to a new key");
                }
                None => {
                    let kid = install_new_key(
                        &ring_store,
                        algorithm,
                        now,
                        overlap_seconds,
                        "first_start",
                        &RequestOrigin::default(),
                    )?;
                    tracing::info!(%kid, alg = algorithm.as_str(), "generated the first signing key");
                }
            }
            build_state(&ring_store, now)
        };
        let install = {
            let state = state.clone();
            move |built: KeyState| {
                set_state(&state, built);
                ready_sender.send_replace(true);
            }
        };
        if first_start {
            tokio::task::spawn_blocking(move || match prepare() {
                Ok(built) => install(built),
                Err(error) => tracing::error!(%error, "could not make the first signing key"),
            });
        } else {
            install(tokio::task::spawn_blocking(prepare).await??);
        }
        Ok(KeyRing {
            store: store.clone(),
            state,
            ready,
            overlap_seconds,
        })
    }

    /// The keys, once the first one exists.
    async fn snapshot(&self) -> ServiceResult<Arc<KeyState>> {
        let read = |state: &SharedState| match state.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some(state) = read(&self.state) {
            return Ok(state);
        }
        self.ready
            .clone()
            .wait_for(|ready| *ready)
            .await
            .map_err(|_| internal("the first signing key could not be made (see the log)"))?;
        read(&self.state).ok_or_else(|| internal("no signing keys"))
    }

    /// Resolves only if the first key could not be made in the background:
    /// a server that can never sign should stop (and be restarted by its
    /// supervisor), as it would have had the key been made before serving.
    pub async fn first_key_failed(&self) {
        if self.ready.clone().wait_for(|ready| *ready).await.is_ok() {
            std::future::pending::<()>().await;
        }
    }

    fn replace(&self, state: KeyState) {
        set_state(&self.state, state);
    }

    /// The current state, rebuilt first if a key's publication window ended.
    async fn current(&self) -> ServiceResult<Arc<KeyState>> {
        let now = clock::now();
        let state = self.snapshot().await?;
        if state.next_retirement.is_none_or(|at| at > now) {
            return Ok(state);
        }
        let store = self.store.clone();
        let rebuilt = tokio::task::spawn_blocking(move || build_state(&store, now))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        self.replace(rebuilt);
        self.snapshot().await
    }

    pub async fn signer(&self) -> ServiceResult<Arc<Signer>> {
        Ok(self.current().await?.signer.clone())
    }

    pub async fn verifier(&self) -> ServiceResult<Arc<Verifier>> {
        Ok(self.current().await?.verifier.clone())
    }

    /// The JWKS document and its ETag.
    pub async fn jwks(&self) -> ServiceResult<(Arc<str>, Arc<str>)> {
        let state = self.current().await?;
        Ok((state.jwks_json.clone(), state.etag.clone()))
    }

    /// Makes a new key (of `algorithm`, else the active key's) the signer.
    pub async fn rotate(
        &self,
        algorithm: Option<KeyAlgorithm>,
        origin: RequestOrigin,
    ) -> ServiceResult<KeyInfo> {
        // Also waits for the first key, so that it cannot land after this one.
        let active_algorithm = self.snapshot().await?.signer.algorithm();
        let store = self.store.clone();
        let overlap = self.overlap_seconds;
        let now = clock::now();
        let algorithm = algorithm.unwrap_or(active_algorithm);
        let (kid, state) =
            tokio::task::spawn_blocking(move || -> anyhow::Result<(String, KeyState)> {
                let kid = install_new_key(&store, algorithm, now, overlap, "operator", &origin)?;
                Ok((kid, build_state(&store, now)?))
            })
            .await
            .map_err(internal)?
            .map_err(internal)?;
        self.replace(state);
        tracing::info!(%kid, alg = algorithm.as_str(), "signing key rotated");
        self.list()
            .await?
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| internal("the new key vanished"))
    }

    pub async fn list(&self) -> ServiceResult<Vec<KeyInfo>> {
        // On a first start, the list would be empty until the first key exists.
        self.snapshot().await?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            store.read(|txn| {
                let active = txn.active_signing_kid()?;
                let mut keys = txn.signing_keys()?;
                keys.sort_by_key(|k| std::cmp::Reverse(k.key.created_at));
                Ok::<_, StoreError>(
                    keys.into_iter()
                        .map(|k| KeyInfo {
                            active: active.as_deref() == Some(k.key.kid.as_str()),
                            alg: k.key.algorithm,
                            created_at: clock::rfc3339(k.key.created_at),
                            rotated_out_at: k.rotated_out_at.map(clock::rfc3339),
                            retire_after: k.retire_after.map(clock::rfc3339),
                            kid: k.key.kid,
                        })
                        .collect(),
                )
            })
        })
        .await
        .map_err(internal)?
        .map_err(ServiceError::from)
    }

    /// Deletes keys whose window has ended (housekeeping).
    pub async fn delete_retired(&self) -> ServiceResult<usize> {
        let store = self.store.clone();
        let now = clock::now();
        let removed = tokio::task::spawn_blocking(move || {
            store.write(move |txn| {
                let active = txn.active_signing_kid()?;
                let mut removed = 0;
                for key in txn.signing_keys()? {
                    let retired = key.retire_after.is_some_and(|after| after <= now);
                    if retired && active.as_deref() != Some(key.key.kid.as_str()) {
                        txn.delete_signing_key(&key.key.kid)?;
                        txn.audit(
                            AuditRecord::new(AuditKind::KeyRetired, now, &RequestOrigin::default())
                                .details(serde_json::json!({"kid": key.key.kid})),
                        )?;
                        removed += 1;
                    }
                }
                Ok::<_, StoreError>(removed)
            })
        })
        .await
        .map_err(internal)??;
        if removed > 0 {
            self.current().await?;
        }
        Ok(removed)
    }
}

fn set_state(state: &SharedState, built: KeyState) {
    let built = Some(Arc::new(built));
    match state.write() {
        Ok(mut guard) => *guard = built,
        Err(poisoned) => *poisoned.into_inner() = built,
    }
}

/// Generates a key and makes it the signer, moving the old signer into its
/// publication window, in one transaction. Blocking.
fn install_new_key(
    store: &Store,
    algorithm: KeyAlgorithm,
    now: UnixSeconds,
    overlap_seconds: i64,
    reason: &str,
    origin: &RequestOrigin,
) -> anyhow::Result<String> {
    let new_key = StoredSigningKey {
        key: KeyPair::generate(algorithm, now)?,
        rotated_out_at: None,
        retire_after: None,
    };
    let kid = new_key.key.kid.clone();
    let (reason, origin) = (reason.to_owned(), origin.clone());
    store.write(move |txn| {
        let previous = txn.active_signing_kid()?;
        if let Some(previous) = &previous {
            if let Some(mut old) = txn
                .signing_keys()?
                .into_iter()
                .find(|k| &k.key.kid == previous)
            {
                old.rotated_out_at = Some(now);
                old.retire_after = Some(now + overlap_seconds);
                txn.put_signing_key(&old)?;
            }
        }
        txn.put_signing_key(&new_key)?;
        txn.set_active_signing_kid(&new_key.key.kid)?;
        let kind = if previous.is_some() {
            AuditKind::KeyRotated
        } else {
            AuditKind::KeyCreated
        };
        txn.audit(
            AuditRecord::new(kind, now, &origin)
                .reason(&reason)
                .details(serde_json::json!({
                    "kid": new_key.key.kid,
                    "alg": new_key.key.algorithm,
                    "previous_kid": previous,
                })),
        )
    })?;
    Ok(kid)
}

/// Publishes the active key and every key still inside its window. Blocking.
fn build_state(store: &Store, now: UnixSeconds) -> anyhow::Result<KeyState> {
    let (active, keys) =
        store.read(|txn| Ok::<_, StoreError>((txn.active_signing_kid()?, txn.signing_keys()?)))?;
    let active_kid = active.ok_or_else(|| anyhow::anyhow!("no active signing key"))?;
    let active = keys
        .iter()
        .find(|k| k.key.kid == active_kid)
        .ok_or_else(|| anyhow::anyhow!("the active signing key {active_kid} is missing"))?;
    let live: Vec<&StoredSigningKey> = keys
        .iter()
        .filter(|k| k.key.kid == active_kid || k.retire_after.is_none_or(|after| after > now))
        .collect();
    let published: Vec<PublicJwk> = live
        .iter()
        .map(|k| k.key.public_jwk())
        .collect::<Result<_, _>>()?;
    let next_retirement = live
        .iter()
        .filter(|k| k.key.kid != active_kid)
        .filter_map(|k| k.retire_after)
        .min();
    let jwks_json: Arc<str> = Arc::from(jwks_document(&published).to_string());
    let etag: Arc<str> = Arc::from(format!(
        "\"{}\"",
        &hex::encode(crate::crypto::sha256(jwks_json.as_bytes()))[..32]
    ));
    Ok(KeyState {
        signer: Arc::new(active.key.signer()?),
        verifier: Arc::new(Verifier::new(&published)?),
        jwks_json,
        etag,
        next_retirement,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ring(ready: watch::Receiver<bool>) -> (tempfile::TempDir, KeyRing) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) =
            Store::open(&dir.path().join("authd.redb"), 1 << 20, clock::now()).expect("open");
        let ring = KeyRing {
            store: Arc::new(store),
            state: SharedState::default(),
            ready,
            overlap_seconds: 60,
        };
        (dir, ring)
    }

    #[tokio::test]
    async fn a_first_key_that_could_not_be_made_fails_signing_and_reports_it() {
        let (sender, ready) = watch::channel(false);
        drop(sender);
        let (_dir, ring) = ring(ready);
        tokio::time::timeout(Duration::from_secs(1), ring.first_key_failed())
            .await
            .expect("the failure is reported");
        assert!(matches!(
            ring.snapshot().await,
            Err(ServiceError::Internal(_))
        ));
    }

    #[tokio::test]
    async fn a_first_key_that_was_made_never_reports_a_failure() {
        let (sender, ready) = watch::channel(false);
        sender.send_replace(true);
        drop(sender);
        let (_dir, ring) = ring(ready);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), ring.first_key_failed())
                .await
                .is_err()
        );
    }
}
