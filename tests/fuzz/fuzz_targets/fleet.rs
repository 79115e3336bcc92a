//! Fleet control messages as a peer sends them: a frame header, then a postcard body decoded
//! as a request (the serving side) and as a response (the asking side). A message that decodes
//! must frame and decode again to itself; the signed releases and policies it carries go through the same
//! decode → verify a node applies before it trusts anything.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netboot_proto::{
    fleet::{self, Request, Response},
    SignedRelease,
};
use serde::{de::DeserializeOwned, Serialize};

fn roundtrip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(message: &T) {
    let framed = fleet::encode(message);
    let header: [u8; 4] = framed[..4].try_into().expect("4-byte header");
    let len = fleet::frame_len(header).expect("our own frame is within the limit");
    assert_eq!(len, framed.len() - 4);
    let again: T = fleet::decode(&framed[4..]).expect("our own frame decodes");
    assert_eq!(&again, message);
}

fuzz_target!(|data: &[u8]| {
    if let Some(header) = data.get(..4) {
        let header: [u8; 4] = header.try_into().expect("4 bytes");
        let _ = fleet::frame_len(header);
    }
    if let Ok(request) = fleet::decode::<Request>(data) {
        roundtrip(&request);
        match &request {
            Request::Announce(offer) => {
                let _ = SignedRelease::open(&offer.signed);
            }
            Request::Publish { signed } => {
                let _ = SignedRelease::open(signed);
            }
            Request::AnnouncePolicy { signed } => {
                let _ = netboot_proto::policy::SignedPolicy::open(signed);
            }
            Request::Ping { .. }
            | Request::Catalog
            | Request::PolicyCatalog
            | Request::Clients
            | Request::FleetClients { .. } => {}
        }
    }
    if let Ok(response) = fleet::decode::<Response>(data) {
        roundtrip(&response);
        if let Response::Catalog(offers) = &response {
            for offer in offers {
                let _ = SignedRelease::open(&offer.signed);
            }
        }
        if let Response::Policy(Some(signed)) = &response {
            let _ = netboot_proto::policy::SignedPolicy::open(signed);
        }
    }
});
