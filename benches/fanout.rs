//! Fan-out: every message one publisher sends relayed to every other client, a bare
//! tokio-tungstenite relay (which waits for room in each subscriber's queue) beside a Web Server
//! DAT relaying through a Python `onWebSocketReceiveText` that calls
//! `webSocketBroadcastText(data, exclude=client)`, measured in the same run on loopback.
//! Run: `cargo bench --bench fanout` (release build; prints figures).
//!
//! Each round runs, for 50 subscribers + 1 publisher and 200 subscribers + 4 publishers, bare then
//! ours: an unpaced burst of 64-byte messages (deliveries/s, lost deliveries, clients closed, peak
//! RSS of this process, which holds the clients and both relays), then a paced phase (latency
//! from send to receipt; p50, p99).
//!
//! Options: `--messages N` unpaced messages per phase, shared by the publishers (default 20000),
//! `--rate N` paced messages/s (default 2000), `--paced-seconds N` (default 10: over 2 s the 1%
//! tail is 20 ms of the run, so one stall of this 2-core machine decided the p99), `--rounds N`
//! (default 3), `--only bare` or `--only dat`, `--setup 50` or `--setup 200` (one of the two).

// The RSS sampler is a thread of its own, so a busy runtime cannot delay its samples.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use datpatch::engine::info;
use datpatch::project::{NodeId, load_str};
use datpatch::runner::Runner;
use futures_util::{SinkExt, StreamExt};
use parking_lot::RwLock;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const MESSAGE_BYTES: usize = 64;
/// A subscriber that receives nothing for this long stops waiting; what it missed is lost.
const QUIET: Duration = Duration::from_secs(8);

struct Options {
    messages: u64,
    rate: u64,
    paced_seconds: u64,
    rounds: usize,
    only: Option<String>,
    setup: Option<usize>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let text = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let value =
        |flag: &str, default: u64| text(flag).and_then(|v| v.parse().ok()).unwrap_or(default);
    Options {
        messages: value("--messages", 20_000),
        rate: value("--rate", 2000),
        paced_seconds: value("--paced-seconds", 10),
        rounds: value("--rounds", 3) as usize,
        only: text("--only"),
        setup: text("--setup").and_then(|v| v.parse().ok()),
    }
}

#[derive(Clone, Copy)]
struct Setup {
    subscribers: usize,
    publishers: usize,
}

const SETUPS: [Setup; 2] = [
    Setup {
        subscribers: 50,
        publishers: 1,
    },
    Setup {
        subscribers: 200,
        publishers: 4,
    },
];

/// Microseconds since the bench started: the send time every message carries.
fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

fn message(seq: u64) -> Message {
    let mut text = format!("{seq} {} ", now_us());
    text.extend(std::iter::repeat_n('x', MESSAGE_BYTES - text.len()));
    Message::text(text)
}

fn sent_at_us(text: &str) -> Option<u64> {
    text.split(' ').nth(1)?.parse().ok()
}

/// This process's resident set, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Samples RSS every 10 ms until stopped; the highest seen.
fn rss_sampler(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = rss_kib();
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib());
            std::thread::sleep(Duration::from_millis(10));
        }
        peak.max(rss_kib())
    })
}

#[derive(Default)]
struct Outcome {
    delivered: u64,
    expected: u64,
    closed: usize,
    elapsed: Duration,
    /// Percentiles of the paced phase's latencies, kept instead of the samples (millions of
    /// them would otherwise stay in this process's RSS from round to round).
    p50_ms: f64,
    p99_ms: f64,
    rss_start_kib: u64,
    rss_peak_kib: u64,
}

impl Outcome {
    fn per_second(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64()
    }
}

fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    f64::from(sorted_us[((sorted_us.len() as f64 - 1.0) * q).round() as usize]) / 1000.0
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One phase: connect everyone, publish `messages` (split between the publishers; paced at
/// `rate` messages/s in all when given), and wait until every subscriber has them all or has
/// heard nothing for [`QUIET`].
async fn phase(
    addr: SocketAddr,
    setup: Setup,
    messages: u64,
    rate: Option<u64>,
    connected: &(dyn Fn() -> usize + Sync),
) -> Outcome {
    let mut subscribers = Vec::new();
    for _ in 0..setup.subscribers {
        subscribers.push(connect(addr).await);
    }
    let mut publishers = Vec::new();
    for _ in 0..setup.publishers {
        publishers.push(connect(addr).await);
    }
    let everyone = setup.subscribers + setup.publishers;
    let deadline = Instant::now() + Duration::from_secs(20);
    while connected() < everyone {
        assert!(Instant::now() < deadline, "only {} connected", connected());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let per_publisher = messages / setup.publishers as u64;
    let expected = per_publisher * setup.publishers as u64;
    let stop_rss = Arc::new(AtomicBool::new(false));
    let rss_start_kib = rss_kib();
    let sampler = rss_sampler(stop_rss.clone());
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let readers: Vec<_> = subscribers
        .into_iter()
        .map(|ws| tokio::spawn(subscribe(ws, expected, rate.is_some())))
        .collect();
    let closed_publishers = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for ws in publishers {
        let (mut sink, mut stream) = ws.split();
        let done = done.clone();
        let closed = closed_publishers.clone();
        // A publisher hears the other publishers: it reads them and throws them away.
        tokio::spawn(async move {
            while let Some(Ok(_)) = stream.next().await {}
            if !done.load(Ordering::Relaxed) {
                closed.fetch_add(1, Ordering::Relaxed);
            }
        });
        let period = rate.map(|r| Duration::from_secs_f64(setup.publishers as f64 / r as f64));
        writers.push(tokio::spawn(async move {
            let mut ticks = period.map(tokio::time::interval);
            for seq in 0..per_publisher {
                if let Some(ticks) = ticks.as_mut() {
                    ticks.tick().await;
                    if sink.send(message(seq)).await.is_err() {
                        break;
                    }
                } else if sink.feed(message(seq)).await.is_err() {
                    break;
                }
            }
            let _ = sink.flush().await;
            sink
        }));
    }
    let mut outcome = Outcome {
        expected: expected * setup.subscribers as u64,
        rss_start_kib,
        ..Outcome::default()
    };
    let mut last = started;
    let mut latencies_us = Vec::new();
    for reader in readers {
        let (received, closed, finished, latencies) = reader.await.expect("subscriber");
        outcome.delivered += received;
        outcome.closed += usize::from(closed);
        last = last.max(finished);
        latencies_us.extend(latencies);
    }
    latencies_us.sort_unstable();
    outcome.p50_ms = percentile_ms(&latencies_us, 0.5);
    outcome.p99_ms = percentile_ms(&latencies_us, 0.99);
    drop(latencies_us);
    outcome.elapsed = last - started;
    done.store(true, Ordering::Relaxed);
    stop_rss.store(true, Ordering::Relaxed);
    outcome.rss_peak_kib = sampler.join().expect("sampler");
    outcome.closed += closed_publishers.load(Ordering::Relaxed) as usize;
    for writer in writers {
        if let Ok(mut sink) = writer.await {
            let _ = sink.close().await;
        }
    }
    // Leave the server empty for the next phase.
    let deadline = Instant::now() + Duration::from_secs(20);
    while connected() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    outcome
}

async fn connect(addr: SocketAddr) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .expect("connect");
    ws
}

/// Reads until `expected` messages came, the server closed the connection, or [`QUIET`]:
/// (received, closed by the server, when the last came, latencies when `timed`).
async fn subscribe(mut ws: Ws, expected: u64, timed: bool) -> (u64, bool, Instant, Vec<u32>) {
    let mut received = 0;
    let mut latencies = Vec::new();
    let mut last = Instant::now();
    let mut closed = false;
    while received < expected {
        match tokio::time::timeout(QUIET, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                received += 1;
                last = Instant::now();
                if timed && let Some(sent) = sent_at_us(&text) {
                    latencies.push(now_us().saturating_sub(sent) as u32);
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(_) => {
                closed = true;
                break;
            }
            Err(_) => break,
        }
    }
    // Closed here by the client, so the server side sees an ordinary close.
    let _ = ws.close(None).await;
    (received, closed, last, latencies)
}

/// Connected clients and their outgoing queues, copied on change so a relay reads a snapshot.
type Registry = Arc<RwLock<Arc<Vec<(u64, mpsc::Sender<Message>)>>>>;

/// A relay as one would write it on tokio-tungstenite alone: each client's writer drains a
/// bounded queue; a reader relaying a message waits for room in every other client's queue.
fn bare_relay(rt: &tokio::runtime::Runtime) -> (SocketAddr, Registry) {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let registry: Registry = Arc::default();
    let shared = registry.clone();
    rt.spawn(async move {
        let mut next_id = 0u64;
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tcp.set_nodelay(true).ok();
            next_id += 1;
            let id = next_id;
            let registry = shared.clone();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                let (tx, mut rx) = mpsc::channel::<Message>(1024);
                {
                    let mut list = registry.write();
                    let mut copy = (**list).clone();
                    copy.push((id, tx));
                    *list = Arc::new(copy);
                }
                let writer = tokio::spawn(async move {
                    while let Some(m) = rx.recv().await {
                        if sink.feed(m).await.is_err() {
                            return;
                        }
                        while let Ok(m) = rx.try_recv() {
                            if sink.feed(m).await.is_err() {
                                return;
                            }
                        }
                        if sink.flush().await.is_err() {
                            return;
                        }
                    }
                });
                while let Some(Ok(m)) = stream.next().await {
                    if !m.is_text() {
                        continue;
                    }
                    let list = registry.read().clone();
                    for (other, tx) in list.iter() {
                        if *other != id
                            && let Err(mpsc::error::TrySendError::Full(m)) = tx.try_send(m.clone())
                        {
                            let _ = tx.send(m).await;
                        }
                    }
                }
                {
                    let mut list = registry.write();
                    let copy = list.iter().filter(|(o, _)| *o != id).cloned().collect();
                    *list = Arc::new(copy);
                }
                writer.abort();
            });
        }
    });
    (addr, registry)
}

const PROJECT: &str = r####"(
    version: 2,
    nodes: [
        (id: 1, name: "web", kind: WebServer, params: {"port": 0, "localaddress": "127.0.0.1", "pinginterval": 0}),
        (id: 2, name: "web_callbacks", kind: Text, text: r###"
def onWebSocketReceiveText(webServerDAT, client, data):
    webServerDAT.webSocketBroadcastText(data, exclude=client)
"###),
    ],
    wires: [(from: 2, to: 1, input: Callbacks)],
)"####;

fn datpatch_relay() -> (Runner, SocketAddr) {
    let project = load_str(PROJECT, Path::new("fanout.ron")).expect("bench project");
    let runner = Runner::start(project, Path::new("."), None).expect("runner");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let port = channel(&runner, "port") as u16;
        if port != 0 {
            return (runner, SocketAddr::from(([127, 0, 0, 1], port)));
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn channel(runner: &Runner, name: &str) -> f64 {
    info::channel(runner.engine.lock().world(), NodeId(1), name).unwrap_or(0.0)
}

struct Row {
    label: String,
    burst: Outcome,
    paced: Outcome,
}

fn print_row(row: &Row) {
    let b = &row.burst;
    let p = &row.paced;
    println!(
        "{:<34} {:>10.0}/s  lost {:>8}  closed {:>3}  RSS {:>4} -> {:>4} MiB | paced: p50 {:>6.2} ms  p99 {:>6.2} ms  lost {} closed {}",
        row.label,
        b.per_second(),
        b.expected - b.delivered,
        b.closed,
        b.rss_start_kib / 1024,
        b.rss_peak_kib / 1024,
        p.p50_ms,
        p.p99_ms,
        p.expected - p.delivered,
        p.closed,
    );
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let options = options();
    let _ = now_us();
    println!(
        "datpatch fan-out benchmark: {} unpaced {MESSAGE_BYTES}-byte messages per phase, paced {}/s for {} s, {} rounds, {} cores",
        options.messages,
        options.rate,
        options.paced_seconds,
        options.rounds,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    println!(
        "{:<34} {:>12}  {:>13}  {:>10}  {:>15} | deliveries are to subscribers; RSS is this whole process",
        "", "deliveries", "lost", "closed", "RSS start->peak"
    );
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("clients")
        .enable_all()
        .build()
        .expect("client runtime");
    let bare = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bare")
        .enable_all()
        .build()
        .expect("bare runtime");
    let (runner, dat_addr) = datpatch_relay();
    let (bare_addr, registry) = bare_relay(&bare);
    let bare_connected = || registry.read().len();
    let dat_connected = || channel(&runner, "websocket_connections") as usize;
    let wants = |what: &str| options.only.as_deref().is_none_or(|only| only == what);
    let paced_messages = options.rate * options.paced_seconds;
    let mut rows: Vec<Row> = Vec::new();
    // Bare and ours alternate, round after round, so a change in the machine's load between
    // phases shows as spread instead of skewing one side.
    for round in 1..=options.rounds {
        for setup in SETUPS {
            if options.setup.is_some_and(|s| s != setup.subscribers) {
                continue;
            }
            let relays: [(&str, SocketAddr, &(dyn Fn() -> usize + Sync)); 2] = [
                ("bare", bare_addr, &bare_connected),
                ("dat", dat_addr, &dat_connected),
            ];
            for (name, addr, connected) in relays {
                if !wants(name) {
                    continue;
                }
                let burst = clients.block_on(phase(addr, setup, options.messages, None, connected));
                let paced = clients.block_on(phase(
                    addr,
                    setup,
                    paced_messages,
                    Some(options.rate),
                    connected,
                ));
                let row = Row {
                    label: format!(
                        "round {round}: {}+{} {}",
                        setup.subscribers,
                        setup.publishers,
                        if name == "bare" {
                            "bare relay"
                        } else {
                            "Web Server DAT"
                        }
                    ),
                    burst,
                    paced,
                };
                print_row(&row);
                rows.push(row);
            }
        }
    }
    runner.stop();
    println!("medians over {} rounds:", options.rounds);
    for setup in SETUPS {
        for name in ["bare relay", "Web Server DAT"] {
            let suffix = format!("{}+{} {name}", setup.subscribers, setup.publishers);
            let mine: Vec<&Row> = rows.iter().filter(|r| r.label.ends_with(&suffix)).collect();
            if mine.is_empty() {
                continue;
            }
            let pick = |f: &dyn Fn(&Row) -> f64| median(mine.iter().map(|r| f(r)).collect());
            println!(
                "{suffix:<34} {:>10.0}/s  lost {:>8.0}  closed {:>3.0}  peak RSS {:>4.0} MiB | paced p99 {:>6.2} ms",
                pick(&|r| r.burst.per_second()),
                pick(&|r| (r.burst.expected - r.burst.delivered) as f64),
                pick(&|r| r.burst.closed as f64),
                pick(&|r| r.burst.rss_peak_kib as f64 / 1024.0),
                pick(&|r| r.paced.p99_ms),
            );
        }
    }
}
