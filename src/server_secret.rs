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
