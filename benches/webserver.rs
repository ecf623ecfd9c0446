//! Web Server DAT throughput and latency beside bare hyper / tokio-tungstenite servers, measured
//! in the same run on loopback. Run: `cargo bench --bench webserver` (release build; prints figures).
//!
//! Options: `--seconds N` per phase (default 5), `--connections N` (default 64), `--only http` or
//! `--only ws` (one protocol, for a profiler).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use datpatch::engine::info;
use datpatch::project::{NodeId, load_str};
use datpatch::runner::Runner;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

const BODY_100: &str = "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789";

/// Rounds of bare-then-ours when every phase runs.
const ROUNDS: usize = 3;

struct Options {
    seconds: u64,
    connections: usize,
    only: Option<String>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str, default: u64| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Options {
        seconds: value("--seconds", 5),
        connections: value("--connections", 64) as usize,
        only: args
            .iter()
            .position(|a| a == "--only")
            .and_then(|i| args.get(i + 1))
            .cloned(),
    }
}

struct Figures {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn summarize(mut latencies_us: Vec<u32>, elapsed: Duration) -> Figures {
    latencies_us.sort_unstable();
    let pick = |q: f64| {
        if latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies_us.len() as f64 - 1.0) * q).round() as usize;
        f64::from(latencies_us[i]) / 1000.0
    };
    Figures {
        per_second: latencies_us.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
    }
}

/// Keep-alive HTTP/1.1 clients, each sending GETs back to back.
async fn http_load(addr: SocketAddr, options: &Options) -> Figures {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..options.connections {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).ok();
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            let mut latencies = Vec::new();
            let mut line = String::new();
            let mut body = vec![0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                write
                    .write_all(b"GET /bench HTTP/1.1\r\nHost: bench\r\n\r\n")
                    .await
                    .expect("write");
                let mut length = 0usize;
                loop {
                    line.clear();
                    read.read_line(&mut line).await.expect("read");
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().expect("length");
                    }
                }
                read.read_exact(&mut body[..length]).await.expect("body");
                assert_eq!(length, 100, "every answer carries the 100-byte body");
                latencies.push(started.elapsed().as_micros() as u32);
            }
            latencies
        }));
    }
    measure(tasks, stop, options).await
}

/// WebSocket clients, each sending a text message and waiting for its echo.
async fn ws_load(addr: SocketAddr, options: &Options) -> Figures {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..options.connections {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
                .await
                .expect("connect");
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                ws.send(Message::text("ping-pong payload of 32 bytes!!!"))
                    .await
                    .expect("send");
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(_))) => break,
                        Some(Ok(_)) => continue,
                        other => panic!("echo lost: {other:?}"),
                    }
                }
                latencies.push(started.elapsed().as_micros() as u32);
            }
            let _ = ws.close(None).await;
            latencies
        }));
    }
    measure(tasks, stop, options).await
}

async fn measure(
    tasks: Vec<tokio::task::JoinHandle<Vec<u32>>>,
    stop: Arc<AtomicBool>,
    options: &Options,
) -> Figures {
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(options.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client task"));
    }
    summarize(all, elapsed)
}

fn bare_hyper(rt: &tokio::runtime::Runtime) -> SocketAddr {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tcp.set_nodelay(true).ok();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    let mut response =
                        hyper::Response::new(Full::new(Bytes::from_static(BODY_100.as_bytes())));
                    response.headers_mut().insert(
                        "content-type",
                        "text/html; charset=utf-8".parse().expect("header"),
                    );
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

fn bare_tungstenite(rt: &tokio::runtime::Runtime) -> SocketAddr {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tcp.set_nodelay(true).ok();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() && ws.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

const PROJECT: &str = r####"(
    version: 2,
    nodes: [
        (id: 1, name: "web", kind: WebServer, params: {"port": 0, "localaddress": "127.0.0.1", "pinginterval": 0}),
        (id: 2, name: "web_callbacks", kind: Text, text: r###"
def onHTTPRequest(webServerDAT, request, response):
    response['statusCode'] = 200
    response['data'] = '0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789'
    return response

def onWebSocketReceiveText(webServerDAT, client, data):
    webServerDAT.webSocketSendText(client, data)
"###),
    ],
    wires: [(from: 2, to: 1, input: Callbacks)],
)"####;

fn datpatch_server() -> (Runner, SocketAddr) {
    let project = load_str(PROJECT, Path::new("bench.ron")).expect("bench project");
    let runner = Runner::start(project, Path::new("."), None).expect("runner");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let port =
            info::channel(runner.engine.lock().world(), NodeId(1), "port").unwrap_or(0.0) as u16;
        if port != 0 {
            return (runner, SocketAddr::from(([127, 0, 0, 1], port)));
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn print(label: &str, unit: &str, f: &Figures) {
    println!(
        "{label:<44} {:>10.0} {unit}/s   p50 {:>7.3} ms   p99 {:>7.3} ms",
        f.per_second, f.p50_ms, f.p99_ms
    );
}

fn main() {
    let options = options();
    println!(
        "datpatch Web Server DAT benchmark: {} connections, {} s per phase, {} cores",
        options.connections,
        options.seconds,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
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

    // Bare and ours alternate, round after round, so a change in the machine's load between
    // phases shows as spread instead of skewing one side; the medians are what count.
    let (runner, addr) = datpatch_server();
    let bare_http_addr = bare_hyper(&bare);
    let bare_ws_addr = bare_tungstenite(&bare);
    let wants = |what: &str| options.only.as_deref().is_none_or(|only| only == what);
    let rounds = if options.only.is_some() { 1 } else { ROUNDS };
    let (mut http, mut ws) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        if wants("http") {
            let bare = clients.block_on(http_load(bare_http_addr, &options));
            let ours = clients.block_on(http_load(addr, &options));
            print_pair(round, "HTTP GET", "req", &bare, &ours);
            http.push((bare, ours));
        }
        if wants("ws") {
            let bare = clients.block_on(ws_load(bare_ws_addr, &options));
            let ours = clients.block_on(ws_load(addr, &options));
            print_pair(round, "WebSocket echo", "rt", &bare, &ours);
            ws.push((bare, ours));
        }
    }
    runner.stop();
    println!("medians over {rounds} rounds:");
    if !http.is_empty() {
        print_medians(
            "HTTP GET, bare hyper",
            "HTTP GET, Web Server DAT onHTTPRequest",
            "req",
            &http,
        );
    }
    if !ws.is_empty() {
        print_medians(
            "WebSocket echo, bare tokio-tungstenite",
            "WebSocket echo, onWebSocketReceiveText",
            "rt",
            &ws,
        );
    }
}

fn print_pair(round: usize, what: &str, unit: &str, bare: &Figures, ours: &Figures) {
    print(&format!("round {round}: {what}, bare"), unit, bare);
    print(
        &format!("round {round}: {what}, Web Server DAT"),
        unit,
        ours,
    );
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn print_medians(bare_label: &str, our_label: &str, unit: &str, pairs: &[(Figures, Figures)]) {
    let pick = |side: fn(&(Figures, Figures)) -> &Figures| Figures {
        per_second: median(pairs.iter().map(|p| side(p).per_second).collect()),
        p50_ms: median(pairs.iter().map(|p| side(p).p50_ms).collect()),
        p99_ms: median(pairs.iter().map(|p| side(p).p99_ms).collect()),
    };
    print(bare_label, unit, &pick(|p| &p.0));
    print(our_label, unit, &pick(|p| &p.1));
    let ratio = median(
        pairs
            .iter()
            .map(|(b, o)| o.per_second / b.per_second)
            .collect(),
    );
    println!(
        "{:<44} {:>9.0}%",
        "  callback path / bare (median of rounds)",
        100.0 * ratio
    );
}
