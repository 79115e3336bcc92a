//! A file of one exact release, as the version-pinned paths in iPXE scripts and GRUB and
//! PXELINUX configs name it (`r/<name>/<version>/<path>`): one resolver for HTTP and TFTP,
//! so both serve the same bytes under the same rules.

use netboot_proto::{ImageName, ImagePath};

use super::FirstStageFile;
use crate::store::{Store, StoredRelease};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseFileError {
    /// Not a committed, servable release here (it may still be pending: HTTP then reads
    /// through).
    #[error("{0} v{1} is not servable here (unknown, dropped or expired)")]
    NoRelease(ImageName, u64),
    #[error("no such release in `{0}`")]
    BadRelease(String),
    #[error("refused path `{0}`: not a valid path inside an image")]
    BadPath(String),
    #[error("{0} v{1} has no file `{2}`")]
    NoFile(ImageName, u64, String),
}

/// `file` of the committed release `stored`.
pub fn release_file(
    store: &Store,
    stored: &StoredRelease,
    file: &str,
) -> Result<FirstStageFile, ReleaseFileError> {
    let r = &stored.verified;
    let path: ImagePath = file
        .parse()
        .map_err(|_| ReleaseFileError::BadPath(file.to_string()))?;
    let f = r
        .file(&path)
        .ok_or_else(|| ReleaseFileError::NoFile(r.name.clone(), r.version, path.to_string()))?;
    Ok(FirstStageFile {
        path: store.blob_path(&f.hash),
        size: f.size,
        hash: Some(f.hash),
        origin: format!("{} v{} {}", r.name, r.version, f.path),
        step: crate::clients::step_of_file(r.release(), f.path.as_str()),
    })
}

/// `r/<name>/<version>/<path>` (relative, as TFTP normalises it); `None` when `path` is not
/// of that shape at all.
pub fn pinned(store: &Store, path: &str) -> Option<Result<FirstStageFile, ReleaseFileError>> {
    let rest = path.strip_prefix("r/")?;
    let mut parts = rest.splitn(3, '/');
    let (Some(name), Some(version), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
        return Some(Err(ReleaseFileError::BadRelease(path.to_string())));
    };
    let (Ok(name), Ok(version)) = (name.parse::<ImageName>(), version.parse::<u64>()) else {
        return Some(Err(ReleaseFileError::BadRelease(path.to_string())));
    };
    Some(match store.servable_version(&name, version) {
        Some(stored) => release_file(store, &stored, file),
        None => Err(ReleaseFileError::NoRelease(name, version)),
    })
}
