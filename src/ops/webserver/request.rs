//! A request as callbacks see it (the `request` dict of DESIGN §4) and the `response` dict they
//! return, turned back into an answer.

use bytes::Bytes;

use crate::engine::Value;
use crate::net::server::{HttpRequest, HttpResponse};

/// A header name as it is usually written (`content-type` gives `Content-Type`), including the
/// irregular ones scripts look for (`Sec-WebSocket-Protocol`, `ETag`, `WWW-Authenticate`).
pub fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| match part {
            "websocket" => "WebSocket".to_string(),
            "etag" => "ETag".to_string(),
            "www" | "te" | "dnt" => part.to_ascii_uppercase(),
            _ => {
                let mut chars = part.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                    None => String::new(),
                }
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Body as a string when it is UTF-8, else as bytes (as TouchDesigner hands str or bytes).
fn body_value(body: &Bytes) -> Value {
    match std::str::from_utf8(body) {
        Ok(text) => Value::str(text),
        Err(_) => Value::Bytes(body.clone()),
    }
}

/// Keys of the request dict that are fields, so a header of the same name cannot replace them.
const FIELDS: &[&str] = &[
    "method",
    "uri",
    "pars",
    "clientAddress",
    "serverAddress",
    "data",
    "savedPath",
];

/// The `request` dict of DESIGN §4: fields, then every header under its usual spelling
/// (`Content-Type`) and in lower case (`content-type`). Public for the fuzz target only.
#[doc(hidden)]
pub fn request_map(request: &HttpRequest) -> Value {
    let mut map: Vec<(String, Value)> = Vec::with_capacity(8 + 2 * request.headers.len());
    map.push(("method".into(), Value::str(request.method.as_str())));
    map.push(("uri".into(), Value::str(request.path.as_str())));
    let pars = form_urlencoded::parse(request.query.as_bytes())
        .map(|(key, value)| (key.into_owned(), Value::from(value.into_owned())))
        .fold(
            Vec::new(),
            |mut pars: Vec<(String, Value)>, (key, value)| {
                // A repeated key keeps its last value, as a dict assignment would.
                match pars.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = value,
                    None => pars.push((key, value)),
                }
                pars
            },
        );
    map.push(("pars".into(), Value::Dict(pars)));
    map.push((
        "clientAddress".into(),
        Value::Str(request.client_addr.clone()),
    ));
    map.push((
        "serverAddress".into(),
        Value::Str(request.server_addr.clone()),
    ));
    map.push(("data".into(), body_value(&request.body)));
    if let Some(saved) = &request.saved_path {
        map.push(("savedPath".into(), saved.display().to_string().into()));
    }
    for (name, value) in &request.headers {
        for key in [title_case(name), name.clone()] {
            if FIELDS.contains(&key.as_str()) {
                continue;
            }
            match map.iter_mut().find(|(k, _)| *k == key) {
                // Repeated headers are joined, as HTTP allows.
                Some((_, existing)) => *existing = format!("{existing}, {value}").into(),
                None => map.push((key, value.as_str().into())),
            }
        }
    }
    Value::Dict(map)
}

/// Headers the server writes itself, from the body it sends: a callback's own would contradict it
/// (a wrong Content-Length desyncs keep-alive).
const FRAMING_HEADERS: &[&str] = &["content-length", "transfer-encoding", "connection"];

pub fn response_map(status: u16, reason: &str) -> Value {
    Value::Dict(vec![
        ("statusCode".into(), Value::Int(i64::from(status))),
        ("statusReason".into(), reason.into()),
        ("data".into(), "".into()),
    ])
}

/// What [`to_response`] made of a callback's answer.
#[derive(Debug)]
pub struct Answer {
    pub response: HttpResponse,
    /// Framing headers the callback set, which the server replaced with the true ones.
    pub dropped: Vec<String>,
}

/// Turns the callback's returned map into an answer, or says why it cannot. `given` is the
/// status and reason the callback's `response` started with: a reason left as given follows a
/// changed status (a callback that sets only `statusCode = 200` does not answer "200 Not Found").
/// `informational` allows 1xx (only the upgrade's 101 is meaningful).
pub fn to_response(
    value: Value,
    callback: &str,
    given: (u16, &str),
    informational: bool,
) -> Result<Answer, String> {
    let Value::Dict(map) = value else {
        return Err(format!(
            "{callback} returned {}, not the response map (end it with `response`)",
            value.type_name()
        ));
    };
    let mut response = HttpResponse {
        status: 404,
        reason: None,
        headers: Vec::new(),
        body: Bytes::new(),
    };
    let mut has_content_type = false;
    let mut dropped = Vec::new();
    for (key, value) in map {
        match key.as_str() {
            "statusCode" => {
                let status = value
                    .as_int()
                    .filter(|s| (100..=999).contains(s))
                    .ok_or_else(|| {
                        format!("statusCode {value} is not an HTTP status (100..999)")
                    })?;
                response.status = status as u16;
            }
            "statusReason" => {
                response.reason = Some(value.to_string()).filter(|r| !r.is_empty());
            }
            "data" => response.body = value.to_bytes(),
            name => {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(format!(
                        "response key \"{name}\" is not a valid header name"
                    ));
                }
                if FRAMING_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                    dropped.push(name.to_string());
                    continue;
                }
                has_content_type |= name.eq_ignore_ascii_case("content-type");
                response.headers.push((name.to_string(), value.to_string()));
            }
        }
    }
    if (100..200).contains(&response.status) && !informational {
        return Err(format!(
            "{callback} answered {}: an informational status is not an answer to a request",
            response.status
        ));
    }
    if response.status != given.0 && response.reason.as_deref() == Some(given.1) {
        response.reason = None;
    }
    if !has_content_type && !response.body.is_empty() {
        let guess = if std::str::from_utf8(&response.body).is_ok() {
            "text/html; charset=utf-8"
        } else {
            "application/octet-stream"
        };
        response.headers.push(("Content-Type".into(), guess.into()));
    }
    Ok(Answer { response, dropped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_reach_scripts_in_both_spellings() {
        let request = HttpRequest {
            method: "GET".into(),
            path: "/a".into(),
            query: "x=1&y=two%20words".into(),
            headers: vec![
                ("content-type".into(), "text/plain".into()),
                ("x-tag".into(), "a".into()),
                ("x-tag".into(), "b".into()),
            ],
            body: Bytes::from_static(b"\xff\x00"),
            client_addr: "127.0.0.1:5000".into(),
            server_addr: "127.0.0.1:80".into(),
            saved_path: None,
        };
        let map = request_map(&request);
        let get = |key: &str| map.get(key).unwrap().to_string();
        assert_eq!(get("Content-Type"), "text/plain");
        assert_eq!(get("content-type"), "text/plain");
        assert_eq!(get("X-Tag"), "a, b");
        assert_eq!(
            title_case("sec-websocket-protocol"),
            "Sec-WebSocket-Protocol"
        );
        assert_eq!(title_case("www-authenticate"), "WWW-Authenticate");
        assert_eq!(
            map.get("pars").unwrap().get("y").unwrap().to_string(),
            "two words"
        );
        assert!(matches!(map.get("data"), Some(Value::Bytes(_))));
    }
}
