//! Following a peer that is still fetching a file: what to ask of it, and when.
//!
//! iroh-blobs answers a request with what the peer holds and ends it there; it does not wait
//! for more. A follower that only re-asks once a request has ended leaves the link idle for a
//! round trip each time, and since the peer receives at the same link rate that gap is never
//! made up: the hop falls further behind with every round (docs/benchmarks.md, fleet: 8–13 s
//! per hop at 25 Mbit/s). So the follower watches the peer's copy instead (iroh-blobs'
//! observe: the peer pushes every change of its verified ranges) and asks for what landed
//! there as it lands, keeping a second request queued behind the running one so the stream
//! never runs dry while the peer has something new. Asking for exactly the ranges the peer
//! reports (not "from here to the end") also means a hole in the peer's copy — a piece still
//! on its way to it — hides nothing behind it.
//!
//! This module is the rule, pure: [`Follow`] holds what the peer reported, what this node
//! still misses and what is asked, and says what to ask next. `fetch.rs` carries it out.
//! Units are BLAKE3 chunks (1 KiB) within the file.

use std::ops::Range;

use bao_tree::{ChunkNum, ChunkRanges};

/// Requests in flight to the followed peer: the running one and one queued behind it.
pub(crate) const MAX_ASKS: usize = 2;
/// While one request runs, the next is asked only once this much (256 KiB) is there to ask
/// for (or the rest of the file is): a request per 16 KiB chunk group the peer reports would
/// cost more than it saves.
pub(crate) const MIN_QUEUED_ASK: u64 = 256;

/// What a peer holds of one file, kept from its observe reports (also for peers watched but
/// not followed, decide.rs `FileFetch::left_behind`).
#[derive(Debug, Clone)]
pub(crate) struct PeerCopy {
    total: u64,
    held: ChunkRanges,
}

impl PeerCopy {
    /// A file of `total` chunks, nothing reported yet.
    pub fn new(total: u64) -> Self {
        PeerCopy {
            total,
            held: ChunkRanges::empty(),
        }
    }

    /// The peer reported a change of what it holds: iroh-blobs' observe sends the whole set
    /// first, then each change as the symmetric difference from the last.
    pub fn changed(&mut self, change: &ChunkRanges) {
        let file = ChunkRanges::from(..ChunkNum(self.total));
        self.held = &self.held ^ &(change & &file);
    }

    /// Chunks of the file the peer holds.
    pub fn holds(&self) -> u64 {
        ranges(&self.held).iter().map(|r| r.end - r.start).sum()
    }
}

/// One followed file.
#[derive(Debug)]
pub(crate) struct Follow {
    /// Chunks in the file.
    total: u64,
    /// What the peer last reported holding.
    peer: PeerCopy,
    /// What this node misses, as of its last look at its own store.
    missing: ChunkRanges,
    /// Requests asked and not yet ended, by id.
    asked: Vec<(u64, ChunkRanges)>,
    next_id: u64,
}

/// A request to send: its id (for [`Follow::ended`]) and the chunks it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ask {
    pub id: u64,
    pub chunks: Vec<Range<u64>>,
}

impl Follow {
    /// A file of `total` chunks of which `missing` are not held here.
    pub fn new(total: u64, missing: &[Range<u64>]) -> Self {
        let mut f = Follow {
            total,
            peer: PeerCopy::new(total),
            missing: ChunkRanges::empty(),
            asked: Vec::new(),
            next_id: 0,
        };
        f.missing_now(missing);
        f
    }

    /// The peer reported a change of what it holds ([`PeerCopy::changed`]).
    pub fn peer_changed(&mut self, change: &ChunkRanges) {
        self.peer.changed(change);
    }

    /// What this node misses now (read from its store after a request ended).
    pub fn missing_now(&mut self, missing: &[Range<u64>]) {
        let mut set = ChunkRanges::empty();
        for r in missing {
            set |= ChunkRanges::from(ChunkNum(r.start)..ChunkNum(r.end));
        }
        self.missing = &set & &self.file();
    }

    /// A request ended (done, or short): its chunks are no longer counted as asked. What it
    /// did not bring is still in `missing` at the next [`Follow::missing_now`] and is asked
    /// again.
    pub fn ended(&mut self, id: u64) {
        self.asked.retain(|(i, _)| *i != id);
    }

    /// Nothing is missing here any more.
    pub fn complete(&self) -> bool {
        self.missing.is_empty()
    }

    /// The peer holds nothing this node misses (asked or not).
    pub fn peer_has_nothing_new(&self) -> bool {
        (&self.peer.held & &self.missing).is_empty()
    }

    /// Chunks of the file the peer holds.
    pub fn peer_holds(&self) -> u64 {
        self.peer.holds()
    }

    /// Requests running.
    pub fn running(&self) -> usize {
        self.asked.len()
    }

    /// The next request to send, if one is due: what the peer holds that is missing here and
    /// not asked yet, when fewer than [`MAX_ASKS`] run, and — while one runs — only once
    /// there is [`MIN_QUEUED_ASK`] of it or it is the rest of the file.
    pub fn next_ask(&mut self) -> Option<Ask> {
        if self.asked.len() >= MAX_ASKS {
            return None;
        }
        let mut want = &self.peer.held & &self.missing;
        for (_, a) in &self.asked {
            want = &want - a;
        }
        let want = ranges(&want);
        let size: u64 = want.iter().map(|r| r.end - r.start).sum();
        if size == 0 {
            return None;
        }
        let reaches_end = want.last().is_some_and(|r| r.end >= self.total);
        if !self.asked.is_empty() && size < MIN_QUEUED_ASK && !reaches_end {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut set = ChunkRanges::empty();
        for r in &want {
            set |= ChunkRanges::from(ChunkNum(r.start)..ChunkNum(r.end));
        }
        self.asked.push((id, set));
        Some(Ask { id, chunks: want })
    }

    fn file(&self) -> ChunkRanges {
        ChunkRanges::from(..ChunkNum(self.total))
    }
}

/// A bounded chunk set as plain ranges.
fn ranges(set: &ChunkRanges) -> Vec<Range<u64>> {
    set.boundaries()
        .chunks(2)
        .filter_map(|b| {
            let end = b.get(1)?;
            (b[0].0 < end.0).then_some(b[0].0..end.0)
        })
        .collect()
}
