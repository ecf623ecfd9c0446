//! Web Server DAT: real HTTP, WebSocket and TLS clients on 127.0.0.1 against a running project.
// Test clients run on threads of their own and report over std channels.
#![allow(clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datpatch::engine::{Command, info};
use datpatch::project::{NodeId, ParValue, load_str};
use datpatch::runner::Runner;

mod common;
use common::{
    HttpAnswer, basic, console_text, http, listening_port, parse_answer, raw_request, rt,
    spawn_datpatch, wait_until,
};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const CALLBACKS: &str = r#"
import json
import time

def onHTTPRequest(webServerDAT, request, response):
    path = request['uri']
    if path == '/echo':
        response['statusCode'] = 200
        response['Content-Type'] = 'application/json'
        response['X-Custom'] = 'yes'
        response['data'] = json.dumps({
            'method': request['method'], 'pars': request['pars'], 'body': request['data'],
            'token': request.get('X-Token'), 'lower': request.get('x-token'),
            'client': request['clientAddress'],
        })
    elif path == '/binary':
        response['statusCode'] = 200
        response['Content-Type'] = 'application/octet-stream'
        response['data'] = bytes([0, 255, 1, 128])
    elif path == '/fail':
        zero = 0
        x = 1 / zero
    elif path == '/slow':
        # Past the request timeout (300 ms), within the callback time limit (1 s).
        time.sleep(0.6)
        response['statusCode'] = 200
    elif path == '/private':
        if webServerDAT.authenticateBasic(request.get('Authorization', ''), {'ada': 'lovelace'}):
            response['statusCode'] = 200
            response['data'] = 'welcome'
        else:
            response['statusCode'] = 401
            response['statusReason'] = 'Unauthorized'
            response['WWW-Authenticate'] = 'Basic realm="datpatch"'
    elif path == '/noreturn':
        response['statusCode'] = 200
        return 5
    return response

def onWebSocketUpgrade(webServerDAT, request, response):
    if request['uri'] == '/guarded':
        if request['pars'].get('token') == 'good':
            response['Sec-WebSocket-Protocol'] = 'bearer'
        else:
            response['statusCode'] = 401
            response['data'] = 'bad token'
    return response

def onWebSocketOpen(webServerDAT, client, uri):
    op('events').appendRow(['open', client, uri])

def onWebSocketClose(webServerDAT, client):
    op('events').appendRow(['close', client])

def onWebSocketReceiveText(webServerDAT, client, data):
    if data.startswith('broadcast:'):
        for c in webServerDAT.webSocketConnections:
            webServerDAT.webSocketSendText(c, data)
        return
    op('events').appendRow(['text', client, data])
    webServerDAT.webSocketSendText(client, 'echo:' + data)

def onWebSocketReceiveBinary(webServerDAT, client, data):
    op('events').appendRow(['binary', client, len(data)])
    webServerDAT.webSocketSendBinary(client, data)

def onWebSocketReceivePing(webServerDAT, client, data):
    op('events').appendRow(['ping', client, data.decode()])

def onWebSocketReceivePong(webServerDAT, client, data):
    op('events').appendRow(['pong', client, data.decode()])

def onServerStart(webServerDAT):
    op('events').appendRow(['start'])

def onServerStop(webServerDAT):
    op('events').appendRow(['stop'])
"#;

struct Server {
    runner: Runner,
    web: NodeId,
}

impl Server {
    fn start(params: &str) -> Server {
        Server::start_with(params, CALLBACKS)
    }

    fn start_with(params: &str, callbacks: &str) -> Server {
        let text = format!(
            r####"(
    version: 2,
    settings: (script: (time_limit_ms: 1000)),
    nodes: [
        (id: 1, name: "web", kind: WebServer, params: {{"port": 0, {params}}}),
        (id: 2, name: "web_callbacks", kind: Text, params: {{"language": "python"}}, text: r###"{callbacks}"###),
        (id: 3, name: "events", kind: Table),
    ],
    wires: [(from: 2, to: 1, input: Callbacks)],
)"####
        );
        let project =
            load_str(&text, Path::new("webserver_test.ron")).unwrap_or_else(|e| panic!("{e}"));
        let runner = Runner::start(project, Path::new("."), None).unwrap();
        let server = Server {
            runner,
            web: NodeId(1),
        };
        assert!(
            wait_until(Duration::from_secs(20), || server.channel("server_running")
                == 1.0
                || server.status_error().is_some()),
            "server never started"
        );
        server
    }

    fn channel(&self, name: &str) -> f64 {
        info::channel(self.runner.engine.lock().world(), self.web, name).unwrap_or(-1.0)
    }

    fn port(&self) -> u16 {
        self.channel("port") as u16
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port()))
    }

    fn status_error(&self) -> Option<String> {
        self.runner
            .engine
            .lock()
            .world()
            .state(self.web)
            .and_then(|s| s.status_error.clone())
    }

    fn events(&self) -> Vec<Vec<String>> {
        let engine = self.runner.engine.lock();
        engine
            .project()
            .node_by_name("events")
            .unwrap()
            .table
            .clone()
            .unwrap()
            .rows
    }

    fn console(&self) -> String {
        console_text(self.runner.engine.lock().world())
    }

    fn apply(&self, command: Command) {
        self.runner.engine.lock().apply(command).unwrap();
    }
}

#[test]
fn http_requests_reach_the_callback_and_its_answer_comes_back() {
    let server = Server::start("\"requesttimeout\": 300");
    let addr = server.addr();

    let a = http(
        addr,
        "POST",
        "/echo?x=1&name=two%20words",
        &[("X-Token", "t0k")],
        b"hello body",
    );
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.header("x-custom"), Some("yes"));
    assert_eq!(a.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(json["method"], "POST");
    assert_eq!(json["pars"]["x"], "1");
    assert_eq!(json["pars"]["name"], "two words");
    assert_eq!(json["body"], "hello body");
    assert_eq!(json["token"], "t0k");
    assert_eq!(json["lower"], "t0k");
    assert!(json["client"].as_str().unwrap().starts_with("127.0.0.1:"));

    let get = http(addr, "GET", "/echo", &[], b"");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&get.body).unwrap()["method"],
        "GET"
    );

    let binary = http(addr, "GET", "/binary", &[], b"");
    assert_eq!(binary.body, vec![0, 255, 1, 128]);
    assert_eq!(
        binary.header("content-type"),
        Some("application/octet-stream")
    );

    let missing = http(addr, "GET", "/nothing-here", &[], b"");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.reason, "Not Found");

    let failing = http(addr, "GET", "/fail", &[], b"");
    assert_eq!(failing.status, 500);
    let no_return = http(addr, "GET", "/noreturn", &[], b"");
    assert_eq!(no_return.status, 500);
    let slow = http(addr, "GET", "/slow", &[], b"");
    assert_eq!(slow.status, 503);

    assert!(
        wait_until(Duration::from_secs(30), || server
            .console()
            .contains("took longer than the request timeout")),
        "{}",
        server.console()
    );
    let console = server.console();
    assert!(console.contains("ZeroDivisionError"), "{console}");
    assert!(
        console.contains("onHTTPRequest returned an integer, not the response map"),
        "{console}"
    );
    assert!(server.channel("errors") >= 3.0, "{console}");
    assert_eq!(server.channel("http_requests"), 7.0);

    // The server still answers after all that.
    assert_eq!(http(addr, "GET", "/echo", &[], b"").status, 200);
}

#[test]
fn basic_auth_is_accepted_and_rejected() {
    let server = Server::start("");
    let good = "ada:lovelace";
    let ok = http(
        server.addr(),
        "GET",
        "/private",
        &[("Authorization", &basic(good))],
        b"",
    );
    assert_eq!((ok.status, ok.text().as_str()), (200, "welcome"));
    let bad = "ada:babbage";
    let refused = http(
        server.addr(),
        "GET",
        "/private",
        &[("Authorization", &basic(bad))],
        b"",
    );
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Basic realm=\"datpatch\"")
    );
    let anonymous = http(server.addr(), "GET", "/private", &[], b"");
    assert_eq!(anonymous.status, 401);
}

#[test]
fn websocket_callbacks_run_in_order_with_client_and_uri() {
    let server = Server::start("");
    let rt = rt();
    let (client, replies) = rt.block_on(async {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/chat?room=1", server.addr()))
                .await
                .unwrap();
        let client = match ws.get_ref() {
            tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.local_addr().unwrap().to_string(),
            _ => unreachable!(),
        };
        ws.send(Message::text("hi")).await.unwrap();
        ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        ws.send(Message::Ping("p".into())).await.unwrap();
        ws.send(Message::Pong("q".into())).await.unwrap();
        let mut replies = Vec::new();
        while replies.len() < 3 {
            match ws.next().await.unwrap().unwrap() {
                Message::Text(t) => replies.push(format!("text:{t}")),
                Message::Binary(b) => replies.push(format!("binary:{}", b.len())),
                Message::Pong(p) => replies.push(format!("pong:{}", String::from_utf8_lossy(&p))),
                _ => {}
            }
        }
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
        (client, replies)
    });
    assert!(replies.contains(&"text:echo:hi".to_string()), "{replies:?}");
    assert!(replies.contains(&"binary:3".to_string()), "{replies:?}");
    assert!(replies.contains(&"pong:p".to_string()), "{replies:?}");
    assert!(
        wait_until(Duration::from_secs(10), || server.events().len() >= 7),
        "{:?}\n{}",
        server.events(),
        server.console()
    );
    let expected: Vec<Vec<String>> = [
        vec!["start"],
        vec!["open", &client, "/chat"],
        vec!["text", &client, "hi"],
        vec!["binary", &client, "3"],
        vec!["ping", &client, "p"],
        vec!["pong", &client, "q"],
        vec!["close", &client],
    ]
    .iter()
    .map(|r| r.iter().map(std::string::ToString::to_string).collect())
    .collect();
    assert_eq!(server.events(), expected);
    assert_eq!(server.channel("websocket_connections"), 0.0);
    assert_eq!(server.channel("messages_in"), 4.0);
    assert!(server.channel("messages_out") >= 2.0);
}

#[test]
fn upgrade_hook_refuses_or_accepts_with_a_subprotocol() {
    let server = Server::start("");
    let rt = rt();
    rt.block_on(async {
        let mut request = format!("ws://{}/guarded?token=bad", server.addr())
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "bearer, abc".parse().unwrap());
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401);
                assert_eq!(response.body().as_deref(), Some(&b"bad token"[..]));
            }
            other => panic!("expected a 401 refusal, got {other:?}"),
        }

        let mut request = format!("ws://{}/guarded?token=good", server.addr())
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "bearer, abc".parse().unwrap());
        let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers().get("sec-websocket-protocol").unwrap(),
            "bearer"
        );
        ws.send(Message::text("x")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("echo:x"));
    });
}

#[test]
fn broadcast_reaches_50_clients_through_websocket_connections() {
    let server = Server::start("");
    let rt = rt();
    rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..50 {
            let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", server.addr()))
                .await
                .unwrap();
            clients.push(ws);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while server.channel("websocket_connections") < 50.0 {
            assert!(
                Instant::now() < deadline,
                "only {} connected",
                server.channel("websocket_connections")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        clients[0]
            .send(Message::text("broadcast:hello all"))
            .await
            .unwrap();
        for ws in &mut clients {
            let got = tokio::time::timeout(Duration::from_secs(20), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(got, Message::text("broadcast:hello all"));
        }
        let records =
            || datpatch::ops::webserver::clients(server.runner.engine.lock().world(), server.web);
        // A client's counter goes up once its send has completed, which may be just after the
        // client read the message.
        let sent = || records().iter().map(|c| c.messages_out).sum::<u64>();
        assert!(
            wait_until(Duration::from_secs(5), || sent() == 50),
            "{} counted",
            sent()
        );
        let records = records();
        assert_eq!(records.len(), 50);
        assert_eq!(records.iter().map(|c| c.messages_in).sum::<u64>(), 1);
        assert!(
            records
                .iter()
                .all(|c| c.uri == "/" && c.connected_since_ms > 0)
        );
    });
}

/// The server owns framing: a callback's Content-Length / Transfer-Encoding / Connection are
/// replaced (said once), HEAD gets no body, a reason follows a changed status, 1xx is no answer,
/// and a malformed Sec-WebSocket-Key is a bad request.
#[test]
fn framing_headers_reason_phrases_and_bad_keys_are_the_servers() {
    let callbacks = r"
def onHTTPRequest(webServerDAT, request, response):
    if request['uri'] == '/status-only':
        response['statusCode'] = 200
    elif request['uri'] == '/lying':
        response['statusCode'] = 200
        response['Content-Length'] = '999'
        response['Transfer-Encoding'] = 'gzip'
        response['Connection'] = 'close'
        response['data'] = 'short'
    elif request['uri'] == '/informational':
        response['statusCode'] = 101
    return response

def onWebSocketUpgrade(webServerDAT, request, response):
    response['statusCode'] = 401
    return response
";
    let server = Server::start_with("", callbacks);
    let ok = http(server.addr(), "GET", "/status-only", &[], b"");
    assert_eq!((ok.status, ok.reason.as_str()), (200, "OK"));
    // HEAD reaches onHTTPRequest (as method HEAD) and the server drops the body.
    let head = http(server.addr(), "HEAD", "/lying", &[], b"");
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), Some("5"));

    // Two requests on one connection: the true length keeps them apart, and it stays open.
    let pipelined = "GET /lying HTTP/1.1\r\nHost: x\r\n\r\n\
                     GET /lying HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(pipelined.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw);
    assert_eq!(raw.matches("HTTP/1.1 200 OK").count(), 2, "{raw}");
    assert_eq!(raw.matches("content-length: 5").count(), 2, "{raw}");
    assert!(!raw.contains("999") && !raw.contains("gzip"), "{raw}");
    let console = server.console();
    // Said once (not merely collapsed into one line by the console).
    assert_eq!(
        console.matches("were replaced").count(),
        1,
        "said once: {console}"
    );
    assert!(!console.contains("more times"), "said once: {console}");

    let informational = http(server.addr(), "GET", "/informational", &[], b"");
    assert_eq!(informational.status, 500);
    assert!(
        wait_until(Duration::from_secs(5), || server
            .console()
            .contains("informational status")),
        "{}",
        server.console()
    );

    let upgrade = |key: &str| {
        raw_request(
            server.addr(),
            &format!(
                "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
            ),
        )
    };
    let refused = upgrade("dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(
        (refused.status, refused.reason.as_str()),
        (401, "Unauthorized")
    );
    for bad in ["", "not base64!", "c2hvcnQ="] {
        assert_eq!(upgrade(bad).status, 400, "key {bad:?}");
    }
}

/// What a WebSocket client receives within a short wait (nothing is also an answer).
async fn received_soon(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<Message> {
    match tokio::time::timeout(Duration::from_millis(400), ws.next()).await {
        Ok(Some(Ok(message))) => Some(message),
        _ => None,
    }
}

/// One message to many clients in one call: to every client but the sender, and to a list.
#[test]
fn broadcast_with_exclude_and_a_list_of_clients_reach_exactly_those_clients() {
    let callbacks = r"
def onWebSocketReceiveText(webServerDAT, client, data):
    kind, _, text = data.partition(':')
    if kind == 'all':
        n = webServerDAT.webSocketBroadcastText(text, exclude=client)
    elif kind == 'list':
        others = sorted(c for c in webServerDAT.webSocketConnections if c != client)
        n = webServerDAT.webSocketSendText(others[:2], text)
    elif kind == 'bin':
        n = webServerDAT.webSocketBroadcastBinary(text.encode(), [client])
    op('events').appendRow([kind, n])
";
    let server = Server::start_with("", callbacks);
    let rt = rt();
    rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..4 {
            let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", server.addr()))
                .await
                .unwrap();
            clients.push(ws);
        }
        assert!(wait_until(Duration::from_secs(10), || server
            .channel("websocket_connections")
            == 4.0));
        clients[0].send(Message::text("all:hello")).await.unwrap();
        assert_eq!(
            received_soon(&mut clients[0]).await,
            None,
            "the sender is excluded"
        );
        for ws in &mut clients[1..] {
            assert_eq!(received_soon(ws).await, Some(Message::text("hello")));
        }
        clients[0].send(Message::text("list:two")).await.unwrap();
        let mut got = Vec::new();
        for ws in &mut clients {
            got.push(received_soon(ws).await);
        }
        let delivered = got.iter().filter(|m| m.is_some()).count();
        assert_eq!(delivered, 2, "{got:?}");
        assert_eq!(got[0], None, "the list did not hold the sender");
        clients[3].send(Message::text("bin:b")).await.unwrap();
        assert_eq!(received_soon(&mut clients[3]).await, None);
        for ws in &mut clients[..3] {
            assert_eq!(
                received_soon(ws).await,
                Some(Message::binary(b"b".to_vec()))
            );
        }
    });
    assert!(wait_until(Duration::from_secs(5), || server.events().len() == 3));
    assert_eq!(
        server.events(),
        [["all", "3"], ["list", "2"], ["bin", "3"]],
        "{}",
        server.console()
    );
}

const RELAY: &str = r"
def onWebSocketReceiveText(webServerDAT, client, data):
    webServerDAT.webSocketBroadcastText(data, exclude=client)

def onWebSocketClose(webServerDAT, client):
    op('events').appendRow(['close', client])
";

/// Connects `n` WebSocket clients and waits until the server lists them all (plus `others`).
async fn subscribers(
    server: &Server,
    n: usize,
    others: usize,
) -> Vec<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>>
{
    let mut clients = Vec::new();
    for _ in 0..n {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", server.addr()))
            .await
            .unwrap();
        clients.push(ws);
    }
    let want = (n + others) as f64;
    assert!(
        wait_until(Duration::from_secs(20), || server
            .channel("websocket_connections")
            == want),
        "{} connected",
        server.channel("websocket_connections")
    );
    clients
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Each subscriber reads until it has `count` messages or 120 s pass; returns how many came in
/// order (numbered `m<i> ...`) before the first missing or misplaced one, and the connection
/// (still open, so closes seen afterwards are the server's).
fn read_in_order(mut ws: Client, count: usize) -> tokio::task::JoinHandle<(usize, Client)> {
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_mins(2);
        for i in 0..count {
            let Ok(Some(Ok(Message::Text(text)))) =
                tokio::time::timeout_at(deadline, ws.next()).await
            else {
                return (i, ws);
            };
            if !text.starts_with(&format!("m{i} ")) {
                return (i, ws);
            }
        }
        (count, ws)
    })
}

/// A publisher's burst, as fast as the server takes it: `count` messages of 64 bytes.
async fn publish(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    count: usize,
    bytes: usize,
) {
    for i in 0..count {
        let mut text = format!("m{i} ");
        text.extend(std::iter::repeat_n('x', bytes.saturating_sub(text.len())));
        ws.feed(Message::text(text)).await.unwrap();
    }
    ws.flush().await.unwrap();
}

/// A raw client that completes the handshake with a small receive buffer and never reads.
async fn stuck_client(addr: SocketAddr) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = socket.connect(addr).await.unwrap();
    let address = stuck.local_addr().unwrap().to_string();
    stuck
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stuck.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    (stuck, address)
}

/// One callback queueing 10 MB for a client that does not read cannot wait for room (the cook
/// thread never waits): past Max WebSocket Queue the sends fail, the client is closed with 1008,
/// and the console says so once, not once per message.
#[test]
fn sends_past_the_queue_limit_fail_and_close_the_client_with_one_warning() {
    let callbacks = r"
def onWebSocketReceiveText(webServerDAT, client, data):
    sent = sum(1 for i in range(10000) if webServerDAT.webSocketSendText(client, 'x' * 1024))
    op('events').appendRow(['flood', sent])

def onWebSocketClose(webServerDAT, client):
    op('events').appendRow(['close', client])
";
    let server = Server::start_with("\"pinginterval\": 0", callbacks);
    let rt = rt();
    let address = rt.block_on(async {
        use tokio::io::AsyncWriteExt;
        let (mut stuck, address) = stuck_client(server.addr()).await;
        // A masked text frame "go".
        stuck
            .write_all(&[0x81, 0x82, 1, 2, 3, 4, b'g' ^ 1, b'o' ^ 2])
            .await
            .unwrap();
        assert!(wait_until(Duration::from_secs(20), || server
            .events()
            .len()
            == 2));
        address
    });
    let events = server.events();
    assert_eq!(events[1], ["close", address.as_str()], "{events:?}");
    let sent: usize = events[0][1].parse().unwrap();
    // 4 MiB of queue at 1,088 counted bytes a message, plus what the socket took meanwhile.
    assert!((3000..10_000).contains(&sent), "{sent} sent");
    let console = server.console();
    assert_eq!(console.matches("could not keep up").count(), 1, "{console}");
    assert_eq!(console.matches("closed with 1008").count(), 1, "{console}");
}

/// A callback slower than its publisher: the messages read but not yet handled stay within
/// their byte budget (half of Max WebSocket Queue, 2 MiB by default) instead of filling the
/// engine's 4,096-event queue (40 MB of 10 KiB messages); the publisher waits in TCP instead.
#[test]
fn messages_waiting_for_a_slow_callback_are_bounded_in_bytes() {
    const MESSAGE_BYTES: usize = 10 * 1024;
    let callbacks = r"
import time

def onWebSocketReceiveBinary(webServerDAT, client, data):
    time.sleep(0.002)
";
    let server = Server::start_with("\"pinginterval\": 0", callbacks);
    let rt = rt();
    rt.block_on(async {
        let mut publisher = subscribers_one(&server, 1).await;
        let sender = tokio::spawn(async move {
            for _ in 0..3000 {
                if publisher
                    .feed(Message::binary(vec![7u8; MESSAGE_BYTES]))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            let _ = publisher.flush().await;
            publisher
        });
        let mut most_waiting = 0.0f64;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            let (read, handled) = {
                let engine = server.runner.engine.lock();
                let world = engine.world();
                let read: u64 = datpatch::ops::webserver::clients(world, server.web)
                    .iter()
                    .map(|c| c.messages_in)
                    .sum();
                let handled = info::channel(world, server.web, "messages_in").unwrap_or(0.0);
                (read as f64, handled)
            };
            most_waiting = most_waiting.max(read - handled);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // 2 MiB of budget is about 200 such messages; one more may be read before the wait.
        assert!(
            most_waiting > 20.0 && most_waiting <= 210.0,
            "at most {most_waiting} messages waited for the callback"
        );
        sender.abort();
    });
}

/// A burst is not a stuck client: 20,000 messages sent unpaced to 50 subscribers through a
/// Python relay all arrive, in order, and nobody is closed (they were all closed with 1008 when
/// queues were 1,024 messages and a full one meant "too slow").
#[test]
fn a_burst_of_20000_messages_reaches_50_subscribers_in_order_and_closes_nobody() {
    const MESSAGES: usize = 20_000;
    let server = Server::start_with("\"pinginterval\": 0", RELAY);
    let rt = rt();
    rt.block_on(async {
        let subscribers = subscribers(&server, 50, 0).await;
        let mut publisher = subscribers_one(&server, 51).await;
        let readers: Vec<_> = subscribers
            .into_iter()
            .map(|ws| read_in_order(ws, MESSAGES))
            .collect();
        publish(&mut publisher, MESSAGES, 64).await;
        let mut open = Vec::new();
        for reader in readers {
            let (received, ws) = reader.await.unwrap();
            assert_eq!(received, MESSAGES, "{}", server.console());
            open.push(ws);
        }
        assert!(server.events().is_empty(), "{:?}", server.events());
    });
    let console = server.console();
    assert!(!console.contains("1008"), "{console}");
}

async fn subscribers_one(
    server: &Server,
    total: usize,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut one = subscribers(server, 1, total - 1).await;
    one.remove(0)
}

/// A subscriber that stops reading holds the others back only for the write timeout: then it is
/// closed with 1008 (once, said once), its queue is freed and the others receive everything.
#[test]
fn a_subscriber_that_stops_reading_is_closed_after_the_write_timeout_and_the_rest_get_everything() {
    // 2,000-byte messages: 10 MB in all, far more than the stuck client's socket buffers hold.
    const MESSAGES: usize = 5000;
    let server = Server::start_with("\"pinginterval\": 0, \"writetimeout\": 1000", RELAY);
    let rt = rt();
    rt.block_on(async {
        let subscribers = subscribers(&server, 10, 0).await;
        let (stuck, stuck_address) = stuck_client(server.addr()).await;
        let mut publisher = subscribers_one(&server, 12).await;
        let readers: Vec<_> = subscribers
            .into_iter()
            .map(|ws| read_in_order(ws, MESSAGES))
            .collect();
        let started = Instant::now();
        publish(&mut publisher, MESSAGES, 2000).await;
        let mut open = Vec::new();
        for reader in readers {
            let (received, ws) = reader.await.unwrap();
            assert_eq!(received, MESSAGES, "{}", server.console());
            open.push(ws);
        }
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "the stuck client cannot have been closed before the write timeout"
        );
        assert_eq!(
            server.events(),
            [["close", stuck_address.as_str()]],
            "{}",
            server.console()
        );
        drop(stuck);
    });
    let console = server.console();
    assert_eq!(
        console.matches("took no data for 1000 ms").count(),
        1,
        "{console}"
    );
    assert!(!console.contains("could not keep up"), "{console}");
}

const RELAY_AND_ECHO: &str = r"
subscribers = []

def onWebSocketOpen(webServerDAT, client, uri):
    if uri == '/sub':
        subscribers.append(client)

def onWebSocketReceiveText(webServerDAT, client, data):
    if data.startswith('echo '):
        webServerDAT.webSocketSendText(client, data + ' ' + str(len(subscribers)))
    else:
        webServerDAT.webSocketSendText(subscribers, data)

def onWebSocketClose(webServerDAT, client):
    op('events').appendRow(['close', client])
";

/// A WebSocket client on `path` with a 4 KiB receive buffer, so what it does not read stays in
/// the server's queue for it rather than in the kernel.
async fn small_buffer_client(addr: SocketAddr, path: &str) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(
        format!("ws://{addr}{path}"),
        tokio_tungstenite::MaybeTlsStream::Plain(tcp),
    )
    .await
    .unwrap();
    ws
}

/// One round trip of the echo client: its reply, and how long it took.
async fn echo_round_trip(echo: &mut Client, text: &str) -> (Option<String>, Duration) {
    let started = Instant::now();
    echo.send(Message::text(text)).await.unwrap();
    let reply = match tokio::time::timeout(Duration::from_secs(5), echo.next()).await {
        Ok(Some(Ok(Message::Text(reply)))) => Some(reply.as_str().to_string()),
        _ => None,
    };
    (reply, started.elapsed())
}

/// A burst holds back its publisher, not everyone: while 3 subscribers do not read and the
/// queues a publisher's 20,000 relayed messages fill are past their high-water mark, a client
/// whose messages the callback answers only to itself still gets each answer promptly (with the
/// whole server's reading paused, as before, none came until the subscribers read); then the
/// subscribers get every message in order and nobody is closed.
#[test]
fn a_burst_holds_back_its_publisher_and_not_a_client_that_only_talks_to_itself() {
    // 20 MB for each subscriber: several times what the kernel's socket buffers take.
    const MESSAGES: usize = 20_000;
    let server = Server::start_with("\"pinginterval\": 0, \"maxqueue\": 1048576", RELAY_AND_ECHO);
    let rt = rt();
    rt.block_on(async {
        let mut subscribers = Vec::new();
        for _ in 0..3 {
            subscribers.push(small_buffer_client(server.addr(), "/sub").await);
        }
        let mut publisher = subscribers_one(&server, 4).await;
        let mut echo = subscribers_one(&server, 5).await;
        // Every subscriber's onWebSocketOpen has run before the burst.
        let deadline = Instant::now() + Duration::from_secs(10);
        while echo_round_trip(&mut echo, "echo -").await.0.as_deref() != Some("echo - 3") {
            assert!(Instant::now() < deadline, "the subscribers never opened");
        }
        let (go, ready) = tokio::sync::watch::channel(false);
        let readers: Vec<_> = subscribers
            .into_iter()
            .map(|ws| {
                let mut ready = ready.clone();
                tokio::spawn(async move {
                    let _ = ready.wait_for(|go| *go).await;
                    read_in_order(ws, MESSAGES).await.unwrap()
                })
            })
            .collect();
        let publishing = tokio::spawn(async move {
            publish(&mut publisher, MESSAGES, 1000).await;
            publisher
        });
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (reply, took) = echo_round_trip(&mut echo, &format!("echo {i}")).await;
            assert_eq!(
                reply.as_deref(),
                Some(format!("echo {i} 3").as_str()),
                "round trip {i} ({took:?}); {}",
                server.console()
            );
            assert!(
                took < Duration::from_millis(500),
                "round trip {i} took {took:?}"
            );
        }
        // The publisher was held back meanwhile: most of its burst is still unread.
        let handled = server.channel("messages_in");
        assert!(
            handled < (MESSAGES / 2) as f64,
            "{handled} messages handled"
        );
        go.send(true).unwrap();
        let mut open = Vec::new();
        for reader in readers {
            let (received, ws) = reader.await.unwrap();
            assert_eq!(received, MESSAGES, "{}", server.console());
            open.push(ws);
        }
        open.push(publishing.await.unwrap());
        assert!(server.events().is_empty(), "{:?}", server.events());
    });
    let console = server.console();
    assert!(!console.contains("1008"), "{console}");
}

struct TestCert {
    dir: tempfile::TempDir,
    cert_pem: String,
}

impl TestCert {
    fn new() -> TestCert {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert_pem = certified.cert.pem();
        std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
        std::fs::write(
            dir.path().join("key.pem"),
            certified.signing_key.serialize_pem(),
        )
        .unwrap();
        // The same key, PKCS#8-encrypted (PBES2: PBKDF2-SHA256 + AES-256-CBC) with "s3cret".
        let der = certified.signing_key.serialize_der();
        let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).unwrap();
        let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(
            2048,
            b"datpatch-salt",
            &[7u8; 16],
        )
        .unwrap();
        let encrypted = info.encrypt_with_params(params, "s3cret").unwrap();
        let pem = encrypted
            .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
            .unwrap();
        std::fs::write(dir.path().join("key-encrypted.pem"), pem.as_bytes()).unwrap();
        // A key that belongs to another certificate.
        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(
            dir.path().join("other-key.pem"),
            other.signing_key.serialize_pem(),
        )
        .unwrap();
        TestCert { dir, cert_pem }
    }

    fn path(&self, name: &str) -> String {
        self.dir
            .path()
            .join(name)
            .display()
            .to_string()
            .replace('\\', "/")
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(self.cert_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Arc::new(config)
    }
}

use rustls::pki_types::pem::PemObject;

fn https_get(cert: &TestCert, addr: SocketAddr, path: &str) -> HttpAnswer {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(cert.client_config(), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // Some servers close without close_notify; the answer is complete by then.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("{e}"),
    }
    parse_answer(&raw)
}

async fn wss_echo(cert: &TestCert, addr: SocketAddr) -> Message {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_tungstenite::Connector::Rustls(cert.client_config());
    let url = format!("wss://localhost:{}/secure", addr.port());
    let (mut ws, _) =
        tokio_tungstenite::client_async_tls_with_config(url, tcp, None, Some(connector))
            .await
            .unwrap();
    ws.send(Message::text("over tls")).await.unwrap();
    ws.next().await.unwrap().unwrap()
}

#[test]
fn https_and_wss_with_plain_and_encrypted_keys() {
    let cert = TestCert::new();
    let rt = rt();
    for (key, password) in [("key.pem", ""), ("key-encrypted.pem", "s3cret")] {
        let params = format!(
            "\"secure\": true, \"certificate\": \"{}\", \"privatekey\": \"{}\", \"password\": \"{password}\"",
            cert.path("cert.pem"),
            cert.path(key)
        );
        let server = Server::start(&params);
        assert_eq!(server.status_error(), None, "{}", server.console());
        let answer = https_get(&cert, server.addr(), "/echo");
        assert_eq!(answer.status, 200, "{key}");
        assert_eq!(
            rt.block_on(wss_echo(&cert, server.addr())),
            Message::text("echo:over tls"),
            "{key}"
        );
        // A plain-HTTP client on the TLS port gets nothing useful, and the server carries on.
        let mut plain = TcpStream::connect(server.addr()).unwrap();
        plain
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = plain.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut sink = Vec::new();
        let _ = plain.read_to_end(&mut sink);
        assert_eq!(https_get(&cert, server.addr(), "/echo").status, 200);
    }
}

#[test]
fn wrong_password_mismatched_key_missing_file_and_port_in_use_are_reported() {
    let cert = TestCert::new();
    let tls = |key: &str, password: &str| {
        format!(
            "\"secure\": true, \"certificate\": \"{}\", \"privatekey\": \"{}\", \"password\": \"{password}\"",
            cert.path("cert.pem"),
            cert.path(key)
        )
    };
    let cases = [
        (
            tls("key-encrypted.pem", "wrong"),
            "wrong certificate password",
        ),
        (tls("key-encrypted.pem", ""), "is encrypted"),
        (tls("other-key.pem", ""), "does not match the certificate"),
        (tls("no-such-key.pem", ""), "cannot read private key file"),
    ];
    for (params, expected) in cases {
        let server = Server::start(&params);
        let error = server.status_error().unwrap_or_default();
        assert!(error.contains(expected), "{params}: {error}");
        assert_eq!(server.channel("server_running"), 0.0);
        assert!(server.console().contains(expected));
        assert!(server.channel("errors") >= 1.0);
    }

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let server = Server::start(&format!(
        "\"localaddress\": \"127.0.0.1\", \"port\": {port}"
    ));
    let error = server.status_error().unwrap_or_default();
    assert!(
        error.contains(&format!("port {port} is already in use")),
        "{error}"
    );
    // Freeing the port and pulsing restart brings it up.
    drop(taken);
    server.apply(Command::Pulse {
        id: server.web,
        token: "restart".into(),
    });
    assert!(
        wait_until(Duration::from_secs(10), || server.channel("server_running")
            == 1.0),
        "{}",
        server.console()
    );
    assert_eq!(server.port(), port);
    assert_eq!(server.status_error(), None);
}

#[test]
fn oversized_header_body_and_message_are_refused() {
    let server = Server::start("\"maxbody\": 1000, \"maxmessage\": 1000");
    let addr = server.addr();
    let long_header = "a".repeat(100 * 1024);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(
        format!("GET /echo HTTP/1.1\r\nHost: x\r\nX-Long: {long_header}\r\n\r\n").as_bytes(),
    );
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    assert_eq!(parse_answer(&raw).status, 431);

    assert_eq!(http(addr, "POST", "/echo", &[], &[b'x'; 1001]).status, 413);
    assert_eq!(http(addr, "POST", "/echo", &[], &[b'x'; 1000]).status, 200);

    // A chunked body that grows past the limit is cut off too.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    for _ in 0..3 {
        let _ = stream.write_all(format!("258\r\n{}\r\n", "y".repeat(600)).as_bytes());
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    assert_eq!(parse_answer(&raw).status, 413);

    let rt = rt();
    rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap();
        ws.send(Message::text("z".repeat(2000))).await.unwrap();
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    assert_eq!(u16::from(frame.code), 1009);
                    break;
                }
                Some(Ok(_)) => continue,
                other => panic!("expected a 1009 close, got {other:?}"),
            }
        }
    });
    assert_eq!(http(addr, "GET", "/echo", &[], b"").status, 200);
}

#[test]
fn a_thousand_abrupt_connections_leave_the_server_answering() {
    let server = Server::start("");
    let addr = server.addr();
    for i in 0..1000 {
        let mut stream = TcpStream::connect(addr).unwrap();
        // Half send a partial request, half nothing; all vanish without a goodbye.
        if i % 2 == 0 {
            let _ = stream.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\nContent-Le");
        }
        drop(stream);
    }
    let rt = rt();
    rt.block_on(async {
        for _ in 0..20 {
            let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
                .await
                .unwrap();
            drop(ws); // no close frame
        }
    });
    assert_eq!(http(addr, "GET", "/echo", &[], b"").status, 200);
    assert!(wait_until(Duration::from_secs(10), || server
        .channel("websocket_connections")
        == 0.0));
    assert_eq!(http(addr, "GET", "/echo", &[], b"").status, 200);
}

#[test]
fn requests_are_answered_between_frames_by_the_cook_thread_alone() {
    // One frame every 5 s: an answer within 2 s shows events wake the cook thread at once.
    let text = r#"(
    settings: (cook_rate_hz: 0.2),
    nodes: [
        (id: 1, name: "web", kind: WebServer, params: {"port": 0}),
        (id: 2, name: "web_callbacks", kind: Text, text: "
def onHTTPRequest(webServerDAT, request, response):
    response['statusCode'] = 200
    response['data'] = 'frame ' + str(absTime.frame)
    return response
"),
    ],
    wires: [(from: 2, to: 1, input: Callbacks)],
)"#;
    let project = load_str(text, Path::new("slow_frames.ron")).unwrap();
    let runner = Runner::start(project, Path::new("."), None).unwrap();
    let port =
        || info::channel(runner.engine.lock().world(), NodeId(1), "port").unwrap_or(0.0) as u16;
    assert!(wait_until(Duration::from_secs(10), || port() != 0));
    let started = Instant::now();
    let answer = http(
        SocketAddr::from(([127, 0, 0, 1], port())),
        "GET",
        "/",
        &[],
        b"",
    );
    assert_eq!(answer.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered after {:?}",
        started.elapsed()
    );
}

#[test]
fn parameters_restart_only_the_listener_and_stop_runs_on_server_stop() {
    let server = Server::start("");
    let first_port = server.port();
    // Limits change live: no restart, no new onServerStart.
    server.apply(Command::SetParam {
        id: server.web,
        token: "maxbody".into(),
        value: ParValue::Int(10),
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(wait_until(Duration::from_secs(5), || http(
        server.addr(),
        "POST",
        "/echo",
        &[],
        &[b'x'; 11]
    )
    .status
        == 413));
    assert_eq!(server.port(), first_port);
    // Turning it off runs onServerStop; on again runs onServerStart.
    server.apply(Command::SetParam {
        id: server.web,
        token: "active".into(),
        value: ParValue::Bool(false),
    });
    assert!(wait_until(Duration::from_secs(5), || server
        .channel("server_running")
        == 0.0));
    server.apply(Command::SetParam {
        id: server.web,
        token: "active".into(),
        value: ParValue::Bool(true),
    });
    assert!(wait_until(Duration::from_secs(5), || server
        .channel("server_running")
        == 1.0));
    let rows: Vec<String> = server.events().into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(rows, ["start", "stop", "start"]);
}

#[test]
fn a_new_web_server_dat_comes_with_its_wired_callbacks() {
    let rt = rt();
    let (mut engine, mut events) =
        datpatch::runner::new_engine(datpatch::project::Project::default(), rt.handle().clone());
    let created = engine
        .apply(Command::AddNode {
            kind: datpatch::schema::OpKind::WebServer,
            name: None,
            pos: (0.0, 0.0),
        })
        .unwrap()
        .created;
    assert_eq!(created.len(), 2);
    let callbacks = engine.project().node(created[1]).unwrap();
    assert_eq!(callbacks.name, "webserver1_callbacks");
    assert!(
        callbacks
            .text
            .as_deref()
            .unwrap()
            .contains("def onHTTPRequest(webServerDAT, request, response):")
    );
    assert_eq!(
        engine
            .project()
            .input_of(created[0], datpatch::schema::Input::Callbacks),
        Some(created[1])
    );
    engine
        .apply(Command::SetParam {
            id: created[0],
            token: "port".into(),
            value: ParValue::Int(0),
        })
        .unwrap();
    engine.cook_frame();
    let port = info::channel(engine.world(), created[0], "port").unwrap() as u16;
    // No cook thread here: this test hands the request event to the engine itself.
    let client = std::thread::spawn(move || {
        http(
            SocketAddr::from(([127, 0, 0, 1], port)),
            "GET",
            "/",
            &[],
            b"",
        )
    });
    let event = events.blocking_recv().unwrap();
    engine.handle_event(event);
    let answer = client.join().unwrap();
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (200, "<b>datpatch: </b>webserver1")
    );
    engine.shutdown();
}

#[cfg(unix)]
#[test]
fn example_project_runs_headless_with_a_port_override() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("projects/webserver_basic.ron");
    let (mut child, rx) =
        spawn_datpatch(["run", &project.display().to_string(), "--set", "web.port=0"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], listening_port(&rx)));
    let status = http(addr, "GET", "/api/status", &[], b"");
    assert_eq!(status.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(json["server"], "web");
    let page = http(addr, "GET", "/", &[], b"");
    assert!(page.text().contains("<h1>datpatch web server</h1>"));
    let auth = basic("ada:lovelace");
    assert_eq!(
        http(addr, "GET", "/private", &[("Authorization", &auth)], b"").status,
        200
    );
    assert_eq!(http(addr, "GET", "/private", &[], b"").status, 401);
    std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(child.0.wait().unwrap().success());
}

const FILE_CALLBACKS: &str = r"
def onHTTPRequest(webServerDAT, request, response):
    if request['uri'] == '/api':
        response['statusCode'] = 200
        response['data'] = 'from the callback'
    elif 'savedPath' in request:
        op('events').appendRow(['saved', request['savedPath'], request['method'], request['data']])
    return response
";

#[test]
fn static_files_with_304_206_and_traversal_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("site");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("style.css"), "body{}").unwrap();
    std::fs::write(root.join("sub/page.txt"), "sub page").unwrap();
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("data.bin"), &data).unwrap();
    // Past 64 KiB a file is streamed from disk in chunks rather than read whole.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(dir.path().join("secret.txt"), "do not serve").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path(), root.join("escape")).unwrap();

    let params = format!("\"staticroot\": \"{}\"", root.display());
    let server = Server::start_with(&params, FILE_CALLBACKS);
    let addr = server.addr();

    let home = http(addr, "GET", "/", &[], b"");
    assert_eq!((home.status, home.text().as_str()), (200, "<h1>home</h1>"));
    assert_eq!(
        home.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        http(addr, "GET", "/style.css", &[], b"").header("content-type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(
        http(addr, "GET", "/sub/page.txt", &[], b"").text(),
        "sub page"
    );
    assert_eq!(
        http(addr, "GET", "/api", &[], b"").text(),
        "from the callback"
    );

    let full = http(addr, "GET", "/data.bin", &[], b"");
    assert_eq!(full.body, data);
    let etag = full.header("etag").unwrap().to_string();
    let cached = http(addr, "GET", "/data.bin", &[("If-None-Match", &etag)], b"");
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    let part = http(addr, "GET", "/data.bin", &[("Range", "bytes=10-19")], b"");
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(part.body, &data[10..20]);
    let streamed = http(addr, "GET", "/big.bin", &[], b"");
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.header("content-length"), Some("3000000"));
    assert!(streamed.body == big, "the streamed file differs");
    let streamed_range = http(
        addr,
        "GET",
        "/big.bin",
        &[("Range", "bytes=100000-399999")],
        b"",
    );
    assert_eq!(streamed_range.status, 206);
    assert_eq!(
        streamed_range.header("content-range"),
        Some("bytes 100000-399999/3000000")
    );
    assert!(
        streamed_range.body == big[100_000..400_000],
        "the streamed range differs"
    );

    // Last-Modified, and the validators that use it.
    let last_modified = full.header("last-modified").unwrap().to_string();
    assert!(last_modified.ends_with(" GMT"), "{last_modified}");
    let unchanged = http(
        addr,
        "GET",
        "/data.bin",
        &[("If-Modified-Since", &last_modified)],
        b"",
    );
    assert_eq!(unchanged.status, 304);
    let old_date = "Mon, 01 Jan 2001 00:00:00 GMT";
    let changed = http(
        addr,
        "GET",
        "/data.bin",
        &[("If-Modified-Since", old_date)],
        b"",
    );
    assert_eq!((changed.status, changed.body.len()), (200, 1000));
    // If-Range: a matching validator gets the range, a stale one the whole file.
    for (validator, status, bytes) in [
        (etag.as_str(), 206, 10),
        (last_modified.as_str(), 206, 10),
        ("\"stale\"", 200, 1000),
        (old_date, 200, 1000),
    ] {
        let answer = http(
            addr,
            "GET",
            "/data.bin",
            &[("Range", "bytes=10-19"), ("If-Range", validator)],
            b"",
        );
        assert_eq!(
            (answer.status, answer.body.len()),
            (status, bytes),
            "{validator}"
        );
    }
    let tail = http(addr, "GET", "/data.bin", &[("Range", "bytes=-5")], b"");
    assert_eq!(tail.body, &data[995..]);
    let beyond = http(addr, "GET", "/data.bin", &[("Range", "bytes=2000-")], b"");
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), Some("bytes */1000"));
    let head = raw_request(
        addr,
        "HEAD /data.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("1000"))
    );
    assert!(head.body.is_empty());

    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/escape/secret.txt",
        "//etc/passwd",
        "/..\\secret.txt",
        "/nothing.txt",
    ] {
        let answer = raw_request(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert!(
            answer.status == 404 || answer.status == 400,
            "{path}: {}",
            answer.status
        );
        assert!(!answer.text().contains("do not serve"), "{path} leaked");
    }
    // An absolute-form target names a path too; it must not escape either.
    let absolute = raw_request(
        addr,
        "GET http://x/../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(!absolute.text().contains("do not serve"));
    // POST never serves files.
    assert_eq!(http(addr, "POST", "/index.html", &[], b"").status, 404);
}

/// Forty uploads of one name at once: forty files, each whole, none written over.
#[test]
fn concurrent_uploads_of_one_name_never_overwrite_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    let params = format!("\"uploadfolder\": \"{}\"", up.display());
    let server = Server::start_with(&params, FILE_CALLBACKS);
    let addr = server.addr();
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let uploads: Vec<_> = (0..40)
            .map(|i| {
                scope.spawn(move || {
                    let body = format!("upload number {i}");
                    let answer = http(addr, "POST", "/uploads/same.txt", &[], body.as_bytes());
                    (answer.status, answer.text())
                })
            })
            .collect();
        uploads.into_iter().map(|u| u.join().unwrap()).collect()
    });
    assert!(
        answers.iter().all(|(status, _)| *status == 201),
        "{answers:?}"
    );
    let mut names: Vec<&String> = answers.iter().map(|(_, name)| name).collect();
    names.sort();
    names.dedup();
    assert_eq!(
        names.len(),
        40,
        "two uploads were given one name: {answers:?}"
    );
    let mut contents: Vec<String> = names
        .iter()
        .map(|name| std::fs::read_to_string(up.join(name)).unwrap())
        .collect();
    contents.sort();
    let mut expected: Vec<String> = (0..40).map(|i| format!("upload number {i}")).collect();
    expected.sort();
    assert_eq!(contents, expected);
    let files = std::fs::read_dir(&up).unwrap().count();
    assert_eq!(files, 40, "no temporary file is left");
}

#[test]
fn uploads_are_saved_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    let params = format!("\"uploadfolder\": \"{}\", \"maxbody\": 5000", up.display());
    let server = Server::start_with(&params, FILE_CALLBACKS);
    let addr = server.addr();
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(&up)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };

    let first = http(addr, "POST", "/uploads/hello.txt", &[], b"hi there");
    assert_eq!((first.status, first.text().as_str()), (201, "hello.txt"));
    assert_eq!(std::fs::read(up.join("hello.txt")).unwrap(), b"hi there");
    let second = http(addr, "PUT", "/uploads/hello.txt", &[], b"again");
    assert_eq!(second.text(), "hello-1.txt");
    let sneaky = http(addr, "POST", "/uploads/..%2f..%2fevil.sh", &[], b"#!");
    assert_eq!((sneaky.status, sneaky.text().as_str()), (201, "evil.sh"));
    assert!(!dir.path().join("evil.sh").exists());

    // Too large, declared: refused before any byte is stored.
    assert_eq!(
        http(addr, "POST", "/uploads/big.bin", &[], &[0u8; 6000]).status,
        413
    );
    // Too large, chunked: cut off, and the partial file removed.
    let chunk = format!("{:x}\r\n{}\r\n", 3000, "c".repeat(3000));
    let chunked = raw_request(
        addr,
        &format!(
            "POST /uploads/chunked.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n"
        ),
    );
    assert_eq!(chunked.status, 413);
    // Interrupted mid-body: the client vanishes after 1000 of 4000 bytes.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"POST /uploads/cut.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n")
        .unwrap();
    stream.write_all(&[1u8; 1000]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(stream);

    assert!(
        wait_until(Duration::from_secs(10), || listing()
            == ["evil.sh", "hello-1.txt", "hello.txt"]),
        "{:?}",
        listing()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(listing(), ["evil.sh", "hello-1.txt", "hello.txt"]);

    let saved: Vec<String> = server
        .events()
        .iter()
        .filter(|r| r[0] == "saved")
        .map(|r| r[1].clone())
        .collect();
    assert_eq!(saved.len(), 3, "{:?}", server.events());
    assert!(
        saved[0].ends_with("hello.txt") && Path::new(&saved[0]).is_absolute()
            || saved[0].contains("up")
    );
    assert!(
        server
            .events()
            .iter()
            .filter(|r| r[0] == "saved")
            .all(|r| r[3].is_empty()),
        "bodies of uploads are not held in memory"
    );
}

#[test]
fn nanollm_frames_are_decoded_answered_and_malformed_ones_counted() {
    use datpatch::net::nanollm;
    let callbacks = r"
def onWebSocketReceiveFrame(webServerDAT, client, frame):
    op('events').appendRow(['frame', frame['msg_id'], frame['type'], frame['size'],
                            frame['metadata'], frame['text']])
    webServerDAT.webSocketSendFramed(client, 'json', {'echo': frame['text'], 'type': frame['type']},
                                     'reply')
";
    let server = Server::start_with("\"format\": \"nanollm\"", callbacks);
    let rt = rt();
    let replies = rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", server.addr()))
            .await
            .unwrap();
        ws.send(Message::binary(nanollm::encode(
            10,
            1_700_000_000_000,
            1,
            "txt",
            b"hello",
        )))
        .await
        .unwrap();
        ws.send(Message::binary(vec![0u8; 12])).await.unwrap();
        let mut bad_magic = nanollm::encode(11, 1, 1, "", b"x").to_vec();
        bad_magic[16] = 9;
        ws.send(Message::binary(bad_magic)).await.unwrap();
        let mut mismatch = nanollm::encode(12, 1, 2, "", b"abcd").to_vec();
        mismatch.pop();
        ws.send(Message::binary(mismatch)).await.unwrap();
        ws.send(Message::binary(nanollm::encode(
            13,
            1,
            5,
            "png",
            &[1, 2, 3],
        )))
        .await
        .unwrap();
        let mut replies = Vec::new();
        while replies.len() < 2 {
            if let Message::Binary(b) = ws.next().await.unwrap().unwrap() {
                replies.push(nanollm::decode(&b).unwrap());
            }
        }
        replies
    });
    assert_eq!(
        replies.iter().map(|f| f.msg_id).collect::<Vec<_>>(),
        [0, 1],
        "msg_id counts up per connection"
    );
    assert!(replies.iter().all(|f| f.kind == 0 && f.metadata == "reply"));
    let first: serde_json::Value = serde_json::from_slice(&replies[0].payload).unwrap();
    assert_eq!(first, serde_json::json!({"echo": "hello", "type": "text"}));
    let frames: Vec<Vec<String>> = server
        .events()
        .into_iter()
        .filter(|r| r[0] == "frame")
        .collect();
    assert_eq!(frames[0], ["frame", "10", "text", "5", "txt", "hello"]);
    assert_eq!(frames[1], ["frame", "13", "image", "3", "png", "01 02 03"]);
    assert_eq!(server.channel("malformed_frames"), 3.0);
    let console = server.console();
    assert!(
        console.contains("short NanoLLM frame")
            && console.contains("magic")
            && console.contains("size mismatch"),
        "{console}"
    );
}

// ---- Python as TouchDesigner users write it ----

/// The Web Server DAT callbacks template a new DAT gets (TouchDesigner's, tabs and all), used as
/// it is.
const TD_TEMPLATE: &str = datpatch::ops::webserver::callbacks::DEFAULT_CALLBACKS;

/// The next text or binary message, skipping the server's keepalive pings.
async fn next_data<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no message within 10 s")
            .expect("the connection ended")
            .unwrap();
        if matches!(message, Message::Text(_) | Message::Binary(_)) {
            return message;
        }
    }
}

#[test]
fn touchdesigners_default_template_serves_echoes_and_answers_one_pong_per_ping() {
    let server = Server::start_with("", TD_TEMPLATE);
    let page = http(server.addr(), "GET", "/", &[], b"");
    assert_eq!(
        (page.status, page.text().as_str()),
        (200, "<b>datpatch: </b>web"),
        "{}",
        server.console()
    );
    assert_eq!(page.reason, "OK");
    let rt = rt();
    let (first_pong, later) = rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", server.addr()))
            .await
            .unwrap();
        ws.send(Message::text("hello td")).await.unwrap();
        assert_eq!(next_data(&mut ws).await, Message::text("hello td"));
        let binary = vec![0u8, 159, 146, 150, 255];
        ws.send(Message::binary(binary.clone())).await.unwrap();
        assert_eq!(next_data(&mut ws).await, Message::binary(binary));

        ws.send(Message::Ping("are you there".into()))
            .await
            .unwrap();
        let first_pong = loop {
            let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("no pong within 10 s")
                .unwrap()
                .unwrap();
            if let Message::Pong(payload) = message {
                break payload.to_vec();
            }
        };
        // Whatever else arrives in the next 300 ms: a second pong would be the template's.
        let mut later = Vec::new();
        let until = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Ok(Some(message)) = tokio::time::timeout_at(until, ws.next()).await {
            later.push(message.unwrap());
        }
        // Still echoing after the ping.
        ws.send(Message::text("after the ping")).await.unwrap();
        assert_eq!(next_data(&mut ws).await, Message::text("after the ping"));
        ws.close(None).await.unwrap();
        (first_pong, later)
    });
    assert_eq!(first_pong, b"are you there");
    assert!(
        !later.iter().any(|m| matches!(m, Message::Pong(_))),
        "a second pong: {later:?}"
    );
    assert_eq!(server.channel("errors"), 0.0, "{}", server.console());
}

#[test]
fn the_older_two_argument_on_web_socket_open_is_called() {
    let callbacks = r"
def onWebSocketOpen(webServerDAT, client):
    op('events').appendRow(['open', client])
    webServerDAT.webSocketSendText(client, 'welcome ' + client)

def onWebSocketReceiveText(webServerDAT, client, data):
    webServerDAT.webSocketSendText(client, data)
";
    let server = Server::start_with("", callbacks);
    let rt = rt();
    let (client, greeting, echo) = rt.block_on(async {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/old?x=1", server.addr()))
                .await
                .unwrap();
        let client = match ws.get_ref() {
            tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.local_addr().unwrap().to_string(),
            _ => unreachable!(),
        };
        let greeting = next_data(&mut ws).await;
        ws.send(Message::text("still echoing")).await.unwrap();
        let echo = next_data(&mut ws).await;
        ws.close(None).await.unwrap();
        (client, greeting, echo)
    });
    assert_eq!(
        greeting,
        Message::text(format!("welcome {client}")),
        "{}",
        server.console()
    );
    assert_eq!(echo, Message::text("still echoing"));
    assert_eq!(server.events(), [vec!["open".to_string(), client]]);
    let console = server.console();
    assert!(!console.contains("is not called"), "{console}");
    assert_eq!(server.channel("errors"), 0.0, "{console}");
}

#[test]
fn a_runaway_callback_is_stopped_while_another_web_server_dat_answers() {
    let text = r####"(
    version: 2,
    settings: (script: (time_limit_ms: 500)),
    nodes: [
        (id: 1, name: "web1", kind: WebServer, params: {"port": 0, "requesttimeout": 3000}),
        (id: 2, name: "web1_callbacks", kind: Text, params: {"language": "python"}, text: r###"
def onHTTPRequest(webServerDAT, request, response):
    if request['uri'] == '/spin':
        while True:
            pass
    response['statusCode'] = 200
    response['data'] = webServerDAT.name + ' ' + request['uri']
    return response
"###),
        (id: 3, name: "web2", kind: WebServer, params: {"port": 0, "requesttimeout": 3000}),
        (id: 4, name: "web2_callbacks", kind: Text, params: {"language": "python"}, text: r###"
def onHTTPRequest(webServerDAT, request, response):
    response['statusCode'] = 200
    response['data'] = webServerDAT.name + ' answers'
    return response
"###),
    ],
    wires: [(from: 2, to: 1, input: Callbacks), (from: 4, to: 3, input: Callbacks)],
)"####;
    let project = load_str(text, Path::new("runaway.ron")).unwrap_or_else(|e| panic!("{e}"));
    let runner = Runner::start(project, Path::new("."), None).unwrap();
    let port = |id: u64| {
        info::channel(runner.engine.lock().world(), NodeId(id), "port").unwrap_or(0.0) as u16
    };
    assert!(wait_until(Duration::from_secs(20), || port(1) != 0 && port(3) != 0));
    let web1 = SocketAddr::from(([127, 0, 0, 1], port(1)));
    let web2 = SocketAddr::from(([127, 0, 0, 1], port(3)));
    let console = || console_text(runner.engine.lock().world());
    let warm = http(web1, "GET", "/warm", &[], b"");
    assert_eq!(
        (warm.status, warm.text().as_str()),
        (200, "web1 /warm"),
        "{}",
        console()
    );

    let spinning = std::thread::spawn(move || {
        let started = Instant::now();
        let answer = http(web1, "GET", "/spin", &[], b"");
        (answer, started.elapsed())
    });
    // Let the runaway start, then ask the other server.
    std::thread::sleep(Duration::from_millis(150));
    let started = Instant::now();
    let other = http(web2, "GET", "/", &[], b"");
    let other_took = started.elapsed();
    let (spin, spin_took) = spinning.join().unwrap();

    assert_eq!(
        (other.status, other.text().as_str()),
        (200, "web2 answers"),
        "{}",
        console()
    );
    assert!(
        other_took < Duration::from_secs(3),
        "web2 answered after {other_took:?}"
    );
    assert!(
        spin.status == 500 || spin.status == 503,
        "{}: {}",
        spin.status,
        console()
    );
    assert!(
        spin_took < Duration::from_secs(3),
        "the runaway was stopped after {spin_took:?}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || console()
            .contains("ran past the time limit")),
        "{}",
        console()
    );
    let after = http(web1, "GET", "/after", &[], b"");
    assert_eq!(
        (after.status, after.text().as_str()),
        (200, "web1 /after"),
        "{}",
        console()
    );
    assert_eq!(http(web2, "GET", "/", &[], b"").text(), "web2 answers");
}

const BROKEN_CALLBACKS: &str = r"
def greeting(name):
    raise ValueError('no greeting for ' + name)

def onHTTPRequest(webServerDAT, request, response):
    response['statusCode'] = 200
    response['data'] = greeting(request['pars'].get('name', 'world'))
    return response
";

#[test]
fn a_traceback_names_the_dat_and_line_and_fixing_the_text_clears_it() {
    let server = Server::start_with("", BROKEN_CALLBACKS);
    let text_dat = NodeId(2);
    let line_of = |needle: &str| {
        BROKEN_CALLBACKS
            .lines()
            .position(|l| l.contains(needle))
            .unwrap()
            + 1
    };
    let raise_line = line_of("raise ValueError");
    let call_line = line_of("= greeting(");
    let failed = http(server.addr(), "GET", "/?name=ada", &[], b"");
    assert_eq!(failed.status, 500, "{}", server.console());

    let console = server.console();
    assert!(
        console.contains(&format!(
            "line {raise_line}: onHTTPRequest: ValueError: no greeting for ada"
        )),
        "{console}"
    );
    assert!(
        console.contains(&format!(
            "web_callbacks line {raise_line}, in greeting <- web_callbacks line {call_line}, in onHTTPRequest"
        )),
        "{console}"
    );
    let (last_error, script_error) = {
        let engine = server.runner.engine.lock();
        let world = engine.world();
        (
            world.state(server.web).unwrap().last_error.clone().unwrap(),
            world.state(text_dat).unwrap().script_error.clone(),
        )
    };
    assert_eq!(last_error.line, Some(raise_line));
    assert_eq!(last_error.script_node, Some(text_dat));
    assert!(last_error.text.contains("ValueError"), "{last_error:?}");
    let script_error = script_error.expect("the Text DAT is marked");
    assert_eq!(script_error.line, Some(raise_line));

    server.apply(Command::SetText {
        id: text_dat,
        text: BROKEN_CALLBACKS.replace(
            "raise ValueError('no greeting for ' + name)",
            "return 'hello ' + name",
        ),
    });
    let fixed = http(server.addr(), "GET", "/?name=ada", &[], b"");
    assert_eq!(
        (fixed.status, fixed.text().as_str()),
        (200, "hello ada"),
        "{}",
        server.console()
    );
    let engine = server.runner.engine.lock();
    let state = engine.world().state(text_dat).unwrap();
    assert!(state.script_error.is_none(), "{:?}", state.script_error);
    // The call that worked also took back the "last error" the script had left on the server.
    let web = engine.world().state(server.web).unwrap();
    assert!(web.last_error.is_none(), "{:?}", web.last_error);
}

/// A blank Local Address listens on IPv6 and IPv4 alike (one dual-stack socket); an IPv4 client
/// is seen as a.b.c.d, not ::ffff:a.b.c.d.
#[test]
fn a_blank_local_address_answers_ipv4_and_ipv6_clients() {
    let server = Server::start_with(
        "\"localaddress\": \"\"",
        r"
def onHTTPRequest(webServerDAT, request, response):
    response['statusCode'] = 200
    response['data'] = request['clientAddress'].rsplit(':', 1)[0]
    return response
",
    );
    let v4 = http(server.addr(), "GET", "/", &[], b"");
    assert_eq!((v4.status, v4.text().as_str()), (200, "127.0.0.1"));
    let v6_addr = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, server.port()));
    // A machine without IPv6 on loopback listens on IPv4 only; nothing more to check there.
    if std::net::TcpStream::connect(v6_addr).is_ok() {
        let v6 = http(v6_addr, "GET", "/", &[], b"");
        assert_eq!((v6.status, v6.text().as_str()), (200, "[::1]"));
    }
}
