//! Owns password hashing and verification with argon2id, run on a bounded blocking pool.
//!
//! Argon2 is deliberately slow and memory-hard, so every hash and verification runs in
//! `tokio::task::spawn_blocking` and only after taking a permit from a semaphore with
//! `concurrency` permits. The permit is moved into the blocking closure and released only
//! when the computation has finished, even if the awaiting future was dropped meanwhile.
//! Hence at most `concurrency` argon2 computations run at once, and their memory is bounded
//! by `concurrency × memory_kib` (or `concurrency × MAX_MEMORY_KIB` while old stored hashes
//! with a larger memory cost are being verified). Without that bound a burst of login
//! attempts could allocate unbounded memory and take the process down.
//!
//! New hashes are argon2id, version 0x13, with a 16-byte salt from the operating system's
//! RNG and a 32-byte output, encoded as a PHC string. A stored hash is verified with the
//! parameters encoded in it, so hashes made under older parameters keep working;
//! [`Verification::Match`] reports when such a hash should be replaced.
//!
//! Passwords are moved into the blocking task and their bytes overwritten with zeros once
//! the computation is done. This is best effort: copies made before the `String` reached
//! this module (for example by the request parser) are out of reach.

use std::fmt;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use rand::RngCore as _;
use tokio::sync::Semaphore;

/// The length in bytes of every newly produced hash output.
pub const OUTPUT_LENGTH: usize = 32;

/// The largest memory cost accepted, for new hashes and for stored ones, in KiB (1 GiB).
/// A stored hash above it is treated as malformed so that a corrupted or planted record
/// cannot break the memory bound described in the module documentation.
pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;

/// The largest iteration count accepted, for new hashes and for stored ones, so that a
/// single stored record cannot occupy a pool slot for minutes.
pub const MAX_ITERATIONS: u32 = 64;

/// The largest degree of parallelism accepted, for new hashes and for stored ones.
pub const MAX_PARALLELISM: u32 = 64;

/// The argon2 cost parameters used for new hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// Returns 64 MiB, 3 iterations and 4 lanes, the RFC 9106 second recommended option.
    fn default() -> Self {
        Argon2Params {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 4,
        }
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password is correct. If `needs_rehash` is true the stored hash uses outdated
    /// parameters and should be replaced with a fresh [`PasswordHasher::hash`].
    Match { needs_rehash: bool },
    /// The password is wrong, or there was no stored hash.
    Mismatch,
}

/// Why hashing or verification could not be carried out. No variant carries a password.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters: {0}")]
    InvalidParams(String),
    #[error("the stored password hash is malformed or unsupported: {0}")]
    MalformedStoredHash(String),
    #[error("password hashing failed: {0}")]
    HashingFailed(String),
    #[error("the password hashing pool is closed")]
    PoolClosed,
}

/// Hashes and verifies passwords; cheap to clone, and all clones share one bounded pool.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<PasswordHasherInner>,
}

struct PasswordHasherInner {
    params: Argon2Params,
    argon2_params: Params,
    concurrency: usize,
    permits: Arc<Semaphore>,
    /// Sign-ups take at most half the pool (at least one slot): anyone may
    /// sign up, and a flood of them must leave logins of existing users
    /// room to run.
    sign_up_permits: Arc<Semaphore>,
    /// A hash of a random, immediately forgotten password, made with the current
    /// parameters. Verifying against it costs the same as a real verification, so a login
    /// for an unknown account takes as long as one for a known account.
    dummy_phc: String,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .field("concurrency", &self.inner.concurrency)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// Builds the hasher and a dummy hash with the same params (used for unknown users so
    /// that their timing equals a real verify).
    ///
    /// The dummy is a well-formed PHC string with a random salt and a random output rather
    /// than the hash of anything: verifying against it costs exactly one argon2id run, and
    /// building it costs nothing, which keeps start-up fast.
    pub fn new(params: Argon2Params, concurrency: usize) -> Result<Self, PasswordError> {
        if concurrency == 0 || concurrency > Semaphore::MAX_PERMITS {
            return Err(PasswordError::InvalidParams(format!(
                "concurrency must be between 1 and {}",
                Semaphore::MAX_PERMITS
            )));
        }
        check_cost_ceilings(params.memory_kib, params.iterations, params.parallelism)
            .map_err(PasswordError::InvalidParams)?;
        let argon2_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(OUTPUT_LENGTH),
        )
        .map_err(|error| PasswordError::InvalidParams(error.to_string()))?;

        let dummy_phc = random_phc(params);

        Ok(PasswordHasher {
            inner: Arc::new(PasswordHasherInner {
                params,
                argon2_params,
                concurrency,
                permits: Arc::new(Semaphore::new(concurrency)),
                sign_up_permits: Arc::new(Semaphore::new((concurrency / 2).max(1))),
                dummy_phc: dummy_phc?,
            }),
        })
    }

    /// Returns the parameters used for new hashes.
    pub fn params(&self) -> Argon2Params {
        self.inner.params
    }

    /// Hashes a password with the current parameters and a fresh random salt, returning a
    /// PHC string such as `$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>`.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let argon2_params = self.inner.argon2_params.clone();
        self.run_on_bounded_pool(move || {
            let mut password_bytes = password.into_bytes();
            let phc = hash_with_params(&password_bytes, &argon2_params);
            overwrite_with_zeros(&mut password_bytes);
            phc
        })
        .await?
    }

    /// [`PasswordHasher::hash`] for an anonymous sign-up, within the
    /// sign-up share of the pool.
    pub async fn hash_for_sign_up(&self, password: String) -> Result<String, PasswordError> {
        let _sign_up = Arc::clone(&self.inner.sign_up_permits)
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::PoolClosed)?;
        self.hash(password).await
    }

    /// Checks a password against a stored PHC hash, using the parameters encoded in it and
    /// a constant-time comparison.
    ///
    /// With `stored_phc` set to `None` (the account does not exist) the password is
    /// verified against the dummy hash, which costs the same time as a real verification,
    /// and the result is always [`Verification::Mismatch`].
    pub async fn verify(
        &self,
        password: String,
        stored_phc: Option<String>,
    ) -> Result<Verification, PasswordError> {
        let account_exists = stored_phc.is_some();
        let phc = stored_phc.unwrap_or_else(|| self.inner.dummy_phc.clone());
        // Rejecting malformed or absurdly expensive records here, before taking a permit,
        // keeps them from occupying a pool slot.
        check_stored_hash(&phc)?;

        let (password_matches, phc) = self
            .run_on_bounded_pool(move || {
                let mut password_bytes = password.into_bytes();
                let password_matches = verify_against_phc(&password_bytes, &phc);
                overwrite_with_zeros(&mut password_bytes);
                password_matches.map(|password_matches| (password_matches, phc))
            })
            .await??;

        if password_matches && account_exists {
            Ok(Verification::Match {
                needs_rehash: self.needs_rehash(&phc),
            })
        } else {
            Ok(Verification::Mismatch)
        }
    }

    /// Reports whether a stored hash should be replaced: it is not argon2id version 0x13,
    /// its memory, iteration or parallelism cost differs from the current parameters, its
    /// output is not 32 bytes long, or it cannot be parsed at all.
    pub fn needs_rehash(&self, stored_phc: &str) -> bool {
        let Ok(stored_hash) = PasswordHash::new(stored_phc) else {
            return true;
        };
        if stored_hash.algorithm != Algorithm::Argon2id.ident()
            || stored_hash.version != Some(Version::V0x13.into())
        {
            return true;
        }
        if stored_hash.hash.map(|output| output.len()) != Some(OUTPUT_LENGTH) {
            return true;
        }
        let Ok(stored_params) = Params::try_from(&stored_hash) else {
            return true;
        };
        let current = self.inner.params;
        stored_params.m_cost() != current.memory_kib
            || stored_params.t_cost() != current.iterations
            || stored_params.p_cost() != current.parallelism
    }

    /// Runs a job on tokio's blocking pool once a permit is available, holding the permit
    /// until the job has finished. Every argon2 computation goes through here, which is
    /// what enforces the concurrency and memory bound.
    async fn run_on_bounded_pool<Output, Job>(&self, job: Job) -> Result<Output, PasswordError>
    where
        Job: FnOnce() -> Output + Send + 'static,
        Output: Send + 'static,
    {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::PoolClosed)?;
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let output = job();
            crate::metrics::METRICS.password_hashed(started.elapsed());
            drop(permit);
            output
        })
        .await
        .map_err(|join_error| PasswordError::HashingFailed(join_error.to_string()))
    }
}

/// A PHC string with `params`, a random salt and a random output: no password matches it.
fn random_phc(params: Argon2Params) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut output = [0_u8; OUTPUT_LENGTH];
    OsRng.fill_bytes(&mut output);
    let output = argon2::password_hash::Output::new(&output)
        .map_err(|error| PasswordError::HashingFailed(error.to_string()))?;
    let phc = format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.memory_kib,
        params.iterations,
        params.parallelism,
        salt.as_str(),
        output
    );
    check_stored_hash(&phc)?;
    Ok(phc)
}

fn hash_with_params(password: &[u8], argon2_params: &Params) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params.clone())
        .hash_password(password, &salt)
        .map(|phc| phc.to_string())
        .map_err(|error| PasswordError::HashingFailed(error.to_string()))
}

/// Returns whether the password matches. Argon2 takes the algorithm, version and costs
/// from the PHC string, and the output comparison is constant-time.
fn verify_against_phc(password: &[u8], stored_phc: &str) -> Result<bool, PasswordError> {
    let stored_hash = PasswordHash::new(stored_phc)
        .map_err(|error| PasswordError::MalformedStoredHash(error.to_string()))?;
    match Argon2::default().verify_password(password, &stored_hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(error) => Err(PasswordError::MalformedStoredHash(error.to_string())),
    }
}

/// Checks that a stored hash is an argon2 PHC string with a salt and an output, and that
/// its costs are within the ceilings, without running argon2.
fn check_stored_hash(stored_phc: &str) -> Result<(), PasswordError> {
    let malformed = |reason: String| PasswordError::MalformedStoredHash(reason);
    let stored_hash =
        PasswordHash::new(stored_phc).map_err(|error| malformed(error.to_string()))?;
    Algorithm::try_from(stored_hash.algorithm).map_err(|error| malformed(error.to_string()))?;
    if stored_hash.salt.is_none() || stored_hash.hash.is_none() {
        return Err(malformed(
            "the salt or the hash output is missing".to_owned(),
        ));
    }
    let stored_params =
        Params::try_from(&stored_hash).map_err(|error| malformed(error.to_string()))?;
    check_cost_ceilings(
        stored_params.m_cost(),
        stored_params.t_cost(),
        stored_params.p_cost(),
    )
    .map_err(malformed)
}

fn check_cost_ceilings(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<(), String> {
    if memory_kib > MAX_MEMORY_KIB {
        return Err(format!("memory cost must not exceed {MAX_MEMORY_KIB} KiB"));
    }
    if iterations > MAX_ITERATIONS {
        return Err(format!("iteration count must not exceed {MAX_ITERATIONS}"));
    }
    if parallelism > MAX_PARALLELISM {
        return Err(format!("parallelism must not exceed {MAX_PARALLELISM}"));
    }
    Ok(())
}

/// Overwrites a buffer with zeros. `black_box` keeps the compiler from discarding the
/// writes as dead stores just before the buffer is freed.
fn overwrite_with_zeros(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    const SMALL_PARAMS: Argon2Params = Argon2Params {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };

    fn small_hasher() -> PasswordHasher {
        PasswordHasher::new(SMALL_PARAMS, 2).expect("small params are valid")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hash_with_default_params_has_the_argon2id_phc_prefix() {
        let hasher = PasswordHasher::new(Argon2Params::default(), 2).unwrap();
        let phc = hasher.hash("correct horse".to_owned()).await.unwrap();
        assert!(
            phc.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"),
            "unexpected prefix: {phc}"
        );
        let parsed = PasswordHash::new(&phc).unwrap();
        assert_eq!(parsed.hash.map(|output| output.len()), Some(32));
        let mut salt_buffer = [0_u8; 64];
        let salt = parsed.salt.unwrap().decode_b64(&mut salt_buffer).unwrap();
        assert_eq!(salt.len(), 16);
        assert!(!hasher.needs_rehash(&phc));
    }

    #[tokio::test]
    async fn the_right_password_matches_and_a_wrong_one_does_not() {
        let hasher = small_hasher();
        let phc = hasher.hash("Tundra-Lamp-7".to_owned()).await.unwrap();
        assert_eq!(
            hasher
                .verify("Tundra-Lamp-7".to_owned(), Some(phc.clone()))
                .await
                .unwrap(),
            Verification::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            hasher
                .verify("tundra-lamp-7".to_owned(), Some(phc))
                .await
                .unwrap(),
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn hashing_the_same_password_twice_uses_different_salts() {
        let hasher = small_hasher();
        let first = hasher.hash("same".to_owned()).await.unwrap();
        let second = hasher.hash("same".to_owned()).await.unwrap();
        assert_ne!(first, second);
    }

    #[tokio::test]
    async fn a_hash_made_with_old_params_still_verifies_and_needs_rehash() {
        let old_hasher = small_hasher();
        let old_phc = old_hasher.hash("Tundra-Lamp-7".to_owned()).await.unwrap();
        let new_hasher = PasswordHasher::new(
            Argon2Params {
                memory_kib: 2048,
                iterations: 2,
                parallelism: 1,
            },
            2,
        )
        .unwrap();
        assert!(new_hasher.needs_rehash(&old_phc));
        assert!(!old_hasher.needs_rehash(&old_phc));
        assert_eq!(
            new_hasher
                .verify("Tundra-Lamp-7".to_owned(), Some(old_phc))
                .await
                .unwrap(),
            Verification::Match { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn an_argon2i_hash_verifies_and_needs_rehash() {
        let hasher = small_hasher();
        let params = Params::new(1024, 1, 1, Some(32)).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let argon2i_phc = Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
            .hash_password(b"Tundra-Lamp-7", &salt)
            .unwrap()
            .to_string();
        assert!(argon2i_phc.starts_with("$argon2i$"));
        assert_eq!(
            hasher
                .verify("Tundra-Lamp-7".to_owned(), Some(argon2i_phc))
                .await
                .unwrap(),
            Verification::Match { needs_rehash: true }
        );
    }

    #[test]
    fn needs_rehash_flags_a_different_output_length_or_garbage() {
        let hasher = small_hasher();
        let params = Params::new(1024, 1, 1, Some(16)).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let short_output_phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"password", &salt)
            .unwrap()
            .to_string();
        assert!(hasher.needs_rehash(&short_output_phc));
        assert!(hasher.needs_rehash("not a hash"));
        assert!(hasher.needs_rehash("$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"));
    }

    #[tokio::test]
    async fn verifying_without_a_stored_hash_is_a_mismatch() {
        let hasher = small_hasher();
        assert_eq!(
            hasher.verify("anything".to_owned(), None).await.unwrap(),
            Verification::Mismatch
        );
        assert_eq!(
            hasher.verify(String::new(), None).await.unwrap(),
            Verification::Mismatch
        );
    }

    #[test]
    fn the_dummy_hash_uses_the_current_params() {
        let hasher = small_hasher();
        assert!(!hasher.needs_rehash(&hasher.inner.dummy_phc));
    }

    #[tokio::test]
    async fn malformed_stored_hashes_give_an_error_instead_of_a_panic() {
        let hasher = small_hasher();
        let malformed_hashes = [
            "",
            "not a hash",
            "$argon2id$v=19$m=1024,t=1,p=1$",
            "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA",
            "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$!!!",
            "$argon2id$v=19$m=0,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=16$m=1024,t=1,p=1,x=3$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
        ];
        for malformed in malformed_hashes {
            let result = hasher
                .verify("password".to_owned(), Some(malformed.to_owned()))
                .await;
            assert!(
                matches!(result, Err(PasswordError::MalformedStoredHash(_))),
                "expected a malformed-hash error for {malformed:?}, got {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_stored_hash_above_the_memory_ceiling_is_rejected_without_running() {
        let hasher = small_hasher();
        let enormous = "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let result = hasher
            .verify("password".to_owned(), Some(enormous.to_owned()))
            .await;
        assert!(matches!(result, Err(PasswordError::MalformedStoredHash(_))));
    }

    #[test]
    fn invalid_params_and_zero_concurrency_are_rejected() {
        let invalid_params = [
            Argon2Params {
                memory_kib: 0,
                ..SMALL_PARAMS
            },
            Argon2Params {
                iterations: 0,
                ..SMALL_PARAMS
            },
            Argon2Params {
                parallelism: 0,
                ..SMALL_PARAMS
            },
            Argon2Params {
                memory_kib: 8,
                parallelism: 4,
                ..SMALL_PARAMS
            },
            Argon2Params {
                memory_kib: MAX_MEMORY_KIB + 1,
                ..SMALL_PARAMS
            },
        ];
        for params in invalid_params {
            assert!(matches!(
                PasswordHasher::new(params, 1),
                Err(PasswordError::InvalidParams(_))
            ));
        }
        assert!(matches!(
            PasswordHasher::new(SMALL_PARAMS, 0),
            Err(PasswordError::InvalidParams(_))
        ));
    }

    #[test]
    fn debug_output_shows_params_but_no_hash_material() {
        let hasher = small_hasher();
        let debug_output = format!("{hasher:?}");
        assert!(debug_output.contains("memory_kib: 1024"));
        assert!(!debug_output.contains("$argon2"));
    }

    /// The bound cannot be observed from inside argon2 without test hooks, so this drives
    /// `run_on_bounded_pool`, the single path every hash and verification takes, with jobs
    /// that record how many of them are running at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_concurrency_jobs_run_at_once() {
        let hasher = small_hasher();
        let running = Arc::new(AtomicUsize::new(0));
        let most_running = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let hasher = hasher.clone();
            let running = Arc::clone(&running);
            let most_running = Arc::clone(&most_running);
            tasks.push(tokio::spawn(async move {
                hasher
                    .run_on_bounded_pool(move || {
                        let now_running = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most_running.fetch_max(now_running, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert!(most_running.load(Ordering::SeqCst) <= 2);
        assert_eq!(hasher.inner.permits.available_permits(), 2);
    }

    #[tokio::test]
    async fn a_permit_is_released_after_each_hash_and_verify() {
        let hasher = small_hasher();
        let phc = hasher.hash("x".to_owned()).await.unwrap();
        hasher.verify("x".to_owned(), Some(phc)).await.unwrap();
        hasher.verify("x".to_owned(), None).await.unwrap();
        assert_eq!(hasher.inner.permits.available_permits(), 2);
    }
}
