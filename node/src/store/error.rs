//! Store errors. Each names the file, image or field at fault.

use std::path::PathBuf;

use netboot_proto::{DecodeError, ImagePath, Refusal};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data dir {dir} is in use by another netboot process ({holder}); stop it, or publish to the running node instead")]
    Busy { dir: PathBuf, holder: String },
    #[error("{dir} is not a netboot data dir of a format this version understands ({found})")]
    UnknownFormat { dir: PathBuf, found: String },
    #[error("{what} {path}: {cause}")]
    Io {
        what: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("blob index {file} is damaged ({reason}); the store cannot be opened. Rebuild the index from the release files and blob data: netboot repair --config <this node's config> (or --data-dir {data_dir})")]
    IndexDamaged {
        file: PathBuf,
        data_dir: PathBuf,
        reason: String,
    },
    #[error("blob index {file} is missing although release files or blob data remain (opening would list no releases); rebuild it: netboot repair --config <this node's config> (or --data-dir {data_dir})")]
    IndexMissing { file: PathBuf, data_dir: PathBuf },
    #[error(
        "version floors file {file}: {message} (fix that line; a floor must never be lowered)"
    )]
    Floors { file: PathBuf, message: String },
    #[error("blob store under {dir}: {message}")]
    Blobs { dir: PathBuf, message: String },
}

impl StoreError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |cause| StoreError::Io { what, path, cause }
    }
}

/// Why a release was not admitted. Nothing of a refused release becomes visible.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("release {0}: {1}")]
    Decode(PathBuf, DecodeError),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("file `{path}` of the release is not in the store (or incomplete); expected {size} bytes with BLAKE3 {hash}")]
    FileNotInStore {
        path: ImagePath,
        size: u64,
        hash: String,
    },
    #[error("file `{path}` ({source_file}) does not match the signed release: BLAKE3 {actual}, expected {expected}")]
    HashMismatch {
        path: ImagePath,
        source_file: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "file `{path}` ({source_file}) has {actual} bytes, the signed release says {expected}"
    )]
    SizeMismatch {
        path: ImagePath,
        source_file: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("file `{path}` of the release: {source_file} is missing or not a regular file")]
    SourceMissing {
        path: ImagePath,
        source_file: PathBuf,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}
