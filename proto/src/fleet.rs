//! The messages fleet nodes exchange on their control protocol (ALPN [`FLEET_ALPN`]).
//!
//! File data never travels here: it moves over iroh-blobs' own protocol, verified by BLAKE3
//! as it streams. This protocol only says *which* releases exist and who holds them, and it
//! always carries the signed release itself, so a receiver checks signature, trust, version
//! and expiry before it fetches a byte — an announcement cannot be forged by a peer.
//!
//! Framing: every message is `len: u32 (big-endian) || postcard(message)`. One request per
//! bidirectional stream, answered by one or more responses on the same stream; the stream
//! ends with the final response. Variant order is part of the format (append only).

use serde::{Deserialize, Serialize};

/// The control protocol's ALPN. A new version of these messages gets a new ALPN.
pub const FLEET_ALPN: &[u8] = b"netboot/fleet/1";

/// Upper bound of one framed message. A catalog of a few hundred releases fits easily; a
/// hostile peer cannot make a node allocate more than this before decoding fails.
pub const MAX_MESSAGE: usize = 16 << 20;

/// How much of a release the sender holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Holding {
    /// Every file, verified and committed: a peer can fetch the whole release from it.
    Complete,
    /// Admitted and being fetched: a peer can fetch what has arrived (verified chunks).
    Fetching,
    /// Verified and passed on, but this site does not fetch the name (its `fetch` policy):
    /// nothing to fetch from the sender.
    Relaying,
}

/// A signed release (the bytes of [`crate::SignedRelease::encode`]) and what the sender holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub signed: Vec<u8>,
    pub holding: Holding,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Measures round-trip time; answered with [`Response::Pong`] carrying the same nonce.
    Ping { nonce: u64 },
    /// "I have (or am fetching) this release." Answered with [`Response::Ack`].
    Announce(Offer),
    /// "What is the newest release of each name you know?" (catch-up after a reconnect).
    Catalog,
    /// From `netboot publish --to`: admit this release and fetch its files from me over this
    /// connection. Answered with [`Response::Progress`] messages, then `Published` or
    /// `Refused`.
    Publish { signed: Vec<u8> },
    /// "Here is the boot policy I hold" (the bytes of [`crate::policy::SignedPolicy::encode`]):
    /// a node that admits it holds and applies it, and passes it on. Sent when a node takes a
    /// new policy, and by `netboot policy publish --to`. A policy is small and travels
    /// inline. Answered with [`Response::Ack`] (held now, or already) or [`Response::Refused`].
    AnnouncePolicy { signed: Vec<u8> },
    /// "Which boot policy do you hold?" (catch-up after a reconnect, beside `Catalog`).
    /// Answered with [`Response::Policy`].
    PolicyCatalog,
    /// "Which machines did your site see?" (`netboot clients --fleet`). Members only;
    /// answered with [`Response::Clients`].
    Clients,
    /// "Which machines did your site, and the sites behind you, see?" Members only; answered
    /// with [`Response::FleetClients`]: the asked node's own list first, then, while `hops`
    /// is above 0, the lists of its connected peers whose ids are not in `known`, asked in
    /// turn with `hops - 1` and `known` grown by the asked node's peers (so a chain or a
    /// mesh is walked without asking a node twice along one path).
    FleetClients { hops: u8, known: Vec<[u8; 32]> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Pong {
        nonce: u64,
    },
    Ack,
    Catalog(Vec<Offer>),
    /// Bytes of the release's files held so far.
    Progress {
        done: u64,
        total: u64,
    },
    Published {
        version: u64,
    },
    /// The request was refused; `reason` says why in words for the operator.
    Refused {
        reason: String,
    },
    /// The signed boot policy the node holds, if any.
    Policy(Option<Vec<u8>>),
    /// The answering node's machine inventory: JSON (the node's `SiteClients`, which carries
    /// the site label and the machines as `/clients.json` lists them), at most
    /// [`MAX_CLIENTS_ANSWER`] bytes. JSON rather than postcard because the record's types
    /// are the HTTP API's, with optional fields postcard cannot skip.
    Clients {
        json: Vec<u8>,
    },
    /// Several sites' inventories, each as in [`Response::Clients`], the answering node's
    /// first; at most [`MAX_MESSAGE`] in all (the lists that do not fit are left out).
    FleetClients {
        sites: Vec<Vec<u8>>,
    },
}

/// Upper bound of a [`Response::Clients`] body: well inside [`MAX_MESSAGE`], and a node
/// holding more leaves out its least recently seen machines (and says how many).
pub const MAX_CLIENTS_ANSWER: usize = 4 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("fleet message of {0} bytes exceeds the {MAX_MESSAGE}-byte limit")]
    TooLarge(usize),
    #[error("fleet message does not decode: {0}")]
    Decode(String),
}

/// Frames a message: length prefix and postcard body.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // postcard cannot fail on these types (no maps with non-string keys, no unsized data).
    let body = postcard::to_allocvec(message).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Checks a frame's announced length before anything is allocated for it.
pub fn frame_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_MESSAGE {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Decodes a frame body (without its length prefix). Trailing bytes are an error: one frame,
/// one message.
pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, FrameError> {
    let (message, rest) =
        postcard::take_from_bytes(body).map_err(|e| FrameError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Decode(format!(
            "{} unexpected bytes after the message",
            rest.len()
        )));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<T: Serialize + for<'a> Deserialize<'a> + PartialEq + std::fmt::Debug>(m: T) {
        let framed = encode(&m);
        let len = frame_len(framed[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, framed.len() - 4);
        let back: T = decode(&framed[4..]).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn every_message_roundtrips() {
        let offer = Offer {
            signed: vec![1, 2, 3],
            holding: Holding::Fetching,
        };
        roundtrip(Request::Ping { nonce: 7 });
        roundtrip(Request::Announce(offer.clone()));
        roundtrip(Request::Catalog);
        roundtrip(Request::Publish {
            signed: vec![9; 300],
        });
        roundtrip(Request::AnnouncePolicy {
            signed: vec![4; 100],
        });
        roundtrip(Request::PolicyCatalog);
        roundtrip(Response::Policy(Some(vec![6; 80])));
        roundtrip(Response::Policy(None));
        roundtrip(Response::Pong { nonce: 7 });
        roundtrip(Response::Ack);
        roundtrip(Response::Catalog(vec![offer]));
        roundtrip(Response::Progress { done: 1, total: 2 });
        roundtrip(Response::Published { version: 3 });
        roundtrip(Response::Refused {
            reason: "no".into(),
        });
        roundtrip(Request::Clients);
        roundtrip(Request::FleetClients {
            hops: 2,
            known: vec![[7; 32]],
        });
        roundtrip(Response::FleetClients {
            sites: vec![b"{}".to_vec(), Vec::new()],
        });
        roundtrip(Response::Clients {
            json: b"{}".to_vec(),
        });
    }

    #[test]
    fn oversized_frames_are_refused_before_allocation() {
        let header = ((MAX_MESSAGE + 1) as u32).to_be_bytes();
        assert_eq!(
            frame_len(header),
            Err(FrameError::TooLarge(MAX_MESSAGE + 1))
        );
    }

    #[test]
    fn garbage_and_trailing_bytes_do_not_decode() {
        assert!(decode::<Request>(&[0xff, 0xff, 0xff]).is_err());
        let mut body = encode(&Request::Catalog)[4..].to_vec();
        body.push(0);
        assert!(decode::<Request>(&body).is_err());
        // Every truncation of a real message fails cleanly (no panic).
        let full = encode(&Request::Announce(Offer {
            signed: vec![5; 40],
            holding: Holding::Complete,
        }));
        for cut in 4..full.len() - 1 {
            assert!(decode::<Request>(&full[4..cut]).is_err(), "cut at {cut}");
        }
    }
}
