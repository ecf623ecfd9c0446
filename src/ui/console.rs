//! The console: time, level, node and text from every operator; filter by text and level;
//! pause (counting what arrived meanwhile, like Node-RED's debug sidebar); clear; click a line
//! to select its node. Only visible lines are laid out, so 10,000 lines scroll smoothly.

use egui::{Color32, RichText, Ui};

use super::actions::Action;
use crate::engine::{ConsoleLine, Level, World};

pub struct ConsoleState {
    filter: String,
    /// Lowest level shown.
    min_level: Level,
    /// While paused, lines from this sequence number on are held back.
    paused_at: Option<u64>,
}

impl Default for ConsoleState {
    fn default() -> Self {
        Self {
            filter: String::new(),
            min_level: Level::Debug,
            paused_at: None,
        }
    }
}

fn level_color(level: Level, ui: &Ui) -> Color32 {
    match level {
        Level::Debug => ui.visuals().weak_text_color(),
        Level::Info => ui.visuals().text_color(),
        Level::Warn => ui.visuals().warn_fg_color,
        Level::Error => ui.visuals().error_fg_color,
    }
}

/// `HH:MM:SS.mmm` (UTC, like the headless log).
fn clock(time_ms: i64) -> String {
    let secs = time_ms.div_euclid(1000);
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02}.{:03}", time_ms.rem_euclid(1000))
}

pub fn show(ui: &mut Ui, state: &mut ConsoleState, world: &World, actions: &mut Vec<Action>) {
    let console = &world.console;
    let filter = state.filter.to_lowercase();
    let shown: Vec<&ConsoleLine> = console
        .lines()
        .filter(|l| state.paused_at.is_none_or(|at| l.seq < at))
        .filter(|l| l.level >= state.min_level)
        .filter(|l| {
            filter.is_empty()
                || l.text.to_lowercase().contains(&filter)
                || l.node_name.to_lowercase().contains(&filter)
        })
        .collect();
    ui.horizontal(|ui| {
        ui.strong("Console");
        ui.add(
            egui::TextEdit::singleline(&mut state.filter)
                .hint_text("Filter text or node")
                .desired_width(180.0),
        );
        egui::ComboBox::from_id_salt("console-level")
            .selected_text(format!("{}+", state.min_level.label()))
            .width(70.0)
            .show_ui(ui, |ui| {
                for level in [Level::Debug, Level::Info, Level::Warn, Level::Error] {
                    ui.selectable_value(&mut state.min_level, level, format!("{}+", level.label()));
                }
            });
        match state.paused_at {
            Some(at) => {
                let held = console.next_seq().saturating_sub(at);
                if ui
                    .button(format!("Resume ({held} new)"))
                    .on_hover_text("Lines that arrived while paused")
                    .clicked()
                {
                    state.paused_at = None;
                }
            }
            None => {
                if ui
                    .button("Pause")
                    .on_hover_text("Hold the view; new lines are counted")
                    .clicked()
                {
                    state.paused_at = Some(console.next_seq());
                }
            }
        }
        if ui.button("Clear").clicked() {
            actions.push(Action::ClearConsole);
        }
        // The count is of what the filter shows, and says so when it hides lines.
        if shown.len() == console.len() {
            ui.weak(format!("{} lines", console.len()));
        } else {
            ui.weak(format!("{} of {} lines", shown.len(), console.len()));
        }
    });
    let row_height = ui.text_style_height(&egui::TextStyle::Monospace);
    egui::ScrollArea::vertical()
        .id_salt("console-scroll")
        .auto_shrink([false, false])
        .stick_to_bottom(true)
        .show_rows(ui, row_height, shown.len(), |ui, range| {
            for line in &shown[range] {
                line_ui(ui, line, world, actions);
            }
        });
}

fn line_ui(ui: &mut Ui, line: &ConsoleLine, world: &World, actions: &mut Vec<Action>) {
    let mut job = egui::text::LayoutJob::default();
    let font = egui::TextStyle::Monospace.resolve(ui.style());
    let mut add = |text: &str, color: Color32| {
        job.append(text, 0.0, egui::TextFormat::simple(font.clone(), color));
    };
    let weak = ui.visuals().weak_text_color();
    add(&clock(line.time_ms), weak);
    add(
        &format!(" {:5} ", line.level.label()),
        level_color(line.level, ui),
    );
    if !line.node_name.is_empty() {
        add(
            &format!("[{}] ", line.node_name),
            ui.visuals().hyperlink_color,
        );
    }
    add(&line.text, ui.visuals().text_color());
    if let Some(note) = line.repeat_note() {
        add(&note, weak);
    }
    let exists = line.node.is_some_and(|id| world.project.node(id).is_some());
    let response = ui.add(
        egui::Label::new(job)
            .wrap_mode(egui::TextWrapMode::Truncate)
            .sense(if exists {
                egui::Sense::click()
            } else {
                egui::Sense::hover()
            }),
    );
    if let Some(id) = line.node.filter(|_| exists) {
        if response.clicked() {
            actions.push(Action::Focus(id));
        }
        response.on_hover_text(RichText::new(format!(
            "{}\n\nClick to select {}",
            line.text, line.node_name
        )));
    }
}
