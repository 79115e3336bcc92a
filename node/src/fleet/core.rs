//! The one owner of the fleet's mutable state: which release of each name is being fetched
//! (pending), which releases were refused or passed on without fetching, and the peer table
//! (links, round trips, holdings, backoff), and the files read-through clients wait for.
//!
//! Everything that changes that state is an [`Event`] on one channel, handled in order by one
//! task ([`run`]). The rules are [`super::decide`]'s; the I/O is the adapters': `control`
//! answers peers and forwards their offers here, `links` forwards catalogs, `fetch` moves
//! bytes and reports back, `announce` sends offers out, `pending` keeps the list on disk.
//! Readers (read-through, status, catalog) see the pending list through a watch channel, a
//! snapshot this task replaces whole.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use iroh::{endpoint::Connection, EndpointAddr, EndpointId};
use netboot_proto::{
    fleet::{Holding, Offer, Response},
    policy::{SignedPolicy, VerifiedPolicy},
    ImageName, Refusal, ReleaseId, SignedRelease, VerifiedRelease,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    announce,
    config::{wants, NamePattern, PeerAddr},
    decide::{self, Busy, Candidate, Fault, OfferDecision, OfferFacts, Remembered},
    fetch,
    peers::{Link, PeerTable},
    pending::PendingDir,
    policy_offer::{self, PolicyStep},
    Shared,
};
use crate::{fsutil::now_unix, policy::held::Refused, store::AcceptError};

/// How many refused (and relayed) release ids are remembered to keep the log quiet.
const REMEMBERED: usize = 4096;
/// Events waiting for the owner; senders wait when it is behind.
const QUEUE: usize = 256;

/// The releases being fetched, by name: what readers see.
pub(crate) type PendingView = Arc<HashMap<ImageName, VerifiedRelease>>;

pub(crate) enum Event {
    /// An offer from a peer (an announcement, or an entry of its catalog), to be answered.
    Offer {
        from: EndpointId,
        offer: Offer,
        reply: oneshot::Sender<Response>,
    },
    /// `netboot publish --to`: fetch `release` from the publisher over `conn`. The answer is
    /// None once it is pending, or why not.
    Publish {
        from: EndpointId,
        conn: Connection,
        release: VerifiedRelease,
        reply: oneshot::Sender<Option<String>>,
    },
    /// A signed boot policy from a peer (an announcement, catch-up) or `policy publish --to`,
    /// to be answered.
    Policy {
        from: EndpointId,
        signed: Vec<u8>,
        reply: oneshot::Sender<Response>,
    },
    /// A release admitted before a restart (already checked again).
    Resume(VerifiedRelease),
    /// A fetch has ended.
    Fetched {
        release: VerifiedRelease,
        outcome: Fetched,
    },
    /// A read-through client started (`waiting`) or stopped waiting for a file.
    Wanted { hash: blake3::Hash, waiting: bool },
    /// The files clients wait for now.
    WantedFiles(oneshot::Sender<Vec<blake3::Hash>>),
    /// Committed here without the fleet (import, tests): offer it to every peer.
    Committed(VerifiedRelease),
    /// Something about a peer, or a question about peers.
    Peer(PeerEvent),
    /// A reloaded `[fleet] fetch`: the names this site fetches from now on.
    SetFetch(Vec<NamePattern>),
    /// Stop every fetch; answered when done.
    Shutdown(oneshot::Sender<()>),
}

/// Events of the peer table ([`PeerTable`]); the answers are its own.
pub(crate) enum PeerEvent {
    /// A control link came up; answered true if it is now the one in use.
    LinkUp {
        id: EndpointId,
        conn: Connection,
        reply: oneshot::Sender<bool>,
    },
    /// A control link closed or failed.
    LinkDown { id: EndpointId, conn: Connection },
    /// A ping's round trip.
    Rtt { id: EndpointId, rtt: Duration },
    /// A dial failed, and why.
    Unreachable { id: EndpointId, why: String },
    /// A configured peer's name resolved; answered with the address to dial.
    Resolved {
        id: EndpointId,
        addrs: Vec<SocketAddr>,
        reply: oneshot::Sender<EndpointAddr>,
    },
    /// The control links to keep up.
    Links(oneshot::Sender<Vec<Link>>),
    /// The configured address of a peer, to dial it.
    Configured {
        id: EndpointId,
        reply: oneshot::Sender<Option<PeerAddr>>,
    },
    /// The sources of a release, in the order to try.
    Sources {
        release: ReleaseId,
        reply: oneshot::Sender<Vec<Candidate>>,
    },
    /// The blob connection to a peer, and where to dial it.
    BlobLink {
        id: EndpointId,
        reply: oneshot::Sender<Option<(Option<Connection>, EndpointAddr)>>,
    },
    /// A blob connection opened (Some) or found closed (None).
    SetBlobLink {
        id: EndpointId,
        conn: Option<Connection>,
    },
    /// Verified bytes received from a peer (negative: taken back).
    Credit { id: EndpointId, bytes: i64 },
    /// A peer to leave alone until then.
    Avoid {
        id: EndpointId,
        fault: Fault,
        until: Instant,
    },
    /// Bytes received from each peer (label, bytes).
    Received(oneshot::Sender<HashMap<EndpointId, (String, u64)>>),
    /// The peers for `/fleet/status.json` and the status page.
    Status(oneshot::Sender<Vec<super::view::PeerView>>),
    /// A config reload's peer list, and everyone who may connect now.
    Reconfigure {
        peers: Vec<PeerAddr>,
        members: std::collections::HashSet<EndpointId>,
    },
}

/// How a fetch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetched {
    /// Committed to the store: announce it.
    Committed,
    /// The store refused it at commit (a newer version arrived meanwhile): drop it.
    Refused,
    /// Held and verified, but the store could not commit it: stays pending (on disk) so a
    /// restart retries.
    NotCommitted,
}

/// How adapters reach the owner.
#[derive(Clone)]
pub(crate) struct CoreHandle {
    tx: mpsc::Sender<Event>,
    pending: watch::Receiver<PendingView>,
}

impl CoreHandle {
    /// The answer to an offer from `from`.
    pub async fn offer(&self, from: EndpointId, offer: Offer) -> Response {
        let (reply, answer) = oneshot::channel();
        let event = Event::Offer { from, offer, reply };
        if self.tx.send(event).await.is_err() {
            return shutting_down();
        }
        answer.await.unwrap_or_else(|_| shutting_down())
    }

    /// The answer to a boot policy offered by `from`.
    pub async fn policy(&self, from: EndpointId, signed: Vec<u8>) -> Response {
        let (reply, answer) = oneshot::channel();
        let event = Event::Policy {
            from,
            signed,
            reply,
        };
        if self.tx.send(event).await.is_err() {
            return shutting_down();
        }
        answer.await.unwrap_or_else(|_| shutting_down())
    }

    /// None once `release` is pending (fetched from the publisher), or why it is refused.
    pub async fn publish(
        &self,
        from: EndpointId,
        conn: Connection,
        release: VerifiedRelease,
    ) -> Option<String> {
        let (reply, answer) = oneshot::channel();
        let event = Event::Publish {
            from,
            conn,
            release,
            reply,
        };
        if self.tx.send(event).await.is_err() {
            return Some("the node is shutting down".into());
        }
        answer
            .await
            .unwrap_or_else(|_| Some("the node is shutting down".into()))
    }

    pub async fn send(&self, event: Event) {
        // Fails only after shutdown, when nothing is left to tell.
        let _ = self.tx.send(event).await;
    }

    /// Sends from code that cannot wait (a drop): queued now, or by a task if the queue is
    /// full.
    pub fn post(&self, event: Event) {
        if let Err(mpsc::error::TrySendError::Full(event)) = self.tx.try_send(event) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let tx = self.tx.clone();
                rt.spawn(async move { tx.send(event).await });
            }
        }
    }

    /// The files read-through clients wait for now.
    pub async fn wanted(&self) -> Vec<blake3::Hash> {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Event::WantedFiles(reply)).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    pub async fn peer(&self, event: PeerEvent) {
        self.send(Event::Peer(event)).await;
    }

    /// Asks the peer table; None only while shutting down.
    pub async fn ask<R>(&self, ask: impl FnOnce(oneshot::Sender<R>) -> PeerEvent) -> Option<R> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Event::Peer(ask(reply))).await.ok()?;
        answer.await.ok()
    }

    /// The release of `name` being fetched, if any.
    pub fn pending(&self, name: &ImageName) -> Option<VerifiedRelease> {
        self.pending.borrow().get(name).cloned()
    }

    /// Every release being fetched.
    pub fn all_pending(&self) -> Vec<VerifiedRelease> {
        let mut list: Vec<VerifiedRelease> = self.pending.borrow().values().cloned().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}

fn shutting_down() -> Response {
    Response::Refused {
        reason: "the node is shutting down".into(),
    }
}

/// The channel to the owner and its receiving end, for [`run`].
pub(crate) fn channel() -> (
    CoreHandle,
    mpsc::Receiver<Event>,
    watch::Sender<PendingView>,
) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (view_tx, view_rx) = watch::channel(PendingView::default());
    (
        CoreHandle {
            tx,
            pending: view_rx,
        },
        rx,
        view_tx,
    )
}

/// A release being fetched and the task fetching it (None after a failed commit).
struct Pending {
    release: VerifiedRelease,
    task: Option<tokio::task::AbortHandle>,
}

struct Core {
    shared: Arc<Shared>,
    peers: PeerTable,
    /// Files read-through clients wait for, once per waiting client.
    wanted: Vec<blake3::Hash>,
    pending: HashMap<ImageName, Pending>,
    pending_dir: PendingDir,
    view: watch::Sender<PendingView>,
    refused: Remembered<String>,
    /// Releases passed on without fetching (kept whole: a reloaded fetch policy that now
    /// covers one starts fetching it without waiting for a peer to offer it again).
    relayed: Remembered<VerifiedRelease>,
    /// `[fleet] fetch` as last (re)loaded.
    fetch: Vec<NamePattern>,
}

/// The owner's loop: one event at a time, until shutdown.
pub(crate) async fn run(
    shared: Arc<Shared>,
    pending_dir: PendingDir,
    mut events: mpsc::Receiver<Event>,
    view: watch::Sender<PendingView>,
) {
    let fetch = shared.settings.fetch.clone();
    let mut core = Core {
        peers: PeerTable::new(&shared.settings.peers),
        wanted: Vec::new(),
        shared,
        pending: HashMap::new(),
        pending_dir,
        view,
        refused: Remembered::new(REMEMBERED),
        relayed: Remembered::new(REMEMBERED),
        fetch,
    };
    while let Some(event) = events.recv().await {
        match event {
            Event::Offer { from, offer, reply } => {
                let _ = reply.send(core.on_offer(from, offer));
            }
            Event::Publish {
                from,
                conn,
                release,
                reply,
            } => {
                let _ = reply.send(core.on_publish(from, conn, release));
            }
            Event::Policy {
                from,
                signed,
                reply,
            } => {
                let _ = reply.send(core.on_policy(from, signed));
            }
            Event::Resume(release) => {
                core.start_pending(release);
            }
            Event::Fetched { release, outcome } => core.on_fetched(release, outcome),
            Event::Wanted { hash, waiting } => {
                if waiting {
                    core.wanted.push(hash);
                    // The fetches start it now, not at their next look (fetch.rs).
                    core.shared.wanted_changed.notify_waiters();
                } else if let Some(i) = core.wanted.iter().position(|h| *h == hash) {
                    core.wanted.remove(i);
                }
            }
            Event::WantedFiles(reply) => {
                let _ = reply.send(core.wanted.clone());
            }
            Event::Committed(release) => core.broadcast(&release, Holding::Complete, None),
            Event::Peer(event) => core.on_peer(event),
            Event::SetFetch(patterns) => core.on_set_fetch(patterns),
            Event::Shutdown(done) => {
                for (_, p) in core.pending.drain() {
                    if let Some(t) = p.task {
                        t.abort();
                    }
                }
                let _ = done.send(());
                return;
            }
        }
    }
}

impl Core {
    fn on_offer(&mut self, from: EndpointId, offer: Offer) -> Response {
        let shared = Arc::clone(&self.shared);
        let label = self.peers.label(&from);
        let release = match SignedRelease::open(&offer.signed) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    "fleet: DROPPED announcement from {label}: {e} — not fetched, not passed on"
                );
                return Response::Refused {
                    reason: e.to_string(),
                };
            }
        };
        let id = release.id();
        let what = format!("{} v{}", release.name, release.version);
        let facts = self.offer_facts(&release);
        let decision = decide::offer(&facts);
        if decision.records_holder() {
            self.peers.record_holding(from, id, offer.holding);
        }
        match decision {
            OfferDecision::AlreadyHave | OfferDecision::AlreadyRelayed => Response::Ack,
            OfferDecision::AnotherSource => {
                shared.changed.notify_waiters();
                Response::Ack
            }
            OfferDecision::StillRefused(reason) => {
                tracing::debug!("fleet: {what} from {label} again: still refused ({reason})");
                Response::Refused { reason }
            }
            OfferDecision::Refuse { reason, quiet } => {
                let text =
                    format!("{what} from {label} REFUSED: {reason} — not fetched, not passed on");
                if quiet {
                    tracing::info!("fleet: {text}");
                } else {
                    tracing::warn!("fleet: {text}");
                }
                self.refused.insert(id, reason.to_string());
                shared.progress.refused(
                    &release.name,
                    release.version,
                    &label,
                    &reason.to_string(),
                );
                Response::Refused {
                    reason: reason.to_string(),
                }
            }
            OfferDecision::Busy(Busy::Conflicting) => {
                tracing::warn!(
                    "fleet: {what} from {label} differs from the {what} being fetched (same version, other content): ignored"
                );
                Response::Refused {
                    reason: format!("a different {what} is already being fetched"),
                }
            }
            OfferDecision::Busy(Busy::Newer { pending }) => {
                tracing::info!("fleet: {what} from {label} ignored: v{pending} is being fetched");
                Response::Refused {
                    reason: format!("v{pending} is being fetched"),
                }
            }
            OfferDecision::Relay => {
                tracing::info!(
                    "fleet: {what} from {label} verified; passing it on, not fetched here ([fleet] fetch)"
                );
                self.relayed.insert(id, release.clone());
                self.broadcast(&release, Holding::Relaying, Some(from));
                Response::Ack
            }
            OfferDecision::Fetch => {
                if self.start_pending(release.clone()) {
                    tracing::info!(
                        "fleet: learned of {what} from {label} (publisher {}, {} files, {} bytes): fetching",
                        release.publisher,
                        release.files.len(),
                        release.total_size()
                    );
                    self.broadcast(&release, Holding::Fetching, Some(from));
                }
                Response::Ack
            }
        }
    }

    /// A boot policy offered by `from`: the held policy's owner decides; a newly held policy
    /// is passed on to every other connected peer, a refused one stops here (logged).
    fn on_policy(&mut self, from: EndpointId, signed: Vec<u8>) -> Response {
        let label = self.peers.label(&from);
        let opened = SignedPolicy::open(&signed);
        let (outcome, text) = match &opened {
            Err(e) => (Err(None), format!("{e}")),
            Ok(policy) => match self.shared.held.offer(policy.clone(), now_unix()) {
                Ok(held) => (
                    Ok(()),
                    format!(
                        "boot policy v{} from {label} (publisher {}, {} rules): held and applied now",
                        held.policy.version,
                        held.policy.publisher,
                        held.policy.rules.len()
                    ),
                ),
                Err(refused) => (Err(Some(refused)), String::new()),
            },
        };
        let step = policy_offer::step(outcome.as_ref().map(|_| ()).map_err(|e| e.as_ref()));
        let reason = match &outcome {
            Ok(()) => None,
            Err(Some(refused)) => Some(refused.to_string()),
            Err(None) => Some(text.clone()),
        };
        match (step, &reason) {
            (PolicyStep::Relay, _) => {
                tracing::info!("fleet: {text}; passing it on");
                if let Ok(policy) = opened {
                    self.broadcast_policy(&policy, Some(from));
                }
                Response::Ack
            }
            (PolicyStep::Quiet, Some(reason)) => match outcome {
                Err(Some(Refused::AlreadyHeld(_))) => {
                    tracing::debug!("fleet: boot policy from {label}: {reason}");
                    Response::Ack
                }
                _ => {
                    tracing::info!(
                        "fleet: boot policy from {label} refused: {reason} — not applied, not passed on"
                    );
                    Response::Refused {
                        reason: reason.clone(),
                    }
                }
            },
            (_, reason) => {
                let reason = reason.clone().unwrap_or_default();
                tracing::warn!(
                    "fleet: boot policy from {label} REFUSED: {reason} — not applied, not passed on"
                );
                Response::Refused { reason }
            }
        }
    }

    /// Offers the held policy to every connected peer but `except`.
    fn broadcast_policy(&self, policy: &VerifiedPolicy, except: Option<EndpointId>) {
        announce::policy(&self.shared, policy, self.connected_except(except));
    }

    fn on_publish(
        &mut self,
        from: EndpointId,
        conn: Connection,
        release: VerifiedRelease,
    ) -> Option<String> {
        let what = format!("{} v{}", release.name, release.version);
        if let Err(reason) = admission(&self.shared, &release) {
            tracing::warn!("fleet: publish of {what} from {from} REFUSED: {reason}");
            return Some(reason.to_string());
        }
        if let Some(p) = self.pending.get(&release.name) {
            if p.release.version >= release.version {
                return Some(format!(
                    "v{} of {} is being fetched",
                    p.release.version, release.name
                ));
            }
        }
        tracing::info!(
            "fleet: publish of {what} from {from} (publisher {}, {} files, {} bytes): fetching from the publisher",
            release.publisher,
            release.files.len(),
            release.total_size()
        );
        self.peers.adopt_publisher(from, conn, release.id());
        if self.start_pending(release.clone()) {
            self.broadcast(&release, Holding::Fetching, Some(from));
        }
        None
    }

    /// Records a release as pending (on disk, so a restart resumes it) and starts its fetch,
    /// replacing an older pending version of the same name. False when this release (or a
    /// newer one) is already pending: offers of one release arrive from several peers.
    /// What the pure offer decision needs to know about `release` here.
    fn offer_facts(&self, release: &VerifiedRelease) -> OfferFacts {
        let id = release.id();
        OfferFacts {
            id,
            version: release.version,
            committed: self
                .shared
                .store
                .committed(&release.name, release.version)
                .map(|r| r.verified.id()),
            pending: self
                .pending
                .get(&release.name)
                .map(|p| (p.release.id(), p.release.version)),
            relayed: self.relayed.get(&id).is_some(),
            refused: self.refused.get(&id).cloned(),
            admission: admission(&self.shared, release),
            wanted: wants(&self.fetch, &release.name),
        }
    }

    /// A reloaded fetch policy. Releases passed on before and now covered are fetched at
    /// once (the newest of each name, if it is still admitted and not held); fetches of names
    /// no longer covered run to their end (stopping half way would only waste what came).
    fn on_set_fetch(&mut self, patterns: Vec<NamePattern>) {
        let listed = |p: &[NamePattern]| {
            p.iter()
                .map(|p| p.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        tracing::info!(
            "fleet: fetch policy now [{}] (was [{}])",
            listed(&patterns),
            listed(&self.fetch)
        );
        self.fetch = patterns;
        let fetch = self.fetch.clone();
        let mut now_wanted = self.relayed.take_where(|r| wants(&fetch, &r.name));
        now_wanted.sort_by(|a, b| (&a.name, b.version).cmp(&(&b.name, a.version)));
        now_wanted.dedup_by(|later, first| later.name == first.name);
        for release in now_wanted {
            let what = format!("{} v{}", release.name, release.version);
            // Taken out of `relayed` above, so it is decided afresh, as a first offer.
            match decide::offer(&self.offer_facts(&release)) {
                OfferDecision::Fetch => {
                    if self.start_pending(release.clone()) {
                        tracing::info!(
                            "fleet: {what}, passed on before, is covered by the reloaded fetch policy: fetching"
                        );
                        self.broadcast(&release, Holding::Fetching, None);
                    }
                }
                other => tracing::info!(
                    "fleet: {what}, passed on before, not fetched after the reload: {other:?}"
                ),
            }
        }
    }

    fn start_pending(&mut self, release: VerifiedRelease) -> bool {
        if let Some(existing) = self.pending.get(&release.name) {
            if existing.release.version >= release.version {
                return false;
            }
        }
        let task = tokio::spawn(fetch::run(self.shared.clone(), release.clone()));
        let old = self.pending.insert(
            release.name.clone(),
            Pending {
                release: release.clone(),
                task: Some(task.abort_handle()),
            },
        );
        if let Some(old) = old {
            if let Some(t) = old.task {
                t.abort();
            }
            tracing::info!(
                "fleet: {} v{} superseded by v{} before it completed",
                old.release.name,
                old.release.version,
                release.version
            );
            self.pending_dir
                .remove(&old.release.name, old.release.version);
            let store = self.shared.store.clone();
            tokio::spawn(async move {
                let _ = store
                    .unprotect_fetch(&old.release.name, old.release.version)
                    .await;
            });
        }
        if let Err(e) = self.pending_dir.save(&release) {
            tracing::warn!(
                "fleet: cannot record pending {} v{} on disk ({e}); a restart will re-learn it from peers",
                release.name,
                release.version
            );
        }
        self.publish_view();
        true
    }

    fn on_fetched(&mut self, release: VerifiedRelease, outcome: Fetched) {
        let current = self
            .pending
            .get_mut(&release.name)
            .filter(|p| p.release.id() == release.id());
        if outcome == Fetched::NotCommitted {
            // Kept pending, on disk too; nothing fetches it until a restart.
            if let Some(p) = current {
                p.task = None;
            }
            return;
        }
        self.shared.progress.finished(&release.name);
        if current.is_some() {
            self.pending.remove(&release.name);
            self.publish_view();
        }
        self.pending_dir.remove(&release.name, release.version);
        if outcome == Fetched::Committed {
            self.broadcast(&release, Holding::Complete, None);
        }
    }

    /// Every connected peer but `except`: (label, id, control link).
    fn connected_except(
        &self,
        except: Option<EndpointId>,
    ) -> Vec<(String, EndpointId, Connection)> {
        self.peers
            .connected()
            .into_iter()
            .filter(|(id, _)| Some(*id) != except)
            .map(|(id, conn)| (self.peers.label(&id), id, conn))
            .collect()
    }

    /// Offers `release` to every connected peer but `except`.
    fn broadcast(&self, release: &VerifiedRelease, holding: Holding, except: Option<EndpointId>) {
        let to = self.connected_except(except);
        announce::broadcast(&self.shared, release, holding, to);
    }

    fn on_peer(&mut self, event: PeerEvent) {
        let peers = &mut self.peers;
        match event {
            PeerEvent::LinkUp { id, conn, reply } => {
                if peers.link_up(id, conn) {
                    tracing::info!("fleet: connected to peer {}", peers.label(&id));
                    let _ = reply.send(true);
                } else {
                    let _ = reply.send(false);
                }
            }
            PeerEvent::LinkDown { id, conn } => {
                if peers.link_down(id, &conn) {
                    tracing::info!(
                        "fleet: link to peer {} closed{}",
                        peers.label(&id),
                        conn.close_reason()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    );
                }
            }
            PeerEvent::Rtt { id, rtt } => {
                self.shared.nearness.saw(id, rtt);
                if peers.rtt(id, rtt) {
                    tracing::info!(
                        "fleet: peer {} round trip {:.1} ms",
                        peers.label(&id),
                        rtt.as_secs_f64() * 1e3
                    );
                }
            }
            PeerEvent::Unreachable { id, why } => {
                if peers.unreachable(id) {
                    tracing::warn!(
                        "fleet: peer {} unreachable: {why}; retrying after {:?}, then less often (up to every {:?}), serving what this node has",
                        peers.label(&id),
                        super::redial::FIRST_WAIT,
                        super::redial::MAX_WAIT
                    );
                }
            }
            PeerEvent::Resolved { id, addrs, reply } => {
                let _ = reply.send(peers.resolved(id, addrs));
            }
            PeerEvent::Links(reply) => {
                let _ = reply.send(peers.links());
            }
            PeerEvent::Configured { id, reply } => {
                let _ = reply.send(peers.configured(&id));
            }
            PeerEvent::Sources { release, reply } => {
                let _ = reply.send(peers.candidates(&release, Instant::now()));
            }
            PeerEvent::BlobLink { id, reply } => {
                let _ = reply.send(peers.blob_link(&id));
            }
            PeerEvent::SetBlobLink { id, conn } => peers.set_blob_link(id, conn),
            PeerEvent::Credit { id, bytes } => peers.credit(id, bytes),
            PeerEvent::Avoid { id, fault, until } => peers.avoid(id, fault, until),
            PeerEvent::Received(reply) => {
                let _ = reply.send(peers.received());
            }
            PeerEvent::Status(reply) => {
                let _ = reply.send(peers.status(Instant::now()));
            }
            PeerEvent::Reconfigure {
                peers: list,
                members,
            } => {
                let changed = peers.reconfigure(&list, &members);
                for label in changed.added {
                    tracing::info!("fleet: peer {label} added by a config reload; dialling it");
                }
                for label in changed.removed {
                    tracing::info!(
                        "fleet: peer {label} removed by a config reload; no longer dialled"
                    );
                }
                for (label, conn) in changed.dropped {
                    tracing::info!("fleet: closing the link to {label}: no longer a fleet member");
                    conn.close(0u32.into(), b"no longer a fleet member");
                }
            }
        }
    }

    fn publish_view(&self) {
        let view: HashMap<ImageName, VerifiedRelease> = self
            .pending
            .iter()
            .map(|(n, p)| (n.clone(), p.release.clone()))
            .collect();
        self.view.send_replace(Arc::new(view));
    }
}

/// The admission rules of the store (trust, expiry, version above what is committed).
fn admission(shared: &Shared, release: &VerifiedRelease) -> Result<(), Refusal> {
    match shared.store.check_admission(release) {
        Ok(()) => Ok(()),
        Err(AcceptError::Refused(r)) => Err(r),
        Err(other) => {
            // check_admission only refuses; anything else is a bug worth seeing.
            tracing::warn!("fleet: admission check failed: {other}");
            Err(Refusal::Untrusted(release.publisher))
        }
    }
}
