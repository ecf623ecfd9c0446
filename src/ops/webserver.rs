//! Web Server DAT: HTTP and WebSocket server on one port whose behaviour lives in TouchDesigner's
//! callbacks; TLS, basic auth, limits and live client monitoring.

use super::{Input, ParDef, ParKind, common_pars};

pub const PAGE: &str = "Web Server";
pub const LIMITS_PAGE: &str = "Limits";

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
            help: "A client must send its TLS handshake and request headers within this time.",
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

use crate::engine::{Engine, World};
use crate::net::server::ServerEvent;
use crate::project::NodeId;

#[derive(Debug, Default)]
pub struct Runtime {}

pub fn reconcile(_engine: &mut Engine, _id: NodeId, _first: bool) {}

pub fn pulse(_engine: &mut Engine, _id: NodeId, _token: &str) {}

pub fn handle_event(_engine: &mut Engine, _id: NodeId, _run: u64, event: ServerEvent) {
    match event {}
}

pub fn stop(_engine: &mut Engine, _id: NodeId) {}

pub fn extra_info(_runtime: &Runtime, _out: &mut Vec<(&'static str, f64)>) {}

pub fn register_script_api(_engine: &mut rhai::Engine) {}

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

/// The Web Server DAT's connected WebSocket clients (empty for other nodes).
pub fn clients(_world: &World, _id: NodeId) -> Vec<ClientInfo> {
    Vec::new()
}

/// Closes one client with a normal close frame.
pub fn close_client(_world: &mut World, _id: NodeId, client: &str) -> Result<(), String> {
    Err(format!("no client {client}"))
}

pub fn badge(_runtime: &Runtime) -> super::Badge {
    super::Badge::Idle
}

/// Messages received so far (the GUI derives the message rate from it).
pub fn messages_in(_runtime: &Runtime) -> u64 {
    0
}
