//! First-stage programs (iPXE, PXELINUX and its modules) for TFTP and HTTP.
//!
//! Normally they come from a files-only release (e.g. published from Debian's `ipxe` and
//! `pxelinux` packages), so they are as verified as any image. For a quick single-site setup a
//! node may instead point at a local directory; it then logs that these files are unverified.

use std::path::{Path, PathBuf};

use netboot_proto::{ImageName, ImagePath};

use crate::{clients::Step, store::Store};

#[derive(Debug, Clone)]
pub struct FirstStage {
    /// The release holding the programs.
    pub release: ImageName,
    /// Fallback directory of unverified programs.
    pub dir: Option<PathBuf>,
}

/// A first-stage file ready to serve.
#[derive(Debug, Clone)]
pub struct FirstStageFile {
    pub path: PathBuf,
    pub size: u64,
    /// `Some` when the file comes from a verified release.
    pub hash: Option<blake3::Hash>,
    /// For logs: `ipxe v3` or `local dir /usr/lib/ipxe`.
    pub origin: String,
    /// The boot stage a client reaches by fetching it (for the client record).
    pub step: Option<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("refused: {0}")]
    BadName(String),
    #[error("no such first-stage file `{0}` (not in release `{1}`{2})")]
    NotFound(String, ImageName, String),
}

impl FirstStage {
    /// Looks a requested name up. The name is checked as an image path first, so `..`,
    /// absolute paths and odd characters never reach the file system.
    pub fn lookup(&self, store: &Store, name: &str) -> Result<FirstStageFile, LookupError> {
        let path: ImagePath = name
            .parse()
            .map_err(|e: netboot_proto::NameError| LookupError::BadName(e.to_string()))?;
        if let Some(stored) = store.servable(&self.release) {
            if let Some(f) = stored.verified.file(&path) {
                return Ok(FirstStageFile {
                    path: store.blob_path(&f.hash),
                    size: f.size,
                    hash: Some(f.hash),
                    origin: format!("{} v{}", stored.verified.name, stored.verified.version),
                    step: Some(Step::first_stage()),
                });
            }
        }
        if let Some(dir) = &self.dir {
            if let Some(file) = local_file(dir, &path) {
                return Ok(file);
            }
        }
        let also = self
            .dir
            .as_ref()
            .map(|d| format!(", nor in {}", d.display()))
            .unwrap_or_default();
        Err(LookupError::NotFound(
            name.to_string(),
            self.release.clone(),
            also,
        ))
    }
}

/// A regular file under `dir`, reached without following any symlink.
fn local_file(dir: &Path, path: &ImagePath) -> Option<FirstStageFile> {
    let mut current = dir.to_path_buf();
    for component in path.as_str().split('/') {
        current.push(component);
        let meta = std::fs::symlink_metadata(&current).ok()?;
        if meta.file_type().is_symlink() {
            return None;
        }
    }
    let meta = std::fs::symlink_metadata(&current).ok()?;
    meta.is_file().then(|| FirstStageFile {
        path: current,
        size: meta.len(),
        hash: None,
        origin: format!("local dir {} (unverified)", dir.display()),
        step: Some(Step::first_stage()),
    })
}
