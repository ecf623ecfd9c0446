//! WebSocket DAT: a client whose received messages fill a FIFO table, with TouchDesigner's
//! callbacks, reconnect with backoff, headers and subprotocols.

pub mod callbacks;
mod pars;
mod script;

pub use self::pars::resolve_url;
use self::pars::{ConnectSettings, WebSocketPars};
use crate::engine::fifo_table::FifoTable;
use crate::engine::{Badge, DatRef, Engine, Level, Link, Operator, ScriptMethod, Value, World};
use crate::net::client::{self, ClientEvent, ClientHandle, SendError};
use crate::net::{NetEventKind, WsMessage, nanollm};
use crate::ops::nanollm::frame_map;
use crate::project::NodeId;

pub struct WebSocket;

#[derive(Debug)]
pub struct Runtime {
    pars: WebSocketPars,
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
    /// While onReceivePing runs: the ping it answers. The pong went back on its own (RFC 6455),
    /// so the template's `dat.sendPong(contents)` sends no second one.
    answering_ping: Option<bytes::Bytes>,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            pars: WebSocketPars::default(),
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
            answering_ping: None,
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

fn runtime(engine: &mut Engine, id: NodeId) -> &mut Runtime {
    engine.world_mut().runtime_mut::<Runtime>(id)
}

fn headers_seen(world: &World, id: NodeId) -> Option<(NodeId, u64)> {
    let headers = world.input_node(id, "headers")?;
    Some((headers, world.state(headers).map_or(0, |s| s.content_rev)))
}

/// Applies the table parameters at once (no reconnect) and restarts the connection only when a
/// connection parameter changed.
fn reconcile(engine: &mut Engine, id: NodeId) {
    let pars = WebSocketPars::read(engine.world(), id);
    let seen = headers_seen(engine.world(), id);
    let active = pars.active;
    let rt = runtime(engine, id);
    rt.headers_seen = seen;
    let before = (rt.table.num_rows(), rt.table.bytes_column());
    rt.table.set_max_lines(pars.max_lines);
    rt.table.set_bytes_column(pars.bytes_column);
    rt.table
        .set_record_heading(if pars.framed { FRAME_HEADING } else { &[] });
    rt.pars = pars;
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

fn pulse(engine: &mut Engine, id: NodeId, token: &str) {
    match token {
        "clear" => {
            runtime(engine, id).table.clear();
            engine.world_mut().state_mut(id).content_rev += 1;
        }
        "reset" => {
            if !runtime(engine, id).pars.active {
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
            reconcile(engine, id);
        }
        _ => {}
    }
}

/// Notices edits to the headers DAT (they reconnect only if a header actually changed).
fn cook(engine: &mut Engine, id: NodeId) -> bool {
    let seen = headers_seen(engine.world(), id);
    let changed = engine
        .world()
        .runtime::<Runtime>(id)
        .is_some_and(|rt| rt.headers_seen != seen);
    if changed {
        reconcile(engine, id);
    }
    false
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

fn dat(id: NodeId) -> Value {
    Value::Op(id)
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

fn handle_event(engine: &mut Engine, id: NodeId, run: u64, event: ClientEvent) {
    let current = engine
        .world()
        .runtime::<Runtime>(id)
        .is_some_and(|rt| rt.run == run && rt.client.is_some());
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
            engine.call(
                id,
                "onReceiveFrame",
                vec![dat(id), row.into(), frame_map(&frame)],
            );
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
    let framed = runtime(engine, id).pars.framed;
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
                    rt.table.push_binary(data);
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
                // In the table too, so nothing a server sends is invisible.
                rt.table.push_binary(data.clone());
                engine.call(id, "onReceiveBinary", vec![dat(id), Value::Bytes(data)]);
            }
            WsMessage::Ping(data) => {
                runtime(engine, id).answering_ping = Some(data.clone());
                engine.call(id, "onReceivePing", vec![dat(id), Value::Bytes(data)]);
                runtime(engine, id).answering_ping = None;
            }
            WsMessage::Pong(data) => {
                engine.call(id, "onReceivePong", vec![dat(id), Value::Bytes(data)]);
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

impl Operator for WebSocket {
    /// Applies the table parameters at once (no reconnect) and restarts the connection only
    /// when a connection parameter changed.
    fn reconcile(&self, engine: &mut Engine, id: NodeId, _first: bool) {
        reconcile(engine, id);
    }

    fn pulse(&self, engine: &mut Engine, id: NodeId, token: &str) {
        pulse(engine, id, token);
    }

    fn cook(&self, engine: &mut Engine, id: NodeId) -> bool {
        cook(engine, id)
    }

    fn stop(&self, engine: &mut Engine, id: NodeId) {
        stop_with(engine, id, "stopped");
    }

    fn handle_event(&self, engine: &mut Engine, id: NodeId, run: u64, event: NetEventKind) {
        if let NetEventKind::Client(event) = event {
            handle_event(engine, id, run, event);
        }
    }

    fn info(&self, world: &World, id: NodeId, out: &mut Vec<(&'static str, f64)>) {
        let Some(rt) = world.runtime::<Runtime>(id) else {
            return;
        };
        out.extend([
            ("connected", f64::from(u8::from(rt.link == Link::Connected))),
            ("messages_in", rt.messages_in as f64),
            ("bytes_in", rt.bytes_in as f64),
            ("messages_out", rt.messages_out as f64),
            ("bytes_out", rt.bytes_out as f64),
            ("reconnects", rt.reconnects as f64),
            ("ping_rtt_ms", rt.ping_rtt_ms),
            ("malformed_frames", rt.malformed_frames as f64),
        ]);
    }

    fn badge(&self, world: &World, id: NodeId) -> Badge {
        world
            .runtime::<Runtime>(id)
            .map_or(Link::Idle, |rt| rt.link)
            .badge()
    }

    fn messages_in(&self, world: &World, id: NodeId) -> u64 {
        world.runtime::<Runtime>(id).map_or(0, |rt| rt.messages_in)
    }

    fn dat<'w>(&self, world: &'w World, id: NodeId) -> Option<DatRef<'w>> {
        world
            .runtime::<Runtime>(id)
            .map(|rt| DatRef::Fifo(rt.table()))
    }

    fn script_methods(&self) -> &'static [ScriptMethod] {
        script::METHODS
    }

    fn callbacks_template(&self) -> Option<&'static str> {
        Some(callbacks::DEFAULT_CALLBACKS)
    }
}

/// Columns of the table in NanoLLM mode.
const FRAME_HEADING: &[&str] = &["msg_id", "timestamp", "type", "size", "metadata", "payload"];
