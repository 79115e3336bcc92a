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
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use iroh::{endpoint::Connection, EndpointId};
use iroh_blobs::{api::remote::GetProgressItem, HashAndFormat};
use n0_future::StreamExt;
use netboot_proto::{fleet::Holding, FileEntry, VerifiedRelease};

use super::{announce, peers::Candidate, Shared};
use crate::store::AcceptError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a running transfer checks for a stall or a nearer source.
const PREEMPT_CHECK: Duration = Duration::from_millis(500);
/// How long a peer whose blob connection failed is skipped.
const UNREACHABLE_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
enum SourceError {
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
}

/// Fetches every file of `release`, then commits it and announces it. Runs until done or
/// aborted (superseded, shutdown).
pub(crate) async fn run(shared: Arc<Shared>, release: VerifiedRelease) {
    let what = format!("{} v{}", release.name, release.version);
    if let Err(e) = shared.store.protect_fetch(&release).await {
        tracing::warn!("fleet: {what}: cannot protect partial files from GC: {e}");
    }
    let started = Instant::now();
    let before: HashMap<EndpointId, u64> = shared
        .peers
        .with(|m| m.values().map(|p| (p.id, p.received)).collect());
    loop {
        let mut missing = Vec::new();
        for f in &release.files {
            match shared.store.has_complete(&f.hash, f.size).await {
                Ok(true) => {}
                Ok(false) => missing.push(f.clone()),
                Err(e) => {
                    tracing::warn!("fleet: {what}: store: {e}");
                    missing.push(f.clone());
                }
            }
        }
        let Some(file) = next_file(&shared, &missing) else {
            break;
        };
        fetch_file(&shared, &release, &file).await;
    }
    match shared.store.accept(&release).await {
        Ok(accepted) => {
            let secs = started.elapsed().as_secs_f64();
            let sources: Vec<String> = shared.peers.with(|m| {
                m.values()
                    .filter_map(|p| {
                        let got = p.received - before.get(&p.id).copied().unwrap_or(0);
                        (got > 0).then(|| format!("{} bytes from {}", got, p.label()))
                    })
                    .collect()
            });
            tracing::info!(
                "fleet: {what} complete and verified in {secs:.1} s ({}); serving it",
                if sources.is_empty() {
                    "all files were already held".to_string()
                } else {
                    sources.join(", ")
                }
            );
            finish(&shared, &release).await;
            if !accepted.dropped.is_empty() {
                if let Err(e) = shared.store.collect_garbage().await {
                    tracing::warn!("fleet: garbage collection: {e}");
                }
            }
            announce::broadcast_complete(&shared, &release);
        }
        Err(AcceptError::Refused(r)) => {
            tracing::info!("fleet: {what} not committed: {r}");
            shared
                .progress
                .refused(&release.name, release.version, "this node", &r.to_string());
            finish(&shared, &release).await;
        }
        Err(e) => {
            // Files are held and verified; a store error (disk full, I/O) is the operator's
            // to fix. Keep the release pending: a restart retries.
            tracing::error!("fleet: {what}: cannot commit: {e}");
        }
    }
}

async fn finish(shared: &Shared, release: &VerifiedRelease) {
    {
        let mut pending = shared.lock_pending();
        if pending
            .get(&release.name)
            .is_some_and(|p| p.release.id() == release.id())
        {
            pending.remove(&release.name);
        }
    }
    shared.pending_dir.remove(&release.name, release.version);
    shared.progress.finished(&release.name);
    if let Err(e) = shared
        .store
        .unprotect_fetch(&release.name, release.version)
        .await
    {
        tracing::warn!("fleet: {}: {e}", release.name);
    }
}

/// Files a client is waiting for come first; otherwise the signed order.
fn next_file(shared: &Shared, missing: &[FileEntry]) -> Option<FileEntry> {
    let wanted = shared
        .wanted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    missing
        .iter()
        .find(|f| wanted.contains(&f.hash))
        .or_else(|| missing.first())
        .cloned()
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

/// Fetches one file; returns once it is complete.
async fn fetch_file(shared: &Arc<Shared>, release: &VerifiedRelease, file: &FileEntry) {
    let id = release.id();
    let stall = shared.settings.stall_timeout();
    // A nearer peer that is itself still fetching: when we first found it without anything
    // new for us. It is waited for until `stall` has passed.
    let mut grace: HashMap<EndpointId, Instant> = HashMap::new();
    // Peers that just failed to deliver this file are skipped until then (unless no other
    // peer is left), so a fetch does not flip back and forth.
    let mut cooldown: HashMap<EndpointId, Instant> = HashMap::new();
    // Peers that delivered bytes of this file: only those are worth waiting for. Waiting for
    // a peer that never delivered could be waiting for a peer that waits for us.
    let mut proven: std::collections::HashSet<EndpointId> = Default::default();
    let mut waiting_logged = false;
    loop {
        if shared
            .store
            .has_complete(&file.hash, file.size)
            .await
            .unwrap_or(false)
        {
            return;
        }
        let now = Instant::now();
        let all = shared.peers.candidates(&id);
        let mut candidates: Vec<Candidate> = all
            .iter()
            .filter(|c| cooldown.get(&c.id).is_none_or(|t| *t <= now))
            .cloned()
            .collect();
        if candidates.is_empty() {
            candidates = all;
        }
        let mut progressed = false;
        let mut wait_for_nearer = false;
        for c in &candidates {
            let before = local_bytes(shared, &file.hash).await;
            let preempt = || nearer_source(shared, &id, c, &cooldown);
            let result = fetch_from(shared, release, c, file, stall, &preempt).await;
            let got = local_bytes(shared, &file.hash).await.saturating_sub(before);
            if got > 0 {
                grace.remove(&c.id);
                proven.insert(c.id);
                progressed = true;
            }
            match result {
                Ok(()) if got > 0 || before >= file.size => break,
                Ok(()) => {}
                Err(SourceError::BadData(e)) => {
                    tracing::warn!(
                        "fleet: peer {} sent data for `{}` of {} v{} that FAILS BLAKE3 verification ({e}); discarded, avoiding this peer for {} min",
                        c.label,
                        file.path,
                        release.name,
                        release.version,
                        super::peers::BAD_PEER_PENALTY.as_secs() / 60
                    );
                    shared.peers.mark_bad(&c.id);
                    continue;
                }
                Err(SourceError::Connect(e)) => {
                    tracing::info!("fleet: peer {} unreachable for data: {e}", c.label);
                    shared.peers.entry(c.id, |p| {
                        p.blobs = None;
                        p.retry_at = Some(Instant::now() + UNREACHABLE_BACKOFF);
                    });
                    continue;
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
                    break;
                }
                Err(e) => {
                    tracing::debug!("fleet: `{}` from {}: {e}", file.path, c.label);
                    if matches!(e, SourceError::Stalled(_)) {
                        tracing::info!(
                            "fleet: `{}` of {} v{} stalled on {} ({e}); trying the next peer",
                            file.path,
                            release.name,
                            release.version,
                            c.label
                        );
                        cooldown.insert(c.id, Instant::now() + 2 * stall);
                    }
                }
            }
            if progressed {
                // Start over from the nearest: it may have more by now.
                break;
            }
            if c.holding == Holding::Fetching && proven.contains(&c.id) {
                let first = *grace.entry(c.id).or_insert_with(Instant::now);
                if first.elapsed() < stall {
                    // The nearest source is still receiving this file itself: give it time
                    // rather than pull the bytes over a longer link.
                    wait_for_nearer = true;
                    break;
                }
                grace.remove(&c.id);
            }
            tracing::debug!(
                "fleet: nothing new of `{}` of {} v{} from {}; trying the next peer",
                file.path,
                release.name,
                release.version,
                c.label,
            );
            cooldown.insert(c.id, Instant::now() + stall);
        }
        if progressed {
            tokio::time::sleep(Duration::from_millis(20)).await;
        } else if wait_for_nearer {
            tokio::time::sleep(Duration::from_millis(200)).await;
        } else {
            if !waiting_logged && candidates.is_empty() {
                tracing::info!(
                    "fleet: no reachable peer holds {} v{} yet; waiting",
                    release.name,
                    release.version
                );
                waiting_logged = true;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), shared.changed.notified()).await;
        }
    }
}

/// A source clearly nearer than `current` (half its round trip or less, and at least 5 ms
/// nearer) that is not cooling down: worth leaving a running transfer for. It appears when a
/// near peer starts holding the release after this fetch began with a farther one.
fn nearer_source(
    shared: &Shared,
    release: &netboot_proto::ReleaseId,
    current: &Candidate,
    cooldown: &HashMap<EndpointId, Instant>,
) -> Option<String> {
    let current_rtt = current.rtt?;
    let now = Instant::now();
    shared
        .peers
        .candidates(release)
        .into_iter()
        .filter(|c| c.id != current.id)
        .filter(|c| cooldown.get(&c.id).is_none_or(|t| *t <= now))
        .find(|c| {
            c.rtt.is_some_and(|r| {
                r * 2 <= current_rtt && r + Duration::from_millis(5) <= current_rtt
            })
        })
        .map(|c| c.label)
}

async fn blob_connection(shared: &Shared, peer: &EndpointId) -> Result<Connection, SourceError> {
    let (cached, addr) = shared
        .peers
        .get(peer, |p| (super::peers::alive(&p.blobs), p.dial_addr()))
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
    shared.peers.entry(*peer, |p| p.blobs = Some(conn.clone()));
    Ok(conn)
}

async fn fetch_from(
    shared: &Shared,
    release: &VerifiedRelease,
    c: &Candidate,
    file: &FileEntry,
    stall: Duration,
    preempt: &(dyn Fn() -> Option<String> + Sync),
) -> Result<(), SourceError> {
    let conn = blob_connection(shared, &c.id).await?;
    let api = shared.store.blob_api();
    let progress = api.remote().fetch(
        conn.clone(),
        HashAndFormat::raw(iroh_blobs::Hash::from(file.hash)),
    );
    let mut stream = std::pin::pin!(progress.stream());
    // Payload bytes of this request, credited to the peer as they arrive (status, logs).
    let mut counted = 0u64;
    let mut credit = |n: u64| {
        let delta = n.saturating_sub(counted);
        counted = counted.max(n);
        if delta > 0 {
            shared.peers.entry(c.id, |p| p.received += delta);
            shared
                .progress
                .received(&release.name, release.version, c.id, &c.label, delta);
        }
    };
    let mut idle = Duration::ZERO;
    let mut check = tokio::time::interval(PREEMPT_CHECK);
    check.tick().await;
    loop {
        let next = tokio::select! {
            item = stream.next() => Some(item),
            _ = check.tick() => None,
        };
        let Some(next) = next else {
            idle += PREEMPT_CHECK;
            if idle >= stall {
                return Err(SourceError::Stalled(stall));
            }
            if let Some(nearer) = preempt() {
                return Err(SourceError::Preempted(nearer));
            }
            continue;
        };
        if matches!(next, Some(GetProgressItem::Progress(_))) {
            idle = Duration::ZERO;
        }
        match next {
            None => return Err(SourceError::Transfer("ended without a result".into())),
            Some(GetProgressItem::Progress(n)) => credit(n),
            Some(GetProgressItem::Done(stats)) => {
                credit(stats.payload_bytes_read);
                return Ok(());
            }
            Some(GetProgressItem::Error(e)) => {
                let text = format!("{e:#}");
                if text.contains("hash mismatch") {
                    // Nothing of a failing request counts as received from that peer.
                    let bad = counted;
                    shared
                        .peers
                        .entry(c.id, |p| p.received = p.received.saturating_sub(bad));
                    return Err(SourceError::BadData(text));
                }
                if conn.close_reason().is_some() {
                    shared.peers.entry(c.id, |p| p.blobs = None);
                }
                return Err(SourceError::Transfer(text));
            }
        }
    }
}
