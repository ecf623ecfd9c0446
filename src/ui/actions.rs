//! What the user asked for, applied in one place after the UI pass: panels, menus, shortcuts and
//! tests all queue [`Action`]s, and [`App::apply_actions`] turns them into engine commands (with an
//! undo snapshot for edits), file operations, or selection changes. Native dialogs run here, with
//! the engine unlocked, so servers keep answering while a dialog is open.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::App;
use super::document::{Choice, Pending};
use super::file_dialog::{FileDialog, Purpose};
use super::undo::Merge;
use crate::engine::Command;
use crate::project::{Node, NodeId, ParValue, Project, Wire};
use crate::schema::OpKind;

/// One thing to do at the end of the frame.
#[must_use]
#[derive(Debug, Clone)]
pub enum Action {
    /// A user edit of the document: one undo step, shared with the previous edit when both carry
    /// the same merge key (a drag, typing).
    Edit {
        commands: Vec<Command>,
        merge: Option<Merge>,
    },
    /// A command that is not an edit of the document (a pulse, closing a client): no undo step.
    Run(Command),
    /// Creates an operator at a graph position, or the middle of the view when `None`.
    Create {
        kind: OpKind,
        pos: Option<(f32, f32)>,
    },
    /// Selects a node and brings it into view (console lines, pickers).
    Focus(NodeId),
    /// Fits every node in the view (H).
    FrameAll,
    /// Fits the selected nodes in the view (F).
    FrameSelection,
    SelectAll,
    /// Starts renaming the current node in place.
    Rename,
    /// Opens the searchable create menu at the pointer.
    CreateMenu,
    Undo,
    Redo,
    Copy,
    Cut,
    /// Pastes this text (from the system clipboard) or, with `None`, the app's own clipboard.
    Paste(Option<String>),
    Duplicate,
    Delete,
    New,
    Open(Option<PathBuf>),
    Save,
    SaveAs(Option<PathBuf>),
    /// The answer to "save changes?".
    Resolve(Choice),
    /// Opens this file now (the unsaved-changes question, if any, was answered).
    OpenFile(PathBuf),
    /// A file (or folder) chosen for a path parameter in the in-app dialog.
    PickedFile {
        id: NodeId,
        token: &'static str,
        path: PathBuf,
    },
    /// Asks for a file (or a folder) for a path parameter with the native picker.
    PickFile {
        id: NodeId,
        token: &'static str,
        extensions: &'static [&'static str],
        folder: bool,
    },
    ClearConsole,
    Quit,
    Error(String),
}

impl Action {
    pub fn edit(command: Command) -> Action {
        Action::Edit {
            commands: vec![command],
            merge: None,
        }
    }

    pub fn merged(command: Command, merge: Merge) -> Action {
        Action::Edit {
            commands: vec![command],
            merge: Some(merge),
        }
    }
}

/// Copied nodes as they travel through the clipboard: RON text, so a copy can be pasted into
/// another project or read in a text editor.
#[derive(Serialize, Deserialize)]
struct Clip {
    datpatch_nodes: Vec<Node>,
    #[serde(default)]
    wires: Vec<Wire>,
}

/// Each action may queue more (an answered dialog runs what it was asked for); this bounds the
/// chain so a bug cannot loop forever.
const MAX_ACTION_ROUNDS: usize = 8;

/// What asking the native file dialog gave.
pub(super) enum Native<T> {
    Chosen(T),
    Cancelled,
    /// No dialog came up.
    Unavailable,
}

/// A native dialog that answers sooner than this did not open (see `native_dialog`).
const NATIVE_DIALOG_MIN: std::time::Duration = std::time::Duration::from_millis(300);

impl App {
    /// Shortcuts, dropped files and the window's close button, read before the panels so a
    /// shortcut is not also typed into a text field.
    pub(super) fn global_input(&mut self, ctx: &egui::Context) {
        use egui::{Key, KeyboardShortcut as Shortcut, Modifiers};
        let typing = ctx.text_edit_focused();
        let cmd = Modifiers::COMMAND;
        let cmd_shift = Modifiers::COMMAND | Modifiers::SHIFT;
        let mut actions = Vec::new();
        let mut tab = false;
        ctx.input_mut(|i| {
            // Shift variants first: Ctrl+Z would also match Ctrl+Shift+Z.
            if i.consume_shortcut(&Shortcut::new(cmd_shift, Key::Z))
                || i.consume_shortcut(&Shortcut::new(cmd, Key::Y))
            {
                actions.push(Action::Redo);
            } else if i.consume_shortcut(&Shortcut::new(cmd, Key::Z)) {
                actions.push(Action::Undo);
            }
            if i.consume_shortcut(&Shortcut::new(cmd_shift, Key::S)) {
                actions.push(Action::SaveAs(None));
            } else if i.consume_shortcut(&Shortcut::new(cmd, Key::S)) {
                actions.push(Action::Save);
            }
            if i.consume_shortcut(&Shortcut::new(cmd, Key::O)) {
                actions.push(Action::Open(None));
            }
            if i.consume_shortcut(&Shortcut::new(cmd, Key::N)) {
                actions.push(Action::New);
            }
            if i.consume_shortcut(&Shortcut::new(cmd, Key::Q)) {
                actions.push(Action::Quit);
            }
            if i.consume_key(Modifiers::NONE, Key::F1) {
                self.show_help = !self.show_help;
            }
            if typing {
                return;
            }
            if i.consume_shortcut(&Shortcut::new(cmd, Key::D)) {
                actions.push(Action::Duplicate);
            }
            if i.consume_shortcut(&Shortcut::new(cmd, Key::A)) {
                actions.push(Action::SelectAll);
            }
            if i.consume_key(Modifiers::NONE, Key::Delete)
                || i.consume_key(Modifiers::NONE, Key::Backspace)
            {
                actions.push(Action::Delete);
            }
            if i.consume_key(Modifiers::NONE, Key::F2) {
                actions.push(Action::Rename);
            }
            if i.consume_key(Modifiers::NONE, Key::H) {
                actions.push(Action::FrameAll);
            }
            if i.consume_key(Modifiers::NONE, Key::F) {
                actions.push(Action::FrameSelection);
            }
            if i.consume_key(Modifiers::NONE, Key::Tab) {
                tab = true;
                actions.push(Action::CreateMenu);
            }
            for event in &i.events {
                match event {
                    egui::Event::Copy => actions.push(Action::Copy),
                    egui::Event::Cut => actions.push(Action::Cut),
                    egui::Event::Paste(text) => actions.push(Action::Paste(Some(text.clone()))),
                    _ => {}
                }
            }
        });
        if tab {
            // Tab also moves keyboard focus; here it opens the create menu instead.
            ctx.memory_mut(|m| m.move_focus(egui::FocusDirection::None));
        }
        if !typing && ctx.input(|i| i.key_pressed(Key::Escape)) {
            self.graph.close_create_menu();
            self.show_help = false;
        }
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if let Some(path) = dropped.into_iter().next() {
            actions.push(Action::Open(Some(path)));
        }
        if ctx.input(|i| i.viewport().close_requested()) && !self.doc.allow_close {
            if self.is_dirty() {
                ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
                self.doc.pending = Some(Pending::Quit);
            } else {
                self.doc.allow_close = true;
            }
        }
        if ctx.input(|i| i.pointer.any_released()) {
            // A drag or a dragged value ended: the next edit is a new undo step.
            self.undo.close_group();
        }
        self.actions.extend(actions);
    }

    pub(super) fn apply_actions(&mut self, ctx: &egui::Context) {
        for _ in 0..MAX_ACTION_ROUNDS {
            let actions = std::mem::take(&mut self.actions);
            if actions.is_empty() {
                return;
            }
            for action in actions {
                self.apply(ctx, action);
            }
        }
    }

    fn apply(&mut self, ctx: &egui::Context, action: Action) {
        match action {
            Action::Edit { commands, merge } => {
                self.edit(commands, merge);
            }
            Action::Run(command) => {
                if let Err(e) = self.runner.engine.lock().apply(command) {
                    self.status = Some(e.to_string());
                }
            }
            Action::Create { kind, pos } => {
                let wanted = pos.unwrap_or_else(|| self.graph.view_center());
                let pos = {
                    let engine = self.runner.engine.lock();
                    self.graph.free_spot(engine.world(), kind, wanted)
                };
                let created = self.edit(
                    vec![Command::AddNode {
                        kind,
                        name: None,
                        pos,
                    }],
                    None,
                );
                if let Some(id) = created.first() {
                    self.graph.reveal(*id);
                }
            }
            Action::FrameAll => self.graph.frame_nodes(Vec::new()),
            Action::FrameSelection => {
                if !self.selection.nodes().is_empty() {
                    self.graph.frame_nodes(self.selection.nodes().to_vec());
                }
            }
            Action::Focus(id) => {
                self.selection.set_one(id);
                self.graph.center_on(id);
            }
            Action::SelectAll => {
                let ids = self.project().nodes.iter().map(|n| n.id).collect();
                self.selection.set(ids);
            }
            Action::Rename => {
                if let Some(id) = self.selection.current() {
                    let name = self.runner.engine.lock().world().node_name(id).to_string();
                    self.graph.start_rename(id, name);
                }
            }
            Action::CreateMenu => self.graph.open_create_menu(ctx),
            Action::Undo => self.undo_redo(true),
            Action::Redo => self.undo_redo(false),
            Action::Copy => self.copy(ctx),
            Action::Cut => {
                self.copy(ctx);
                self.delete_selected();
            }
            Action::Paste(text) => {
                let text = text.or_else(|| self.clipboard.clone());
                if let Some(text) = text {
                    let at = self.graph.pointer_graph_pos(ctx);
                    self.paste(&text, at);
                }
            }
            Action::Duplicate => {
                if let Some(text) = self.selected_as_clip() {
                    self.paste(&text, None);
                }
            }
            Action::Delete => self.delete_selected(),
            Action::New => self.request(Pending::New),
            Action::Open(path) => self.request(Pending::Open(path)),
            Action::Save => {
                self.save();
            }
            Action::SaveAs(path) => {
                self.save_as(path);
            }
            Action::Resolve(choice) => self.resolve(ctx, choice),
            Action::PickFile {
                id,
                token,
                extensions,
                folder,
            } => self.pick_file(id, token, extensions, folder),
            Action::PickedFile { id, token, path } => self.set_file_par(id, token, path),
            Action::OpenFile(path) => self.open_path(&path),
            Action::ClearConsole => {
                self.runner.engine.lock().console_mut().clear();
            }
            Action::Quit => self.request(Pending::Quit),
            Action::Error(text) => self.status = Some(text),
        }
        if let Some(pending) = self.doc.take_ready() {
            self.perform(ctx, pending);
        }
    }

    /// Applies a user edit under one undo step. Refused commands show their reason.
    pub(super) fn edit(&mut self, commands: Vec<Command>, merge: Option<Merge>) -> Vec<NodeId> {
        self.notice = None;
        let engine = self.runner.engine.clone();
        let mut engine = engine.lock();
        let revision = engine.world().revision;
        let took = self.undo.checkpoint(merge, || engine.project().clone());
        let mut created = Vec::new();
        let mut failed = None;
        for command in commands {
            match engine.apply(command) {
                Ok(applied) => created.extend(applied.created),
                Err(e) => failed = Some(e.to_string()),
            }
        }
        if engine.world().revision == revision && took {
            self.undo.discard_last();
        }
        match failed {
            Some(error) => self.status = Some(error),
            None => self.status = None,
        }
        if let Some(first) = created.first() {
            self.selection.set_one(*first);
        }
        created
    }

    fn undo_redo(&mut self, undo: bool) {
        let engine = self.runner.engine.clone();
        let mut engine = engine.lock();
        let current = engine.project().clone();
        // The view is where the user is looking, not part of the history.
        let view = current.view.clone();
        let restored = if undo {
            self.undo.undo(current)
        } else {
            self.undo.redo(current)
        };
        let Some(mut project) = restored else {
            self.status = Some(if undo {
                "nothing to undo".into()
            } else {
                "nothing to redo".into()
            });
            return;
        };
        project.view = view;
        match engine.apply(Command::SetDocument(project)) {
            Ok(_) => self.status = None,
            Err(e) => self.status = Some(e.to_string()),
        }
    }

    fn delete_selected(&mut self) {
        let ids: Vec<NodeId> = self.selection.nodes().to_vec();
        if ids.is_empty() {
            return;
        }
        let commands = ids
            .into_iter()
            .map(|id| Command::RemoveNode { id })
            .collect();
        self.edit(commands, None);
        self.selection.clear();
    }

    /// The selected nodes and the wires between them, as clipboard text.
    fn selected_as_clip(&self) -> Option<String> {
        let ids = self.selection.nodes();
        if ids.is_empty() {
            return None;
        }
        let engine = self.runner.engine.lock();
        let project = engine.project();
        let clip = Clip {
            datpatch_nodes: project
                .nodes
                .iter()
                .filter(|n| ids.contains(&n.id))
                .cloned()
                .collect(),
            wires: project
                .wires
                .iter()
                .filter(|w| ids.contains(&w.from) && ids.contains(&w.to))
                .cloned()
                .collect(),
        };
        ron::to_string(&clip).ok()
    }

    fn copy(&mut self, ctx: &egui::Context) {
        if let Some(text) = self.selected_as_clip() {
            ctx.copy_text(text.clone());
            self.clipboard = Some(text);
        }
    }

    /// Adds copied nodes with fresh ids and names (wires between them kept) as one undo step;
    /// `at` places their top-left corner, else they land beside the originals.
    fn paste(&mut self, text: &str, at: Option<(f32, f32)>) {
        let Ok(clip) = ron::from_str::<Clip>(text) else {
            // Not our nodes: a paste of plain text outside a text field does nothing.
            return;
        };
        if clip.datpatch_nodes.is_empty() {
            return;
        }
        let mut project = self.project();
        let new_ids = paste_into(&mut project, clip, at);
        self.edit(vec![Command::SetDocument(project)], None);
        self.selection.set(new_ids);
    }

    fn pick_file(
        &mut self,
        id: NodeId,
        token: &'static str,
        extensions: &'static [&'static str],
        folder: bool,
    ) {
        let base_dir = self.runner.engine.lock().world().base_dir.clone();
        let native = self.native_dialog(|| {
            let mut dialog = rfd::FileDialog::new().set_directory(&base_dir);
            if !extensions.is_empty() {
                dialog = dialog.add_filter(extensions.join(", "), extensions);
            }
            if folder {
                dialog.pick_folder()
            } else {
                dialog.pick_file()
            }
        });
        match native {
            Native::Chosen(path) => self.set_file_par(id, token, path),
            Native::Cancelled => {}
            Native::Unavailable => {
                self.file_dialog = Some(FileDialog::new(
                    Purpose::Parameter { id, token, folder },
                    &base_dir,
                    extensions,
                    "",
                ));
            }
        }
    }

    /// Asks the native dialog if there is one; when it is unavailable the in-app one is used,
    /// then and from then on.
    pub(super) fn native_dialog<T>(&mut self, ask: impl FnOnce() -> Option<T>) -> Native<T> {
        if !self.native_dialogs {
            return Native::Unavailable;
        }
        let asked = std::time::Instant::now();
        let answer = ask();
        // Nobody cancels a dialog this fast: none came up (rfd found no portal and no zenity,
        // and only said so on stderr).
        if answer.is_none() && asked.elapsed() < NATIVE_DIALOG_MIN {
            log::warn!("no native file dialog; using the in-app one");
            self.native_dialogs = false;
            return Native::Unavailable;
        }
        answer.map_or(Native::Cancelled, Native::Chosen)
    }

    fn set_file_par(&mut self, id: NodeId, token: &'static str, path: PathBuf) {
        let base_dir = self.runner.engine.lock().world().base_dir.clone();
        // Files beside the project are kept relative, so the project folder can move.
        let base = std::fs::canonicalize(&base_dir).unwrap_or(base_dir);
        let value = path
            .strip_prefix(&base)
            .map(std::path::Path::to_path_buf)
            .unwrap_or(path);
        self.edit(
            vec![Command::SetParam {
                id,
                token: token.to_string(),
                value: ParValue::Str(value.to_string_lossy().into_owned()),
            }],
            None,
        );
    }
}

/// Adds the clip's nodes to `project` with new ids and unique names; returns the new ids.
fn paste_into(project: &mut Project, clip: Clip, at: Option<(f32, f32)>) -> Vec<NodeId> {
    let min_x = clip
        .datpatch_nodes
        .iter()
        .map(|n| n.pos.0)
        .fold(f32::INFINITY, f32::min);
    let min_y = clip
        .datpatch_nodes
        .iter()
        .map(|n| n.pos.1)
        .fold(f32::INFINITY, f32::min);
    let offset = match at {
        Some((x, y)) => (x - min_x, y - min_y),
        None => (40.0, 40.0),
    };
    let mut remap = Vec::new();
    for mut node in clip.datpatch_nodes {
        let old = node.id;
        node.id = project.next_id();
        node.name = project.unique_name(&node.name);
        node.pos = (node.pos.0 + offset.0, node.pos.1 + offset.1);
        remap.push((old, node.id));
        project.nodes.push(node);
    }
    let new_id = |old: NodeId| remap.iter().find(|(o, _)| *o == old).map(|(_, n)| *n);
    for wire in clip.wires {
        if let (Some(from), Some(to)) = (new_id(wire.from), new_id(wire.to)) {
            project.wires.push(Wire {
                from,
                to,
                input: wire.input,
            });
        }
    }
    project.normalize();
    remap.into_iter().map(|(_, n)| n).collect()
}
