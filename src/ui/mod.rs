//! The desktop app (eframe): node graph, parameters, info, table viewer, code editor, console and
//! file menu. Panels read the engine under one short lock per frame and queue [`Action`]s;
//! `actions.rs` applies them after the UI pass, so mouse, shortcuts, menus, undo and tests share
//! one path. The GUI never waits on the network and never runs callbacks itself.

mod actions;
mod console;
mod document;
mod editor;
mod file_dialog;
mod graph;
mod highlight;
mod info;
mod params;
mod rates;
mod stats;
mod table_view;
mod undo;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use actions::Action;
pub use undo::Merge;

use crate::engine::{Waker, World};
use crate::project::{self, NodeId, Project};
use crate::runner::Runner;

/// Engine-driven repaints are coalesced to this period (about the display rate): the cook thread
/// wakes the GUI on every event and on every frame that changed something visible, and redrawing
/// faster than this would spend CPU the engine needs under load.
const ENGINE_REPAINT: Duration = Duration::from_millis(16);

pub fn run(project_path: PathBuf) -> Result<(), String> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(document::title_for(Some(&project_path), false))
            .with_inner_size([1280.0, 800.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "datpatch",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let waker: Waker = Arc::new(move || ctx.request_repaint_after(ENGINE_REPAINT));
            // A project that does not load still opens the app: empty, with the error shown.
            let (project, base_dir, path, error) = match project::load_file(&project_path) {
                Ok(p) => (
                    p,
                    document::folder_of(&project_path),
                    Some(project_path),
                    None,
                ),
                Err(e) => (Project::default(), PathBuf::from("."), None, Some(e)),
            };
            let runner = Runner::start(project, &base_dir, Some(waker))
                .map_err(|e| format!("starting the engine: {e}"))?;
            let opened = path.clone();
            let mut app = App::new(runner, path);
            app.native_dialogs = true;
            app.doc.set_recent_store(document::default_recent_store());
            // The project the app was started on is a recent file too.
            if let Some(path) = &opened {
                app.doc.remember(path);
            }
            app.doc.load_error = error;
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| e.to_string())
}

/// Which nodes are selected; the last one is the current node the panels show.
#[derive(Default, Debug, Clone)]
pub struct Selection {
    nodes: Vec<NodeId>,
}

impl Selection {
    pub fn current(&self) -> Option<NodeId> {
        self.nodes.last().copied()
    }

    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.nodes.contains(&id)
    }

    pub fn set(&mut self, nodes: Vec<NodeId>) {
        self.nodes = nodes;
    }

    pub fn set_one(&mut self, id: NodeId) {
        self.nodes = vec![id];
    }

    /// Adds `id` (or makes it current if already selected).
    pub fn add(&mut self, id: NodeId) {
        self.nodes.retain(|n| *n != id);
        self.nodes.push(id);
    }

    pub fn remove(&mut self, id: NodeId) {
        self.nodes.retain(|n| *n != id);
    }

    pub fn clear(&mut self) {
        self.nodes.clear();
    }

    fn retain_existing(&mut self, world: &World) {
        self.nodes.retain(|id| world.project.node(*id).is_some());
    }
}

/// The app: a running project plus the state of each panel. Constructible without a window, so
/// tests drive [`App::ui`] through egui_kittest.
pub struct App {
    runner: Runner,
    doc: document::Document,
    undo: undo::Undo,
    graph: graph::GraphView,
    params: params::ParamsState,
    table: table_view::TableState,
    editor: editor::EditorState,
    console: console::ConsoleState,
    rates: rates::Rates,
    /// Which channels the Info panel plots, and a frozen copy while paused.
    channel_plot: info::ChannelPlot,
    selection: Selection,
    clipboard: Option<String>,
    actions: Vec<Action>,
    /// The last refused edit or failed operation, shown in the status bar.
    status: Option<String>,
    /// The last thing done that deserves a word (a save), shown until the next action.
    notice: Option<String>,
    /// Whether to try the native file dialogs (not under the test harness, and not once one
    /// failed to open).
    native_dialogs: bool,
    /// The in-app file dialog, while open.
    file_dialog: Option<file_dialog::FileDialog>,
    show_help: bool,
    /// UI-pass timings, reported when `DATPATCH_FRAME_STATS` is set.
    frame_stats: Option<stats::FrameStats>,
}

impl App {
    /// An app showing `runner`'s project; `path` is the file it came from (None: untitled).
    pub fn new(runner: Runner, path: Option<PathBuf>) -> App {
        let view = runner.engine.lock().project().view.clone();
        let mut undo = undo::Undo::default();
        let saved = undo.clear();
        App {
            runner,
            doc: document::Document::new(path, saved),
            undo,
            graph: graph::GraphView::new(view),
            params: params::ParamsState::default(),
            table: table_view::TableState::default(),
            editor: editor::EditorState::default(),
            console: console::ConsoleState::default(),
            rates: rates::Rates::default(),
            channel_plot: info::ChannelPlot::default(),
            selection: Selection::default(),
            clipboard: None,
            actions: Vec::new(),
            status: None,
            notice: None,
            native_dialogs: false,
            file_dialog: None,
            show_help: false,
            frame_stats: stats::FrameStats::from_env(),
        }
    }

    /// Starts `path` in a new runner and opens the app on it (tests and the binary).
    pub fn open(path: &Path) -> Result<App, String> {
        let runner = Runner::start_file(path, None, |_| Ok(()))?;
        Ok(App::new(runner, Some(path.to_path_buf())))
    }

    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// A copy of the document as the engine holds it now.
    pub fn project(&self) -> Project {
        self.runner.engine.lock().project().clone()
    }

    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    pub fn path(&self) -> Option<&Path> {
        self.doc.path.as_deref()
    }

    /// Whether the document has edits that are not saved.
    pub fn is_dirty(&self) -> bool {
        self.doc.is_dirty(self.undo.state())
    }

    /// The window title (file name, `*` when unsaved).
    pub fn title(&self) -> String {
        document::title_for(self.doc.path.as_deref(), self.is_dirty())
    }

    /// Whether the "could not open" dialog is up.
    pub fn showing_load_error(&self) -> bool {
        self.doc.showing_load_error()
    }

    /// The last error shown in the status bar.
    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// Queues an action as a menu or shortcut would; it runs at the end of the next frame.
    pub fn queue(&mut self, action: Action) {
        self.actions.push(action);
    }

    /// Where a node is drawn on screen (for tests that drag nodes and pins).
    pub fn node_screen_rect(&self, id: NodeId) -> Option<egui::Rect> {
        self.graph.node_screen_rect(id)
    }

    /// Screen positions of a node's output pin and of its input pins, in pin order.
    pub fn pin_screen_pos(&self, id: NodeId, input: Option<usize>) -> Option<egui::Pos2> {
        self.graph.pin_screen_pos(id, input)
    }

    /// The graph's area on screen (what the panels around it leave).
    pub fn graph_screen_rect(&self) -> egui::Rect {
        self.graph.screen_rect()
    }

    /// The graph's nodes in the order they were drawn last frame (the last is on top).
    pub fn graph_draw_order(&self) -> &[NodeId] {
        self.graph.draw_order()
    }

    /// Number of wires the graph shows.
    pub fn graph_wire_count(&self) -> usize {
        self.graph.wire_count()
    }

    /// Draws one frame and applies what the user did.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let started = std::time::Instant::now();
        let ctx = ui.ctx().clone();
        self.global_input(&ctx);
        let engine = self.runner.engine.clone();
        {
            let engine = engine.lock();
            let world = engine.world();
            self.selection.retain_existing(world);
            self.rates.sample(world);
            self.draw(ui, world);
        }
        self.apply_actions(&ctx);
        self.doc.update_title(&ctx, self.undo.state());
        // Nothing else repaints on a timer: input and the engine's waker do. Only a message rate
        // still falling to zero is an animation that needs frames of its own.
        if let Some(after) = self.rates.next_sample() {
            ctx.request_repaint_after(after);
        }
        if let Some(stats) = &mut self.frame_stats {
            ctx.request_repaint_after(stats.record(started.elapsed()));
        }
    }

    fn draw(&mut self, ui: &mut egui::Ui, world: &World) {
        egui::Panel::top("menu").show(ui, |ui| {
            document::menu_bar(
                ui,
                &mut self.doc,
                &self.undo,
                &self.selection,
                &mut self.show_help,
                &mut self.actions,
            );
        });
        egui::Panel::bottom("status")
            .exact_size(22.0)
            .show(ui, |ui| {
                self.status_bar(ui, world);
            });
        egui::Panel::bottom("console")
            .resizable(true)
            .default_size(140.0)
            .min_size(60.0)
            .show(ui, |ui| {
                console::show(ui, &mut self.console, world, &mut self.actions);
            });
        egui::Panel::right("inspector")
            .resizable(true)
            .default_size(380.0)
            .min_size(260.0)
            .show(ui, |ui| {
                // The panel keeps the width the user gave it: contents wider than that are
                // clipped, not allowed to widen it (which moved the page tabs from node to node).
                let rect = ui.available_rect_before_wrap();
                let mut inner = ui.new_child(
                    egui::UiBuilder::new()
                        .max_rect(rect)
                        .layout(egui::Layout::top_down(egui::Align::Min)),
                );
                inner.set_clip_rect(rect.intersect(ui.clip_rect()));
                self.inspector(&mut inner, world);
                ui.allocate_rect(rect, egui::Sense::hover());
            });
        let viewer_node = self.selection.current().filter(|id| has_viewer(world, *id));
        if let Some(id) = viewer_node {
            egui::Panel::bottom("viewer")
                .resizable(true)
                .default_size(220.0)
                .min_size(80.0)
                .show(ui, |ui| {
                    self.viewer(ui, world, id);
                });
        }
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE)
            .show(ui, |ui| {
                self.graph.show(
                    ui,
                    world,
                    &mut self.selection,
                    &self.rates,
                    &mut self.actions,
                );
            });
        document::dialogs(
            ui.ctx(),
            &mut self.doc,
            &mut self.show_help,
            &mut self.actions,
        );
        if let Some(dialog) = &mut self.file_dialog
            && !dialog.show(ui.ctx(), &mut self.actions)
        {
            self.file_dialog = None;
        }
    }

    fn status_bar(&mut self, ui: &mut egui::Ui, world: &World) {
        ui.horizontal_centered(|ui| {
            if let Some(status) = &self.status {
                let text = egui::RichText::new(status).color(ui.visuals().warn_fg_color);
                if ui
                    .add(egui::Label::new(text).sense(egui::Sense::click()))
                    .on_hover_text("Click to dismiss")
                    .clicked()
                {
                    self.status = None;
                }
            } else if let Some(notice) = &self.notice {
                ui.label(notice);
            } else {
                ui.weak("Tab: create an operator · Shift+drag: box select · F1: shortcuts");
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.weak(format!(
                    "{} nodes · frame {}",
                    world.project.nodes.len(),
                    world.frame
                ));
            });
        });
    }

    /// The right-hand side: parameters of the current node above its info.
    fn inspector(&mut self, ui: &mut egui::Ui, world: &World) {
        let Some(id) = self.selection.current() else {
            ui.add_space(8.0);
            ui.weak("Select an operator to see its parameters and info.");
            return;
        };
        egui::Panel::bottom("info")
            .resizable(true)
            .default_size(300.0)
            .min_size(100.0)
            .show(ui, |ui| {
                info::show(
                    ui,
                    world,
                    id,
                    &self.rates,
                    &mut self.channel_plot,
                    &mut self.actions,
                );
            });
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE)
            .show(ui, |ui| {
                params::show(ui, &mut self.params, world, id, &mut self.actions);
            });
    }

    /// The bottom viewer: the current node's table or its text in the code editor.
    fn viewer(&mut self, ui: &mut egui::Ui, world: &World, id: NodeId) {
        let Some(node) = world.project.node(id) else {
            return;
        };
        if node.text.is_some() {
            editor::show(ui, &mut self.editor, world, id, &mut self.actions);
        } else {
            table_view::show(ui, &mut self.table, world, id, &mut self.actions);
        }
    }
}

/// Nodes with contents to view: tables, texts, and the WebSocket DAT's received messages.
fn has_viewer(world: &World, id: NodeId) -> bool {
    world.dat(id).is_some()
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        App::ui(self, ui);
    }
}
