//! Running under systemd (SPEC §8): the `Type=notify` handshake against a
//! socket the test binds.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use crate::helpers::TestServer;

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
