//! The fleet: signed releases flow between sites by content-addressed sync.
//!
//! Two protocols run on one iroh endpoint (QUIC, authenticated by each node's endpoint key):
//! - **control** ([`netboot_proto::fleet::FLEET_ALPN`], ours): announcements carrying the
//!   signed release, catalog requests for catch-up, pings for round-trip time, and
//!   `publish --to` sessions. Small, one request per stream.
//! - **data** (`iroh_blobs::ALPN`): iroh-blobs' verified streaming of file content; every
//!   16 KiB group is checked against the BLAKE3 tree of the hash the signed release names,
//!   before it is written.
//!
//! A release's life on a node: an offer arrives (from a peer, a publisher, or a catalog) →
//! signature, trust, version and expiry are checked ([`netboot_proto::admit`]) before a byte
//! is fetched → it is written to `pending/` and passed on to every other peer (so nodes that
//! are not direct peers of the origin learn of it within seconds) → its files are fetched from
//! the peers that hold them, nearest first → the store commits it exactly as a local publish
//! → "complete" is announced, and peers may fetch from here. See `docs/architecture.md`.

mod announce;
mod cc_trace;
pub mod config;
mod control;
mod core;
mod decide;
mod dial;
mod fetch;
mod follow;
mod gate;
pub mod identity;
mod inventory;
mod links;
mod meter;
mod peers;
mod pending;
mod pieces;
mod policy_offer;
mod progress;
pub mod publish_remote;
pub mod readthrough;
mod redial;
mod swarm;
pub mod transport;
mod view;
mod wire;

use std::{path::Path, sync::Arc};

use iroh::{endpoint::presets, protocol::Router, Endpoint, EndpointId, RelayMode};
use iroh_blobs::BlobsProtocol;
use netboot_proto::{fleet::FLEET_ALPN, VerifiedRelease};
use tokio::sync::Notify;

pub use self::{
    config::{FleetSection, PeerAddr},
    gate::UploadStats,
    identity::FLEET_KEY_FILE,
    inventory::Inventory,
    progress::{FetchSource, Refusal},
    view::{FetchView, FleetView, PeerBytes, PeerHolding, PeerView, ReleaseRef},
};
use self::{core::CoreHandle, pending::PendingDir};
use crate::{policy::HeldPolicy, store::Store};

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error("fleet.listen {addr}: {message}")]
    Bind { addr: String, message: String },
    #[error("fleet.relay `{url}`: {message}")]
    Relay { url: String, message: String },
}

/// What the fleet's tasks share: fixed settings and handles, the peer table, and the way to
/// the owner of the offer state ([`core`]).
pub(crate) struct Shared {
    pub store: Arc<Store>,
    pub endpoint: Endpoint,
    pub settings: FleetSection,
    /// Who may connect and fetch: configured peers and `members` (replaced on a reload).
    pub members: Arc<gate::Members>,
    /// The upload limit, applied to every chunk group sent (changed on a reload).
    pub pacer: Arc<gate::Pacer>,
    /// The least round trip seen to each peer, for the upload slots (the owner writes it).
    pub nearness: Arc<gate::Nearness>,
    /// The owner of what is pending, refused and relayed, and of the peer table.
    pub core: CoreHandle,
    /// Woken when a peer's holdings change or a peer connects: fetches waiting for a source.
    pub changed: Notify,
    /// Woken when a read-through client starts waiting for a file: the fetches start it.
    pub wanted_changed: Notify,
    /// One blob-connection dial at a time per peer (fetch.rs).
    pub blob_dials: dial::DialLocks<fetch::SourceError>,
    pub uploads: Arc<UploadStats>,
    /// Verified bytes fetched from fleet members (not from a publisher): the gate judges a
    /// slot holder's take against it.
    pub inflow: Arc<std::sync::atomic::AtomicU64>,
    /// Each fetch's source and rate, recent refusals: for the status page.
    pub progress: progress::Progress,
    /// The boot policy this node holds: offers go to it, catch-up sends it.
    pub held: HeldPolicy,
    /// This site's machines, for members that ask (`netboot clients --fleet`).
    pub inventory: Inventory,
}

impl Shared {
    /// A short name of a peer for logs: its configured address, or its id's short form.
    pub(crate) fn label(&self, id: &EndpointId) -> String {
        match self.members.get().peers.iter().find(|p| p.id == *id) {
            Some(p) => format!("{} ({})", p.host, id.fmt_short()),
            None => id.fmt_short().to_string(),
        }
    }
}

/// A running fleet peer.
pub struct Fleet {
    shared: Arc<Shared>,
    router: Router,
    maintenance: tokio::task::JoinHandle<()>,
    core: tokio::task::JoinHandle<()>,
}

/// What the fleet is doing, for operators and tests (`/fleet/status.json`; see [`FleetView`]).
#[derive(Clone)]
pub struct FleetStatus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FleetStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FleetStatus")
    }
}

impl FleetStatus {
    /// Per image name: seconds from admitting its newest release here to committing it.
    pub fn sync_lag(&self) -> Vec<(String, f64)> {
        self.shared.progress.sync_lag()
    }

    /// Every site's machines: this node's and each connected peer's (`/fleet/clients.json`).
    pub async fn machines(&self) -> crate::clients::fleet::FleetClientsView {
        inventory::ask_all(&self.shared).await
    }
}

/// Who may connect and fetch: the configured peers and the further members.
fn member_list(peers: &[PeerAddr], members: &[config::MemberId]) -> gate::MemberList {
    gate::MemberList {
        ids: peers
            .iter()
            .map(|p| p.id)
            .chain(members.iter().map(|m| m.0))
            .collect(),
        peers: peers.to_vec(),
    }
}

/// What a config reload changes in a running fleet.
#[derive(Clone)]
pub struct FleetLive {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FleetLive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FleetLive")
    }
}

impl FleetLive {
    /// A new peer list and member list: added peers are dialled within
    /// [`links::MAINTAIN_EVERY`]; links to nodes that are no longer members are closed (a
    /// removed peer still listed in `members` stays connected, it is just not dialled).
    pub fn set_peers(&self, peers: &[PeerAddr], members: &[config::MemberId]) {
        let list = member_list(peers, members);
        let ids = list.ids.clone();
        self.shared.members.replace(list);
        self.shared
            .core
            .post(core::Event::Peer(core::PeerEvent::Reconfigure {
                peers: peers.to_vec(),
                members: ids,
            }));
    }

    /// A new fetch policy: offers are decided by it from now on, and releases passed on
    /// before that it now covers are fetched at once.
    pub fn set_fetch(&self, fetch: &[config::NamePattern]) {
        self.shared.core.post(core::Event::SetFetch(fetch.to_vec()));
    }

    /// A new upload limit: from the next chunk group on, for running uploads too.
    pub fn set_upload_limit(&self, limit: Option<config::Rate>) {
        self.shared.pacer.set(limit);
        tracing::info!(
            "fleet: upload limit now {}",
            limit.map_or_else(|| "unlimited".to_string(), |r| r.to_string())
        );
    }
}

/// This node's endpoint id, from its data dir (created on first use).
pub fn node_id(data_dir: &Path) -> Result<EndpointId, FleetError> {
    Ok(identity::load_or_create(data_dir)?.public())
}

impl Fleet {
    pub async fn start(
        settings: FleetSection,
        data_dir: &Path,
        store: Arc<Store>,
        held: HeldPolicy,
        inventory: Inventory,
    ) -> Result<Self, FleetError> {
        let key = identity::load_or_create(data_dir)?;
        let relay_mode = match &settings.relay {
            None => RelayMode::Disabled,
            Some(url) => {
                let parsed: iroh::RelayUrl = url.parse().map_err(|e| FleetError::Relay {
                    url: url.clone(),
                    message: format!("{e}"),
                })?;
                RelayMode::Custom(parsed.into())
            }
        };
        let bind_err = |e: &dyn std::fmt::Display| FleetError::Bind {
            addr: settings.listen.to_string(),
            message: e.to_string(),
        };
        // Minimal preset: no public relays, no DNS/pkarr address publishing or lookup. Peers
        // are dialled at their configured addresses; nothing leaves the organisation's network.
        let endpoint = Endpoint::builder(presets::Minimal)
            .secret_key(key)
            .relay_mode(relay_mode)
            .clear_address_lookup()
            .transport_config(transport::quic_config(settings.congestion, settings.window))
            .bind_addr(settings.listen)
            .map_err(|e| bind_err(&e))?
            .bind()
            .await
            .map_err(|e| bind_err(&e))?;

        let members = Arc::new(gate::Members::new(member_list(
            &settings.peers,
            &settings.members,
        )));
        let pacer = Arc::new(gate::Pacer::new(settings.upload_limit));
        let uploads = Arc::new(UploadStats::default());
        let nearness = Arc::new(gate::Nearness::default());
        let inflow = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let events = gate::provider_events(
            members.clone(),
            nearness.clone(),
            pacer.clone(),
            settings.upload_slots.max(1),
            uploads.clone(),
            inflow.clone(),
        );
        let blobs = BlobsProtocol::new(&store.blob_api(), Some(events));

        let (handle, events, view) = core::channel();
        let shared = Arc::new(Shared {
            store: store.clone(),
            endpoint: endpoint.clone(),
            members,
            pacer,
            nearness,
            core: handle,
            changed: Notify::new(),
            wanted_changed: Notify::new(),
            blob_dials: dial::DialLocks::default(),
            uploads,
            inflow,
            progress: Default::default(),
            inventory,
            settings,
            held,
        });
        let router = Router::builder(endpoint.clone())
            .accept(iroh_blobs::ALPN, blobs)
            .accept(FLEET_ALPN, links::ControlProtocol(shared.clone()))
            .spawn();

        tracing::info!(
            "fleet: endpoint {} on {:?}; congestion {}, window {}, streams {}; {} peers, {} further members{}{}",
            endpoint.id(),
            endpoint.bound_sockets(),
            shared.settings.congestion,
            shared.settings.window,
            shared.settings.streams,
            shared.settings.peers.len(),
            shared.settings.members.len(),
            shared
                .settings
                .upload_limit
                .map(|r| format!(", upload limit {r}"))
                .unwrap_or_default(),
            shared
                .settings
                .relay
                .as_ref()
                .map(|r| format!(", relay {r}"))
                .unwrap_or_default(),
        );

        if shared.settings.window.risks_reassembly_limit() {
            tracing::warn!(
                "fleet: [fleet] window = \"{}\" is above ~2.7 MiB: on a link that loses packets the \
                 receiving node's QUIC stack closes the connection when more than that is held \
                 behind a lost packet, and the transfer restarts (docs/configuration.md)",
                shared.settings.window
            );
        }

        let pending_dir = PendingDir::new(data_dir);
        let mut resume = Vec::new();
        for release in pending_dir.load() {
            match store.check_admission(&release) {
                Ok(()) => {
                    tracing::info!(
                        "fleet: resuming {} v{} (admitted before the restart)",
                        release.name,
                        release.version
                    );
                    resume.push(release);
                }
                Err(e) => {
                    tracing::info!(
                        "fleet: dropping pending {} v{}: {e}",
                        release.name,
                        release.version
                    );
                    pending_dir.remove(&release.name, release.version);
                    let _ = store.unprotect_fetch(&release.name, release.version).await;
                }
            }
        }
        let core = tokio::spawn(core::run(shared.clone(), pending_dir, events, view));
        for release in resume {
            shared.core.send(core::Event::Resume(release)).await;
        }
        let maintenance = tokio::spawn(links::maintain(shared.clone()));
        Ok(Self {
            shared,
            router,
            maintenance,
            core,
        })
    }

    pub fn id(&self) -> EndpointId {
        self.shared.endpoint.id()
    }

    /// Tells the fleet about a release committed locally (`netboot publish` into this node's
    /// data dir while it runs is refused by the store lock, so this is for imports and tests).
    pub fn announce_complete(&self, release: &VerifiedRelease) {
        let (core, release) = (self.shared.core.clone(), release.clone());
        tokio::spawn(async move { core.send(core::Event::Committed(release)).await });
    }

    /// A handle for a config reload: peers, members and the upload limit change live.
    pub fn live(&self) -> FleetLive {
        FleetLive {
            shared: self.shared.clone(),
        }
    }

    /// A handle for `/fleet/status.json`.
    pub fn status_source(&self) -> FleetStatus {
        FleetStatus {
            shared: self.shared.clone(),
        }
    }

    /// Read-through access for the HTTP server.
    pub fn read_through(&self) -> readthrough::ReadThrough {
        readthrough::ReadThrough::new(self.shared.clone())
    }

    pub async fn shutdown(self) {
        self.maintenance.abort();
        let (done, stopped) = tokio::sync::oneshot::channel();
        self.shared.core.send(core::Event::Shutdown(done)).await;
        let _ = stopped.await;
        self.core.abort();
        if let Err(e) = self.router.shutdown().await {
            tracing::warn!("fleet: shutdown: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
