//! `datpatch run --metrics ADDR`: every node's info channels and the process's memory, open
//! descriptors and cook-thread CPU time, served at `/metrics` in the Prometheus text format
//! (encoded by `prometheus-client`), read from the engine at each scrape.
//! Metric names: `datpatch_node_<channel>` (counters end in `_total`) labelled `node` and `type`,
//! `datpatch_frame`, `datpatch_process_resident_memory_bytes`, `datpatch_process_open_fds`,
//! `datpatch_cook_thread_cpu_seconds_total`.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::engine::{SharedEngine, info};

/// Connections served at once, and the longest one may stay.
const MAX_CONNECTIONS: usize = 8;
const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);

/// Info channels that only ever grow: exported as counters (`<name>_total`), the rest as gauges.
const COUNTER_CHANNELS: &[&str] = &[
    "total_cooks",
    "http_requests",
    "warnings",
    "errors",
    "messages_in",
    "messages_out",
    "bytes_in",
    "bytes_out",
    "reconnects",
    "requests",
    "responses",
    "connection_errors",
    "rows_appended",
    "rows_dropped",
    "dropped",
    "malformed_frames",
];

/// Labels of a node's metrics.
type NodeLabels = Vec<(&'static str, String)>;
type GaugeF64 = Gauge<f64, AtomicU64>;
type CounterF64 = Counter<f64, AtomicU64>;

/// The text of one scrape.
pub fn scrape(engine: &SharedEngine) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("datpatch");
    {
        let engine = engine.lock();
        let world = engine.world();
        let mut gauges: Vec<(&'static str, Family<NodeLabels, GaugeF64>)> = Vec::new();
        let mut counters: Vec<(&'static str, Family<NodeLabels, CounterF64>)> = Vec::new();
        for node in &world.project.nodes {
            let labels: NodeLabels = vec![
                ("node", node.name.clone()),
                ("type", node.kind.type_name().to_string()),
            ];
            for (name, value) in info::channels(world, node.id) {
                if COUNTER_CHANNELS.contains(&name) {
                    family(&mut counters, name)
                        .get_or_create(&labels)
                        .inc_by(value.max(0.0));
                } else {
                    family(&mut gauges, name).get_or_create(&labels).set(value);
                }
            }
        }
        for (name, family) in gauges {
            registry.register(
                format!("node_{name}"),
                format!("info channel {name}"),
                family,
            );
        }
        for (name, family) in counters {
            registry.register(
                format!("node_{name}"),
                format!("info channel {name}"),
                family,
            );
        }
        let frame = GaugeF64::default();
        frame.set(world.frame as f64);
        registry.register("frame", "frames cooked since the project started", frame);
    }
    if let Some(rss) = resident_bytes() {
        let gauge = GaugeF64::default();
        gauge.set(rss);
        registry.register(
            "process_resident_memory_bytes",
            "resident memory of the process",
            gauge,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let gauge = GaugeF64::default();
        gauge.set(fds.count() as f64);
        registry.register("process_open_fds", "open file descriptors", gauge);
    }
    if let Some(seconds) = cook_thread_cpu_seconds() {
        let counter = CounterF64::default();
        counter.inc_by(seconds);
        registry.register(
            "cook_thread_cpu_seconds",
            "CPU time of the cook thread (its rate is the cook thread's load)",
            counter,
        );
    }
    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}

/// The family of metric `name`, made on first use (one per info channel name, across nodes).
fn family<M: Default>(
    families: &mut Vec<(&'static str, Family<NodeLabels, M>)>,
    name: &'static str,
) -> Family<NodeLabels, M> {
    if let Some((_, family)) = families.iter().find(|(n, _)| *n == name) {
        return family.clone();
    }
    let family = Family::default();
    families.push((name, family.clone()));
    family
}

fn resident_bytes() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024.0)
}

/// User plus system time of the thread named `cook`, from /proc (clock ticks of 1/100 s, the
/// Linux value of `CLK_TCK`).
fn cook_thread_cpu_seconds() -> Option<f64> {
    const TICKS_PER_SECOND: f64 = 100.0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        let is_cook = std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim() == "cook");
        if !is_cook {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).ok()?;
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
        let after = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        return Some((utime + stime) / TICKS_PER_SECOND);
    }
    None
}

/// Serves `/metrics` on `addr` as tasks of the project's runtime; each scrape reads the engine
/// on a blocking thread, so the network workers never wait on the engine lock. Returns the address
/// bound.
pub async fn serve(addr: SocketAddr, engine: SharedEngine) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("metrics on {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("metrics on {addr}: {e}"))?;
    // A scraper needs one connection; a few spare, and each is given a deadline, so nothing a
    // client does here can use up the process's descriptors or tasks.
    let connections = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                // Out of descriptors, most likely: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                continue;
            };
            let engine = engine.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let engine = engine.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&req, engine).await) }
                });
                let serving = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service);
                let _ = tokio::time::timeout(CONNECTION_DEADLINE, serving).await;
                drop(permit);
            });
        }
    });
    Ok(bound)
}

async fn answer<B>(req: &http::Request<B>, engine: SharedEngine) -> Response<Full<Bytes>> {
    let (status, content_type, body) = if req.uri().path() == "/metrics" {
        match tokio::task::spawn_blocking(move || scrape(&engine)).await {
            Ok(Ok(text)) => (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            Ok(Err(_)) | Err(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "could not encode the metrics\n".to_string(),
            ),
        }
    } else {
        (
            StatusCode::NOT_FOUND,
            "text/plain",
            "see /metrics\n".to_string(),
        )
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
