//! The MQTT Client DAT's script methods, TouchDesigner's: `publish(topic, payload, qos=0,
//! retain=False)`, `subscribe(topic, qos=0)` and `unsubscribe(topic)` (a topic may be a list),
//! and the `isConnected` property. None waits: they queue for the connection's task.

use super::{Runtime, send};
use crate::engine::{Link, ScriptMethod, Value};
use crate::net::mqtt::{self, MqttCommand};

pub const METHODS: &[ScriptMethod] = &[
    ScriptMethod::method(
        "publish",
        &["topic", "payload", "qos", "retain"],
        2,
        |world, id, args| {
            let topic = args[0].to_text().to_string();
            mqtt::check_topic(&topic).map_err(|e| format!("publish: {e}"))?;
            let payload = args[1].to_bytes();
            let qos = qos_arg(args.get(2))?;
            // A packet over the limit would make rumqttc drop the connection (and, in a
            // persistent session, resend it after every reconnect): refuse it here.
            let limit = world
                .runtime::<Runtime>(id)
                .and_then(|rt| rt.started_with.as_ref())
                .map_or(usize::MAX, |s| s.max_packet_bytes);
            let bytes = mqtt::publish_packet_bytes(&topic, payload.len(), qos);
            if bytes > limit {
                return Err(format!(
                    "publish: {bytes} bytes is over Max Message Size ({limit} bytes)"
                ));
            }
            let command = MqttCommand::Publish {
                topic,
                payload,
                qos,
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

/// One topic filter or a list of them, each a valid filter.
fn topics(value: &Value) -> Result<Vec<String>, String> {
    let list: Vec<String> = match value {
        Value::List(items) => items.iter().map(|t| t.to_text().to_string()).collect(),
        other => vec![other.to_text().to_string()],
    };
    if list.is_empty() {
        return Err("no topic given".into());
    }
    for filter in &list {
        mqtt::check_filter(filter)?;
    }
    Ok(list)
}
