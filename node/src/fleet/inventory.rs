//! The fleet-wide machine list: answering a member's [`Request::Clients`] with this site's
//! machines, and asking every connected peer for theirs (`GET /fleet/clients.json`). Which
//! peers may ask is `control`'s members-only rule; merging is `clients::fleet`'s.

use std::{collections::HashSet, sync::Arc, time::Duration};

use iroh::{endpoint::Connection, EndpointId};
use netboot_proto::fleet::{Request, Response, MAX_CLIENTS_ANSWER, MAX_MESSAGE};

use super::{core::PeerEvent, wire, Shared};
use crate::boot::LivePolicy;
use crate::clients::{
    fleet::{merge, Answer, FleetClientsView, Silent, SiteClients},
    unix_ms, ClientLog,
};

/// How many sites beyond the direct peers the list reaches: a direct peer is asked with
/// this many hops, and passes the question on with one less. Four levels cover a chain of
/// branch → regional → national → HQ from any end.
pub(crate) const RELAY_HOPS: u8 = 3;

/// How long to wait for a peer asked with `hops`: each level waits one second less than the
/// level above, so a silent site far away costs the list its machines, not the whole answer
/// (the direct peers get 5 s; the CLI gives up on the whole answer after 10 s).
pub(crate) fn ask_timeout(hops: u8) -> Duration {
    Duration::from_secs(2 + u64::from(hops.min(RELAY_HOPS)))
}

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

/// The answer to a member's [`Request::FleetClients`]: this site's machines, then those of
/// the connected peers not `known` to the asker (nor the asker itself), asked with one hop
/// less. A peer that fails to answer is left out here (logged); only the node the operator
/// asked lists its direct peers as silent.
pub(crate) async fn answer_fleet(
    shared: &Arc<Shared>,
    asker: EndpointId,
    hops: u8,
    known: Vec<[u8; 32]>,
) -> Response {
    let mut sites = vec![own(shared).encode_bounded(MAX_CLIENTS_ANSWER)];
    if hops > 0 {
        let links = shared.core.ask(PeerEvent::Links).await.unwrap_or_default();
        let mut known: HashSet<[u8; 32]> = known.into_iter().collect();
        known.insert(*asker.as_bytes());
        known.insert(*shared.endpoint.id().as_bytes());
        let next: Vec<_> = links
            .into_iter()
            .filter(|l| !known.contains(l.id.as_bytes()))
            .filter_map(|l| l.control.map(|conn| (l.id, conn)))
            .collect();
        known.extend(next.iter().map(|(id, _)| *id.as_bytes()));
        let known: Vec<[u8; 32]> = known.into_iter().collect();
        let mut asking = tokio::task::JoinSet::new();
        for (id, conn) in next {
            let request = Request::FleetClients {
                hops: hops - 1,
                known: known.clone(),
            };
            let label = shared.label(&id);
            asking.spawn(async move {
                match tokio::time::timeout(ask_timeout(hops - 1), wire::request(&conn, &request))
                    .await
                {
                    Ok(Ok(Response::FleetClients { sites })) => sites,
                    other => {
                        tracing::debug!("fleet: machine lists behind {label}: {other:?}");
                        Vec::new()
                    }
                }
            });
        }
        while let Some(done) = asking.join_next().await {
            sites.extend(done.unwrap_or_default());
        }
    }
    Response::FleetClients {
        sites: within_message(sites),
    }
}

/// The lists that fit one message, in order (the asked node's own first); room is kept for
/// framing.
fn within_message(sites: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let room = MAX_MESSAGE - (64 << 10);
    let mut used = 0;
    let mut kept = Vec::new();
    for site in sites {
        // postcard's length prefix of each list is at most 5 bytes.
        used += site.len() + 5;
        if used > room {
            tracing::warn!(
                "fleet: machine lists of further sites left out: more than {room} bytes in all"
            );
            break;
        }
        kept.push(site);
    }
    kept
}

/// This node's machines, every connected peer's and (up to [`RELAY_HOPS`] further) those of
/// the sites behind them, asked at once; configured peers that are not connected, and direct
/// peers that do not answer in time, are listed as silent with why.
pub(crate) async fn ask_all(shared: &Arc<Shared>) -> FleetClientsView {
    let links = shared.core.ask(PeerEvent::Links).await.unwrap_or_default();
    let mut answers = vec![Answer::Machines(own(shared))];
    let mut known: Vec<[u8; 32]> = links.iter().map(|l| *l.id.as_bytes()).collect();
    known.push(*shared.endpoint.id().as_bytes());
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
                let known = known.clone();
                asking.spawn(async move { ask_one(&conn, known, silent).await });
            }
        }
    }
    let mut seen: HashSet<String> = HashSet::new();
    while let Some(done) = asking.join_next().await {
        for answer in done.unwrap_or_default() {
            // A site reached along two paths is listed once.
            if let Answer::Machines(site) = &answer {
                if !seen.insert(site.node.clone()) {
                    continue;
                }
            }
            answers.push(answer);
        }
    }
    merge(unix_ms(std::time::SystemTime::now()), answers)
}

/// One direct peer's machines and those of the sites behind it, or why not (`silent` names
/// the peer; its `why` is filled in).
async fn ask_one(conn: &Connection, known: Vec<[u8; 32]>, silent: Silent) -> Vec<Answer> {
    let request = Request::FleetClients {
        hops: RELAY_HOPS,
        known,
    };
    let limit = ask_timeout(RELAY_HOPS);
    let why = match tokio::time::timeout(limit, wire::request(conn, &request)).await {
        Err(_) => format!("no answer within {} s", limit.as_secs()),
        Ok(Err(e)) => e.to_string(),
        Ok(Ok(Response::FleetClients { sites })) => match decode_sites(&sites) {
            Ok(sites) => return sites.into_iter().map(Answer::Machines).collect(),
            Err(e) => e,
        },
        Ok(Ok(Response::Refused { reason })) => {
            format!("refused: {reason} (is this node in its [fleet] peers or members?)")
        }
        Ok(Ok(other)) => format!("odd answer {other:?}"),
    };
    tracing::info!("fleet: machine list of {}: {why}", silent.peer);
    vec![Answer::Silent(Silent { why, ..silent })]
}

/// The lists of a [`Response::FleetClients`]: the peer's own must be good (else the peer is
/// listed as silent with why); a bad one of a site behind it is left out and logged.
fn decode_sites(sites: &[Vec<u8>]) -> Result<Vec<SiteClients>, String> {
    let decode = |json: &[u8]| {
        if json.len() > MAX_CLIENTS_ANSWER {
            return Err(format!(
                "a machine list of {} bytes exceeds the {MAX_CLIENTS_ANSWER}-byte limit",
                json.len()
            ));
        }
        serde_json::from_slice::<SiteClients>(json)
            .map_err(|e| format!("its answer is not a machine list: {e}"))
    };
    let (own, behind) = sites
        .split_first()
        .ok_or_else(|| "its answer has no machine list".to_string())?;
    let mut out = vec![decode(own)?];
    for json in behind {
        match decode(json) {
            Ok(site) => out.push(site),
            Err(e) => tracing::info!("fleet: a machine list from behind {}: {e}", out[0].site),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(name: &str) -> Vec<u8> {
        SiteClients {
            site: name.into(),
            node: format!("{name}-id"),
            generated_ms: 1,
            machines: Vec::new(),
            left_out: 0,
        }
        .encode_bounded(MAX_CLIENTS_ANSWER)
    }

    #[test]
    fn the_peers_own_list_must_decode_and_a_bad_one_behind_it_is_left_out() {
        let got = decode_sites(&[site("b"), b"not json".to_vec(), site("c")]).unwrap();
        let names: Vec<&str> = got.iter().map(|s| s.site.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        assert!(decode_sites(&[]).unwrap_err().contains("no machine list"));
        assert!(decode_sites(&[b"{".to_vec(), site("c")])
            .unwrap_err()
            .contains("not a machine list"));
        let huge = vec![b' '; MAX_CLIENTS_ANSWER + 1];
        assert!(decode_sites(&[huge]).unwrap_err().contains("exceeds"));
    }

    #[test]
    fn lists_beyond_one_message_are_left_out_keeping_the_first() {
        let big = vec![b'x'; MAX_CLIENTS_ANSWER];
        let kept = within_message(vec![
            site("own"),
            big.clone(),
            big.clone(),
            big.clone(),
            big,
        ]);
        assert_eq!(
            kept.len(),
            4,
            "own + three of 4 MiB fit in 16 MiB less framing room"
        );
        assert_eq!(kept[0], site("own"));
    }

    #[test]
    fn each_level_waits_less_than_the_one_above() {
        for hops in 1..=RELAY_HOPS {
            assert!(ask_timeout(hops - 1) < ask_timeout(hops));
        }
        assert_eq!(ask_timeout(RELAY_HOPS), Duration::from_secs(5));
    }
}
