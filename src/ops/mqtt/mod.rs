//! MQTT Client DAT: a client of an MQTT broker, with TouchDesigner's callbacks and script
//! methods; received messages fill a clamped table (topic, payload, qos, retained, time), and the
//! connection comes back by itself with backoff, running onConnect again.

pub mod callbacks;
mod pars;
mod script;

use bytes::Bytes;

use self::pars::{MqttPars, MqttSettings};
use crate::engine::fifo_table::FifoTable;
use crate::engine::{Badge, DatRef, Engine, Level, Link, Operator, ScriptMethod, Value, World};
use crate::net::NetEventKind;
use crate::net::mqtt::{self, MqttCommand, MqttEvent, MqttHandle};
use crate::project::NodeId;

pub struct MqttClient;

const HEADING: &[&str] = &["topic", "payload", "qos", "retained", "time"];
const HEADING_WITH_BYTES: &[&str] = &["topic", "payload", "qos", "retained", "time", "bytes"];

#[derive(Default)]
pub struct Runtime {
    pars: MqttPars,
    table: Option<FifoTable>,
    /// Bumped whenever the task is started or stopped; events of other runs are ignored.
    run: u64,
    client: Option<MqttHandle>,
    started_with: Option<MqttSettings>,
    link: Link,
    messages_in: u64,
    bytes_in: u64,
    /// Publishes queued by scripts, and those the broker has (sent, acknowledged or completed).
    publishes: u64,
    published: u64,
    bytes_out: u64,
    /// Publishes refused because the queue was full; reported once until one gets through.
    dropped: u64,
    queue_full_reported: bool,
    reconnects: u64,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("link", &self.link)
            .field("messages_in", &self.messages_in)
            .finish_non_exhaustive()
    }
}

fn runtime(world: &mut World, id: NodeId) -> &mut Runtime {
    world.runtime_mut::<Runtime>(id)
}

fn dat(id: NodeId) -> Value {
    Value::Op(id)
}

fn reconcile(engine: &mut Engine, id: NodeId) {
    let pars = MqttPars::read(engine.world(), id);
    let world = engine.world_mut();
    let rt = runtime(world, id);
    let heading = if pars.bytes_column {
        HEADING_WITH_BYTES
    } else {
        HEADING
    };
    let table = rt
        .table
        .get_or_insert_with(|| FifoTable::records(pars.max_lines, Some(heading)));
    table.set_max_lines(pars.max_lines);
    table.set_records_layout(Some(heading));
    let active = pars.active;
    rt.pars = pars;
    world.state_mut(id).content_rev += 1;
    if !active {
        stop(engine, id);
        runtime(engine.world_mut(), id).started_with = None;
        engine.world_mut().set_status_error(id, None);
        return;
    }
    let settings = match MqttSettings::read(engine.world(), id) {
        Ok(settings) => settings,
        Err(error) => {
            stop(engine, id);
            runtime(engine.world_mut(), id).started_with = None;
            engine.world_mut().set_status_error(id, Some(error));
            return;
        }
    };
    if runtime(engine.world_mut(), id).started_with.as_ref() == Some(&settings) {
        return;
    }
    start(engine, id, settings);
}

fn start(engine: &mut Engine, id: NodeId, settings: MqttSettings) {
    stop(engine, id);
    let config = match settings.config() {
        Ok(config) => config,
        Err(error) => {
            runtime(engine.world_mut(), id).started_with = None;
            engine.world_mut().set_status_error(id, Some(error));
            return;
        }
    };
    engine.world_mut().set_status_error(id, None);
    let net = engine.net().clone();
    let rt = runtime(engine.world_mut(), id);
    rt.run += 1;
    rt.client = Some(mqtt::spawn(
        &net.rt, &net.tasks, id, rt.run, &config, net.events,
    ));
    rt.started_with = Some(settings);
    rt.link = Link::Connecting;
}

/// Ends the connection (a DISCONNECT goes out) and ignores what its task still reports.
fn stop(engine: &mut Engine, id: NodeId) {
    let rt = runtime(engine.world_mut(), id);
    if rt.client.take().is_none() {
        rt.link = Link::Idle;
        return;
    }
    rt.run += 1;
    if std::mem::take(&mut rt.link) == Link::Connected {
        engine
            .world_mut()
            .log(Level::Info, Some(id), "disconnected from the broker");
        engine.call(id, "onConnectionLost", vec![dat(id), "stopped".into()]);
    }
}

fn pulse(engine: &mut Engine, id: NodeId, token: &str) {
    match token {
        "clear" => {
            let world = engine.world_mut();
            if let Some(table) = &mut runtime(world, id).table {
                table.clear();
            }
            world.state_mut(id).content_rev += 1;
        }
        "reconnect" if runtime(engine.world_mut(), id).pars.active => {
            stop(engine, id);
            runtime(engine.world_mut(), id).started_with = None;
            reconcile(engine, id);
        }
        _ => {}
    }
}

/// The time column: seconds since the Unix epoch, with milliseconds.
fn now_text() -> String {
    format!("{:.3}", crate::engine::unix_time_ms() as f64 / 1000.0)
}

fn received(
    engine: &mut Engine,
    id: NodeId,
    topic: String,
    payload: Bytes,
    qos: u8,
    retained: bool,
    dup: bool,
) {
    let world = engine.world_mut();
    let rt = runtime(world, id);
    rt.messages_in += 1;
    rt.bytes_in += payload.len() as u64;
    let bytes_column = rt.pars.bytes_column;
    if let Some(table) = &mut rt.table {
        let mut cells = vec![
            topic.clone(),
            String::from_utf8_lossy(&payload).into_owned(),
            qos.to_string(),
            u8::from(retained).to_string(),
            now_text(),
        ];
        if bytes_column {
            cells.push(crate::net::hex_bytes(&payload));
        }
        table.push_record(&cells);
    }
    world.state_mut(id).content_rev += 1;
    engine.call(
        id,
        "onMessage",
        vec![
            dat(id),
            topic.into(),
            Value::Bytes(payload),
            Value::Int(i64::from(qos)),
            Value::Bool(retained),
            Value::Bool(dup),
        ],
    );
}

/// The broker's address, for status lines.
fn broker(world: &World, id: NodeId) -> String {
    world
        .runtime::<Runtime>(id)
        .and_then(|rt| rt.started_with.as_ref())
        .map(|s| s.address.to_string())
        .unwrap_or_default()
}

fn handle_event(engine: &mut Engine, id: NodeId, run: u64, event: MqttEvent) {
    if engine
        .world()
        .runtime::<Runtime>(id)
        .is_none_or(|rt| rt.run != run || rt.client.is_none())
    {
        return;
    }
    match event {
        MqttEvent::Connecting { attempt } => {
            let text = format!(
                "connecting to {} (attempt {attempt})",
                broker(engine.world(), id)
            );
            engine.world_mut().log(Level::Info, Some(id), text);
        }
        MqttEvent::Connected { session_present } => {
            let text = format!(
                "connected to {}{}",
                broker(engine.world(), id),
                if session_present {
                    " (session resumed)"
                } else {
                    ""
                }
            );
            let world = engine.world_mut();
            runtime(world, id).link = Link::Connected;
            world.set_status_error(id, None);
            world.log(Level::Info, Some(id), text);
            engine.call(id, "onConnect", vec![dat(id)]);
        }
        MqttEvent::ConnectFailed { error } => {
            let world = engine.world_mut();
            world.report_warning(
                id,
                format!("could not connect to {}: {error}", broker(world, id)),
            );
            engine.call(id, "onConnectFailure", vec![dat(id), error.into()]);
        }
        MqttEvent::ConnectionLost { error } => {
            let world = engine.world_mut();
            runtime(world, id).link = Link::Reconnecting;
            world.report_warning(
                id,
                format!("connection to {} lost: {error}", broker(world, id)),
            );
            engine.call(id, "onConnectionLost", vec![dat(id), error.into()]);
        }
        MqttEvent::Retrying { delay_ms } => {
            let world = engine.world_mut();
            let rt = runtime(world, id);
            rt.link = Link::Reconnecting;
            rt.reconnects += 1;
            let seconds = delay_ms as f64 / 1000.0;
            world.log(
                Level::Info,
                Some(id),
                format!("reconnecting in {seconds:.1} s"),
            );
        }
        MqttEvent::Message {
            topic,
            payload,
            qos,
            retained,
            dup,
        } => received(engine, id, topic, payload, qos, retained, dup),
        MqttEvent::Published { topic } => {
            runtime(engine.world_mut(), id).published += 1;
            engine.call(id, "onPublish", vec![dat(id), topic.into()]);
        }
        MqttEvent::Subscribed { failure: None } => {
            engine.call(id, "onSubscribe", vec![dat(id)]);
        }
        MqttEvent::Subscribed {
            failure: Some(failure),
        } => {
            engine.world_mut().report_warning(id, failure.clone());
            engine.call(id, "onSubscribeFailure", vec![dat(id), failure.into()]);
        }
        MqttEvent::Unsubscribed => {
            engine.call(id, "onUnsubscribe", vec![dat(id)]);
        }
    }
}

/// Queues a command for the connection; a full queue drops it (reported once).
fn send(world: &mut World, id: NodeId, method: &str, command: MqttCommand) -> Result<(), String> {
    let name = world.node_name(id).to_string();
    let rt = runtime(world, id);
    let Some(client) = &rt.client else {
        return Err(format!("{method}: \"{name}\" is not active"));
    };
    let bytes = match &command {
        MqttCommand::Publish { payload, .. } => Some(payload.len() as u64),
        _ => None,
    };
    if client.try_send(command).is_ok() {
        rt.queue_full_reported = false;
        if let Some(bytes) = bytes {
            rt.publishes += 1;
            rt.bytes_out += bytes;
        }
        return Ok(());
    }
    rt.dropped += 1;
    if !std::mem::replace(&mut rt.queue_full_reported, true) {
        world.report_warning(
            id,
            format!(
                "{method}: {} requests or {} MiB wait for the broker already: dropped (reported once until one gets through)",
                mqtt::COMMAND_QUEUE_CAPACITY,
                mqtt::COMMAND_QUEUE_BYTES >> 20
            ),
        );
    }
    Ok(())
}

impl Operator for MqttClient {
    fn reconcile(&self, engine: &mut Engine, id: NodeId, _first: bool) {
        reconcile(engine, id);
    }

    fn pulse(&self, engine: &mut Engine, id: NodeId, token: &str) {
        pulse(engine, id, token);
    }

    fn stop(&self, engine: &mut Engine, id: NodeId) {
        stop(engine, id);
    }

    fn handle_event(&self, engine: &mut Engine, id: NodeId, run: u64, event: NetEventKind) {
        if let NetEventKind::Mqtt(event) = event {
            handle_event(engine, id, run, event);
        }
    }

    fn info(&self, world: &World, id: NodeId, out: &mut Vec<(&'static str, f64)>) {
        let Some(rt) = world.runtime::<Runtime>(id) else {
            return;
        };
        out.extend([
            ("connected", f64::from(u8::from(rt.link == Link::Connected))),
            ("messages_in", rt.messages_in as f64),
            ("bytes_in", rt.bytes_in as f64),
            ("messages_out", rt.published as f64),
            ("bytes_out", rt.bytes_out as f64),
            (
                "messages_pending",
                rt.client.as_ref().map_or(0, MqttHandle::queued) as f64,
            ),
            (
                "in_flight",
                rt.publishes.saturating_sub(rt.published) as f64,
            ),
            ("dropped", rt.dropped as f64),
            ("reconnects", rt.reconnects as f64),
        ]);
    }

    fn badge(&self, world: &World, id: NodeId) -> Badge {
        world
            .runtime::<Runtime>(id)
            .map_or(Link::Idle, |rt| rt.link)
            .badge()
    }

    fn messages_in(&self, world: &World, id: NodeId) -> u64 {
        world.runtime::<Runtime>(id).map_or(0, |rt| rt.messages_in)
    }

    fn dat<'w>(&self, world: &'w World, id: NodeId) -> Option<DatRef<'w>> {
        world
            .runtime::<Runtime>(id)
            .and_then(|rt| rt.table.as_ref())
            .map(DatRef::Fifo)
    }

    fn script_methods(&self) -> &'static [ScriptMethod] {
        script::METHODS
    }

    fn callbacks_template(&self) -> Option<&'static str> {
        Some(callbacks::DEFAULT_CALLBACKS)
    }
}
