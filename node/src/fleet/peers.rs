//! What this node knows about each fleet peer: how to reach it, how near it is, which
//! releases it holds, and whether it recently sent bad data.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    time::{Duration, Instant},
};

use iroh::{endpoint::Connection, EndpointAddr, EndpointId};
use netboot_proto::{fleet::Holding, ReleaseId};

use super::{
    config::PeerAddr,
    decide::{self, Candidate, Fault, PeerFacts},
    view,
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

/// A control link as the link keeper sees it.
pub(crate) struct Link {
    pub id: EndpointId,
    pub configured: bool,
    pub control: Option<Connection>,
}

/// What a new peer list changed: labels for the log, and links to close.
#[derive(Debug, Default)]
pub(crate) struct Reconfigured {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub dropped: Vec<(String, Connection)>,
}

/// The peer table. Owned by the fleet's core task; adapters reach it through events.
#[derive(Debug, Default)]
pub(crate) struct PeerTable {
    map: HashMap<EndpointId, Peer>,
}

impl PeerTable {
    pub fn new(configured: &[PeerAddr]) -> Self {
        let mut t = Self::default();
        for p in configured {
            t.entry(p.id).configured = Some(p.clone());
        }
        t
    }

    fn entry(&mut self, id: EndpointId) -> &mut Peer {
        self.map.entry(id).or_insert_with(|| Peer::new(id))
    }

    pub fn label(&self, id: &EndpointId) -> String {
        self.map
            .get(id)
            .map(Peer::label)
            .unwrap_or_else(|| id.fmt_short().to_string())
    }

    pub fn record_holding(&mut self, id: EndpointId, release: ReleaseId, holding: Holding) {
        let slot = self.entry(id).holdings.entry(release).or_insert(holding);
        // Complete never goes back to Fetching (a late, reordered announcement).
        if *slot != Holding::Complete {
            *slot = holding;
        }
    }

    /// Peers that hold (or are fetching) `release`, nearest first (see
    /// [`decide::sources`]).
    pub fn candidates(&self, release: &ReleaseId, now: Instant) -> Vec<Candidate> {
        let views = self.map.values().map(|p| PeerFacts {
            id: p.id,
            label: p.label(),
            rtt: p.rtt,
            holding: p.holdings.get(release).copied(),
            avoid_until: p.bad_until.max(p.retry_at),
        });
        decide::sources(views, now)
    }

    /// Leaves a peer alone until `until` for `fault`.
    pub fn avoid(&mut self, id: EndpointId, fault: Fault, until: Instant) {
        let p = self.entry(id);
        match fault {
            Fault::BadData => p.bad_until = Some(until),
            Fault::Unreachable => p.retry_at = Some(until),
        }
        p.blobs = None;
    }

    /// Makes `conn` the control link to `id` unless a live one is up already (both sides may
    /// dial at once; the second link is served but not used for requests, and no link is
    /// closed, so neither side sees a spurious drop). True if the link was down.
    pub fn link_up(&mut self, id: EndpointId, conn: Connection) -> bool {
        let p = self.entry(id);
        let was_down = alive(&p.control).is_none();
        if was_down {
            p.control = Some(conn);
        }
        p.unreachable_logged = false;
        was_down
    }

    /// Drops `conn` as the control link to `id` if it is the one in use. True if it was.
    pub fn link_down(&mut self, id: EndpointId, conn: &Connection) -> bool {
        // A peer a reload removed is not brought back by its link closing.
        let Some(p) = self.map.get_mut(&id) else {
            return false;
        };
        let same = p
            .control
            .as_ref()
            .is_some_and(|c| c.stable_id() == conn.stable_id());
        if same {
            p.control = None;
        }
        same
    }

    /// Records a measured round trip; true if it changed enough to be worth a log line.
    pub fn rtt(&mut self, id: EndpointId, rtt: Duration) -> bool {
        let p = self.entry(id);
        p.last_contact = Some(std::time::SystemTime::now());
        let old = p.rtt.replace(rtt);
        old.is_none_or(|o| o.abs_diff(rtt) > o / 2 + Duration::from_millis(2))
    }

    /// Notes a failed dial; true the first time since the peer was last reachable.
    pub fn unreachable(&mut self, id: EndpointId) -> bool {
        let p = self.entry(id);
        !std::mem::replace(&mut p.unreachable_logged, true)
    }

    /// The freshly resolved addresses of a configured peer; its address to dial.
    pub fn resolved(&mut self, id: EndpointId, addrs: Vec<SocketAddr>) -> EndpointAddr {
        let p = self.entry(id);
        p.addrs = addrs;
        p.dial_addr()
    }

    /// The publisher of a `publish --to` session: a source holding the whole release, reached
    /// over the connection it opened.
    pub fn adopt_publisher(&mut self, id: EndpointId, conn: Connection, release: ReleaseId) {
        let p = self.entry(id);
        p.blobs = Some(conn);
        // Nearest possible: the publisher is the one source that surely has every byte.
        p.rtt = Some(Duration::ZERO);
        p.holdings.insert(release, Holding::Complete);
    }

    /// The live blob connection to `id` (if any) and where to dial it.
    pub fn blob_link(&self, id: &EndpointId) -> Option<(Option<Connection>, EndpointAddr)> {
        self.map.get(id).map(|p| (alive(&p.blobs), p.dial_addr()))
    }

    pub fn set_blob_link(&mut self, id: EndpointId, conn: Option<Connection>) {
        self.entry(id).blobs = conn;
    }

    /// Verified bytes received from `id` (negative: bytes of a request that failed
    /// verification, taken back).
    pub fn credit(&mut self, id: EndpointId, bytes: i64) {
        let p = self.entry(id);
        p.received = p.received.saturating_add_signed(bytes);
    }

    /// Verified bytes received from each peer since start.
    pub fn received(&self) -> HashMap<EndpointId, (String, u64)> {
        self.map
            .values()
            .map(|p| (p.id, (p.label(), p.received)))
            .collect()
    }

    /// Peers with a live control connection.
    pub fn connected(&self) -> Vec<(EndpointId, Connection)> {
        self.map
            .values()
            .filter_map(|p| alive(&p.control).map(|c| (p.id, c)))
            .collect()
    }

    /// Every peer with a live control link or a configured address.
    pub fn links(&self) -> Vec<Link> {
        self.map
            .values()
            .filter(|p| p.configured.is_some() || alive(&p.control).is_some())
            .map(|p| Link {
                id: p.id,
                configured: p.configured.is_some(),
                control: alive(&p.control),
            })
            .collect()
    }

    /// A config reload's peer list, with everyone who may connect now (`members`, which
    /// includes the peers): new peers become configured (dialled by the link keeper), removed
    /// ones are no longer dialled, and peers that are no longer members are forgotten, their
    /// links handed back to be closed.
    pub fn reconfigure(
        &mut self,
        configured: &[PeerAddr],
        members: &HashSet<EndpointId>,
    ) -> Reconfigured {
        let mut out = Reconfigured::default();
        // A publisher (`publish --to`, no membership needed) is a blob link without a
        // control link: its session goes on.
        let publishing = |p: &Peer| alive(&p.blobs).is_some() && alive(&p.control).is_none();
        let gone: Vec<EndpointId> = self
            .map
            .values()
            .filter(|p| !members.contains(&p.id) && !publishing(p))
            .map(|p| p.id)
            .collect();
        for p in configured {
            let peer = self.entry(p.id);
            let added = peer.configured.is_none();
            if peer.configured.as_ref() != Some(p) {
                // A new address is resolved afresh at the next dial.
                peer.addrs.clear();
            }
            peer.configured = Some(p.clone());
            if added {
                out.added.push(peer.label());
            }
        }
        for peer in self.map.values_mut() {
            let still = configured.iter().any(|p| p.id == peer.id);
            if !still && peer.configured.is_some() {
                out.removed.push(peer.label());
                peer.configured = None;
            }
        }
        for id in gone {
            if let Some(p) = self.map.remove(&id) {
                let label = p.label();
                for conn in [alive(&p.control), alive(&p.blobs)].into_iter().flatten() {
                    out.dropped.push((label.clone(), conn));
                }
            }
        }
        out.added.sort();
        out.removed.sort();
        out
    }

    /// The configured address of `id`, if it is a configured peer.
    pub fn configured(&self, id: &EndpointId) -> Option<PeerAddr> {
        self.map.get(id).and_then(|p| p.configured.clone())
    }

    /// For `/fleet/status.json` and the status page.
    pub fn status(&self, now: Instant) -> Vec<view::PeerView> {
        self.map
            .values()
            .map(|p| view::PeerView {
                id: p.id.to_string(),
                label: p.label(),
                configured: p.configured.as_ref().map(|c| c.to_string()),
                connected: alive(&p.control).is_some(),
                rtt_ms: p.rtt.map(|r| r.as_secs_f64() * 1e3),
                received_bytes: p.received,
                avoided: p.bad_until.is_some_and(|t| t > now),
                last_contact: p.last_contact.map(view::unix),
                holdings: {
                    let mut h: Vec<view::PeerHolding> = p
                        .holdings
                        .iter()
                        .map(|(release, holding)| view::PeerHolding {
                            release: release.to_string(),
                            holding: *holding,
                        })
                        .collect();
                    h.sort_by(|a, b| a.release.cmp(&b.release));
                    h
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8, host: &str) -> PeerAddr {
        PeerAddr {
            id: iroh::SecretKey::from_bytes(&[n; 32]).public(),
            host: host.into(),
        }
    }

    fn configured(t: &PeerTable) -> Vec<String> {
        let mut v: Vec<String> = t
            .links()
            .iter()
            .filter(|l| l.configured)
            .map(|l| t.label(&l.id))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_reload_adds_and_removes_peers_and_forgets_former_members() {
        let (a, b, c) = (addr(1, "a:1"), addr(2, "b:1"), addr(3, "c:1"));
        let mut t = PeerTable::new(&[a.clone(), b.clone()]);
        t.credit(b.id, 10);
        // C added, B removed but kept as a member, A unchanged.
        let members: HashSet<_> = [a.id, b.id, c.id].into();
        let r = t.reconfigure(&[a.clone(), c.clone()], &members);
        assert_eq!(r.added, [t.label(&c.id)]);
        assert_eq!(r.removed, [format!("b:1 ({})", b.id.fmt_short())]);
        assert!(r.dropped.is_empty());
        assert_eq!(configured(&t), [t.label(&a.id), t.label(&c.id)]);
        assert_eq!(t.received()[&b.id].1, 10, "a member keeps its record");

        // B no longer a member either: forgotten. A moves to a new address.
        let a2 = addr(1, "a:2");
        let members: HashSet<_> = [a.id, c.id].into();
        let r = t.reconfigure(&[a2.clone(), c.clone()], &members);
        assert!(r.added.is_empty() && r.removed.is_empty(), "{r:?}");
        assert!(!t.received().contains_key(&b.id));
        assert_eq!(t.configured(&a.id), Some(a2));

        // The same list again changes nothing.
        let r = t.reconfigure(&[addr(1, "a:2"), c.clone()], &members);
        assert!(r.added.is_empty() && r.removed.is_empty() && r.dropped.is_empty());
    }
}
