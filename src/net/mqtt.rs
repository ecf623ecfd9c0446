//! The MQTT Client DAT's connection: a rumqttc (MQTT 3.1.1) event loop on the tokio runtime, over
//! TCP, TLS, WebSocket or WebSocket over TLS, reconnecting with backoff, taking the engine's
//! publishes and subscriptions over a bounded channel and reporting what happens as [`NetEvent`]s.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS,
    SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::client::{Backoff, STABLE_AFTER};
use super::{NetEvent, NetEventKind, NetTasks};
use crate::project::NodeId;

/// Requests the engine may queue before `publish()` reports the queue full (they wait there
/// while the broker is away, and go out when it is back), and the payload bytes they may hold:
/// a burst of small messages fits, a flood of large ones is bounded in memory.
pub const COMMAND_QUEUE_CAPACITY: usize = 65_536;
pub const COMMAND_QUEUE_BYTES: usize = 16 << 20;
/// Requests rumqttc itself buffers between our task and its event loop.
const CLIENT_CAPACITY: usize = 64;

/// How an address reaches the broker: its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `tcp://` (also `mqtt://`).
    Tcp,
    /// `ssl://` (also `tls://`, `mqtts://`).
    Ssl,
    /// `ws://`: MQTT in the binary messages of a WebSocket.
    Ws,
    /// `wss://`: the same over TLS.
    Wss,
}

impl Scheme {
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Ssl | Scheme::Wss)
    }

    pub fn is_websocket(self) -> bool {
        matches!(self, Scheme::Ws | Scheme::Wss)
    }

    /// MQTT's registered ports, and HTTP's for WebSocket (brokers commonly listen on others,
    /// such as 8080 / 8081 or 9001, which the address then names).
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Tcp => 1883,
            Scheme::Ssl => 8883,
            Scheme::Ws => 80,
            Scheme::Wss => 443,
        }
    }
}

/// A broker's address as the Network Address parameter gives it, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub scheme: Scheme,
    /// A name or an IP address (an IPv6 one without its brackets).
    pub host: String,
    pub port: u16,
    /// The HTTP request target of a `ws://` or `wss://` address (path and query, starting with
    /// `/`); empty for the others.
    pub path: String,
}

impl BrokerAddress {
    /// The host as it goes in a URL or before `:port`: an IPv6 address in brackets.
    fn url_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// The WebSocket URL of a `ws://` or `wss://` address, with its port always spelled out.
    pub fn websocket_url(&self) -> String {
        let scheme = if self.scheme.is_tls() { "wss" } else { "ws" };
        format!("{scheme}://{}:{}{}", self.url_host(), self.port, self.path)
    }
}

/// For status lines: `host:port`, or the whole URL for WebSocket (its path matters too).
impl std::fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.scheme.is_websocket() {
            f.write_str(&self.websocket_url())
        } else {
            write!(f, "{}:{}", self.url_host(), self.port)
        }
    }
}

/// The TLS a connection uses, by scheme: the config is there exactly when the scheme needs it.
#[derive(Clone)]
pub enum MqttTransport {
    Tcp,
    Tls(Arc<rustls::ClientConfig>),
    Ws,
    Wss(Arc<rustls::ClientConfig>),
}

/// Where and how to connect, built by the operator from its parameters.
#[derive(Clone)]
pub struct MqttConfig {
    pub address: BrokerAddress,
    /// Matches `address.scheme`.
    pub transport: MqttTransport,
    pub client_id: String,
    pub keep_alive_s: u64,
    pub max_inflight: u16,
    pub clean_session: bool,
    pub credentials: Option<(String, String)>,
    pub max_packet_bytes: usize,
}

// Credentials stay out of debug output.
impl std::fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConfig")
            .field("address", &self.address)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What the engine asks of the connection.
#[derive(Debug)]
pub enum MqttCommand {
    Publish {
        topic: String,
        payload: Bytes,
        qos: QoS,
        retain: bool,
    },
    Subscribe(Vec<(String, QoS)>),
    Unsubscribe(Vec<String>),
}

/// What the connection reports.
#[derive(Debug)]
pub enum MqttEvent {
    Connecting {
        attempt: u32,
    },
    Connected {
        session_present: bool,
    },
    /// An attempt failed (refused, unreachable, bad credentials, TLS).
    ConnectFailed {
        error: String,
    },
    /// An established connection dropped.
    ConnectionLost {
        error: String,
    },
    Retrying {
        delay_ms: u64,
    },
    Message {
        topic: String,
        payload: Bytes,
        qos: u8,
        retained: bool,
        dup: bool,
    },
    /// The broker has a publish: sent (QoS 0), acknowledged (QoS 1) or completed (QoS 2).
    Published {
        topic: String,
    },
    Subscribed {
        /// Why the broker refused one of the topics, if it did.
        failure: Option<String>,
    },
    Unsubscribed,
}

/// The engine's end: commands in, the task stops when it is dropped.
#[derive(Debug)]
pub struct MqttHandle {
    commands: mpsc::Sender<MqttCommand>,
    /// Payload bytes queued and not yet handed to rumqttc.
    queued_bytes: Arc<AtomicUsize>,
    cancel: CancellationToken,
}

impl MqttCommand {
    fn payload_bytes(&self) -> usize {
        match self {
            MqttCommand::Publish { payload, .. } => payload.len(),
            _ => 0,
        }
    }
}

impl MqttHandle {
    /// Queues a command without waiting; `Err` with the command when the queue is full (in
    /// requests or in bytes).
    pub fn try_send(&self, command: MqttCommand) -> Result<(), MqttCommand> {
        let bytes = command.payload_bytes();
        if bytes > 0 && self.queued_bytes.load(Ordering::Relaxed) + bytes > COMMAND_QUEUE_BYTES {
            return Err(command);
        }
        self.commands
            .try_send(command)
            .map(|()| {
                self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
            })
    }

    /// Requests queued and not yet handed to the connection.
    pub fn queued(&self) -> usize {
        COMMAND_QUEUE_CAPACITY - self.commands.capacity()
    }
}

impl Drop for MqttHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A topic to publish to: not empty, no wildcards, no NUL, at most 65,535 bytes (MQTT §4.7).
pub fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty()
        || topic.len() > 65_535
        || topic.contains('\0')
        || !rumqttc::valid_topic(topic)
    {
        return Err(format!("\"{topic}\" is not a topic to publish to"));
    }
    Ok(())
}

/// A topic filter to subscribe to (`+` and `#` only as whole levels, `#` last).
pub fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty()
        || filter.len() > 65_535
        || filter.contains('\0')
        || !rumqttc::valid_filter(filter)
    {
        return Err(format!("\"{filter}\" is not a topic filter"));
    }
    Ok(())
}

/// Bytes a PUBLISH of `topic` and `payload_bytes` takes on the wire, without the fixed header's
/// length bytes (at most 4 more).
pub fn publish_packet_bytes(topic: &str, payload_bytes: usize, qos: QoS) -> usize {
    let packet_id = if qos == QoS::AtMostOnce { 0 } else { 2 };
    1 + 4 + 2 + topic.len() + packet_id + payload_bytes
}

pub fn qos(level: i64) -> Result<QoS, String> {
    match level {
        0 => Ok(QoS::AtMostOnce),
        1 => Ok(QoS::AtLeastOnce),
        2 => Ok(QoS::ExactlyOnce),
        other => Err(format!("QoS is 0, 1 or 2, not {other}")),
    }
}

/// Starts the connection task for `node`, tracked by `tasks`; its events carry `run`.
pub fn spawn(
    rt: &tokio::runtime::Handle,
    tasks: &NetTasks,
    node: NodeId,
    run: u64,
    config: &MqttConfig,
    events: mpsc::Sender<NetEvent>,
) -> MqttHandle {
    let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE_CAPACITY);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let cancel = tasks.cancel.child_token();
    let mut options = match config.transport {
        // rumqttc takes a WebSocket broker's host and port from the URL it is given as the
        // "host", and ignores the port argument.
        MqttTransport::Ws | MqttTransport::Wss(_) => MqttOptions::new(
            config.client_id.clone(),
            config.address.websocket_url(),
            config.address.port,
        ),
        MqttTransport::Tcp | MqttTransport::Tls(_) => MqttOptions::new(
            config.client_id.clone(),
            config.address.host.clone(),
            config.address.port,
        ),
    };
    options
        .set_keep_alive(Duration::from_secs(config.keep_alive_s.max(1)))
        .set_clean_session(config.clean_session)
        .set_inflight(config.max_inflight.max(1))
        .set_max_packet_size(config.max_packet_bytes, config.max_packet_bytes);
    if let Some((user, password)) = &config.credentials {
        options.set_credentials(user.clone(), password.clone());
    }
    options.set_transport(match &config.transport {
        MqttTransport::Tcp => Transport::Tcp,
        MqttTransport::Tls(tls) => Transport::Tls(TlsConfiguration::Rustls(tls.clone())),
        MqttTransport::Ws => Transport::Ws,
        MqttTransport::Wss(tls) => Transport::Wss(TlsConfiguration::Rustls(tls.clone())),
    });
    let (client, mut eventloop) = AsyncClient::new(options, CLIENT_CAPACITY);
    // rumqttc leaves Nagle on: each small publish would wait for the previous one's ACK
    // (tens of ms on loopback with delayed ACKs). It opens the TCP socket under a WebSocket the
    // same way, so this holds for ws:// and wss:// too.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    // Topics of publishes handed to rumqttc, in order: its event loop reports them in the same
    // order (`Outgoing::Publish`) with the packet id their acknowledgement will carry.
    let sent_topics = Arc::new(Mutex::new(VecDeque::new()));
    tasks.tracker.spawn_on(
        forward(
            client,
            commands,
            queued_bytes.clone(),
            sent_topics.clone(),
            cancel.clone(),
        ),
        rt,
    );
    let task = Task {
        node,
        run,
        events,
        sent_topics,
        awaiting_ack: HashMap::new(),
        awaiting_comp: HashMap::new(),
        unsent_at_drop: 0,
    };
    tasks
        .tracker
        .spawn_on(task.run(eventloop, cancel.clone()), rt);
    MqttHandle {
        commands: commands_tx,
        queued_bytes,
        cancel,
    }
}

/// Hands the engine's commands to rumqttc, waiting for room (its channel is bounded).
async fn forward(
    client: AsyncClient,
    mut commands: mpsc::Receiver<MqttCommand>,
    queued_bytes: Arc<AtomicUsize>,
    sent_topics: Arc<Mutex<VecDeque<(String, QoS)>>>,
    cancel: CancellationToken,
) {
    loop {
        let command = tokio::select! {
            command = commands.recv() => command,
            () = cancel.cancelled() => None,
        };
        let Some(command) = command else {
            let _ = client.try_disconnect();
            return;
        };
        queued_bytes.fetch_sub(command.payload_bytes(), Ordering::Relaxed);
        let sent = match command {
            MqttCommand::Publish {
                topic,
                payload,
                qos,
                retain,
            } => {
                if check_topic(&topic).is_err() {
                    continue;
                }
                sent_topics.lock().push_back((topic.clone(), qos));
                client.publish_bytes(topic, qos, retain, payload).await
            }
            MqttCommand::Subscribe(topics) => {
                if topics
                    .iter()
                    .any(|(filter, _)| check_filter(filter).is_err())
                {
                    continue;
                }
                client
                    .subscribe_many(
                        topics
                            .into_iter()
                            .map(|(path, qos)| rumqttc::SubscribeFilter::new(path, qos)),
                    )
                    .await
            }
            MqttCommand::Unsubscribe(topics) => {
                if topics.iter().any(|filter| check_filter(filter).is_err()) {
                    continue;
                }
                let mut result = Ok(());
                for topic in topics {
                    result = result.and(client.unsubscribe(topic).await);
                }
                result
            }
        };
        // Requests are checked above, so an error means the event loop is gone: the node stops.
        if sent.is_err() {
            return;
        }
    }
}

struct Task {
    node: NodeId,
    run: u64,
    events: mpsc::Sender<NetEvent>,
    sent_topics: Arc<Mutex<VecDeque<(String, QoS)>>>,
    /// Packet id → topic of publishes waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    awaiting_ack: HashMap<u16, String>,
    /// QoS 2 publishes between PUBREC and PUBCOMP (rumqttc may reuse their packet id meanwhile).
    awaiting_comp: HashMap<u16, String>,
    /// Publishes that rumqttc moved to its pending list unsent when the connection dropped: if
    /// the broker has no session for us, it drops them at the reconnect.
    unsent_at_drop: usize,
}

/// The engine stopped listening: the task ends.
struct Gone;

impl Task {
    async fn emit(&self, event: MqttEvent) -> Result<(), Gone> {
        self.events
            .send(NetEvent {
                node: self.node,
                run: self.run,
                kind: NetEventKind::Mqtt(event),
            })
            .await
            .map_err(|_| Gone)
    }

    async fn run(mut self, mut eventloop: EventLoop, cancel: CancellationToken) {
        let backoff = Backoff::DEFAULT;
        let mut retry = 0;
        let mut attempt = 1;
        let mut connected_at: Option<tokio::time::Instant> = None;
        if self.emit(MqttEvent::Connecting { attempt }).await.is_err() {
            return;
        }
        loop {
            let polled = tokio::select! {
                polled = eventloop.poll() => polled,
                () = cancel.cancelled() => {
                    // Let the DISCONNECT the forwarder queued go out, briefly.
                    let _ = tokio::time::timeout(Duration::from_millis(500), async {
                        while let Ok(event) = eventloop.poll().await {
                            if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
                                break;
                            }
                        }
                    })
                    .await;
                    return;
                }
            };
            let handled = match polled {
                Ok(event) => self.handle(event, &mut connected_at).await,
                Err(error) => {
                    // Requests not yet numbered (packet id 0) were never sent: their topics are
                    // the oldest of `sent_topics`.
                    self.unsent_at_drop = eventloop
                        .pending
                        .iter()
                        .filter(|r| matches!(r, rumqttc::Request::Publish(p) if p.pkid == 0))
                        .count();
                    let error = describe(&error);
                    let event = match connected_at.take() {
                        Some(since) => {
                            if since.elapsed() >= STABLE_AFTER {
                                retry = 0;
                            }
                            MqttEvent::ConnectionLost { error }
                        }
                        None => MqttEvent::ConnectFailed { error },
                    };
                    if self.emit(event).await.is_err() {
                        return;
                    }
                    let delay_ms = backoff.delay_ms(retry, fastrand::f64());
                    retry += 1;
                    attempt += 1;
                    if self.emit(MqttEvent::Retrying { delay_ms }).await.is_err() {
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
                        () = cancel.cancelled() => return,
                    }
                    self.emit(MqttEvent::Connecting { attempt }).await
                }
            };
            if handled.is_err() {
                return;
            }
        }
    }

    async fn handle(
        &mut self,
        event: Event,
        connected_at: &mut Option<tokio::time::Instant>,
    ) -> Result<(), Gone> {
        match event {
            Event::Incoming(Incoming::ConnAck(ack)) => {
                *connected_at = Some(tokio::time::Instant::now());
                let unsent = std::mem::take(&mut self.unsent_at_drop);
                if !ack.session_present {
                    // rumqttc dropped what was in flight and what it had not sent yet.
                    let mut sent_topics = self.sent_topics.lock();
                    let unsent = unsent.min(sent_topics.len());
                    sent_topics.drain(..unsent);
                    self.awaiting_ack.clear();
                    self.awaiting_comp.clear();
                }
                self.emit(MqttEvent::Connected {
                    session_present: ack.session_present,
                })
                .await
            }
            Event::Incoming(Incoming::Publish(publish)) => {
                self.emit(MqttEvent::Message {
                    topic: publish.topic,
                    payload: publish.payload,
                    qos: publish.qos as u8,
                    retained: publish.retain,
                    dup: publish.dup,
                })
                .await
            }
            // A publish resent after a reconnect (same packet id) was counted when first sent.
            Event::Outgoing(Outgoing::Publish(pkid)) if self.awaiting_ack.contains_key(&pkid) => {
                Ok(())
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                let sent = self.sent_topics.lock().pop_front();
                match sent {
                    Some((topic, QoS::AtMostOnce)) => {
                        self.emit(MqttEvent::Published { topic }).await
                    }
                    Some((topic, _)) => {
                        self.awaiting_ack.insert(pkid, topic);
                        Ok(())
                    }
                    None => Ok(()),
                }
            }
            Event::Incoming(Incoming::PubAck(ack)) => self.acknowledged(ack.pkid).await,
            Event::Incoming(Incoming::PubRec(rec)) => {
                if let Some(topic) = self.awaiting_ack.remove(&rec.pkid) {
                    self.awaiting_comp.insert(rec.pkid, topic);
                }
                Ok(())
            }
            Event::Incoming(Incoming::PubComp(comp)) => match self.awaiting_comp.remove(&comp.pkid)
            {
                Some(topic) => self.emit(MqttEvent::Published { topic }).await,
                None => Ok(()),
            },
            Event::Incoming(Incoming::SubAck(ack)) => {
                let failure = ack
                    .return_codes
                    .iter()
                    .any(|code| matches!(code, SubscribeReasonCode::Failure))
                    .then(|| "the broker refused the subscription".to_string());
                self.emit(MqttEvent::Subscribed { failure }).await
            }
            Event::Incoming(Incoming::UnsubAck(_)) => self.emit(MqttEvent::Unsubscribed).await,
            _ => Ok(()),
        }
    }

    async fn acknowledged(&mut self, pkid: u16) -> Result<(), Gone> {
        match self.awaiting_ack.remove(&pkid) {
            Some(topic) => self.emit(MqttEvent::Published { topic }).await,
            None => Ok(()),
        }
    }
}

fn describe(error: &ConnectionError) -> String {
    match error {
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection: {code:?}")
        }
        ConnectionError::Io(io) => match io.get_ref() {
            Some(inner) => inner.to_string(),
            None => io.to_string(),
        },
        // rumqttc's own text for this one leaves the reason out.
        ConnectionError::ResponseValidation(reason) => {
            format!("the WebSocket server did not accept the mqtt subprotocol: {reason}")
        }
        other => other.to_string(),
    }
}
