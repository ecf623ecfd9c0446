//! Soak: a chat relay (a Web Server DAT whose callback broadcasts every message to every client,
//! as projects/chat.ron does) run as `datpatch run` in a child process, with many WebSocket clients sending
//! continuously on 127.0.0.1. Every `--sample` seconds it prints the server's resident memory and
//! open file descriptors; at the end it counts messages at both ends and fails if any was lost.
//!
//! ```sh
//! cargo bench --bench soak -- --secs 600 --clients 200 --rate 2
//! ```
//! `--rate` is messages per second per client; each is relayed to all clients.
// Test clients run on threads of their own and report over std channels.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// The chat relay of projects/chat.ron (JSON in, JSON broadcast to every client, a log table
/// kept to its newest 1000 rows), plus counters the soak reads over HTTP at the end.
const RELAY: &str = r####"(
    version: 2,
    nodes: [
        (id: 1, name: "chat", kind: WebServer,
         params: {"port": 0, "localaddress": "127.0.0.1", "maxconnections": 4096}),
        (id: 2, name: "chat_callbacks", kind: Text, text: r###"
import json
import time

def onHTTPRequest(webServerDAT, request, response):
    response['statusCode'] = 200
    response['Content-Type'] = 'application/json'
    response['data'] = json.dumps({
        'received': webServerDAT.fetch('in', 0), 'relayed': webServerDAT.fetch('out', 0),
        'refused': webServerDAT.fetch('refused', 0),
        'clients': len(webServerDAT.webSocketConnections),
    })
    return response

def onWebSocketReceiveText(webServerDAT, client, data):
    webServerDAT.store('in', webServerDAT.fetch('in', 0) + 1)
    message = json.loads(data)
    text = json.dumps({'type': 'chat', 'name': message['name'], 'text': message['text'],
                       'from': client})
    out = 0
    refused = 0
    for c in webServerDAT.webSocketConnections:
        if webServerDAT.webSocketSendText(c, text):
            out += 1
        else:
            refused += 1
    webServerDAT.store('out', webServerDAT.fetch('out', 0) + out)
    webServerDAT.store('refused', webServerDAT.fetch('refused', 0) + refused)
    log = op('log')
    log.appendRow([int(time.time() * 1000), client, message['name'], message['text']])
    while log.numRows > 1001:
        log.deleteRow(1)
"###),
        (id: 3, name: "log", kind: Table, table: [("time", "client", "name", "text")]),
    ],
    wires: [(from: 2, to: 1, input: Callbacks)],
)"####;

struct Args {
    secs: u64,
    clients: usize,
    rate: f64,
    sample: u64,
}

fn args() -> Args {
    let mut args = Args {
        secs: 600,
        clients: 200,
        rate: 2.0,
        sample: 30,
    };
    let list: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        list.iter()
            .position(|a| a == name)
            .and_then(|i| list.get(i + 1))
            .cloned()
    };
    if let Some(v) = value("--secs") {
        args.secs = v.parse().expect("--secs N");
    }
    if let Some(v) = value("--clients") {
        args.clients = v.parse().expect("--clients N");
    }
    if let Some(v) = value("--rate") {
        args.rate = v.parse().expect("--rate R");
    }
    if let Some(v) = value("--sample") {
        args.sample = v.parse().expect("--sample SECS");
    }
    args
}

/// (resident memory in KiB, open file descriptors) of a process.
fn usage(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, std::iter::Iterator::count);
    (rss, fds)
}

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    received: AtomicU64,
    /// Messages from a sender that arrived out of order or skipped a number.
    gaps: AtomicU64,
    /// Connections whose reading ended with an error.
    errors: AtomicU64,
    /// Clients that have stopped sending.
    done_sending: AtomicU64,
}

async fn client(
    index: usize,
    addr: std::net::SocketAddr,
    interval: Duration,
    sending: Arc<AtomicBool>,
    counts: Arc<Counts>,
    clients: usize,
    everyone_in: Arc<tokio::sync::Barrier>,
) {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/chat"))
        .await
        .expect("connect");
    // Nobody sends before every client is in, so every client can receive every message.
    everyone_in.wait().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut sink, mut stream) = ws.split();
    let reader_counts = counts.clone();
    let reader = tokio::spawn(async move {
        let mut last: HashMap<usize, u64> = HashMap::with_capacity(clients);
        loop {
            let message = match stream.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    println!("client {index}: read error: {e}");
                    reader_counts.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                None => break,
            };
            if let Message::Text(text) = message {
                reader_counts.received.fetch_add(1, Ordering::Relaxed);
                let Ok(message) = serde_json::from_str::<serde_json::Value>(&text) else {
                    reader_counts.gaps.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let Some((from, seq)) = message["text"].as_str().and_then(|t| t.split_once(':'))
                else {
                    reader_counts.gaps.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let (Ok(from), Ok(seq)) = (from.parse::<usize>(), seq.parse::<u64>()) else {
                    continue;
                };
                let expected = last.get(&from).map_or(0, |s| s + 1);
                if seq != expected {
                    reader_counts.gaps.fetch_add(1, Ordering::Relaxed);
                }
                last.insert(from, seq);
            }
        }
    });
    // Spread the clients' send times over one interval.
    tokio::time::sleep(interval.mul_f64(index as f64 / clients as f64)).await;
    let mut ticker = tokio::time::interval(interval);
    let mut seq = 0u64;
    while sending.load(Ordering::Relaxed) {
        ticker.tick().await;
        if let Err(e) = sink
            .send(Message::text(format!(
                r#"{{"name": "client {index}", "text": "{index}:{seq}"}}"#
            )))
            .await
        {
            println!("client {index}: send error: {e}");
            counts.errors.fetch_add(1, Ordering::Relaxed);
            break;
        }
        counts.sent.fetch_add(1, Ordering::Relaxed);
        seq += 1;
    }
    counts.done_sending.fetch_add(1, Ordering::Relaxed);
    // Keep reading until the run ends.
    let _ = reader.await;
}

fn stats(addr: std::net::SocketAddr) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("stats");
    stream
        .write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("stats");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("stats");
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or("{}");
    serde_json::from_str(body).expect("stats json")
}

fn main() {
    let args = args();
    let dir = std::env::temp_dir().join(format!("datpatch-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("relay.ron");
    std::fs::write(&file, RELAY).expect("write project");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_datpatch"))
        .arg("run")
        .arg(&file)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start datpatch run");
    let pid = child.id();
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let port: u16 = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the relay never said where it listens");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest
                .rsplit(':')
                .next()
                .and_then(|p| p.trim().parse().ok())
                .expect("port");
        }
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    println!(
        "soak: {} clients, {} msg/s each, relayed to all, for {} s (server pid {pid}, {addr})",
        args.clients, args.rate, args.secs
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sending = Arc::new(AtomicBool::new(true));
    let counts = Arc::new(Counts::default());
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let everyone_in = Arc::new(tokio::sync::Barrier::new(args.clients));
    let tasks: Vec<_> = (0..args.clients)
        .map(|i| {
            rt.spawn(client(
                i,
                addr,
                interval,
                sending.clone(),
                counts.clone(),
                args.clients,
                everyone_in.clone(),
            ))
        })
        .collect();

    let started = Instant::now();
    let mut samples = Vec::new();
    println!(
        "{:>6} {:>10} {:>5} {:>12} {:>14}",
        "t (s)", "RSS (KiB)", "fds", "sent", "received"
    );
    loop {
        let elapsed = started.elapsed();
        let (rss, fds) = usage(pid);
        let sent = counts.sent.load(Ordering::Relaxed);
        let received = counts.received.load(Ordering::Relaxed);
        println!(
            "{:>6} {rss:>10} {fds:>5} {sent:>12} {received:>14}",
            elapsed.as_secs()
        );
        samples.push((elapsed.as_secs(), rss, fds));
        if elapsed >= Duration::from_secs(args.secs) {
            break;
        }
        let next = Duration::from_secs(args.sample * samples.len() as u64);
        std::thread::sleep(
            next.saturating_sub(started.elapsed())
                .min(Duration::from_secs(args.secs).saturating_sub(started.elapsed())),
        );
    }
    sending.store(false, Ordering::Relaxed);

    // Let the last messages arrive: wait for every client to stop sending, then until the server
    // has every message and every client every relayed one (its own included).
    let clients = args.clients as u64;
    let drained = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let sent = counts.sent.load(Ordering::Relaxed);
        let received = counts.received.load(Ordering::Relaxed);
        let all_stopped = counts.done_sending.load(Ordering::Relaxed) == clients;
        if all_stopped && received >= sent * clients || drained.elapsed() > Duration::from_mins(1) {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            let server = stats(addr);
            println!(
                "draining: sent {sent}, server received {}, relayed {}, clients received {received}",
                server["received"], server["relayed"]
            );
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("drained in {:.1} s", drained.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_millis(500));
    let server = stats(addr);
    let sent = counts.sent.load(Ordering::Relaxed);
    let received = counts.received.load(Ordering::Relaxed);
    let gaps = counts.gaps.load(Ordering::Relaxed);
    let errors = counts.errors.load(Ordering::Relaxed);
    let server_in = server["received"].as_u64().unwrap_or(0);
    let server_out = server["relayed"].as_u64().unwrap_or(0);
    let refused = server["refused"].as_u64().unwrap_or(0);
    let (rss_end, fds_end) = usage(pid);

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    rt.block_on(async {
        for task in tasks {
            task.abort();
        }
    });
    let _ = std::fs::remove_dir_all(&dir);

    // Flatness: compare the first sample after warm-up with the last and the peak.
    let warm = samples
        .iter()
        .find(|s| s.0 >= args.sample.min(args.secs))
        .copied()
        .unwrap_or(samples[0]);
    let peak_rss = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let (min_fds, max_fds) = samples
        .iter()
        .skip(1)
        .fold((usize::MAX, 0), |(lo, hi), s| (lo.min(s.2), hi.max(s.2)));
    println!();
    println!("clients sent {sent}; server received {server_in}");
    println!(
        "server relayed {server_out} (refused {refused}); clients received {received} (expected {})",
        sent * clients
    );
    println!("out-of-order or skipped: {gaps}; connection errors: {errors}");
    println!(
        "RSS: {} KiB at {} s, {rss_end} KiB at the end, peak {peak_rss} KiB; fds {min_fds}..{max_fds} (end {fds_end})",
        warm.1, warm.0
    );
    let ok = server_in == sent
        && server_out == sent * clients
        && received == sent * clients
        && refused == 0
        && gaps == 0
        && errors == 0;
    if ok {
        println!("soak: no message lost");
    } else {
        println!("soak: MESSAGES LOST");
        std::process::exit(1);
    }
}
