//! The Web Server DAT's parameters, read once per reconcile into a typed struct.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use crate::engine::World;
use crate::net::files::FileSettings;
use crate::net::server::ServerLimits;
use crate::project::NodeId;

/// What the listener is started with; a change restarts it, anything else does not.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenSpec {
    pub bind: SocketAddr,
    /// (certificate, private key, password), resolved.
    pub tls: Option<(PathBuf, PathBuf, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct WebServerPars {
    pub active: bool,
    /// Where to listen, or why the parameters do not say (shown on the node).
    pub listen: Option<Result<ListenSpec, String>>,
    pub limits: ServerLimits,
    pub files: FileSettings,
    /// Message Format is NanoLLM: binary messages are frames.
    pub framed: bool,
}

impl WebServerPars {
    pub fn read(world: &World, id: NodeId) -> Self {
        let active = world.par_bool(id, "active");
        Self {
            active,
            listen: active.then(|| listen_spec(world, id)),
            limits: limits(world, id),
            files: files(world, id),
            framed: world.par_str(id, "format").is_ok_and(|f| f == "nanollm"),
        }
    }
}

fn limits(world: &World, id: NodeId) -> ServerLimits {
    let int = |token| world.par_int(id, token).max(0) as u64;
    ServerLimits {
        max_connections: int("maxconnections").max(1) as usize,
        max_body_bytes: int("maxbody"),
        max_message_bytes: int("maxmessage").max(1) as usize,
        request_timeout_ms: int("requesttimeout").max(1),
        header_timeout_ms: int("headertimeout").max(1),
        body_timeout_ms: int("bodytimeout").max(1),
        body_min_rate: int("bodyminrate"),
        ping_interval_ms: int("pinginterval"),
        max_queue_bytes: int("maxqueue").max(1) as usize,
        write_timeout_ms: int("writetimeout").max(1),
    }
}

fn files(world: &World, id: NodeId) -> FileSettings {
    let folder = |token| {
        let set = world.par_str(id, token).is_ok_and(|v| !v.trim().is_empty());
        if set {
            world.file_par(id, token).ok()
        } else {
            None
        }
    };
    FileSettings {
        static_root: folder("staticroot"),
        index_file: world.par_str(id, "indexfile").unwrap_or_default(),
        upload_dir: folder("uploadfolder"),
        upload_prefix: world.par_str(id, "uploadprefix").unwrap_or_default(),
    }
}

fn listen_spec(world: &World, id: NodeId) -> Result<ListenSpec, String> {
    let address = world.par_str(id, "localaddress")?;
    // Blank: every address, IPv6 and IPv4 (one dual-stack socket).
    let ip: IpAddr = if address.trim().is_empty() {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        address
            .trim()
            .parse()
            .map_err(|_| format!("Local Address \"{address}\" is not an IP address"))?
    };
    let port = u16::try_from(world.par_int(id, "port"))
        .map_err(|_| "Port must be 0..65535".to_string())?;
    let tls = if world.par_bool(id, "secure") {
        Some((
            world.file_par(id, "certificate")?,
            world.file_par(id, "privatekey")?,
            world.par_str(id, "password")?,
        ))
    } else {
        None
    };
    Ok(ListenSpec {
        bind: SocketAddr::new(ip, port),
        tls,
    })
}
