//! The code editor for Text and Execute DATs: syntax highlighting by the Common page's language,
//! line numbers, word wrap from `wordwrap`, and the line of the last script error marked with
//! the error beside it. Each change goes in as `SetText`; typing merges into one undo step.

use egui::{Color32, RichText, Ui};

use super::actions::Action;
use super::highlight::{Language, highlight};
use super::table_view::word_wrap;
use super::undo::Merge;
use crate::engine::{Command, World};
use crate::project::NodeId;

#[derive(Default)]
pub struct EditorState {
    node: Option<NodeId>,
    buffer: String,
}

pub fn show(
    ui: &mut Ui,
    state: &mut EditorState,
    world: &World,
    id: NodeId,
    actions: &mut Vec<Action>,
) {
    let Some(node) = world.project.node(id) else {
        return;
    };
    let Some(text) = node.text.as_deref() else {
        return;
    };
    // The engine's text wins whenever it differs (undo, scripts, another node): our own edits
    // are already in it by the next frame, since actions apply at the end of each frame.
    if state.node != Some(id) || state.buffer != text {
        state.node = Some(id);
        state.buffer = text.to_string();
    }
    // Callbacks are Python whatever their Language says (TouchDesigner's callbacks DATs are too).
    let language = if world.is_script(id) {
        Language::Python
    } else {
        Language::from_par(&world.par_str(id, "language").unwrap_or_default())
    };
    let wrap = word_wrap(world, id);
    let error = world.state(id).and_then(|s| s.script_error.clone());
    let error_line = error.as_ref().and_then(|e| e.line);
    ui.horizontal(|ui| {
        ui.strong(&node.name);
        ui.weak(format!("{} lines", text.lines().count()));
        if let Some(error) = &error {
            let where_ = error
                .line
                .map(|l| format!("line {l}: "))
                .unwrap_or_default();
            ui.label(
                RichText::new(format!("{where_}{}", error.text)).color(ui.visuals().error_fg_color),
            );
        }
    });
    let dark = ui.visuals().dark_mode;
    let font = egui::TextStyle::Monospace.resolve(ui.style());
    let mut layouter = |ui: &Ui, buffer: &dyn egui::TextBuffer, wrap_width: f32| {
        let mut job = highlight(buffer.as_str(), language, font.clone(), dark);
        job.wrap.max_width = if wrap { wrap_width } else { f32::INFINITY };
        ui.fonts_mut(|f| f.layout_job(job))
    };
    let scroll = if wrap {
        egui::ScrollArea::vertical()
    } else {
        egui::ScrollArea::both()
    };
    scroll
        .id_salt(("editor", id))
        .auto_shrink([false, false])
        .show(ui, |ui| {
            ui.horizontal_top(|ui| {
                if !wrap {
                    // Line numbers line up with rows only without wrapping.
                    let count = state.buffer.split('\n').count();
                    let numbers: String = (1..=count).map(|n| format!("{n:>4}\n")).collect();
                    ui.label(
                        RichText::new(numbers.trim_end())
                            .monospace()
                            .color(ui.visuals().weak_text_color()),
                    );
                }
                let output = egui::TextEdit::multiline(&mut state.buffer)
                    .code_editor()
                    .desired_width(if wrap {
                        ui.available_width()
                    } else {
                        f32::INFINITY
                    })
                    .desired_rows(12)
                    .lock_focus(true)
                    // No vertical margin, so rows line up with the line numbers beside them.
                    .margin(egui::Margin::symmetric(4, 0))
                    .layouter(&mut layouter)
                    .show(ui);
                if output.response.response.changed() {
                    actions.push(Action::merged(
                        Command::SetText {
                            id,
                            text: state.buffer.clone(),
                        },
                        Merge::Text(id),
                    ));
                }
                if let (Some(line), Some(error)) = (error_line, &error) {
                    mark_line(ui, &output, line, &error.text);
                }
            });
        });
}

/// Tints the row of `line` (1-based) and writes the error at its end.
fn mark_line(ui: &Ui, output: &egui::text_edit::TextEditOutput, line: usize, text: &str) {
    let mut current = 1;
    let mut rect = None;
    for row in &output.galley.rows {
        if current == line {
            let r = row.rect().translate(output.galley_pos.to_vec2());
            rect = Some(rect.map_or(r, |acc: egui::Rect| acc.union(r)));
        }
        if row.ends_with_newline {
            current += 1;
        }
        if current > line {
            break;
        }
    }
    let Some(rect) = rect else {
        return;
    };
    let painter = ui.painter();
    let full = egui::Rect::from_x_y_ranges(output.response.response.rect.x_range(), rect.y_range());
    painter.rect_filled(
        full,
        0.0,
        Color32::from_rgba_unmultiplied(0xe0, 0x40, 0x40, 40),
    );
    let message: String = text.chars().take(120).collect();
    painter.text(
        egui::pos2(rect.right() + 24.0, rect.center().y),
        egui::Align2::LEFT_CENTER,
        format!("◀ {message}"),
        egui::TextStyle::Monospace.resolve(ui.style()),
        ui.visuals().error_fg_color,
    );
}
