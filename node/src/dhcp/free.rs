//! Which pool addresses are free, found without scanning the pool.
//!
//! A /16 pool has 65,536 addresses; a flood of DISCOVERs from random MACs reserves a new
//! one for each (the offer is held for a minute). Scanning the pool and every pending offer
//! per DISCOVER made a node fall behind at 55 packets/s. Here every address that was ever
//! offered, leased or declined is *touched* and sits in an ordered set by the time it is busy
//! until; untouched addresses are handed out from a cursor that only moves forward. So a
//! choice costs O(log n), and the cursor's walk over the pool is paid once.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use super::config::PoolConfig;

#[derive(Debug, Default)]
pub struct FreeIndex {
    /// Every address before it, in pool order, is touched. `None` until first used.
    cursor: Option<u32>,
    /// Touched address → (busy until, has a lease record).
    touched: HashMap<Ipv4Addr, (u64, bool)>,
    /// Touched addresses without a lease record (offered or declined only), by busy-until.
    unleased: BTreeSet<(u64, Ipv4Addr)>,
    /// Addresses with a lease record (active or expired), by busy-until.
    leased: BTreeSet<(u64, Ipv4Addr)>,
}

impl FreeIndex {
    /// Record that `ip` is busy until `until` (a time in the past: free again).
    pub fn set(&mut self, ip: Ipv4Addr, until: u64, has_lease: bool) {
        if let Some((old, old_leased)) = self.touched.insert(ip, (until, has_lease)) {
            self.set_of(old_leased).remove(&(old, ip));
        }
        self.set_of(has_lease).insert((until, ip));
    }

    fn set_of(&mut self, has_lease: bool) -> &mut BTreeSet<(u64, Ipv4Addr)> {
        if has_lease {
            &mut self.leased
        } else {
            &mut self.unleased
        }
    }

    /// The first never-touched address of the pool (not `server_ip`).
    pub fn fresh(&mut self, pool: &PoolConfig, server_ip: Ipv4Addr) -> Option<Ipv4Addr> {
        let (start, end) = (u32::from(pool.range_start), u32::from(pool.range_end));
        let mut n = self.cursor.unwrap_or(start).max(start);
        while n <= end {
            let ip = Ipv4Addr::from(n);
            if !self.touched.contains_key(&ip) && ip != server_ip {
                self.cursor = Some(n);
                return Some(ip);
            }
            n += 1;
        }
        self.cursor = Some(n);
        None
    }

    /// A touched address that never had a lease (its offer lapsed or was withdrawn, its
    /// decline hold ended), free at `now`, for which `ok` holds.
    pub fn unleased(&self, now: u64, ok: impl Fn(Ipv4Addr) -> bool) -> Option<Ipv4Addr> {
        first_free(&self.unleased, now, ok)
    }

    /// The longest-expired lease for which `ok` holds (so a client's old address is kept
    /// for it as long as possible).
    pub fn expired_lease(&self, now: u64, ok: impl Fn(Ipv4Addr) -> bool) -> Option<Ipv4Addr> {
        first_free(&self.leased, now, ok)
    }
}

fn first_free(
    set: &BTreeSet<(u64, Ipv4Addr)>,
    now: u64,
    ok: impl Fn(Ipv4Addr) -> bool,
) -> Option<Ipv4Addr> {
    set.range(..=(now, Ipv4Addr::BROADCAST))
        .map(|(_, ip)| *ip)
        .find(|ip| ok(*ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(start: [u8; 4], end: [u8; 4]) -> PoolConfig {
        PoolConfig::new(start.into(), end.into(), [255, 255, 0, 0].into())
    }

    #[test]
    fn fresh_addresses_in_order_skipping_touched_and_the_server() {
        let p = pool([10, 0, 0, 1], [10, 0, 0, 4]);
        let server = Ipv4Addr::new(10, 0, 0, 2);
        let mut f = FreeIndex::default();
        f.set(Ipv4Addr::new(10, 0, 0, 3), 100, true);
        assert_eq!(f.fresh(&p, server), Some(Ipv4Addr::new(10, 0, 0, 1)));
        f.set(Ipv4Addr::new(10, 0, 0, 1), 50, false);
        assert_eq!(f.fresh(&p, server), Some(Ipv4Addr::new(10, 0, 0, 4)));
        f.set(Ipv4Addr::new(10, 0, 0, 4), 50, false);
        assert_eq!(f.fresh(&p, server), None);
        assert_eq!(f.fresh(&p, server), None, "an exhausted cursor stays cheap");
    }

    #[test]
    fn lapsed_offers_and_longest_expired_leases_and_nothing_busy() {
        let mut f = FreeIndex::default();
        let ip = |n| Ipv4Addr::new(10, 0, 0, n);
        f.set(ip(1), 30, true); // lease expired at 30
        f.set(ip(2), 10, true); // lease expired at 10: longest expired
        f.set(ip(3), 500, false); // offered until 500
        let any = |_| true;
        assert_eq!(f.expired_lease(100, any), Some(ip(2)));
        assert_eq!(f.expired_lease(100, |a| a != ip(2)), Some(ip(1)));
        assert_eq!(f.unleased(100, any), None, "still offered");
        assert_eq!(f.unleased(600, any), Some(ip(3)), "the offer lapsed");
        f.set(ip(3), 700, false); // offered again
        f.set(ip(2), 900, true); // leased again
        f.set(ip(1), 900, true);
        assert_eq!(f.unleased(600, any), None);
        assert_eq!(f.expired_lease(600, any), None);
        assert_eq!(f.unleased(800, any), Some(ip(3)));
        assert_eq!(f.expired_lease(1000, any), Some(ip(1)));
    }
}
