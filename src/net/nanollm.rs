//! NanoLLM's binary message framing: a 32-byte big-endian header (msg_id u64, timestamp ms u64,
//! magic 42 u16, type u16, payload size u32, 8 bytes of metadata) before the payload.

use bytes::{BufMut, Bytes, BytesMut};

pub const HEADER_BYTES: usize = 32;
pub const MAGIC: u16 = 42;

/// NanoLLM's message types, by number and by the name scripts may use.
pub const TYPES: &[(u16, &str)] = &[
    (0, "json"),
    (1, "text"),
    (2, "binary"),
    (3, "file"),
    (4, "audio"),
    (5, "image"),
];

pub fn type_name(kind: u16) -> String {
    TYPES
        .iter()
        .find(|(n, _)| *n == kind)
        .map_or_else(|| kind.to_string(), |(_, name)| name.to_string())
}

pub fn type_from_name(name: &str) -> Option<u16> {
    TYPES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name.trim()))
        .map(|(k, _)| *k)
        .or_else(|| name.trim().parse().ok())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub msg_id: u64,
    pub timestamp_ms: u64,
    pub kind: u16,
    /// The 8 metadata bytes as text, NUL padding removed (e.g. a file extension).
    pub metadata: String,
    pub payload: Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FrameError {
    Short(usize),
    BadMagic(u16),
    SizeMismatch { declared: u32, actual: usize },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Short(n) => write!(
                f,
                "short NanoLLM frame: {n} bytes, the header alone is {HEADER_BYTES}"
            ),
            FrameError::BadMagic(m) => {
                write!(f, "not a NanoLLM frame: magic {m}, expected {MAGIC}")
            }
            FrameError::SizeMismatch { declared, actual } => {
                write!(
                    f,
                    "NanoLLM frame size mismatch: header says {declared} payload bytes, frame has {actual}"
                )
            }
        }
    }
}

pub fn encode(msg_id: u64, timestamp_ms: u64, kind: u16, metadata: &str, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_BYTES + payload.len());
    out.put_u64(msg_id);
    out.put_u64(timestamp_ms);
    out.put_u16(MAGIC);
    out.put_u16(kind);
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    let mut meta = [0u8; 8];
    for (slot, byte) in meta.iter_mut().zip(metadata.bytes()) {
        *slot = byte;
    }
    out.put_slice(&meta);
    out.put_slice(payload);
    out.freeze()
}

pub fn decode(frame: &[u8]) -> Result<Frame, FrameError> {
    if frame.len() < HEADER_BYTES {
        return Err(FrameError::Short(frame.len()));
    }
    let u64_at = |i: usize| u64::from_be_bytes(frame[i..i + 8].try_into().unwrap_or_default());
    let u16_at = |i: usize| u16::from_be_bytes([frame[i], frame[i + 1]]);
    let magic = u16_at(16);
    if magic != MAGIC {
        return Err(FrameError::BadMagic(magic));
    }
    let declared = u32::from_be_bytes([frame[20], frame[21], frame[22], frame[23]]);
    let actual = frame.len() - HEADER_BYTES;
    if declared as usize != actual {
        return Err(FrameError::SizeMismatch { declared, actual });
    }
    let metadata = String::from_utf8_lossy(&frame[24..32])
        .trim_end_matches('\0')
        .to_string();
    Ok(Frame {
        msg_id: u64_at(0),
        timestamp_ms: u64_at(8),
        kind: u16_at(18),
        metadata,
        payload: Bytes::copy_from_slice(&frame[HEADER_BYTES..]),
    })
}

/// The payload as table or script text: UTF-8 for JSON and text frames, else hex (capped).
pub fn payload_text(frame: &Frame) -> String {
    const MAX_HEX_BYTES: usize = 1024;
    if frame.kind <= 1
        && let Ok(text) = std::str::from_utf8(&frame.payload)
    {
        return text.to_string();
    }
    let shown = &frame.payload[..frame.payload.len().min(MAX_HEX_BYTES)];
    let mut hex = super::hex_bytes(shown);
    if frame.payload.len() > MAX_HEX_BYTES {
        hex.push_str(&format!(" … ({} bytes)", frame.payload.len()));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_malformed_frames() {
        let bytes = encode(7, 1_700_000_000_123, 5, "png", b"\x89PNG");
        assert_eq!(bytes.len(), 36);
        let frame = decode(&bytes).unwrap();
        assert_eq!(
            (
                frame.msg_id,
                frame.timestamp_ms,
                frame.kind,
                frame.metadata.as_str()
            ),
            (7, 1_700_000_000_123, 5, "png")
        );
        assert_eq!(payload_text(&frame), "89 50 4e 47");
        assert_eq!(decode(&bytes[..20]), Err(FrameError::Short(20)));
        let mut bad_magic = bytes.to_vec();
        bad_magic[17] = 43;
        assert_eq!(decode(&bad_magic), Err(FrameError::BadMagic(43)));
        assert_eq!(
            decode(&bytes[..35]),
            Err(FrameError::SizeMismatch {
                declared: 4,
                actual: 3
            })
        );
        assert_eq!(type_from_name("JSON"), Some(0));
        assert_eq!(type_from_name("5"), Some(5));
        assert_eq!(type_name(4), "audio");
        assert_eq!(
            payload_text(&decode(&encode(1, 1, 0, "", b"{\"a\":1}")).unwrap()),
            "{\"a\":1}"
        );
    }
}
