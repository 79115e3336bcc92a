//! When to dial a configured peer whose control link is down.
//!
//! Every node dials its configured peers, so a fleet configured as a full mesh starts with
//! two handshakes per pair, all at once. On a loaded host (33 nodes on 2 cores in the scale
//! run) a handshake took longer than the 5 s connect timeout, and a node that redialled every
//! 2 s — with the previous dials still running — kept both cores busy with handshakes that
//! all timed out: no link ever came up. So: at most one dial per peer at a time; after a
//! failed dial, wait twice as long as after the one before (2 s up to [`MAX_WAIT`]); and of
//! two nodes that both dial each other, the one with the greater id lets the other go first
//! (it dials one period later), which halves the handshakes of a fleet coming up together.
//!
//! Pure: time is passed in; `links.rs` carries it out.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use iroh::EndpointId;

/// The wait after the first failed dial, and the delay of the greater id's first dial.
pub(crate) const FIRST_WAIT: Duration = Duration::from_secs(2);
/// The longest wait between two dials of an unreachable peer: a healed partition is found
/// within this.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Dialling {
    failures: u32,
    next_at: Instant,
    in_flight: bool,
}

/// The dials to peers that are down: which are due, which run.
#[derive(Debug)]
pub(crate) struct Redial {
    me: EndpointId,
    peers: HashMap<EndpointId, Dialling>,
}

impl Redial {
    pub fn new(me: EndpointId) -> Self {
        Redial {
            me,
            peers: HashMap::new(),
        }
    }

    /// Of the configured peers whose link is `down` now, those to dial now (each is then
    /// counted as running until [`Redial::ended`]). Peers not in `down` are forgotten: their
    /// link is up, or they are no longer configured.
    pub fn due(&mut self, down: &[EndpointId], now: Instant) -> Vec<EndpointId> {
        self.peers.retain(|id, d| d.in_flight || down.contains(id));
        let me = self.me;
        let mut out = Vec::new();
        for id in down {
            let d = self.peers.entry(*id).or_insert_with(|| Dialling {
                failures: 0,
                // The greater id lets the smaller dial first.
                next_at: if me > *id { now + FIRST_WAIT } else { now },
                in_flight: false,
            });
            if !d.in_flight && now >= d.next_at {
                d.in_flight = true;
                out.push(*id);
            }
        }
        out
    }

    /// A dial to `id` ended; `ok` if the link is up.
    pub fn ended(&mut self, id: EndpointId, ok: bool, now: Instant) {
        if ok {
            self.peers.remove(&id);
            return;
        }
        if let Some(d) = self.peers.get_mut(&id) {
            d.in_flight = false;
            d.failures = d.failures.saturating_add(1);
            d.next_at = now + wait_after(d.failures);
        }
    }
}

/// The wait before the next dial after `failures` failed ones in a row.
pub(crate) fn wait_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_WAIT.saturating_mul(1u32 << doublings).min(MAX_WAIT)
}
