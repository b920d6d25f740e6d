//! The PostgreSQL backend: the same tables as the redb file, as rows of one
//! SQL table `authd_rows (tbl, key, value)` whose keys sort bytewise
//! (`COLLATE "C"`), so every point read and ordered scan of [`super::reader`]
//! is one indexed query, and a redb file copies in and out row for row.
//!
//! Several authd replicas share one database. Their writes are serialised by
//! a transaction-scoped advisory lock taken first in every write run, which
//! makes each run see everything committed before it, whichever replica
//! committed it: a refresh token rotated on one replica is a replay on all.
//! Committed audit records are announced with `NOTIFY` so that every
//! replica's live feed carries them, and one session-scoped advisory lock
//! elects the replica that runs the background work (sweeps, scheduled
//! backups), so it runs once.
//!
//! The client is tokio-postgres, driven on a runtime thread of its own: its
//! futures only exchange messages with that thread, so the store's blocking
//! callers wait on them with a plain `block_on`, from any thread.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config};

use super::error::{StoreError, StoreResult};

/// Serialises write runs across replicas (`pg_advisory_xact_lock`).
const WRITE_LOCK: i64 = 0x6175_7468_0001;
/// Held, for its whole session, by the replica that runs background work.
const LEADER_LOCK: i64 = 0x6175_7468_0002;
/// The channel committed audit records are announced on.
pub(crate) const AUDIT_CHANNEL: &str = "authd_audit";
/// The channel a change of signing keys is announced on.
pub(crate) const KEYS_CHANNEL: &str = "authd_keys";
/// A `NOTIFY` payload must stay under 8,000 bytes; a longer record is sent
/// by its id and read back by the listener.
const MAX_INLINE_PAYLOAD: usize = 7_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept for reads; more are opened under load and closed
/// when handed back past this.
const MAX_IDLE: usize = 16;

/// The SQL schema, one step per version (`authd_schema` records how far a
/// database has come). The records inside are the same JSON as in redb, so
/// their own versioning (`super::migrations`) applies to both backends.
const SCHEMA_STEPS: &[&str] = &[
    "CREATE TABLE authd_rows (
        tbl text NOT NULL,
        key text COLLATE \"C\" NOT NULL,
        value bytea NOT NULL,
        PRIMARY KEY (tbl, key)
    )",
    // Rate-limit windows every replica counts in (not copied by
    // migrate-storage: they are minutes long).
    "CREATE TABLE authd_limits (
        kind text NOT NULL,
        key bytea NOT NULL,
        window_start bigint NOT NULL,
        count integer NOT NULL,
        PRIMARY KEY (kind, key, window_start)
    )",
];

/// How far a key range reaches.
pub(crate) enum Upper<'a> {
    Unbounded,
    Before(&'a str),
}

/// The statement that starts a read: one snapshot for all its queries.
const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// One connection to the database.
pub(crate) struct PgConn {
    client: Client,
    /// A read transaction is to begin with the next query, sent in the same
    /// round trip (`begin_read`).
    begin_pending: AtomicBool,
}

impl PgConn {
    fn wait<T>(
        &self,
        work: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> StoreResult<T> {
        futures_executor::block_on(work).map_err(StoreError::from)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    pub(crate) fn batch(&self, sql: &str) -> StoreResult<()> {
        self.wait(self.client.batch_execute(sql))
    }

    fn rows(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> StoreResult<Vec<tokio_postgres::Row>> {
        if self.begin_pending.swap(false, Ordering::Relaxed) {
            // Pipelined: both are sent before either answer is awaited.
            let (begun, rows) = self.wait_both(
                self.client.batch_execute(BEGIN_READ),
                self.client.query_typed(sql, params),
            );
            begun?;
            return rows;
        }
        self.wait(self.client.query_typed(sql, params))
    }

    fn wait_both<A, B>(
        &self,
        first: impl Future<Output = Result<A, tokio_postgres::Error>>,
        second: impl Future<Output = Result<B, tokio_postgres::Error>>,
    ) -> (StoreResult<A>, StoreResult<B>) {
        let (a, b) = futures_executor::block_on(futures_util::future::join(first, second));
        (a.map_err(StoreError::from), b.map_err(StoreError::from))
    }

    /// Starts a read transaction with the first query that needs it: a
    /// read costs no round trip of its own to begin, and none at all to end
    /// if it made no query (`end_read`).
    pub(crate) fn begin_read(&self) {
        self.begin_pending.store(true, Ordering::Relaxed);
    }

    /// Ends a read begun with `begin_read`.
    pub(crate) fn end_read(&self) -> StoreResult<()> {
        if self.begin_pending.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        self.batch("COMMIT")
    }

    pub(crate) fn get(&self, table: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let rows = self.rows(
            "SELECT value FROM authd_rows WHERE tbl = $1 AND key = $2",
            &[(&table, Type::TEXT), (&key, Type::TEXT)],
        )?;
        Ok(rows.first().map(|row| row.get::<_, Vec<u8>>(0)))
    }

    /// Rows with `start <= key < upper`, in key order (or reversed), at most
    /// `limit`.
    pub(crate) fn range(
        &self,
        table: &str,
        start: &str,
        upper: Upper<'_>,
        descending: bool,
        limit: usize,
    ) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let order = if descending { "DESC" } else { "ASC" };
        let rows = match upper {
            Upper::Unbounded => self.rows(
                &format!(
                    "SELECT key, value FROM authd_rows WHERE tbl = $1 AND key >= $2 \
                     ORDER BY key {order} LIMIT $3"
                ),
                &[
                    (&table, Type::TEXT),
                    (&start, Type::TEXT),
                    (&limit, Type::INT8),
                ],
            )?,
            Upper::Before(end) => self.rows(
                &format!(
                    "SELECT key, value FROM authd_rows WHERE tbl = $1 AND key >= $2 AND key < $3 \
                     ORDER BY key {order} LIMIT $4"
                ),
                &[
                    (&table, Type::TEXT),
                    (&start, Type::TEXT),
                    (&end, Type::TEXT),
                    (&limit, Type::INT8),
                ],
            )?,
        };
        Ok(rows
            .into_iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, Vec<u8>>(1)))
            .collect())
    }

    pub(crate) fn put(&self, table: &str, key: &str, value: &[u8]) -> StoreResult<()> {
        self.rows(
            "INSERT INTO authd_rows (tbl, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value",
            &[
                (&table, Type::TEXT),
                (&key, Type::TEXT),
                (&value, Type::BYTEA),
            ],
        )?;
        Ok(())
    }

    pub(crate) fn remove(&self, table: &str, key: &str) -> StoreResult<bool> {
        let rows = self.rows(
            "DELETE FROM authd_rows WHERE tbl = $1 AND key = $2 RETURNING 1",
            &[(&table, Type::TEXT), (&key, Type::TEXT)],
        )?;
        Ok(!rows.is_empty())
    }

    pub(crate) fn last_key(&self, table: &str) -> StoreResult<Option<String>> {
        let rows = self.rows(
            "SELECT key FROM authd_rows WHERE tbl = $1 ORDER BY key DESC LIMIT 1",
            &[(&table, Type::TEXT)],
        )?;
        Ok(rows.first().map(|row| row.get::<_, String>(0)))
    }

    /// Whether the database holds no rows at all.
    pub(crate) fn range_is_empty(&self) -> StoreResult<bool> {
        Ok(self
            .rows("SELECT 1 FROM authd_rows LIMIT 1", &[])?
            .is_empty())
    }

    pub(crate) fn count(&self, table: &str) -> StoreResult<u64> {
        let rows = self.rows(
            "SELECT count(*) FROM authd_rows WHERE tbl = $1",
            &[(&table, Type::TEXT)],
        )?;
        let count: i64 = rows.first().map(|row| row.get(0)).unwrap_or(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Adds one to a rate-limit window and returns its count.
    pub(crate) fn add_to_window(
        &self,
        kind: &str,
        key: &[u8],
        window_start: i64,
    ) -> StoreResult<u32> {
        let rows = self.rows(
            "INSERT INTO authd_limits (kind, key, window_start, count) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (kind, key, window_start) DO UPDATE SET count = authd_limits.count + 1 \
             RETURNING count",
            &[
                (&kind, Type::TEXT),
                (&key, Type::BYTEA),
                (&window_start, Type::INT8),
            ],
        )?;
        let count: i32 = rows.first().map(|row| row.get(0)).unwrap_or(0);
        Ok(u32::try_from(count).unwrap_or(0))
    }

    /// The count of a rate-limit window.
    pub(crate) fn window_count(
        &self,
        kind: &str,
        key: &[u8],
        window_start: i64,
    ) -> StoreResult<u32> {
        let rows = self.rows(
            "SELECT count FROM authd_limits WHERE kind = $1 AND key = $2 AND window_start = $3",
            &[
                (&kind, Type::TEXT),
                (&key, Type::BYTEA),
                (&window_start, Type::INT8),
            ],
        )?;
        let count: i32 = rows.first().map(|row| row.get(0)).unwrap_or(0);
        Ok(u32::try_from(count).unwrap_or(0))
    }

    /// Drops rate-limit windows that started before `before`.
    pub(crate) fn forget_windows_before(&self, before: i64) -> StoreResult<()> {
        self.rows(
            "DELETE FROM authd_limits WHERE window_start < $1",
            &[(&before, Type::INT8)],
        )?;
        Ok(())
    }

    /// Announces `payload` on `channel` when the transaction commits.
    pub(crate) fn notify(&self, channel: &str, payload: &str) -> StoreResult<()> {
        self.rows(
            "SELECT pg_notify($1, $2)",
            &[(&channel, Type::TEXT), (&payload, Type::TEXT)],
        )?;
        Ok(())
    }

    /// Starts a write run: one transaction that holds the write lock until
    /// it ends.
    pub(crate) fn begin_write_run(&self) -> StoreResult<()> {
        self.batch(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
        ))
    }

    fn database_size(&self) -> StoreResult<u64> {
        let rows = self.rows("SELECT pg_database_size(current_database())", &[])?;
        let size: i64 = rows.first().map(|row| row.get(0)).unwrap_or(0);
        Ok(u64::try_from(size).unwrap_or(0))
    }
}

/// Rate-limit counts shared by every replica on one database.
#[derive(Clone)]
pub struct SharedCounts(Arc<Postgres>);

impl SharedCounts {
    fn on_a_connection<T>(&self, work: impl FnOnce(&PgConn) -> StoreResult<T>) -> StoreResult<T> {
        let conn = self.0.take()?;
        let outcome = work(&conn);
        self.0.give_back(conn);
        outcome
    }

    /// Counts one more in `kind`'s window for `key` that started at
    /// `window_start`; returns the window's count.
    pub fn add(&self, kind: &str, key: &[u8], window_start: i64) -> StoreResult<u32> {
        self.on_a_connection(|conn| conn.add_to_window(kind, key, window_start))
    }

    pub fn get(&self, kind: &str, key: &[u8], window_start: i64) -> StoreResult<u32> {
        self.on_a_connection(|conn| conn.window_count(kind, key, window_start))
    }

    /// Drops windows that started before `before` (housekeeping).
    pub fn forget_before(&self, before: i64) -> StoreResult<()> {
        self.on_a_connection(|conn| conn.forget_windows_before(before))
    }
}

impl Postgres {
    pub(crate) fn shared_counts(self: &Arc<Self>) -> SharedCounts {
        SharedCounts(self.clone())
    }
}

/// Announcements from the other replicas (and this one), read by the
/// listener thread.
pub(crate) enum Announcement {
    /// Another replica's committed audit record, as JSON, or its id when it
    /// was too long to send whole.
    Audit {
        record: String,
    },
    KeysChanged,
}

/// The database and a small pool of connections to it.
pub(crate) struct Postgres {
    config: Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    runtime: tokio::runtime::Handle,
    idle: Mutex<Vec<PgConn>>,
    /// This process's name in announcements, so it skips its own.
    pub(crate) replica_id: String,
    /// Whether the last attempt to reach the database succeeded.
    reachable: AtomicBool,
    /// Whether this replica holds the leader lock.
    leader: AtomicBool,
    /// Ends the runtime thread when the store is dropped.
    _stop: std::sync::mpsc::SyncSender<()>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("replica_id", &self.replica_id)
            .finish_non_exhaustive()
    }
}

fn tls_connector() -> tokio_postgres_rustls::MakeRustlsConnect {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
    match config {
        Ok(config) => tokio_postgres_rustls::MakeRustlsConnect::new(config),
        // ring supports the default versions; this is unreachable in practice.
        Err(_) => tokio_postgres_rustls::MakeRustlsConnect::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ),
    }
}

impl Postgres {
    /// Checks the URL and starts the client's runtime thread; connects
    /// nothing yet.
    pub(crate) fn new(url: &str) -> StoreResult<Postgres> {
        let mut config: Config = url.parse().map_err(|error| StoreError::Unavailable {
            what: format!("storage.postgres_url {}", crate::config::mask_url(url)),
            reason: format!("{error}"),
        })?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("authd");
        }
        if config.get_options().is_none() {
            // A replica that stops answering mid-transaction (paused, cut
            // off) must not hold the write lock for ever: its session ends
            // and the lock goes with it.
            config
                .options("-c idle_in_transaction_session_timeout=60000 -c statement_timeout=60000");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StoreError::Io)?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = std::sync::mpsc::sync_channel::<()>(0);
        std::thread::Builder::new()
            .name("authd-postgres".into())
            .spawn(move || {
                runtime.block_on(async move {
                    // Drives the connections until the store is dropped.
                    let _ = tokio::task::spawn_blocking(move || stopped.recv()).await;
                });
            })
            .map_err(StoreError::Io)?;
        Ok(Postgres {
            config,
            tls: tls_connector(),
            runtime: handle,
            idle: Mutex::new(Vec::new()),
            replica_id: uuid::Uuid::new_v4().simple().to_string(),
            reachable: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            _stop: stop,
        })
    }

    /// Opens a new connection (not from the pool).
    pub(crate) fn connect(&self) -> StoreResult<PgConn> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let (config, tls) = (self.config.clone(), self.tls.clone());
        self.runtime.spawn(async move {
            match config.connect(tls).await {
                Ok((client, connection)) => {
                    let _ = sender.send(Ok(client));
                    if let Err(error) = connection.await {
                        tracing::debug!(error = %error, "postgres connection ended");
                    }
                }
                Err(error) => {
                    let _ = sender.send(Err(error));
                }
            }
        });
        let outcome = receiver
            .recv_timeout(CONNECT_TIMEOUT + Duration::from_secs(1))
            .map_err(|_| StoreError::Unavailable {
                what: "the PostgreSQL database".into(),
                reason: "no answer to a connection attempt".into(),
            })
            .and_then(|result| result.map_err(StoreError::from));
        self.reachable.store(outcome.is_ok(), Ordering::Relaxed);
        outcome.map(|client| PgConn {
            client,
            begin_pending: AtomicBool::new(false),
        })
    }

    /// A connection from the pool, or a new one.
    pub(crate) fn take(&self) -> StoreResult<PgConn> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match pooled {
            Some(conn) if !conn.is_closed() => Ok(conn),
            _ => self.connect(),
        }
    }

    /// Hands a connection back after use; a broken one is dropped.
    pub(crate) fn give_back(&self, conn: PgConn) {
        if conn.is_closed() {
            self.reachable.store(false, Ordering::Relaxed);
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }

    pub(crate) fn note_failure(&self, error: &StoreError) {
        if matches!(error, StoreError::Unavailable { .. }) {
            self.reachable.store(false, Ordering::Relaxed);
        }
    }

    pub(crate) fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// Brings the SQL schema up to date (under the write lock, so replicas
    /// starting together do it once). Returns whether the database was
    /// empty.
    pub(crate) fn prepare_schema(&self) -> StoreResult<bool> {
        let conn = self.connect()?;
        conn.batch(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK}); \
             CREATE TABLE IF NOT EXISTS authd_schema (version bigint NOT NULL)"
        ))?;
        let outcome = (|| {
            let rows = conn.rows("SELECT max(version) FROM authd_schema", &[])?;
            let found: Option<i64> = rows.first().and_then(|row| row.get(0));
            let found = usize::try_from(found.unwrap_or(0)).unwrap_or(0);
            for (index, step) in SCHEMA_STEPS.iter().enumerate().skip(found) {
                conn.batch(step)?;
                let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
                conn.rows(
                    "INSERT INTO authd_schema (version) VALUES ($1)",
                    &[(&version, Type::INT8)],
                )?;
            }
            Ok(found == 0)
        })();
        match outcome {
            Ok(created) => {
                conn.batch("COMMIT")?;
                Ok(created)
            }
            Err(error) => {
                let _ = conn.batch("ROLLBACK");
                Err(error)
            }
        }
    }

    pub(crate) fn database_size(&self) -> StoreResult<u64> {
        let conn = self.take()?;
        let size = conn.database_size();
        self.give_back(conn);
        size
    }

    /// Listens for announcements and holds (or keeps trying for) the leader
    /// lock, on a connection of its own, until the store is dropped;
    /// reconnects after a lost connection. Blocking: run on a thread.
    pub(crate) fn listen(self: &Arc<Self>, mut deliver: impl FnMut(Announcement) + Send + 'static) {
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("authd-postgres-listen".into())
            .spawn(move || loop {
                let Some(postgres) = weak.upgrade() else {
                    return;
                };
                if let Err(error) = postgres.listen_once(&mut deliver, &weak) {
                    postgres.leader.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %error, "lost the PostgreSQL listener; reconnecting");
                }
                drop(postgres);
                std::thread::sleep(Duration::from_secs(1));
            });
        if let Err(error) = spawned {
            tracing::error!(error = %error, "could not start the PostgreSQL listener");
        }
    }

    fn listen_once(
        &self,
        deliver: &mut impl FnMut(Announcement),
        alive: &std::sync::Weak<Postgres>,
    ) -> StoreResult<()> {
        use futures_util::StreamExt;
        let (messages, received) = std::sync::mpsc::channel::<(String, String)>();
        let (config, tls) = (self.config.clone(), self.tls.clone());
        let (ready, is_ready) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            match config.connect(tls).await {
                Ok((client, mut connection)) => {
                    let _ = ready.send(Ok(client));
                    let mut stream =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = stream.next().await {
                        match message {
                            Ok(tokio_postgres::AsyncMessage::Notification(note)) => {
                                if messages
                                    .send((note.channel().to_owned(), note.payload().to_owned()))
                                    .is_err()
                                {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(_) => return,
                        }
                    }
                }
                Err(error) => {
                    let _ = ready.send(Err(error));
                }
            }
        });
        let client = is_ready
            .recv_timeout(CONNECT_TIMEOUT + Duration::from_secs(1))
            .map_err(|_| StoreError::Unavailable {
                what: "the PostgreSQL database".into(),
                reason: "no answer to a connection attempt".into(),
            })?
            .map_err(StoreError::from)?;
        let conn = PgConn {
            client,
            begin_pending: AtomicBool::new(false),
        };
        conn.batch(&format!("LISTEN {AUDIT_CHANNEL}; LISTEN {KEYS_CHANNEL}"))?;
        loop {
            if alive.strong_count() <= 1 {
                // Only this thread's upgrade is left: the store is gone.
                return Ok(());
            }
            if !self.leader.load(Ordering::Relaxed) {
                let rows =
                    conn.rows(&format!("SELECT pg_try_advisory_lock({LEADER_LOCK})"), &[])?;
                let won = rows
                    .first()
                    .map(|row| row.get::<_, bool>(0))
                    .unwrap_or(false);
                if won {
                    tracing::info!(
                        "this replica runs the background work (sweeps, scheduled backups)"
                    );
                }
                self.leader.store(won, Ordering::Relaxed);
            }
            match received.recv_timeout(Duration::from_secs(1)) {
                Ok((channel, payload)) => {
                    if channel == KEYS_CHANNEL {
                        deliver(Announcement::KeysChanged);
                    } else if let Some((replica, record)) = payload.split_once(' ') {
                        // This replica published its own records already.
                        if replica != self.replica_id {
                            deliver(Announcement::Audit {
                                record: record.to_owned(),
                            });
                        }
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if conn.is_closed() {
                        return Err(StoreError::Unavailable {
                            what: "the PostgreSQL listener".into(),
                            reason: "connection closed".into(),
                        });
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(StoreError::Unavailable {
                        what: "the PostgreSQL listener".into(),
                        reason: "connection closed".into(),
                    });
                }
            }
        }
    }
}

/// The audit record an announcement carries, read back by its id when it
/// came without its body.
pub(crate) fn decode_announced(
    postgres: &Postgres,
    announced: &str,
) -> StoreResult<Option<crate::audit::AuditRecord>> {
    if announced.starts_with('{') {
        return super::tables::decode(AUDIT_CHANNEL, announced.as_bytes()).map(Some);
    }
    let conn = postgres.take()?;
    let bytes = conn.get(redb::TableHandle::name(&super::tables::AUDIT), announced);
    postgres.give_back(conn);
    match bytes? {
        Some(bytes) => super::tables::decode(announced, &bytes).map(Some),
        None => Ok(None),
    }
}

/// The payload announcing a committed audit record.
pub(crate) fn audit_payload(replica_id: &str, id: &str, json: &str) -> String {
    if json.len() <= MAX_INLINE_PAYLOAD {
        format!("{replica_id} {json}")
    } else {
        format!("{replica_id} {id}")
    }
}

/// The smallest string above every string that starts with `prefix`, if
/// there is one that is easy to name (its last character is ASCII below
/// DEL; every prefix authd scans by is).
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let last = *prefix.as_bytes().last()?;
    if last >= 0x7e {
        return None;
    }
    let mut end = prefix[..prefix.len() - 1].to_owned();
    end.push(char::from(last + 1));
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_end_bounds_exactly_the_keys_of_the_prefix() {
        assert_eq!(prefix_end("user_1/").as_deref(), Some("user_10"));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("a~"), None);
        let end = prefix_end("org/").expect("end");
        for inside in ["org/", "org/a", "org/\u{10FFFF}x"] {
            assert!(inside >= "org/" && inside < end.as_str(), "{inside}");
        }
        assert!("org0" >= end.as_str());
    }

    #[test]
    fn a_long_audit_record_is_announced_by_its_id() {
        let long = "x".repeat(MAX_INLINE_PAYLOAD + 1);
        assert_eq!(audit_payload("r", "01H", &long), "r 01H");
        assert_eq!(audit_payload("r", "01H", "{}"), "r {}");
    }
}
