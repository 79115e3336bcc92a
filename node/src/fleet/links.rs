//! Connections to peers: dialling configured peers, keeping them up, measuring round-trip
//! time, and catching up on what a peer holds when a connection (re)opens.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use iroh::{endpoint::Connection, EndpointId};
use netboot_proto::{
    fleet::{Holding, Request, Response},
    ReleaseId,
};

use super::{announce, control, peers::alive, wire, Shared};

/// How often links are checked, dead ones redialled and RTTs re-measured.
const MAINTAIN_EVERY: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn maintain(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(MAINTAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for id in shared.peers.configured() {
            let live = shared.peers.get(&id, |p| alive(&p.control)).flatten();
            let shared = shared.clone();
            tokio::spawn(async move {
                match live {
                    Some(conn) => ping(&shared, id, &conn).await,
                    None => dial(&shared, id).await,
                }
            });
        }
        // Peers that dialled us: keep their RTT fresh too.
        for (id, conn) in shared.peers.connected() {
            if !shared.peers.configured().contains(&id) {
                let shared = shared.clone();
                tokio::spawn(async move { ping(&shared, id, &conn).await });
            }
        }
    }
}

async fn dial(shared: &Arc<Shared>, id: EndpointId) {
    let Some(peer) = shared.peers.get(&id, |p| p.configured.clone()).flatten() else {
        return;
    };
    // Re-resolve each time: a DNS name may move.
    let addrs = match peer.resolve() {
        Ok(a) if !a.is_empty() => a,
        Ok(_) | Err(_) => {
            note_unreachable(shared, id, &format!("cannot resolve {}", peer.host));
            return;
        }
    };
    let addr = shared.peers.entry(id, |p| {
        p.addrs = addrs;
        p.dial_addr()
    });
    let attempt = tokio::time::timeout(
        CONNECT_TIMEOUT,
        shared
            .endpoint
            .connect(addr, netboot_proto::fleet::FLEET_ALPN),
    )
    .await;
    match attempt {
        Ok(Ok(conn)) => {
            adopt_control(shared, id, conn.clone());
            let shared = shared.clone();
            tokio::spawn(control::serve(shared, conn, id, true));
        }
        Ok(Err(e)) => note_unreachable(shared, id, &e.to_string()),
        Err(_) => note_unreachable(shared, id, "no answer within 5 s"),
    }
}

fn note_unreachable(shared: &Shared, id: EndpointId, why: &str) {
    let first = shared.peers.entry(id, |p| {
        let first = !p.unreachable_logged;
        p.unreachable_logged = true;
        first
    });
    if first {
        tracing::warn!(
            "fleet: peer {} unreachable: {why}; retrying every {MAINTAIN_EVERY:?}, serving what this node has",
            shared.peers.label(&id)
        );
    }
}

/// Makes `conn` the control link to `id` unless one is up already (both sides may dial at
/// once; the second link is served but not used for requests, and no link is closed, so
/// neither side sees a spurious drop), then catches up with the peer.
pub(crate) fn adopt_control(shared: &Arc<Shared>, id: EndpointId, conn: Connection) {
    let was_down = shared.peers.entry(id, |p| {
        let was_down = alive(&p.control).is_none();
        if was_down {
            p.control = Some(conn.clone());
        }
        p.unreachable_logged = false;
        was_down
    });
    if !was_down {
        return;
    }
    tracing::info!("fleet: connected to peer {}", shared.peers.label(&id));
    let shared = shared.clone();
    tokio::spawn(async move {
        ping(&shared, id, &conn).await;
        catch_up(&shared, id, &conn).await;
        shared.changed.notify_waiters();
    });
}

/// The publisher of a `publish --to` session: a source holding the whole release, reached
/// over the connection it opened.
pub(crate) fn adopt_publisher(
    shared: &Arc<Shared>,
    id: EndpointId,
    conn: Connection,
    release: ReleaseId,
) {
    shared.peers.entry(id, |p| {
        p.blobs = Some(conn);
        // Nearest possible: the publisher is the one source that surely has every byte.
        p.rtt = Some(Duration::ZERO);
        p.holdings.insert(release, Holding::Complete);
    });
}

pub(crate) fn forget_control(shared: &Shared, id: EndpointId, conn: &Connection) {
    let dropped = shared.peers.entry(id, |p| {
        let same = p
            .control
            .as_ref()
            .is_some_and(|c| c.stable_id() == conn.stable_id());
        if same {
            p.control = None;
        }
        same
    });
    if dropped {
        tracing::info!(
            "fleet: link to peer {} closed{}",
            shared.peers.label(&id),
            conn.close_reason()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
}

async fn ping(shared: &Shared, id: EndpointId, conn: &Connection) {
    let nonce = rand_nonce();
    let start = Instant::now();
    match wire::request(conn, &Request::Ping { nonce }).await {
        Ok(Response::Pong { nonce: n }) if n == nonce => {
            let rtt = start.elapsed();
            let changed = shared.peers.entry(id, |p| {
                p.last_contact = Some(std::time::SystemTime::now());
                let old = p.rtt.replace(rtt);
                old.is_none_or(|o| o.abs_diff(rtt) > o / 2 + Duration::from_millis(2))
            });
            if changed {
                tracing::info!(
                    "fleet: peer {} round trip {:.1} ms",
                    shared.peers.label(&id),
                    rtt.as_secs_f64() * 1e3
                );
            }
        }
        Ok(other) => tracing::debug!("fleet: odd answer to ping: {other:?}"),
        Err(e) => {
            tracing::debug!("fleet: ping to {} failed: {e}", shared.peers.label(&id));
            conn.close(0u32.into(), b"ping failed");
            forget_control(shared, id, conn);
        }
    }
}

/// Asks a peer for the newest release of each name it knows, and handles each as an offer:
/// a node that was offline learns what it missed.
async fn catch_up(shared: &Arc<Shared>, id: EndpointId, conn: &Connection) {
    match wire::request(conn, &Request::Catalog).await {
        Ok(Response::Catalog(offers)) => {
            for offer in offers {
                announce::on_offer(shared, id, offer);
            }
        }
        Ok(Response::Refused { reason }) => tracing::warn!(
            "fleet: peer {} refused our catalog request: {reason} (is this node in its [fleet] peers or members?)",
            shared.peers.label(&id)
        ),
        Ok(other) => tracing::debug!("fleet: odd answer to catalog: {other:?}"),
        Err(e) => tracing::debug!("fleet: catalog from {} failed: {e}", shared.peers.label(&id)),
    }
}

fn rand_nonce() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}
