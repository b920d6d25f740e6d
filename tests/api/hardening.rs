//! The attacks of the security review (issue 17), replayed against the real
//! server: slow and half-open connections (finding 7).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestServer, FAST_HASHING, RELAXED_LIMITS};

/// A `[server]` section on a random port with `extra` keys.
fn server_section(extra: &str) -> String {
    format!("[server]\nlisten = \"127.0.0.1:0\"\n{extra}\n{FAST_HASHING}\n{RELAXED_LIMITS}")
}

/// Reads until the server closes the connection (EOF or reset), for at most
/// `limit`; how long that took, or `None` if it was still open.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0_u8; 1024];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            // An error page (e.g. 408) before the close is fine.
            Ok(Ok(_)) => {}
        }
    }
}

/// A connection that has sent the start of a request line and nothing more.
async fn half_open(server: &TestServer) -> TcpStream {
    let mut stream = TcpStream::connect(server.address).await.expect("connect");
    stream.write_all(b"GET /heal").await.expect("write");
    stream
}

/// `/healthz` on a fresh connection, within `limit`.
async fn healthz_within(server: &TestServer, limit: Duration) -> StatusCode {
    let client = reqwest::Client::builder()
        .timeout(limit)
        .build()
        .expect("client");
    match client.get(server.url("/healthz")).send().await {
        Ok(response) => response.status(),
        Err(error) => panic!("/healthz did not answer within {limit:?}: {error}"),
    }
}

// ---- finding 7: slow clients ----------------------------------------------

#[tokio::test]
async fn a_request_head_that_does_not_arrive_within_header_timeout_is_cut_off() {
    let server = TestServer::spawn_with(&server_section("header_timeout = \"1s\"")).await;

    // The review's attack: a partial request line, then silence.
    let mut silent = half_open(&server).await;
    let took = closed_within(&mut silent, Duration::from_secs(6))
        .await
        .expect("a partial request line must not hold its connection");
    assert!(took >= Duration::from_millis(800), "closed after {took:?}");

    // A client that keeps sending, a header line every 300 ms, gains
    // nothing: the whole head must arrive within the timeout.
    let mut dribbling = TcpStream::connect(server.address).await.expect("connect");
    dribbling
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut closed = false;
    for n in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if dribbling
            .write_all(format!("X-Slow-{n}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
    }
    if !closed {
        closed = closed_within(&mut dribbling, Duration::from_millis(100))
            .await
            .is_some();
    }
    assert!(closed, "a dribbled head outlived header_timeout");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A prompt request on a kept-alive connection is unaffected.
    let response = server.get("/healthz").send().await.expect("healthz");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_slow_body_still_gets_408_after_the_request_timeout() {
    // The head arrives at once; the body never does. That is the request
    // timeout's to end (with an answer), not the head deadline's.
    let server = TestServer::spawn_with(&server_section(
        "request_timeout = \"1s\"\nheader_timeout = \"10s\"",
    ))
    .await;
    let mut stream = TcpStream::connect(server.address).await.expect("connect");
    stream
        .write_all(
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .expect("write");
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("no answer within 5 s");
        let read = tokio::time::timeout(left, stream.read(&mut buffer))
            .await
            .expect("no answer within 5 s")
            .expect("read");
        assert!(read > 0, "closed without an answer");
        answer.extend_from_slice(&buffer[..read]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn half_open_connections_at_the_cap_cannot_crowd_out_healthz() {
    // A head deadline far longer than the test: only the cap's eviction can
    // make room.
    let server = TestServer::spawn_with(&server_section(
        "max_connections = 20\nheader_timeout = \"60s\"",
    ))
    .await;
    let mut attackers = Vec::new();
    for _ in 0..40 {
        attackers.push(half_open(&server).await);
    }
    for _ in 0..3 {
        assert_eq!(
            healthz_within(&server, Duration::from_secs(3)).await,
            StatusCode::OK
        );
    }
    // Never more than 20 open: the older half-open ones were closed to make
    // room, the newest may still be waiting.
    let mut closed = 0;
    for stream in &mut attackers {
        if closed_within(stream, Duration::from_millis(50))
            .await
            .is_some()
        {
            closed += 1;
        }
    }
    assert!(
        closed >= 20,
        "only {closed} of 40 half-open connections closed"
    );
    let oldest = &mut attackers[0];
    assert!(closed_within(oldest, Duration::from_millis(50))
        .await
        .is_some());
}

#[tokio::test]
async fn half_open_connections_cannot_exhaust_the_open_files_limit() {
    // The review's reproduction: `ulimit -n 256`, 300 half-open requests.
    // The default cap is derived from that limit, so accepting never runs
    // out of descriptors and /healthz keeps answering.
    // No new keys, so the same test shows the attack on a server without
    // the cap; it ends long before the default 10 s head deadline could
    // help.
    let server = TestServer::spawn_customised(&server_section(""), |command| {
        use std::os::unix::process::CommandExt;
        // SAFETY: only setrlimit, which is async-signal-safe, runs
        // between fork and exec.
        unsafe {
            command.pre_exec(|| {
                let mut limit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                limit.rlim_cur = 256;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
    .await;
    let mut attackers = Vec::new();
    for _ in 0..300 {
        attackers.push(half_open(&server).await);
    }
    for _ in 0..3 {
        assert_eq!(
            healthz_within(&server, Duration::from_secs(3)).await,
            StatusCode::OK
        );
    }
    let logs = server.logs();
    assert!(!logs.contains("Too many open files"), "{logs}");
    assert!(logs.contains("\"max_connections\":192"), "{logs}");
    drop(attackers);
}

#[tokio::test]
async fn sigterm_closes_half_open_connections_without_waiting_for_them() {
    // With the default 10 s head deadline, longer than this test waits.
    let mut server = TestServer::spawn_fast().await;
    let _attacker = half_open(&server).await;
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, server)
    })
    .await
    .expect("join");
    assert!(status.0.success(), "{:?}", status.0);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown waited {:?} for a half-sent head",
        started.elapsed()
    );
}
