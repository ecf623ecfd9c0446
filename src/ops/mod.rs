//! The operators: one folder per kind, each with its parameters read into a typed struct, its
//! lifecycle and events, its script methods and its callbacks template. The engine reaches them
//! through [`registry`]; adding an operator adds a folder here and one line there.

pub mod channels;
pub mod execute;
mod nanollm;
pub mod table;
pub mod text;
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
    }
}
