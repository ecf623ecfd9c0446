//! The node graph (egui-snarl). The snarl graph is a view of the engine's document: it is synced
//! from `world.project` every frame (nodes by id, positions, wires), and every change the user
//! makes in it goes back as a command, so the engine stays the one source of truth.
//!
//! Selection is ours rather than snarl's (snarl only selects with Shift and cannot be told what
//! to select): a click selects, Shift/Ctrl+click add and remove, and snarl's Shift+drag box
//! selection is folded in. Moves are read back from snarl's node positions after it drew.

use std::collections::HashMap;

use egui::emath::TSTransform;
use egui::{Color32, Id, Pos2, Rect, RichText, Stroke, Ui, pos2, vec2};
use egui_snarl::ui::{
    BackgroundPattern, NodeLayout, PinInfo, PinPlacement, SelectionStyle, SnarlStyle, SnarlViewer,
    SnarlWidget, get_selected_nodes,
};
use egui_snarl::{InPin, NodeId as SnarlId, OutPin, Snarl};

use super::Selection;
use super::actions::Action;
use super::rates::{Rates, format_rate};
use super::undo::Merge;
use crate::engine::Badge;
use crate::engine::{Command, DatRef, World};
use crate::project::{NodeId, View, Wire};
use crate::schema::{Input, OpKind};

const GRAPH_ID: &str = "datpatch-graph";
/// Rows and columns a node previews of its table or text.
const PREVIEW_ROWS: usize = 4;
const PREVIEW_COLS: usize = 3;
const PREVIEW_CHARS: usize = 10;
/// Width of a node's body: narrow enough for TouchDesigner-like spacing of a few hundred points.
const BODY_WIDTH: f32 = 150.0;
/// What a node not drawn yet is taken to cover, for placing new nodes around it.
const DEFAULT_NODE_SIZE: egui::Vec2 = vec2(200.0, 150.0);
/// Space kept free around every node when placing a new one.
const NODE_GAP: f32 = 20.0;
/// Spacing of the spots tried around the asked-for one when placing a new node.
const PLACE_STEP: f32 = 20.0;
/// Where the callbacks DAT made with a network operator goes, relative to it (the engine's).
const CALLBACKS_OFFSET_Y: f32 = 180.0;

#[derive(Clone, Copy, Debug)]
struct GNode {
    id: NodeId,
    kind: OpKind,
}

struct Rename {
    id: NodeId,
    text: String,
    focus_requested: bool,
}

struct CreateMenu {
    screen: Pos2,
    graph: (f32, f32),
    query: String,
    focus_requested: bool,
    opened_frame: u64,
}

pub struct GraphView {
    snarl: Snarl<GNode>,
    ids: HashMap<NodeId, SnarlId>,
    /// The document's wires as last mirrored into snarl.
    wires: Vec<Wire>,
    /// Graph space to screen, as of the last frame.
    transform: Option<TSTransform>,
    rect: Rect,
    /// Node frames in graph space, as drawn last frame.
    node_rects: HashMap<NodeId, Rect>,
    /// Vertical centre (graph space) of each pin row: `None` is the output.
    pin_rows: HashMap<(NodeId, Option<usize>), f32>,
    pending_view: Option<View>,
    center_on: Option<NodeId>,
    /// Fit these nodes in the view next frame (empty: all of them).
    frame: Option<Vec<NodeId>>,
    /// Pan, if needed, so this node is inside the view next frame.
    reveal: Option<NodeId>,
    /// Nodes in the order snarl drew them last frame (the last is on top).
    draw_order: Vec<NodeId>,
    /// The right-click create menu was open last frame (its search box is focused on opening).
    graph_menu_open: bool,
    renaming: Option<Rename>,
    create: Option<CreateMenu>,
    /// Search text of the right-click create menu.
    menu_query: String,
    snarl_selection: Vec<SnarlId>,
    /// The node under the pointer when the primary button went down (what a drag moves).
    grabbed: Option<NodeId>,
}

impl GraphView {
    pub fn new(view: View) -> GraphView {
        GraphView {
            snarl: Snarl::new(),
            ids: HashMap::new(),
            wires: Vec::new(),
            transform: None,
            rect: Rect::NOTHING,
            node_rects: HashMap::new(),
            pin_rows: HashMap::new(),
            pending_view: Some(view),
            center_on: None,
            frame: None,
            reveal: None,
            draw_order: Vec::new(),
            graph_menu_open: false,
            renaming: None,
            create: None,
            menu_query: String::new(),
            snarl_selection: Vec::new(),
            grabbed: None,
        }
    }

    /// Forgets the graph of the previous document and shows `view`.
    pub fn reset(&mut self, view: View) {
        *self = GraphView::new(view);
    }

    /// The pan and zoom shown, as the project saves them (pan relative to the graph's corner).
    pub fn view(&self) -> Option<View> {
        let t = self.transform?;
        let pan = t.translation - self.rect.min.to_vec2();
        Some(View {
            pan: (pan.x, pan.y),
            zoom: t.scaling,
        })
    }

    /// Where a new node goes when it is not placed with the mouse: the middle of the view.
    pub fn view_center(&self) -> (f32, f32) {
        match self.transform {
            Some(t) if self.rect.is_finite() => {
                let c = t.inverse() * self.rect.center();
                (c.x - 80.0, c.y - 40.0)
            }
            _ => (40.0, 40.0),
        }
    }

    pub fn pointer_graph_pos(&self, ctx: &egui::Context) -> Option<(f32, f32)> {
        let pos = ctx.input(|i| i.pointer.latest_pos())?;
        let t = self.transform?;
        self.rect.contains(pos).then(|| {
            let p = t.inverse() * pos;
            (p.x, p.y)
        })
    }

    pub fn center_on(&mut self, id: NodeId) {
        self.center_on = Some(id);
    }

    /// Fits `ids` (all nodes when empty) in the view, as TouchDesigner's H and F do.
    pub fn frame_nodes(&mut self, ids: Vec<NodeId>) {
        self.frame = Some(ids);
    }

    /// Pans just enough to show `id` (a new node, a node the viewer would hide).
    pub fn reveal(&mut self, id: NodeId) {
        self.reveal = Some(id);
    }

    /// Where a node of `kind` goes when asked for at `at` (graph space): the free spot nearest
    /// to it, so a new node (and the callbacks DAT that comes with a network operator) never
    /// lands on top of another.
    pub fn free_spot(&self, world: &World, kind: OpKind, at: (f32, f32)) -> (f32, f32) {
        let size_of = |id: NodeId| {
            self.node_rects
                .get(&id)
                .map_or(DEFAULT_NODE_SIZE, egui::Rect::size)
        };
        let occupied: Vec<Rect> = world
            .project
            .nodes
            .iter()
            .map(|n| Rect::from_min_size(pos2(n.pos.0, n.pos.1), size_of(n.id)).expand(NODE_GAP))
            .collect();
        // A node of the same kind already drawn tells the size best.
        let size = world
            .project
            .nodes
            .iter()
            .filter(|n| n.kind == kind)
            .filter_map(|n| self.node_rects.get(&n.id))
            .map(egui::Rect::size)
            .fold(DEFAULT_NODE_SIZE, egui::Vec2::max);
        let with_callbacks = world.operators.get(kind).callbacks_template().is_some();
        let footprint = |p: Pos2| {
            let own = Rect::from_min_size(p, size);
            if with_callbacks {
                own.union(Rect::from_min_size(
                    p + vec2(0.0, CALLBACKS_OFFSET_Y),
                    DEFAULT_NODE_SIZE,
                ))
            } else {
                own
            }
        };
        let free = |p: Pos2| {
            let f = footprint(p);
            !occupied.iter().any(|o| o.intersects(f))
        };
        let at = pos2(at.0, at.1);
        // Rings of candidates around `at`, nearest first within each ring.
        for ring in 0..80_i32 {
            let mut candidates: Vec<Pos2> = (-ring..=ring)
                .flat_map(|dx| (-ring..=ring).map(move |dy| (dx, dy)))
                .filter(|(dx, dy)| dx.abs().max(dy.abs()) == ring)
                .map(|(dx, dy)| at + vec2(dx as f32, dy as f32) * PLACE_STEP)
                .collect();
            candidates.sort_by(|a, b| a.distance_sq(at).total_cmp(&b.distance_sq(at)));
            if let Some(p) = candidates.into_iter().find(|p| free(*p)) {
                return (p.x, p.y);
            }
        }
        (at.x, at.y)
    }

    /// Nodes in the order they were drawn last frame; the last is on top.
    pub fn draw_order(&self) -> &[NodeId] {
        &self.draw_order
    }

    /// The graph's area on screen, as of the last frame.
    pub fn screen_rect(&self) -> Rect {
        self.rect
    }

    pub fn start_rename(&mut self, id: NodeId, name: String) {
        self.renaming = Some(Rename {
            id,
            text: name,
            focus_requested: false,
        });
    }

    /// Opens the searchable create menu at the pointer (or the middle of the graph).
    pub fn open_create_menu(&mut self, ctx: &egui::Context) {
        let pointer = ctx
            .input(|i| i.pointer.latest_pos())
            .filter(|p| self.rect.contains(*p));
        let screen = pointer.unwrap_or_else(|| {
            if self.rect.is_finite() {
                self.rect.center()
            } else {
                pos2(200.0, 200.0)
            }
        });
        let graph = match self.transform {
            Some(t) => {
                let p = t.inverse() * screen;
                (p.x, p.y)
            }
            None => (40.0, 40.0),
        };
        self.create = Some(CreateMenu {
            screen,
            graph,
            query: String::new(),
            focus_requested: false,
            opened_frame: ctx.cumulative_frame_nr(),
        });
    }

    pub fn close_create_menu(&mut self) {
        self.create = None;
        self.renaming = None;
    }

    pub fn node_screen_rect(&self, id: NodeId) -> Option<Rect> {
        let t = self.transform?;
        self.node_rects.get(&id).map(|r| t.mul_rect(*r))
    }

    /// Screen position of a node's pin: `None` is its output, `Some(i)` its i-th input.
    pub fn pin_screen_pos(&self, id: NodeId, input: Option<usize>) -> Option<Pos2> {
        let t = self.transform?;
        let rect = self.node_rects.get(&id)?;
        let y = *self.pin_rows.get(&(id, input))?;
        let x = if input.is_some() {
            rect.left()
        } else {
            rect.right()
        };
        Some(t * pos2(x, y))
    }

    pub fn wire_count(&self) -> usize {
        self.snarl.wires().count()
    }

    /// Mirrors the document into snarl: nodes by id, positions, wires.
    fn sync(&mut self, world: &World) {
        let project = &world.project;
        let stale: Vec<NodeId> = self
            .ids
            .iter()
            .filter(|(id, sid)| {
                project.node(**id).map(|n| n.kind) != self.snarl.get_node(**sid).map(|g| g.kind)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some(sid) = self.ids.remove(&id) {
                self.snarl.remove_node(sid);
                self.node_rects.remove(&id);
            }
        }
        for node in &project.nodes {
            let pos = pos2(node.pos.0, node.pos.1);
            if let Some(sid) = self.ids.get(&node.id) {
                if let Some(info) = self.snarl.get_node_info_mut(*sid) {
                    info.pos = pos;
                }
            } else {
                let sid = self.snarl.insert_node(
                    pos,
                    GNode {
                        id: node.id,
                        kind: node.kind,
                    },
                );
                self.ids.insert(node.id, sid);
            }
        }
        if project.wires != self.wires {
            let old: Vec<_> = self.snarl.wires().collect();
            for (out_pin, in_pin) in old {
                self.snarl.disconnect(out_pin, in_pin);
            }
            for wire in &project.wires {
                let (Some(from), Some(to)) = (self.ids.get(&wire.from), self.ids.get(&wire.to))
                else {
                    continue;
                };
                let Some(kind) = project.node(wire.to).map(|n| n.kind) else {
                    continue;
                };
                let Some(input) = kind.inputs().iter().position(|i| *i == wire.input) else {
                    continue;
                };
                self.snarl.connect(
                    egui_snarl::OutPinId {
                        node: *from,
                        output: 0,
                    },
                    egui_snarl::InPinId { node: *to, input },
                );
            }
            self.wires.clone_from(&project.wires);
        }
    }

    fn style() -> SnarlStyle {
        SnarlStyle {
            node_layout: Some(NodeLayout::coil()),
            pin_placement: Some(PinPlacement::Edge),
            collapsible: Some(false),
            bg_pattern: Some(BackgroundPattern::grid(vec2(40.0, 40.0), 0.0)),
            // Our selection is drawn by `node_frame`; snarl's own (Shift-only) would disagree.
            select_style: Some(SelectionStyle {
                margin: egui::Margin::same(0),
                rounding: egui::CornerRadius::same(0),
                fill: Color32::TRANSPARENT,
                stroke: Stroke::NONE,
            }),
            min_scale: Some(0.2),
            max_scale: Some(2.0),
            centering: Some(false),
            ..SnarlStyle::new()
        }
    }

    pub fn show(
        &mut self,
        ui: &mut Ui,
        world: &World,
        selection: &mut Selection,
        rates: &Rates,
        actions: &mut Vec<Action>,
    ) {
        self.sync(world);
        let rect = ui.available_rect_before_wrap();
        // The graph shrank (the viewer opened below it): keep the current node in sight.
        if rect.size() != self.rect.size()
            && let Some(id) = selection.current()
        {
            self.reveal.get_or_insert(id);
        }
        self.rect = rect;
        self.draw_order.clear();
        let mut transform = self.transform.unwrap_or_default();
        let mut viewer = Viewer {
            world,
            selection,
            rates,
            actions,
            renaming: &mut self.renaming,
            menu_query: &mut self.menu_query,
            node_rects: &mut self.node_rects,
            pin_rows: &mut self.pin_rows,
            transform: &mut transform,
            pending_view: &mut self.pending_view,
            center_on: &mut self.center_on,
            frame: &mut self.frame,
            reveal: &mut self.reveal,
            draw_order: &mut self.draw_order,
            graph_menu_open_before: self.graph_menu_open,
            graph_menu_shown: false,
            rect: self.rect,
        };
        SnarlWidget::new()
            .id(Id::new(GRAPH_ID))
            .style(Self::style())
            .show(&mut self.snarl, &mut viewer, ui);
        self.graph_menu_open = viewer.graph_menu_shown;
        self.transform = Some(transform);
        if world.project.nodes.is_empty() {
            let painter = ui.painter_at(self.rect);
            painter.text(
                self.rect.center(),
                egui::Align2::CENTER_CENTER,
                "Press Tab or right-click to create an operator",
                egui::FontId::proportional(16.0),
                ui.visuals().weak_text_color(),
            );
        }
        let ctx = ui.ctx().clone();
        self.select_by_pointer(&ctx, selection);
        self.fold_in_snarl_selection(&ctx, selection);
        self.read_moves(&ctx, world, selection, actions);
        self.create_menu(&ctx, actions);
    }

    fn select_by_pointer(&mut self, ctx: &egui::Context, selection: &mut Selection) {
        let (pressed, down, pos, modifiers) = ctx.input(|i| {
            (
                i.pointer.primary_pressed(),
                i.pointer.primary_down(),
                i.pointer.interact_pos(),
                i.modifiers,
            )
        });
        if !down {
            self.grabbed = None;
        }
        let Some(pos) = pos.filter(|p| pressed && self.rect.contains(*p)) else {
            return;
        };
        // Presses on menus and windows above the graph are theirs.
        let on_graph = ctx
            .layer_id_at(pos)
            .is_none_or(|l| l.order == egui::Order::Background);
        let Some(t) = self.transform.filter(|_| on_graph) else {
            return;
        };
        let graph_pos = t.inverse() * pos;
        // The node drawn on top takes the click, as it does snarl's own drag.
        let hit = self
            .draw_order
            .iter()
            .rev()
            .find(|id| {
                self.node_rects
                    .get(id)
                    .is_some_and(|r| r.contains(graph_pos))
            })
            .copied();
        self.grabbed = hit;
        match hit {
            Some(id) if modifiers.command => selection.remove(id),
            Some(id) if modifiers.shift => selection.add(id),
            Some(id) if selection.contains(id) => selection.add(id),
            Some(id) => selection.set_one(id),
            None if !modifiers.shift && !modifiers.command => selection.clear(),
            None => {}
        }
    }

    /// Snarl's Shift+drag box selection (and its Shift/Ctrl clicks) added or removed nodes.
    fn fold_in_snarl_selection(&mut self, ctx: &egui::Context, selection: &mut Selection) {
        let now = get_selected_nodes(Id::new(GRAPH_ID), ctx);
        let to_id = |sid: &SnarlId| self.snarl.get_node(*sid).map(|g| g.id);
        for sid in now.iter().filter(|s| !self.snarl_selection.contains(s)) {
            if let Some(id) = to_id(sid) {
                selection.add(id);
            }
        }
        for sid in self.snarl_selection.iter().filter(|s| !now.contains(s)) {
            if let Some(id) = to_id(sid) {
                selection.remove(id);
            }
        }
        self.snarl_selection = now;
    }

    /// Snarl moved the dragged node: move it, and the rest of the selection with it, in the
    /// document (one undo step per drag).
    fn read_moves(
        &mut self,
        ctx: &egui::Context,
        world: &World,
        selection: &Selection,
        actions: &mut Vec<Action>,
    ) {
        let Some(grabbed) = self.grabbed else {
            return;
        };
        let (Some(sid), Some(node)) = (self.ids.get(&grabbed), world.project.node(grabbed)) else {
            return;
        };
        let Some(info) = self.snarl.get_node_info(*sid) else {
            return;
        };
        let delta = info.pos - pos2(node.pos.0, node.pos.1);
        if delta == egui::Vec2::ZERO || !ctx.input(|i| i.pointer.primary_down()) {
            return;
        }
        let targets: Vec<NodeId> = if selection.contains(grabbed) {
            selection.nodes().to_vec()
        } else {
            vec![grabbed]
        };
        let commands = targets
            .iter()
            .filter_map(|id| world.project.node(*id))
            .map(|n| Command::MoveNode {
                id: n.id,
                pos: (n.pos.0 + delta.x, n.pos.1 + delta.y),
            })
            .collect();
        actions.push(Action::Edit {
            commands,
            merge: Some(Merge::Move(targets)),
        });
    }

    fn create_menu(&mut self, ctx: &egui::Context, actions: &mut Vec<Action>) {
        let Some(menu) = &mut self.create else {
            return;
        };
        let mut chosen = None;
        let response = egui::Area::new(Id::new("create-menu"))
            .order(egui::Order::Foreground)
            .fixed_pos(menu.screen)
            .show(ctx, |ui| {
                egui::Frame::popup(ui.style()).show(ui, |ui| {
                    chosen = create_menu_ui(ui, &mut menu.query, !menu.focus_requested);
                    menu.focus_requested = true;
                });
            })
            .response;
        let clicked_outside =
            response.clicked_elsewhere() && ctx.cumulative_frame_nr() > menu.opened_frame;
        if let Some(kind) = chosen {
            actions.push(Action::Create {
                kind,
                pos: Some(menu.graph),
            });
            self.create = None;
        } else if clicked_outside {
            self.create = None;
        }
    }
}

/// The searchable list of operator kinds (Tab menu and right-click menu). Enter takes the first
/// match.
fn create_menu_ui(ui: &mut Ui, query: &mut String, focus: bool) -> Option<OpKind> {
    ui.set_width(220.0);
    ui.strong("Create operator");
    let search = ui.add(
        egui::TextEdit::singleline(query)
            .hint_text("Search…")
            .desired_width(220.0),
    );
    if focus {
        search.request_focus();
    }
    let q = query.trim().to_lowercase();
    let matches: Vec<OpKind> = OpKind::ALL
        .iter()
        .copied()
        .filter(|k| {
            q.is_empty()
                || k.label().to_lowercase().contains(&q)
                || k.type_name().to_lowercase().contains(&q)
        })
        .collect();
    let enter = search.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
    let mut chosen = None;
    for (i, kind) in matches.iter().enumerate() {
        // With a search typed, the first match is what Enter creates: show it chosen.
        let button = egui::Button::new(kind.label())
            .min_size(vec2(ui.available_width(), 0.0))
            .selected(i == 0 && !q.is_empty());
        if ui.add(button).on_hover_text(describe(*kind)).clicked() {
            chosen = Some(*kind);
        }
    }
    if matches.is_empty() {
        ui.weak("No operator matches");
    }
    if enter && chosen.is_none() {
        chosen = matches.first().copied();
    }
    chosen
}

fn describe(kind: OpKind) -> &'static str {
    match kind {
        OpKind::WebServer => "HTTP and WebSocket server; behaviour in callbacks",
        OpKind::WebSocket => "WebSocket client; received messages in a table",
        OpKind::Table => "A table of cells, editable; CSV/TSV files",
        OpKind::Text => "Text or a callbacks script",
        OpKind::Execute => "Runs its callbacks on start and every frame",
        OpKind::Channels => "Numeric channels from JSON messages in a DAT",
        OpKind::Fifo => "A table that keeps the last rows appended by scripts",
        OpKind::WebClient => "HTTP client; responses to callbacks and output",
        OpKind::Mqtt => "MQTT client of a broker; messages in a table",
    }
}

/// Colour of a pin and its wires, by what flows through it.
fn pin_color(kind: Option<OpKind>) -> Color32 {
    match kind {
        Some(OpKind::Text) => Color32::from_rgb(0xe0, 0xa0, 0x40),
        Some(OpKind::Table) => Color32::from_rgb(0x40, 0xb0, 0xc0),
        _ => Color32::from_rgb(0x90, 0x90, 0xc0),
    }
}

fn input_color(input: Input) -> Color32 {
    match input {
        Input::Callbacks => pin_color(Some(OpKind::Text)),
        Input::Headers => pin_color(Some(OpKind::Table)),
        Input::Source | Input::Data => pin_color(None),
    }
}

/// A state badge: a coloured dot (painted: the default fonts have no "●") and its label.
pub fn badge_ui(ui: &mut Ui, badge: Badge, text: RichText) -> egui::Response {
    let color = badge_color(badge);
    ui.horizontal(|ui| {
        ui.spacing_mut().item_spacing.x = 4.0;
        let size = ui.text_style_height(&egui::TextStyle::Small);
        let (rect, _) = ui.allocate_exact_size(vec2(size * 0.7, size), egui::Sense::hover());
        ui.painter().circle_filled(rect.center(), size * 0.3, color);
        ui.label(text.color(color))
    })
    .inner
}

pub fn badge_color(badge: Badge) -> Color32 {
    match badge {
        Badge::Idle => Color32::GRAY,
        Badge::Listening | Badge::Connected => Color32::from_rgb(0x40, 0xc0, 0x60),
        Badge::Connecting => Color32::from_rgb(0xd0, 0xc0, 0x40),
        Badge::Reconnecting => Color32::from_rgb(0xe0, 0x90, 0x30),
        Badge::Error => Color32::from_rgb(0xe0, 0x50, 0x50),
    }
}

struct Viewer<'a> {
    world: &'a World,
    selection: &'a Selection,
    rates: &'a Rates,
    actions: &'a mut Vec<Action>,
    renaming: &'a mut Option<Rename>,
    menu_query: &'a mut String,
    node_rects: &'a mut HashMap<NodeId, Rect>,
    pin_rows: &'a mut HashMap<(NodeId, Option<usize>), f32>,
    transform: &'a mut TSTransform,
    pending_view: &'a mut Option<View>,
    center_on: &'a mut Option<NodeId>,
    frame: &'a mut Option<Vec<NodeId>>,
    reveal: &'a mut Option<NodeId>,
    draw_order: &'a mut Vec<NodeId>,
    graph_menu_open_before: bool,
    graph_menu_shown: bool,
    rect: Rect,
}

impl Viewer<'_> {
    fn header(&mut self, ui: &mut Ui, node: GNode) {
        if let Some(rename) = self.renaming.as_mut().filter(|r| r.id == node.id) {
            let edit = ui.add(
                egui::TextEdit::singleline(&mut rename.text)
                    .desired_width(140.0)
                    .font(egui::TextStyle::Body),
            );
            if !rename.focus_requested {
                edit.request_focus();
                // F2 selects the whole name, so typing replaces it.
                if let Some(mut state) = egui::TextEdit::load_state(ui.ctx(), edit.id) {
                    let end = egui::text::CCursor::new(rename.text.chars().count());
                    state
                        .cursor
                        .set_char_range(Some(egui::text::CCursorRange::two(
                            egui::text::CCursor::new(0),
                            end,
                        )));
                    state.store(ui.ctx(), edit.id);
                }
                rename.focus_requested = true;
            }
            if edit.lost_focus() {
                let cancelled = ui.input(|i| i.key_pressed(egui::Key::Escape));
                let name = rename.text.trim().to_string();
                if !cancelled && name != self.world.node_name(node.id) {
                    self.actions
                        .push(Action::edit(Command::RenameNode { id: node.id, name }));
                }
                *self.renaming = None;
            }
            return;
        }
        ui.vertical(|ui| {
            let name = ui
                .add(
                    egui::Label::new(RichText::new(self.world.node_name(node.id)).strong())
                        .sense(egui::Sense::click())
                        .selectable(false),
                )
                .on_hover_text("Double-click to rename");
            if name.double_clicked() {
                *self.renaming = Some(Rename {
                    id: node.id,
                    text: self.world.node_name(node.id).to_string(),
                    focus_requested: false,
                });
            }
            ui.label(RichText::new(node.kind.type_name()).small().weak());
        });
    }

    fn body(&mut self, ui: &mut Ui, node: GNode) {
        ui.vertical(|ui| {
            ui.set_width(BODY_WIDTH);
            self.body_contents(ui, node);
        });
    }

    fn body_contents(&mut self, ui: &mut Ui, node: GNode) {
        let world = self.world;
        let state = world.state(node.id);
        let errors = state.map_or(0, |s| s.errors);
        let badge = world.badge(node.id);
        let network = matches!(node.kind, OpKind::WebServer | OpKind::WebSocket);
        // The script a node runs (its callbacks DAT, or itself) is broken now: both show it.
        let script_error = world
            .callbacks_node(node.id)
            .into_iter()
            .chain([node.id])
            .find_map(|t| world.state(t).and_then(|s| s.script_error.as_ref()));
        ui.horizontal_wrapped(|ui| {
            if let Some(error) = script_error {
                let where_ = error
                    .line
                    .map(|l| format!("line {l}: "))
                    .unwrap_or_default();
                ui.label(
                    RichText::new("script error")
                        .small()
                        .color(badge_color(Badge::Error)),
                )
                .on_hover_text(format!("{where_}{}", error.text));
            }
            if network || badge == Badge::Error {
                let text = if badge == Badge::Error {
                    format!("error ({errors})")
                } else {
                    badge.label().to_string()
                };
                let label = badge_ui(ui, badge, RichText::new(text).small());
                if let Some(error) = state.and_then(|s| s.status_error.as_ref()) {
                    label.on_hover_text(error);
                }
            } else if errors > 0 {
                let label = ui.label(
                    RichText::new(if errors == 1 {
                        "1 error".to_string()
                    } else {
                        format!("{errors} errors")
                    })
                    .small()
                    // Past errors are a count; only a current one is red.
                    .color(if script_error.is_some() {
                        badge_color(Badge::Error)
                    } else {
                        ui.visuals().weak_text_color()
                    }),
                );
                if let Some(error) = state.and_then(|s| s.last_error.as_ref()) {
                    label.on_hover_text(&error.text);
                }
            }
            if let Some(rate) = self.rates.rate(node.id) {
                ui.label(RichText::new(format_rate(rate)).small().monospace());
            }
        });
        preview(ui, world, node.id);
    }
}

/// The first rows of a node's table or lines of its text, small.
fn preview(ui: &mut Ui, world: &World, id: NodeId) {
    let Some(dat) = world.dat(id) else {
        return;
    };
    let clip = |s: &str| -> String {
        let mut out: String = s.chars().take(PREVIEW_CHARS).collect();
        if s.chars().count() > PREVIEW_CHARS {
            out.push('…');
        }
        out
    };
    let rows = dat.num_rows();
    let frame = egui::Frame::new()
        .fill(ui.visuals().extreme_bg_color)
        .inner_margin(4.0)
        .corner_radius(3.0);
    frame.show(ui, |ui| {
        ui.set_width(ui.available_width());
        match &dat {
            DatRef::Text(text) => {
                let lines: Vec<String> = text
                    .lines()
                    .take(PREVIEW_ROWS)
                    .map(|l| {
                        let mut out: String = l.chars().take(PREVIEW_CHARS * 2).collect();
                        if l.chars().count() > PREVIEW_CHARS * 2 {
                            out.push('…');
                        }
                        out
                    })
                    .collect();
                if lines.is_empty() {
                    ui.weak(RichText::new("(empty)").small());
                } else {
                    ui.add(
                        egui::Label::new(RichText::new(lines.join("\n")).small().monospace())
                            .wrap_mode(egui::TextWrapMode::Extend),
                    );
                }
            }
            DatRef::Table(_) | DatRef::Fifo(_) => {
                if rows == 0 {
                    ui.weak(RichText::new("(empty table)").small());
                    return;
                }
                let cols = dat.num_cols().min(PREVIEW_COLS);
                egui::Grid::new(("preview", id))
                    .spacing(vec2(6.0, 0.0))
                    .show(ui, |ui| {
                        for r in 0..rows.min(PREVIEW_ROWS) {
                            for c in 0..cols {
                                let cell = table_cell(&dat, r, c);
                                ui.add(
                                    egui::Label::new(
                                        RichText::new(clip(&cell)).small().monospace(),
                                    )
                                    .wrap_mode(egui::TextWrapMode::Extend),
                                );
                            }
                            ui.end_row();
                        }
                    });
            }
        }
        if rows > PREVIEW_ROWS {
            ui.weak(RichText::new(format!("{rows} rows")).small());
        }
    });
}

/// A cell without `DatRef::cell`'s per-call column count (which walks every row of a Table).
pub fn table_cell(dat: &DatRef<'_>, row: usize, col: usize) -> String {
    match dat {
        DatRef::Table(t) => t
            .rows
            .get(row)
            .and_then(|r| r.get(col))
            .cloned()
            .unwrap_or_default(),
        other => other.cell(row, col).unwrap_or_default(),
    }
}

impl SnarlViewer<GNode> for Viewer<'_> {
    fn title(&mut self, node: &GNode) -> String {
        self.world.node_name(node.id).to_string()
    }

    fn node_frame(
        &mut self,
        default: egui::Frame,
        node: SnarlId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        snarl: &Snarl<GNode>,
    ) -> egui::Frame {
        let Some(g) = snarl.get_node(node) else {
            return default;
        };
        let selection = &self.selection;
        let accent = Color32::from_rgb(0x60, 0xa0, 0xff);
        if selection.current() == Some(g.id) {
            default.stroke(Stroke::new(2.5, accent))
        } else if selection.contains(g.id) {
            default.stroke(Stroke::new(1.5, accent))
        } else if self
            .world
            .state(g.id)
            .is_some_and(|s| s.status_error.is_some())
        {
            default.stroke(Stroke::new(1.5, badge_color(Badge::Error)))
        } else {
            default
        }
    }

    fn show_header(
        &mut self,
        node: SnarlId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        ui: &mut Ui,
        snarl: &mut Snarl<GNode>,
    ) {
        if let Some(g) = snarl.get_node(node).copied() {
            self.header(ui, g);
        }
    }

    fn inputs(&mut self, node: &GNode) -> usize {
        node.kind.inputs().len()
    }

    fn show_input(
        &mut self,
        pin: &InPin,
        ui: &mut Ui,
        snarl: &mut Snarl<GNode>,
    ) -> impl egui_snarl::ui::SnarlPin + 'static {
        let Some(g) = snarl.get_node(pin.id.node).copied() else {
            return PinInfo::circle();
        };
        let Some(input) = g.kind.inputs().get(pin.id.input).copied() else {
            return PinInfo::circle();
        };
        self.pin_rows
            .insert((g.id, Some(pin.id.input)), ui.max_rect().center().y);
        ui.label(RichText::new(input.token()).small())
            .on_hover_text(format!(
                "{}: takes a {}",
                input.label(),
                accepted_kinds(input)
            ));
        PinInfo::circle().with_fill(input_color(input))
    }

    fn outputs(&mut self, node: &GNode) -> usize {
        usize::from(node.kind.has_output())
    }

    fn show_output(
        &mut self,
        pin: &OutPin,
        ui: &mut Ui,
        snarl: &mut Snarl<GNode>,
    ) -> impl egui_snarl::ui::SnarlPin + 'static {
        let kind = snarl.get_node(pin.id.node).map(|g| {
            self.pin_rows.insert((g.id, None), ui.max_rect().center().y);
            g.kind
        });
        PinInfo::circle().with_fill(pin_color(kind))
    }

    fn has_body(&mut self, _node: &GNode) -> bool {
        true
    }

    fn show_body(
        &mut self,
        node: SnarlId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        ui: &mut Ui,
        snarl: &mut Snarl<GNode>,
    ) {
        if let Some(g) = snarl.get_node(node).copied() {
            self.body(ui, g);
        }
    }

    fn final_node_rect(
        &mut self,
        node: SnarlId,
        rect: Rect,
        _ui: &mut Ui,
        snarl: &mut Snarl<GNode>,
    ) {
        if let Some(g) = snarl.get_node(node) {
            self.node_rects.insert(g.id, rect);
            self.draw_order.push(g.id);
        }
    }

    fn has_graph_menu(&mut self, _pos: Pos2, _snarl: &mut Snarl<GNode>) -> bool {
        true
    }

    fn show_graph_menu(&mut self, pos: Pos2, ui: &mut Ui, _snarl: &mut Snarl<GNode>) {
        // Focused when it opens, as Tab's menu is, so typing searches at once.
        let focus = !self.graph_menu_open_before;
        self.graph_menu_shown = true;
        if let Some(kind) = create_menu_ui(ui, self.menu_query, focus) {
            self.actions.push(Action::Create {
                kind,
                pos: Some((pos.x, pos.y)),
            });
            self.menu_query.clear();
            ui.close();
        }
    }

    fn has_node_menu(&mut self, _node: &GNode) -> bool {
        true
    }

    fn show_node_menu(
        &mut self,
        node: SnarlId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        ui: &mut Ui,
        snarl: &mut Snarl<GNode>,
    ) {
        let Some(g) = snarl.get_node(node).copied() else {
            return;
        };
        ui.strong(self.world.node_name(g.id));
        let mut item = |ui: &mut Ui, text: &str, shortcut: &str, action: Action| {
            if ui
                .add(egui::Button::new(text).shortcut_text(shortcut))
                .clicked()
            {
                if !self.selection.contains(g.id) {
                    self.actions.push(Action::Focus(g.id));
                }
                self.actions.push(action);
                ui.close();
            }
        };
        item(ui, "Rename", "F2", Action::Rename);
        item(ui, "Duplicate", "Ctrl+D", Action::Duplicate);
        item(ui, "Copy", "Ctrl+C", Action::Copy);
        item(ui, "Cut", "Ctrl+X", Action::Cut);
        item(ui, "Delete", "Del", Action::Delete);
    }

    fn connect(&mut self, from: &OutPin, to: &InPin, snarl: &mut Snarl<GNode>) {
        let (Some(src), Some(dst)) = (
            snarl.get_node(from.id.node).copied(),
            snarl.get_node(to.id.node).copied(),
        ) else {
            return;
        };
        let Some(input) = dst.kind.inputs().get(to.id.input).copied() else {
            return;
        };
        if src.id == dst.id {
            self.actions
                .push(Action::Error("a node cannot be wired into itself".into()));
        } else if input.accepts(src.kind) {
            // The wire appears when the engine has it: the graph is synced from the document.
            self.actions.push(Action::edit(Command::SetInput {
                to: dst.id,
                input,
                from: Some(src.id),
            }));
        } else {
            self.actions.push(Action::Error(format!(
                "a {} cannot feed the {} pin: it takes a {}",
                src.kind.label(),
                input.token(),
                accepted_kinds(input)
            )));
        }
    }

    fn disconnect(&mut self, _from: &OutPin, to: &InPin, snarl: &mut Snarl<GNode>) {
        if let Some(cmd) = unwire(snarl, to) {
            self.actions.push(Action::edit(cmd));
        }
    }

    fn drop_inputs(&mut self, pin: &InPin, snarl: &mut Snarl<GNode>) {
        if let Some(cmd) = unwire(snarl, pin) {
            self.actions.push(Action::edit(cmd));
        }
    }

    fn drop_outputs(&mut self, pin: &OutPin, snarl: &mut Snarl<GNode>) {
        let commands: Vec<Command> = pin
            .remotes
            .iter()
            .filter_map(|remote| {
                let dst = snarl.get_node(remote.node)?;
                let input = *dst.kind.inputs().get(remote.input)?;
                Some(Command::SetInput {
                    to: dst.id,
                    input,
                    from: None,
                })
            })
            .collect();
        if !commands.is_empty() {
            self.actions.push(Action::Edit {
                commands,
                merge: None,
            });
        }
    }

    fn current_transform(&mut self, to_global: &mut TSTransform, _snarl: &mut Snarl<GNode>) {
        if let Some(view) = self.pending_view.take() {
            *to_global = TSTransform::new(
                self.rect.min.to_vec2() + vec2(view.pan.0, view.pan.1),
                view.zoom.clamp(0.2, 2.0),
            );
        }
        if let Some(id) = *self.center_on {
            if let Some(rect) = self.node_rects.get(&id) {
                to_global.translation =
                    self.rect.center().to_vec2() - rect.center().to_vec2() * to_global.scaling;
            }
            *self.center_on = None;
        }
        if let Some(ids) = self.frame.take() {
            let rects = self
                .node_rects
                .iter()
                .filter(|(id, _)| ids.is_empty() || ids.contains(id))
                .map(|(_, r)| *r);
            if let Some(bounds) = rects.reduce(egui::Rect::union) {
                let room = self.rect.shrink(30.0);
                let scale = (room.width() / bounds.width())
                    .min(room.height() / bounds.height())
                    .clamp(0.2, 1.0);
                to_global.scaling = scale;
                to_global.translation =
                    self.rect.center().to_vec2() - bounds.center().to_vec2() * scale;
            }
        }
        if let Some(id) = self.reveal.take()
            && let Some(rect) = self.node_rects.get(&id)
        {
            let on_screen = to_global.mul_rect(*rect);
            let room = self.rect.shrink(10.0);
            let mut shift = vec2(0.0, 0.0);
            if on_screen.bottom() > room.bottom() {
                shift.y = room.bottom() - on_screen.bottom();
            }
            if on_screen.top() + shift.y < room.top() {
                shift.y = room.top() - on_screen.top();
            }
            if on_screen.right() > room.right() {
                shift.x = room.right() - on_screen.right();
            }
            if on_screen.left() + shift.x < room.left() {
                shift.x = room.left() - on_screen.left();
            }
            to_global.translation += shift;
        }
        *self.transform = *to_global;
    }
}

fn unwire(snarl: &Snarl<GNode>, pin: &InPin) -> Option<Command> {
    let dst = snarl.get_node(pin.id.node)?;
    let input = *dst.kind.inputs().get(pin.id.input)?;
    Some(Command::SetInput {
        to: dst.id,
        input,
        from: None,
    })
}

fn accepted_kinds(input: Input) -> String {
    let kinds: Vec<&str> = OpKind::ALL
        .iter()
        .filter(|k| input.accepts(**k))
        .map(|k| k.label())
        .collect();
    if kinds.len() == OpKind::ALL.len() {
        "any DAT".into()
    } else {
        kinds.join(" or ")
    }
}
