//! The table viewer: a DAT's cells with virtual scrolling (only visible rows are read, so a
//! 100,000-row table scrolls smoothly), cells editable in Table DATs (every cell, empty ones too;
//! rows and columns inserted and deleted from a cell's context menu or the keyboard), word wrap
//! from the Common page, and the WebSocket DAT's bytes column shown as hex.

use egui::{RichText, Ui};
use egui_extras::{Column, TableBuilder, TableRow};

use super::actions::Action;
use super::graph::table_cell;
use crate::engine::{Command, DatRef, World};
use crate::project::{NodeId, Table};
use crate::schema::Input;

/// Columns drawn at most: egui lays out every column of a visible row.
const MAX_COLS: usize = 256;
/// Wrapped rows need a height each, measured every frame; above this many rows the viewer
/// keeps even rows (and says so) so scrolling stays smooth.
const WRAP_MAX_ROWS: usize = 2_000;

#[derive(Default)]
pub struct TableState {
    editing: Option<CellEdit>,
    /// The cell the inspector beside the table shows whole: (node, row, col).
    selected: Option<(NodeId, usize, usize)>,
    /// The inspector shows JSON as a collapsible tree instead of pretty-printed text.
    json_tree: bool,
}

struct CellEdit {
    id: NodeId,
    row: usize,
    col: usize,
    text: String,
    focus_requested: bool,
}

/// Whether a DAT's viewers wrap long lines (Common page `wordwrap`; "Use Input" follows the DAT
/// wired into its source input).
pub fn word_wrap(world: &World, id: NodeId) -> bool {
    let mut id = id;
    // Bounded: a chain of sources cannot loop forever (and wires form no cycles anyway).
    for _ in 0..8 {
        let has_common_page = world
            .project
            .node(id)
            .is_some_and(|n| n.kind.param("wordwrap").is_some());
        if !has_common_page {
            return false;
        }
        match world.par_str(id, "wordwrap").as_deref() {
            Ok("on") => return true,
            Ok("input") => match world.project.input_of(id, Input::Source) {
                Some(source) => id = source,
                None => return false,
            },
            _ => return false,
        }
    }
    false
}

pub fn show(
    ui: &mut Ui,
    state: &mut TableState,
    world: &World,
    id: NodeId,
    actions: &mut Vec<Action>,
) {
    let (Some(dat), Some(node)) = (world.dat(id), world.project.node(id)) else {
        return;
    };
    let source = world.project.input_of(id, Input::Source);
    // Only a Table DAT's own table is the user's: a mirror or an operator's output (the Channels
    // CHOP's) is read-only and shows no edit controls.
    let editable = node.table.is_some() && source.is_none();
    let rows = dat.num_rows();
    let all_cols = dat.num_cols();
    let cols = all_cols.min(MAX_COLS);
    let wrap = word_wrap(world, id);
    if state.editing.as_ref().is_some_and(|e| e.id != id) {
        state.editing = None;
    }
    if state
        .selected
        .is_some_and(|(n, r, c)| n != id || r >= dat.num_rows() || c >= dat.num_cols())
    {
        state.selected = None;
    }
    if let Some((_, r, c)) = state.selected {
        let text = table_cell(&dat, r, c);
        let hex = matches!(&dat, DatRef::Fifo(f) if f.bytes_column());
        egui::Panel::right(egui::Id::new(("cell-inspector", id)))
            .resizable(true)
            .default_size(320.0)
            .min_size(160.0)
            .show(ui, |ui| inspector(ui, state, r, c, &text, hex));
    }
    ui.horizontal(|ui| {
        // First in the row, so they stay where they are whatever the counts beside them say.
        if editable {
            if ui.button("+ Row").clicked() {
                actions.push(Action::edit(Command::SetCell {
                    id,
                    row: rows,
                    col: 0,
                    value: String::new(),
                }));
            }
            if ui.button("+ Column").clicked() {
                actions.push(Action::edit(Command::SetCell {
                    id,
                    row: 0,
                    col: all_cols,
                    value: String::new(),
                }));
            }
        }
        ui.strong(&node.name);
        ui.weak(format!(
            "{rows} {} × {all_cols} {}",
            if rows == 1 { "row" } else { "rows" },
            if all_cols == 1 { "col" } else { "cols" }
        ));
        if all_cols > MAX_COLS {
            ui.weak(format!("(first {MAX_COLS} columns shown)"));
        }
        if let Some(source) = source {
            ui.weak(format!("mirrors {} (read-only)", world.node_name(source)));
        }
        if let DatRef::Fifo(fifo) = &dat {
            if fifo.bytes_column() {
                ui.weak("bytes in hex");
            }
            if fifo.dropped() > 0 {
                ui.weak(format!("{} older rows dropped (clamp)", fifo.dropped()));
            }
        }
        if wrap && rows > WRAP_MAX_ROWS {
            ui.weak(format!("word wrap off above {WRAP_MAX_ROWS} rows"));
        }
    });
    if rows == 0 {
        ui.weak(if editable {
            "Empty table: + Row adds one."
        } else {
            "Empty."
        });
        return;
    }
    let row_height = ui.text_style_height(&egui::TextStyle::Monospace) + 4.0;
    let char_width =
        ui.fonts_mut(|f| f.glyph_width(&egui::TextStyle::Monospace.resolve(ui.style()), '0'));
    let wrap_rows = wrap && rows <= WRAP_MAX_ROWS;
    let table = match &dat {
        DatRef::Table(t) => Some(*t),
        _ => None,
    };
    let mut cells = Cells {
        state,
        dat: &dat,
        table,
        id,
        cols,
        editable,
        wrap: wrap_rows,
        actions,
    };
    egui::ScrollArea::horizontal()
        .id_salt(("table-h", id))
        .show(ui, |ui| {
            let builder = TableBuilder::new(ui)
                .id_salt(("table", id))
                .striped(true)
                .resizable(true)
                .auto_shrink([false, false])
                .column(Column::exact(52.0))
                .columns(
                    Column::initial(150.0)
                        .at_least(40.0)
                        .clip(true)
                        .resizable(true),
                    cols,
                );
            builder
                .header(row_height, |mut header| {
                    header.col(|ui| {
                        ui.weak("row");
                    });
                    for c in 0..cols {
                        header.col(|ui| {
                            ui.weak(c.to_string());
                        });
                    }
                })
                .body(|body| {
                    if wrap_rows {
                        let widths = body.widths().get(1..).unwrap_or_default().to_vec();
                        let dat = cells.dat;
                        let heights = (0..rows).map(|r| {
                            let lines = widths
                                .iter()
                                .enumerate()
                                .map(|(c, w)| {
                                    let text = table_cell(dat, r, c);
                                    wrapped_lines(&text, *w, char_width)
                                })
                                .max()
                                .unwrap_or(1);
                            row_height + (lines.saturating_sub(1)) as f32 * (row_height - 4.0)
                        });
                        body.heterogeneous_rows(heights, |row| cells.row(row));
                    } else {
                        body.rows(row_height, rows, |row| cells.row(row));
                    }
                });
        });
}

/// Lines a cell wraps to at `width` (an estimate from the monospace advance).
fn wrapped_lines(text: &str, width: f32, char_width: f32) -> usize {
    let per_line = ((width - 8.0) / char_width.max(1.0)).max(1.0) as usize;
    text.split('\n')
        .map(|l| l.chars().count().div_ceil(per_line).max(1))
        .sum::<usize>()
        .max(1)
}

struct Cells<'a> {
    state: &'a mut TableState,
    dat: &'a DatRef<'a>,
    table: Option<&'a Table>,
    id: NodeId,
    cols: usize,
    editable: bool,
    wrap: bool,
    actions: &'a mut Vec<Action>,
}

impl Cells<'_> {
    fn row(&mut self, mut row: TableRow<'_, '_>) {
        let r = row.index();
        row.col(|ui| {
            let label = ui.add(
                egui::Label::new(RichText::new(r.to_string()).weak().monospace())
                    .sense(egui::Sense::click()),
            );
            if self.editable {
                label.context_menu(|ui| self.row_menu(ui, r));
            }
        });
        for c in 0..self.cols {
            row.col(|ui| self.cell(ui, r, c));
        }
    }

    fn cell(&mut self, ui: &mut Ui, r: usize, c: usize) {
        let text = table_cell(self.dat, r, c);
        let editing = self
            .state
            .editing
            .as_mut()
            .filter(|e| e.id == self.id && e.row == r && e.col == c);
        if let Some(edit) = editing {
            let response = ui.add(
                egui::TextEdit::singleline(&mut edit.text)
                    .font(egui::TextStyle::Monospace)
                    .desired_width(f32::INFINITY),
            );
            if !edit.focus_requested {
                response.request_focus();
                edit.focus_requested = true;
            }
            if response.has_focus()
                && let Some(change) = ui.input_mut(|i| {
                    SHAPE_KEYS
                        .iter()
                        .find(|(key, _)| i.consume_shortcut(key))
                        .map(|(_, change)| *change)
                })
            {
                // The typed text goes in with the change, in one undo step.
                let typed = (edit.text != text).then(|| edit.text.clone());
                self.state.editing = None;
                self.reshape(change, r, c, typed);
                return;
            }
            if response.lost_focus() {
                let cancelled = ui.input(|i| i.key_pressed(egui::Key::Escape));
                if !cancelled && edit.text != text {
                    self.actions.push(Action::edit(Command::SetCell {
                        id: self.id,
                        row: r,
                        col: c,
                        value: edit.text.clone(),
                    }));
                }
                self.state.editing = None;
            }
            return;
        }
        let wrap_mode = if self.wrap {
            egui::TextWrapMode::Wrap
        } else {
            egui::TextWrapMode::Truncate
        };
        ui.add(
            egui::Label::new(RichText::new(&text).monospace())
                .wrap_mode(wrap_mode)
                .selectable(false),
        );
        // The whole cell answers, not just its text: an empty cell is as clickable as a full one.
        let response = ui.interact(
            ui.max_rect(),
            ui.id().with(("cell", r, c)),
            egui::Sense::click(),
        );
        if response.clicked() {
            self.state.selected = Some((self.id, r, c));
        }
        if self.editable {
            response.context_menu(|ui| self.cell_menu(ui, r, c));
        }
        if self.editable && response.clicked() {
            self.state.editing = Some(CellEdit {
                id: self.id,
                row: r,
                col: c,
                text,
                focus_requested: false,
            });
        } else if !self.wrap && text.chars().count() > 20 {
            response.on_hover_text(text);
        }
    }

    /// Applies a change of shape at cell (`r`, `c`), with text typed into that cell, as one edit.
    fn reshape(&mut self, change: Reshape, r: usize, c: usize, typed: Option<String>) {
        let Some(table) = self.table else {
            return;
        };
        let mut table = table.clone();
        if let Some(value) = typed {
            table.set_cell(r, c, value);
        }
        change.apply(&mut table, r, c);
        self.actions
            .push(Action::edit(Command::SetTable { id: self.id, table }));
    }

    /// Right-click on any cell: insert or delete rows and columns (one undo step each).
    fn cell_menu(&mut self, ui: &mut Ui, r: usize, c: usize) {
        for (key, change) in SHAPE_KEYS {
            let shortcut = ui.ctx().format_shortcut(key);
            if ui
                .add(egui::Button::new(change.label()).shortcut_text(shortcut))
                .clicked()
            {
                self.reshape(*change, r, c, None);
                ui.close();
            }
        }
    }

    /// Right-click on a row number: insert or delete rows (one undo step each).
    fn row_menu(&mut self, ui: &mut Ui, r: usize) {
        let Some(table) = self.table else {
            return;
        };
        let mut edit = |ui: &mut Ui, text: &str, change: &dyn Fn(&mut Table)| {
            if ui.button(text).clicked() {
                let mut table = table.clone();
                change(&mut table);
                self.actions
                    .push(Action::edit(Command::SetTable { id: self.id, table }));
                ui.close();
            }
        };
        edit(ui, "Insert row above", &|t| {
            t.insert_row(r, Vec::new());
        });
        edit(ui, "Insert row below", &|t| {
            t.insert_row(r + 1, Vec::new());
        });
        edit(ui, "Delete row", &|t| {
            t.delete_row(r);
        });
        ui.separator();
        let cols = self.cols;
        edit(ui, "Delete last column", &|t| {
            for row in &mut t.rows {
                row.truncate(cols.saturating_sub(1));
            }
        });
    }
}

/// A change of a table's shape at a cell.
#[derive(Debug, Clone, Copy)]
enum Reshape {
    RowAbove,
    RowBelow,
    ColLeft,
    ColRight,
    DeleteRow,
    DeleteCol,
}

impl Reshape {
    fn label(self) -> &'static str {
        match self {
            Reshape::RowAbove => "Insert row above",
            Reshape::RowBelow => "Insert row below",
            Reshape::ColLeft => "Insert column left",
            Reshape::ColRight => "Insert column right",
            Reshape::DeleteRow => "Delete row",
            Reshape::DeleteCol => "Delete column",
        }
    }

    fn apply(self, t: &mut Table, r: usize, c: usize) {
        let insert_col = |t: &mut Table, at: usize| {
            for row in &mut t.rows {
                if row.len() > at {
                    row.insert(at, String::new());
                }
            }
            // A column past every row's end still shows: the first row reaches it.
            if let Some(first) = t.rows.first_mut()
                && first.len() <= at
            {
                first.resize(at + 1, String::new());
            }
        };
        match self {
            Reshape::RowAbove => {
                t.insert_row(r, Vec::new());
            }
            Reshape::RowBelow => {
                t.insert_row(r + 1, Vec::new());
            }
            Reshape::ColLeft => insert_col(t, c),
            Reshape::ColRight => insert_col(t, c + 1),
            Reshape::DeleteRow => {
                t.delete_row(r);
            }
            Reshape::DeleteCol => {
                for row in &mut t.rows {
                    if row.len() > c {
                        row.remove(c);
                    }
                }
            }
        }
    }
}

/// The keys that change a table's shape while a cell is edited (F1 lists them too: `document.rs`).
const SHAPE_KEYS: &[(egui::KeyboardShortcut, Reshape)] = {
    use egui::{Key, KeyboardShortcut as K, Modifiers as M};
    const CS: M = M::COMMAND.plus(M::SHIFT);
    &[
        (K::new(CS, Key::ArrowUp), Reshape::RowAbove),
        (K::new(CS, Key::ArrowDown), Reshape::RowBelow),
        (K::new(CS, Key::ArrowLeft), Reshape::ColLeft),
        (K::new(CS, Key::ArrowRight), Reshape::ColRight),
        (K::new(CS, Key::Delete), Reshape::DeleteRow),
        (K::new(CS, Key::Backspace), Reshape::DeleteCol),
    ]
};

/// Nodes of a JSON tree drawn at most (a huge message stays readable as text).
const JSON_TREE_MAX_NODES: usize = 2_000;

/// The selected cell, whole: pretty JSON (or a collapsible tree) when it parses, a hex dump when
/// it is binary, else its text; with a copy button.
fn inspector(ui: &mut Ui, state: &mut TableState, r: usize, c: usize, text: &str, hex: bool) {
    let json = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .filter(|v| v.is_object() || v.is_array());
    let bytes = binary_bytes(text, hex);
    ui.horizontal(|ui| {
        ui.strong(format!("row {r}, col {c}"));
        ui.weak(format!("{} chars", text.chars().count()));
        if ui
            .small_button("Copy")
            .on_hover_text("Copy the whole cell")
            .clicked()
        {
            ui.ctx().copy_text(text.to_string());
        }
        if let Some(json) = &json {
            if ui
                .small_button("Copy pretty")
                .on_hover_text("Copy it pretty-printed")
                .clicked()
            {
                ui.ctx()
                    .copy_text(serde_json::to_string_pretty(json).unwrap_or_default());
            }
            ui.toggle_value(&mut state.json_tree, "Tree");
        }
    });
    ui.separator();
    egui::ScrollArea::both()
        .id_salt("cell-inspector-scroll")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            if let Some(json) = &json {
                if state.json_tree {
                    let mut budget = JSON_TREE_MAX_NODES;
                    json_tree(ui, "value", json, &mut budget);
                } else {
                    let pretty = serde_json::to_string_pretty(json).unwrap_or_default();
                    ui.add(
                        egui::Label::new(RichText::new(pretty).monospace())
                            .wrap_mode(egui::TextWrapMode::Extend),
                    );
                }
            } else if let Some(bytes) = bytes {
                ui.add(
                    egui::Label::new(RichText::new(hex_dump(&bytes)).monospace())
                        .wrap_mode(egui::TextWrapMode::Extend),
                );
            } else {
                ui.add(
                    egui::Label::new(RichText::new(text).monospace())
                        .wrap_mode(egui::TextWrapMode::Wrap),
                );
            }
        });
}

/// A JSON value as collapsing headers, drawing at most `budget` nodes.
fn json_tree(ui: &mut Ui, key: &str, value: &serde_json::Value, budget: &mut usize) {
    if *budget == 0 {
        return;
    }
    *budget -= 1;
    let children: Vec<(String, &serde_json::Value)> = match value {
        serde_json::Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        leaf => {
            ui.label(RichText::new(format!("{key}: {leaf}")).monospace());
            return;
        }
    };
    let summary = if value.is_object() {
        format!("{key} {{{}}}", children.len())
    } else {
        format!("{key} [{}]", children.len())
    };
    egui::CollapsingHeader::new(RichText::new(summary).monospace())
        .id_salt(ui.id().with(key))
        .default_open(true)
        .show(ui, |ui| {
            for (k, v) in children {
                json_tree(ui, &k, v, budget);
            }
        });
}

/// The bytes of a binary cell: the WebSocket DAT's bytes column (hex text), or text holding
/// control characters; `None` for ordinary text.
fn binary_bytes(text: &str, hex_column: bool) -> Option<Vec<u8>> {
    if hex_column {
        let parsed: Option<Vec<u8>> = text
            .split_ascii_whitespace()
            .map(|h| u8::from_str_radix(h, 16).ok())
            .collect();
        if let Some(bytes) = parsed.filter(|b| !b.is_empty()) {
            return Some(bytes);
        }
    }
    text.chars()
        .any(|ch| ch.is_control() && !matches!(ch, '\n' | '\r' | '\t'))
        .then(|| text.as_bytes().to_vec())
}

/// 16 bytes a line: offset, hex, and the printable ASCII.
fn hex_dump(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let _ = write!(out, "{:08x}  ", i * 16);
        for j in 0..16 {
            match chunk.get(j) {
                Some(b) => {
                    let _ = write!(out, "{b:02x} ");
                }
                None => out.push_str("   "),
            }
        }
        out.push(' ');
        out.extend(chunk.iter().map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                char::from(*b)
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hex_dump_shows_offsets_bytes_and_ascii() {
        let dump = hex_dump(b"hello\x00world, this is long");
        let first = dump.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("00000000  68 65 6c 6c 6f 00 77"),
            "{dump}"
        );
        assert!(first.ends_with("hello.world, thi"), "{dump}");
        assert!(
            dump.lines()
                .nth(1)
                .unwrap_or_default()
                .starts_with("00000010  ")
        );
        assert_eq!(binary_bytes("00 ff 10", true), Some(vec![0, 255, 16]));
        assert_eq!(binary_bytes("plain text\n", false), None);
    }

    #[test]
    fn reshaping_inserts_and_deletes_rows_and_columns() {
        let mut t = Table::from_rows(vec![
            vec!["a".into(), "b".into()],
            vec!["c".into(), "d".into()],
        ]);
        Reshape::ColRight.apply(&mut t, 0, 0);
        assert_eq!(t.rows[0], ["a", "", "b"]);
        Reshape::DeleteCol.apply(&mut t, 0, 1);
        assert_eq!(t.rows[1], ["c", "d"]);
        Reshape::RowAbove.apply(&mut t, 1, 0);
        assert_eq!(t.num_rows(), 3);
        Reshape::DeleteRow.apply(&mut t, 1, 0);
        assert_eq!(t.rows[1], ["c", "d"]);
        Reshape::ColRight.apply(&mut t, 0, 1);
        assert_eq!(t.rows[0], ["a", "b", ""]);
    }
}
