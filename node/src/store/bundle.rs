//! Release bundles: a signed release plus its files in a plain directory, for moving a
//! release without the network (air-gapped sites, USB sticks) and for checking what a
//! publisher produced.
//!
//! ```text
//! <bundle>/netboot.release     the signed release
//! <bundle>/files/<path>        each file under its path inside the image
//! ```
//!
//! Import trusts nothing in the directory: the release is verified and admitted before any
//! file is read, and each file is hashed by the store as it is copied in and compared with
//! the signed hash.

use std::{
    fs,
    path::{Path, PathBuf},
};

use netboot_proto::ImageName;

use super::{AcceptError, Accepted, StageProgress, Store, StoreError};

pub const BUNDLE_RELEASE_FILE: &str = "netboot.release";
pub const BUNDLE_FILES_DIR: &str = "files";

pub(crate) async fn import(
    store: &Store,
    bundle: &Path,
    progress: &mut dyn FnMut(&str, StageProgress),
) -> Result<Accepted, AcceptError> {
    let release = Store::read_signed(&bundle.join(BUNDLE_RELEASE_FILE))?;
    store.check_admission(&release)?;
    let mut staged = Vec::with_capacity(release.files.len());
    for entry in &release.files {
        let source = bundle.join(BUNDLE_FILES_DIR).join(entry.path.as_str());
        // symlink_metadata: a bundle must not smuggle in a link to a file elsewhere.
        let meta = match fs::symlink_metadata(&source) {
            Ok(m) if m.is_file() => m,
            _ => {
                return Err(AcceptError::SourceMissing {
                    path: entry.path.clone(),
                    source_file: source,
                })
            }
        };
        if meta.len() != entry.size {
            return Err(AcceptError::SizeMismatch {
                path: entry.path.clone(),
                source_file: source,
                expected: entry.size,
                actual: meta.len(),
            });
        }
        let file = store
            .stage_file(&source, &mut |p| progress(entry.path.as_str(), p))
            .await?;
        if file.hash != entry.hash || file.size != entry.size {
            return Err(AcceptError::HashMismatch {
                path: entry.path.clone(),
                source_file: source,
                expected: entry.hash.to_hex().to_string(),
                actual: file.hash.to_hex().to_string(),
            });
        }
        staged.push(file);
    }
    let accepted = store.accept(&release).await;
    drop(staged);
    accepted
}

pub(crate) fn export(
    store: &Store,
    name: &ImageName,
    version: Option<u64>,
    out: &Path,
) -> Result<PathBuf, AcceptError> {
    let stored = match version {
        Some(v) => store
            .read_index()
            .releases
            .get(name)
            .and_then(|m| m.get(&v))
            .cloned(),
        None => store.latest(name),
    };
    let stored = stored.ok_or_else(|| {
        StoreError::io("no such release", store.layout().name_dir(name))(std::io::Error::from(
            std::io::ErrorKind::NotFound,
        ))
    })?;
    let files = out.join(BUNDLE_FILES_DIR);
    for f in &stored.verified.files {
        let target = files.join(f.path.as_str());
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(StoreError::io("cannot create", parent))?;
        }
        fs::copy(store.blob_path(&f.hash), &target)
            .map_err(StoreError::io("cannot write", &target))?;
    }
    let release_file = out.join(BUNDLE_RELEASE_FILE);
    fs::write(&release_file, stored.verified.signed().encode())
        .map_err(StoreError::io("cannot write", &release_file))?;
    Ok(out.to_path_buf())
}
