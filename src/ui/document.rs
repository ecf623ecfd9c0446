//! The document as a file: New, Open, Save, Save As, recent files, the window title with its
//! unsaved marker, "save changes?" before anything would lose edits (also on quit), and load
//! errors shown with file, line and column while the open project stays as it was.

use std::path::{Path, PathBuf};

use super::actions::{Action, Native};
use super::file_dialog::{self, FileDialog, Purpose};
use super::undo::Undo;
use super::{App, Selection};
use crate::engine::Command;
use crate::project::{self, LoadError, Project};
use crate::schema::OpKind;

/// Recent files remembered.
const MAX_RECENT: usize = 10;

/// Something that would close the document, waiting for the unsaved-changes answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    New,
    /// Open this file, or ask for one.
    Open(Option<PathBuf>),
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Save,
    Discard,
    Cancel,
}

/// A load error plus the offending line of the file, for the error dialog.
pub struct ShownLoadError {
    pub error: LoadError,
    pub excerpt: Option<String>,
}

pub struct Document {
    pub path: Option<PathBuf>,
    /// The undo state that was last saved (or opened).
    saved_state: u64,
    recent: Vec<PathBuf>,
    /// File the recent list is kept in; None keeps it in memory only (tests).
    recent_store: Option<PathBuf>,
    /// Waiting for the user to answer "save changes?".
    pub pending: Option<Pending>,
    /// Answered, to be carried out after this action.
    ready: Option<Pending>,
    pub load_error: Option<LoadError>,
    shown_error: Option<ShownLoadError>,
    /// The user agreed to quit (or nothing was unsaved): the next close request goes through.
    pub allow_close: bool,
    title: String,
}

impl Document {
    pub fn new(path: Option<PathBuf>, saved_state: u64) -> Document {
        Document {
            path,
            saved_state,
            recent: Vec::new(),
            recent_store: None,
            pending: None,
            ready: None,
            load_error: None,
            shown_error: None,
            allow_close: false,
            title: String::new(),
        }
    }

    pub fn is_dirty(&self, state: u64) -> bool {
        state != self.saved_state
    }

    pub fn take_ready(&mut self) -> Option<Pending> {
        self.ready.take()
    }

    pub fn set_recent_store(&mut self, store: Option<PathBuf>) {
        if let Some(path) = &store
            && let Ok(text) = std::fs::read_to_string(path)
        {
            self.recent = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(PathBuf::from)
                .take(MAX_RECENT)
                .collect();
        }
        self.recent_store = store;
    }

    pub fn recent(&self) -> &[PathBuf] {
        &self.recent
    }

    pub(super) fn remember(&mut self, path: &Path) {
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.recent.retain(|p| *p != path);
        self.recent.insert(0, path);
        self.recent.truncate(MAX_RECENT);
        self.store_recent();
    }

    fn clear_recent(&mut self) {
        self.recent.clear();
        self.store_recent();
    }

    fn store_recent(&self) {
        let Some(store) = &self.recent_store else {
            return;
        };
        let text: String = self
            .recent
            .iter()
            .map(|p| format!("{}\n", p.display()))
            .collect();
        // Losing the recent list is not worth bothering the user about.
        if let Some(dir) = store.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = project::write_atomic(store, text.as_bytes()) {
            log::warn!("could not save recent files to {}: {e}", store.display());
        }
    }

    pub fn update_title(&mut self, ctx: &egui::Context, state: u64) {
        let title = title_for(self.path.as_deref(), self.is_dirty(state));
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
    }
}

pub fn title_for(path: Option<&Path>, dirty: bool) -> String {
    let name = path
        .and_then(|p| p.file_name())
        .map_or_else(|| "untitled".into(), |n| n.to_string_lossy().into_owned());
    let marker = if dirty { "*" } else { "" };
    format!("{marker}{name} — datpatch")
}

/// The folder relative file parameters are read from.
pub fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `$XDG_CONFIG_HOME/datpatch/recent.txt` (or `~/.config/...`); None if neither is known.
pub fn default_recent_store() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("datpatch").join("recent.txt"))
}

fn excerpt(error: &LoadError) -> Option<String> {
    if error.line == 0 {
        return None;
    }
    let text = std::fs::read_to_string(&error.file).ok()?;
    let line = text.lines().nth(error.line - 1)?;
    let caret = " ".repeat(error.col.saturating_sub(1).min(line.chars().count()));
    Some(format!("{line}\n{caret}^"))
}

impl App {
    /// Runs `op` now, or first asks about unsaved changes.
    pub(super) fn request(&mut self, op: Pending) {
        if self.is_dirty() {
            self.doc.pending = Some(op);
        } else {
            self.doc.ready = Some(op);
        }
    }

    pub(super) fn resolve(&mut self, ctx: &egui::Context, choice: Choice) {
        let Some(pending) = self.doc.pending.take() else {
            return;
        };
        match choice {
            Choice::Cancel => {}
            Choice::Discard => self.perform(ctx, pending),
            Choice::Save => {
                if self.save() {
                    self.perform(ctx, pending);
                }
            }
        }
    }

    pub(super) fn perform(&mut self, ctx: &egui::Context, op: Pending) {
        match op {
            Pending::New => self.replace_document(Project::default(), None),
            Pending::Open(Some(path)) => self.open_path(&path),
            Pending::Open(None) => {
                let dir = self.dialog_dir();
                let native = self.native_dialog(|| {
                    rfd::FileDialog::new()
                        .add_filter("datpatch project", &["ron"])
                        .set_directory(&dir)
                        .pick_file()
                });
                match native {
                    Native::Chosen(path) => self.open_path(&path),
                    Native::Cancelled => {}
                    Native::Unavailable => {
                        self.file_dialog = Some(FileDialog::new(Purpose::Open, &dir, &["ron"], ""));
                    }
                }
            }
            Pending::Quit => {
                self.doc.allow_close = true;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
        }
    }

    fn dialog_dir(&self) -> PathBuf {
        self.doc.path.as_deref().map_or_else(
            || self.runner.engine.lock().world().base_dir.clone(),
            folder_of,
        )
    }

    /// Opens a project file; a bad file leaves the open project untouched and shows why.
    pub fn open_path(&mut self, path: &Path) {
        match project::load_file(path) {
            Ok(project) => {
                self.replace_document(project, Some(path.to_path_buf()));
                self.doc.remember(path);
            }
            Err(error) => self.doc.load_error = Some(error),
        }
    }

    fn replace_document(&mut self, project: Project, path: Option<PathBuf>) {
        let view = project.view.clone();
        {
            let mut engine = self.runner.engine.lock();
            let base_dir = match &path {
                Some(p) => folder_of(p),
                None => engine.world().base_dir.clone(),
            };
            engine.replace_project(project);
            engine.world_mut().base_dir = base_dir;
        }
        self.doc.path = path;
        self.doc.saved_state = self.undo.clear();
        self.selection.clear();
        self.graph.reset(view);
        self.status = None;
    }

    /// Saves to the document's file (asking for one if it has none); true if it was saved.
    pub(super) fn save(&mut self) -> bool {
        match self.doc.path.clone() {
            Some(path) => self.save_to(&path),
            None => self.save_as(None),
        }
    }

    pub(super) fn save_as(&mut self, path: Option<PathBuf>) -> bool {
        let path = path.or_else(|| {
            let name = self
                .doc
                .path
                .as_deref()
                .and_then(|p| p.file_name())
                .map_or_else(
                    || "untitled.ron".into(),
                    |n| n.to_string_lossy().into_owned(),
                );
            let dir = self.dialog_dir();
            let native = self.native_dialog(|| {
                rfd::FileDialog::new()
                    .add_filter("datpatch project", &["ron"])
                    .set_directory(&dir)
                    .set_file_name(&name)
                    .save_file()
            });
            match native {
                Native::Chosen(path) => Some(path),
                Native::Cancelled => None,
                Native::Unavailable => {
                    // Saved when the in-app dialog answers (with SaveAs of the path chosen).
                    self.file_dialog =
                        Some(FileDialog::new(Purpose::SaveAs, &dir, &["ron"], &name));
                    None
                }
            }
        });
        let Some(mut path) = path else {
            return false;
        };
        if path.extension().is_none() {
            path.set_extension("ron");
        }
        let saved = self.save_to(&path);
        if saved {
            let mut engine = self.runner.engine.lock();
            engine.world_mut().base_dir = folder_of(&path);
        }
        saved
    }

    /// Writes the document, with the current pan and zoom, to `path` (atomically).
    fn save_to(&mut self, path: &Path) -> bool {
        let project = {
            let mut engine = self.runner.engine.lock();
            if let Some(view) = self.graph.view()
                && view != engine.project().view
            {
                // Pan and zoom are saved but are not an edit: no undo step, no unsaved marker.
                let _ = engine.apply(Command::SetView(view));
            }
            engine.project().clone()
        };
        // The file is written with the engine unlocked: a slow disk must not stall the servers.
        match project::save_file(&project, path) {
            Ok(()) => {
                self.doc.path = Some(path.to_path_buf());
                self.doc.saved_state = self.undo.state();
                self.undo.close_group();
                self.doc.remember(path);
                self.status = None;
                self.notice = Some(format!("Saved {}", path.display()));
                true
            }
            Err(e) => {
                self.status = Some(e.to_string());
                false
            }
        }
    }
}

/// File, Edit, Operator and Help menus.
pub fn menu_bar(
    ui: &mut egui::Ui,
    doc: &mut Document,
    undo: &Undo,
    selection: &Selection,
    show_help: &mut bool,
    actions: &mut Vec<Action>,
) {
    let item = |ui: &mut egui::Ui, text: &str, shortcut: &str, enabled: bool| {
        ui.add_enabled(enabled, egui::Button::new(text).shortcut_text(shortcut))
            .clicked()
    };
    egui::MenuBar::new().ui(ui, |ui| {
        ui.menu_button("File", |ui| {
            if item(ui, "New", "Ctrl+N", true) {
                actions.push(Action::New);
            }
            if item(ui, "Open…", "Ctrl+O", true) {
                actions.push(Action::Open(None));
            }
            ui.menu_button("Examples", |ui| {
                let examples = file_dialog::examples();
                if examples.is_empty() {
                    ui.weak("No example projects found");
                }
                for path in examples {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if ui
                        .button(name)
                        .on_hover_text(path.display().to_string())
                        .clicked()
                    {
                        actions.push(Action::Open(Some(path)));
                    }
                }
            });
            ui.menu_button("Open Recent", |ui| {
                if doc.recent().is_empty() {
                    ui.weak("No recent files");
                }
                for path in &doc.recent {
                    if ui.button(path.display().to_string()).clicked() {
                        actions.push(Action::Open(Some(path.clone())));
                    }
                }
                ui.separator();
                if ui
                    .add_enabled(!doc.recent().is_empty(), egui::Button::new("Clear Recent"))
                    .clicked()
                {
                    doc.clear_recent();
                }
            });
            ui.separator();
            if item(ui, "Save", "Ctrl+S", true) {
                actions.push(Action::Save);
            }
            if item(ui, "Save As…", "Ctrl+Shift+S", true) {
                actions.push(Action::SaveAs(None));
            }
            ui.separator();
            if item(ui, "Quit", "Ctrl+Q", true) {
                actions.push(Action::Quit);
            }
        });
        ui.menu_button("Edit", |ui| {
            let any = !selection.nodes().is_empty();
            if item(ui, "Undo", "Ctrl+Z", undo.can_undo()) {
                actions.push(Action::Undo);
            }
            if item(ui, "Redo", "Ctrl+Shift+Z", undo.can_redo()) {
                actions.push(Action::Redo);
            }
            ui.separator();
            if item(ui, "Cut", "Ctrl+X", any) {
                actions.push(Action::Cut);
            }
            if item(ui, "Copy", "Ctrl+C", any) {
                actions.push(Action::Copy);
            }
            if item(ui, "Paste", "Ctrl+V", true) {
                actions.push(Action::Paste(None));
            }
            if item(ui, "Duplicate", "Ctrl+D", any) {
                actions.push(Action::Duplicate);
            }
            if item(ui, "Delete", "Del", any) {
                actions.push(Action::Delete);
            }
            ui.separator();
            if item(ui, "Rename", "F2", selection.current().is_some()) {
                actions.push(Action::Rename);
            }
            if item(ui, "Select All", "Ctrl+A", true) {
                actions.push(Action::SelectAll);
            }
        });
        ui.menu_button("View", |ui| {
            if item(ui, "Frame All", "H", true) {
                actions.push(Action::FrameAll);
            }
            if item(ui, "Frame Selection", "F", !selection.nodes().is_empty()) {
                actions.push(Action::FrameSelection);
            }
        });
        ui.menu_button("Operator", |ui| {
            for kind in OpKind::ALL {
                if ui.button(kind.label()).clicked() {
                    actions.push(Action::Create {
                        kind: *kind,
                        pos: None,
                    });
                }
            }
        });
        ui.menu_button("Help", |ui| {
            if item(ui, "Shortcuts", "F1", true) {
                *show_help = true;
            }
        });
    });
}

const SHORTCUTS: &[(&str, &str)] = &[
    (
        "Tab / right-click on the graph",
        "create an operator (type to search, Enter)",
    ),
    ("Drag a node", "move it (and the other selected nodes)"),
    ("Shift+drag on the graph", "box select"),
    (
        "Shift+click / Ctrl+click",
        "add to / remove from the selection",
    ),
    (
        "Drag from a pin to a pin",
        "wire (only matching kinds connect)",
    ),
    ("Right-click a wire or pin", "unwire"),
    ("Drag the background / scroll", "pan"),
    ("Ctrl+scroll", "zoom"),
    ("H / F", "frame all nodes / the selection"),
    ("Double-click a name, F2", "rename"),
    ("Del / Backspace", "delete the selection"),
    ("Ctrl+C / Ctrl+X / Ctrl+V", "copy / cut / paste nodes"),
    ("Ctrl+D", "duplicate"),
    ("Ctrl+A", "select all"),
    ("Ctrl+Z", "undo"),
    ("Ctrl+Shift+Z / Ctrl+Y", "redo"),
    ("Ctrl+N / Ctrl+O", "new / open project"),
    ("Ctrl+S / Ctrl+Shift+S", "save / save as"),
    ("Drop a .ron file on the window", "open it"),
    (
        "Click a table cell",
        "edit it and show it whole beside the table",
    ),
    (
        "Right-click a table cell",
        "insert / delete rows and columns",
    ),
    (
        "Ctrl+Shift+↑ / ↓ (editing a cell)",
        "insert a row above / below",
    ),
    (
        "Ctrl+Shift+← / → (editing a cell)",
        "insert a column left / right",
    ),
    (
        "Ctrl+Shift+Delete / Backspace (editing a cell)",
        "delete its row / column",
    ),
    ("Click a console line", "select its operator"),
    ("F1 / Escape", "open / close this window"),
];

/// Modal questions and windows: unsaved changes, load errors, shortcuts.
pub fn dialogs(
    ctx: &egui::Context,
    doc: &mut Document,
    show_help: &mut bool,
    actions: &mut Vec<Action>,
) {
    if let Some(error) = doc.load_error.take() {
        let excerpt = excerpt(&error);
        doc.shown_error = Some(ShownLoadError { error, excerpt });
    }
    if let Some(pending) = &doc.pending {
        let name = doc
            .path
            .as_deref()
            .and_then(|p| p.file_name())
            .map_or_else(|| "untitled".into(), |n| n.to_string_lossy().into_owned());
        let what = match pending {
            Pending::New => "starting a new project",
            Pending::Open(_) => "opening another project",
            Pending::Quit => "quitting",
        };
        egui::Modal::new(egui::Id::new("unsaved-changes")).show(ctx, |ui| {
            ui.set_max_width(360.0);
            ui.heading(format!("Save changes to {name}?"));
            ui.label(format!(
                "The project has unsaved changes. They will be lost if you don't save them before {what}."
            ));
            ui.add_space(8.0);
            ui.horizontal(|ui| {
                if ui.button("Save").clicked() {
                    actions.push(Action::Resolve(Choice::Save));
                }
                if ui.button("Don't Save").clicked() {
                    actions.push(Action::Resolve(Choice::Discard));
                }
                if ui.button("Cancel").clicked() {
                    actions.push(Action::Resolve(Choice::Cancel));
                }
            });
        });
    }
    let mut close_error = false;
    if let Some(shown) = &doc.shown_error {
        egui::Window::new("Could not open the project")
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
            .show(ctx, |ui| {
                let e = &shown.error;
                ui.label(format!("File: {}", e.file.display()));
                if e.line > 0 {
                    ui.label(format!("Line {}, column {}", e.line, e.col));
                }
                ui.label(egui::RichText::new(&e.message).color(ui.visuals().error_fg_color));
                if let Some(excerpt) = &shown.excerpt {
                    ui.add(
                        egui::Label::new(egui::RichText::new(excerpt).monospace())
                            .wrap_mode(egui::TextWrapMode::Extend),
                    );
                }
                ui.weak("The open project was left as it was.");
                if ui.button("OK").clicked() {
                    close_error = true;
                }
            });
    }
    if close_error {
        doc.shown_error = None;
    }
    if *show_help {
        egui::Window::new("Shortcuts")
            .open(show_help)
            .collapsible(false)
            .resizable(false)
            .show(ctx, |ui| {
                egui::Grid::new("shortcuts")
                    .num_columns(2)
                    .striped(true)
                    .show(ui, |ui| {
                        for (keys, what) in SHORTCUTS {
                            ui.strong(*keys);
                            ui.label(*what);
                            ui.end_row();
                        }
                    });
            });
    }
}

impl Document {
    /// Whether a load error is on screen (tests).
    pub fn showing_load_error(&self) -> bool {
        self.shown_error.is_some() || self.load_error.is_some()
    }
}
