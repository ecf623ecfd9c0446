//! Web Client DAT: HTTP requests from the Request pulse or `request()`, run on the network
//! runtime; the answers come back as events and reach onResponse, and the output shows the last
//! body (or, clamped as rows, the last lines of a stream).

pub mod callbacks;
mod pars;
mod script;

use std::collections::BTreeMap;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use self::pars::{Auth, InputData, WebClientPars};
use crate::engine::fifo_table::FifoTable;
use crate::engine::{Badge, DatRef, Engine, NetContext, Operator, ScriptMethod, Value, World};
use crate::net::NetEventKind;
use crate::net::http_client::{self, RequestSpec, WebClientEvent};
use crate::project::NodeId;

pub struct WebClient;

/// Requests one DAT keeps open at once; more are refused (the script gets the error).
const MAX_OPEN_REQUESTS: usize = 256;

#[derive(Default)]
pub struct Runtime {
    pars: WebClientPars,
    net: Option<NetContext>,
    /// Bumped when the node stops; events of earlier runs are ignored.
    run: u64,
    next_id: i64,
    /// Requests in flight and what closes each.
    open: BTreeMap<i64, CancellationToken>,
    /// The output when Clamp Output as Rows is off: the last body (or the stream so far).
    text: String,
    /// The output when it is on: body lines, the last Maximum Lines kept.
    rows: Option<FifoTable>,
    /// Per open request: the start of a line (rows) or of a character (text) that its next
    /// chunk completes.
    partial: std::collections::HashMap<i64, Vec<u8>>,
    requests: u64,
    responses: u64,
    failures: u64,
    bytes_in: u64,
    bytes_out: u64,
    last_status: u16,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("open", &self.open.len())
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

/// A request before it is handed to the network: what `request()` or the Request pulse asked.
struct Ask {
    method: http::Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    upload_file: Option<std::path::PathBuf>,
    timeout_ms: u64,
}

fn runtime(world: &mut World, id: NodeId) -> &mut Runtime {
    world.runtime_mut::<Runtime>(id)
}

fn dat(id: NodeId) -> Value {
    Value::Op(id)
}

fn reconcile(engine: &mut Engine, id: NodeId) {
    let (pars, tls_error) = WebClientPars::read(engine.world(), id);
    let net = engine.net().clone();
    let world = engine.world_mut();
    world.set_status_error(id, tls_error);
    let active = pars.active;
    let rt = runtime(world, id);
    rt.net = Some(net);
    match (&mut rt.rows, pars.max_lines) {
        (Some(rows), Some(max)) => rows.set_max_lines(Some(max)),
        (rows, max) => *rows = max.map(|max| FifoTable::records(Some(max), None)),
    }
    rt.pars = pars;
    if !active {
        close_all(rt);
    }
    world.state_mut(id).content_rev += 1;
}

fn close_all(rt: &mut Runtime) {
    for cancel in rt.open.values() {
        cancel.cancel();
    }
}

/// Hands a request to the network; returns its id.
fn start(world: &mut World, id: NodeId, ask: Ask) -> Result<i64, String> {
    let name = world.node_name(id).to_string();
    let rt = runtime(world, id);
    if !rt.pars.active {
        return Err(format!("\"{name}\" is not active"));
    }
    let Some(tls) = rt.pars.tls.clone() else {
        return Err(format!(
            "\"{name}\" has unusable TLS settings (see its error)"
        ));
    };
    let Some(net) = rt.net.clone() else {
        return Err(format!("\"{name}\" has not started yet"));
    };
    if rt.open.len() >= MAX_OPEN_REQUESTS {
        return Err(format!(
            "\"{name}\" already has {MAX_OPEN_REQUESTS} requests open"
        ));
    }
    http_client::parse_url(&ask.url)?;
    rt.next_id += 1;
    let request_id = rt.next_id;
    rt.requests += 1;
    rt.bytes_out += ask.body.len() as u64;
    let cancel = net.tasks.cancel.child_token();
    rt.open.insert(request_id, cancel.clone());
    let spec = RequestSpec {
        id: request_id,
        method: ask.method,
        url: ask.url,
        headers: ask.headers,
        body: ask.body,
        upload_file: ask.upload_file,
        timeout_ms: ask.timeout_ms,
        stream: rt.pars.stream,
        max_response_bytes: rt.pars.max_response_bytes,
        max_redirects: rt.pars.max_redirects,
        tls,
    };
    http_client::spawn(&net.rt, &net.tasks, id, rt.run, spec, cancel, net.events);
    Ok(request_id)
}

/// The Request pulse: the parameters, the headers input and the data input.
fn ask_from_pars(world: &World, id: NodeId) -> Result<Ask, String> {
    let method = pars::method(&world.par_str(id, "reqmethod")?)?;
    let mut url = world.par_str(id, "url")?;
    let mut headers = crate::ops::header_rows(world, id)?;
    // An Authorization row in the headers DAT wins over the Authentication page.
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
    {
        headers.extend(Auth::from_pars(world, id)?.header());
    }
    let mut body = Bytes::new();
    match pars::input_data(world, id) {
        InputData::None => {}
        InputData::Text(text) => body = text,
        InputData::Pairs(pairs) if pars::data_goes_on_url(&method) => {
            url = pars::with_query(&url, &pairs);
        }
        InputData::Pairs(pairs) => {
            body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish()
                .into();
            if !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                headers.push((
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ));
            }
        }
    }
    let upload_file = match world.par_str(id, "uploadfile")? {
        path if path.is_empty() => None,
        _ => Some(world.file_par(id, "uploadfile")?),
    };
    let timeout_ms = world
        .runtime::<Runtime>(id)
        .map_or(60_000, |rt| rt.pars.timeout_ms);
    Ok(Ask {
        method,
        url,
        headers,
        body,
        upload_file,
        timeout_ms,
    })
}

fn pulse(engine: &mut Engine, id: NodeId, token: &str) {
    let world = engine.world_mut();
    match token {
        "request" => {
            if let Err(error) = ask_from_pars(world, id).and_then(|ask| start(world, id, ask)) {
                world.report_warning(id, format!("request not sent: {error}"));
            }
        }
        "stop" => close_all(runtime(world, id)),
        "clear" => {
            let rt = runtime(world, id);
            rt.text.clear();
            if let Some(rows) = &mut rt.rows {
                rows.clear();
            }
            world.state_mut(id).content_rev += 1;
        }
        _ => {}
    }
}

/// The response headers as scripts see them: a dict, `set-cookie` always a list (as
/// TouchDesigner 2025 gives it), other repeated names joined with ", ".
fn header_dict(headers: &[(String, String)]) -> Value {
    let mut dict: Vec<(String, Value)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let existing = dict.iter_mut().find(|(n, _)| n == name);
        match (existing, name == "set-cookie") {
            (Some((_, Value::List(items))), _) => items.push(Value::str(value.as_str())),
            (Some((_, Value::Str(joined))), _) => {
                *joined = format!("{joined}, {value}").into();
            }
            (Some(_), _) => {}
            (None, true) => {
                dict.push((name.clone(), Value::List(vec![Value::str(value.as_str())])));
            }
            (None, false) => dict.push((name.clone(), Value::str(value.as_str()))),
        }
    }
    Value::Dict(dict)
}

fn status_dict(code: u16, message: &str) -> Value {
    Value::Dict(vec![
        ("code".into(), Value::Int(i64::from(code))),
        ("message".into(), Value::str(message)),
    ])
}

/// Puts a response (or a chunk of one) into the output.
fn show(
    rt: &mut Runtime,
    request: i64,
    status: u16,
    reason: &str,
    headers: Option<&[(String, String)]>,
    body: &[u8],
) {
    let first = headers.is_some();
    let head = match (rt.pars.include_header, headers) {
        (true, Some(headers)) => {
            let mut head = format!("HTTP/1.1 {status} {reason}\n");
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\n"));
            }
            head.push('\n');
            head
        }
        _ => String::new(),
    };
    // Chunks split lines and characters anywhere: what does not end a line (rows) or a
    // character (text) waits for the next chunk.
    let mut pending = rt.partial.remove(&request).unwrap_or_default();
    pending.extend_from_slice(body);
    let limit = rt.pars.max_response_bytes;
    if let Some(rows) = &mut rt.rows {
        for line in head.lines() {
            rows.push_record(&[line.to_string()]);
        }
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = &pending[start..start + end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            rows.push_record(&[String::from_utf8_lossy(line).into_owned()]);
            start += end + 1;
        }
        pending.drain(..start);
        // A line longer than Max Response Size is shown in pieces rather than held without end.
        if pending.len() > limit {
            rows.push_record(&[String::from_utf8_lossy(&pending).into_owned()]);
            pending.clear();
        }
    } else {
        if first {
            rt.text.clear();
        }
        rt.text.push_str(&head);
        let complete = match std::str::from_utf8(&pending) {
            Ok(_) => pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => pending.len(),
        };
        rt.text
            .push_str(&String::from_utf8_lossy(&pending[..complete]));
        pending.drain(..complete);
        // A stream shown as text keeps its last Max Response Size bytes.
        if rt.pars.stream && rt.text.len() > limit {
            let mut cut = rt.text.len() - limit;
            while !rt.text.is_char_boundary(cut) {
                cut += 1;
            }
            rt.text.drain(..cut);
        }
    }
    if !pending.is_empty() {
        rt.partial.insert(request, pending);
    }
}

/// The end of a request: what waited for the rest of its line or character is shown as it is.
fn flush_partial(rt: &mut Runtime, request: i64) {
    let Some(pending) = rt.partial.remove(&request) else {
        return;
    };
    let text = String::from_utf8_lossy(&pending).into_owned();
    match &mut rt.rows {
        Some(rows) => {
            rows.push_record(&[text]);
        }
        None => rt.text.push_str(&text),
    }
}

fn handle_event(engine: &mut Engine, id: NodeId, run: u64, event: WebClientEvent) {
    if engine
        .world()
        .runtime::<Runtime>(id)
        .is_none_or(|rt| rt.run != run)
    {
        return;
    }
    match event {
        WebClientEvent::Connected { id: request } => {
            engine.call(id, "onConnect", vec![dat(id), Value::Int(request)]);
        }
        WebClientEvent::Response {
            id: request,
            status,
            reason,
            headers,
            body,
        } => {
            let world = engine.world_mut();
            let rt = runtime(world, id);
            let first = headers.is_some();
            if first {
                rt.responses += 1;
                rt.last_status = status;
            }
            rt.bytes_in += body.len() as u64;
            show(rt, request, status, &reason, headers.as_deref(), &body);
            world.state_mut(id).content_rev += 1;
            let header_value = headers
                .as_deref()
                .map_or(Value::Dict(Vec::new()), header_dict);
            engine.call(
                id,
                "onResponse",
                vec![
                    dat(id),
                    status_dict(status, &reason),
                    header_value,
                    Value::Bytes(body),
                    Value::Int(request),
                ],
            );
        }
        WebClientEvent::Failed { id: request, error } => {
            let world = engine.world_mut();
            runtime(world, id).failures += 1;
            world.report_warning(id, format!("request {request}: {error}"));
            engine.call(
                id,
                "onResponse",
                vec![
                    dat(id),
                    status_dict(0, &error),
                    Value::Dict(Vec::new()),
                    Value::Bytes(Bytes::new()),
                    Value::Int(request),
                ],
            );
        }
        WebClientEvent::Done {
            id: request,
            connected,
        } => {
            let world = engine.world_mut();
            let rt = runtime(world, id);
            rt.open.remove(&request);
            flush_partial(rt, request);
            world.state_mut(id).content_rev += 1;
            if connected {
                engine.call(id, "onDisconnect", vec![dat(id), Value::Int(request)]);
            }
        }
    }
}

impl Operator for WebClient {
    fn reconcile(&self, engine: &mut Engine, id: NodeId, _first: bool) {
        reconcile(engine, id);
    }

    fn pulse(&self, engine: &mut Engine, id: NodeId, token: &str) {
        pulse(engine, id, token);
    }

    /// Closes every request; their late events are ignored.
    fn stop(&self, engine: &mut Engine, id: NodeId) {
        let rt = runtime(engine.world_mut(), id);
        close_all(rt);
        rt.open.clear();
        rt.partial.clear();
        rt.run += 1;
    }

    fn handle_event(&self, engine: &mut Engine, id: NodeId, run: u64, event: NetEventKind) {
        if let NetEventKind::WebClient(event) = event {
            handle_event(engine, id, run, event);
        }
    }

    fn info(&self, world: &World, id: NodeId, out: &mut Vec<(&'static str, f64)>) {
        let Some(rt) = world.runtime::<Runtime>(id) else {
            return;
        };
        out.extend([
            ("connected", f64::from(u8::from(!rt.open.is_empty()))),
            ("open_requests", rt.open.len() as f64),
            ("requests", rt.requests as f64),
            ("responses", rt.responses as f64),
            ("connection_errors", rt.failures as f64),
            ("bytes_in", rt.bytes_in as f64),
            ("bytes_out", rt.bytes_out as f64),
            ("last_status", f64::from(rt.last_status)),
        ]);
    }

    fn badge(&self, world: &World, id: NodeId) -> Badge {
        match world.runtime::<Runtime>(id) {
            Some(rt) if !rt.open.is_empty() => Badge::Connected,
            _ => Badge::Idle,
        }
    }

    fn messages_in(&self, world: &World, id: NodeId) -> u64 {
        world.runtime::<Runtime>(id).map_or(0, |rt| rt.responses)
    }

    fn dat<'w>(&self, world: &'w World, id: NodeId) -> Option<DatRef<'w>> {
        let rt = world.runtime::<Runtime>(id)?;
        Some(match &rt.rows {
            Some(rows) => DatRef::Fifo(rows),
            None => DatRef::Text(&rt.text),
        })
    }

    fn script_methods(&self) -> &'static [ScriptMethod] {
        script::METHODS
    }

    fn callbacks_template(&self) -> Option<&'static str> {
        Some(callbacks::DEFAULT_CALLBACKS)
    }
}
