//! Mutable DHCP state owned by the listener task: leases plus short-lived
//! bookkeeping (pending offers, declined addresses) that is not persisted.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::lease::LeaseStore;
use super::mac::MacAddr;

/// How long an offered address stays reserved for the client it was offered to.
pub const OFFER_HOLD_SECS: u64 = 60;

#[derive(Debug, Default)]
pub struct State {
    pub leases: LeaseStore,
    /// MAC → (offered address, reserved until).
    pub offers: HashMap<MacAddr, (Ipv4Addr, u64)>,
    /// Address → not to be handed out before.
    pub declined: HashMap<Ipv4Addr, u64>,
}

impl State {
    pub fn new(leases: LeaseStore) -> Self {
        Self {
            leases,
            ..Self::default()
        }
    }

    /// Drop stale offers and declines; keeps the maps small.
    pub fn prune(&mut self, now: u64) {
        self.offers.retain(|_, (_, until)| *until > now);
        self.declined.retain(|_, until| *until > now);
    }
}

/// Unix seconds for a `SystemTime` (0 before 1970).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
