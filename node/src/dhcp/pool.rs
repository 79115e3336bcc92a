//! Server mode address choice: pure functions of the pool and the state.

use std::net::Ipv4Addr;

use super::config::PoolConfig;
use super::mac::MacAddr;
use super::state::State;

/// Why `mac` cannot have `ip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    NotInPool,
    ServerAddress,
    LeasedTo(MacAddr),
    OfferedTo(MacAddr),
    Declined,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotInPool => f.write_str("not in our pool"),
            Self::ServerAddress => f.write_str("is the server's own address"),
            Self::LeasedTo(m) => write!(f, "leased to {m}"),
            Self::OfferedTo(m) => write!(f, "being offered to {m}"),
            Self::Declined => f.write_str("recently declined (in use on the network)"),
        }
    }
}

/// May `mac` use `ip` now?
pub fn check(
    state: &State,
    pool: &PoolConfig,
    server_ip: Ipv4Addr,
    mac: MacAddr,
    ip: Ipv4Addr,
    now: u64,
) -> Result<(), Unavailable> {
    if !pool.contains(ip) {
        return Err(Unavailable::NotInPool);
    }
    if ip == server_ip {
        return Err(Unavailable::ServerAddress);
    }
    if state.declined_until(ip).is_some_and(|until| until > now) {
        return Err(Unavailable::Declined);
    }
    if let Some(l) = state.leases().by_ip(ip) {
        if l.mac != mac && l.is_active(now) {
            return Err(Unavailable::LeasedTo(l.mac));
        }
    }
    if let Some((other, until)) = state.offered_to(ip) {
        if other != mac && until > now {
            return Err(Unavailable::OfferedTo(other));
        }
    }
    Ok(())
}

/// The address to OFFER: the client's lease (even expired), else its pending
/// offer, else the address it asked for, else one that was never leased (a lapsed offer,
/// then a never-used one), else the longest-expired lease. `None` when the pool is
/// exhausted. O(log n) in the pool size: see `free.rs`.
pub fn choose(
    state: &mut State,
    pool: &PoolConfig,
    server_ip: Ipv4Addr,
    mac: MacAddr,
    requested: Option<Ipv4Addr>,
    now: u64,
) -> Option<Ipv4Addr> {
    let preferred = [
        state.leases().by_mac(mac).map(|l| l.ip),
        state
            .offer_of(mac)
            .filter(|(_, until)| *until > now)
            .map(|(ip, _)| ip),
        requested,
    ];
    let ok = |state: &State, ip: Ipv4Addr| check(state, pool, server_ip, mac, ip, now).is_ok();
    if let Some(ip) = preferred.into_iter().flatten().find(|ip| ok(state, *ip)) {
        return Some(ip);
    }
    if let Some(ip) = state.unleased_address(now, |ip| ok(state, ip)) {
        return Some(ip);
    }
    if let Some(ip) = state.fresh_address(pool, server_ip) {
        return Some(ip);
    }
    state.expired_lease_address(now, |ip| ok(state, ip))
}
