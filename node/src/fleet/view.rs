//! A typed picture of the fleet for operators (`/fleet/status.json`, the status page): this
//! node's endpoint, its peers, the releases it is fetching and from whom, what it refused.

use std::time::SystemTime;

use netboot_proto::{fleet::Holding, VerifiedRelease};
use serde::{Deserialize, Serialize};

use super::{core::PeerEvent, fetch, progress::FetchSource, progress::Refusal, FleetStatus};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetView {
    /// This node's endpoint id (public).
    pub id: String,
    pub peers: Vec<PeerView>,
    pub fetching: Vec<FetchView>,
    /// Committed releases (name, version, id), as the fleet tests and scripts read them.
    pub releases: Vec<ReleaseRef>,
    /// Offers refused recently, newest first.
    #[serde(default)]
    pub refused: Vec<Refusal>,
    pub uploaded_bytes: u64,
    /// What each peer fetched from this node (a member that is not a configured peer too).
    #[serde(default)]
    pub uploaded_to: Vec<PeerBytes>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerBytes {
    pub id: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerView {
    pub id: String,
    pub label: String,
    /// `<id>@<host:port>` for a configured peer; `None` for one that dialled in.
    pub configured: Option<String>,
    pub connected: bool,
    pub rtt_ms: Option<f64>,
    pub received_bytes: u64,
    /// Sent data failing verification, or unreachable for data: skipped for a while.
    pub avoided: bool,
    /// Unix seconds of its last answer to a ping.
    #[serde(default)]
    pub last_contact: Option<u64>,
    /// What it said it holds of each release it offered this node, by release id.
    #[serde(default)]
    pub holdings: Vec<PeerHolding>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerHolding {
    /// The release id (hex).
    pub release: String,
    pub holding: Holding,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchView {
    pub name: String,
    pub version: u64,
    pub held_bytes: u64,
    pub total_bytes: u64,
    /// `None` until the first bytes arrive (e.g. no peer holding it is reachable yet).
    #[serde(default)]
    pub source: Option<FetchSource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRef {
    pub name: String,
    pub version: u64,
    pub id: String,
}

pub(super) fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl FleetStatus {
    pub async fn view(&self) -> FleetView {
        let shared = &self.shared;
        let mut peer_list: Vec<PeerView> =
            shared.core.ask(PeerEvent::Status).await.unwrap_or_default();
        peer_list.sort_by(|a, b| a.id.cmp(&b.id));
        let pending = self.pending();
        let mut fetching = Vec::new();
        for r in pending {
            fetching.push(FetchView {
                name: r.name.to_string(),
                version: r.version,
                held_bytes: fetch::held_bytes(shared, &r).await,
                total_bytes: r.total_size(),
                source: shared.progress.source(&r.name, r.version),
            });
        }
        fetching.sort_by(|a, b| a.name.cmp(&b.name));
        let releases = shared
            .store
            .releases()
            .iter()
            .map(|r| ReleaseRef {
                name: r.verified.name.to_string(),
                version: r.verified.version,
                id: r.verified.id().to_string(),
            })
            .collect();
        FleetView {
            id: shared.endpoint.id().to_string(),
            peers: peer_list,
            fetching,
            releases,
            refused: shared.progress.refusals(),
            uploaded_bytes: shared
                .uploads
                .bytes
                .load(std::sync::atomic::Ordering::Relaxed),
            uploaded_to: {
                let mut to: Vec<PeerBytes> = shared
                    .uploads
                    .by_peer()
                    .into_iter()
                    .map(|(id, bytes)| PeerBytes {
                        id: id.to_string(),
                        bytes,
                    })
                    .collect();
                to.sort_by(|a, b| a.id.cmp(&b.id));
                to
            },
        }
    }
}

impl FleetStatus {
    /// The releases being fetched, for the status page's file and boot columns.
    pub fn pending(&self) -> Vec<VerifiedRelease> {
        self.shared.core.all_pending()
    }
}
