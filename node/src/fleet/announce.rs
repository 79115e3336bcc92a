//! Passing releases on: an offer sent to every connected peer.
//!
//! What is offered, and when, is the owner's decision (`core`); this only sends. A peer that
//! cannot be reached loses its control link (an event to the owner), and gets the release through the catalog
//! when it connects again.

use std::sync::Arc;

use iroh::{endpoint::Connection, EndpointId};
use netboot_proto::{
    fleet::{Holding, Offer, Request, Response},
    policy::VerifiedPolicy,
    VerifiedRelease,
};

use super::{core::PeerEvent, wire, Shared};

/// Sends an offer to each of `to` (label, id, control link). A peer that is configured but
/// not connected gets it on its next connect through the catalog.
pub(crate) fn broadcast(
    shared: &Arc<Shared>,
    release: &VerifiedRelease,
    holding: Holding,
    to: Vec<(String, EndpointId, Connection)>,
) {
    let offer = Offer {
        signed: release.signed().encode(),
        holding,
    };
    let what = format!("{} v{}", release.name, release.version);
    for (label, id, conn) in to {
        let shared = shared.clone();
        let offer = offer.clone();
        let what = what.clone();
        tokio::spawn(async move {
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
                    shared.core.peer(PeerEvent::LinkDown { id, conn }).await;
                }
            }
        });
    }
}

/// Sends the boot policy to each of `to` (label, id, control link); a peer not connected now
/// gets it at its next connect (catch-up).
pub(crate) fn policy(
    shared: &Arc<Shared>,
    policy: &VerifiedPolicy,
    to: Vec<(String, EndpointId, Connection)>,
) {
    let request = Request::AnnouncePolicy {
        signed: policy.signed().encode(),
    };
    let version = policy.version;
    for (label, id, conn) in to {
        let (shared, request) = (shared.clone(), request.clone());
        tokio::spawn(async move {
            match wire::request(&conn, &request).await {
                Ok(Response::Ack) => {
                    tracing::debug!("fleet: sent boot policy v{version} to {label}")
                }
                Ok(Response::Refused { reason }) => {
                    tracing::debug!("fleet: {label} declined boot policy v{version}: {reason}")
                }
                Ok(other) => {
                    tracing::debug!("fleet: {label} answered {other:?} to a boot policy")
                }
                Err(e) => {
                    tracing::info!("fleet: sending boot policy v{version} to {label} failed: {e}");
                    shared.core.peer(PeerEvent::LinkDown { id, conn }).await;
                }
            }
        });
    }
}
