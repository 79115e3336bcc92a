//! Serving one file: HEAD, a single Range, strong ETag (the BLAKE3 hash), If-None-Match.
//! Content-Length is always set (iPXE is much slower without it). The body streams from the
//! file in 256 KiB reads; a file is never buffered whole.

use std::{io::SeekFrom, path::PathBuf};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::{
    body::Frame,
    header::{self, HeaderMap, HeaderValue},
    Method, Response, StatusCode,
};
use n0_future::StreamExt;

use crate::integrity::VerifiedFile;

pub type Body = BoxBody<Bytes, std::io::Error>;

const CHUNK: usize = 256 * 1024;

pub fn full(status: StatusCode, content_type: &str, text: impl Into<Bytes>) -> Response<Body> {
    let text = text.into();
    let mut resp = Response::new(
        Full::new(text.clone())
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    resp
}

/// A byte range, inclusive start, exclusive end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No Range header, or one we ignore (multiple ranges): send everything.
    Whole,
    Partial(ByteRange),
    Unsatisfiable,
}

/// Parses a `Range` header against a file of `size` bytes (RFC 9110 §14.2).
pub fn parse_range(value: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        // Suffix: the last N bytes.
        match last.parse::<u64>() {
            Ok(0) | Err(_) => return RangeRequest::Unsatisfiable,
            Ok(n) => ByteRange {
                start: size.saturating_sub(n),
                end: size,
            },
        }
    } else {
        let Ok(start) = first.parse::<u64>() else {
            return RangeRequest::Whole;
        };
        let end = if last.is_empty() {
            size
        } else {
            match last.parse::<u64>() {
                // A last-byte position past the end (even u64::MAX) means "to the end"
                // (RFC 9110 §14.1.2): 206 with what there is.
                Ok(l) if l >= start => l.saturating_add(1).min(size),
                _ => return RangeRequest::Whole,
            }
        };
        ByteRange { start, end }
    };
    if range.start >= size || range.start >= range.end {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Partial(range)
    }
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        })
}

/// Where a file answer's bytes come from.
pub enum FileSource {
    /// A release file: every piece is checked against the signed hash as it is read.
    Verified(VerifiedFile),
    /// The operator's unverified `first_stage_dir` (logged as such at start).
    Plain(PathBuf),
}

/// Builds the response for a file. The source must hold exactly `size` bytes.
pub async fn serve(
    method: &Method,
    headers: &HeaderMap,
    source: FileSource,
    size: u64,
    hash: Option<blake3::Hash>,
    content_type: &str,
) -> Response<Body> {
    let etag = hash.map(|h| format!("\"{}\"", h.to_hex()));
    if let Some(etag) = &etag {
        if etag_matches(headers, etag) {
            let mut resp = full(StatusCode::NOT_MODIFIED, content_type, Bytes::new());
            resp.headers_mut().remove(header::CONTENT_LENGTH);
            if let Ok(v) = HeaderValue::from_str(etag) {
                resp.headers_mut().insert(header::ETAG, v);
            }
            return resp;
        }
    }
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, range) = match parse_range(range_header, size) {
        RangeRequest::Whole => (
            StatusCode::OK,
            ByteRange {
                start: 0,
                end: size,
            },
        ),
        RangeRequest::Partial(r) => (StatusCode::PARTIAL_CONTENT, r),
        RangeRequest::Unsatisfiable => {
            let mut resp = full(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "text/plain",
                "range not satisfiable\n",
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return resp;
        }
    };
    let len = range.end - range.start;
    let body: Body = if method == Method::HEAD || len == 0 {
        empty_body()
    } else {
        let opened = match source {
            FileSource::Verified(file) => Ok(verified_range(file, range)),
            FileSource::Plain(path) => open_range(path, range),
        };
        match opened {
            Ok(body) => body,
            Err(e) => {
                return full(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("cannot read file: {e}\n"),
                )
            }
        }
    };
    with_headers(
        body,
        status,
        len,
        size,
        range.start..range.end,
        hash,
        content_type,
    )
}

pub fn empty_body() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

/// A body from a stream of byte pieces.
pub fn stream_body(
    stream: impl n0_future::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) -> Body {
    let stream = SyncStream(std::sync::Mutex::new(Box::pin(stream)));
    BodyExt::boxed(StreamBody::new(stream.map(|chunk| chunk.map(Frame::data))))
}

/// Calls `ended` once, when `body` has ended or is dropped (sent, failed or abandoned).
pub fn on_end(body: Body, ended: impl FnOnce() + Send + Sync + 'static) -> Body {
    BodyExt::boxed(OnEnd {
        inner: body,
        ended: Some(Box::new(ended)),
    })
}

type EndHook = Box<dyn FnOnce() + Send + Sync>;

struct OnEnd {
    inner: Body,
    ended: Option<EndHook>,
}

impl OnEnd {
    fn fire(&mut self) {
        if let Some(ended) = self.ended.take() {
            ended();
        }
    }
}

impl hyper::body::Body for OnEnd {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None | Some(Err(_)))) {
            this.fire();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for OnEnd {
    fn drop(&mut self) {
        self.fire();
    }
}

/// hyper's boxed body must be `Sync`; a stream that is polled only through `&mut` is made
/// so by a mutex that is never contended.
struct SyncStream<S>(std::sync::Mutex<std::pin::Pin<Box<S>>>);

impl<S: n0_future::Stream> n0_future::Stream for SyncStream<S> {
    type Item = S::Item;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let inner = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        inner.as_mut().poll_next(cx)
    }
}

/// The response around a file body: length, ranges, type, and the content hash as ETag.
pub fn with_headers(
    body: Body,
    status: StatusCode,
    len: u64,
    size: u64,
    range: std::ops::Range<u64>,
    hash: Option<blake3::Hash>,
    content_type: &str,
) -> Response<Body> {
    let etag = hash.map(|h| format!("\"{}\"", h.to_hex()));
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        h.insert(header::ETAG, etag);
        // Content-addressed: the bytes behind this URL may change only by a new release.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) =
            HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.start, range.end - 1))
        {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    resp
}

/// Streams `range` of the file in CHUNK-sized frames. Each chunk is read with a plain
/// `read()` on the runtime worker straight into the frame's buffer: one copy and no thread
/// hand-off per chunk. tokio::fs would read on the blocking pool into its own buffer and copy
/// again; measured on loopback (docs/benchmarks.md, HTTP) that cost up to a third of the
/// throughput and most of the memory per connection. The price is that a read of a cold
/// file blocks this worker for the disk's latency, as nginx's reads do; the files served
/// here were hashed by the store before their first byte went out, so they are usually in
/// the page cache.
fn open_range(path: PathBuf, range: ByteRange) -> std::io::Result<Body> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(&path)?;
    file.seek(SeekFrom::Start(range.start))?;
    let remaining = range.end - range.start;
    let path = std::sync::Arc::new(path);
    let chunks = n0_future::stream::try_unfold((file, remaining), move |(mut file, remaining)| {
        let path = path.clone();
        async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = remaining.min(CHUNK as u64);
            // A fresh buffer per chunk: hyper holds on to the frame until the socket took it.
            let mut buf = Vec::with_capacity(want as usize);
            (&mut file).take(want).read_to_end(&mut buf)?;
            if buf.is_empty() {
                // The store checked the size before serving; a shorter file now means it was
                // changed under us. End with an error rather than a short body.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{} ended {remaining} bytes early", path.display()),
                ));
            }
            let got = buf.len() as u64;
            Ok(Some((Bytes::from(buf), (file, remaining - got))))
        }
    });
    Ok(stream_body(chunks))
}

/// Streams `range` of a release file in CHUNK-sized frames, each read and checked against
/// the signed hash on the worker (see [`open_range`] for why on the worker). Pieces start at
/// multiples of CHUNK, so whole-file reads touch every 16 KiB group once; a range that
/// starts or ends inside a group reads that group whole. A piece that fails ends the body
/// with an error: hyper then cuts the connection short of Content-Length, so the client
/// sees a failed transfer and never the changed bytes.
fn verified_range(file: VerifiedFile, range: ByteRange) -> Body {
    let file = std::sync::Arc::new(file);
    let chunks = n0_future::stream::try_unfold(range.start, move |pos| {
        let file = file.clone();
        async move {
            if pos >= range.end {
                return Ok(None);
            }
            let next = ((pos / CHUNK as u64 + 1) * CHUNK as u64).min(range.end);
            let bytes = file.read_verified(pos, next - pos).map_err(|e| {
                tracing::error!("INTEGRITY: {e}");
                std::io::Error::from(e)
            })?;
            Ok(Some((bytes, next)))
        }
    });
    stream_body(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |s: u64, e: u64| RangeRequest::Partial(ByteRange { start: s, end: e });
        assert_eq!(parse_range(None, 100), RangeRequest::Whole);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), r(0, 10));
        assert_eq!(parse_range(Some("bytes=90-"), 100), r(90, 100));
        assert_eq!(parse_range(Some("bytes=-10"), 100), r(90, 100));
        assert_eq!(parse_range(Some("bytes=-1000"), 100), r(0, 100));
        assert_eq!(parse_range(Some("bytes=50-5000"), 100), r(50, 100));
        assert_eq!(
            parse_range(Some("bytes=100-"), 100),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=-0"), 100),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), RangeRequest::Whole);
        assert_eq!(parse_range(Some("bytes=9-3"), 100), RangeRequest::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 100), RangeRequest::Whole);
        assert_eq!(
            parse_range(Some("bytes=0-18446744073709551615"), 100),
            r(0, 100)
        );
        assert_eq!(
            parse_range(Some("bytes=7-18446744073709551615"), 100),
            r(7, 100)
        );
        assert_eq!(
            parse_range(Some("bytes=0-0"), 0),
            RangeRequest::Unsatisfiable
        );
    }
}
