//! The Web Server DAT's listener: HTTP/1.1 (hyper) and WebSocket (tokio-tungstenite) on one port,
//! optional TLS (tokio-rustls), limits, and a registry of connected WebSocket clients.

/// What the server task reports to the engine.
#[derive(Debug)]
pub enum ServerEvent {}
