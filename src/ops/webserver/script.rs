//! The Web Server DAT's script methods: `webSocketConnections`, `webSocketSendText`, ...,
//! `authenticateBasic` (TouchDesigner's); ours: `webSocketBroadcastText/Binary`, a list of
//! clients to `webSocketSendText/Binary`, and `webSocketSendFramed` (NanoLLM).

use base64::Engine as _;
use bytes::Bytes;
use subtle::ConstantTimeEq;

use super::{Runtime, close_client};
use crate::engine::{ScriptMethod, Value, World};
use crate::net::server::SendError;
use crate::net::{WsMessage, nanollm};
use crate::ops::nanollm::framed_parts;
use crate::project::NodeId;

pub const METHODS: &[ScriptMethod] = &[
    ScriptMethod::property("webSocketConnections", |world, id, _| {
        let ids = world
            .runtime::<Runtime>(id)
            .and_then(|rt| rt.server.as_ref())
            .map(crate::net::server::ServerHandle::client_ids)
            .unwrap_or_default();
        Ok(Value::List(ids.into_iter().map(Value::from).collect()))
    }),
    ScriptMethod::method(
        "webSocketSendText",
        &["client", "data"],
        2,
        |world, id, args| {
            Ok(send_to(
                world,
                id,
                &args[0],
                WsMessage::Text(args[1].to_text()),
            ))
        },
    ),
    ScriptMethod::method(
        "webSocketSendBinary",
        &["client", "data"],
        2,
        |world, id, args| {
            Ok(send_to(
                world,
                id,
                &args[0],
                WsMessage::Binary(args[1].to_bytes()),
            ))
        },
    ),
    ScriptMethod::method(
        "webSocketBroadcastText",
        &["data", "exclude"],
        1,
        |world, id, args| {
            let message = WsMessage::Text(args[0].to_text());
            let exclude = args.get(1).unwrap_or(&Value::None);
            Ok(send_to_many(world, id, None, exclude, message))
        },
    ),
    ScriptMethod::method(
        "webSocketBroadcastBinary",
        &["data", "exclude"],
        1,
        |world, id, args| {
            let message = WsMessage::Binary(args[0].to_bytes());
            let exclude = args.get(1).unwrap_or(&Value::None);
            Ok(send_to_many(world, id, None, exclude, message))
        },
    ),
    ScriptMethod::method(
        "webSocketSendPing",
        &["client", "data"],
        1,
        |world, id, args| {
            Ok(send(
                world,
                id,
                &args[0],
                WsMessage::Ping(optional_bytes(args.get(1))),
            ))
        },
    ),
    ScriptMethod::method(
        "webSocketSendPong",
        &["client", "data"],
        1,
        |world, id, args| {
            let data = optional_bytes(args.get(1));
            let rt = world.runtime_mut::<Runtime>(id);
            if rt.answering_ping.as_ref() == Some(&(args[0].to_string(), data.clone())) {
                // The automatic pong answered this ping already.
                rt.answering_ping = None;
                return Ok(Value::Bool(true));
            }
            Ok(send(world, id, &args[0], WsMessage::Pong(data)))
        },
    ),
    ScriptMethod::method(
        "webSocketSendFramed",
        &["client", "type", "payload", "metadata"],
        4,
        send_framed,
    ),
    ScriptMethod::method("webSocketClose", &["client"], 1, |world, id, args| {
        Ok(Value::Bool(
            close_client(world, id, &args[0].to_string()).is_ok(),
        ))
    }),
    ScriptMethod::method("authenticateBasic", &["token", "users"], 2, |_, _, args| {
        Ok(Value::Bool(authenticate_basic(&args[0], &args[1])))
    }),
];

fn optional_bytes(value: Option<&Value>) -> Bytes {
    value.map_or_else(Bytes::new, Value::to_bytes)
}

/// Sends to one client; `false` when the client is gone or too slow.
fn send(world: &mut World, id: NodeId, client: &Value, message: WsMessage) -> Value {
    let client = client.to_string();
    let rt = world.runtime_mut::<Runtime>(id);
    let Some(server) = rt.server.as_ref() else {
        return Value::Bool(false);
    };
    match server.send(&client, message) {
        Ok(len) => {
            rt.messages_out += 1;
            rt.bytes_out += len as u64;
            Value::Bool(true)
        }
        Err(SendError::NoSuchClient) => Value::Bool(false),
        Err(SendError::TooSlow) => {
            world.report_warning(
                id,
                format!("{client} could not keep up (its queue passed Max WebSocket Queue); closing it with 1008"),
            );
            Value::Bool(false)
        }
    }
}

/// `webSocketSendText/Binary`'s client: one address, or (ours) a list of them.
fn send_to(world: &mut World, id: NodeId, client: &Value, message: WsMessage) -> Value {
    match client {
        Value::List(clients) => send_to_many(world, id, Some(clients), &Value::None, message),
        client => send(world, id, client, message),
    }
}

/// Sends one message to `clients` (every client when `None`) except `exclude` (a client or a
/// list), in one pass over the client registry with the bytes shared; returns how many clients
/// it was queued for.
fn send_to_many(
    world: &mut World,
    id: NodeId,
    clients: Option<&[Value]>,
    exclude: &Value,
    message: WsMessage,
) -> Value {
    let names = |values: &[Value]| values.iter().map(ToString::to_string).collect::<Vec<_>>();
    let to = clients.map(names);
    let exclude = match exclude {
        Value::None => Vec::new(),
        Value::List(list) => names(list),
        one => vec![one.to_string()],
    };
    let len = message.len() as u64;
    let rt = world.runtime_mut::<Runtime>(id);
    let Some(server) = rt.server.as_ref() else {
        return Value::Int(0);
    };
    let report = server.broadcast(&message, to.as_deref(), &exclude);
    rt.messages_out += report.sent as u64;
    rt.bytes_out += len * report.sent as u64;
    for client in report.too_slow {
        world.report_warning(
            id,
            format!("{client} could not keep up (its queue passed Max WebSocket Queue); closing it with 1008"),
        );
    }
    Value::Int(report.sent as i64)
}

/// `webSocketSendFramed(client, type, payload, metadata)`: msg_ids count up per client.
fn send_framed(world: &mut World, id: NodeId, args: &[Value]) -> Result<Value, String> {
    let client = args[0].to_string();
    let (kind, bytes) = framed_parts(&args[1], &args[2])?;
    let ids = &mut world.runtime_mut::<Runtime>(id).framed_ids;
    let next = ids.entry(client.clone()).or_insert(0);
    let msg_id = *next;
    *next += 1;
    let frame = nanollm::encode(
        msg_id,
        crate::engine::unix_time_ms() as u64,
        kind,
        &args[3].to_string(),
        &bytes,
    );
    let sent = send(world, id, &args[0], WsMessage::Binary(frame));
    if sent == Value::Bool(false) {
        // Not a connected client: keep no counter for it.
        world.runtime_mut::<Runtime>(id).framed_ids.remove(&client);
    }
    Ok(sent)
}

/// `authenticateBasic(token, users)`: the token with or without "Basic ", users as {name: password}.
/// Every user is compared in constant time, so timing tells nothing about names or passwords.
pub fn authenticate_basic(token: &Value, users: &Value) -> bool {
    let (Value::Str(token), Value::Dict(users)) = (token, users) else {
        return false;
    };
    let token = token.trim();
    let encoded = token
        .strip_prefix("Basic ")
        .or_else(|| token.strip_prefix("basic "))
        .unwrap_or(token);
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    let mut accepted = subtle::Choice::from(0);
    for (name, expected) in users {
        let expected = expected.to_string();
        accepted |= name.as_bytes().ct_eq(user) & expected.as_bytes().ct_eq(password);
    }
    accepted.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_accepts_with_or_without_prefix_and_rejects_the_rest() {
        let users = Value::Dict(vec![
            ("ada".into(), "lovelace".into()),
            ("bob".into(), "builder".into()),
        ]);
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let check = |token: String| authenticate_basic(&token.into(), &users);
        assert!(check(b64("ada:lovelace")));
        assert!(check(format!("Basic {}", b64("ada:lovelace"))));
        assert!(!check(b64("ada:builder")));
        assert!(!check("Basic !!!".into()));
        assert!(!check(String::new()));
        assert!(!check(b64("bob:builder:extra")));
        assert!(!authenticate_basic(&Value::None, &users));
    }
}
