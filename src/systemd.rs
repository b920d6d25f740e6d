//! Telling systemd how the server is doing, for `Type=notify` units
//! (`deploy/authd.service`): `READY=1` once the listener is bound and the
//! server answers, `STOPPING=1` when shutdown begins.
//!
//! The sd_notify protocol is one datagram of `KEY=value` lines to the Unix
//! socket named by `$NOTIFY_SOCKET`: a path, or an abstract name written with
//! a leading `@`. Without the variable (not started by systemd) every call
//! does nothing. A failure is logged at debug and never stops the server:
//! systemd notices a missing `READY=1` by its start timeout anyway.
//!
//! This is std's `UnixDatagram` rather than a crate: two messages, no file
//! descriptor passing, no `MAINPID`, no watchdog.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// How long a send may wait for room in systemd's queue; libsystemd blocks,
/// but we are called on the async runtime.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// The server listens and answers: systemd may start what depends on it.
pub fn notify_ready() {
    notify("READY=1");
}

/// Shutdown has begun: `systemctl status` shows "deactivating" from here.
pub fn notify_stopping() {
    notify("STOPPING=1");
}

fn notify(state: &str) {
    let Some(socket) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    match send(&socket, state) {
        Ok(()) => tracing::debug!(state, "notified systemd"),
        Err(error) => tracing::debug!(%error, state, "could not notify systemd"),
    }
}

/// Sends `state` to the socket `$NOTIFY_SOCKET` names.
fn send(socket: &OsStr, state: &str) -> io::Result<()> {
    let address = socket_address(socket)?;
    let datagram = UnixDatagram::unbound()?;
    datagram.set_write_timeout(Some(SEND_TIMEOUT))?;
    let sent = datagram.send_to_addr(state.as_bytes(), &address)?;
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the notification was cut short",
        ));
    }
    Ok(())
}

/// `@name` is an abstract socket, anything else a path.
fn socket_address(socket: &OsStr) -> io::Result<SocketAddr> {
    match socket.as_bytes() {
        [] | [b'@'] => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is empty",
        )),
        [b'@', name @ ..] => SocketAddr::from_abstract_name(name),
        _ => SocketAddr::from_pathname(socket),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(listener: &UnixDatagram) -> String {
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buffer = [0; 64];
        let length = listener.recv(&mut buffer).unwrap();
        String::from_utf8(buffer[..length].to_vec()).unwrap()
    }

    #[test]
    fn a_path_gets_the_state_in_one_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1").unwrap();
        assert_eq!(received(&listener), "READY=1");
    }

    #[test]
    fn a_leading_at_names_an_abstract_socket() {
        let name = format!("authd-test-{}", crate::crypto::random::hex_token());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&address).unwrap();
        send(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        assert_eq!(received(&listener), "STOPPING=1");
    }

    #[test]
    fn an_empty_or_missing_socket_is_an_error_not_a_panic() {
        assert!(send(OsStr::new(""), "READY=1").is_err());
        assert!(send(OsStr::new("@"), "READY=1").is_err());
        let dir = tempfile::tempdir().unwrap();
        assert!(send(dir.path().join("absent").as_os_str(), "READY=1").is_err());
    }
}
