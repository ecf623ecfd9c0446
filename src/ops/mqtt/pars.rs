//! The MQTT Client DAT's parameters, read once per reconcile: the connection settings (a change
//! reconnects) and the received-messages table's (applied at once).

use std::sync::Arc;

use crate::engine::World;
use crate::net::mqtt::{BrokerAddress, MqttConfig, MqttTransport, Scheme};
use crate::net::tls;
use crate::project::NodeId;

#[derive(Debug, Clone, Default)]
pub struct MqttPars {
    pub active: bool,
    /// `None` keeps every row (Clamp Output off).
    pub max_lines: Option<usize>,
    pub bytes_column: bool,
}

impl MqttPars {
    pub fn read(world: &World, id: NodeId) -> Self {
        Self {
            active: world.par_bool(id, "active"),
            max_lines: crate::ops::clamped_lines(world, id),
            bytes_column: world.par_bool(id, "bytes"),
        }
    }
}

/// The connection parameters, resolved; a change to any of them reconnects.
#[derive(Clone, PartialEq)]
pub struct MqttSettings {
    pub address: BrokerAddress,
    /// The user's id, or `None` for a fresh one per start.
    pub client_id: Option<String>,
    pub keep_alive_s: u64,
    pub max_inflight: u16,
    pub clean_session: bool,
    pub verify_cert: bool,
    pub ca_pem: Option<Vec<u8>>,
    pub credentials: Option<(String, String)>,
    pub max_packet_bytes: usize,
}

impl MqttSettings {
    pub fn read(world: &World, id: NodeId) -> Result<Self, String> {
        let address = parse_address(&world.par_str(id, "netaddress")?)?;
        let client_id = if world.par_bool(id, "specifyid") {
            let cid = world.par_str(id, "usercid")?;
            if cid.trim().is_empty() {
                return Err("Specify ID is on but User Client ID is empty".into());
            }
            Some(cid)
        } else {
            None
        };
        let ca_pem = match world.par_str(id, "cafile")? {
            path if path.is_empty() || !address.scheme.is_tls() => None,
            _ => {
                let path = world.file_par(id, "cafile")?;
                Some(std::fs::read(&path).map_err(|e| format!("CA file {}: {e}", path.display()))?)
            }
        };
        let username = world.par_str(id, "username")?;
        let credentials = (!username.is_empty())
            .then(|| Ok::<_, String>((username, world.par_str(id, "password")?)))
            .transpose()?;
        Ok(Self {
            address,
            client_id,
            keep_alive_s: u64::try_from(world.par_int(id, "keepalive").max(1)).unwrap_or(60),
            max_inflight: u16::try_from(world.par_int(id, "maxinflight").clamp(1, 65_535))
                .unwrap_or(100),
            clean_session: world.par_bool(id, "cleansession"),
            verify_cert: world.par_bool(id, "verifycert"),
            ca_pem,
            credentials,
            max_packet_bytes: usize::try_from(world.par_int(id, "maxmessagebytes").max(128))
                .unwrap_or(1 << 20),
        })
    }

    pub fn config(&self) -> Result<MqttConfig, String> {
        let tls_config = || -> Result<Arc<rustls::ClientConfig>, String> {
            tls::client_config(self.verify_cert, self.ca_pem.as_deref())
        };
        let transport = match self.address.scheme {
            Scheme::Tcp => MqttTransport::Tcp,
            Scheme::Ssl => MqttTransport::Tls(tls_config()?),
            Scheme::Ws => MqttTransport::Ws,
            Scheme::Wss => MqttTransport::Wss(tls_config()?),
        };
        Ok(MqttConfig {
            address: self.address.clone(),
            transport,
            client_id: self
                .client_id
                .clone()
                .unwrap_or_else(|| format!("datpatch-{:016x}", fastrand::u64(..))),
            keep_alive_s: self.keep_alive_s,
            max_inflight: self.max_inflight,
            clean_session: self.clean_session,
            credentials: self.credentials.clone(),
            max_packet_bytes: self.max_packet_bytes,
        })
    }
}

/// The request path of a `ws://` or `wss://` address that names none: EMQX's and HiveMQ's
/// default, and the Paho clients' (Mosquitto answers on any path).
pub const DEFAULT_WEBSOCKET_PATH: &str = "/mqtt";

/// Parses the Network Address: `tcp://host[:port]` and `ssl://host[:port]` (also `mqtt://`,
/// `tls://`, `mqtts://`, or a bare `host[:port]`), `ws://host[:port][/path]` and
/// `wss://host[:port][/path]`. Ports default to 1883, 8883, 80 and 443; a WebSocket path to
/// [`DEFAULT_WEBSOCKET_PATH`].
pub fn parse_address(address: &str) -> Result<BrokerAddress, String> {
    let address = address.trim();
    let (scheme, rest) = address.split_once("://").unwrap_or(("tcp", address));
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "tcp" | "mqtt" => Scheme::Tcp,
        "ssl" | "tls" | "mqtts" => Scheme::Ssl,
        "ws" => Scheme::Ws,
        "wss" => Scheme::Wss,
        other => {
            return Err(format!(
                "\"{address}\": unknown scheme \"{other}\" (tcp://, ssl://, ws:// or wss://)"
            ));
        }
    };
    // The host and port end where a path, a query or a fragment starts.
    let (authority, target) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let path = if scheme.is_websocket() {
        websocket_path(address, target)?
    } else if target.chars().all(|c| c == '/') {
        String::new()
    } else {
        return Err(format!(
            "\"{address}\": only ws:// and wss:// addresses take a path, not \"{target}\""
        ));
    };
    if authority.contains('@') {
        return Err(format!(
            "\"{address}\": put the user name and password in Username and Password, not in the address"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("\"{address}\": unclosed [ in the host"))?;
        match after {
            "" => (host.to_string(), None),
            _ => (
                host.to_string(),
                Some(after.strip_prefix(':').ok_or_else(|| {
                    format!("\"{address}\": \"{after}\" after the IPv6 host is not :port")
                })?),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (authority.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("\"{address}\": \"{p}\" is not a port"))?,
        None => scheme.default_port(),
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '[' || c == ']') {
        return Err(format!("\"{address}\" names no broker host"));
    }
    let parsed = BrokerAddress {
        scheme,
        host,
        port,
        path,
    };
    // The WebSocket handshake parses the URL again: refuse here, with the address named, what
    // it would refuse at each connection attempt.
    if scheme.is_websocket() && parsed.websocket_url().parse::<http::Uri>().is_err() {
        return Err(format!(
            "\"{address}\" is not a valid WebSocket URL (percent-encode such characters as < > ` in the path)"
        ));
    }
    Ok(parsed)
}

/// The request target of a WebSocket address from what follows its host and port: `/mqtt` when
/// there is no path (a query alone is kept after it); no fragment, no spaces.
fn websocket_path(address: &str, target: &str) -> Result<String, String> {
    if target.contains('#') {
        return Err(format!(
            "\"{address}\": a #fragment is not sent to the server; remove it"
        ));
    }
    if target.contains(char::is_whitespace) {
        return Err(format!(
            "\"{address}\": the path has a space (write it as %20)"
        ));
    }
    Ok(if target.starts_with('/') {
        target.to_string()
    } else {
        format!("{DEFAULT_WEBSOCKET_PATH}{target}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(address: &str) -> (Scheme, String, u16, String) {
        let parsed = parse_address(address).unwrap();
        (parsed.scheme, parsed.host, parsed.port, parsed.path)
    }

    fn err(address: &str) -> String {
        parse_address(address).unwrap_err()
    }

    #[test]
    fn addresses_parse_with_default_ports() {
        let none = String::new;
        assert_eq!(
            ok("tcp://localhost:1884"),
            (Scheme::Tcp, "localhost".into(), 1884, none())
        );
        assert_eq!(
            ok("ssl://broker.example"),
            (Scheme::Ssl, "broker.example".into(), 8883, none())
        );
        assert_eq!(
            ok("127.0.0.1"),
            (Scheme::Tcp, "127.0.0.1".into(), 1883, none())
        );
        assert_eq!(
            ok("mqtts://[::1]:9"),
            (Scheme::Ssl, "::1".into(), 9, none())
        );
        assert_eq!(ok(" TCP://h:1/ "), (Scheme::Tcp, "h".into(), 1, none()));
        assert!(err("tcp://:1883").contains("names no broker host"));
        assert!(err("tcp://h:x").contains("\"x\" is not a port"));
        assert!(err("tcp://h:0").contains("is not a port"));
        assert!(err("ftp://h").contains("unknown scheme \"ftp\""));
        assert!(err("tcp://h:1883/mqtt").contains("only ws:// and wss://"));
        assert!(err("tcp://user:pw@h").contains("Username and Password"));
        assert!(err("tcp://[::1").contains("unclosed ["));
        assert!(err("tcp://[::1]x").contains("is not :port"));
    }

    #[test]
    fn websocket_addresses_default_to_port_80_or_443_and_path_mqtt() {
        let path = |p: &str| p.to_string();
        assert_eq!(
            ok("ws://broker.example"),
            (Scheme::Ws, "broker.example".into(), 80, path("/mqtt"))
        );
        assert_eq!(
            ok("wss://broker.example:8081"),
            (Scheme::Wss, "broker.example".into(), 8081, path("/mqtt"))
        );
        assert_eq!(ok("WSS://h/"), (Scheme::Wss, "h".into(), 443, path("/")));
        assert_eq!(
            ok("ws://[::1]:9001/broker/ws?token=a%20b"),
            (
                Scheme::Ws,
                "::1".into(),
                9001,
                path("/broker/ws?token=a%20b")
            )
        );
        assert_eq!(
            ok("ws://h:9001?token=x"),
            (Scheme::Ws, "h".into(), 9001, path("/mqtt?token=x"))
        );
        let url = |a: &str| parse_address(a).unwrap().websocket_url();
        assert_eq!(url("ws://h"), "ws://h:80/mqtt");
        assert_eq!(url("wss://[::1]/x"), "wss://[::1]:443/x");
        let shown = |a: &str| parse_address(a).unwrap().to_string();
        assert_eq!(shown("wss://h:8081"), "wss://h:8081/mqtt");
        assert_eq!(shown("tcp://[::1]"), "[::1]:1883");
        assert!(err("ws://:80/mqtt").contains("names no broker host"));
        assert!(err("ws://h:99999").contains("is not a port"));
        assert!(err("ws://h/mqtt#frag").contains("fragment"));
        assert!(err("ws://h/a b").contains("space"));
        assert!(err("wss://h/a<b>").contains("not a valid WebSocket URL"));
        assert!(err("ws://h`x/").contains("not a valid WebSocket URL"));
    }
}
