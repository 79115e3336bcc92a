//! The content-addressed blob store: iroh-blobs' `FsStore`, behind the few operations netboot
//! needs, so that a change of iroh-blobs version (it moves fast) stays in this file.
//!
//! Why no inlining: by default the store keeps blobs under 16 KiB inside its database. With
//! inlining off, every complete blob is a plain file at `PathOptions::data_path(hash)` that
//! the store never rewrites, so the protocol servers can `pread`/`sendfile` it directly, and
//! the store alone owns its life cycle (we do not export copies that could drift from it).
//!
//! Why our own GC trigger: iroh-blobs only runs GC on a timer. Retention wants "collect now
//! and tell me when done", so the protect callback starts a run only when one was requested
//! and reports the previous run finished when it is next called.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use iroh_blobs::{
    api::{
        blobs::{AddPathOptions, AddProgressItem, BlobStatus, ImportMode},
        TempTag,
    },
    store::{
        fs::{
            options::{InlineOptions, Options, PathOptions},
            FsStore,
        },
        GcConfig, ProtectOutcome,
    },
    BlobFormat, Hash,
};
use n0_future::StreamExt;
use tokio::sync::watch;

use super::StoreError;
use crate::fsutil;

/// How often the GC loop wakes to look for a request; cheap when there is none.
const GC_TICK: Duration = Duration::from_millis(200);
/// A GC run over a node's few thousand blobs takes milliseconds; this is a hang guard.
const GC_WAIT: Duration = Duration::from_secs(60);
/// Tags protecting release files from GC: `netboot/r/<name>/<version:020>/<index>`.
pub(crate) const RELEASE_TAG_PREFIX: &str = "netboot/r/";
/// Tags protecting the (partial) files of a release being fetched:
/// `netboot/f/<name>/<version:020>/<index>`.
pub(crate) const FETCH_TAG_PREFIX: &str = "netboot/f/";

/// A file copied into the store and hashed, protected from GC until dropped.
#[derive(Debug)]
pub struct StagedFile {
    pub hash: blake3::Hash,
    pub size: u64,
    pub source: PathBuf,
    _tag: TempTag,
}

/// Progress of staging one file: the store copies it in, then hashes it.
#[derive(Debug, Clone, Copy)]
pub enum StageProgress {
    Copying { done: u64, size: u64 },
    Hashing { done: u64, size: u64 },
}

#[derive(Debug, Default)]
struct GcControl {
    requested: AtomicU64,
    started: AtomicU64,
    finished: watch::Sender<u64>,
}

impl GcControl {
    /// Called by iroh-blobs before each potential run.
    fn on_tick(&self) -> ProtectOutcome {
        // Being called again means the previous run, if any, is over.
        let started = self.started.load(Ordering::SeqCst);
        self.finished.send_replace(started);
        let requested = self.requested.load(Ordering::SeqCst);
        if requested > started {
            self.started.store(requested, Ordering::SeqCst);
            ProtectOutcome::Continue
        } else {
            ProtectOutcome::Abort
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Blobs {
    store: FsStore,
    paths: PathOptions,
    dir: PathBuf,
    gc: Arc<GcControl>,
    /// One copy-in at a time, so the temp files a failed one leaves are known to be its own.
    staging: Arc<tokio::sync::Mutex<()>>,
}

/// What start-up removed: partial copies of interrupted or failed imports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub files: usize,
    pub bytes: u64,
}

/// The directory where iroh-blobs copies a file before it hashes it and moves it into place.
pub(crate) fn temp_dir(blobs_dir: &Path) -> PathBuf {
    PathOptions::new(blobs_dir).temp_path
}

/// Removes every file in the temp dir. Only while no store is open on it: the data dir lock
/// makes this process its only user, so anything there is a leftover (a copy cut short by a
/// full disk or a kill).
pub(crate) fn remove_leftovers(blobs_dir: &Path) -> std::io::Result<Leftovers> {
    remove_files(&temp_dir(blobs_dir), |_| true)
}

fn remove_files(
    dir: &Path,
    doomed: impl Fn(&std::ffi::OsStr) -> bool,
) -> std::io::Result<Leftovers> {
    let mut gone = Leftovers::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(gone),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if !doomed(&entry.file_name()) {
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        std::fs::remove_file(entry.path())?;
        gone.files += 1;
        gone.bytes += size;
    }
    Ok(gone)
}

fn file_names(dir: &Path) -> std::collections::HashSet<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

impl Blobs {
    pub(crate) async fn open(dir: &Path) -> Result<Self, StoreError> {
        let gc = Arc::new(GcControl::default());
        let tick_gc = gc.clone();
        let mut options = Options::new(dir);
        options.inline = InlineOptions::NO_INLINE;
        options.gc = Some(GcConfig {
            interval: GC_TICK,
            add_protected: Some(Arc::new(move |_live| {
                let gc = tick_gc.clone();
                Box::pin(async move { gc.on_tick() })
            })),
        });
        let paths = options.path.clone();
        let store = FsStore::load_with_opts(dir.join("blobs.db"), options)
            .await
            .map_err(|e| StoreError::Blobs {
                dir: dir.to_path_buf(),
                message: format!("cannot open: {e:#}"),
            })?;
        Ok(Self {
            store,
            paths,
            dir: dir.to_path_buf(),
            gc,
            staging: Default::default(),
        })
    }

    fn err(&self, what: &str) -> impl FnOnce(String) -> StoreError + '_ {
        let what = what.to_string();
        move |e| StoreError::Blobs {
            dir: self.dir.clone(),
            message: format!("{what}: {e}"),
        }
    }

    /// iroh-blobs' API, for the fleet's provider and downloads (node-internal).
    pub(crate) fn api(&self) -> &iroh_blobs::api::Store {
        &self.store
    }

    /// The plain file holding a complete blob. Valid only while the blob is complete.
    pub(crate) fn data_path(&self, hash: &blake3::Hash) -> PathBuf {
        self.paths.data_path(&Hash::from(*hash))
    }

    pub(crate) fn outboard_path(&self, hash: &blake3::Hash) -> PathBuf {
        self.paths.outboard_path(&Hash::from(*hash))
    }

    /// Copies `source` into the store and hashes it; the store computes the hash, so what is
    /// stored is exactly what was hashed even if `source` changes afterwards.
    pub(crate) async fn stage(
        &self,
        source: &Path,
        progress: &mut dyn FnMut(StageProgress),
    ) -> Result<StagedFile, StoreError> {
        let _one = self.staging.lock().await;
        let temp = self.paths.temp_path.clone();
        let before = file_names(&temp);
        let result = self.stage_unlocked(source, progress).await;
        if result.is_err() {
            // iroh-blobs leaves its partial copy behind when the copy fails (e.g. the disk is
            // full); without this, each retry would leave one more.
            match remove_files(&temp, |name| !before.contains(name)) {
                Ok(gone) if gone.files > 0 => tracing::info!(
                    "removed the partial copy of {} ({} bytes)",
                    source.display(),
                    gone.bytes
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!("cannot remove partial copies in {}: {e}", temp.display()),
            }
        }
        result
    }

    async fn stage_unlocked(
        &self,
        source: &Path,
        progress: &mut dyn FnMut(StageProgress),
    ) -> Result<StagedFile, StoreError> {
        // iroh-blobs insists on absolute paths.
        let absolute =
            std::path::absolute(source).map_err(StoreError::io("cannot resolve", source))?;
        let mut stream = self
            .store
            .add_path_with_opts(AddPathOptions {
                path: absolute,
                format: BlobFormat::Raw,
                mode: ImportMode::Copy,
            })
            .stream()
            .await;
        let mut size = 0;
        while let Some(item) = stream.next().await {
            match item {
                AddProgressItem::Size(s) => size = s,
                AddProgressItem::CopyProgress(done) => {
                    progress(StageProgress::Copying { done, size })
                }
                AddProgressItem::CopyDone => progress(StageProgress::Copying { done: size, size }),
                AddProgressItem::OutboardProgress(done) => {
                    progress(StageProgress::Hashing { done, size })
                }
                AddProgressItem::Done(tag) => {
                    progress(StageProgress::Hashing { done: size, size });
                    return Ok(StagedFile {
                        hash: tag.hash().into(),
                        size,
                        source: source.to_path_buf(),
                        _tag: tag,
                    });
                }
                AddProgressItem::Error(e) => {
                    return Err(StoreError::Io {
                        what: "cannot import",
                        path: source.to_path_buf(),
                        cause: e,
                    })
                }
            }
        }
        Err(StoreError::Blobs {
            dir: self.dir.clone(),
            message: format!("import of {} ended without a result", source.display()),
        })
    }

    /// The size of a complete blob, or `None` if it is absent or partial.
    pub(crate) async fn complete_size(
        &self,
        hash: &blake3::Hash,
    ) -> Result<Option<u64>, StoreError> {
        let status = self
            .store
            .status(Hash::from(*hash))
            .await
            .map_err(|e| self.err("status")(e.to_string()))?;
        Ok(match status {
            BlobStatus::Complete { size } => Some(size),
            _ => None,
        })
    }

    pub(crate) async fn set_tag(&self, name: &str, hash: &blake3::Hash) -> Result<(), StoreError> {
        self.store
            .tags()
            .set(name, Hash::from(*hash))
            .await
            .map_err(|e| self.err("set tag")(e.to_string()))
    }

    pub(crate) async fn delete_tags(&self, prefix: &str) -> Result<u64, StoreError> {
        self.store
            .tags()
            .delete_prefix(prefix)
            .await
            .map_err(|e| self.err("delete tags")(e.to_string()))
    }

    pub(crate) async fn tag_names(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut stream = self
            .store
            .tags()
            .list_prefix(prefix)
            .await
            .map_err(|e| self.err("list tags")(e.to_string()))?;
        let mut names = Vec::new();
        while let Some(tag) = stream.next().await {
            let tag = tag.map_err(|e| self.err("list tags")(e.to_string()))?;
            names.push(String::from_utf8_lossy(tag.name.as_ref()).into_owned());
        }
        Ok(names)
    }

    /// Makes blob data and metadata durable: data and outboard files fsynced, then the
    /// database committed. Called before a release is committed so that a power cut can never
    /// leave a committed release pointing at data that was still in the page cache.
    pub(crate) async fn make_durable(&self, hashes: &[blake3::Hash]) -> Result<(), StoreError> {
        for hash in hashes {
            for path in [self.data_path(hash), self.outboard_path(hash)] {
                match std::fs::File::open(&path) {
                    Ok(f) => f
                        .sync_all()
                        .map_err(StoreError::io("cannot fsync", &path))?,
                    // Blobs of one chunk group have no outboard file.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io("cannot open", &path)(e)),
                }
            }
        }
        let dir = &self.paths.data_path;
        if dir.exists() {
            fsutil::sync_dir(dir).map_err(StoreError::io("cannot fsync", dir))?;
        }
        self.store
            .sync_db()
            .await
            .map_err(|e| self.err("commit database")(e.to_string()))
    }

    /// Deletes every blob no tag protects, and waits until that is done.
    pub(crate) async fn collect_garbage(&self) -> Result<(), StoreError> {
        let generation = self.gc.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut finished = self.gc.finished.subscribe();
        let wait = finished.wait_for(|done| *done >= generation);
        match tokio::time::timeout(GC_WAIT, wait).await {
            Ok(Ok(_)) => {}
            _ => {
                return Err(self.err("garbage collection")(
                    "did not finish in time".into(),
                ))
            }
        }
        self.store
            .sync_db()
            .await
            .map_err(|e| self.err("commit database")(e.to_string()))
    }

    pub(crate) async fn shutdown(&self) {
        if let Err(e) = self.store.shutdown().await {
            tracing::warn!("blob store shutdown: {e}");
        }
    }
}
