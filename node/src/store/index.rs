//! The in-memory view of committed releases, rebuilt from `releases/` at start.
//!
//! A release file is the commit point of a publish, so what is on disk under `releases/` is
//! the truth. Loading re-verifies every file (signature, trust, name/version matching its
//! location, blobs complete) and sorts what it finds into servable releases and problems; a
//! problem is reported by `images` and `verify`, and is never served.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use netboot_proto::{ImageName, ImagePath, PublicKey, SignedRelease, TrustedKeys, VerifiedRelease};

use super::{blobs::Blobs, layout::Layout, StoreError};
use crate::fsutil;

/// A committed release whose signature, trust and blobs were checked.
#[derive(Debug, Clone)]
pub struct StoredRelease {
    pub verified: VerifiedRelease,
    /// Its `.release` file.
    pub file: PathBuf,
}

/// A release file that is not servable, and why.
#[derive(Debug, Clone)]
pub enum Problem {
    /// The file does not decode or its signature does not verify: altered on disk.
    Damaged { file: PathBuf, error: String },
    /// Correctly signed, by a key this node no longer trusts.
    Untrusted {
        file: PathBuf,
        name: ImageName,
        version: u64,
        publisher: PublicKey,
    },
    /// A file of the release is missing from the blob store.
    Incomplete {
        file: PathBuf,
        name: ImageName,
        version: u64,
        path: ImagePath,
    },
}

impl Problem {
    pub fn file(&self) -> &Path {
        match self {
            Problem::Damaged { file, .. }
            | Problem::Untrusted { file, .. }
            | Problem::Incomplete { file, .. } => file,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Damaged { file, error } => write!(f, "{}: damaged: {error}", file.display()),
            Problem::Untrusted {
                file,
                name,
                version,
                publisher,
            } => {
                write!(
                    f,
                    "{}: {name} v{version} is signed by {publisher}, which is not trusted",
                    file.display()
                )
            }
            Problem::Incomplete {
                file,
                name,
                version,
                path,
            } => {
                write!(
                    f,
                    "{}: {name} v{version}: file `{path}` is missing from the blob store",
                    file.display()
                )
            }
        }
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Index {
    pub(crate) releases: BTreeMap<ImageName, BTreeMap<u64, Arc<StoredRelease>>>,
    pub(crate) problems: Vec<Problem>,
    /// Highest version of each name ever committed here, including problem files and the
    /// floors file, so a damaged or deleted newest release cannot be used to slip an older
    /// one back in.
    pub(crate) high_water: BTreeMap<ImageName, u64>,
}

impl Index {
    pub(crate) fn insert(&mut self, stored: StoredRelease) {
        let r = stored.verified.release();
        let hw = self.high_water.entry(r.name.clone()).or_insert(0);
        *hw = (*hw).max(r.version);
        self.releases
            .entry(r.name.clone())
            .or_default()
            .insert(r.version, Arc::new(stored));
    }

    pub(crate) async fn load(
        layout: &Layout,
        blobs: &Blobs,
        trusted: &TrustedKeys,
        floors: BTreeMap<ImageName, u64>,
    ) -> Result<Self, StoreError> {
        let mut index = Index {
            high_water: floors,
            ..Index::default()
        };
        let dir = layout.releases_dir();
        fs::create_dir_all(&dir).map_err(StoreError::io("cannot create", &dir))?;
        for entry in read_dir_sorted(&dir)? {
            let Some(name) = entry
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<ImageName>().ok())
            else {
                tracing::warn!("ignoring {}: not an image directory", entry.display());
                continue;
            };
            fsutil::remove_tmp_files(&entry).map_err(StoreError::io("cannot clean", &entry))?;
            for file in read_dir_sorted(&entry)? {
                let Some(version) = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(Layout::parse_release_file_name)
                else {
                    tracing::warn!("ignoring {}: not a release file", file.display());
                    continue;
                };
                let hw = index.high_water.entry(name.clone()).or_insert(0);
                *hw = (*hw).max(version);
                match check_release_file(&file, &name, version, blobs, trusted).await? {
                    Ok(stored) => index.insert(stored),
                    Err(problem) => {
                        tracing::error!("release not servable: {problem}");
                        index.problems.push(problem);
                    }
                }
            }
        }
        Ok(index)
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut entries = fs::read_dir(dir)
        .map_err(StoreError::io("cannot list", dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::io("cannot list", dir))?;
    entries.sort();
    Ok(entries)
}

/// Outer error: the store itself failed. Inner: this release file has a problem.
async fn check_release_file(
    file: &Path,
    name: &ImageName,
    version: u64,
    blobs: &Blobs,
    trusted: &TrustedKeys,
) -> Result<Result<StoredRelease, Problem>, StoreError> {
    let damaged = |error: String| {
        Ok(Err(Problem::Damaged {
            file: file.to_path_buf(),
            error,
        }))
    };
    let bytes = match fs::read(file) {
        Ok(b) => b,
        Err(e) => return damaged(format!("cannot read: {e}")),
    };
    let verified = match SignedRelease::open(&bytes) {
        Ok(v) => v,
        Err(e) => return damaged(e.to_string()),
    };
    let r = verified.release();
    if &r.name != name || r.version != version {
        return damaged(format!(
            "holds {} v{}, but its location says {name} v{version}",
            r.name, r.version
        ));
    }
    if !trusted.contains(&r.publisher) {
        return Ok(Err(Problem::Untrusted {
            file: file.to_path_buf(),
            name: name.clone(),
            version,
            publisher: r.publisher,
        }));
    }
    for f in &r.files {
        if blobs.complete_size(&f.hash).await? != Some(f.size) {
            return Ok(Err(Problem::Incomplete {
                file: file.to_path_buf(),
                name: name.clone(),
                version,
                path: f.path.clone(),
            }));
        }
    }
    Ok(Ok(StoredRelease {
        verified,
        file: file.to_path_buf(),
    }))
}
