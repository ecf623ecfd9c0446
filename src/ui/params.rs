//! The parameter panel: the current node's name and its parameters on pages named as in
//! TouchDesigner. Each parameter shows its label (token and help in the tooltip) and a widget
//! fitting its kind; every change goes in as a command, merged into one undo step while a number
//! is dragged. The operator picker of a pin parameter is the same thing as the wire.

use std::collections::HashMap;

use egui::{RichText, Ui};

use super::actions::Action;
use super::undo::Merge;
use crate::engine::{Command, World};
use crate::project::{NodeId, ParValue};
use crate::schema::{Input, OpKind, ParDef, ParKind};

#[derive(Default)]
pub struct ParamsState {
    /// The page shown for each kind (kept when switching between nodes of that kind).
    pages: HashMap<OpKind, &'static str>,
    /// Text being typed into a field, committed when the field loses focus (Enter, Tab, a click
    /// elsewhere), so a server is not restarted on every keystroke.
    buffers: HashMap<(NodeId, &'static str), String>,
}

/// Key of the name field in `buffers` (no parameter has an empty token).
const NAME_KEY: &str = "";

pub fn show(
    ui: &mut Ui,
    state: &mut ParamsState,
    world: &World,
    id: NodeId,
    actions: &mut Vec<Action>,
) {
    let Some(node) = world.project.node(id) else {
        return;
    };
    let kind = node.kind;
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        ui.heading(kind.label());
        ui.weak(format!("{id}"));
    });
    egui::Grid::new(("name", id)).num_columns(2).show(ui, |ui| {
        let label = ui
            .label("Name")
            .on_hover_text("Unique in the project; scripts find the node with op(\"name\").");
        let (response, committed) = text_field(ui, state, (id, NAME_KEY), &node.name, false, 180.0);
        response.labelled_by_param(label.id);
        if let Some(name) = committed {
            actions.push(Action::edit(Command::RenameNode {
                id,
                name: name.trim().to_string(),
            }));
        }
        ui.end_row();
    });
    if let Some(state) = world.state(id) {
        if let Some(error) = &state.status_error {
            ui.label(RichText::new(error).color(ui.visuals().error_fg_color));
        }
        if let Some(error) = &state.last_error {
            let text = match error.line {
                Some(line) => format!("last error (line {line}): {}", error.text),
                None => format!("last error: {}", error.text),
            };
            ui.label(
                RichText::new(text)
                    .small()
                    .color(ui.visuals().warn_fg_color),
            );
        }
    }
    ui.separator();
    let pages = kind.pages();
    let Some(first) = pages.first().copied() else {
        return;
    };
    let page = state.pages.entry(kind).or_insert(first);
    ui.horizontal_wrapped(|ui| {
        for p in &pages {
            ui.selectable_value(page, *p, *p);
        }
    });
    let page = *page;
    ui.separator();
    egui::ScrollArea::vertical()
        .id_salt("params-scroll")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            egui::Grid::new(("params", id, page))
                .num_columns(2)
                .spacing([12.0, 6.0])
                .striped(true)
                .show(ui, |ui| {
                    for def in kind.params().iter().filter(|d| d.page == page) {
                        row(ui, state, world, id, def, actions);
                        ui.end_row();
                    }
                });
        });
}

fn row(
    ui: &mut Ui,
    state: &mut ParamsState,
    world: &World,
    id: NodeId,
    def: &'static ParDef,
    actions: &mut Vec<Action>,
) {
    let label = ui
        .label(def.label)
        .on_hover_text(format!("{}  ({})\n{}", def.label, def.token, def.help));
    let token = def.token;
    let set = |value: ParValue| Command::SetParam {
        id,
        token: token.to_string(),
        value,
    };
    let raw = world
        .par(id, token)
        .cloned()
        .or_else(|| def.default_value());
    match def.kind {
        ParKind::Toggle(_) => {
            let mut on = world.par_bool(id, token);
            let r = ui.checkbox(&mut on, "").labelled_by_param(label.id);
            if r.changed() {
                actions.push(Action::edit(set(ParValue::Bool(on))));
            }
        }
        ParKind::Int { min, max, .. } => {
            let mut value = world.par_int(id, token);
            let r = ui
                .add(
                    egui::DragValue::new(&mut value)
                        .range(min..=max)
                        .update_while_editing(false),
                )
                .labelled_by_param(label.id);
            if r.changed() {
                actions.push(Action::merged(
                    set(ParValue::Int(value)),
                    Merge::Param(id, token),
                ));
            }
        }
        ParKind::Float { min, max, .. } => {
            let mut value = world.par_f64(id, token);
            let r = ui
                .add(
                    egui::DragValue::new(&mut value)
                        .range(min..=max)
                        .speed(0.01)
                        .update_while_editing(false),
                )
                .labelled_by_param(label.id);
            if r.changed() {
                actions.push(Action::merged(
                    set(ParValue::Float(value)),
                    Merge::Param(id, token),
                ));
            }
        }
        ParKind::Str(_) | ParKind::Password => {
            let current = raw.map(|v| v.to_string()).unwrap_or_default();
            let password = def.kind == ParKind::Password;
            let (r, committed) = text_field(ui, state, (id, token), &current, password, 200.0);
            r.labelled_by_param(label.id);
            if let Some(text) = committed {
                actions.push(Action::edit(set(ParValue::Str(text))));
            }
        }
        ParKind::File { .. } | ParKind::Folder => {
            let (extensions, folder) = match def.kind {
                ParKind::File { extensions } => (extensions, false),
                _ => (&[][..], true),
            };
            let current = raw.map(|v| v.to_string()).unwrap_or_default();
            ui.horizontal(|ui| {
                let (r, committed) = text_field(ui, state, (id, token), &current, false, 170.0);
                r.labelled_by_param(label.id);
                if let Some(text) = committed {
                    actions.push(Action::edit(set(ParValue::Str(text))));
                }
                let hint = if folder {
                    "Choose a folder".to_string()
                } else {
                    format!("Choose a file ({})", extensions.join(", "))
                };
                if ui.button("…").on_hover_text(hint).clicked() {
                    actions.push(Action::PickFile {
                        id,
                        token,
                        extensions,
                        folder,
                    });
                }
            });
        }
        ParKind::Menu { items, .. } => {
            let current = raw.map(|v| v.to_string()).unwrap_or_default();
            let shown = items
                .iter()
                .find(|(t, _)| *t == current)
                .map_or(current.as_str(), |(_, l)| *l);
            let r = egui::ComboBox::from_id_salt(("menu", id, token))
                .selected_text(shown)
                .width(180.0)
                .show_ui(ui, |ui| {
                    for (item_token, item_label) in items {
                        if ui
                            .selectable_label(current == *item_token, *item_label)
                            .clicked()
                        {
                            actions.push(Action::edit(set(ParValue::Str(item_token.to_string()))));
                        }
                    }
                });
            r.response.labelled_by_param(label.id);
        }
        ParKind::Pulse => {
            let r = ui
                .button("Pulse")
                .on_hover_text(def.help)
                .labelled_by_param(label.id);
            if r.clicked() {
                actions.push(Action::Run(Command::Pulse {
                    id,
                    token: token.to_string(),
                }));
            }
        }
        ParKind::Op(input) => op_picker(ui, world, id, input, label.id, actions),
    }
}

/// Chooses the node wired into a pin: the same edit as drawing the wire.
fn op_picker(
    ui: &mut Ui,
    world: &World,
    id: NodeId,
    input: Input,
    label: egui::Id,
    actions: &mut Vec<Action>,
) {
    let wired = world.project.input_of(id, input);
    let shown = wired.map_or("(none)", |w| world.node_name(w));
    ui.horizontal(|ui| {
        let r = egui::ComboBox::from_id_salt(("op", id, input.token()))
            .selected_text(shown)
            .width(180.0)
            .show_ui(ui, |ui| {
                let mut choose = |from: Option<NodeId>| {
                    actions.push(Action::edit(Command::SetInput {
                        to: id,
                        input,
                        from,
                    }));
                };
                if ui.selectable_label(wired.is_none(), "(none)").clicked() {
                    choose(None);
                }
                for node in world
                    .project
                    .nodes
                    .iter()
                    .filter(|n| n.id != id && input.accepts(n.kind))
                {
                    if ui
                        .selectable_label(wired == Some(node.id), &node.name)
                        .clicked()
                    {
                        choose(Some(node.id));
                    }
                }
            });
        r.response.labelled_by_param(label);
        if let Some(from) = wired
            && ui
                .small_button("Show")
                .on_hover_text("Select the wired operator")
                .clicked()
        {
            actions.push(Action::Focus(from));
        }
    });
}

/// Names a widget by the label in the parameter's first column, for screen readers (and tests
/// that find widgets by label). The widget's own, empty label is cleared so the relation counts.
trait LabelledByParam {
    fn labelled_by_param(self, label: egui::Id) -> Self;
}

impl LabelledByParam for egui::Response {
    fn labelled_by_param(self, label: egui::Id) -> Self {
        let response = self.labelled_by(label);
        response
            .ctx
            .accesskit_node_builder(response.id, egui::accesskit::Node::clear_label);
        response
    }
}

/// A single-line field over `current`; returns the text to commit when editing ends with a
/// change (Escape cancels).
fn text_field(
    ui: &mut Ui,
    state: &mut ParamsState,
    key: (NodeId, &'static str),
    current: &str,
    password: bool,
    width: f32,
) -> (egui::Response, Option<String>) {
    let mut text = state
        .buffers
        .get(&key)
        .cloned()
        .unwrap_or_else(|| current.to_string());
    let response = ui.add(
        egui::TextEdit::singleline(&mut text)
            .password(password)
            .desired_width(width),
    );
    let mut committed = None;
    if response.lost_focus() {
        let cancelled = ui.input(|i| i.key_pressed(egui::Key::Escape));
        if !cancelled && text != current {
            committed = Some(text);
        }
        state.buffers.remove(&key);
    } else if response.has_focus() {
        state.buffers.insert(key, text);
    } else {
        state.buffers.remove(&key);
    }
    (response, committed)
}
