//! Who may hold a connection: the decision the listener asks for each accepted socket.
//! Pure; the listener (`super::listener`) owns the connection table and acts on the answer.
//!
//! A node must keep serving real clients while someone holds connections open (slowloris,
//! a flood of idle sockets): the caps keep file descriptors well under the process limit,
//! and a full table makes room by closing the connection idle the longest rather than by
//! refusing everyone new. Only when every connection is busy with a request is the new one
//! refused.

use std::{net::IpAddr, time::Duration, time::Instant};

/// The listener's limits (`[http]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Open connections in total.
    pub max_connections: usize,
    /// Open connections from one client IP address.
    pub max_connections_per_client: usize,
    /// Time a client has to send a complete request head, also for each later request on a
    /// kept-alive connection.
    pub header_timeout: Duration,
    /// A kept-alive connection without a request for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 384,
            max_connections_per_client: 16,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// One open connection as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnView {
    pub id: u64,
    pub ip: IpAddr,
    /// A request is being answered (its response body has not ended).
    pub busy: bool,
    /// When the last request ended, or the connection was accepted.
    pub idle_since: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// Admit, and close this idle connection to make room.
    AdmitClosing(u64),
    /// Close the new connection: every connection counted against the limit is busy.
    Refuse(Limit),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    PerClient,
    Total,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::PerClient => "http.max_connections_per_client",
            Limit::Total => "http.max_connections",
        })
    }
}

/// Decides about a new connection from `ip`, given the open ones (those already being
/// closed are not in `open`).
pub fn admit(open: &[ConnView], ip: IpAddr, limits: &HttpLimits) -> Admission {
    let idlest = |candidates: &mut dyn Iterator<Item = &ConnView>| {
        candidates
            .filter(|c| !c.busy)
            .min_by_key(|c| (c.idle_since, c.id))
            .map(|c| c.id)
    };
    let from_ip = open.iter().filter(|c| c.ip == ip).count();
    if from_ip >= limits.max_connections_per_client.max(1) {
        return match idlest(&mut open.iter().filter(|c| c.ip == ip)) {
            Some(id) => Admission::AdmitClosing(id),
            None => Admission::Refuse(Limit::PerClient),
        };
    }
    if open.len() >= limits.max_connections.max(1) {
        return match idlest(&mut open.iter()) {
            Some(id) => Admission::AdmitClosing(id),
            None => Admission::Refuse(Limit::Total),
        };
    }
    Admission::Admit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c = |id, ip, busy, idle| ConnView {
            id,
            ip,
            busy,
            idle_since: at(idle),
        };
        let limits = HttpLimits {
            max_connections: 4,
            max_connections_per_client: 2,
            ..HttpLimits::default()
        };
        let cases: &[(&str, Vec<ConnView>, IpAddr, Admission)] = &[
            ("empty", vec![], a, Admission::Admit),
            ("room", vec![c(1, a, true, 0)], a, Admission::Admit),
            (
                "client full, its idlest goes",
                vec![c(1, a, false, 5), c(2, a, false, 3), c(3, b, false, 0)],
                a,
                Admission::AdmitClosing(2),
            ),
            (
                "client full and busy: refused, others untouched",
                vec![c(1, a, true, 0), c(2, a, true, 0), c(3, b, false, 0)],
                a,
                Admission::Refuse(Limit::PerClient),
            ),
            (
                "total full: the idlest of anyone goes",
                vec![
                    c(1, a, true, 0),
                    c(2, b, false, 9),
                    c(3, b, false, 4),
                    c(4, a, true, 0),
                ],
                "10.0.0.3".parse().unwrap(),
                Admission::AdmitClosing(3),
            ),
            (
                "total full and all busy",
                vec![
                    c(1, a, true, 0),
                    c(2, b, true, 0),
                    c(3, b, true, 0),
                    c(4, a, true, 0),
                ],
                "10.0.0.3".parse().unwrap(),
                Admission::Refuse(Limit::Total),
            ),
        ];
        for (what, open, ip, want) in cases {
            assert_eq!(admit(open, *ip, &limits), *want, "{what}");
        }
    }
}
