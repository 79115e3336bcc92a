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
    if state.declined.get(&ip).is_some_and(|until| *until > now) {
        return Err(Unavailable::Declined);
    }
    if let Some(l) = state.leases.by_ip(ip) {
        if l.mac != mac && l.is_active(now) {
            return Err(Unavailable::LeasedTo(l.mac));
        }
    }
    for (other, (offered, until)) in &state.offers {
        if *offered == ip && *other != mac && *until > now {
            return Err(Unavailable::OfferedTo(*other));
        }
    }
    Ok(())
}

/// The address to OFFER: the client's lease (even expired), else its pending
/// offer, else the address it asked for, else a never-used address, else the
/// longest-expired one. `None` when the pool is exhausted.
pub fn choose(
    state: &State,
    pool: &PoolConfig,
    server_ip: Ipv4Addr,
    mac: MacAddr,
    requested: Option<Ipv4Addr>,
    now: u64,
) -> Option<Ipv4Addr> {
    let ok = |ip: Ipv4Addr| check(state, pool, server_ip, mac, ip, now).is_ok();
    let preferred = [
        state.leases.by_mac(mac).map(|l| l.ip),
        state
            .offers
            .get(&mac)
            .filter(|(_, until)| *until > now)
            .map(|(ip, _)| *ip),
        requested,
    ];
    if let Some(ip) = preferred.into_iter().flatten().find(|ip| ok(*ip)) {
        return Some(ip);
    }
    if let Some(ip) = pool
        .addresses()
        .find(|ip| state.leases.by_ip(*ip).is_none() && ok(*ip))
    {
        return Some(ip);
    }
    pool.addresses()
        .filter(|ip| ok(*ip))
        .min_by_key(|ip| state.leases.by_ip(*ip).map_or(0, |l| l.expires))
}
