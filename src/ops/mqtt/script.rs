//! The MQTT Client DAT's script methods, TouchDesigner's: `publish(topic, payload, qos=0,
//! retain=False)`, `subscribe(topic, qos=0)` and `unsubscribe(topic)` (a topic may be a list),
//! and the `isConnected` property. None waits: they queue for the connection's task.

use super::{Link, Runtime, send};
use crate::engine::{ScriptMethod, Value};
use crate::net::mqtt::{self, MqttCommand};

pub const METHODS: &[ScriptMethod] = &[
    ScriptMethod::method(
        "publish",
        &["topic", "payload", "qos", "retain"],
        2,
        |world, id, args| {
            let topic = args[0].to_text().to_string();
            if topic.is_empty() || topic.contains(['+', '#']) {
                return Err(format!("publish: \"{topic}\" is not a topic to publish to"));
            }
            let command = MqttCommand::Publish {
                topic,
                payload: args[1].to_bytes(),
                qos: qos_arg(args.get(2))?,
                retain: args.get(3).is_some_and(truthy),
            };
            send(world, id, "publish", command).map(|()| Value::None)
        },
    ),
    ScriptMethod::method("subscribe", &["topic", "qos"], 1, |world, id, args| {
        let qos = qos_arg(args.get(1))?;
        let topics = topics(&args[0])?.into_iter().map(|t| (t, qos)).collect();
        send(world, id, "subscribe", MqttCommand::Subscribe(topics)).map(|()| Value::None)
    }),
    ScriptMethod::method("unsubscribe", &["topic"], 1, |world, id, args| {
        let topics = topics(&args[0])?;
        send(world, id, "unsubscribe", MqttCommand::Unsubscribe(topics)).map(|()| Value::None)
    }),
    ScriptMethod::property("isConnected", |world, id, _| {
        Ok(Value::Bool(
            world
                .runtime::<Runtime>(id)
                .is_some_and(|rt| rt.link == Link::Connected),
        ))
    }),
];

fn truthy(value: &Value) -> bool {
    match value {
        Value::None => false,
        Value::Bool(b) => *b,
        other => other.as_int().is_some_and(|i| i != 0),
    }
}

fn qos_arg(value: Option<&Value>) -> Result<rumqttc::QoS, String> {
    match value {
        None | Some(Value::None) => Ok(rumqttc::QoS::AtMostOnce),
        Some(v) => mqtt::qos(
            v.as_int()
                .ok_or_else(|| format!("qos must be 0, 1 or 2, not {}", v.type_name()))?,
        ),
    }
}

/// One topic or a list of them, none empty.
fn topics(value: &Value) -> Result<Vec<String>, String> {
    let list: Vec<String> = match value {
        Value::List(items) => items.iter().map(|t| t.to_text().to_string()).collect(),
        other => vec![other.to_text().to_string()],
    };
    if list.is_empty() || list.iter().any(String::is_empty) {
        return Err("a topic must not be empty".into());
    }
    Ok(list)
}
