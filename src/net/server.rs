//! The Web Server DAT's listener: HTTP/1.1 (hyper) and WebSocket (tokio-tungstenite) on one port,
//! optional TLS (tokio-rustls), limits, and a registry of connected WebSocket clients.
//!
//! Every request and message becomes a [`ServerEvent`] for the cook thread; HTTP requests carry a
//! oneshot for the answer and get 503 if none comes within the request timeout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::files::{self, FileSettings, UploadError};
use super::{NetEvent, NetEventKind, SharedStr, WsMessage};
use crate::project::NodeId;

/// Messages queued for one WebSocket client before it counts as too slow and is dropped.
const CLIENT_QUEUE_MESSAGES: usize = 1024;
/// Largest header section accepted; longer ones get 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header lines accepted; more get 431.
const MAX_HEADER_LINES: usize = 100;
/// Connections the kernel completes while all connection slots are busy (std's bind gives 128;
/// past it a burst's SYNs are dropped and each of those connects stalls for a second or more).
const LISTEN_BACKLOG: u32 = 1024;
/// How long a closing WebSocket waits for the peer's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Each WebSocket connection's read buffer. tungstenite zeroes the free part of it before every
/// read, so its 128 KiB default costs a 128 KiB memset per small message (and 128 KiB per idle
/// client); larger messages are still read whole, 8 KiB per read.
const WS_READ_BUFFER_BYTES: usize = 8 * 1024;

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

#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    /// The path only; the query is in `query`.
    pub path: String,
    pub query: String,
    /// In arrival order, names in lower case (as HTTP/2 and hyper carry them).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Both ends as `ip:port`, the form scripts see (made once per connection).
    pub client_addr: SharedStr,
    pub server_addr: SharedStr,
    /// Where an upload's body was saved (its `body` is then empty).
    pub saved_path: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn status(status: StatusCode) -> Self {
        Self {
            status: status.as_u16(),
            reason: None,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: Bytes::from(format!(
                "{} {}\n",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )),
        }
    }
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
    /// 0: never ping.
    pub ping_interval_ms: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_body_bytes: 16 << 20,
            max_message_bytes: 16 << 20,
            request_timeout_ms: 5000,
            header_timeout_ms: 10_000,
            ping_interval_ms: 30_000,
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
}

/// State shared by the listener, its connections and the engine's handle.
struct Shared {
    node: NodeId,
    run: u64,
    events: mpsc::Sender<NetEvent>,
    limits: Arc<RwLock<ServerLimits>>,
    files: Arc<RwLock<Arc<FileSettings>>>,
    clients: Mutex<HashMap<String, ClientEntry>>,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
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

/// The engine's side of a running server.
pub struct ServerHandle {
    pub local_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

/// Why a message could not be queued for a client.
#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    NoSuchClient,
    /// Its queue was full: the client is being dropped.
    TooSlow,
}

/// Binds at once (so a port in use is reported to the caller) and serves on `rt`.
pub fn start(
    config: ServerConfig,
    events: mpsc::Sender<NetEvent>,
    rt: &tokio::runtime::Handle,
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
        let socket = if config.bind.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(bind_error)?;
        // As std's bind does on Unix: a restart may rebind while old connections linger.
        #[cfg(unix)]
        socket.set_reuseaddr(true).map_err(bind_error)?;
        socket.bind(config.bind).map_err(bind_error)?;
        socket.listen(LISTEN_BACKLOG).map_err(bind_error)?
    };
    let local_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        node: config.node,
        run: config.run,
        events,
        limits: config.limits,
        files: config.files,
        clients: Mutex::new(HashMap::new()),
        shutdown: shutdown_rx,
    });
    let acceptor = config.tls.map(tokio_rustls::TlsAcceptor::from);
    let task = rt.spawn(accept_loop(listener, acceptor, shared.clone()));
    Ok(ServerHandle {
        local_addr,
        shared,
        shutdown: shutdown_tx,
        task,
    })
}

impl ServerHandle {
    /// Queues a message for `client`; returns its payload size.
    pub fn send(&self, client: &str, message: WsMessage) -> Result<usize, SendError> {
        let clients = self.shared.clients.lock();
        let entry = clients.get(client).ok_or(SendError::NoSuchClient)?;
        let len = message.len();
        match entry.commands.try_send(ClientCommand::Send(message)) {
            Ok(()) => Ok(len),
            Err(mpsc::error::TrySendError::Full(_)) => {
                entry.too_slow.notify_one();
                Err(SendError::TooSlow)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::NoSuchClient),
        }
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
        let _ = self.shutdown.send(true);
        // The accept loop ends on the signal; connections finish their close handshakes alone.
        drop(self.task);
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
    let mut shutdown = shared.shutdown.clone();
    loop {
        // Follow a changed connection limit without restarting the listener.
        let wanted = shared.limits().max_connections;
        if wanted > slots_granted {
            connection_slots.add_permits(wanted - slots_granted);
            slots_granted = wanted;
        } else if wanted < slots_granted {
            slots_granted -= connection_slots.forget_permits(slots_granted - wanted);
        }
        let permit = tokio::select! {
            permit = connection_slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: report, pause, and keep serving.
                shared.emit_now(ServerEvent::Warning {
                    text: format!("accepting a connection failed: {e}"),
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().unwrap_or(peer);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => serve_connection(tcp, peer, local, shared).await,
                Some(acceptor) => {
                    let timeout = Duration::from_millis(shared.limits().header_timeout_ms);
                    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_connection(stream, peer, local, shared).await,
                        Ok(Err(e)) => shared.emit_now(ServerEvent::Warning {
                            text: format!("TLS handshake with {peer} failed: {e}"),
                        }),
                        Err(_) => shared.emit_now(ServerEvent::Warning {
                            text: format!("TLS handshake with {peer} timed out"),
                        }),
                    }
                }
            }
        });
    }
}

async fn serve_connection<S>(stream: S, peer: SocketAddr, local: SocketAddr, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.limits();
    let service_shared = shared.clone();
    let ends = Arc::new(Ends {
        peer,
        peer_text: peer.to_string().into(),
        local_text: local.to_string().into(),
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
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut shutdown = shared.shutdown.clone();
    tokio::select! {
        _ = connection => {}
        _ = shutdown.changed() => {}
    }
}

type Body = Full<Bytes>;

fn to_hyper(response: HttpResponse) -> Response<Body> {
    let mut out = Response::new(Full::new(response.body));
    *out.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            out.headers_mut().append(name, value);
        }
    }
    if let Some(reason) = response.reason
        && let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason.into_bytes())
    {
        out.extensions_mut().insert(phrase);
    }
    out
}

/// A connection's two ends; their text forms, which every request carries, are made once.
struct Ends {
    peer: SocketAddr,
    peer_text: SharedStr,
    local_text: SharedStr,
}

fn request_info(req: &http::request::Parts, body: Bytes, ends: &Ends) -> HttpRequest {
    HttpRequest {
        method: req.method.as_str().to_string(),
        path: req.uri.path().to_string(),
        query: req.uri.query().unwrap_or("").to_string(),
        headers: req
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        client_addr: ends.peer_text.clone(),
        server_addr: ends.local_text.clone(),
        saved_path: None,
    }
}

/// Asks the engine for an answer, waiting at most the request timeout.
async fn ask_engine(
    shared: &Shared,
    event: impl FnOnce(oneshot::Sender<HttpResponse>) -> ServerEvent,
) -> HttpResponse {
    let timeout = Duration::from_millis(shared.limits().request_timeout_ms);
    let (reply, answer) = oneshot::channel();
    // One timer for the whole wait (queueing for the engine, then its answer).
    let asked = tokio::time::timeout(timeout, async {
        if shared.emit(event(reply)).await {
            answer.await.ok()
        } else {
            None
        }
    });
    match asked.await {
        Ok(Some(response)) => response,
        _ => HttpResponse::status(StatusCode::SERVICE_UNAVAILABLE),
    }
}

async fn handle_request(
    req: Request<Incoming>,
    ends: Arc<Ends>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Infallible> {
    if is_websocket_upgrade(&req) {
        return Ok(upgrade(req, ends, shared).await);
    }
    let limits = shared.limits();
    let declared_length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|len| len > limits.max_body_bytes) {
        return Ok(to_hyper(HttpResponse::status(
            StatusCode::PAYLOAD_TOO_LARGE,
        )));
    }
    let (parts, body) = req.into_parts();
    let settings = shared.files.read().clone();
    let path = parts.uri.path().to_string();
    let is_write = parts.method == http::Method::POST || parts.method == http::Method::PUT;
    if let Some(dir) = &settings.upload_dir
        && is_write
        && !settings.upload_prefix.is_empty()
        && let Some(rest) = path.strip_prefix(settings.upload_prefix.as_str())
    {
        let name = files::sanitize_upload_name(rest);
        let idle = Duration::from_millis(limits.header_timeout_ms);
        let saved = match files::save_upload(dir, &name, body, limits.max_body_bytes, idle).await {
            Ok(saved) => saved,
            Err(UploadError::Stalled) => {
                let mut refused = HttpResponse::status(StatusCode::REQUEST_TIMEOUT);
                refused.headers.push(("connection".into(), "close".into()));
                return Ok(to_hyper(refused));
            }
            Err(UploadError::TooLarge) => {
                return Ok(to_hyper(HttpResponse::status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                )));
            }
            Err(UploadError::Interrupted) => {
                return Ok(to_hyper(HttpResponse::status(StatusCode::BAD_REQUEST)));
            }
            Err(UploadError::Io(e)) => {
                shared.emit_now(ServerEvent::Warning {
                    text: format!("saving an upload in {}: {e}", dir.display()),
                });
                return Ok(to_hyper(HttpResponse::status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                )));
            }
        };
        let file_name = saved
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut request = request_info(&parts, Bytes::new(), &ends);
        request.saved_path = Some(saved);
        let mut response = ask_engine(&shared, |reply| ServerEvent::HttpRequest {
            request: Box::new(request),
            reply,
        })
        .await;
        if is_default_404(&response) {
            response = HttpResponse {
                status: StatusCode::CREATED.as_u16(),
                reason: None,
                headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                body: Bytes::from(file_name),
            };
        }
        return Ok(to_hyper(response));
    }
    let idle = Duration::from_millis(limits.header_timeout_ms);
    let body = match read_body(body, limits.max_body_bytes, idle).await {
        Ok(body) => body,
        Err(status) => {
            let mut refused = HttpResponse::status(status);
            refused.headers.push(("connection".into(), "close".into()));
            return Ok(to_hyper(refused));
        }
    };
    let request = request_info(&parts, body, &ends);
    let mut response = ask_engine(&shared, |reply| ServerEvent::HttpRequest {
        request: Box::new(request),
        reply,
    })
    .await;
    if is_default_404(&response)
        && let Some(root) = &settings.static_root
        && let Some(mut file) = files::serve_static(
            root,
            &settings.index_file,
            &parts.method,
            &path,
            &parts.headers,
        )
        .await
    {
        // Headers the callback set on its default answer (CORS, caching) apply to the file too.
        for (name, value) in response.headers {
            if !file
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(&name))
            {
                file.headers.push((name, value));
            }
        }
        response = file;
    }
    if is_default_404(&response)
        && !response
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        let plain = HttpResponse::status(StatusCode::NOT_FOUND);
        response.headers.extend(plain.headers);
        response.body = plain.body;
    }
    Ok(to_hyper(response))
}

/// An answer the callback left at its default (or gave no callback for): 404, no body.
fn is_default_404(response: &HttpResponse) -> bool {
    response.status == 404 && response.body.is_empty()
}

/// Reads a body of at most `max` bytes; a client that sends nothing for `idle` gets 408, so a
/// stalled body cannot hold a connection slot forever.
async fn read_body(body: Incoming, max: u64, idle: Duration) -> Result<Bytes, StatusCode> {
    if hyper::body::Body::is_end_stream(&body) {
        return Ok(Bytes::new()); // a GET, say: no timer, no buffer
    }
    let mut body = Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX));
    let mut data = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(StatusCode::REQUEST_TIMEOUT),
            Ok(None) => return Ok(data.freeze()),
            Ok(Some(Ok(frame))) => {
                if let Ok(chunk) = frame.into_data() {
                    data.extend_from_slice(&chunk);
                }
            }
            Ok(Some(Err(e))) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
            Ok(Some(Err(_))) => return Err(StatusCode::BAD_REQUEST),
        }
    }
}

fn is_websocket_upgrade(req: &Request<Incoming>) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    req.method() == http::Method::GET
        && has_token(header::UPGRADE, "websocket")
        && has_token(header::CONNECTION, "upgrade")
}

async fn upgrade(req: Request<Incoming>, ends: Arc<Ends>, shared: Arc<Shared>) -> Response<Body> {
    let peer = ends.peer;
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return to_hyper(HttpResponse::status(StatusCode::BAD_REQUEST));
    };
    if req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        let mut refused = HttpResponse::status(StatusCode::UPGRADE_REQUIRED);
        refused
            .headers
            .push(("sec-websocket-version".into(), "13".into()));
        return to_hyper(refused);
    }
    let (parts, body) = req.into_parts();
    let request = request_info(&parts, Bytes::new(), &ends);
    let req = Request::from_parts(parts, body);
    let offered: Vec<String> = request
        .headers
        .iter()
        .filter(|(n, _)| n == "sec-websocket-protocol")
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|p| p.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|p| !p.is_empty())
        .collect();
    let uri = request.path.clone();
    let answer = ask_engine(&shared, |reply| ServerEvent::WsUpgrade {
        request: Box::new(request),
        reply,
    })
    .await;
    if answer.status != 101 {
        return to_hyper(answer);
    }
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    // The callback's choice of subprotocol wins; without one, the first offered is accepted so
    // clients that insist on a protocol (`bearer, <token>`) can connect.
    let chosen = answer
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"))
        .map(|(_, v)| v.clone())
        .or_else(|| offered.first().cloned());
    for (name, value) in &answer.headers {
        if name.eq_ignore_ascii_case("sec-websocket-protocol")
            || name.eq_ignore_ascii_case("content-type")
        {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    if let Some(protocol) = chosen
        && let Ok(value) = HeaderValue::from_str(&protocol)
    {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => websocket_session(TokioIo::new(upgraded), peer, uri, shared).await,
            Err(e) => shared.emit_now(ServerEvent::Warning {
                text: format!("WebSocket upgrade from {peer} failed: {e}"),
            }),
        }
    });
    response
}

/// The close code for a read error, as RFC 6455 §7.4 assigns them.
fn close_code_for(error: &WsError) -> Option<u16> {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match error {
        // The peer is gone: there is no one to send a close frame to.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Capacity(_) => Some(1009),
        WsError::Utf8(_) => Some(1007),
        WsError::Protocol(_) => Some(1002),
        _ => None,
    }
}

async fn websocket_session<S>(io: S, peer: SocketAddr, uri: String, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.limits();
    let config = WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .max_message_size(Some(limits.max_message_bytes))
        .max_frame_size(Some(limits.max_message_bytes));
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    let (mut sink, mut stream) = ws.split();
    let client = peer.to_string();
    let (commands_tx, mut commands) = mpsc::channel(CLIENT_QUEUE_MESSAGES);
    let too_slow = Arc::new(tokio::sync::Notify::new());
    let stats = Arc::new(ClientStats {
        uri: uri.clone(),
        since_ms: now_ms(),
        messages_in: AtomicU64::new(0),
        bytes_in: AtomicU64::new(0),
        messages_out: AtomicU64::new(0),
        bytes_out: AtomicU64::new(0),
        last_activity_ms: AtomicI64::new(now_ms()),
    });
    shared.clients.lock().insert(
        client.clone(),
        ClientEntry {
            commands: commands_tx,
            too_slow: too_slow.clone(),
            stats: stats.clone(),
        },
    );
    shared
        .emit(ServerEvent::WsOpen {
            client: client.clone(),
            uri,
        })
        .await;

    let ping_every =
        (limits.ping_interval_ms > 0).then(|| Duration::from_millis(limits.ping_interval_ms));
    let mut ping_timer = tokio::time::interval(ping_every.unwrap_or(Duration::from_secs(3600)));
    ping_timer.tick().await;
    let mut awaiting_pong = false;
    let mut shutdown = shared.shutdown.clone();
    // (code, reason) of the close; None when the peer vanished without one.
    let mut closed: Option<(u16, String)> = None;
    // Whether we still owe the peer a close frame of our own.
    let mut send_close: Option<(u16, String)> = None;

    loop {
        tokio::select! {
            incoming = stream.next() => {
                let message = match incoming {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        if let Some(code) = close_code_for(&e) {
                            send_close = Some((code, e.to_string()));
                            closed = Some((code, e.to_string()));
                        }
                        break;
                    }
                    None => break,
                };
                stats.touch();
                let event = match message {
                    Message::Text(t) => WsMessage::Text(t.as_str().into()),
                    Message::Binary(b) => WsMessage::Binary(b),
                    Message::Ping(b) => WsMessage::Ping(b),
                    Message::Pong(b) => {
                        awaiting_pong = false;
                        WsMessage::Pong(b)
                    }
                    Message::Close(frame) => {
                        closed = Some(frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.as_str().to_string())));
                        // tungstenite queued the reply; flushing sends it.
                        let _ = sink.flush().await;
                        break;
                    }
                    Message::Frame(_) => continue,
                };
                stats.messages_in.fetch_add(1, Ordering::Relaxed);
                stats.bytes_in.fetch_add(event.len() as u64, Ordering::Relaxed);
                if !shared.emit(ServerEvent::WsMessage { client: client.clone(), message: event }).await {
                    break;
                }
            }
            command = commands.recv() => match command {
                Some(ClientCommand::Send(message)) => {
                    let len = message.len() as u64;
                    if sink.send(message.into_frame()).await.is_err() {
                        break;
                    }
                    stats.messages_out.fetch_add(1, Ordering::Relaxed);
                    stats.bytes_out.fetch_add(len, Ordering::Relaxed);
                }
                Some(ClientCommand::Close(code, reason)) => {
                    send_close = Some((code, reason.clone()));
                    closed = Some((code, reason));
                    break;
                }
                None => break,
            },
            _ = too_slow.notified() => {
                send_close = Some((1008, "too slow: message queue full".into()));
                closed = send_close.clone();
                break;
            }
            _ = ping_timer.tick(), if ping_every.is_some() => {
                if awaiting_pong {
                    closed = Some((1006, "no pong within the ping interval".into()));
                    break;
                }
                awaiting_pong = true;
                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    break;
                }
            }
            _ = shutdown.changed() => {
                send_close = Some((1001, "server stopping".into()));
                closed = send_close.clone();
                break;
            }
        }
    }

    shared.clients.lock().remove(&client);
    if let Some((code, reason)) = send_close {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.chars().take(120).collect::<String>().into(),
        };
        let closing = async {
            if sink.send(Message::Close(Some(frame))).await.is_ok() {
                // Wait for the peer's close frame, as the closing handshake asks.
                while let Some(Ok(m)) = stream.next().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_WAIT, closing).await;
    }
    let (code, reason) = match closed {
        Some((code, reason)) => (Some(code), reason),
        None => (None, String::new()),
    };
    shared
        .emit(ServerEvent::WsClose {
            client,
            code,
            reason,
        })
        .await;
}
