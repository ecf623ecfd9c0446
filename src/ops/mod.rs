//! The operators: one folder per kind, each with its parameters read into a typed struct, its
//! lifecycle and events, its script methods and its callbacks template. The engine reaches them
//! through [`registry`]; adding an operator adds a folder here and one line there.

pub mod channels;
pub mod execute;
pub mod fifo;
pub mod mqtt;
mod nanollm;
pub mod table;
pub mod text;
pub mod webclient;
pub mod webserver;
pub mod websocket;

use crate::engine::{Operator, Registry};
use crate::schema::OpKind;

/// Every kind's operator.
pub fn registry() -> Registry {
    Registry::new(operator)
}

fn operator(kind: OpKind) -> &'static dyn Operator {
    match kind {
        OpKind::WebServer => &webserver::WebServer,
        OpKind::WebSocket => &websocket::WebSocket,
        OpKind::Table => &table::TableDat,
        OpKind::Text => &text::TextDat,
        OpKind::Execute => &execute::Execute,
        OpKind::Channels => &channels::Channels,
        OpKind::Fifo => &fifo::Fifo,
        OpKind::WebClient => &webclient::WebClient,
        OpKind::Mqtt => &mqtt::MqttClient,
    }
}

/// Rows a received-messages table keeps: Maximum Lines when Clamp Output is on, else all
/// (`None`).
pub fn clamped_lines(world: &crate::engine::World, id: crate::project::NodeId) -> Option<usize> {
    world
        .par_bool(id, "clamp")
        .then(|| usize::try_from(world.par_int(id, "maxlines").max(1)).unwrap_or(usize::MAX))
}

/// The rows of the Table DAT wired into `id`'s `headers` pin as (name, value). Rows without a
/// name are skipped, and so is a first row reading `name`/`value` (a heading). Values may be
/// `$NAME` to keep tokens out of the file.
pub fn header_rows(
    world: &crate::engine::World,
    id: crate::project::NodeId,
) -> Result<Vec<(String, String)>, String> {
    let Some(dat) = world
        .input_node(id, "headers")
        .and_then(|headers| world.dat(headers))
    else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for r in 0..dat.num_rows() {
        let name = dat.cell(r, 0).unwrap_or_default().trim().to_string();
        let value = dat.cell(r, 1).unwrap_or_default();
        let heading = r == 0
            && name.eq_ignore_ascii_case("name")
            && value.trim().eq_ignore_ascii_case("value");
        if name.is_empty() || heading {
            continue;
        }
        let value =
            crate::engine::resolve_env(&value).map_err(|e| format!("header {name}: {e}"))?;
        rows.push((name, value));
    }
    Ok(rows)
}
