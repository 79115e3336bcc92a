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

use super::{
    decide::{self, Busy, OfferDecision, OfferFacts},
    fetch, links, wire, Pending, Shared,
};
use crate::store::AcceptError;

/// How many refused (and relayed) release ids are remembered to keep the log quiet.
pub(crate) const REMEMBERED: usize = 4096;

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
    let facts = OfferFacts {
        id,
        version: release.version,
        committed: shared
            .store
            .committed(&release.name, release.version)
            .map(|r| r.verified.id()),
        pending: shared
            .pending_release(&release.name)
            .map(|p| (p.id(), p.version)),
        relayed: lock(&shared.relayed).get(&id).is_some(),
        refused: lock(&shared.refused).get(&id).cloned(),
        admission: admission(shared, &release),
        wanted: shared.settings.wants(&release.name),
    };
    let decision = decide::offer(&facts);
    if decision.records_holder() {
        shared.peers.record_holding(from, id, offer.holding);
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
            lock(&shared.refused).insert(id, reason.to_string());
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
            lock(&shared.relayed).insert(id, ());
            broadcast(shared, &release, Holding::Relaying, Some(from));
            Response::Ack
        }
        OfferDecision::Fetch => {
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
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
