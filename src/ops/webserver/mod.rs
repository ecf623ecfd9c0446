//! Web Server DAT: HTTP and WebSocket server on one port whose behaviour lives in TouchDesigner's
//! callbacks; TLS, basic auth, limits and live client monitoring.

pub mod callbacks;
mod pars;
pub mod request;
mod script;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use self::pars::{ListenSpec, WebServerPars};
use self::request::{request_map, response_map, to_response};
use crate::engine::{
    Badge, CallOutcome, Engine, Level, NodeError, Operator, ScriptMethod, Value, World,
};
use crate::net::files::FileSettings;
pub use crate::net::server::ClientInfo;
use crate::net::server::{
    self, HttpRequest, HttpResponse, ServerEvent, ServerHandle, ServerLimits,
};
use crate::net::{NetEventKind, WsMessage, nanollm, tls};
use crate::ops::nanollm::frame_map;
use crate::project::NodeId;

pub struct WebServer;

#[derive(Debug, Default)]
pub struct Runtime {
    pars: WebServerPars,
    /// Increases with every start, so events from an older listener are ignored.
    run: u64,
    server: Option<ServerHandle>,
    spec: Option<ListenSpec>,
    limits: Arc<parking_lot::RwLock<ServerLimits>>,
    files: Arc<parking_lot::RwLock<Arc<FileSettings>>>,
    /// Next NanoLLM msg_id per client: ids increase per connection.
    framed_ids: HashMap<String, u64>,
    /// While onWebSocketReceivePing runs: the ping it answers. The pong already went back on its
    /// own (RFC 6455), so the template's `webSocketSendPong(client, data=data)` sends no second.
    answering_ping: Option<(String, Bytes)>,
    /// The warning about framing headers set by a callback was given.
    framing_warned: bool,
    malformed_frames: u64,
    http_requests: u64,
    messages_in: u64,
    bytes_in: u64,
    messages_out: u64,
    bytes_out: u64,
}

impl Runtime {
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.as_ref().map(|s| s.local_addr)
    }
}

impl Operator for WebServer {
    fn reconcile(&self, engine: &mut Engine, id: NodeId, _first: bool) {
        let pars = WebServerPars::read(engine.world(), id);
        let rt = engine.world_mut().runtime_mut::<Runtime>(id);
        *rt.limits.write() = pars.limits.clone();
        *rt.files.write() = Arc::new(pars.files.clone());
        let wanted = pars.listen.clone();
        rt.pars = pars;
        let wanted = match wanted {
            None => None,
            Some(Ok(spec)) => Some(spec),
            Some(Err(e)) => {
                self.stop(engine, id);
                engine.world_mut().set_status_error(id, Some(e));
                return;
            }
        };
        let world = engine.world_mut();
        let rt = world.runtime_mut::<Runtime>(id);
        if wanted == rt.spec && (wanted.is_none() || rt.server.is_some()) {
            if wanted.is_none() {
                world.set_status_error(id, None);
            }
            return;
        }
        self.stop(engine, id);
        match wanted {
            Some(spec) => start(engine, id, spec),
            None => engine.world_mut().set_status_error(id, None),
        }
    }

    fn pulse(&self, engine: &mut Engine, id: NodeId, token: &str) {
        let active = engine
            .world()
            .runtime::<Runtime>(id)
            .is_some_and(|rt| rt.pars.active);
        if token == "restart" && active {
            self.stop(engine, id);
            self.reconcile(engine, id, false);
        }
    }

    fn stop(&self, engine: &mut Engine, id: NodeId) {
        let world = engine.world_mut();
        let rt = world.runtime_mut::<Runtime>(id);
        rt.spec = None;
        if let Some(server) = rt.server.take() {
            let addr = server.local_addr;
            server.shutdown();
            world.log(
                Level::Info,
                Some(id),
                format!("stopped listening on {addr}"),
            );
            engine.call(id, "onServerStop", vec![Value::Op(id)]);
        }
    }

    fn handle_event(&self, engine: &mut Engine, id: NodeId, run: u64, event: NetEventKind) {
        if let NetEventKind::Server(event) = event {
            handle_event(engine, id, run, event);
        }
    }

    fn info(&self, world: &World, id: NodeId, out: &mut Vec<(&'static str, f64)>) {
        let Some(rt) = world.runtime::<Runtime>(id) else {
            return;
        };
        let connections = rt.server.as_ref().map_or(0, ServerHandle::connection_count);
        out.extend([
            ("server_running", f64::from(u8::from(rt.server.is_some()))),
            ("websocket_connections", connections as f64),
            ("port", rt.local_addr().map_or(0.0, |a| f64::from(a.port()))),
            ("http_requests", rt.http_requests as f64),
            ("malformed_frames", rt.malformed_frames as f64),
            ("messages_in", rt.messages_in as f64),
            ("bytes_in", rt.bytes_in as f64),
            ("messages_out", rt.messages_out as f64),
            ("bytes_out", rt.bytes_out as f64),
        ]);
    }

    fn badge(&self, world: &World, id: NodeId) -> Badge {
        match world.runtime::<Runtime>(id) {
            Some(rt) if rt.server.is_some() => Badge::Listening,
            _ => Badge::Idle,
        }
    }

    fn messages_in(&self, world: &World, id: NodeId) -> u64 {
        world
            .runtime::<Runtime>(id)
            .map_or(0, |rt| rt.messages_in + rt.http_requests)
    }

    fn close_client(&self, world: &mut World, id: NodeId, client: &str) -> Result<(), String> {
        close_client(world, id, client)
    }

    fn script_methods(&self) -> &'static [ScriptMethod] {
        script::METHODS
    }

    fn callbacks_template(&self) -> Option<&'static str> {
        Some(callbacks::DEFAULT_CALLBACKS)
    }
}

fn start(engine: &mut Engine, id: NodeId, spec: ListenSpec) {
    let tls = match &spec.tls {
        Some((certificate, key, password)) => {
            match tls::server_config(certificate, key, password) {
                Ok(config) => Some(config),
                Err(e) => {
                    engine.world_mut().set_status_error(id, Some(e));
                    return;
                }
            }
        }
        None => None,
    };
    let net = engine.net().clone();
    let world = engine.world_mut();
    let rt = world.runtime_mut::<Runtime>(id);
    rt.run += 1;
    let config = server::ServerConfig {
        node: id,
        run: rt.run,
        bind: spec.bind,
        tls,
        limits: rt.limits.clone(),
        files: rt.files.clone(),
    };
    match server::start(config, net.events, &net.rt, &net.tasks) {
        Ok(handle) => {
            let scheme = if spec.tls.is_some() { "https" } else { "http" };
            let addr = handle.local_addr;
            let rt = world.runtime_mut::<Runtime>(id);
            rt.server = Some(handle);
            rt.spec = Some(spec);
            world.set_status_error(id, None);
            world.log(
                Level::Info,
                Some(id),
                format!("listening on {scheme}://{addr}"),
            );
            engine.call(id, "onServerStart", vec![Value::Op(id)]);
        }
        Err(e) => world.set_status_error(id, Some(e)),
    }
}

fn error_response() -> HttpResponse {
    HttpResponse::status(http::StatusCode::INTERNAL_SERVER_ERROR)
}

/// The answer when no callback decides: empty, so the static root (if any) may still answer.
fn unanswered(status: u16) -> HttpResponse {
    HttpResponse {
        status,
        reason: None,
        headers: Vec::new(),
        body: Bytes::new(),
    }
}

/// A received message to its callback.
fn message_in(engine: &mut Engine, id: NodeId, client: String, message: WsMessage) {
    let rt = engine.world_mut().runtime_mut::<Runtime>(id);
    rt.messages_in += 1;
    rt.bytes_in += message.len() as u64;
    let framed = rt.pars.framed;
    let (callback, data) = match message {
        WsMessage::Text(text) => ("onWebSocketReceiveText", Value::Str(text)),
        WsMessage::Binary(b) if framed => match nanollm::decode(&b) {
            Ok(frame) => ("onWebSocketReceiveFrame", frame_map(&frame)),
            Err(e) => {
                rt.malformed_frames += 1;
                engine
                    .world_mut()
                    .report_warning(id, format!("{client}: {e}"));
                return;
            }
        },
        WsMessage::Binary(b) => ("onWebSocketReceiveBinary", Value::Bytes(b)),
        WsMessage::Ping(b) => ("onWebSocketReceivePing", Value::Bytes(b)),
        WsMessage::Pong(b) => ("onWebSocketReceivePong", Value::Bytes(b)),
    };
    let is_ping = callback == "onWebSocketReceivePing";
    if let (true, Value::Bytes(payload)) = (is_ping, &data) {
        rt.answering_ping = Some((client.clone(), payload.clone()));
    }
    engine.call(id, callback, vec![Value::Op(id), client.into(), data]);
    if is_ping {
        engine.world_mut().runtime_mut::<Runtime>(id).answering_ping = None;
    }
}

fn handle_event(engine: &mut Engine, id: NodeId, run: u64, event: ServerEvent) {
    let rt = engine.world_mut().runtime_mut::<Runtime>(id);
    if rt.run != run {
        return; // From a listener that has since stopped; dropping a reply sender answers 503.
    }
    match event {
        ServerEvent::HttpRequest { request, reply } => {
            rt.http_requests += 1;
            let response = ask_callback(engine, id, "onHTTPRequest", &request, (404, "Not Found"));
            answer(engine, id, &request, reply, response);
        }
        ServerEvent::WsUpgrade { request, reply } => {
            let given = (101, "Switching Protocols");
            let response = ask_callback(engine, id, "onWebSocketUpgrade", &request, given);
            answer(engine, id, &request, reply, response);
        }
        ServerEvent::WsOpen { client, uri } => {
            engine.call(
                id,
                "onWebSocketOpen",
                vec![Value::Op(id), client.into(), uri.into()],
            );
        }
        ServerEvent::WsMessage { client, message } => {
            let len = message.len();
            // What its callback sends is this client's doing: a queue it fills past its
            // high-water mark holds back this client's reader, not every reader.
            if let Some(server) = &rt.server {
                server.set_producer(Some(&client));
            }
            message_in(engine, id, client, message);
            // Given back to the server that read it, not to one a callback restarted (a new one
            // starts with no producer).
            if let Some(rt) = engine.world().runtime::<Runtime>(id)
                && rt.run == run
                && let Some(server) = &rt.server
            {
                server.set_producer(None);
                server.handled(len);
            }
        }
        ServerEvent::WsClose {
            client,
            code,
            reason,
        } => {
            rt.framed_ids.remove(&client);
            if let Some(code) = code.filter(|c| ![1000, 1001, 1005].contains(c)) {
                let detail = if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                };
                engine.world_mut().log(
                    Level::Info,
                    Some(id),
                    format!("{client} closed with {code}{detail}"),
                );
            }
            engine.call(id, "onWebSocketClose", vec![Value::Op(id), client.into()]);
        }
        ServerEvent::Warning { text } => engine.world_mut().report_warning(id, text),
        ServerEvent::Failed { error } => {
            rt.server = None;
            rt.spec = None;
            engine.world_mut().set_status_error(id, Some(error));
        }
    }
}

/// Runs `callback` with the request and a response dict starting at `given` (status, reason),
/// and turns what it returns into the answer. A 101 is an answer only to an upgrade.
fn ask_callback(
    engine: &mut Engine,
    id: NodeId,
    callback: &str,
    request: &HttpRequest,
    given: (u16, &str),
) -> HttpResponse {
    let args = vec![
        Value::Op(id),
        request_map(request),
        response_map(given.0, given.1),
    ];
    match engine.call(id, callback, args) {
        CallOutcome::Missing => unanswered(given.0),
        CallOutcome::Done(value) => match to_response(value, callback, given, given.0 == 101) {
            Ok(answer) => {
                if !answer.dropped.is_empty() {
                    warn_framing_once(engine, id, callback, &answer.dropped);
                }
                answer.response
            }
            Err(e) => {
                report(engine, id, e);
                error_response()
            }
        },
        CallOutcome::Failed(_) => error_response(),
    }
}

/// Said once per server: the framing headers a callback set were replaced with the true ones.
fn warn_framing_once(engine: &mut Engine, id: NodeId, callback: &str, dropped: &[String]) {
    let rt = engine.world_mut().runtime_mut::<Runtime>(id);
    if std::mem::replace(&mut rt.framing_warned, true) {
        return;
    }
    engine.world_mut().report_warning(
        id,
        format!(
            "{callback} set {}: the server writes these from the body it sends, so they were \
             replaced (said once)",
            dropped.join(", ")
        ),
    );
}

fn report(engine: &mut Engine, id: NodeId, text: String) {
    let script_node = engine.world().callbacks_node(id);
    engine.world_mut().report_error(
        id,
        NodeError {
            text,
            script_node,
            line: None,
            time_ms: crate::engine::unix_time_ms(),
        },
    );
}

fn answer(
    engine: &mut Engine,
    id: NodeId,
    request: &HttpRequest,
    reply: tokio::sync::oneshot::Sender<HttpResponse>,
    response: HttpResponse,
) {
    if reply.send(response).is_err() {
        // The listener gave up waiting and already answered 503.
        let timeout_ms = engine
            .world()
            .runtime::<Runtime>(id)
            .map_or(0, |rt| rt.pars.limits.request_timeout_ms);
        report(
            engine,
            id,
            format!(
                "{} {} took longer than the request timeout ({timeout_ms} ms); the client got 503",
                request.method, request.path
            ),
        );
    }
}

/// The Web Server DAT's connected WebSocket clients (empty for other nodes).
pub fn clients(world: &World, id: NodeId) -> Vec<ClientInfo> {
    world
        .runtime::<Runtime>(id)
        .and_then(|rt| rt.server.as_ref())
        .map(ServerHandle::clients)
        .unwrap_or_default()
}

/// Closes one client with a normal close frame.
pub fn close_client(world: &mut World, id: NodeId, client: &str) -> Result<(), String> {
    let server = world
        .runtime::<Runtime>(id)
        .and_then(|rt| rt.server.as_ref())
        .ok_or("the server is not running")?;
    server
        .close(client, 1000, "closed by the server")
        .map_err(|_| format!("no client {client}"))
}
