//! Web Client DAT and FIFO DAT against a real HTTP server written here (hyper, optionally TLS
//! with a CA made in the test): `request()` and the Request pulse, headers and data inputs, JSON
//! bodies, basic auth, redirects, timeouts, the size limit, streams in rows; the FIFO DAT's clamp.
// Test servers run on threads of their own.
#![allow(clippy::disallowed_methods)]

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod common;

use bytes::Bytes;
use datpatch::engine::{Command, info};
use datpatch::project::{NodeId, ParValue, load_str};
use datpatch::runner::Runner;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const CLIENT: NodeId = NodeId(1);
const LONG: Duration = Duration::from_secs(15);

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into()).boxed()
}

const STREAM_TEXT: &str = "line 0\nline 1\nline é2\nline 3\nline 4\n";

/// The test server's routes: `/echo` answers what it got as JSON; `/redirect` sends to `/echo`;
/// `/big` is 10 MiB; `/slow` answers after 5 s; `/stream` sends five lines in 5-byte chunks.
async fn route(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let answer = match path.as_str() {
        "/redirect-to" => {
            let target = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .find(|(k, _)| k == "url")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            Response::builder()
                .status(307)
                .header("location", target)
                .body(full(""))
        }
        "/redirect" => Response::builder()
            .status(302)
            .header("location", "/echo?redirected=1")
            .body(full("")),
        "/big" => Response::builder().body(full(vec![b'x'; 10 * 1024 * 1024])),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Response::builder().body(full("late"))
        }
        "/stream" => {
            // Five-byte chunks: lines and the two bytes of "é" are split across chunks.
            let chunks = futures_util::stream::unfold(0, |at| async move {
                let text = STREAM_TEXT.as_bytes();
                if at >= text.len() {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                let end = (at + 5).min(text.len());
                Some((
                    Ok::<_, Infallible>(Frame::data(Bytes::copy_from_slice(&text[at..end]))),
                    end,
                ))
            });
            Response::builder()
                .header("content-type", "text/plain")
                .body(StreamBody::new(chunks).boxed())
        }
        _ => {
            let method = req.method().to_string();
            let query = req.uri().query().unwrap_or("").to_string();
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").into()))
                .collect();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let echo = serde_json::json!({
                "method": method,
                "path": path,
                "query": query,
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            });
            Response::builder()
                .header("content-type", "application/json")
                .header("set-cookie", "a=1")
                .header("set-cookie", "b=2")
                .body(full(echo.to_string()))
        }
    };
    Ok(answer.unwrap())
}

/// Serves [`route`] on 127.0.0.1 (TLS with `tls`) on a thread of its own; returns the port.
fn serve(tls: Option<Arc<rustls::ServerConfig>>) -> u16 {
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        common::rt().block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            port_tx.send(listener.local_addr().unwrap().port()).unwrap();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(route);
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(config) => {
                            let Ok(stream) =
                                tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                            else {
                                return;
                            };
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
    });
    port_rx.recv().unwrap()
}

/// A Web Client DAT, its callbacks (logging into `log`), a headers table, a data DAT (`kind`),
/// and an Execute DAT whose onStart runs `start`.
fn start(dir: &Path, data_kind: &str, start: &str, pars: &[(&str, ParValue)]) -> Runner {
    let text = format!(
        r#"(
    version: 2,
    nodes: [
        (id: 1, name: "client", kind: WebClient),
        (id: 2, name: "client_callbacks", kind: Text, text: {CALLBACKS:?}),
        (id: 3, name: "log", kind: Table),
        (id: 4, name: "headers", kind: Table, table: [["name", "value"], ["X-From-Table", "t1"]]),
        (id: 5, name: "data", kind: {data_kind}),
        (id: 6, name: "go", kind: Execute, text: {start:?}),
    ],
    wires: [(from: 2, to: 1, input: Callbacks), (from: 4, to: 1, input: Headers), (from: 5, to: 1, input: Data)],
)"#
    );
    let mut project = load_str(&text, Path::new("webclient-test.ron")).unwrap();
    let client = project.node_mut(CLIENT).unwrap();
    for (token, value) in pars {
        client.params.insert((*token).to_string(), value.clone());
    }
    Runner::start(project, dir, None).unwrap()
}

const CALLBACKS: &str = r"
def onConnect(webClientDAT, id):
    op('log').appendRow(['connect', id])

def onDisconnect(webClientDAT, id):
    op('log').appendRow(['disconnect', id])

def onResponse(webClientDAT, statusCode, headerDict, data, id):
    op('log').appendRow(['response', id, statusCode['code'], statusCode['message'],
                         type(data).__name__, data.decode(errors='replace'),
                         str(headerDict.get('set-cookie')), headerDict.get('content-type', ''),
                         len(data)])
";

fn log(runner: &Runner) -> Vec<Vec<String>> {
    common::table_rows(runner, "log")
}

fn responses(runner: &Runner) -> Vec<Vec<String>> {
    log(runner)
        .into_iter()
        .filter(|r| r[0] == "response")
        .collect()
}

/// The response to request `id`, once it is in.
fn response(runner: &Runner, id: &str) -> Vec<String> {
    let found = || responses(runner).into_iter().find(|r| r[1] == id);
    assert!(
        common::wait_until(LONG, || found().is_some()),
        "no response {id}; log {:?}\nconsole {}",
        log(runner),
        common::console_text(runner.engine.lock().world())
    );
    found().unwrap()
}

fn echoed(row: &[String]) -> serde_json::Value {
    serde_json::from_str(&row[5]).unwrap_or_else(|e| panic!("{e}: {row:?}"))
}

fn pulse(runner: &Runner, id: NodeId, token: &str) {
    runner
        .engine
        .lock()
        .apply(Command::Pulse {
            id,
            token: token.into(),
        })
        .unwrap();
}

fn channel(runner: &Runner, id: NodeId, name: &str) -> f64 {
    let engine = runner.engine.lock();
    info::channel(engine.world(), id, name).unwrap_or_else(|| {
        panic!(
            "no channel {name}: {}",
            common::console_text(engine.world())
        )
    })
}

#[test]
fn request_sends_methods_headers_json_and_auth_and_follows_redirects() {
    let port = serve(None);
    let base = format!("http://127.0.0.1:{port}");
    let elsewhere = format!("http://127.0.0.1:{}/echo", serve(None));
    let script = format!(
        r"
def onStart():
    c = op('client')
    c.request('{base}/redirect-to', 'GET', pars={{'url': '{elsewhere}'}},
              header={{'X-Api-Key': 'k', 'Cookie': 'a=1', 'Accept': 'text/plain'}})
    ids = [
        c.request('{base}/echo', 'GET', header={{'X-Test': 'yes'}}, pars={{'a': '1', 'b c': 'd&e'}}),
        c.request('{base}/echo', 'POST', data={{'k': 'v', 'n': [1, 2]}}),
        c.request('{base}/echo', 'put', data='plain text', authType='Basic', username='u', password='p'),
        c.request('{base}/redirect', 'GET'),
    ]
    op('log').appendRow(['ids'] + ids + [len(c.connections)])
"
    );
    let dir = tempfile::tempdir().unwrap();
    let runner = start(dir.path(), "Text", &script, &[]);
    // A redirect to another origin takes no credentials along: only headers known to carry none.
    let away = echoed(&response(&runner, "1"));
    assert_eq!(away["headers"]["accept"], "text/plain");
    assert!(away["headers"].get("x-api-key").is_none(), "{away}");
    assert!(away["headers"].get("cookie").is_none(), "{away}");

    let get = response(&runner, "2");
    assert_eq!(get[2..5], ["200", "OK", "bytes"]);
    assert_eq!(get[6], "['a=1', 'b=2']", "set-cookie arrives as a list");
    assert_eq!(get[7], "application/json");
    let echo = echoed(&get);
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["query"], "a=1&b+c=d%26e");
    assert_eq!(echo["headers"]["x-test"], "yes");
    assert!(
        echo["headers"]["user-agent"]
            .as_str()
            .unwrap()
            .starts_with("datpatch/")
    );

    let post = echoed(&response(&runner, "3"));
    assert_eq!(post["method"], "POST");
    assert_eq!(post["headers"]["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_str(post["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({"k": "v", "n": [1, 2]}));

    let put = echoed(&response(&runner, "4"));
    assert_eq!(put["method"], "PUT");
    assert_eq!(put["body"], "plain text");
    assert_eq!(put["headers"]["authorization"], "Basic dTpw");

    let redirected = echoed(&response(&runner, "5"));
    assert_eq!(
        (redirected["path"].as_str(), redirected["query"].as_str()),
        (Some("/echo"), Some("redirected=1"))
    );

    let ids = log(&runner).into_iter().find(|r| r[0] == "ids").unwrap();
    assert_eq!(ids[1..], ["2", "3", "4", "5", "5"], "ids at once, all open");
    assert!(common::wait_until(LONG, || {
        log(&runner).iter().filter(|r| r[0] == "disconnect").count() == 5
    }));
    assert_eq!(log(&runner).iter().filter(|r| r[0] == "connect").count(), 5);
    assert_eq!(channel(&runner, CLIENT, "open_requests"), 0.0);
    assert_eq!(channel(&runner, CLIENT, "responses"), 5.0);
    // The output shows the last body received.
    let output = common::dat_cells(runner.engine.lock().world(), CLIENT);
    assert!(
        output.concat().concat().contains("\"method\""),
        "{output:?}"
    );
}

#[test]
fn timeouts_size_limits_and_bad_urls_are_reported_and_the_client_carries_on() {
    let port = serve(None);
    let base = format!("http://127.0.0.1:{port}");
    let script = format!(
        r"
def onStart():
    c = op('client')
    c.request('{base}/slow', 'GET', timeout=300)
    c.request('{base}/big', 'GET')
    try:
        c.request('ftp://nowhere/', 'GET')
    except Exception as e:
        op('log').appendRow(['refused', str(e)])
    c.request('{base}/echo', 'GET')
    closed = c.request('{base}/slow', 'GET')
    run(lambda: c.closeConnection(closed), delayMilliSeconds=200)
    c.request('{base}/echo', 'PUT', uploadFile='upload.txt')
"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("upload.txt"), "file contents\n").unwrap();
    let runner = start(dir.path(), "Text", &script, &[]);
    let slow = response(&runner, "1");
    assert_eq!(slow[2], "0");
    assert!(slow[3].contains("timed out after 300 ms"), "{slow:?}");
    let big = response(&runner, "2");
    assert_eq!(big[2], "0");
    assert!(big[3].contains("larger than 8388608 bytes"), "{big:?}");
    assert_eq!(response(&runner, "3")[2], "200");
    // closeConnection ends a request without a response; onDisconnect says so.
    assert!(common::wait_until(LONG, || {
        log(&runner)
            .iter()
            .any(|r| r[0] == "disconnect" && r[1] == "4")
    }));
    assert!(
        responses(&runner).iter().all(|r| r[1] != "4"),
        "{:?}",
        log(&runner)
    );
    let upload = echoed(&response(&runner, "5"));
    assert_eq!(
        (upload["method"].as_str(), upload["body"].as_str()),
        (Some("PUT"), Some("file contents\n"))
    );
    let refused = log(&runner)
        .into_iter()
        .find(|r| r[0] == "refused")
        .unwrap();
    assert!(
        refused[1].contains("not an http:// or https:// URL"),
        "{refused:?}"
    );
    assert_eq!(channel(&runner, CLIENT, "connection_errors"), 2.0);
    let console = common::console_text(runner.engine.lock().world());
    assert!(console.contains("request 1: timed out"), "{console}");
}

#[test]
fn request_pulse_uses_the_parameters_and_the_headers_and_data_inputs() {
    let port = serve(None);
    let dir = tempfile::tempdir().unwrap();
    let runner = start(
        dir.path(),
        "Table",
        "def onStart():\n    op('data').appendRow(['q', 'x y'])\n",
        &[
            (
                "url",
                ParValue::Str(format!("http://127.0.0.1:{port}/echo")),
            ),
            ("authtype", ParValue::Str("oauth2".into())),
            ("token", ParValue::Str("t0k".into())),
            ("includeheader", ParValue::Bool(true)),
        ],
    );
    common::wait_until(LONG, || runner.engine.lock().world().frame > 2);
    pulse(&runner, CLIENT, "request");
    let get = echoed(&response(&runner, "1"));
    assert_eq!(get["query"], "q=x+y", "a data table goes on a GET's URL");
    assert_eq!(get["headers"]["x-from-table"], "t1");
    assert_eq!(get["headers"]["authorization"], "Bearer t0k");
    // Include Header: the status line and headers above the body.
    let output = common::dat_cells(runner.engine.lock().world(), CLIENT)
        .concat()
        .join("\n");
    assert!(output.starts_with("HTTP/1.1 200 OK\n"), "{output}");
    assert!(
        output.contains("content-type: application/json"),
        "{output}"
    );

    runner
        .engine
        .lock()
        .apply(Command::SetParam {
            id: CLIENT,
            token: "reqmethod".into(),
            value: ParValue::Str("post".into()),
        })
        .unwrap();
    pulse(&runner, CLIENT, "request");
    let post = echoed(&response(&runner, "2"));
    assert_eq!(post["method"], "POST");
    assert_eq!(post["body"], "q=x+y", "and a POST's form body");
    assert_eq!(
        post["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );
}

#[test]
fn https_needs_trust_and_streams_fill_clamped_rows() {
    let (ca_pem, tls) = common::test_pki();
    let port = serve(Some(tls));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
    let url = format!("https://127.0.0.1:{port}");
    let script = format!("def onStart():\n    op('client').request('{url}/echo', 'GET')\n");
    let runner = start(dir.path(), "Text", &script, &[]);
    let refused = response(&runner, "1");
    assert_eq!(refused[2], "0");
    assert!(refused[3].contains("certificate"), "{refused:?}");

    let set = |token: &str, value: ParValue| {
        runner
            .engine
            .lock()
            .apply(Command::SetParam {
                id: CLIENT,
                token: token.into(),
                value,
            })
            .unwrap();
    };
    set("cafile", ParValue::Str("ca.pem".into()));
    set("url", ParValue::Str(format!("{url}/stream")));
    set("stream", ParValue::Bool(true));
    set("clamp", ParValue::Bool(true));
    set("maxlines", ParValue::Int(3));
    common::wait_until(LONG, || runner.engine.lock().world().frame > 2);
    let frame = runner.engine.lock().world().frame;
    common::wait_until(LONG, || runner.engine.lock().world().frame > frame + 2);
    pulse(&runner, CLIENT, "request");
    assert!(common::wait_until(LONG, || {
        log(&runner)
            .iter()
            .any(|r| r[0] == "disconnect" && r[1] == "2")
    }));
    let chunks: Vec<_> = responses(&runner)
        .into_iter()
        .filter(|r| r[1] == "2")
        .collect();
    assert!(chunks.len() >= 2, "one onResponse per chunk: {chunks:?}");
    assert_eq!(chunks[0][7], "text/plain", "headers with the first chunk");
    assert!(
        chunks[1..].iter().all(|c| c[7].is_empty()),
        "and only the first: {chunks:?}"
    );
    let bytes: usize = chunks.iter().map(|c| c[8].parse::<usize>().unwrap()).sum();
    assert_eq!(bytes, STREAM_TEXT.len());
    // Rows are whole lines, whatever the chunks split (a line, a character).
    let rows = common::dat_cells(runner.engine.lock().world(), CLIENT);
    assert_eq!(rows, [["line é2"], ["line 3"], ["line 4"]]);
}

#[test]
fn fifo_dat_keeps_the_last_rows_under_its_heading() {
    let text = r#"(
    version: 2,
    nodes: [
        (id: 1, name: "fifo", kind: Fifo, params: {"maxlines": 5, "heading": "n, square"}),
        (id: 2, name: "go", kind: Execute,
         text: "def onStart():\n    f = op('fifo')\n    for i in range(10000):\n        f.appendRow([i, i * i])\n    f.appendRows([['a', 'b'], ['c']])\n    op('out').appendRow([f.numRows, f[1, 'n'].val, f[5, 0].val])\n"),
        (id: 3, name: "out", kind: Table),
    ],
)"#;
    let project = load_str(text, Path::new("fifo-test.ron")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::start(project, dir.path(), None).unwrap();
    let fifo = NodeId(1);
    assert!(
        common::wait_until(LONG, || {
            channel(&runner, fifo, "rows_appended") == 10_002.0
        }),
        "{} rows appended; {}",
        channel(&runner, fifo, "rows_appended"),
        common::console_text(runner.engine.lock().world())
    );
    let rows = common::dat_cells(runner.engine.lock().world(), fifo);
    assert_eq!(
        rows,
        [
            ["n", "square"],
            ["9997", "99940009"],
            ["9998", "99960004"],
            ["9999", "99980001"],
            ["a", "b"],
            ["c", ""],
        ]
    );
    assert_eq!(channel(&runner, fifo, "rows_dropped"), 9_997.0);
    let out = common::dat_cells(runner.engine.lock().world(), NodeId(3));
    assert_eq!(
        out,
        [["6", "9997", "c"]],
        "{}",
        common::console_text(runner.engine.lock().world())
    );
    pulse(&runner, fifo, "clear");
    assert!(common::wait_until(LONG, || {
        common::dat_cells(runner.engine.lock().world(), fifo).len() == 1
    }));
}
