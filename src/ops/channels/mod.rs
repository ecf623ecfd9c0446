//! Channels CHOP: numeric channels from JSON messages in any DAT (a WebSocket DAT's received
//! messages, a Table DAT). Every numeric field becomes a channel with its last value and a
//! bounded history; new fields appear as they arrive. Its output is also a table.

use std::collections::{HashMap, VecDeque};

use crate::engine::{DatRef, Engine, Operator, ScriptMethod, Value, World};
use crate::project::{NodeId, Table};

pub struct Channels;

/// The Channels page, read at reconcile.
#[derive(Debug, Clone, Default)]
struct ChannelsPars {
    active: bool,
    column: String,
    pointer: String,
    key: String,
    history: usize,
    max_channels: usize,
}

impl ChannelsPars {
    fn read(world: &World, id: NodeId) -> Self {
        Self {
            active: world.par_bool(id, "active"),
            column: world.par_str(id, "column").unwrap_or_default(),
            pointer: world.par_str(id, "pointer").unwrap_or_default(),
            key: world.par_str(id, "key").unwrap_or_default(),
            history: world.par_int(id, "history").max(1) as usize,
            max_channels: world.par_int(id, "maxchannels").max(1) as usize,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub name: String,
    pub value: f64,
    /// Unix epoch milliseconds of the last update.
    pub updated_ms: i64,
    pub history: VecDeque<f64>,
}

#[derive(Debug)]
pub struct Runtime {
    pars: ChannelsPars,
    channels: Vec<Channel>,
    by_name: HashMap<String, usize>,
    /// How far into the source the last cook read: (source node, rows seen, source revision).
    read_to: Option<(NodeId, u64)>,
    /// The output table (name, value, updated), rebuilt when a value changed.
    output: Table,
    /// Fields ignored because of the channel cap since the last warning.
    over_cap: u64,
    pub updates: u64,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            pars: ChannelsPars::default(),
            channels: Vec::new(),
            by_name: HashMap::new(),
            read_to: None,
            output: heading(),
            over_cap: 0,
            updates: 0,
        }
    }
}

impl Runtime {
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.by_name.get(name).map(|&i| &self.channels[i])
    }

    pub fn output(&self) -> &Table {
        &self.output
    }

    fn clear(&mut self) {
        self.channels.clear();
        self.by_name.clear();
        self.output = heading();
        self.updates = 0;
    }

    /// Records one sample: O(1) (a hash lookup and a ring-buffer push).
    fn update(
        &mut self,
        name: String,
        value: f64,
        now_ms: i64,
        history: usize,
        max_channels: usize,
    ) {
        let index = if let Some(&i) = self.by_name.get(&name) {
            i
        } else {
            if self.channels.len() >= max_channels {
                self.over_cap += 1;
                return;
            }
            self.channels.push(Channel {
                name: name.clone(),
                value,
                updated_ms: now_ms,
                history: VecDeque::with_capacity(history.min(4096)),
            });
            self.by_name.insert(name, self.channels.len() - 1);
            self.channels.len() - 1
        };
        let channel = &mut self.channels[index];
        channel.value = value;
        channel.updated_ms = now_ms;
        while channel.history.len() >= history {
            channel.history.pop_front();
        }
        channel.history.push_back(value);
        self.updates += 1;
    }
}

fn heading() -> Table {
    Table::from_rows(vec![vec!["name".into(), "value".into(), "updated".into()]])
}

fn runtime(world: &mut World, id: NodeId) -> &mut Runtime {
    world.runtime_mut::<Runtime>(id)
}

pub fn runtime_ref(world: &World, id: NodeId) -> Option<&Runtime> {
    world.runtime::<Runtime>(id)
}

/// Every numeric leaf of `value` as (path, number): objects joined with `/`, array items by
/// index, booleans as 0/1; strings and nulls are not numbers and are skipped.
pub fn numeric_fields(value: &serde_json::Value, prefix: &str, out: &mut Vec<(String, f64)>) {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}/{key}")
        }
    };
    match value {
        serde_json::Value::Number(n) => {
            if let Some(x) = n.as_f64().filter(|x| x.is_finite()) {
                out.push((prefix.to_string(), x));
            }
        }
        serde_json::Value::Bool(b) => out.push((prefix.to_string(), f64::from(u8::from(*b)))),
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                numeric_fields(inner, &join(key), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                numeric_fields(inner, &join(&i.to_string()), out);
            }
        }
        serde_json::Value::Null | serde_json::Value::String(_) => {}
    }
}

fn column_index(dat: &DatRef, spec: &str) -> Option<usize> {
    match spec.trim().parse::<usize>() {
        Ok(i) => Some(i),
        Err(_) => dat.col_named(spec.trim()),
    }
}

/// The rows to read and where reading stops: a FIFO (WebSocket DAT, FIFO DAT) counts every message ever
/// pushed (so clamping does not hide new ones); a table is read from where it was left.
fn unread_rows(world: &World, source: NodeId, read_to: Option<(NodeId, u64)>) -> (Vec<usize>, u64) {
    let Some(dat) = world.dat(source) else {
        return (Vec::new(), 0);
    };
    let already = match read_to {
        Some((node, seen)) if node == source => seen,
        _ => 0,
    };
    match dat {
        DatRef::Fifo(fifo) => {
            let total = fifo.total_pushed();
            let rows = fifo.message_rows();
            let unread = (total.saturating_sub(already) as usize).min(rows);
            let first = fifo.first_row();
            ((first + rows - unread..first + rows).collect(), total)
        }
        other => {
            let rows = other.num_rows() as u64;
            // A table that shrank was rewritten: read it again from its first data row.
            let from = if already > rows { 1 } else { already.max(1) };
            ((from..rows).map(|r| r as usize).collect(), rows)
        }
    }
}

/// Reads the source's new rows into channels; returns whether anything changed.
fn cook(engine: &mut Engine, id: NodeId) -> bool {
    let world = engine.world_mut();
    if !runtime(world, id).pars.active {
        return false;
    }
    let Some(source) = world.input_node(id, "source") else {
        return false;
    };
    let read_to = runtime(world, id).read_to;
    let (rows, seen) = unread_rows(world, source, read_to);
    if rows.is_empty() {
        runtime(world, id).read_to = Some((source, seen));
        return false;
    }
    let ChannelsPars {
        column: column_spec,
        pointer,
        key: key_spec,
        history,
        max_channels,
        ..
    } = runtime(world, id).pars.clone();
    let now_ms = crate::engine::unix_time_ms();
    let mut samples: Vec<(String, f64)> = Vec::new();
    if let Some(dat) = world.dat(source) {
        let column = column_index(&dat, &column_spec).unwrap_or(0);
        let key_column = (!key_spec.is_empty() && !key_spec.starts_with('/'))
            .then(|| column_index(&dat, &key_spec))
            .flatten();
        for row in rows {
            let Some(text) = dat.cell(row, column) else {
                continue;
            };
            let Ok(message) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let key = if key_spec.starts_with('/') {
                message.pointer(&key_spec).and_then(|k| match k {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
            } else {
                key_column.and_then(|c| dat.cell(row, c))
            };
            let values = if pointer.is_empty() {
                Some(&message)
            } else {
                message.pointer(&pointer)
            };
            let Some(values) = values else { continue };
            let mut fields = Vec::new();
            numeric_fields(values, "", &mut fields);
            for (field, value) in fields {
                let name = match (&key, field.is_empty()) {
                    (Some(key), true) => key.clone(),
                    (Some(key), false) => format!("{key}:{field}"),
                    (None, true) => "value".to_string(),
                    (None, false) => field,
                };
                samples.push((name, value));
            }
        }
    }
    let rt = runtime(world, id);
    rt.read_to = Some((source, seen));
    for (name, value) in samples {
        rt.update(name, value, now_ms, history, max_channels);
    }
    rebuild_output(rt);
    let over_cap = std::mem::take(&mut rt.over_cap);
    if over_cap > 0 {
        world.report_warning(
            id,
            format!(
                "channel cap ({max_channels}) reached: {over_cap} values of new fields ignored"
            ),
        );
    }
    world.touch_content(id);
    true
}

fn rebuild_output(rt: &mut Runtime) {
    let mut rows = Vec::with_capacity(rt.channels.len() + 1);
    rows.push(vec!["name".into(), "value".into(), "updated".into()]);
    for c in &rt.channels {
        rows.push(vec![
            c.name.clone(),
            c.value.to_string(),
            c.updated_ms.to_string(),
        ]);
    }
    rt.output = Table::from_rows(rows);
}

impl Operator for Channels {
    fn reconcile(&self, engine: &mut Engine, id: NodeId, _first: bool) {
        // Shorter history applies at once.
        let pars = ChannelsPars::read(engine.world(), id);
        let rt = runtime(engine.world_mut(), id);
        for channel in &mut rt.channels {
            while channel.history.len() > pars.history {
                channel.history.pop_front();
            }
        }
        rt.pars = pars;
    }

    fn pulse(&self, engine: &mut Engine, id: NodeId, token: &str) {
        if token == "reset" {
            runtime(engine.world_mut(), id).clear();
            engine.world_mut().touch_content(id);
        }
    }

    fn cook(&self, engine: &mut Engine, id: NodeId) -> bool {
        cook(engine, id)
    }

    fn info(&self, world: &World, id: NodeId, out: &mut Vec<(&'static str, f64)>) {
        if let Some(rt) = runtime_ref(world, id) {
            out.push(("num_channels", rt.channels.len() as f64));
            out.push(("channel_updates", rt.updates as f64));
        }
    }

    fn dat<'w>(&self, world: &'w World, id: NodeId) -> Option<DatRef<'w>> {
        runtime_ref(world, id).map(|rt| DatRef::Table(rt.output()))
    }

    fn script_methods(&self) -> &'static [ScriptMethod] {
        METHODS
    }
}

/// `chan(name)` (the last value), `chanHistory(name)`, `chanNames()`, `numChans`.
const METHODS: &[ScriptMethod] = &[
    ScriptMethod::method("chan", &["name"], 1, |world, id, args| {
        Ok(runtime_ref(world, id)
            .and_then(|rt| rt.channel(&args[0].to_string()))
            .map_or(Value::None, |c| Value::Float(c.value)))
    }),
    ScriptMethod::method("chanHistory", &["name"], 1, |world, id, args| {
        Ok(Value::List(
            runtime_ref(world, id)
                .and_then(|rt| rt.channel(&args[0].to_string()))
                .map(|c| c.history.iter().map(|v| Value::Float(*v)).collect())
                .unwrap_or_default(),
        ))
    }),
    ScriptMethod::method("chanNames", &[], 0, |world, id, _| {
        Ok(Value::List(
            runtime_ref(world, id)
                .map(|rt| rt.channels.iter().map(|c| c.name.as_str().into()).collect())
                .unwrap_or_default(),
        ))
    }),
    ScriptMethod::property("numChans", |world, id, _| {
        Ok(Value::Int(
            runtime_ref(world, id).map_or(0, |rt| rt.channels.len() as i64),
        ))
    }),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_flattened_and_the_rest_skipped() {
        let value: serde_json::Value =
            serde_json::from_str(r#"{"t": 21.5, "on": true, "pos": {"x": 1, "y": -2}, "tags": ["a", 3], "name": "s1", "n": null}"#).unwrap();
        let mut out = Vec::new();
        numeric_fields(&value, "", &mut out);
        out.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            out,
            vec![
                ("on".into(), 1.0),
                ("pos/x".into(), 1.0),
                ("pos/y".into(), -2.0),
                ("t".into(), 21.5),
                ("tags/1".into(), 3.0)
            ]
        );
    }

    #[test]
    fn updates_are_capped_and_history_is_a_ring() {
        let mut rt = Runtime::default();
        for i in 0..10 {
            rt.update("a".into(), f64::from(i), 0, 3, 2);
        }
        rt.update("b".into(), 1.0, 0, 3, 2);
        rt.update("c".into(), 1.0, 0, 3, 2);
        assert_eq!(rt.channels().len(), 2);
        assert_eq!(rt.over_cap, 1);
        assert_eq!(rt.channel("a").unwrap().history, [7.0, 8.0, 9.0]);
    }
}
