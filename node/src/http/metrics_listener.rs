//! `[metrics] listen`: `/metrics` alone on its own address (a management network, or
//! loopback for a local Prometheus agent), away from the port boot clients use.

use std::{sync::Arc, time::Duration};

use hyper::{server::conn::http1, service::service_fn, Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, task::JoinSet};

use super::{file::full, HttpHandler};
use crate::metrics::CONTENT_TYPE;

/// Scrapers are few; more connections than this at once are dropped.
const MAX_CONNECTIONS: usize = 16;

/// Serves `GET /metrics` until `shutdown` resolves, then drops every connection.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<HttpHandler>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("metrics: http://{addr}/metrics");
    }
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if tasks.len() >= MAX_CONNECTIONS {
            tracing::debug!("metrics {peer}: connection dropped, {MAX_CONNECTIONS} open");
            continue;
        }
        let handler = handler.clone();
        tasks.spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let handler = handler.clone();
                async move {
                    let resp = if req.method() != Method::GET && req.method() != Method::HEAD {
                        full(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n")
                    } else if req.uri().path() == "/metrics" {
                        full(StatusCode::OK, CONTENT_TYPE, handler.metrics_text().await)
                    } else {
                        full(StatusCode::NOT_FOUND, "text/plain", "only /metrics here\n")
                    };
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!("metrics {peer}: {e}");
            }
        });
    }
}
