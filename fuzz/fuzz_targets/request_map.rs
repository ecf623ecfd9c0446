//! An HTTP request, as the listener hands it over, turned into the script's `request` map: it
//! must never panic, and no header may overwrite the fields the callbacks rely on
//! (method, uri, pars, clientAddress, serverAddress, data, savedPath).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use datpatch::engine::Value;
use datpatch::net::server::HttpRequest;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    saved_path: Option<String>,
    client: ([u8; 4], u16),
    server: ([u8; 4], u16),
}

fuzz_target!(|input: Input| {
    let addr = |(ip, port): ([u8; 4], u16)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port);
    let request = HttpRequest {
        method: input.method,
        path: input.path,
        query: input.query,
        headers: input.headers,
        body: Bytes::from(input.body),
        saved_path: input.saved_path.map(std::path::PathBuf::from),
        client_addr: addr(input.client).to_string().into(),
        server_addr: addr(input.server).to_string().into(),
    };
    let map = datpatch::ops::webserver::request::request_map(&request);
    let text = |key: &str| map.get(key).map(|v| v.to_string());
    assert_eq!(text("method").as_deref(), Some(request.method.as_str()));
    assert_eq!(text("uri").as_deref(), Some(request.path.as_str()));
    assert_eq!(text("clientAddress"), Some(request.client_addr.to_string()));
    assert_eq!(text("serverAddress"), Some(request.server_addr.to_string()));
    assert!(matches!(map.get("pars"), Some(Value::Dict(_))));
    match std::str::from_utf8(&request.body) {
        Ok(body) => assert_eq!(text("data").as_deref(), Some(body)),
        Err(_) => assert!(matches!(map.get("data"), Some(Value::Bytes(_)))),
    }
    assert_eq!(
        text("savedPath"),
        request.saved_path.as_ref().map(|p| p.display().to_string())
    );
    // Every header is there under its own name.
    for (name, _) in &request.headers {
        if !matches!(
            name.as_str(),
            "method" | "uri" | "pars" | "clientAddress" | "serverAddress" | "data" | "savedPath"
        ) {
            assert!(map.get(name).is_some(), "header {name:?} is missing");
        }
    }
});
