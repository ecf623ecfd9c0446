//! Text DAT: free text or a callbacks script, edited in the code editor; optionally read from a file.

use crate::engine::{Engine, Level, Operator};
use crate::project::NodeId;

pub struct TextDat;

impl Operator for TextDat {
    fn reconcile(&self, engine: &mut Engine, id: NodeId, first: bool) {
        if first && engine.world().par_bool(id, "loadonstart") {
            load(engine, id);
        }
    }

    fn pulse(&self, engine: &mut Engine, id: NodeId, token: &str) {
        match token {
            "loadfile" => load(engine, id),
            "writefile" => write(engine, id),
            _ => {}
        }
    }

    fn default_text(&self) -> Option<&'static str> {
        Some("")
    }
}

fn load(engine: &mut Engine, id: NodeId) {
    let world = engine.world_mut();
    let result = world.file_par(id, "file").and_then(|path| {
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))
    });
    match result {
        Ok(text) => {
            if let Some(slot) = world.project.node_mut(id).and_then(|n| n.text.as_mut()) {
                *slot = text;
            }
            world.touch_content(id);
            world.set_status_error(id, None);
        }
        Err(e) => world.set_status_error(id, Some(e)),
    }
}

fn write(engine: &mut Engine, id: NodeId) {
    let world = engine.world_mut();
    let text = world
        .project
        .node(id)
        .and_then(|n| n.text.clone())
        .unwrap_or_default();
    let result = world.file_par(id, "file").and_then(|path| {
        crate::project::write_atomic(&path, text.as_bytes())
            .map(|()| path.clone())
            .map_err(|e| format!("writing {}: {e}", path.display()))
    });
    match result {
        Ok(path) => world.log(Level::Info, Some(id), format!("wrote {}", path.display())),
        Err(e) => world.set_status_error(id, Some(e)),
    }
}
