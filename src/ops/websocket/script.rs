//! The WebSocket DAT's script methods: `sendText`, `sendBinary`, `sendPing`, `sendPong`
//! (TouchDesigner's) and `sendFramed` (ours, NanoLLM). Each returns the bytes queued, or -1 when
//! not connected and -2 when the outgoing queue is full. None waits: they run on the cook thread.

use bytes::Bytes;

use super::Runtime;
use crate::engine::{ScriptMethod, Value, World};
use crate::net::client::{self, SendError};
use crate::net::{WsMessage, nanollm};
use crate::ops::nanollm::framed_parts;
use crate::project::NodeId;

/// What a script's send returns when the message did not go out (TouchDesigner: negative).
const NOT_CONNECTED: i64 = -1;
const QUEUE_FULL: i64 = -2;

/// Control frames carry at most 125 bytes (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

pub const METHODS: &[ScriptMethod] = &[
    ScriptMethod::method("sendText", &["message"], 1, |world, id, args| {
        Ok(send(
            world,
            id,
            "sendText",
            WsMessage::Text(joined_text(&args[0])),
        ))
    }),
    ScriptMethod::method("sendBinary", &["contents"], 1, |world, id, args| {
        let data = bytes_of(&args[0])?;
        Ok(send(world, id, "sendBinary", WsMessage::Binary(data)))
    }),
    ScriptMethod::method("sendPing", &["contents"], 0, |world, id, args| {
        let data = control_payload("sendPing", args.first())?;
        Ok(send(world, id, "sendPing", WsMessage::Ping(data)))
    }),
    ScriptMethod::method("sendPong", &["contents"], 0, |world, id, args| {
        let data = control_payload("sendPong", args.first())?;
        let rt = world.runtime_mut::<Runtime>(id);
        if rt.answering_ping.as_ref() == Some(&data) {
            // The automatic pong answered this ping already.
            rt.answering_ping = None;
            return Ok(Value::Int(data.len() as i64));
        }
        Ok(send(world, id, "sendPong", WsMessage::Pong(data)))
    }),
    ScriptMethod::method(
        "sendFramed",
        &["type", "payload", "metadata"],
        3,
        send_framed,
    ),
];

/// The text of `sendText(*args)`: several arguments are joined without spaces, as in
/// TouchDesigner (`sendText('a', 'b')` sends `ab`).
fn joined_text(value: &Value) -> crate::net::SharedStr {
    match value {
        Value::List(items) => items
            .iter()
            .map(|item| item.to_text().to_string())
            .collect::<String>()
            .into(),
        other => other.to_text(),
    }
}

/// Bytes from bytes, a string, a byte-sized integer, or a list of those (TouchDesigner's
/// `sendBinary(23, 'TYPE', 255, b'..')`, written as one list).
fn to_bytes(value: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    match value {
        Value::Bytes(b) => out.extend_from_slice(b),
        Value::Int(i) => {
            let byte = u8::try_from(*i).map_err(|_| format!("{i} is not a byte (0 to 255)"))?;
            out.push(byte);
        }
        Value::List(items) => {
            for item in items {
                to_bytes(item, out)?;
            }
        }
        other => out.extend_from_slice(other.to_text().as_bytes()),
    }
    Ok(())
}

fn bytes_of(value: &Value) -> Result<Bytes, String> {
    if let Value::Bytes(b) = value {
        return Ok(b.clone());
    }
    let mut out = Vec::new();
    to_bytes(value, &mut out)?;
    Ok(out.into())
}

fn control_payload(method: &str, value: Option<&Value>) -> Result<Bytes, String> {
    let data = value.map_or(Ok(Bytes::new()), bytes_of)?;
    if data.len() > MAX_CONTROL_PAYLOAD {
        return Err(format!(
            "{method}: a ping or pong carries at most {MAX_CONTROL_PAYLOAD} bytes, not {}",
            data.len()
        ));
    }
    Ok(data)
}

/// Queues `message` on the node's connection: the bytes queued, -1 when not connected, -2 when
/// the outgoing queue is full (reported on the node once until a send gets through).
fn send(world: &mut World, id: NodeId, method: &str, message: WsMessage) -> Value {
    let rt = world.runtime_mut::<Runtime>(id);
    match rt.send(message) {
        Ok(sent) => Value::Int(sent),
        Err(SendError::Closed) => Value::Int(NOT_CONNECTED),
        Err(SendError::Full) => {
            let first = !std::mem::replace(&mut rt.queue_full_reported, true);
            let text = format!(
                "{method}: the outgoing queue is full ({} messages or {} MiB wait to be \
                 written; the server reads slower than the script sends): message dropped",
                client::OUTGOING_QUEUE_CAPACITY,
                client::OUTGOING_QUEUE_BYTES >> 20
            );
            if first {
                world.report_warning(id, text);
            } else {
                world.state_mut(id).warnings += 1;
            }
            Value::Int(QUEUE_FULL)
        }
    }
}

/// `sendFramed(type, payload, metadata)`: a NanoLLM frame whose msg_id counts up per connection.
fn send_framed(world: &mut World, id: NodeId, args: &[Value]) -> Result<Value, String> {
    let (kind, bytes) = framed_parts(&args[0], &args[1])?;
    let msg_id = world.runtime_mut::<Runtime>(id).next_frame_id;
    let frame = nanollm::encode(
        msg_id,
        crate::engine::unix_time_ms() as u64,
        kind,
        &args[2].to_string(),
        &bytes,
    );
    let sent = send(world, id, "sendFramed", WsMessage::Binary(frame));
    if matches!(sent, Value::Int(n) if n >= 0) {
        world.runtime_mut::<Runtime>(id).next_frame_id += 1;
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_contents_accept_bytes_strings_integers_and_lists() {
        let list = Value::List(vec![
            Value::Int(23),
            "TY".into(),
            Value::Bytes(Bytes::from_static(&[1, 0])),
        ]);
        assert_eq!(bytes_of(&list).unwrap().as_ref(), &[23, b'T', b'Y', 1, 0]);
        assert!(bytes_of(&Value::Int(256)).is_err());
        assert!(control_payload("sendPing", Some(&"x".repeat(126).into())).is_err());
        let parts = Value::List(vec!["hé".into(), "llo".into(), Value::Int(1)]);
        assert_eq!(joined_text(&parts).as_str(), "héllo1");
    }
}
