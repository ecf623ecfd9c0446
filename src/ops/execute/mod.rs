//! Execute DAT: its own text holds callbacks that run on project start, every frame and on exit
//! (TouchDesigner's Execute DAT), the place for periodic sends and setup.

pub mod callbacks;

use crate::engine::{Engine, Operator, Value};
use crate::project::NodeId;

pub struct Execute;

/// The Execute page's toggles, read at reconcile.
#[derive(Debug, Default, Clone, Copy)]
struct ExecutePars {
    active: bool,
    start: bool,
    frame_start: bool,
    frame_end: bool,
    exit: bool,
}

#[derive(Debug, Default)]
pub struct Runtime {
    pars: ExecutePars,
    /// onStart has run (or would have) and onExit has not.
    running: bool,
}

fn runtime(engine: &mut Engine, id: NodeId) -> &mut Runtime {
    engine.world_mut().runtime_mut::<Runtime>(id)
}

impl Operator for Execute {
    fn reconcile(&self, engine: &mut Engine, id: NodeId, _first: bool) {
        let world = engine.world();
        let pars = ExecutePars {
            active: world.par_bool(id, "active"),
            start: world.par_bool(id, "start"),
            frame_start: world.par_bool(id, "framestart"),
            frame_end: world.par_bool(id, "frameend"),
            exit: world.par_bool(id, "exit"),
        };
        let rt = runtime(engine, id);
        rt.pars = pars;
        if pars.active && !rt.running {
            rt.running = true;
            if pars.start {
                engine.call(id, "onStart", vec![]);
            }
        } else if !pars.active && rt.running {
            self.stop(engine, id);
        }
    }

    fn cook(&self, engine: &mut Engine, id: NodeId) -> bool {
        let on = runtime(engine, id).pars.frame_start;
        on && frame(engine, id, "onFrameStart")
    }

    fn frame_end(&self, engine: &mut Engine, id: NodeId) -> bool {
        let on = runtime(engine, id).pars.frame_end;
        on && frame(engine, id, "onFrameEnd")
    }

    fn stop(&self, engine: &mut Engine, id: NodeId) {
        let rt = runtime(engine, id);
        if std::mem::take(&mut rt.running) && rt.pars.exit {
            engine.call(id, "onExit", vec![]);
        }
    }

    fn default_text(&self) -> Option<&'static str> {
        Some(callbacks::DEFAULT_CALLBACKS)
    }
}

/// Runs onFrameStart / onFrameEnd (its toggle is on) while the DAT runs.
fn frame(engine: &mut Engine, id: NodeId, callback: &str) -> bool {
    if !runtime(engine, id).running {
        return false;
    }
    let frame = engine.world().frame as i64;
    engine.call(id, callback, vec![Value::Int(frame)]);
    true
}
