//! The Web Server DAT's listener: the accept loop and each connection, limits, and the registry of
//! connected WebSocket clients behind the engine's [`ServerHandle`]; HTTP/1.1 (hyper) and
//! WebSocket (tokio-tungstenite) share one port, with optional TLS (tokio-rustls).
//!
//! Every request and message becomes a [`ServerEvent`] for the cook thread; HTTP requests carry a
//! oneshot for the answer and get 503 if none comes within the request timeout. The HTTP path is
//! in `http.rs`, upgrades and WebSocket sessions in `websocket.rs`.

mod connection;
mod http;
mod websocket;

pub use self::http::{HttpRequest, HttpResponse};

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::connection::{Connections, serve_connection};
use super::files::FileSettings;
use super::{NetEvent, NetEventKind, NetTasks, WsMessage};
use crate::project::NodeId;

/// Largest header section accepted; longer ones get 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header lines accepted; more get 431.
const MAX_HEADER_LINES: usize = 100;
/// Connections the kernel completes while all connection slots are busy (std's bind gives 128;
/// past it a burst's SYNs are dropped and each of those connects stalls for a second or more).
const LISTEN_BACKLOG: u32 = 1024;
/// How often a client waiting for a slot looks again for an idle connection to close.
const EVICTION_RETRY: Duration = Duration::from_millis(100);
/// Request bodies a server holds in memory at once: eight of the largest allowed (128 MiB at the
/// default Max Body Size), as of the server's start.
fn body_memory_bytes(limits: &ServerLimits) -> usize {
    usize::try_from(limits.max_body_bytes.saturating_mul(8))
        .unwrap_or(usize::MAX)
        .clamp(1, Semaphore::MAX_PERMITS)
}

/// Callbacks' answers not yet taken by their clients: as much as for bodies, and at least 64 MiB,
/// so a server that takes small bodies (or none) still serves big answers to many clients.
fn answer_memory_bytes(limits: &ServerLimits) -> usize {
    body_memory_bytes(limits).max(64 << 20)
}

/// What the server task reports to the engine.
#[derive(Debug)]
pub enum ServerEvent {
    /// An HTTP request; answer on `reply` (dropping it answers 503).
    HttpRequest {
        request: Box<HttpRequest>,
        reply: oneshot::Sender<HttpResponse>,
    },
    /// A WebSocket upgrade request; status 101 accepts, any other status refuses with that answer.
    WsUpgrade {
        request: Box<HttpRequest>,
        reply: oneshot::Sender<HttpResponse>,
    },
    WsOpen {
        client: String,
        uri: String,
    },
    /// Give its length back with [`ServerHandle::handled`] once its callback has run.
    WsMessage {
        client: String,
        message: WsMessage,
    },
    WsClose {
        client: String,
        code: Option<u16>,
        reason: String,
    },
    /// Something the user should see that did not stop the server (a failed TLS handshake).
    Warning {
        text: String,
    },
    /// The listener stopped by itself (it is not restarted).
    Failed {
        error: String,
    },
}

/// Limits read by every connection; changing them takes effect without a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub max_body_bytes: u64,
    pub max_message_bytes: usize,
    pub request_timeout_ms: u64,
    /// For the TLS handshake and the request headers, and the longest pause within a body.
    pub header_timeout_ms: u64,
    /// A whole request body must arrive within this time.
    pub body_timeout_ms: u64,
    /// After the header timeout's grace, a body must keep this average rate (bytes/s); 0: any.
    pub body_min_rate: u64,
    /// 0: never ping.
    pub ping_interval_ms: u64,
    /// Bytes queued for one WebSocket client (payload plus [`QUEUE_ENTRY_BYTES`] per message).
    /// Past a quarter of it the server stops reading from the clients whose messages' callbacks
    /// queue more for it (from every client when the sender is no client's message) until the
    /// queue drains; a message that would take it past the whole is not queued and the client
    /// is closed.
    pub max_queue_bytes: usize,
    /// A WebSocket client whose socket does not take one write (a batch of its queue, up to
    /// 64 KiB, or a ping) within this time is closed with 1008.
    pub write_timeout_ms: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_body_bytes: 16 << 20,
            max_message_bytes: 16 << 20,
            request_timeout_ms: 5000,
            header_timeout_ms: 10_000,
            body_timeout_ms: 120_000,
            body_min_rate: 1024,
            ping_interval_ms: 30_000,
            max_queue_bytes: 4 << 20,
            write_timeout_ms: 5000,
        }
    }
}

pub struct ServerConfig {
    pub node: NodeId,
    pub run: u64,
    pub bind: SocketAddr,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub limits: Arc<RwLock<ServerLimits>>,
    /// Swapped whole when parameters change; each request takes the current one.
    pub files: Arc<RwLock<Arc<FileSettings>>>,
}

/// One connected WebSocket client, as the Info panel lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientInfo {
    /// `ip:port`, the id scripts use.
    pub address: String,
    pub uri: String,
    /// Unix epoch milliseconds.
    pub connected_since_ms: i64,
    pub messages_in: u64,
    pub bytes_in: u64,
    pub messages_out: u64,
    pub bytes_out: u64,
    pub last_activity_ms: i64,
}

/// What the engine can ask one client's task to do.
enum ClientCommand {
    Send(WsMessage),
    Close(u16, String),
}

struct ClientStats {
    uri: String,
    since_ms: i64,
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_out: AtomicU64,
    last_activity_ms: AtomicI64,
}

impl ClientStats {
    fn touch(&self) {
        self.last_activity_ms.store(now_ms(), Ordering::Relaxed);
    }
}

struct ClientEntry {
    commands: mpsc::Sender<ClientCommand>,
    /// Fired when the client cannot keep up: its task closes it at once.
    too_slow: Arc<tokio::sync::Notify>,
    stats: Arc<ClientStats>,
    queue: Arc<ClientQueue>,
    /// Holds this client's reader back while its messages' callbacks fill others' queues.
    gate: Arc<ReaderGate>,
}

/// Per-message cost counted against [`ServerLimits::max_queue_bytes`] besides the payload (the
/// queue slot and the message's handle), so a flood of empty messages is bounded too.
pub const QUEUE_ENTRY_BYTES: usize = 64;

/// What a message costs in its client's queue.
fn queue_cost(payload_bytes: usize) -> usize {
    payload_bytes + QUEUE_ENTRY_BYTES
}

/// Who the sends the engine makes now are made for: what a queue past its high-water mark holds
/// back.
#[derive(Clone, Default)]
enum Producer {
    /// No client's message (an HTTP request's callback, a timer, a frame, `onWebSocketOpen`...):
    /// there is no one publisher to hold back, so every reader waits (the [`Room`] closes).
    #[default]
    Engine,
    /// The callback of a message read from this client; a dead reference (the client has left)
    /// holds no one back, as that client reads nothing more.
    Client(Weak<ReaderGate>),
}

/// One WebSocket session's own permission to read its next message: closed while some client's
/// queue that its messages' callbacks sent to is past its high-water mark, so a publisher's
/// burst pushes back on that publisher (its TCP window fills) and not on the other clients.
struct ReaderGate {
    /// Unique per session of a server, the key queues record it under.
    id: u64,
    /// Queues past their high-water mark that hold this reader back.
    holders: AtomicUsize,
    open: watch::Sender<bool>,
}

impl ReaderGate {
    fn new(id: u64) -> Self {
        Self {
            id,
            holders: AtomicUsize::new(0),
            open: watch::Sender::new(true),
        }
    }

    fn hold(&self) {
        self.holders.fetch_add(1, Ordering::SeqCst);
        self.update();
    }

    fn release(&self) {
        self.holders.fetch_sub(1, Ordering::SeqCst);
        self.update();
    }

    /// Read inside the watch's lock, as [`Room::update`] does, so the last update wins.
    fn update(&self) {
        self.open.send_if_modified(|open| {
            let now = self.holders.load(Ordering::SeqCst) == 0;
            std::mem::replace(open, now) != now
        });
    }
}

/// Whom one queue past its high-water mark holds back.
#[derive(Default)]
struct Holding {
    readers: HashMap<u64, Weak<ReaderGate>>,
    /// Whether it holds the whole [`Room`] closed (a send no client's message made found it
    /// past its high-water mark).
    room: bool,
    /// Size at which the entries of clients that have left are next swept out, so a queue that
    /// stays past its mark while producers come and go does not keep a growing map.
    sweep_at: usize,
}

/// The bytes waiting in one client's queue, and whom they hold back.
#[derive(Default)]
struct ClientQueue {
    bytes: AtomicUsize,
    /// Above the high-water mark since it last drained below the low-water mark.
    over_high_water: AtomicBool,
    /// Already being closed for its queue: reported once, sent nothing more.
    closing: AtomicBool,
    /// Filled only while `over_high_water` is set (both change under this lock, see
    /// [`ClientQueue::hold`]); emptied, and its readers released, when the queue drains.
    holding: Mutex<Holding>,
}

impl ClientQueue {
    /// Counts `cost` in, or refuses when it would pass `limit` (a message larger than the limit
    /// still goes into an empty queue, so no message size is undeliverable).
    fn reserve(&self, cost: usize, limit: usize, room: &Room) -> bool {
        let before = self.bytes.fetch_add(cost, Ordering::SeqCst);
        if before > 0 && before + cost > limit {
            self.bytes.fetch_sub(cost, Ordering::SeqCst);
            return false;
        }
        if before + cost > high_water(limit)
            && !self.over_high_water.swap(true, Ordering::SeqCst)
            // The client's task may have drained it meanwhile without seeing the flag; with
            // nothing left to send it would not look again.
            && self.bytes.load(Ordering::SeqCst) <= low_water(limit)
        {
            self.drained(room);
        }
        true
    }

    /// After a message was queued: while the queue is past its high-water mark, `producer` waits
    /// before reading its next message (the whole room does for [`Producer::Engine`]), until
    /// the queue drains or its client leaves.
    fn hold(&self, producer: &Producer, room: &Room) {
        // Most sends find their queue below the mark: no lock for them. Only the cook thread
        // (this caller) sets the flag, so if it is clear now, this send did not set it.
        if !self.over_high_water.load(Ordering::SeqCst) {
            return;
        }
        let mut holding = self.holding.lock();
        // Looked at under the lock `drained` clears it under: a hold recorded here is always
        // seen by the drain that ends this time past the mark, never left after it.
        if !self.over_high_water.load(Ordering::SeqCst) {
            return;
        }
        match producer {
            Producer::Engine => {
                if !std::mem::replace(&mut holding.room, true) {
                    room.client_filled();
                }
            }
            Producer::Client(gate) => {
                let Some(gate) = gate.upgrade() else {
                    return;
                };
                if holding.readers.contains_key(&gate.id) {
                    return;
                }
                if holding.readers.len() >= holding.sweep_at {
                    holding.readers.retain(|_, g| g.strong_count() > 0);
                    holding.sweep_at = (holding.readers.len() * 2).max(64);
                }
                holding.readers.insert(gate.id, Arc::downgrade(&gate));
                gate.hold();
            }
        }
    }

    /// Counts `cost` out once the client's socket has taken it.
    fn release(&self, cost: usize, limit: usize, room: &Room) {
        let after = self.bytes.fetch_sub(cost, Ordering::SeqCst) - cost;
        if after <= low_water(limit) {
            self.drained(room);
        }
    }

    /// Below the low-water mark (or its client gone): releases whom it held back.
    fn drained(&self, room: &Room) {
        // Most writes end below the mark with nothing held: no lock for them.
        if !self.over_high_water.load(Ordering::SeqCst) {
            return;
        }
        let mut holding = self.holding.lock();
        if !self.over_high_water.swap(false, Ordering::SeqCst) {
            return;
        }
        let readers = std::mem::take(&mut holding.readers);
        let held_room = std::mem::take(&mut holding.room);
        drop(holding);
        for gate in readers.values().filter_map(Weak::upgrade) {
            gate.release();
        }
        if held_room {
            room.client_drained();
        }
    }
}

/// Above this many queued bytes a client holds back the producers that send to it...
fn high_water(limit: usize) -> usize {
    limit / 4
}

/// ...until its queue is back under this many.
fn low_water(limit: usize) -> usize {
    limit / 8
}

/// Whether every WebSocket session of the server may read its next message (each also waits on
/// its own [`ReaderGate`]): closed while a client's queue is above its high-water mark and
/// something other than a client's message sent to it there (an HTTP callback, a timer: no one
/// publisher to hold back, so every publisher waits in TCP instead of overflowing queues of
/// subscribers that are merely behind), and while the messages read but not yet handled by the
/// engine pass their budget (half of Max WebSocket Queue; every reader feeds the engine), so
/// what is already on its way to the callbacks when readers stop fits in the queues above their
/// high-water marks. The cook thread only flips it, never waits on it.
struct Room {
    clients_over_high_water: AtomicUsize,
    /// Bytes (as [`queue_cost`] counts them) of messages read and not yet handled by the engine.
    unhandled_bytes: AtomicUsize,
    unhandled_over_budget: AtomicBool,
    open: watch::Sender<bool>,
}

impl Room {
    fn new() -> Self {
        Self {
            clients_over_high_water: AtomicUsize::new(0),
            unhandled_bytes: AtomicUsize::new(0),
            unhandled_over_budget: AtomicBool::new(false),
            open: watch::Sender::new(true),
        }
    }

    fn client_filled(&self) {
        self.clients_over_high_water.fetch_add(1, Ordering::SeqCst);
        self.update();
    }

    fn client_drained(&self) {
        self.clients_over_high_water.fetch_sub(1, Ordering::SeqCst);
        self.update();
    }

    /// A message read, on its way to the engine.
    fn read(&self, cost: usize, budget: usize) {
        let after = self.unhandled_bytes.fetch_add(cost, Ordering::SeqCst) + cost;
        if after > budget && !self.unhandled_over_budget.swap(true, Ordering::SeqCst) {
            self.update();
            // The engine may have handled them all meanwhile without seeing the flag.
            if self.unhandled_bytes.load(Ordering::SeqCst) <= budget / 2 {
                self.caught_up();
            }
        }
    }

    /// A message handled by the engine (its callback has queued whatever it sends).
    fn handled(&self, cost: usize, budget: usize) {
        let before = self
            .unhandled_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                Some(b.saturating_sub(cost))
            })
            .unwrap_or(0);
        let after = before.saturating_sub(cost);
        if after <= budget / 2 {
            self.caught_up();
        }
    }

    fn caught_up(&self) {
        if self.unhandled_over_budget.swap(false, Ordering::SeqCst) {
            self.update();
        }
    }

    /// Serialized by the watch's lock and reading the state inside it, so the last update after
    /// any change sees that change whatever order two threads' updates run in.
    fn update(&self) {
        self.open.send_if_modified(|open| {
            let now = self.clients_over_high_water.load(Ordering::SeqCst) == 0
                && !self.unhandled_over_budget.load(Ordering::SeqCst);
            std::mem::replace(open, now) != now
        });
    }
}

/// Messages read and not yet handled may hold this many bytes before the readers wait.
fn unhandled_budget(max_queue_bytes: usize) -> usize {
    max_queue_bytes / 2
}

/// State shared by the listener, its connections and the engine's handle.
struct Shared {
    node: NodeId,
    run: u64,
    events: mpsc::Sender<NetEvent>,
    limits: Arc<RwLock<ServerLimits>>,
    files: Arc<RwLock<Arc<FileSettings>>>,
    clients: Mutex<HashMap<String, ClientEntry>>,
    room: Room,
    /// Whom the engine's sends are made for now, set around a received message's callback.
    producer: Mutex<Producer>,
    /// The next session's [`ReaderGate::id`].
    next_reader: AtomicU64,
    /// Bytes of request bodies held in memory at once, across connections (uploads go to disk
    /// and do not count): past it a request gets 503 instead of growing the process.
    body_memory: Arc<Semaphore>,
    /// Bytes of callbacks' answers not yet written to their clients ([`answer_memory_bytes`]):
    /// past it an answer is replaced by a 503.
    answer_memory: Arc<Semaphore>,
    answer_memory_bytes: usize,
    /// HTTP connections (WebSocket sessions leave it at the upgrade), for closing an idle one
    /// when every slot is taken.
    connections: Arc<Connections>,
    /// The clock of the connections' activity.
    started: std::time::Instant,
    /// Where the server's tasks are spawned, so a stop can wait for them.
    tracker: TaskTracker,
    /// This server's child of [`NetTasks::cancel`]: cancelled, it stops accepting, drops HTTP
    /// connections and closes WebSocket clients with 1001.
    cancel: CancellationToken,
}

/// What became of a message offered to one client's queue.
enum Queued {
    Sent,
    /// Its queue is over the byte limit: it is being closed with 1008 (said once per client).
    TooSlow,
    /// Already being closed for its queue; the message is not sent.
    Closing,
    Gone,
}

impl Shared {
    /// Never waits: the cook thread calls it. A full queue is the client's problem (it is
    /// closed); a queue past its high-water mark holds `producer` back instead.
    fn queue_for(
        &self,
        entry: &ClientEntry,
        message: WsMessage,
        limit: usize,
        producer: &Producer,
    ) -> Queued {
        let queue = &entry.queue;
        if queue.closing.load(Ordering::SeqCst) {
            return Queued::Closing;
        }
        let cost = queue_cost(message.len());
        if !queue.reserve(cost, limit, &self.room) {
            return Self::too_slow(entry);
        }
        match entry.commands.try_send(ClientCommand::Send(message)) {
            Ok(()) => {
                queue.hold(producer, &self.room);
                Queued::Sent
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                queue.release(cost, limit, &self.room);
                Self::too_slow(entry)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                queue.release(cost, limit, &self.room);
                Queued::Gone
            }
        }
    }

    fn too_slow(entry: &ClientEntry) -> Queued {
        if entry.queue.closing.swap(true, Ordering::SeqCst) {
            return Queued::Closing;
        }
        entry.too_slow.notify_one();
        Queued::TooSlow
    }

    async fn emit(&self, event: ServerEvent) -> bool {
        self.events
            .send(NetEvent {
                node: self.node,
                run: self.run,
                kind: NetEventKind::Server(event),
            })
            .await
            .is_ok()
    }

    /// For reports that may be dropped under a flood rather than hold up the connection.
    fn emit_now(&self, event: ServerEvent) {
        let _ = self.events.try_send(NetEvent {
            node: self.node,
            run: self.run,
            kind: NetEventKind::Server(event),
        });
    }

    fn limits(&self) -> ServerLimits {
        self.limits.read().clone()
    }
}

/// The engine's side of a running server. Dropping it stops the server, as
/// [`ServerHandle::shutdown`] does.
pub struct ServerHandle {
    pub local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

/// What a [`ServerHandle::broadcast`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Broadcast {
    /// Clients the message was queued for.
    pub sent: usize,
    /// Clients whose queue would have passed its byte limit: they are being closed with 1008.
    /// Each is named once, by the message that found it full; later ones skip it silently.
    pub too_slow: Vec<String>,
}

/// Why a message could not be queued for a client.
#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    NoSuchClient,
    /// Its queue would pass its byte limit: the client is being closed with 1008 (said once;
    /// later sends to it answer `NoSuchClient`).
    TooSlow,
}

/// Binds at once (so a port in use is reported to the caller) and serves on `rt`; every task it
/// spawns is tracked by `tasks.tracker` and runs under a child of `tasks.cancel`.
pub fn start(
    config: ServerConfig,
    events: mpsc::Sender<NetEvent>,
    rt: &tokio::runtime::Handle,
    tasks: &NetTasks,
) -> Result<ServerHandle, String> {
    let bind_error = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "port {} is already in use ({})",
            config.bind.port(),
            config.bind
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "cannot listen on {}: no such local address",
            config.bind.ip()
        ),
        _ => format!("cannot listen on {}: {e}", config.bind),
    };
    let listener = {
        let _entered = rt.enter();
        // `[::]` (a blank Local Address) takes IPv4 clients too; a machine without IPv6 falls
        // back to 0.0.0.0.
        let dual_stack = config.bind.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        match listen(config.bind, dual_stack) {
            Ok(listener) => listener,
            Err(_) if dual_stack => listen(
                SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), config.bind.port()),
                false,
            )
            .map_err(bind_error)?,
            Err(e) => return Err(bind_error(e)),
        }
    };
    let local_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let body_memory = body_memory_bytes(&config.limits.read());
    let answer_memory = answer_memory_bytes(&config.limits.read());
    let shared = Arc::new(Shared {
        node: config.node,
        run: config.run,
        events,
        limits: config.limits,
        files: config.files,
        clients: Mutex::new(HashMap::new()),
        room: Room::new(),
        producer: Mutex::new(Producer::Engine),
        next_reader: AtomicU64::new(0),
        body_memory: Arc::new(Semaphore::new(body_memory)),
        answer_memory: Arc::new(Semaphore::new(answer_memory)),
        answer_memory_bytes: answer_memory,
        connections: Arc::default(),
        started: std::time::Instant::now(),
        tracker: tasks.tracker.clone(),
        cancel: tasks.cancel.child_token(),
    });
    let acceptor = config.tls.map(tokio_rustls::TlsAcceptor::from);
    tasks
        .tracker
        .spawn_on(accept_loop(listener, acceptor, shared.clone()), rt);
    Ok(ServerHandle { local_addr, shared })
}

impl ServerHandle {
    /// Attributes the sends that follow to the callback of a message read from `client` (`None`:
    /// to no client's message), so a queue they fill past its high-water mark holds back that
    /// client's reader rather than every reader. The engine sets it around each received
    /// message's callback and clears it after.
    pub fn set_producer(&self, client: Option<&str>) {
        let producer = match client {
            None => Producer::Engine,
            // A client that has left is still this message's producer: it holds no one back.
            Some(client) => Producer::Client(
                self.shared
                    .clients
                    .lock()
                    .get(client)
                    .map_or_else(Weak::new, |entry| Arc::downgrade(&entry.gate)),
            ),
        };
        *self.shared.producer.lock() = producer;
    }

    /// Queues a message for `client`; returns its payload size.
    pub fn send(&self, client: &str, message: WsMessage) -> Result<usize, SendError> {
        let limit = self.shared.limits.read().max_queue_bytes;
        let producer = self.shared.producer.lock().clone();
        let clients = self.shared.clients.lock();
        let entry = clients.get(client).ok_or(SendError::NoSuchClient)?;
        let len = message.len();
        match self.shared.queue_for(entry, message, limit, &producer) {
            Queued::Sent => Ok(len),
            Queued::TooSlow => Err(SendError::TooSlow),
            Queued::Closing | Queued::Gone => Err(SendError::NoSuchClient),
        }
    }

    /// Queues `message` for several clients under one look at the registry: every client, or
    /// those in `to`, less those in `exclude`. The message's bytes are shared by every queue
    /// (a `Bytes` clone each), not copied per client.
    pub fn broadcast(
        &self,
        message: &WsMessage,
        to: Option<&[String]>,
        exclude: &[String],
    ) -> Broadcast {
        let limit = self.shared.limits.read().max_queue_bytes;
        let producer = self.shared.producer.lock().clone();
        let clients = self.shared.clients.lock();
        let mut report = Broadcast::default();
        let mut queue = |address: &str, entry: &ClientEntry| {
            if exclude.iter().any(|e| e == address) {
                return;
            }
            match self
                .shared
                .queue_for(entry, message.clone(), limit, &producer)
            {
                Queued::Sent => report.sent += 1,
                Queued::TooSlow => report.too_slow.push(address.to_string()),
                Queued::Closing | Queued::Gone => {}
            }
        };
        match to {
            Some(list) => {
                for address in list {
                    if let Some(entry) = clients.get(address.as_str()) {
                        queue(address, entry);
                    }
                }
            }
            None => {
                for (address, entry) in clients.iter() {
                    queue(address, entry);
                }
            }
        }
        report
    }

    /// The engine has handled a received message of `payload_bytes` (its callback has run):
    /// it no longer counts against the budget that holds the readers back.
    pub fn handled(&self, payload_bytes: usize) {
        let budget = unhandled_budget(self.shared.limits.read().max_queue_bytes);
        self.shared.room.handled(queue_cost(payload_bytes), budget);
    }

    /// Closes `client` with `code` and `reason` (the close handshake runs in its task).
    pub fn close(&self, client: &str, code: u16, reason: &str) -> Result<(), SendError> {
        let clients = self.shared.clients.lock();
        let entry = clients.get(client).ok_or(SendError::NoSuchClient)?;
        if entry
            .commands
            .try_send(ClientCommand::Close(code, reason.to_string()))
            .is_err()
        {
            entry.too_slow.notify_one();
        }
        Ok(())
    }

    /// Open WebSocket connections, oldest first.
    pub fn clients(&self) -> Vec<ClientInfo> {
        let clients = self.shared.clients.lock();
        let mut list: Vec<ClientInfo> = clients
            .iter()
            .map(|(address, entry)| {
                let s = &entry.stats;
                ClientInfo {
                    address: address.clone(),
                    uri: s.uri.clone(),
                    connected_since_ms: s.since_ms,
                    messages_in: s.messages_in.load(Ordering::Relaxed),
                    bytes_in: s.bytes_in.load(Ordering::Relaxed),
                    messages_out: s.messages_out.load(Ordering::Relaxed),
                    bytes_out: s.bytes_out.load(Ordering::Relaxed),
                    last_activity_ms: s.last_activity_ms.load(Ordering::Relaxed),
                }
            })
            .collect();
        list.sort_by(|a, b| {
            a.connected_since_ms
                .cmp(&b.connected_since_ms)
                .then_with(|| a.address.cmp(&b.address))
        });
        list
    }

    pub fn client_ids(&self) -> Vec<String> {
        self.clients().into_iter().map(|c| c.address).collect()
    }

    pub fn connection_count(&self) -> usize {
        self.shared.clients.lock().len()
    }

    /// Stops accepting, sends WebSocket clients a 1001 close, and ends the server's tasks.
    pub fn shutdown(self) {
        // The accept loop ends on the cancel; connections finish their close handshakes alone,
        // in tasks the runner waits for.
        self.shared.cancel.cancel();
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let connection_slots = Arc::new(Semaphore::new(shared.limits().max_connections));
    let mut slots_granted = shared.limits().max_connections;
    // A descriptor held back for when the process runs out of them: given up to take the
    // waiting client, tell it 503 and close, so clients learn the server is full instead of
    // waiting in the backlog until some connection ends.
    let mut reserve = std::fs::File::open("/dev/null").ok();
    loop {
        // Follow a changed connection limit without restarting the listener.
        let wanted = shared.limits().max_connections;
        if wanted > slots_granted {
            connection_slots.add_permits(wanted - slots_granted);
            slots_granted = wanted;
        } else if wanted < slots_granted {
            slots_granted -= connection_slots.forget_permits(slots_granted - wanted);
        }
        // Accepted before a slot is free (one client at most waits here; the rest wait in the
        // backlog), so that an idle connection can be closed to make room for it.
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.cancel.cancelled() => return,
        };
        let (tcp, peer) = match accepted {
            // An IPv4 client of a dual-stack socket is ::ffff:a.b.c.d; scripts see a.b.c.d.
            Ok((tcp, peer)) => (tcp, SocketAddr::new(peer.ip().to_canonical(), peer.port())),
            Err(e) if matches!(e.raw_os_error(), Some(23 | 24)) && reserve.is_some() => {
                // EMFILE/ENFILE: out of descriptors.
                drop(reserve.take());
                refuse_one(&listener).await;
                reserve = std::fs::File::open("/dev/null").ok();
                shared.emit_now(ServerEvent::Warning {
                    text: "out of file descriptors: a client was answered 503 (raise the \
                           descriptor limit or lower Max Connections)"
                        .into(),
                });
                continue;
            }
            Err(e) => {
                // Out of file descriptors and the like: report, pause, and keep serving.
                shared.emit_now(ServerEvent::Warning {
                    text: format!("accepting a connection failed: {e}"),
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(permit) = take_slot(&connection_slots, &shared).await else {
            return;
        };
        let _ = tcp.set_nodelay(true);
        let local = tcp
            .local_addr()
            .map_or(peer, |a| SocketAddr::new(a.ip().to_canonical(), a.port()));
        let shared = shared.clone();
        let tls = tls.clone();
        let registered = shared.connections.register(&shared.cancel, shared.started);
        shared.tracker.clone().spawn(async move {
            let activity = registered.activity.clone();
            let Some(acceptor) = tls else {
                serve_connection(tcp, peer, local, permit, activity, shared).await;
                return;
            };
            let timeout = Duration::from_millis(shared.limits().header_timeout_ms);
            let handshake = tokio::select! {
                handshake = tokio::time::timeout(timeout, acceptor.accept(tcp)) => handshake,
                () = activity.close.cancelled() => return,
            };
            match handshake {
                Ok(Ok(stream)) => {
                    // A slow handshake is not idleness: the client gets its second to ask.
                    activity.touch();
                    serve_connection(stream, peer, local, permit, activity, shared).await;
                }
                Ok(Err(e)) => shared.emit_now(ServerEvent::Warning {
                    text: format!("TLS handshake with {peer} failed: {e}"),
                }),
                Err(_) => shared.emit_now(ServerEvent::Warning {
                    text: format!("TLS handshake with {peer} timed out"),
                }),
            }
            drop(registered);
        });
    }
}

/// A connection slot for a client just accepted: a free one, or, with every slot taken, the slot
/// of an idle connection closed to make room (see [`connection::IDLE_BEFORE_EVICTION`]); failing
/// both, it waits for a connection to end. `None` when the server stops.
async fn take_slot(slots: &Arc<Semaphore>, shared: &Shared) -> Option<OwnedSemaphorePermit> {
    loop {
        match slots.clone().try_acquire_owned() {
            Ok(permit) => return Some(permit),
            Err(TryAcquireError::Closed) => return None,
            Err(TryAcquireError::NoPermits) => {}
        }
        shared.connections.close_idlest();
        tokio::select! {
            permit = slots.clone().acquire_owned() => return permit.ok(),
            // Connections become idle enough to close as time passes.
            () = tokio::time::sleep(EVICTION_RETRY) => {}
            () = shared.cancel.cancelled() => return None,
        }
    }
}

/// Takes one waiting client with the descriptor just freed, answers it 503 and closes.
async fn refuse_one(listener: &tokio::net::TcpListener) {
    use tokio::io::AsyncWriteExt;
    if let Ok(Ok((mut tcp, _))) =
        tokio::time::timeout(Duration::from_millis(100), listener.accept()).await
    {
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            tcp.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
                  content-length: 20\r\nretry-after: 1\r\nconnection: close\r\n\r\n\
                  server is too busy\r\n",
            ),
        )
        .await;
    }
}

/// A listening socket on `addr`, with address reuse (a restart may rebind while old
/// connections linger) and, for `dual_stack`, IPv4 clients on the IPv6 socket.
fn listen(addr: SocketAddr, dual_stack: bool) -> std::io::Result<tokio::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG.try_into().unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(socket.into())
}
