//! Operator kinds: their parameters (TouchDesigner tokens, labels, pages, defaults), their input
//! pins, and dispatch to the one file per operator that holds its runtime and cook.

pub mod channels;
pub mod execute;
pub mod fifo_table;
pub mod table;
pub mod text;
pub mod webserver;
pub mod websocket;

use serde::{Deserialize, Serialize};

/// Every operator kind; the variant name is what project files say (`kind: Table`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    WebServer,
    WebSocket,
    Table,
    Text,
    Execute,
    Channels,
}

/// Typed input pins. A wire into a pin is the same thing as the operator parameter of that name.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Input {
    /// A Text DAT holding the callbacks (`callbacks` parameter).
    Callbacks,
    /// A Table DAT of name/value rows sent as handshake headers (`headers` parameter).
    Headers,
    /// A DAT whose contents a Table DAT mirrors.
    Source,
}

impl Input {
    /// The parameter token that names the wired operator.
    pub fn token(self) -> &'static str {
        match self {
            Input::Callbacks => "callbacks",
            Input::Headers => "headers",
            Input::Source => "source",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Input::Callbacks => "Callbacks DAT",
            Input::Headers => "Headers DAT",
            Input::Source => "Source DAT",
        }
    }

    /// Which operator kinds may be wired into this pin.
    pub fn accepts(self, kind: OpKind) -> bool {
        match self {
            Input::Callbacks => kind == OpKind::Text,
            Input::Headers => kind == OpKind::Table,
            Input::Source => kind.is_dat() || kind == OpKind::Channels,
        }
    }
}

/// How a parameter is edited and what values it takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParKind {
    Toggle(bool),
    Int {
        default: i64,
        min: i64,
        max: i64,
    },
    Float {
        default: f64,
        min: f64,
        max: f64,
    },
    Str(&'static str),
    /// One of `items` (token, label).
    Menu {
        default: &'static str,
        items: &'static [(&'static str, &'static str)],
    },
    /// A path; `extensions` filter the native picker.
    File {
        extensions: &'static [&'static str],
    },
    /// A folder path.
    Folder,
    /// A string shown masked (certificate password); `$NAME` keeps it out of the file.
    Password,
    /// A button: no stored value, it fires an action.
    Pulse,
    /// The operator wired into an input pin.
    Op(Input),
}

#[derive(Clone, Copy, Debug)]
pub struct ParDef {
    pub token: &'static str,
    pub label: &'static str,
    pub page: &'static str,
    pub kind: ParKind,
    pub help: &'static str,
}

impl ParDef {
    /// The value a new node gets; `None` for pulses and pins, which are not stored.
    pub fn default_value(&self) -> Option<crate::project::ParValue> {
        use crate::project::ParValue;
        Some(match self.kind {
            ParKind::Toggle(b) => ParValue::Bool(b),
            ParKind::Int { default, .. } => ParValue::Int(default),
            ParKind::Float { default, .. } => ParValue::Float(default),
            ParKind::Str(s) => ParValue::Str(s.to_string()),
            ParKind::Menu { default, .. } => ParValue::Str(default.to_string()),
            ParKind::File { .. } | ParKind::Folder | ParKind::Password => {
                ParValue::Str(String::new())
            }
            ParKind::Pulse | ParKind::Op(_) => return None,
        })
    }

    pub fn is_stored(&self) -> bool {
        !matches!(self.kind, ParKind::Pulse | ParKind::Op(_))
    }
}

/// The Common page every DAT has (TouchDesigner's Language, Edit/View Extension, Word Wrap).
pub const COMMON_PAGE: &str = "Common";

pub const LANGUAGES: &[(&str, &str)] = &[
    ("text", "Plain Text"),
    ("rhai", "Rhai"),
    ("json", "JSON"),
    ("html", "HTML"),
    ("css", "CSS"),
    ("js", "JavaScript"),
    ("xml", "XML"),
    ("csv", "CSV"),
];

macro_rules! common_pars {
    () => {
        [
            $crate::ops::ParDef {
                token: "language",
                label: "Language",
                page: $crate::ops::COMMON_PAGE,
                kind: $crate::ops::ParKind::Menu { default: "text", items: $crate::ops::LANGUAGES },
                help: "Language of the contents: used for syntax highlighting and the default extension.",
            },
            $crate::ops::ParDef {
                token: "extension",
                label: "Edit/View Extension",
                page: $crate::ops::COMMON_PAGE,
                kind: $crate::ops::ParKind::Menu {
                    default: "language",
                    items: &[("language", "From Language"), ("dat", "DAT (.txt / .tsv)"), ("custom", "Custom Extension")],
                },
                help: "File extension used when the contents are exported or written to a file.",
            },
            $crate::ops::ParDef {
                token: "customext",
                label: "Custom Extension",
                page: $crate::ops::COMMON_PAGE,
                kind: $crate::ops::ParKind::Str(""),
                help: "Extension used when Edit/View Extension is Custom.",
            },
            $crate::ops::ParDef {
                token: "wordwrap",
                label: "Word Wrap",
                page: $crate::ops::COMMON_PAGE,
                kind: $crate::ops::ParKind::Menu {
                    default: "input",
                    items: &[("input", "Use Input"), ("on", "On"), ("off", "Off")],
                },
                help: "Wrap long lines in the viewers (Use Input: off unless the input DAT wraps).",
            },
        ]
    };
}
pub(crate) use common_pars;

impl OpKind {
    pub const ALL: &'static [OpKind] = &[
        OpKind::WebServer,
        OpKind::WebSocket,
        OpKind::Table,
        OpKind::Text,
        OpKind::Execute,
        OpKind::Channels,
    ];

    /// What the GUI and the console call it.
    pub fn label(self) -> &'static str {
        match self {
            OpKind::WebServer => "Web Server DAT",
            OpKind::WebSocket => "WebSocket DAT",
            OpKind::Table => "Table DAT",
            OpKind::Text => "Text DAT",
            OpKind::Execute => "Execute DAT",
            OpKind::Channels => "Channels CHOP",
        }
    }

    /// TouchDesigner's class name, as scripts see it in `op("x").type`.
    pub fn type_name(self) -> &'static str {
        match self {
            OpKind::WebServer => "webserverDAT",
            OpKind::WebSocket => "websocketDAT",
            OpKind::Table => "tableDAT",
            OpKind::Text => "textDAT",
            OpKind::Execute => "executeDAT",
            OpKind::Channels => "channelsCHOP",
        }
    }

    /// Stem of new node names (`table1`, `table2`, ...).
    pub fn name_stem(self) -> &'static str {
        match self {
            OpKind::WebServer => "webserver",
            OpKind::WebSocket => "websocket",
            OpKind::Table => "table",
            OpKind::Text => "text",
            OpKind::Execute => "execute",
            OpKind::Channels => "channels",
        }
    }

    pub fn is_dat(self) -> bool {
        self != OpKind::Channels
    }

    pub fn params(self) -> &'static [ParDef] {
        match self {
            OpKind::WebServer => webserver::PARAMS,
            OpKind::WebSocket => websocket::PARAMS,
            OpKind::Table => table::PARAMS,
            OpKind::Text => text::PARAMS,
            OpKind::Execute => execute::PARAMS,
            OpKind::Channels => channels::PARAMS,
        }
    }

    pub fn param(self, token: &str) -> Option<&'static ParDef> {
        self.params().iter().find(|p| p.token == token)
    }

    /// Parameter pages in display order.
    pub fn pages(self) -> Vec<&'static str> {
        let mut pages: Vec<&'static str> = Vec::new();
        for p in self.params() {
            if !pages.contains(&p.page) {
                pages.push(p.page);
            }
        }
        pages
    }

    pub fn inputs(self) -> &'static [Input] {
        match self {
            OpKind::WebServer => &[Input::Callbacks],
            OpKind::WebSocket => &[Input::Callbacks, Input::Headers],
            OpKind::Table | OpKind::Channels => &[Input::Source],
            OpKind::Text | OpKind::Execute => &[],
        }
    }

    /// Whether the node's contents are text (saved as `text:`) rather than a table.
    pub fn has_text(self) -> bool {
        matches!(self, OpKind::Text | OpKind::Execute)
    }

    pub fn has_table(self) -> bool {
        matches!(self, OpKind::Table)
    }

    /// Whether it has an output pin (every DAT can feed a pin that accepts it).
    pub fn has_output(self) -> bool {
        self.is_dat()
    }

    /// Contents of a newly created node.
    pub fn default_text(self) -> Option<&'static str> {
        match self {
            OpKind::Text => Some(""),
            OpKind::Execute => Some(execute::DEFAULT_CALLBACKS),
            OpKind::Table | OpKind::WebServer | OpKind::WebSocket | OpKind::Channels => None,
        }
    }

    /// Default callbacks for the `<name>_callbacks` Text DAT created with this kind, if any.
    pub fn callbacks_template(self) -> Option<&'static str> {
        match self {
            OpKind::WebServer => Some(webserver::DEFAULT_CALLBACKS),
            OpKind::WebSocket => Some(websocket::DEFAULT_CALLBACKS),
            _ => None,
        }
    }
}

// ---- Dispatch: the engine calls these; each forwards to the operator's own file. ----

use crate::engine::{CommandError, Engine, NodeState, OpRuntime, World};
use crate::net::{NetEvent, NetEventKind};
use crate::project::{Node, NodeId};

/// Creates a node of `kind` named `name` (or the next free `<stem>N`), with default parameters.
pub fn create(
    engine: &mut Engine,
    kind: OpKind,
    name: Option<&str>,
    pos: (f32, f32),
) -> Result<Vec<NodeId>, CommandError> {
    let world = engine.world_mut();
    let name = match name {
        Some(name) => {
            if !crate::project::validate_name(name) {
                return Err(CommandError::Invalid(format!(
                    "\"{name}\" is not a valid name"
                )));
            }
            if world.project.node_by_name(name).is_some() {
                return Err(CommandError::Invalid(format!(
                    "a node named \"{name}\" already exists"
                )));
            }
            name.to_string()
        }
        None => world.project.unique_name(&format!("{}1", kind.name_stem())),
    };
    let id = world.project.next_id();
    let node = Node {
        id,
        name,
        kind,
        pos,
        params: kind
            .params()
            .iter()
            .filter_map(|d| Some((d.token.to_string(), d.default_value()?)))
            .collect(),
        text: kind.default_text().map(str::to_string),
        table: kind.has_table().then(Default::default),
    };
    world.project.nodes.push(node);
    world.revision += 1;
    world.nodes.insert(
        id,
        NodeState {
            needs_reconcile: true,
            ..NodeState::default()
        },
    );
    let mut created = vec![id];
    // As in TouchDesigner, a network operator comes with its callbacks DAT, docked below it.
    if let Some(template) = kind.callbacks_template() {
        let base = world
            .project
            .node(id)
            .map(|n| format!("{}_callbacks", n.name))
            .unwrap_or_default();
        let name = world.project.unique_name(&base);
        let text_id = world.project.next_id();
        let mut params: std::collections::BTreeMap<String, crate::project::ParValue> = OpKind::Text
            .params()
            .iter()
            .filter_map(|d| Some((d.token.to_string(), d.default_value()?)))
            .collect();
        params.insert(
            "language".into(),
            crate::project::ParValue::Str("rhai".into()),
        );
        world.project.nodes.push(Node {
            id: text_id,
            name,
            kind: OpKind::Text,
            pos: (pos.0, pos.1 + 180.0),
            params,
            text: Some(template.to_string()),
            table: None,
        });
        world.nodes.insert(text_id, NodeState::default());
        world.project.wires.push(crate::project::Wire {
            from: text_id,
            to: id,
            input: Input::Callbacks,
        });
        world.project.wires.sort();
        created.push(text_id);
    }
    Ok(created)
}

/// Brings the node's runtime in line with its parameters (start, restart or stop what changed).
pub fn reconcile(engine: &mut Engine, id: NodeId) {
    let first = !std::mem::replace(&mut engine.world_mut().state_mut(id).initialized, true);
    match kind_of(engine.world(), id) {
        Some(OpKind::WebServer) => webserver::reconcile(engine, id, first),
        Some(OpKind::WebSocket) => websocket::reconcile(engine, id, first),
        Some(OpKind::Table) => table::reconcile(engine, id, first),
        Some(OpKind::Channels) => channels::reconcile(engine, id, first),
        Some(OpKind::Text) => text::reconcile(engine, id, first),
        Some(OpKind::Execute) => execute::reconcile(engine, id),
        None => {}
    }
}

pub fn pulse(engine: &mut Engine, id: NodeId, token: &str) {
    match kind_of(engine.world(), id) {
        Some(OpKind::WebServer) => webserver::pulse(engine, id, token),
        Some(OpKind::WebSocket) => websocket::pulse(engine, id, token),
        Some(OpKind::Table) => table::pulse(engine, id, token),
        Some(OpKind::Channels) => channels::pulse(engine, id, token),
        Some(OpKind::Text) => text::pulse(engine, id, token),
        Some(OpKind::Execute) | None => {}
    }
}

/// Per-frame work; returns whether the node cooked.
pub fn cook(engine: &mut Engine, id: NodeId) -> bool {
    match kind_of(engine.world(), id) {
        Some(OpKind::Table) => table::cook(engine, id),
        Some(OpKind::Channels) => channels::cook(engine, id),
        Some(OpKind::Execute) => execute::frame(engine, id, "framestart", "onFrameStart"),
        Some(OpKind::WebSocket) => websocket::cook(engine, id),
        Some(OpKind::Text | OpKind::WebServer) | None => false,
    }
}

pub fn frame_end(engine: &mut Engine, id: NodeId) -> bool {
    match kind_of(engine.world(), id) {
        Some(OpKind::Execute) => execute::frame(engine, id, "frameend", "onFrameEnd"),
        _ => false,
    }
}

/// Stops the node's runtime: the project closes or the node is deleted.
pub fn stop(engine: &mut Engine, id: NodeId) {
    match kind_of(engine.world(), id) {
        Some(OpKind::Execute) => execute::stop(engine, id),
        Some(OpKind::WebServer) => webserver::stop(engine, id),
        Some(OpKind::WebSocket) => websocket::stop(engine, id),
        _ => {}
    }
}

/// Routes a network event to its operator; events from an earlier run of its task are the
/// operator's to ignore (it knows its current run).
pub fn handle_event(engine: &mut Engine, event: NetEvent) {
    match event.kind {
        NetEventKind::Server(e) => webserver::handle_event(engine, event.node, event.run, e),
        NetEventKind::Client(e) => websocket::handle_event(engine, event.node, event.run, e),
    }
}

/// Channels of the operator's own, beside the common ones.
pub fn extra_info(world: &World, id: NodeId, out: &mut Vec<(&'static str, f64)>) {
    match world.state(id).map(|s| &s.runtime) {
        Some(OpRuntime::WebServer(rt)) => webserver::extra_info(rt, out),
        Some(OpRuntime::WebSocket(rt)) => websocket::extra_info(rt, out),
        Some(OpRuntime::Channels(rt)) => channels::extra_info(rt, out),
        _ => {}
    }
}

/// The state an operator shows on its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Badge {
    /// Nothing running (inactive, or an operator without connections).
    Idle,
    Listening,
    Connecting,
    Connected,
    Reconnecting,
    /// The node has a lasting error (`NodeState::status_error`).
    Error,
}

impl Badge {
    pub fn label(self) -> &'static str {
        match self {
            Badge::Idle => "idle",
            Badge::Listening => "listening",
            Badge::Connecting => "connecting",
            Badge::Connected => "connected",
            Badge::Reconnecting => "reconnecting",
            Badge::Error => "error",
        }
    }
}

/// What a node's state badge shows.
pub fn badge(world: &World, id: NodeId) -> Badge {
    let Some(state) = world.state(id) else {
        return Badge::Idle;
    };
    if state.status_error.is_some() {
        return Badge::Error;
    }
    match &state.runtime {
        OpRuntime::WebServer(rt) => webserver::badge(rt),
        OpRuntime::WebSocket(rt) => websocket::badge(rt),
        _ => Badge::Idle,
    }
}

/// Messages a network operator has received so far; the GUI turns it into a rate.
pub fn messages_in(world: &World, id: NodeId) -> u64 {
    match world.state(id).map(|s| &s.runtime) {
        Some(OpRuntime::WebServer(rt)) => webserver::messages_in(rt),
        Some(OpRuntime::WebSocket(rt)) => websocket::messages_in(rt),
        _ => 0,
    }
}

/// Script methods specific to one operator kind (`webSocketSendText`, `sendText`, ...).
pub fn register_script_api(engine: &mut rhai::Engine) {
    webserver::register_script_api(engine);
    websocket::register_script_api(engine);
    channels::register_script_api(engine);
}

fn kind_of(world: &World, id: NodeId) -> Option<OpKind> {
    world.project.node(id).map(|n| n.kind)
}
