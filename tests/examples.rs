//! The example projects, run headless on free ports and driven from outside by real HTTP and
//! WebSocket clients (and, for the chat page, two pages in headless Chromium).
// Test clients run on threads of their own and report over std channels.
#![allow(clippy::disallowed_methods)]

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use datpatch::engine::info;
use datpatch::runner::Runner;

mod common;
use common::{basic, http, rt, wait_until};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn project(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("projects")
        .join(name)
}

/// Runs an example with `server`'s port set to a free one (and other overrides), and returns
/// the address it listens on.
fn run_example(file: &str, server: &str, overrides: &[(&str, &str)]) -> (Runner, SocketAddr) {
    let runner = Runner::start_file(&project(file), None, |engine| {
        engine.set_par_by_path(&format!("{server}.port"), "0")?;
        for (target, value) in overrides {
            engine.set_par_by_path(target, value)?;
        }
        Ok(())
    })
    .unwrap();
    let id = runner
        .engine
        .lock()
        .project()
        .node_by_name(server)
        .unwrap()
        .id;
    let port = || info::channel(runner.engine.lock().world(), id, "port").unwrap_or(0.0) as u16;
    assert!(
        wait_until(Duration::from_secs(20), || port() != 0),
        "{file}: server did not start"
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port()));
    (runner, addr)
}

/// A WebSocket DAT's received-messages table, as rows of cells.
fn fifo(runner: &Runner, name: &str) -> Vec<Vec<String>> {
    let engine = runner.engine.lock();
    let id = engine.project().node_by_name(name).unwrap().id;
    common::dat_cells(engine.world(), id)
}

fn table(runner: &Runner, name: &str) -> Vec<Vec<String>> {
    runner
        .engine
        .lock()
        .project()
        .node_by_name(name)
        .unwrap()
        .table
        .clone()
        .unwrap()
        .rows
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("no message within 20 s")
            .expect("connection ended")
            .expect("read failed");
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

/// The next message of `kind` (skipping others, such as join/leave notices).
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let value = next_json(ws).await;
        if value["type"] == kind {
            return value;
        }
    }
}

fn local_addr(ws: &Ws) -> String {
    match ws.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.local_addr().unwrap().to_string(),
        _ => unreachable!("plain connections only"),
    }
}

#[test]
fn chat_relays_every_message_to_every_other_client_and_logs_it() {
    let port = common::free_port();
    let monitor_url = format!("ws://127.0.0.1:{port}/monitor");
    let (runner, addr) = run_example(
        "chat.ron",
        "web",
        &[
            ("web.port", &port.to_string()),
            ("monitor.netaddress", &monitor_url),
        ],
    );
    assert_eq!(addr.port(), port);
    let monitor = runner
        .engine
        .lock()
        .project()
        .node_by_name("monitor")
        .unwrap()
        .id;
    assert!(
        wait_until(Duration::from_secs(20), || info::channel(
            runner.engine.lock().world(),
            monitor,
            "connected"
        ) == Some(1.0)),
        "the monitor WebSocket DAT never connected"
    );
    let page = http(addr, "GET", "/", &[], b"");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<title>datpatch chat</title>"));
    assert_eq!(
        http(addr, "GET", "/chat.js", &[], b"").header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(http(addr, "GET", "/nope", &[], b"").status, 404);

    let rt = rt();
    let alice = rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..3 {
            let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/chat"))
                .await
                .unwrap();
            clients.push(ws);
        }
        let alice = local_addr(&clients[0]);
        clients[0]
            .send(Message::text(
                json!({"name": "alice", "text": "hello everyone"}).to_string(),
            ))
            .await
            .unwrap();
        for ws in &mut clients {
            let message = next_of(ws, "chat").await;
            assert_eq!(
                (message["name"].as_str(), message["text"].as_str()),
                (Some("alice"), Some("hello everyone"))
            );
            assert_eq!(message["from"], alice.as_str());
        }
        clients[1]
            .send(Message::text(
                json!({"name": "bob", "text": "hi alice"}).to_string(),
            ))
            .await
            .unwrap();
        for ws in &mut clients {
            assert_eq!(next_of(ws, "chat").await["text"], "hi alice");
        }
        // Garbage gets an error back, to the sender only, and the relay carries on.
        clients[2].send(Message::text("not json")).await.unwrap();
        assert_eq!(next_of(&mut clients[2], "error").await["type"], "error");
        clients[2]
            .send(Message::text(json!({"text": "anonymous"}).to_string()))
            .await
            .unwrap();
        assert_eq!(next_of(&mut clients[0], "chat").await["name"], "guest");
        alice
    });
    let log = fifo(&runner, "log");
    assert_eq!(log[0], ["time", "client", "name", "text"]);
    let logged: Vec<(&str, &str, &str)> = log[1..]
        .iter()
        .map(|r| (r[1].as_str(), r[2].as_str(), r[3].as_str()))
        .collect();
    assert_eq!(logged.len(), 3, "{log:?}");
    assert_eq!(logged[0], (alice.as_str(), "alice", "hello everyone"));
    assert_eq!((logged[1].1, logged[1].2), ("bob", "hi alice"));
    assert_eq!((logged[2].1, logged[2].2), ("guest", "anonymous"));
    let web = runner
        .engine
        .lock()
        .project()
        .node_by_name("web")
        .unwrap()
        .id;
    assert_eq!(
        info::channel(runner.engine.lock().world(), web, "errors"),
        Some(0.0)
    );
    // The monitor hears every chat message too: its table fills.
    let chat_rows = || {
        fifo(&runner, "monitor")
            .iter()
            .filter(|r| r[0].contains("\"type\":\"chat\""))
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(10), || chat_rows() == 3),
        "{:?}",
        fifo(&runner, "monitor")
    );
    assert_eq!(fifo(&runner, "monitor")[0][0], "message");
}

async fn pubsub_client(addr: SocketAddr, token: &str) -> Ws {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("bearer, {token}").parse().unwrap(),
    );
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "bearer"
    );
    assert_eq!(next_json(&mut ws).await["type"], "connected");
    ws
}

async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

#[test]
fn pubsub_delivers_only_to_subscribers_and_rejects_bad_keys_and_tokens() {
    let (runner, addr) = run_example("pubsub.ron", "relay", &[]);

    let token = http(
        addr,
        "POST",
        "/auth/token",
        &[],
        br#"{"apiKey": "ak_demo"}"#,
    );
    assert_eq!(token.status, 200);
    let token = token.json()["token"].as_str().unwrap().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    // A browser on another origin asks before it POSTs JSON.
    let preflight = http(
        addr,
        "OPTIONS",
        "/auth/token",
        &[
            ("Origin", "http://page.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(
        preflight
            .header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert!(
        preflight
            .header("access-control-allow-headers")
            .unwrap()
            .eq_ignore_ascii_case("content-type")
    );
    assert_eq!(
        http(
            addr,
            "POST",
            "/auth/token",
            &[],
            br#"{"apiKey": "ak_wrong"}"#
        )
        .status,
        401
    );
    assert_eq!(
        http(addr, "POST", "/auth/token", &[], b"{not json").status,
        400
    );
    assert_eq!(
        http(addr, "POST", "/auth/token", &[], br#"{"key": 1}"#).status,
        400
    );

    let tampered = {
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[1] = "eyJzdWIiOiJkZW1vIiwiZXhwIjo5OTk5OTk5OTk5fQ".into();
        format!("bearer, {}", parts.join("."))
    };
    let rt = rt();
    rt.block_on(async {
        // No token, a made-up one, a tampered one, one without "bearer": all refused with 401.
        for protocols in [
            None,
            Some("bearer, tk_madeup"),
            Some(tampered.as_str()),
            Some(token.as_str()),
        ] {
            let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
            if let Some(p) = protocols {
                request
                    .headers_mut()
                    .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
            }
            match tokio_tungstenite::connect_async(request).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                    assert_eq!(r.status(), 401, "{protocols:?}");
                }
                other => panic!("{protocols:?} was let in: {other:?}"),
            }
        }

        let mut a = pubsub_client(addr, &token).await;
        let mut b = pubsub_client(addr, &token).await;
        let mut c = pubsub_client(addr, &token).await;
        let mut publisher = pubsub_client(addr, &token).await;
        send_json(&mut a, json!({"op": "sub", "ch": "sensors/temp"})).await;
        assert_eq!(
            next_json(&mut a).await,
            json!({"type": "sub_ack", "ch": "sensors/temp", "occupancy": 1})
        );
        send_json(&mut b, json!({"op": "sub", "ch": "lights"})).await;
        assert_eq!(next_json(&mut b).await["type"], "sub_ack");
        send_json(&mut c, json!({"op": "sub", "ch": "sensors/temp"})).await;
        assert_eq!(next_json(&mut c).await["occupancy"], 2);

        send_json(
            &mut publisher,
            json!({"op": "pub", "ch": "sensors/temp", "d": {"temperature": 21.5}}),
        )
        .await;
        let publisher_id = local_addr(&publisher);
        for ws in [&mut a, &mut c] {
            let m = next_json(ws).await;
            assert_eq!(
                (m["type"].as_str(), m["op"].as_str(), m["ch"].as_str()),
                (Some("message"), Some("pub"), Some("sensors/temp"))
            );
            assert_eq!(m["d"], json!({"temperature": 21.5}));
            assert_eq!(m["from"], publisher_id.as_str());
            assert!(m["ts"].as_i64().unwrap() > 1_700_000_000_000);
        }
        // b is on another channel: its next message is the answer to its heartbeat, not the pub.
        send_json(&mut b, json!({"op": "hb"})).await;
        assert_eq!(next_json(&mut b).await, json!({"type": "hb_ack"}));
        send_json(&mut b, json!({"op": "dance"})).await;
        assert_eq!(next_json(&mut b).await["error"], "missing_ch");
        send_json(&mut b, json!({"op": "dance", "ch": "x"})).await;
        assert_eq!(next_json(&mut b).await["error"], "unknown_op");

        // c vanishes mid-stream; a keeps receiving every message.
        for i in 0..100 {
            send_json(
                &mut publisher,
                json!({"op": "pub", "ch": "sensors/temp", "d": i}),
            )
            .await;
            if i == 20 {
                drop(std::mem::replace(&mut c, pubsub_client(addr, &token).await));
            }
        }
        for i in 0..100 {
            assert_eq!(next_json(&mut a).await["d"], i);
        }
        send_json(&mut a, json!({"op": "unsub", "ch": "sensors/temp"})).await;
        assert_eq!(
            next_json(&mut a).await,
            json!({"type": "unsub_ack", "ch": "sensors/temp", "occupancy": 0})
        );
    });
    assert_eq!(table(&runner, "channel_stats")[1], ["sensors/temp", "101"]);
    let relay = runner
        .engine
        .lock()
        .project()
        .node_by_name("relay")
        .unwrap()
        .id;
    assert_eq!(
        info::channel(runner.engine.lock().world(), relay, "errors"),
        Some(0.0)
    );
}

#[test]
fn http_api_round_trips_values_answers_preflight_and_refuses_intruders() {
    let (runner, addr) = run_example("http_api.ron", "api", &[]);
    let state = http(addr, "GET", "/state", &[], b"");
    assert_eq!(state.status, 200);
    assert_eq!(
        state.json(),
        json!({"volume": "0.8", "scene": "intro", "running": "1"})
    );
    assert_eq!(state.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        http(addr, "GET", "/state/scene", &[], b"").json(),
        json!({"key": "scene", "value": "intro"})
    );
    assert_eq!(http(addr, "GET", "/state/missing", &[], b"").status, 404);

    let preflight = http(
        addr,
        "OPTIONS",
        "/state/volume",
        &[
            ("Origin", "http://elsewhere.example"),
            ("Access-Control-Request-Method", "PUT"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        b"",
    );
    assert_eq!(preflight.status, 204);
    assert!(
        preflight
            .header("access-control-allow-methods")
            .unwrap()
            .contains("PUT")
    );
    let allowed = preflight
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));

    let refused = http(addr, "PUT", "/state/volume", &[], br#"{"value": 0.1}"#);
    assert_eq!(refused.status, 401);
    assert!(
        refused
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(refused.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        http(
            addr,
            "PUT",
            "/state/volume",
            &[("Authorization", &basic("admin:wrong"))],
            b"1"
        )
        .status,
        401
    );
    let written = http(
        addr,
        "PUT",
        "/state/volume",
        &[("Authorization", &basic("admin:changeme"))],
        br#"{"value": 0.25}"#,
    );
    assert_eq!(written.status, 200, "{}", written.text());
    assert_eq!(written.json(), json!({"key": "volume", "value": "0.25"}));
    http(
        addr,
        "PUT",
        "/state/color",
        &[("Authorization", &basic("admin:changeme"))],
        b"teal",
    );
    assert_eq!(
        http(addr, "GET", "/state", &[], b"").json()["color"],
        "teal"
    );
    assert_eq!(table(&runner, "state")[1], ["volume", "0.25"]);

    let index = http(addr, "GET", "/", &[], b"");
    assert_eq!(index.status, 200);
    assert!(index.text().contains("datpatch control API"));
    assert_eq!(index.header("access-control-allow-origin"), Some("*"));
    for path in [
        "/../http_api.ron",
        "/%2e%2e/http_api.ron",
        "/..%2fhttp_api.ron",
        "/state/../../http_api.ron",
    ] {
        let answer = http(addr, "GET", path, &[], b"");
        assert!(
            !answer.text().contains("api_callbacks"),
            "{path} leaked the project file"
        );
        assert!(answer.status >= 400, "{path}: {}", answer.status);
    }
}

/// A minimal Chrome DevTools Protocol client: enough to open pages and evaluate JavaScript.
struct Browser {
    child: std::process::Child,
    ws: Ws,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn launch(executable: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(executable)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "about:blank",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_mins(1))
            .expect("Chromium did not start");
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Browser {
            child,
            ws,
            next_id: 0,
            _profile: profile,
        }
    }

    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.ws
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
        loop {
            let reply = next_json(&mut self.ws).await;
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    async fn open(&mut self, url: &str) -> String {
        let target = self
            .call(None, "Target.createTarget", json!({"url": url}))
            .await;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        attached["sessionId"].as_str().unwrap().to_string()
    }

    async fn eval(&mut self, session: &str, expression: &str) -> Value {
        let result = self
            .call(
                Some(session),
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        result["result"]["value"].clone()
    }

    async fn wait_for(&mut self, session: &str, expression: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.eval(session, expression).await;
            if value.as_bool() == Some(true) || (!value.is_null() && value.as_bool().is_none()) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {expression}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn chat_page_works_between_two_headless_chromium_pages() {
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        // CI installs Chromium (.ci/run), so there this test always runs.
        assert!(
            std::env::var_os("CI").is_none(),
            "Chromium is missing on CI"
        );
        eprintln!("skipping: Chromium is not installed (apt-get install chromium)");
        return;
    };
    let (runner, addr) = run_example("chat.ron", "web", &[("monitor.active", "false")]);
    let rt = rt();
    rt.block_on(async {
        let mut browser = Browser::launch(chromium).await;
        let alice = browser.open(&format!("http://{addr}/?name=alice")).await;
        let bob = browser.open(&format!("http://{addr}/?name=bob")).await;
        for page in [&alice, &bob] {
            browser.wait_for(page, "document.body && document.body.dataset.connected === '1'").await;
        }
        let say = |text: &str| {
            format!("document.getElementById('text').value = {}; document.getElementById('send').click(); true", json!(text))
        };
        browser.eval(&alice, &say("hello from alice")).await;
        browser.eval(&bob, &say("hi alice, bob here")).await;
        let both = "(() => { const seen = [...document.querySelectorAll('#messages li[data-name]')].map(li => li.dataset.name + ': ' + li.lastChild.textContent); \
                    return seen.includes('alice: hello from alice') && seen.includes('bob: hi alice, bob here') ? seen : null; })()";
        for page in [&alice, &bob] {
            let seen = browser.wait_for(page, both).await;
            assert_eq!(seen.as_array().unwrap().len(), 2, "{seen}");
        }
    });
    let log = fifo(&runner, "log");
    assert_eq!(log.len(), 3, "{log:?}");
}

/// Starts the relay (`datpatch run projects/pubsub.ron`) on `port`, signing with `secret`.
fn start_relay(port: u16, secret: &str) -> common::KillOnDrop {
    let (relay, lines) = common::spawn_datpatch_with_env(
        [
            "run".to_string(),
            project("pubsub.ron").display().to_string(),
            "--set".to_string(),
            format!("relay.port={port}"),
        ],
        &[("DATPATCH_RELAY_SECRET", secret)],
    );
    assert_eq!(common::listening_port(&lines), port);
    relay
}

/// The DataNet client flow inside the patch: sensors.ron fetches a token from the relay with its
/// Web Client DAT, subscribes with it, publishes, and keeps receiving across relay restarts: the
/// same token after a plain restart, a new one when the relay's secret changed (401).
#[test]
fn sensors_subscribe_through_the_relay_and_survive_its_restarts() {
    let port = common::free_port();
    let mut relay = start_relay(port, "first secret");
    let runner = Runner::start_file(&project("sensors.ron"), None, |engine| {
        engine.set_par_by_path("auth.url", &format!("http://127.0.0.1:{port}/auth/token"))?;
        engine.set_par_by_path("feed.netaddress", &format!("ws://127.0.0.1:{port}/ws"))
    })
    .unwrap();
    let node = |name: &str| {
        runner
            .engine
            .lock()
            .project()
            .node_by_name(name)
            .unwrap()
            .id
    };
    let (sensors, readings, auth) = (node("sensors"), node("readings"), node("auth"));
    let channel =
        |id, name: &str| info::channel(runner.engine.lock().world(), id, name).unwrap_or(0.0);
    let console = || common::console_text(runner.engine.lock().world());
    let names = || -> Vec<String> {
        let engine = runner.engine.lock();
        datpatch::ops::channels::runtime_ref(engine.world(), sensors)
            .map(|rt| rt.channels().iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(30), || names().len() >= 6),
        "{:?}\n{}",
        names(),
        console()
    );
    let mut got = names();
    got.sort();
    assert_eq!(
        got,
        [
            "sensors/imu:accel/x",
            "sensors/imu:accel/y",
            "sensors/imu:accel/z",
            "sensors/imu:moving",
            "sensors/temp:humidity",
            "sensors/temp:temperature"
        ],
        "strings (label) are not channels; booleans are"
    );
    let sample = |name: &str| {
        let engine = runner.engine.lock();
        datpatch::ops::channels::runtime_ref(engine.world(), sensors)
            .and_then(|rt| rt.channel(name).map(|c| (c.history.len(), c.value)))
    };
    assert!(wait_until(Duration::from_secs(30), || sample(
        "sensors/temp:temperature"
    )
    .is_some_and(|(n, _)| n >= 5)));
    let (_, temperature) = sample("sensors/temp:temperature").unwrap();
    assert!((18.9..=23.1).contains(&temperature), "{temperature}");
    assert_eq!(sample("sensors/imu:accel/z").unwrap().1, 9.81);
    // The envelopes are FIFO DAT rows: channel, data as JSON, timestamp.
    let rows = fifo(&runner, "readings");
    assert_eq!(rows[0], ["channel", "data", "timestamp"]);
    let temp = rows.iter().find(|r| r[0] == "sensors/temp").unwrap();
    let data: Value = serde_json::from_str(&temp[1]).unwrap();
    assert!(data["temperature"].is_f64(), "{temp:?}");
    assert!(temp[2].parse::<i64>().unwrap() > 1_700_000_000_000);
    assert_eq!(channel(auth, "responses"), 1.0);

    // The relay restarts with the same secret: the subscriber reconnects with the token it has.
    let received_again = |after: f64| {
        wait_until(Duration::from_secs(30), || {
            channel(readings, "rows_appended") > after + 10.0
        })
    };
    drop(relay);
    std::thread::sleep(Duration::from_millis(300));
    let before = channel(readings, "rows_appended");
    relay = start_relay(port, "first secret");
    assert!(received_again(before), "{}", console());
    assert_eq!(
        channel(auth, "responses"),
        1.0,
        "the token was kept: {}",
        console()
    );

    // With a new secret the old token is refused (401): the subscriber fetches a new one.
    drop(relay);
    std::thread::sleep(Duration::from_millis(300));
    let before = channel(readings, "rows_appended");
    let _relay = start_relay(port, "second secret");
    assert!(received_again(before), "{}", console());
    assert!(channel(auth, "responses") >= 2.0, "{}", console());
    assert!(console().contains("HTTP 401"), "{}", console());
}

/// publish_from_chop.ron: the CHOP's channels reach a DataNet subscriber of chop/controls.
#[test]
fn publish_from_chop_sends_the_chop_channels_to_the_relay() {
    let (_relay, addr) = run_example("pubsub.ron", "relay", &[]);
    let runner = Runner::start_file(&project("publish_from_chop.ron"), None, |engine| {
        engine.set_par_by_path("auth.url", &format!("http://{addr}/auth/token"))?;
        engine.set_par_by_path("relay.netaddress", &format!("ws://{addr}/ws"))
    })
    .unwrap();
    let token = http(
        addr,
        "POST",
        "/auth/token",
        &[],
        br#"{"apiKey": "ak_demo"}"#,
    )
    .json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let messages = rt().block_on(async {
        let mut ws = pubsub_client(addr, &token).await;
        send_json(&mut ws, json!({"op": "sub", "ch": "chop/controls"})).await;
        assert_eq!(next_json(&mut ws).await["type"], "sub_ack");
        let mut messages = Vec::new();
        while messages.len() < 5 {
            messages.push(next_json(&mut ws).await);
        }
        messages
    });
    let mut last_ts = 0;
    for m in &messages {
        assert_eq!(
            (m["type"].as_str(), m["ch"].as_str()),
            (Some("message"), Some("chop/controls")),
            "{m}"
        );
        let (x, y) = (m["d"]["x"].as_f64().unwrap(), m["d"]["y"].as_f64().unwrap());
        assert!((-1.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y), "{m}");
        let ts = m["ts"].as_i64().unwrap();
        assert!(ts >= last_ts, "{messages:?}");
        last_ts = ts;
    }
    assert_ne!(messages[0]["d"], messages[4]["d"], "the oscillators move");
    let engine = runner.engine.lock();
    for node in &engine.project().nodes {
        assert_eq!(
            info::channel(engine.world(), node.id, "errors"),
            Some(0.0),
            "{}",
            common::console_text(engine.world())
        );
    }
}

#[test]
fn nanollm_frames_round_trip_between_a_web_server_dat_and_a_websocket_dat() {
    let port = common::free_port();
    let text = format!(
        r####"(
    nodes: [
        (id: 1, name: "server", kind: WebServer, params: {{"port": {port}, "format": "nanollm"}}),
        (id: 2, name: "server_callbacks", kind: Text, text: r###"
def onWebSocketOpen(webServerDAT, client, uri):
    webServerDAT.webSocketSendBinary(client, bytes(10))

def onWebSocketReceiveFrame(webServerDAT, client, frame):
    webServerDAT.webSocketSendFramed(client, frame['type'], frame['payload'], frame['metadata'])
"###),
        (id: 3, name: "client", kind: WebSocket, params: {{"netaddress": "ws://127.0.0.1:{port}/", "format": "nanollm"}}),
        (id: 4, name: "client_callbacks", kind: Text, text: r###"
def onConnect(dat):
    dat.sendFramed('json', {{'hello': 'world'}}, '')
    dat.sendFramed('text', 'plain words', 'txt')
    dat.sendFramed(5, bytes([1, 2, 255]), 'png')
    dat.sendBinary('not a frame')

def onReceiveFrame(dat, rowIndex, frame):
    op('log').appendRow([rowIndex, frame['msg_id'], frame['type'], frame['metadata'], frame['text']])
"###),
        (id: 5, name: "log", kind: Table),
    ],
    wires: [(from: 2, to: 1, input: Callbacks), (from: 4, to: 3, input: Callbacks)],
)"####
    );
    let project = datpatch::project::load_str(&text, Path::new("nanollm.ron"))
        .unwrap_or_else(|e| panic!("{e}"));
    let runner = Runner::start(project, Path::new("."), None).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || table(&runner, "log").len() == 3),
        "{:?}",
        table(&runner, "log")
    );
    assert_eq!(
        table(&runner, "log"),
        [
            ["1", "0", "json", "", r#"{"hello":"world"}"#],
            ["2", "1", "text", "txt", "plain words"],
            ["3", "2", "image", "png", "01 02 ff"],
        ]
    );
    let rows = fifo(&runner, "client");
    assert_eq!(
        rows[0],
        ["msg_id", "timestamp", "type", "size", "metadata", "payload"]
    );
    assert_eq!(rows[3][2..], ["image", "3", "png", "01 02 ff"]);
    let channel = |node: &str, name: &str| {
        let engine = runner.engine.lock();
        let id = engine.project().node_by_name(node).unwrap().id;
        info::channel(engine.world(), id, name).unwrap()
    };
    assert!(wait_until(Duration::from_secs(10), || channel(
        "server",
        "malformed_frames"
    ) == 1.0));
    assert_eq!(
        channel("client", "malformed_frames"),
        1.0,
        "the short frame the server sent on open"
    );
    assert_eq!(channel("client", "errors"), 0.0);
}
