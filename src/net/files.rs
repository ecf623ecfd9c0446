//! Static files and uploads for the Web Server DAT: serving a folder (content types, ETag/304,
//! single ranges/206) without ever leaving it, and saving request bodies atomically.

use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use super::server::HttpResponse;

/// Files (or ranges) up to this size are read whole; larger ones are streamed from disk in
/// chunks of this size, so a client holds at most one chunk of memory however big the file.
pub const STREAM_CHUNK_BYTES: usize = 64 * 1024;

/// A static answer: the response (its body empty when `stream` is set) and, for a large file,
/// the open file positioned at the range's start with the byte count to send.
#[derive(Debug)]
pub struct StaticFile {
    pub response: HttpResponse,
    pub stream: Option<(tokio::fs::File, u64)>,
}

/// Where static files and uploads live; changed live like the limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileSettings {
    pub static_root: Option<PathBuf>,
    pub index_file: String,
    pub upload_dir: Option<PathBuf>,
    /// Paths starting with this are uploads (e.g. `/uploads/`).
    pub upload_prefix: String,
}

/// The request path's segments, percent-decoded; `None` if any would leave the folder
/// (`..`, an absolute or drive path, a backslash, a NUL).
pub fn safe_relative_path(request_path: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(request_path)
        .decode_utf8()
        .ok()?;
    if decoded.contains('\0') || decoded.contains('\\') {
        return None;
    }
    let mut out = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => continue,
            ".." => return None,
            s => {
                // A segment must be one plain name (no `C:` prefixes, no root).
                let mut components = Path::new(s).components();
                match (components.next(), components.next()) {
                    (Some(Component::Normal(name)), None) => out.push(name),
                    _ => return None,
                }
            }
        }
    }
    Some(out)
}

pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" | "log" | "md" | "csv" | "tsv" | "ron" | "py" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn response(status: StatusCode, headers: Vec<(String, String)>, body: Bytes) -> HttpResponse {
    HttpResponse {
        status: status.as_u16(),
        reason: None,
        headers,
        body,
    }
}

/// Parses a single `bytes=` range against a file of `len` bytes. `Ok(None)`: no usable Range
/// header (serve the whole file); `Err(())`: unsatisfiable (416).
fn parse_range(value: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // Several ranges: answering with the whole file is allowed.
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            if n == 0 || len == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len - 1)
        }
        (s, "") => (s.parse().map_err(|_| ())?, len.saturating_sub(1)),
        (s, e) => {
            let (s, e): (u64, u64) = (s.parse().map_err(|_| ())?, e.parse().map_err(|_| ())?);
            (s, e.min(len.saturating_sub(1)))
        }
    };
    if start > end || start >= len {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// Serves `request_path` from `root` for GET and HEAD; `None` when there is no such file, so the
/// caller keeps its own answer (the callback's 404).
pub async fn serve_static(
    root: &Path,
    index_file: &str,
    method: &Method,
    request_path: &str,
    headers: &HeaderMap,
) -> Option<StaticFile> {
    let whole = |response| {
        Some(StaticFile {
            response,
            stream: None,
        })
    };
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let relative = safe_relative_path(request_path)?;
    let root = tokio::fs::canonicalize(root).await.ok()?;
    let mut path = root.join(relative);
    if tokio::fs::metadata(&path).await.ok()?.is_dir() {
        path.push(index_file);
    }
    // Resolving symlinks must not lead outside the root.
    let path = tokio::fs::canonicalize(&path).await.ok()?;
    if !path.starts_with(&root) {
        return None;
    }
    let meta = tokio::fs::metadata(&path).await.ok()?;
    if !meta.is_file() {
        return None;
    }
    let len = meta.len();
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    let modified_ns = modified.map_or(0, |d| d.as_nanos());
    let etag = format!("\"{len:x}-{modified_ns:x}\"");
    // HTTP dates have whole seconds: compare modification times at that precision. A file
    // whose time is unknown has no Last-Modified, and dates are not validators for it.
    let modified_s = modified.map(|d| d.as_secs());
    let last_modified =
        modified_s.map(|s| httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(s)));
    let mut out_headers = vec![
        ("Content-Type".to_string(), content_type(&path).to_string()),
        ("ETag".to_string(), etag.clone()),
        ("Accept-Ranges".to_string(), "bytes".to_string()),
    ];
    if let Some(date) = &last_modified {
        out_headers.push(("Last-Modified".to_string(), date.clone()));
    }
    let header_text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let not_modified = match header_text(header::IF_NONE_MATCH) {
        Some(tags) => tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"),
        // RFC 9110 §13.1.3: If-Modified-Since counts only without If-None-Match.
        None => header_text(header::IF_MODIFIED_SINCE)
            .and_then(|date| httpdate::parse_http_date(date).ok())
            .and_then(|since| since.duration_since(UNIX_EPOCH).ok())
            .zip(modified_s)
            .is_some_and(|(since, modified_s)| modified_s <= since.as_secs()),
    };
    if not_modified {
        return whole(response(
            StatusCode::NOT_MODIFIED,
            out_headers,
            Bytes::new(),
        ));
    }
    // RFC 9110 §13.1.5: a Range under an If-Range that no longer matches gets the whole file.
    let range_applies = header_text(header::IF_RANGE).is_none_or(|validator| {
        let validator = validator.trim();
        if validator.starts_with('"') {
            validator == etag
        } else {
            last_modified.as_deref() == Some(validator)
        }
    });
    let range_header = header_text(header::RANGE).filter(|_| range_applies);
    let range = match range_header {
        Some(value) => {
            if let Ok(range) = parse_range(value, len) {
                range
            } else {
                out_headers.push(("Content-Range".into(), format!("bytes */{len}")));
                return whole(response(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    out_headers,
                    Bytes::new(),
                ));
            }
        }
        None => None,
    };
    let (status, start, count) = match range {
        Some((start, end)) => {
            out_headers.push(("Content-Range".into(), format!("bytes {start}-{end}/{len}")));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        None => (StatusCode::OK, 0, len),
    };
    if method == Method::HEAD {
        out_headers.push(("Content-Length".into(), count.to_string()));
        return whole(response(status, out_headers, Bytes::new()));
    }
    let mut file = open_at(&path, start).await.ok()?;
    if count <= STREAM_CHUNK_BYTES as u64 {
        let body = read_whole(&mut file, count).await.ok()?;
        return whole(response(status, out_headers, body));
    }
    // The length is known: hyper sends it and streams the chunks.
    out_headers.push(("Content-Length".into(), count.to_string()));
    Some(StaticFile {
        response: response(status, out_headers, Bytes::new()),
        stream: Some((file, count)),
    })
}

async fn open_at(path: &Path, start: u64) -> std::io::Result<tokio::fs::File> {
    use tokio::io::AsyncSeekExt;
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(start)).await?;
    Ok(file)
}

async fn read_whole(file: &mut tokio::fs::File, count: u64) -> std::io::Result<Bytes> {
    use tokio::io::AsyncReadExt;
    let mut buffer = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    file.take(count).read_to_end(&mut buffer).await?;
    Ok(Bytes::from(buffer))
}

/// A file name safe to create: the last path segment, with anything but letters, digits, `.`,
/// `_` and `-` replaced, no leading dots; a timestamped name if nothing is left.
pub fn sanitize_upload_name(request_rest: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(request_rest).decode_utf8_lossy();
    let last = decoded.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        let ms = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("upload-{ms}")
    } else {
        cleaned
    }
}

/// Why an upload was not saved.
#[derive(Debug)]
pub enum UploadError {
    TooLarge,
    /// The body ended early (client gone) or could not be read.
    Interrupted,
    /// The client sent nothing for longer than the idle limit.
    Stalled,
    Io(String),
}

/// Streams `body` into a temporary file in `dir`, then gives it the name `name` (adding `-1`,
/// `-2` if taken; never over another file). Nothing is left behind when the body is too large, ends early or stalls for `idle`.
pub async fn save_upload<B>(
    dir: &Path,
    name: &str,
    mut body: B,
    max_bytes: u64,
    mut pace: crate::net::BodyPace,
) -> Result<PathBuf, UploadError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| UploadError::Io(e.to_string()))?;
    let temp = dir.join(format!(".{name}.{:x}.part", fastrand::u64(..)));
    let result = async {
        let mut file = tokio::fs::File::create(&temp)
            .await
            .map_err(|e| UploadError::Io(e.to_string()))?;
        let mut written = 0u64;
        while let Some(frame) = tokio::time::timeout_at(pace.deadline(), body.frame())
            .await
            .map_err(|_| UploadError::Stalled)?
        {
            let frame = frame.map_err(|_| UploadError::Interrupted)?;
            if let Some(data) = frame.data_ref() {
                pace.received(data.len());
                written += data.len() as u64;
                if written > max_bytes {
                    return Err(UploadError::TooLarge);
                }
                file.write_all(data)
                    .await
                    .map_err(|e| UploadError::Io(e.to_string()))?;
            }
        }
        file.sync_all()
            .await
            .map_err(|e| UploadError::Io(e.to_string()))?;
        drop(file);
        let (stem, ext) = match name.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
            _ => (name.to_string(), String::new()),
        };
        for attempt in 0..1000 {
            let candidate = if attempt == 0 {
                dir.join(name)
            } else {
                dir.join(format!("{stem}-{attempt}{ext}"))
            };
            // A hard link is created only if the name is free, atomically: two uploads of one
            // name at once never take the same file (a check then a rename could).
            match tokio::fs::hard_link(&temp, &candidate).await {
                Ok(()) => {
                    let _ = tokio::fs::remove_file(&temp).await;
                    return Ok(candidate);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(UploadError::Io(e.to_string())),
            }
        }
        Err(UploadError::Io("too many files of that name".into()))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_never_leave_the_root() {
        assert_eq!(
            safe_relative_path("/a/b.txt"),
            Some(PathBuf::from("a/b.txt"))
        );
        assert_eq!(safe_relative_path("/"), Some(PathBuf::new()));
        assert_eq!(safe_relative_path("/./a//b"), Some(PathBuf::from("a/b")));
        for bad in [
            "/../etc/passwd",
            "/a/%2e%2e/%2e%2e/x",
            "/a/..%2fb",
            "/%2e%2e",
            "/a\\..\\b",
            "/x%00.txt",
            "/%ff",
        ] {
            assert_eq!(safe_relative_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-3", 10), Ok(Some((0, 3))));
        assert_eq!(parse_range("bytes=5-", 10), Ok(Some((5, 9))));
        assert_eq!(parse_range("bytes=-4", 10), Ok(Some((6, 9))));
        assert_eq!(parse_range("bytes=8-100", 10), Ok(Some((8, 9))));
        assert_eq!(parse_range("bytes=10-12", 10), Err(()));
        assert_eq!(parse_range("bytes=4-2", 10), Err(()));
        assert_eq!(parse_range("bytes=0-1,4-5", 10), Ok(None));
        assert_eq!(parse_range("items=0-1", 10), Ok(None));
    }

    #[test]
    fn upload_names_are_plain() {
        assert_eq!(sanitize_upload_name("photo.png"), "photo.png");
        assert_eq!(sanitize_upload_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_upload_name("..%2f..%2fx y.txt"), "x_y.txt");
        assert_eq!(sanitize_upload_name(".hidden"), "hidden");
        assert!(sanitize_upload_name("").starts_with("upload-"));
    }
}
