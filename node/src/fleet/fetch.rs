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
    protocol::GetRequest,
    HashAndFormat,
};
use n0_future::StreamExt;
use netboot_proto::{ReleaseId, VerifiedRelease};
use tokio::{sync::mpsc, task::JoinSet};

use super::{
    core::{Event, Fetched, PeerEvent},
    decide::{self, Candidate},
    plan::{chunks_of, Assignment, FileNeed, Outcome, Piece, Source, Swarm},
    Shared,
};
use crate::store::AcceptError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the plan is consulted without news (stalls, waits running out, new sources).
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How often a running transfer reports its progress (and credits its peer).
const REPORT_EVERY: Duration = Duration::from_millis(250);
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

/// What a transfer tells the fetch loop.
enum Report {
    Progress(Assignment),
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
    loop {
        let files = needs(shared, release).await;
        if files.is_empty() {
            return;
        }
        let all = sources(shared, id).await;
        let list: Vec<Source> = all.iter().cloned().map(Source::from_candidate).collect();
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
                Report::Progress(a) => swarm.progress(&a, Instant::now()),
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
                for a in swarm.stalled(now) {
                    if let Some(h) = handles.remove(&(a.peer, a.piece.clone())) {
                        h.abort();
                    }
                    let label = all.iter().find(|c| c.id == a.peer).map(|c| c.label.clone());
                    tracing::info!(
                        "fleet: chunks {:?} of `{}` of {} v{} stalled on {} (no byte for {:?}); asking the next peer",
                        a.piece.chunks,
                        path_of(release, &a.piece.file),
                        release.name,
                        release.version,
                        label.unwrap_or_else(|| a.peer.fmt_short().to_string()),
                        shared.settings.stall_timeout(),
                    );
                    let holding = all
                        .iter()
                        .find(|c| c.id == a.peer)
                        .map_or(netboot_proto::fleet::Holding::Fetching, |c| c.holding);
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
                    let _ = tx.send(Report::Progress(a.clone())).await;
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
