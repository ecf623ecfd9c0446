//! The WebSocket DAT's client task: connect (ws/wss, headers, subprotocols, one timeout over TCP,
//! TLS and the handshake), turn what arrives into events, write what the engine sends, ping, and
//! reconnect with backoff. It knows nothing of the engine: a config in, events out over a bounded
//! channel, outgoing messages in over another.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use http::header::{HeaderName, HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::{NetEvent, NetEventKind, NetTasks, WsMessage};
use crate::project::NodeId;

/// Outgoing messages queued per client. Scripts enqueue with `try_send` from the cook thread, so
/// a full queue is reported to the script instead of blocking the engine.
pub const OUTGOING_QUEUE_CAPACITY: usize = 4096;

/// Bytes the outgoing queue may hold beside its message count, so a script sending large
/// messages to a server that stopped reading cannot fill memory.
pub const OUTGOING_QUEUE_BYTES: usize = 16 * 1024 * 1024;

/// How long a graceful close (our close frame and the server's answer) may take when stopping.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Outgoing messages written with one flush, so a burst from a script costs one syscall.
const WRITE_BATCH: usize = 64;

/// Received messages sent to the engine in one event at most. Batching what is already readable
/// saves a cross-thread wake-up per message under a flood (64 measured better than 16 in the
/// ingest benchmark); it adds no waiting, since only what is already readable is batched.
pub const BATCH_MESSAGES: usize = 64;
pub const BATCH_BYTES: usize = 16 * 1024;

/// Received bytes that may wait for the engine per client (see [`ingest_cost`]). Beyond it the
/// reader waits and TCP pushes back on the server, so memory stays flat under any flood whatever
/// the message size (the event queue alone bounds only the number of events).
pub const INGEST_BUDGET_BYTES: usize = 4 * 1024 * 1024;

/// What one received message costs against the budget beside its payload: its allocation and
/// bookkeeping, so that a flood of tiny messages is bounded too.
const PER_MESSAGE_COST: usize = 64;

/// The share of [`INGEST_BUDGET_BYTES`] a batch holds until the engine has taken it.
pub fn ingest_cost(messages: &[WsMessage]) -> usize {
    messages
        .iter()
        .map(|m| m.len() + PER_MESSAGE_COST)
        .sum::<usize>()
        .min(INGEST_BUDGET_BYTES)
}

/// Payload of the pings the task sends on its own, so scripts can tell their pongs apart.
pub const KEEPALIVE_PAYLOAD: &[u8] = b"keepalive";

/// What the client task reports to the engine.
#[derive(Debug)]
pub enum ClientEvent {
    /// An attempt to connect starts; `attempt` counts from 1 since the last success.
    Connecting { url: String, attempt: u32 },
    /// The handshake succeeded. `conn` numbers connections within this run; outgoing messages
    /// carry it so that none sent for one connection goes out on a later one.
    Connected {
        conn: u64,
        /// The subprotocol the server chose, if any.
        protocol: Option<String>,
    },
    /// Messages in arrival order: one, or as many as were readable at once (at most
    /// [`BATCH_MESSAGES`] and about [`BATCH_BYTES`]). The engine gives their [`ingest_cost`]
    /// back with [`ClientHandle::ingested`].
    Received(Vec<WsMessage>),
    /// A pong answered our last ping after `rtt_ms`; sent just before the pong itself.
    RoundTrip { rtt_ms: f64 },
    /// The server closed the connection with a close frame.
    Closed { code: Option<u16>, reason: String },
    /// Connecting failed, or an open connection broke (I/O error, no pong, stalled writes).
    Failed { error: String },
    /// The next attempt starts in `delay_ms`; `attempt` is the number of retries so far.
    Retrying { delay_ms: u64, attempt: u32 },
    /// Reconnect is off and the connection ended: the task has finished.
    Stopped,
}

/// Exponential backoff between reconnects: `min_ms` doubled per failure up to `max_ms`, times a
/// random factor in [0.8, 1.2] (so many clients dropped at once do not return at once), kept
/// within [min_ms, max_ms]. With this factor each delay is longer than the one before it until
/// the cap is reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub min_ms: u64,
    pub max_ms: u64,
}

impl Backoff {
    pub const DEFAULT: Backoff = Backoff {
        min_ms: 500,
        max_ms: 30_000,
    };

    /// The delay before retry number `retry` (0 for the first), given `unit_random` in [0, 1).
    pub fn delay_ms(&self, retry: u32, unit_random: f64) -> u64 {
        let nominal = (self.min_ms as f64) * 2f64.powi(retry.min(62) as i32);
        let nominal = nominal.min(self.max_ms as f64);
        let jittered = nominal * (0.8 + 0.4 * unit_random.clamp(0.0, 1.0));
        (jittered.round() as u64).clamp(self.min_ms, self.max_ms.max(self.min_ms))
    }
}

/// Everything the task needs to connect; built by the operator from its parameters.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// A `ws://` or `wss://` URL with host, port and path.
    pub url: String,
    /// Covers TCP connect, TLS and the WebSocket handshake together; also the longest a write
    /// may stall before the connection is considered broken.
    pub timeout_ms: u64,
    pub reconnect: bool,
    pub backoff: Backoff,
    /// Offered in `Sec-WebSocket-Protocol`, in order.
    pub subprotocols: Vec<String>,
    /// Extra handshake headers (name, value), in order.
    pub headers: Vec<(String, String)>,
    /// Ping the server this often; 0 never.
    pub ping_interval_ms: u64,
    /// A keepalive ping unanswered for this long breaks the connection.
    pub pong_timeout_ms: u64,
    /// For `wss://`; `None` for plain `ws://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// A longer message (or frame) from the server is refused with close code 1009.
    pub max_message_bytes: usize,
}

/// A connection that stayed up this long starts the next backoff from the shortest delay; one
/// that is dropped sooner (a server that accepts and then closes) keeps backing off.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// The handshake request for `config`: its URL, headers and subprotocols. A new request (and
/// so a new `Sec-WebSocket-Key`) is made for every connection; the operator also calls this to
/// report a bad header at once rather than at connect time.
pub fn build_request(config: &ClientConfig) -> Result<Request, String> {
    let mut request = config
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("invalid URL \"{}\": {e}", config.url))?;
    let mut protocols = config.subprotocols.clone();
    let headers = request.headers_mut();
    for (name, value) in &config.headers {
        let header = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("\"{name}\" is not a valid header name"))?;
        if header == SEC_WEBSOCKET_PROTOCOL {
            // Same meaning as the Subprotocols parameter; merged so the server sees one list.
            protocols.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
            );
            continue;
        }
        let reserved = [
            "connection",
            "upgrade",
            "sec-websocket-version",
            "sec-websocket-key",
        ];
        if reserved.contains(&header.as_str()) {
            return Err(format!(
                "header \"{name}\" belongs to the WebSocket handshake and cannot be set"
            ));
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header \"{name}\" is not valid in HTTP"))?;
        if header == http::header::HOST {
            // One Host only: a user value replaces the one taken from the URL.
            headers.insert(header, value);
        } else {
            headers.append(header, value);
        }
    }
    if !protocols.is_empty() {
        let list = protocols.join(", ");
        let value = HeaderValue::from_str(&list)
            .map_err(|_| format!("subprotocols \"{list}\" are not valid in HTTP"))?;
        headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
    }
    Ok(request)
}

/// A message for the connection numbered `conn` (see [`ClientEvent::Connected`]).
#[derive(Debug)]
struct Outgoing {
    conn: u64,
    message: WsMessage,
}

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The outgoing queue is full (the server or the network is slower than the script).
    Full,
    /// The task has ended.
    Closed,
}

/// The engine's end of a running client task. Dropping it ends the task: messages already queued
/// are written, then a close frame is sent.
#[derive(Debug)]
pub struct ClientHandle {
    outgoing: mpsc::Sender<Outgoing>,
    /// Payload bytes queued and not yet taken by the task (see [`OUTGOING_QUEUE_BYTES`]).
    queued_bytes: Arc<AtomicUsize>,
    /// Permits are bytes of [`INGEST_BUDGET_BYTES`] not held by received messages.
    ingest: Arc<Semaphore>,
    /// The task's child of [`NetTasks::cancel`], cancelled when the handle is dropped.
    cancel: CancellationToken,
}

impl Drop for ClientHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl ClientHandle {
    /// The engine has handled received messages of this [`ingest_cost`]: the reader may go on.
    pub fn ingested(&self, cost: usize) {
        self.ingest.add_permits(cost);
    }

    /// Queues `message` for connection `conn` without waiting.
    pub fn try_send(&self, conn: u64, message: WsMessage) -> Result<(), SendError> {
        let len = message.len();
        let queued = self.queued_bytes.load(Ordering::Acquire);
        // One message of any size may always wait alone; beyond that the byte budget applies.
        if queued > 0 && queued.saturating_add(len) > OUTGOING_QUEUE_BYTES {
            return Err(SendError::Full);
        }
        // Counted before queueing: the task may take the message (and subtract) at once.
        self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        self.outgoing
            .try_send(Outgoing { conn, message })
            .map_err(|e| {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                match e {
                    mpsc::error::TrySendError::Full(_) => SendError::Full,
                    mpsc::error::TrySendError::Closed(_) => SendError::Closed,
                }
            })
    }
}

/// Starts the client task for `node` on `rt`, tracked by `tasks.tracker` and running under a child
/// of `tasks.cancel`; its events carry `run`.
pub fn spawn(
    rt: &tokio::runtime::Handle,
    tasks: &NetTasks,
    node: NodeId,
    run: u64,
    config: ClientConfig,
    events: mpsc::Sender<NetEvent>,
) -> ClientHandle {
    let (outgoing, commands) = mpsc::channel(OUTGOING_QUEUE_CAPACITY);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let ingest = Arc::new(Semaphore::new(INGEST_BUDGET_BYTES));
    let cancel = tasks.cancel.child_token();
    let task = Task {
        node,
        run,
        config,
        events,
        commands,
        queued_bytes: queued_bytes.clone(),
        ingest: ingest.clone(),
        cancel: cancel.clone(),
    };
    tasks.tracker.spawn_on(task.run(), rt);
    ClientHandle {
        outgoing,
        queued_bytes,
        ingest,
        cancel,
    }
}

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The engine stopped listening or dropped the handle: the task ends.
struct Gone;

/// How an open connection ended.
enum End {
    Closed { code: Option<u16>, reason: String },
    Failed(String),
}

struct Task {
    node: NodeId,
    run: u64,
    config: ClientConfig,
    events: mpsc::Sender<NetEvent>,
    commands: mpsc::Receiver<Outgoing>,
    queued_bytes: Arc<AtomicUsize>,
    ingest: Arc<Semaphore>,
    /// Cancelled when the handle is dropped or the runner gives up waiting: the task says goodbye
    /// (queued messages, then a close frame) and ends.
    cancel: CancellationToken,
}

impl Task {
    /// The next outgoing message, its bytes taken off the queue's budget.
    async fn recv(&mut self) -> Option<Outgoing> {
        let next = self.commands.recv().await;
        if let Some(outgoing) = &next {
            self.taken(outgoing);
        }
        next
    }

    fn try_recv(&mut self) -> Option<Outgoing> {
        let next = self.commands.try_recv().ok();
        if let Some(outgoing) = &next {
            self.taken(outgoing);
        }
        next
    }

    fn taken(&self, outgoing: &Outgoing) {
        self.queued_bytes
            .fetch_sub(outgoing.message.len(), Ordering::AcqRel);
    }

    async fn run(mut self) {
        let _ = self.connect_loop().await;
    }

    /// Waits while the engine catches up (bounded channel: a flood slows the reader, and TCP
    /// pushes back on the server) and fails only when the engine is gone.
    async fn emit(&self, event: ClientEvent) -> Result<(), Gone> {
        self.events
            .send(NetEvent {
                node: self.node,
                run: self.run,
                kind: NetEventKind::Client(event),
            })
            .await
            .map_err(|_| Gone)
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms.max(1))
    }

    async fn connect_loop(&mut self) -> Result<(), Gone> {
        // Failures since the last connection that stayed up STABLE_AFTER: drives the backoff.
        let mut failures: u32 = 0;
        let mut conn: u64 = 0;
        loop {
            conn += 1;
            self.emit(ClientEvent::Connecting {
                url: self.config.url.clone(),
                attempt: failures + 1,
            })
            .await?;
            let end = match self.connect().await? {
                Ok((ws, protocol)) => {
                    let connected_at = Instant::now();
                    self.emit(ClientEvent::Connected { conn, protocol }).await?;
                    let end = self.session(ws, conn).await?;
                    if connected_at.elapsed() >= STABLE_AFTER {
                        failures = 0;
                    }
                    end
                }
                Err(error) => End::Failed(error),
            };
            match end {
                End::Closed { code, reason } => {
                    self.emit(ClientEvent::Closed { code, reason }).await?;
                }
                End::Failed(error) => self.emit(ClientEvent::Failed { error }).await?,
            }
            if !self.config.reconnect {
                return self.emit(ClientEvent::Stopped).await;
            }
            let delay_ms = self.config.backoff.delay_ms(failures, fastrand::f64());
            failures = failures.saturating_add(1);
            self.emit(ClientEvent::Retrying {
                delay_ms,
                attempt: failures,
            })
            .await?;
            self.idle(Duration::from_millis(delay_ms)).await?;
        }
    }

    /// Receives commands until the handle is dropped or the task is cancelled. Messages arriving
    /// while no connection is open were meant for one that has ended; they are dropped, never
    /// sent on the next one.
    async fn next_stop(&mut self) -> Gone {
        let cancel = self.cancel.clone();
        tokio::select! {
            () = async { while self.recv().await.is_some() {} } => {}
            () = cancel.cancelled() => {}
        }
        Gone
    }

    async fn idle(&mut self, delay: Duration) -> Result<(), Gone> {
        tokio::select! {
            gone = self.next_stop() => Err(gone),
            () = tokio::time::sleep(delay) => Ok(()),
        }
    }

    /// One attempt; the outer error means the task must end, the inner one that the attempt failed.
    async fn connect(&mut self) -> Result<Result<(Ws, Option<String>), String>, Gone> {
        let request = match build_request(&self.config) {
            Ok(request) => request,
            Err(error) => return Ok(Err(error)),
        };
        let connector = self.config.tls.clone().map(Connector::Rustls);
        let timeout = self.timeout();
        let timeout_ms = self.config.timeout_ms;
        // Small messages matter more than throughput here, so Nagle is off.
        let attempt = tokio::time::timeout(
            timeout,
            tokio_tungstenite::connect_async_tls_with_config(
                request,
                Some(
                    WebSocketConfig::default()
                        .max_message_size(Some(self.config.max_message_bytes))
                        .max_frame_size(Some(self.config.max_message_bytes)),
                ),
                true,
                connector,
            ),
        );
        tokio::select! {
            gone = self.next_stop() => Err(gone),
            result = attempt => Ok(match result {
                Err(_) => Err(format!(
                    "timed out after {timeout_ms} ms (TCP, TLS and handshake)"
                )),
                Ok(Err(error)) => Err(describe(&error)),
                Ok(Ok((ws, response))) => {
                    let protocol = response
                        .headers()
                        .get(SEC_WEBSOCKET_PROTOCOL)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    Ok((ws, protocol))
                }
            }),
        }
    }

    /// Runs an open connection until it ends or the task is stopped.
    async fn session(&mut self, mut ws: Ws, conn: u64) -> Result<End, Gone> {
        let ping_every = (self.config.ping_interval_ms > 0)
            .then(|| Duration::from_millis(self.config.ping_interval_ms));
        let pong_timeout = Duration::from_millis(self.config.pong_timeout_ms.max(1));
        let mut next_ping = ping_every.map(|every| Instant::now() + every);
        let mut last_ping_sent: Option<Instant> = None;
        let mut pong_deadline: Option<Instant> = None;
        // The server's close frame, kept until the close handshake finishes.
        let mut closing: Option<(Option<u16>, String)> = None;
        let cancel = self.cancel.clone();
        loop {
            tokio::select! {
                command = self.recv() => {
                    let Some(first) = command else {
                        close_gracefully(&mut ws).await;
                        return Err(Gone);
                    };
                    match self.write_batch(&mut ws, conn, first, &mut last_ping_sent).await {
                        Ok(()) => {}
                        Err(error) => return Ok(End::Failed(error)),
                    }
                }
                () = cancel.cancelled() => {
                    // As when the queue closes: what is already queued goes out, then our close.
                    while let Some(first) = self.try_recv() {
                        let written =
                            self.write_batch(&mut ws, conn, first, &mut last_ping_sent).await;
                        if written.is_err() {
                            break;
                        }
                    }
                    close_gracefully(&mut ws).await;
                    return Err(Gone);
                }
                incoming = ws.next() => {
                    // Whatever else is already readable goes out in the same event, so a flood
                    // costs the engine one wake-up per batch rather than per message.
                    let mut batch = Vec::new();
                    let mut batch_bytes = 0;
                    let mut next = incoming;
                    let end = loop {
                        let message = match next {
                            Some(Ok(Message::Text(text))) => WsMessage::Text(text.as_str().into()),
                            Some(Ok(Message::Binary(data))) => WsMessage::Binary(data),
                            // tungstenite queues the pong itself and flushes it on the next read.
                            Some(Ok(Message::Ping(data))) => WsMessage::Ping(data),
                            Some(Ok(Message::Pong(data))) => {
                                pong_deadline = None;
                                if let Some(sent) = last_ping_sent.take() {
                                    let rtt_ms = sent.elapsed().as_secs_f64() * 1000.0;
                                    self.emit_batch(&mut batch).await?;
                                    self.emit(ClientEvent::RoundTrip { rtt_ms }).await?;
                                }
                                WsMessage::Pong(data)
                            }
                            Some(Ok(Message::Close(frame))) => {
                                // tungstenite answers the close; the stream ends once the server
                                // hangs up.
                                closing = Some(match frame {
                                    Some(frame) => (Some(u16::from(frame.code)), frame.reason.as_str().to_owned()),
                                    None => (None, String::new()),
                                });
                                break None;
                            }
                            Some(Ok(Message::Frame(_))) => break None,
                            None
                            | Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) => {
                                break Some(match closing.take() {
                                    Some((code, reason)) => End::Closed { code, reason },
                                    None => End::Failed("the server dropped the connection without a close frame".into()),
                                });
                            }
                            Some(Err(error)) => {
                                // A reset right after the server's close frame is still a close.
                                if let Some((code, reason)) = closing.take() {
                                    break Some(End::Closed { code, reason });
                                }
                                // A protocol error, bad UTF-8 or a message over the limit: say so
                                // with a close frame (1002/1007/1009) before hanging up.
                                if let Some(code) = crate::net::protocol_close_code(&error) {
                                    let frame = CloseFrame {
                                        code: code.into(),
                                        reason: describe(&error).chars().take(120).collect::<String>().into(),
                                    };
                                    let _ = tokio::time::timeout(
                                        Duration::from_secs(1),
                                        ws.close(Some(frame)),
                                    )
                                    .await;
                                }
                                break Some(End::Failed(describe(&error)));
                            }
                        };
                        batch_bytes += message.len();
                        batch.push(message);
                        if batch.len() >= BATCH_MESSAGES || batch_bytes >= BATCH_BYTES {
                            break None;
                        }
                        match ws.next().now_or_never() {
                            Some(item) => next = item,
                            None => break None,
                        }
                    };
                    self.emit_batch(&mut batch).await?;
                    if let Some(end) = end {
                        return Ok(end);
                    }
                }
                () = sleep_until_opt(next_ping) => {
                    let now = Instant::now();
                    next_ping = ping_every.map(|every| now + every);
                    last_ping_sent = Some(now);
                    if pong_deadline.is_none() {
                        pong_deadline = Some(now + pong_timeout);
                    }
                    let ping = Message::Ping(tungstenite::Bytes::from_static(KEEPALIVE_PAYLOAD));
                    if let Err(error) = self.write(&mut ws, ping).await {
                        return Ok(End::Failed(error));
                    }
                }
                () = sleep_until_opt(pong_deadline) => {
                    return Ok(End::Failed(format!(
                        "no pong within {} ms of a ping",
                        self.config.pong_timeout_ms
                    )));
                }
            }
        }
    }

    async fn emit_batch(&self, batch: &mut Vec<WsMessage>) -> Result<(), Gone> {
        if batch.is_empty() {
            return Ok(());
        }
        let cost = u32::try_from(ingest_cost(batch)).unwrap_or(u32::MAX);
        // Held until the engine has handled the batch (it adds the permits back). A stopped
        // operator never will, so cancelling ends the wait.
        tokio::select! {
            permits = self.ingest.acquire_many(cost) => permits.map_err(|_| Gone)?.forget(),
            () = self.cancel.cancelled() => return Err(Gone),
        }
        self.emit(ClientEvent::Received(std::mem::take(batch)))
            .await
    }

    /// Writes `first` and whatever else is already queued, then flushes once.
    async fn write_batch(
        &mut self,
        ws: &mut Ws,
        conn: u64,
        first: Outgoing,
        last_ping_sent: &mut Option<Instant>,
    ) -> Result<(), String> {
        let timeout = self.timeout();
        let timeout_ms = self.config.timeout_ms;
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        batch.push(first);
        while batch.len() < WRITE_BATCH {
            match self.try_recv() {
                Some(next) => batch.push(next),
                None => break,
            }
        }
        let write = async {
            for Outgoing {
                conn: for_conn,
                message,
            } in batch
            {
                if for_conn != conn {
                    continue;
                }
                if matches!(message, WsMessage::Ping(_)) {
                    *last_ping_sent = Some(Instant::now());
                }
                ws.feed(message.into_frame()).await?;
            }
            ws.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(describe(&error)),
            Err(_) => Err(format!("sending stalled for {timeout_ms} ms")),
        }
    }

    async fn write(&self, ws: &mut Ws, message: Message) -> Result<(), String> {
        match tokio::time::timeout(self.timeout(), ws.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(describe(&error)),
            Err(_) => Err(format!("sending stalled for {} ms", self.config.timeout_ms)),
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sends our close frame and waits briefly for the server's, so the server sees a clean close.
async fn close_gracefully(ws: &mut Ws) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if ws.close(Some(frame)).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

/// tungstenite's errors, phrased for the monitor.
fn describe(error: &tungstenite::Error) -> String {
    match error {
        tungstenite::Error::Io(io) => match io.get_ref() {
            // rustls errors arrive wrapped in io::Error; their own text is the useful part.
            Some(inner) => format!("{inner}"),
            None => io.to_string(),
        },
        tungstenite::Error::Http(response) => format!(
            "the server refused the WebSocket upgrade: HTTP {}",
            response.status()
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_stays_within_bounds() {
        let b = Backoff::DEFAULT;
        // Whatever the jitter, each delay is longer than the one before, up to the cap.
        let mut previous_max = 0;
        for retry in 0..6 {
            let low = b.delay_ms(retry, 0.0);
            let high = b.delay_ms(retry, 0.999_999);
            assert!(low > previous_max, "retry {retry}: {low} <= {previous_max}");
            assert!(low <= high);
            previous_max = high;
        }
        assert_eq!(b.delay_ms(0, 0.0), 500);
        assert_eq!(b.delay_ms(0, 0.5), 500);
        assert_eq!(b.delay_ms(1, 0.5), 1000);
        for retry in [6, 10, 40, 1000] {
            let d = b.delay_ms(retry, 0.999);
            assert!((24_000..=30_000).contains(&d), "{d}");
        }
    }

    fn config(url: &str) -> ClientConfig {
        ClientConfig {
            url: url.to_string(),
            timeout_ms: 1000,
            reconnect: true,
            backoff: Backoff::DEFAULT,
            subprotocols: vec!["bearer".into(), "abc".into()],
            headers: vec![
                ("X-Api-Key".into(), "k1".into()),
                ("Sec-WebSocket-Protocol".into(), "mqtt".into()),
            ],
            ping_interval_ms: 0,
            pong_timeout_ms: 1000,
            tls: None,
            max_message_bytes: 1 << 20,
        }
    }

    #[test]
    fn requests_carry_headers_and_one_protocol_list() {
        let request = build_request(&config("ws://127.0.0.1:9/x?y=1")).unwrap();
        assert_eq!(request.headers()["x-api-key"], "k1");
        assert_eq!(
            request.headers()["sec-websocket-protocol"],
            "bearer, abc, mqtt"
        );
        assert_eq!(request.uri().path_and_query().unwrap().as_str(), "/x?y=1");

        let mut bad = config("ws://127.0.0.1:9/");
        bad.headers = vec![("Sec-WebSocket-Key".into(), "x".into())];
        assert!(build_request(&bad).unwrap_err().contains("handshake"));
        bad.headers = vec![("bad name".into(), "x".into())];
        assert!(build_request(&bad).unwrap_err().contains("bad name"));
        bad.headers = vec![("X".into(), "line\nbreak".into())];
        assert!(build_request(&bad).is_err());
    }
}
