//! Table DAT: rows of cells editable in the GUI and from scripts; CSV/TSV load and save; can mirror
//! a source DAT wired into its input.

use super::{Input, ParDef, ParKind, common_pars};

pub const PAGE: &str = "Table";

pub const PARAMS: &[ParDef] = &{
    let common = common_pars!();
    [
        ParDef {
            token: "file",
            label: "File",
            page: PAGE,
            kind: ParKind::File {
                extensions: &["csv", "tsv", "txt", "dat"],
            },
            help: "CSV (.csv) or tab-separated (any other extension) file to load from or write to.",
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
        ParDef {
            token: "source",
            label: "Source DAT",
            page: PAGE,
            kind: ParKind::Op(Input::Source),
            help: "When set, the table mirrors this DAT's contents (same as wiring it into the input).",
        },
        common[0],
        common[1],
        common[2],
        common[3],
    ]
};

use crate::engine::{Engine, Level, OpRuntime};
use crate::project::{NodeId, Table};

#[derive(Debug, Default)]
pub struct Runtime {
    /// The source DAT's content revision last copied, so it is copied only when it changes.
    source_rev_seen: Option<(NodeId, u64)>,
}

/// `first`: the project just started (or the node was just created).
pub fn reconcile(engine: &mut Engine, id: NodeId, first: bool) {
    let world = engine.world_mut();
    if !matches!(world.state_mut(id).runtime, OpRuntime::Table(_)) {
        world.state_mut(id).runtime = OpRuntime::Table(Runtime::default());
    }
    if first && world.par_bool(id, "loadonstart") {
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

/// Mirrors the source DAT when one is wired and it changed since the last copy.
pub fn cook(engine: &mut Engine, id: NodeId) -> bool {
    let world = engine.world_mut();
    let Some(source) = world.input_node(id, "source") else {
        return false;
    };
    let source_rev = world.state(source).map_or(0, |s| s.content_rev);
    let seen = match &world.state(id).map(|s| &s.runtime) {
        Some(OpRuntime::Table(rt)) => rt.source_rev_seen,
        _ => None,
    };
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
    if let OpRuntime::Table(rt) = &mut world.state_mut(id).runtime {
        rt.source_rev_seen = Some((source, source_rev));
    }
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
        .and_then(|path| table.save(&path).map(|_| path))
    {
        Ok(path) => world.log(Level::Info, Some(id), format!("wrote {}", path.display())),
        Err(e) => world.set_status_error(id, Some(e)),
    }
}
