//! Helpers shared by the integration tests: polling, a raw HTTP/1.1 client, child-process
//! guards. Each test file includes this module; not every file uses every helper.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Polls `done` every 10 ms until it holds or `timeout` passes; returns its last answer.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

/// The engine's console, one line per line, for assertion messages and `contains` checks.
pub fn console_text(world: &datpatch::engine::World) -> String {
    world.console.lines().map(|l| format!("{l}\n")).collect()
}

/// A DAT's contents (any kind: table, text, received messages) as rows of cells.
pub fn dat_cells(
    world: &datpatch::engine::World,
    id: datpatch::project::NodeId,
) -> Vec<Vec<String>> {
    let dat = world.dat(id).unwrap();
    (0..dat.num_rows())
        .map(|r| {
            (0..dat.num_cols())
                .map(|c| dat.cell(r, c).unwrap())
                .collect()
        })
        .collect()
}

/// The rows of the Table DAT named `name` (empty when there is none).
pub fn table_rows(runner: &datpatch::runner::Runner, name: &str) -> Vec<Vec<String>> {
    let engine = runner.engine.lock();
    engine
        .project()
        .node_by_name(name)
        .and_then(|n| n.table.clone())
        .map(|t| t.rows)
        .unwrap_or_default()
}

/// A tokio runtime for test clients.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

pub fn parse_answer(raw: &[u8]) -> HttpAnswer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap().splitn(3, ' ');
    let _version = parts.next();
    let status = parts.next().unwrap().parse().unwrap();
    let reason = parts.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    HttpAnswer {
        status,
        reason,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Sends `text` as-is on a fresh connection and reads until the server closes it.
pub fn raw_request(addr: SocketAddr, text: &str) -> HttpAnswer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(text.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_answer(&raw)
}

/// One request on a fresh connection that the server closes after answering.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpAnswer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_answer(&raw)
}

/// `Authorization` value for HTTP basic auth.
pub fn basic(user_password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

/// Kills the child if the test fails before it is stopped, so no `datpatch run` outlives a test.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `datpatch <args>`; its stderr arrives line by line on the returned receiver.
pub fn spawn_datpatch<I, S>(args: I) -> (KillOnDrop, std::sync::mpsc::Receiver<String>)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    spawn_datpatch_with_env(args, &[])
}

/// [`spawn_datpatch`] with environment variables set for the child.
pub fn spawn_datpatch_with_env<I, S>(
    args: I,
    env: &[(&str, &str)],
) -> (KillOnDrop, std::sync::mpsc::Receiver<String>)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::io::BufRead;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_datpatch"))
        .args(args)
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// The port from the first "listening on http://host:port" line a headless run prints.
pub fn listening_port(lines: &std::sync::mpsc::Receiver<String>) -> u16 {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the server never said where it listens");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            return rest.rsplit(':').next().unwrap().trim().parse().unwrap();
        }
    }
}

/// A WebSocket server on 127.0.0.1 that sends `count` messages ("hello 0", ...) to the first
/// client, then keeps it connected; returns its port.
pub fn ws_server_sending(rt: &tokio::runtime::Runtime, count: usize) -> u16 {
    use futures_util::SinkExt;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        for i in 0..count {
            let message = tokio_tungstenite::tungstenite::Message::text(format!("hello {i}"));
            ws.send(message).await.unwrap();
        }
        // Stay connected until the test ends.
        tokio::time::sleep(Duration::from_mins(1)).await;
    });
    port
}

/// A CA (PEM), and a certificate for 127.0.0.1 that CA signed with its key (PEM, PKCS#8).
pub fn test_pki_pem() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "datpatch test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    (ca_cert.pem(), leaf.pem(), leaf_key.serialize_pem())
}

/// A CA, and a server configuration whose certificate (for 127.0.0.1) that CA signed.
pub fn test_pki() -> (String, std::sync::Arc<rustls::ServerConfig>) {
    use rustls::pki_types::pem::PemObject;
    let (ca_pem, cert_pem, key_pem) = test_pki_pem();
    let cert = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    (ca_pem, std::sync::Arc::new(config))
}

/// A port nothing listens on right now (the system picks it; the listener is closed at once), for
/// processes whose clients must know it in advance.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
