//! The control protocol's server side: one request per stream, on connections opened by
//! either side (a peer answers requests on the connection it dialled, too, so a regional
//! node can pass announcements to branch nodes that dialled it). Offers and publish requests
//! go to the owner (`core`); this module only speaks the protocol.

use std::{sync::Arc, time::Duration};

use iroh::{
    endpoint::{Connection, RecvStream, SendStream},
    EndpointId,
};
use netboot_proto::{
    fleet::{Holding, Offer, Request, Response},
    SignedRelease,
};

use super::{core::PeerEvent, fetch, inventory, wire, Shared};

/// Answers requests on one connection until it closes.
pub(crate) async fn serve(shared: Arc<Shared>, conn: Connection, remote: EndpointId, member: bool) {
    while let Ok((send, recv)) = conn.accept_bi().await {
        let shared = shared.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(&shared, &conn, remote, member, send, recv).await {
                tracing::debug!("fleet: request from {} failed: {e}", shared.label(&remote));
            }
        });
    }
    shared
        .core
        .peer(PeerEvent::LinkDown { id: remote, conn })
        .await;
}

async fn handle(
    shared: &Arc<Shared>,
    conn: &Connection,
    remote: EndpointId,
    member: bool,
    mut send: SendStream,
    mut recv: RecvStream,
) -> Result<(), wire::WireError> {
    let Some(request) =
        tokio::time::timeout(wire::REQUEST_TIMEOUT, wire::read::<Request>(&mut recv))
            .await
            .map_err(|_| wire::WireError::Timeout(wire::REQUEST_TIMEOUT))??
    else {
        return Ok(());
    };
    let response = match request {
        Request::Ping { nonce } => Response::Pong { nonce },
        Request::Publish { signed } => {
            return publish_session(shared, conn, remote, signed, send).await;
        }
        // Like `Publish`, admitted by a trusted publisher's signature, not by membership:
        // `netboot policy publish --to` connects with a throw-away identity.
        Request::AnnouncePolicy { signed } => shared.core.policy(remote, signed).await,
        _ if !member => {
            tracing::warn!(
                "fleet: refused control request from {remote}: not a fleet member (add it to [fleet] peers or members)"
            );
            Response::Refused {
                reason: "not a member of this fleet".into(),
            }
        }
        Request::Announce(offer) => shared.core.offer(remote, offer).await,
        Request::Catalog => Response::Catalog(catalog(shared)),
        Request::PolicyCatalog => {
            Response::Policy(shared.held.current().map(|h| h.policy.signed().encode()))
        }
        Request::Clients => inventory::answer(shared),
        Request::FleetClients { hops, known } => {
            inventory::answer_fleet(shared, remote, hops, known).await
        }
    };
    wire::write(&mut send, &response).await?;
    send.finish()
        .map_err(|e| wire::WireError::Stream(e.to_string()))?;
    Ok(())
}

/// The newest committed release of each name, and each release being fetched.
fn catalog(shared: &Shared) -> Vec<Offer> {
    let mut offers: Vec<Offer> = shared
        .store
        .servable_latest()
        .iter()
        .map(|r| Offer {
            signed: r.verified.signed().encode(),
            holding: Holding::Complete,
        })
        .collect();
    offers.extend(shared.core.all_pending().iter().map(|r| Offer {
        signed: r.signed().encode(),
        holding: Holding::Fetching,
    }));
    offers
}

/// `netboot publish --to`: the publisher sent a signed release; fetch its files from the
/// publisher over this same connection (it serves them), and report progress until the
/// release is committed. The publisher needs no membership: the signature of a trusted
/// publisher key is what admits it, and only for this release.
async fn publish_session(
    shared: &Arc<Shared>,
    conn: &Connection,
    remote: EndpointId,
    signed: Vec<u8>,
    mut send: SendStream,
) -> Result<(), wire::WireError> {
    let refuse = |reason: String| Response::Refused { reason };
    let release = match SignedRelease::open(&signed) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("fleet: publish from {remote} REFUSED: {e}");
            return finish(&mut send, refuse(e.to_string())).await;
        }
    };
    let what = format!("{} v{}", release.name, release.version);
    if let Some(reason) = shared
        .core
        .publish(remote, conn.clone(), release.clone())
        .await
    {
        return finish(&mut send, refuse(reason)).await;
    }

    let total = release.total_size();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        if let Some(stored) = shared.store.committed(&release.name, release.version) {
            let response = if stored.verified.id() == release.id() {
                Response::Published {
                    version: release.version,
                }
            } else {
                refuse(format!("a different {what} was committed meanwhile"))
            };
            return finish(&mut send, response).await;
        }
        let still_pending = shared
            .core
            .pending(&release.name)
            .is_some_and(|p| p.id() == release.id());
        if !still_pending {
            return finish(&mut send, refuse(format!("{what} was superseded"))).await;
        }
        if conn.close_reason().is_some() {
            tracing::info!(
                "fleet: publisher of {what} went away; the release stays pending and will complete from any peer that holds it"
            );
            return Ok(());
        }
        let done = fetch::held_bytes(shared, &release).await;
        wire::write(&mut send, &Response::Progress { done, total }).await?;
    }
}

async fn finish(send: &mut SendStream, response: Response) -> Result<(), wire::WireError> {
    wire::write(send, &response).await?;
    send.finish()
        .map_err(|e| wire::WireError::Stream(e.to_string()))
}
