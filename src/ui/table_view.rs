//! The table viewer: a DAT's cells with virtual scrolling (only visible rows are read, so a
//! 100,000-row table scrolls smoothly), cells editable in Table DATs, word wrap from the Common
//! page, and the WebSocket DAT's bytes column shown as hex.

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
    let editable = matches!(dat, DatRef::Table(_)) && source.is_none();
    let rows = dat.num_rows();
    let all_cols = dat.num_cols();
    let cols = all_cols.min(MAX_COLS);
    let wrap = word_wrap(world, id);
    if state.editing.as_ref().is_some_and(|e| e.id != id) {
        state.editing = None;
    }
    ui.horizontal(|ui| {
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
        if editable {
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button("+ Column").clicked() {
                    actions.push(Action::edit(Command::SetCell {
                        id,
                        row: 0,
                        col: all_cols,
                        value: String::new(),
                    }));
                }
                if ui.button("+ Row").clicked() {
                    actions.push(Action::edit(Command::SetCell {
                        id,
                        row: rows,
                        col: 0,
                        value: String::new(),
                    }));
                }
            });
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
        let sense = if self.editable {
            egui::Sense::click()
        } else {
            egui::Sense::hover()
        };
        let response = ui.add(
            egui::Label::new(RichText::new(&text).monospace())
                .wrap_mode(wrap_mode)
                .sense(sense),
        );
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
