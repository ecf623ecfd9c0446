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
            help: "Comma-separated Sec-WebSocket-Protocol values (e.g. bearer, <token>).",
        },
        ParDef {
            token: "headers",
            label: "Headers DAT",
            page: CONNECT_PAGE,
            kind: ParKind::Op(Input::Headers),
            help: "Table DAT of name/value rows sent with the handshake (same as the headers wire).",
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
            help: "Which operator `me` is inside the callbacks.",
        },
        ParDef {
            token: "fromop",
            label: "From Operator",
            page: RECEIVED_PAGE,
            kind: ParKind::Str(""),
            help: "The operator `me` is when Execute from is Specified Operator.",
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
        common[0],
        common[1],
        common[2],
        common[3],
    ]
};

pub const DEFAULT_CALLBACKS: &str = r#"// WebSocket DAT callbacks.
// dat - the WebSocket DAT; rowIndex - the table row the message was written to.

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

use crate::engine::Engine;
use crate::net::client::ClientEvent;
use crate::ops::fifo_table::FifoTable;
use crate::project::NodeId;

#[derive(Debug)]
pub struct Runtime {
    table: FifoTable,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            table: FifoTable::new(Some(100), false),
        }
    }
}

impl Runtime {
    /// The received-messages table.
    pub fn table(&self) -> &FifoTable {
        &self.table
    }
}

pub fn reconcile(_engine: &mut Engine, _id: NodeId, _first: bool) {}

pub fn pulse(_engine: &mut Engine, _id: NodeId, _token: &str) {}

pub fn handle_event(_engine: &mut Engine, _id: NodeId, _run: u64, event: ClientEvent) {
    match event {}
}

pub fn stop(_engine: &mut Engine, _id: NodeId) {}

pub fn extra_info(_runtime: &Runtime, _out: &mut Vec<(&'static str, f64)>) {}

pub fn register_script_api(_engine: &mut rhai::Engine) {}

pub fn badge(_runtime: &Runtime) -> super::Badge {
    super::Badge::Idle
}

/// Messages received so far (the GUI derives the message rate from it).
pub fn messages_in(_runtime: &Runtime) -> u64 {
    0
}
