//! NanoLLM frames as scripts see them, shared by the Web Server and WebSocket DATs.

use bytes::Bytes;

use crate::engine::Value;
use crate::net::nanollm;

/// A decoded frame as a dict: msg_id, timestamp, type, type_id, size, metadata, text, payload.
pub fn frame_map(frame: &nanollm::Frame) -> Value {
    Value::Dict(vec![
        ("msg_id".into(), Value::Int(frame.msg_id as i64)),
        ("timestamp".into(), Value::Int(frame.timestamp_ms as i64)),
        ("type".into(), nanollm::type_name(frame.kind).into()),
        ("type_id".into(), Value::Int(i64::from(frame.kind))),
        ("size".into(), Value::Int(frame.payload.len() as i64)),
        ("metadata".into(), frame.metadata.as_str().into()),
        ("text".into(), nanollm::payload_text(frame).into()),
        ("payload".into(), Value::Bytes(frame.payload.clone())),
    ])
}

/// A script's (type, payload) as a frame's parts: the type by number or name; a dict or list
/// payload goes as JSON.
pub fn framed_parts(kind: &Value, payload: &Value) -> Result<(u16, Bytes), String> {
    let kind = match kind {
        Value::Int(n) => {
            u16::try_from(*n).map_err(|_| format!("frame type {n} is out of range"))?
        }
        other => nanollm::type_from_name(&other.to_string())
            .ok_or_else(|| format!("unknown frame type \"{other}\""))?,
    };
    let bytes = match payload {
        Value::Dict(_) | Value::List(_) => {
            Bytes::from(serde_json::to_vec(&to_json(payload)).map_err(|e| e.to_string())?)
        }
        other => other.to_bytes(),
    };
    Ok((kind, bytes))
}

/// A value as JSON (bytes as lossy text, operators as their id).
pub fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        Value::None => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(x) => Json::from(*x),
        Value::Str(s) => Json::String(s.to_string()),
        Value::Bytes(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Dict(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
        Value::Op(id) => Json::from(id.0),
    }
}
