//! MQTT Client DAT against a real Mosquitto that each test starts on a free port with a config
//! file it writes (never the system service): publish and subscribe at QoS 0/1/2, retained
//! messages, a refused password, a broker restart with a persistent session, TLS with a test CA,
//! MQTT over WebSocket (`ws://`, and `wss://` with the test CA).
// The broker runs as a child process; tests wait on it from their own threads.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use datpatch::engine::{Badge, Command, Value, info};
use datpatch::project::{NodeId, ParValue, load_str};
use datpatch::runner::Runner;

const MQ: NodeId = NodeId(1);
const LONG: Duration = Duration::from_secs(20);

/// Mosquitto on 127.0.0.1:`port` with `extra` config lines, its data in `dir`.
struct Mosquitto {
    child: Option<common::KillOnDrop>,
    port: u16,
    config: PathBuf,
}

fn mosquitto_binary() -> Option<PathBuf> {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Mosquitto config lines for a WebSocket listener on `port`, with `more` lines under it. The
/// broker still needs its plain listener: Mosquitto 2.0.11 exits ("Unable to start any listening
/// sockets") when its only listeners are WebSocket ones. libwebsockets takes the listener's host as
/// an interface name and binds every interface when given 127.0.0.1, so it is bound to `lo`.
fn websocket_listener(port: u16, more: &str) -> String {
    format!("listener {port} lo\nprotocol websockets\n{more}")
}

fn wait_listening(port: u16) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        common::wait_until(LONG, || std::net::TcpStream::connect(addr).is_ok()),
        "nothing listens on {addr}"
    );
}

impl Mosquitto {
    /// `None` (and a note) when Mosquitto is not installed outside CI; CI installs it.
    fn start(dir: &Path, extra: &str) -> Option<Mosquitto> {
        if mosquitto_binary().is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "Mosquitto is missing on CI"
            );
            eprintln!("skipping: Mosquitto is not installed (apt-get install mosquitto)");
            return None;
        }
        let port = common::free_port();
        // Started as root, Mosquitto drops to its own user: its data folder must be writable.
        let data = dir.join("mosquitto-data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let config = dir.join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\npersistence true\npersistence_location {}/\n{extra}\n",
                data.display()
            ),
        )
        .unwrap();
        let mut broker = Mosquitto {
            child: None,
            port,
            config,
        };
        broker.run();
        Some(broker)
    }

    /// (Re)starts the broker process and waits until it accepts connections.
    fn run(&mut self) {
        let child = std::process::Command::new(mosquitto_binary().unwrap())
            .arg("-c")
            .arg(&self.config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(common::KillOnDrop(child));
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        assert!(
            common::wait_until(LONG, || std::net::TcpStream::connect(addr).is_ok()),
            "mosquitto did not start"
        );
    }

    /// Stops it with SIGTERM, so it saves its persistent sessions, and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(child.0.id().to_string())
                .status();
            let _ = child.0.wait();
        }
    }
}

const CALLBACKS: &str = r"
def log(*cells):
    op('log').appendRow([str(c) for c in cells])

def onConnect(dat):
    log('connect')
    dat.subscribe(['test/#', 'retained/#'], qos=2)

def onConnectFailure(dat, msg):
    log('connect_failure', msg)

def onConnectionLost(dat, msg):
    log('lost', msg)

def onSubscribe(dat):
    log('subscribed', dat.isConnected)

def onPublish(dat, topic):
    log('published', topic)

def onMessage(dat, topic, payload, qos, retained, dup):
    log('message', topic, payload.decode(), qos, retained, type(payload).__name__)

def pub(topic, payload, qos, retain):
    op('mq').publish(topic, payload, qos=qos, retain=retain)

def try_bad():
    for call in (lambda: op('mq').subscribe('a/b#'),
                 lambda: op('mq').publish('x/#', 'wildcard'),
                 lambda: op('mq').publish('big', b'y' * 2000000, qos=1)):
        try:
            call()
            log('accepted')
        except Exception as e:
            log('refused', str(e))
";

fn start(dir: &Path, address: &str, pars: &[(&str, ParValue)]) -> Runner {
    let text = format!(
        r#"(
    version: 2,
    nodes: [
        (id: 1, name: "mq", kind: Mqtt, params: {{"netaddress": {address:?}}}),
        (id: 2, name: "mq_callbacks", kind: Text, text: {CALLBACKS:?}),
        (id: 3, name: "log", kind: Table),
    ],
    wires: [(from: 2, to: 1, input: Callbacks)],
)"#
    );
    let mut project = load_str(&text, Path::new("mqtt-test.ron")).unwrap();
    let mq = project.node_mut(MQ).unwrap();
    for (token, value) in pars {
        mq.params.insert((*token).to_string(), value.clone());
    }
    Runner::start(project, dir, None).unwrap()
}

fn log(runner: &Runner) -> Vec<Vec<String>> {
    common::table_rows(runner, "log")
}

fn logged(runner: &Runner, kind: &str) -> Vec<Vec<String>> {
    log(runner).into_iter().filter(|r| r[0] == kind).collect()
}

fn wait_logged(runner: &Runner, kind: &str, count: usize) {
    assert!(
        common::wait_until(LONG, || logged(runner, kind).len() >= count),
        "waiting for {count} {kind}: {:?}\n{}",
        log(runner),
        common::console_text(runner.engine.lock().world())
    );
}

fn publish(runner: &Runner, topic: &str, payload: &str, qos: i64, retain: bool) {
    let outcome = runner.engine.lock().call(
        MQ,
        "pub",
        vec![
            topic.into(),
            payload.into(),
            Value::Int(qos),
            Value::Bool(retain),
        ],
    );
    assert!(
        matches!(outcome, datpatch::engine::CallOutcome::Done(_)),
        "{outcome:?}"
    );
}

fn set(runner: &Runner, token: &str, value: ParValue) {
    runner
        .engine
        .lock()
        .apply(Command::SetParam {
            id: MQ,
            token: token.into(),
            value,
        })
        .unwrap();
}

fn channel(runner: &Runner, name: &str) -> f64 {
    info::channel(runner.engine.lock().world(), MQ, name).unwrap()
}

#[test]
fn publishes_at_each_qos_reach_the_subscription_and_retained_messages_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = Mosquitto::start(dir.path(), "allow_anonymous true") else {
        return;
    };
    let runner = start(
        dir.path(),
        &format!("tcp://127.0.0.1:{}", broker.port),
        &[("bytes", ParValue::Bool(true))],
    );
    wait_logged(&runner, "subscribed", 1);
    assert_eq!(logged(&runner, "subscribed")[0][1], "True");
    for qos in 0..3 {
        publish(
            &runner,
            &format!("test/q{qos}"),
            &format!("payload {qos}"),
            qos,
            false,
        );
    }
    wait_logged(&runner, "message", 3);
    let mut messages = logged(&runner, "message");
    messages.sort();
    assert_eq!(
        messages,
        [
            ["message", "test/q0", "payload 0", "0", "False", "bytes"],
            ["message", "test/q1", "payload 1", "1", "False", "bytes"],
            ["message", "test/q2", "payload 2", "2", "False", "bytes"],
        ]
    );
    wait_logged(&runner, "published", 3);
    let table = common::dat_cells(runner.engine.lock().world(), MQ);
    assert_eq!(
        table[0],
        ["topic", "payload", "qos", "retained", "time", "bytes"]
    );
    assert_eq!(table.len(), 4);
    let q0 = table.iter().find(|r| r[0] == "test/q0").unwrap();
    assert_eq!(q0[5], "70 61 79 6c 6f 61 64 20 30");
    assert_eq!(channel(&runner, "messages_in"), 3.0);
    assert_eq!(channel(&runner, "connected"), 1.0);

    // A bad filter, a wildcard topic and a packet over Max Message Size are refused at the call,
    // and the connection carries on.
    let outcome = runner.engine.lock().call(MQ, "try_bad", vec![]);
    assert!(
        matches!(outcome, datpatch::engine::CallOutcome::Done(_)),
        "{outcome:?}"
    );
    let refused = logged(&runner, "refused");
    assert_eq!(refused.len(), 3, "{:?}", log(&runner));
    assert!(refused[0][1].contains("not a topic filter"), "{refused:?}");
    assert!(
        refused[1][1].contains("not a topic to publish to"),
        "{refused:?}"
    );
    assert!(
        refused[2][1].contains("over Max Message Size"),
        "{refused:?}"
    );
    publish(&runner, "test/after", "still here", 1, false);
    wait_logged(&runner, "message", 4);
    assert_eq!(channel(&runner, "connected"), 1.0);

    // A retained message reaches a subscription made after it was published.
    publish(&runner, "retained/state", "on", 1, true);
    wait_logged(&runner, "message", 5);
    runner
        .engine
        .lock()
        .apply(Command::Pulse {
            id: MQ,
            token: "reconnect".into(),
        })
        .unwrap();
    wait_logged(&runner, "connect", 2);
    wait_logged(&runner, "message", 6);
    let last = logged(&runner, "message").pop().unwrap();
    assert_eq!(last[1..5], ["retained/state", "on", "1", "True"]);
}

#[test]
fn a_wrong_password_is_refused_and_reported_and_the_right_one_connects() {
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwords");
    if mosquitto_binary().is_some() {
        let made = std::process::Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&passwords)
            .args(["datpatch", "s3cret"])
            .status()
            .unwrap();
        assert!(made.success());
    }
    let extra = format!(
        "allow_anonymous false\npassword_file {}",
        passwords.display()
    );
    let Some(broker) = Mosquitto::start(dir.path(), &extra) else {
        return;
    };
    let runner = start(
        dir.path(),
        &format!("tcp://127.0.0.1:{}", broker.port),
        &[
            ("username", ParValue::Str("datpatch".into())),
            ("password", ParValue::Str("wrong".into())),
        ],
    );
    wait_logged(&runner, "connect_failure", 1);
    let failure = &logged(&runner, "connect_failure")[0][1];
    assert!(failure.contains("refused"), "{failure}");
    let console = common::console_text(runner.engine.lock().world());
    assert!(
        console.contains("could not connect to 127.0.0.1:"),
        "{console}"
    );
    assert!(channel(&runner, "warnings") >= 1.0);
    assert_ne!(runner.engine.lock().world().badge(MQ), Badge::Connected);

    set(&runner, "password", ParValue::Str("s3cret".into()));
    wait_logged(&runner, "subscribed", 1);
    assert_eq!(runner.engine.lock().world().badge(MQ), Badge::Connected);
}

#[test]
fn a_broker_restart_reconnects_resubscribes_and_delivers_what_was_published_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut broker) = Mosquitto::start(dir.path(), "allow_anonymous true") else {
        return;
    };
    let runner = start(
        dir.path(),
        &format!("tcp://127.0.0.1:{}", broker.port),
        &[
            ("specifyid", ParValue::Bool(true)),
            ("usercid", ParValue::Str("datpatch-restart-test".into())),
            ("cleansession", ParValue::Bool(false)),
            ("keepalive", ParValue::Int(2)),
        ],
    );
    wait_logged(&runner, "subscribed", 1);
    publish(&runner, "test/before", "1", 1, false);
    wait_logged(&runner, "message", 1);

    broker.stop();
    wait_logged(&runner, "lost", 1);
    // Published while the broker is away: queued, then delivered once it is back.
    for i in 0..5 {
        publish(&runner, "test/meanwhile", &i.to_string(), 1, false);
    }
    broker.run();
    wait_logged(&runner, "connect", 2);
    wait_logged(&runner, "message", 6);
    let meanwhile: Vec<String> = logged(&runner, "message")
        .into_iter()
        .filter(|r| r[1] == "test/meanwhile")
        .map(|r| r[2].clone())
        .collect();
    assert_eq!(meanwhile, ["0", "1", "2", "3", "4"]);
    assert!(channel(&runner, "reconnects") >= 1.0);
    let console = common::console_text(runner.engine.lock().world());
    assert!(console.contains("session resumed"), "{console}");
}

#[test]
fn tls_needs_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = common::test_pki_pem();
    for (name, pem) in [("ca.pem", &ca), ("cert.pem", &cert), ("key.pem", &key)] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let extra = format!(
        "allow_anonymous true\ncertfile {0}/cert.pem\nkeyfile {0}/key.pem",
        dir.path().display()
    );
    let Some(broker) = Mosquitto::start(dir.path(), &extra) else {
        return;
    };
    let runner = start(dir.path(), &format!("ssl://127.0.0.1:{}", broker.port), &[]);
    wait_logged(&runner, "connect_failure", 1);
    let failure = &logged(&runner, "connect_failure")[0][1];
    assert!(failure.to_lowercase().contains("certificate"), "{failure}");

    set(&runner, "cafile", ParValue::Str("ca.pem".into()));
    wait_logged(&runner, "subscribed", 1);
    publish(&runner, "test/secure", "over TLS", 2, false);
    wait_logged(&runner, "message", 1);
    assert_eq!(
        logged(&runner, "message")[0][1..3],
        ["test/secure", "over TLS"]
    );
}

#[test]
fn mqtt_over_websocket_subscribes_publishes_and_receives() {
    let dir = tempfile::tempdir().unwrap();
    let ws_port = common::free_port();
    let extra = format!("allow_anonymous true\n{}", websocket_listener(ws_port, ""));
    let Some(broker) = Mosquitto::start(dir.path(), &extra) else {
        return;
    };
    wait_listening(ws_port);
    // First the broker's plain MQTT port: it speaks no HTTP, so the WebSocket handshake fails
    // and says so; then the WebSocket listener, with the default path.
    let runner = start(
        dir.path(),
        &format!("ws://127.0.0.1:{}/mqtt", broker.port),
        &[],
    );
    wait_logged(&runner, "connect_failure", 1);
    assert!(
        logged(&runner, "subscribed").is_empty(),
        "{:?}",
        log(&runner)
    );
    set(
        &runner,
        "netaddress",
        ParValue::Str(format!("ws://127.0.0.1:{ws_port}")),
    );
    wait_logged(&runner, "subscribed", 1);
    assert_eq!(logged(&runner, "subscribed")[0][1], "True");
    for i in 0..3 {
        publish(&runner, "test/ws", &format!("over ws {i}"), 1, false);
    }
    wait_logged(&runner, "message", 3);
    assert_eq!(
        logged(&runner, "message"),
        [
            ["message", "test/ws", "over ws 0", "1", "False", "bytes"],
            ["message", "test/ws", "over ws 1", "1", "False", "bytes"],
            ["message", "test/ws", "over ws 2", "1", "False", "bytes"],
        ]
    );
    wait_logged(&runner, "published", 3);
    let table = common::dat_cells(runner.engine.lock().world(), MQ);
    assert_eq!(table.len(), 4, "{table:?}");
    assert_eq!(table[3][..4], ["test/ws", "over ws 2", "1", "0"]);
    assert_eq!(channel(&runner, "connected"), 1.0);
    assert_eq!(channel(&runner, "messages_in"), 3.0);
    let console = common::console_text(runner.engine.lock().world());
    assert!(
        console.contains(&format!("connected to ws://127.0.0.1:{ws_port}/mqtt")),
        "{console}"
    );
}

#[test]
fn mqtt_over_secure_websocket_needs_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = common::test_pki_pem();
    for (name, pem) in [("ca.pem", &ca), ("cert.pem", &cert), ("key.pem", &key)] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let wss_port = common::free_port();
    let extra = format!(
        "allow_anonymous true\n{}",
        websocket_listener(
            wss_port,
            &format!(
                "certfile {0}/cert.pem\nkeyfile {0}/key.pem",
                dir.path().display()
            )
        )
    );
    let Some(_broker) = Mosquitto::start(dir.path(), &extra) else {
        return;
    };
    wait_listening(wss_port);
    let runner = start(dir.path(), &format!("wss://127.0.0.1:{wss_port}/mqtt"), &[]);
    wait_logged(&runner, "connect_failure", 1);
    let failure = &logged(&runner, "connect_failure")[0][1];
    assert!(failure.to_lowercase().contains("certificate"), "{failure}");

    set(&runner, "cafile", ParValue::Str("ca.pem".into()));
    wait_logged(&runner, "subscribed", 1);
    publish(&runner, "test/wss", "over wss", 1, false);
    wait_logged(&runner, "message", 1);
    assert_eq!(
        logged(&runner, "message"),
        [["message", "test/wss", "over wss", "1", "False", "bytes"]]
    );
    wait_logged(&runner, "published", 1);
    assert_eq!(logged(&runner, "published")[0][1], "test/wss");
}

// ---- The clustered relay example: several `datpatch run` instances on one broker. ----

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One `datpatch run projects/relay_cluster/relay.ron` instance.
struct Instance {
    _child: common::KillOnDrop,
    lines: std::sync::mpsc::Receiver<String>,
    addr: std::net::SocketAddr,
}

impl Instance {
    fn start(broker_port: u16, name: &str) -> Instance {
        let project =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("projects/relay_cluster/relay.ron");
        let (child, lines) = common::spawn_datpatch_with_env(
            [
                "run".to_string(),
                project.display().to_string(),
                "--set".to_string(),
                "relay.port=0".to_string(),
            ],
            &[
                ("DATPATCH_BROKER", &format!("tcp://127.0.0.1:{broker_port}")),
                ("DATPATCH_INSTANCE", name),
                ("DATPATCH_RELAY_SECRET", "cluster secret"),
            ],
        );
        let port = common::listening_port(&lines);
        let instance = Instance {
            _child: child,
            lines,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        };
        instance.wait_line("subscribed to the cluster topics");
        instance
    }

    fn wait_line(&self, needle: &str) {
        let deadline = std::time::Instant::now() + LONG;
        while std::time::Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200))
                && line.contains(needle)
            {
                return;
            }
        }
        panic!("no line with {needle:?}");
    }

    fn token(&self) -> String {
        let answer = common::http(
            self.addr,
            "POST",
            "/auth/token",
            &[],
            br#"{"apiKey": "ak_demo"}"#,
        );
        answer.json()["token"].as_str().unwrap().to_string()
    }

    async fn client(&self, token: &str) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            format!("bearer, {token}").parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(next_json(&mut ws).await["type"], "connected");
        ws
    }
}

async fn send_json(ws: &mut Ws, value: serde_json::Value) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        value.to_string(),
    ))
    .await
    .unwrap();
}

async fn next_json(ws: &mut Ws) -> serde_json::Value {
    use futures_util::StreamExt;
    loop {
        let message = tokio::time::timeout(LONG, ws.next())
            .await
            .expect("no message in time")
            .expect("connection ended")
            .expect("read failed");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

/// The `d` of the next `count` messages on `ws`.
async fn received(ws: &mut Ws, count: usize) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while out.len() < count {
        let message = next_json(ws).await;
        if message["type"] == "message" {
            out.push(message["d"].clone());
        }
    }
    out
}

#[test]
fn relay_cluster_instances_share_publishes_and_lose_none_across_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut broker) = Mosquitto::start(dir.path(), "allow_anonymous true") else {
        return;
    };
    let a = Instance::start(broker.port, "instance-a");
    let b = Instance::start(broker.port, "instance-b");
    // A token from instance A is good on B: they share the signing secret.
    let token = a.token();
    common::rt().block_on(async {
        let mut subscriber = b.client(&token).await;
        let mut local = a.client(&token).await;
        let mut publisher = a.client(&token).await;
        for ws in [&mut subscriber, &mut local] {
            send_json(ws, serde_json::json!({"op": "sub", "ch": "room"})).await;
            assert_eq!(next_json(ws).await["type"], "sub_ack");
        }
        for i in 0..20 {
            send_json(
                &mut publisher,
                serde_json::json!({"op": "pub", "ch": "room", "d": i}),
            )
            .await;
        }
        let expected: Vec<serde_json::Value> = (0..20).map(serde_json::Value::from).collect();
        assert_eq!(
            received(&mut subscriber, 20).await,
            expected,
            "on the other instance"
        );
        assert_eq!(
            received(&mut local, 20).await,
            expected,
            "on the same instance"
        );

        // A message over the bridge's Max Message Size is refused to its sender; the bridge
        // stays up and the next message goes through.
        let huge = "x".repeat(1_100_000);
        send_json(
            &mut publisher,
            serde_json::json!({"op": "pub", "ch": "room", "d": huge}),
        )
        .await;
        assert_eq!(
            next_json(&mut publisher).await["error"],
            "too_large_or_bad_ch"
        );
        send_json(
            &mut publisher,
            serde_json::json!({"op": "pub", "ch": "room", "d": "small"}),
        )
        .await;
        assert_eq!(
            received(&mut subscriber, 1).await,
            [serde_json::json!("small")]
        );
        assert_eq!(received(&mut local, 1).await, [serde_json::json!("small")]);

        // The broker goes away; what is published meanwhile (QoS 1) arrives once it is back.
        broker.stop();
        a.wait_line("[bridge] connection to");
        for i in 20..30 {
            send_json(
                &mut publisher,
                serde_json::json!({"op": "pub", "ch": "room", "d": i}),
            )
            .await;
        }
        broker.run();
        let expected: Vec<serde_json::Value> = (20..30).map(serde_json::Value::from).collect();
        assert_eq!(
            received(&mut subscriber, 10).await,
            expected,
            "after the broker restart"
        );
    });

    // Instance B is killed and started again: its clients come back and receive from A.
    drop(b);
    let b = Instance::start(broker.port, "instance-b");
    common::rt().block_on(async {
        let mut subscriber = b.client(&token).await;
        let mut publisher = a.client(&token).await;
        send_json(
            &mut subscriber,
            serde_json::json!({"op": "sub", "ch": "room"}),
        )
        .await;
        assert_eq!(next_json(&mut subscriber).await["type"], "sub_ack");
        send_json(
            &mut publisher,
            serde_json::json!({"op": "pub", "ch": "room", "d": "again"}),
        )
        .await;
        assert_eq!(
            received(&mut subscriber, 1).await,
            [serde_json::json!("again")]
        );
    });
}
