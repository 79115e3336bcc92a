//! Values read when `/metrics` is scraped: releases held, fetching and refused, the fleet's
//! peers and sync lag (from the fleet's status view, so this module needs nothing of the
//! fleet's insides), the store's size and the free space of its filesystem.

use std::{collections::HashSet, path::Path, sync::atomic::AtomicU64};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{fleet::FleetView, store::Store};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabels {
    name: String,
}

/// One fleet peer, as the metrics need it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerNumbers {
    pub id: String,
    pub connected: bool,
    /// Fetches skip it for now (it was unreachable or sent bad data).
    pub avoided: bool,
    pub rtt_secs: Option<f64>,
    pub received_bytes: u64,
}

/// The fleet's numbers at one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetNumbers {
    pub peers: Vec<PeerNumbers>,
    pub fetching: u64,
    /// Offers refused recently (as the status page lists them).
    pub refused: u64,
    /// Bytes served to each peer (by endpoint id).
    pub sent_bytes: Vec<(String, u64)>,
    /// Per image name: seconds from admitting its newest release here to its commit.
    pub sync_lag: Vec<(String, f64)>,
}

impl FleetNumbers {
    /// From the fleet's status view (what `/fleet/status.json` serves) and its sync lags.
    pub fn new(view: &FleetView, sync_lag: Vec<(String, f64)>) -> Self {
        Self {
            peers: view
                .peers
                .iter()
                .map(|p| PeerNumbers {
                    id: p.id.clone(),
                    connected: p.connected,
                    avoided: p.avoided,
                    rtt_secs: p.rtt_ms.map(|ms| ms / 1e3),
                    received_bytes: p.received_bytes,
                })
                .collect(),
            fetching: view.fetching.len() as u64,
            refused: view.refused.len() as u64,
            sent_bytes: view
                .uploaded_to
                .iter()
                .map(|p| (p.id.clone(), p.bytes))
                .collect(),
            sync_lag,
        }
    }
}

/// Size and free space of a filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSpace {
    pub size_bytes: u64,
    /// Available to the node (not counting blocks reserved for root).
    pub free_bytes: u64,
}

impl FsSpace {
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let s = rustix::fs::statvfs(path)?;
        Ok(Self {
            size_bytes: s.f_blocks.saturating_mul(s.f_frsize),
            free_bytes: s.f_bavail.saturating_mul(s.f_frsize),
        })
    }
}

/// Everything read at one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scraped {
    pub releases_held: u64,
    /// Bytes of the distinct files of the releases held.
    pub store_bytes: u64,
    pub fs: Option<FsSpace>,
    pub fleet: Option<FleetNumbers>,
    /// Machines in the client record.
    pub clients_known: u64,
}

impl Scraped {
    /// The store's part; the caller adds the fleet's and the client record's.
    pub fn of_store(store: &Store) -> Self {
        let releases = store.releases();
        let mut seen = HashSet::new();
        let store_bytes = releases
            .iter()
            .flat_map(|r| r.verified.files.iter())
            .filter(|f| seen.insert(f.hash))
            .map(|f| f.size)
            .sum();
        let dir = store.layout().root();
        let fs = match FsSpace::of(dir) {
            Ok(fs) => Some(fs),
            Err(e) => {
                tracing::debug!("metrics: statvfs {}: {e}", dir.display());
                None
            }
        };
        Self {
            releases_held: releases.len() as u64,
            store_bytes,
            fs,
            ..Self::default()
        }
    }

    pub(super) fn registry(&self) -> Registry {
        let mut r = Registry::default();
        let releases = Family::<StateLabels, Gauge>::default();
        r.register(
            "netboot_releases",
            "Releases by state: held (committed, verified), fetching (admitted, files arriving from peers), refused (offers refused recently, the newest 20: untrusted, forged, expired, older)",
            releases.clone(),
        );
        releases
            .get_or_create(&StateLabels { state: "held" })
            .set(as_i64(self.releases_held));
        let gauge = |r: &mut Registry, name: &str, help: &str, v: u64| {
            let g = Gauge::<i64>::default();
            g.set(as_i64(v));
            r.register(name, help, g);
        };
        gauge(
            &mut r,
            "netboot_store_bytes",
            "Bytes of the distinct files of the releases held",
            self.store_bytes,
        );
        if let Some(fs) = self.fs {
            gauge(
                &mut r,
                "netboot_data_filesystem_size_bytes",
                "Size of the filesystem holding the data dir",
                fs.size_bytes,
            );
            gauge(
                &mut r,
                "netboot_data_filesystem_free_bytes",
                "Free space the node may use on the filesystem holding the data dir",
                fs.free_bytes,
            );
        }
        gauge(
            &mut r,
            "netboot_clients_known",
            "Machines in the node's client record (bounded; the least recently seen are dropped first)",
            self.clients_known,
        );
        if let Some(fleet) = &self.fleet {
            releases
                .get_or_create(&StateLabels { state: "fetching" })
                .set(as_i64(fleet.fetching));
            releases
                .get_or_create(&StateLabels { state: "refused" })
                .set(as_i64(fleet.refused));
            fleet_metrics(&mut r, fleet);
        }
        r
    }
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn fleet_metrics(r: &mut Registry, fleet: &FleetNumbers) {
    let received = Family::<PeerLabels, Counter>::default();
    r.register(
        "netboot_fleet_received_bytes",
        "Verified release bytes received from each fleet peer (bytes later found bad are taken off)",
        received.clone(),
    );
    let connected = Family::<PeerLabels, Gauge>::default();
    r.register(
        "netboot_fleet_peer_connected",
        "1 when the control connection to the fleet peer is up, else 0",
        connected.clone(),
    );
    let avoided = Family::<PeerLabels, Gauge>::default();
    r.register(
        "netboot_fleet_peer_avoided",
        "1 while fetches skip the fleet peer because it was unreachable or sent data that failed verification, else 0",
        avoided.clone(),
    );
    let rtt = Family::<PeerLabels, Gauge<f64, AtomicU64>>::default();
    r.register(
        "netboot_fleet_peer_rtt_seconds",
        "Round-trip time to the fleet peer, last measured",
        rtt.clone(),
    );
    for p in &fleet.peers {
        let labels = PeerLabels { peer: p.id.clone() };
        received.get_or_create(&labels).inc_by(p.received_bytes);
        connected.get_or_create(&labels).set(i64::from(p.connected));
        avoided.get_or_create(&labels).set(i64::from(p.avoided));
        if let Some(secs) = p.rtt_secs {
            rtt.get_or_create(&labels).set(secs);
        }
    }
    let sent = Family::<PeerLabels, Counter>::default();
    r.register(
        "netboot_fleet_sent_bytes",
        "Release bytes this node served to each fleet peer",
        sent.clone(),
    );
    for (peer, bytes) in &fleet.sent_bytes {
        sent.get_or_create(&PeerLabels { peer: peer.clone() })
            .inc_by(*bytes);
    }
    let lag = Family::<NameLabels, Gauge<f64, AtomicU64>>::default();
    r.register(
        "netboot_fleet_sync_lag_seconds",
        "For each image name, seconds from admitting its newest release here (on its announcement) to committing it, last value",
        lag.clone(),
    );
    for (name, secs) in &fleet.sync_lag {
        lag.get_or_create(&NameLabels { name: name.clone() })
            .set(*secs);
    }
}
