//! The WebSocket DAT's parameters: pages, tokens, defaults and help.

use super::{Input, ParDef, ParKind};

pub const CONNECT_PAGE: &str = "Connect";
pub const RECEIVED_PAGE: &str = "Received Messages";

pub const PARAMS: &[ParDef] = &{
    let common = common_pars!();
    let received = received_pars!(RECEIVED_PAGE, "message");
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
            token: "maxmessagebytes",
            label: "Max Message Size (bytes)",
            page: CONNECT_PAGE,
            kind: ParKind::Int {
                default: 1 << 20,
                min: 128,
                max: 256 << 20,
            },
            help: "A longer message from the server is refused: the connection is closed with code 1009 (and reconnects).",
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
        received[0],
        received[1],
        received[2],
        received[3],
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
