//! The Web Client DAT's script methods, TouchDesigner's: `request(url, method, header=, data=,
//! pars=, authType=, username=, password=, ..., uploadFile=, timeout=)` returning the request's
//! id at once, `closeConnection(id)` and the `connections` property.

use bytes::Bytes;

use super::pars::{self, Auth};
use super::{Ask, Runtime, start};
use crate::engine::{ScriptMethod, Value, World};
use crate::project::NodeId;

pub const METHODS: &[ScriptMethod] = &[
    ScriptMethod::method(
        "request",
        &[
            "url",
            "method",
            "header",
            "data",
            "pars",
            "authType",
            "username",
            "password",
            "appKey",
            "appSecret",
            "oauth1Token",
            "oauth1Secret",
            "oauth2Token",
            "uploadFile",
            "timeout",
        ],
        2,
        request,
    ),
    ScriptMethod::method("closeConnection", &["id"], 1, |world, id, args| {
        let request = args[0]
            .as_int()
            .ok_or_else(|| format!("closeConnection: id is {}", args[0].type_name()))?;
        if let Some(cancel) = world.runtime_mut::<Runtime>(id).open.get(&request) {
            cancel.cancel();
        }
        Ok(Value::None)
    }),
    ScriptMethod::property("connections", |world, id, _| {
        Ok(Value::List(
            world
                .runtime::<Runtime>(id)
                .map(|rt| rt.open.keys().map(|&k| Value::Int(k)).collect())
                .unwrap_or_default(),
        ))
    }),
];

fn text_arg(args: &[Value], index: usize) -> String {
    match args.get(index) {
        None | Some(Value::None) => String::new(),
        Some(value) => value.to_text().to_string(),
    }
}

/// A dict argument's entries as text pairs (`header=`, `pars=`).
fn pairs(value: Option<&Value>, what: &str) -> Result<Vec<(String, String)>, String> {
    match value {
        None | Some(Value::None) => Ok(Vec::new()),
        Some(Value::Dict(entries)) => Ok(entries
            .iter()
            .map(|(k, v)| (k.clone(), v.to_text().to_string()))
            .collect()),
        Some(other) => Err(format!(
            "request: {what} must be a dict, not {}",
            other.type_name()
        )),
    }
}

fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::None | Value::Op(_) => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(x) => J::from(*x),
        Value::Str(s) => J::String(s.to_string()),
        Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        Value::List(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Dict(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
    }
}

fn request(world: &mut World, id: NodeId, args: &[Value]) -> Result<Value, String> {
    let method = pars::method(&text_arg(args, 1))?;
    let query = pairs(args.get(4), "pars")?;
    let url = pars::with_query(&text_arg(args, 0), &query);
    let mut headers = pairs(args.get(2), "header")?;
    let has_header = |headers: &[(String, String)], name: &str| {
        headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    // A dict or list is sent as JSON, which is what a JSON API expects of it.
    let body = match args.get(3) {
        None | Some(Value::None) => Bytes::new(),
        Some(Value::Bytes(b)) => b.clone(),
        Some(value @ (Value::Dict(_) | Value::List(_))) => {
            if !has_header(&headers, "content-type") {
                headers.push(("content-type".into(), "application/json".into()));
            }
            Bytes::from(to_json(value).to_string())
        }
        Some(other) => Bytes::copy_from_slice(other.to_text().as_bytes()),
    };
    let auth = Auth::parse(
        &text_arg(args, 5),
        text_arg(args, 6),
        text_arg(args, 7),
        text_arg(args, 12),
    )?;
    if !has_header(&headers, "authorization") {
        headers.extend(auth.header());
    }
    let upload_file = match text_arg(args, 13) {
        path if path.is_empty() => None,
        path => Some(world.base_dir.join(path)),
    };
    let timeout_ms = match args.get(14) {
        None | Some(Value::None) => world
            .runtime::<Runtime>(id)
            .map_or(60_000, |rt| rt.pars.timeout_ms),
        Some(value) => value
            .as_int()
            .and_then(|ms| u64::try_from(ms).ok())
            .filter(|&ms| ms > 0)
            .ok_or_else(|| {
                format!("request: timeout must be a positive number of ms, not {value}")
            })?,
    };
    let ask = Ask {
        method,
        url,
        headers,
        body,
        upload_file,
        timeout_ms,
    };
    start(world, id, ask).map(Value::Int)
}
