//! Tests of the fleet's decisions ([`super::decide`]): offers, source choice, failover and
//! backoff, each rule a table or a short scenario with time passed in.

mod failover;
mod follow;
mod left_behind;
mod offer;
mod pieces;
mod policy;
mod probe;
mod redial;
mod sources;
mod swarm;

use std::time::{Duration, Instant};

use iroh::EndpointId;
use netboot_proto::{fleet::Holding, ReleaseId};

use super::decide::{Attempt, Candidate, Ended, PeerFacts};

pub(super) fn peer(n: u8) -> EndpointId {
    iroh::SecretKey::from_bytes(&[n; 32]).public()
}

pub(super) fn release(n: u8) -> ReleaseId {
    ReleaseId(blake3::hash(&[n]))
}

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Peer `n` holding the release as `holding`, `rtt` ms away (None: not measured).
pub(super) fn view(n: u8, rtt: Option<u64>, holding: Option<Holding>) -> PeerFacts {
    PeerFacts {
        id: peer(n),
        label: format!("p{n}"),
        rtt: rtt.map(ms),
        holding,
        avoid_until: None,
    }
}

pub(super) fn candidate(n: u8, rtt: Option<u64>, holding: Holding) -> Candidate {
    Candidate {
        id: peer(n),
        label: format!("p{n}"),
        holding,
        rtt: rtt.map(ms),
    }
}

pub(super) fn labels(list: &[Candidate]) -> Vec<&str> {
    list.iter().map(|c| c.label.as_str()).collect()
}

pub(super) fn t0() -> Instant {
    Instant::now()
}

/// A request of a file that ended as `ended` having brought `got` bytes.
pub(super) fn attempt(ended: Ended, got: u64) -> Attempt {
    Attempt {
        ended,
        got,
        had_all: false,
    }
}
