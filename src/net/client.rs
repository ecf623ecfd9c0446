//! The WebSocket DAT's client task: connect (ws/wss, headers, subprotocols, timeout), read into
//! events, write what the engine sends, ping, and reconnect with backoff.

/// What the client task reports to the engine.
#[derive(Debug)]
pub enum ClientEvent {}
