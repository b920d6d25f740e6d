//! What the start-up kills need in the file first: an older schema for the
//! migration to redo (the v6 step indexes every session, refresh token and
//! PAT the load wrote), and expired sessions for the first sweep to delete.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::load::PASSWORD;
use crate::server::{RunDir, Server};

/// The tables as `src/store/tables.rs` declares them: string keys, JSON
/// bytes. Only this fixture opens the file without authd, as the store's
/// own migration tests do.
type JsonTable = redb::TableDefinition<'static, &'static str, &'static [u8]>;
const META: JsonTable = redb::TableDefinition::new("meta");
const SWEEP_DUE: JsonTable = redb::TableDefinition::new("sweep_due");

/// Makes the (closed, perhaps crashed) file a v5 one, as a release before
/// the sweep index wrote it: no `sweep_due` table, schema version 5. The
/// next start runs the v6 migration over every row the load wrote.
pub fn downgrade_to_v5(database: &Path) {
    let db = redb::Database::create(database).expect("open the file for the fixture");
    let txn = db.begin_write().expect("write");
    txn.delete_table(SWEEP_DUE).expect("drop sweep_due");
    {
        let mut meta = txn.open_table(META).expect("meta");
        meta.insert("schema_version", b"5".as_slice())
            .expect("schema version");
    }
    txn.commit().expect("commit");
}

/// Sessions and refresh tokens that expire a second after they are made,
/// from a server started with short lifetimes and stopped again; waits
/// until they are due, so the next start's first sweep has them to delete.
pub async fn expired_sessions(run_dir: &RunDir, client: &reqwest::Client) -> Result<(), String> {
    let short = [
        ("AUTHD_SESSIONS__TTL", "1s"),
        ("AUTHD_TOKENS__REFRESH_TTL", "1s"),
        ("AUTHD_TOKENS__ACCESS_TTL", "1s"),
    ];
    let server = Server::start(run_dir, &short).await?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    for user in 0..4 {
        let email = format!("sweep-{stamp}-{user}@crash.test");
        let registered = client
            .post(server.url("/register"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if registered.status() != 201 {
            return Err(format!("sweep user: {}", registered.status()));
        }
        // Under sessions.max_per_user (50): each login is one more session
        // and refresh token to sweep.
        for _ in 0..40 {
            let login = client
                .post(server.url("/login"))
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if login.status() != 200 {
                return Err(format!("sweep login: {}", login.status()));
            }
        }
    }
    server.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Ok(())
}
