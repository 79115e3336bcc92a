//! The verified store: signed releases and their files, content-addressed.
//!
//! A release becomes visible (listed, servable) only after every check passed and its
//! `.release` file was atomically written — the single commit point. Before that, its files
//! are anonymous blobs protected only by in-memory temp tags: a crash at any moment leaves
//! either the whole release or none of it, and the orphaned blobs are collected later.
//!
//! Commit order (each step durable before the next):
//! 1. signature, trust, expiry, version checked (before a byte of any file is read);
//! 2. every file present and complete in the blob store with the signed size and hash;
//! 3. a GC-protecting tag per file; blob data fsynced; blob database committed;
//! 4. the `.release` file written atomically  ← commit point;
//! 5. older versions beyond `keep_versions` dropped, then their blobs garbage-collected.

mod blobs;
mod bundle;
mod error;
mod floors;
mod index;
mod index_check;
mod layout;
mod lock;
mod repair;
mod verify;

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

pub use blobs::{Leftovers, StageProgress, StagedFile};
pub use bundle::BUNDLE_RELEASE_FILE;
pub use error::{AcceptError, StoreError};
pub use index::{Problem, StoredRelease};
pub use layout::{Layout, FLEET_KEY_FILE};
pub use lock::lock_holder;
/// Held by a one-shot command that writes into a data dir beside the store (`policy install`).
pub(crate) use lock::DataDirLock;
use netboot_proto::{admit, ImageName, ReleaseId, SignedRelease, TrustedKeys, VerifiedRelease};
pub use repair::{repair, RepairReport};
pub use verify::{FileDamage, VerifyProgress, VerifyReport};

use self::{blobs::Blobs, index::Index};
use crate::{config::KeepVersions, fsutil};

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub data_dir: PathBuf,
    pub trusted: TrustedKeys,
    pub keep_versions: KeepVersions,
}

/// What a successful accept did.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub name: ImageName,
    pub version: u64,
    pub id: ReleaseId,
    /// Older versions removed by retention.
    pub dropped: Vec<u64>,
}

#[derive(Debug)]
pub struct Store {
    layout: Layout,
    blobs: Blobs,
    options: StoreOptions,
    index: RwLock<Index>,
    /// Commits and retention run one at a time.
    commit: tokio::sync::Mutex<()>,
    /// Partial copies found (and removed) at open.
    leftovers: blobs::Leftovers,
    _lock: DataDirLock,
}

pub(crate) fn tag_prefix(name: &ImageName, version: u64) -> String {
    format!("{}{name}/{version:020}/", blobs::RELEASE_TAG_PREFIX)
}

impl Store {
    /// Opens (or creates) the data dir, takes its lock, and rebuilds the release index,
    /// re-checking every release file.
    pub async fn open(options: StoreOptions) -> Result<Self, StoreError> {
        let layout = Layout::new(&options.data_dir);
        let lock = open_data_dir(&layout)?;
        let leftovers = remove_leftovers(&layout)?;
        check_blob_index(&layout)?;
        let blobs = Blobs::open(&layout.blobs_dir()).await?;
        let floors_file = layout.floors_file();
        let floors = floors::load(&floors_file).map_err(|message| StoreError::Floors {
            file: floors_file.clone(),
            message,
        })?;
        let index = Index::load(&layout, &blobs, &options.trusted, floors.clone()).await?;
        let store = Self {
            layout,
            blobs,
            options,
            index: RwLock::new(index),
            commit: Default::default(),
            leftovers,
            _lock: lock,
        };
        if store.read_index().high_water != floors {
            store.save_floors()?;
        }
        store.reconcile_tags().await?;
        store.apply_retention().await?;
        // Always: blobs of a publish or import that failed or was killed before its commit
        // point are referenced by nothing, and should not hold disk space until the next
        // retention run.
        store.blobs.collect_garbage().await?;
        Ok(store)
    }

    /// Partial copies of interrupted imports that were removed when the store was opened.
    pub fn leftovers_removed(&self) -> blobs::Leftovers {
        self.leftovers
    }

    fn save_floors(&self) -> Result<(), StoreError> {
        let floors = self.read_index().high_water.clone();
        let file = self.layout.floors_file();
        floors::save(&file, &floors).map_err(StoreError::io("cannot write", &file))
    }

    /// Tags without a release file are leftovers of a publish that crashed before its commit
    /// point: remove them so GC can reclaim the blobs. Every release file gets its tags
    /// (re)set, which is idempotent.
    async fn reconcile_tags(&self) -> Result<(), StoreError> {
        let (wanted, problem_files) = {
            let index = self.read_index();
            let wanted: Vec<Arc<StoredRelease>> = index
                .releases
                .values()
                .flat_map(|v| v.values().cloned())
                .collect();
            let problem_files: Vec<PathBuf> = index
                .problems
                .iter()
                .map(|p| p.file().to_path_buf())
                .collect();
            (wanted, problem_files)
        };
        for stored in &wanted {
            self.set_release_tags(stored.verified.release()).await?;
        }
        for tag in self.blobs.tag_names(blobs::RELEASE_TAG_PREFIX).await? {
            let rest = &tag[blobs::RELEASE_TAG_PREFIX.len()..];
            let mut parts = rest.split('/');
            let (Some(name), Some(version)) = (parts.next(), parts.next()) else {
                continue;
            };
            let file = self
                .layout
                .root()
                .join("releases")
                .join(name)
                .join(format!("{version}.release"));
            if !file.exists() && !problem_files.contains(&file) {
                tracing::info!(
                    "removing leftover of an interrupted publish: {name} v{}",
                    version.trim_start_matches('0')
                );
                self.blobs
                    .delete_tags(&format!("{}{name}/{version}/", blobs::RELEASE_TAG_PREFIX))
                    .await?;
            }
        }
        Ok(())
    }

    async fn set_release_tags(&self, r: &netboot_proto::Release) -> Result<(), StoreError> {
        let prefix = tag_prefix(&r.name, r.version);
        for (i, f) in r.files.iter().enumerate() {
            self.blobs
                .set_tag(&format!("{prefix}{i:05}"), &f.hash)
                .await?;
        }
        Ok(())
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        // A poisoned lock means a panic mid-update elsewhere; the index data itself is only
        // ever replaced whole, so reading it is still sound.
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_index(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn trusted(&self) -> &TrustedKeys {
        &self.options.trusted
    }

    /// All servable releases, by name then version.
    pub fn releases(&self) -> Vec<Arc<StoredRelease>> {
        self.read_index()
            .releases
            .values()
            .flat_map(|v| v.values().cloned())
            .collect()
    }

    /// The newest release of `name`.
    pub fn latest(&self, name: &ImageName) -> Option<Arc<StoredRelease>> {
        self.read_index()
            .releases
            .get(name)
            .and_then(|v| v.values().next_back().cloned())
    }

    /// The newest release of `name` that may be served now (not expired).
    pub fn servable(&self, name: &ImageName) -> Option<Arc<StoredRelease>> {
        let now = fsutil::now_unix();
        let index = self.read_index();
        index
            .releases
            .get(name)?
            .values()
            .rev()
            .find(|r| !r.verified.is_expired(now))
            .cloned()
    }

    /// One exact release, if it may be served now.
    pub fn servable_version(&self, name: &ImageName, version: u64) -> Option<Arc<StoredRelease>> {
        let now = fsutil::now_unix();
        let index = self.read_index();
        index
            .releases
            .get(name)?
            .get(&version)
            .filter(|r| !r.verified.is_expired(now))
            .cloned()
    }

    /// One exact committed release, expired or not.
    pub fn committed(&self, name: &ImageName, version: u64) -> Option<Arc<StoredRelease>> {
        self.read_index().releases.get(name)?.get(&version).cloned()
    }

    /// The newest servable release of every name.
    pub fn servable_latest(&self) -> Vec<Arc<StoredRelease>> {
        let names: Vec<ImageName> = self.read_index().releases.keys().cloned().collect();
        names.iter().filter_map(|n| self.servable(n)).collect()
    }

    /// Every release that may be served now (not expired), by name then version.
    pub fn servable_releases(&self) -> Vec<Arc<StoredRelease>> {
        let now = fsutil::now_unix();
        self.releases()
            .into_iter()
            .filter(|r| !r.verified.is_expired(now))
            .collect()
    }

    /// Release files that are not servable, and why.
    pub fn problems(&self) -> Vec<Problem> {
        self.read_index().problems.clone()
    }

    /// The highest version of `name` this store has committed; a new release must exceed it.
    pub fn high_water(&self, name: &ImageName) -> Option<u64> {
        self.read_index().high_water.get(name).copied()
    }

    /// The plain, verified-at-commit file holding a blob of a committed release.
    pub fn blob_path(&self, hash: &blake3::Hash) -> PathBuf {
        self.blobs.data_path(hash)
    }

    /// iroh-blobs' store API, for the fleet (provider, downloads, read-through).
    pub fn blob_api(&self) -> iroh_blobs::api::Store {
        self.blobs.api().clone()
    }

    /// Protects the files of a release being fetched from GC (partial data included), so a
    /// restart resumes rather than re-downloads.
    pub async fn protect_fetch(&self, release: &VerifiedRelease) -> Result<(), StoreError> {
        let prefix = format!(
            "{}{}/{:020}/",
            blobs::FETCH_TAG_PREFIX,
            release.name,
            release.version
        );
        for (i, f) in release.files.iter().enumerate() {
            self.blobs
                .set_tag(&format!("{prefix}{i:05}"), &f.hash)
                .await?;
        }
        Ok(())
    }

    /// Drops the fetch protection of one release (it was committed, or abandoned).
    pub async fn unprotect_fetch(&self, name: &ImageName, version: u64) -> Result<(), StoreError> {
        let prefix = format!("{}{name}/{version:020}/", blobs::FETCH_TAG_PREFIX);
        self.blobs.delete_tags(&prefix).await.map(|_| ())
    }

    /// Whether a blob is complete in the store with this size.
    pub async fn has_complete(&self, hash: &blake3::Hash, size: u64) -> Result<bool, StoreError> {
        Ok(self.blobs.complete_size(hash).await? == Some(size))
    }

    /// Copies a local file into the store and hashes it. Keep the result alive until the
    /// release naming it is accepted: it protects the blob from GC until then.
    pub async fn stage_file(
        &self,
        source: &Path,
        progress: &mut dyn FnMut(StageProgress),
    ) -> Result<StagedFile, StoreError> {
        let meta = fs::metadata(source).map_err(StoreError::io("cannot read", source))?;
        if !meta.is_file() {
            return Err(StoreError::Io {
                what: "not a regular file",
                path: source.to_path_buf(),
                cause: std::io::Error::other("expected a regular file"),
            });
        }
        self.blobs.stage(source, progress).await
    }

    /// Checks the admission rules without touching any file: call before staging, so a
    /// refused release costs nothing.
    pub fn check_admission(&self, release: &VerifiedRelease) -> Result<(), AcceptError> {
        admit(
            release,
            &self.options.trusted,
            fsutil::now_unix(),
            self.high_water(&release.name),
        )?;
        Ok(())
    }

    /// Admits a verified release whose files are already in the blob store (staged or fetched).
    pub async fn accept(&self, release: &VerifiedRelease) -> Result<Accepted, AcceptError> {
        let _commit = self.commit.lock().await;
        // Re-checked under the commit lock: a concurrent accept may have raised the version.
        self.check_admission(release)?;
        let r = release.release();
        for f in &r.files {
            if self.blobs.complete_size(&f.hash).await? != Some(f.size) {
                return Err(AcceptError::FileNotInStore {
                    path: f.path.clone(),
                    size: f.size,
                    hash: f.hash.to_hex().to_string(),
                });
            }
        }
        self.set_release_tags(r).await?;
        let hashes: Vec<_> = r.files.iter().map(|f| f.hash).collect();
        self.blobs.make_durable(&hashes).await?;

        let file = self.layout.release_file(&r.name, r.version);
        let dir = self.layout.name_dir(&r.name);
        fs::create_dir_all(&dir).map_err(StoreError::io("cannot create", &dir))?;
        fsutil::sync_dir(&self.layout.releases_dir())
            .map_err(StoreError::io("cannot fsync", &dir))?;
        fsutil::write_atomic(&file, &release.signed().encode())
            .map_err(StoreError::io("cannot write", &file))?;
        // ← committed.
        self.write_index().insert(StoredRelease {
            verified: release.clone(),
            file,
        });
        // The release file already holds the floor; the floors file keeps it should that
        // file be deleted later. A failure here is caught up at the next open.
        if let Err(e) = self.save_floors() {
            tracing::error!("{e}");
        }
        tracing::info!(
            "accepted {} v{} ({} files, {} bytes, id {}, publisher {})",
            r.name,
            r.version,
            r.files.len(),
            r.total_size(),
            release.id(),
            r.publisher
        );
        let dropped = self.retain(&r.name).await?;
        Ok(Accepted {
            name: r.name.clone(),
            version: r.version,
            id: release.id(),
            dropped,
        })
    }

    /// Reads a signed release from bytes and admits it with files from `source_dir`
    /// (`<path in image>` below it), checking each file against the signed hash.
    pub async fn import_bundle(
        &self,
        bundle_dir: &Path,
        progress: &mut dyn FnMut(&str, StageProgress),
    ) -> Result<Accepted, AcceptError> {
        bundle::import(self, bundle_dir, progress).await
    }

    pub async fn export_bundle(
        &self,
        name: &ImageName,
        version: Option<u64>,
        out: &Path,
    ) -> Result<PathBuf, AcceptError> {
        bundle::export(self, name, version, out)
    }

    /// Re-hashes every file of every release and reports damage. Blocking: it reads every
    /// byte of the store.
    pub fn verify(&self, progress: &mut dyn FnMut(&verify::VerifyProgress)) -> VerifyReport {
        verify::verify(self, progress)
    }

    /// Drops versions of `name` beyond `keep_versions`, oldest first. Returns dropped versions.
    async fn retain(&self, name: &ImageName) -> Result<Vec<u64>, StoreError> {
        let doomed: Vec<Arc<StoredRelease>> = {
            let index = self.read_index();
            let Some(versions) = index.releases.get(name) else {
                return Ok(vec![]);
            };
            let excess = versions
                .len()
                .saturating_sub(self.options.keep_versions.get());
            versions.values().take(excess).cloned().collect()
        };
        let mut dropped = Vec::new();
        for stored in doomed {
            let r = stored.verified.release();
            // Release file first: once it is gone the release is invisible; the tags and
            // blobs are then garbage, which a crash here would leave for the next start.
            fs::remove_file(&stored.file).map_err(StoreError::io("cannot remove", &stored.file))?;
            if let Some(dir) = stored.file.parent() {
                fsutil::sync_dir(dir).map_err(StoreError::io("cannot fsync", dir))?;
            }
            if let Some(v) = self.write_index().releases.get_mut(name) {
                v.remove(&r.version);
            }
            self.blobs
                .delete_tags(&tag_prefix(&r.name, r.version))
                .await?;
            tracing::info!(
                "dropped {} v{} (keeping the newest {})",
                r.name,
                r.version,
                self.options.keep_versions
            );
            dropped.push(r.version);
        }
        Ok(dropped)
    }

    async fn apply_retention(&self) -> Result<Vec<u64>, StoreError> {
        let names: Vec<ImageName> = self.read_index().releases.keys().cloned().collect();
        let mut dropped = Vec::new();
        for name in names {
            dropped.extend(self.retain(&name).await?);
        }
        Ok(dropped)
    }

    /// Deletes blobs no release refers to (dropped versions, interrupted publishes).
    pub async fn collect_garbage(&self) -> Result<(), StoreError> {
        let _commit = self.commit.lock().await;
        self.blobs.collect_garbage().await
    }

    /// Flushes and closes the blob store.
    pub async fn close(self) {
        self.blobs.shutdown().await;
    }

    /// Flushes and closes the blob store while other handles may still exist (a running
    /// node's servers); nothing may use the store afterwards.
    pub async fn shutdown(&self) {
        self.blobs.shutdown().await;
    }

    /// Each name's versions, for reports.
    pub fn versions(&self) -> BTreeMap<ImageName, Vec<u64>> {
        self.read_index()
            .releases
            .iter()
            .map(|(n, v)| (n.clone(), v.keys().copied().collect()))
            .collect()
    }

    /// Reads and verifies a signed release file (for bundles and tools).
    pub fn read_signed(path: &Path) -> Result<VerifiedRelease, AcceptError> {
        let bytes = fs::read(path).map_err(StoreError::io("cannot read", path))?;
        SignedRelease::open(&bytes).map_err(|e| AcceptError::Decode(path.to_path_buf(), e))
    }
}

/// Creates the data dir if needed, takes its lock and checks it is a netboot data dir. A
/// refused directory is left exactly as it was found.
fn open_data_dir(layout: &Layout) -> Result<DataDirLock, StoreError> {
    let root = layout.root();
    fs::create_dir_all(root).map_err(StoreError::io("cannot create data dir", root))?;
    let lock = DataDirLock::acquire(root)?;
    match check_format(root) {
        Ok(()) => {
            // Leftovers of atomic writes (the floors file) cut short by a crash.
            fsutil::remove_tmp_files(root).map_err(StoreError::io("cannot clean", root))?;
            Ok(lock)
        }
        Err(e) => {
            lock.release_leaving_no_trace();
            Err(e)
        }
    }
}

fn remove_leftovers(layout: &Layout) -> Result<blobs::Leftovers, StoreError> {
    let blobs_dir = layout.blobs_dir();
    let gone = blobs::remove_leftovers(&blobs_dir)
        .map_err(StoreError::io("cannot clean", blobs::temp_dir(&blobs_dir)))?;
    if gone.files > 0 {
        tracing::warn!(
            "removed {} partial file(s) ({} bytes) left by interrupted or failed imports from {}",
            gone.files,
            gone.bytes,
            blobs::temp_dir(&blobs_dir).display()
        );
    }
    Ok(gone)
}

fn check_blob_index(layout: &Layout) -> Result<(), StoreError> {
    let file = layout.blob_index();
    let data_dir = layout.root().to_path_buf();
    match index_check::check(&file, &layout.blob_data_dir(), &layout.releases_dir()) {
        index_check::IndexState::New | index_check::IndexState::Sound => Ok(()),
        index_check::IndexState::Missing => Err(StoreError::IndexMissing { file, data_dir }),
        index_check::IndexState::Damaged(reason) => Err(StoreError::IndexDamaged {
            file,
            data_dir,
            reason,
        }),
    }
}

fn check_format(root: &Path) -> Result<(), StoreError> {
    let path = root.join(layout::FORMAT_FILE);
    match fs::read_to_string(&path) {
        Ok(text) if text == layout::FORMAT_TEXT => Ok(()),
        Ok(text) => Err(StoreError::UnknownFormat {
            dir: root.to_path_buf(),
            found: text.trim().to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Refuse to take over a directory that holds something else: a typo in data_dir
            // must not turn /home into a store.
            let foreign = fs::read_dir(root)
                .map_err(StoreError::io("cannot list", root))?
                .filter_map(Result::ok)
                .any(|e| {
                    e.file_name() != lock::LOCK_FILE && e.file_name() != layout::FLEET_KEY_FILE
                });
            if foreign {
                return Err(StoreError::UnknownFormat {
                    dir: root.to_path_buf(),
                    found: "no FORMAT file, and the directory is not empty".into(),
                });
            }
            fsutil::write_atomic(&path, layout::FORMAT_TEXT.as_bytes())
                .map_err(StoreError::io("cannot write", &path))
        }
        Err(e) => Err(StoreError::io("cannot read", &path)(e)),
    }
}
