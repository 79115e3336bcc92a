//! Listener: takes requests on the well-known socket and runs each transfer as
//! its own task on a fresh ephemeral socket (the server's TID, RFC 1350).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::admission::{admit, Admission, Limit, TransferView};
use super::config::TftpConfig;
use super::options::negotiate;
use super::packet::{encode_error, ErrorCode, Mode, Packet, ParseError, Request};
use super::path;
use super::source::TftpSource;
use super::transfer::{self, Outcome, TransferSpec};
use crate::{metrics::TransferResult, throttled::Throttled};

/// Requests are at most 512 bytes by RFC 2347; slack for clients that ignore that.
/// A longer datagram is cut, fails to parse and is answered with ERROR 4.
const REQUEST_BUF_LEN: usize = 4096;

/// The summary of transfers ended to make room is logged at most this often.
const MADE_ROOM_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves read requests arriving on `socket` until the future is dropped or an
/// unrecoverable error occurs (there is none today: receive errors are logged
/// and the loop goes on).
///
/// Dropping the future also aborts all running transfers, because they are
/// owned by it; use [`serve_until`] to stop accepting and let them finish.
pub async fn serve(
    socket: UdpSocket,
    source: Arc<dyn TftpSource>,
    config: TftpConfig,
) -> io::Result<()> {
    serve_until(socket, source, config, std::future::pending()).await
}

/// Like [`serve_until`], but once `shutdown` completes the running transfers are ended
/// too: each client gets an ERROR "server shutting down" and each transfer's log line says
/// the node stopped it (not that the client went away). For a node's own shutdown.
pub async fn serve_until_stopped<F>(
    socket: UdpSocket,
    source: Arc<dyn TftpSource>,
    config: TftpConfig,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()>,
{
    let (tx, rx) = watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = tx.send(true);
    };
    run_server(socket, source, config, shutdown, Some(rx)).await
}

/// Like [`serve`], but once `shutdown` completes stops taking requests and
/// returns after the running transfers have ended (each is bounded by its
/// retry budget, so this terminates).
///
/// Transfer sockets are bound to the listener's local address with port 0.
/// If the listener is bound to a specific IP, replies therefore leave from the IP
/// the request arrived on. If it is bound to the unspecified address, the kernel
/// picks the source IP by route to the client, which on a multi-homed host may
/// differ from the one the request was sent to: bind one listener per address
/// where that matters (reading the destination address needs IP_PKTINFO, which
/// tokio does not expose).
pub async fn serve_until<F>(
    socket: UdpSocket,
    source: Arc<dyn TftpSource>,
    config: TftpConfig,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()>,
{
    run_server(socket, source, config, shutdown, None).await
}

async fn run_server<F>(
    socket: UdpSocket,
    source: Arc<dyn TftpSource>,
    config: TftpConfig,
    shutdown: F,
    stop: Option<watch::Receiver<bool>>,
) -> io::Result<()>
where
    F: Future<Output = ()>,
{
    let mut transfer_bind = socket.local_addr()?;
    transfer_bind.set_port(0);
    let shared = Arc::new(Shared {
        source,
        config,
        transfer_bind,
        active: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        stop,
    });
    let mut tasks = JoinSet::new();
    let mut made_room = MadeRoom::new();
    let mut buf = vec![0u8; REQUEST_BUF_LEN];
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = joined {
                    if e.is_panic() {
                        error!(error = %e, "tftp transfer task panicked");
                    }
                }
            }
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, peer)) => {
                    handle_datagram(&socket, &buf[..n], peer, &shared, &mut made_room, &mut tasks).await;
                }
                Err(e) => {
                    // UDP receive errors are per-datagram (e.g. a queued ICMP error);
                    // pause briefly so a persistent one cannot spin the loop.
                    warn!(error = %e, "tftp: receive failed on listening socket");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }

    debug!(
        running = tasks.len(),
        "tftp: shutting down, waiting for running transfers"
    );
    while tasks.join_next().await.is_some() {}
    Ok(())
}

struct Shared {
    source: Arc<dyn TftpSource>,
    config: TftpConfig,
    transfer_bind: SocketAddr,
    /// Running transfers by id (ids grow with each admitted request). Also the count the
    /// limits apply to: an entry is removed when its task ends or when it is ended to make
    /// room.
    active: Mutex<HashMap<u64, Active>>,
    next_id: AtomicU64,
    /// With [`serve_until_stopped`]: tells running transfers to end.
    stop: Option<watch::Receiver<bool>>,
}

impl Shared {
    fn active(&self) -> MutexGuard<'_, HashMap<u64, Active>> {
        // Nothing panics while holding the lock; if something ever does, the map
        // is still consistent enough to keep serving.
        self.active
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Active {
    client: SocketAddr,
    filename: String,
    progressed: Arc<AtomicBool>,
    task: Option<AbortHandle>,
}

/// Removes the transfer's entry when its task ends, however it ends.
struct ActiveGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.shared.active().remove(&self.id);
    }
}

/// Transfers ended to make room for new requests: counted, and summarised at info at most
/// once per [`MADE_ROOM_LOG_EVERY`] (each one is logged at debug).
struct MadeRoom {
    log: Throttled,
    total: u64,
}

impl MadeRoom {
    fn new() -> Self {
        Self {
            log: Throttled::new(MADE_ROOM_LOG_EVERY),
            total: 0,
        }
    }

    fn record(&mut self) {
        self.total += 1;
        if let Some(held_back) = self.log.due() {
            info!(
                ended_since_last_line = held_back + 1,
                ended_in_total = self.total,
                "tftp: all transfer slots taken (tftp.max_transfers); ended the oldest transfers never acknowledged by their client to make room for new requests (a flood of requests nobody acknowledges?)"
            );
        }
    }
}

async fn handle_datagram(
    socket: &UdpSocket,
    datagram: &[u8],
    peer: SocketAddr,
    shared: &Arc<Shared>,
    made_room: &mut MadeRoom,
    tasks: &mut JoinSet<()>,
) {
    if peer.port() == 0 {
        debug!(%peer, "tftp: dropping datagram from port 0");
        return;
    }
    match Packet::parse(datagram) {
        Ok(Packet::Rrq(request)) => {
            start_read(socket, request, peer, shared, made_room, tasks).await
        }
        Ok(Packet::Wrq(request)) => {
            info!(client = %peer, file = ?request.filename, "tftp write request refused: read-only server");
            reply_error(socket, peer, ErrorCode::AccessViolation, "read-only server").await;
        }
        Ok(other) => {
            // DATA/ACK/ERROR/OACK belong to a transfer socket; typically a late
            // packet of a finished transfer. Answering could start an error ping-pong.
            debug!(%peer, kind = packet_kind(&other), "tftp: stray packet on listening socket dropped");
        }
        Err(e @ (ParseError::TooShort(_) | ParseError::UnknownOpcode(_))) => {
            debug!(%peer, error = %e, "tftp: malformed datagram dropped");
        }
        Err(e) => {
            // Opcode says request but the body is broken: the sender is probably
            // a TFTP client and deserves to know why nothing happens.
            info!(client = %peer, error = %e, "tftp malformed request refused");
            reply_error(
                socket,
                peer,
                ErrorCode::IllegalOperation,
                "malformed request",
            )
            .await;
        }
    }
}

async fn start_read(
    socket: &UdpSocket,
    request: Request,
    client: SocketAddr,
    shared: &Arc<Shared>,
    made_room: &mut MadeRoom,
    tasks: &mut JoinSet<()>,
) {
    let admission = {
        let active = shared.active();
        let retransmitted = active.values().any(|a| {
            a.client == client
                && a.filename == request.filename
                && !a.progressed.load(Ordering::Relaxed)
        });
        if retransmitted {
            // The client repeated its RRQ before seeing our first reply; the
            // running transfer will answer it. A client that already talked
            // to a transfer and asks again has started over: serve it anew.
            debug!(%client, file = ?request.filename, "tftp: retransmitted request ignored");
            return;
        }
        let views: Vec<TransferView> = active
            .iter()
            .map(|(id, a)| TransferView {
                id: *id,
                ip: a.client.ip(),
                progressed: a.progressed.load(Ordering::Relaxed),
            })
            .collect();
        admit(
            &views,
            client.ip(),
            shared.config.max_transfers,
            shared.config.max_transfers_per_client,
        )
    };
    match admission {
        Admission::Admit => {}
        Admission::AdmitEnding(id) => {
            if let Some(ended) = shared.active().remove(&id) {
                // Its task is dropped at its next poll: socket and file close, no packet
                // goes out. A real client that lost its slot this way retries its RRQ.
                if let Some(task) = ended.task {
                    task.abort();
                }
                debug!(
                    client = %ended.client,
                    file = ?ended.filename,
                    for_client = %client,
                    "tftp transfer ended to make room: never acknowledged, all slots taken"
                );
                made_room.record();
            }
        }
        Admission::Refuse(limit) => {
            warn!(
                %client,
                file = ?request.filename,
                %limit,
                max_transfers = shared.config.max_transfers,
                max_transfers_per_client = shared.config.max_transfers_per_client,
                "tftp request refused: {}",
                match limit {
                    Limit::PerClient => "this client already has the most transfers allowed",
                    Limit::Total => "too many concurrent transfers, all of them in progress",
                }
            );
            reply_error(
                socket,
                client,
                ErrorCode::NotDefined,
                "server busy, try again",
            )
            .await;
            return;
        }
    }

    let progressed = Arc::new(AtomicBool::new(false));
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    // Inserted before the task exists, so that a task which ends at once removes an entry
    // that is there; its abort handle is filled in right after the spawn (only this loop
    // ends transfers to make room, so nobody looks for it in between).
    shared.active().insert(
        id,
        Active {
            client,
            filename: request.filename.clone(),
            progressed: progressed.clone(),
            task: None,
        },
    );
    let guard = ActiveGuard {
        shared: shared.clone(),
        id,
    };
    let task_shared = shared.clone();
    // Every line of the transfer carries the client as a field (`--log-format json`).
    let span = tracing::info_span!("tftp", client = %client.ip());
    let task = tasks.spawn(tracing::Instrument::instrument(
        async move {
            let _guard = guard;
            serve_read(&task_shared, request, client, &progressed).await;
        },
        span,
    ));
    if let Some(entry) = shared.active().get_mut(&id) {
        entry.task = Some(task);
    }
}

/// One read request from first reply to the final log line.
async fn serve_read(
    shared: &Shared,
    request: Request,
    client: SocketAddr,
    progressed: &AtomicBool,
) {
    let started = Instant::now();
    let socket = match bind_transfer_socket(shared.transfer_bind, client).await {
        Ok(s) => s,
        Err(e) => {
            warn!(%client, file = ?request.filename, error = %e, "tftp request dropped: cannot open transfer socket");
            return;
        }
    };
    let refuse = |code: ErrorCode, client_msg: &'static str, reason: String| {
        let socket = &socket;
        let filename = &request.filename;
        async move {
            info!(%client, file = ?filename, code = code.as_u16(), %reason, "tftp request refused");
            shared.source.ended(TransferResult::Refused, 0);
            send_error(socket, code, client_msg).await;
        }
    };

    if request.mode == Mode::Mail {
        refuse(
            ErrorCode::IllegalOperation,
            "mail mode not supported",
            "mail mode".into(),
        )
        .await;
        return;
    }
    let name = match path::normalize(&request.filename) {
        Ok(name) => name,
        Err(e) => {
            let msg = match e.error_code() {
                ErrorCode::FileNotFound => "file not found",
                _ => "access violation",
            };
            refuse(e.error_code(), msg, e.to_string()).await;
            return;
        }
    };

    let source = shared.source.clone();
    let open_name = name.clone();
    let span = tracing::Span::current();
    let opened =
        tokio::task::spawn_blocking(move || span.in_scope(|| source.open(&open_name, client)))
            .await;
    let file = match opened {
        Ok(Ok(file)) => file,
        Ok(Err(e)) => {
            refuse(e.error_code(), e.client_message(), e.to_string()).await;
            return;
        }
        Err(e) => {
            refuse(
                ErrorCode::NotDefined,
                "internal error",
                format!("source panicked: {e}"),
            )
            .await;
            return;
        }
    };
    if request.mode == Mode::Netascii {
        // Boot files are binary; converting line endings would corrupt them and
        // real PXE clients never ask for netascii. Served byte-for-byte.
        debug!(%client, file = ?name, "tftp: netascii requested, serving bytes unconverted");
    }

    let size = file.size();
    let negotiated = negotiate(&request.options, size, shared.config.option_limits());
    let spec = TransferSpec {
        blksize: negotiated.blksize,
        windowsize: negotiated.windowsize,
        timeout: negotiated.timeout.unwrap_or(shared.config.default_timeout),
        max_timeout: shared.config.max_timeout,
        max_retries: shared.config.max_retries,
        read_ahead: shared.config.read_ahead,
        oack: negotiated.oack,
    };
    let report = transfer::run(&socket, file, &spec, progressed, shared.stop.clone()).await;
    let elapsed = started.elapsed();

    if let Outcome::Stopped = report.outcome {
        send_error(&socket, ErrorCode::NotDefined, "server shutting down").await;
    } else if report.outcome.is_integrity_refusal() {
        send_error(
            &socket,
            ErrorCode::NotDefined,
            "file failed its integrity check",
        )
        .await;
    } else if let Outcome::Source(_) | Outcome::Socket(_) = report.outcome {
        // Our failure: tell the client instead of letting it time out.
        send_error(&socket, ErrorCode::NotDefined, "server error").await;
    }
    let result = match &report.outcome {
        Outcome::OptionProbe { .. } => None,
        Outcome::Complete => Some(TransferResult::Complete),
        Outcome::ClientAborted { .. } | Outcome::TimedOut { .. } | Outcome::ClientGone => {
            Some(TransferResult::Incomplete)
        }
        Outcome::Stopped => Some(TransferResult::Stopped),
        o if o.is_integrity_refusal() => Some(TransferResult::IntegrityRefused),
        Outcome::Source(_) | Outcome::Socket(_) => Some(TransferResult::Failed),
    };
    if let Some(result) = result {
        shared.source.ended(result, report.bytes);
    }
    let rate = Rate {
        bytes: report.bytes,
        elapsed,
    };
    macro_rules! transfer_line {
        ($level:ident) => {
            $level!(
                %client,
                file = ?name,
                outcome = %report.outcome,
                bytes = report.bytes,
                size,
                blksize = spec.blksize,
                windowsize = spec.windowsize,
                mode = %request.mode,
                duration = ?elapsed,
                %rate,
                "tftp transfer"
            )
        };
    }
    match report.outcome {
        Outcome::OptionProbe { .. } => transfer_line!(debug),
        ref o if o.is_integrity_refusal() => transfer_line!(error),
        ref o if o.is_server_fault() => transfer_line!(warn),
        _ => transfer_line!(info),
    }
}

async fn bind_transfer_socket(bind: SocketAddr, client: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(client).await?;
    Ok(socket)
}

/// ERROR replies are best effort: there is no retransmission for them in TFTP.
async fn send_error(socket: &UdpSocket, code: ErrorCode, message: &str) {
    let mut buf = Vec::with_capacity(message.len() + 5);
    encode_error(&mut buf, code, message);
    if let Err(e) = socket.send(&buf).await {
        debug!(error = %e, "tftp: could not send error packet");
    }
}

async fn reply_error(socket: &UdpSocket, peer: SocketAddr, code: ErrorCode, message: &str) {
    let mut buf = Vec::with_capacity(message.len() + 5);
    encode_error(&mut buf, code, message);
    if let Err(e) = socket.send_to(&buf, peer).await {
        debug!(%peer, error = %e, "tftp: could not send error packet");
    }
}

fn packet_kind(p: &Packet<'_>) -> &'static str {
    match p {
        Packet::Rrq(_) => "RRQ",
        Packet::Wrq(_) => "WRQ",
        Packet::Data { .. } => "DATA",
        Packet::Ack(_) => "ACK",
        Packet::Error { .. } => "ERROR",
        Packet::Oack(_) => "OACK",
    }
}

/// Throughput for the log line, e.g. "112.4 MB/s".
struct Rate {
    bytes: u64,
    elapsed: Duration,
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        if secs <= 0.0 {
            return f.write_str("-");
        }
        write!(f, "{:.1} MB/s", self.bytes as f64 / secs / 1e6)
    }
}
