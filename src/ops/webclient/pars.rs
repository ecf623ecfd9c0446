//! The Web Client DAT's parameters, read once per reconcile; the TLS settings are built into a
//! rustls configuration then, so a request only clones it.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::Method;

use crate::engine::{DatRef, World};
use crate::net::tls;
use crate::project::NodeId;

#[derive(Clone, Default)]
pub struct WebClientPars {
    pub active: bool,
    pub timeout_ms: u64,
    pub stream: bool,
    pub include_header: bool,
    /// `None`: the output is the last body as text (Clamp Output as Rows off).
    pub max_lines: Option<usize>,
    pub max_response_bytes: usize,
    pub max_redirects: u32,
    /// Built from Verify Certificate and the CA file; `None` when the CA file is unusable (the
    /// node shows why).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

// The TLS configuration holds keys' worth of detail nobody reads in a debug print.
impl std::fmt::Debug for WebClientPars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebClientPars")
            .field("active", &self.active)
            .field("timeout_ms", &self.timeout_ms)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl WebClientPars {
    /// The parameters, and the reason the TLS settings are unusable if they are.
    pub fn read(world: &World, id: NodeId) -> (Self, Option<String>) {
        let (tls, tls_error) = match tls_config(world, id) {
            Ok(config) => (Some(config), None),
            Err(error) => (None, Some(error)),
        };
        let pars = Self {
            active: world.par_bool(id, "active"),
            timeout_ms: u64::try_from(world.par_int(id, "timeout").max(1)).unwrap_or(60_000),
            stream: world.par_bool(id, "stream"),
            include_header: world.par_bool(id, "includeheader"),
            max_lines: crate::ops::clamped_lines(world, id),
            max_response_bytes: usize::try_from(world.par_int(id, "maxresponsebytes").max(1))
                .unwrap_or(usize::MAX),
            max_redirects: u32::try_from(world.par_int(id, "maxredirects").clamp(0, 50))
                .unwrap_or(5),
            tls,
        };
        (pars, tls_error)
    }
}

fn tls_config(world: &World, id: NodeId) -> Result<Arc<rustls::ClientConfig>, String> {
    let ca_pem = match world.par_str(id, "cafile")? {
        path if path.is_empty() => None,
        _ => {
            let path = world.file_par(id, "cafile")?;
            Some(std::fs::read(&path).map_err(|e| format!("CA file {}: {e}", path.display()))?)
        }
    };
    tls::client_config(world.par_bool(id, "verifycert"), ca_pem.as_deref())
}

/// How a request authenticates (TouchDesigner's `authType`; Digest and OAuth1 are not offered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

impl Auth {
    /// From `authType` as `request()` takes it (case-insensitive) or the Authentication page.
    pub fn parse(
        kind: &str,
        username: String,
        password: String,
        token: String,
    ) -> Result<Auth, String> {
        match kind.trim().to_ascii_lowercase().as_str() {
            "" | "none" => Ok(Auth::None),
            "basic" => Ok(Auth::Basic { username, password }),
            "oauth2" | "bearer" => Ok(Auth::Bearer(token)),
            other => Err(format!(
                "authType \"{other}\" is not offered (basic or oauth2)"
            )),
        }
    }

    pub fn from_pars(world: &World, id: NodeId) -> Result<Auth, String> {
        Auth::parse(
            &world.par_str(id, "authtype")?,
            world.par_str(id, "username")?,
            world.par_str(id, "pw")?,
            world.par_str(id, "token")?,
        )
    }

    /// The `Authorization` header it adds, if any.
    pub fn header(&self) -> Option<(String, String)> {
        let value = match self {
            Auth::None => return None,
            Auth::Basic { username, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            ),
            Auth::Bearer(token) => format!("Bearer {token}"),
        };
        Some(("authorization".into(), value))
    }
}

/// A method name as scripts or the menu give it (`get`, `POST`).
pub fn method(name: &str) -> Result<Method, String> {
    let upper = name.trim().to_ascii_uppercase();
    match upper.as_str() {
        "GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH" => {
            Method::from_bytes(upper.as_bytes()).map_err(|e| e.to_string())
        }
        _ => Err(format!(
            "\"{name}\" is not an HTTP method the Web Client DAT sends"
        )),
    }
}

/// Methods whose name/value data goes on the URL rather than in a body.
pub fn data_goes_on_url(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE
    )
}

/// `url` with `pairs` added to its query string.
pub fn with_query(url: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return url.to_string();
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let (base, fragment) = url
        .split_once('#')
        .map_or((url, None), |(b, f)| (b, Some(f)));
    let joiner = if base.contains('?') { '&' } else { '?' };
    match fragment {
        Some(fragment) => format!("{base}{joiner}{query}#{fragment}"),
        None => format!("{base}{joiner}{query}"),
    }
}

/// What the data input holds: a Text DAT's text (sent as is) or a table's name/value rows.
pub enum InputData {
    None,
    Text(Bytes),
    Pairs(Vec<(String, String)>),
}

pub fn input_data(world: &World, id: NodeId) -> InputData {
    let Some(dat) = world.input_node(id, "data").and_then(|d| world.dat(d)) else {
        return InputData::None;
    };
    match dat {
        DatRef::Text(text) => InputData::Text(Bytes::copy_from_slice(text.as_bytes())),
        table => InputData::Pairs(
            (0..table.num_rows())
                .filter_map(|r| {
                    let name = table.cell(r, 0)?.trim().to_string();
                    (!name.is_empty()).then(|| (name, table.cell(r, 1).unwrap_or_default()))
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_join_existing_ones_and_keep_fragments() {
        let pairs = vec![("a b".to_string(), "1&2".to_string())];
        assert_eq!(with_query("http://h/p", &pairs), "http://h/p?a+b=1%262");
        assert_eq!(
            with_query("http://h/p?x=1#f", &pairs),
            "http://h/p?x=1&a+b=1%262#f"
        );
        assert_eq!(with_query("http://h/p", &[]), "http://h/p");
    }

    #[test]
    fn auth_types_are_case_insensitive() {
        let basic = Auth::parse("BASIC", "u".into(), "p".into(), String::new()).unwrap();
        assert_eq!(basic.header().unwrap().1, "Basic dTpw");
        assert_eq!(
            Auth::parse("oauth2", String::new(), String::new(), "t".into())
                .unwrap()
                .header()
                .unwrap()
                .1,
            "Bearer t"
        );
        assert!(Auth::parse("digest", String::new(), String::new(), String::new()).is_err());
        assert!(method("patch").is_ok() && method("TRACE").is_err());
    }
}
