//! Releases admitted but not yet complete, kept on disk so a restarted node resumes them.
//!
//! `<data>/pending/<name>/<version:020>.release` holds the signed bytes. The blob store keeps
//! the partial data (protected from GC by fetch tags), so a restart re-opens the pending
//! release and fetches only the missing ranges.

use std::{
    fs,
    path::{Path, PathBuf},
};

use netboot_proto::{ImageName, SignedRelease, VerifiedRelease};

use crate::fsutil;

pub(crate) struct PendingDir {
    root: PathBuf,
}

impl PendingDir {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("pending"),
        }
    }

    fn file(&self, name: &ImageName, version: u64) -> PathBuf {
        self.root
            .join(name.as_str())
            .join(format!("{version:020}.release"))
    }

    pub fn save(&self, release: &VerifiedRelease) -> std::io::Result<()> {
        let file = self.file(&release.name, release.version);
        if let Some(dir) = file.parent() {
            fs::create_dir_all(dir)?;
        }
        fsutil::write_atomic(&file, &release.signed().encode())
    }

    pub fn remove(&self, name: &ImageName, version: u64) {
        let file = self.file(name, version);
        if fs::remove_file(&file).is_ok() {
            if let Some(dir) = file.parent() {
                let _ = fsutil::sync_dir(dir);
            }
        }
    }

    /// Every pending release that still verifies. Damaged files are reported and removed:
    /// the release will be learned again from a peer.
    pub fn load(&self) -> Vec<VerifiedRelease> {
        let mut out = Vec::new();
        let Ok(names) = fs::read_dir(&self.root) else {
            return out;
        };
        for dir in names.filter_map(Result::ok) {
            let Ok(files) = fs::read_dir(dir.path()) else {
                continue;
            };
            for f in files.filter_map(Result::ok) {
                let path = f.path();
                if path.extension().is_none_or(|e| e != "release") {
                    let _ = fs::remove_file(&path); // an interrupted atomic write
                    continue;
                }
                match fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| SignedRelease::open(&b).map_err(|e| e.to_string()))
                {
                    Ok(r) => out.push(r),
                    Err(e) => {
                        tracing::warn!(
                            "fleet: dropping damaged pending release {}: {e}",
                            path.display()
                        );
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        out.sort_by_key(|r| (r.name.clone(), r.version));
        out
    }
}
