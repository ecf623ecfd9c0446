//! WebSocket DAT ingest benchmark (run in release: `cargo bench --bench websocket_ingest`).
//!
//! Prints figures, asserts nothing about speed:
//! - throughput of 1,000,000 text messages of 64 bytes from a local flood server into the DAT's
//!   clamped table (maxlines 100, bytes column on), without and with an `onReceiveText`
//!   callback, beside a bare tokio-tungstenite client pushing the same messages into a capped
//!   `VecDeque` (the ratio is what matters);
//! - latency from the server's send to the row being in the table, at 10,000 messages/s;
//! - peak RSS (VmHWM) of the process after each phase.
//!
//! `DATPATCH_BENCH_ONLY=dat|callback|bare` runs one flood once (for a profiler).
//!
//! Arrival is recorded by the engine's own waker, which the cook thread calls right after it
//! handled a batch of events and released the engine lock: at that moment the rows are in the
//! table and readable by anyone. The waker locks the engine, reads the new rows and parses the
//! send timestamp the server put in each message. So a latency figure is "server send → row in
//! the table and the lock free", with no polling interval in it.
// Test clients run on threads of their own and report over std channels.
#![allow(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use datpatch::engine::{SharedEngine, Waker, info};
use datpatch::project::{NodeId, load_str};
use datpatch::runner::Runner;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

const FLOOD: usize = 1_000_000;
const MESSAGE_BYTES: usize = 64;
const MAX_LINES: usize = 100;
const RUNS: usize = 5;
const LATENCY_RATE_HZ: u64 = 10_000;
const LATENCY_MESSAGES: usize = 50_000;
const LATENCY_WARMUP: usize = 1_000;
const WS: NodeId = NodeId(1);

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call; the server and the engine share this clock (one process).
fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// `seq sent_ns` padded with `x` to 64 bytes.
fn message(seq: usize, sent_ns: u64) -> String {
    let mut text = format!("{seq:010} {sent_ns:020} ");
    while text.len() < MESSAGE_BYTES {
        text.push('x');
    }
    text
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Accepts one connection, waits for `go`, sends `FLOOD` copies of one 64-byte message as fast
/// as TCP takes them, then waits for the client to leave. Returns the time the flood started.
struct FloodServer {
    port: u16,
    go: Option<tokio::sync::oneshot::Sender<()>>,
    started_ns: Arc<AtomicU64>,
    rt: tokio::runtime::Runtime,
}

impl FloodServer {
    fn start() -> FloodServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (go, go_rx) = tokio::sync::oneshot::channel::<()>();
        let started_ns = Arc::new(AtomicU64::new(0));
        let started = started_ns.clone();
        rt.spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let _ = go_rx.await;
            let payload = Utf8Bytes::from(message(0, 0));
            started.store(now_ns(), Ordering::SeqCst);
            for _ in 0..FLOOD {
                if ws.feed(Message::Text(payload.clone())).await.is_err() {
                    return;
                }
            }
            let _ = ws.flush().await;
            while let Some(Ok(_)) = ws.next().await {}
        });
        FloodServer {
            port,
            go: Some(go),
            started_ns,
            rt,
        }
    }

    fn go(&mut self) {
        if let Some(go) = self.go.take() {
            let _ = go.send(());
        }
    }

    fn started_ns(&self) -> u64 {
        self.started_ns.load(Ordering::SeqCst)
    }
}

impl Drop for FloodServer {
    fn drop(&mut self) {
        let rt = std::mem::replace(
            &mut self.rt,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        );
        rt.shutdown_background();
    }
}

/// Messages per second of a bare tokio-tungstenite client (2 workers, like the engine's runtime).
fn bare_client() -> f64 {
    let mut server = FloodServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("ws://127.0.0.1:{}/", server.port);
    let (mut ws, _) = rt.block_on(tokio_tungstenite::connect_async(url)).unwrap();
    server.go();
    let end_ns = rt.block_on(async move {
        let mut table: VecDeque<String> = VecDeque::with_capacity(MAX_LINES);
        let mut received = 0;
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Text(text) = message {
                if table.len() == MAX_LINES {
                    table.pop_front();
                }
                table.push_back(text.as_str().to_owned());
                received += 1;
                if received == FLOOD {
                    break;
                }
            }
        }
        assert_eq!(received, FLOOD);
        now_ns()
    });
    FLOOD as f64 / ((end_ns - server.started_ns()) as f64 / 1e9)
}

fn project_text(port: u16, callback: bool) -> String {
    let callbacks = if callback {
        r#"(id: 2, name: "ws_callbacks", kind: Text,
            text: "def onReceiveText(dat, rowIndex, message):\n    return\n")"#
    } else {
        r#"(id: 2, name: "unused", kind: Text, text: "")"#
    };
    let wires = if callback {
        "[(from: 2, to: 1, input: Callbacks)]"
    } else {
        "[]"
    };
    format!(
        r#"(
    version: 2,
    nodes: [
        (id: 1, name: "ws", kind: WebSocket,
         params: {{"netaddress": "127.0.0.1", "port": {port}, "maxlines": {MAX_LINES}, "bytes": true}}),
        {callbacks},
    ],
    wires: {wires},
)"#
    )
}

/// Starts a project whose waker runs `on_batch` with the engine after every batch the cook thread
/// handled (and after every frame).
fn start_with_waker(
    text: &str,
    on_batch: impl Fn(&datpatch::engine::Engine) + Send + Sync + 'static,
) -> Runner {
    let project = load_str(text, Path::new("bench.ron")).unwrap();
    let cell: Arc<OnceLock<SharedEngine>> = Arc::new(OnceLock::new());
    let seen = cell.clone();
    let waker: Waker = Arc::new(move || {
        if let Some(engine) = seen.get() {
            on_batch(&engine.lock());
        }
    });
    let runner = Runner::start(project, Path::new("."), Some(waker)).unwrap();
    let _ = cell.set(runner.engine.clone());
    runner
}

fn wait_connected(runner: &Runner) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while info::channel(runner.engine.lock().world(), WS, "connected") != Some(1.0) {
        assert!(Instant::now() < deadline, "the DAT did not connect");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Messages per second into the DAT's table.
fn dat_flood(callback: bool) -> f64 {
    let mut server = FloodServer::start();
    let done_ns = Arc::new(AtomicU64::new(0));
    let done = done_ns.clone();
    let runner = start_with_waker(&project_text(server.port, callback), move |engine| {
        if done.load(Ordering::Relaxed) == 0 && engine.world().messages_in(WS) >= FLOOD as u64 {
            done.store(now_ns(), Ordering::SeqCst);
        }
    });
    wait_connected(&runner);
    server.go();
    let deadline = Instant::now() + Duration::from_mins(10);
    while done_ns.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the flood did not arrive");
        std::thread::sleep(Duration::from_millis(5));
    }
    {
        let engine = runner.engine.lock();
        let table = engine.world().dat(WS).unwrap();
        assert_eq!(table.num_rows(), MAX_LINES + 1);
        assert_eq!(table.num_cols(), 2);
        assert_eq!(info::channel(engine.world(), WS, "errors"), Some(0.0));
    }
    let rate = FLOOD as f64 / ((done_ns.load(Ordering::SeqCst) - server.started_ns()) as f64 / 1e9);
    runner.stop();
    rate
}

/// A blocking server paced at `LATENCY_RATE_HZ`: message i leaves at start + i / rate, stamped
/// with the time it was written.
fn paced_server() -> (u16, std::sync::mpsc::Sender<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut ws = tungstenite::accept(tcp).unwrap();
        let _ = go_rx.recv();
        let period_ns = 1_000_000_000 / LATENCY_RATE_HZ;
        let start = now_ns();
        for i in 0..LATENCY_MESSAGES {
            let due = start + i as u64 * period_ns;
            let now = now_ns();
            if due > now {
                std::thread::sleep(Duration::from_nanos(due - now));
            }
            if ws.send(Message::text(message(i, now_ns()))).is_err() {
                return;
            }
        }
        while ws.read().is_ok() {}
    });
    (port, go)
}

struct Latency {
    samples_ns: Vec<u64>,
    /// Messages whose rows were gone (clamped away) before the waker saw them.
    missed: u64,
    seen: u64,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1e6
}

/// p50, p99, p99.9, max in ms, and how many rows were missed.
fn dat_latency(callback: bool) -> (f64, f64, f64, f64, u64, usize) {
    let (port, go) = paced_server();
    let state = Arc::new(Mutex::new(Latency {
        samples_ns: Vec::with_capacity(LATENCY_MESSAGES),
        missed: 0,
        seen: 0,
    }));
    let record = state.clone();
    let runner = start_with_waker(&project_text(port, callback), move |engine| {
        let now = now_ns();
        let world = engine.world();
        let total = world.messages_in(WS);
        let mut state = record.lock().unwrap();
        let new = total - state.seen;
        if new == 0 {
            return;
        }
        let Some(table) = world.dat(WS) else { return };
        let rows = table.num_rows() - 1;
        let readable = (new as usize).min(rows);
        state.missed += new - readable as u64;
        for r in rows + 1 - readable..=rows {
            let cell = table.cell(r, 0).unwrap_or_default();
            let mut fields = cell.split(' ');
            let seq: usize = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let sent: u64 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(now);
            if seq >= LATENCY_WARMUP {
                state.samples_ns.push(now.saturating_sub(sent));
            }
        }
        state.seen = total;
    });
    wait_connected(&runner);
    let _ = go.send(());
    let deadline = Instant::now() + Duration::from_mins(2);
    while state.lock().unwrap().seen < LATENCY_MESSAGES as u64 {
        assert!(
            Instant::now() < deadline,
            "the paced messages did not arrive"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    runner.stop();
    let mut state = state.lock().unwrap();
    let count = state.samples_ns.len();
    state.samples_ns.sort_unstable();
    let s = &state.samples_ns;
    (
        percentile(s, 0.50),
        percentile(s, 0.99),
        percentile(s, 0.999),
        *s.last().unwrap() as f64 / 1e6,
        state.missed,
        count,
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is ignored too.
    now_ns();
    // For profiling one path: DATPATCH_BENCH_ONLY=dat|callback|bare runs just that flood once.
    if let Ok(only) = std::env::var("DATPATCH_BENCH_ONLY") {
        let rate = match only.as_str() {
            "dat" => dat_flood(false),
            "callback" => dat_flood(true),
            _ => bare_client(),
        };
        println!("{only}: {rate:.0} msg/s");
        return;
    }
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    println!("WebSocket DAT ingest — {cores} cores, {}", cpu_model());
    println!(
        "flood: {FLOOD} text messages of {MESSAGE_BYTES} bytes, table maxlines {MAX_LINES}, bytes column on; {RUNS} rounds"
    );
    println!("peak RSS before any flood: {:.1} MiB", peak_rss_mib());

    // The three floods run interleaved, round by round, and each round's ratios compare runs
    // made a few seconds apart: on a shared machine the load changes from minute to minute,
    // and a ratio of back-to-back runs is steadier than a ratio of medians taken minutes apart.
    let (mut dat, mut dat_cb, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=RUNS {
        dat.push(dat_flood(false));
        if round == 1 {
            println!(
                "peak RSS after the first DAT flood (no callback): {:.1} MiB",
                peak_rss_mib()
            );
        }
        dat_cb.push(dat_flood(true));
        bare.push(bare_client());
        println!(
            "round {round}: DAT {:>9.0} msg/s, DAT + callback {:>9.0} msg/s, bare {:>9.0} msg/s",
            dat[round - 1],
            dat_cb[round - 1],
            bare[round - 1]
        );
    }
    let ratios = |a: &[f64]| median(a.iter().zip(&bare).map(|(x, b)| x / b).collect());
    println!(
        "median msg/s: DAT {:.0}, DAT + onReceiveText callback {:.0}, bare tokio-tungstenite + VecDeque {:.0}",
        median(dat.clone()),
        median(dat_cb.clone()),
        median(bare.clone())
    );
    println!(
        "median of per-round ratios to bare: no callback {:.0}% (target >= 50%), with callback {:.0}% (target >= 25%)",
        100.0 * ratios(&dat),
        100.0 * ratios(&dat_cb)
    );
    println!("peak RSS after the floods: {:.1} MiB", peak_rss_mib());

    for callback in [false, true] {
        let (p50, p99, p999, max, missed, count) = dat_latency(callback);
        println!(
            "latency send -> row in table at {LATENCY_RATE_HZ} msg/s{}: p50 {p50:.3} ms, p99 {p99:.3} ms, p99.9 {p999:.3} ms, max {max:.3} ms ({count} samples after {LATENCY_WARMUP} warm-up, {missed} rows missed)",
            if callback { ", with callback" } else { "" }
        );
    }
    println!("peak RSS at the end: {:.1} MiB", peak_rss_mib());
}
