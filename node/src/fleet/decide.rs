//! The fleet's decisions, pure: what to do with an offered signed document, which peer to ask
//! next for a file, and when to leave a peer alone and for how long.
//!
//! Nothing here does I/O or reads the clock: the caller gathers the facts (what the store
//! holds, what is pending, what each peer holds and how near it is) and the time, and carries
//! out the decision. The offer rules only look at a document's id, version and admission
//! verdict, so any signed, versioned document the fleet carries (releases today) goes the
//! same way.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use iroh::EndpointId;
use netboot_proto::{fleet::Holding, FileEntry, Refusal, ReleaseId};

/// How long a peer that sent data failing BLAKE3 verification is avoided.
pub(crate) const BAD_DATA_BACKOFF: Duration = Duration::from_secs(600);
/// How long a peer whose data connection failed is skipped.
pub(crate) const UNREACHABLE_BACKOFF: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Offers

/// What this node knows, at the moment an offer arrives, about the document offered.
#[derive(Debug, Clone)]
pub(crate) struct OfferFacts {
    pub id: ReleaseId,
    pub version: u64,
    /// The id of the document of this name and version committed here, if any.
    pub committed: Option<ReleaseId>,
    /// The document of this name being fetched here: (id, version).
    pub pending: Option<(ReleaseId, u64)>,
    /// Passed on before without fetching.
    pub relayed: bool,
    /// Refused before, and why.
    pub refused: Option<String>,
    /// The admission rules' verdict (trust, expiry, no rollback).
    pub admission: Result<(), Refusal>,
    /// Whether this site's fetch policy covers the document's name.
    pub wanted: bool,
}

/// What to do with an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OfferDecision {
    /// Committed here: the sender is one more holder.
    AlreadyHave,
    /// Being fetched here: the sender is one more source.
    AnotherSource,
    /// Passed on before without fetching: nothing more to do.
    AlreadyRelayed,
    /// Refused before; answered with the remembered reason, not logged again.
    StillRefused(String),
    /// Fails admission: refuse, remember, never pass on. `quiet` for the ordinary case of an
    /// older version arriving late (not a sign of an attack).
    Refuse { reason: Refusal, quiet: bool },
    /// A different document of the same version, or a newer version, is being fetched.
    Busy(Busy),
    /// Admitted, but not in this site's fetch policy: record the holder, pass it on.
    Relay,
    /// Admitted and wanted: record the holder, make it pending, fetch it, pass it on.
    Fetch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// Same version, other content.
    Conflicting,
    /// This version (or newer) is being fetched already.
    Newer { pending: u64 },
}

impl OfferDecision {
    /// Whether the sender's holding is worth recording (it is a source of something we want
    /// or pass on).
    pub fn records_holder(&self) -> bool {
        matches!(
            self,
            Self::AlreadyHave | Self::AnotherSource | Self::Relay | Self::Fetch
        )
    }
}

/// The offer rules, in order: what is held or pending wins over memory, memory over a fresh
/// check, a fresh check over the fetch policy.
pub(crate) fn offer(f: &OfferFacts) -> OfferDecision {
    if f.committed == Some(f.id) {
        return OfferDecision::AlreadyHave;
    }
    if f.pending.is_some_and(|(id, _)| id == f.id) {
        return OfferDecision::AnotherSource;
    }
    if f.relayed {
        return OfferDecision::AlreadyRelayed;
    }
    if let Some(reason) = &f.refused {
        return OfferDecision::StillRefused(reason.clone());
    }
    if let Err(reason) = &f.admission {
        let quiet = matches!(reason, Refusal::NotNewer { .. });
        return OfferDecision::Refuse {
            reason: reason.clone(),
            quiet,
        };
    }
    if let Some((_, pending)) = f.pending {
        if pending == f.version {
            return OfferDecision::Busy(Busy::Conflicting);
        }
        if pending > f.version {
            return OfferDecision::Busy(Busy::Newer { pending });
        }
    }
    if !f.wanted {
        return OfferDecision::Relay;
    }
    OfferDecision::Fetch
}

/// A bounded memory of document ids (refused or relayed), so a repeated offer is answered
/// quietly and a peer inventing endless distinct forgeries cannot grow memory.
#[derive(Debug)]
pub(crate) struct Remembered<V> {
    limit: usize,
    map: HashMap<ReleaseId, V>,
}

impl<V> Remembered<V> {
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            map: HashMap::new(),
        }
    }

    pub fn get(&self, id: &ReleaseId) -> Option<&V> {
        self.map.get(id)
    }

    /// Takes out every entry `take` picks (a reload that changes what they mean).
    pub fn take_where(&mut self, mut take: impl FnMut(&V) -> bool) -> Vec<V> {
        let ids: Vec<ReleaseId> = self
            .map
            .iter()
            .filter(|(_, v)| take(v))
            .map(|(id, _)| *id)
            .collect();
        ids.iter().filter_map(|id| self.map.remove(id)).collect()
    }

    pub fn insert(&mut self, id: ReleaseId, v: V) {
        // Forgetting everything at once is crude but bounded; a forgotten id is checked again
        // in full, so nothing unsafe follows, only one more log line.
        if self.map.len() >= self.limit && !self.map.contains_key(&id) {
            self.map.clear();
        }
        self.map.insert(id, v);
    }
}

// ---------------------------------------------------------------------------------------
// Sources

/// Files of one release fetched side by side ([`files_to_start`]). A file's fetch has round
/// trips of its own that move no bytes (asking each source what it holds, the request, the
/// last chunk group's verification, the store's check that it is complete): with one file at a
/// time a release of many small files spends most of its time in them. Each file may still
/// come as several pieces in flight ([`super::pieces`]), so the streams to one peer are at
/// most this many times [`super::pieces::MAX_STREAMS_PER_FILE`], all under the connection's
/// send window (`transport.rs`).
pub(crate) const FILES_IN_FLIGHT: usize = 3;

/// Of a release's missing files, those to start now, given the ones already being fetched
/// (`in_flight`): every file a client is waiting for (read-through) at once, even beyond
/// `max`, so that a client never waits behind other files; then the signed order, up to `max`
/// in flight.
pub(crate) fn files_to_start<'a>(
    missing: &'a [FileEntry],
    in_flight: &[blake3::Hash],
    wanted: &[blake3::Hash],
    max: usize,
) -> Vec<&'a FileEntry> {
    // Two paths of a release may have the same content: one fetch serves both.
    let mut seen: HashSet<blake3::Hash> = in_flight.iter().copied().collect();
    let idle: Vec<&FileEntry> = missing.iter().filter(|f| seen.insert(f.hash)).collect();
    let (mut start, rest): (Vec<&FileEntry>, Vec<&FileEntry>) =
        idle.into_iter().partition(|f| wanted.contains(&f.hash));
    // At least one: a release must never be left with missing files and none running.
    let room = max.max(1).saturating_sub(in_flight.len() + start.len());
    start.extend(rest.into_iter().take(room));
    start
}

/// One peer as the source choice sees it.
#[derive(Debug, Clone)]
pub(crate) struct PeerFacts {
    pub id: EndpointId,
    pub label: String,
    pub rtt: Option<Duration>,
    /// What it holds of the release in question.
    pub holding: Option<Holding>,
    /// Left alone until then (bad data, unreachable).
    pub avoid_until: Option<Instant>,
}

/// A peer to fetch a release from, in the order to try.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub id: EndpointId,
    pub label: String,
    pub holding: Holding,
    pub rtt: Option<Duration>,
}

/// Peers that hold (or are fetching) the release, nearest first; peers being avoided are
/// left out. Peers without a measured round trip go last.
pub(crate) fn sources(peers: impl IntoIterator<Item = PeerFacts>, now: Instant) -> Vec<Candidate> {
    let mut list: Vec<Candidate> = peers
        .into_iter()
        .filter(|p| p.avoid_until.is_none_or(|t| t <= now))
        .filter_map(|p| {
            let holding = p.holding?;
            matches!(holding, Holding::Complete | Holding::Fetching).then_some(Candidate {
                id: p.id,
                label: p.label,
                holding,
                rtt: p.rtt,
            })
        })
        .collect();
    // Stable: equal round trips keep the caller's order.
    list.sort_by_key(|c| c.rtt.unwrap_or(Duration::MAX));
    list
}

/// A still-fetching peer as seen while following another: what it holds of the file and how
/// much its copy grew over the last stall timeout (chunks; `None`: not watched that long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CopySeen {
    pub holds: u64,
    pub grew: Option<u64>,
}

/// Below this growth over a stall timeout (2 MiB, in 1 KiB chunks) a copy is too young to
/// compare: every chain starts that way.
pub(crate) const LEFT_BEHIND_MIN_GROWTH: u64 = 2048;

/// A try of a complete copy ([`FileFetch::probe_target`]) that brought less than this
/// (512 KiB) says nothing about its rate.
pub(crate) const PROBE_MIN_BYTES: u64 = 512 * 1024;

/// Whether a try of a complete copy that brought `bytes` in `took` beats following a peer
/// from which this node received `received` bytes over the `stall` before the try began
/// (while the try runs it shares this node's link with the following): more than twice as
/// fast, the same margin as [`FileFetch::left_behind`]. What this node received, not how fast
/// the followed copy grew: a followed peer that completed meanwhile grows no more yet may
/// still send at this node's own link rate, and a node behind a slow link of its own gets no
/// more from anyone (it must not leave a good source for a worse one). The try's rate
/// includes its request's round trip and the connection's slow start, so it understates a
/// complete copy's rate: a copy merely as fast as following never wins.
pub(crate) fn probe_beats(bytes: u64, took: Duration, received: u64, stall: Duration) -> bool {
    if bytes < PROBE_MIN_BYTES {
        return false;
    }
    // bytes / took > 2 · received / stall, in integers.
    let lhs = u128::from(bytes) * stall.as_millis();
    let rhs = 2 * u128::from(received) * took.as_millis().max(1);
    lhs > rhs
}

/// Whether a round trip of `rtt` is clearly nearer than `than`: half of it or less, and at
/// least 5 ms less (so two peers on one LAN, 0.2 ms and 0.5 ms, count as equally near).
pub(crate) fn clearly_nearer(rtt: Duration, than: Duration) -> bool {
    rtt * 2 <= than && rtt + Duration::from_millis(5) <= than
}

/// Why a peer is left alone for a while, whatever the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Sent data failing BLAKE3 verification.
    BadData,
    /// Its blob provider could not be reached.
    Unreachable,
}

/// Until when a peer with `fault` is left alone.
pub(crate) fn backoff(fault: Fault, now: Instant) -> Instant {
    now + match fault {
        Fault::BadData => BAD_DATA_BACKOFF,
        Fault::Unreachable => UNREACHABLE_BACKOFF,
    }
}

/// How one request of a file from one peer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The peer sent all it had.
    Done,
    /// The data failed verification.
    BadData,
    /// No connection to its blob provider.
    Unreachable,
    /// No byte arrived within the stall timeout.
    Stalled,
    /// Left for a nearer peer.
    Preempted,
    /// Left for this peer: its copy grows much faster ([`FileFetch::left_behind`]), or a
    /// try of its complete copy came much faster than following ([`probe_beats`]).
    LeftBehind(EndpointId),
    /// Any other failure (connection lost, refused, busy).
    Failed,
}

/// One request of a file: how it ended and how much it brought.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt {
    pub ended: Ended,
    /// Verified bytes of the file that arrived during the request.
    pub got: u64,
    /// The file was complete here before the request.
    pub had_all: bool,
}

/// What the fetch of a file does after one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Start over from the nearest source; `progressed` if bytes arrived.
    Restart { progressed: bool },
    /// The nearest source is still receiving the file itself: wait for it.
    WaitForNearer,
    /// Try the next source in the list.
    Next,
}

/// The decision and what to carry out with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AfterAttempt {
    pub step: Step,
    /// A peer-wide backoff to record (it applies to every file).
    pub avoid: Option<(Fault, Instant)>,
}

/// The memory of one file's fetch: which peers delivered, which to skip for a while, which
/// still-fetching nearer peer is being waited for.
#[derive(Debug)]
pub(crate) struct FileFetch {
    stall: Duration,
    /// A nearer peer that is itself still fetching: when we first found it with nothing new
    /// for us. It is waited for until `stall` has passed.
    grace: HashMap<EndpointId, Instant>,
    /// Peers that just failed to deliver this file are skipped until then (unless no other
    /// peer is left), so a fetch does not flip back and forth.
    cooldown: HashMap<EndpointId, Instant>,
    /// Peers that delivered bytes of this file: only those are worth waiting for. Waiting for
    /// a peer that never delivered could be waiting for a peer that waits for us.
    proven: HashSet<EndpointId>,
    /// Peers left for one whose copy grew far faster ([`FileFetch::left_behind`]): no longer
    /// "nearer" sources to switch back to mid-transfer (they stay sources to fall back on).
    slow: HashSet<EndpointId>,
    /// Peers still fetching that had nothing for this node: stalled on this file without
    /// sending a byte, or, never having sent any, had nothing new when asked. No longer
    /// "nearer" sources to switch to mid-transfer (they stay sources to fall back on). A near
    /// peer that is behind this node (often one fetching from it) has nothing for it;
    /// switching to it again each time its cooldown ends costs a stall timeout, or restarts
    /// the transfer from the source left, every time. Those restarts once made a 5 Mbit/s
    /// site look to the origin as if it took more than it did (each new request fills the
    /// stream's window again), and the origin kept its only slot for it (the fed WAN test,
    /// in a loop). (A complete peer that stalled was a hiccup: it is switched back to once
    /// cooled down.)
    behind: HashSet<EndpointId>,
    /// The peer last left for (`Ended::LeftBehind`): tried first from then on, and while it
    /// sends, a peer still fetching is no nearer source to switch to.
    faster: Option<EndpointId>,
}

impl FileFetch {
    pub fn new(stall: Duration) -> Self {
        Self {
            stall,
            grace: HashMap::new(),
            cooldown: HashMap::new(),
            proven: HashSet::new(),
            slow: HashSet::new(),
            behind: HashSet::new(),
            faster: None,
        }
    }

    /// Whether `id` has delivered bytes of this file: only such a peer still fetching is
    /// worth waiting for.
    pub fn proven(&self, id: &EndpointId) -> bool {
        self.proven.contains(id)
    }

    /// Whether `id` failed to deliver this file a moment ago and is skipped for now.
    pub fn cooling(&self, id: &EndpointId, now: Instant) -> bool {
        self.cooldown.get(id).is_some_and(|t| *t > now)
    }

    /// The sources to try now, in order: those not cooling down; if none is left, all of
    /// them (a peer that stalled is better than none). The peer last left for (it proved
    /// much faster) comes first, however far: the nearest other source may be one as slow
    /// as the one just left, a site that was never compared (the origin's slow holder, when
    /// this node leaves the site that follows it for the origin). Peers left for being left
    /// behind come after the others, however near: once the faster peer completes it is no
    /// longer compared with them, and going back to the nearer slow one would hold this file
    /// to its rate again.
    pub fn order(&self, all: &[Candidate], now: Instant) -> Vec<Candidate> {
        let mut fresh: Vec<Candidate> = all
            .iter()
            .filter(|c| !self.cooling(&c.id, now))
            .cloned()
            .collect();
        if fresh.is_empty() {
            fresh = all.to_vec();
        }
        // Stable: nearness order within each group.
        fresh.sort_by_key(|c| {
            let rank = if Some(c.id) == self.faster { 0 } else { 1 };
            (rank, self.slow.contains(&c.id))
        });
        fresh
    }

    /// A source worth leaving a running transfer from `current` for: clearly nearer (half its
    /// round trip or less, and at least 5 ms nearer), not cooling down, and not one that was
    /// left as slow or found behind this node (`behind`). It appears when a near peer
    /// starts holding the release after this fetch began with a farther one. While `current`
    /// is the peer last left for, only a complete copy is: a nearer peer still fetching is
    /// not known to be any faster than the one just left.
    pub fn nearer_than<'a>(
        &self,
        current: &Candidate,
        all: &'a [Candidate],
        now: Instant,
    ) -> Option<&'a Candidate> {
        let current_rtt = current.rtt?;
        let proven_faster = self.faster == Some(current.id);
        all.iter()
            .filter(|c| {
                c.id != current.id
                    && !self.cooling(&c.id, now)
                    && !self.slow.contains(&c.id)
                    && !self.behind.contains(&c.id)
                    && (!proven_faster || c.holding != Holding::Fetching)
            })
            .find(|c| c.rtt.is_some_and(|r| clearly_nearer(r, current_rtt)))
    }

    /// A peer worth leaving `current`, a peer still fetching the file, for: another one still
    /// fetching (not cooling down) that is ahead of it and whose copy grew at least twice as
    /// much over the same stall timeout. The followed peer receives slowly (a throttled link,
    /// a busy site) while the other keeps the pace of the chain; staying would hold this node
    /// and every site following it to the slow one's rate. Peers whose copies grow alike
    /// (a healthy chain) are never left, and a complete copy is not compared (its owner's
    /// slot is the chain's upstream, not a faster path).
    pub fn left_behind<'a>(
        &self,
        current: (&Candidate, CopySeen),
        others: &'a [(Candidate, CopySeen)],
        now: Instant,
    ) -> Option<&'a Candidate> {
        let (current, seen) = current;
        if current.holding != Holding::Fetching {
            return None;
        }
        let grew = seen.grew?;
        others
            .iter()
            .filter(|(c, _)| {
                c.id != current.id && c.holding == Holding::Fetching && !self.cooling(&c.id, now)
            })
            .find(|(_, o)| {
                o.holds > seen.holds
                    && o.grew
                        .is_some_and(|g| g >= LEFT_BEHIND_MIN_GROWTH && grew.saturating_mul(2) < g)
            })
            .map(|(c, _)| c)
    }

    /// A complete copy to try while following `current`, a peer still fetching the file,
    /// whose copy has been watched for a whole stall timeout (`seen.grew` is known): the
    /// nearest complete source not cooling down and not left before, at most one try per
    /// stall timeout (`last`: when the previous try ended, so that what following delivered
    /// before the next one is measured without a try sharing the link). [`FileFetch::left_behind`]
    /// compares only copies that grow; a complete copy can only be measured by asking it.
    /// Without this, a site following a slow peer whose only faster alternative is already
    /// complete (its upstream finished, and lends a slot because its holder lags, gate.rs)
    /// keeps the slow peer's rate to the end. In a healthy chain the try is refused (the
    /// complete copy's slot is its chain successor's) or no faster than following
    /// ([`probe_beats`]), and the bytes it brings are bytes this node needed.
    pub fn probe_target<'a>(
        &self,
        current: (&Candidate, CopySeen),
        all: &'a [Candidate],
        last: Option<Instant>,
        now: Instant,
    ) -> Option<&'a Candidate> {
        let (current, seen) = current;
        if current.holding != Holding::Fetching || seen.grew.is_none() {
            return None;
        }
        if last.is_some_and(|t| now.saturating_duration_since(t) < self.stall) {
            return None;
        }
        all.iter().find(|c| {
            c.id != current.id
                && c.holding == Holding::Complete
                && !self.cooling(&c.id, now)
                && !self.slow.contains(&c.id)
        })
    }

    /// After one request of the file from `c`: what next, and whether to back off the peer.
    pub fn after(&mut self, c: &Candidate, a: Attempt, now: Instant) -> AfterAttempt {
        let progressed = a.got > 0;
        if progressed {
            self.grace.remove(&c.id);
            self.proven.insert(c.id);
        }
        let next = |step| AfterAttempt { step, avoid: None };
        match a.ended {
            Ended::Done if progressed || a.had_all => {
                return next(Step::Restart { progressed });
            }
            Ended::Preempted => return next(Step::Restart { progressed }),
            Ended::LeftBehind(faster) => {
                // Not straight back to it (it may be the nearest): the faster one first.
                self.cool(c.id, now + self.stall);
                self.slow.insert(c.id);
                self.faster = Some(faster);
                return next(Step::Restart { progressed });
            }
            Ended::BadData | Ended::Unreachable => {
                let fault = if a.ended == Ended::BadData {
                    Fault::BadData
                } else {
                    Fault::Unreachable
                };
                return AfterAttempt {
                    step: Step::Next,
                    avoid: Some((fault, backoff(fault, now))),
                };
            }
            Ended::Stalled => {
                self.cool(c.id, now + 2 * self.stall);
                if !progressed && c.holding == Holding::Fetching {
                    self.behind.insert(c.id);
                }
            }
            Ended::Done => {
                if c.holding == Holding::Fetching && !self.proven.contains(&c.id) {
                    self.behind.insert(c.id);
                }
            }
            Ended::Failed => {}
        }
        if progressed {
            // Start over from the nearest: it may have more by now.
            return next(Step::Restart { progressed });
        }
        if c.holding == Holding::Fetching && self.proven.contains(&c.id) {
            let first = *self.grace.entry(c.id).or_insert(now);
            if now.saturating_duration_since(first) < self.stall {
                // The nearest source is still receiving this file itself: give it time rather
                // than pull the bytes over a longer link.
                return next(Step::WaitForNearer);
            }
            self.grace.remove(&c.id);
        }
        self.cool(c.id, now + self.stall);
        next(Step::Next)
    }

    /// Never shortens a longer cooldown (a stall earns twice the stall timeout).
    fn cool(&mut self, id: EndpointId, until: Instant) {
        let t = self.cooldown.entry(id).or_insert(until);
        *t = (*t).max(until);
    }
}
