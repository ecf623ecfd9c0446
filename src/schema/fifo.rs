//! The FIFO DAT's parameters: pages, tokens, defaults and help.

use super::{ParDef, ParKind};

pub const PAGE: &str = "FIFO";

pub const PARAMS: &[ParDef] = &{
    let common = common_pars!();
    [
        ParDef {
            token: "maxlines",
            label: "Maximum Lines",
            page: PAGE,
            kind: ParKind::Int {
                default: 100,
                min: 1,
                max: 10_000_000,
            },
            help: "Rows kept (the heading not counted); appending past it drops the oldest row.",
        },
        ParDef {
            token: "heading",
            label: "Heading",
            page: PAGE,
            kind: ParKind::Str(""),
            help: "Column names of a heading row, separated by spaces or commas (empty: no heading row).",
        },
        ParDef {
            token: "keepfirstrow",
            label: "Keep First Row",
            page: PAGE,
            kind: ParKind::Toggle(false),
            help: "When Heading is empty: the first row appended becomes the heading and stays on top.",
        },
        ParDef {
            token: "clear",
            label: "Clear",
            page: PAGE,
            kind: ParKind::Pulse,
            help: "Delete every row but the heading.",
        },
        common[0],
        common[1],
        common[2],
        common[3],
    ]
};
