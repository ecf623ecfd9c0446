//! The trait every operator kind implements, the registry that maps kinds to their
//! implementation, and the script methods an operator offers. The engine reaches operators only
//! through these, so adding an operator touches its own folder and one registry line in `ops/`.

use std::any::Any;

use super::{DatRef, Engine, Value, World};
use crate::net::NetEventKind;
use crate::project::NodeId;
use crate::schema::OpKind;

/// One operator kind's behaviour. Implementations are stateless unit structs: a node's runtime
/// state lives in its [`super::NodeState`] ([`World::runtime`] / [`World::runtime_mut`]), so a
/// script callback that calls back into the same operator finds it there.
pub trait Operator: Sync {
    /// Brings the node's runtime in line with its parameters: reads them into its typed struct,
    /// starts, restarts or stops what changed. `first`: the project just started or the node was
    /// just created.
    fn reconcile(&self, engine: &mut Engine, id: NodeId, first: bool);

    /// A pulse parameter fired (from the GUI or a script), handled at the next frame.
    fn pulse(&self, _engine: &mut Engine, _id: NodeId, _token: &str) {}

    /// Once per frame, before frame end; returns whether it cooked (counted in its info).
    fn cook(&self, _engine: &mut Engine, _id: NodeId) -> bool {
        false
    }

    /// Once per frame, after every node cooked; returns whether it cooked.
    fn frame_end(&self, _engine: &mut Engine, _id: NodeId) -> bool {
        false
    }

    /// Stops the node's runtime: the project closes or the node is deleted.
    fn stop(&self, _engine: &mut Engine, _id: NodeId) {}

    /// An event from the node's network task; `run` tells which start of the task sent it.
    fn handle_event(&self, _engine: &mut Engine, _id: NodeId, _run: u64, _event: NetEventKind) {}

    /// Info channels of its own, beside the common ones.
    fn info(&self, _world: &World, _id: NodeId, _out: &mut Vec<(&'static str, f64)>) {}

    /// What its node's state badge shows.
    fn badge(&self, _world: &World, _id: NodeId) -> Badge {
        Badge::Idle
    }

    /// Messages received so far (the GUI turns it into a rate).
    fn messages_in(&self, _world: &World, _id: NodeId) -> u64 {
        0
    }

    /// Its contents as a DAT when they are runtime data (received messages, channels), not the
    /// document's table or text.
    fn dat<'w>(&self, _world: &'w World, _id: NodeId) -> Option<DatRef<'w>> {
        None
    }

    /// Closes one connected client by hand (the Info panel's close button).
    fn close_client(&self, _world: &mut World, _id: NodeId, _client: &str) -> Result<(), String> {
        Err("this operator has no clients".into())
    }

    /// Methods and properties scripts call on it (`webSocketSendText`, `numChans`).
    fn script_methods(&self) -> &'static [ScriptMethod] {
        &[]
    }

    /// Default callbacks of the `<name>_callbacks` Text DAT created with it, if any.
    fn callbacks_template(&self) -> Option<&'static str> {
        None
    }

    /// Contents of a new node whose contents are text.
    fn default_text(&self) -> Option<&'static str> {
        None
    }
}

/// A script method of an operator: it gets the world (lent for the callback), the node, and the
/// arguments as plain values, and returns a plain value or an error message.
pub struct ScriptMethod {
    pub name: &'static str,
    /// A property read (`dat.webSocketConnections`) rather than a call.
    pub property: bool,
    /// Parameter names in order (keyword arguments map onto them); the first `required` must be given.
    pub params: &'static [&'static str],
    pub required: usize,
    pub call: fn(&mut World, NodeId, &[Value]) -> Result<Value, String>,
}

impl ScriptMethod {
    pub const fn method(
        name: &'static str,
        params: &'static [&'static str],
        required: usize,
        call: fn(&mut World, NodeId, &[Value]) -> Result<Value, String>,
    ) -> Self {
        Self {
            name,
            property: false,
            params,
            required,
            call,
        }
    }

    pub const fn property(
        name: &'static str,
        call: fn(&mut World, NodeId, &[Value]) -> Result<Value, String>,
    ) -> Self {
        Self {
            name,
            property: true,
            params: &[],
            required: 0,
            call,
        }
    }
}

/// Maps each kind to its operator. Built by `ops::registry()` and kept in the `World`, where the
/// engine and the script API (through the lent world) find it.
#[derive(Clone, Copy)]
pub struct Registry {
    operator: fn(OpKind) -> &'static dyn Operator,
}

impl Registry {
    pub const fn new(operator: fn(OpKind) -> &'static dyn Operator) -> Self {
        Self { operator }
    }

    pub fn get(&self, kind: OpKind) -> &'static dyn Operator {
        (self.operator)(kind)
    }

    /// The script method `name` of `kind`, if it has one.
    pub fn script_method(&self, kind: OpKind, name: &str) -> Option<&'static ScriptMethod> {
        self.get(kind)
            .script_methods()
            .iter()
            .find(|m| m.name == name)
    }
}

impl Default for Registry {
    /// A registry whose operators do nothing (a bare `World` in unit tests).
    fn default() -> Self {
        Self::new(|_| &Inert)
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

struct Inert;

impl Operator for Inert {
    fn reconcile(&self, _engine: &mut Engine, _id: NodeId, _first: bool) {}
}

/// A node's runtime state, stored type-erased in its `NodeState`.
pub trait OpState: Any + Send + std::fmt::Debug {}

impl<T: Any + Send + std::fmt::Debug> OpState for T {}

/// Where a client connection stands (WebSocket DAT, MQTT Client DAT); its badge says the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Link {
    /// Inactive, stopped (a close with Reconnect off), or not started.
    #[default]
    Idle,
    /// First attempt since the operator started.
    Connecting,
    Connected,
    /// A connection failed or closed; waiting for or making the next attempt.
    Reconnecting,
}

impl Link {
    pub fn badge(self) -> Badge {
        match self {
            Link::Idle => Badge::Idle,
            Link::Connecting => Badge::Connecting,
            Link::Connected => Badge::Connected,
            Link::Reconnecting => Badge::Reconnecting,
        }
    }
}

/// The state an operator shows on its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
