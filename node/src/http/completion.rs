//! The line that tells how a file transfer ended. The request line is logged when the answer
//! starts; for a kernel or a squashfs the interesting part is after that: did the client get
//! every byte, and how fast. (TFTP logs the same on completion.)

use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::file::Body;
use crate::metrics::{Metrics, TransferResult};

/// A response body that counts what went out and logs once, when it ends or is dropped.
pub struct CompletionLog {
    inner: Body,
    /// "http PEER METHOD PATH", the request line's prefix, so the two lines pair up.
    label: String,
    len: u64,
    sent: u64,
    started: Instant,
    logged: bool,
    /// Set when the node shuts down: a transfer cut then was cut by us, not the client.
    stopping: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl CompletionLog {
    pub fn wrap(
        inner: Body,
        label: String,
        len: u64,
        stopping: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
    ) -> Body {
        http_body_util::BodyExt::boxed(CompletionLog {
            inner,
            label,
            len,
            sent: 0,
            started: Instant::now(),
            logged: false,
            stopping,
            metrics,
        })
    }

    fn log_end(&mut self, error: Option<&std::io::Error>) {
        if self.logged {
            return;
        }
        self.logged = true;
        let elapsed = self.started.elapsed();
        let ms = elapsed.as_millis();
        let (label, sent, len) = (&self.label, self.sent, self.len);
        let result = if let Some(e) = error.filter(|e| crate::integrity::is_integrity_error(e)) {
            tracing::error!(
                "{label}: transfer CUT after {sent} of {len} bytes, {ms} ms: REFUSED by the integrity check: {e}"
            );
            TransferResult::IntegrityRefused
        } else if let Some(e) = error {
            tracing::warn!("{label}: transfer FAILED after {sent} of {len} bytes, {ms} ms: {e}");
            TransferResult::Failed
        } else if sent >= len {
            let mb_s = sent as f64 / elapsed.as_secs_f64().max(1e-6) / 1e6;
            tracing::info!("{label}: sent {sent} bytes in {ms} ms ({mb_s:.1} MB/s)");
            TransferResult::Complete
        } else if self.stopping.load(Ordering::Relaxed) {
            tracing::info!(
                "{label}: transfer stopped by the node (shutting down) after {sent} of {len} bytes, {ms} ms"
            );
            TransferResult::Stopped
        } else {
            tracing::info!("{label}: client went away after {sent} of {len} bytes, {ms} ms");
            TransferResult::Incomplete
        };
        self.metrics.transfer("http", result, sent);
    }
}

impl HttpBody for CompletionLog {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(e))) => this.log_end(Some(e)),
            Poll::Ready(None) => this.log_end(None),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CompletionLog {
    /// hyper may drop a body once Content-Length bytes are out without polling its end, and
    /// drops it early when the client closes the connection.
    fn drop(&mut self) {
        self.log_end(None);
    }
}
