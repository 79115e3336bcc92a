//! The fleet-wide machine list: answering a member's [`Request::Clients`] with this site's
//! machines, and asking every connected peer for theirs (`GET /fleet/clients.json`). Which
//! peers may ask is `control`'s members-only rule; merging is `clients::fleet`'s.

use std::{sync::Arc, time::Duration};

use iroh::endpoint::Connection;
use netboot_proto::fleet::{Request, Response, MAX_CLIENTS_ANSWER};

use super::{core::PeerEvent, wire, Shared};
use crate::boot::LivePolicy;
use crate::clients::{
    fleet::{merge, Answer, FleetClientsView, Silent, SiteClients},
    unix_ms, ClientLog,
};

/// A peer that has not answered in this time is listed as silent: one slow site must not
/// hold up the list (the CLI gives up on the whole answer after 10 s).
pub(crate) const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// This node's machines and the site they are at, for peers that ask.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub clients: ClientLog,
    /// The boot policy's config part, for its `[node] site` as last reloaded.
    pub policy: LivePolicy,
}

impl Inventory {
    /// `[node] site`, else the host name.
    fn site(&self) -> String {
        self.policy
            .current()
            .site
            .clone()
            .unwrap_or_else(crate::status::hostname)
    }
}

/// This site's machines, as answered to peers and merged into this node's own list.
fn own(shared: &Shared) -> SiteClients {
    let view = shared.inventory.clients.view(std::time::SystemTime::now());
    SiteClients {
        site: shared.inventory.site(),
        node: shared.endpoint.id().fmt_short().to_string(),
        generated_ms: view.generated_ms,
        machines: view.machines,
        left_out: 0,
    }
}

/// The answer to a member's [`Request::Clients`].
pub(crate) fn answer(shared: &Shared) -> Response {
    Response::Clients {
        json: own(shared).encode_bounded(MAX_CLIENTS_ANSWER),
    }
}

/// This node's machines and every connected peer's, asked at once; configured peers that
/// are not connected, and peers that do not answer within [`ASK_TIMEOUT`], are listed as
/// silent with why.
pub(crate) async fn ask_all(shared: &Arc<Shared>) -> FleetClientsView {
    let links = shared.core.ask(PeerEvent::Links).await.unwrap_or_default();
    let mut answers = vec![Answer::Machines(own(shared))];
    let mut asking = tokio::task::JoinSet::new();
    for link in links {
        let silent = |why: String| Silent {
            peer: shared.label(&link.id),
            node: link.id.fmt_short().to_string(),
            why,
        };
        match link.control {
            None => answers.push(Answer::Silent(silent(
                "not connected (the node's log says why)".into(),
            ))),
            Some(conn) => {
                let silent = silent(String::new());
                asking.spawn(async move { ask_one(&conn, silent).await });
            }
        }
    }
    while let Some(done) = asking.join_next().await {
        if let Ok(answer) = done {
            answers.push(answer);
        }
    }
    merge(unix_ms(std::time::SystemTime::now()), answers)
}

/// One peer's machines, or why not (`silent` names the peer; its `why` is filled in).
async fn ask_one(conn: &Connection, silent: Silent) -> Answer {
    let why = match tokio::time::timeout(ASK_TIMEOUT, wire::request(conn, &Request::Clients)).await
    {
        Err(_) => format!("no answer within {} s", ASK_TIMEOUT.as_secs()),
        Ok(Err(e)) => e.to_string(),
        Ok(Ok(Response::Clients { json })) if json.len() > MAX_CLIENTS_ANSWER => format!(
            "its answer of {} bytes exceeds the {MAX_CLIENTS_ANSWER}-byte limit",
            json.len()
        ),
        Ok(Ok(Response::Clients { json })) => match serde_json::from_slice::<SiteClients>(&json) {
            Ok(site) => return Answer::Machines(site),
            Err(e) => format!("its answer is not a machine list: {e}"),
        },
        Ok(Ok(Response::Refused { reason })) => {
            format!("refused: {reason} (is this node in its [fleet] peers or members?)")
        }
        Ok(Ok(other)) => format!("odd answer {other:?}"),
    };
    tracing::info!("fleet: machine list of {}: {why}", silent.peer);
    Answer::Silent(Silent { why, ..silent })
}
