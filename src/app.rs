//! Building the server from a config and running it until a shutdown signal:
//! data dir, database, admin token, background tasks, listener.

use std::fs;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin_token::{self, AdminTokenVerifier, TokenSource};
use crate::clock::Clock;
use crate::config::{CacheMib, Config, ConfigSource, StorageBackend};
use crate::http::{self, AppState, Shared};
use crate::live_config::Reloader;
use crate::service::Services;
use crate::store::{Store, StoreError, Sweep};
use crate::telemetry::LogLevel;

/// How often the server looks at the admin token file for a rotation.
const TOKEN_FILE_POLL: Duration = Duration::from_millis(250);

pub struct Application {
    listener: TcpListener,
    /// `metrics.listen`, if set.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    config: Arc<Config>,
    stop_sender: watch::Sender<bool>,
}

impl Application {
    /// Prepares everything that can fail before the first request: a second
    /// instance on the same data dir fails here, before binding the port.
    /// `reloader` reads the config again on SIGHUP or `POST /v1/config/reload`.
    pub async fn build(config: Config, reloader: Reloader) -> anyhow::Result<Application> {
        #[allow(clippy::disallowed_methods)] // The edge that makes the system clock.
        let clock = Clock::system();
        Self::build_with(config, clock, reloader).await
    }

    /// [`Application::build`] with the services' clock given: a manual one
    /// lets in-process tests move time instead of waiting for it. A reload
    /// reads the defaults and the environment again.
    pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Application> {
        let reloader = Reloader::new(ConfigSource::Defaults, LogLevel::detached());
        Self::build_with(config, clock, reloader).await
    }

    async fn build_with(
        config: Config,
        clock: Clock,
        reloader: Reloader,
    ) -> anyhow::Result<Application> {
        let config = Arc::new(config);
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        ensure_data_dir(&config.storage.data_dir)?;

        let (store, report) = match config.storage.backend {
            StorageBackend::Redb => {
                let cache_bytes = page_cache_bytes(config.storage.cache_mib);
                let opened = Store::open(&config.database_path(), cache_bytes, clock.now())
                    .map_err(|error| explain_open_failure(error, &config))?;
                tracing::info!(cache_mib = cache_bytes >> 20, "page cache");
                opened
            }
            StorageBackend::Postgres => {
                let url = config.storage.postgres_url.clone();
                let now = clock.now();
                tokio::task::spawn_blocking(move || Store::open_postgres(&url, now)).await??
            }
        };
        tracing::info!(
            backend = store.backend_status().kind,
            location = %store.backend_status().location,
            created = report.created,
            schema_version = report.schema_version,
            migrated_from = report.migrated_from,
            "database open"
        );
        // Holding the file now, no other server is making a download copy.
        match crate::service::backup::remove_abandoned_download_copies(&config.storage.data_dir) {
            Ok(0) => {}
            Ok(removed) => tracing::warn!(
                removed,
                "removed the temporary copies of backups a stopped process was making"
            ),
            Err(error) => tracing::warn!(%error, "could not look for abandoned backup copies"),
        }

        let admin_token = load_admin_token(&config)?;

        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| {
                format!("cannot listen on {} (server.listen)", config.server.listen)
            })?;

        let metrics_listener = match config.metrics.listen {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} (metrics.listen)"))?,
            ),
            None => None,
        };

        let server_secret = crate::server_secret::load_or_create(&config.storage.data_dir)?;
        crate::server_secret::check_matches_store(&store, &server_secret)
            .map_err(|error| explain_start_failure(error, &config))?;
        let store = crate::service::keys::seal_keys_at_rest(store, &server_secret, clock.now())
            .map_err(|error| explain_start_failure(error, &config))?;
        let store = Arc::new(store);
        let services = Arc::new(
            Services::build(config.clone(), store.clone(), &server_secret, clock)
                .await
                .map_err(|error| explain_start_failure(error, &config))?,
        );
        let (stop_sender, stop_receiver) = watch::channel(false);
        let state = AppState::new(Shared {
            admin_token: Arc::new(admin_token),
            started_at: Instant::now(),
            services,
            reloader: Arc::new(reloader),
            shutdown: stop_receiver,
        });
        Ok(Application {
            listener,
            metrics_listener,
            state,
            config,
            stop_sender,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// What `http::router` is built from: lets the fuzz targets (`fuzz/`)
    /// drive the real router in-process, without the socket.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish
    /// (for at most `server.shutdown_grace`) and closes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let address = self.local_addr()?;
        let stop_sender = self.stop_sender;
        let stop_receiver = stop_sender.subscribe();
        let watcher = tokio::spawn(watch_admin_token(
            self.state.admin_token.clone(),
            stop_receiver.clone(),
        ));
        let housekeeping = tokio::spawn(housekeeping(
            self.state.services.clone(),
            stop_receiver.clone(),
        ));
        let reloads = tokio::spawn(reload_on_hangup(self.state.clone(), stop_receiver.clone()));
        let key_changes = tokio::spawn(follow_key_changes(
            self.state.services.clone(),
            stop_receiver.clone(),
        ));
        let backups = tokio::spawn(scheduled_backups(
            self.state.services.clone(),
            stop_receiver.clone(),
        ));

        let warm = {
            let services = self.state.services.clone();
            let stop = stop_receiver.clone();
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                match services.warm_store_cache(|| !*stop.borrow()) {
                    Ok(bytes) => tracing::info!(
                        mib = bytes >> 20,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "warmed the page cache"
                    ),
                    Err(error) => tracing::warn!(%error, "could not warm the page cache"),
                }
            })
        };

        let router = http::router(self.state.clone());
        let (max_connections, lowered_from) = self.config.max_connections();
        if let Some(configured) = lowered_from {
            tracing::warn!(
                configured,
                max_connections,
                open_files_limit = crate::config::open_files_limit(),
                "server.max_connections is more than the open-files limit allows; using the lower number (raise the limit, e.g. systemd's LimitNOFILE=, to serve more)"
            );
        }
        let options = http::server::ServeOptions {
            header_timeout: self.config.server.header_timeout.as_std(),
            max_connections,
        };
        let mut server = tokio::spawn(http::server::serve(
            self.listener,
            router,
            options,
            stop_receiver.clone(),
        ));
        let metrics_server = self.metrics_listener.map(|listener| {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "metrics listening (GET /metrics, no token)");
            }
            tokio::spawn(http::server::serve(
                listener,
                http::metrics_router(self.state.clone()),
                http::server::ServeOptions {
                    header_timeout: options.header_timeout,
                    max_connections: 64,
                },
                stop_receiver.clone(),
            ))
        });
        tracing::info!(%address, public_url = %self.config.server.public_url, max_connections, "authd listening");
        // The listener was bound in `build` and the accept loop now runs:
        // a connection systemd's dependants make from here is answered.
        crate::systemd::notify_ready();
        tokio::spawn(release_start_up_pages(self.state.services.clone()));

        let stop = tokio::select! {
            result = &mut server => {
                result.context("server task failed")?;
                None
            }
            () = shutdown => {
                tracing::info!("shutdown requested; finishing in-flight requests");
                Some(Ok(()))
            }
            () = self.state.services.keys.first_key_failed() => {
                tracing::error!("no signing key could be made; stopping");
                Some(Err(anyhow::anyhow!("could not make the first signing key (see the log)")))
            }
        };
        if stop.is_some() {
            crate::systemd::notify_stopping();
            let _ = stop_sender.send(true);
            let grace = self.config.server.shutdown_grace.as_std();
            match tokio::time::timeout(grace, &mut server).await {
                Ok(result) => result.context("server task failed")?,
                Err(_) => {
                    tracing::warn!(grace = %self.config.server.shutdown_grace, "requests still running after the grace period; closing anyway");
                    server.abort();
                }
            }
        }
        let _ = stop_sender.send(true);
        let _ = watcher.await;
        let _ = housekeeping.await;
        let _ = reloads.await;
        let _ = key_changes.await;
        let _ = backups.await;
        if let Some(metrics_server) = metrics_server {
            let _ = metrics_server.await;
        }
        let _ = warm.await;
        if let Err(error) = self.state.services.flush_session_activity().await {
            tracing::warn!(%error, "could not record the last session activity");
        }
        if let Err(error) = self.state.services.flush_pat_activity().await {
            tracing::warn!(%error, "could not record the last token use");
        }
        drop(self.state);
        tracing::info!("database closed; bye");
        stop.unwrap_or(Ok(()))
    }
}

/// `[backup]`: a copy every `backup.every` into `backup.dir`, the first one
/// `every` after start. The settings are read as each one is due, so a
/// reload that changes them applies from the next.
async fn scheduled_backups(services: Arc<Services>, mut stop: watch::Receiver<bool>) {
    loop {
        let every = services.config().backup.every.as_std();
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let backup = services.config().backup.clone();
        if backup.dir.is_empty() || !services.store.runs_background_work() {
            continue;
        }
        match services
            .scheduled_backup(backup.dir.into(), backup.keep)
            .await
        {
            Ok(path) => tracing::info!(path = %path.display(), "scheduled backup written"),
            Err(error) => tracing::warn!(%error, "scheduled backup failed"),
        }
    }
}

/// Reads the config again on each SIGHUP until the server stops.
async fn reload_on_hangup(state: AppState, mut stop: watch::Receiver<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!(%error, "SIGHUP will not reload the config");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = hangups.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                let state = state.clone();
                // The outcome is logged by the reload itself.
                let _ = tokio::task::spawn_blocking(move || {
                    state.services.reload_from(&state.reloader)
                })
                .await;
            }
            _ = stop.changed() => return,
        }
    }
}

/// The smallest page cache `auto` chooses.
const MIN_AUTO_CACHE_BYTES: u64 = 32 << 20;

/// The ceiling of redb's page cache in bytes. `auto` is a quarter of the
/// memory this process may use (the machine's, or its cgroup's limit if
/// lower), at least 32 MiB. redb fills the cache only as pages are read, so
/// a homelab's file of a few MiB costs a few MiB, while the 2 GB file of a
/// million users stays in memory instead of being read again for each
/// request (docs/performance.md).
fn page_cache_bytes(setting: CacheMib) -> usize {
    let bytes = match setting {
        CacheMib::Mib(mib) => (mib as u64).saturating_mul(1 << 20),
        CacheMib::Auto => memory_limit_bytes()
            .map_or(MIN_AUTO_CACHE_BYTES, |limit| limit / 4)
            .max(MIN_AUTO_CACHE_BYTES),
    };
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// The memory this process may use: `MemTotal`, or the cgroup v2 limit
/// (`memory.max`, e.g. a systemd unit's `MemoryMax=`) if lower. `None`
/// where neither can be read (`deploy/authd.service` hides `/proc/meminfo`
/// with `ProcSubset=pid` and sets `MemoryMax=`).
fn memory_limit_bytes() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_total_bytes(&text));
    let cgroup = cgroup_memory_max();
    match (total, cgroup) {
        (Some(total), Some(cgroup)) => Some(total.min(cgroup)),
        (total, cgroup) => total.or(cgroup),
    }
}

/// `memory.max` of this process's own cgroup. A systemd service sees the
/// whole hierarchy under `/sys/fs/cgroup`, its limit in
/// `system.slice/<unit>/memory.max`; a container with its own cgroup
/// namespace sees its cgroup as `/`.
fn cgroup_memory_max() -> Option<u64> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = cgroup_v2_path(&membership)?.trim_start_matches('/');
    let limit = Path::new("/sys/fs/cgroup").join(own).join("memory.max");
    std::fs::read_to_string(limit).ok()?.trim().parse().ok()
}

/// The cgroup v2 line of `/proc/self/cgroup`: `0::/system.slice/authd.service`.
fn cgroup_v2_path(membership: &str) -> Option<&str> {
    membership.lines().find_map(|line| line.strip_prefix("0::"))
}

fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// The data dir holds the database and secrets: owner-only.
pub fn ensure_data_dir(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        let metadata = fs::metadata(path)
            .with_context(|| format!("storage.data_dir: cannot read {}", path.display()))?;
        anyhow::ensure!(
            metadata.is_dir(),
            "storage.data_dir: {} is not a directory",
            path.display()
        );
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "data dir was accessible to others; setting mode 0700");
            fs::set_permissions(path, fs::Permissions::from_mode(0o700)).with_context(|| {
                format!("storage.data_dir: cannot chmod 700 {}", path.display())
            })?;
        }
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("storage.data_dir: cannot create {}", path.display()))?;
    tracing::info!(path = %path.display(), "created data dir");
    Ok(())
}

/// A database that does not open, with what the operator can do about it.
fn explain_open_failure(error: StoreError, config: &Config) -> anyhow::Error {
    match fix_for(&error, config) {
        Some(fix) => anyhow::anyhow!("{error}\n{fix}"),
        None => error.into(),
    }
}

/// What to do about a store error at start, if it is one an operator can fix.
fn fix_for(error: &StoreError, config: &Config) -> Option<String> {
    let path = config.database_path();
    let data_dir = config.storage.data_dir.display();
    let fix = if error.is_corrupt() {
        format!(
            "fix: the database file is damaged; {}, then start again",
            restore_over_damaged(&path)
        )
    } else if error.is_storage_full() {
        format!("fix: free space on the volume of {data_dir}, then start again")
    } else if error.is_not_writable() {
        format!(
            "fix: authd must write to {data_dir}: mount it read-write and make it and its files belong to the user authd runs as (e.g. chown -R authd {data_dir})"
        )
    } else {
        return None;
    };
    Some(fix)
}

/// What to do with the damaged database at `path`, said the same way
/// wherever the damage is found (at start, by `authd backup`).
pub(crate) fn restore_over_damaged(path: &Path) -> String {
    format!(
        "keep it aside (mv {path} {path}.damaged) and restore the newest backup with 'authd restore BACKUP'",
        path = path.display()
    )
}

/// A start-up step after the open that failed on the store (a record the
/// open did not read turned out damaged, say) gets the same advice as a
/// failed open.
fn explain_start_failure(error: anyhow::Error, config: &Config) -> anyhow::Error {
    let fix = error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<StoreError>())
        .find_map(|store_error| fix_for(store_error, config));
    match fix {
        Some(fix) => anyhow::anyhow!("{error:#}\n{fix}"),
        None => error,
    }
}

/// Checks, without creating anything, that the server could use `path` as
/// its data dir: for `check-config`.
pub fn probe_data_dir(path: &Path) -> anyhow::Result<()> {
    let mut existing = path;
    while !existing.exists() {
        existing = match existing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
    }
    anyhow::ensure!(
        existing.is_dir(),
        "storage.data_dir: {} cannot be created: {} is not a directory",
        path.display(),
        existing.display()
    );
    tempfile::tempfile_in(existing).with_context(|| {
        format!(
            "storage.data_dir: {} is not writable (checked {})",
            path.display(),
            existing.display()
        )
    })?;
    Ok(())
}

fn load_admin_token(config: &Config) -> anyhow::Result<AdminTokenVerifier> {
    let path = config.admin_token_path();
    if std::env::var_os(admin_token::ENV_TOKEN).is_none() {
        let created = admin_token::ensure_file(&path)?;
        tracing::info!(
            path = %path.display(),
            created,
            "admin token file (show it with 'authd token show')"
        );
    }
    let (token, source) = admin_token::current(&path, "authd serve")?;
    if source == TokenSource::Environment {
        tracing::info!("admin token taken from AUTHD_TOKEN; the token file is not watched");
    }
    Ok(AdminTokenVerifier::new(&token, source))
}

/// Reloads the signing keys when another replica sharing the database
/// changed them, so that every replica signs with the active key and
/// publishes every key still in its window.
async fn follow_key_changes(services: Arc<Services>, mut stop: watch::Receiver<bool>) {
    let mut changes = services.store.subscribe_keys_changed();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                match services.keys.reload().await {
                    Ok(()) => tracing::info!("reloaded the signing keys another replica changed"),
                    Err(error) => tracing::warn!(%error, "could not reload the signing keys"),
                }
            }
        }
    }
}

/// Periodic upkeep: session `last_active` and retired signing keys (every
/// minute), and sweeping ended sessions and audit records past retention (at
/// start, then hourly).
async fn housekeeping(services: Arc<Services>, mut stop: watch::Receiver<bool>) {
    let mut activity = tokio::time::interval(Duration::from_secs(
        crate::service::sessions::ACTIVITY_FLUSH_SECONDS,
    ));
    let mut sweep = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = activity.tick() => {
                if let Err(error) = services.flush_session_activity().await {
                    tracing::warn!(%error, "could not record session activity");
                }
                if let Err(error) = services.flush_pat_activity().await {
                    tracing::warn!(%error, "could not record token use");
                }
                if !services.store.runs_background_work() {
                    continue;
                }
                match services.keys.delete_retired().await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "deleted signing keys past their publication window"),
                    Err(error) => tracing::warn!(%error, "could not delete retired signing keys"),
                }
            }
            _ = sweep.tick() => {
                if !services.store.runs_background_work() {
                    continue;
                }
                services.limiter.forget_old_shared_windows(services.clock.now());
                for (sweep, swept) in [
                    (Sweep::EndedSessions, "ended sessions"),
                    (Sweep::ExpiredRefreshTokens, "expired refresh tokens"),
                    (Sweep::ExpiredPats, "expired personal access tokens"),
                ] {
                    let started = Instant::now();
                    match services.sweep(sweep).await {
                        Ok(removed) => {
                            let elapsed_ms = started.elapsed().as_millis() as u64;
                            if removed > 0 {
                                tracing::info!(removed, elapsed_ms, "swept {swept}");
                            } else {
                                tracing::debug!(removed, elapsed_ms, "swept {swept}");
                            }
                        }
                        Err(error) => tracing::warn!(%error, "sweep of {swept} failed"),
                    }
                }
                match services.sweep_webauthn_ceremonies().await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "swept unfinished WebAuthn registrations"),
                    Err(error) => tracing::warn!(%error, "WebAuthn ceremony sweep failed"),
                }
                match services.sweep_recovery_tokens().await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "swept expired recovery links"),
                    Err(error) => tracing::warn!(%error, "recovery link sweep failed"),
                }
                match services.sweep_oauth_codes().await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "swept ended authorization and device codes"),
                    Err(error) => tracing::warn!(%error, "authorization code sweep failed"),
                }
                match services.expire_approvals().await {
                    Ok(0) => {}
                    Ok(expired) => tracing::info!(expired, "expired pending approvals"),
                    Err(error) => tracing::warn!(%error, "approval expiry failed"),
                }
                match services.prune_audit().await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "pruned audit events past retention"),
                    Err(error) => tracing::warn!(%error, "audit pruning failed"),
                }
            }
        }
    }
}

/// Picks up `authd token rotate` while running.
async fn watch_admin_token(verifier: Arc<AdminTokenVerifier>, mut stop: watch::Receiver<bool>) {
    if !matches!(verifier.source(), TokenSource::File(_)) {
        return;
    }
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            () = tokio::time::sleep(TOKEN_FILE_POLL) => {}
        }
        let verifier = verifier.clone();
        match tokio::task::spawn_blocking(move || verifier.reload()).await {
            Ok(Ok(true)) => {
                last_error = None;
                tracing::info!("admin token file changed; the new token is now in effect");
            }
            Ok(Ok(false)) => last_error = None,
            Ok(Err(error)) => {
                let message = error.to_string();
                if last_error.as_deref() != Some(message.as_str()) {
                    tracing::warn!(error = %message, "cannot reload the admin token file; keeping the current token");
                }
                last_error = Some(message);
            }
            Err(_) => return,
        }
    }
}

/// A future that resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are
/// installed when this is called, not when the future is first polled, so a
/// signal that arrives during start-up is not lost (nor fatal).
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
    })
}

/// Once start-up is over (listening, and the first signing key made), the
/// pages only it used leave the RSS (`resident`).
async fn release_start_up_pages(services: Arc<Services>) {
    let _ = services.keys.signer().await;
    match tokio::task::spawn_blocking(crate::resident::release_start_up_pages).await {
        Ok(Ok(bytes)) => tracing::debug!(kib = bytes >> 10, "released start-up pages"),
        Ok(Err(error)) => tracing::debug!(%error, "could not release start-up pages"),
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_a_quarter_of_memory_and_never_less_than_32_mib() {
        let meminfo = "MemTotal:        1021484 kB\nMemFree:          500000 kB\n";
        assert_eq!(mem_total_bytes(meminfo), Some(1_021_484 * 1024));
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
        assert_eq!(page_cache_bytes(CacheMib::Mib(64)), 64 << 20);
        let auto = page_cache_bytes(CacheMib::Auto) as u64;
        assert!(auto >= MIN_AUTO_CACHE_BYTES);
        if let Some(limit) = memory_limit_bytes() {
            assert_eq!(auto, (limit / 4).max(MIN_AUTO_CACHE_BYTES));
        }
    }

    #[test]
    fn the_own_cgroup_is_the_v2_line_of_proc_self_cgroup() {
        assert_eq!(
            cgroup_v2_path("0::/system.slice/authd.service\n"),
            Some("/system.slice/authd.service")
        );
        assert_eq!(cgroup_v2_path("0::/\n"), Some("/"));
        assert_eq!(cgroup_v2_path("12:memory:/user.slice\n"), None);
    }
}
