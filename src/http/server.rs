//! The accept loop: HTTP/1 connections served by hyper with a deadline for
//! each request head and a cap on open connections, and the graceful
//! shutdown that lets answered requests finish.
//!
//! `axum::serve` has neither a head deadline nor a cap: one client sending a
//! request line a byte a minute held its connection for ever, and a few
//! hundred such connections used up the process's file descriptors until
//! `accept` failed with "too many open files" and `/healthz` went unanswered.
//!
//! - **Head deadline** (`server.header_timeout`): hyper's
//!   `header_read_timeout`. The clock starts when the connection waits for a
//!   request head (a new connection, or a kept-alive one after its last
//!   answer), so it also ends idle keep-alive connections.
//! - **Cap** (`server.max_connections`, below the open-files limit): a
//!   semaphore with one permit per open connection. When a connection
//!   arrives at the cap, the oldest connection that has **no request in
//!   flight** is closed to make room: it is either still sending its head
//!   (the slow client the cap defends against) or an idle keep-alive
//!   connection its client can simply reopen; nothing it was promised is
//!   lost. A request is in flight from its head until the last byte of its
//!   answer has been handed to the kernel (a handler running, a body still
//!   streaming such as the event stream, or bytes still in hyper's write
//!   buffer), and such connections are never evicted:
//!   when every connection is busy, the loop stops accepting until one
//!   becomes idle or closes, and the kernel's backlog holds the newcomers.
//!   Closing the oldest idle one, rather than refusing the newest, is what
//!   keeps `/healthz` (and everyone else) answered while slow clients
//!   hold the cap: they can only ever push each other out.
//! - **Shutdown**: the listener closes at once; connections without a
//!   request in flight close at once (a half-sent head is not worth
//!   waiting for); the others finish their request and then close (hyper's
//!   graceful shutdown). `serve` returns when the last one has.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// How the accept loop treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// The whole request head must arrive within this.
    pub header_timeout: Duration,
    /// Open connections at most (at least 1).
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `stop` turns true, then shuts down
/// gracefully (see the module comment) and returns once every connection
/// has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    mut stop: watch::Receiver<bool>,
) {
    // The config allows at most 2^20; the clamp only keeps `Semaphore::new`
    // from panicking whatever it is given.
    let max_connections = options.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max_connections));
    let tracker = Arc::new(Tracker::default());
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout);
    let mut accept_backoff = AcceptBackoff::default();

    'accepting: loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => {
                accept_backoff.succeeded();
                accepted
            }
            Err(error) => {
                accept_backoff.failed(&error).await;
                continue;
            }
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => loop {
                // At the cap: make room by closing the oldest idle
                // connection; its permit comes back as soon as its task
                // drops it. If every connection is busy, wait for one to
                // finish its request (or close) and try again.
                let evicted = tracker.evict_oldest_idle();
                if evicted {
                    tracing::debug!("connection cap reached; closed the oldest idle connection");
                }
                tokio::select! {
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => break permit,
                        Err(_) => break 'accepting,
                    },
                    () = tracker.became_idle.notified(), if !evicted => {}
                    () = stopped(&mut stop) => break 'accepting,
                }
            },
        };
        spawn_connection(
            stream,
            remote,
            permit,
            &tracker,
            &builder,
            router.clone(),
            stop.clone(),
        );
    }

    drop(listener);
    // Every open connection holds a permit: having them all back means the
    // last one has closed.
    let _ = slots.acquire_many(count_u32(max_connections)).await;
}

/// Resolves once the server is told to stop (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

fn count_u32(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

fn spawn_connection(
    stream: TcpStream,
    remote: SocketAddr,
    permit: OwnedSemaphorePermit,
    tracker: &Arc<Tracker>,
    builder: &hyper::server::conn::http1::Builder,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let registration = tracker.register();
    let slot = registration.slot.clone();
    let service = {
        let slot = slot.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let in_flight = InFlight::begin(&slot);
            let router = router.clone();
            async move { Ok::<_, Infallible>(answer(router, request, remote, in_flight).await) }
        })
    };
    let io = TrackedIo {
        io: TokioIo::new(stream),
        slot: slot.clone(),
        tracker: tracker.clone(),
    };
    let connection = builder.serve_connection(io, service);
    tokio::spawn(async move {
        // Both are released when this task ends, however it ends.
        let _permit = permit;
        let _registration = registration;
        tokio::pin!(connection);
        let mut stopping = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        // Timeouts, resets, malformed heads: the client's
                        // business, and hyper has answered what it could.
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    break;
                }
                () = slot.closing.notified() => break,
                () = stopped(&mut stop), if !stopping => {
                    stopping = true;
                    if slot.try_close() {
                        break;
                    }
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    });
}

/// One request through the router, with the client's address for
/// `ConnectInfo`; the response body carries `in_flight` until hyper has
/// taken its last frame (or dropped it), so the connection counts as busy
/// until then.
async fn answer(
    router: Router,
    request: Request<Incoming>,
    remote: SocketAddr,
    in_flight: Option<InFlight>,
) -> Response<Body> {
    let Some(in_flight) = in_flight else {
        // The connection was closed for room (or for shutdown) just as this
        // head arrived; the task is dropping it, but say so in case the
        // answer still gets out.
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    };
    let mut request = request.map(Body::new);
    request.extensions_mut().insert(ConnectInfo(remote));
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    response.map(|body| {
        Body::new(body.map_frame(move |frame| {
            // Captured so that it lives exactly as long as the body.
            let _alive = &in_flight;
            frame
        }))
    })
}

/// The open connections in the order they were accepted.
#[derive(Default)]
struct Tracker {
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Slot>>>,
    /// Signalled when a connection finishes its last request in flight, so
    /// that a loop waiting at the cap can evict it.
    became_idle: Notify,
}

/// One open connection as the tracker sees it.
#[derive(Default)]
struct Slot {
    /// The requests on it whose response body is not finished (the low
    /// bits), plus [`DRAINING`] while a finished response may still sit in
    /// hyper's write buffer; or [`CLOSED`] once we decided to close it.
    /// Only an idle connection (0) can be closed, and a closed one takes no
    /// new request, so an answer is never cut off half-sent.
    state: AtomicUsize,
    /// Tells the connection's task to drop it.
    closing: Notify,
}

const CLOSED: usize = usize::MAX;
const DRAINING: usize = 1 << (usize::BITS - 2);

impl Slot {
    /// Marks an idle connection closed; false if it has a request in flight
    /// (or was closed already).
    fn try_close(&self) -> bool {
        self.state
            .compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// hyper flushed everything it had buffered to the socket: a finished
    /// response is out, and with nothing else in flight the connection is
    /// idle.
    fn flushed(&self, tracker: &Tracker) {
        let drained = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (state != CLOSED && state & DRAINING != 0).then_some(state & !DRAINING)
            });
        if drained == Ok(DRAINING) {
            tracker.became_idle.notify_one();
        }
    }
}

impl Tracker {
    fn register(self: &Arc<Self>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::default());
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, slot.clone());
        Registration {
            tracker: self.clone(),
            id,
            slot,
        }
    }

    /// Closes the longest-open connection that has no request in flight;
    /// false if every connection is busy.
    fn evict_oldest_idle(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        match open.values().find(|slot| slot.try_close()) {
            Some(slot) => {
                slot.closing.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Removes a connection from the tracker when its task ends.
struct Registration {
    tracker: Arc<Tracker>,
    id: u64,
    slot: Arc<Slot>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.tracker
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// A request in flight on a connection: from its head until its response
/// body is finished or dropped; then the connection drains until hyper's
/// next flush ([`Slot::flushed`]).
struct InFlight {
    slot: Arc<Slot>,
}

impl InFlight {
    /// `None` if the connection has been closed for room or shutdown.
    fn begin(slot: &Arc<Slot>) -> Option<InFlight> {
        slot.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (state != CLOSED).then(|| state + 1)
            })
            .ok()
            .map(|_| InFlight { slot: slot.clone() })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Never CLOSED while a request is in flight: only 0 can be closed.
        let _ = self
            .slot
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                Some((state - 1) | DRAINING)
            });
    }
}

/// The connection's socket, watched for the flush that tells a finished
/// response has left hyper's buffer.
struct TrackedIo {
    io: TokioIo<TcpStream>,
    slot: Arc<Slot>,
    tracker: Arc<Tracker>,
}

impl hyper::rt::Read for TrackedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TrackedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    /// hyper calls this once its write buffer is empty.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.io).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            this.slot.flushed(&this.tracker);
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// What to do when `accept` fails. Running out of descriptors (EMFILE,
/// ENFILE) or memory would fail again at once, so the loop pauses — 10 ms,
/// doubling up to a second — instead of spinning, and says so once per
/// pause; a connection reset before it was accepted is the client's
/// business and is skipped.
#[derive(Default)]
struct AcceptBackoff {
    pause: Option<Duration>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const LONGEST: Duration = Duration::from_secs(1);

    fn succeeded(&mut self) {
        self.pause = None;
    }

    async fn failed(&mut self, error: &io::Error) {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionRefused
        ) {
            return;
        }
        let pause = self
            .pause
            .map_or(Self::FIRST, |pause| (pause * 2).min(Self::LONGEST));
        self.pause = Some(pause);
        tracing::warn!(%error, pause_ms = pause.as_millis() as u64, "accept failed; pausing before the next");
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connection_with_nothing_in_flight_or_unflushed_can_be_closed() {
        let tracker = Tracker::default();
        let slot = Arc::new(Slot::default());

        let request = InFlight::begin(&slot).expect("open");
        assert!(!slot.try_close(), "a handler is running");
        drop(request);
        assert!(
            !slot.try_close(),
            "the answer may still be in hyper's buffer"
        );
        slot.flushed(&tracker);
        assert_eq!(slot.state.load(Ordering::Acquire), 0);

        // A flush while the next request is in flight leaves it busy.
        let request = InFlight::begin(&slot).expect("open");
        slot.flushed(&tracker);
        assert!(!slot.try_close());
        drop(request);
        slot.flushed(&tracker);

        assert!(slot.try_close());
        assert!(!slot.try_close(), "closed once");
        assert!(
            InFlight::begin(&slot).is_none(),
            "a closed connection takes no request"
        );
        slot.flushed(&tracker);
        assert_eq!(slot.state.load(Ordering::Acquire), CLOSED);
    }

    #[test]
    fn the_oldest_idle_connection_is_evicted_first_and_busy_ones_never() {
        let tracker = Arc::new(Tracker::default());
        let busy = tracker.register();
        let idle = tracker.register();
        let newest = tracker.register();
        let _request = InFlight::begin(&busy.slot).expect("open");

        assert!(tracker.evict_oldest_idle());
        assert_eq!(idle.slot.state.load(Ordering::Acquire), CLOSED);
        assert_eq!(busy.slot.state.load(Ordering::Acquire), 1);
        assert!(tracker.evict_oldest_idle());
        assert_eq!(newest.slot.state.load(Ordering::Acquire), CLOSED);
        assert!(!tracker.evict_oldest_idle(), "only a busy one is left");

        drop(newest);
        assert_eq!(
            tracker
                .open
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len(),
            2
        );
    }
}
