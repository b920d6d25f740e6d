//! The server secret: 32 random bytes in `<data_dir>/server.secret` (0600,
//! beside the admin token, never in the database). Keys for sealing secrets
//! at rest are derived from it, so a copy of `authd.redb` alone reveals none
//! of them. Losing the file makes enrolled TOTP seeds and the JWT signing
//! keys unreadable (authd then refuses to start): back it up with the
//! database.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::admin_token::{self, AdminTokenError};

pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join("server.secret")
}

/// Reads the secret, creating it (atomically, 0600) on first start.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = path_in(data_dir);
    // The admin token file's format (64 lowercase hex, atomic 0600 writes)
    // fits a 32-byte secret exactly.
    let explain = |error: AdminTokenError| {
        match error {
        // The token file's fix (`authd token rotate`) would be wrong here: a
        // new secret cannot unseal what the old one sealed.
        AdminTokenError::Malformed { .. } => anyhow::anyhow!(
            "server secret {} does not hold 64 hex characters (fix: put back the copy from your backup; it unseals the TOTP seeds and signing keys in the database, and a new one would leave them unreadable)",
            path.display()
        ),
        other => anyhow::Error::new(other).context(format!("server secret {}", path.display())),
    }
    };
    admin_token::ensure_file(&path).map_err(explain)?;
    let text = admin_token::read_file(&path).map_err(explain)?;
    let mut secret = [0_u8; 32];
    hex::decode_to_slice(text, &mut secret)
        .with_context(|| format!("server secret {} is not 64 hex characters", path.display()))?;
    Ok(secret)
}

/// The `meta` key of the secret's fingerprint.
const FINGERPRINT_KEY: &str = "server_secret_fingerprint";

/// A value derived from the secret (HKDF, one way) that tells whether two
/// copies are the same without revealing either.
fn fingerprint(secret: &[u8; 32]) -> String {
    let mut derived = [0_u8; 16];
    let _ = hkdf::Hkdf::<sha2::Sha256>::new(None, secret)
        .expand(b"authd server secret fingerprint", &mut derived);
    hex::encode(derived)
}

/// Refuses to go on with a secret other than the one the database was first
/// used with: its sealed keys and TOTP seeds would be unreadable, and with
/// PostgreSQL every replica must hold the same secret. Records the
/// fingerprint on first use.
pub fn check_matches_store(store: &crate::store::Store, secret: &[u8; 32]) -> anyhow::Result<()> {
    use crate::store::{Queries, StoreError};
    let ours = fingerprint(secret);
    let recorded: Option<String> = store.read(|txn| txn.meta(FINGERPRINT_KEY))?;
    let recorded = match recorded {
        Some(recorded) => recorded,
        // Recorded under the write lock, so that of two replicas starting
        // together on a new database, the second sees the first's.
        None => store.write(move |txn| {
            let recorded: Option<String> = txn.meta(FINGERPRINT_KEY)?;
            match recorded {
                Some(recorded) => Ok::<_, StoreError>(recorded),
                None => {
                    txn.put_meta(FINGERPRINT_KEY, &ours)?;
                    Ok(ours)
                }
            }
        })?,
    };
    if recorded != fingerprint(secret) {
        anyhow::bail!(
            "this server.secret is not the one the database was first used with; \
             copy server.secret from the data dir of the first server (every replica of a \
             PostgreSQL backend needs the same file), or restore the one backed up with this database"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_accepts_only_the_secret_it_first_saw() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) =
            crate::store::Store::open(&dir.path().join("authd.redb"), 1 << 20, 0).expect("open");
        check_matches_store(&store, &[1; 32]).expect("first use records it");
        check_matches_store(&store, &[1; 32]).expect("the same secret");
        let error = check_matches_store(&store, &[2; 32]).expect_err("another secret");
        assert!(error.to_string().contains("copy server.secret"), "{error}");
    }
}
