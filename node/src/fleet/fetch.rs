//! Fetching a release's files from peers: nearest first, falling over on failure or stall,
//! resuming from what is already stored.
//!
//! Source order: peers holding the release (complete, or still fetching it themselves),
//! sorted by measured round trip. A nearer peer that is itself still fetching gets a grace
//! period (`stall_timeout`) to deliver before a farther complete one is used: that is what
//! makes a branch site pull most bytes over its short link to the regional node instead of
//! the long one to the origin. A peer that makes no progress for `stall_timeout`, or whose
//! connection fails, is left for the next; one that sends data failing BLAKE3 verification is
//! avoided for a while. iroh-blobs writes only verified chunk groups, and each request asks
//! only for the ranges still missing, so a restart or a fall-over never re-fetches what is
//! held.

use std::{
    collections::{HashMap, HashSet},
    ops::Range,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bao_tree::{ChunkNum, ChunkRanges};

use iroh::{endpoint::Connection, EndpointId};
use iroh_blobs::{
    api::remote::GetProgressItem,
    get::{fsm::DecodeError, GetError},
    protocol::{GetRequest, ObserveRequest},
    HashAndFormat,
};
use n0_future::StreamExt;
use netboot_proto::{fleet::Holding, FileEntry, ReleaseId, VerifiedRelease};

use super::{
    core::{Event, Fetched, PeerEvent},
    decide::{self, Attempt, Candidate, CopySeen, Ended, FileFetch, Step},
    follow::{Follow, PeerCopy},
    meter::Growth,
    pieces,
    swarm::{self, Failure, Left, Swarm},
    Shared,
};
use crate::store::AcceptError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a running transfer checks for a stall or a nearer source.
const PREEMPT_CHECK: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum SourceError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no progress for {0:?}")]
    Stalled(Duration),
    #[error("sent data that fails BLAKE3 verification: {0}")]
    BadData(String),
    #[error("{0}")]
    Transfer(String),
    #[error("a nearer peer holds it now: {0}")]
    Preempted(String),
    #[error("another peer receives it at more than twice its rate: {}", .0.label)]
    LeftBehind(Candidate),
    #[error("{why}")]
    Outpaced { to: EndpointId, why: String },
    #[error("{0} peers hold it complete now: fetching from them at once")]
    Swarm(usize),
}

/// Fetches every file of `release`, commits it, and tells the owner how that went. Runs
/// until done or aborted (superseded, shutdown).
pub(crate) async fn run(shared: Arc<Shared>, release: VerifiedRelease) {
    let what = format!("{} v{}", release.name, release.version);
    if let Err(e) = shared.store.protect_fetch(&release).await {
        tracing::warn!("fleet: {what}: cannot protect partial files from GC: {e}");
    }
    let started = Instant::now();
    let before = shared
        .core
        .ask(PeerEvent::Received)
        .await
        .unwrap_or_default();
    fetch_files(&shared, &release, &what).await;
    let outcome = match shared.store.accept(&release).await {
        Ok(accepted) => {
            let secs = started.elapsed().as_secs_f64();
            shared.progress.committed(&release.name, secs);
            let after = shared
                .core
                .ask(PeerEvent::Received)
                .await
                .unwrap_or_default();
            let sources: Vec<String> = after
                .iter()
                .filter_map(|(id, (label, received))| {
                    let got = received.saturating_sub(before.get(id).map_or(0, |b| b.1));
                    (got > 0).then(|| format!("{got} bytes from {label}"))
                })
                .collect();
            tracing::info!(
                "fleet: {what} complete and verified in {secs:.1} s ({}); serving it",
                if sources.is_empty() {
                    "all files were already held".to_string()
                } else {
                    sources.join(", ")
                }
            );
            unprotect(&shared, &release).await;
            if !accepted.dropped.is_empty() {
                if let Err(e) = shared.store.collect_garbage().await {
                    tracing::warn!("fleet: garbage collection: {e}");
                }
            }
            Fetched::Committed
        }
        Err(AcceptError::Refused(r)) => {
            tracing::info!("fleet: {what} not committed: {r}");
            shared
                .progress
                .refused(&release.name, release.version, "this node", &r.to_string());
            unprotect(&shared, &release).await;
            Fetched::Refused
        }
        Err(e) => {
            // Files are held and verified; a store error (disk full, I/O) is the operator's
            // to fix. Keep the release pending: a restart retries.
            tracing::error!("fleet: {what}: cannot commit: {e}");
            Fetched::NotCommitted
        }
    };
    shared.core.send(Event::Fetched { release, outcome }).await;
}

async fn unprotect(shared: &Shared, release: &VerifiedRelease) {
    if let Err(e) = shared
        .store
        .unprotect_fetch(&release.name, release.version)
        .await
    {
        tracing::warn!("fleet: {}: {e}", release.name);
    }
}

/// Fetches every missing file of `release`, [`decide::FILES_IN_FLIGHT`] at a time (a file a
/// client waits for at once); returns when all are held complete.
async fn fetch_files(shared: &Arc<Shared>, release: &VerifiedRelease, what: &str) {
    // Each future ends when its file is complete and verified (fetch_file checks the store),
    // and yields the file.
    let waiting_logged = AtomicBool::new(false);
    let mut missing = missing_files(shared, release).await;
    let mut running = n0_future::FuturesUnordered::new();
    let mut in_flight: Vec<blake3::Hash> = Vec::new();
    loop {
        // What clients wait for is looked at again whenever the owner says it grew; the wait
        // is registered before the look, so word that comes between the two still wakes it.
        let client_waits = shared.wanted_changed.notified();
        tokio::pin!(client_waits);
        client_waits.as_mut().enable();
        let wanted = shared.core.wanted().await;
        let start = decide::files_to_start(&missing, &in_flight, &wanted, decide::FILES_IN_FLIGHT);
        for file in start {
            in_flight.push(file.hash);
            tracing::info!(
                "fleet: fetching `{}` of {what} ({} bytes; {} of its files in flight)",
                file.path,
                file.size,
                in_flight.len()
            );
            let (shared, release, file, waiting) = (shared, release, file.clone(), &waiting_logged);
            running.push(async move {
                fetch_file(shared, release, &file, waiting).await;
                file
            });
        }
        if running.is_empty() {
            // Nothing left to start either: every file is held.
            break;
        }
        tokio::select! {
            Some(done) = running.next() => {
                in_flight.retain(|h| *h != done.hash);
                missing.retain(|f| f.hash != done.hash);
                tracing::info!(
                    "fleet: `{}` of {what} complete and verified ({} bytes)",
                    done.path,
                    done.size
                );
            }
            _ = &mut client_waits => {}
        }
    }
}

/// The files of `release` not yet held complete here. A file the store cannot tell about
/// counts as missing: fetching it again asks only for what is not verified.
async fn missing_files(shared: &Shared, release: &VerifiedRelease) -> Vec<FileEntry> {
    let mut missing = Vec::new();
    for f in &release.files {
        match shared.store.has_complete(&f.hash, f.size).await {
            Ok(true) => {}
            Ok(false) => missing.push(f.clone()),
            Err(e) => {
                tracing::warn!("fleet: {} v{}: store: {e}", release.name, release.version);
                missing.push(f.clone());
            }
        }
    }
    missing
}

/// Verified bytes of `release` held locally (complete and partial files).
pub(crate) async fn held_bytes(shared: &Shared, release: &VerifiedRelease) -> u64 {
    let mut done = 0;
    for f in &release.files {
        done += local_bytes(shared, &f.hash).await;
    }
    done
}

async fn local_bytes(shared: &Shared, hash: &blake3::Hash) -> u64 {
    let api = shared.store.blob_api();
    match api
        .remote()
        .local(HashAndFormat::raw(iroh_blobs::Hash::from(*hash)))
        .await
    {
        Ok(info) => info.local_bytes(),
        Err(_) => 0,
    }
}

/// Fetches one file; returns once it is complete. The order of sources and what follows
/// each request are [`decide::FileFetch`]'s; this carries them out.
/// `waiting_logged` is the release's: that no peer holds it yet is said once, not per file.
async fn fetch_file(
    shared: &Arc<Shared>,
    release: &VerifiedRelease,
    file: &FileEntry,
    waiting_logged: &AtomicBool,
) {
    let id = release.id();
    let stall = shared.settings.stall_timeout();
    let mut memory = FileFetch::new(stall);
    loop {
        if shared
            .store
            .has_complete(&file.hash, file.size)
            .await
            .unwrap_or(false)
        {
            return;
        }
        let all = sources(shared, id).await;
        if let Some(members) = swarm_members(shared, file, &all, &memory).await {
            if swarm_from(shared, release, file, members, stall, &mut memory).await {
                continue;
            }
        }
        let candidates = memory.order(&all, Instant::now());
        let mut pause = Pause::Idle;
        for c in &candidates {
            let before = local_bytes(shared, &file.hash).await;
            let result = fetch_from(shared, release, c, file, stall, &memory).await;
            let got = local_bytes(shared, &file.hash).await.saturating_sub(before);
            let ended = match &result {
                Ok(()) => Ended::Done,
                Err(SourceError::BadData(e)) => {
                    let what = format!("`{}` of {} v{}", file.path, release.name, release.version);
                    warn_bad_data(&c.label, &what, e, "");
                    Ended::BadData
                }
                Err(SourceError::Connect(e)) => {
                    tracing::info!("fleet: peer {} unreachable for data: {e}", c.label);
                    Ended::Unreachable
                }
                Err(e @ SourceError::Swarm(_)) => {
                    tracing::info!(
                        "fleet: `{}` of {} v{}: leaving {}: {e}",
                        file.path,
                        release.name,
                        release.version,
                        c.label
                    );
                    Ended::Preempted
                }
                Err(SourceError::Preempted(nearer)) => {
                    tracing::info!(
                        "fleet: `{}` of {} v{}: switching from {} to the nearer {}",
                        file.path,
                        release.name,
                        release.version,
                        c.label,
                        nearer
                    );
                    Ended::Preempted
                }
                Err(SourceError::LeftBehind(faster)) => {
                    let to = faster.id;
                    tracing::info!(
                        "fleet: `{}` of {} v{}: leaving {}, whose copy grew less than half as fast as {}'s over the last {} s",
                        file.path,
                        release.name,
                        release.version,
                        c.label,
                        faster.label,
                        stall.as_secs()
                    );
                    Ended::LeftBehind(to)
                }
                Err(SourceError::Outpaced { to, why }) => {
                    tracing::info!(
                        "fleet: `{}` of {} v{}: leaving {}: {why}",
                        file.path,
                        release.name,
                        release.version,
                        c.label,
                    );
                    Ended::LeftBehind(*to)
                }
                Err(e @ SourceError::Stalled(_)) => {
                    tracing::info!(
                        "fleet: `{}` of {} v{} stalled on {} ({e}); trying the next peer",
                        file.path,
                        release.name,
                        release.version,
                        c.label
                    );
                    Ended::Stalled
                }
                Err(e) => {
                    tracing::debug!("fleet: `{}` from {}: {e}", file.path, c.label);
                    Ended::Failed
                }
            };
            let attempt = Attempt {
                ended,
                got,
                had_all: before >= file.size,
            };
            match after_attempt(shared, &mut memory, c, attempt).await {
                Step::Restart { progressed } => {
                    if progressed {
                        pause = Pause::Progressed;
                    }
                    break;
                }
                Step::WaitForNearer => {
                    pause = Pause::WaitForNearer;
                    break;
                }
                Step::Next => {
                    if matches!(ended, Ended::Done | Ended::Failed | Ended::Stalled) {
                        tracing::debug!(
                            "fleet: nothing new of `{}` of {} v{} from {}; trying the next peer",
                            file.path,
                            release.name,
                            release.version,
                            c.label,
                        );
                    }
                }
            }
        }
        match pause {
            Pause::Progressed => tokio::time::sleep(Duration::from_millis(20)).await,
            Pause::WaitForNearer => tokio::time::sleep(Duration::from_millis(200)).await,
            Pause::Idle => {
                if candidates.is_empty() && !waiting_logged.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        "fleet: no reachable peer holds {} v{} yet; waiting",
                        release.name,
                        release.version
                    );
                }
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), shared.changed.notified()).await;
            }
        }
    }
}

/// How a round over the sources ended.
enum Pause {
    Progressed,
    WaitForNearer,
    Idle,
}

/// The sources of `release` now, in the order to try.
async fn sources(shared: &Shared, release: ReleaseId) -> Vec<Candidate> {
    shared
        .core
        .ask(|reply| PeerEvent::Sources { release, reply })
        .await
        .unwrap_or_default()
}

/// The blob connection to peer `id`: the one the peer table holds while it is alive, or a new
/// one, dialled once for the fetches that ask at the same time (dial.rs).
async fn blob_connection(shared: &Shared, id: EndpointId) -> Result<Connection, SourceError> {
    if let (Some(c), _) = blob_link(shared, id).await? {
        return Ok(c);
    }
    let dialled = shared.blob_dials.dial(id, || async {
        // Another fetch may have dialled while this one waited.
        let (cached, addr) = blob_link(shared, id).await?;
        if let Some(c) = cached {
            return Ok(c);
        }
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            shared.endpoint.connect(addr, iroh_blobs::ALPN),
        )
        .await
        .map_err(|_| SourceError::Connect(format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| SourceError::Connect(e.to_string()))?;
        tracing::info!("fleet: data connection to {} open", id.fmt_short());
        let conn_ = Some(conn.clone());
        shared
            .core
            .peer(PeerEvent::SetBlobLink { id, conn: conn_ })
            .await;
        Ok(conn)
    });
    dialled.await
}

/// The peer table's live blob connection to `id`, if any, and the address to dial.
async fn blob_link(
    shared: &Shared,
    id: EndpointId,
) -> Result<(Option<Connection>, iroh::EndpointAddr), SourceError> {
    shared
        .core
        .ask(|reply| PeerEvent::BlobLink { id, reply })
        .await
        .flatten()
        .ok_or_else(|| SourceError::Connect("unknown peer".into()))
}

async fn fetch_from(
    shared: &Arc<Shared>,
    release: &VerifiedRelease,
    c: &Candidate,
    file: &FileEntry,
    stall: Duration,
    memory: &FileFetch,
) -> Result<(), SourceError> {
    let conn = blob_connection(shared, c.id).await?;
    let api = shared.store.blob_api();
    let hash = iroh_blobs::Hash::from(file.hash);
    let missing = missing_chunks(&api, hash, file.size).await;
    if c.holding == Holding::Fetching && file.size > 0 {
        match follow_from(shared, release, c, file, stall, memory, &conn, &missing).await {
            Followed::Ended(result) => return result,
            // Without a report of what it holds, the peer is asked once, as below.
            Followed::NoReport(e) => {
                tracing::debug!(
                    "fleet: {} does not report its copy of `{}`: {e}",
                    c.label,
                    file.path
                );
            }
        }
    }
    let in_flight = pieces::streams_for(c.holding, shared.settings.streams);
    // One piece for everything when one request at a time follows the peer.
    let piece = if in_flight > 1 {
        pieces::PIECE_CHUNKS
    } else {
        u64::MAX
    };
    let mut queue: std::collections::VecDeque<(usize, Vec<Range<u64>>)> =
        pieces::pieces(&missing, piece, pieces::ALIGN_CHUNKS)
            .into_iter()
            .enumerate()
            .collect();
    if in_flight > 1 && queue.len() > 1 {
        tracing::info!(
            "fleet: `{}` of {} v{}: asking {} for {} pieces, {} at a time",
            file.path,
            release.name,
            release.version,
            c.label,
            queue.len(),
            in_flight
        );
    }
    let total = chunks_of(file.size);
    // A ranged get per piece, `in_flight` of them side by side on the connection (each its
    // own QUIC stream; pieces.rs says why); each item is tagged with its piece.
    let start = |i: usize, piece: &[Range<u64>]| {
        let request = GetRequest::blob_ranges(hash, chunk_set(piece, total));
        let items = api.remote().execute_get(conn.clone(), request).stream();
        Box::pin(items.map(move |item| (i, item)))
            as std::pin::Pin<Box<dyn n0_future::Stream<Item = (usize, GetProgressItem)> + Send>>
    };
    let mut read = vec![0u64; queue.len()];
    let mut requests = n0_future::MergeUnbounded::default();
    let mut running = 0usize;
    let mut ended_short = None;
    // Payload bytes of each request, credited to the peer (status, logs) at each check and
    // at the end, not per chunk group.
    let mut credited = 0u64;
    let mut idle = Duration::ZERO;
    let mut check = tokio::time::interval(PREEMPT_CHECK);
    check.tick().await;
    loop {
        while running < in_flight {
            let Some((i, piece)) = queue.pop_front() else {
                break;
            };
            requests.push(start(i, &piece));
            running += 1;
        }
        if running == 0 {
            credit(shared, release, c, read.iter().sum(), &mut credited).await;
            return match ended_short {
                None => Ok(()),
                Some(text) => Err(SourceError::Transfer(text)),
            };
        }
        let next = tokio::select! {
            item = requests.next() => Some(item),
            _ = check.tick() => None,
        };
        let Some(next) = next else {
            credit(shared, release, c, read.iter().sum(), &mut credited).await;
            let all = checkpoint(shared, release, c, memory, stall, &mut idle).await?;
            if c.holding == Holding::Complete {
                if let Some(members) = swarm_members(shared, file, &all, memory).await {
                    return Err(SourceError::Swarm(members.len()));
                }
            }
            continue;
        };
        if matches!(next, Some((_, GetProgressItem::Progress(_)))) {
            idle = Duration::ZERO;
        }
        match next {
            None => return Err(SourceError::Transfer("ended without a result".into())),
            Some((i, GetProgressItem::Progress(n))) => read[i] = read[i].max(n),
            Some((i, GetProgressItem::Done(stats))) => {
                read[i] = read[i].max(stats.payload_bytes_read);
                running -= 1;
            }
            Some((_, GetProgressItem::Error(e))) => {
                let text = format!("{e:#}");
                let id = c.id;
                if sent_bad_data(&e) {
                    // Nothing of a failing request counts as received from that peer.
                    let bytes = -(credited as i64);
                    shared.core.peer(PeerEvent::Credit { id, bytes }).await;
                    return Err(SourceError::BadData(text));
                }
                if conn.close_reason().is_some() {
                    credit(shared, release, c, read.iter().sum(), &mut credited).await;
                    let conn = None;
                    shared.core.peer(PeerEvent::SetBlobLink { id, conn }).await;
                    return Err(SourceError::Transfer(text));
                }
                // A peer still fetching the file sends what it has and ends the request
                // there; other pieces run on to their own ends.
                running -= 1;
                ended_short = Some(text);
            }
        }
    }
}

/// The complete holders a file is fetched from at once ([`swarm`]), nearest first, when at
/// least two of them would start (not cooling down after failing this file) and at least two
/// pieces of the file are missing; `None` otherwise.
async fn swarm_members(
    shared: &Shared,
    file: &FileEntry,
    all: &[Candidate],
    memory: &FileFetch,
) -> Option<Vec<Candidate>> {
    let now = Instant::now();
    let fresh: Vec<Candidate> = all
        .iter()
        .filter(|c| !memory.cooling(&c.id, now))
        .cloned()
        .collect();
    let members = swarm::members(&fresh);
    if swarm::starting(&members) < 2 {
        return None;
    }
    let left = file
        .size
        .saturating_sub(local_bytes(shared, &file.hash).await);
    (left > pieces::PIECE_CHUNKS * 1024).then_some(members)
}

/// The swarm's requests in flight, by (peer, piece): each one's drop flag, which ends its
/// stream (and so the request) at its next item.
#[derive(Default)]
struct Running(HashMap<(EndpointId, usize), Arc<AtomicBool>>);

impl Running {
    /// A request starts; the flag its stream watches.
    fn start(&mut self, peer: EndpointId, piece: usize) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        if let Some(old) = self.0.insert((peer, piece), flag.clone()) {
            old.store(true, Ordering::Relaxed);
        }
        flag
    }

    /// A request ended by itself (done or failed).
    fn ended(&mut self, peer: EndpointId, piece: usize) {
        self.0.remove(&(peer, piece));
    }

    /// Drops the request of `piece` from `peer`, if it still runs.
    fn drop_request(&mut self, peer: EndpointId, piece: usize) {
        if let Some(flag) = self.0.remove(&(peer, piece)) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Drops every request to `peer` (it left the swarm; its pieces went to others).
    fn drop_peer(&mut self, peer: &EndpointId) {
        self.0.retain(|(p, _), flag| {
            if p == peer {
                flag.store(true, Ordering::Relaxed);
            }
            p != peer
        });
    }

    /// Requests neither ended nor dropped.
    fn live(&self) -> usize {
        self.0.len()
    }
}

/// A ranged get of one piece, its items tagged with the peer and the piece.
type PieceItems =
    std::pin::Pin<Box<dyn n0_future::Stream<Item = (EndpointId, usize, GetProgressItem)> + Send>>;

/// Fetches the missing pieces of `file` from `members` at once, as [`Swarm`] decides: one
/// connection per peer, each piece a ranged get verified as it arrives, up to `[fleet]
/// streams` of them in flight per peer. Returns when the file is complete here or every peer
/// has left the swarm (the one-peer loop then takes what is still missing); true if any
/// bytes arrived or nothing was missing.
async fn swarm_from(
    shared: &Shared,
    release: &VerifiedRelease,
    file: &FileEntry,
    members: Vec<Candidate>,
    stall: Duration,
    memory: &mut FileFetch,
) -> bool {
    let api = shared.store.blob_api();
    let hash = iroh_blobs::Hash::from(file.hash);
    let total = chunks_of(file.size);
    let missing = missing_chunks(&api, hash, file.size).await;
    let cut = pieces::pieces(&missing, pieces::PIECE_CHUNKS, pieces::ALIGN_CHUNKS);
    let count = cut.len();
    let streams = pieces::streams_for(Holding::Complete, shared.settings.streams);
    let mut swarm = Swarm::new(cut, members.clone(), streams, stall, Instant::now());
    let what = format!("`{}` of {} v{}", file.path, release.name, release.version);
    let names: Vec<&str> = swarm.active().iter().map(|c| c.label.as_str()).collect();
    tracing::info!(
        "fleet: {what}: fetching {count} pieces from {} ({streams} at a time each)",
        names.join(", ")
    );
    let by_id: HashMap<EndpointId, Candidate> = members.into_iter().map(|c| (c.id, c)).collect();
    let mut conns: HashMap<EndpointId, Connection> = HashMap::new();
    let mut requests = n0_future::MergeUnbounded::<PieceItems>::default();
    // Each running request's drop flag (its stream ends at its next item once set) and the
    // count of requests neither ended nor dropped.
    let mut running = Running::default();
    // Payload bytes of each request by (peer, piece), credited per peer at each check.
    let mut read: HashMap<(EndpointId, usize), u64> = HashMap::new();
    let mut credited: HashMap<EndpointId, u64> = HashMap::new();
    // Peers whose data failed verification: nothing of theirs counts as received.
    let mut discredited: HashSet<EndpointId> = HashSet::new();
    let mut check = tokio::time::interval(PREEMPT_CHECK);
    check.tick().await;
    let mut got_any = false;
    loop {
        while let Some(a) = swarm.next(Instant::now()) {
            let conn = match conns.get(&a.peer) {
                Some(conn) => conn.clone(),
                None => match blob_connection(shared, a.peer).await {
                    Ok(conn) => {
                        conns.insert(a.peer, conn.clone());
                        conn
                    }
                    Err(e) => {
                        if let Some(left) = swarm.unreachable(&a.peer) {
                            running.drop_peer(&left.peer);
                            let why = e.to_string();
                            leave(shared, &what, &by_id, &left, &why, 0, memory).await;
                        }
                        continue;
                    }
                },
            };
            // A piece back from a peer that left may be partly held by now.
            let held = missing_chunks(&api, hash, file.size).await;
            let chunks = pieces::still_missing(&a.chunks, &held);
            if chunks.is_empty() {
                if let Some(other) = swarm.done(&a.peer, a.piece, Instant::now()) {
                    running.drop_request(other, a.piece);
                }
                continue;
            }
            let request = GetRequest::blob_ranges(hash, chunk_set(&chunks, total));
            let items = api.remote().execute_get(conn, request).stream();
            let (peer, piece) = (a.peer, a.piece);
            let dropped = running.start(peer, piece);
            let items = items
                .take_while(move |_| !dropped.load(Ordering::Relaxed))
                .map(move |item| (peer, piece, item));
            requests.push(Box::pin(items));
        }
        if swarm.finished() || swarm.abandoned() || running.live() == 0 {
            break;
        }
        let next = tokio::select! {
            item = requests.next() => item,
            _ = check.tick() => {
                for (id, c) in &by_id {
                    let counted = bytes_of(&read, id);
                    credit(shared, release, c, counted, credited.entry(*id).or_default()).await;
                }
                for left in swarm.tick(Instant::now()) {
                    running.drop_peer(&left.peer);
                    let why = SourceError::Stalled(stall).to_string();
                    let got = bytes_of(&read, &left.peer);
                    leave(shared, &what, &by_id, &left, &why, got, memory).await;
                }
                continue;
            }
        };
        let Some((peer, piece, item)) = next else {
            break;
        };
        let now = Instant::now();
        match item {
            GetProgressItem::Progress(n) => {
                if !discredited.contains(&peer) {
                    read.insert((peer, piece), n);
                }
                got_any = true;
                swarm.progress(&peer, piece, now);
            }
            GetProgressItem::Done(stats) => {
                running.ended(peer, piece);
                if !discredited.contains(&peer) {
                    let r = read.entry((peer, piece)).or_default();
                    *r = (*r).max(stats.payload_bytes_read);
                }
                if let Some(other) = swarm.done(&peer, piece, now) {
                    running.drop_request(other, piece);
                }
            }
            GetProgressItem::Error(e) => {
                running.ended(peer, piece);
                let text = format!("{e:#}");
                let how = if sent_bad_data(&e) {
                    Failure::BadData
                } else if conns.get(&peer).is_some_and(|c| c.close_reason().is_some()) {
                    conns.remove(&peer);
                    let conn = None;
                    shared
                        .core
                        .peer(PeerEvent::SetBlobLink { id: peer, conn })
                        .await;
                    Failure::Failed
                } else if read.get(&(peer, piece)).copied().unwrap_or(0) == 0 {
                    Failure::Refused
                } else {
                    Failure::Failed
                };
                let got = bytes_of(&read, &peer);
                if how == Failure::BadData && discredited.insert(peer) {
                    // Nothing of a peer that sent bad data counts as received from it.
                    let bytes = -(credited.remove(&peer).unwrap_or(0) as i64);
                    shared
                        .core
                        .peer(PeerEvent::Credit { id: peer, bytes })
                        .await;
                    read.retain(|(p, _), _| *p != peer);
                }
                let why = if how == Failure::Refused {
                    format!("refused before a byte, its upload slots taken? {text}")
                } else {
                    text
                };
                if let Some(left) = swarm.failed(&peer, piece, how) {
                    running.drop_peer(&left.peer);
                    leave(shared, &what, &by_id, &left, &why, got, memory).await;
                }
            }
        }
    }
    for (id, c) in &by_id {
        let counted = bytes_of(&read, id);
        credit(
            shared,
            release,
            c,
            counted,
            credited.entry(*id).or_default(),
        )
        .await;
    }
    let done: Vec<String> = swarm
        .done_by()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(label, n)| format!("{n} from {label}"))
        .collect();
    if swarm.finished() {
        tracing::info!(
            "fleet: {what}: all {count} pieces fetched ({})",
            done.join(", ")
        );
    } else {
        tracing::info!(
            "fleet: {what}: every peer left the fetch from several at once ({} pieces done); one peer at a time now",
            if done.is_empty() { "no".to_string() } else { done.join(", ") }
        );
    }
    got_any || swarm.finished()
}

/// Payload bytes counted from `peer` over all its requests.
fn bytes_of(read: &HashMap<(EndpointId, usize), u64>, peer: &EndpointId) -> u64 {
    read.iter()
        .filter(|((p, _), _)| p == peer)
        .map(|(_, n)| n)
        .sum()
}

/// A peer left the swarm: say why, and let the file's memory cool it down or back it off
/// (as after a one-peer request that ended the same way).
async fn leave(
    shared: &Shared,
    what: &str,
    by_id: &HashMap<EndpointId, Candidate>,
    left: &Left,
    why: &str,
    got: u64,
    memory: &mut FileFetch,
) {
    let Some(c) = by_id.get(&left.peer) else {
        return;
    };
    let back = match left.requeued.len() {
        0 => String::new(),
        n => format!("; its {n} pieces in flight go to the others"),
    };
    if left.ended == Ended::BadData {
        warn_bad_data(&left.label, what, why, &back);
    } else {
        tracing::info!(
            "fleet: {what}: {} leaves the fetch from several peers ({why}){back}",
            left.label
        );
    }
    let attempt = Attempt {
        ended: left.ended,
        got,
        had_all: false,
    };
    after_attempt(shared, memory, c, attempt).await;
}

/// The one log line for a peer whose data failed verification (`what`: the file; `then`: what
/// happens to its requests, if anything needs saying).
fn warn_bad_data(peer: &str, what: &str, why: &str, then: &str) {
    tracing::warn!(
        "fleet: peer {peer} sent data for {what} that FAILS BLAKE3 verification ({why}); discarded, avoiding this peer for {} min{then}",
        decide::BAD_DATA_BACKOFF.as_secs() / 60
    );
}

/// Tells the file's memory how a request of `c` ended, records the peer-wide backoff it
/// decides on, and returns what the fetch does next.
async fn after_attempt(
    shared: &Shared,
    memory: &mut FileFetch,
    c: &Candidate,
    attempt: Attempt,
) -> Step {
    let after = memory.after(c, attempt, Instant::now());
    if let Some((fault, until)) = after.avoid {
        let id = c.id;
        shared
            .core
            .peer(PeerEvent::Avoid { id, fault, until })
            .await;
    }
    after.step
}

/// The check a running transfer makes every [`PREEMPT_CHECK`] with no byte arrived: stalled
/// once `idle` reaches the stall timeout, or left for a clearly nearer source. Returns the
/// sources it looked at.
async fn checkpoint(
    shared: &Shared,
    release: &VerifiedRelease,
    c: &Candidate,
    memory: &FileFetch,
    stall: Duration,
    idle: &mut Duration,
) -> Result<Vec<Candidate>, SourceError> {
    *idle += PREEMPT_CHECK;
    if *idle >= stall {
        return Err(SourceError::Stalled(stall));
    }
    let all = sources(shared, release.id()).await;
    match memory.nearer_than(c, &all, Instant::now()) {
        Some(nearer) => Err(SourceError::Preempted(nearer.label.clone())),
        None => Ok(all),
    }
}

/// Credits the peer (status, logs) with the payload bytes counted since the last credit.
async fn credit(
    shared: &Shared,
    release: &VerifiedRelease,
    c: &Candidate,
    counted: u64,
    credited: &mut u64,
) {
    let bytes = counted.saturating_sub(*credited);
    *credited = counted;
    if bytes > 0 {
        let id = c.id;
        if shared.members.contains(&id) {
            // Not a publisher's bytes (`publish --to`, loopback-fast): those are no rate a
            // follower could keep up with.
            shared.inflow.fetch_add(bytes, Ordering::Relaxed);
        }
        let signed = bytes as i64;
        shared
            .core
            .peer(PeerEvent::Credit { id, bytes: signed })
            .await;
        let (name, version) = (&release.name, release.version);
        shared.progress.received(name, version, id, &c.label, bytes);
    }
}

/// How following a peer ended.
enum Followed {
    Ended(Result<(), SourceError>),
    /// The peer did not report what it holds (observe refused or failed).
    NoReport(String),
}

/// Follows `c`, a peer still fetching `file`: watches its copy (iroh-blobs observe) and asks
/// for what lands there as it lands, a request queued behind the running one (`follow.rs`
/// says why). Ends when the file is complete here; at once, if the peer holds nothing new
/// and has never delivered this file (it could be waiting for this node); otherwise as
/// [`fetch_from`] does: on a stall, a nearer source, bad data or a lost connection.
#[allow(clippy::too_many_arguments)]
async fn follow_from(
    shared: &Arc<Shared>,
    release: &VerifiedRelease,
    c: &Candidate,
    file: &FileEntry,
    stall: Duration,
    memory: &FileFetch,
    conn: &Connection,
    missing: &[Range<u64>],
) -> Followed {
    let api = shared.store.blob_api();
    let hash = iroh_blobs::Hash::from(file.hash);
    let total = chunks_of(file.size);
    let mut follow = Follow::new(total, missing);
    let mut reports = std::pin::pin!(api
        .remote()
        .observe(conn.clone(), ObserveRequest::new(hash)));
    match tokio::time::timeout(stall, reports.next()).await {
        Ok(Some(Ok(first))) => follow.peer_changed(&first.ranges),
        Ok(Some(Err(e))) => return Followed::NoReport(e.to_string()),
        Ok(None) => return Followed::NoReport("observe ended at once".into()),
        Err(_) => return Followed::Ended(Err(SourceError::Stalled(stall))),
    }
    if follow.peer_has_nothing_new() && !memory.proven(&c.id) {
        return Followed::Ended(Ok(()));
    }
    // Other peers still fetching this file, watched (observe needs no upload slot) to see
    // whether `c` falls far behind one of them (decide.rs `left_behind`); more are added as
    // they become known (a node that just came up learns its peers' holdings one by one).
    let mut watchers = tokio::task::JoinSet::new();
    let mut watched: Vec<Watched> = Vec::new();
    let mut watch_more = |all: &[Candidate], watched: &mut Vec<Watched>| {
        for other in all {
            if watched.len() >= MAX_WATCHED {
                break;
            }
            if other.id == c.id
                || other.holding != Holding::Fetching
                || watched.iter().any(|(w, _, _)| w.id == other.id)
            {
                continue;
            }
            let holds = Arc::new(AtomicU64::new(0));
            watchers.spawn(watch_copy(
                shared.clone(),
                other.id,
                hash,
                total,
                holds.clone(),
            ));
            watched.push((other.clone(), holds, Growth::default()));
        }
    };
    watch_more(&sources(shared, release.id()).await, &mut watched);
    let mut growth = Growth::default();
    // Payload bytes received from `c` over time: what following it delivers. A try is
    // measured against what following delivered over the stall timeout *before* it began:
    // while it runs it shares this node's own link with the following.
    let mut delivered = Growth::default();
    let mut delivered_before = 0u64;
    // A complete copy being tried (decide.rs `probe_target`), and when the last try ended.
    let mut probe: Option<std::pin::Pin<Box<dyn std::future::Future<Output = Probed> + Send>>> =
        None;
    let mut last_probe: Option<Instant> = None;
    tracing::info!(
        "fleet: `{}` of {} v{}: following {}'s copy as it grows ({} of {} KiB there)",
        file.path,
        release.name,
        release.version,
        c.label,
        follow.peer_holds(),
        total
    );
    let start = |id: u64, chunks: &[Range<u64>]| {
        let request = GetRequest::blob_ranges(hash, chunk_set(chunks, total));
        let items = api.remote().execute_get(conn.clone(), request).stream();
        Box::pin(items.map(move |item| (id, item)))
            as std::pin::Pin<Box<dyn n0_future::Stream<Item = (u64, GetProgressItem)> + Send>>
    };
    let mut requests = n0_future::MergeUnbounded::default();
    // Payload bytes read by each running request, and by those that ended.
    let mut read: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    let mut ended_bytes = 0u64;
    let mut credited = 0u64;
    let mut idle = Duration::ZERO;
    let mut check = tokio::time::interval(PREEMPT_CHECK);
    check.tick().await;
    let result = loop {
        while let Some(ask) = follow.next_ask() {
            read.insert(ask.id, 0);
            requests.push(start(ask.id, &ask.chunks));
        }
        if follow.complete() && follow.running() == 0 {
            break Ok(());
        }
        tokio::select! {
            report = reports.next() => match report {
                Some(Ok(change)) => follow.peer_changed(&change.ranges),
                Some(Err(e)) => break Err(SourceError::Transfer(format!("its report of `{}` ended: {e}", file.path))),
                None => break Err(SourceError::Transfer(format!("its report of `{}` ended", file.path))),
            },
            item = requests.next(), if follow.running() > 0 => {
                let Some((id, item)) = item else { continue };
                match item {
                    GetProgressItem::Progress(n) => {
                        idle = Duration::ZERO;
                        read.insert(id, n);
                    }
                    GetProgressItem::Done(stats) => {
                        ended_bytes += read.remove(&id).unwrap_or(0).max(stats.payload_bytes_read);
                        follow.ended(id);
                        follow.missing_now(&missing_chunks(&api, hash, file.size).await);
                    }
                    GetProgressItem::Error(e) => {
                        let text = format!("{e:#}");
                        if sent_bad_data(&e) {
                            // Nothing of a failing fetch counts as received from that peer.
                            let id = c.id;
                            let bytes = -(credited as i64);
                            shared.core.peer(PeerEvent::Credit { id, bytes }).await;
                            return Followed::Ended(Err(SourceError::BadData(text)));
                        }
                        if conn.close_reason().is_some() {
                            let (id, conn) = (c.id, None);
                            shared.core.peer(PeerEvent::SetBlobLink { id, conn }).await;
                            break Err(SourceError::Transfer(text));
                        }
                        let brought = read.remove(&id).unwrap_or(0);
                        if brought == 0 {
                            // Refused (its upload slots are taken) or nothing to send: the
                            // fetch turns to its next source, as after any failed request.
                            break Err(SourceError::Transfer(text));
                        }
                        ended_bytes += brought;
                        follow.ended(id);
                        follow.missing_now(&missing_chunks(&api, hash, file.size).await);
                    }
                }
            }
            probed = async {
                match probe.as_mut() {
                    Some(p) => p.await,
                    None => std::future::pending().await,
                }
            } => {
                probe = None;
                // The next try waits a whole stall timeout from here, so what following
                // delivers before it is measured without a try sharing the link.
                last_probe = Some(Instant::now());
                let q = &probed.peer;
                if !take_probed(shared, release, file, &probed).await {
                    continue;
                }
                follow.missing_now(&missing_chunks(&api, hash, file.size).await);
                let got = delivered_before;
                tracing::debug!(
                    "fleet: `{}` of {} v{}: tried {}'s complete copy: {} bytes in {:?}; {} had sent {} bytes in the {} s before",
                    file.path,
                    release.name,
                    release.version,
                    q.label,
                    probed.bytes,
                    probed.took,
                    c.label,
                    got,
                    stall.as_secs()
                );
                if decide::probe_beats(probed.bytes, probed.took, got, stall) {
                    break Err(outpaced(&probed, c, got, stall, ""));
                }
            }
            _ = check.tick() => {
                let counted = ended_bytes + read.values().sum::<u64>();
                credit(shared, release, c, counted, &mut credited).await;
                let all = match checkpoint(shared, release, c, memory, stall, &mut idle).await {
                    Ok(all) => all,
                    Err(e) => break Err(e),
                };
                watch_more(&all, &mut watched);
                let now = Instant::now();
                let at = tokio::time::Instant::from_std(now);
                growth.record(follow.peer_holds(), at, stall);
                delivered.record(counted, at, stall);
                let seen = CopySeen { holds: follow.peer_holds(), grew: growth.over(stall, at) };
                let others: Vec<(Candidate, CopySeen)> = watched
                    .iter_mut()
                    .map(|(o, holds, g)| {
                        let holds = holds.load(Ordering::Relaxed);
                        g.record(holds, at, stall);
                        (o.clone(), CopySeen { holds, grew: g.over(stall, at) })
                    })
                    .collect();
                if let Some(faster) = memory.left_behind((c, seen), &others, now) {
                    break Err(SourceError::LeftBehind(faster.clone()));
                }
                if probe.is_none() {
                    if let Some(q) = memory.probe_target((c, seen), &all, last_probe, now) {
                        let missing = missing_chunks(&api, hash, file.size).await;
                        let piece = pieces::tail(&missing, pieces::PIECE_CHUNKS);
                        let chunks: u64 = piece.iter().map(|r| r.end - r.start).sum();
                        if chunks * 1024 >= decide::PROBE_MIN_BYTES {
                            last_probe = Some(now);
                            delivered_before = delivered.over(stall, at).unwrap_or(0);
                            let q = q.clone();
                            let tried = try_complete(shared.clone(), q, hash, piece, total, stall);
                            probe = Some(Box::pin(tried));
                        }
                    }
                }
            }
        }
    };
    watchers.abort_all();
    let counted = ended_bytes + read.values().sum::<u64>();
    credit(shared, release, c, counted, &mut credited).await;
    // A try of a complete copy still running when following ends (the followed peer refused
    // this node, its report ended, it stalled, or another peer still fetching outgrew it) is
    // seen through, not dropped: it brings bytes this node needs, from a peer that just let
    // it in, often for a trial beside a slow holder (gate.rs). Dropped, the trial ended as
    // withdrawn and the slow holder kept the origin's only slot (the fed WAN test, in a
    // loop). If it came much faster than following had (the rule of a try that ends while
    // following goes on), that complete copy is the one to go on with.
    let result = match (result, probe.take()) {
        (
            Err(
                e @ (SourceError::Transfer(_)
                | SourceError::Stalled(_)
                | SourceError::LeftBehind(_)),
            ),
            Some(tried),
        ) => {
            let probed = tried.await;
            let got = delivered_before;
            if take_probed(shared, release, file, &probed).await
                && decide::probe_beats(probed.bytes, probed.took, got, stall)
            {
                let first = format!("following it ended ({e}); ");
                Err(outpaced(&probed, c, got, stall, &first))
            } else {
                Err(e)
            }
        }
        (result, _) => result,
    };
    Followed::Ended(result)
}

/// Leaving `c` for the complete copy whose try beat following it (`got`: what following
/// delivered over the `stall` timeout before the try), with why, after `first`.
fn outpaced(probed: &Probed, c: &Candidate, got: u64, stall: Duration, first: &str) -> SourceError {
    let q = &probed.peer;
    SourceError::Outpaced {
        to: q.id,
        why: format!(
            "{first}{}'s complete copy sent {} KiB in {:.1} s, {} only {} KiB in the {} s before",
            q.label,
            probed.bytes / 1024,
            probed.took.as_secs_f64(),
            c.label,
            got / 1024,
            stall.as_secs()
        ),
    }
}

/// Takes what a try of a complete copy brought: credits its peer, or, if the data failed
/// verification, warns and keeps the peer away. Whether the try counts.
async fn take_probed(
    shared: &Shared,
    release: &VerifiedRelease,
    file: &FileEntry,
    probed: &Probed,
) -> bool {
    let q = &probed.peer;
    if let Some(e) = &probed.bad_data {
        let what = format!("`{}` of {} v{}", file.path, release.name, release.version);
        warn_bad_data(&q.label, &what, e, "");
        let (id, fault) = (q.id, decide::Fault::BadData);
        let until = decide::backoff(fault, Instant::now());
        shared
            .core
            .peer(PeerEvent::Avoid { id, fault, until })
            .await;
        return false;
    }
    let mut none = 0;
    credit(shared, release, q, probed.bytes, &mut none).await;
    true
}

/// What a try of a complete copy brought.
struct Probed {
    peer: Candidate,
    /// Verified payload bytes it brought (kept in the store like any other).
    bytes: u64,
    took: Duration,
    /// The data failed verification.
    bad_data: Option<String>,
}

/// Asks `q`, a complete copy, for `piece` of the file while the follow goes on, and reports
/// what arrived (verified, into the store) within `stall`.
async fn try_complete(
    shared: Arc<Shared>,
    q: Candidate,
    hash: iroh_blobs::Hash,
    piece: Vec<Range<u64>>,
    total: u64,
    stall: Duration,
) -> Probed {
    let started = Instant::now();
    let mut bytes = 0u64;
    let mut bad_data = None;
    if let Ok(conn) = blob_connection(&shared, q.id).await {
        let api = shared.store.blob_api();
        let request = GetRequest::blob_ranges(hash, chunk_set(&piece, total));
        let mut items = api.remote().execute_get(conn, request).stream();
        let _ = tokio::time::timeout(stall, async {
            while let Some(item) = items.next().await {
                match item {
                    GetProgressItem::Progress(n) => bytes = n,
                    GetProgressItem::Done(stats) => {
                        bytes = bytes.max(stats.payload_bytes_read);
                        break;
                    }
                    GetProgressItem::Error(e) => {
                        if sent_bad_data(&e) {
                            bad_data = Some(format!("{e:#}"));
                            bytes = 0;
                        }
                        break;
                    }
                }
            }
        })
        .await;
    }
    Probed {
        peer: q,
        bytes,
        took: started.elapsed(),
        bad_data,
    }
}

/// At most this many other still-fetching peers are watched while following one.
const MAX_WATCHED: usize = 2;

/// A watched peer: the candidate, the chunks it holds (kept by [`watch_copy`]), their growth.
type Watched = (Candidate, Arc<AtomicU64>, Growth);

/// How often a watched peer's copy is looked at. Its growth is judged over the stall timeout
/// (decide.rs `left_behind`) from samples taken at each check, so a look a second is plenty.
/// A standing observe request would instead bring a report for every batch the peer writes
/// (one or two 16 KiB chunk groups; counted: ~30 per MiB, ~80 a second at 25 Mbit/s), each a
/// packet and a wake-up of several tasks at both ends, for every peer watching it.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Keeps in `holds` how many chunks of `hash` peer `id` holds, looking every
/// [`WATCH_EVERY`] (an observe request, answered with the whole set held, then closed), until
/// the peer does not answer or the task is aborted (the follow ended).
async fn watch_copy(
    shared: Arc<Shared>,
    id: EndpointId,
    hash: iroh_blobs::Hash,
    total: u64,
    holds: Arc<AtomicU64>,
) {
    let Ok(conn) = blob_connection(&shared, id).await else {
        return;
    };
    let api = shared.store.blob_api();
    let mut every = tokio::time::interval(WATCH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        // Dropped at the end of the round, which stops the request at the peer.
        let mut reports = std::pin::pin!(api
            .remote()
            .observe(conn.clone(), ObserveRequest::new(hash)));
        let Some(Ok(held)) = reports.next().await else {
            return;
        };
        let mut copy = PeerCopy::new(total);
        copy.changed(&held.ranges);
        holds.store(copy.holds(), Ordering::Relaxed);
    }
}

/// BLAKE3 chunks (1 KiB) of a file of `size` bytes.
fn chunks_of(size: u64) -> u64 {
    size.div_ceil(1024)
}

/// The chunks of `hash` not held here, as plain ranges within the file's `size`.
async fn missing_chunks(
    api: &iroh_blobs::api::Store,
    hash: iroh_blobs::Hash,
    size: u64,
) -> Vec<Range<u64>> {
    let total = chunks_of(size);
    let Ok(info) = api.remote().local(HashAndFormat::raw(hash)).await else {
        // Nothing known about it here: ask for all of it.
        return if total == 0 {
            Vec::new()
        } else {
            std::iter::once(0..total).collect()
        };
    };
    let request = info.missing();
    let Some((_, ranges)) = request.ranges.as_single() else {
        return Vec::new();
    };
    // A range set is its boundaries: start, end, start, end, ...; an odd count ends open.
    let mut out: Vec<Range<u64>> = ranges
        .boundaries()
        .chunks(2)
        .filter_map(|b| {
            let start = b[0].0.min(total);
            let end = b.get(1).map_or(total, |e| e.0.min(total));
            (start < end).then_some(start..end)
        })
        .collect();
    // An empty file still has to be asked for once: its size is what the request verifies.
    if out.is_empty() && total == 0 && !info.is_complete() {
        out.push(0..1);
    }
    out
}

/// A piece as iroh-blobs' chunk ranges; a piece that reaches the file's last chunk is left
/// open, so the request is for "to the end" and verifies the size as iroh-blobs' own full
/// requests do.
fn chunk_set(piece: &[Range<u64>], total: u64) -> ChunkRanges {
    let mut set = ChunkRanges::empty();
    for r in piece {
        if r.end >= total {
            set |= ChunkRanges::from(ChunkNum(r.start)..);
        } else {
            set |= ChunkRanges::from(ChunkNum(r.start)..ChunkNum(r.end));
        }
    }
    set
}

/// Whether the peer sent data failing verification against the BLAKE3 tree (not a lost
/// connection or a chunk it does not have): iroh-blobs' decoder says so by its error kind.
fn sent_bad_data(e: &GetError) -> bool {
    matches!(
        e,
        GetError::Decode {
            source: DecodeError::LeafHashMismatch { .. } | DecodeError::ParentHashMismatch { .. },
            ..
        }
    )
}
