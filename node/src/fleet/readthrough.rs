//! Read-through: serving a file of a release this node has admitted but not finished
//! fetching, so a client booting now is not failed.
//!
//! Only verified bytes are served. iroh-blobs writes a chunk group into the store only after
//! it checked it against the BLAKE3 tree of the file's hash (which the signed release names),
//! and `export_ranges` refuses ranges the store does not hold. So the stream waits for each
//! piece to arrive verified, and asks the fetcher to start this file at once (beside the files
//! it already fetches).

use std::{ops::Range, sync::Arc, time::Duration};

use bytes::Bytes;
use iroh_blobs::api::proto::ExportRangesItem;
use n0_future::{stream, Stream, StreamExt};
use netboot_proto::{FileEntry, ImageName, ImagePath, VerifiedRelease};

use super::{core::Event, Shared};

/// Bytes handed to the client per piece.
const PIECE: u64 = 256 * 1024;
/// A client waiting this long without a new verified byte gets an error, not a hang.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct ReadThrough {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ReadThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadThrough")
    }
}

/// A file of a pending release.
#[derive(Debug, Clone)]
pub struct PendingFile {
    pub release: VerifiedRelease,
    pub file: FileEntry,
}

impl ReadThrough {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// A file of the release of `name` being fetched (that exact `version`, if given).
    pub fn lookup(
        &self,
        name: &ImageName,
        version: Option<u64>,
        path: &ImagePath,
    ) -> Option<PendingFile> {
        let release = self.shared.core.pending(name)?;
        if version.is_some_and(|v| v != release.version) {
            return None;
        }
        let file = release.file(path)?.clone();
        Some(PendingFile { release, file })
    }

    /// The bytes `range` of `file`, each piece sent once it is held verified.
    pub fn stream(
        &self,
        file: &FileEntry,
        range: Range<u64>,
    ) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        let shared = self.shared.clone();
        let hash = file.hash;
        let guard = Wanted::new(shared.clone(), hash);
        stream::unfold(
            (range.start, range.end, guard),
            move |(offset, end, guard)| {
                let api = guard.shared.store.blob_api();
                async move {
                    if offset >= end {
                        return None;
                    }
                    let piece_end = (offset + PIECE).min(end);
                    let mut idle = Duration::ZERO;
                    loop {
                        match export(&api, hash, offset..piece_end).await {
                            Ok(bytes) => {
                                let next = offset + bytes.len() as u64;
                                return Some((Ok(bytes), (next, end, guard)));
                            }
                            Err(_) if idle < IDLE_LIMIT => {
                                tokio::time::sleep(POLL).await;
                                idle += POLL;
                            }
                            Err(e) => {
                                return Some((
                                    Err(std::io::Error::other(format!(
                                        "read-through: no verified data for {IDLE_LIMIT:?}: {e}"
                                    ))),
                                    (end, end, guard),
                                ))
                            }
                        }
                    }
                }
            },
        )
    }
}

/// Reads a held, verified range of a blob, or fails if any of it is missing.
async fn export(
    api: &iroh_blobs::api::Store,
    hash: blake3::Hash,
    range: Range<u64>,
) -> Result<Bytes, String> {
    let want = (range.end - range.start) as usize;
    let mut out = Vec::with_capacity(want);
    let mut items = api
        .export_ranges(iroh_blobs::Hash::from(hash), range.clone())
        .stream();
    while let Some(item) = items.next().await {
        match item {
            ExportRangesItem::Size(_) => {}
            ExportRangesItem::Data(leaf) => out.extend_from_slice(&leaf.data),
            ExportRangesItem::Error(e) => return Err(e.to_string()),
        }
    }
    if out.len() != want {
        return Err(format!("got {} of {want} bytes", out.len()));
    }
    Ok(Bytes::from(out))
}

/// Registers a file as wanted by a client for as long as its stream lives.
struct Wanted {
    shared: Arc<Shared>,
    hash: blake3::Hash,
}

impl Wanted {
    fn new(shared: Arc<Shared>, hash: blake3::Hash) -> Self {
        shared.core.post(Event::Wanted {
            hash,
            waiting: true,
        });
        Self { shared, hash }
    }
}

impl Drop for Wanted {
    fn drop(&mut self) {
        self.shared.core.post(Event::Wanted {
            hash: self.hash,
            waiting: false,
        });
    }
}
