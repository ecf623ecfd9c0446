//! WebSocket DAT against real servers on 127.0.0.1 (bare tokio-tungstenite servers written here):
//! messages and callbacks, the clamped table, parameters applied live, reconnect with backoff,
//! timeouts, close codes, TLS, headers and subprotocols, keepalive, send limits and a flood.
// Test clients run on threads of their own and report over std channels.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc as std_mpsc};
use std::time::{Duration, Instant};

mod common;

use common::console_text;
use datpatch::engine::Badge;
use datpatch::engine::{Command, info};
use datpatch::project::{NodeId, ParValue, Project, load_str};
use datpatch::runner::Runner;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};

const WS: NodeId = NodeId(1);
const CALLBACKS: NodeId = NodeId(2);
const HEADERS: NodeId = NodeId(4);

/// The DAT under test, its callbacks, a log table the callbacks write to, a headers table, and an
/// Execute DAT that tries to send before any connection exists.
const BASE: &str = r#"(
    version: 2,
    nodes: [
        (id: 1, name: "ws", kind: WebSocket),
        (id: 2, name: "ws_callbacks", kind: Text),
        (id: 3, name: "log", kind: Table),
        (id: 4, name: "headers", kind: Table),
        (id: 5, name: "early", kind: Execute,
         text: "def onStart():\n    op('log').appendRow(['early', op('ws').sendText('too early')])\n"),
    ],
    wires: [(from: 2, to: 1, input: Callbacks)],
)"#;

/// Logs every callback into the `log` table; subscribes on every connect.
const LOG_CALLBACKS: &str = r"
def onConnect(dat):
    op('log').appendRow(['connect'])
    dat.sendText('subscribe')

def onDisconnect(dat):
    op('log').appendRow(['disconnect'])

def onReceiveText(dat, rowIndex, message):
    op('log').appendRow(['text', rowIndex, message, dat[rowIndex, 0].val])
    if message == 'hello':
        op('log').appendRow(['sent', dat.sendText('héllo'), dat.sendBinary(bytes([1, 2, 255])),
                             dat.sendPing('pp')])

def onReceiveBinary(dat, contents):
    # bytes: its items are ints.
    op('log').appendRow(['binary', len(contents), contents.decode(), contents[0],
                         type(contents).__name__])

def onReceivePing(dat, contents):
    op('log').appendRow(['ping', contents.decode()])
    dat.sendPong(contents)

def onReceivePong(dat, contents):
    op('log').appendRow(['pong', contents.decode()])

def onMonitorMessage(dat, message):
    op('log').appendRow(['monitor', message])
";

/// TouchDesigner's default WebSocket DAT callbacks, pasted as they are (tabs and all). The copy
/// is deliberate: it is the text a TouchDesigner user brings, whatever our template becomes.
const TD_DEFAULT_CALLBACKS: &str = r"# me - this DAT
#
# dat - the DAT that received a message
# rowIndex - the row number the message was placed into
# message - a unicode representation of the text
#
# Only text frame messages will be handled in this function.
# datpatch: sendText/sendBinary/sendPing/sendPong return the bytes sent, -1 when not connected
# and -2 when the outgoing queue is full; onConnect runs after every (re)connect.

def onConnect(dat):
	return

# me - this DAT
# dat - the DAT that received a message
def onDisconnect(dat):
	return

# me - this DAT
# dat - the DAT that received a message
# rowIndex - the row number the message was placed into
# message - a unicode representation of the text
#
# Only text frame messages will be handled in this function.

def onReceiveText(dat, rowIndex, message):
	return

# me - this DAT
# dat - the DAT that received a message
# contents - a byte array of the message contents
#
# Only binary frame messages will be handled in this function.

def onReceiveBinary(dat, contents):
	return

# me - this DAT
# dat - the DAT that received a message
# contents - a byte array of the message contents
#
# Only ping messages will be handled in this function.

def onReceivePing(dat, contents):
	dat.sendPong(contents) # send a reply with same message
	return

# me - this DAT
# dat - the DAT that received a message
# contents - a byte array of the message contents
#
# Only pong messages will be handled in this function.

def onReceivePong(dat, contents):
	return

# me - this DAT
# dat - the DAT that received a message
# message - a unicode representation of the message
#
# Use this method to monitor the websocket status messages

def onMonitorMessage(dat, message):
	return
";

fn project(port: u16, pars: &[(&str, ParValue)], callbacks: &str) -> Project {
    let mut p = load_str(BASE, Path::new("websocket-test.ron")).unwrap_or_else(|e| panic!("{e}"));
    let ws = p.node_mut(WS).unwrap();
    ws.params
        .insert("netaddress".into(), ParValue::Str("127.0.0.1".into()));
    ws.params.insert("port".into(), ParValue::Int(port.into()));
    for (token, value) in pars {
        ws.params.insert((*token).to_string(), value.clone());
    }
    p.node_mut(CALLBACKS).unwrap().text = Some(callbacks.to_string());
    p
}

fn start(project: Project, dir: &Path) -> Runner {
    Runner::start(project, dir, None).unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(done(), "timed out after {timeout:?} waiting for {what}");
}

const LONG: Duration = Duration::from_secs(15);

fn log_rows(runner: &Runner) -> Vec<Vec<String>> {
    common::table_rows(runner, "log")
}

fn logged(runner: &Runner, kind: &str) -> Vec<Vec<String>> {
    log_rows(runner)
        .into_iter()
        .filter(|r| r.first().map(String::as_str) == Some(kind))
        .collect()
}

fn monitor(runner: &Runner) -> Vec<String> {
    logged(runner, "monitor")
        .into_iter()
        .map(|r| r[1].clone())
        .collect()
}

fn has_monitor(runner: &Runner, needle: &str) -> bool {
    monitor(runner).iter().any(|m| m.contains(needle))
}

fn channel(runner: &Runner, name: &str) -> f64 {
    let engine = runner.engine.lock();
    info::channel(engine.world(), WS, name).unwrap_or_else(|| panic!("no channel {name}"))
}

fn badge(runner: &Runner) -> Badge {
    runner.engine.lock().world().badge(WS)
}

fn fifo(runner: &Runner) -> Vec<Vec<String>> {
    common::dat_cells(runner.engine.lock().world(), WS)
}

fn wait_frames(runner: &Runner, frames: u64) {
    let target = runner.engine.lock().world().frame + frames;
    wait_until("frames", LONG, || {
        runner.engine.lock().world().frame >= target
    });
}

fn console(runner: &Runner) -> String {
    console_text(runner.engine.lock().world())
}

fn set(runner: &Runner, id: NodeId, token: &str, value: ParValue) {
    runner
        .engine
        .lock()
        .apply(Command::SetParam {
            id,
            token: token.into(),
            value,
        })
        .unwrap();
}

fn pulse(runner: &Runner, token: &str) {
    runner
        .engine
        .lock()
        .apply(Command::Pulse {
            id: WS,
            token: token.into(),
        })
        .unwrap();
}

// ---- A test server: one connection at a time, driven by the test. ----

/// What the server saw.
#[derive(Debug, Clone)]
enum Seen {
    /// A handshake, with its request headers (lower-case names).
    Open(HashMap<String, String>),
    Msg(Message),
    /// The connection ended; the close code the client sent, if it sent one.
    Gone(Option<u16>),
}

/// What the test asks the server's current connection to do.
enum Act {
    Send(Message),
    /// Send `count` short numbered text messages as fast as possible.
    Flood(usize),
    /// Send `count` binary messages of `bytes` each as fast as possible.
    FloodBinary(usize, usize),
    /// Stop reading and writing (a hung server) until the client gives up.
    Freeze,
}

struct Server {
    port: u16,
    acts: tokio::sync::mpsc::Sender<Act>,
    seen: std_mpsc::Receiver<Seen>,
    history: Vec<Seen>,
    accepts: Arc<AtomicUsize>,
    /// Flood messages handed to the connection so far.
    sent: Arc<AtomicUsize>,
    rt: Option<tokio::runtime::Runtime>,
}

type Tls = Option<Arc<rustls::ServerConfig>>;

impl Server {
    fn start() -> Server {
        Server::start_with(None, None)
    }

    /// On `port` if given (to bring a refused address to life), with TLS if given.
    fn start_with(port: Option<u16>, tls: Tls) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(TcpListener::bind(("127.0.0.1", port.unwrap_or(0))))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (acts_tx, acts_rx) = tokio::sync::mpsc::channel(1024);
        let acts_rx = Arc::new(tokio::sync::Mutex::new(acts_rx));
        let (seen_tx, seen) = std_mpsc::channel();
        let accepts = Arc::new(AtomicUsize::new(0));
        let counter = accepts.clone();
        let sent = Arc::new(AtomicUsize::new(0));
        let sent_counter = sent.clone();
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let (acts, seen) = (acts_rx.clone(), seen_tx.clone());
                let (tls, sent) = (tls.clone(), sent_counter.clone());
                tokio::spawn(async move {
                    match tls {
                        None => connection(tcp, acts, seen, sent).await,
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                connection(stream, acts, seen, sent).await;
                            }
                        }
                    }
                });
            }
        });
        Server {
            port,
            acts: acts_tx,
            seen,
            history: Vec::new(),
            accepts,
            sent,
            rt: Some(rt),
        }
    }

    fn act(&self, act: Act) {
        self.acts.blocking_send(act).unwrap();
    }

    fn send(&self, message: Message) {
        self.act(Act::Send(message));
    }

    /// Waits for something the server saw matching `pred` (and remembers everything seen).
    fn wait_for(&mut self, what: &str, pred: impl Fn(&Seen) -> bool) -> Seen {
        if let Some(found) = self.history.iter().find(|s| pred(s)) {
            return found.clone();
        }
        let deadline = Instant::now() + LONG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.seen.recv_timeout(left) {
                Ok(seen) => {
                    self.history.push(seen.clone());
                    if pred(&seen) {
                        return seen;
                    }
                }
                Err(e) => panic!("server: {e} waiting for {what}; saw {:?}", self.history),
            }
        }
    }

    /// Waits until `count` things matching `pred` were seen.
    fn wait_count(&mut self, what: &str, count: usize, pred: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + LONG;
        while self.history.iter().filter(|s| pred(s)).count() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.seen.recv_timeout(left) {
                Ok(seen) => self.history.push(seen),
                Err(e) => panic!(
                    "server: {e} waiting for {count} x {what}; saw {:?}",
                    self.history
                ),
            }
        }
    }

    /// TCP connections accepted (before TLS and the handshake).
    fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }

    fn opens(&mut self) -> usize {
        while let Ok(seen) = self.seen.try_recv() {
            self.history.push(seen);
        }
        self.history
            .iter()
            .filter(|s| matches!(s, Seen::Open(_)))
            .count()
    }

    /// Things seen so far (including any not yet collected) matching `pred`.
    fn count(&mut self, pred: impl Fn(&Seen) -> bool) -> usize {
        while let Ok(seen) = self.seen.try_recv() {
            self.history.push(seen);
        }
        self.history.iter().filter(|s| pred(s)).count()
    }

    fn wait_text(&mut self, text: &str) {
        self.wait_for(
            &format!("text {text:?}"),
            |s| matches!(s, Seen::Msg(Message::Text(t)) if t.as_str() == text),
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn is_pong(seen: &Seen, payload: &[u8]) -> bool {
    matches!(seen, Seen::Msg(Message::Pong(b)) if b.as_ref() == payload)
}

async fn connection<S>(
    stream: S,
    acts: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Act>>>,
    seen: std_mpsc::Sender<Seen>,
    sent: Arc<AtomicUsize>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut headers = HashMap::new();
    // The signature is tungstenite's; its error type is large, which does not matter here.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, mut response: Response| {
        for (name, value) in request.headers() {
            headers.insert(
                name.as_str().to_string(),
                value.to_str().unwrap_or("").to_string(),
            );
        }
        // tungstenite's client needs one of its offered protocols echoed back.
        if let Some(offered) = request.headers().get("sec-websocket-protocol") {
            let first = offered.to_str().unwrap().split(',').next().unwrap().trim();
            response
                .headers_mut()
                .insert("sec-websocket-protocol", first.parse().unwrap());
        }
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        let _ = seen.send(Seen::Gone(None));
        return;
    };
    let _ = seen.send(Seen::Open(headers));
    let mut close_code = None;
    loop {
        let act = async { acts.lock().await.recv().await };
        tokio::select! {
            act = act => match act {
                Some(Act::Send(message)) => {
                    if ws.send(message).await.is_err() {
                        break;
                    }
                }
                Some(Act::Flood(count)) => {
                    for i in 0..count {
                        if ws.feed(Message::text(i.to_string())).await.is_err() {
                            break;
                        }
                    }
                    let _ = ws.flush().await;
                }
                Some(Act::FloodBinary(count, bytes)) => {
                    let payload = Bytes::from(vec![7u8; bytes]);
                    for _ in 0..count {
                        if ws.feed(Message::Binary(payload.clone())).await.is_err() {
                            break;
                        }
                        sent.fetch_add(1, Ordering::SeqCst);
                    }
                    let _ = ws.flush().await;
                }
                Some(Act::Freeze) => {
                    tokio::time::sleep(Duration::from_mins(1)).await;
                    break;
                }
                None => break,
            },
            incoming = ws.next() => match incoming {
                Some(Ok(message)) => {
                    if let Message::Close(Some(frame)) = &message {
                        close_code = Some(u16::from(frame.code));
                    }
                    let _ = seen.send(Seen::Msg(message));
                }
                _ => break,
            },
        }
    }
    let _ = seen.send(Seen::Gone(close_code));
}

// ---- Tests ----

#[test]
fn text_binary_ping_and_pong_reach_callbacks_table_and_server() {
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let runner = start(
        project(
            server.port,
            &[("bytes", ParValue::Bool(true))],
            LOG_CALLBACKS,
        ),
        dir.path(),
    );
    server.wait_for("open", |s| matches!(s, Seen::Open(_)));
    // onConnect's send goes out on the new connection.
    server.wait_text("subscribe");
    wait_until("connected", LONG, || badge(&runner) == Badge::Connected);
    assert_eq!(channel(&runner, "connected"), 1.0);

    server.send(Message::text("hello"));
    server.send(Message::Binary(Bytes::from_static(b"\x00bin")));
    server.send(Message::Ping(Bytes::from_static(b"p1")));
    server.send(Message::Pong(Bytes::from_static(b"p2")));

    wait_until("all four kinds logged", LONG, || {
        let rows = log_rows(&runner);
        ["binary", "ping", "sent"]
            .iter()
            .all(|k| rows.iter().any(|r| r[0] == *k))
            && rows.iter().any(|r| r[0] == "pong" && r[1] == "p2")
    });
    assert_eq!(
        logged(&runner, "text"),
        vec![vec!["text", "1", "hello", "hello"]]
    );
    // The contents arrive as Python bytes: len(), decode(), and items that are ints.
    assert_eq!(
        logged(&runner, "binary"),
        vec![vec!["binary", "4", "\0bin", "0", "bytes"]]
    );
    assert_eq!(logged(&runner, "ping")[0], vec!["ping", "p1"]);
    // sendText/sendBinary/sendPing return the bytes sent ("héllo" is 6 bytes in UTF-8).
    assert_eq!(logged(&runner, "sent"), vec![vec!["sent", "6", "3", "2"]]);
    // Before any connection, a send returns a negative number.
    assert_eq!(logged(&runner, "early"), vec![vec!["early", "-1"]]);

    // The server got our messages and one pong to its ping: the automatic one, with the
    // callback's dat.sendPong(contents) recognised as answering that same ping.
    server.wait_text("héllo");
    server.wait_for(
        "binary",
        |s| matches!(s, Seen::Msg(Message::Binary(b)) if b.as_ref() == [1, 2, 255]),
    );
    server.wait_for(
        "ping",
        |s| matches!(s, Seen::Msg(Message::Ping(b)) if b.as_ref() == b"pp"),
    );
    server.wait_for(
        "pong",
        |s| matches!(s, Seen::Msg(Message::Pong(b)) if b.as_ref() == b"p1"),
    );
    // The server's automatic pong to our ping reaches onReceivePong and gives a round trip.
    wait_until("our ping's pong", LONG, || {
        logged(&runner, "pong").iter().any(|r| r[1] == "pp")
    });
    assert!(channel(&runner, "ping_rtt_ms") > 0.0);
    assert_eq!(
        server.count(|s| is_pong(s, b"p1")),
        1,
        "{:?}",
        server.history
    );

    // Binary messages are rows too (their text when it is UTF-8); the bytes column shows every
    // message in hex.
    assert_eq!(
        fifo(&runner),
        [
            ["message", "bytes"],
            ["hello", "68 65 6c 6c 6f"],
            ["\0bin", "00 62 69 6e"],
        ]
    );
    assert_eq!(channel(&runner, "messages_in"), 2.0);
    assert_eq!(channel(&runner, "bytes_in"), 9.0);
    // subscribe, héllo, binary, ping (the pong went out on its own, not as a script's send)
    assert_eq!(channel(&runner, "messages_out"), 4.0);
    assert_eq!(channel(&runner, "errors"), 0.0, "{}", console(&runner));
    assert!(has_monitor(&runner, "connected to ws://127.0.0.1:"));
    assert!(console(&runner).contains("connected to ws://127.0.0.1:"));
    // Turning the DAT off closes with a close frame (stopping the whole runner drops the runtime
    // and its tasks, so there a close frame is best effort only).
    set(&runner, WS, "active", ParValue::Bool(false));
    server.wait_for("a clean close", |s| matches!(s, Seen::Gone(Some(1000))));
}

#[test]
fn touchdesigners_default_callbacks_run_without_errors_and_answer_a_ping_once() {
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let runner = start(project(server.port, &[], TD_DEFAULT_CALLBACKS), dir.path());
    server.wait_for("open", |s| matches!(s, Seen::Open(_)));
    wait_until("connected", LONG, || badge(&runner) == Badge::Connected);

    // Every callback of the template gets something to do.
    server.send(Message::text("one"));
    server.send(Message::text("two"));
    server.send(Message::Binary(Bytes::from_static(&[23, 0, 255])));
    server.send(Message::Pong(Bytes::from_static(b"unasked")));
    server.send(Message::Ping(Bytes::from_static(b"hb")));
    server.send(Message::text("three"));
    wait_until("the messages in the table", LONG, || {
        fifo(&runner).len() == 5
    });
    // The binary message (not UTF-8) is a row with an empty message column.
    assert_eq!(
        fifo(&runner)[1..],
        [["one"], ["two"], [""], ["three"]],
        "{}",
        console(&runner)
    );

    // onReceivePing's dat.sendPong(contents) answers the ping the automatic pong answered: the
    // server gets exactly one pong.
    server.wait_for("the pong", |s| is_pong(s, b"hb"));
    std::thread::sleep(Duration::from_millis(300));
    let pongs = server.count(|s| matches!(s, Seen::Msg(Message::Pong(_))));
    assert_eq!(pongs, 1, "{:?}", server.history);

    // onDisconnect runs too, and nothing the template did was an error or a warning.
    set(&runner, WS, "active", ParValue::Bool(false));
    server.wait_for("a clean close", |s| matches!(s, Seen::Gone(Some(1000))));
    wait_until("idle", LONG, || badge(&runner) == Badge::Idle);
    assert_eq!(channel(&runner, "messages_in"), 4.0);
    assert_eq!(channel(&runner, "errors"), 0.0, "{}", console(&runner));
    assert_eq!(channel(&runner, "warnings"), 0.0, "{}", console(&runner));
}

#[test]
fn table_clamps_live_and_row_index_follows_the_clamp() {
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let runner = start(
        project(
            server.port,
            &[
                ("maxlines", ParValue::Int(3)),
                ("bytes", ParValue::Bool(true)),
            ],
            LOG_CALLBACKS,
        ),
        dir.path(),
    );
    server.wait_text("subscribe");
    for i in 0..10 {
        server.send(Message::text(format!("m{i}")));
    }
    wait_until("10 messages", LONG, || logged(&runner, "text").len() == 10);
    let texts = logged(&runner, "text");
    let indices: Vec<&str> = texts.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(indices, ["1", "2", "3", "3", "3", "3", "3", "3", "3", "3"]);
    // The row the callback was given holds the message it was given.
    for row in &texts {
        assert_eq!(row[2], row[3], "{row:?}");
    }
    let rows = fifo(&runner);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0], ["message", "bytes"]);
    assert_eq!(
        rows[1..],
        [["m7", "6d 37"], ["m8", "6d 38"], ["m9", "6d 39"]]
    );

    // Table parameters apply to the live table without reconnecting.
    set(&runner, WS, "maxlines", ParValue::Int(2));
    wait_until("maxlines 2", LONG, || fifo(&runner).len() == 3);
    assert_eq!(fifo(&runner)[1..], [["m8", "6d 38"], ["m9", "6d 39"]]);
    set(&runner, WS, "bytes", ParValue::Bool(false));
    wait_until("no bytes column", LONG, || fifo(&runner)[0].len() == 1);
    set(&runner, WS, "clamp", ParValue::Bool(false));
    // Parameters apply at the next frame; messages are handled as they arrive.
    wait_frames(&runner, 2);
    server.send(Message::text("n1"));
    server.send(Message::text("n2"));
    server.send(Message::text("n3"));
    wait_until("unclamped rows", LONG, || fifo(&runner).len() == 6);
    assert_eq!(logged(&runner, "text").last().unwrap()[1], "5");
    pulse(&runner, "clear");
    wait_until("cleared", LONG, || fifo(&runner).len() == 1);
    assert_eq!(fifo(&runner), vec![vec!["message".to_string()]]);
    server.send(Message::text("after clear"));
    wait_until("row 1 again", LONG, || {
        logged(&runner, "text").last().unwrap()[1] == "1"
    });

    assert_eq!(server.opens(), 1, "table parameters must not reconnect");
    assert_eq!(logged(&runner, "connect").len(), 1);
    assert_eq!(channel(&runner, "errors"), 0.0, "{}", console(&runner));
}

#[test]
fn active_off_closes_and_on_connects_again() {
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let runner = start(project(server.port, &[], LOG_CALLBACKS), dir.path());
    server.wait_text("subscribe");
    wait_until("connected", LONG, || badge(&runner) == Badge::Connected);

    set(&runner, WS, "active", ParValue::Bool(false));
    server.wait_for("close 1000", |s| matches!(s, Seen::Gone(Some(1000))));
    wait_until("idle", LONG, || badge(&runner) == Badge::Idle);
    assert_eq!(logged(&runner, "disconnect").len(), 1);
    assert!(has_monitor(&runner, "disconnected: Active is off"));
    assert_eq!(channel(&runner, "connected"), 0.0);

    set(&runner, WS, "active", ParValue::Bool(true));
    wait_until("connected again", LONG, || {
        badge(&runner) == Badge::Connected && logged(&runner, "connect").len() == 2
    });
    server.wait_count(
        "a subscribe per connection",
        2,
        |s| matches!(s, Seen::Msg(Message::Text(t)) if t.as_str() == "subscribe"),
    );
    assert_eq!(server.opens(), 2);
    assert_eq!(channel(&runner, "errors"), 0.0, "{}", console(&runner));
}

/// Console lines of the DAT containing `needle`, with their times (Unix ms).
fn console_times(runner: &Runner, needle: &str) -> Vec<(i64, String)> {
    let engine = runner.engine.lock();
    engine
        .world()
        .console
        .lines()
        .filter(|l| l.text.contains(needle))
        .map(|l| (l.time_ms, l.text.clone()))
        .collect()
}

/// The delays announced by "reconnecting in X s" monitor messages, in seconds.
fn announced_delays(runner: &Runner) -> Vec<f64> {
    monitor(runner)
        .iter()
        .filter_map(|m| m.strip_prefix("reconnecting in "))
        .map(|rest| rest.split(' ').next().unwrap().parse::<f64>().unwrap())
        .collect()
}

#[test]
fn refused_connection_is_retried_with_growing_delays_until_the_server_appears() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let runner = start(project(port, &[], LOG_CALLBACKS), dir.path());
    wait_until("two retries", LONG, || announced_delays(&runner).len() >= 2);
    assert_eq!(badge(&runner), Badge::Reconnecting);
    let delays = announced_delays(&runner);
    assert!((0.5..=0.6).contains(&delays[0]), "{delays:?}");
    assert!((0.8..=1.2).contains(&delays[1]), "{delays:?}");
    let failures: Vec<String> = monitor(&runner)
        .into_iter()
        .filter(|m| m.starts_with("could not connect:"))
        .collect();
    assert!(failures[0].contains("refused"), "{failures:?}");
    // Failing to connect is a warning on the node (and a monitor message), not an error.
    assert!(channel(&runner, "warnings") >= 2.0);
    assert_eq!(channel(&runner, "errors"), 0.0, "{}", console(&runner));
    assert!(console(&runner).contains("could not connect:"));

    // The server comes up on that port: the next retry connects and onConnect subscribes.
    let mut server = Server::start_with(Some(port), None);
    server.wait_text("subscribe");
    wait_until("connected", LONG, || badge(&runner) == Badge::Connected);
    assert!(channel(&runner, "reconnects") >= 2.0);

    // Attempts were spaced by at least the announced delays (console times are in ms).
    let attempts = console_times(&runner, "connecting to ");
    let delays = announced_delays(&runner);
    assert!(attempts.len() >= 3, "{attempts:?}");
    for (pair, delay) in attempts.windows(2).zip(&delays) {
        let gap_ms = pair[1].0 - pair[0].0;
        assert!(
            // The announcement rounds to 0.1 s, and lines are stamped when the cook thread logs them.
            gap_ms as f64 >= delay * 1000.0 - 80.0,
            "attempts {gap_ms} ms apart, announced {delay} s: {attempts:?}"
        );
    }
}

#[test]
fn timeout_is_honoured_against_a_server_that_never_answers_the_handshake() {
    // The kernel completes TCP connections to a listener nobody accepts from: the upgrade request
    // goes out and no answer ever comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let runner = start(
        project(
            port,
            &[
                ("timeout", ParValue::Int(300)),
                ("reconnect", ParValue::Bool(false)),
            ],
            LOG_CALLBACKS,
        ),
        dir.path(),
    );
    wait_until("the timeout", LONG, || {
        has_monitor(&runner, "could not connect: timed out after 300 ms")
    });
    let started = console_times(&runner, "connecting to ")[0].0;
    let failed = console_times(&runner, "could not connect")[0].0;
    assert!(
        // Console stamps are taken when the cook thread logs, so allow it a little slack.
        (250..3000).contains(&(failed - started)),
        "gave up after {} ms",
        failed - started
    );
    // With Reconnect off the failure stays on the node as an error until a reset.
    wait_until("the error", LONG, || badge(&runner) == Badge::Error);
    assert_eq!(channel(&runner, "errors"), 1.0);
    assert!(console(&runner).contains("Reconnect is off; pulse Reset to try again"));
    assert!(has_monitor(&runner, "not reconnecting"));
    assert!(logged(&runner, "disconnect").is_empty());

    pulse(&runner, "reset");
    wait_until("a second attempt", LONG, || {
        monitor(&runner)
            .iter()
            .filter(|m| m.contains("timed out after 300 ms"))
            .count()
            == 2
    });
    drop(silent);
}

#[test]
fn server_close_is_reported_with_code_and_reason_and_reconnect_reruns_onconnect() {
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let runner = start(project(server.port, &[], LOG_CALLBACKS), dir.path());
    server.wait_text("subscribe");
    server.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Away,
        reason: "maintenance".into(),
    })));
    wait_until("the close", LONG, || {
        has_monitor(
            &runner,
            "closed by server: code 1001 (going away), reason \"maintenance\"",
        )
    });
    // The subscription is sent again on the new connection by onConnect.
    server.wait_count(
        "a subscribe per connection",
        2,
        |s| matches!(s, Seen::Msg(Message::Text(t)) if t.as_str() == "subscribe"),
    );
    wait_until("connected again", LONG, || {
        logged(&runner, "connect").len() == 2 && badge(&runner) == Badge::Connected
    });
    assert_eq!(logged(&runner, "disconnect").len(), 1);
    assert!(console(&runner).contains("reason \"maintenance\""));
    assert_eq!(channel(&runner, "reconnects"), 1.0);

    // An application close code is reported too (as a warning). The connections lasted less
    // than 10 s, so the backoff goes on growing: a server that accepts and then closes is not
    // reconnected to every half second.
    server.send(Message::Close(Some(CloseFrame {
        code: CloseCode::from(4001),
        reason: "kicked".into(),
    })));
    wait_until("third connection", LONG, || {
        logged(&runner, "connect").len() == 3
    });
    assert!(has_monitor(
        &runner,
        "closed by server: code 4001, reason \"kicked\""
    ));
    let delays = announced_delays(&runner);
    assert_eq!(delays.len(), 2);
    assert!(
        (0.5..=0.6).contains(&delays[0]) && (0.8..=1.2).contains(&delays[1]),
        "{delays:?}"
    );
    assert!(channel(&runner, "warnings") >= 1.0);
    assert_eq!(channel(&runner, "errors"), 0.0, "{}", console(&runner));
}

#[test]
fn wss_is_refused_without_trust_and_accepted_with_the_ca_file() {
    let (ca_pem, tls) = common::test_pki();
    let mut server = Server::start_with(None, Some(tls));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
    let runner = start(
        project(
            server.port,
            &[
                ("netaddress", ParValue::Str("wss://127.0.0.1/feed".into())),
                ("reconnect", ParValue::Bool(false)),
            ],
            LOG_CALLBACKS,
        ),
        dir.path(),
    );
    // Verify Certificate is on by default; the built-in roots do not know the test CA.
    wait_until("the refusal", LONG, || badge(&runner) == Badge::Error);
    let refusal = monitor(&runner)
        .into_iter()
        .find(|m| m.starts_with("could not connect:"))
        .unwrap();
    assert!(refusal.contains("certificate"), "{refusal}");
    assert_eq!(server.accepts(), 1);
    assert_eq!(server.opens(), 0);

    // With the CA file (relative to the project's folder) the same server is trusted.
    set(&runner, WS, "cafile", ParValue::Str("ca.pem".into()));
    server.wait_text("subscribe");
    wait_until("connected", LONG, || badge(&runner) == Badge::Connected);
    assert!(has_monitor(&runner, "connected to wss://127.0.0.1:"));
    server.send(Message::text("secure hello"));
    wait_until("a row", LONG, || fifo(&runner).len() == 2);
    assert_eq!(fifo(&runner)[1], ["secure hello"]);

    // Verify Certificate off: connects without any CA (encrypted, server not authenticated).
    set(&runner, WS, "verifycert", ParValue::Bool(false));
    set(&runner, WS, "cafile", ParValue::Str(String::new()));
    server.wait_count(
        "a subscribe per connection",
        2,
        |s| matches!(s, Seen::Msg(Message::Text(t)) if t.as_str() == "subscribe"),
    );
    wait_until("connected again", LONG, || {
        badge(&runner) == Badge::Connected && logged(&runner, "connect").len() == 2
    });

    // A CA file without certificates is a setup error on the node.
    std::fs::write(dir.path().join("empty.pem"), "nothing here").unwrap();
    set(&runner, WS, "verifycert", ParValue::Bool(true));
    set(&runner, WS, "cafile", ParValue::Str("empty.pem".into()));
    wait_until("the setup error", LONG, || {
        console(&runner).contains("CA file holds no PEM certificate")
    });
    assert_eq!(badge(&runner), Badge::Error);
}

#[test]
fn headers_and_subprotocols_reach_the_server_and_header_edits_reconnect() {
    // SAFETY of the test: these variable names are set nowhere else.
    unsafe {
        std::env::set_var("DATPATCH_WS_TEST_TOKEN", "tok123");
        std::env::set_var("DATPATCH_WS_TEST_AUTH", "Bearer s3cret");
    }
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut p = project(
        server.port,
        &[(
            "subprotocols",
            ParValue::Str("bearer, $DATPATCH_WS_TEST_TOKEN".into()),
        )],
        LOG_CALLBACKS,
    );
    let rows = [
        ["name", "value"],
        ["Authorization", "$DATPATCH_WS_TEST_AUTH"],
        ["X-Client", "datpatch"],
    ];
    p.node_mut(HEADERS).unwrap().table = Some(datpatch::project::Table::from_rows(
        rows.iter()
            .map(|r| r.iter().map(std::string::ToString::to_string).collect())
            .collect(),
    ));
    p.wires.push(datpatch::project::Wire {
        from: HEADERS,
        to: WS,
        input: datpatch::schema::Input::Headers,
    });
    let runner = start(p, dir.path());
    let Seen::Open(headers) = server.wait_for("open", |s| matches!(s, Seen::Open(_))) else {
        unreachable!()
    };
    assert_eq!(headers["authorization"], "Bearer s3cret");
    assert_eq!(headers["x-client"], "datpatch");
    assert_eq!(headers["sec-websocket-protocol"], "bearer, tok123");
    assert!(
        !headers.contains_key("name"),
        "the heading row is not a header"
    );
    wait_until("connected", LONG, || {
        has_monitor(&runner, "(subprotocol bearer)")
    });

    // Editing the headers DAT reconnects with the new value.
    runner
        .engine
        .lock()
        .apply(Command::SetCell {
            id: HEADERS,
            row: 2,
            col: 1,
            value: "datpatch-2".into(),
        })
        .unwrap();
    server.wait_for("old connection closed", |s| {
        matches!(s, Seen::Gone(Some(1000)))
    });
    let second = server.wait_for("second open", |s| {
        matches!(s, Seen::Open(h) if h.get("x-client").map(String::as_str) == Some("datpatch-2"))
    });
    assert!(matches!(second, Seen::Open(_)));
    wait_until("connected again", LONG, || {
        logged(&runner, "connect").len() == 2
    });
    assert_eq!(channel(&runner, "errors"), 0.0, "{}", console(&runner));
}

#[test]
fn keepalive_measures_round_trips_and_a_hung_server_is_dropped_and_reconnected() {
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let runner = start(
        project(
            server.port,
            &[
                ("pinginterval", ParValue::Int(100)),
                ("pongtimeout", ParValue::Int(400)),
            ],
            LOG_CALLBACKS,
        ),
        dir.path(),
    );
    server.wait_text("subscribe");
    wait_until("a keepalive round trip", LONG, || {
        logged(&runner, "pong").iter().any(|r| r[1] == "keepalive")
            && channel(&runner, "ping_rtt_ms") > 0.0
    });
    server.act(Act::Freeze);
    wait_until("the pong timeout", LONG, || {
        has_monitor(&runner, "connection lost: no pong within 400 ms")
    });
    wait_until("reconnected", LONG, || {
        logged(&runner, "connect").len() == 2 && badge(&runner) == Badge::Connected
    });
    assert_eq!(logged(&runner, "disconnect").len(), 1);
    assert_eq!(server.opens(), 2);
}

#[test]
fn a_full_outgoing_queue_returns_minus_two_without_blocking_the_cook_thread() {
    let callbacks = r"
def onConnect(dat):
    op('log').appendRow(['connect'])

def onReceiveText(dat, rowIndex, message):
    big = 'x' * 65536
    sent = 0
    full = 0
    for i in range(1000):
        r = dat.sendText(big)
        if r == -2:
            full += 1
        elif r == 65536:
            sent += 1
    op('log').appendRow(['burst', sent, full])

def onMonitorMessage(dat, message):
    op('log').appendRow(['monitor', message])
";
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let runner = start(
        project(server.port, &[("timeout", ParValue::Int(1000))], callbacks),
        dir.path(),
    );
    server.wait_for("open", |s| matches!(s, Seen::Open(_)));
    wait_until("connected", LONG, || badge(&runner) == Badge::Connected);
    // The server says "go" and stops reading: 64 MB of sends cannot all be queued.
    server.send(Message::text("go"));
    server.act(Act::Freeze);
    wait_until("the burst", LONG, || !logged(&runner, "burst").is_empty());
    let burst = &logged(&runner, "burst")[0];
    let (sent, full): (usize, usize) = (burst[1].parse().unwrap(), burst[2].parse().unwrap());
    assert_eq!(sent + full, 1000, "{burst:?}");
    assert!(full > 0 && sent > 0, "{burst:?}");
    assert!(console(&runner).contains("the outgoing queue is full"));
    assert!(channel(&runner, "warnings") >= full as f64);
    // The stalled write breaks the connection after the timeout, and it reconnects.
    wait_until("the stall", LONG, || {
        has_monitor(&runner, "connection lost: sending stalled for 1000 ms")
    });
    wait_until("reconnected", LONG, || {
        logged(&runner, "connect").len() == 2
    });
}

#[test]
fn a_flood_of_a_million_messages_leaves_maxlines_rows() {
    const COUNT: usize = 1_000_000;
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    // A callbacks DAT without onReceiveText: the per-message path still looks for it.
    let runner = start(
        project(
            server.port,
            &[("bytes", ParValue::Bool(true))],
            "def onConnect(dat):\n    op('log').appendRow(['connect'])\n",
        ),
        dir.path(),
    );
    server.wait_for("open", |s| matches!(s, Seen::Open(_)));
    wait_until("connected", LONG, || badge(&runner) == Badge::Connected);
    let started = Instant::now();
    let first_frame = runner.engine.lock().world().frame;
    server.act(Act::Flood(COUNT));
    let mut max_rows = 0;
    wait_until("every message", Duration::from_mins(5), || {
        max_rows = max_rows.max(fifo_rows(&runner));
        channel(&runner, "messages_in") == COUNT as f64
    });
    let elapsed = started.elapsed();
    let frames = runner.engine.lock().world().frame - first_frame;
    eprintln!(
        "flood: {COUNT} messages in {:.2} s ({:.0} messages/s), {frames} frames cooked meanwhile",
        elapsed.as_secs_f64(),
        COUNT as f64 / elapsed.as_secs_f64()
    );
    assert!(max_rows <= 101, "the table grew to {max_rows} rows");
    // Frames keep their rate while events pour in (60 Hz asked; a loaded machine gets less).
    let expected_frames = elapsed.as_secs_f64() * 60.0;
    assert!(
        frames as f64 >= expected_frames / 4.0,
        "{frames} frames in {elapsed:?} of flood: events starved the frames"
    );
    let rows = fifo(&runner);
    assert_eq!(rows.len(), 101);
    assert_eq!(rows[0], ["message", "bytes"]);
    for (i, row) in rows[1..].iter().enumerate() {
        assert_eq!(row[0], (COUNT - 100 + i).to_string());
    }
    assert_eq!(channel(&runner, "errors"), 0.0, "{}", console(&runner));
}

#[test]
fn received_data_waiting_for_a_busy_engine_is_bounded_in_bytes() {
    const MIB: usize = 1 << 20;
    const COUNT: usize = 200;
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let runner = start(project(server.port, &[], ""), dir.path());
    wait_until("connected", LONG, || badge(&runner) == Badge::Connected);
    let stalled_at = {
        // While the test holds the engine, the cook thread cannot take any event.
        let _busy = runner.engine.lock();
        server.act(Act::FloodBinary(COUNT, MIB));
        let deadline = Instant::now() + LONG;
        let mut last = usize::MAX;
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = server.sent.load(Ordering::SeqCst);
            if now == last {
                break now;
            }
            assert!(
                Instant::now() < deadline,
                "the server never stalled ({now} sent)"
            );
            last = now;
        }
    };
    // The client's ingest budget (4 MiB), the socket buffers and one message in progress hold
    // the rest: nowhere near the 200 MiB sent (the event queue alone would take them all).
    assert!(
        stalled_at < 40,
        "{stalled_at} MiB left the server while the engine was busy"
    );
    wait_until("every message", LONG, || {
        channel(&runner, "messages_in") == COUNT as f64
    });
    assert_eq!(channel(&runner, "bytes_in"), (COUNT * MIB) as f64);
}

fn fifo_rows(runner: &Runner) -> usize {
    let engine = runner.engine.lock();
    engine.world().dat(WS).map_or(0, |d| d.num_rows())
}

#[test]
fn example_project_talks_to_its_web_server_dat_echo() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("projects/websocket_client.ron");
    let project = datpatch::project::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    // A free port for the server, and the client held back until it knows that port.
    let runner = Runner::start_with(project, path.parent().unwrap(), None, |engine| {
        engine.set_par_by_path("echo.port", "0")?;
        engine.set_par_by_path("client.active", "0")
    })
    .unwrap();
    let id = |name: &str| {
        runner
            .engine
            .lock()
            .project()
            .node_by_name(name)
            .unwrap()
            .id
    };
    let (echo, client) = (id("echo"), id("client"));
    let port = || info::channel(runner.engine.lock().world(), echo, "port").unwrap_or(0.0);
    wait_until("the echo server", LONG, || port() != 0.0);
    set(&runner, client, "port", ParValue::Int(port() as i64));
    set(&runner, client, "active", ParValue::Bool(true));

    let received_id = id("received");
    let received = || common::dat_cells(runner.engine.lock().world(), received_id);
    wait_until("the echo", LONG, || {
        let rows = received();
        rows.iter().any(|r| r[1] == "welcome to /chat")
            && rows.iter().any(|r| r[1] == "echo: hello from client")
    });
    let engine = runner.engine.lock();
    let table = engine.world().dat(client).unwrap();
    assert_eq!(table.cell(0, 1).as_deref(), Some("bytes"));
    assert!(table.num_rows() >= 3);
    for node in &engine.project().nodes {
        assert_eq!(
            info::channel(engine.world(), node.id, "errors"),
            Some(0.0),
            "{} has errors",
            node.name
        );
    }
}

#[test]
fn a_callback_sends_touchdesigner_style_binary_and_drives_clear_and_active() {
    let callbacks = r"
def onDisconnect(dat):
    op('log').appendRow(['disconnect'])

def onReceiveText(dat, rowIndex, message):
    if message == 'binary':
        op('log').appendRow(['sent', dat.sendBinary(23, 'TYPE', 255, b'\x01\x00')])
    elif message == 'clear':
        op('ws').par.clear.pulse()
    elif message == 'off':
        op('ws').par.active = False
";
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let runner = start(project(server.port, &[], callbacks), dir.path());
    server.wait_for("open", |s| matches!(s, Seen::Open(_)));
    wait_until("connected", LONG, || badge(&runner) == Badge::Connected);

    // sendBinary(23, 'TYPE', 255, b'..'): any number of ints, strings and bytes, as in TouchDesigner.
    server.send(Message::text("binary"));
    server.wait_for(
        "the binary message",
        |s| matches!(s, Seen::Msg(Message::Binary(b)) if b.as_ref() == b"\x17TYPE\xff\x01\x00"),
    );
    wait_until("the send logged", LONG, || {
        !logged(&runner, "sent").is_empty()
    });
    assert_eq!(logged(&runner, "sent"), vec![vec!["sent", "8"]]);

    // op('ws').par.clear.pulse() empties the table down to its heading.
    server.send(Message::text("clear"));
    wait_until("cleared", LONG, || fifo(&runner).len() == 1);
    assert_eq!(fifo(&runner), vec![vec!["message".to_string()]]);

    // op('ws').par.active = False closes the connection with a close frame.
    server.send(Message::text("off"));
    server.wait_for("a clean close", |s| matches!(s, Seen::Gone(Some(1000))));
    wait_until("idle", LONG, || badge(&runner) == Badge::Idle);
    assert_eq!(logged(&runner, "disconnect").len(), 1);
    assert_eq!(channel(&runner, "connected"), 0.0);
    assert_eq!(channel(&runner, "errors"), 0.0, "{}", console(&runner));
}

#[test]
fn a_message_over_max_message_size_is_refused_with_a_1009_close_frame() {
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let runner = start(
        project(
            server.port,
            &[
                ("maxmessagebytes", ParValue::Int(1024)),
                ("reconnect", ParValue::Bool(false)),
            ],
            LOG_CALLBACKS,
        ),
        dir.path(),
    );
    server.wait_text("subscribe");
    server.send(Message::text("x".repeat(1024)));
    wait_until("the message at the limit", LONG, || {
        fifo(&runner).len() == 2
    });
    server.send(Message::text("x".repeat(1025)));
    server.wait_for("a 1009 close", |s| matches!(s, Seen::Gone(Some(1009))));
    wait_until("the failure reported", LONG, || {
        has_monitor(&runner, "connection lost")
    });
    assert_eq!(fifo(&runner).len(), 2, "the long message is not kept");
}
