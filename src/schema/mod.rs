//! What the document and the GUI know about operators: kinds, parameter definitions (token, label,
//! page, type, default, help), input pins and what they accept. Plain data: no runtime code.

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
    Fifo,
    WebClient,
    Mqtt,
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
    /// The Web Client DAT's body: a Text DAT as is, or a name/value Table DAT (`data` parameter).
    Data,
}

impl Input {
    /// The parameter token that names the wired operator.
    pub fn token(self) -> &'static str {
        match self {
            Input::Callbacks => "callbacks",
            Input::Headers => "headers",
            Input::Source => "source",
            Input::Data => "data",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Input::Callbacks => "Callbacks DAT",
            Input::Headers => "Headers DAT",
            Input::Source => "Source DAT",
            Input::Data => "Data DAT",
        }
    }

    /// Which operator kinds may be wired into this pin.
    pub fn accepts(self, kind: OpKind) -> bool {
        match self {
            Input::Callbacks => kind == OpKind::Text,
            Input::Headers => kind == OpKind::Table,
            Input::Source => kind.is_dat() || kind == OpKind::Channels,
            Input::Data => matches!(kind, OpKind::Table | OpKind::Text),
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
    pub fn default_value(&self) -> Option<ParValue> {
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
    ("python", "Python"),
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
            $crate::schema::ParDef {
                token: "language",
                label: "Language",
                page: $crate::schema::COMMON_PAGE,
                kind: $crate::schema::ParKind::Menu { default: "text", items: $crate::schema::LANGUAGES },
                help: "Language of the contents: used for syntax highlighting and the default extension.",
            },
            $crate::schema::ParDef {
                token: "extension",
                label: "Edit/View Extension",
                page: $crate::schema::COMMON_PAGE,
                kind: $crate::schema::ParKind::Menu {
                    default: "language",
                    items: &[("language", "From Language"), ("dat", "DAT (.txt / .tsv)"), ("custom", "Custom Extension")],
                },
                help: "File extension used when the contents are exported or written to a file.",
            },
            $crate::schema::ParDef {
                token: "customext",
                label: "Custom Extension",
                page: $crate::schema::COMMON_PAGE,
                kind: $crate::schema::ParKind::Str(""),
                help: "Extension used when Edit/View Extension is Custom.",
            },
            $crate::schema::ParDef {
                token: "wordwrap",
                label: "Word Wrap",
                page: $crate::schema::COMMON_PAGE,
                kind: $crate::schema::ParKind::Menu {
                    default: "input",
                    items: &[("input", "Use Input"), ("on", "On"), ("off", "Off")],
                },
                help: "Wrap long lines in the viewers (Use Input: off unless the input DAT wraps).",
            },
        ]
    };
}

/// The received-messages table's parameters of the client DATs (WebSocket, MQTT): Clamp Output,
/// Maximum Lines, Clear Output and Bytes Column on `$page`; `$what` names a row's contents.
macro_rules! received_pars {
    ($page:expr, $what:literal) => {
        [
            $crate::schema::ParDef {
                token: "clamp",
                label: "Clamp Output",
                page: $page,
                kind: $crate::schema::ParKind::Toggle(true),
                help: "Keep at most Maximum Lines message rows, dropping the oldest first.",
            },
            $crate::schema::ParDef {
                token: "maxlines",
                label: "Maximum Lines",
                page: $page,
                kind: $crate::schema::ParKind::Int {
                    default: 100,
                    min: 1,
                    max: 10_000_000,
                },
                help: "Message rows kept when Clamp Output is on.",
            },
            $crate::schema::ParDef {
                token: "clear",
                label: "Clear Output",
                page: $page,
                kind: $crate::schema::ParKind::Pulse,
                help: "Delete every row but the heading.",
            },
            $crate::schema::ParDef {
                token: "bytes",
                label: "Bytes Column",
                page: $page,
                kind: $crate::schema::ParKind::Toggle(false),
                help: concat!("Add a column with each ", $what, "'s raw bytes (hex)."),
            },
        ]
    };
}

// After the macros: `common_pars!` and `received_pars!` are visible only below their definitions.
mod channels;
mod execute;
mod fifo;
mod mqtt;
mod table;
mod text;
mod webclient;
mod webserver;
mod websocket;

impl OpKind {
    pub const ALL: &'static [OpKind] = &[
        OpKind::WebServer,
        OpKind::WebSocket,
        OpKind::Table,
        OpKind::Text,
        OpKind::Execute,
        OpKind::Channels,
        OpKind::Fifo,
        OpKind::WebClient,
        OpKind::Mqtt,
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
            OpKind::Fifo => "FIFO DAT",
            OpKind::WebClient => "Web Client DAT",
            OpKind::Mqtt => "MQTT Client DAT",
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
            OpKind::Fifo => "fifoDAT",
            OpKind::WebClient => "webclientDAT",
            OpKind::Mqtt => "mqttclientDAT",
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
            OpKind::Fifo => "fifo",
            OpKind::WebClient => "webclient",
            OpKind::Mqtt => "mqttclient",
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
            OpKind::Fifo => fifo::PARAMS,
            OpKind::WebClient => webclient::PARAMS,
            OpKind::Mqtt => mqtt::PARAMS,
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
            OpKind::WebServer | OpKind::Mqtt => &[Input::Callbacks],
            OpKind::WebSocket => &[Input::Callbacks, Input::Headers],
            OpKind::Table | OpKind::Channels => &[Input::Source],
            OpKind::WebClient => &[Input::Headers, Input::Data, Input::Callbacks],
            OpKind::Text | OpKind::Execute | OpKind::Fifo => &[],
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
}

/// A parameter value as written in the file (`9980`, `true`, `"localhost"`, `0.5`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum ParValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl ParValue {
    pub fn type_name(&self) -> &'static str {
        match self {
            ParValue::Bool(_) => "a toggle",
            ParValue::Int(_) => "an integer",
            ParValue::Float(_) => "a number",
            ParValue::Str(_) => "a string",
        }
    }
}

impl std::fmt::Display for ParValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParValue::Bool(b) => write!(f, "{b}"),
            ParValue::Int(i) => write!(f, "{i}"),
            ParValue::Float(x) => write!(f, "{x}"),
            ParValue::Str(s) => write!(f, "{s}"),
        }
    }
}
