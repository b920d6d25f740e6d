//! `authd backup OUT` and `authd restore IN`: the command-line side of
//! backups. A backup is taken from the file directly when no server holds
//! it, else asked of the running server (`POST /v1/backup`, with the admin
//! token), which copies it from one read snapshot while it keeps serving.
//! A restore needs the server stopped; it checks the backup's schema and
//! keeps the file it replaces.

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::admin_token;
use crate::config::{Config, StorageBackend};
use crate::store::{self, BackupInfo, StoreError};

/// Writes a backup of the database of `config` to `out`. Returns how it
/// was taken and what the file holds.
/// `server` is the running server's base URL when `server.listen` is not
/// where this machine reaches it.
pub fn backup(
    config: &Config,
    out: &Path,
    server: Option<&str>,
    start_command: &str,
) -> anyhow::Result<BackupReport> {
    if out.exists() {
        bail!("{} already exists; choose a new name", out.display());
    }
    if config.storage.backend == StorageBackend::Postgres {
        // Replicas do not hold PostgreSQL the way a server holds its file:
        // a snapshot read is consistent while they keep writing.
        #[allow(clippy::disallowed_methods)] // Opening a store records its creation time.
        let now = crate::clock::Clock::system().now();
        let (database, _) = store::Store::open_postgres(&config.storage.postgres_url, now)?;
        database.backup_to(out)?;
        let info = store::inspect_backup(out)
            .with_context(|| format!("the backup written to {} does not open", out.display()))?;
        return Ok(BackupReport {
            info,
            through_server: None,
        });
    }
    match store::backup_closed_file(&config.database_path(), out) {
        Ok(info) => Ok(BackupReport {
            info,
            through_server: None,
        }),
        Err(StoreError::Locked { .. }) => {
            let base = match server {
                Some(url) => url.trim_end_matches('/').to_owned(),
                None => format!("http://{}", local_address(config.server.listen)),
            };
            let (token, _) = admin_token::current(&config.admin_token_path(), start_command)?;
            download(&base, &token, out)?;
            let info = store::inspect_backup(out).with_context(|| {
                format!("the backup written to {} does not open", out.display())
            })?;
            Ok(BackupReport {
                info,
                through_server: Some(base),
            })
        }
        Err(error) if error.is_corrupt() => bail!(
            "{error}\nfix: the database file is damaged, so no backup can be taken from it; {}",
            crate::app::restore_over_damaged(&config.database_path())
        ),
        Err(error) => Err(error.into()),
    }
}

pub struct BackupReport {
    pub info: BackupInfo,
    /// The running server that made it (its URL), if one held the file.
    pub through_server: Option<String>,
}

/// Puts the backup `input` in place of the database of `config`.
pub fn restore(
    config: &Config,
    input: &Path,
    now: i64,
) -> anyhow::Result<(BackupInfo, Option<PathBuf>)> {
    if !input.is_file() {
        bail!("{} is not a file", input.display());
    }
    if config.storage.backend == StorageBackend::Postgres {
        bail!(
            "storage.backend is postgres: restore a backup file into an empty database with \
             'authd migrate-storage --to postgres://…' run with a redb config naming the file, \
             or use PostgreSQL's own backups (pg_dump, base backups)"
        );
    }
    fs::create_dir_all(&config.storage.data_dir)
        .with_context(|| format!("cannot create {}", config.storage.data_dir.display()))?;
    match store::restore(input, &config.database_path(), now) {
        Err(StoreError::Locked { path }) => bail!(
            "{} is in use by a running authd; stop it first (e.g. systemctl stop authd), then restore",
            path.display()
        ),
        // A damaged live file is restored over; damage here is the backup's.
        Err(error) if error.is_corrupt() => bail!(
            "{error}\nfix: the backup {} is damaged and was not restored (the database file \
             is as it was); restore another backup, an older one if need be",
            input.display()
        ),
        other => Ok(other?),
    }
}

/// Where this machine reaches `listen` (an unspecified address listens on
/// loopback too).
fn local_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Streams `POST /v1/backup` into `out` (through `out.partial`, 0600, made
/// durable before it takes its name).
fn download(base: &str, token: &str, out: &Path) -> anyhow::Result<()> {
    let partial = out.with_extension("partial");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let mut response = reqwest::Client::new()
            .post(format!("{base}/v1/backup"))
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| {
                format!(
                    "the database is in use, and no authd answers at {base} to make the backup (pass --server URL if it listens elsewhere)"
                )
            })?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            bail!("the server at {base} refused the backup: {status} {body}");
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        while let Some(chunk) = response.chunk().await? {
            file.write_all(&chunk)?;
        }
        file.sync_all()?;
        Ok(())
    });
    if let Err(error) = result {
        let _ = fs::remove_file(&partial);
        return Err(error);
    }
    fs::rename(&partial, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_reached_on_loopback() {
        assert_eq!(
            local_address("0.0.0.0:9090".parse().expect("addr")),
            "127.0.0.1:9090".parse().expect("addr")
        );
        assert_eq!(
            local_address("[::]:9090".parse().expect("addr")),
            "[::1]:9090".parse().expect("addr")
        );
        assert_eq!(
            local_address("10.0.0.2:9090".parse().expect("addr")),
            "10.0.0.2:9090".parse().expect("addr")
        );
    }
}
