//! The Text DAT's parameters: pages, tokens, defaults and help.

use super::{ParDef, ParKind};

pub const PAGE: &str = "Text";

pub const PARAMS: &[ParDef] = &{
    let common = common_pars!();
    [
        ParDef {
            token: "file",
            label: "File",
            page: PAGE,
            kind: ParKind::File {
                extensions: &["txt", "py", "dat", "html", "css", "js", "json"],
            },
            help: "Text file to load from or write to.",
        },
        ParDef {
            token: "loadonstart",
            label: "Load on Start",
            page: PAGE,
            kind: ParKind::Toggle(false),
            help: "Replace the contents with the file when the project opens.",
        },
        ParDef {
            token: "loadfile",
            label: "Load File",
            page: PAGE,
            kind: ParKind::Pulse,
            help: "Replace the contents with the file now.",
        },
        ParDef {
            token: "writefile",
            label: "Write File",
            page: PAGE,
            kind: ParKind::Pulse,
            help: "Write the contents to the file now (atomically).",
        },
        common[0],
        common[1],
        common[2],
        common[3],
    ]
};
