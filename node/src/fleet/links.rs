//! Control connections to peers, whichever side opens them: accepting members' connections,
//! dialling configured peers, keeping them up, measuring round-trip time, and catching up on
//! what a peer holds when a connection (re)opens. Each link is served by `control`; what a
//! peer offers goes to the owner (`core`).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use iroh::{
    endpoint::Connection,
    protocol::{AcceptError, ProtocolHandler},
    EndpointId,
};
use netboot_proto::fleet::{Request, Response};

use super::{control, core::PeerEvent, redial::Redial, wire, Shared};

/// How often links are checked, dead ones redialled and RTTs re-measured.
pub(crate) const MAINTAIN_EVERY: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The control protocol's accepting side: members' links are adopted (and caught up with),
/// anyone's requests are served (a publisher needs no membership).
#[derive(Clone)]
pub(crate) struct ControlProtocol(pub Arc<Shared>);

impl std::fmt::Debug for ControlProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlProtocol")
    }
}

impl ProtocolHandler for ControlProtocol {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let shared = self.0.clone();
        let remote = conn.remote_id();
        let member = shared.members.contains(&remote);
        if member {
            adopt_control(&shared, remote, conn.clone()).await;
        }
        control::serve(shared, conn, remote, member).await;
        Ok(())
    }
}

pub(crate) async fn maintain(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(MAINTAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Dials report here how they ended; `Redial` decides which are due (redial.rs says why).
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut redial = Redial::new(shared.endpoint.id());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some((id, ok)) = done_rx.recv() => {
                redial.ended(id, ok, Instant::now());
                continue;
            }
        }
        let Some(links) = shared.core.ask(PeerEvent::Links).await else {
            return;
        };
        // Every live link (also of peers that dialled us) is pinged to keep its round trip
        // fresh; configured peers that are down are dialled when due.
        let mut down = Vec::new();
        for link in links {
            match link.control {
                Some(conn) => {
                    let shared = shared.clone();
                    tokio::spawn(async move { ping(&shared, link.id, &conn).await });
                }
                None if link.configured => down.push(link.id),
                None => {}
            }
        }
        for id in redial.due(&down, Instant::now()) {
            let (shared, done) = (shared.clone(), done_tx.clone());
            tokio::spawn(async move {
                let ok = dial(&shared, id).await;
                let _ = done.send((id, ok));
            });
        }
    }
}

/// Dials a configured peer's control link; true if it is up.
async fn dial(shared: &Arc<Shared>, id: EndpointId) -> bool {
    let Some(Some(peer)) = shared
        .core
        .ask(|reply| PeerEvent::Configured { id, reply })
        .await
    else {
        return false;
    };
    // Re-resolve each time: a DNS name may move.
    let addrs = match peer.resolve() {
        Ok(a) if !a.is_empty() => a,
        Ok(_) | Err(_) => {
            unreachable(shared, id, format!("cannot resolve {}", peer.host)).await;
            return false;
        }
    };
    let Some(addr) = shared
        .core
        .ask(|reply| PeerEvent::Resolved { id, addrs, reply })
        .await
    else {
        return false;
    };
    let attempt = tokio::time::timeout(
        CONNECT_TIMEOUT,
        shared
            .endpoint
            .connect(addr, netboot_proto::fleet::FLEET_ALPN),
    )
    .await;
    match attempt {
        Ok(Ok(conn)) => {
            adopt_control(shared, id, conn.clone()).await;
            let shared = shared.clone();
            tokio::spawn(control::serve(shared, conn, id, true));
            true
        }
        Ok(Err(e)) => {
            unreachable(shared, id, e.to_string()).await;
            false
        }
        Err(_) => {
            unreachable(shared, id, "no answer within 5 s".into()).await;
            false
        }
    }
}

async fn unreachable(shared: &Shared, id: EndpointId, why: String) {
    shared.core.peer(PeerEvent::Unreachable { id, why }).await;
}

/// Offers `conn` as the control link to `id` (the owner keeps the first live one); if it is
/// now the one in use, catches up with the peer.
async fn adopt_control(shared: &Arc<Shared>, id: EndpointId, conn: Connection) {
    let in_use = shared
        .core
        .ask(|reply| PeerEvent::LinkUp {
            id,
            conn: conn.clone(),
            reply,
        })
        .await;
    if in_use != Some(true) {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        ping(&shared, id, &conn).await;
        catch_up(&shared, id, &conn).await;
        shared.changed.notify_waiters();
    });
}

async fn ping(shared: &Shared, id: EndpointId, conn: &Connection) {
    let nonce = rand_nonce();
    let start = Instant::now();
    match wire::request(conn, &Request::Ping { nonce }).await {
        Ok(Response::Pong { nonce: n }) if n == nonce => {
            let rtt = start.elapsed();
            shared.core.peer(PeerEvent::Rtt { id, rtt }).await;
        }
        Ok(other) => tracing::debug!("fleet: odd answer to ping: {other:?}"),
        Err(e) => {
            tracing::debug!("fleet: ping to {} failed: {e}", shared.label(&id));
            conn.close(0u32.into(), b"ping failed");
            let conn = conn.clone();
            shared.core.peer(PeerEvent::LinkDown { id, conn }).await;
        }
    }
}

/// Asks a peer for the newest release of each name it knows, and handles each as an offer:
/// a node that was offline learns what it missed. Then asks for the boot policy it holds,
/// handled like an announcement of it (both sides of a new link ask, so whichever holds the
/// older policy, or none, catches up).
async fn catch_up(shared: &Arc<Shared>, id: EndpointId, conn: &Connection) {
    releases_catch_up(shared, id, conn).await;
    match wire::request(conn, &Request::PolicyCatalog).await {
        Ok(Response::Policy(Some(signed))) => {
            shared.core.policy(id, signed).await;
        }
        Ok(Response::Policy(None)) => {}
        Ok(other) => tracing::debug!("fleet: odd answer to a policy catalog: {other:?}"),
        Err(e) => tracing::debug!(
            "fleet: policy catalog from {} failed: {e}",
            shared.label(&id)
        ),
    }
}

async fn releases_catch_up(shared: &Arc<Shared>, id: EndpointId, conn: &Connection) {
    match wire::request(conn, &Request::Catalog).await {
        Ok(Response::Catalog(offers)) => {
            for offer in offers {
                // Awaited one by one: when catch-up ends, its offers are decided on.
                shared.core.offer(id, offer).await;
            }
        }
        Ok(Response::Refused { reason }) => tracing::warn!(
            "fleet: peer {} refused our catalog request: {reason} (is this node in its [fleet] peers or members?)",
            shared.label(&id)
        ),
        Ok(other) => tracing::debug!("fleet: odd answer to catalog: {other:?}"),
        Err(e) => tracing::debug!("fleet: catalog from {} failed: {e}", shared.label(&id)),
    }
}

fn rand_nonce() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}
