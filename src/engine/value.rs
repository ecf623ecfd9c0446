//! The values operators and the script host pass each other: plain Rust data, so that no file
//! outside `script/` names the script language's types.

use bytes::Bytes;

use crate::net::SharedStr;
use crate::project::NodeId;

/// A callback argument, a callback's result, or an argument of an operator's script method.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Shared, so a received message is held once by the table, the script and the network task.
    Str(SharedStr),
    Bytes(Bytes),
    List(Vec<Value>),
    /// Keys in insertion order (callbacks see request fields before headers).
    Dict(Vec<(String, Value)>),
    /// An operator (`op('name')`, the `dat` argument of callbacks).
    Op(NodeId),
}

impl Value {
    pub fn str(text: impl Into<SharedStr>) -> Value {
        Value::Str(text.into())
    }

    /// An integer argument: integers, whole floats, and digit strings.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            Value::Float(f) if f.fract() == 0.0 => Some(*f as i64),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A dict entry by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The name scripts see in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "nothing",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dict",
            Value::Op(_) => "an operator",
        }
    }

    /// What goes into a table cell or a text message: strings as they are, bytes as (lossy)
    /// UTF-8, anything else as it prints.
    pub fn to_text(&self) -> SharedStr {
        match self {
            Value::Str(s) => s.clone(),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned().into(),
            other => other.to_string().into(),
        }
    }

    /// Bytes for a binary message: bytes as they are, anything else as its text.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Value::Bytes(b) => b.clone(),
            Value::Str(s) => Bytes::copy_from_slice(s.as_bytes()),
            other => Bytes::from(other.to_string()),
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::None => Ok(()),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            // `1.0`, not `1`, as scripts print floats.
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{s}"),
            Value::Bytes(b) => write!(f, "{}", String::from_utf8_lossy(b)),
            Value::List(items) => {
                write!(f, "[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, "]")
            }
            Value::Dict(entries) => {
                write!(f, "{{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                write!(f, "}}")
            }
            Value::Op(id) => write!(f, "op {id}"),
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s.into())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.into())
    }
}

impl From<SharedStr> for Value {
    fn from(s: SharedStr) -> Self {
        Value::Str(s)
    }
}

impl From<Bytes> for Value {
    fn from(b: Bytes) -> Self {
        Value::Bytes(b)
    }
}

impl From<NodeId> for Value {
    fn from(id: NodeId) -> Self {
        Value::Op(id)
    }
}
