//! The saved document: nodes, wires, view and settings. Pure data, no sockets, no egui.

mod file;
mod locate;
mod table;
pub(crate) mod validate;

pub use file::{LoadError, SaveError, load_file, load_str, save_file, to_ron_string, write_atomic};
pub use table::{Delimited, Table};
pub use validate::{ValidationError, check_value, is_valid_name as validate_name};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::schema::ParValue;
use crate::schema::{Input, OpKind};

/// The file format version written by this build. Version 1 held Rhai scripts; 2 holds Python.
pub const FORMAT_VERSION: u32 = 2;

/// Stable identity of a node; names may change, ids never do.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(transparent)]
pub struct NodeId(pub u64);

/// A map keyed by node id. Ids are small counters, not attacker-chosen, so a multiply hashes them
/// (SipHash, std's default, showed in profiles of the per-message paths).
pub type NodeMap<V> = std::collections::HashMap<NodeId, V, std::hash::BuildHasherDefault<IdHasher>>;

/// The hasher of [`NodeMap`]: Fibonacci hashing of the id.
#[derive(Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct Project {
    pub version: u32,
    pub settings: Settings,
    /// Sorted by id when saved.
    pub nodes: Vec<Node>,
    /// Sorted when saved.
    pub wires: Vec<Wire>,
    pub view: View,
}

impl Default for Project {
    fn default() -> Self {
        Self {
            version: FORMAT_VERSION,
            settings: Settings::default(),
            nodes: Vec::new(),
            wires: Vec::new(),
            view: View::default(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct Settings {
    /// Frames per second of the cook loop (TouchDesigner's cook rate).
    pub cook_rate_hz: f64,
    pub script: ScriptLimits,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cook_rate_hz: 60.0,
            script: ScriptLimits::default(),
        }
    }
}

/// Limits every callback runs under, so a runaway script ends instead of stalling the engine.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct ScriptLimits {
    /// A callback still running after this long is interrupted (an exception is raised into it).
    pub time_limit_ms: u64,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        Self {
            time_limit_ms: 1000,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct View {
    pub pan: (f32, f32),
    pub zoom: f32,
}

impl Default for View {
    fn default() -> Self {
        Self {
            pan: (0.0, 0.0),
            zoom: 1.0,
        }
    }
}

/// One operator in the graph.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Node {
    pub id: NodeId,
    pub name: String,
    pub kind: OpKind,
    #[serde(default)]
    pub pos: (f32, f32),
    /// Parameter values by TouchDesigner token; missing ones take their defaults on load.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, ParValue>,
    /// Contents of Text-like DATs.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "inline_some")]
    pub text: Option<String>,
    /// Contents of Table DATs.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "inline_some")]
    pub table: Option<Table>,
}

/// A wire from one node's output into another node's typed input pin.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Wire {
    pub from: NodeId,
    pub to: NodeId,
    pub input: Input,
}

impl Project {
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.id == id)
    }

    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The node wired into `to`'s `input` pin, if any.
    pub fn input_of(&self, to: NodeId, input: Input) -> Option<NodeId> {
        self.wires
            .iter()
            .find(|w| w.to == to && w.input == input)
            .map(|w| w.from)
    }

    pub fn next_id(&self) -> NodeId {
        NodeId(self.nodes.iter().map(|n| n.id.0).max().unwrap_or(0) + 1)
    }

    /// `base` if free, else its stem with the lowest number suffix that is free
    /// (`table1` taken gives `table2`; `web_callbacks` taken gives `web_callbacks1`).
    pub fn unique_name(&self, base: &str) -> String {
        if !base.is_empty() && self.node_by_name(base).is_none() {
            return base.to_string();
        }
        let stem = base.trim_end_matches(|c: char| c.is_ascii_digit());
        let stem = if stem.is_empty() { "op" } else { stem };
        (1..)
            .map(|i| format!("{stem}{i}"))
            .find(|candidate| self.node_by_name(candidate).is_none())
            .unwrap_or_else(|| format!("{stem}_"))
    }

    /// Puts nodes and wires in the order files are written in, so saves are stable.
    pub fn normalize(&mut self) {
        self.nodes.sort_by_key(|n| n.id);
        self.wires.sort();
        self.wires.dedup();
    }
}

/// Writes `Some(x)` as plain `x` (and reads it back), so files say `text: "..."`, not `text: Some("...")`.
mod inline_some {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    // serde's `with` calls it with `&Option<T>`.
    #[allow(clippy::ref_option)]
    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => v.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        T::deserialize(d).map(Some)
    }
}
