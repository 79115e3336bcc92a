//! What this node knows about each fleet peer: how to reach it, how near it is, which
//! releases it holds, and whether it recently sent bad data.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use iroh::{endpoint::Connection, EndpointAddr, EndpointId};
use netboot_proto::{fleet::Holding, ReleaseId};

use super::{
    config::PeerAddr,
    decide::{self, Candidate, Fault, PeerView},
};

#[derive(Debug)]
pub(crate) struct Peer {
    pub id: EndpointId,
    /// Set for configured peers: this node dials them.
    pub configured: Option<PeerAddr>,
    /// Resolved addresses of a configured peer.
    pub addrs: Vec<SocketAddr>,
    /// The live control connection, whichever side opened it.
    pub control: Option<Connection>,
    /// Our connection to its blob provider.
    pub blobs: Option<Connection>,
    /// Application-level round trip, measured by ping.
    pub rtt: Option<Duration>,
    pub holdings: HashMap<ReleaseId, Holding>,
    pub bad_until: Option<Instant>,
    /// A peer whose data connection failed is skipped until then.
    pub retry_at: Option<Instant>,
    /// Verified bytes fetched from this peer since start.
    pub received: u64,
    /// When it last answered a ping (wall clock, for the status page).
    pub last_contact: Option<std::time::SystemTime>,
    /// Whether the last connect attempt failed (to log state changes once, not every retry).
    pub unreachable_logged: bool,
}

impl Peer {
    fn new(id: EndpointId) -> Self {
        Self {
            id,
            configured: None,
            addrs: Vec::new(),
            control: None,
            blobs: None,
            rtt: None,
            holdings: HashMap::new(),
            bad_until: None,
            retry_at: None,
            received: 0,
            last_contact: None,
            unreachable_logged: false,
        }
    }

    /// A short name for logs: the configured address, or the id's short form.
    pub fn label(&self) -> String {
        match &self.configured {
            Some(p) => format!("{} ({})", p.host, self.id.fmt_short()),
            None => self.id.fmt_short().to_string(),
        }
    }

    pub fn dial_addr(&self) -> EndpointAddr {
        let mut addr = EndpointAddr::new(self.id);
        for a in &self.addrs {
            addr = addr.with_ip_addr(*a);
        }
        addr
    }
}

pub(crate) fn alive(conn: &Option<Connection>) -> Option<Connection> {
    conn.as_ref()
        .filter(|c| c.close_reason().is_none())
        .cloned()
}

#[derive(Debug, Default)]
pub(crate) struct Peers {
    inner: Mutex<HashMap<EndpointId, Peer>>,
}

impl Peers {
    pub fn with<R>(&self, f: impl FnOnce(&mut HashMap<EndpointId, Peer>) -> R) -> R {
        // Updates replace fields whole; a panic elsewhere cannot leave a half-written peer.
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut map)
    }

    pub fn add_configured(&self, p: &PeerAddr) {
        self.with(|m| {
            let peer = m.entry(p.id).or_insert_with(|| Peer::new(p.id));
            peer.configured = Some(p.clone());
        });
    }

    pub fn entry<R>(&self, id: EndpointId, f: impl FnOnce(&mut Peer) -> R) -> R {
        self.with(|m| f(m.entry(id).or_insert_with(|| Peer::new(id))))
    }

    pub fn get<R>(&self, id: &EndpointId, f: impl FnOnce(&Peer) -> R) -> Option<R> {
        self.with(|m| m.get(id).map(f))
    }

    pub fn label(&self, id: &EndpointId) -> String {
        self.get(id, Peer::label)
            .unwrap_or_else(|| id.fmt_short().to_string())
    }

    pub fn record_holding(&self, id: EndpointId, release: ReleaseId, holding: Holding) {
        self.entry(id, |p| {
            let slot = p.holdings.entry(release).or_insert(holding);
            // Complete never goes back to Fetching (a late, reordered announcement).
            if *slot != Holding::Complete {
                *slot = holding;
            }
        });
    }

    /// Peers that hold (or are fetching) `release`, nearest first (see
    /// [`decide::sources`]).
    pub fn candidates(&self, release: &ReleaseId, now: Instant) -> Vec<Candidate> {
        let views: Vec<PeerView> = self.with(|m| {
            m.values()
                .map(|p| PeerView {
                    id: p.id,
                    label: p.label(),
                    rtt: p.rtt,
                    holding: p.holdings.get(release).copied(),
                    avoid_until: p.bad_until.max(p.retry_at),
                })
                .collect()
        });
        decide::sources(views, now)
    }

    /// Leaves a peer alone until `until` for `fault`.
    pub fn avoid(&self, id: &EndpointId, fault: Fault, until: Instant) {
        self.entry(*id, |p| {
            match fault {
                Fault::BadData => p.bad_until = Some(until),
                Fault::Unreachable => p.retry_at = Some(until),
            }
            p.blobs = None;
        });
    }

    /// Ids of peers with a live control connection.
    pub fn connected(&self) -> Vec<(EndpointId, Connection)> {
        self.with(|m| {
            m.values()
                .filter_map(|p| alive(&p.control).map(|c| (p.id, c)))
                .collect()
        })
    }

    pub fn configured(&self) -> Vec<EndpointId> {
        self.with(|m| {
            m.values()
                .filter(|p| p.configured.is_some())
                .map(|p| p.id)
                .collect()
        })
    }
}
