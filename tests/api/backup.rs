//! `authd backup` and `authd restore` (SPEC §1, §8): a backup taken through
//! the running server under write load holds every record acknowledged
//! before it started — users, memberships, sessions, refresh tokens, PATs,
//! audit events — and a restore puts it back; a restore refuses while a
//! server holds the data dir; with no server the file is copied directly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::forward_auth::pat_for;
use crate::helpers::{authd_with, TestServer, GOOD_PASSWORD};

/// What a client saw acknowledged for one account.
#[derive(Clone)]
struct Acknowledged {
    email: String,
    user_id: String,
    access_token: String,
    refresh_token: String,
    pat: Option<String>,
}

/// One client: registers, signs in and (every third account) makes a PAT,
/// recording each account once all of it was acknowledged.
async fn writer(
    server: Arc<TestServer>,
    client: usize,
    seen: Arc<Mutex<Vec<Acknowledged>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let email = format!("c{client}-u{n}@example.com");
        let registered = server.register_ok(&email).await;
        let tokens = server.login_ok(&email).await;
        let pat = if n % 3 == 0 {
            Some(pat_for(&server, &email, &registered).await)
        } else {
            None
        };
        seen.lock().expect("seen").push(Acknowledged {
            email,
            user_id: registered["id"].as_str().expect("id").to_owned(),
            access_token: tokens["access_token"].as_str().expect("access").to_owned(),
            refresh_token: tokens["refresh_token"]
                .as_str()
                .expect("refresh")
                .to_owned(),
            pat,
        });
    }
}

#[tokio::test]
async fn a_backup_under_write_load_restores_everything_acknowledged_before_it() {
    if crate::helpers::redb_file_only(
        "a_backup_under_write_load_restores_everything_acknowledged_before_it",
    ) {
        return;
    }
    let server = Arc::new(TestServer::spawn_fast().await);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|client| tokio::spawn(writer(server.clone(), client, seen.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Everything acknowledged so far must be in the backup; writes go on
    // while it is taken.
    let before: Vec<Acknowledged> = seen.lock().expect("seen").clone();
    assert!(before.len() >= 8, "some load ran first: {}", before.len());
    let out = server.dir.path().join("backup.redb");
    let config = server.config_path.clone();
    let backup_out = out.clone();
    let url = server.url("");
    let (ok, said) = tokio::task::spawn_blocking(move || {
        let out = backup_out.to_str().expect("utf-8");
        authd_with(&config, &["backup", "--server", &url, out])
    })
    .await
    .expect("backup");
    assert!(ok, "{said}");
    assert!(said.contains("through the running server"), "{said}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    let after = seen.lock().expect("seen").len();
    assert!(after > before.len(), "writes went on during the backup");
    assert_eq!(crate::helpers::mode_of(&out) & 0o777, 0o600);

    // A restore refuses while the server holds the data dir.
    let (refused, said) = authd_with(
        &server.config_path,
        &["restore", out.to_str().expect("utf-8")],
    );
    assert!(!refused, "{said}");
    assert!(said.contains("stop it first"), "{said}");

    // Stop, restore, start again on the restored file.
    let server = Arc::into_inner(server).expect("the writers are done");
    let (dir, config_path) = server.stop();
    let (ok, said) = authd_with(&config_path, &["restore", out.to_str().expect("utf-8")]);
    assert!(ok, "{said}");
    assert!(said.contains("kept as"), "{said}");
    let restored = TestServer::start(dir, config_path, &[]).await;

    let created = restored.audit_events("type=user.created&limit=1000").await;
    for account in &before {
        // The user and their membership: the password signs in.
        let login = restored
            .login(json!({"email": account.email, "password": GOOD_PASSWORD}))
            .await;
        assert_eq!(login.status(), StatusCode::OK, "{}", account.email);
        // The session behind the access token.
        assert_eq!(
            restored.account_status(&account.access_token).await,
            StatusCode::OK,
            "{}",
            account.email
        );
        // The refresh token, unused: it rotates.
        let rotated = restored.refresh(&account.refresh_token).await;
        assert_eq!(rotated.status(), StatusCode::OK, "{}", account.email);
        if let Some(pat) = &account.pat {
            assert_eq!(
                restored.introspect(pat).await["active"],
                true,
                "{}",
                account.email
            );
        }
        assert!(
            created
                .iter()
                .any(|event| event["user_id"] == account.user_id.as_str()),
            "the audit event of {}",
            account.email
        );
    }
}

#[tokio::test]
async fn without_a_server_the_file_is_copied_and_restored_directly() {
    if crate::helpers::redb_file_only("without_a_server_the_file_is_copied_and_restored_directly") {
        return;
    }
    let server = TestServer::spawn_fast().await;
    server.register_ok("kim@example.com").await;
    let (dir, config_path) = server.stop();
    let out = dir.path().join("offline.redb");
    let (ok, said) = authd_with(&config_path, &["backup", out.to_str().expect("utf-8")]);
    assert!(ok, "{said}");
    assert!(said.contains("from the database file"), "{said}");
    assert!(said.contains("1 users"), "{said}");
    // The same name twice is refused rather than overwritten.
    let (again, said) = authd_with(&config_path, &["backup", out.to_str().expect("utf-8")]);
    assert!(!again && said.contains("already exists"), "{said}");

    // Restore into an emptied data dir, as on a new machine (server.secret
    // stays: it unseals the keys).
    std::fs::remove_file(dir.path().join("data").join("authd.redb")).ok();
    let (ok, said) = authd_with(&config_path, &["restore", out.to_str().expect("utf-8")]);
    assert!(ok, "{said}");
    let restored = TestServer::start(dir, config_path, &[]).await;
    restored.login_ok("kim@example.com").await;
}

#[tokio::test]
async fn scheduled_backups_are_made_and_only_the_newest_kept() {
    let backups_dir = tempfile::tempdir().expect("dir");
    let server = TestServer::spawn_with(&format!(
        "[backup]\ndir = \"{}\"\nevery = \"1s\"\nkeep = 2\n",
        backups_dir.path().display()
    ))
    .await;
    server.wait_for_log("scheduled backup written").await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let backups: Vec<String> = std::fs::read_dir(backups_dir.path())
        .expect("the backup dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .collect();
    assert_eq!(backups.len(), 2, "{backups:?}");
    for name in &backups {
        assert!(
            name.starts_with("authd-") && name.ends_with(".redb"),
            "{name}"
        );
        let path = backups_dir.path().join(name);
        assert_eq!(crate::helpers::mode_of(&path) & 0o777, 0o600);
    }
}
