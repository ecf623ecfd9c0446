//! Plain values ([`Value`]) to Rhai's `Dynamic` and back: the one place operators' arguments
//! and results cross into the script language.

use rhai::{Array, Blob, Dynamic, ImmutableString, Map};

use super::api::OpHandle;
use crate::engine::Value;

pub fn to_dynamic(value: Value) -> Dynamic {
    match value {
        Value::None => Dynamic::UNIT,
        Value::Bool(b) => b.into(),
        Value::Int(i) => i.into(),
        Value::Float(x) => x.into(),
        Value::Str(s) => ImmutableString::from(s.as_str()).into(),
        Value::Bytes(b) => Dynamic::from_blob(b.to_vec()),
        Value::List(items) => Dynamic::from_array(items.into_iter().map(to_dynamic).collect()),
        Value::Dict(entries) => Dynamic::from_map(
            entries
                .into_iter()
                .map(|(k, v)| (k.into(), to_dynamic(v)))
                .collect::<Map>(),
        ),
        Value::Op(id) => Dynamic::from(OpHandle { id }),
    }
}

pub fn to_value(value: &Dynamic) -> Value {
    if value.is_unit() {
        return Value::None;
    }
    if let Ok(b) = value.as_bool() {
        return Value::Bool(b);
    }
    if let Ok(i) = value.as_int() {
        return Value::Int(i);
    }
    if let Ok(x) = value.as_float() {
        return Value::Float(x);
    }
    if let Some(s) = value.read_lock::<ImmutableString>() {
        return Value::str(s.as_str());
    }
    if let Some(b) = value.read_lock::<Blob>() {
        return Value::Bytes(bytes::Bytes::copy_from_slice(&b));
    }
    if let Some(items) = value.read_lock::<Array>() {
        return Value::List(items.iter().map(to_value).collect());
    }
    if let Some(map) = value.read_lock::<Map>() {
        return Value::Dict(
            map.iter()
                .map(|(k, v)| (k.to_string(), to_value(v)))
                .collect(),
        );
    }
    if let Some(op) = value.read_lock::<OpHandle>() {
        return Value::Op(op.id);
    }
    Value::str(value.to_string())
}
