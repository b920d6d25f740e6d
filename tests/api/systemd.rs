//! Running under systemd (SPEC §8): the `Type=notify` handshake against a
//! socket the test binds, and `deploy/authd.service` and
//! `deploy/config.toml` as systemd and authd themselves judge them.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::helpers::{run, TestServer, AUTHD};

const SYSTEMD_ANALYZE: &str = "/usr/bin/systemd-analyze";

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

/// Whether systemd-analyze is here; outside CI its absence skips (and says
/// so), under CI it fails.
fn systemd_analyze_installed() -> bool {
    if Path::new(SYSTEMD_ANALYZE).is_file() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but {SYSTEMD_ANALYZE} is missing: apt-get install -y systemd"
    );
    eprintln!("{SYSTEMD_ANALYZE} is missing: unit check skipped (apt-get install -y systemd)");
    false
}

/// The next datagram the server sent to our stand-in for systemd.
fn next_notification(systemd: &UnixDatagram) -> String {
    systemd
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut buffer = [0; 256];
    let length = systemd
        .recv(&mut buffer)
        .expect("no notification within 30 s");
    String::from_utf8(buffer[..length].to_vec()).expect("utf-8")
}

fn assert_nothing_more(systemd: &UnixDatagram) {
    systemd.set_nonblocking(true).expect("nonblocking");
    let mut buffer = [0; 256];
    match systemd.recv(&mut buffer) {
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("unexpected notification: {other:?}"),
    }
}

#[tokio::test]
async fn under_type_notify_it_says_ready_once_it_answers_and_stopping_when_terminated() {
    let sockets = tempfile::tempdir().expect("tempdir");
    let path = sockets.path().join("notify");
    let systemd = UnixDatagram::bind(&path).expect("bind the notify socket");
    let mut server =
        TestServer::spawn_with_env("", &[("NOTIFY_SOCKET", path.to_str().expect("utf-8"))]).await;

    assert_eq!(next_notification(&systemd), "READY=1");
    let health = server.get("/healthz").send().await.expect("healthz");
    assert_eq!(health.status(), 200);

    let status = server.terminate();
    assert_eq!(next_notification(&systemd), "STOPPING=1");
    assert!(
        status.success(),
        "clean exit: {status:?}\n{}",
        server.logs()
    );
    assert_nothing_more(&systemd);
}

#[tokio::test]
async fn an_abstract_notify_socket_is_written_with_a_leading_at() {
    let unique = tempfile::tempdir().expect("tempdir");
    let name = format!(
        "authd-test-{}",
        unique.path().file_name().expect("name").to_string_lossy()
    );
    let address = SocketAddr::from_abstract_name(name.as_bytes()).expect("address");
    let systemd = UnixDatagram::bind_addr(&address).expect("bind the abstract socket");
    let _server = TestServer::spawn_with_env("", &[("NOTIFY_SOCKET", &format!("@{name}"))]).await;

    assert_eq!(next_notification(&systemd), "READY=1");
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if !systemd_analyze_installed() {
        return;
    }
    // verify checks that ExecStart's binary exists: point it at ours.
    let unit = std::fs::read_to_string(deploy("authd.service")).expect("the unit");
    let installed_at = "ExecStart=/usr/local/bin/authd ";
    assert!(unit.contains(installed_at), "{unit}");
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("authd.service");
    std::fs::write(
        &copy,
        unit.replace(installed_at, &format!("ExecStart={AUTHD} ")),
    )
    .expect("write the copy");

    let (status, stdout, stderr) =
        run(Command::new(SYSTEMD_ANALYZE).arg("verify").arg(&copy), None);
    // Unknown keys and bad values are warnings that leave the status 0.
    assert!(
        status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {status:?}\n{stdout}{stderr}"
    );
}

#[test]
fn the_unit_scores_ok_or_better_in_systemd_analyze_security_and_the_readme_says_which() {
    if !systemd_analyze_installed() {
        return;
    }
    let (status, stdout, stderr) = run(
        Command::new(SYSTEMD_ANALYZE)
            .args(["security", "--offline=true", "--no-pager"])
            .arg(deploy("authd.service")),
        None,
    );
    assert!(status.success(), "{status:?}\n{stdout}{stderr}");
    // "→ Overall exposure level for authd.service: 1.1 OK 🙂"
    let verdict = stdout
        .lines()
        .find_map(|line| line.split_once("Overall exposure level for authd.service:"))
        .map(|(_, verdict)| verdict.split_whitespace().take(2).collect::<Vec<_>>())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{stdout}{stderr}"));
    let [score, level] = verdict[..] else {
        panic!("cannot read the verdict {verdict:?}");
    };
    let exposure: f64 = score.parse().expect("a number");
    eprintln!("systemd-analyze security: {score} {level}");
    // systemd's bands: 0.0 PERFECT, 0.1–0.9 SAFE, 1.0–4.9 OK, then MEDIUM,
    // EXPOSED, UNSAFE, DANGEROUS.
    assert!(
        ["OK", "SAFE", "PERFECT"].contains(&level) && exposure < 5.0,
        "exposure {score} {level}:\n{stdout}"
    );
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    assert!(
        readme.contains(&format!("{score} {level}")),
        "the README's systemd section should give the score: {score} {level}"
    );
}

#[test]
fn the_sample_config_for_etc_authd_passes_check_config() {
    // Its data_dir, /var/lib/authd, is the unit's; check the rest here.
    let data = tempfile::tempdir().expect("tempdir");
    let (status, stdout, stderr) = run(
        Command::new(AUTHD)
            .arg("check-config")
            .arg("--config")
            .arg(deploy("config.toml"))
            .env("AUTHD_STORAGE__DATA_DIR", data.path())
            .env_remove("AUTHD_TOKEN"),
        None,
    );
    assert!(status.success(), "{status:?}\n{stdout}{stderr}");
}
