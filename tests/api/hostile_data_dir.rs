//! A damaged or hostile data dir (issue 24): a truncated or bit-flipped
//! `authd.redb`, secret files with the wrong mode or owner, a read-only
//! data dir and a full disk. Each gives an error that says what to do,
//! never a panic, and leaves the files as they were; a full disk answers
//! 503 with the error body of the request's family.
//!
//! The read-only and full-disk tests mount a small tmpfs (root in CI's
//! sandbox); where mounting is not permitted they say so and skip.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    authd_with, free_port, mode_of, TestServer, AUTHD, FAST_HASHING, GOOD_PASSWORD, RELAXED_LIMITS,
};

/// A config on a fixed free port with the data dir `data_dir`.
fn write_config(dir: &Path, data_dir: &Path) -> (PathBuf, u16) {
    let port = free_port();
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[storage]\ndata_dir = \"{}\"\n\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n\n{FAST_HASHING}\n{RELAXED_LIMITS}\n",
            data_dir.display()
        ),
    )
    .expect("config");
    (path, port)
}

/// One `authd --config …` run, its output gathered as it comes.
struct Attempt {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Attempt {
    fn start(config: &Path) -> Attempt {
        let mut child = Command::new(AUTHD)
            .arg("--config")
            .arg(config)
            .env_remove("AUTHD_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn authd");
        let output = Arc::new(Mutex::new(String::new()));
        for mut stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                let mut buffer = [0_u8; 4096];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    output
                        .lock()
                        .expect("output")
                        .push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            });
        }
        Attempt { child, output }
    }

    /// The exit status if it exits within `limit`.
    fn exited_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                std::thread::sleep(Duration::from_millis(50));
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn output(&self) -> String {
        self.output.lock().expect("output").clone()
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts authd on `config`, expecting it to refuse; what it said.
fn start_refused(config: &Path) -> String {
    let mut attempt = Attempt::start(config);
    let status = attempt
        .exited_within(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("authd started:\n{}", attempt.output()));
    let said = attempt.output();
    assert!(!status.success(), "{said}");
    assert!(!said.contains("panicked"), "{said}");
    said
}

/// A server with `users` registered and stopped; its dir and config.
async fn stopped_server_with_users(users: usize) -> (tempfile::TempDir, PathBuf) {
    let server = TestServer::spawn_fast().await;
    for n in 0..users {
        server.register_ok(&format!("user{n}@example.com")).await;
    }
    server.stop()
}

#[tokio::test]
async fn a_truncated_database_refuses_to_start_says_to_restore_and_is_left_as_it_was() {
    if crate::helpers::redb_file_only(
        "a_truncated_database_refuses_to_start_says_to_restore_and_is_left_as_it_was",
    ) {
        return;
    }
    let (dir, config) = stopped_server_with_users(20).await;
    let database = dir.path().join("data/authd.redb");
    let length = std::fs::metadata(&database).expect("file").len();
    let truncated = length / 3;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&database)
        .and_then(|file| file.set_len(truncated))
        .expect("truncate");

    let said = start_refused(&config);
    assert!(said.contains("corrupted"), "{said}");
    assert!(said.contains("fix: the database file is damaged"), "{said}");
    assert!(said.contains("authd restore"), "{said}");
    assert_eq!(
        std::fs::metadata(&database).expect("file").len(),
        truncated,
        "the damaged file is kept as it was, for a restore or a closer look"
    );
}

#[tokio::test]
async fn a_bit_flipped_database_refuses_to_start_with_a_fix_or_serves_as_before() {
    if crate::helpers::redb_file_only(
        "a_bit_flipped_database_refuses_to_start_with_a_fix_or_serves_as_before",
    ) {
        return;
    }
    let (dir, _config) = stopped_server_with_users(20).await;
    let pristine = std::fs::read(dir.path().join("data/authd.redb")).expect("file");
    let (mut refused, mut served) = (0, 0);
    for slot in 0..12 {
        let offset = flip_offset(pristine.len(), slot);
        let scratch = tempfile::tempdir().expect("dir");
        let data = scratch.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("chmod");
        for name in ["admin.token", "server.secret"] {
            std::fs::copy(dir.path().join("data").join(name), data.join(name)).expect("copy");
        }
        std::fs::write(data.join("authd.redb"), flipped(&pristine, slot)).expect("write");
        let (config, port) = write_config(scratch.path(), &data);

        let mut attempt = Attempt::start(&config);
        if attempt.exited_within(Duration::from_secs(2)).is_some() {
            let said = attempt.output();
            assert!(!said.contains("panicked"), "offset {offset}: {said}");
            assert!(said.contains("fix: "), "offset {offset}: {said}");
            refused += 1;
            continue;
        }
        // It opened: the open verified every page of the committed trees,
        // so the damage is in pages nothing reads. Every answer is an
        // answer; nothing panics.
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        for n in 0..20 {
            let login = client
                .post(format!("{base}/login"))
                .json(&json!({"email": format!("user{n}@example.com"), "password": GOOD_PASSWORD}))
                .send()
                .await
                .unwrap_or_else(|error| {
                    panic!("offset {offset}: no answer ({error}): {}", attempt.output())
                });
            assert_eq!(login.status(), StatusCode::OK, "offset {offset}");
        }
        let healthz = client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(healthz.status(), StatusCode::OK, "offset {offset}");
        let said = attempt.output();
        assert!(!said.contains("panicked"), "offset {offset}: {said}");
        served += 1;
    }
    eprintln!("bit flips: {refused} refused at start with a fix, {served} served as before");
    assert!(refused > 0, "some damage is found at start");
}

/// The `slot`th of 12 offsets spread over a file of `length` bytes:
/// header, allocator state, table trees, records.
fn flip_offset(length: usize, slot: usize) -> usize {
    64 + (length - 128) * slot / 11
}

/// `pristine` with eight bytes inverted at [`flip_offset`]`(slot)`.
fn flipped(pristine: &[u8], slot: usize) -> Vec<u8> {
    let offset = flip_offset(pristine.len(), slot);
    let mut damaged = pristine.to_vec();
    for byte in &mut damaged[offset..offset + 8] {
        *byte ^= 0xff;
    }
    damaged
}

#[tokio::test]
async fn backup_and_restore_refuse_a_damaged_file_with_a_fix_and_restore_over_a_damaged_live_file()
{
    if crate::helpers::redb_file_only(
        "backup_and_restore_refuse_a_damaged_file_with_a_fix_and_restore_over_a_damaged_live_file",
    ) {
        return;
    }
    let (dir, config) = stopped_server_with_users(20).await;
    let database = dir.path().join("data/authd.redb");
    let path_text = |path: &Path| path.to_str().expect("utf-8").to_owned();
    let good = dir.path().join("good.redb");
    let (ok, said) = authd_with(&config, &["backup", &path_text(&good)]);
    assert!(ok, "{said}");
    let pristine = std::fs::read(&database).expect("file");

    // A backup of the closed file verifies it first: damage is refused
    // with a fix, never a panic; a file that verifies is copied whole.
    let mut refused = None;
    for slot in 0..12 {
        let damaged = flipped(&pristine, slot);
        std::fs::write(&database, &damaged).expect("write");
        let out = dir.path().join(format!("from-damaged-{slot}.redb"));
        let (ok, said) = authd_with(&config, &["backup", &path_text(&out)]);
        assert!(!said.contains("panicked"), "slot {slot}: {said}");
        if ok {
            assert!(said.contains("20 users"), "slot {slot}: {said}");
            continue;
        }
        assert!(
            said.contains("fix: the database file is damaged"),
            "slot {slot}: {said}"
        );
        assert!(!out.exists(), "slot {slot}: no backup is left behind");
        refused.get_or_insert(damaged);
    }
    let damaged = refused.expect("some damage is found");

    // A damaged backup is not restored, and the database stays in use.
    std::fs::write(&database, &pristine).expect("write");
    let bad_backup = dir.path().join("damaged-backup.redb");
    std::fs::write(&bad_backup, &damaged).expect("write");
    let (ok, said) = authd_with(&config, &["restore", &path_text(&bad_backup)]);
    assert!(!ok, "{said}");
    assert!(!said.contains("panicked"), "{said}");
    assert!(said.contains("is damaged and was not restored"), "{said}");

    // A damaged database, the reason to restore, is restored over and kept.
    std::fs::write(&database, &damaged).expect("write");
    let (ok, said) = authd_with(&config, &["restore", &path_text(&good)]);
    assert!(ok, "{said}");
    let kept = std::fs::read_dir(dir.path().join("data"))
        .expect("data dir")
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("authd.redb.before-restore-")
        })
        .count();
    assert_eq!(kept, 1, "the damaged file is kept beside the restored one");
    let server = TestServer::start(dir, config, &[]).await;
    for n in 0..20 {
        server.login_ok(&format!("user{n}@example.com")).await;
    }
}

#[tokio::test]
async fn secret_files_open_to_others_are_tightened_and_a_broken_server_secret_says_to_restore_it() {
    let (dir, config) = stopped_server_with_users(1).await;
    let data = dir.path().join("data");
    for name in ["admin.token", "server.secret"] {
        std::fs::set_permissions(
            data.join(name),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .expect("chmod");
    }
    let server = TestServer::start(dir, config, &[]).await;
    server
        .wait_for_log("readable by others; setting mode 0600")
        .await;
    for name in ["admin.token", "server.secret"] {
        assert_eq!(mode_of(&server.data_dir().join(name)), 0o600, "{name}");
    }
    server.login_ok("user0@example.com").await;
    let (dir, config) = server.stop();

    // The token file's fix would be wrong for the server secret: a new one
    // cannot unseal what the old one sealed.
    let secret = dir.path().join("data/server.secret");
    let kept = std::fs::read(&secret).expect("secret");
    std::fs::write(&secret, "not a secret\n").expect("write");
    let said = start_refused(&config);
    assert!(
        said.contains("put back the copy from your backup"),
        "{said}"
    );
    assert!(!said.contains("token rotate"), "{said}");
    std::fs::write(&secret, kept).expect("restore");
    let server = TestServer::start(dir, config, &[]).await;
    server.login_ok("user0@example.com").await;
}

#[tokio::test]
async fn a_secret_file_owned_by_another_user_is_refused_with_the_chown_to_run() {
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: chown to another user needs root");
        return;
    }
    let (dir, config) = stopped_server_with_users(1).await;
    for name in ["admin.token", "server.secret"] {
        let path = dir.path().join("data").join(name);
        std::os::unix::fs::chown(&path, Some(65534), None).expect("chown");
        let said = start_refused(&config);
        assert!(said.contains("is owned by uid 65534"), "{name}: {said}");
        assert!(
            said.contains(&format!("fix: chown 0 {}", path.display())),
            "{name}: {said}"
        );
        std::os::unix::fs::chown(&path, Some(0), None).expect("chown back");
    }
    let server = TestServer::start(dir, config, &[]).await;
    server.login_ok("user0@example.com").await;
}

/// A tmpfs mounted at a directory, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// `None` (after saying why) where mounting is not permitted.
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(path)
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Tmpfs {
                path: path.to_path_buf(),
            }),
            other => {
                assert!(
                    std::env::var_os("AUTHD_REQUIRE_MOUNT").is_none(),
                    "mount failed: {other:?}"
                );
                eprintln!("skipped: cannot mount a tmpfs here ({other:?})");
                None
            }
        }
    }

    fn remount(&self, option: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{option}")])
            .arg(&self.path)
            .status()
            .expect("mount");
        assert!(status.success(), "remount {option}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[tokio::test]
async fn a_read_only_data_dir_refuses_to_start_with_what_to_do_and_nothing_changes() {
    if crate::helpers::redb_file_only(
        "a_read_only_data_dir_refuses_to_start_with_what_to_do_and_nothing_changes",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let Some(mount) = Tmpfs::mount(&data, "16m") else {
        return;
    };
    let (config, _) = write_config(dir.path(), &data);
    let server = TestServer::start(dir, config.clone(), &[]).await;
    server.register_ok("ro@example.com").await;
    let (dir, config) = server.stop();
    let before = std::fs::read(data.join("authd.redb")).expect("file");

    mount.remount("ro");
    let said = start_refused(&config);
    assert!(said.contains("Read-only file system"), "{said}");
    assert!(said.contains("fix: authd must write to"), "{said}");
    assert_eq!(
        std::fs::read(data.join("authd.redb")).expect("file"),
        before,
        "nothing was written"
    );

    mount.remount("rw");
    let server = TestServer::start(dir, config, &[]).await;
    server.login_ok("ro@example.com").await;
    drop(server);
    drop(mount);
}

/// Fills the volume of `dir` with a file until the disk is full.
fn fill_disk(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0x5a_u8; 4096];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    path
}

#[tokio::test]
async fn a_full_disk_answers_503_in_each_family_and_recovers_when_space_returns() {
    if crate::helpers::redb_file_only(
        "a_full_disk_answers_503_in_each_family_and_recovers_when_space_returns",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let Some(mount) = Tmpfs::mount(&data, "8m") else {
        return;
    };
    let (config, _) = write_config(dir.path(), &data);
    let server = TestServer::start(dir, config.clone(), &[]).await;
    let reader = server.register_ok("reader@example.com").await;
    let access = server.login_ok("reader@example.com").await["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    let filler = fill_disk(&data);

    // Sign-ups until the file must grow and cannot.
    let mut acknowledged = Vec::new();
    let mut refusal: Option<(StatusCode, Option<String>, Value)> = None;
    for n in 0..2000 {
        let email = format!("full{n}@example.com");
        let response = server
            .register(json!({"email": email, "password": GOOD_PASSWORD}))
            .await;
        let status = response.status();
        if status == StatusCode::CREATED {
            acknowledged.push(email);
            continue;
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        refusal = Some((status, retry_after, response.json().await.expect("json")));
        break;
    }
    let (status, retry_after, body) = refusal.expect("the disk filled up");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "unavailable", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("disk full")),
        "{body}"
    );
    assert!(retry_after.is_some(), "a 503 says when to come back");
    // The other families say it in their own shape.
    let control_plane = server
        .post("/api/v1/auth/login")
        .json(&json!({"email": "reader@example.com", "password": GOOD_PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(control_plane.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = control_plane.json().await.expect("json");
    assert_eq!(body["error"], "UNAVAILABLE", "{body}");
    let operator = server
        .operator_json(
            reqwest::Method::POST,
            "/v1/users",
            json!({"email": "op@example.com", "password": GOOD_PASSWORD}),
        )
        .await;
    assert_eq!(operator.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = operator.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("disk full")),
        "{body}"
    );

    // Reads go on; the server is up; nothing panicked.
    assert_eq!(server.account_status(&access).await, StatusCode::OK);
    assert_eq!(
        server
            .get("/healthz")
            .send()
            .await
            .expect("healthz")
            .status(),
        StatusCode::OK
    );
    server
        .wait_for_log("storage unavailable: free space on the data dir's volume")
        .await;
    assert!(!server.logs().contains("panicked"), "{}", server.logs());

    // Space comes back, and that is all the operator does: the server opens
    // its file again by itself (redb refuses writes after a failed one until
    // then) and takes writes within a second or so, with no restart.
    std::fs::remove_file(filler).expect("free space");
    let mut recovered = None;
    for attempt in 0..50 {
        let response = server
            .register(
                json!({"email": format!("after{attempt}@example.com"), "password": GOOD_PASSWORD}),
            )
            .await;
        if response.status() == StatusCode::CREATED {
            recovered = Some(attempt);
            break;
        }
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let attempt = recovered.expect("writes resume once space is back, without a restart");
    server
        .wait_for_log("the database file was opened again and takes writes")
        .await;
    assert_eq!(reader["email"], "reader@example.com");
    for email in &acknowledged {
        server.login_ok(email).await;
    }
    server
        .login_ok(&format!("after{attempt}@example.com"))
        .await;
    assert_eq!(server.account_status(&access).await, StatusCode::OK);
    assert!(!server.logs().contains("panicked"), "{}", server.logs());

    // And the file it left opens cleanly after a restart, with it all.
    let mut server = server;
    server.terminate();
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().expect("dir"));
    drop(server);
    let server = TestServer::start(dir, config, &[]).await;
    for email in &acknowledged {
        server.login_ok(email).await;
    }
    server
        .login_ok(&format!("after{attempt}@example.com"))
        .await;
    assert!(!server.logs().contains("panicked"), "{}", server.logs());
    drop(server);
    drop(mount);
}
