//! Execute DAT: its own text holds callbacks that run on project start, every frame and on exit
//! (TouchDesigner's Execute DAT), the place for periodic sends and setup.

use super::{ParDef, ParKind, common_pars};

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

pub const DEFAULT_CALLBACKS: &str = r#"// Execute DAT callbacks. Turn each on with its toggle on the Execute page.
// me - this DAT

fn onStart() {
}

fn onFrameStart(frame) {
}

fn onFrameEnd(frame) {
}

fn onExit() {
}
"#;

use rhai::Dynamic;

use crate::engine::{Engine, OpRuntime};
use crate::project::NodeId;

#[derive(Debug, Default)]
pub struct Runtime {
    /// onStart has run (or would have) and onExit has not.
    running: bool,
}

fn runtime(engine: &mut Engine, id: NodeId) -> &mut Runtime {
    let state = engine.world_mut().state_mut(id);
    if !matches!(state.runtime, OpRuntime::Execute(_)) {
        state.runtime = OpRuntime::Execute(Runtime::default());
    }
    match &mut state.runtime {
        OpRuntime::Execute(rt) => rt,
        _ => unreachable!("set just above"),
    }
}

pub fn reconcile(engine: &mut Engine, id: NodeId) {
    let active = engine.world().par_bool(id, "active");
    let running = runtime(engine, id).running;
    if active && !running {
        runtime(engine, id).running = true;
        if engine.world().par_bool(id, "start") {
            engine.call(id, "onStart", vec![]);
        }
    } else if !active && running {
        stop(engine, id);
    }
}

/// Runs onFrameStart / onFrameEnd when its toggle is on.
pub fn frame(engine: &mut Engine, id: NodeId, toggle: &str, callback: &str) -> bool {
    if !runtime(engine, id).running || !engine.world().par_bool(id, toggle) {
        return false;
    }
    let frame = engine.world().frame as i64;
    engine.call(id, callback, vec![Dynamic::from(frame)]);
    true
}

pub fn stop(engine: &mut Engine, id: NodeId) {
    if std::mem::take(&mut runtime(engine, id).running) && engine.world().par_bool(id, "exit") {
        engine.call(id, "onExit", vec![]);
    }
}
