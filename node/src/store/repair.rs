//! `netboot repair`: rebuild the blob index from the release files and the blob data.
//!
//! The `.release` files are the truth of what was committed, and the blob data files are
//! plain files named by their BLAKE3 hash; only the index (`blobs.db`) that ties them
//! together is lost or damaged. Repair sets the old index aside, moves the data files into a
//! holding directory, opens a fresh index, and for every release file imports each of its
//! files from the holding directory again — which re-hashes every byte — and tags it. A
//! release is restored only if every one of its files comes back with the signed hash and
//! size; the others are reported (and stay "not servable"). Data no release needs is dropped.
//!
//! Each step can be interrupted and repair run again: the holding directory is reused, and
//! a release file is never touched.

use std::{
    fs,
    path::{Path, PathBuf},
};

use netboot_proto::{ImageName, SignedRelease};

use super::{
    blobs::{self, Blobs},
    layout::Layout,
    open_data_dir, tag_prefix, StoreError, StoreOptions,
};

/// Where data files wait while the index is rebuilt.
const HOLDING_DIR: &str = "repair";
/// Keeps each verified blob while repair runs, so that a release failing on one file does
/// not cost another release sharing its good files.
const REPAIR_TAG_PREFIX: &str = "netboot/repair/";

#[derive(Debug, Default)]
pub struct RepairReport {
    /// Releases whose every byte verified, now servable again (if their key is trusted).
    pub restored: Vec<(ImageName, u64)>,
    /// Release files that could not be restored, and why.
    pub failed: Vec<(PathBuf, String)>,
    /// Blob files checked (each once, however many releases share it).
    pub blobs_verified: usize,
    pub bytes_verified: u64,
    /// Data files no release refers to (or whose bytes did not verify), removed.
    pub dropped: usize,
}

/// Rebuilds the blob index of the data dir in `options`. The store must not be open
/// elsewhere (the data dir lock is taken).
pub async fn repair(options: &StoreOptions) -> Result<RepairReport, StoreError> {
    let layout = Layout::new(&options.data_dir);
    let _lock = open_data_dir(&layout)?;
    let blobs_dir = layout.blobs_dir();
    let holding = blobs_dir.join(HOLDING_DIR);
    set_aside(&layout, &holding)?;
    let blobs = Blobs::open(&blobs_dir).await?;
    let mut report = RepairReport::default();
    let result = restore_all(&layout, &blobs, &holding, &mut report).await;
    blobs.shutdown().await;
    result?;
    let dropped = fs::read_dir(&holding)
        .map_err(StoreError::io("cannot list", &holding))?
        .count();
    fs::remove_dir_all(&holding).map_err(StoreError::io("cannot remove", &holding))?;
    report.dropped = dropped;
    Ok(report)
}

/// Old index away, data files into the holding dir, outboards and partial copies gone (the
/// import recomputes outboards).
fn set_aside(layout: &Layout, holding: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(holding).map_err(StoreError::io("cannot create", holding))?;
    let data_dir = layout.blob_data_dir();
    if let Ok(entries) = fs::read_dir(&data_dir) {
        for entry in entries {
            let entry = entry.map_err(StoreError::io("cannot list", &data_dir))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().ends_with(".data") {
                let to = holding.join(entry.file_name());
                fs::rename(&path, &to).map_err(StoreError::io("cannot move", &path))?;
            } else {
                fs::remove_file(&path).map_err(StoreError::io("cannot remove", &path))?;
            }
        }
    }
    blobs::remove_leftovers(&layout.blobs_dir()).map_err(StoreError::io(
        "cannot clean",
        blobs::temp_dir(&layout.blobs_dir()),
    ))?;
    let db = layout.blob_index();
    match fs::remove_file(&db) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("cannot remove", &db)(e)),
    }
    crate::fsutil::sync_dir(holding).map_err(StoreError::io("cannot fsync", holding))
}

async fn restore_all(
    layout: &Layout,
    blobs: &Blobs,
    holding: &Path,
    report: &mut RepairReport,
) -> Result<(), StoreError> {
    let mut restored_hashes = Vec::new();
    for file in release_files(&layout.releases_dir())? {
        match restore_one(&file, blobs, holding, report).await? {
            Ok((name, version, hashes)) => {
                report.restored.push((name, version));
                restored_hashes.extend(hashes);
            }
            Err(why) => report.failed.push((file, why)),
        }
    }
    blobs.delete_tags(REPAIR_TAG_PREFIX).await?;
    blobs.make_durable(&restored_hashes).await
}

/// Outer error: the store failed. Inner: this release cannot be restored, and why.
async fn restore_one(
    file: &Path,
    blobs: &Blobs,
    holding: &Path,
    report: &mut RepairReport,
) -> Result<Result<(ImageName, u64, Vec<blake3::Hash>), String>, StoreError> {
    let bytes = match fs::read(file) {
        Ok(b) => b,
        Err(e) => return Ok(Err(format!("cannot read: {e}"))),
    };
    let verified = match SignedRelease::open(&bytes) {
        Ok(v) => v,
        Err(e) => return Ok(Err(format!("damaged release file: {e}"))),
    };
    let r = verified.release();
    for f in &r.files {
        if blobs.complete_size(&f.hash).await? == Some(f.size) {
            continue; // shared with a release restored before
        }
        let source = holding.join(format!("{}.data", f.hash.to_hex()));
        if !source.exists() {
            return Ok(Err(format!("`{}`: its data file is gone", f.path)));
        }
        let copy = blobs.stage(&source, &mut |_| {}).await?;
        report.blobs_verified += 1;
        report.bytes_verified += copy.size;
        fs::remove_file(&source).map_err(StoreError::io("cannot remove", &source))?;
        if copy.hash != f.hash || copy.size != f.size {
            return Ok(Err(format!(
                "`{}`: content damaged (BLAKE3 {}, {} bytes; the release says {}, {} bytes)",
                f.path,
                copy.hash.to_hex(),
                copy.size,
                f.hash.to_hex(),
                f.size
            )));
        }
        blobs
            .set_tag(&format!("{REPAIR_TAG_PREFIX}{}", f.hash.to_hex()), &f.hash)
            .await?;
    }
    let prefix = tag_prefix(&r.name, r.version);
    for (i, f) in r.files.iter().enumerate() {
        blobs.set_tag(&format!("{prefix}{i:05}"), &f.hash).await?;
    }
    Ok(Ok((
        r.name.clone(),
        r.version,
        r.files.iter().map(|f| f.hash).collect(),
    )))
}

fn release_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut files = Vec::new();
    let names = match fs::read_dir(dir) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(StoreError::io("cannot list", dir)(e)),
    };
    for name in names {
        let name = name.map_err(StoreError::io("cannot list", dir))?.path();
        let Ok(entries) = fs::read_dir(&name) else {
            continue;
        };
        for entry in entries {
            let path = entry.map_err(StoreError::io("cannot list", &name))?.path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(Layout::parse_release_file_name)
                .is_some()
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}
