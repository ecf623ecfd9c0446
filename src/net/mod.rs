//! Network tasks (tokio only). They never import egui or the engine: they send [`NetEvent`]s into
//! a bounded channel and take commands from the engine over bounded channels.

pub mod client;
pub mod files;
pub mod http_client;
pub mod mqtt;
pub mod nanollm;
pub mod server;
pub mod tls;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::project::NodeId;

/// Events queued between the network and the cook thread. When full, network tasks wait (TCP
/// backpressure) instead of buffering without limit.
pub const EVENT_QUEUE_CAPACITY: usize = 4096;

/// The network tasks an engine starts, so that a stop can wait for them. Every task a server
/// (accept loop, connections, WebSocket sessions) or a WebSocket client spawns goes through
/// `tracker`; each server and client runs under its own child of `cancel`, cancelled by
/// [`server::ServerHandle::shutdown`] or by dropping the [`client::ClientHandle`], which starts
/// its goodbye (close frames). The runner waits on `tracker` for those goodbyes, then cancels
/// `cancel` itself for whatever is left.
#[derive(Debug, Clone, Default)]
pub struct NetTasks {
    pub tracker: TaskTracker,
    pub cancel: CancellationToken,
}

/// Something that happened on an operator's connection.
#[derive(Debug)]
pub struct NetEvent {
    pub node: NodeId,
    /// Which start of the operator's task sent it; events from a stopped run are ignored.
    pub run: u64,
    pub kind: NetEventKind,
}

#[derive(Debug)]
pub enum NetEventKind {
    /// From a Web Server DAT's listener and its connections.
    Server(server::ServerEvent),
    /// From a WebSocket DAT's client connection.
    Client(client::ClientEvent),
    /// From one of a Web Client DAT's requests.
    WebClient(http_client::WebClientEvent),
    /// From an MQTT Client DAT's broker connection.
    Mqtt(mqtt::MqttEvent),
}

/// When a request body must have arrived: within a total deadline, never pausing longer than
/// `idle`, and, after `idle`'s grace, at `min_rate` bytes/s on average (Apache's mod_reqtimeout
/// MinRate). So a client trickling one byte every few seconds cannot hold its slot for long,
/// while a big upload over a slow link can take the time it needs up to the total.
#[derive(Debug, Clone, Copy)]
pub struct BodyPace {
    start: tokio::time::Instant,
    idle: std::time::Duration,
    total: std::time::Duration,
    min_rate: u64,
    received: u64,
}

impl BodyPace {
    pub fn new(idle: std::time::Duration, total: std::time::Duration, min_rate: u64) -> Self {
        Self {
            start: tokio::time::Instant::now(),
            idle,
            total,
            min_rate,
            received: 0,
        }
    }

    pub fn received(&mut self, bytes: usize) {
        self.received += bytes as u64;
    }

    /// The deadline of the next chunk.
    pub fn deadline(&self) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        let mut deadline = (now + self.idle).min(self.start + self.total);
        if self.min_rate > 0 {
            let earned =
                std::time::Duration::from_secs_f64(self.received as f64 / self.min_rate as f64);
            deadline = deadline.min(self.start + self.idle + earned);
        }
        deadline
    }
}

/// Text shared without copying between the network task, the received-messages table and the
/// scripts (a reference-counted UTF-8 buffer; cloning it is cheap).
pub type SharedStr = tokio_tungstenite::tungstenite::Utf8Bytes;

/// The close code that tells the peer why its stream was refused (RFC 6455 §7.4.1): 1009 for a
/// message over the limit, 1007 for text that is not UTF-8, 1002 for a protocol error; `None`
/// when the peer is gone and there is no one to tell.
pub fn protocol_close_code(error: &tokio_tungstenite::tungstenite::Error) -> Option<u16> {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match error {
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        Error::Capacity(_) => Some(1009),
        Error::Utf8(_) => Some(1007),
        Error::Protocol(_) => Some(1002),
        _ => None,
    }
}

/// Raw bytes as space-separated lowercase hex pairs (`68 69`).
pub fn hex_bytes(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A WebSocket data or control message, either direction.
#[derive(Debug, Clone, PartialEq)]
pub enum WsMessage {
    /// Shared with the scripts and the received-messages table, so a text message is copied
    /// once, on the network thread (out of tungstenite's read buffer, which a kept slice would
    /// pin), however many places hold it; outgoing, the frame takes the same buffer.
    Text(SharedStr),
    Binary(bytes::Bytes),
    Ping(bytes::Bytes),
    Pong(bytes::Bytes),
}

impl WsMessage {
    pub fn len(&self) -> usize {
        match self {
            WsMessage::Text(t) => t.len(),
            WsMessage::Binary(b) | WsMessage::Ping(b) | WsMessage::Pong(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn into_frame(self) -> tokio_tungstenite::tungstenite::Message {
        use tokio_tungstenite::tungstenite::Message;
        match self {
            WsMessage::Text(text) => Message::Text(text),
            WsMessage::Binary(data) => Message::Binary(data),
            WsMessage::Ping(data) => Message::Ping(data),
            WsMessage::Pong(data) => Message::Pong(data),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_spaced_pairs() {
        assert_eq!(super::hex_bytes(b"hi\n"), "68 69 0a");
        assert_eq!(super::hex_bytes(b""), "");
    }
}
