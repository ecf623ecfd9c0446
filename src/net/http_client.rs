//! The Web Client DAT's requests: one tokio task per request (connect, TLS, HTTP/1.1 with hyper,
//! redirects, size and time limits), reporting to the engine as [`NetEvent`]s over the bounded
//! event queue. A streamed body is delivered in chunks as it arrives, so a stream holds no more
//! than one chunk in memory on this side of the queue.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{NetEvent, NetEventKind, NetTasks};
use crate::project::NodeId;

/// Request headers kept when a redirect leads to another origin.
const SAFE_ACROSS_ORIGINS: &[&str] = &[
    "accept",
    "accept-language",
    "content-language",
    "content-type",
    "user-agent",
    "cache-control",
];

/// The largest Upload File sent (it is read into memory whole).
pub const MAX_UPLOAD_FILE_BYTES: u64 = 64 << 20;

/// One request as the operator asks for it; the task owns it.
pub struct RequestSpec {
    /// The id `request()` returned; every event of the request carries it.
    pub id: i64,
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Sent as the body instead of `body` (read by the task, so the cook thread never waits on it).
    pub upload_file: Option<std::path::PathBuf>,
    pub timeout_ms: u64,
    /// Deliver the body in chunks as it arrives (no size limit, the timeout ends at the headers).
    pub stream: bool,
    pub max_response_bytes: usize,
    pub max_redirects: u32,
    /// For https URLs (a redirect may lead to one, so it is always given).
    pub tls: Arc<rustls::ClientConfig>,
}

// Header values often hold credentials: keep them out of debug output.
impl std::fmt::Debug for RequestSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSpec")
            .field("id", &self.id)
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers.len())
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// What a request reports, in this order: `Connected` (once, at the first connection), any number
/// of `Response` (one, or one per chunk when streaming; `headers` only on the first), or one
/// `Failed`; then `Done`.
#[derive(Debug)]
pub enum WebClientEvent {
    Connected {
        id: i64,
    },
    Response {
        id: i64,
        status: u16,
        reason: String,
        /// On the first part of a response only (TouchDesigner sends the headers once per stream).
        headers: Option<Vec<(String, String)>>,
        body: Bytes,
    },
    /// Not connected, timed out, refused by a limit, or cut off mid-body.
    Failed {
        id: i64,
        error: String,
    },
    /// The request ended (answered, failed or closed); `connected`: whether `Connected` was sent.
    Done {
        id: i64,
        connected: bool,
    },
}

/// Starts the request's task, tracked by `tasks.tracker`; `cancel` (a child of `tasks.cancel`)
/// closes it (`closeConnection`, the Stop pulse, the node stopping).
pub fn spawn(
    rt: &tokio::runtime::Handle,
    tasks: &NetTasks,
    node: NodeId,
    run: u64,
    spec: RequestSpec,
    cancel: CancellationToken,
    events: mpsc::Sender<NetEvent>,
) {
    let task = Task {
        node,
        run,
        events,
        connected: false,
        tracker: tasks.tracker.clone(),
        cancel: cancel.clone(),
    };
    tasks.tracker.spawn_on(task.run(spec), rt);
}

struct Task {
    node: NodeId,
    run: u64,
    events: mpsc::Sender<NetEvent>,
    connected: bool,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

/// The engine stopped listening: the task ends.
struct Gone;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Task {
    async fn emit(&self, event: WebClientEvent) -> Result<(), Gone> {
        self.events
            .send(NetEvent {
                node: self.node,
                run: self.run,
                kind: NetEventKind::WebClient(event),
            })
            .await
            .map_err(|_| Gone)
    }

    async fn run(mut self, spec: RequestSpec) {
        let id = spec.id;
        let cancel = self.cancel.clone();
        let outcome = tokio::select! {
            outcome = self.fetch(&spec) => outcome,
            () = cancel.cancelled() => Ok(Ok(())),
        };
        match outcome {
            Err(Gone) => return,
            Ok(Err(error)) => {
                if self
                    .emit(WebClientEvent::Failed { id, error })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(Ok(())) => {}
        }
        let connected = self.connected;
        let _ = self.emit(WebClientEvent::Done { id, connected }).await;
    }

    /// The request, its redirects and its body; `Ok(Err(reason))` when it failed.
    async fn fetch(&mut self, spec: &RequestSpec) -> Result<Result<(), String>, Gone> {
        let deadline = Instant::now() + Duration::from_millis(spec.timeout_ms);
        let timed_out = || format!("timed out after {} ms", spec.timeout_ms);
        let mut uri = match parse_url(&spec.url) {
            Ok(uri) => uri,
            Err(error) => return Ok(Err(error)),
        };
        let mut method = spec.method.clone();
        let mut body = spec.body.clone();
        if let Some(path) = &spec.upload_file {
            match tokio::time::timeout_at(deadline, read_upload(path)).await {
                Err(_) => return Ok(Err(timed_out())),
                Ok(Ok(contents)) => body = contents,
                Ok(Err(e)) => return Ok(Err(format!("Upload File {}: {e}", path.display()))),
            }
        }
        let mut headers = spec.headers.clone();
        let mut redirects_left = spec.max_redirects;
        let response = loop {
            let sent = tokio::time::timeout_at(
                deadline,
                self.send_once(spec, &uri, &method, &headers, body.clone()),
            )
            .await;
            let response = match sent {
                Err(_) => return Ok(Err(timed_out())),
                Ok(Err(Gone)) => return Err(Gone),
                Ok(Ok(Err(error))) => return Ok(Err(error)),
                Ok(Ok(Ok(response))) => response,
            };
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok());
            let (Some(location), true, true) = (
                location,
                response.status().is_redirection() && response.status() != StatusCode::NOT_MODIFIED,
                redirects_left > 0,
            ) else {
                break response;
            };
            let next = match resolve_location(&uri, location) {
                Ok(next) => next,
                Err(error) => return Ok(Err(error)),
            };
            redirects_left -= 1;
            let status = response.status();
            // RFC 9110 §15.4: 303 turns into GET; browsers do the same for a POST on 301/302.
            if status == StatusCode::SEE_OTHER && method != Method::HEAD
                || matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                    && method == Method::POST
            {
                method = Method::GET;
                body = Bytes::new();
                headers.retain(|(name, _)| {
                    !name.eq_ignore_ascii_case("content-type")
                        && !name.eq_ignore_ascii_case("content-length")
                });
            }
            // A Host of the user's was for the first server only.
            headers.retain(|(name, _)| !name.eq_ignore_ascii_case("host"));
            // Credentials (Authorization, cookies, API keys in any header) stay with the origin
            // they were meant for: another origin gets only headers known to carry none.
            if next.authority() != uri.authority() || next.scheme() != uri.scheme() {
                headers.retain(|(name, _)| {
                    SAFE_ACROSS_ORIGINS
                        .iter()
                        .any(|safe| name.eq_ignore_ascii_case(safe))
                });
            }
            uri = next;
        };
        let id = spec.id;
        let status = response.status();
        let reason = status.canonical_reason().unwrap_or("").to_string();
        let header_list: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut incoming = response.into_body();
        if spec.stream {
            return self
                .stream_body(id, status.as_u16(), reason, header_list, &mut incoming)
                .await;
        }
        let declared = header_list
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, v)| v.parse::<u64>().ok());
        let too_big = || {
            format!(
                "response larger than {} bytes (Max Response Size)",
                spec.max_response_bytes
            )
        };
        if declared.is_some_and(|n| n > spec.max_response_bytes as u64) {
            return Ok(Err(too_big()));
        }
        let mut collected = BytesMut::new();
        loop {
            let frame = match tokio::time::timeout_at(deadline, incoming.frame()).await {
                Err(_) => return Ok(Err(timed_out())),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Ok(Err(format!("reading the body: {e}"))),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                if collected.len() + data.len() > spec.max_response_bytes {
                    return Ok(Err(too_big()));
                }
                collected.extend_from_slice(&data);
            }
        }
        self.emit(WebClientEvent::Response {
            id,
            status: status.as_u16(),
            reason,
            headers: Some(header_list),
            body: collected.freeze(),
        })
        .await?;
        Ok(Ok(()))
    }

    /// Each chunk as its own `Response`, the headers with the first (or alone, for an empty body).
    async fn stream_body(
        &self,
        id: i64,
        status: u16,
        reason: String,
        headers: Vec<(String, String)>,
        incoming: &mut Incoming,
    ) -> Result<Result<(), String>, Gone> {
        let mut headers = Some(headers);
        loop {
            let frame = match incoming.frame().await {
                None => break,
                Some(Err(e)) => return Ok(Err(format!("reading the stream: {e}"))),
                Some(Ok(frame)) => frame,
            };
            if let Ok(body) = frame.into_data() {
                if body.is_empty() {
                    continue;
                }
                self.emit(WebClientEvent::Response {
                    id,
                    status,
                    reason: reason.clone(),
                    headers: headers.take(),
                    body,
                })
                .await?;
            }
        }
        if headers.is_some() {
            self.emit(WebClientEvent::Response {
                id,
                status,
                reason,
                headers,
                body: Bytes::new(),
            })
            .await?;
        }
        Ok(Ok(()))
    }

    /// One hop: connects (TLS for https), sends the request and returns the response head.
    async fn send_once(
        &mut self,
        spec: &RequestSpec,
        uri: &Uri,
        method: &Method,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<Result<hyper::Response<Incoming>, String>, Gone> {
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().unwrap_or_default();
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = match tokio::net::TcpStream::connect((bare_host, port)).await {
            Ok(tcp) => tcp,
            Err(e) => return Ok(Err(format!("could not connect to {host}:{port}: {e}"))),
        };
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if https {
            let Ok(name) = rustls::pki_types::ServerName::try_from(bare_host.to_string()) else {
                return Ok(Err(format!("\"{host}\" is not a TLS server name")));
            };
            match tokio_rustls::TlsConnector::from(spec.tls.clone())
                .connect(name, tcp)
                .await
            {
                Ok(tls) => Box::new(tls),
                Err(e) => return Ok(Err(format!("TLS with {host}:{port}: {e}"))),
            }
        } else {
            Box::new(tcp)
        };
        let (mut sender, connection) =
            match hyper::client::conn::http1::handshake(TokioIo::new(io)).await {
                Ok(pair) => pair,
                Err(e) => return Ok(Err(format!("HTTP with {host}:{port}: {e}"))),
            };
        // Drives the connection until the response body is read, or the request is closed.
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = connection => {}
                () = cancel.cancelled() => {}
            }
        });
        if !self.connected {
            self.connected = true;
            self.emit(WebClientEvent::Connected { id: spec.id }).await?;
        }
        let mut request = Request::builder().method(method.clone()).uri(
            uri.path_and_query()
                .map_or("/", http::uri::PathAndQuery::as_str),
        );
        let authority = uri.authority().map_or(host, http::uri::Authority::as_str);
        let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        if !has("host") {
            request = request.header(header::HOST, authority);
        }
        if !has("user-agent") {
            request = request.header(
                header::USER_AGENT,
                concat!("datpatch/", env!("CARGO_PKG_VERSION")),
            );
        }
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(e) => return Ok(Err(format!("bad request header: {e}"))),
        };
        Ok(sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP with {host}:{port}: {e}")))
    }
}

/// A regular file of at most [`MAX_UPLOAD_FILE_BYTES`], whole.
async fn read_upload(path: &std::path::Path) -> Result<Bytes, String> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().await.map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_UPLOAD_FILE_BYTES {
        return Err(format!(
            "{} bytes is over the {MAX_UPLOAD_FILE_BYTES}-byte limit for uploads",
            meta.len()
        ));
    }
    let mut contents = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // `take`: a file that grows while it is read stays within the limit.
    file.take(MAX_UPLOAD_FILE_BYTES)
        .read_to_end(&mut contents)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Bytes::from(contents))
}

/// An absolute http or https URL.
pub fn parse_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|e| format!("\"{url}\" is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some_and(|h| !h.is_empty()) => Ok(uri),
        Some("http" | "https") => Err(format!("\"{url}\" names no host")),
        _ => Err(format!("\"{url}\" is not an http:// or https:// URL")),
    }
}

/// Where a redirect's `Location` points, relative to the URL that answered.
fn resolve_location(base: &Uri, location: &str) -> Result<Uri, String> {
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map_or("", http::uri::Authority::as_str);
    // RFC 3986 §3.1: a scheme is a letter, then letters, digits, `+`, `-` or `.`, then `:`.
    let has_scheme = location.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let absolute = if has_scheme {
        location.to_string()
    } else if location.starts_with("//") {
        format!("{scheme}:{location}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else if location.starts_with('?') {
        format!("{scheme}://{authority}{}{location}", base.path())
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        format!("{scheme}://{authority}{dir}{location}")
    };
    parse_url(&absolute).map_err(|e| format!("redirect to {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_answering_url() {
        let base: Uri = "http://a.test:8080/x/y?q=1".parse().unwrap();
        let resolve = |l| resolve_location(&base, l).unwrap().to_string();
        assert_eq!(resolve("/z"), "http://a.test:8080/z");
        assert_eq!(resolve("z?k"), "http://a.test:8080/x/z?k");
        assert_eq!(resolve("?page=2"), "http://a.test:8080/x/y?page=2");
        assert_eq!(resolve("//b.test/p"), "http://b.test/p");
        assert_eq!(resolve("https://c.test/"), "https://c.test/");
        assert!(resolve_location(&base, "ftp://d.test/").is_err());
    }

    #[test]
    fn only_http_urls_with_a_host() {
        assert!(parse_url("http://127.0.0.1:1/").is_ok());
        assert!(parse_url("https://[::1]/x").is_ok());
        assert!(parse_url("ws://localhost/").is_err());
        assert!(parse_url("/relative").is_err());
        assert!(parse_url("not a url").is_err());
    }
}
