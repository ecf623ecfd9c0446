//! Table DAT: rows of cells editable in the GUI and from scripts; CSV/TSV load and save; can mirror
//! a source DAT wired into its input.

use crate::engine::{Engine, Level, Operator};
use crate::project::{NodeId, Table};

pub struct TableDat;

#[derive(Debug, Default)]
pub struct Runtime {
    /// The source DAT's content revision last copied, so it is copied only when it changes.
    source_rev_seen: Option<(NodeId, u64)>,
}

impl Operator for TableDat {
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

    fn cook(&self, engine: &mut Engine, id: NodeId) -> bool {
        mirror_source(engine, id)
    }
}

/// Mirrors the source DAT when one is wired and it changed since the last copy.
fn mirror_source(engine: &mut Engine, id: NodeId) -> bool {
    let world = engine.world_mut();
    let Some(source) = world.input_node(id, "source") else {
        return false;
    };
    let source_rev = world.state(source).map_or(0, |s| s.content_rev);
    let seen = world
        .runtime::<Runtime>(id)
        .and_then(|rt| rt.source_rev_seen);
    if seen == Some((source, source_rev)) {
        return false;
    }
    let Some(dat) = world.dat(source) else {
        return false;
    };
    let rows = (0..dat.num_rows())
        .map(|r| {
            (0..dat.num_cols())
                .map(|c| dat.cell(r, c).unwrap_or_default())
                .collect()
        })
        .collect();
    if let Ok(table) = world.table_mut(id) {
        *table = Table::from_rows(rows);
    }
    world.runtime_mut::<Runtime>(id).source_rev_seen = Some((source, source_rev));
    true
}

fn load(engine: &mut Engine, id: NodeId) {
    let world = engine.world_mut();
    match world
        .file_par(id, "file")
        .and_then(|path| Table::load(&path))
    {
        Ok(table) => {
            if let Ok(slot) = world.table_mut(id) {
                *slot = table;
            }
            world.set_status_error(id, None);
        }
        Err(e) => world.set_status_error(id, Some(e)),
    }
}

fn write(engine: &mut Engine, id: NodeId) {
    let world = engine.world_mut();
    let table = world
        .project
        .node(id)
        .and_then(|n| n.table.clone())
        .unwrap_or_default();
    match world
        .file_par(id, "file")
        .and_then(|path| table.save(&path).map(|()| path))
    {
        Ok(path) => world.log(Level::Info, Some(id), format!("wrote {}", path.display())),
        Err(e) => world.set_status_error(id, Some(e)),
    }
}
