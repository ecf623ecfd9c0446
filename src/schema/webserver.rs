//! The Web Server DAT's parameters: pages, tokens, defaults and help.

use super::{Input, ParDef, ParKind};

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
            help: "Connections served at once, WebSocket clients included (for as long as they stay). \
                   When all are taken, an HTTP connection idle for a second (no request in hand, \
                   nothing being sent) is closed to make room; otherwise new ones wait.",
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
            help: "Larger request bodies are refused with 413. Eight of it is the server's memory \
                   for request bodies held at once, and as much again (at least 64 MiB) for \
                   callbacks' answers not yet taken by their clients; past either, 503.",
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
            token: "bodytimeout",
            label: "Body Timeout (ms)",
            page: LIMITS_PAGE,
            kind: ParKind::Int {
                default: 120_000,
                min: 1,
                max: 3_600_000,
            },
            help: "A request body (an upload included) must be in whole within this time (408).",
        },
        ParDef {
            token: "bodyminrate",
            label: "Min Body Rate (bytes/s)",
            page: LIMITS_PAGE,
            kind: ParKind::Int {
                default: 1024,
                min: 0,
                max: 1 << 30,
            },
            help: "After the Header Timeout, a body must keep arriving at this rate on average (408); 0: any rate.",
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
            token: "maxqueue",
            label: "Max WebSocket Queue (bytes)",
            page: LIMITS_PAGE,
            kind: ParKind::Int {
                default: 4 * 1024 * 1024,
                min: 64 * 1024,
                max: 1 << 30,
            },
            help: "Bytes waiting to be sent to one WebSocket client (64 more per message). Past a quarter of it the server stops reading from the clients whose messages' callbacks send to it (from every client for sends no client's message made) until it drains; a client whose queue would pass it is closed with 1008.",
        },
        ParDef {
            token: "writetimeout",
            label: "Write Timeout (ms)",
            page: LIMITS_PAGE,
            kind: ParKind::Int {
                default: 5000,
                min: 1,
                max: 600_000,
            },
            help: "A WebSocket client that does not take a write (what was queued for it, up to 64 KiB) within this time is closed with 1008; an HTTP client that takes none of its answer for a second longer is dropped.",
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
