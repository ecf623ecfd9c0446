//! One HTTP connection of the Web Server DAT: its slot of Max Connections, its deadlines (headers,
//! each write), and the activity the accept loop reads to choose an idle connection to close when
//! every slot is taken.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::http::handle_request;
use super::{MAX_HEADER_BYTES, MAX_HEADER_LINES, Shared};
use crate::net::SharedStr;

/// With every slot taken, a connection that has had no request in hand and written nothing for
/// this long is closed to make room for a waiting client (as nginx reuses idle keep-alive
/// connections): silent or trickling clients cannot hold every slot for the whole header timeout,
/// while a client that has just connected still has time to send its request.
pub(super) const IDLE_BEFORE_EVICTION: Duration = Duration::from_secs(1);

/// The server's HTTP connections, by the activity the accept loop needs to choose one to close.
#[derive(Default)]
pub(super) struct Connections {
    open: parking_lot::Mutex<HashMap<u64, Arc<Activity>>>,
    next_id: AtomicU64,
    /// Connections told to close that have not ended yet: while one is, its slot is on its way,
    /// so no other is closed for the same waiting client.
    closing: AtomicUsize,
}

impl Connections {
    /// Registers a connection until the returned guard is dropped; `cancel` is the server's.
    pub(super) fn register(
        self: &Arc<Self>,
        cancel: &CancellationToken,
        started: Instant,
    ) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            started,
            last_active_ms: AtomicU64::new(elapsed_ms(started)),
            requests_in_hand: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
            close: cancel.child_token(),
        });
        self.open.lock().insert(id, activity.clone());
        Registered {
            connections: self.clone(),
            id,
            activity,
        }
    }

    /// Closes the connection idle the longest, if one has been idle for
    /// [`IDLE_BEFORE_EVICTION`] and none is already closing.
    pub(super) fn close_idlest(&self) {
        if self.closing.load(Ordering::SeqCst) > 0 {
            return;
        }
        let open = self.open.lock();
        let idlest = open
            .iter()
            .filter(|(_, a)| {
                a.requests_in_hand.load(Ordering::SeqCst) == 0 && !a.evicted.load(Ordering::SeqCst)
            })
            .map(|(id, a)| (*id, a.idle()))
            .filter(|(_, idle)| *idle >= IDLE_BEFORE_EVICTION)
            .max_by_key(|(_, idle)| *idle);
        if let Some(activity) = idlest.and_then(|(id, _)| open.get(&id)) {
            self.closing.fetch_add(1, Ordering::SeqCst);
            activity.evicted.store(true, Ordering::SeqCst);
            activity.close.cancel();
        }
    }
}

/// A connection's place in [`Connections`], given up when the connection ends.
pub(super) struct Registered {
    connections: Arc<Connections>,
    id: u64,
    pub(super) activity: Arc<Activity>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.open.lock().remove(&self.id);
        if self.activity.evicted.load(Ordering::SeqCst) {
            self.connections.closing.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// When a connection last made progress, and whether it has a request in hand.
pub(super) struct Activity {
    started: Instant,
    last_active_ms: AtomicU64,
    requests_in_hand: AtomicUsize,
    /// Chosen by [`Connections::close_idlest`].
    evicted: AtomicBool,
    /// Cancelled to close the connection (a child of the server's cancel token).
    pub(super) close: CancellationToken,
}

impl Activity {
    pub(super) fn touch(&self) {
        self.last_active_ms
            .store(elapsed_ms(self.started), Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        Duration::from_millis(
            elapsed_ms(self.started).saturating_sub(self.last_active_ms.load(Ordering::Relaxed)),
        )
    }

    /// Marks a request in hand until the guard is dropped (its answer made, or the request
    /// abandoned): such a connection is never closed to make room.
    pub(super) fn request_in_hand(self: &Arc<Self>) -> RequestInHand {
        self.requests_in_hand.fetch_add(1, Ordering::SeqCst);
        RequestInHand(self.clone())
    }
}

pub(super) struct RequestInHand(Arc<Activity>);

impl Drop for RequestInHand {
    fn drop(&mut self) {
        self.0.touch();
        self.0.requests_in_hand.fetch_sub(1, Ordering::SeqCst);
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

pub(super) async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    slot: OwnedSemaphorePermit,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.limits();
    let service_shared = shared.clone();
    let ends = Arc::new(Ends {
        peer,
        peer_text: peer.to_string().into(),
        local_text: local.to_string().into(),
        slot: parking_lot::Mutex::new(Some(slot)),
        activity: activity.clone(),
    });
    let service = hyper::service::service_fn(move |req| {
        handle_request(req, ends.clone(), service_shared.clone())
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_timeout_ms))
        .max_buf_size(MAX_HEADER_BYTES)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADER_LINES)
        .keep_alive(true);
    // A second more than the WebSocket session's own write timeout, so that after an upgrade
    // the session's (which closes with 1008 and says why) fires first.
    let write_timeout = Duration::from_millis(limits.write_timeout_ms) + Duration::from_secs(1);
    let stream = WriteDeadline::new(stream, write_timeout, activity.clone());
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::select! {
        _ = connection => {}
        () = activity.close.cancelled() => {}
    }
}

/// A connection's two ends; their text forms, which every request carries, are made once.
pub(super) struct Ends {
    pub(super) peer: SocketAddr,
    pub(super) peer_text: SharedStr,
    pub(super) local_text: SharedStr,
    /// The connection's slot of Max Connections: an upgrade takes it into the WebSocket
    /// session, so WebSocket clients count towards the limit for as long as they stay.
    pub(super) slot: parking_lot::Mutex<Option<OwnedSemaphorePermit>>,
    pub(super) activity: Arc<Activity>,
}

/// A stream whose writes fail with `TimedOut` when the peer takes none of them for `timeout`: a
/// client that never reads its answers cannot hold its connection (and its slot) forever. Bytes
/// written count as the connection's activity.
struct WriteDeadline<S> {
    inner: S,
    timeout: Duration,
    activity: Arc<Activity>,
    /// Started when a write could not go on; cleared by any progress.
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, timeout: Duration, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            timeout,
            activity,
            stalled: None,
        }
    }

    /// Bytes that went out are the connection's activity; flushes and wake-ups are not (hyper
    /// flushes on every wake-up, so a client trickling bytes in would look active).
    fn wrote(&self, poll: &std::task::Poll<std::io::Result<usize>>) {
        if matches!(poll, std::task::Poll::Ready(Ok(n)) if *n > 0) {
            self.activity.touch();
        }
    }

    fn watch<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        poll: std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        use std::future::Future;
        use std::task::Poll;
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if stalled.as_mut().poll(cx).is_ready() {
            self.stalled = None;
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client took no data within the write timeout",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(&poll);
        this.watch(cx, poll)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(&poll);
        this.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, poll)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, poll)
    }
}
