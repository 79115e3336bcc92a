//! The fleet's decisions, pure: what to do with an offered signed document, which peers hold
//! a release in the order to ask them, and when to leave a peer alone and for how long (which
//! pieces to ask of which peer is [`super::plan`]'s).
//!
//! Nothing here does I/O or reads the clock: the caller gathers the facts (what the store
//! holds, what is pending, what each peer holds and how near it is) and the time, and carries
//! out the decision. The offer rules only look at a document's id, version and admission
//! verdict, so any signed, versioned document the fleet carries (releases today) goes the
//! same way.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use iroh::EndpointId;
use netboot_proto::{fleet::Holding, Refusal, ReleaseId};

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
