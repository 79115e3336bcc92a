//! Deciding on an offered release, and passing releases on.
//!
//! Every offer is checked in full (signature, trusted publisher, expiry, no rollback or
//! replay) before it is recorded, fetched or passed on. A refused offer is logged once,
//! remembered by its id so a peer repeating it cannot fill the log, and never propagated.

use std::sync::Arc;

use iroh::EndpointId;
use netboot_proto::{
    fleet::{Holding, Offer, Request, Response},
    Refusal, SignedRelease, VerifiedRelease,
};

use super::{fetch, links, wire, Pending, Shared};
use crate::store::AcceptError;

/// How many refused (and relayed) release ids are remembered to keep the log quiet.
const REMEMBERED: usize = 4096;

/// Handles an offer from a peer (`from`), returning the answer to send back.
pub(crate) fn on_offer(shared: &Arc<Shared>, from: EndpointId, offer: Offer) -> Response {
    let label = shared.peers.label(&from);
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

    // Already committed here: the peer tells us it holds it too.
    if let Some(stored) = shared.store.committed(&release.name, release.version) {
        if stored.verified.id() == id {
            shared.peers.record_holding(from, id, offer.holding);
            return Response::Ack;
        }
    }
    // Being fetched here: one more source.
    if let Some(p) = shared.pending_release(&release.name) {
        if p.id() == id {
            shared.peers.record_holding(from, id, offer.holding);
            shared.changed.notify_waiters();
            return Response::Ack;
        }
    }
    if shared
        .relayed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&id)
    {
        return Response::Ack;
    }
    if let Some(reason) = shared
        .refused
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
    {
        tracing::debug!("fleet: {what} from {label} again: still refused ({reason})");
        return Response::Refused {
            reason: reason.clone(),
        };
    }
    if let Err(reason) = admission(shared, &release) {
        let quiet = matches!(reason, Refusal::NotNewer { .. });
        let text = format!("{what} from {label} REFUSED: {reason} — not fetched, not passed on");
        if quiet {
            tracing::info!("fleet: {text}");
        } else {
            tracing::warn!("fleet: {text}");
        }
        let mut refused = shared.refused.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a peer inventing endless distinct forgeries must not grow memory.
        if refused.len() >= REMEMBERED {
            refused.clear();
        }
        refused.insert(id, reason.to_string());
        drop(refused);
        shared
            .progress
            .refused(&release.name, release.version, &label, &reason.to_string());
        return Response::Refused {
            reason: reason.to_string(),
        };
    }
    if let Some(p) = shared.pending_release(&release.name) {
        if p.version >= release.version {
            let reason = if p.version == release.version {
                tracing::warn!(
                    "fleet: {what} from {label} differs from the {what} being fetched (same version, other content): ignored"
                );
                format!("a different {what} is already being fetched")
            } else {
                tracing::info!(
                    "fleet: {what} from {label} ignored: v{} is being fetched",
                    p.version
                );
                format!("v{} is being fetched", p.version)
            };
            return Response::Refused { reason };
        }
    }
    shared.peers.record_holding(from, id, offer.holding);
    if !shared.settings.wants(&release.name) {
        tracing::info!(
            "fleet: {what} from {label} verified; passing it on, not fetched here ([fleet] fetch)"
        );
        let mut relayed = shared.relayed.lock().unwrap_or_else(|e| e.into_inner());
        if relayed.len() >= REMEMBERED {
            relayed.clear();
        }
        relayed.insert(id);
        drop(relayed);
        broadcast(shared, &release, Holding::Relaying, Some(from));
        return Response::Ack;
    }
    if start_pending(shared, release.clone()) {
        tracing::info!(
            "fleet: learned of {what} from {label} (publisher {}, {} files, {} bytes): fetching",
            release.publisher,
            release.files.len(),
            release.total_size()
        );
        broadcast(shared, &release, Holding::Fetching, Some(from));
    }
    Response::Ack
}

/// The admission rules of the store (trust, expiry, version above what is committed).
pub(crate) fn admission(shared: &Shared, release: &VerifiedRelease) -> Result<(), Refusal> {
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

/// Records a release as pending (on disk, so a restart resumes it) and starts its fetch,
/// replacing an older pending version of the same name. Returns false when this release (or
/// a newer one) is already pending: offers of one release arrive from several peers at once.
pub(crate) fn start_pending(shared: &Arc<Shared>, release: VerifiedRelease) -> bool {
    let old = {
        let mut pending = shared.lock_pending();
        if let Some(existing) = pending.get(&release.name) {
            if existing.release.version >= release.version {
                return false;
            }
        }
        // Spawned under the lock, so no second offer can start the same fetch meanwhile.
        let task = tokio::spawn(fetch::run(shared.clone(), release.clone()));
        pending.insert(
            release.name.clone(),
            Pending {
                release: release.clone(),
                task: Some(task.abort_handle()),
            },
        )
    };
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
        shared
            .pending_dir
            .remove(&old.release.name, old.release.version);
        let store = shared.store.clone();
        tokio::spawn(async move {
            let _ = store
                .unprotect_fetch(&old.release.name, old.release.version)
                .await;
        });
    }
    if let Err(e) = shared.pending_dir.save(&release) {
        tracing::warn!(
            "fleet: cannot record pending {} v{} on disk ({e}); a restart will re-learn it from peers",
            release.name,
            release.version
        );
    }
    true
}

/// Announces a committed release to every connected peer.
pub(crate) fn broadcast_complete(shared: &Arc<Shared>, release: &VerifiedRelease) {
    broadcast(shared, release, Holding::Complete, None);
}

/// Sends an offer to every peer we can reach, except `except` (where it came from). Peers
/// that are configured but not connected get it on their next connect through the catalog.
pub(crate) fn broadcast(
    shared: &Arc<Shared>,
    release: &VerifiedRelease,
    holding: Holding,
    except: Option<EndpointId>,
) {
    let offer = Offer {
        signed: release.signed().encode(),
        holding,
    };
    let what = format!("{} v{}", release.name, release.version);
    for (id, conn) in shared.peers.connected() {
        if Some(id) == except {
            continue;
        }
        let shared = shared.clone();
        let offer = offer.clone();
        let what = what.clone();
        tokio::spawn(async move {
            let label = shared.peers.label(&id);
            match wire::request(&conn, &Request::Announce(offer)).await {
                Ok(Response::Ack) => {
                    tracing::debug!("fleet: announced {what} ({holding:?}) to {label}")
                }
                Ok(Response::Refused { reason }) => {
                    tracing::debug!("fleet: {label} declined {what}: {reason}")
                }
                Ok(other) => {
                    tracing::debug!("fleet: {label} answered {other:?} to an announcement")
                }
                Err(e) => {
                    tracing::info!("fleet: announcing {what} to {label} failed: {e}");
                    links::forget_control(&shared, id, &conn);
                }
            }
        });
    }
}
