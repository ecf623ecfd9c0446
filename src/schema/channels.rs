//! The Channels CHOP's parameters: pages, tokens, defaults and help.

use super::{Input, ParDef, ParKind};

pub const PAGE: &str = "Channels";

pub const PARAMS: &[ParDef] = &[
    ParDef {
        token: "active",
        label: "Active",
        page: PAGE,
        kind: ParKind::Toggle(true),
        help: "While off, new messages are not read.",
    },
    ParDef {
        token: "source",
        label: "Source DAT",
        page: PAGE,
        kind: ParKind::Op(Input::Source),
        help: "The DAT whose rows hold JSON messages (same as wiring it into the input).",
    },
    ParDef {
        token: "column",
        label: "JSON Column",
        page: PAGE,
        kind: ParKind::Str("message"),
        help: "Column holding the JSON: a heading name or a number (0 is the first column).",
    },
    ParDef {
        token: "pointer",
        label: "JSON Pointer",
        page: PAGE,
        kind: ParKind::Str(""),
        help: "Where the values sit inside each message, e.g. /d (blank: the whole message).",
    },
    ParDef {
        token: "key",
        label: "Key",
        page: PAGE,
        kind: ParKind::Str(""),
        help: "Names the source of each message: a JSON pointer (/ch) or a column name. \
               `sensors/temp` + `temperature` gives the channel `sensors/temp:temperature`.",
    },
    ParDef {
        token: "history",
        label: "History Samples",
        page: PAGE,
        kind: ParKind::Int {
            default: 600,
            min: 1,
            max: 1_000_000,
        },
        help: "Samples kept per channel (a ring: the oldest goes first).",
    },
    ParDef {
        token: "maxchannels",
        label: "Max Channels",
        page: PAGE,
        kind: ParKind::Int {
            default: 1000,
            min: 1,
            max: 100_000,
        },
        help: "New fields beyond this many are ignored, with a warning on the node.",
    },
    ParDef {
        token: "reset",
        label: "Reset",
        page: PAGE,
        kind: ParKind::Pulse,
        help: "Forget every channel and its history.",
    },
];
