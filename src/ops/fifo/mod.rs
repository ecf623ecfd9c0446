//! FIFO DAT: TouchDesigner's bounded table. Scripts append rows (`appendRow`, `appendRows`);
//! past Maximum Lines the oldest go, in O(1) per row (the same FIFO table as the WebSocket DAT's).

use crate::engine::fifo_table::FifoTable;
use crate::engine::{DatRef, Engine, Operator, ScriptMethod, Value, World};
use crate::project::NodeId;

pub struct Fifo;

#[derive(Debug)]
pub struct Runtime {
    table: FifoTable,
    /// Keep First Row with no Heading: the next row appended becomes the heading.
    first_row_is_heading: bool,
    /// The heading came from a row appended (Keep First Row), not from the Heading parameter.
    heading_from_row: bool,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            table: FifoTable::records(Some(100), None),
            first_row_is_heading: false,
            heading_from_row: false,
        }
    }
}

/// The Heading parameter's names (separated by spaces or commas).
fn heading_names(heading: &str) -> Vec<&str> {
    heading
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|name| !name.is_empty())
        .collect()
}

fn reconcile(world: &mut World, id: NodeId) {
    let max_lines = usize::try_from(world.par_int(id, "maxlines").max(1)).unwrap_or(usize::MAX);
    let heading = world.par_str(id, "heading").unwrap_or_default();
    let keep_first_row = world.par_bool(id, "keepfirstrow");
    let names = heading_names(&heading);
    let rt = world.runtime_mut::<Runtime>(id);
    let before = rt.table.num_rows();
    rt.table.set_max_lines(Some(max_lines));
    if names.is_empty() {
        // A heading taken from the first row stays until Keep First Row is turned off.
        let keep = keep_first_row && rt.heading_from_row;
        if !keep {
            rt.table.set_records_layout(None);
            rt.heading_from_row = false;
        }
        rt.first_row_is_heading = keep_first_row && !keep;
    } else {
        rt.table.set_records_layout(Some(&names));
        rt.first_row_is_heading = false;
        rt.heading_from_row = false;
    }
    if before != rt.table.num_rows() {
        world.state_mut(id).content_rev += 1;
    }
}

/// The cells of one row from a script value: a list's items, or one value as one cell.
fn cells(value: &Value) -> Vec<String> {
    match value {
        Value::List(items) => items.iter().map(|v| v.to_text().to_string()).collect(),
        Value::None => Vec::new(),
        other => vec![other.to_text().to_string()],
    }
}

fn append(world: &mut World, id: NodeId, row: Vec<String>) -> usize {
    let rt = world.runtime_mut::<Runtime>(id);
    let index = if rt.first_row_is_heading {
        rt.first_row_is_heading = false;
        rt.heading_from_row = true;
        let names: Vec<&str> = row.iter().map(String::as_str).collect();
        rt.table.set_records_layout(Some(&names));
        0
    } else {
        rt.table.push_record(&row)
    };
    world.state_mut(id).content_rev += 1;
    index
}

const METHODS: &[ScriptMethod] = &[
    ScriptMethod::method("appendRow", &["vals"], 0, |world, id, args| {
        let row = args.first().map(cells).unwrap_or_default();
        Ok(Value::Int(append(world, id, row) as i64))
    }),
    ScriptMethod::method("appendRows", &["rows"], 1, |world, id, args| {
        let Value::List(rows) = &args[0] else {
            return Err("appendRows: expected a list of rows".into());
        };
        let mut last = 0;
        for row in rows {
            last = append(world, id, cells(row));
        }
        Ok(Value::Int(last as i64))
    }),
    ScriptMethod::method("clear", &[], 0, |world, id, _| {
        world.runtime_mut::<Runtime>(id).table.clear();
        world.state_mut(id).content_rev += 1;
        Ok(Value::None)
    }),
];

impl Operator for Fifo {
    fn reconcile(&self, engine: &mut Engine, id: NodeId, _first: bool) {
        reconcile(engine.world_mut(), id);
    }

    fn pulse(&self, engine: &mut Engine, id: NodeId, token: &str) {
        if token == "clear" {
            let world = engine.world_mut();
            world.runtime_mut::<Runtime>(id).table.clear();
            world.state_mut(id).content_rev += 1;
        }
    }

    fn dat<'w>(&self, world: &'w World, id: NodeId) -> Option<DatRef<'w>> {
        world
            .runtime::<Runtime>(id)
            .map(|rt| DatRef::Fifo(&rt.table))
    }

    fn info(&self, world: &World, id: NodeId, out: &mut Vec<(&'static str, f64)>) {
        let (appended, dropped) = world
            .runtime::<Runtime>(id)
            .map_or((0, 0), |rt| (rt.table.total_pushed(), rt.table.dropped()));
        out.extend([
            ("rows_appended", appended as f64),
            ("rows_dropped", dropped as f64),
        ]);
    }

    fn script_methods(&self) -> &'static [ScriptMethod] {
        METHODS
    }
}
