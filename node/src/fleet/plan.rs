//! Which byte ranges of which files to ask of which peer next, pure: the swarm plan.
//!
//! A release's files are cut into pieces of [`PIECE_CHUNKS`] BLAKE3 chunks (aligned to
//! iroh-blobs' chunk groups, so a piece is verified and stored whole by bao as it streams and
//! two pieces never share a group). Several pieces of several files are in flight at once,
//! each from one peer: nearest peers first, at most `slots` pieces in flight per peer (its
//! upload slots), the origin only for pieces no other peer holds. A piece that stalls or
//! brings bad data goes to the next peer; the peer that failed it is skipped for that piece
//! for a while. Nothing here does I/O or reads the clock: the adapter (`fetch.rs`) passes in
//! what the store holds, what each peer holds and the time, and carries out the assignments.

use std::{
    collections::{HashMap, HashSet},
    ops::Range,
    time::{Duration, Instant},
};

use iroh::EndpointId;
use netboot_proto::fleet::Holding;

use super::decide::{backoff, Candidate, Fault};

/// BLAKE3 chunk size in bytes.
pub(crate) const CHUNK: u64 = 1024;
/// iroh-blobs verifies and stores in groups of 16 chunks (block size 4): pieces are whole
/// groups so no group is written by two transfers.
pub(crate) const GROUP_CHUNKS: u64 = 16;
/// 8 MiB: small enough that a 100 MiB file spreads over a dozen peers and a stalled piece
/// costs little to redo; large enough that the per-request round trip and bao header are
/// noise even at 100 ms (8 MiB is 0.7 s at 100 Mbit/s).
pub(crate) const PIECE_CHUNKS: u64 = 8 * 1024;
const _: () = assert!(PIECE_CHUNKS.is_multiple_of(GROUP_CHUNKS));
/// How soon a piece is asked again of a still-fetching peer that had none of it yet.
pub(crate) const WAIT_RETRY: Duration = Duration::from_millis(200);

/// One piece of one file: a chunk range, `start` a multiple of [`PIECE_CHUNKS`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Piece {
    pub file: blake3::Hash,
    pub chunks: Range<u64>,
}

impl Piece {
    fn overlaps(&self, other: &Piece) -> bool {
        self.file == other.file
            && self.chunks.start < other.chunks.end
            && other.chunks.start < self.chunks.end
    }
}

/// A file of the release as the store holds it now.
#[derive(Debug, Clone)]
pub(crate) struct FileNeed {
    pub hash: blake3::Hash,
    pub size: u64,
    /// Chunk ranges not held here yet (sorted, disjoint).
    pub missing: Vec<Range<u64>>,
}

/// What a source is known to hold of the release.
#[derive(Debug, Clone)]
pub(crate) enum Holds {
    /// Every byte (it committed the release).
    All,
    /// Still fetching; these chunk ranges per file, as its last growth report said (a file
    /// without a report: unknown, worth asking).
    Ranges(HashMap<blake3::Hash, Vec<Range<u64>>>),
    /// Still fetching, amount unknown: worth asking, it sends what it has.
    Unknown,
}

impl Holds {
    /// The part of `p` this source can send now: all of it, or (still fetching, growth known)
    /// the held stretch `p` starts with, in whole chunk groups. A follower so trails its
    /// upstream by what arrived since the last growth report, not by a whole piece.
    fn offer(&self, p: &Piece) -> Option<Piece> {
        match self {
            Holds::All | Holds::Unknown => Some(p.clone()),
            Holds::Ranges(map) => {
                let Some(held) = map.get(&p.file) else {
                    return Some(p.clone());
                };
                let r = held
                    .iter()
                    .find(|r| r.start <= p.chunks.start && p.chunks.start < r.end)?;
                let mut end = r.end.min(p.chunks.end);
                if end < p.chunks.end {
                    end -= end % GROUP_CHUNKS;
                }
                (end > p.chunks.start).then_some(Piece {
                    file: p.file,
                    chunks: p.chunks.start..end,
                })
            }
        }
    }
}

/// A peer as the plan sees it; the list comes nearest first ([`super::decide::sources`]).
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub peer: Candidate,
    pub holds: Holds,
    /// The origin (the publisher's first copy): used only for pieces no other source holds,
    /// so it sends about one copy of the release.
    pub origin: bool,
    /// Still fetching and watched: when its copy last grew (or the watch began). A clearly
    /// nearer source growing within the stall timeout is waited for (see [`Swarm::plan`]).
    pub grew_at: Option<Instant>,
}

impl Source {
    pub fn from_candidate(peer: Candidate) -> Self {
        let holds = match peer.holding {
            Holding::Complete => Holds::All,
            _ => Holds::Unknown,
        };
        Self {
            peer,
            holds,
            origin: false,
            grew_at: None,
        }
    }
}

/// Ask `peer` for `piece`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assignment {
    pub peer: EndpointId,
    pub piece: Piece,
}

/// How one assignment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The peer sent what it had of the piece (`got` verified bytes).
    Done { got: u64 },
    /// No byte within the stall timeout ([`Swarm::stalled`] said so).
    Stalled,
    /// Data failing BLAKE3 verification.
    BadData,
    /// No connection to the peer's blob provider.
    Unreachable,
    /// Any other failure (connection lost, refused).
    Failed,
    /// Stopped for a clearly nearer source ([`Swarm::preempt`]); what arrived is kept.
    Preempted,
    /// Stopped for a much faster source ([`Swarm::slow`]); what arrived is kept.
    Slow,
}

struct InFlight {
    piece: Piece,
    peer: EndpointId,
    started: Instant,
    last_progress: Instant,
    /// Verified bytes received so far.
    got: u64,
}

/// A transfer this many times slower than a free peer's last piece gives that peer its piece.
pub(crate) const SLOW_FACTOR: f64 = 4.0;
/// A transfer's rate is judged after this long (or the stall timeout, if shorter): past a
/// QUIC connection's ramp-up on any link the fleet is meant for.
pub(crate) const SLOW_AFTER: Duration = Duration::from_secs(1);
/// A finished piece measures its peer's rate only from this many bytes on.
pub(crate) const RATE_SAMPLE: u64 = 1 << 20;

/// The plan's memory for one release: what is in flight, which peer to skip for which piece
/// until when.
pub(crate) struct Swarm {
    slots: usize,
    stall: Duration,
    in_flight: Vec<InFlight>,
    /// (peer, piece) skipped until then: it failed that piece (or any piece overlapping it).
    skip: Vec<(EndpointId, Piece, Instant)>,
    /// Pieces held back until then: a still-fetching peer had nothing of them yet, and it is
    /// the one to wait for (nearer than any other holder).
    wait: HashMap<Piece, Instant>,
    /// Peers that delivered bytes of this release: only those are worth waiting for.
    proven: HashSet<EndpointId>,
    /// (peer, piece): since when a proven, still-fetching peer has had nothing of it.
    empty_since: HashMap<(EndpointId, Piece), Instant>,
    /// Bytes per second of each peer's last finished piece.
    rates: HashMap<EndpointId, f64>,
}

impl Swarm {
    /// `slots`: pieces in flight per peer at most.
    pub fn new(slots: usize, stall: Duration) -> Self {
        Self {
            slots: slots.max(1),
            stall,
            in_flight: Vec::new(),
            skip: Vec::new(),
            wait: HashMap::new(),
            proven: HashSet::new(),
            empty_since: HashMap::new(),
            rates: HashMap::new(),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The next assignments: pieces not held and not in flight, files clients wait for first
    /// (`wanted`), then in the release's order; each to the nearest source that holds it, is
    /// not skipped for it and has a free slot, among the peers about as near as the nearest
    /// holder ([`same_band`]). The origin gets a piece only when no other source holds it (a
    /// piece whose nearer holders are all busy waits for them).
    pub fn plan(
        &mut self,
        files: &[FileNeed],
        sources: &[Source],
        wanted: &[blake3::Hash],
        now: Instant,
    ) -> Vec<Assignment> {
        self.skip.retain(|(_, _, t)| *t > now);
        self.wait.retain(|_, t| *t > now);
        let mut busy: HashMap<EndpointId, usize> = HashMap::new();
        for f in &self.in_flight {
            *busy.entry(f.peer).or_default() += 1;
        }
        let flying: Vec<Piece> = self.in_flight.iter().map(|f| f.piece.clone()).collect();
        let order = files
            .iter()
            .filter(|f| wanted.contains(&f.hash))
            .chain(files.iter().filter(|f| !wanted.contains(&f.hash)));
        let mut out = Vec::new();
        for file in order {
            for piece in pieces(file) {
                // Overlap, not equality: a piece half received is the missing half now, and
                // must not be asked of a second peer while the first still sends it.
                if flying
                    .iter()
                    .chain(self.wait.keys())
                    .any(|f| f.overlaps(&piece))
                {
                    continue;
                }
                // What each source can send of the piece, if it is not skipped for it.
                let offers: Vec<(&Source, Piece)> = sources
                    .iter()
                    .filter_map(|s| Some((s, s.holds.offer(&piece)?)))
                    .filter(|(s, p)| !self.skipped(&s.peer.id, p))
                    .collect();
                let free = |(s, _): &&(&Source, Piece)| {
                    busy.get(&s.peer.id).copied().unwrap_or(0) < self.slots
                };
                let holders: Vec<&(&Source, Piece)> =
                    offers.iter().filter(|(s, _)| !s.origin).collect();
                // Within the band the least busy, nearest first among equals: pieces spread
                // over equals, so each soon has a measured rate (see `slow`).
                let load = |(s, _): &&(&Source, Piece)| busy.get(&s.peer.id).copied().unwrap_or(0);
                let chosen = match holders.first() {
                    Some((nearest, _)) => holders
                        .iter()
                        .copied()
                        .filter(|(s, _)| same_band(nearest, s))
                        .filter(free)
                        .min_by_key(load),
                    None => offers.iter().filter(|(s, _)| s.origin).find(free),
                };
                let Some((s, piece)) = chosen else { continue };
                // A clearly nearer source still receiving the release, and growing, has none
                // of this piece yet: wait for it rather than pull the piece over the longer
                // link (a branch site follows its regional node a few chunks behind).
                let nearer_growing = sources.iter().any(|w| {
                    w.grew_at
                        .is_some_and(|t| now.saturating_duration_since(t) < self.stall)
                        && clearly_nearer(w, s)
                        && !self.skipped(&w.peer.id, piece)
                });
                if nearer_growing {
                    continue;
                }
                *busy.entry(s.peer.id).or_default() += 1;
                self.in_flight.push(InFlight {
                    piece: piece.clone(),
                    peer: s.peer.id,
                    started: now,
                    last_progress: now,
                    got: 0,
                });
                out.push(Assignment {
                    peer: s.peer.id,
                    piece: piece.clone(),
                });
            }
        }
        out
    }

    /// `got` verified bytes of `a` arrived so far: it is not stalled.
    pub fn progress(&mut self, a: &Assignment, got: u64, now: Instant) {
        if let Some(f) = self.find(a) {
            f.last_progress = now;
            f.got = got;
        }
        self.proven.insert(a.peer);
    }

    /// Assignments with no byte for the stall timeout: the adapter stops them and reports
    /// [`Outcome::Stalled`].
    pub fn stalled(&self, now: Instant) -> Vec<Assignment> {
        self.in_flight
            .iter()
            .filter(|f| now.saturating_duration_since(f.last_progress) >= self.stall)
            .map(|f| Assignment {
                peer: f.peer,
                piece: f.piece.clone(),
            })
            .collect()
    }

    /// `a` ended: free its slot; on failure skip that peer for that piece (the next plan gives
    /// it to the next source). Returns a peer-wide backoff to record, if the failure earns one.
    pub fn ended(
        &mut self,
        a: &Assignment,
        outcome: Outcome,
        holding: Holding,
        now: Instant,
    ) -> Option<(Fault, Instant)> {
        let started = self.find(a).map(|f| f.started);
        self.in_flight
            .retain(|f| !(f.peer == a.peer && f.piece == a.piece));
        let key = (a.peer, a.piece.clone());
        match outcome {
            Outcome::Done { got } if got > 0 => {
                self.proven.insert(a.peer);
                // A few chunks say nothing of a peer's rate (a round trip dominates).
                if let Some(t) = started.filter(|_| got >= RATE_SAMPLE) {
                    let secs = now.saturating_duration_since(t).as_secs_f64().max(1e-3);
                    self.rates.insert(a.peer, got as f64 / secs);
                }
                self.empty_since.remove(&key);
                None
            }
            Outcome::Done { .. } => {
                if holding == Holding::Fetching && self.proven.contains(&a.peer) {
                    // A peer that delivered before, still fetching this piece itself: wait a
                    // moment for it rather than pull the piece over a longer link, for up to
                    // the stall timeout (it could be waiting for us).
                    let first = *self.empty_since.entry(key.clone()).or_insert(now);
                    if now.saturating_duration_since(first) < self.stall {
                        self.wait.insert(a.piece.clone(), now + WAIT_RETRY);
                        return None;
                    }
                    self.empty_since.remove(&key);
                }
                self.skip.push((a.peer, a.piece.clone(), now + self.stall));
                None
            }
            Outcome::Preempted => None,
            Outcome::Stalled | Outcome::Failed | Outcome::Slow => {
                self.skip
                    .push((a.peer, a.piece.clone(), now + 2 * self.stall));
                None
            }
            Outcome::BadData | Outcome::Unreachable => {
                let fault = if outcome == Outcome::BadData {
                    Fault::BadData
                } else {
                    Fault::Unreachable
                };
                let until = backoff(fault, now);
                self.skip.push((a.peer, a.piece.clone(), until));
                Some((fault, until))
            }
        }
    }

    /// Transfers to stop because a clearly nearer source (half the round trip or less, and
    /// 5 ms nearer) that keeps up ([`Swarm::keeps_up`]) can now send their piece and is not
    /// skipped for it: it appears when a
    /// near peer starts holding the release after a fetch began with a farther one, or when
    /// round trips measured under load settle. The adapter stops them and reports
    /// [`Outcome::Preempted`]; the next plan gives the rest of the piece to the nearer one.
    pub fn preempt(&self, sources: &[Source], now: Instant) -> Vec<Assignment> {
        self.in_flight
            .iter()
            .filter(|f| {
                let Some(current) = sources.iter().find(|s| s.peer.id == f.peer) else {
                    return false;
                };
                sources.iter().any(|s| {
                    s.peer.id != f.peer
                        && !s.origin
                        && self.keeps_up(s, now)
                        && clearly_nearer(s, current)
                        && s.holds.offer(&f.piece).is_some()
                        && !self.skipped(&s.peer.id, &f.piece)
                })
            })
            .map(|f| Assignment {
                peer: f.peer,
                piece: f.piece.clone(),
            })
            .collect()
    }

    /// Transfers from a peer holding the whole release to hand to a much faster one: running
    /// for at least [`SLOW_AFTER`] at under 1/[`SLOW_FACTOR`] of the rate of a peer that also
    /// holds it all, is free (a slot open), no farther (same band or nearer) and not skipped
    /// for the piece. A site that is
    /// slow, not stopped, so delays those behind it by about a stall timeout, not by its
    /// slowness. The adapter stops them and reports [`Outcome::Slow`] (the slow peer is then
    /// skipped for that piece); the next plan gives the rest to the faster one.
    pub fn slow(&self, sources: &[Source], now: Instant) -> Vec<Assignment> {
        let mut busy: HashMap<EndpointId, usize> = HashMap::new();
        for f in &self.in_flight {
            *busy.entry(f.peer).or_default() += 1;
        }
        let mut out = Vec::new();
        for f in &self.in_flight {
            let elapsed = now.saturating_duration_since(f.started);
            let Some(current) = sources.iter().find(|s| s.peer.id == f.peer) else {
                continue;
            };
            // A peer still fetching sends as fast as it receives: its pace is its upstream's,
            // followed by growth reports, not a fault of its own.
            if elapsed < self.stall.min(SLOW_AFTER) || !matches!(current.holds, Holds::All) {
                continue;
            }
            let rate = f.got as f64 / elapsed.as_secs_f64();
            let faster = sources.iter().find(|s| {
                s.peer.id != f.peer
                    && !s.origin
                    && matches!(s.holds, Holds::All)
                    && busy.get(&s.peer.id).copied().unwrap_or(0) < self.slots
                    && (same_band(current, s) || clearly_nearer(s, current))
                    && self
                        .rates
                        .get(&s.peer.id)
                        .is_some_and(|r| *r >= SLOW_FACTOR * rate.max(1.0))
                    && s.holds.offer(&f.piece).is_some()
                    && !self.skipped(&s.peer.id, &f.piece)
            });
            if let Some(faster) = faster {
                *busy.entry(faster.peer.id).or_default() += 1;
                out.push(Assignment {
                    peer: f.peer,
                    piece: f.piece.clone(),
                });
            }
        }
        out
    }

    /// Whether `s` is worth leaving a running transfer for: it holds the whole release, or
    /// it is still fetching and its copy grew within the stall timeout. A still-fetching peer
    /// that stopped growing (starved itself) would only send a few chunks and send the
    /// transfer back, again and again.
    fn keeps_up(&self, s: &Source, now: Instant) -> bool {
        matches!(s.holds, Holds::All)
            || s.grew_at
                .is_some_and(|t| now.saturating_duration_since(t) < self.stall)
    }

    fn skipped(&self, peer: &EndpointId, p: &Piece) -> bool {
        self.skip
            .iter()
            .any(|(id, q, _)| id == peer && q.overlaps(p))
    }

    fn find(&mut self, a: &Assignment) -> Option<&mut InFlight> {
        self.in_flight
            .iter_mut()
            .find(|f| f.peer == a.peer && f.piece == a.piece)
    }
}

/// Whether `s` is about as near as `nearest` (the nearest holder of a piece): at most twice
/// its round trip plus 5 ms. Pieces spread over peers of one band only; a farther peer gets a
/// piece when the nearer ones failed it (skipped), not merely because they are busy, so a
/// branch site keeps pulling over its short link instead of splitting bytes with a long one.
/// Unmeasured peers form the last band.
fn same_band(nearest: &Source, s: &Source) -> bool {
    match (nearest.peer.rtt, s.peer.rtt) {
        (Some(n), Some(r)) => r <= n * 2 + Duration::from_millis(5),
        (None, None) => true,
        (Some(_), None) => false,
        (None, Some(_)) => true,
    }
}

/// Whether `a` is clearly nearer than `b`: half its round trip or less, and at least 5 ms
/// nearer (both measured).
fn clearly_nearer(a: &Source, b: &Source) -> bool {
    match (a.peer.rtt, b.peer.rtt) {
        (Some(a), Some(b)) => a * 2 <= b && a + Duration::from_millis(5) <= b,
        _ => false,
    }
}

/// The pieces of `file` with something missing, in order; a piece is the missing part only
/// (a resumed file asks for no byte it holds), cut at piece boundaries.
pub(crate) fn pieces(file: &FileNeed) -> Vec<Piece> {
    let total = chunks_of(file.size);
    let mut out: Vec<Piece> = Vec::new();
    for r in &file.missing {
        let mut start = r.start.min(total);
        let end = r.end.min(total);
        while start < end {
            let boundary = (start / PIECE_CHUNKS + 1) * PIECE_CHUNKS;
            let stop = boundary.min(end);
            out.push(Piece {
                file: file.hash,
                chunks: start..stop,
            });
            start = stop;
        }
    }
    // An empty file still needs its (empty) verified size: one request for chunk 0.
    if file.size == 0 && !file.missing.is_empty() {
        out.push(Piece {
            file: file.hash,
            chunks: 0..1,
        });
    }
    out
}

/// Chunks in a file of `size` bytes.
pub(crate) fn chunks_of(size: u64) -> u64 {
    size.div_ceil(CHUNK)
}
