//! Mutable DHCP state owned by the listener task: leases plus short-lived
//! bookkeeping (pending offers, declined addresses) that is not persisted.
//!
//! Every change goes through a method here, which keeps the indexes (offers by address,
//! expiry queues, the free-address index) in step, so that neither a choice nor a prune
//! ever walks the pool or all pending offers.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::config::PoolConfig;
use super::free::FreeIndex;
use super::lease::{LeaseError, LeaseStore};
use super::mac::MacAddr;

/// How long an offered address stays reserved for the client it was offered to.
pub const OFFER_HOLD_SECS: u64 = 60;

#[derive(Debug, Default)]
pub struct State {
    leases: LeaseStore,
    /// MAC → (offered address, reserved until).
    offers: HashMap<MacAddr, (Ipv4Addr, u64)>,
    /// Offered address → MAC.
    offered: HashMap<Ipv4Addr, MacAddr>,
    offer_expiry: BTreeSet<(u64, MacAddr)>,
    /// Address → not to be handed out before.
    declined: HashMap<Ipv4Addr, u64>,
    decline_expiry: BTreeSet<(u64, Ipv4Addr)>,
    free: FreeIndex,
}

impl State {
    pub fn new(leases: LeaseStore) -> Self {
        let mut state = Self {
            leases,
            ..Self::default()
        };
        let ips: Vec<Ipv4Addr> = state.leases.iter().map(|l| l.ip).collect();
        for ip in ips {
            state.refresh(ip);
        }
        state
    }

    pub fn leases(&self) -> &LeaseStore {
        &self.leases
    }

    /// The pending offer to `mac`, if any: (address, reserved until).
    pub fn offer_of(&self, mac: MacAddr) -> Option<(Ipv4Addr, u64)> {
        self.offers.get(&mac).copied()
    }

    /// Who `ip` is being offered to, and until when.
    pub fn offered_to(&self, ip: Ipv4Addr) -> Option<(MacAddr, u64)> {
        let mac = *self.offered.get(&ip)?;
        self.offers.get(&mac).map(|(_, until)| (mac, *until))
    }

    pub fn declined_until(&self, ip: Ipv4Addr) -> Option<u64> {
        self.declined.get(&ip).copied()
    }

    pub fn offer(&mut self, mac: MacAddr, ip: Ipv4Addr, until: u64) {
        self.withdraw_offer(mac);
        self.offers.insert(mac, (ip, until));
        self.offered.insert(ip, mac);
        self.offer_expiry.insert((until, mac));
        self.refresh(ip);
    }

    pub fn withdraw_offer(&mut self, mac: MacAddr) {
        if let Some((ip, until)) = self.offers.remove(&mac) {
            self.offer_expiry.remove(&(until, mac));
            if self.offered.get(&ip) == Some(&mac) {
                self.offered.remove(&ip);
            }
            self.refresh(ip);
        }
    }

    /// Bind `ip` to `mac` until `expires`, dropping any other binding of either.
    pub fn bind(&mut self, mac: MacAddr, ip: Ipv4Addr, expires: u64) {
        let old = self.leases.by_mac(mac).map(|l| l.ip);
        self.leases.bind(mac, ip, expires);
        self.refresh(ip);
        if let Some(old) = old.filter(|o| *o != ip) {
            self.refresh(old);
        }
    }

    /// RELEASE: the lease ends now, its record stays.
    pub fn release(&mut self, ip: Ipv4Addr, now: u64) -> bool {
        let done = self.leases.expire(ip, now);
        self.refresh(ip);
        done
    }

    /// DECLINE: the address is in use by someone else; hold it back until `until`, and
    /// forget the declining client's lease on it if it had one.
    pub fn decline(&mut self, ip: Ipv4Addr, until: u64, forget_lease: bool) {
        if forget_lease {
            self.leases.remove(ip);
        }
        if let Some(old) = self.declined.insert(ip, until) {
            self.decline_expiry.remove(&(old, ip));
        }
        self.decline_expiry.insert((until, ip));
        self.refresh(ip);
    }

    /// Drop stale offers and declines: O(log n) per expired entry, nothing else walked.
    pub fn prune(&mut self, now: u64) {
        while let Some(&(until, mac)) = self.offer_expiry.first() {
            if until > now {
                break;
            }
            self.withdraw_offer(mac);
        }
        while let Some(&(until, ip)) = self.decline_expiry.first() {
            if until > now {
                break;
            }
            self.decline_expiry.remove(&(until, ip));
            self.declined.remove(&ip);
            self.refresh(ip);
        }
    }

    /// The first never-used pool address.
    pub fn fresh_address(&mut self, pool: &PoolConfig, server_ip: Ipv4Addr) -> Option<Ipv4Addr> {
        self.free.fresh(pool, server_ip)
    }

    /// An address offered before (never leased) that is free at `now` and passes `ok`.
    pub fn unleased_address(&self, now: u64, ok: impl Fn(Ipv4Addr) -> bool) -> Option<Ipv4Addr> {
        self.free.unleased(now, ok)
    }

    /// The longest-expired lease's address that passes `ok`.
    pub fn expired_lease_address(
        &self,
        now: u64,
        ok: impl Fn(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        self.free.expired_lease(now, ok)
    }

    fn refresh(&mut self, ip: Ipv4Addr) {
        let lease = self.leases.by_ip(ip).map(|l| l.expires);
        let offer = self.offered_to(ip).map(|(_, until)| until);
        let declined = self.declined.get(&ip).copied();
        let until = [lease, offer, declined].into_iter().flatten().max();
        self.free.set(ip, until.unwrap_or(0), lease.is_some());
    }

    /// If there are unsaved lease changes and a file: the path and bytes to write.
    pub fn take_lease_snapshot(&mut self) -> Option<(PathBuf, Vec<u8>)> {
        self.leases.take_snapshot()
    }

    /// After a failed write of a snapshot.
    pub fn mark_leases_dirty(&mut self) {
        self.leases.mark_dirty();
    }

    /// Write unsaved lease changes now (blocking).
    pub fn save_leases(&mut self) -> Result<(), LeaseError> {
        self.leases.save()
    }
}

/// Unix seconds for a `SystemTime` (0 before 1970).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
