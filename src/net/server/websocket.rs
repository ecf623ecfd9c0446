//! WebSocket on the Web Server DAT: the upgrade (asked of the engine, subprotocol chosen) and each
//! client's session (messages both ways, pings, backpressure and stuck clients, the closing
//! handshake).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::connection::Ends;
use super::http::{Body, HttpResponse, ask_engine, request_info, to_hyper};
use super::{
    ClientCommand, ClientEntry, ClientQueue, ClientStats, QUEUE_ENTRY_BYTES, ReaderGate,
    ServerEvent, Shared, now_ms, queue_cost, unhandled_budget,
};
use crate::net::WsMessage;

/// Most messages one WebSocket client's channel holds, whatever the byte limit allows.
const MAX_QUEUE_MESSAGES: usize = 1 << 20;
/// Queued bytes written to a socket with one flush (one system call when the socket takes them).
const WRITE_BATCH_BYTES: usize = 64 * 1024;
/// How long a closing WebSocket waits for the peer's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Each WebSocket connection's read buffer. tungstenite zeroes the free part of it before every
/// read, so its 128 KiB default costs a 128 KiB memset per small message (and 128 KiB per idle
/// client); larger messages are still read whole, 8 KiB per read.
const WS_READ_BUFFER_BYTES: usize = 8 * 1024;

pub(super) fn is_websocket_upgrade(req: &Request<Incoming>) -> bool {
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

fn is_websocket_key(key: &[u8]) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .is_ok_and(|bytes| bytes.len() == 16)
}

pub(super) async fn upgrade(
    req: Request<Incoming>,
    ends: Arc<Ends>,
    shared: Arc<Shared>,
) -> Response<Body> {
    let peer = ends.peer;
    // RFC 6455 §4.1: the key is 16 random bytes in base64; anything else is a bad request.
    let Some(key) = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|key| is_websocket_key(key.as_bytes()))
        .cloned()
    else {
        return to_hyper(HttpResponse::status(StatusCode::BAD_REQUEST));
    };
    if req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(http::HeaderValue::as_bytes)
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
    let mut response = Response::new(http_body_util::Either::Left(Full::new(Bytes::new())));
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
    // The connection's slot goes with the session, which holds it until the client leaves.
    let slot = ends.slot.lock().take();
    shared.tracker.clone().spawn(async move {
        let _slot = slot;
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => websocket_session(TokioIo::new(upgraded), peer, uri, shared).await,
            Err(e) => shared.emit_now(ServerEvent::Warning {
                text: format!("WebSocket upgrade from {peer} failed: {e}"),
            }),
        }
    });
    response
}

/// Writes `first` and whatever else is already queued, up to [`WRITE_BATCH_BYTES`], with one
/// flush, then counts the batch out of the client's queue. Returns a close the engine asked for
/// behind the batch.
async fn write_batch<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    commands: &mut mpsc::Receiver<ClientCommand>,
    first: WsMessage,
    session: &Session,
) -> Result<Option<(u16, String)>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut cost, mut messages, mut bytes) = (0usize, 0u64, 0u64);
    let mut next = Some(first);
    let mut close = None;
    while let Some(message) = next.take() {
        let len = message.len();
        sink.feed(message.into_frame()).await?;
        cost += queue_cost(len);
        messages += 1;
        bytes += len as u64;
        if cost >= WRITE_BATCH_BYTES {
            break;
        }
        match commands.try_recv() {
            Ok(ClientCommand::Send(message)) => next = Some(message),
            Ok(ClientCommand::Close(code, reason)) => close = Some((code, reason)),
            Err(_) => {}
        }
    }
    sink.flush().await?;
    let limit = session.shared.limits.read().max_queue_bytes;
    session.queue.release(cost, limit, &session.shared.room);
    session
        .stats
        .messages_out
        .fetch_add(messages, Ordering::Relaxed);
    session.stats.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    Ok(close)
}

/// What a session's writes touch besides the socket.
struct Session {
    shared: Arc<Shared>,
    queue: Arc<ClientQueue>,
    stats: Arc<ClientStats>,
}

/// How a write under the write timeout ended.
enum Wrote<T> {
    Done(T),
    Failed,
    /// The socket took nothing for the whole write timeout.
    Stalled,
}

async fn within<T>(timeout: Duration, write: impl Future<Output = Result<T, WsError>>) -> Wrote<T> {
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(value)) => Wrote::Done(value),
        Ok(Err(_)) => Wrote::Failed,
        Err(_) => Wrote::Stalled,
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
    // The byte limit is the bound that matters; the count only sizes the channel to match it.
    let capacity = (limits.max_queue_bytes / QUEUE_ENTRY_BYTES).clamp(16, MAX_QUEUE_MESSAGES);
    let (commands_tx, mut commands) = mpsc::channel(capacity);
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
    let session = Session {
        shared: shared.clone(),
        queue: Arc::new(ClientQueue::default()),
        stats: stats.clone(),
    };
    let gate = Arc::new(ReaderGate::new(
        shared.next_reader.fetch_add(1, Ordering::Relaxed),
    ));
    shared.clients.lock().insert(
        client.clone(),
        ClientEntry {
            commands: commands_tx,
            too_slow: too_slow.clone(),
            stats: stats.clone(),
            queue: session.queue.clone(),
            gate: gate.clone(),
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
    let mut ping_timer = tokio::time::interval(ping_every.unwrap_or(Duration::from_hours(1)));
    ping_timer.tick().await;
    let mut awaiting_pong = false;
    let mut room = shared.room.open.subscribe();
    let mut held = gate.open.subscribe();
    // Set while reading waited for room since the last ping: a pong not read then is not missing.
    let paused = AtomicBool::new(false);
    // (code, reason) of the close; None when the peer vanished without one.
    let mut closed: Option<(u16, String)> = None;
    // Whether we still owe the peer a close frame of our own.
    let mut send_close: Option<(u16, String)> = None;
    let mut stalled = false;

    loop {
        let write_timeout = Duration::from_millis(shared.limits.read().write_timeout_ms);
        tokio::select! {
            incoming = async {
                // Backpressure: while a queue this client's messages fill is past its high-water
                // mark (or any queue is, filled by no client's message, or the engine is behind),
                // its messages stay in the kernel and its TCP window fills.
                if !(*room.borrow_and_update() && *held.borrow_and_update()) {
                    paused.store(true, Ordering::Relaxed);
                    // Both open at once: the room may close again while this reader waits for
                    // its own gate. The senders live as long as this session (an error is not
                    // expected, and ends the wait rather than spinning).
                    // (Each wait in its own statement: the value it returns holds the watch's
                    // lock and must not live across the other wait.)
                    loop {
                        if room.wait_for(|open| *open).await.is_err() {
                            break;
                        }
                        if held.wait_for(|open| *open).await.is_err() {
                            break;
                        }
                        if *room.borrow() {
                            break;
                        }
                    }
                }
                stream.next().await
            } => {
                let message = match incoming {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        if let Some(code) = crate::net::protocol_close_code(&e) {
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
                        let _ = tokio::time::timeout(write_timeout, sink.flush()).await;
                        break;
                    }
                    Message::Frame(_) => continue,
                };
                stats.messages_in.fetch_add(1, Ordering::Relaxed);
                stats.bytes_in.fetch_add(event.len() as u64, Ordering::Relaxed);
                let budget = unhandled_budget(shared.limits.read().max_queue_bytes);
                shared.room.read(queue_cost(event.len()), budget);
                if !shared.emit(ServerEvent::WsMessage { client: client.clone(), message: event }).await {
                    break;
                }
            }
            command = commands.recv() => match command {
                Some(ClientCommand::Send(message)) => {
                    match within(write_timeout, write_batch(&mut sink, &mut commands, message, &session)).await {
                        Wrote::Done(None) => {}
                        Wrote::Done(Some((code, reason))) => {
                            send_close = Some((code, reason.clone()));
                            closed = Some((code, reason));
                            break;
                        }
                        Wrote::Failed => break,
                        Wrote::Stalled => {
                            stalled = true;
                            break;
                        }
                    }
                }
                Some(ClientCommand::Close(code, reason)) => {
                    send_close = Some((code, reason.clone()));
                    closed = Some((code, reason));
                    break;
                }
                None => break,
            },
            () = too_slow.notified() => {
                send_close = Some((1008, "too slow: queue over its byte limit".into()));
                closed.clone_from(&send_close);
                break;
            }
            _ = ping_timer.tick(), if ping_every.is_some() => {
                let was_paused = paused.swap(false, Ordering::Relaxed);
                if awaiting_pong && !was_paused {
                    closed = Some((1006, "no pong within the ping interval".into()));
                    break;
                }
                awaiting_pong = true;
                match within(write_timeout, sink.send(Message::Ping(Bytes::new()))).await {
                    Wrote::Done(()) => {}
                    Wrote::Failed => break,
                    Wrote::Stalled => {
                        stalled = true;
                        break;
                    }
                }
            }
            () = shared.cancel.cancelled() => {
                send_close = Some((1001, "server stopping".into()));
                closed.clone_from(&send_close);
                break;
            }
        }
    }

    shared.clients.lock().remove(&client);
    // Free what was still queued and let the others' readers go on without waiting for the
    // closing handshake.
    drop(commands);
    session.queue.drained(&shared.room);
    if stalled {
        // Its socket takes nothing, so no close frame can reach it: the connection is dropped,
        // and the node's console says why, once.
        let timeout_ms = shared.limits.read().write_timeout_ms;
        let reason = format!("took no data for {timeout_ms} ms");
        closed = Some((1008, reason));
    }
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
