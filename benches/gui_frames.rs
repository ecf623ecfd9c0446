//! GUI frame time while a WebSocket DAT ingests ~100,000 messages/s with its table open.
//!
//! Run: `cargo bench --bench gui_frames` (release build; prints figures). Options:
//! `--seconds N` per phase (default 10), `--rate N` messages/s (default 100000),
//! `--maxlines N` rows the DAT keeps (default 100, TouchDesigner's default; try 100000).
//!
//! A tokio-tungstenite server on 127.0.0.1 streams short text messages at the rate; the app runs
//! headless through egui_kittest with the WebSocket DAT selected, so its received-messages table is
//! in the viewer and the node shows its preview and rate. Each frame is timed as the app's UI pass
//! (engine lock, layout, actions) plus tessellation: the CPU side of a frame. GPU upload and
//! drawing are not included (there is no GPU on the machine).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datpatch::project::{NodeId, load_str};
use datpatch::runner::Runner;
use datpatch::ui::{Action, App};
use egui_kittest::kittest::Queryable;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

struct Options {
    seconds: u64,
    rate: u64,
    maxlines: u64,
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
        seconds: value("--seconds", 10),
        rate: value("--rate", 100_000),
        maxlines: value("--maxlines", 100),
    }
}

/// Streams text messages to every client at `rate` per second (in 1 ms batches) while `on`.
async fn load_server(rate: u64, on: Arc<AtomicBool>, sent: Arc<AtomicU64>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            stream.set_nodelay(true).ok();
            let on = on.clone();
            let sent = sent.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let per_ms = rate.div_ceil(1000).max(1);
                let started = Instant::now();
                let mut seq = 0u64;
                loop {
                    if on.load(Ordering::Relaxed) {
                        // Catch up to where the clock says we should be, a batch at a time.
                        let due = started.elapsed().as_millis() as u64 * per_ms;
                        let batch = due.saturating_sub(seq).min(per_ms * 20);
                        for _ in 0..batch {
                            let text = format!("{{\"seq\":{seq},\"v\":{:.3}}}", seq as f64 * 0.001);
                            if ws.feed(Message::text(text)).await.is_err() {
                                return;
                            }
                            seq += 1;
                        }
                        if ws.flush().await.is_err() {
                            return;
                        }
                        sent.fetch_add(batch, Ordering::Relaxed);
                    } else {
                        // Idle phase: keep the clock from running ahead.
                        seq = started.elapsed().as_millis() as u64 * per_ms;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
        }
    });
    port
}

struct Phase {
    frames: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    ingested_per_s: f64,
}

fn run_phase(harness: &mut egui_kittest::Harness<'_, App>, id: NodeId, seconds: u64) -> Phase {
    let messages_in = |h: &egui_kittest::Harness<'_, App>| {
        let engine = h.state().runner().engine.clone();
        let engine = engine.lock();
        engine.world().messages_in(id)
    };
    let frame = Duration::from_secs_f64(1.0 / 60.0);
    let started = Instant::now();
    let first = messages_in(harness);
    let mut times = Vec::new();
    let mut next = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        let t0 = Instant::now();
        harness.step();
        let shapes = harness.output().shapes.clone();
        let ppp = harness.output().pixels_per_point;
        let _meshes = harness.ctx.tessellate(shapes, ppp);
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        next += frame;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        } else {
            next = Instant::now();
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ingested = messages_in(harness).saturating_sub(first);
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Phase {
        frames: times.len(),
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
        max_ms: pick(1.0),
        ingested_per_s: ingested as f64 / elapsed,
    }
}

fn main() {
    let options = options();
    let load_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let on = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let port = load_rt.block_on(load_server(options.rate, on.clone(), sent.clone()));

    let project = load_str(
        &format!(
            r#"(nodes: [(id: 1, name: "feed", kind: WebSocket, pos: (40.0, 40.0),
                params: {{"netaddress": "127.0.0.1", "port": {port}, "maxlines": {}}})])"#,
            options.maxlines
        ),
        std::path::Path::new("gui_frames.ron"),
    )
    .expect("project");
    let dir = std::env::temp_dir();
    let runner = Runner::start(project, &dir, None).expect("runner");
    let id = NodeId(1);
    let mut harness = egui_kittest::Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_ui_state(|ui, app: &mut App| app.ui(ui), App::new(runner, None));
    harness.state_mut().queue(Action::Focus(id));
    harness.run_steps(10);

    println!(
        "GUI frame time, WebSocket DAT `maxlines` {} with its table open, {} s per phase",
        options.maxlines, options.seconds
    );
    let idle = run_phase(&mut harness, id, options.seconds);
    on.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    let busy = run_phase(&mut harness, id, options.seconds);
    on.store(false, Ordering::Relaxed);
    println!("| phase | frames | p50 | p99 | max | messages ingested/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, p) in [("idle", &idle), ("ingesting", &busy)] {
        println!(
            "| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} |",
            p.frames, p.p50_ms, p.p99_ms, p.max_ms, p.ingested_per_s
        );
    }
    let rows = {
        let engine = harness.state().runner().engine.clone();
        let engine = engine.lock();
        engine.world().dat(id).map_or(0, |d| d.num_rows())
    };
    // The viewer shows the table's size in its header: proof the table was open.
    let shown = harness
        .query_by_label_contains(&format!("{rows} rows ×"))
        .is_some();
    println!(
        "(server sent {} messages at a target of {}/s; table {rows} rows, open in the viewer: {shown})",
        sent.load(Ordering::Relaxed),
        options.rate
    );
}
