//! Hostile input and faults against a running Web Server DAT, over raw TCP on 127.0.0.1:
//! smuggling attempts, malformed requests, slow and idle clients, broken WebSocket frames, runaway
//! callbacks, failed saves, peers that vanish mid-message and SIGTERM with clients connected.
//! After every attack the server must still answer a normal request.
// Test clients run on threads of their own and report over std channels.
#![allow(clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::{console_text, listening_port, spawn_datpatch, wait_until};
use datpatch::engine::info;
use datpatch::project::{self, NodeId, load_str};
use datpatch::runner::Runner;

const CALLBACKS: &str = r"
def onHTTPRequest(webServerDAT, request, response):
    op('events').appendRow(['http', request['method'], request['uri']])
    if request['uri'] == '/loop':
        n = 0
        while True:
            n += 1
    if request['uri'] == '/recurse':
        return deeper(0)
    if request['uri'] == '/slow':
        import time
        time.sleep(0.5)
    if request['uri'] == '/huge':
        response['statusCode'] = 200
        response['data'] = 'x' * 32000000
        return response
    response['statusCode'] = 200
    response['data'] = 'ok ' + request['method'] + ' ' + request['uri'] + ' ' + str(len(request['data']))
    return response

def deeper(n):
    return deeper(n + 1)

def onWebSocketOpen(webServerDAT, client, uri):
    op('events').appendRow(['open', client, uri])

def onWebSocketClose(webServerDAT, client):
    op('events').appendRow(['close', client])

def onWebSocketReceiveText(webServerDAT, client, data):
    op('events').appendRow(['text', client, data])
    webServerDAT.webSocketSendText(client, data)

def onWebSocketReceiveBinary(webServerDAT, client, data):
    op('events').appendRow(['binary', client, len(data)])
    webServerDAT.webSocketSendBinary(client, data)
";

struct Server {
    runner: Runner,
    web: NodeId,
}

impl Server {
    fn start(params: &str) -> Server {
        let text = format!(
            r####"(
    version: 2,
    settings: (script: (time_limit_ms: 1000)),
    nodes: [
        (id: 1, name: "web", kind: WebServer, params: {{"port": 0, "localaddress": "127.0.0.1", {params}}}),
        (id: 2, name: "web_callbacks", kind: Text, params: {{"language": "python"}}, text: r###"{CALLBACKS}"###),
        (id: 3, name: "events", kind: Table),
    ],
    wires: [(from: 2, to: 1, input: Callbacks)],
)"####
        );
        let project = load_str(&text, Path::new("hostile.ron")).unwrap_or_else(|e| panic!("{e}"));
        let runner = Runner::start(project, Path::new("."), None).unwrap();
        let server = Server {
            runner,
            web: NodeId(1),
        };
        assert!(
            wait_until(Duration::from_secs(20), || server.channel("port") > 0.0),
            "server never started"
        );
        server
    }

    fn channel(&self, name: &str) -> f64 {
        info::channel(self.runner.engine.lock().world(), self.web, name).unwrap_or(-1.0)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.channel("port") as u16))
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

    fn uris_seen(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|r| r[0] == "http")
            .map(|r| r[2].clone())
            .collect()
    }

    fn console(&self) -> String {
        console_text(self.runner.engine.lock().world())
    }

    /// A normal request still gets its answer, promptly.
    fn assert_healthy(&self, after: &str) {
        let started = Instant::now();
        let (raw, _) = exchange(
            self.addr(),
            b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(
            status(&raw),
            Some(200),
            "no answer after {after}: {:?}",
            String::from_utf8_lossy(&raw)
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "slow answer ({:?}) after {after}",
            started.elapsed()
        );
    }
}

/// Sends `bytes` on a fresh connection and reads until the server closes it (or 10 s pass).
/// Returns what came back and whether the server closed the connection.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(bytes);
    read_until_closed(&mut stream)
}

fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (raw, true),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (raw, false);
            }
            // A reset is a close too.
            Err(_) => return (raw, true),
        }
    }
}

/// The status of the first response in `raw`.
fn status(raw: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(raw);
    let line = text.lines().next()?;
    let rest = line.strip_prefix("HTTP/1.1 ")?;
    rest.get(..3)?.parse().ok()
}

fn responses(raw: &[u8]) -> usize {
    String::from_utf8_lossy(raw).matches("HTTP/1.1 ").count()
}

#[test]
fn smuggling_attempts_are_refused_or_answered_once_and_closed() {
    let server = Server::start("");
    let addr = server.addr();
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    // Each: a request whose length is ambiguous, followed by a request a front end would not see.
    let attempts = [
        // Content-Length and Transfer-Encoding, both orders: chunked wins and the connection closes.
        format!(
            "POST /cl-te HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST /te-cl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        // Two different lengths, in two headers or one.
        format!(
            "POST /dup-cl HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello{smuggled}"
        ),
        format!(
            "POST /list-cl HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 40\r\n\r\nhello{smuggled}"
        ),
        // Lengths that are not plain digits.
        format!("POST /plus-cl HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello{smuggled}"),
        format!("POST /neg-cl HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{smuggled}"),
        format!("POST /hex-cl HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello{smuggled}"),
        format!(
            "POST /huge-cl HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n{smuggled}"
        ),
        // Transfer codings that do not end in chunked, or are disguised.
        format!("POST /gzip-te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n{smuggled}"),
        format!(
            "POST /chunked-gzip HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST /xchunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST /space-te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello{smuggled}"
        ),
        format!(
            "POST /folded-te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        // Chunked in HTTP/1.0, which has no chunked coding.
        format!(
            "POST /te-10 HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        // A chunk size that overflows, and one with junk after it.
        format!(
            "POST /chunk-overflow HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nx\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST /chunk-junk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 junk\r\nhello\r\n0\r\n\r\n{smuggled}"
        ),
    ];
    for attempt in &attempts {
        let name = attempt.split_whitespace().nth(1).unwrap();
        let (raw, closed) = exchange(addr, attempt.as_bytes());
        let text = String::from_utf8_lossy(&raw);
        assert!(closed, "{name}: connection left open: {text:?}");
        assert!(
            responses(&raw) <= 1,
            "{name}: answered more than one request: {text:?}"
        );
        let got = status(&raw);
        assert!(
            matches!(got, Some(200 | 400 | 413 | 501) | None),
            "{name}: unexpected answer {text:?}"
        );
        if got == Some(200) {
            // Only the first interpretation of an unambiguous body: chunked, empty.
            assert!(
                text.ends_with(&format!("ok POST {name} 0")),
                "{name}: {text:?}"
            );
        }
        server.assert_healthy(name);
    }
    let seen = server.uris_seen();
    assert!(
        !seen.iter().any(|u| u == "/smuggled"),
        "a smuggled request reached the callback: {seen:?}"
    );
    // Ambiguous lengths never reach the callback at all.
    for refused in [
        "/dup-cl", "/list-cl", "/plus-cl", "/neg-cl", "/hex-cl", "/gzip-te",
    ] {
        assert!(!seen.iter().any(|u| u == refused), "{refused}: {seen:?}");
    }
}

#[test]
fn malformed_request_lines_and_headers_are_refused() {
    let server = Server::start("");
    let addr = server.addr();
    let many_headers: String = (0..10_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let long_line = "a".repeat(100 * 1024);
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        (
            "method with @",
            b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "method with a control byte",
            b"GE\x01T / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "method in parentheses",
            b"(GET) / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "no method",
            b" / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "version 1.2",
            b"GET / HTTP/1.2\r\nHost: x\r\n\r\n".to_vec(),
            &[400, 505],
        ),
        (
            "version 2.0",
            b"GET / HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(),
            &[400, 505],
        ),
        ("version 0.9", b"GET /\r\n\r\n".to_vec(), &[400]),
        (
            "protocol FOO",
            b"GET / FOO/1.1\r\nHost: x\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "version with junk",
            b"GET / HTTP/1.1x\r\nHost: x\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            &[400, 505],
        ),
        (
            "header without colon",
            b"GET / HTTP/1.1\r\nHost x\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "header name with space",
            b"GET / HTTP/1.1\r\nHost: x\r\nX Y: z\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "empty header name",
            b"GET / HTTP/1.1\r\nHost: x\r\n: z\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "NUL in a header value",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "NUL in a header name",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-\x00A: b\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "NUL in the path",
            b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "space in the path",
            b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "folded header",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "100 KB header line",
            format!("GET / HTTP/1.1\r\nHost: x\r\nX-Long: {long_line}\r\n\r\n").into_bytes(),
            &[431],
        ),
        (
            "100 KB path",
            format!("GET /{long_line} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
            &[414, 431],
        ),
        (
            "10,000 headers",
            format!("GET / HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes(),
            &[431],
        ),
    ];
    for (name, bytes, allowed) in &cases {
        let before = server.uris_seen().len();
        let (raw, closed) = exchange(addr, bytes);
        let text = String::from_utf8_lossy(&raw);
        assert!(closed, "{name}: connection left open: {text:?}");
        let got = status(&raw);
        assert!(
            got.is_none_or(|s| allowed.contains(&s)),
            "{name}: got {got:?}, want one of {allowed:?} or a closed connection: {text:?}"
        );
        assert_eq!(
            server.uris_seen().len(),
            before,
            "{name} reached the callback"
        );
        server.assert_healthy(name);
    }
    // An unknown but well-formed method is HTTP; the callback decides.
    let (raw, _) = exchange(
        addr,
        b"BREW /pot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&raw), Some(200));
    assert!(String::from_utf8_lossy(&raw).ends_with("ok BREW /pot 0"));
}

#[test]
fn bodies_over_the_limit_or_stalled_are_cut_off() {
    let server = Server::start("\"maxbody\": 1000, \"headertimeout\": 1000");
    let addr = server.addr();
    // Declared too large: refused before the body is read.
    let (raw, closed) = exchange(
        addr,
        b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
    );
    assert_eq!(status(&raw), Some(413));
    assert!(closed);
    server.assert_healthy("a declared oversized body");

    // Chunked, 100 bytes every 40 ms: refused once it passes 1000 bytes, long before it ends.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"POST /slow-big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        for _ in 0..100 {
            if writer
                .write_all(format!("64\r\n{}\r\n", "y".repeat(100)).as_bytes())
                .is_err()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(40));
        }
    });
    let (raw, _) = read_until_closed(&mut stream);
    assert_eq!(
        status(&raw),
        Some(413),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the oversized body was read to its end ({:?})",
        started.elapsed()
    );
    drop(stream);
    sender.join().unwrap();
    server.assert_healthy("a slowly growing oversized body");

    // A body that stops arriving: the connection does not stay held.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"POST /stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nonly ten b")
        .unwrap();
    let started = Instant::now();
    let (raw, closed) = read_until_closed(&mut stream);
    assert!(
        closed && matches!(status(&raw), Some(408) | None),
        "a stalled body held its connection for {:?}: {:?}",
        started.elapsed(),
        String::from_utf8_lossy(&raw)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!server.uris_seen().iter().any(|u| u == "/stalled"));
    server.assert_healthy("a stalled body");
}

#[test]
fn an_upload_that_stalls_is_cut_off_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&format!(
        "\"maxbody\": 1000, \"headertimeout\": 1000, \"uploadfolder\": {:?}, \"uploadprefix\": \"/upload/\"",
        dir.path().display().to_string()
    ));
    let addr = server.addr();
    let (raw, _) = exchange(
        addr,
        b"POST /upload/whole.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(
        status(&raw),
        Some(200),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(
        std::fs::read(dir.path().join("whole.txt")).unwrap(),
        b"hello"
    );
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"POST /upload/stalled.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nonly ten b")
        .unwrap();
    let started = Instant::now();
    let (raw, closed) = read_until_closed(&mut stream);
    assert!(
        closed && matches!(status(&raw), Some(408) | None),
        "a stalled upload held its connection for {:?}: {:?}",
        started.elapsed(),
        String::from_utf8_lossy(&raw)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "whole.txt")
        .collect();
    assert!(left.is_empty(), "a stalled upload left {left:?}");
    server.assert_healthy("a stalled upload");
}

#[test]
fn a_client_sending_one_byte_per_second_is_dropped() {
    let server = Server::start("\"headertimeout\": 1000");
    let addr = server.addr();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let request = b"GET /drip HTTP/1.1\r\nHost: x\r\nX-Drip: aaaaaaaaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut dropped_after = None;
    let mut buf = [0u8; 1024];
    'drip: for byte in request {
        if stream.write_all(&[*byte]).is_err() {
            dropped_after = Some(started.elapsed());
            break;
        }
        let next = Instant::now() + Duration::from_secs(1);
        while Instant::now() < next {
            match stream.read(&mut buf) {
                Ok(_) => {
                    // Closed (0), or an error status: either way it is over.
                    dropped_after = Some(started.elapsed());
                    break 'drip;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => {
                    dropped_after = Some(started.elapsed());
                    break 'drip;
                }
            }
        }
        server.assert_healthy("a drip-fed byte");
    }
    let dropped_after = dropped_after.expect("the drip-feeding client was never dropped");
    assert!(
        dropped_after < Duration::from_secs(4),
        "dropped only after {dropped_after:?}"
    );
    assert!(!server.uris_seen().iter().any(|u| u == "/drip"));
    server.assert_healthy("the drip-feeding client");
}

/// A body trickled a byte at a time, each well within the pause limit, is cut off by the
/// minimum rate (after the grace of the header timeout), not held until it is complete.
#[test]
fn a_body_trickled_below_the_minimum_rate_gets_408() {
    let server = Server::start("\"headertimeout\": 1000, \"bodyminrate\": 100");
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .write_all(b"POST /trickle HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    // At one byte per 300 ms the whole body would take five minutes.
    while started.elapsed() < Duration::from_secs(20) {
        if stream.write_all(b"x").is_err() {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {}
        }
    }
    assert_eq!(
        status(&answer),
        Some(408),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(!server.uris_seen().iter().any(|u| u == "/trickle"));
    server.assert_healthy("a trickled body");
}

/// A client that asks for a big answer and never reads it is dropped after the write timeout,
/// and its slot goes to the next client (Max Connections 1 here).
#[test]
fn a_client_that_never_reads_its_answer_is_dropped_after_the_write_timeout() {
    let server = Server::start("\"maxconnections\": 1, \"writetimeout\": 1000");
    let mut stuck = TcpStream::connect(server.addr()).unwrap();
    stuck
        .write_all(b"GET /huge HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Never read. The next client waits for the slot, then is answered.
    let answer = common::http(server.addr(), "GET", "/next", &[], b"");
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (200, "ok GET /next 0")
    );
    drop(stuck);
    server.assert_healthy("a client that never reads");
}

/// Bodies waiting for their callback count against the server's memory for bodies (eight of
/// Max Body Size): past it a request gets 503 instead of growing the process, and the server
/// answers normally once they are through.
#[test]
fn bodies_held_at_once_are_bounded_per_server() {
    let server = Server::start("\"maxbody\": 1000, \"requesttimeout\": 30000");
    let addr = server.addr();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let requests: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(move || common::http(addr, "POST", "/slow", &[], &[b'x'; 1000]).status)
            })
            .collect();
        requests.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let refused = statuses.iter().filter(|&&s| s == 503).count();
    assert_eq!(ok + refused, 16, "{statuses:?}");
    // Eight bodies fit; the rest arrive while the first callback still sleeps.
    assert!((1..=9).contains(&ok) && refused >= 4, "{statuses:?}");
    server.assert_healthy("bodies over the server's budget");
}

/// The soft and hard limits on open files of this process.
fn fd_limits() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[cfg(target_os = "linux")]
#[test]
fn two_thousand_idle_connections_neither_block_requests_nor_leak() {
    const WANTED: usize = 2000;
    // Both ends live in this process: 2 fds per connection. Raise the soft limit toward the hard
    // one with util-linux's prlimit if it is too low (no libc needed); else use fewer connections.
    let need = (2 * WANTED + 500) as u64;
    let (soft, hard) = fd_limits();
    if soft < need {
        let _ = std::process::Command::new("prlimit")
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg(format!("--nofile={}:{hard}", need.min(hard)))
            .status();
    }
    let (soft, _) = fd_limits();
    let count = WANTED.min((soft as usize).saturating_sub(500) / 2);
    if count < WANTED {
        eprintln!("open-file limit {soft}: holding {count} idle connections instead of {WANTED}");
    }
    let server = Server::start("\"maxconnections\": 5000, \"headertimeout\": 4000");
    let addr = server.addr();
    server.assert_healthy("start");
    let baseline_fds = open_fds();
    let mut idle = Vec::with_capacity(count);
    let opened = Instant::now();
    for _ in 0..count {
        idle.push(TcpStream::connect(addr).unwrap());
    }
    let opened_in = opened.elapsed();
    // All of them at once: both ends of each are open in this process.
    // Other tests in this binary open and close sockets meanwhile: allow for a hundred of theirs.
    assert!(
        wait_until(Duration::from_secs(15), || open_fds() + 100
            >= baseline_fds + 2 * count),
        "the server holds {} of {count} connections",
        open_fds().saturating_sub(baseline_fds + count)
    );
    // Normal requests are answered promptly while they are all held.
    for i in 0..20 {
        server.assert_healthy(&format!("{count} idle connections, request {i}"));
    }
    // The server drops every one of them once the header timeout passes.
    std::thread::sleep(Duration::from_millis(4500));
    let mut closed = 0;
    for stream in &mut idle {
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut buf = [0u8; 64];
        if matches!(stream.read(&mut buf), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    assert_eq!(
        closed, count,
        "idle connections left open past the header timeout"
    );
    drop(idle);
    server.assert_healthy("the idle connections");
    // Every descriptor the server held for them is released.
    assert!(
        wait_until(Duration::from_secs(15), || open_fds() <= baseline_fds + 100),
        "{} fds open, {baseline_fds} before",
        open_fds()
    );
    eprintln!("{count} idle connections opened in {opened_in:?}");
}

#[test]
fn a_burst_of_connections_waits_in_the_backlog_instead_of_timing_out() {
    // One connection slot, taken: every other connection waits to be accepted. They must all
    // get through the TCP handshake at once (a short listen backlog drops their SYNs instead, and
    // each connect then stalls for a second or more of retransmits).
    const BURST: usize = 600;
    let server = Server::start("\"maxconnections\": 1, \"headertimeout\": 30000");
    let addr = server.addr();
    let holder = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut waiting = Vec::with_capacity(BURST);
    let mut stalled = 0;
    for _ in 0..BURST {
        if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            waiting.push(stream);
        } else {
            stalled += 1;
            if stalled == 10 {
                break;
            }
        }
    }
    assert_eq!(
        stalled,
        0,
        "{stalled} connects stalled after {} got through",
        waiting.len()
    );
    // Freeing the slot lets them in one by one; a normal request gets its turn too.
    drop(holder);
    drop(waiting);
    server.assert_healthy("a burst of waiting connections");
}

/// WebSocket clients hold their connection slot: with Max Connections 3, a fourth client (of
/// any kind) waits to be accepted until one of the three leaves.
#[test]
fn websocket_clients_count_towards_max_connections() {
    let server = Server::start("\"maxconnections\": 3");
    let addr = server.addr();
    let mut clients: Vec<TcpStream> = (0..3).map(|_| ws_connect(addr, "/ws")).collect();
    std::thread::sleep(Duration::from_millis(200));
    // The fourth gets through TCP (the backlog) but no answer while the three stay.
    let mut fourth = TcpStream::connect(addr).unwrap();
    fourth
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    // Longer than a connection must be idle to be closed for room: WebSocket clients never are.
    fourth
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        fourth.read(&mut byte).is_err(),
        "answered while three WebSocket clients hold the slots"
    );
    // One leaves: the waiting request is answered.
    drop(clients.pop());
    fourth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (raw, _) = read_until_closed(&mut fourth);
    assert_eq!(status(&raw), Some(200), "{}", String::from_utf8_lossy(&raw));
    drop(clients);
    server.assert_healthy("WebSocket clients at the connection limit");
}

/// With every slot taken, a waiting client gets the slot of the connection idle the longest (no
/// request in hand, nothing written for a second) instead of waiting out the header timeout, one
/// connection per waiting client: a silent one, or one trickling its headers; a connection whose
/// request is in hand (a body still arriving at a fair rate) is never the one.
#[test]
fn with_every_slot_taken_an_idle_connection_makes_room() {
    let server = Server::start("\"maxconnections\": 3, \"headertimeout\": 30000");
    let addr = server.addr();
    // An upload in hand: 20 KB at about 10 KB/s, well above Min Body Rate.
    let mut upload = TcpStream::connect(addr).unwrap();
    upload
        .write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n")
        .unwrap();
    let uploading = std::thread::spawn(move || {
        for _ in 0..20 {
            upload.write_all(&[b'u'; 1000]).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        upload
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut answer = vec![0u8; 512];
        let n = upload.read(&mut answer).unwrap();
        String::from_utf8_lossy(&answer[..n]).into_owned()
    });
    let silent = TcpStream::connect(addr).unwrap();
    let mut trickler = TcpStream::connect(addr).unwrap();
    let trickled = trickler.try_clone().unwrap();
    let trickling = std::thread::spawn(move || {
        for byte in b"GET /never-finished HTTP/1.1\r\nHost: x\r\n" {
            if trickler.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let closed = |stream: &TcpStream| {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match (&*stream).read(&mut [0u8; 16]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    };
    std::thread::sleep(Duration::from_millis(1300));
    // Two fresh clients that keep their connections: each needs one of the idle ones' slots.
    let mut fresh = Vec::new();
    for round in 0..2 {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"GET /fresh HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = vec![0u8; 512];
        let n = stream.read(&mut answer).unwrap_or(0);
        let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
        assert!(
            answer.ends_with("ok GET /fresh 0"),
            "round {round}: {answer:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "round {round}: waited {:?} for a slot (the header timeout is 30 s)",
            started.elapsed()
        );
        fresh.push(stream);
        let idle_closed = usize::from(closed(&silent)) + usize::from(closed(&trickled));
        assert_eq!(
            idle_closed,
            round + 1,
            "round {round}: one closed per waiting client"
        );
    }
    let answer = uploading.join().unwrap();
    assert!(answer.contains("ok POST /up 20000"), "{answer}");
    trickling.join().unwrap();
    server.assert_healthy("idle connections closed to make room");
}

/// A callback's big answers that clients do not read count against the server's memory for
/// answers (eight of Max Body Size, at least 64 MiB): past it a client is told 503 instead of the
/// process growing (to retry if its method is safe; a POST is told it was handled), small
/// answers still go out, and the memory is back once the readers leave.
#[test]
fn answers_clients_do_not_read_are_bounded_per_server() {
    // 1 MB Max Body Size: the 64 MiB floor for answers; /huge answers 32 MB, so two fit.
    let server = Server::start("\"maxbody\": 1000000, \"writetimeout\": 30000");
    let addr = server.addr();
    let not_reading: Vec<TcpStream> = (0..2)
        .map(|_| {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            socket.connect(&addr.into()).unwrap();
            let mut stream: TcpStream = socket.into();
            stream
                .write_all(b"GET /huge HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            stream
        })
        .collect();
    assert!(wait_until(Duration::from_secs(5), || server
        .uris_seen()
        .iter()
        .filter(|uri| *uri == "/huge")
        .count()
        == 2));
    std::thread::sleep(Duration::from_millis(300));
    let refused = common::http(addr, "GET", "/huge", &[], b"");
    assert_eq!(refused.status, 503);
    let retry_after = |answer: &common::HttpAnswer| {
        answer
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("retry-after") && v == "1")
    };
    assert!(retry_after(&refused), "{:?}", refused.headers);
    let posted = common::http(addr, "POST", "/huge", &[], b"");
    assert_eq!(posted.status, 503);
    assert!(!retry_after(&posted), "{:?}", posted.headers);
    assert!(posted.text().contains("was handled"), "{}", posted.text());
    assert!(
        wait_until(Duration::from_secs(2), || server
            .console()
            .contains("memory for answers")),
        "{}",
        server.console()
    );
    server.assert_healthy("big answers nobody reads");
    drop(not_reading);
    assert!(
        wait_until(Duration::from_secs(5), || common::http(
            addr,
            "GET",
            "/huge",
            &[],
            b""
        )
        .body
        .len()
            == 32_000_000),
        "the unread answers' memory never came back"
    );
}

// ---- WebSocket frames written by hand ----

fn ws_connect(addr: SocketAddr, uri: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {uri} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert_eq!(
        status(&head),
        Some(101),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

fn frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n < 65536 => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

/// One frame from the server (which never masks): (opcode, payload), or None once closed.
fn read_frame(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).ok()?;
    assert_eq!(head[1] & 0x80, 0, "the server masked a frame");
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).ok()?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).ok()?;
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).ok()?;
    Some((head[0] & 0x0f, payload))
}

/// Reads until the server's close frame and answers it; its code (1005 when it has none).
fn server_close_code(stream: &mut TcpStream) -> Option<u16> {
    while let Some((opcode, payload)) = read_frame(stream) {
        if opcode == 8 {
            let _ = stream.write_all(&frame(true, 8, &payload, true));
            return Some(if payload.len() >= 2 {
                u16::from_be_bytes([payload[0], payload[1]])
            } else {
                1005
            });
        }
    }
    None
}

fn echo(stream: &mut TcpStream, text: &str) {
    stream
        .write_all(&frame(true, 1, text.as_bytes(), true))
        .unwrap();
    let (opcode, payload) = read_frame(stream).expect("no echo");
    assert_eq!((opcode, payload.as_slice()), (1, text.as_bytes()));
}

#[test]
fn broken_websocket_frames_close_with_the_right_code_and_spare_other_clients() {
    let server = Server::start("\"maxmessage\": 1000, \"pinginterval\": 0");
    let addr = server.addr();
    let mut steady = ws_connect(addr, "/steady");
    echo(&mut steady, "hello");
    let masked_text = |fin, op, p: &[u8]| frame(fin, op, p, true);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "invalid UTF-8 text",
            masked_text(true, 1, b"bad \xff\xfe"),
            1007,
        ),
        (
            "overlong UTF-8 text",
            masked_text(true, 1, b"\xc0\xaf"),
            1007,
        ),
        (
            "UTF-16 surrogate in text",
            masked_text(true, 1, b"\xed\xa0\x80"),
            1007,
        ),
        (
            "invalid UTF-8 across fragments",
            [
                masked_text(false, 1, b"ok \xce"),
                masked_text(true, 0, b"\xff"),
            ]
            .concat(),
            1007,
        ),
        ("unmasked text", frame(true, 1, b"no mask", false), 1002),
        ("unmasked binary", frame(true, 2, &[1, 2, 3], false), 1002),
        ("unmasked ping", frame(true, 9, b"", false), 1002),
        ("oversized frame", masked_text(true, 2, &[7u8; 2000]), 1009),
        (
            "oversized fragmented message",
            [
                masked_text(false, 1, &[b'a'; 400]),
                masked_text(false, 0, &[b'a'; 400]),
                masked_text(true, 0, &[b'a'; 400]),
            ]
            .concat(),
            1009,
        ),
        ("fragmented ping", masked_text(false, 9, b"ping"), 1002),
        (
            "fragmented close",
            masked_text(false, 8, &close_payload(1000, b"")),
            1002,
        ),
        (
            "ping over 125 bytes",
            masked_text(true, 9, &[0u8; 126]),
            1002,
        ),
        (
            "continuation with nothing to continue",
            masked_text(true, 0, b"x"),
            1002,
        ),
        (
            "new message inside a fragmented one",
            [masked_text(false, 1, b"a"), masked_text(true, 1, b"b")].concat(),
            1002,
        ),
        ("reserved opcode 3", masked_text(true, 3, b""), 1002),
        ("reserved opcode 11", masked_text(true, 11, b""), 1002),
        (
            "RSV1 without an extension",
            {
                let mut f = masked_text(true, 1, b"x");
                f[0] |= 0x40;
                f
            },
            1002,
        ),
        ("close with a 1-byte body", masked_text(true, 8, &[3]), 1002),
        (
            "close code 0",
            masked_text(true, 8, &close_payload(0, b"")),
            1002,
        ),
        (
            "close code 999",
            masked_text(true, 8, &close_payload(999, b"")),
            1002,
        ),
        (
            "close code 1004",
            masked_text(true, 8, &close_payload(1004, b"")),
            1002,
        ),
        (
            "close code 1005",
            masked_text(true, 8, &close_payload(1005, b"")),
            1002,
        ),
        (
            "close code 1006",
            masked_text(true, 8, &close_payload(1006, b"")),
            1002,
        ),
        (
            "close code 1015",
            masked_text(true, 8, &close_payload(1015, b"")),
            1002,
        ),
        (
            "close code 1016",
            masked_text(true, 8, &close_payload(1016, b"")),
            1002,
        ),
        (
            "close code 2999",
            masked_text(true, 8, &close_payload(2999, b"")),
            1002,
        ),
        (
            "close code 5000",
            masked_text(true, 8, &close_payload(5000, b"")),
            1002,
        ),
        (
            "close code 65535",
            masked_text(true, 8, &close_payload(65535, b"")),
            1002,
        ),
        (
            "close reason not UTF-8",
            masked_text(true, 8, &close_payload(1000, b"\xff")),
            1007,
        ),
        // Valid closes are answered with the same code.
        (
            "close 1000",
            masked_text(true, 8, &close_payload(1000, b"bye")),
            1000,
        ),
        (
            "close 3000",
            masked_text(true, 8, &close_payload(3000, b"")),
            3000,
        ),
        (
            "close 4999",
            masked_text(true, 8, &close_payload(4999, b"")),
            4999,
        ),
    ];
    for (i, (name, bytes, want)) in cases.iter().enumerate() {
        let uri = format!("/case{i}");
        let mut stream = ws_connect(addr, &uri);
        let _ = stream.write_all(bytes);
        let got = server_close_code(&mut stream);
        assert_eq!(got, Some(*want), "{name}");
        // The steady client goes on as if nothing happened.
        echo(&mut steady, &format!("still here after {name}"));
    }
    assert!(
        wait_until(Duration::from_secs(10), || server
            .channel("websocket_connections")
            == 1.0),
        "connections: {}",
        server.channel("websocket_connections")
    );
    // Nothing a broken connection sent reached the callbacks as a message.
    let events = server.events();
    let steady_client = events
        .iter()
        .find(|r| r[0] == "open" && r[2] == "/steady")
        .map(|r| r[1].clone())
        .unwrap();
    let stray: Vec<_> = events
        .iter()
        .filter(|r| matches!(r[0].as_str(), "text" | "binary") && r[1] != steady_client)
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    let opens = events.iter().filter(|r| r[0] == "open").count();
    let closes = events.iter().filter(|r| r[0] == "close").count();
    assert_eq!((opens, closes), (cases.len() + 1, cases.len()));
    server.assert_healthy("broken frames");
}

// ---- Faults ----

#[test]
fn runaway_and_bottomless_callbacks_answer_500_and_the_server_goes_on() {
    let server = Server::start("\"requesttimeout\": 20000");
    let addr = server.addr();
    for path in ["/loop", "/recurse", "/loop"] {
        let started = Instant::now();
        let (raw, _) = exchange(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status(&raw), Some(500), "{path}");
        assert!(started.elapsed() < Duration::from_secs(15), "{path}");
        server.assert_healthy(path);
    }
    let console = server.console();
    assert!(console.contains("ran past the time limit"), "{console}");
    assert!(
        console.contains("RecursionError: maximum recursion depth exceeded"),
        "{console}"
    );
}

#[test]
fn a_peer_vanishing_mid_message_or_mid_handshake_is_cleaned_up() {
    let server = Server::start("\"pinginterval\": 0");
    let addr = server.addr();
    let mut steady = ws_connect(addr, "/steady");
    echo(&mut steady, "hello");
    // Half a frame, then gone: with and without a clean TCP shutdown.
    for (i, shutdown) in [true, false, true].into_iter().enumerate() {
        let mut stream = ws_connect(addr, &format!("/vanish{i}"));
        let whole = frame(true, 1, &[b'v'; 100], true);
        stream.write_all(&whole[..50]).unwrap();
        if shutdown {
            stream.shutdown(Shutdown::Both).unwrap();
        }
        drop(stream);
    }
    // Half an upgrade request, then gone.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /half HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConn")
        .unwrap();
    drop(stream);
    assert!(
        wait_until(Duration::from_secs(10), || server
            .events()
            .iter()
            .filter(|r| r[0] == "close")
            .count()
            == 3),
        "{:?}",
        server.events()
    );
    assert!(wait_until(Duration::from_secs(5), || server
        .channel("websocket_connections")
        == 1.0));
    let events = server.events();
    assert!(
        !events
            .iter()
            .any(|r| r[0] == "text" && r[2].starts_with('v')),
        "half a message was delivered: {events:?}"
    );
    echo(&mut steady, "still here");
    server.assert_healthy("vanished peers");
}

/// Removes the immutable flag again however the test ends.
struct Immutable(std::path::PathBuf);

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn failed_saves_leave_the_old_file_intact_and_say_why() {
    let project = load_str(
        r#"(nodes: [(id: 1, name: "t", kind: Table, table: [("a", "b")])])"#,
        Path::new("p.ron"),
    )
    .unwrap();
    let mut changed = project.clone();
    changed.nodes[0].name = "renamed".into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.ron");
    project::save_file(&project, &path).unwrap();
    let original = std::fs::read(&path).unwrap();
    let intact = |why: &str| {
        assert_eq!(std::fs::read(&path).unwrap(), original, "{why}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "p.ron")
            .collect();
        assert!(leftovers.is_empty(), "{why}: left {leftovers:?}");
    };

    // Disk full: the temporary file the save writes is /dev/full (ENOSPC on write, even for root).
    let tmp = dir
        .path()
        .join(format!(".p.ron.{}.tmp", std::process::id()));
    std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
    let err = project::save_file(&changed, &path).unwrap_err().to_string();
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("p.ron"), "{err}");
    intact("disk full");

    // A folder nobody may write in, root included: the immutable flag (ext2/3/4, xfs, btrfs).
    let locked = std::process::Command::new("chattr")
        .arg("+i")
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if locked {
        let _guard = Immutable(dir.path().to_path_buf());
        let err = project::save_file(&changed, &path).unwrap_err().to_string();
        assert!(err.contains("Operation not permitted"), "{err}");
        intact("read-only folder");
    } else {
        eprintln!("chattr +i is not available here: the read-only folder case was skipped");
    }

    // A "folder" that is a file.
    let err = project::save_file(&changed, &path.join("inside.ron"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("Not a directory"), "{err}");
    intact("parent is a file");

    project::save_file(&changed, &path).unwrap();
    assert_eq!(project::load_file(&path).unwrap().nodes[0].name, "renamed");
}
#[cfg(unix)]
#[test]
fn sigterm_closes_every_client_with_1001_and_runs_on_server_stop() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sigterm.ron");
    std::fs::write(
        &file,
        r####"(
    version: 2,
    nodes: [
        (id: 1, name: "web", kind: WebServer, params: {"port": 0, "localaddress": "127.0.0.1"}),
        (id: 2, name: "web_callbacks", kind: Text, params: {"language": "python"}, text: r###"
def onWebSocketReceiveText(webServerDAT, client, data):
    webServerDAT.webSocketSendText(client, data)

def onServerStop(webServerDAT):
    print('onServerStop ran')
"###),
    ],
    wires: [(from: 2, to: 1, input: Callbacks)],
)"####,
    )
    .unwrap();
    let (mut child, rx) = spawn_datpatch([std::ffi::OsStr::new("run"), file.as_os_str()]);
    let addr = SocketAddr::from(([127, 0, 0, 1], listening_port(&rx)));
    let mut clients: Vec<TcpStream> = (0..5)
        .map(|i| ws_connect(addr, &format!("/c{i}")))
        .collect();
    for (i, client) in clients.iter_mut().enumerate() {
        echo(client, &format!("client {i}"));
    }
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(server_close_code(client), Some(1001), "client {i}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let mut log = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
        log.push_str(&line);
        log.push('\n');
    }
    assert!(log.contains("onServerStop ran"), "{log}");
}

/// A headless run whose server cannot listen (its port is taken) exits non-zero and says why, so
/// a service manager learns of it; `--keep-going` runs anyway.
#[test]
fn a_run_whose_server_cannot_listen_exits_unless_told_to_keep_going() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taken.ron");
    std::fs::write(
        &file,
        format!(
            r#"(version: 2, nodes: [(id: 1, name: "web", kind: WebServer,
                params: {{"port": {port}, "localaddress": "127.0.0.1"}})])"#
        ),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_datpatch"))
        .arg("run")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("web:") && stderr.contains("--keep-going"),
        "{stderr}"
    );

    let (mut child, lines) = spawn_datpatch([
        std::ffi::OsStr::new("run"),
        file.as_os_str(),
        std::ffi::OsStr::new("--keep-going"),
    ]);
    let running = std::iter::from_fn(|| lines.recv_timeout(Duration::from_secs(10)).ok())
        .any(|line| line.starts_with("datpatch: running"));
    assert!(running, "with --keep-going the run goes on");
    assert!(child.0.try_wait().unwrap().is_none(), "it is still running");
    drop(taken);
}

/// Out of descriptors, the server gives up its reserve descriptor to tell a waiting client 503
/// at once, instead of leaving it in the backlog until some connection ends.
#[cfg(target_os = "linux")]
#[test]
fn out_of_descriptors_a_new_client_is_told_503() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: util-linux's prlimit is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fds.ron");
    std::fs::write(
        &file,
        r#"(version: 2, nodes: [(id: 1, name: "web", kind: WebServer,
            params: {"port": 0, "localaddress": "127.0.0.1", "headertimeout": 60000})])"#,
    )
    .unwrap();
    // A run limited to 128 descriptors; the idle connections below take what is left.
    let mut child = common::KillOnDrop(
        std::process::Command::new("prlimit")
            .arg("--nofile=128:128")
            .arg(env!("CARGO_BIN_EXE_datpatch"))
            .arg("run")
            .arg(&file)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::sync_channel(1024);
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], listening_port(&lines)));
    let mut idle = Vec::new();
    for _ in 0..200 {
        if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            idle.push(stream);
        }
    }
    // The server's descriptors are gone (its header timeout is a minute): a request now is
    // answered 503 at once rather than in a minute.
    let mut fresh = TcpStream::connect(addr).unwrap();
    fresh
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    fresh
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (raw, _) = read_until_closed(&mut fresh);
    assert_eq!(status(&raw), Some(503), "{}", String::from_utf8_lossy(&raw));
    drop(idle);
}
