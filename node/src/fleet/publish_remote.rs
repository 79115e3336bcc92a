//! `netboot publish --to <endpoint-id>@<host:port>`: publishing to a running node over the
//! network, from any machine that holds the publisher key.
//!
//! The CLI hashes the files in place (a scratch blob store that references them, no copy),
//! signs the release locally, connects to the node's control protocol and sends the signed
//! release. The node checks it like any announcement, then fetches the files from the CLI
//! over the same connection with iroh-blobs' verified streaming; the CLI serves them on the
//! streams the node opens. The CLI exits successfully only when the node reports the whole
//! release committed. The secret key never leaves this process: only the signature does.

use std::{path::PathBuf, time::Duration};

use iroh::{endpoint::presets, Endpoint, EndpointAddr, RelayMode};
use iroh_blobs::{
    api::blobs::{AddPathOptions, AddProgressItem, ImportMode},
    provider::events::EventSender,
    store::fs::FsStore,
    BlobFormat,
};
use n0_future::StreamExt;
use netboot_proto::{
    build_and_sign,
    fleet::{Request, Response, FLEET_ALPN},
    policy::VerifiedPolicy,
    FileEntry, SecretKey, VerifiedRelease,
};

use super::{config::PeerAddr, wire};
use crate::{
    fsutil,
    publish::{PublishError, PublishEvent, PublishSpec},
    store::StageProgress,
};

#[derive(Debug, thiserror::Error)]
pub enum RemotePublishError {
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("scratch store in {0}: {1}")]
    Scratch(PathBuf, String),
    #[error("cannot reach node {node}: {message}")]
    Connect { node: String, message: String },
    #[error("node {node}: {message}")]
    Protocol { node: String, message: String },
    #[error("node {node} REFUSED it: {reason}")]
    Refused { node: String, reason: String },
}

/// What the node reported while it fetched.
#[derive(Debug, Clone, Copy)]
pub enum RemoteProgress {
    Connected,
    Transferred { done: u64, total: u64 },
}

pub async fn publish_to_node(
    target: &PeerAddr,
    key: &SecretKey,
    spec: &PublishSpec,
    events: &mut dyn FnMut(PublishEvent<'_>),
    remote: &mut dyn FnMut(RemoteProgress),
) -> Result<VerifiedRelease, RemotePublishError> {
    let node = target.to_string();
    let (inputs, boot) = spec.plan()?;
    // The node's current version is not known here: like bundles, default to the time,
    // which is always above a version published earlier the same way.
    let version = spec.version.unwrap_or_else(fsutil::now_unix);
    let scratch = tempfile_dir()?;
    let store = FsStore::load(scratch.join("blobs.db"))
        .await
        .map_err(|e| RemotePublishError::Scratch(scratch.clone(), format!("{e:#}")))?;
    let result = async {
        let mut files = Vec::with_capacity(inputs.len());
        for input in &inputs {
            let absolute = std::path::absolute(&input.source)
                .map_err(|e| PublishError::Input(input.source.clone(), e))?;
            let mut stream = store
                .add_path_with_opts(AddPathOptions {
                    path: absolute,
                    format: BlobFormat::Raw,
                    // Hash in place: the node verifies every byte it receives against the
                    // signed hash, so a file changed meanwhile is refused, not corrupted.
                    mode: ImportMode::TryReference,
                })
                .stream()
                .await;
            let mut size = 0;
            let mut done = None;
            while let Some(item) = stream.next().await {
                match item {
                    AddProgressItem::Size(s) => size = s,
                    AddProgressItem::OutboardProgress(d) => events(PublishEvent::File {
                        path: &input.path,
                        progress: StageProgress::Hashing { done: d, size },
                    }),
                    AddProgressItem::Done(tag) => {
                        done = Some(tag);
                        break;
                    }
                    AddProgressItem::Error(e) => {
                        return Err(PublishError::Input(input.source.clone(), e).into())
                    }
                    _ => {}
                }
            }
            let tag = done.ok_or_else(|| {
                RemotePublishError::Scratch(scratch.clone(), "import ended early".into())
            })?;
            let hash: blake3::Hash = tag.hash().into();
            events(PublishEvent::FileDone {
                path: &input.path,
                hash,
                size,
            });
            files.push((
                FileEntry {
                    path: input.path.clone(),
                    size,
                    hash,
                },
                tag,
            ));
        }
        let entries = files.iter().map(|(f, _)| f.clone()).collect();
        let release = build_and_sign(spec.release_spec(key, version, entries, boot), key)
            .map_err(PublishError::from)?;
        events(PublishEvent::Signed { release: &release });
        send_to_node(target, &node, &store, &release, remote).await?;
        drop(files);
        Ok(release)
    }
    .await;
    let _ = store.shutdown().await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn tempfile_dir() -> Result<PathBuf, RemotePublishError> {
    let base = std::env::temp_dir();
    let mut rnd = [0u8; 6];
    let _ = getrandom::fill(&mut rnd);
    let dir = base.join(format!("netboot-publish-{}", hex::encode(rnd)));
    std::fs::create_dir_all(&dir)
        .map_err(|e| RemotePublishError::Scratch(dir.clone(), e.to_string()))?;
    Ok(dir)
}

/// A throw-away endpoint connected to `target`'s control protocol: the publisher key, not the
/// endpoint, is what the node trusts. The publisher sends data: it needs the fleet's
/// transport defaults as much as a node.
async fn connect(
    target: &PeerAddr,
    node: &str,
) -> Result<(Endpoint, iroh::endpoint::Connection), RemotePublishError> {
    let connect_err = |message: String| RemotePublishError::Connect {
        node: node.to_string(),
        message,
    };
    let addrs = target
        .resolve()
        .map_err(|e| connect_err(format!("cannot resolve {}: {e}", target.host)))?;
    let mut addr = EndpointAddr::new(target.id);
    for a in &addrs {
        addr = addr.with_ip_addr(*a);
    }
    let endpoint = Endpoint::builder(presets::Minimal)
        .relay_mode(RelayMode::Disabled)
        .clear_address_lookup()
        .transport_config(super::transport::quic_config(
            Default::default(),
            Default::default(),
        ))
        .bind()
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    let conn = tokio::time::timeout(Duration::from_secs(10), endpoint.connect(addr, FLEET_ALPN))
        .await
        .map_err(|_| connect_err("no answer within 10 s (is the fleet port open?)".into()))
        .and_then(|r| r.map_err(|e| connect_err(e.to_string())));
    match conn {
        Ok(conn) => Ok((endpoint, conn)),
        Err(e) => {
            endpoint.close().await;
            Err(e)
        }
    }
}

/// `netboot policy publish --to`: sends a signed boot policy to a running node, which admits
/// it like one from a peer, holds and applies it, and passes it on to its peers. Ok once the
/// node holds it (now, or already).
pub async fn publish_policy_to_node(
    target: &PeerAddr,
    policy: &VerifiedPolicy,
) -> Result<(), RemotePublishError> {
    let node = target.to_string();
    let proto_err = |message: String| RemotePublishError::Protocol {
        node: node.clone(),
        message,
    };
    let (endpoint, conn) = connect(target, &node).await?;
    let request = Request::AnnouncePolicy {
        signed: policy.signed().encode(),
    };
    let outcome = match wire::request(&conn, &request).await {
        Ok(Response::Ack) => Ok(()),
        Ok(Response::Refused { reason }) => Err(RemotePublishError::Refused {
            node: node.clone(),
            reason,
        }),
        Ok(other) => Err(proto_err(format!("unexpected answer {other:?}"))),
        Err(e) => Err(proto_err(e.to_string())),
    };
    conn.close(0u32.into(), b"done");
    endpoint.close().await;
    outcome
}

async fn send_to_node(
    target: &PeerAddr,
    node: &str,
    store: &FsStore,
    release: &VerifiedRelease,
    remote: &mut dyn FnMut(RemoteProgress),
) -> Result<(), RemotePublishError> {
    let proto_err = |message: String| RemotePublishError::Protocol {
        node: node.to_string(),
        message,
    };
    let (endpoint, conn) = connect(target, node).await?;
    let outcome = async {
        remote(RemoteProgress::Connected);
        // Serve our blobs on the streams the node opens on this connection.
        let provider = tokio::spawn(iroh_blobs::provider::handle_connection(
            conn.clone(),
            (**store).clone(),
            EventSender::DEFAULT,
        ));
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| proto_err(e.to_string()))?;
        wire::write(
            &mut send,
            &Request::Publish {
                signed: release.signed().encode(),
            },
        )
        .await
        .map_err(|e| proto_err(e.to_string()))?;
        send.finish().map_err(|e| proto_err(e.to_string()))?;
        let result = loop {
            match wire::read::<Response>(&mut recv).await {
                Ok(Some(Response::Progress { done, total })) => {
                    remote(RemoteProgress::Transferred { done, total })
                }
                Ok(Some(Response::Published { .. })) => break Ok(()),
                Ok(Some(Response::Refused { reason })) => {
                    break Err(RemotePublishError::Refused {
                        node: node.to_string(),
                        reason,
                    })
                }
                Ok(Some(other)) => break Err(proto_err(format!("unexpected answer {other:?}"))),
                Ok(None) => {
                    break Err(proto_err(
                        "the node closed the session before the release was complete".into(),
                    ))
                }
                Err(e) => break Err(proto_err(e.to_string())),
            }
        };
        conn.close(0u32.into(), b"done");
        provider.abort();
        result
    }
    .await;
    endpoint.close().await;
    outcome
}
