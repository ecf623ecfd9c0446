//! Slow and greedy clients against a Web Server DAT with the default limits (run in release:
//! `cargo bench --bench attacks`; `--seconds N` per attack, default 5).
//!
//! Prints figures, asserts nothing: for each attack, a fresh client's `GET /` latency while it
//! runs (a new connection every 100 ms; p50 and worst), the process's peak RSS, and the time from
//! the attack's end until a fresh client is answered within 100 ms again.
// Attack clients are tokio tasks on a runtime of their own; the bench drives them from main.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datpatch::engine::info;
use datpatch::project::load_str;
use datpatch::runner::Runner;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CALLBACKS: &str = r"
def onHTTPRequest(webServerDAT, request, response):
    response['statusCode'] = 200
    response['data'] = 'x' * 8000000 if request['uri'] == '/big' else 'ok'
    return response

def onWebSocketReceiveText(webServerDAT, client, data):
    webServerDAT.webSocketBroadcastText(data, exclude=client)
";

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One `GET /` on a new connection: its latency, or `None` if not answered within 15 s.
async fn probe(addr: SocketAddr) -> Option<Duration> {
    let started = Instant::now();
    let answered = tokio::time::timeout(Duration::from_secs(15), async {
        let mut tcp = TcpStream::connect(addr).await.ok()?;
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        tcp.read_to_end(&mut buf).await.ok()?;
        buf.starts_with(b"HTTP/1.1 200").then_some(())
    })
    .await;
    matches!(answered, Ok(Some(()))).then(|| started.elapsed())
}

/// Holds `stop` until set; each attack spawns its clients and returns at once.
type Attack = fn(SocketAddr, Arc<AtomicBool>);

fn slow_headers(addr: SocketAddr, stop: Arc<AtomicBool>) {
    for _ in 0..200 {
        let stop = stop.clone();
        tokio::spawn(async move {
            let Ok(mut tcp) = TcpStream::connect(addr).await else {
                return;
            };
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
            {
                if stop.load(Ordering::Relaxed) || tcp.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

fn slow_bodies(addr: SocketAddr, stop: Arc<AtomicBool>) {
    for _ in 0..200 {
        let stop = stop.clone();
        tokio::spawn(async move {
            let Ok(mut tcp) = TcpStream::connect(addr).await else {
                return;
            };
            if tcp
                .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            while !stop.load(Ordering::Relaxed) {
                if tcp.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
}

fn unread_answers(addr: SocketAddr, stop: Arc<AtomicBool>) {
    for _ in 0..50 {
        let stop = stop.clone();
        tokio::spawn(async move {
            let Ok(mut tcp) = TcpStream::connect(addr).await else {
                return;
            };
            let _ = tcp.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n").await;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
}

fn half_sent_big_bodies(addr: SocketAddr, stop: Arc<AtomicBool>) {
    // One buffer for all twenty senders, so the process's RSS is the server's, not theirs.
    let body: Arc<[u8]> = vec![b'x'; 15 << 20].into();
    for _ in 0..20 {
        let (stop, body) = (stop.clone(), body.clone());
        tokio::spawn(async move {
            let Ok(mut tcp) = TcpStream::connect(addr).await else {
                return;
            };
            let _ = tcp
                .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16000000\r\n\r\n")
                .await;
            let _ = tcp.write_all(&body).await;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
}

fn all_slots_idle(addr: SocketAddr, stop: Arc<AtomicBool>) {
    // More than the default Max Connections (1024): every slot taken by a silent client.
    for _ in 0..1100 {
        let stop = stop.clone();
        tokio::spawn(async move {
            let Ok(_tcp) = TcpStream::connect(addr).await else {
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
}

fn stuck_websocket_readers(addr: SocketAddr, stop: Arc<AtomicBool>) {
    // 50 clients that never read, one that publishes 1 KiB messages as fast as it may.
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{key}\r\n"
    );
    for _ in 0..50 {
        let (stop, handshake) = (stop.clone(), handshake.clone());
        tokio::spawn(async move {
            let Ok(mut tcp) = TcpStream::connect(addr).await else {
                return;
            };
            let _ = tcp.write_all(handshake.as_bytes()).await;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    tokio::spawn(async move {
        use futures_util::SinkExt;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await
        else {
            return;
        };
        let message = "m".repeat(1024);
        while !stop.load(Ordering::Relaxed) {
            if ws
                .send(tokio_tungstenite::tungstenite::Message::text(
                    message.clone(),
                ))
                .await
                .is_err()
            {
                return;
            }
        }
    });
}

fn main() {
    let seconds: u64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    // 1100 idle connections need both ends' descriptors in this process.
    let _ = std::process::Command::new("prlimit")
        .args([
            "--nofile=8192:8192",
            "--pid",
            &std::process::id().to_string(),
        ])
        .status();
    let text = format!(
        r####"(
    version: 2,
    nodes: [
        (id: 1, name: "web", kind: WebServer, params: {{"port": 0, "localaddress": "127.0.0.1"}}),
        (id: 2, name: "web_callbacks", kind: Text, text: r###"{CALLBACKS}"###),
    ],
    wires: [(from: 2, to: 1, input: Callbacks)],
)"####
    );
    let project = load_str(&text, Path::new("attacks.ron")).unwrap();
    let runner = Runner::start(project, Path::new("."), None).unwrap();
    let port = loop {
        let port = info::channel(
            runner.engine.lock().world(),
            datpatch::project::NodeId(1),
            "port",
        )
        .unwrap_or(0.0);
        if port > 0.0 {
            break port as u16;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "attacks on a Web Server DAT with the default limits, {seconds} s each; fresh client: GET / on a new connection every 100 ms"
    );
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>18} {:>10}",
        "attack", "fresh p50", "fresh max", "unanswered", "RSS start->peak", "recovery"
    );
    let attacks: [(&str, Attack); 6] = [
        ("200 clients sending headers at 1 byte/s", slow_headers),
        ("200 bodies trickled at 2 bytes/s", slow_bodies),
        (
            "20 bodies of 15 MiB half-sent, then stalled",
            half_sent_big_bodies,
        ),
        ("1,100 idle connections (all 1,024 slots)", all_slots_idle),
        (
            "50 WebSocket clients not reading a flood",
            stuck_websocket_readers,
        ),
        // Last: the memory it takes is not all given back to the system afterwards.
        ("50 clients not reading 8 MB answers", unread_answers),
    ];
    for (name, attack) in attacks {
        let stop = Arc::new(AtomicBool::new(false));
        let start_rss = rss_mib();
        let peak_rss = Arc::new(AtomicU64::new(0));
        let (latencies, unanswered, recovery) = clients.block_on(async {
            let sampling = {
                let (stop, peak) = (stop.clone(), peak_rss.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        peak.fetch_max((rss_mib() * 1024.0) as u64, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            };
            attack(addr, stop.clone());
            let started = Instant::now();
            let mut probes = Vec::new();
            while started.elapsed() < Duration::from_secs(seconds) {
                probes.push(tokio::spawn(probe(addr)));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            stop.store(true, Ordering::Relaxed);
            let ended = Instant::now();
            // Recovery: from the attack's end to the first fresh client answered within 100 ms.
            let recovery = loop {
                if probe(addr)
                    .await
                    .is_some_and(|l| l < Duration::from_millis(100))
                {
                    break ended.elapsed();
                }
                if ended.elapsed() > Duration::from_mins(1) {
                    break Duration::MAX;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let mut latencies = Vec::new();
            let mut unanswered = 0;
            for p in probes {
                match p.await.ok().flatten() {
                    Some(latency) => latencies.push(latency),
                    None => unanswered += 1,
                }
            }
            let _ = sampling.await;
            (latencies, unanswered, recovery)
        });
        let mut sorted = latencies.clone();
        sorted.sort();
        let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
        println!(
            "{name:<44} {:>7.1} ms {:>7.1} ms {:>10} {:>5.0} -> {:>5.0} MiB {:>8.2} s",
            ms(sorted.get(sorted.len() / 2)),
            ms(sorted.last()),
            unanswered,
            start_rss,
            peak_rss.load(Ordering::Relaxed) as f64 / 1024.0,
            recovery.as_secs_f64()
        );
        // Let the server close what the attack left before the next one.
        std::thread::sleep(Duration::from_secs(2));
    }
    runner.stop();
}
