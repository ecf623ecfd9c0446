//! The WebSocket DAT's parameters, read once per reconcile: the connection settings (a change
//! reconnects) and the received-messages table's settings (applied at once).

use crate::engine::{World, resolve_env};
use crate::net::client::{self, Backoff, ClientConfig};
use crate::project::{NodeId, ParValue};

/// The parameters the received-messages table and the cook read, typed.
#[derive(Debug, Clone, Default)]
pub struct WebSocketPars {
    pub active: bool,
    /// `None` keeps every row (Clamp Output off).
    pub max_lines: Option<usize>,
    pub bytes_column: bool,
    /// Message Format is NanoLLM: binary messages are frames, decoded into the table.
    pub framed: bool,
}

impl WebSocketPars {
    pub fn read(world: &World, id: NodeId) -> Self {
        Self {
            active: world.par_bool(id, "active"),
            max_lines: crate::ops::clamped_lines(world, id),
            bytes_column: world.par_bool(id, "bytes"),
            framed: world.par_str(id, "format").is_ok_and(|f| f == "nanollm"),
        }
    }
}

/// The connection parameters, resolved. A change to any of them reconnects.
#[derive(Clone, PartialEq)]
pub struct ConnectSettings {
    pub url: String,
    pub timeout_ms: u64,
    pub reconnect: bool,
    pub subprotocols: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub ping_interval_ms: u64,
    pub pong_timeout_ms: u64,
    pub verify_cert: bool,
    /// The CA file's contents (wss only), so an edited file is picked up on the next reconcile.
    pub ca_pem: Option<Vec<u8>>,
    pub max_message_bytes: usize,
}

// Header values and subprotocols often hold tokens: keep them out of debug output.
impl std::fmt::Debug for ConnectSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectSettings")
            .field("url", &self.url)
            .field("headers", &self.headers.len())
            .field("subprotocols", &self.subprotocols.len())
            .finish_non_exhaustive()
    }
}

impl ConnectSettings {
    pub fn read(world: &World, id: NodeId) -> Result<ConnectSettings, String> {
        let netaddress = world.par_str(id, "netaddress")?;
        let port = u16::try_from(world.par_int(id, "port").clamp(1, 65535)).unwrap_or(80);
        let url = resolve_url(&netaddress, port)?;
        let subprotocols = match world.par(id, "subprotocols") {
            Some(ParValue::Str(list)) => list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| resolve_env(p).map_err(|e| format!("Subprotocols: {e}")))
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };
        let verify_cert = world.par_bool(id, "verifycert");
        let cafile_set =
            matches!(world.par(id, "cafile"), Some(ParValue::Str(s)) if !s.trim().is_empty());
        let ca_pem = if url.starts_with("wss://") && cafile_set && verify_cert {
            let path = world.file_par(id, "cafile")?;
            Some(std::fs::read(&path).map_err(|e| format!("CA file {}: {e}", path.display()))?)
        } else {
            None
        };
        Ok(ConnectSettings {
            url,
            timeout_ms: world.par_int(id, "timeout").max(1) as u64,
            reconnect: world.par_bool(id, "reconnect"),
            subprotocols,
            headers: crate::ops::header_rows(world, id)?,
            ping_interval_ms: world.par_int(id, "pinginterval").max(0) as u64,
            pong_timeout_ms: world.par_int(id, "pongtimeout").max(1) as u64,
            verify_cert,
            ca_pem,
            max_message_bytes: usize::try_from(world.par_int(id, "maxmessagebytes").max(128))
                .unwrap_or(1 << 20),
        })
    }

    pub fn client_config(&self) -> Result<ClientConfig, String> {
        let tls = if self.url.starts_with("wss://") {
            Some(crate::net::tls::client_config(
                self.verify_cert,
                self.ca_pem.as_deref(),
            )?)
        } else {
            None
        };
        let config = ClientConfig {
            url: self.url.clone(),
            timeout_ms: self.timeout_ms,
            reconnect: self.reconnect,
            backoff: Backoff::DEFAULT,
            subprotocols: self.subprotocols.clone(),
            headers: self.headers.clone(),
            ping_interval_ms: self.ping_interval_ms,
            pong_timeout_ms: self.pong_timeout_ms,
            tls,
            max_message_bytes: self.max_message_bytes,
        };
        // A bad header is a setup error: report it now, not as a failure on every attempt.
        client::build_request(&config)?;
        Ok(config)
    }
}

/// The URL to connect to. `netaddress` is a host name, an IP, or a full `ws://`/`wss://` URL
/// (with a path); a port in it wins over `port`. Without a scheme, port 443 means TLS, as in
/// TouchDesigner.
pub fn resolve_url(netaddress: &str, port: u16) -> Result<String, String> {
    let address = netaddress.trim();
    if address.is_empty() {
        return Err("Network Address is empty".to_string());
    }
    let lower = address.to_ascii_lowercase();
    let (scheme, rest) = [
        ("wss://", Some("wss")),
        ("ws://", Some("ws")),
        ("https://", Some("wss")),
        ("http://", Some("ws")),
    ]
    .iter()
    .find(|(prefix, _)| lower.starts_with(prefix))
    .map_or((None, address), |(prefix, scheme)| {
        (*scheme, &address[prefix.len()..])
    });
    if scheme.is_none() && lower.contains("://") {
        return Err(format!(
            "\"{address}\": only ws:// and wss:// addresses are supported"
        ));
    }
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    if authority.is_empty() {
        return Err(format!("\"{address}\" names no host"));
    }
    let (host, port) = if authority.parse::<std::net::Ipv6Addr>().is_ok() {
        (format!("[{authority}]"), port)
    } else {
        // `host:port` or `[v6]:port`; a lone colon inside brackets is part of the address.
        match authority.rsplit_once(':') {
            Some((host, p)) if !host.is_empty() && (!host.contains(':') || host.ends_with(']')) => {
                let p = p
                    .parse::<u16>()
                    .map_err(|_| format!("\"{address}\": \"{p}\" is not a port"))?;
                (host.to_string(), p)
            }
            _ => (authority.to_string(), port),
        }
    };
    let scheme = scheme.unwrap_or(if port == 443 { "wss" } else { "ws" });
    let url = format!("{scheme}://{host}:{port}{path}");
    url.parse::<http::Uri>()
        .map_err(|e| format!("\"{address}\" is not a valid address: {e}"))?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_resolve_to_urls() {
        let ok = |a: &str, p: u16| resolve_url(a, p).unwrap();
        assert_eq!(ok("localhost", 9980), "ws://localhost:9980/");
        assert_eq!(ok("example.com", 443), "wss://example.com:443/");
        assert_eq!(ok("127.0.0.1/feed?x=1", 80), "ws://127.0.0.1:80/feed?x=1");
        assert_eq!(ok("wss://h.example/a/b", 9980), "wss://h.example:9980/a/b");
        assert_eq!(ok("ws://h:1234/p", 443), "ws://h:1234/p");
        assert_eq!(ok("WSS://H:8443", 80), "wss://H:8443/");
        assert_eq!(ok("h:443", 80), "wss://h:443/");
        assert_eq!(ok("::1", 9), "ws://[::1]:9/");
        assert_eq!(ok("[::1]:7", 9), "ws://[::1]:7/");
        assert_eq!(ok("ws://[::1]/x", 9), "ws://[::1]:9/x");
        assert_eq!(ok("h?q=1", 9), "ws://h:9/?q=1");
        assert!(resolve_url("", 80).is_err());
        assert!(resolve_url("ftp://h", 80).is_err());
        assert!(resolve_url("ws:///x", 80).is_err());
        assert!(resolve_url("h:notaport", 80).is_err());
        assert!(resolve_url("bad host", 80).is_err());
    }
}
