//! Clustered relay benchmark (run in release: `cargo bench --bench cluster`; needs Mosquitto).
//!
//! Prints figures, asserts nothing about speed: one publisher and `SUBSCRIBERS` subscribers on
//! the DataNet relay, (1) all on one instance of `projects/pubsub.ron`, (2) the publisher on
//! instance A and the subscribers on instance B of `projects/relay_cluster/relay.ron`, the two
//! bridged through a Mosquitto the bench starts. For each: deliveries per second of an unpaced
//! burst of `BURST` messages (and how many were lost), then latency (publisher's send to a
//! subscriber's receipt, one clock: one process) at a paced `PACED_RATE` messages/s.
// The broker is a child process; clients run on a runtime of their own.
#![allow(clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use datpatch::engine::info;
use datpatch::runner::Runner;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SUBSCRIBERS: usize = 10;
const BURST: usize = 20_000;
const PACED_RATE: u64 = 2_000;
const PACED_SECONDS: u64 = 5;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

static EPOCH: OnceLock<Instant> = OnceLock::new();

fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn project(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("projects")
        .join(name)
}

fn start(file: &str, overrides: &[(&str, String)]) -> (Runner, SocketAddr) {
    let runner = Runner::start_file(&project(file), None, |engine| {
        for (target, value) in overrides {
            engine.set_par_by_path(target, value)?;
        }
        Ok(())
    })
    .unwrap();
    let relay = runner
        .engine
        .lock()
        .project()
        .node_by_name("relay")
        .unwrap()
        .id;
    let deadline = Instant::now() + Duration::from_secs(20);
    let port = loop {
        let port = info::channel(runner.engine.lock().world(), relay, "port").unwrap_or(0.0);
        if port > 0.0 || Instant::now() > deadline {
            break port as u16;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (runner, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Waits until the instance's bridge has subscribed to the cluster topics.
fn wait_bridged(runner: &Runner) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let engine = runner.engine.lock();
        if engine
            .world()
            .console
            .lines()
            .any(|l| l.text.contains("subscribed to the cluster topics"))
        {
            return;
        }
        drop(engine);
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the bridge did not subscribe");
}

fn token(addr: SocketAddr) -> String {
    let body = br#"{"apiKey": "ak_demo"}"#;
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    tcp.write_all(body).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    let json = answer.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str::<serde_json::Value>(json).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn client(addr: SocketAddr, token: &str) -> Ws {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("bearer, {token}").parse().unwrap(),
    );
    let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws
}

/// Reads `count` channel messages (their `d.seq` and `d.t`), or stops after 3 s of silence;
/// returns the receipt latencies in ns and when the last one arrived.
async fn receive(mut ws: Ws, count: usize) -> (Vec<u64>, Instant) {
    let mut latencies = Vec::with_capacity(count);
    let mut last = Instant::now();
    while latencies.len() < count {
        let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(3), ws.next()).await
        else {
            break;
        };
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
            continue;
        };
        if value["type"] == "message"
            && let Some(sent) = value["d"]["t"].as_u64()
        {
            latencies.push(now_ns().saturating_sub(sent));
            last = Instant::now();
        }
    }
    (latencies, last)
}

struct Phase {
    deliveries_per_s: f64,
    lost: usize,
    p50_ms: f64,
    p99_ms: f64,
}

/// One publisher on `publish_to`, `SUBSCRIBERS` subscribers on `subscribe_to`.
fn phase(
    clients: &tokio::runtime::Runtime,
    publish_to: SocketAddr,
    subscribe_to: SocketAddr,
) -> Phase {
    let publisher_token = token(publish_to);
    let subscriber_token = token(subscribe_to);
    clients.block_on(async {
        // Each run on its own channel, so a backlog of the burst never counts in the paced run.
        let run = |channel: &'static str, count: usize, rate: Option<u64>| {
            let (publisher_token, subscriber_token) =
                (publisher_token.clone(), subscriber_token.clone());
            async move {
                let mut subscribers = Vec::new();
                for _ in 0..SUBSCRIBERS {
                    let mut ws = client(subscribe_to, &subscriber_token).await;
                    ws.send(Message::text(format!(r#"{{"op":"sub","ch":"{channel}"}}"#)))
                        .await
                        .unwrap();
                    loop {
                        let Some(Ok(Message::Text(t))) = ws.next().await else {
                            panic!("no sub_ack")
                        };
                        if t.as_str().contains("sub_ack") {
                            break;
                        }
                    }
                    subscribers.push(tokio::spawn(receive(ws, count)));
                }
                let mut publisher = client(publish_to, &publisher_token).await;
                let started = Instant::now();
                for seq in 0..count {
                    if let Some(rate) = rate {
                        let due = started + Duration::from_nanos(seq as u64 * 1_000_000_000 / rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let text = format!(
                        r#"{{"op":"pub","ch":"{channel}","d":{{"seq":{seq},"t":{}}}}}"#,
                        now_ns()
                    );
                    publisher.feed(Message::text(text)).await.unwrap();
                    if rate.is_some() || seq % 64 == 63 {
                        publisher.flush().await.unwrap();
                    }
                }
                publisher.flush().await.unwrap();
                let mut latencies = Vec::new();
                let mut last = started;
                for subscriber in subscribers {
                    let (received, last_receipt) = subscriber.await.unwrap();
                    latencies.extend(received);
                    last = last.max(last_receipt);
                }
                (latencies, last - started)
            }
        };
        let (burst, elapsed) = run("burst", BURST, None).await;
        let deliveries_per_s = burst.len() as f64 / elapsed.as_secs_f64();
        let lost = BURST * SUBSCRIBERS - burst.len();
        let (mut paced, _) = run(
            "paced",
            (PACED_RATE * PACED_SECONDS) as usize,
            Some(PACED_RATE),
        )
        .await;
        paced.sort_unstable();
        let at = |q: f64| {
            paced
                .get(((paced.len() as f64 * q) as usize).min(paced.len().saturating_sub(1)))
                .map_or(f64::NAN, |ns| *ns as f64 / 1e6)
        };
        Phase {
            deliveries_per_s,
            lost,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
        }
    })
}

fn main() {
    let Some(mosquitto) = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        println!("skipping: Mosquitto is not installed (apt-get install mosquitto)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("mosquitto.conf");
    std::fs::write(
        &config,
        format!("listener {broker_port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_queued_messages 100000\n"),
    )
    .unwrap();
    let mut broker = std::process::Command::new(mosquitto)
        .arg("-c")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let broker_url = format!("tcp://127.0.0.1:{broker_port}");
    let zero = || ("relay.port", "0".to_string());
    let (single, single_addr) = start("pubsub.ron", &[zero()]);
    let instance = |name: &str| {
        let (runner, addr) = start(
            "relay_cluster/relay.ron",
            &[
                zero(),
                ("bridge.netaddress", broker_url.clone()),
                ("bridge.usercid", name.to_string()),
            ],
        );
        wait_bridged(&runner);
        (runner, addr)
    };
    let (a, a_addr) = instance("bench-a");
    let (b, b_addr) = instance("bench-b");
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "relay fan-out: 1 publisher, {SUBSCRIBERS} subscribers, burst of {BURST}, latency at {PACED_RATE} msg/s for {PACED_SECONDS} s"
    );
    for (label, publish_to, subscribe_to) in [
        ("one instance (pubsub.ron)", single_addr, single_addr),
        ("instance A -> Mosquitto -> instance B", a_addr, b_addr),
    ] {
        let p = phase(&clients, publish_to, subscribe_to);
        println!(
            "{label:<40} {:>9.0} deliveries/s, {} lost; p50 {:.2} ms, p99 {:.2} ms",
            p.deliveries_per_s, p.lost, p.p50_ms, p.p99_ms
        );
    }
    let channel = |runner: &Runner, name: &str| {
        let engine = runner.engine.lock();
        let bridge = engine.project().node_by_name("bridge").unwrap().id;
        info::channel(engine.world(), bridge, name).unwrap_or(f64::NAN)
    };
    println!(
        "bridge A: {} publishes acknowledged, {} dropped (its queue full); bridge B: {} messages received",
        channel(&a, "messages_out"),
        channel(&a, "dropped"),
        channel(&b, "messages_in")
    );
    single.stop();
    a.stop();
    b.stop();
    let _ = broker.kill();
    let _ = broker.wait();
}
