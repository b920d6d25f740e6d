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
//!
//! Private keys are stored sealed with a key derived from the server secret
//! (`crypto::jwt::StoredKeyPair`). Files from before sealing kept them in
//! clear: [`seal_keys_at_rest`] seals those at start, before anything reads
//! them, and has the store rewrite the file so that no freed page keeps the
//! clear copy. A secret the keys were not sealed with stops the start with
//! an error naming `server.secret` rather than quietly making new keys.
//!
//! Revocation (a key is compromised) drops a key at once, whatever its
//! window: from the JWKS, from verification (tokens it signed fail on the
//! next request, cached verifications included) and from the database. If it
//! was the signer, a new key is made and installed in the same transaction,
//! so there is always a signer.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::watch;

use super::{ServiceError, ServiceResult};
use crate::audit::{AuditKind, AuditRecord, RequestOrigin};
use crate::clock::{self, Clock, UnixSeconds};
use crate::config::Config;
use crate::crypto::jwt::{jwks_document, KeyAlgorithm, KeyPair, PublicJwk, Signer, Verifier};
use crate::crypto::sealed::SealingKey;
use crate::store::{Queries, Store, StoreError, StoredSigningKey};
use crate::swappable::Swappable;

/// The purpose the signing keys' sealing key is derived for.
const SEALING_PURPOSE: &str = "authd/signing-keys/v1";

/// The key that seals signing keys at rest, derived from the server secret.
pub fn sealing_key(server_secret: &[u8]) -> SealingKey {
    SealingKey::derive(server_secret, SEALING_PURPOSE)
}

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
type SharedState = Arc<Swappable<Option<Arc<KeyState>>>>;

pub struct KeyRing {
    store: Arc<Store>,
    /// Seals new private keys and opens stored ones.
    sealing: Arc<SealingKey>,
    state: SharedState,
    /// Turns `true` once `state` holds keys; closed without turning if the
    /// first key could not be made.
    ready: watch::Receiver<bool>,
    /// How long a rotated-out key stays published.
    overlap_seconds: i64,
    /// Held by whatever changes the key set or rebuilds the state, from its
    /// write through its read of the store to publishing the state: a state
    /// built from an older read must never replace a newer one (it could
    /// drop a new signer, or bring a revoked key back).
    changes: Arc<Mutex<()>>,
    /// When a token naming an unknown key last made the keys be read again.
    last_unknown_kid_reload: std::sync::atomic::AtomicI64,
    clock: Clock,
}

fn one_at_a_time(changes: &Mutex<()>) -> MutexGuard<'_, ()> {
    changes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What `DELETE /v1/keys/{kid}` did.
#[derive(Debug, Clone, Serialize)]
pub struct RevokedKey {
    pub revoked_kid: String,
    /// The signer after the revocation: a new key if the revoked one signed.
    pub active_kid: String,
    pub replaced_signer: bool,
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
    config.tokens.signing_alg
}

fn internal(error: impl Into<anyhow::Error>) -> ServiceError {
    ServiceError::internal(error)
}

impl KeyRing {
    /// Loads the keys; creates the first one, or rotates to the configured
    /// algorithm if the active key uses another.
    pub async fn load_or_create(
        store: &Arc<Store>,
        config: &Config,
        sealing: Arc<SealingKey>,
        clock: Clock,
    ) -> anyhow::Result<KeyRing> {
        let now = clock.now();
        let algorithm = configured_algorithm(config);
        let overlap_seconds = config
            .tokens
            .access_ttl
            .as_secs()
            .max(config.tokens.id_ttl.as_secs()) as i64;
        let ring_store = store.clone();
        let ring_sealing = sealing.clone();
        let active = tokio::task::spawn_blocking(move || {
            // Normally done already by `seal_keys_at_rest` at start; here so
            // that no path reaches the keys with one still in clear.
            seal_clear_keys(&ring_store, &ring_sealing, now)?;
            ring_store
                .read(|txn| {
                    let kid = txn.active_signing_kid()?;
                    Ok::<_, StoreError>(match kid {
                        Some(kid) => txn.signing_keys()?.into_iter().find(|k| k.key.kid == kid),
                        None => None,
                    })
                })
                .map_err(anyhow::Error::from)
        })
        .await??;
        // Only the very first key is made in the background; a changed
        // algorithm rotates before the server answers, as an operator expects.
        let first_start = active.is_none();
        let state: SharedState = Arc::default();
        let (ready_sender, ready) = watch::channel(false);
        let ring_store = store.clone();
        let ring_sealing = sealing.clone();
        let prepare = move || -> anyhow::Result<KeyState> {
            match active {
                Some(active) if active.key.algorithm == algorithm => {}
                Some(_) => {
                    let kid = install_key(
                        &ring_store,
                        new_key(algorithm, &ring_sealing, now)?,
                        now,
                        overlap_seconds,
                        "algorithm_changed",
                        &RequestOrigin::default(),
                    )?;
                    tracing::info!(%kid, alg = algorithm.as_str(), "signing algorithm changed; rotated to a new key");
                }
                None => {
                    let kid = install_key(
                        &ring_store,
                        new_key(algorithm, &ring_sealing, now)?,
                        now,
                        overlap_seconds,
                        "first_start",
                        &RequestOrigin::default(),
                    )?;
                    tracing::info!(%kid, alg = algorithm.as_str(), "generated the first signing key");
                }
            }
            build_state(&ring_store, &ring_sealing, now)
        };
        let install = {
            let state = state.clone();
            move |built: KeyState| {
                state.set(Some(Arc::new(built)));
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
            sealing,
            state,
            ready,
            overlap_seconds,
            changes: Arc::default(),
            last_unknown_kid_reload: std::sync::atomic::AtomicI64::new(0),
            clock,
        })
    }

    /// The keys, once the first one exists.
    async fn snapshot(&self) -> ServiceResult<Arc<KeyState>> {
        if let Some(state) = self.state.get() {
            return Ok(state);
        }
        self.ready
            .clone()
            .wait_for(|ready| *ready)
            .await
            .map_err(|_| {
                internal(anyhow::anyhow!(
                    "the first signing key could not be made (see the log)"
                ))
            })?;
        self.state
            .get()
            .ok_or_else(|| internal(anyhow::anyhow!("no signing keys")))
    }

    /// Resolves only if the first key could not be made in the background:
    /// a server that can never sign should stop (and be restarted by its
    /// supervisor), as it would have had the key been made before serving.
    pub async fn first_key_failed(&self) {
        if self.ready.clone().wait_for(|ready| *ready).await.is_ok() {
            std::future::pending::<()>().await;
        }
    }

    /// Runs `change` (blocking: store writes) on the blocking pool, then
    /// rebuilds and publishes the state, as one of the changes that happen
    /// one at a time.
    async fn change<T: Send + 'static>(
        &self,
        change: impl FnOnce(&Store) -> ServiceResult<T> + Send + 'static,
    ) -> ServiceResult<T> {
        let (store, sealing) = (self.store.clone(), self.sealing.clone());
        let (shared, changes) = (self.state.clone(), self.changes.clone());
        let clock = self.clock.clone();
        tokio::task::spawn_blocking(move || {
            let _one_at_a_time = one_at_a_time(&changes);
            let outcome = change(&store)?;
            let state = build_state(&store, &sealing, clock.now()).map_err(internal)?;
            shared.set(Some(Arc::new(state)));
            Ok(outcome)
        })
        .await
        .map_err(internal)?
    }

    /// Reads the keys again: another replica sharing the database changed
    /// them (rotated, revoked or made the first one).
    pub async fn reload(&self) -> ServiceResult<()> {
        self.change(|_| Ok(())).await
    }

    /// The verifier for `token`. With replicas on one database a token may
    /// name a key another replica made a moment ago, before its
    /// announcement arrived here: an unknown `kid` then reads the keys
    /// again, at most once a second, before the token is judged.
    pub async fn verifier_for(&self, token: &str) -> ServiceResult<Arc<Verifier>> {
        let verifier = self.verifier().await?;
        if !self.store.is_postgres() {
            return Ok(verifier);
        }
        let unknown =
            crate::crypto::jwt::header_kid(token).is_some_and(|kid| !verifier.knows(&kid));
        let now = self.clock.now();
        let last = self
            .last_unknown_kid_reload
            .load(std::sync::atomic::Ordering::Relaxed);
        if !unknown || now <= last {
            return Ok(verifier);
        }
        self.last_unknown_kid_reload
            .store(now, std::sync::atomic::Ordering::Relaxed);
        self.reload().await?;
        self.verifier().await
    }

    /// The current state, rebuilt first if a key's publication window ended.
    async fn current(&self) -> ServiceResult<Arc<KeyState>> {
        let now = self.clock.now();
        let due = move |state: &KeyState| state.next_retirement.is_some_and(|at| at <= now);
        let state = self.snapshot().await?;
        if !due(&state) {
            return Ok(state);
        }
        let (store, sealing) = (self.store.clone(), self.sealing.clone());
        let (shared, changes) = (self.state.clone(), self.changes.clone());
        tokio::task::spawn_blocking(move || {
            let _one_at_a_time = one_at_a_time(&changes);
            // Requests that arrived together rebuild once.
            if shared.get().is_none_or(|state| due(&state)) {
                shared.set(Some(Arc::new(build_state(&store, &sealing, now)?)));
            }
            Ok::<_, anyhow::Error>(())
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;
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
        let overlap = self.overlap_seconds;
        let now = self.clock.now();
        let algorithm = algorithm.unwrap_or(active_algorithm);
        let key = self.generate(algorithm, now).await?;
        let kid = self
            .change(move |store| {
                install_key(store, key, now, overlap, "operator", &origin).map_err(internal)
            })
            .await?;
        tracing::info!(%kid, alg = algorithm.as_str(), "signing key rotated");
        self.list()
            .await?
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| internal(anyhow::anyhow!("the new key vanished")))
    }

    /// Drops `kid` at once (it is compromised): from the JWKS, from
    /// verification and from the database, whatever its window. A signer is
    /// first replaced by a new key of its algorithm, in the same transaction.
    pub async fn revoke(&self, kid: String, origin: RequestOrigin) -> ServiceResult<RevokedKey> {
        // Also waits for the first key, so that it cannot land after this.
        let signer = self.snapshot().await?.signer.clone();
        let now = self.clock.now();
        // Made before the transaction (RSA takes a while), and only if the
        // key signs: a key that is not the signer cannot become it again,
        // since only new keys are ever made the signer.
        let replacement = if signer.kid() == kid {
            Some(self.generate(signer.algorithm(), now).await?)
        } else {
            None
        };
        let revoked = self
            .change(move |store| {
                store.write(move |txn| {
                    let key = txn
                        .signing_keys()?
                        .into_iter()
                        .find(|k| k.key.kid == kid)
                        .ok_or(ServiceError::NotFound("key"))?;
                    let active = txn
                        .active_signing_kid()?
                        .ok_or_else(|| internal(anyhow::anyhow!("no active signing key")))?;
                    let replaced_signer = active == kid;
                    let active_kid = if replaced_signer {
                        let new_key = replacement.ok_or_else(|| {
                            internal(anyhow::anyhow!("the key to revoke became the signer"))
                        })?;
                        txn.put_signing_key(&new_key)?;
                        txn.set_active_signing_kid(&new_key.key.kid)?;
                        txn.audit(
                            AuditRecord::new(AuditKind::KeyCreated, now, &origin)
                                .reason("signer_revoked")
                                .details(serde_json::json!({
                                    "kid": new_key.key.kid,
                                    "alg": new_key.key.algorithm,
                                    "previous_kid": kid,
                                })),
                        )?;
                        new_key.key.kid
                    } else {
                        active
                    };
                    txn.delete_signing_key(&kid)?;
                    txn.audit(
                        AuditRecord::new(AuditKind::KeyRevoked, now, &origin)
                            .reason("operator")
                            .details(serde_json::json!({
                                "kid": kid,
                                "alg": key.key.algorithm,
                                "was_signer": replaced_signer,
                                "active_kid": active_kid,
                            })),
                    )?;
                    Ok::<_, ServiceError>(RevokedKey {
                        revoked_kid: kid,
                        active_kid,
                        replaced_signer,
                    })
                })
            })
            .await?;
        tracing::warn!(
            kid = %revoked.revoked_kid,
            active_kid = %revoked.active_kid,
            "signing key revoked"
        );
        Ok(revoked)
    }

    /// A new sealed key, made on the blocking pool.
    async fn generate(
        &self,
        algorithm: KeyAlgorithm,
        now: UnixSeconds,
    ) -> ServiceResult<StoredSigningKey> {
        let sealing = self.sealing.clone();
        tokio::task::spawn_blocking(move || new_key(algorithm, &sealing, now))
            .await
            .map_err(internal)?
            .map_err(internal)
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
        let now = self.clock.now();
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

/// A fresh key, sealed for storage. Blocking (RSA takes a while).
fn new_key(
    algorithm: KeyAlgorithm,
    sealing: &SealingKey,
    now: UnixSeconds,
) -> anyhow::Result<StoredSigningKey> {
    Ok(StoredSigningKey {
        key: KeyPair::generate(algorithm, now)?.seal(sealing)?,
        rotated_out_at: None,
        retire_after: None,
    })
}

/// Makes `new_key` the signer, moving the old signer into its publication
/// window, in one transaction. Blocking.
fn install_key(
    store: &Store,
    new_key: StoredSigningKey,
    now: UnixSeconds,
    overlap_seconds: i64,
    reason: &str,
    origin: &RequestOrigin,
) -> anyhow::Result<String> {
    let (reason, origin) = (reason.to_owned(), origin.clone());
    store
        .write(move |txn| {
            let previous = txn.active_signing_kid()?;
            // Start-up decided on an earlier read; replicas sharing a database
            // start together, and the first to get here makes the key the
            // others then use (a second first key, landing after an operator's
            // rotation, would replace the rotated one).
            let active = match &previous {
                Some(kid) => txn.signing_keys()?.into_iter().find(|k| &k.key.kid == kid),
                None => None,
            };
            let already_done = match reason.as_str() {
                "first_start" => active.is_some(),
                "algorithm_changed" => active
                    .as_ref()
                    .is_some_and(|k| k.key.algorithm == new_key.key.algorithm),
                _ => false,
            };
            if let (true, Some(active)) = (already_done, &active) {
                return Ok::<_, crate::store::StoreError>(active.key.kid.clone());
            }
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
            )?;
            Ok(new_key.key.kid.clone())
        })
        .map_err(anyhow::Error::from)
}

/// Seals, in one transaction, every stored key an earlier version kept in
/// clear, and asks the store to rewrite its file at the next open (freed
/// pages would otherwise keep the clear copy). Returns how many it sealed.
/// Blocking.
fn seal_clear_keys(
    store: &Store,
    sealing: &Arc<SealingKey>,
    now: UnixSeconds,
) -> anyhow::Result<usize> {
    let in_clear = store.read(|txn| {
        Ok::<_, StoreError>(
            txn.signing_keys()?
                .into_iter()
                .filter(|k| k.key.in_clear())
                .count(),
        )
    })?;
    if in_clear == 0 {
        return Ok(0);
    }
    let sealing = sealing.clone();
    let sealed = store.write(move |txn| {
        let mut sealed = Vec::new();
        for stored in txn.signing_keys()?.into_iter().filter(|k| k.key.in_clear()) {
            let key = stored.key.open(&sealing).map_err(internal)?;
            txn.put_signing_key(&StoredSigningKey {
                key: key.seal(&sealing).map_err(internal)?,
                ..stored
            })?;
            sealed.push(key.kid);
        }
        txn.request_file_rewrite()?;
        txn.audit(
            AuditRecord::new(AuditKind::KeySealed, now, &RequestOrigin::default())
                .reason("stored_in_clear_by_an_earlier_version")
                .details(serde_json::json!({"kids": sealed})),
        )?;
        Ok::<_, ServiceError>(sealed.len())
    })?;
    Ok(sealed)
}

/// Run at start, before the store is shared: seals any signing key an
/// earlier version stored in clear, then reopens the store, which rewrites
/// the file into a fresh one so that no copy of a clear key survives in
/// freed pages. Blocking.
pub fn seal_keys_at_rest(
    store: Store,
    server_secret: &[u8],
    now: UnixSeconds,
) -> anyhow::Result<Store> {
    let sealed = seal_clear_keys(&store, &Arc::new(sealing_key(server_secret)), now)?;
    if sealed == 0 {
        return Ok(store);
    }
    let (store, report) = store.reopen(now)?;
    tracing::info!(
        sealed,
        rewritten = report.rewritten,
        "sealed signing keys an earlier version stored in clear and rewrote the database file"
    );
    Ok(store)
}

/// Publishes the active key and every key still inside its window. Blocking.
fn build_state(store: &Store, sealing: &SealingKey, now: UnixSeconds) -> anyhow::Result<KeyState> {
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
    let opened = |stored: &StoredSigningKey| {
        stored.key.open(sealing).map_err(|error| {
            anyhow::anyhow!(
                "signing key {}: {error}; restore the server.secret that was beside this database",
                stored.key.kid
            )
        })
    };
    let published: Vec<PublicJwk> = live
        .iter()
        .map(|k| opened(k)?.public_jwk().map_err(anyhow::Error::from))
        .collect::<anyhow::Result<_>>()?;
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
        signer: Arc::new(opened(active)?.signer()?),
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
            Store::open(&dir.path().join("authd.redb"), 1 << 20, 1_700_000_000).expect("open");
        let ring = KeyRing {
            store: Arc::new(store),
            sealing: Arc::new(sealing_key(&[3; 32])),
            state: SharedState::default(),
            ready,
            overlap_seconds: 60,
            changes: Arc::default(),
            last_unknown_kid_reload: std::sync::atomic::AtomicI64::new(0),
            clock: Clock::manual(1_700_000_000),
        };
        (dir, ring)
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[tokio::test]
    async fn keys_an_earlier_version_stored_in_clear_are_sealed_and_leave_no_copy_in_the_file() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("authd.redb");
        let now = 1_700_000_000;
        let secret = [5_u8; 32];
        let key = KeyPair::generate(KeyAlgorithm::EdDSA, now).expect("key");
        let der = key.private_key_der().to_vec();
        let der_base64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let kid = key.kid.clone();
        // The file as an earlier version left it: the active key in clear.
        {
            let (store, _) = Store::open(&path, 1 << 20, now).expect("open");
            let record = serde_json::json!({
                "key": key.stored_in_clear(), "rotated_out_at": null, "retire_after": null,
            });
            let kid = kid.clone();
            let written: Result<(), StoreError> = store.write(move |txn| {
                txn.put_raw_signing_key(&kid, &record)?;
                txn.set_active_signing_kid(&kid)
            });
            written.expect("write");
        }
        assert!(contains(
            &std::fs::read(&path).expect("read"),
            der_base64.as_bytes()
        ));
        let issuer = "http://localhost:9090";
        let claims = serde_json::json!({"iss": issuer, "aud": "authd", "sub": "u", "iat": now, "exp": now + 600});
        let issued_before = key
            .signer()
            .expect("signer")
            .sign(crate::crypto::jwt::TokenType::Access, &claims)
            .expect("sign");

        let (store, _) = Store::open(&path, 1 << 20, now).expect("open");
        let store = seal_keys_at_rest(store, &secret, now).expect("sealed");
        let file = std::fs::read(&path).expect("read");
        assert!(!contains(&file, &der), "no DER");
        assert!(!contains(&file, der_base64.as_bytes()), "no base64 DER");
        assert!(!contains(&file, b"private_key_pkcs8"));
        let stored = store.read(|txn| txn.signing_keys()).expect("read");
        assert_eq!(stored.len(), 1);
        assert!(!stored[0].key.in_clear());
        assert_eq!(stored[0].key.kid, kid);
        let audited = store
            .read(|txn| {
                txn.audit(&crate::store::AuditQuery {
                    kind: Some(AuditKind::KeySealed),
                    user: None,
                    org: None,
                    since: None,
                    until: None,
                    cursor: None,
                    limit: 10,
                })
            })
            .expect("audit");
        assert_eq!(audited.len(), 1);
        // Sealed already: nothing to do, no second rewrite.
        let store = Arc::new(seal_keys_at_rest(store, &secret, now).expect("again"));

        let mut config = Config::default();
        config.tokens.signing_alg = KeyAlgorithm::EdDSA;
        let ring = KeyRing::load_or_create(
            &store,
            &config,
            Arc::new(sealing_key(&secret)),
            Clock::manual(now),
        )
        .await
        .expect("keys");
        assert_eq!(
            ring.signer().await.expect("signer").kid(),
            kid,
            "the same key signs"
        );
        let expect = crate::crypto::jwt::Expectations {
            token_type: crate::crypto::jwt::TokenType::Access,
            issuer,
            audience: "authd",
            now,
            leeway_seconds: 0,
        };
        ring.verifier()
            .await
            .expect("verifier")
            .verify::<serde_json::Value>(&issued_before, &expect)
            .expect("a token signed before still verifies");

        let wrong_secret = KeyRing::load_or_create(
            &store,
            &config,
            Arc::new(sealing_key(&[6; 32])),
            Clock::manual(now),
        )
        .await;
        let error = wrong_secret
            .err()
            .expect("a wrong secret stops the start")
            .to_string();
        assert!(error.contains("server.secret"), "{error}");
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
