//! Text DAT: free text or a callbacks script, edited in the code editor; optionally read from a file.

use super::{ParDef, ParKind, common_pars};

pub const PAGE: &str = "Text";

pub const PARAMS: &[ParDef] = &{
    let common = common_pars!();
    [
        ParDef {
            token: "file",
            label: "File",
            page: PAGE,
            kind: ParKind::File {
                extensions: &["txt", "rhai", "dat", "html", "css", "js", "json"],
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

use crate::engine::{Engine, Level};
use crate::project::NodeId;

/// `first`: the project just started (or the node was just created).
pub fn reconcile(engine: &mut Engine, id: NodeId, first: bool) {
    if first && engine.world().par_bool(id, "loadonstart") {
        load(engine, id);
    }
}

pub fn pulse(engine: &mut Engine, id: NodeId, token: &str) {
    match token {
        "loadfile" => load(engine, id),
        "writefile" => write(engine, id),
        _ => {}
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
            .map(|_| path.clone())
            .map_err(|e| format!("writing {}: {e}", path.display()))
    });
    match result {
        Ok(path) => world.log(Level::Info, Some(id), format!("wrote {}", path.display())),
        Err(e) => world.set_status_error(id, Some(e)),
    }
}
