//! The in-app file dialog: used when the native one (rfd) is unavailable (no XDG portal, no
//! zenity) and under the test harness, so Open, Save As and file parameters always work. It lists
//! one folder (sub-folders first, then the files the purpose accepts), with Up, a path field and a
//! file name field for saving.

use std::path::{Path, PathBuf};

use egui::{RichText, Ui};

use super::actions::Action;
use crate::project::NodeId;

/// What the chosen path is for.
#[derive(Debug, Clone)]
pub enum Purpose {
    Open,
    SaveAs,
    /// A file (or folder) parameter of a node.
    Parameter {
        id: NodeId,
        token: &'static str,
        folder: bool,
    },
}

pub struct FileDialog {
    purpose: Purpose,
    dir: PathBuf,
    /// Typed path of the folder shown (Enter goes there).
    dir_text: String,
    /// The file name: picked from the list, or typed when saving.
    name: String,
    extensions: Vec<String>,
    /// (name, is a folder), read when the folder changes.
    entries: Vec<(String, bool)>,
    error: Option<String>,
}

/// Entries listed at most: a folder with more shows the first ones (and says so).
const MAX_ENTRIES: usize = 2_000;

impl FileDialog {
    /// A dialog in `dir` for `purpose`, listing files with one of `extensions` (all when empty).
    pub fn new(purpose: Purpose, dir: &Path, extensions: &[&str], name: &str) -> FileDialog {
        let mut dialog = FileDialog {
            purpose,
            dir: PathBuf::new(),
            dir_text: String::new(),
            name: name.to_string(),
            extensions: extensions.iter().map(|e| (*e).to_string()).collect(),
            entries: Vec::new(),
            error: None,
        };
        dialog.go(dir);
        dialog
    }

    fn go(&mut self, dir: &Path) {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        match std::fs::read_dir(&dir) {
            Ok(read) => {
                let mut entries: Vec<(String, bool)> = read
                    .filter_map(Result::ok)
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let is_dir = e.file_type().ok()?.is_dir()
                            || (e.file_type().ok()?.is_symlink() && e.path().is_dir());
                        (!name.starts_with('.') && (is_dir || self.accepts(&name)))
                            .then_some((name, is_dir))
                    })
                    .take(MAX_ENTRIES)
                    .collect();
                entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                self.entries = entries;
                self.dir_text = dir.display().to_string();
                self.dir = dir;
                self.error = None;
            }
            Err(e) => self.error = Some(format!("{}: {e}", dir.display())),
        }
    }

    fn accepts(&self, name: &str) -> bool {
        if matches!(self.purpose, Purpose::Parameter { folder: true, .. }) {
            return false;
        }
        self.extensions.is_empty()
            || Path::new(name)
                .extension()
                .is_some_and(|x| self.extensions.iter().any(|e| x.eq_ignore_ascii_case(e)))
    }

    fn title(&self) -> &'static str {
        match self.purpose {
            Purpose::Open => "Open project",
            Purpose::SaveAs => "Save project as",
            Purpose::Parameter { folder: true, .. } => "Choose a folder",
            Purpose::Parameter { .. } => "Choose a file",
        }
    }

    /// What choosing `path` does.
    fn chosen(&self, path: PathBuf) -> Action {
        match &self.purpose {
            // The unsaved-changes question was answered before the dialog opened.
            Purpose::Open => Action::OpenFile(path),
            Purpose::SaveAs => Action::SaveAs(Some(path)),
            Purpose::Parameter { id, token, .. } => Action::PickedFile {
                id: *id,
                token,
                path,
            },
        }
    }

    /// Draws the dialog; false once it is closed (chosen or cancelled).
    pub fn show(&mut self, ctx: &egui::Context, actions: &mut Vec<Action>) -> bool {
        let mut open = true;
        let mut done = false;
        egui::Window::new(self.title())
            .id(egui::Id::new("in-app-file-dialog"))
            .collapsible(false)
            .default_size([520.0, 420.0])
            .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
            .open(&mut open)
            .show(ctx, |ui| done = self.contents(ui, actions));
        open && !done
    }

    fn contents(&mut self, ui: &mut Ui, actions: &mut Vec<Action>) -> bool {
        let mut go_to = None;
        ui.horizontal(|ui| {
            if ui.button("⬆ Up").clicked()
                && let Some(parent) = self.dir.parent()
            {
                go_to = Some(parent.to_path_buf());
            }
            let field =
                ui.add(egui::TextEdit::singleline(&mut self.dir_text).desired_width(f32::INFINITY));
            if field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                go_to = Some(PathBuf::from(&self.dir_text));
            }
        });
        if let Some(error) = &self.error {
            ui.label(RichText::new(error).color(ui.visuals().error_fg_color));
        }
        let mut chosen = None;
        egui::ScrollArea::vertical()
            .id_salt("file-dialog-entries")
            .max_height(280.0)
            .auto_shrink([false, false])
            .show(ui, |ui| {
                if self.entries.is_empty() {
                    ui.weak("(nothing here)");
                }
                for (name, is_dir) in &self.entries {
                    let label = if *is_dir {
                        format!("🗀 {name}")
                    } else {
                        name.clone()
                    };
                    let response = ui.selectable_label(!is_dir && *name == self.name, label);
                    if response.double_clicked() || (*is_dir && response.clicked()) {
                        if *is_dir {
                            go_to = Some(self.dir.join(name));
                        } else {
                            chosen = Some(self.dir.join(name));
                        }
                    } else if response.clicked() {
                        self.name.clone_from(name);
                    }
                }
            });
        if let Some(dir) = go_to {
            self.go(&dir);
        }
        let folder = matches!(self.purpose, Purpose::Parameter { folder: true, .. });
        let mut cancelled = false;
        ui.horizontal(|ui| {
            if !folder {
                ui.label("Name");
                ui.add(egui::TextEdit::singleline(&mut self.name).desired_width(280.0));
            }
            let verb = match self.purpose {
                Purpose::Open => "Open",
                Purpose::SaveAs => "Save",
                Purpose::Parameter { .. } => "Choose",
            };
            let ready = folder || !self.name.trim().is_empty();
            if ui.add_enabled(ready, egui::Button::new(verb)).clicked() {
                chosen = Some(if folder {
                    self.dir.clone()
                } else {
                    self.dir.join(self.name.trim())
                });
            }
            if ui.button("Cancel").clicked() {
                cancelled = true;
            }
        });
        if cancelled {
            return true;
        }
        match chosen {
            Some(path) => {
                actions.push(self.chosen(path));
                true
            }
            None => false,
        }
    }
}

/// The example projects shipped with datpatch: `projects/*.ron` beside the working directory or
/// the source tree the binary was built from.
pub fn examples() -> Vec<PathBuf> {
    let candidates = [
        PathBuf::from("projects"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("projects"),
    ];
    let Some(dir) = candidates.iter().find(|d| d.is_dir()) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|read| {
            read.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "ron"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}
