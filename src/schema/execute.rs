//! The Execute DAT's parameters: pages, tokens, defaults and help.

use super::{ParDef, ParKind};

pub const PAGE: &str = "Execute";

pub const PARAMS: &[ParDef] = &{
    let common = common_pars!();
    [
        ParDef {
            token: "active",
            label: "Active",
            page: PAGE,
            kind: ParKind::Toggle(true),
            help: "While off, no callback runs.",
        },
        ParDef {
            token: "start",
            label: "Start",
            page: PAGE,
            kind: ParKind::Toggle(true),
            help: "Run onStart() when the project starts or the DAT becomes active.",
        },
        ParDef {
            token: "framestart",
            label: "Frame Start",
            page: PAGE,
            kind: ParKind::Toggle(false),
            help: "Run onFrameStart(frame) at the start of every frame, before network events are handled.",
        },
        ParDef {
            token: "frameend",
            label: "Frame End",
            page: PAGE,
            kind: ParKind::Toggle(false),
            help: "Run onFrameEnd(frame) at the end of every frame.",
        },
        ParDef {
            token: "exit",
            label: "Exit",
            page: PAGE,
            kind: ParKind::Toggle(true),
            help: "Run onExit() when the project stops or the DAT becomes inactive.",
        },
        common[0],
        common[1],
        common[2],
        common[3],
    ]
};
