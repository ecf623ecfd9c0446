//! WebSocket DAT: a client whose received messages fill a FIFO table, with TouchDesigner's
//! callbacks, reconnect with backoff, headers and subprotocols.

use super::{Input, ParDef, ParKind, common_pars};

pub const CONNECT_PAGE: &str = "Connect";
pub const RECEIVED_PAGE: &str = "Received Messages";

pub const PARAMS: &[ParDef] = &{
    let common = common_pars!();
    [
        ParDef {
            token: "active",
            label: "Active",
            page: CONNECT_PAGE,
            kind: ParKind::Toggle(true),
            help: "Connects while on.",
        },
        ParDef {
            token: "netaddress",
            label: "Network Address",
            page: CONNECT_PAGE,
            kind: ParKind::Str("localhost"),
            help: "Host name or IP, or a full ws:// or wss:// URL with a path.",
        },
        ParDef {
            token: "port",
            label: "Network Port",
            page: CONNECT_PAGE,
            kind: ParKind::Int {
                default: 9980,
                min: 1,
                max: 65535,
            },
            help: "Port; 443 implies TLS. A port in a full URL wins.",
        },
        ParDef {
            token: "timeout",
            label: "Connection Timeout (ms)",
            page: CONNECT_PAGE,
            kind: ParKind::Int {
                default: 5000,
                min: 1,
                max: 600_000,
            },
            help: "Upper limit on connecting, TLS and the WebSocket handshake together.",
        },
        ParDef {
            token: "reconnect",
            label: "Reconnect",
            page: CONNECT_PAGE,
            kind: ParKind::Toggle(true),
            help: "Reconnect after a failure or close, with backoff from 0.5 s to 30 s (with jitter).",
        },
        ParDef {
            token: "reset",
            label: "Reset",
            page: CONNECT_PAGE,
            kind: ParKind::Pulse,
            help: "Drop the connection and connect again now.",
        },
        ParDef {
            token: "subprotocols",
            label: "Subprotocols",
            page: CONNECT_PAGE,
            kind: ParKind::Str(""),
            help: "Comma-separated Sec-WebSocket-Protocol values (e.g. bearer, $TOKEN); each $NAME reads the environment.",
        },
        ParDef {
            token: "headers",
            label: "Headers DAT",
            page: CONNECT_PAGE,
            kind: ParKind::Op(Input::Headers),
            help: "Table DAT of name/value rows sent with the handshake (same as the headers wire); $NAME values read the environment.",
        },
        ParDef {
            token: "pinginterval",
            label: "Ping Interval (ms)",
            page: CONNECT_PAGE,
            kind: ParKind::Int {
                default: 0,
                min: 0,
                max: 3_600_000,
            },
            help: "Ping the server this often (0: never); the last round trip shows in the info.",
        },
        ParDef {
            token: "pongtimeout",
            label: "Pong Timeout (ms)",
            page: CONNECT_PAGE,
            kind: ParKind::Int {
                default: 10_000,
                min: 1,
                max: 3_600_000,
            },
            help: "No pong within this time after a ping drops the connection (and reconnects).",
        },
        ParDef {
            token: "verifycert",
            label: "Verify Certificate",
            page: CONNECT_PAGE,
            kind: ParKind::Toggle(true),
            help: "Check the server's TLS certificate against the CA file or the built-in roots.",
        },
        ParDef {
            token: "cafile",
            label: "CA File",
            page: CONNECT_PAGE,
            kind: ParKind::File {
                extensions: &["pem", "crt"],
            },
            help: "PEM certificates to trust for wss (instead of the built-in roots).",
        },
        ParDef {
            token: "callbacks",
            label: "Callbacks DAT",
            page: RECEIVED_PAGE,
            kind: ParKind::Op(Input::Callbacks),
            help: "Text DAT holding the callbacks (same as the wire into the callbacks input).",
        },
        ParDef {
            token: "executeloc",
            label: "Execute from",
            page: RECEIVED_PAGE,
            kind: ParKind::Menu {
                default: "current",
                items: &[
                    ("current", "Current Node"),
                    ("callbacks", "Callbacks DAT"),
                    ("op", "Specified Operator"),
                ],
            },
            help: "Which operator `me` is inside the callbacks (kept for TouchDesigner parity; for now `me` is always this DAT).",
        },
        ParDef {
            token: "fromop",
            label: "From Operator",
            page: RECEIVED_PAGE,
            kind: ParKind::Str(""),
            help: "The operator `me` is when Execute from is Specified Operator (not used yet: `me` is this DAT).",
        },
        ParDef {
            token: "clamp",
            label: "Clamp Output",
            page: RECEIVED_PAGE,
            kind: ParKind::Toggle(true),
            help: "Keep at most Maximum Lines message rows, dropping the oldest first.",
        },
        ParDef {
            token: "maxlines",
            label: "Maximum Lines",
            page: RECEIVED_PAGE,
            kind: ParKind::Int {
                default: 100,
                min: 1,
                max: 10_000_000,
            },
            help: "Message rows kept when Clamp Output is on.",
        },
        ParDef {
            token: "clear",
            label: "Clear Output",
            page: RECEIVED_PAGE,
            kind: ParKind::Pulse,
            help: "Delete every row but the heading.",
        },
        ParDef {
            token: "bytes",
            label: "Bytes Column",
            page: RECEIVED_PAGE,
            kind: ParKind::Toggle(false),
            help: "Add a column with each message's raw bytes (hex).",
        },
        ParDef {
            token: "format",
            label: "Message Format",
            page: RECEIVED_PAGE,
            kind: ParKind::Menu {
                default: "raw",
                items: &[("raw", "Raw"), ("nanollm", "NanoLLM (32-byte header)")],
            },
            help: "NanoLLM: binary messages are NanoLLM frames, decoded into the table's columns \
                   (msg_id, timestamp, type, size, metadata, payload) and onReceiveFrame; \
                   sendFramed sends them.",
        },
        common[0],
        common[1],
        common[2],
        common[3],
    ]
};

pub const DEFAULT_CALLBACKS: &str = r#"// WebSocket DAT callbacks.
// dat - the WebSocket DAT; rowIndex - the table row the message was written to.
// dat.sendText(text), sendBinary(blob), sendPing(), sendPong(blob) return the bytes sent, or -1
// when not connected and -2 when the outgoing queue is full.
// onConnect runs after every (re)connect: subscribe or authenticate there.

fn onConnect(dat) {
}

fn onDisconnect(dat) {
}

fn onReceiveText(dat, rowIndex, message) {
}

fn onReceiveBinary(dat, contents) {
}

fn onReceivePing(dat, contents) {
    // The pong goes back automatically (RFC 6455 requires it).
}

fn onReceivePong(dat, contents) {
}

fn onMonitorMessage(dat, message) {
}
"#;

use rhai::{Array, Blob, Dynamic, EvalAltResult};

use crate::engine::{Engine, Level, OpRuntime, World, resolve_env};
use crate::net::client::{self, Backoff, ClientConfig, ClientEvent, ClientHandle, SendError};
use crate::net::{WsMessage, nanollm, tls};
use crate::ops::fifo_table::FifoTable;
use crate::project::{NodeId, ParValue};
use crate::script::{OpHandle, to_cell, to_text, with_op};

/// Where the connection stands, as the node's badge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Link {
    /// Inactive, stopped after a close with Reconnect off, or not started.
    #[default]
    Idle,
    /// First attempt since the DAT started.
    Connecting,
    Connected,
    /// A connection failed or closed; waiting for or making the next attempt.
    Reconnecting,
}

/// What a script's send returns when the message did not go out (TouchDesigner: negative).
const NOT_CONNECTED: i64 = -1;
const QUEUE_FULL: i64 = -2;

#[derive(Debug)]
pub struct Runtime {
    table: FifoTable,
    /// Bumped whenever the client task is started or stopped; events of other runs are ignored.
    run: u64,
    client: Option<ClientHandle>,
    /// The settings the current task was started with; a change restarts it. Kept after a task
    /// ends on its own (Reconnect off), so that unrelated parameter changes do not reconnect.
    /// Boxed: it is large and read only on reconcile.
    started_with: Option<Box<ConnectSettings>>,
    link: Link,
    /// The task's number for the open connection; sends carry it.
    conn: u64,
    /// The headers DAT and its content revision when last read.
    headers_seen: Option<(NodeId, u64)>,
    /// Why the last attempt or connection failed, for the error shown when no retry follows.
    last_failure: Option<String>,
    /// A full outgoing queue is reported once until a send gets through again.
    queue_full_reported: bool,
    messages_in: u64,
    bytes_in: u64,
    messages_out: u64,
    bytes_out: u64,
    reconnects: u64,
    /// NanoLLM frames that were short, had a bad magic or a wrong size.
    malformed_frames: u64,
    /// The msg_id of the next framed message on this connection.
    next_frame_id: u64,
    /// The last ping round trip; 0 until one is measured.
    ping_rtt_ms: f64,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            table: FifoTable::new(Some(100), false),
            run: 0,
            client: None,
            started_with: None,
            link: Link::Idle,
            conn: 0,
            headers_seen: None,
            last_failure: None,
            queue_full_reported: false,
            messages_in: 0,
            bytes_in: 0,
            messages_out: 0,
            bytes_out: 0,
            reconnects: 0,
            malformed_frames: 0,
            next_frame_id: 0,
            ping_rtt_ms: 0.0,
        }
    }
}

impl Runtime {
    /// The received-messages table.
    pub fn table(&self) -> &FifoTable {
        &self.table
    }

    /// Hands `message` to the client task; the script sees the bytes queued or a negative code.
    fn send(&mut self, message: WsMessage) -> Result<i64, SendError> {
        let Some(client) = self
            .client
            .as_ref()
            .filter(|_| self.link == Link::Connected)
        else {
            return Err(SendError::Closed);
        };
        let len = message.len();
        client.try_send(self.conn, message)?;
        self.queue_full_reported = false;
        self.messages_out += 1;
        self.bytes_out += len as u64;
        Ok(len as i64)
    }
}

/// The connection parameters, resolved. A change to any of them reconnects.
#[derive(Clone, PartialEq)]
struct ConnectSettings {
    url: String,
    timeout_ms: u64,
    reconnect: bool,
    subprotocols: Vec<String>,
    headers: Vec<(String, String)>,
    ping_interval_ms: u64,
    pong_timeout_ms: u64,
    verify_cert: bool,
    /// The CA file's contents (wss only), so an edited file is picked up on the next reconcile.
    ca_pem: Option<Vec<u8>>,
}

// Header values and subprotocols often hold tokens: keep them out of debug output.
impl std::fmt::Debug for ConnectSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectSettings")
            .field("url", &self.url)
            .field("headers", &self.headers.len())
            .field("subprotocols", &self.subprotocols.len())
            .finish_non_exhaustive()
    }
}

impl ConnectSettings {
    fn read(world: &World, id: NodeId) -> Result<ConnectSettings, String> {
        let netaddress = world.par_str(id, "netaddress")?;
        let port = u16::try_from(world.par_int(id, "port").clamp(1, 65535)).unwrap_or(80);
        let url = resolve_url(&netaddress, port)?;
        let subprotocols = match world.par(id, "subprotocols") {
            Some(ParValue::Str(list)) => list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| resolve_env(p).map_err(|e| format!("Subprotocols: {e}")))
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };
        let verify_cert = world.par_bool(id, "verifycert");
        let cafile_set =
            matches!(world.par(id, "cafile"), Some(ParValue::Str(s)) if !s.trim().is_empty());
        let ca_pem = if url.starts_with("wss://") && cafile_set && verify_cert {
            let path = world.file_par(id, "cafile")?;
            Some(std::fs::read(&path).map_err(|e| format!("CA file {}: {e}", path.display()))?)
        } else {
            None
        };
        Ok(ConnectSettings {
            url,
            timeout_ms: world.par_int(id, "timeout").max(1) as u64,
            reconnect: world.par_bool(id, "reconnect"),
            subprotocols,
            headers: header_rows(world, id)?,
            ping_interval_ms: world.par_int(id, "pinginterval").max(0) as u64,
            pong_timeout_ms: world.par_int(id, "pongtimeout").max(1) as u64,
            verify_cert,
            ca_pem,
        })
    }

    fn client_config(&self) -> Result<ClientConfig, String> {
        let tls = if self.url.starts_with("wss://") {
            Some(tls::client_config(
                self.verify_cert,
                self.ca_pem.as_deref(),
            )?)
        } else {
            None
        };
        let config = ClientConfig {
            url: self.url.clone(),
            timeout_ms: self.timeout_ms,
            reconnect: self.reconnect,
            backoff: Backoff::DEFAULT,
            subprotocols: self.subprotocols.clone(),
            headers: self.headers.clone(),
            ping_interval_ms: self.ping_interval_ms,
            pong_timeout_ms: self.pong_timeout_ms,
            tls,
        };
        // A bad header is a setup error: report it now, not as a failure on every attempt.
        client::build_request(&config)?;
        Ok(config)
    }
}

/// The URL to connect to. `netaddress` is a host name, an IP, or a full `ws://`/`wss://` URL
/// (with a path); a port in it wins over `port`. Without a scheme, port 443 means TLS, as in
/// TouchDesigner.
pub fn resolve_url(netaddress: &str, port: u16) -> Result<String, String> {
    let address = netaddress.trim();
    if address.is_empty() {
        return Err("Network Address is empty".to_string());
    }
    let lower = address.to_ascii_lowercase();
    let (scheme, rest) = [
        ("wss://", Some("wss")),
        ("ws://", Some("ws")),
        ("https://", Some("wss")),
        ("http://", Some("ws")),
    ]
    .iter()
    .find(|(prefix, _)| lower.starts_with(prefix))
    .map_or((None, address), |(prefix, scheme)| {
        (*scheme, &address[prefix.len()..])
    });
    if scheme.is_none() && lower.contains("://") {
        return Err(format!(
            "\"{address}\": only ws:// and wss:// addresses are supported"
        ));
    }
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    if authority.is_empty() {
        return Err(format!("\"{address}\" names no host"));
    }
    let (host, port) = if authority.parse::<std::net::Ipv6Addr>().is_ok() {
        (format!("[{authority}]"), port)
    } else {
        // `host:port` or `[v6]:port`; a lone colon inside brackets is part of the address.
        match authority.rsplit_once(':') {
            Some((host, p)) if !host.is_empty() && (!host.contains(':') || host.ends_with(']')) => {
                let p = p
                    .parse::<u16>()
                    .map_err(|_| format!("\"{address}\": \"{p}\" is not a port"))?;
                (host.to_string(), p)
            }
            _ => (authority.to_string(), port),
        }
    };
    let scheme = scheme.unwrap_or(if port == 443 { "wss" } else { "ws" });
    let url = format!("{scheme}://{host}:{port}{path}");
    url.parse::<http::Uri>()
        .map_err(|e| format!("\"{address}\" is not a valid address: {e}"))?;
    Ok(url)
}

/// The headers DAT's rows as (name, value). Rows without a name are skipped, and so is a first
/// row reading `name`/`value` (a heading). Values may be `$NAME` to keep tokens out of the file.
fn header_rows(world: &World, id: NodeId) -> Result<Vec<(String, String)>, String> {
    let Some(dat) = world
        .input_node(id, "headers")
        .and_then(|headers| world.dat(headers))
    else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for r in 0..dat.num_rows() {
        let name = dat.cell(r, 0).unwrap_or_default().trim().to_string();
        let value = dat.cell(r, 1).unwrap_or_default();
        let heading = r == 0
            && name.eq_ignore_ascii_case("name")
            && value.trim().eq_ignore_ascii_case("value");
        if name.is_empty() || heading {
            continue;
        }
        let value = resolve_env(&value).map_err(|e| format!("header {name}: {e}"))?;
        rows.push((name, value));
    }
    Ok(rows)
}

fn runtime(engine: &mut Engine, id: NodeId) -> &mut Runtime {
    let state = engine.world_mut().state_mut(id);
    if !matches!(state.runtime, OpRuntime::WebSocket(_)) {
        state.runtime = OpRuntime::WebSocket(Runtime::default());
    }
    match &mut state.runtime {
        OpRuntime::WebSocket(rt) => rt,
        _ => unreachable!("set just above"),
    }
}

fn headers_seen(world: &World, id: NodeId) -> Option<(NodeId, u64)> {
    let headers = world.input_node(id, "headers")?;
    Some((headers, world.state(headers).map_or(0, |s| s.content_rev)))
}

/// Applies the table parameters at once (no reconnect) and restarts the connection only when a
/// connection parameter changed.
pub fn reconcile(engine: &mut Engine, id: NodeId, _first: bool) {
    let world = engine.world();
    let max_lines = world
        .par_bool(id, "clamp")
        .then(|| usize::try_from(world.par_int(id, "maxlines").max(1)).unwrap_or(usize::MAX));
    let bytes_column = world.par_bool(id, "bytes");
    let framed = world.par_str(id, "format").is_ok_and(|f| f == "nanollm");
    let active = world.par_bool(id, "active");
    let seen = headers_seen(world, id);
    let rt = runtime(engine, id);
    rt.headers_seen = seen;
    let before = (rt.table.num_rows(), rt.table.bytes_column());
    rt.table.set_max_lines(max_lines);
    rt.table.set_bytes_column(bytes_column);
    rt.table
        .set_record_heading(if framed { FRAME_HEADING } else { &[] });
    if before != (rt.table.num_rows(), rt.table.bytes_column()) {
        engine.world_mut().state_mut(id).content_rev += 1;
    }

    if !active {
        stop_with(engine, id, "Active is off");
        runtime(engine, id).started_with = None;
        engine.world_mut().set_status_error(id, None);
        return;
    }
    let settings = match ConnectSettings::read(engine.world(), id) {
        Ok(settings) => settings,
        Err(error) => {
            stop_with(engine, id, "its parameters are not usable");
            runtime(engine, id).started_with = None;
            engine.world_mut().set_status_error(id, Some(error));
            return;
        }
    };
    if runtime(engine, id).started_with.as_deref() == Some(&settings) {
        return;
    }
    start(engine, id, settings);
}

/// Stops any running task and starts one with `settings`.
fn start(engine: &mut Engine, id: NodeId, settings: ConnectSettings) {
    stop_with(engine, id, "connection parameters changed");
    let config = match settings.client_config() {
        Ok(config) => config,
        Err(error) => {
            runtime(engine, id).started_with = None;
            engine.world_mut().set_status_error(id, Some(error));
            return;
        }
    };
    engine.world_mut().set_status_error(id, None);
    let net = engine.net().clone();
    let rt = runtime(engine, id);
    rt.run += 1;
    rt.client = Some(client::spawn(
        &net.rt, &net.tasks, id, rt.run, config, net.events,
    ));
    rt.started_with = Some(Box::new(settings));
    rt.link = Link::Connecting;
    rt.last_failure = None;
}

pub fn pulse(engine: &mut Engine, id: NodeId, token: &str) {
    match token {
        "clear" => {
            runtime(engine, id).table.clear();
            engine.world_mut().state_mut(id).content_rev += 1;
        }
        "reset" => {
            if !engine.world().par_bool(id, "active") {
                return;
            }
            stop_with(engine, id, "reset");
            runtime(engine, id).started_with = None;
            engine.world_mut().set_status_error(id, None);
            monitor(
                engine,
                id,
                Level::Info,
                "reset: connecting again now".into(),
            );
            reconcile(engine, id, false);
        }
        _ => {}
    }
}

/// Notices edits to the headers DAT (they reconnect only if a header actually changed).
pub fn cook(engine: &mut Engine, id: NodeId) -> bool {
    let seen = headers_seen(engine.world(), id);
    let changed = match &engine.world().state(id).map(|s| &s.runtime) {
        Some(OpRuntime::WebSocket(rt)) => rt.headers_seen != seen,
        _ => false,
    };
    if changed {
        reconcile(engine, id, false);
    }
    false
}

pub fn stop(engine: &mut Engine, id: NodeId) {
    stop_with(engine, id, "stopped");
}

/// Ends the task (it sends a close frame) and ignores anything it still reports. A DAT that was
/// connected runs onDisconnect, as it would for a close from the server.
fn stop_with(engine: &mut Engine, id: NodeId, why: &str) {
    let rt = runtime(engine, id);
    let Some(client) = rt.client.take() else {
        rt.link = Link::Idle;
        return;
    };
    drop(client);
    rt.run += 1;
    let was_connected = std::mem::take(&mut rt.link) == Link::Connected;
    if was_connected {
        monitor(engine, id, Level::Info, format!("disconnected: {why}"));
        engine.call(id, "onDisconnect", vec![dat(id)]);
    } else {
        monitor(
            engine,
            id,
            Level::Info,
            format!("stopped connecting: {why}"),
        );
    }
}

fn dat(id: NodeId) -> Dynamic {
    Dynamic::from(OpHandle { id })
}

/// A status line: to the console (warnings also counted on the node) and to onMonitorMessage.
fn monitor(engine: &mut Engine, id: NodeId, level: Level, message: String) {
    let world = engine.world_mut();
    if level >= Level::Warn {
        world.report_warning(id, message.clone());
    } else {
        world.log(level, Some(id), message.clone());
    }
    engine.call(id, "onMonitorMessage", vec![dat(id), message.into()]);
}

fn close_code_name(code: u16) -> &'static str {
    match code {
        1000 => "normal closure",
        1001 => "going away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1007 => "invalid data",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "extension required",
        1011 => "server error",
        1012 => "service restart",
        1013 => "try again later",
        _ => "",
    }
}

pub fn handle_event(engine: &mut Engine, id: NodeId, run: u64, event: ClientEvent) {
    let current = match &engine.world().state(id).map(|s| &s.runtime) {
        Some(OpRuntime::WebSocket(rt)) => rt.run == run && rt.client.is_some(),
        _ => false,
    };
    if !current {
        return;
    }
    match event {
        ClientEvent::Received(messages) => {
            if let Some(client) = &runtime(engine, id).client {
                client.ingested(client::ingest_cost(&messages));
            }
            received(engine, id, messages);
        }
        ClientEvent::RoundTrip { rtt_ms } => runtime(engine, id).ping_rtt_ms = rtt_ms,
        ClientEvent::Connecting { url, attempt } => {
            let rt = runtime(engine, id);
            if rt.link != Link::Reconnecting {
                rt.link = Link::Connecting;
            }
            let text = if attempt > 1 {
                format!("connecting to {url} (attempt {attempt})")
            } else {
                format!("connecting to {url}")
            };
            monitor(engine, id, Level::Info, text);
        }
        ClientEvent::Connected { conn, protocol } => {
            let rt = runtime(engine, id);
            rt.next_frame_id = 0;
            rt.link = Link::Connected;
            rt.conn = conn;
            rt.last_failure = None;
            let url = rt
                .started_with
                .as_ref()
                .map(|s| s.url.clone())
                .unwrap_or_default();
            engine.world_mut().set_status_error(id, None);
            let text = match protocol {
                Some(protocol) => format!("connected to {url} (subprotocol {protocol})"),
                None => format!("connected to {url}"),
            };
            monitor(engine, id, Level::Info, text);
            engine.call(id, "onConnect", vec![dat(id)]);
        }
        ClientEvent::Closed { code, reason } => {
            let was_connected = disconnected(engine, id, None);
            let (text, level) = match code {
                Some(code) => {
                    let name = close_code_name(code);
                    let name = if name.is_empty() {
                        String::new()
                    } else {
                        format!(" ({name})")
                    };
                    let level = if matches!(code, 1000 | 1001) {
                        Level::Info
                    } else {
                        Level::Warn
                    };
                    (
                        format!("closed by server: code {code}{name}, reason \"{reason}\""),
                        level,
                    )
                }
                None => (
                    "closed by server without a close code".to_string(),
                    Level::Info,
                ),
            };
            monitor(engine, id, level, text);
            if was_connected {
                engine.call(id, "onDisconnect", vec![dat(id)]);
            }
        }
        ClientEvent::Failed { error } => {
            let was_connected = disconnected(engine, id, Some(error.clone()));
            let text = if was_connected {
                format!("connection lost: {error}")
            } else {
                format!("could not connect: {error}")
            };
            monitor(engine, id, Level::Warn, text);
            if was_connected {
                engine.call(id, "onDisconnect", vec![dat(id)]);
            }
        }
        ClientEvent::Retrying { delay_ms, attempt } => {
            let rt = runtime(engine, id);
            rt.link = Link::Reconnecting;
            rt.reconnects += 1;
            let seconds = delay_ms as f64 / 1000.0;
            monitor(
                engine,
                id,
                Level::Info,
                format!("reconnecting in {seconds:.1} s (retry {attempt})"),
            );
        }
        ClientEvent::Stopped => {
            let rt = runtime(engine, id);
            rt.client = None;
            rt.link = Link::Idle;
            rt.run += 1;
            let failure = rt.last_failure.take();
            monitor(
                engine,
                id,
                Level::Info,
                "not reconnecting: Reconnect is off (pulse Reset to connect again)".into(),
            );
            if let Some(failure) = failure {
                engine.world_mut().set_status_error(
                    id,
                    Some(format!(
                        "not connected: {failure} (Reconnect is off; pulse Reset to try again)"
                    )),
                );
            }
        }
    }
}

/// A binary message in NanoLLM mode: decoded into the table's columns and onReceiveFrame, or
/// counted and reported when malformed.
fn received_frame(engine: &mut Engine, id: NodeId, data: &[u8]) {
    let rt = runtime(engine, id);
    rt.messages_in += 1;
    rt.bytes_in += data.len() as u64;
    match nanollm::decode(data) {
        Ok(frame) => {
            let cells = [
                frame.msg_id.to_string(),
                frame.timestamp_ms.to_string(),
                nanollm::type_name(frame.kind),
                frame.payload.len().to_string(),
                frame.metadata.clone(),
                nanollm::payload_text(&frame),
            ];
            let row = runtime(engine, id).table.push_record(&cells);
            engine.world_mut().state_mut(id).content_rev += 1;
            let row = i64::try_from(row).unwrap_or(i64::MAX);
            let map = super::webserver::frame_map(&frame);
            engine.call(id, "onReceiveFrame", vec![dat(id), row.into(), map.into()]);
        }
        Err(error) => {
            runtime(engine, id).malformed_frames += 1;
            engine.world_mut().state_mut(id).warnings += 1;
            monitor(engine, id, Level::Warn, error.to_string());
        }
    }
}

/// Messages from one event, in order: rows for text, counters, and the callbacks.
fn received(engine: &mut Engine, id: NodeId, messages: Vec<WsMessage>) {
    let framed = is_framed(engine, id);
    if engine.world().callbacks_node(id).is_none() && !framed {
        // No callbacks DAT: the whole batch goes into the table under one lookup.
        let rt = runtime(engine, id);
        for message in messages {
            match message {
                WsMessage::Text(text) => {
                    rt.messages_in += 1;
                    rt.bytes_in += text.len() as u64;
                    rt.table.push(text);
                }
                WsMessage::Binary(data) => {
                    rt.messages_in += 1;
                    rt.bytes_in += data.len() as u64;
                }
                WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            }
        }
        engine.world_mut().state_mut(id).content_rev += 1;
        return;
    }
    // Readers see the table only between events, so one revision bump covers the batch.
    engine.world_mut().state_mut(id).content_rev += 1;
    for message in messages {
        match message {
            WsMessage::Text(text) => {
                let rt = runtime(engine, id);
                rt.messages_in += 1;
                rt.bytes_in += text.len() as u64;
                // The table and the script share the one string.
                let row = i64::try_from(rt.table.push(text.clone())).unwrap_or(i64::MAX);
                engine.call(id, "onReceiveText", vec![dat(id), row.into(), text.into()]);
            }
            WsMessage::Binary(data) if framed => received_frame(engine, id, &data),
            WsMessage::Binary(data) => {
                let rt = runtime(engine, id);
                rt.messages_in += 1;
                rt.bytes_in += data.len() as u64;
                let blob: Blob = data.to_vec();
                engine.call(
                    id,
                    "onReceiveBinary",
                    vec![dat(id), Dynamic::from_blob(blob)],
                );
            }
            WsMessage::Ping(data) => {
                let blob: Blob = data.to_vec();
                engine.call(id, "onReceivePing", vec![dat(id), Dynamic::from_blob(blob)]);
            }
            WsMessage::Pong(data) => {
                let blob: Blob = data.to_vec();
                engine.call(id, "onReceivePong", vec![dat(id), Dynamic::from_blob(blob)]);
            }
        }
    }
}

/// Marks the connection gone; returns whether it had been open (so onDisconnect should run).
fn disconnected(engine: &mut Engine, id: NodeId, failure: Option<String>) -> bool {
    let rt = runtime(engine, id);
    let was_connected = rt.link == Link::Connected;
    rt.link = Link::Reconnecting;
    rt.last_failure = failure;
    was_connected
}

pub fn extra_info(runtime: &Runtime, out: &mut Vec<(&'static str, f64)>) {
    out.extend([
        (
            "connected",
            f64::from(u8::from(runtime.link == Link::Connected)),
        ),
        ("messages_in", runtime.messages_in as f64),
        ("bytes_in", runtime.bytes_in as f64),
        ("messages_out", runtime.messages_out as f64),
        ("bytes_out", runtime.bytes_out as f64),
        ("reconnects", runtime.reconnects as f64),
        ("ping_rtt_ms", runtime.ping_rtt_ms),
        ("malformed_frames", runtime.malformed_frames as f64),
    ]);
}

pub fn badge(runtime: &Runtime) -> super::Badge {
    match runtime.link {
        Link::Idle => super::Badge::Idle,
        Link::Connecting => super::Badge::Connecting,
        Link::Connected => super::Badge::Connected,
        Link::Reconnecting => super::Badge::Reconnecting,
    }
}

/// Messages received so far (the GUI derives the message rate from it).
pub fn messages_in(runtime: &Runtime) -> u64 {
    runtime.messages_in
}

// ---- Script methods: dat.sendText / sendBinary / sendPing / sendPong ----

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Control frames carry at most 125 bytes (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// Bytes from a blob, a string, a byte-sized integer, or an array of those (TouchDesigner's
/// `sendBinary(23, 'TYPE', 255, b'..')`, written as one array).
fn to_bytes(value: &Dynamic, out: &mut Vec<u8>) -> Result<(), String> {
    if let Some(blob) = value.read_lock::<Blob>() {
        out.extend_from_slice(&blob);
    } else if let Ok(i) = value.as_int() {
        let byte = u8::try_from(i).map_err(|_| format!("{i} is not a byte (0 to 255)"))?;
        out.push(byte);
    } else if let Some(items) = value.read_lock::<Array>() {
        for item in items.iter() {
            to_bytes(item, out)?;
        }
    } else {
        out.extend_from_slice(to_cell(value).as_bytes());
    }
    Ok(())
}

fn bytes_of(value: &Dynamic) -> Result<bytes::Bytes, String> {
    let mut out = Vec::new();
    to_bytes(value, &mut out)?;
    Ok(out.into())
}

fn control_payload(method: &str, value: &Dynamic) -> Result<bytes::Bytes, String> {
    let data = bytes_of(value)?;
    if data.len() > MAX_CONTROL_PAYLOAD {
        return Err(format!(
            "{method}: a ping or pong carries at most {MAX_CONTROL_PAYLOAD} bytes, not {}",
            data.len()
        ));
    }
    Ok(data)
}

/// Queues `message` on `op`'s connection: the bytes sent, -1 when not connected, -2 when the
/// outgoing queue is full (reported on the node). Never waits: this runs on the cook thread.
fn send(
    op: &OpHandle,
    method: &str,
    message: impl FnOnce() -> Result<WsMessage, String>,
) -> RhaiResult<i64> {
    with_op(op, |world, id| {
        let kind = world.project.node(id).map(|n| n.kind);
        if kind != Some(super::OpKind::WebSocket) {
            return Err(format!(
                "{method}: \"{}\" is not a WebSocket DAT",
                world.node_name(id)
            ));
        }
        let message = message()?;
        let OpRuntime::WebSocket(rt) = &mut world.state_mut(id).runtime else {
            return Ok(NOT_CONNECTED);
        };
        match rt.send(message) {
            Ok(sent) => Ok(sent),
            Err(SendError::Closed) => Ok(NOT_CONNECTED),
            Err(SendError::Full) => {
                let first = !std::mem::replace(&mut rt.queue_full_reported, true);
                let text = format!(
                    "{method}: the outgoing queue is full ({} messages or {} MiB wait to be \
                     written; the server reads slower than the script sends): message dropped",
                    client::OUTGOING_QUEUE_CAPACITY,
                    client::OUTGOING_QUEUE_BYTES >> 20
                );
                if first {
                    world.report_warning(id, text);
                } else {
                    world.state_mut(id).warnings += 1;
                }
                Ok(QUEUE_FULL)
            }
        }
    })
}

/// Columns of the table in NanoLLM mode.
const FRAME_HEADING: &[&str] = &["msg_id", "timestamp", "type", "size", "metadata", "payload"];

fn is_framed(engine: &Engine, id: NodeId) -> bool {
    engine
        .world()
        .par_str(id, "format")
        .is_ok_and(|f| f == "nanollm")
}

/// `sendFramed(type, payload, metadata)`: a NanoLLM frame whose msg_id counts up per connection.
fn send_framed(
    op: &OpHandle,
    kind: &Dynamic,
    payload: &Dynamic,
    metadata: &str,
) -> Result<i64, Box<EvalAltResult>> {
    let (kind, bytes) = super::webserver::framed_parts(kind, payload)?;
    let msg_id = with_op(op, |world, id| match &world.state_mut(id).runtime {
        OpRuntime::WebSocket(rt) => Ok(rt.next_frame_id),
        _ => Err("sendFramed: not a WebSocket DAT".to_string()),
    })?;
    let frame = nanollm::encode(
        msg_id,
        crate::engine::unix_time_ms() as u64,
        kind,
        metadata,
        &bytes,
    );
    let sent = send(op, "sendFramed", || Ok(WsMessage::Binary(frame)))?;
    if sent >= 0 {
        with_op(op, |world, id| {
            if let OpRuntime::WebSocket(rt) = &mut world.state_mut(id).runtime {
                rt.next_frame_id += 1;
            }
            Ok(())
        })?;
    }
    Ok(sent)
}

pub fn register_script_api(engine: &mut rhai::Engine) {
    engine.register_fn(
        "sendFramed",
        |op: &mut OpHandle, kind: Dynamic, payload: Dynamic, metadata: &str| {
            send_framed(op, &kind, &payload, metadata)
        },
    );
    engine.register_fn("sendText", |op: &mut OpHandle, message: Dynamic| {
        send(op, "sendText", || Ok(WsMessage::Text(to_text(&message))))
    });
    engine.register_fn("sendBinary", |op: &mut OpHandle, contents: Dynamic| {
        send(op, "sendBinary", || {
            Ok(WsMessage::Binary(bytes_of(&contents)?))
        })
    });
    engine.register_fn("sendPing", |op: &mut OpHandle| {
        send(op, "sendPing", || Ok(WsMessage::Ping(bytes::Bytes::new())))
    });
    engine.register_fn("sendPing", |op: &mut OpHandle, contents: Dynamic| {
        send(op, "sendPing", || {
            Ok(WsMessage::Ping(control_payload("sendPing", &contents)?))
        })
    });
    engine.register_fn("sendPong", |op: &mut OpHandle, contents: Dynamic| {
        send(op, "sendPong", || {
            Ok(WsMessage::Pong(control_payload("sendPong", &contents)?))
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_resolve_to_urls() {
        let ok = |a: &str, p: u16| resolve_url(a, p).unwrap();
        assert_eq!(ok("localhost", 9980), "ws://localhost:9980/");
        assert_eq!(ok("example.com", 443), "wss://example.com:443/");
        assert_eq!(ok("127.0.0.1/feed?x=1", 80), "ws://127.0.0.1:80/feed?x=1");
        assert_eq!(ok("wss://h.example/a/b", 9980), "wss://h.example:9980/a/b");
        assert_eq!(ok("ws://h:1234/p", 443), "ws://h:1234/p");
        assert_eq!(ok("WSS://H:8443", 80), "wss://H:8443/");
        assert_eq!(ok("h:443", 80), "wss://h:443/");
        assert_eq!(ok("::1", 9), "ws://[::1]:9/");
        assert_eq!(ok("[::1]:7", 9), "ws://[::1]:7/");
        assert_eq!(ok("ws://[::1]/x", 9), "ws://[::1]:9/x");
        assert_eq!(ok("h?q=1", 9), "ws://h:9/?q=1");
        assert!(resolve_url("", 80).is_err());
        assert!(resolve_url("ftp://h", 80).is_err());
        assert!(resolve_url("ws:///x", 80).is_err());
        assert!(resolve_url("h:notaport", 80).is_err());
        assert!(resolve_url("bad host", 80).is_err());
    }

    #[test]
    fn binary_contents_accept_blobs_strings_bytes_and_arrays() {
        let array: Array = vec![
            Dynamic::from(23_i64),
            Dynamic::from("TY".to_string()),
            Dynamic::from_blob(vec![1, 0]),
        ];
        assert_eq!(
            bytes_of(&Dynamic::from_array(array)).unwrap().as_ref(),
            &[23, b'T', b'Y', 1, 0]
        );
        assert!(bytes_of(&Dynamic::from(256_i64)).is_err());
        assert!(control_payload("sendPing", &Dynamic::from("x".repeat(126))).is_err());
    }
}
