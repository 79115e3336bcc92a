//! `fleet_peer` — a scripted fleet member for netboot's fleet tests: it speaks the control
//! protocol like a node, but says what the test tells it to, including lies.
//!
//!     fleet_peer id KEYFILE
//!         Prints the endpoint id of KEYFILE (created if missing).
//!     fleet_peer announce KEYFILE NODE RELEASE_FILE
//!         Connects to NODE (<endpoint-id>@<host:port>), announces the signed release in
//!         RELEASE_FILE as "complete", prints `ACK` or `REFUSED: <reason>`, exits 0.
//!     fleet_peer announce-policy KEYFILE NODE POLICY_FILE
//!         The same with the bytes of POLICY_FILE sent as a signed boot policy (unchecked
//!         here: forgeries included).
//!     fleet_peer serve-garbage KEYFILE LISTEN RELEASE_FILE
//!         Listens on LISTEN (udp host:port) as a fleet member that claims to hold the
//!         release complete (catalog, announcements) and answers every blob request with the
//!         right size header followed by garbage: a peer that serves corrupted bytes.
//!         Prints `ready` once listening; runs until killed; counts garbage answers on stderr.
//!
//! Exit status 1 on a transport error, 2 on bad arguments.

use std::{net::SocketAddr, path::Path, process::ExitCode, str::FromStr, time::Duration};

use iroh::{
    endpoint::{presets, Connection, RecvStream, SendStream},
    protocol::{AcceptError, ProtocolHandler, Router},
    Endpoint, EndpointAddr, EndpointId, RelayMode, SecretKey,
};
use netboot_proto::fleet::{self, Holding, Offer, Request, Response, FLEET_ALPN};

/// iroh-blobs' ALPN (kept literal: this tool must not depend on the code it attacks).
const BLOBS_ALPN: &[u8] = b"/iroh-bytes/4";

fn load_key(path: &Path) -> SecretKey {
    if let Ok(text) = std::fs::read_to_string(path) {
        if let Ok(bytes) = hex::decode(text.trim()) {
            if let Ok(b) = <[u8; 32]>::try_from(bytes) {
                return SecretKey::from_bytes(&b);
            }
        }
    }
    let key = SecretKey::generate();
    std::fs::write(path, hex::encode(key.to_bytes())).expect("write key file");
    key
}

async fn endpoint(key: SecretKey, bind: SocketAddr, alpns: Vec<Vec<u8>>) -> Endpoint {
    Endpoint::builder(presets::Minimal)
        .secret_key(key)
        .relay_mode(RelayMode::Disabled)
        .clear_address_lookup()
        .alpns(alpns)
        .bind_addr(bind)
        .expect("bind address")
        .bind()
        .await
        .expect("bind endpoint")
}

async fn write<T: serde::Serialize>(send: &mut SendStream, m: &T) {
    let _ = send.write_all(&fleet::encode(m)).await;
}

async fn read<T: serde::de::DeserializeOwned>(recv: &mut RecvStream) -> Option<T> {
    let mut header = [0u8; 4];
    recv.read_exact(&mut header).await.ok()?;
    let len = fleet::frame_len(header).ok()?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await.ok()?;
    fleet::decode(&body).ok()
}

#[derive(Debug, Clone)]
struct Liar {
    offer: Offer,
}

impl ProtocolHandler for Liar {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            let offer = self.offer.clone();
            tokio::spawn(async move {
                let answer = match read::<Request>(&mut recv).await {
                    Some(Request::Ping { nonce }) => Response::Pong { nonce },
                    Some(Request::Catalog) => Response::Catalog(vec![offer]),
                    Some(_) => Response::Ack,
                    None => return,
                };
                write(&mut send, &answer).await;
                let _ = send.finish();
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Garbage {
    size: u64,
}

impl ProtocolHandler for Garbage {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            let size = self.size;
            tokio::spawn(async move {
                let _ = recv.read_to_end(64 * 1024).await;
                let mut out = size.to_le_bytes().to_vec();
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
                while out.len() < 8 + 256 * 1024 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    out.extend_from_slice(&x.to_le_bytes());
                }
                let _ = send.write_all(&out).await;
                let _ = send.finish();
                eprintln!("fleet_peer: served garbage");
            });
        }
        Ok(())
    }
}

fn parse_node(s: &str) -> (EndpointId, SocketAddr) {
    let (id, addr) = s
        .split_once('@')
        .expect("NODE is <endpoint-id>@<host:port>");
    (
        EndpointId::from_str(id).expect("endpoint id"),
        addr.parse().expect("host:port"),
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["id", key] => {
            println!("{}", load_key(Path::new(key)).public());
            ExitCode::SUCCESS
        }
        [kind @ ("announce" | "announce-policy"), key, node, file] => {
            let signed = std::fs::read(file).expect("read the signed file");
            let request = if *kind == "announce" {
                Request::Announce(Offer {
                    signed,
                    holding: Holding::Complete,
                })
            } else {
                Request::AnnouncePolicy { signed }
            };
            let (id, addr) = parse_node(node);
            let ep = endpoint(
                load_key(Path::new(key)),
                "0.0.0.0:0".parse().unwrap(),
                vec![],
            )
            .await;
            let conn = match tokio::time::timeout(
                Duration::from_secs(10),
                ep.connect(EndpointAddr::new(id).with_ip_addr(addr), FLEET_ALPN),
            )
            .await
            {
                Ok(Ok(c)) => c,
                other => {
                    eprintln!("fleet_peer: cannot connect: {other:?}");
                    return ExitCode::from(1);
                }
            };
            let (mut send, mut recv) = conn.open_bi().await.expect("open stream");
            write(&mut send, &request).await;
            let _ = send.finish();
            let code = match read::<Response>(&mut recv).await {
                Some(Response::Ack) => {
                    println!("ACK");
                    ExitCode::SUCCESS
                }
                Some(Response::Refused { reason }) => {
                    println!("REFUSED: {reason}");
                    ExitCode::SUCCESS
                }
                other => {
                    eprintln!("fleet_peer: unexpected answer {other:?}");
                    ExitCode::from(1)
                }
            };
            conn.close(0u32.into(), b"bye");
            ep.close().await;
            code
        }
        ["serve-garbage", key, listen, release] => {
            let signed = std::fs::read(release).expect("read release file");
            let size = netboot_proto::SignedRelease::open(&signed)
                .map(|r| r.files.iter().map(|f| f.size).max().unwrap_or(0))
                .unwrap_or(1 << 20);
            let ep = endpoint(
                load_key(Path::new(key)),
                listen.parse().expect("LISTEN host:port"),
                vec![],
            )
            .await;
            let _router = Router::builder(ep)
                .accept(BLOBS_ALPN, Garbage { size })
                .accept(
                    FLEET_ALPN,
                    Liar {
                        offer: Offer {
                            signed,
                            holding: Holding::Complete,
                        },
                    },
                )
                .spawn();
            println!("ready");
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
        _ => {
            eprintln!("usage: see the header of tests/src/bin/fleet_peer.rs");
            ExitCode::from(2)
        }
    }
}
