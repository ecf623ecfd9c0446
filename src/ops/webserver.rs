//! Web Server DAT: HTTP and WebSocket server on one port whose behaviour lives in TouchDesigner's
//! callbacks; TLS, basic auth, limits and live client monitoring.

use super::{Input, ParDef, ParKind, common_pars};

pub const PAGE: &str = "Web Server";
pub const LIMITS_PAGE: &str = "Limits";
pub const FILES_PAGE: &str = "Files";

pub const PARAMS: &[ParDef] = &{
    let common = common_pars!();
    [
        ParDef {
            token: "active",
            label: "Active",
            page: PAGE,
            kind: ParKind::Toggle(true),
            help: "Starts and stops the server.",
        },
        ParDef {
            token: "restart",
            label: "Restart",
            page: PAGE,
            kind: ParKind::Pulse,
            help: "Restarts the server if it is active.",
        },
        ParDef {
            token: "port",
            label: "Port",
            page: PAGE,
            kind: ParKind::Int {
                default: 9980,
                min: 0,
                max: 65535,
            },
            help: "TCP port to listen on (0 picks a free one; the info panel shows which).",
        },
        ParDef {
            token: "localaddress",
            label: "Local Address",
            page: PAGE,
            kind: ParKind::Str(""),
            help: "Interface address to listen on; blank listens on all interfaces.",
        },
        ParDef {
            token: "secure",
            label: "Secure (TLS)",
            page: PAGE,
            kind: ParKind::Toggle(false),
            help: "Serve HTTPS and WSS.",
        },
        ParDef {
            token: "privatekey",
            label: "Private Key File Path",
            page: PAGE,
            kind: ParKind::File {
                extensions: &["pem", "key"],
            },
            help: "PEM private key: PKCS#8, PKCS#1 or SEC1, or password-encrypted PKCS#8.",
        },
        ParDef {
            token: "certificate",
            label: "Certificate File Path",
            page: PAGE,
            kind: ParKind::File {
                extensions: &["pem", "crt", "cer"],
            },
            help: "PEM certificate chain, leaf first.",
        },
        ParDef {
            token: "password",
            label: "Certificate Password",
            page: PAGE,
            kind: ParKind::Password,
            help: "Password of an encrypted private key. Write $NAME to read it from the environment.",
        },
        ParDef {
            token: "callbacks",
            label: "Callbacks DAT",
            page: PAGE,
            kind: ParKind::Op(Input::Callbacks),
            help: "Text DAT holding the callbacks (same as the wire into the callbacks input).",
        },
        ParDef {
            token: "format",
            label: "Message Format",
            page: PAGE,
            kind: ParKind::Menu {
                default: "raw",
                items: &[("raw", "Raw"), ("nanollm", "NanoLLM (32-byte header)")],
            },
            help: "NanoLLM: binary messages carry NanoLLM's header and reach onWebSocketReceiveFrame \
                   decoded; webSocketSendFramed sends them.",
        },
        ParDef {
            token: "maxconnections",
            label: "Max Connections",
            page: LIMITS_PAGE,
            kind: ParKind::Int {
                default: 1024,
                min: 1,
                max: 100_000,
            },
            help: "Connections served at once; further ones wait to be accepted.",
        },
        ParDef {
            token: "maxbody",
            label: "Max Request Body (bytes)",
            page: LIMITS_PAGE,
            kind: ParKind::Int {
                default: 16 * 1024 * 1024,
                min: 0,
                max: 1 << 31,
            },
            help: "Larger request bodies are refused with 413.",
        },
        ParDef {
            token: "maxmessage",
            label: "Max WebSocket Message (bytes)",
            page: LIMITS_PAGE,
            kind: ParKind::Int {
                default: 16 * 1024 * 1024,
                min: 1,
                max: 1 << 31,
            },
            help: "Larger messages close the connection with 1009.",
        },
        ParDef {
            token: "requesttimeout",
            label: "Request Timeout (ms)",
            page: LIMITS_PAGE,
            kind: ParKind::Int {
                default: 5000,
                min: 1,
                max: 600_000,
            },
            help: "A request whose callback has not answered by then gets 503.",
        },
        ParDef {
            token: "headertimeout",
            label: "Header Timeout (ms)",
            page: LIMITS_PAGE,
            kind: ParKind::Int {
                default: 10_000,
                min: 1,
                max: 600_000,
            },
            help: "A client must send its TLS handshake and request headers within this time, and may not pause longer while sending a body (408).",
        },
        ParDef {
            token: "pinginterval",
            label: "Ping Interval (ms)",
            page: LIMITS_PAGE,
            kind: ParKind::Int {
                default: 30_000,
                min: 0,
                max: 3_600_000,
            },
            help: "Ping WebSocket clients this often and drop those that stop answering (0: never).",
        },
        ParDef {
            token: "staticroot",
            label: "Static Root Folder",
            page: FILES_PAGE,
            kind: ParKind::Folder,
            help: "Files served for GET and HEAD when onHTTPRequest leaves the answer at its 404 default.",
        },
        ParDef {
            token: "indexfile",
            label: "Index File",
            page: FILES_PAGE,
            kind: ParKind::Str("index.html"),
            help: "File served for a folder path such as /.",
        },
        ParDef {
            token: "uploadfolder",
            label: "Upload Folder",
            page: FILES_PAGE,
            kind: ParKind::Folder,
            help: "POST or PUT bodies to the upload prefix are saved here (request.savedPath names the file).",
        },
        ParDef {
            token: "uploadprefix",
            label: "Upload Prefix",
            page: FILES_PAGE,
            kind: ParKind::Str("/uploads/"),
            help: "Request paths under this prefix are uploads.",
        },
        common[0],
        common[1],
        common[2],
        common[3],
    ]
};

pub const DEFAULT_CALLBACKS: &str = r#"// Web Server DAT callbacks.
// dat      - the Web Server DAT
// request  - method, uri (path), pars (query), clientAddress, serverAddress, data (body), and
//            every header as a key: request.Authorization, request["Content-Type"]
// response - statusCode (404 unless set), statusReason, data; any other key is sent as a header.
// onHTTPRequest must return the response.

fn onHTTPRequest(dat, request, response) {
    response.statusCode = 200;
    response.statusReason = "OK";
    response.data = "<b>datpatch: </b>" + dat.name;
    response
}

// Runs before a WebSocket upgrade (datpatch's own). Leave statusCode at 101 to accept; any other
// status refuses with that answer. response["Sec-WebSocket-Protocol"] picks a subprotocol.
// fn onWebSocketUpgrade(dat, request, response) {
//     response
// }

fn onWebSocketOpen(dat, client, uri) {
}

fn onWebSocketClose(dat, client) {
}

fn onWebSocketReceiveText(dat, client, data) {
    dat.webSocketSendText(client, data);
}

fn onWebSocketReceiveBinary(dat, client, data) {
    dat.webSocketSendBinary(client, data);
}

fn onWebSocketReceivePing(dat, client, data) {
    // The pong goes back automatically (RFC 6455 requires it).
}

fn onWebSocketReceivePong(dat, client, data) {
}

fn onServerStart(dat) {
}

fn onServerStop(dat) {
}
"#;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use rhai::{Array, Blob, Dynamic, ImmutableString, Map};
use subtle::ConstantTimeEq;

use crate::engine::{CallOutcome, Engine, Level, OpRuntime, World};
use crate::net::files::FileSettings;
pub use crate::net::server::ClientInfo;
use crate::net::server::{
    self, HttpRequest, HttpResponse, SendError, ServerEvent, ServerHandle, ServerLimits,
};
use crate::net::{WsMessage, nanollm, tls};
use crate::project::NodeId;
use crate::script::{OpHandle, to_cell, to_text, with_op};

/// What the listener was started with; a change restarts it, anything else does not.
#[derive(Debug, Clone, PartialEq)]
struct ListenSpec {
    bind: SocketAddr,
    /// (certificate, private key, password), resolved.
    tls: Option<(std::path::PathBuf, std::path::PathBuf, String)>,
}

#[derive(Debug, Default)]
pub struct Runtime {
    /// Increases with every start, so events from an older listener are ignored.
    run: u64,
    server: Option<ServerHandle>,
    spec: Option<ListenSpec>,
    limits: Arc<parking_lot::RwLock<ServerLimits>>,
    files: Arc<parking_lot::RwLock<Arc<FileSettings>>>,
    /// Next NanoLLM msg_id per client: ids increase per connection.
    framed_ids: std::collections::HashMap<String, u64>,
    pub malformed_frames: u64,
    pub http_requests: u64,
    pub messages_in: u64,
    pub bytes_in: u64,
    pub messages_out: u64,
    pub bytes_out: u64,
}

impl Runtime {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(|s| s.local_addr)
    }
}

fn runtime(world: &mut World, id: NodeId) -> &mut Runtime {
    let state = world.state_mut(id);
    if !matches!(state.runtime, OpRuntime::WebServer(_)) {
        state.runtime = OpRuntime::WebServer(Runtime::default());
    }
    match &mut state.runtime {
        OpRuntime::WebServer(rt) => rt,
        _ => unreachable!("set just above"),
    }
}

fn runtime_ref(world: &World, id: NodeId) -> Option<&Runtime> {
    match world.state(id).map(|s| &s.runtime) {
        Some(OpRuntime::WebServer(rt)) => Some(rt),
        _ => None,
    }
}

fn limits_from(world: &World, id: NodeId) -> ServerLimits {
    let int = |token| world.par_int(id, token).max(0) as u64;
    ServerLimits {
        max_connections: int("maxconnections").max(1) as usize,
        max_body_bytes: int("maxbody"),
        max_message_bytes: int("maxmessage").max(1) as usize,
        request_timeout_ms: int("requesttimeout").max(1),
        header_timeout_ms: int("headertimeout").max(1),
        ping_interval_ms: int("pinginterval"),
    }
}

fn files_from(world: &World, id: NodeId) -> FileSettings {
    let folder = |token| {
        let set = world.par_str(id, token).is_ok_and(|v| !v.trim().is_empty());
        if set {
            world.file_par(id, token).ok()
        } else {
            None
        }
    };
    FileSettings {
        static_root: folder("staticroot"),
        index_file: world.par_str(id, "indexfile").unwrap_or_default(),
        upload_dir: folder("uploadfolder"),
        upload_prefix: world.par_str(id, "uploadprefix").unwrap_or_default(),
    }
}

fn listen_spec(world: &World, id: NodeId) -> Result<ListenSpec, String> {
    let address = world.par_str(id, "localaddress")?;
    let ip: IpAddr = if address.trim().is_empty() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        address
            .trim()
            .parse()
            .map_err(|_| format!("Local Address \"{address}\" is not an IP address"))?
    };
    let port = u16::try_from(world.par_int(id, "port"))
        .map_err(|_| "Port must be 0..65535".to_string())?;
    let tls = if world.par_bool(id, "secure") {
        Some((
            world.file_par(id, "certificate")?,
            world.file_par(id, "privatekey")?,
            world.par_str(id, "password")?,
        ))
    } else {
        None
    };
    Ok(ListenSpec {
        bind: SocketAddr::new(ip, port),
        tls,
    })
}

pub fn reconcile(engine: &mut Engine, id: NodeId, _first: bool) {
    let world = engine.world_mut();
    let limits = limits_from(world, id);
    *runtime(world, id).limits.write() = limits;
    let files = files_from(world, id);
    *runtime(world, id).files.write() = Arc::new(files);
    let wanted = if world.par_bool(id, "active") {
        match listen_spec(world, id) {
            Ok(spec) => Some(spec),
            Err(e) => {
                stop(engine, id);
                engine.world_mut().set_status_error(id, Some(e));
                return;
            }
        }
    } else {
        None
    };
    let world = engine.world_mut();
    let running = runtime(world, id).spec.clone();
    if wanted == running && (wanted.is_none() || runtime(world, id).server.is_some()) {
        if wanted.is_none() {
            world.set_status_error(id, None);
        }
        return;
    }
    stop(engine, id);
    if let Some(spec) = wanted {
        start(engine, id, spec);
    } else {
        engine.world_mut().set_status_error(id, None);
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
    let rt = runtime(world, id);
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
            let rt = runtime(world, id);
            rt.server = Some(handle);
            rt.spec = Some(spec);
            world.set_status_error(id, None);
            world.log(
                Level::Info,
                Some(id),
                format!("listening on {scheme}://{addr}"),
            );
            let dat = Dynamic::from(OpHandle { id });
            engine.call(id, "onServerStart", vec![dat]);
        }
        Err(e) => world.set_status_error(id, Some(e)),
    }
}

pub fn pulse(engine: &mut Engine, id: NodeId, token: &str) {
    if token == "restart" && engine.world().par_bool(id, "active") {
        stop(engine, id);
        reconcile(engine, id, false);
    }
}

pub fn stop(engine: &mut Engine, id: NodeId) {
    let world = engine.world_mut();
    let rt = runtime(world, id);
    rt.spec = None;
    if let Some(server) = rt.server.take() {
        let addr = server.local_addr;
        server.shutdown();
        world.log(
            Level::Info,
            Some(id),
            format!("stopped listening on {addr}"),
        );
        engine.call(id, "onServerStop", vec![Dynamic::from(OpHandle { id })]);
    }
}

/// A header name as it is usually written (`content-type` gives `Content-Type`), including the
/// irregular ones scripts look for (`Sec-WebSocket-Protocol`, `ETag`, `WWW-Authenticate`).
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| match part {
            "websocket" => "WebSocket".to_string(),
            "etag" => "ETag".to_string(),
            "www" | "te" | "dnt" => part.to_ascii_uppercase(),
            _ => {
                let mut chars = part.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                    None => String::new(),
                }
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Body as a string when it is UTF-8, else as a blob (as TouchDesigner hands str or bytes).
fn body_value(body: &Bytes) -> Dynamic {
    match std::str::from_utf8(body) {
        Ok(text) => text.into(),
        Err(_) => Dynamic::from_blob(body.to_vec()),
    }
}

/// The `request` map of DESIGN §4: fields, then every header under its usual spelling
/// (`Content-Type`) and in lower case (`content-type`). Public for the fuzz targets only.
#[doc(hidden)]
pub fn request_map(request: &HttpRequest) -> Map {
    let mut map = Map::new();
    map.insert("method".into(), request.method.clone().into());
    map.insert("uri".into(), request.path.clone().into());
    let mut pars = Map::new();
    for (key, value) in form_urlencoded::parse(request.query.as_bytes()) {
        pars.insert(key.as_ref().into(), value.into_owned().into());
    }
    map.insert("pars".into(), pars.into());
    map.insert("clientAddress".into(), request.client_addr.clone().into());
    map.insert("serverAddress".into(), request.server_addr.clone().into());
    map.insert("data".into(), body_value(&request.body));
    if let Some(saved) = &request.saved_path {
        map.insert("savedPath".into(), saved.display().to_string().into());
    }
    for (name, value) in &request.headers {
        for key in [title_case(name), name.clone()] {
            if matches!(
                key.as_str(),
                "method"
                    | "uri"
                    | "pars"
                    | "clientAddress"
                    | "serverAddress"
                    | "data"
                    | "savedPath"
            ) {
                continue;
            }
            match map.get_mut(key.as_str()) {
                // Repeated headers are joined, as HTTP allows.
                Some(existing) => *existing = format!("{}, {value}", to_cell(existing)).into(),
                None => {
                    map.insert(key.into(), value.clone().into());
                }
            }
        }
    }
    map
}

fn response_map(status: u16, reason: &str) -> Map {
    let mut map = Map::new();
    map.insert("statusCode".into(), (status as i64).into());
    map.insert("statusReason".into(), reason.into());
    map.insert("data".into(), "".into());
    map
}

/// Turns the callback's returned map into an answer, or says why it cannot.
fn to_response(value: Dynamic, callback: &str) -> Result<HttpResponse, String> {
    let type_name = value.type_name();
    let Some(map) = value.try_cast::<Map>() else {
        return Err(format!(
            "{callback} returned {type_name}, not the response map (end it with `response`)"
        ));
    };
    let mut response = HttpResponse {
        status: 404,
        reason: None,
        headers: Vec::new(),
        body: Bytes::new(),
    };
    let mut has_content_type = false;
    for (key, value) in map {
        match key.as_str() {
            "statusCode" => {
                let status = value
                    .as_int()
                    .ok()
                    .or_else(|| to_cell(&value).trim().parse().ok())
                    .filter(|s| (100..=999).contains(s))
                    .ok_or_else(|| {
                        format!("statusCode {value} is not an HTTP status (100..999)")
                    })?;
                response.status = status as u16;
            }
            "statusReason" => response.reason = Some(to_cell(&value)).filter(|r| !r.is_empty()),
            "data" => {
                response.body = match value.clone().try_cast::<Blob>() {
                    Some(blob) => Bytes::from(blob),
                    None => Bytes::from(to_cell(&value)),
                }
            }
            name => {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(format!(
                        "response key \"{name}\" is not a valid header name"
                    ));
                }
                has_content_type |= name.eq_ignore_ascii_case("content-type");
                response.headers.push((name.to_string(), to_cell(&value)));
            }
        }
    }
    if !has_content_type && !response.body.is_empty() {
        let guess = if std::str::from_utf8(&response.body).is_ok() {
            "text/html; charset=utf-8"
        } else {
            "application/octet-stream"
        };
        response.headers.push(("Content-Type".into(), guess.into()));
    }
    Ok(response)
}

fn error_response() -> HttpResponse {
    HttpResponse::status(http::StatusCode::INTERNAL_SERVER_ERROR)
}

pub fn handle_event(engine: &mut Engine, id: NodeId, run: u64, event: ServerEvent) {
    if runtime(engine.world_mut(), id).run != run {
        return; // From a listener that has since stopped; dropping a reply sender answers 503.
    }
    let dat = || Dynamic::from(OpHandle { id });
    match event {
        ServerEvent::HttpRequest { request, reply } => {
            runtime(engine.world_mut(), id).http_requests += 1;
            let args = vec![
                dat(),
                request_map(&request).into(),
                response_map(404, "Not Found").into(),
            ];
            let response = match engine.call(id, "onHTTPRequest", args) {
                // Left empty so the static root (if any) may still answer.
                CallOutcome::Missing => HttpResponse {
                    status: 404,
                    reason: None,
                    headers: Vec::new(),
                    body: Bytes::new(),
                },
                CallOutcome::Done(value) => {
                    to_response(value, "onHTTPRequest").unwrap_or_else(|e| {
                        report(engine, id, e);
                        error_response()
                    })
                }
                CallOutcome::Failed(_) => error_response(),
            };
            answer(engine, id, &request, reply, response);
        }
        ServerEvent::WsUpgrade { request, reply } => {
            let args = vec![
                dat(),
                request_map(&request).into(),
                response_map(101, "Switching Protocols").into(),
            ];
            let response = match engine.call(id, "onWebSocketUpgrade", args) {
                CallOutcome::Missing => HttpResponse {
                    status: 101,
                    reason: None,
                    headers: Vec::new(),
                    body: Bytes::new(),
                },
                CallOutcome::Done(value) => to_response(value, "onWebSocketUpgrade")
                    .unwrap_or_else(|e| {
                        report(engine, id, e);
                        error_response()
                    }),
                CallOutcome::Failed(_) => error_response(),
            };
            answer(engine, id, &request, reply, response);
        }
        ServerEvent::WsOpen { client, uri } => {
            engine.call(
                id,
                "onWebSocketOpen",
                vec![dat(), client.into(), uri.into()],
            );
        }
        ServerEvent::WsMessage { client, message } => {
            let rt = runtime(engine.world_mut(), id);
            rt.messages_in += 1;
            rt.bytes_in += message.len() as u64;
            let framed = engine
                .world()
                .par_str(id, "format")
                .is_ok_and(|f| f == "nanollm");
            let (callback, data) = match message {
                WsMessage::Text(text) => ("onWebSocketReceiveText", Dynamic::from(text)),
                WsMessage::Binary(b) if framed => match nanollm::decode(&b) {
                    Ok(frame) => ("onWebSocketReceiveFrame", frame_map(&frame).into()),
                    Err(e) => {
                        runtime(engine.world_mut(), id).malformed_frames += 1;
                        engine
                            .world_mut()
                            .report_warning(id, format!("{client}: {e}"));
                        return;
                    }
                },
                WsMessage::Binary(b) => {
                    ("onWebSocketReceiveBinary", Dynamic::from_blob(b.to_vec()))
                }
                WsMessage::Ping(b) => ("onWebSocketReceivePing", Dynamic::from_blob(b.to_vec())),
                WsMessage::Pong(b) => ("onWebSocketReceivePong", Dynamic::from_blob(b.to_vec())),
            };
            engine.call(id, callback, vec![dat(), client.into(), data]);
        }
        ServerEvent::WsClose {
            client,
            code,
            reason,
        } => {
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
            runtime(engine.world_mut(), id).framed_ids.remove(&client);
            engine.call(id, "onWebSocketClose", vec![dat(), client.into()]);
        }
        ServerEvent::Warning { text } => engine.world_mut().report_warning(id, text),
        ServerEvent::Failed { error } => {
            let rt = runtime(engine.world_mut(), id);
            rt.server = None;
            rt.spec = None;
            engine.world_mut().set_status_error(id, Some(error));
        }
    }
}

fn report(engine: &mut Engine, id: NodeId, text: String) {
    let script_node = engine.world().callbacks_node(id);
    engine.world_mut().report_error(
        id,
        crate::engine::NodeError {
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
        let timeout_ms = engine.world().par_int(id, "requesttimeout");
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

/// A decoded NanoLLM frame as scripts see it.
pub fn frame_map(frame: &nanollm::Frame) -> Map {
    let mut map = Map::new();
    map.insert("msg_id".into(), (frame.msg_id as i64).into());
    map.insert("timestamp".into(), (frame.timestamp_ms as i64).into());
    map.insert("type".into(), nanollm::type_name(frame.kind).into());
    map.insert("type_id".into(), i64::from(frame.kind).into());
    map.insert("size".into(), (frame.payload.len() as i64).into());
    map.insert("metadata".into(), frame.metadata.clone().into());
    map.insert("text".into(), nanollm::payload_text(frame).into());
    map.insert("payload".into(), Dynamic::from_blob(frame.payload.to_vec()));
    map
}

/// A script's (type, payload, metadata) as a frame's parts: a map payload goes as JSON.
pub fn framed_parts(kind: &Dynamic, payload: &Dynamic) -> Result<(u16, Bytes), String> {
    let kind = match kind.as_int() {
        Ok(n) => u16::try_from(n).map_err(|_| format!("frame type {n} is out of range"))?,
        Err(_) => nanollm::type_from_name(&to_cell(kind))
            .ok_or_else(|| format!("unknown frame type \"{kind}\""))?,
    };
    let bytes = if payload.is_map() || payload.is_array() {
        Bytes::from(serde_json::to_vec(payload).map_err(|e| e.to_string())?)
    } else {
        blob_of(payload)
    };
    Ok((kind, bytes))
}

pub fn extra_info(runtime: &Runtime, out: &mut Vec<(&'static str, f64)>) {
    let connections = runtime.server.as_ref().map_or(0, |s| s.connection_count());
    out.push((
        "server_running",
        f64::from(u8::from(runtime.server.is_some())),
    ));
    out.push(("websocket_connections", connections as f64));
    out.push((
        "port",
        runtime.local_addr().map_or(0.0, |a| f64::from(a.port())),
    ));
    out.push(("http_requests", runtime.http_requests as f64));
    out.push(("malformed_frames", runtime.malformed_frames as f64));
    out.push(("messages_in", runtime.messages_in as f64));
    out.push(("bytes_in", runtime.bytes_in as f64));
    out.push(("messages_out", runtime.messages_out as f64));
    out.push(("bytes_out", runtime.bytes_out as f64));
}

/// The Web Server DAT's connected WebSocket clients (empty for other nodes).
pub fn clients(world: &World, id: NodeId) -> Vec<ClientInfo> {
    runtime_ref(world, id)
        .and_then(|rt| rt.server.as_ref())
        .map(ServerHandle::clients)
        .unwrap_or_default()
}

/// Closes one client with a normal close frame.
pub fn close_client(world: &mut World, id: NodeId, client: &str) -> Result<(), String> {
    let server = runtime_ref(world, id)
        .and_then(|rt| rt.server.as_ref())
        .ok_or("the server is not running")?;
    server
        .close(client, 1000, "closed by the server")
        .map_err(|_| format!("no client {client}"))
}

pub fn badge(runtime: &Runtime) -> super::Badge {
    if runtime.server.is_some() {
        super::Badge::Listening
    } else {
        super::Badge::Idle
    }
}

/// Messages received so far (the GUI derives the message rate from it).
pub fn messages_in(runtime: &Runtime) -> u64 {
    runtime.messages_in + runtime.http_requests
}

/// Sends to one client from a script; `false` when the client is gone or too slow.
fn send(op: &OpHandle, client: &str, message: WsMessage) -> Result<bool, Box<rhai::EvalAltResult>> {
    with_op(op, |world, id| {
        let name = world.node_name(id).to_string();
        let rt = match &mut world.state_mut(id).runtime {
            OpRuntime::WebServer(rt) => rt,
            _ => return Err(format!("\"{name}\" is not a Web Server DAT")),
        };
        let Some(server) = rt.server.as_ref() else {
            return Ok(false);
        };
        match server.send(client, message) {
            Ok(len) => {
                rt.messages_out += 1;
                rt.bytes_out += len as u64;
                Ok(true)
            }
            Err(SendError::NoSuchClient) => Ok(false),
            Err(SendError::TooSlow) => {
                world.report_warning(
                    id,
                    format!("{client} could not keep up (queue full); closing it with 1008"),
                );
                Ok(false)
            }
        }
    })
}

fn blob_of(data: &Dynamic) -> Bytes {
    match data.clone().try_cast::<Blob>() {
        Some(blob) => Bytes::from(blob),
        None => Bytes::from(to_cell(data)),
    }
}

/// `authenticateBasic(token, users)`: the token with or without "Basic ", users as {name: password}.
/// Every user is compared in constant time, so timing tells nothing about names or passwords.
pub fn authenticate_basic(token: &str, users: &Map) -> bool {
    let token = token.trim();
    let encoded = token
        .strip_prefix("Basic ")
        .or_else(|| token.strip_prefix("basic "))
        .unwrap_or(token);
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    let mut accepted = subtle::Choice::from(0);
    for (name, expected) in users {
        let expected = to_cell(expected);
        accepted |= name.as_bytes().ct_eq(user) & expected.as_bytes().ct_eq(password);
    }
    accepted.into()
}

pub fn register_script_api(engine: &mut rhai::Engine) {
    engine.register_get("webSocketConnections", |op: &mut OpHandle| {
        with_op(op, |world, id| {
            let ids = runtime_ref(world, id)
                .and_then(|rt| rt.server.as_ref())
                .map(ServerHandle::client_ids)
                .unwrap_or_default();
            Ok(ids.into_iter().map(Dynamic::from).collect::<Array>())
        })
    });
    engine.register_fn(
        "webSocketSendText",
        |op: &mut OpHandle, client: &str, data: Dynamic| {
            send(op, client, WsMessage::Text(to_text(&data)))
        },
    );
    engine.register_fn(
        "webSocketSendBinary",
        |op: &mut OpHandle, client: &str, data: Dynamic| {
            send(op, client, WsMessage::Binary(blob_of(&data)))
        },
    );
    engine.register_fn("webSocketSendPing", |op: &mut OpHandle, client: &str| {
        send(op, client, WsMessage::Ping(Bytes::new()))
    });
    engine.register_fn(
        "webSocketSendPing",
        |op: &mut OpHandle, client: &str, data: Dynamic| {
            send(op, client, WsMessage::Ping(blob_of(&data)))
        },
    );
    engine.register_fn("webSocketSendPong", |op: &mut OpHandle, client: &str| {
        send(op, client, WsMessage::Pong(Bytes::new()))
    });
    engine.register_fn(
        "webSocketSendPong",
        |op: &mut OpHandle, client: &str, data: Dynamic| {
            send(op, client, WsMessage::Pong(blob_of(&data)))
        },
    );
    engine.register_fn(
        "webSocketSendFramed",
        |op: &mut OpHandle,
         client: &str,
         kind: Dynamic,
         payload: Dynamic,
         metadata: &str|
         -> Result<bool, Box<rhai::EvalAltResult>> {
            let (kind, bytes) = framed_parts(&kind, &payload)?;
            let msg_id = with_op(op, |world, id| {
                let ids = &mut runtime(world, id).framed_ids;
                let next = ids.entry(client.to_string()).or_insert(0);
                let msg_id = *next;
                *next += 1;
                Ok(msg_id)
            })?;
            let frame = nanollm::encode(
                msg_id,
                crate::engine::unix_time_ms() as u64,
                kind,
                metadata,
                &bytes,
            );
            let sent = send(op, client, WsMessage::Binary(frame))?;
            if !sent {
                // Not a connected client: keep no counter for it.
                with_op(op, |world, id| {
                    Ok(runtime(world, id).framed_ids.remove(client))
                })?;
            }
            Ok(sent)
        },
    );
    engine.register_fn("webSocketClose", |op: &mut OpHandle, client: &str| {
        with_op(op, |world, id| Ok(close_client(world, id, client).is_ok()))
    });
    engine.register_fn(
        "authenticateBasic",
        |_: &mut OpHandle, token: ImmutableString, users: Map| authenticate_basic(&token, &users),
    );
    engine.register_fn(
        "authenticateBasic",
        |_: &mut OpHandle, _token: (), _users: Map| false,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_accepts_with_or_without_prefix_and_rejects_the_rest() {
        let mut users = Map::new();
        users.insert("ada".into(), "lovelace".into());
        users.insert("bob".into(), "builder".into());
        let token = base64::engine::general_purpose::STANDARD.encode("ada:lovelace");
        assert!(authenticate_basic(&token, &users));
        assert!(authenticate_basic(&format!("Basic {token}"), &users));
        let wrong = base64::engine::general_purpose::STANDARD.encode("ada:builder");
        assert!(!authenticate_basic(&wrong, &users));
        assert!(!authenticate_basic("Basic !!!", &users));
        assert!(!authenticate_basic("", &users));
        let colon_in_password =
            base64::engine::general_purpose::STANDARD.encode("bob:builder:extra");
        assert!(!authenticate_basic(&colon_in_password, &users));
    }

    #[test]
    fn headers_reach_scripts_in_both_spellings() {
        let request = HttpRequest {
            method: "GET".into(),
            path: "/a".into(),
            query: "x=1&y=two%20words".into(),
            headers: vec![
                ("content-type".into(), "text/plain".into()),
                ("x-tag".into(), "a".into()),
                ("x-tag".into(), "b".into()),
            ],
            body: Bytes::from_static(b"\xff\x00"),
            client_addr: "127.0.0.1:5000".into(),
            server_addr: "127.0.0.1:80".into(),
            saved_path: None,
        };
        let map = request_map(&request);
        assert_eq!(to_cell(&map["Content-Type"]), "text/plain");
        assert_eq!(to_cell(&map["content-type"]), "text/plain");
        assert_eq!(to_cell(&map["X-Tag"]), "a, b");
        assert_eq!(
            title_case("sec-websocket-protocol"),
            "Sec-WebSocket-Protocol"
        );
        assert_eq!(title_case("www-authenticate"), "WWW-Authenticate");
        let pars = map["pars"].clone().cast::<Map>();
        assert_eq!(to_cell(&pars["y"]), "two words");
        assert!(map["data"].is_blob());
    }
}
