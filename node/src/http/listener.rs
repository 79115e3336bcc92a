//! The accept loop and the connection table: caps (see [`super::limits`]), the header and
//! idle timeouts, accept errors, and closing every connection on shutdown.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use hyper::{body::Body as _, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Notify, task::JoinSet};

use super::{
    limits::{admit, Admission, ConnView, HttpLimits},
    HttpHandler,
};
use crate::throttled::Throttled;

/// One open connection, shared by the table and the connection's task.
struct Conn {
    peer: SocketAddr,
    /// Requests whose response body has not ended yet.
    busy: AtomicU64,
    idle_since: Mutex<Instant>,
    /// Set once the connection was chosen to make room; it no longer counts.
    closing: AtomicBool,
    close: Notify,
}

impl Conn {
    fn idle_since(&self) -> Instant {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ended_request(&self) {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Table {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Table {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn views(&self) -> Vec<ConnView> {
        self.lock()
            .iter()
            .filter(|(_, c)| !c.closing.load(Ordering::Relaxed))
            .map(|(id, c)| ConnView {
                id: *id,
                ip: c.peer.ip(),
                busy: c.busy.load(Ordering::Relaxed) > 0,
                idle_since: c.idle_since(),
            })
            .collect()
    }
}

/// Refused connections are logged at most this often.
const REFUSED_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves; then closes every connection (a transfer in progress
/// is logged as stopped by the node) and returns once all connection tasks have ended.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<HttpHandler>,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let table = Arc::new(Table::default());
    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    let mut refused_log = Throttled::new(REFUSED_LOG_EVERY);
    let mut accept_failures = 0u64;
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
                // EMFILE and friends: say so once, then back off instead of spinning
                // until an accept works again.
                if accept_failures == 0 {
                    tracing::error!(
                        "http: accept failed: {e}; retrying every 100 ms (check LimitNOFILE against http.max_connections and tftp.max_transfers)"
                    );
                }
                accept_failures += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if accept_failures > 0 {
            tracing::info!("http: accepting again after {accept_failures} failed accepts");
            accept_failures = 0;
        }
        match admit(&table.views(), peer.ip(), &limits) {
            Admission::Admit => {}
            Admission::AdmitClosing(id) => {
                if let Some(old) = table.lock().get(&id) {
                    old.closing.store(true, Ordering::Relaxed);
                    old.close.notify_one();
                    tracing::debug!(
                        "http {}: idle connection closed to make room for {peer}",
                        old.peer
                    );
                }
            }
            Admission::Refuse(limit) => {
                if let Some(suppressed) = refused_log.due() {
                    tracing::warn!(
                        "http {peer}: connection refused, {limit} reached and every connection is busy ({suppressed} more refused since the last such line)"
                    );
                }
                drop(stream);
                continue;
            }
        }
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(Conn {
            peer,
            busy: AtomicU64::new(0),
            idle_since: Mutex::new(Instant::now()),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        let id = next_id;
        next_id += 1;
        table.lock().insert(id, conn.clone());
        let (handler, table) = (handler.clone(), table.clone());
        // Every line of the connection carries the client as a field (`--log-format json`).
        let span = tracing::info_span!("http", client = %peer.ip());
        tasks.spawn(tracing::Instrument::instrument(
            async move {
                serve_connection(stream, conn, handler, limits).await;
                table.lock().remove(&id);
            },
            span,
        ));
    }
    // Shutdown: every transfer still running is cut by the node, and says so.
    handler.stopping.store(true, Ordering::Relaxed);
    let open = tasks.len();
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    if open > 0 {
        tracing::info!("http: closed {open} connections on shutdown");
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    conn: Arc<Conn>,
    handler: Arc<HttpHandler>,
    limits: HttpLimits,
) {
    let peer = conn.peer;
    let service = {
        let conn = conn.clone();
        service_fn(move |req| {
            let (handler, conn) = (handler.clone(), conn.clone());
            async move {
                conn.busy.fetch_add(1, Ordering::Relaxed);
                let resp = handler.handle(req, peer).await;
                // Busy until the body has gone out (or the client left).
                let resp = if resp.body().is_end_stream() {
                    conn.ended_request();
                    resp
                } else {
                    resp.map(|body| super::file::on_end(body, move || conn.ended_request()))
                };
                Ok::<_, std::convert::Infallible>(resp)
            }
        })
    };
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    loop {
        // While a request runs, only look again after another idle period.
        let idle_deadline = if conn.busy.load(Ordering::Relaxed) > 0 {
            Instant::now() + limits.idle_timeout
        } else {
            conn.idle_since() + limits.idle_timeout
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("http: connection from {peer}: {e}");
                }
                return;
            }
            // Chosen to make room: it was idle (no response under way), so close it now.
            // A graceful shutdown would wait for a half-sent request head, which is what a
            // slowloris never finishes.
            () = conn.close.notified() => return,
            () = tokio::time::sleep_until(idle_deadline.into()) => {
                if conn.busy.load(Ordering::Relaxed) == 0
                    && conn.idle_since().elapsed() >= limits.idle_timeout
                {
                    tracing::debug!("http {peer}: idle for {:?}, closed", limits.idle_timeout);
                    return;
                }
            }
        }
    }
}
