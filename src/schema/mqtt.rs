//! The MQTT Client DAT's parameters: pages, tokens, defaults and help.

use super::{Input, ParDef, ParKind};

pub const CONNECT_PAGE: &str = "Connect";
pub const RECEIVED_PAGE: &str = "Received Data";
pub const LIMITS_PAGE: &str = "Limits";

pub const PARAMS: &[ParDef] = &{
    let common = common_pars!();
    let received = received_pars!(RECEIVED_PAGE, "payload");
    [
        ParDef {
            token: "active",
            label: "Active",
            page: CONNECT_PAGE,
            kind: ParKind::Toggle(true),
            help: "Connects while on; reconnects with backoff (0.5 s to 30 s) after a failure.",
        },
        ParDef {
            token: "netaddress",
            label: "Network Address",
            page: CONNECT_PAGE,
            kind: ParKind::Str("tcp://localhost:1883"),
            help: "The broker: tcp://host:port (1883 by default), ssl://host:port (8883), or over WebSocket ws://host:port/path (80, path /mqtt by default) or wss://host:port/path (443); $NAME reads the environment.",
        },
        ParDef {
            token: "specifyid",
            label: "Specify ID",
            page: CONNECT_PAGE,
            kind: ParKind::Toggle(false),
            help: "Connect with User Client ID (needed for a persistent session); otherwise a new unique id per start.",
        },
        ParDef {
            token: "usercid",
            label: "User Client ID",
            page: CONNECT_PAGE,
            kind: ParKind::Str(""),
            help: "The client id when Specify ID is on; $NAME reads the environment.",
        },
        ParDef {
            token: "keepalive",
            label: "Keep Alive Interval (s)",
            page: CONNECT_PAGE,
            kind: ParKind::Int {
                default: 60,
                min: 1,
                max: 65_535,
            },
            help: "Ping the broker after this much silence; a broker that does not answer is reconnected to.",
        },
        ParDef {
            token: "maxinflight",
            label: "Max in Flight",
            page: CONNECT_PAGE,
            kind: ParKind::Int {
                default: 100,
                min: 1,
                max: 65_535,
            },
            help: "QoS 1 and 2 publishes awaiting the broker's acknowledgement at once; more wait their turn.",
        },
        ParDef {
            token: "cleansession",
            label: "Clean Session",
            page: CONNECT_PAGE,
            kind: ParKind::Toggle(true),
            help: "Off (with Specify ID): the broker keeps the subscriptions and QoS 1/2 messages while this client is away.",
        },
        ParDef {
            token: "verifycert",
            label: "Verify Certificate",
            page: CONNECT_PAGE,
            kind: ParKind::Toggle(true),
            help: "Check an ssl:// or wss:// broker's certificate against the CA file or the built-in roots.",
        },
        ParDef {
            token: "cafile",
            label: "CA File",
            page: CONNECT_PAGE,
            kind: ParKind::File {
                extensions: &["pem", "crt"],
            },
            help: "PEM certificates to trust for ssl:// and wss:// (instead of the built-in roots).",
        },
        ParDef {
            token: "username",
            label: "Username",
            page: CONNECT_PAGE,
            kind: ParKind::Str(""),
            help: "Sent with the password when not empty; $NAME reads the environment.",
        },
        ParDef {
            token: "password",
            label: "Password",
            page: CONNECT_PAGE,
            kind: ParKind::Password,
            help: "$NAME reads the environment and keeps it out of the project file.",
        },
        ParDef {
            token: "reconnect",
            label: "Reconnect",
            page: CONNECT_PAGE,
            kind: ParKind::Pulse,
            help: "Drop the connection and connect again now.",
        },
        ParDef {
            token: "callbacks",
            label: "Callbacks DAT",
            page: RECEIVED_PAGE,
            kind: ParKind::Op(Input::Callbacks),
            help: "Text DAT holding onConnect, onMessage and the other callbacks.",
        },
        received[0],
        received[1],
        received[2],
        received[3],
        ParDef {
            token: "maxmessagebytes",
            label: "Max Message Size (bytes)",
            page: LIMITS_PAGE,
            kind: ParKind::Int {
                default: 1 << 20,
                min: 128,
                max: 256 << 20,
            },
            help: "Largest MQTT packet sent or received; a broker sending a larger one is disconnected from.",
        },
        common[0],
        common[1],
        common[2],
        common[3],
    ]
};
