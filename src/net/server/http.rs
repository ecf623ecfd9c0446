//! The HTTP path of the Web Server DAT: a request read (body limits and timeouts, uploads), asked
//! of the engine, answered (static files behind a default 404), and the request/response types
//! the engine sees.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::sync::oneshot;

use super::connection::Ends;
use super::websocket::{is_websocket_upgrade, upgrade};
use super::{ServerEvent, Shared};
use crate::net::SharedStr;
use crate::net::files::{self, UploadError};

#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    /// The path only; the query is in `query`.
    pub path: String,
    pub query: String,
    /// In arrival order, names in lower case (as HTTP/2 and hyper carry them).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Both ends as `ip:port`, the form scripts see (made once per connection).
    pub client_addr: SharedStr,
    pub server_addr: SharedStr,
    /// Where an upload's body was saved (its `body` is then empty).
    pub saved_path: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn status(status: StatusCode) -> Self {
        Self {
            status: status.as_u16(),
            reason: None,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: Bytes::from(format!(
                "{} {}\n",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )),
        }
    }
}

/// A static file streamed from disk, chunk by chunk.
pub(super) type FileBody = http_body_util::StreamBody<
    futures_util::stream::Map<
        tokio_util::io::ReaderStream<tokio::io::Take<tokio::fs::File>>,
        fn(std::io::Result<Bytes>) -> std::io::Result<hyper::body::Frame<Bytes>>,
    >,
>;

/// An answer's body: in memory, or a static file streamed from disk.
pub(super) type Body = http_body_util::Either<Full<Bytes>, FileBody>;

/// Streams `count` bytes of `file` (positioned at the start of what to send).
fn file_body(file: tokio::fs::File, count: u64) -> FileBody {
    use futures_util::StreamExt;
    use tokio::io::AsyncReadExt;
    let frames =
        tokio_util::io::ReaderStream::with_capacity(file.take(count), files::STREAM_CHUNK_BYTES)
            .map(
                (|chunk: std::io::Result<Bytes>| chunk.map(hyper::body::Frame::data))
                    as fn(std::io::Result<Bytes>) -> std::io::Result<hyper::body::Frame<Bytes>>,
            );
    http_body_util::StreamBody::new(frames)
}

pub(super) fn to_hyper(response: HttpResponse) -> Response<Body> {
    let mut out = Response::new(http_body_util::Either::Left(Full::new(response.body)));
    *out.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            out.headers_mut().append(name, value);
        }
    }
    if let Some(reason) = response.reason
        && let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason.into_bytes())
    {
        out.extensions_mut().insert(phrase);
    }
    out
}

pub(super) fn request_info(req: &http::request::Parts, body: Bytes, ends: &Ends) -> HttpRequest {
    HttpRequest {
        method: req.method.as_str().to_string(),
        path: req.uri.path().to_string(),
        query: req.uri.query().unwrap_or("").to_string(),
        headers: req
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        client_addr: ends.peer_text.clone(),
        server_addr: ends.local_text.clone(),
        saved_path: None,
    }
}

/// Asks the engine for an answer, waiting at most the request timeout.
pub(super) async fn ask_engine(
    shared: &Shared,
    event: impl FnOnce(oneshot::Sender<HttpResponse>) -> ServerEvent,
) -> HttpResponse {
    let timeout = Duration::from_millis(shared.limits().request_timeout_ms);
    let (reply, answer) = oneshot::channel();
    // One timer for the whole wait (queueing for the engine, then its answer).
    let asked = tokio::time::timeout(timeout, async {
        if shared.emit(event(reply)).await {
            answer.await.ok()
        } else {
            None
        }
    });
    match asked.await {
        Ok(Some(response)) => response,
        _ => HttpResponse::status(StatusCode::SERVICE_UNAVAILABLE),
    }
}

pub(super) async fn handle_request(
    req: Request<Incoming>,
    ends: Arc<Ends>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Infallible> {
    let _in_hand = ends.activity.request_in_hand();
    if is_websocket_upgrade(&req) {
        return Ok(upgrade(req, ends, shared).await);
    }
    let limits = shared.limits();
    let declared_length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|len| len > limits.max_body_bytes) {
        return Ok(to_hyper(HttpResponse::status(
            StatusCode::PAYLOAD_TOO_LARGE,
        )));
    }
    let (parts, body) = req.into_parts();
    let settings = shared.files.read().clone();
    let path = parts.uri.path().to_string();
    let is_write = parts.method == http::Method::POST || parts.method == http::Method::PUT;
    if let Some(dir) = &settings.upload_dir
        && is_write
        && !settings.upload_prefix.is_empty()
        && let Some(rest) = path.strip_prefix(settings.upload_prefix.as_str())
    {
        let name = files::sanitize_upload_name(rest);
        let pace = body_pace(&limits);
        let saved = match files::save_upload(dir, &name, body, limits.max_body_bytes, pace).await {
            Ok(saved) => saved,
            Err(UploadError::Stalled) => {
                let mut refused = HttpResponse::status(StatusCode::REQUEST_TIMEOUT);
                refused.headers.push(("connection".into(), "close".into()));
                return Ok(to_hyper(refused));
            }
            Err(UploadError::TooLarge) => {
                return Ok(to_hyper(HttpResponse::status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                )));
            }
            Err(UploadError::Interrupted) => {
                return Ok(to_hyper(HttpResponse::status(StatusCode::BAD_REQUEST)));
            }
            Err(UploadError::Io(e)) => {
                shared.emit_now(ServerEvent::Warning {
                    text: format!("saving an upload in {}: {e}", dir.display()),
                });
                return Ok(to_hyper(HttpResponse::status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                )));
            }
        };
        let file_name = saved
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut request = request_info(&parts, Bytes::new(), &ends);
        request.saved_path = Some(saved);
        let mut response = ask_engine(&shared, |reply| ServerEvent::HttpRequest {
            request: Box::new(request),
            reply,
        })
        .await;
        if is_default_404(&response) {
            response = HttpResponse {
                status: StatusCode::CREATED.as_u16(),
                reason: None,
                headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                body: Bytes::from(file_name),
            };
        }
        return Ok(to_hyper(budget_answer(response, &parts.method, &shared)));
    }
    // Held until the answer is made: the body counts against the server's memory for bodies.
    let (body, _body_memory) = match read_body(
        body,
        limits.max_body_bytes,
        body_pace(&limits),
        &shared.body_memory,
    )
    .await
    {
        Ok(body) => body,
        Err(status) => {
            let mut refused = HttpResponse::status(status);
            refused.headers.push(("connection".into(), "close".into()));
            return Ok(to_hyper(refused));
        }
    };
    let request = request_info(&parts, body, &ends);
    let mut response = ask_engine(&shared, |reply| ServerEvent::HttpRequest {
        request: Box::new(request),
        reply,
    })
    .await;
    if is_default_404(&response)
        && let Some(root) = &settings.static_root
        && let Some(files::StaticFile {
            response: mut file,
            stream,
        }) = files::serve_static(
            root,
            &settings.index_file,
            &parts.method,
            &path,
            &parts.headers,
        )
        .await
    {
        // Headers the callback set on its default answer (CORS, caching) apply to the file too.
        for (name, value) in response.headers {
            if !file
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(&name))
            {
                file.headers.push((name, value));
            }
        }
        let mut answer = to_hyper(file);
        if let Some((file, count)) = stream {
            *answer.body_mut() = http_body_util::Either::Right(file_body(file, count));
        }
        return Ok(answer);
    }
    if is_default_404(&response)
        && !response
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        let plain = HttpResponse::status(StatusCode::NOT_FOUND);
        response.headers.extend(plain.headers);
        response.body = plain.body;
    }
    Ok(to_hyper(budget_answer(response, &parts.method, &shared)))
}

/// Answers at most this long are not counted against the server's memory for answers: one
/// connection holds one answer at a time, so they take at most Max Connections × 16 KiB.
const UNCOUNTED_ANSWER_BYTES: usize = 16 * 1024;

/// Counts a callback's answer against the server's memory for answers until its last byte has
/// gone to the socket (hyper holds the body until then), so clients that ask for big answers and
/// do not read them cannot pile them up; past the budget the answer is dropped and the client is
/// told 503. The callback has run by then: only a safe method's client is told to retry.
fn budget_answer(
    mut response: HttpResponse,
    method: &http::Method,
    shared: &Shared,
) -> HttpResponse {
    let length = response.body.len();
    if length <= UNCOUNTED_ANSWER_BYTES {
        return response;
    }
    // An answer larger than the whole budget takes all of it, so it goes out alone.
    let wanted = u32::try_from(length.min(shared.answer_memory_bytes)).unwrap_or(u32::MAX);
    let Ok(permit) = shared.answer_memory.clone().try_acquire_many_owned(wanted) else {
        shared.emit_now(ServerEvent::Warning {
            text: format!(
                "answers not yet taken by their clients fill the server's memory for answers \
                 ({} MiB): a {method} was answered 503",
                shared.answer_memory_bytes >> 20
            ),
        });
        let mut busy = HttpResponse::status(StatusCode::SERVICE_UNAVAILABLE);
        if method.is_safe() {
            busy.headers.push(("retry-after".into(), "1".into()));
        } else {
            busy.body = Bytes::from_static(
                b"503 Service Unavailable: the request was handled, but its answer could not be held\n",
            );
        }
        return busy;
    };
    response.body = Bytes::from_owner(Counted {
        body: response.body,
        _permit: permit,
    });
    response
}

/// An answer's bytes and its share of the server's memory for answers, given back when hyper
/// drops the last reference (the bytes written, or the connection gone).
struct Counted {
    body: Bytes,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

/// An answer the callback left at its default (or gave no callback for): 404, no body.
fn is_default_404(response: &HttpResponse) -> bool {
    response.status == 404 && response.body.is_empty()
}

fn body_pace(limits: &super::ServerLimits) -> crate::net::BodyPace {
    crate::net::BodyPace::new(
        Duration::from_millis(limits.header_timeout_ms),
        Duration::from_millis(limits.body_timeout_ms),
        limits.body_min_rate,
    )
}

/// Reads a body of at most `max` bytes; a client that does not keep `pace` gets 408, so a
/// stalled or trickling body cannot hold a connection slot for long.
async fn read_body(
    body: Incoming,
    max: u64,
    mut pace: crate::net::BodyPace,
    memory: &Arc<tokio::sync::Semaphore>,
) -> Result<(Bytes, Option<tokio::sync::OwnedSemaphorePermit>), StatusCode> {
    if hyper::body::Body::is_end_stream(&body) {
        return Ok((Bytes::new(), None)); // a GET, say: no timer, no buffer
    }
    // Grown as data arrives (not sized from Content-Length: a client announcing a big body it
    // never sends must not cost the memory).
    let mut body = Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX));
    let mut data = bytes::BytesMut::new();
    let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
    loop {
        match tokio::time::timeout_at(pace.deadline(), body.frame()).await {
            Err(_) => return Err(StatusCode::REQUEST_TIMEOUT),
            Ok(None) => return Ok((data.freeze(), held)),
            Ok(Some(Ok(frame))) => {
                if let Ok(chunk) = frame.into_data() {
                    pace.received(chunk.len());
                    // What the buffer takes (its capacity), not only what it holds, counts.
                    data.reserve(chunk.len());
                    let held_bytes = held
                        .as_ref()
                        .map_or(0, tokio::sync::OwnedSemaphorePermit::num_permits);
                    let more = u32::try_from(data.capacity().saturating_sub(held_bytes))
                        .unwrap_or(u32::MAX);
                    if more > 0 {
                        let Ok(permit) = memory.clone().try_acquire_many_owned(more) else {
                            return Err(StatusCode::SERVICE_UNAVAILABLE);
                        };
                        match &mut held {
                            Some(held) => held.merge(permit),
                            None => held = Some(permit),
                        }
                    }
                    data.extend_from_slice(&chunk);
                }
            }
            Ok(Some(Err(e))) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
            Ok(Some(Err(_))) => return Err(StatusCode::BAD_REQUEST),
        }
    }
}
