//! Fetching one file from several peers that hold it complete, at once.
//!
//! One peer's uplink (or its upload limit) bounds a one-source fetch. When two or more
//! comparably near peers hold the release complete, the file's missing pieces
//! (`pieces.rs`) are shared out among them: each peer keeps up to `streams` pieces in
//! flight, and the next unassigned piece, in file order, goes to the next peer with a free
//! stream (round-robin in nearness order). A faster peer frees its streams sooner and so
//! takes more pieces, without any rate being measured. File order keeps what this node holds
//! a growing prefix with holes only among the pieces in flight, which is what a peer
//! following this node can use (it is answered up to the first hole).
//!
//! Who joins: complete holders, nearest first, at most [`MAX_PEERS`] at a time; a peer
//! clearly farther than the nearest one still in the swarm ([`decide::clearly_nearer`]) waits
//! outside, so the origin (usually far) only joins once the near peers have left. Peers
//! without a measured round trip come last.
//!
//! A peer leaves the swarm for this file when it stalls (no progress for the stall timeout),
//! refuses (its upload slots are taken: the slot is someone else's), fails, or sends data that
//! fails verification; its pieces in flight go back into the queue, in file order, for the
//! others. How it left ([`Ended`]) is for [`decide::FileFetch::after`] to turn into a
//! cooldown or a peer-wide backoff. When every peer has left, the swarm is over and the
//! one-peer fetch takes what is still missing (it reads that from the store, so nothing is
//! fetched twice).
//!
//! End game: once no piece waits, an idle peer also asks for the oldest piece in flight from a
//! peer that has delivered nothing for half the stall timeout; whichever copy ends first counts,
//! and the other request is dropped ([`Swarm::done`]). A peer that leaves has all its requests
//! dropped too (`fetch.rs`): its pieces are asked of others, and a stalled peer that wakes up
//! would otherwise send them a second time.
//!
//! Pure: `fetch.rs` carries the decisions out and passes the time in.

use std::{
    collections::VecDeque,
    ops::Range,
    time::{Duration, Instant},
};

use iroh::EndpointId;
use netboot_proto::fleet::Holding;

use super::decide::{self, Candidate, Ended};

/// The most peers a file is fetched from at once.
pub(crate) const MAX_PEERS: usize = 4;

/// The peers a swarm starts with, in the order they would join: the complete holders among
/// `candidates` (which come nearest first), of which [`Swarm::active`] picks who works now.
pub(crate) fn members(candidates: &[Candidate]) -> Vec<Candidate> {
    candidates
        .iter()
        .filter(|c| c.holding == Holding::Complete)
        .cloned()
        .collect()
}

/// Of peers nearest first (their round trips), the positions of those that work now: not
/// clearly farther than the first, at most [`MAX_PEERS`].
fn working(rtts: &[Option<Duration>]) -> Vec<usize> {
    let nearest = rtts.first().copied().flatten();
    (0..rtts.len())
        .filter(|&i| match (nearest, rtts[i]) {
            (Some(n), Some(r)) => !decide::clearly_nearer(n, r),
            _ => true,
        })
        .take(MAX_PEERS)
        .collect()
}

/// How many of `members` (nearest first) a swarm would start with: a swarm is worth it from
/// two.
pub(crate) fn starting(members: &[Candidate]) -> usize {
    let rtts: Vec<Option<Duration>> = members.iter().map(|c| c.rtt).collect();
    working(&rtts).len()
}

/// One piece of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Queued,
    /// In flight from the member at index `by`; in the end game also from `also`.
    Running {
        by: usize,
        also: Option<usize>,
    },
    Done,
}

#[derive(Debug)]
struct Member {
    c: Candidate,
    running: usize,
    /// When one of its pieces last moved (or it was last given one, if none is running).
    last_progress: Instant,
    /// Pieces it completed.
    done: usize,
    left: Option<Ended>,
}

/// A piece to ask for: its index, the peer and the chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assign {
    pub piece: usize,
    pub peer: EndpointId,
    pub chunks: Vec<Range<u64>>,
}

/// A peer that left the swarm, how, and the pieces of it that went back to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Left {
    pub peer: EndpointId,
    pub label: String,
    pub ended: Ended,
    pub requeued: Vec<usize>,
}

/// How a request of a piece failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Refused before any byte ("rate limited": its upload slots are taken).
    Refused,
    /// The data failed BLAKE3 verification.
    BadData,
    /// Any other failure (connection lost, ended short).
    Failed,
}

/// One file's swarm: its pieces and the peers sharing them.
#[derive(Debug)]
pub(crate) struct Swarm {
    stall: Duration,
    streams: usize,
    pieces: Vec<(Vec<Range<u64>>, State)>,
    queue: VecDeque<usize>,
    members: Vec<Member>,
    /// The member index round-robin assignment starts from next.
    turn: usize,
}

impl Swarm {
    /// A swarm over `pieces` (file order) among `members` (nearest first), each with up to
    /// `streams` pieces in flight; a peer with nothing arriving for `stall` leaves.
    pub fn new(
        pieces: Vec<Vec<Range<u64>>>,
        members: Vec<Candidate>,
        streams: usize,
        stall: Duration,
        now: Instant,
    ) -> Self {
        Self {
            stall,
            streams: streams.max(1),
            queue: (0..pieces.len()).collect(),
            pieces: pieces.into_iter().map(|p| (p, State::Queued)).collect(),
            members: members
                .into_iter()
                .map(|c| Member {
                    c,
                    running: 0,
                    last_progress: now,
                    done: 0,
                    left: None,
                })
                .collect(),
            turn: 0,
        }
    }

    /// Indices of the members working now: not left, not clearly farther than the nearest
    /// one not left, at most [`MAX_PEERS`].
    fn active_indices(&self) -> Vec<usize> {
        let staying: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].left.is_none())
            .collect();
        let rtts: Vec<Option<Duration>> = staying.iter().map(|&i| self.members[i].c.rtt).collect();
        working(&rtts).into_iter().map(|k| staying[k]).collect()
    }

    /// The peers working now, nearest first.
    pub fn active(&self) -> Vec<&Candidate> {
        self.active_indices()
            .into_iter()
            .map(|i| &self.members[i].c)
            .collect()
    }

    /// The next piece to ask for and of whom, if a working peer has a free stream and a
    /// piece is waiting; call until `None` after every change.
    ///
    /// End game: once no piece is waiting, a peer with a free stream also takes the oldest
    /// piece in flight from a peer that has delivered nothing for half the stall timeout, so
    /// one slowing peer does not hold up the end of the file; whichever copy ends first counts.
    pub fn next(&mut self, now: Instant) -> Option<Assign> {
        let active = self.active_indices();
        // Round-robin: the first working member at or after `turn` with a free stream.
        let m = active
            .iter()
            .copied()
            .filter(|&i| i >= self.turn)
            .chain(active.iter().copied())
            .find(|&i| self.members[i].running < self.streams)?;
        let piece = match self.queue.pop_front() {
            Some(piece) => {
                self.pieces[piece].1 = State::Running { by: m, also: None };
                piece
            }
            None => {
                let piece = self.lagging(m, now)?;
                if let State::Running { by, .. } = self.pieces[piece].1 {
                    self.pieces[piece].1 = State::Running { by, also: Some(m) };
                }
                piece
            }
        };
        self.turn = m + 1;
        let member = &mut self.members[m];
        if member.running == 0 {
            member.last_progress = now;
        }
        member.running += 1;
        Some(Assign {
            piece,
            peer: member.c.id,
            chunks: self.pieces[piece].0.clone(),
        })
    }

    /// The oldest piece in flight, not yet doubled, from a peer other than `m` that has
    /// delivered nothing for half the stall timeout.
    fn lagging(&self, m: usize, now: Instant) -> Option<usize> {
        (0..self.pieces.len()).find(|&p| match self.pieces[p].1 {
            State::Running { by, also: None } => {
                by != m
                    && now.saturating_duration_since(self.members[by].last_progress)
                        >= self.stall / 2
            }
            _ => false,
        })
    }

    /// The member `peer` is running `piece` (none once it left, or the piece went to another
    /// peer or is done).
    fn owner(&self, peer: &EndpointId, piece: usize) -> Option<usize> {
        match self.pieces.get(piece)?.1 {
            State::Running { by, also } => [Some(by), also]
                .into_iter()
                .flatten()
                .find(|&m| self.members[m].c.id == *peer),
            _ => None,
        }
    }

    /// Bytes of `piece` arrived from `peer`.
    pub fn progress(&mut self, peer: &EndpointId, piece: usize, now: Instant) {
        if let Some(m) = self.owner(peer, piece) {
            self.members[m].last_progress = now;
        }
    }

    /// `peer` delivered all of `piece`. Returns the peer whose copy of the piece (end game)
    /// is now surplus: its request is to be dropped, as BitTorrent cancels the other requests
    /// of a block that arrived. Left running, it would go on taking this node's downlink (the
    /// scarce one on a slow site) for bytes held already, and its peer's stream is counted
    /// free again here.
    pub fn done(&mut self, peer: &EndpointId, piece: usize, now: Instant) -> Option<EndpointId> {
        let m = self.owner(peer, piece)?;
        let mut surplus = None;
        if let State::Running { by, also } = self.pieces[piece].1 {
            for x in [Some(by), also].into_iter().flatten() {
                let member = &mut self.members[x];
                member.running = member.running.saturating_sub(1);
                if x != m {
                    surplus = Some(member.c.id);
                }
            }
        }
        let member = &mut self.members[m];
        member.done += 1;
        member.last_progress = now;
        self.pieces[piece].1 = State::Done;
        surplus
    }

    /// A request of `piece` from `peer` failed: the peer leaves, its pieces go back.
    pub fn failed(&mut self, peer: &EndpointId, piece: usize, how: Failure) -> Option<Left> {
        let m = self.owner(peer, piece)?;
        let ended = match how {
            Failure::Refused | Failure::Failed => Ended::Failed,
            Failure::BadData => Ended::BadData,
        };
        Some(self.leave(m, ended))
    }

    /// `peer` could not be reached at all: it leaves before being given anything (or with
    /// what it was given going back).
    pub fn unreachable(&mut self, peer: &EndpointId) -> Option<Left> {
        let m = self
            .members
            .iter()
            .position(|x| x.c.id == *peer && x.left.is_none())?;
        Some(self.leave(m, Ended::Unreachable))
    }

    /// The clock moved: every working peer with pieces in flight and nothing arriving for
    /// the stall timeout leaves.
    pub fn tick(&mut self, now: Instant) -> Vec<Left> {
        let stalled: Vec<usize> = (0..self.members.len())
            .filter(|&m| {
                let x = &self.members[m];
                x.left.is_none()
                    && x.running > 0
                    && now.saturating_duration_since(x.last_progress) >= self.stall
            })
            .collect();
        stalled
            .into_iter()
            .map(|m| self.leave(m, Ended::Stalled))
            .collect()
    }

    fn leave(&mut self, m: usize, ended: Ended) -> Left {
        let mut requeued = Vec::new();
        for p in 0..self.pieces.len() {
            match self.pieces[p].1 {
                // A doubled piece stays with its other peer.
                State::Running { by, also: Some(x) } if by == m || x == m => {
                    let by = if by == m { x } else { by };
                    self.pieces[p].1 = State::Running { by, also: None };
                }
                State::Running { by, also: None } if by == m => requeued.push(p),
                _ => {}
            }
        }
        // Back into the queue in file order (ahead of the pieces never asked for), so the
        // held prefix keeps growing.
        for &p in &requeued {
            self.pieces[p].1 = State::Queued;
            self.queue.push_back(p);
        }
        self.queue.make_contiguous().sort_unstable();
        let member = &mut self.members[m];
        member.running = 0;
        member.left = Some(ended);
        Left {
            peer: member.c.id,
            label: member.c.label.clone(),
            ended,
            requeued,
        }
    }

    /// Every piece is done.
    pub fn finished(&self) -> bool {
        self.pieces.iter().all(|p| p.1 == State::Done)
    }

    /// Every peer has left with pieces still to fetch: the one-peer fetch takes over.
    pub fn abandoned(&self) -> bool {
        !self.finished() && self.members.iter().all(|m| m.left.is_some())
    }

    /// Pieces each member completed, nearest first (for the log and the tests).
    pub fn done_by(&self) -> Vec<(&str, usize)> {
        self.members
            .iter()
            .map(|m| (m.c.label.as_str(), m.done))
            .collect()
    }
}
