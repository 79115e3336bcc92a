//! Fetching a release from peers in pieces, several at once: carries out the swarm plan
//! ([`super::plan`]) and reports back to it.
//!
//! Each assignment is one ranged get over iroh-blobs (one piece of one file from one peer),
//! verified by bao as it streams: iroh-blobs writes only verified chunk groups, so pieces of
//! one file arriving from several peers at once, a restart or a fall-over never re-fetch what
//! is held, and a read-through client sees each verified byte as it lands. Transfers report
//! progress and their end here; this loop asks the plan what to do next, stops what it says
//! stalled, and tells the owner about peers to avoid. The release is committed once every
//! file is complete.

// Lists of chunk ranges often hold one range; that is not a mistaken `0..n` collection.
#![allow(clippy::single_range_in_vec_init)]

use std::{
    collections::HashMap,
    ops::Range,
    sync::Arc,
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
use netboot_proto::{fleet::Holding, ReleaseId, VerifiedRelease};
use tokio::{sync::mpsc, task::JoinSet};

use super::{
    core::{Event, Fetched, PeerEvent},
    decide::{self, Candidate},
    plan::{chunks_of, Assignment, FileNeed, Holds, Outcome, Piece, Source, Swarm},
    Shared,
};
use crate::store::AcceptError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the plan is consulted without news (stalls, waits running out, new sources).
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How often a running transfer reports its progress (and credits its peer).
const REPORT_EVERY: Duration = Duration::from_millis(250);
/// How often a watched peer's growth reaches the fetch loop at most: a follower trails by
/// this plus a round trip.
const GROWTH_EVERY: Duration = Duration::from_millis(50);
/// Pieces asked of one peer at once: enough to keep a long link busy between requests
/// without taking its whole upload (its upload slots and limit bound the rest).
const PIECES_PER_PEER: usize = 4;

#[derive(Debug, thiserror::Error)]
enum SourceError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("sent data that fails BLAKE3 verification: {0}")]
    BadData(String),
    #[error("{0}")]
    Transfer(String),
}

/// What a transfer or a growth watch tells the fetch loop.
enum Report {
    /// Verified bytes of an assignment so far.
    Progress(Assignment, u64),
    /// A still-fetching peer's copy of `file` is now `held` (chunk ranges).
    Grew {
        peer: EndpointId,
        file: blake3::Hash,
        held: Vec<Range<u64>>,
    },
    /// The watch of a peer's copy ended (it closed, or refuses to be watched): what it holds
    /// is unknown again.
    Unwatched {
        peer: EndpointId,
        file: blake3::Hash,
    },
    Ended {
        a: Assignment,
        from: Candidate,
        result: Result<u64, SourceError>,
    },
}

/// Fetches every file of `release`, commits it, and tells the owner how that went. Runs
/// until done or aborted (superseded, shutdown); aborting drops every transfer with it.
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
    fetch_all(&shared, &release).await;
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

/// Runs the plan until every file of `release` is complete here.
async fn fetch_all(shared: &Arc<Shared>, release: &VerifiedRelease) {
    let id = release.id();
    let mut swarm = Swarm::new(PIECES_PER_PEER, shared.settings.stall_timeout());
    let (tx, mut reports) = mpsc::channel(64);
    // Dropped (aborting every transfer) when the fetch ends or is aborted.
    let mut transfers = JoinSet::new();
    let mut handles: HashMap<(EndpointId, Piece), tokio::task::AbortHandle> = HashMap::new();
    let mut check = tokio::time::interval(CHECK_EVERY);
    let mut waiting_logged = false;
    // What still-fetching peers hold, as their growth reports say; watched once per file.
    let mut grown: HashMap<EndpointId, HashMap<blake3::Hash, Vec<Range<u64>>>> = HashMap::new();
    // Watches running (None), or ended and not to be retried before then.
    let mut watched: HashMap<(EndpointId, blake3::Hash), Option<Instant>> = HashMap::new();
    let mut grew_at: HashMap<EndpointId, Instant> = HashMap::new();
    // The least round trip seen of each peer during this fetch: pings queue behind the
    // transfers themselves, and a sample taken under load would make a near peer look far
    // (and pieces flip between peers).
    let mut min_rtt: HashMap<EndpointId, Duration> = HashMap::new();
    loop {
        let files = needs(shared, release).await;
        if files.is_empty() {
            return;
        }
        let mut all = sources(shared, id).await;
        for c in &mut all {
            if let Some(r) = c.rtt {
                let least = min_rtt.entry(c.id).or_insert(r);
                *least = (*least).min(r);
                c.rtt = Some(*least);
            }
        }
        all.sort_by_key(|c| c.rtt.unwrap_or(Duration::MAX));
        for c in all.iter().filter(|c| c.holding == Holding::Fetching) {
            for f in &files {
                let key = (c.id, f.hash);
                let due = watched
                    .get(&key)
                    .is_none_or(|retry| retry.is_some_and(|t| t <= Instant::now()));
                if due {
                    watched.insert(key, None);
                    grew_at.insert(c.id, Instant::now());
                    let task = watch(shared.clone(), c.id, f.hash, f.size, tx.clone());
                    transfers.spawn(task);
                }
            }
        }
        let list: Vec<Source> = all
            .iter()
            .cloned()
            .map(|c| {
                let fetching = c.holding == Holding::Fetching;
                let known = grown.get(&c.id).filter(|_| fetching);
                let grew = grew_at.get(&c.id).copied().filter(|_| fetching);
                let mut s = Source::from_candidate(c);
                if let Some(known) = known {
                    s.holds = Holds::Ranges(known.clone());
                }
                s.grew_at = grew;
                s
            })
            .collect();
        let wanted = shared.core.wanted().await;
        for a in swarm.plan(&files, &list, &wanted, Instant::now()) {
            let Some(from) = all.iter().find(|c| c.id == a.peer).cloned() else {
                continue;
            };
            tracing::debug!(
                "fleet: {} v{}: asking {} for chunks {:?} of {}",
                release.name,
                release.version,
                from.label,
                a.piece.chunks,
                path_of(release, &a.piece.file)
            );
            let key = (a.peer, a.piece.clone());
            let task = transfer(shared.clone(), release.clone(), from, a, tx.clone());
            handles.insert(key, transfers.spawn(task));
        }
        if swarm.in_flight() == 0 && all.is_empty() && !waiting_logged {
            tracing::info!(
                "fleet: no reachable peer holds {} v{} yet; waiting",
                release.name,
                release.version
            );
            waiting_logged = true;
        }
        tokio::select! {
            Some(report) = reports.recv() => match report {
                Report::Progress(a, got) => swarm.progress(&a, got, Instant::now()),
                Report::Grew { peer, file, held } => {
                    grown.entry(peer).or_default().insert(file, held);
                    grew_at.insert(peer, Instant::now());
                }
                Report::Unwatched { peer, file } => {
                    if let Some(m) = grown.get_mut(&peer) {
                        m.remove(&file);
                    }
                    // Watched again later (a peer without the blob yet ends the watch).
                    let retry = Instant::now() + shared.settings.stall_timeout();
                    watched.insert((peer, file), Some(retry));
                }
                Report::Ended { a, from, result } => {
                    handles.remove(&(a.peer, a.piece.clone()));
                    let outcome = outcome(release, &from, &a, result);
                    let now = Instant::now();
                    if let Some((fault, until)) = swarm.ended(&a, outcome, from.holding, now) {
                        let id = a.peer;
                        shared.core.peer(PeerEvent::Avoid { id, fault, until }).await;
                    }
                }
            },
            _ = check.tick() => {
                let now = Instant::now();
                for a in swarm.preempt(&list, now) {
                    if let Some(h) = handles.remove(&(a.peer, a.piece.clone())) {
                        h.abort();
                    }
                    tracing::info!(
                        "fleet: chunks {:?} of `{}` of {} v{}: leaving {} for a clearly nearer peer",
                        a.piece.chunks,
                        path_of(release, &a.piece.file),
                        release.name,
                        release.version,
                        label_of(&all, &a.peer),
                    );
                    swarm.ended(&a, Outcome::Preempted, Holding::Complete, now);
                }
                for a in swarm.slow(&list, now) {
                    if let Some(h) = handles.remove(&(a.peer, a.piece.clone())) {
                        h.abort();
                    }
                    tracing::info!(
                        "fleet: chunks {:?} of `{}` of {} v{}: {} is much slower than a free peer; handing the rest over",
                        a.piece.chunks,
                        path_of(release, &a.piece.file),
                        release.name,
                        release.version,
                        label_of(&all, &a.peer),
                    );
                    swarm.ended(&a, Outcome::Slow, Holding::Complete, now);
                }
                for a in swarm.stalled(now) {
                    if let Some(h) = handles.remove(&(a.peer, a.piece.clone())) {
                        h.abort();
                    }
                    tracing::info!(
                        "fleet: chunks {:?} of `{}` of {} v{} stalled on {} (no byte for {:?}); asking the next peer",
                        a.piece.chunks,
                        path_of(release, &a.piece.file),
                        release.name,
                        release.version,
                        label_of(&all, &a.peer),
                        shared.settings.stall_timeout(),
                    );
                    let holding = all
                        .iter()
                        .find(|c| c.id == a.peer)
                        .map_or(Holding::Fetching, |c| c.holding);
                    swarm.ended(&a, Outcome::Stalled, holding, now);
                }
            }
            _ = shared.changed.notified() => {}
            // Reap finished tasks so the set does not grow; their reports came by channel.
            Some(_) = transfers.join_next(), if !transfers.is_empty() => {}
        }
    }
}

/// The files of `release` not complete here, with the chunk ranges missing.
async fn needs(shared: &Shared, release: &VerifiedRelease) -> Vec<FileNeed> {
    let api = shared.store.blob_api();
    let mut out = Vec::new();
    for f in &release.files {
        match shared.store.has_complete(&f.hash, f.size).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!("fleet: {} v{}: store: {e}", release.name, release.version),
        }
        let total = chunks_of(f.size).max(1);
        let content = HashAndFormat::raw(iroh_blobs::Hash::from(f.hash));
        let missing = match api.remote().local(content).await {
            Ok(local) => {
                let request = local.missing();
                match request.ranges.iter().next() {
                    Some(ranges) => chunk_ranges(ranges, total),
                    None => vec![0..total],
                }
            }
            Err(_) => vec![0..total],
        };
        // The store says incomplete but nothing missing (size not yet verified): ask again
        // for the last chunk, which carries the size.
        let missing = if missing.is_empty() {
            vec![total - 1..total]
        } else {
            missing
        };
        out.push(FileNeed {
            hash: f.hash,
            size: f.size,
            missing,
        });
    }
    out
}

/// iroh-blobs' chunk ranges as plain ranges, an open end cut at the file's last chunk.
fn chunk_ranges(ranges: &ChunkRanges, total: u64) -> Vec<Range<u64>> {
    // A range set is its boundaries: start, end, start, end, ...; an odd count ends open.
    ranges
        .boundaries()
        .chunks(2)
        .filter_map(|b| {
            let start = b[0].0.min(total);
            let end = b.get(1).map_or(total, |e| e.0.min(total));
            (start < end).then_some(start..end)
        })
        .collect()
}

fn label_of(all: &[Candidate], id: &EndpointId) -> String {
    all.iter()
        .find(|c| c.id == *id)
        .map_or_else(|| id.fmt_short().to_string(), |c| c.label.clone())
}

fn path_of<'a>(release: &'a VerifiedRelease, hash: &blake3::Hash) -> &'a str {
    release
        .files
        .iter()
        .find(|f| f.hash == *hash)
        .map_or("?", |f| f.path.as_str())
}

/// How a transfer ended, for the plan, with the log line a sysadmin needs.
fn outcome(
    release: &VerifiedRelease,
    from: &Candidate,
    a: &Assignment,
    result: Result<u64, SourceError>,
) -> Outcome {
    let path = path_of(release, &a.piece.file);
    match result {
        Ok(got) => Outcome::Done { got },
        Err(SourceError::BadData(e)) => {
            tracing::warn!(
                "fleet: peer {} sent data for `{path}` of {} v{} that FAILS BLAKE3 verification ({e}); discarded, avoiding this peer for {} min",
                from.label,
                release.name,
                release.version,
                decide::BAD_DATA_BACKOFF.as_secs() / 60
            );
            Outcome::BadData
        }
        Err(SourceError::Connect(e)) => {
            tracing::info!("fleet: peer {} unreachable for data: {e}", from.label);
            Outcome::Unreachable
        }
        Err(e) => {
            tracing::debug!("fleet: `{path}` from {}: {e}", from.label);
            Outcome::Failed
        }
    }
}

/// The sources of `release` now, in the order to try.
async fn sources(shared: &Shared, release: ReleaseId) -> Vec<Candidate> {
    shared
        .core
        .ask(|reply| PeerEvent::Sources { release, reply })
        .await
        .unwrap_or_default()
}

async fn blob_connection(shared: &Shared, id: EndpointId) -> Result<Connection, SourceError> {
    let (cached, addr) = shared
        .core
        .ask(|reply| PeerEvent::BlobLink { id, reply })
        .await
        .flatten()
        .ok_or_else(|| SourceError::Connect("unknown peer".into()))?;
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
    let conn_ = Some(conn.clone());
    shared
        .core
        .peer(PeerEvent::SetBlobLink { id, conn: conn_ })
        .await;
    Ok(conn)
}

/// Watches a still-fetching peer's copy of one file ([`growth`]), so this node asks for new
/// bytes as they land there instead of polling. Ends with the connection or when the fetch
/// ends (aborted).
async fn watch(
    shared: Arc<Shared>,
    peer: EndpointId,
    file: blake3::Hash,
    size: u64,
    tx: mpsc::Sender<Report>,
) {
    if let Ok(conn) = blob_connection(&shared, peer).await {
        let api = shared.store.blob_api();
        let mut reports = std::pin::pin!(growth(&api, conn, file, size));
        // The peer reports every verified chunk group (hundreds a second at link speed);
        // the fetch loop hears the newest at most every GROWTH_EVERY.
        let mut newest: Option<Vec<Range<u64>>> = None;
        let mut sent = Instant::now() - GROWTH_EVERY;
        loop {
            let wait = match newest {
                Some(_) => GROWTH_EVERY.saturating_sub(sent.elapsed()),
                None => Duration::from_secs(3600),
            };
            match tokio::time::timeout(wait, reports.next()).await {
                Ok(Some(held)) => newest = Some(held),
                Ok(None) => break,
                Err(_) => {}
            }
            if sent.elapsed() >= GROWTH_EVERY {
                if let Some(held) = newest.take() {
                    sent = Instant::now();
                    if tx.send(Report::Grew { peer, file, held }).await.is_err() {
                        return;
                    }
                }
            }
        }
        if let Some(held) = newest {
            let _ = tx.send(Report::Grew { peer, file, held }).await;
        }
    }
    let _ = tx.send(Report::Unwatched { peer, file }).await;
}

/// What the peer at the other end of `conn` holds of `file`, each time it changes: iroh-blobs'
/// observe, where the peer pushes every change of its verified ranges. Ends when the peer
/// closes the stream or refuses it.
pub(crate) fn growth(
    api: &iroh_blobs::api::Store,
    conn: Connection,
    file: blake3::Hash,
    size: u64,
) -> impl n0_future::Stream<Item = Vec<Range<u64>>> + 'static {
    let request = ObserveRequest::new(iroh_blobs::Hash::from(file));
    let total = chunks_of(size).max(1);
    let mut held = ChunkRanges::empty();
    api.remote()
        .observe(conn, request)
        .take_while(|item| item.is_ok())
        .filter_map(move |item| {
            // Each report is what changed since the last (a symmetric difference).
            let change = item.ok()?;
            held = &held ^ &change.ranges;
            Some(chunk_ranges(&held, total))
        })
}

/// One assignment: a ranged get of one piece from one peer, verified as it streams.
async fn transfer(
    shared: Arc<Shared>,
    release: VerifiedRelease,
    from: Candidate,
    a: Assignment,
    tx: mpsc::Sender<Report>,
) {
    let result = get_piece(&shared, &release, &from, &a, &tx).await;
    let _ = tx.send(Report::Ended { a, from, result }).await;
}

async fn get_piece(
    shared: &Shared,
    release: &VerifiedRelease,
    c: &Candidate,
    a: &Assignment,
    tx: &mpsc::Sender<Report>,
) -> Result<u64, SourceError> {
    let conn = blob_connection(shared, c.id).await?;
    let api = shared.store.blob_api();
    let ranges = ChunkRanges::from(ChunkNum(a.piece.chunks.start)..ChunkNum(a.piece.chunks.end));
    let request = GetRequest::blob_ranges(iroh_blobs::Hash::from(a.piece.file), ranges);
    let progress = api.remote().execute_get(conn.clone(), request);
    let mut stream = std::pin::pin!(progress.stream());
    // Payload bytes of this request, credited to the peer (status, logs) every report, not
    // per chunk group.
    let mut counted = 0u64;
    let mut credited = 0u64;
    let credit = |counted: u64, credited: &mut u64| {
        let bytes = counted.saturating_sub(*credited) as i64;
        *credited = counted;
        async move {
            if bytes > 0 {
                let id = c.id;
                shared.core.peer(PeerEvent::Credit { id, bytes }).await;
                let (name, version) = (&release.name, release.version);
                shared
                    .progress
                    .received(name, version, id, &c.label, bytes as u64);
            }
        }
    };
    let mut reported = Instant::now();
    loop {
        match stream.next().await {
            None => return Err(SourceError::Transfer("ended without a result".into())),
            Some(GetProgressItem::Progress(n)) => {
                counted = counted.max(n);
                if reported.elapsed() >= REPORT_EVERY {
                    reported = Instant::now();
                    credit(counted, &mut credited).await;
                    let _ = tx.send(Report::Progress(a.clone(), counted)).await;
                }
            }
            Some(GetProgressItem::Done(stats)) => {
                counted = counted.max(stats.payload_bytes_read);
                credit(counted, &mut credited).await;
                return Ok(counted);
            }
            Some(GetProgressItem::Error(e)) => {
                let text = format!("{e:#}");
                let id = c.id;
                if sent_bad_data(&e) {
                    // Nothing of a failing request counts as received from that peer.
                    let bytes = -(credited as i64);
                    shared.core.peer(PeerEvent::Credit { id, bytes }).await;
                    return Err(SourceError::BadData(text));
                }
                credit(counted, &mut credited).await;
                if conn.close_reason().is_some() {
                    let conn = None;
                    shared.core.peer(PeerEvent::SetBlobLink { id, conn }).await;
                }
                return Err(SourceError::Transfer(text));
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use iroh::{endpoint::presets, protocol::Router, Endpoint, EndpointAddr, RelayMode};
    use iroh_blobs::{store::mem::MemStore, BlobsProtocol};

    use super::*;

    async fn node() -> (MemStore, Router) {
        let store = MemStore::new();
        let ep = Endpoint::builder(presets::Minimal)
            .relay_mode(RelayMode::Disabled)
            .clear_address_lookup()
            .bind_addr("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap())
            .unwrap()
            .bind()
            .await
            .unwrap();
        let router = Router::builder(ep)
            .accept(iroh_blobs::ALPN, BlobsProtocol::new(&store, None))
            .spawn();
        (store, router)
    }

    async fn connect(from: &Router, to: &Router) -> Connection {
        let mut addr = EndpointAddr::new(to.endpoint().id());
        for s in to.endpoint().bound_sockets() {
            addr = addr.with_ip_addr(s);
        }
        from.endpoint()
            .connect(addr, iroh_blobs::ALPN)
            .await
            .unwrap()
    }

    fn get(hash: iroh_blobs::Hash, chunks: Range<u64>) -> GetRequest {
        let ranges = ChunkRanges::from(ChunkNum(chunks.start)..ChunkNum(chunks.end));
        GetRequest::blob_ranges(hash, ranges)
    }

    /// A follower (B) watching an upstream (A) that is itself still receiving a file (from
    /// the origin C) learns of each growth of A's copy as it happens, without asking again.
    #[tokio::test]
    async fn a_follower_learns_of_its_upstreams_growth_without_polling() {
        let data: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
        let (origin, c) = node().await;
        let (upstream, a) = node().await;
        let (follower, b) = node().await;
        let tag = origin.add_bytes(data.clone()).await.unwrap();
        let (hash, size) = (tag.hash, data.len() as u64);
        let file = blake3::Hash::from(hash);
        let a_to_c = connect(&a, &c).await;
        upstream
            .remote()
            .execute_get(a_to_c.clone(), get(hash, 0..32))
            .await
            .unwrap();
        let b_to_a = connect(&b, &a).await;
        let mut reports = std::pin::pin!(growth(&follower, b_to_a, file, size));
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(10), reports.next())
                .await
                .expect("a report within 10 s"),
            Some(vec![0..32])
        );
        // A receives more; B hears of it with no request of its own.
        upstream
            .remote()
            .execute_get(a_to_c.clone(), get(hash, 32..128))
            .await
            .unwrap();
        let mut held = Vec::new();
        while held != vec![0..128] {
            held = tokio::time::timeout(Duration::from_secs(10), reports.next())
                .await
                .expect("a report within 10 s")
                .expect("a growth report");
        }
        upstream
            .remote()
            .execute_get(a_to_c, get(hash, 128..256))
            .await
            .unwrap();
        while held != vec![0..256] {
            held = tokio::time::timeout(Duration::from_secs(10), reports.next())
                .await
                .expect("a report within 10 s")
                .expect("a growth report");
        }
        for r in [a, b, c] {
            r.shutdown().await.unwrap();
        }
    }
}
