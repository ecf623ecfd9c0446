//! The MQTT Client DAT's parameters, read once per reconcile: the connection settings (a change
//! reconnects) and the received-messages table's (applied at once).

use std::sync::Arc;

use crate::engine::World;
use crate::net::mqtt::MqttConfig;
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
    pub host: String,
    pub port: u16,
    pub tls: bool,
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
        let (tls, host, port) = parse_address(&world.par_str(id, "netaddress")?)?;
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
            path if path.is_empty() || !tls => None,
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
            host,
            port,
            tls,
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
        let tls_config: Option<Arc<rustls::ClientConfig>> = if self.tls {
            Some(tls::client_config(
                self.verify_cert,
                self.ca_pem.as_deref(),
            )?)
        } else {
            None
        };
        Ok(MqttConfig {
            host: self.host.clone(),
            port: self.port,
            tls: tls_config,
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

/// `tcp://host:port`, `ssl://host:port` (also `mqtt://`, `mqtts://`, or a bare `host:port`) as
/// (TLS, host, port).
pub fn parse_address(address: &str) -> Result<(bool, String, u16), String> {
    let address = address.trim();
    let (scheme, rest) = address.split_once("://").unwrap_or(("tcp", address));
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "tcp" | "mqtt" => false,
        "ssl" | "tls" | "mqtts" => true,
        "ws" | "wss" => {
            return Err(format!(
                "\"{address}\": MQTT over WebSocket is not offered yet; use tcp:// or ssl://"
            ));
        }
        other => {
            return Err(format!(
                "\"{address}\": unknown scheme \"{other}\" (tcp:// or ssl://)"
            ));
        }
    };
    let rest = rest.trim_end_matches('/');
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("\"{address}\": unclosed [ in the host"))?;
        (host.to_string(), after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (rest.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("\"{address}\": \"{p}\" is not a port"))?,
        None => default_port,
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("\"{address}\" names no broker host"));
    }
    Ok((tls, host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_default_ports() {
        let ok = |a: &str| parse_address(a).unwrap();
        assert_eq!(
            ok("tcp://localhost:1884"),
            (false, "localhost".into(), 1884)
        );
        assert_eq!(
            ok("ssl://broker.example"),
            (true, "broker.example".into(), 8883)
        );
        assert_eq!(ok("127.0.0.1"), (false, "127.0.0.1".into(), 1883));
        assert_eq!(ok("mqtts://[::1]:9"), (true, "::1".into(), 9));
        assert!(parse_address("ws://h:80").is_err());
        assert!(parse_address("tcp://:1883").is_err());
        assert!(parse_address("tcp://h:x").is_err());
        assert!(parse_address("ftp://h").is_err());
    }
}
