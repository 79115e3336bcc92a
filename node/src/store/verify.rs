//! `netboot verify`: re-hash everything, trust nothing that was checked before.
//!
//! Files are hashed from the plain blob files the servers read, so damage behind the store's
//! back (a disk error, an admin's stray `dd`) is found where it would hurt. Each blob is
//! hashed once even when several releases share it, and blamed on every release using it.

use std::{collections::BTreeMap, path::PathBuf};

use netboot_proto::{ImageName, ImagePath};

use super::{Problem, Store};

#[derive(Debug, Clone)]
pub struct FileDamage {
    pub name: ImageName,
    pub version: u64,
    pub path: ImagePath,
    pub blob: PathBuf,
    pub what: String,
}

impl std::fmt::Display for FileDamage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} v{}: `{}` ({}): {}",
            self.name,
            self.version,
            self.path,
            self.blob.display(),
            self.what
        )
    }
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub releases: usize,
    pub files: usize,
    pub bytes: u64,
    pub damage: Vec<FileDamage>,
    /// Release files that were already not servable when the store was opened.
    pub problems: Vec<Problem>,
    /// Partial copies of failed or interrupted imports, removed when the store was opened.
    pub leftovers: super::Leftovers,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty() && self.problems.is_empty()
    }
}

#[derive(Debug)]
pub struct VerifyProgress {
    pub hashed_bytes: u64,
    pub total_bytes: u64,
}

pub(crate) fn verify(store: &Store, progress: &mut dyn FnMut(&VerifyProgress)) -> VerifyReport {
    let releases = store.releases();
    let mut report = VerifyReport {
        releases: releases.len(),
        problems: store.problems(),
        leftovers: store.leftovers_removed(),
        ..Default::default()
    };
    let mut unique: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    for r in &releases {
        for f in &r.verified.files {
            unique.insert(*f.hash.as_bytes(), f.size);
        }
    }
    let total_bytes = unique.values().sum();
    let mut verdicts: BTreeMap<[u8; 32], Option<String>> = BTreeMap::new();
    let mut hashed_bytes = 0;
    for (hash, size) in unique {
        let hash = blake3::Hash::from_bytes(hash);
        let verdict = check_blob(&store.blob_path(&hash), &hash, size);
        hashed_bytes += size;
        progress(&VerifyProgress {
            hashed_bytes,
            total_bytes,
        });
        verdicts.insert(*hash.as_bytes(), verdict);
    }
    for r in &releases {
        let rel = r.verified.release();
        for f in &rel.files {
            report.files += 1;
            report.bytes += f.size;
            if let Some(Some(what)) = verdicts.get(f.hash.as_bytes()) {
                report.damage.push(FileDamage {
                    name: rel.name.clone(),
                    version: rel.version,
                    path: f.path.clone(),
                    blob: store.blob_path(&f.hash),
                    what: what.clone(),
                });
            }
        }
    }
    report
}

/// `None` when the blob file holds exactly the expected bytes.
fn check_blob(path: &std::path::Path, expected: &blake3::Hash, size: u64) -> Option<String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return Some(format!("cannot read: {e}")),
    };
    if meta.len() != size {
        return Some(format!(
            "size is {} bytes, the release says {size}",
            meta.len()
        ));
    }
    let mut hasher = blake3::Hasher::new();
    // mmap + rayon: multi-gigabyte ISOs hash at memory speed on all cores.
    if let Err(e) = hasher.update_mmap_rayon(path) {
        return Some(format!("cannot read: {e}"));
    }
    let actual = hasher.finalize();
    (actual != *expected).then(|| {
        format!(
            "content damaged: BLAKE3 {} but the release says {}",
            actual.to_hex(),
            expected.to_hex()
        )
    })
}
