//! The operator's admin bearer token: where it comes from (`AUTHD_TOKEN`, else
//! the token file), how the file is written (atomically, mode 0600) and how a
//! running server notices a rotated file without a restart.
//!
//! The server keeps only the SHA-256 digest of the token in memory and compares
//! digests in constant time.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::crypto;

/// Set this to override the token file, for the CLI and the server alike.
pub const ENV_TOKEN: &str = "AUTHD_TOKEN";

#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error("no token found - run '{start_command}' once to generate one")]
    NotFound { start_command: String },
    #[error("permission denied reading {path} (fix: chmod 600 {path})", path = .path.display())]
    PermissionDenied { path: PathBuf },
    #[error("{path} does not hold a 64-character hex token (fix: run 'authd token rotate --force')", path = .path.display())]
    Malformed { path: PathBuf },
    #[error("could not read {path}: {source}", path = .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("could not write {path}: {source}", path = .path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{ENV_TOKEN} is set but empty")]
    EmptyEnvironment,
    #[error("{path} is owned by uid {owner}, but authd runs as uid {uid}: whoever owns it can change it (fix: chown {uid} {path} && chmod 600 {path})", path = .path.display())]
    WrongOwner { path: PathBuf, owner: u32, uid: u32 },
}

/// Where the effective token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Environment,
    File(PathBuf),
}

/// The token a client should use: `AUTHD_TOKEN` if set, else the file.
pub fn current(path: &Path, start_command: &str) -> Result<(String, TokenSource), AdminTokenError> {
    if let Some(value) = std::env::var_os(ENV_TOKEN) {
        let value = value.to_string_lossy().trim().to_owned();
        if value.is_empty() {
            return Err(AdminTokenError::EmptyEnvironment);
        }
        return Ok((value, TokenSource::Environment));
    }
    match read_file(path) {
        Err(AdminTokenError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Err(AdminTokenError::NotFound {
                start_command: start_command.to_owned(),
            })
        }
        other => other.map(|token| (token, TokenSource::File(path.to_path_buf()))),
    }
}

pub fn read_file(path: &Path) -> Result<String, AdminTokenError> {
    let text = fs::read_to_string(path).map_err(|source| {
        if source.kind() == io::ErrorKind::PermissionDenied {
            AdminTokenError::PermissionDenied {
                path: path.to_path_buf(),
            }
        } else {
            AdminTokenError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let token = text.trim();
    if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(token.to_ascii_lowercase())
    } else {
        Err(AdminTokenError::Malformed {
            path: path.to_path_buf(),
        })
    }
}

/// Writes `token` to `path` so that a reader sees either the old file or the
/// new one, never a torn one, and never a moment with looser permissions.
pub fn write_file(path: &Path, token: &str) -> Result<(), AdminTokenError> {
    let failed = |source: io::Error| AdminTokenError::Write {
        path: path.to_path_buf(),
        source,
    };
    let directory = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temporary = tempfile::Builder::new()
        .prefix(".admin.token.")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(directory)
        .map_err(failed)?;
    temporary
        .write_all(format!("{token}\n").as_bytes())
        .map_err(failed)?;
    temporary.as_file().sync_all().map_err(failed)?;
    temporary.persist(path).map_err(|e| failed(e.error))?;
    // Make the rename itself durable.
    fs::File::open(directory)
        .and_then(|d| d.sync_all())
        .map_err(failed)?;
    Ok(())
}

/// Creates the token file with a fresh token if there is none. Returns whether
/// it was created. The server's start calls it: a file another user owns is
/// refused (that user could swap the secret), one readable by others is
/// tightened to 0600.
pub fn ensure_file(path: &Path) -> Result<bool, AdminTokenError> {
    match read_file(path) {
        Ok(_) => {
            check_owner(path)?;
            tighten_permissions(path);
            Ok(false)
        }
        Err(AdminTokenError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(|source| AdminTokenError::Write {
                        path: path.to_path_buf(),
                        source,
                    })?;
            }
            write_file(path, &crypto::random::hex_token())?;
            Ok(true)
        }
        Err(other) => Err(other),
    }
}

/// A secret file must belong to the user authd runs as (as SSH asks of its
/// keys).
fn check_owner(path: &Path) -> Result<(), AdminTokenError> {
    use std::os::unix::fs::MetadataExt;
    let owner = fs::metadata(path)
        .map_err(|source| AdminTokenError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .uid();
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if owner == uid {
        Ok(())
    } else {
        Err(AdminTokenError::WrongOwner {
            path: path.to_path_buf(),
            owner,
            uid,
        })
    }
}

/// A token file readable by others is repaired rather than trusted as is.
fn tighten_permissions(path: &Path) {
    if let Ok(metadata) = fs::metadata(path) {
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "admin token file was readable by others; setting mode 0600");
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
        }
    }
}

/// What the server checks presented admin tokens against. It holds the digest
/// only, and follows the token file when that is the source.
#[derive(Debug)]
pub struct AdminTokenVerifier {
    source: TokenSource,
    digest: RwLock<[u8; 32]>,
}

impl AdminTokenVerifier {
    pub fn new(token: &str, source: TokenSource) -> Self {
        Self {
            source,
            digest: RwLock::new(crypto::sha256(token.as_bytes())),
        }
    }

    pub fn source(&self) -> &TokenSource {
        &self.source
    }

    pub fn verify(&self, presented: &str) -> bool {
        let expected = match self.digest.read() {
            Ok(guard) => *guard,
            Err(poisoned) => *poisoned.into_inner(),
        };
        crypto::secrets_equal(presented.as_bytes(), &expected)
    }

    /// Re-reads the token file. Returns `Ok(true)` when the token changed.
    /// A missing or malformed file keeps the last good token: an operator
    /// mid-edit must not lock everyone out.
    pub fn reload(&self) -> Result<bool, AdminTokenError> {
        let TokenSource::File(path) = &self.source else {
            return Ok(false);
        };
        let token = read_file(path)?;
        let fresh = crypto::sha256(token.as_bytes());
        let mut guard = match self.digest.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if *guard == fresh {
            return Ok(false);
        }
        *guard = fresh;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_creates_a_0600_hex_token_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/admin.token");
        assert!(ensure_file(&path).expect("create"));
        let first = read_file(&path).expect("read");
        assert_eq!(first.len(), 64);
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().expect("parent"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert!(!ensure_file(&path).expect("second call"));
        assert_eq!(read_file(&path).expect("read"), first);
    }

    #[test]
    fn a_malformed_file_is_reported_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("admin.token");
        fs::write(&path, "short").expect("write");
        let error = read_file(&path).expect_err("malformed");
        assert!(
            error.to_string().contains("authd token rotate --force"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_file_says_how_to_create_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = match read_file(&dir.path().join("absent")) {
            Err(AdminTokenError::Read { source, .. }) => source.kind(),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(error, io::ErrorKind::NotFound);
    }

    #[test]
    fn the_verifier_follows_a_rotated_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("admin.token");
        let old = crypto::random::hex_token();
        write_file(&path, &old).expect("write");
        let verifier = AdminTokenVerifier::new(&old, TokenSource::File(path.clone()));
        assert!(verifier.verify(&old));
        assert!(!verifier.reload().expect("unchanged"));
        let new = crypto::random::hex_token();
        write_file(&path, &new).expect("rotate");
        assert!(verifier.reload().expect("changed"));
        assert!(verifier.verify(&new));
        assert!(!verifier.verify(&old));
        fs::write(&path, "garbage").expect("corrupt");
        assert!(verifier.reload().is_err());
        assert!(verifier.verify(&new), "the last good token stays valid");
    }
}
