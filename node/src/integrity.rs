//! Serve-time integrity: a file is re-hashed before it is served whenever it may have changed
//! since it was last verified.
//!
//! The key is the file's (device, inode, size, mtime, ctime): any write through the file
//! system (an admin's stray `dd`, a restore from backup, a malicious edit) changes ctime, and
//! ctime cannot be set back without changing the clock. A changed file is hashed in full
//! (BLAKE3 with mmap + rayon, >1 GB/s) before a byte of it is served; a mismatch refuses the
//! request and is logged. Silent media corruption (no metadata change) is `netboot verify`'s
//! job; checking every 16 KiB group against the store's BLAKE3 outboard while streaming would
//! cover that too (planned).

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Mutex,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    #[error("{path}: cannot read: {error}")]
    Unreadable { path: PathBuf, error: String },
    #[error("{path}: {actual} bytes on disk, the release says {expected}")]
    WrongSize {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: content does not match the signed BLAKE3 {expected} (changed on disk)")]
    Tampered { path: PathBuf, expected: String },
}

#[derive(Debug, Default)]
pub struct VerifiedFiles {
    verified: Mutex<HashMap<PathBuf, (Stamp, blake3::Hash)>>,
}

impl VerifiedFiles {
    /// Blocking: may hash the whole file. Call from a blocking thread.
    pub fn check(
        &self,
        path: &Path,
        expected: &blake3::Hash,
        size: u64,
    ) -> Result<(), IntegrityError> {
        let unreadable = |e: std::io::Error| IntegrityError::Unreadable {
            path: path.to_path_buf(),
            error: e.to_string(),
        };
        let meta = std::fs::metadata(path).map_err(unreadable)?;
        if meta.len() != size {
            return Err(IntegrityError::WrongSize {
                path: path.to_path_buf(),
                expected: size,
                actual: meta.len(),
            });
        }
        let stamp = Stamp::of(&meta);
        if let Ok(cache) = self.verified.lock() {
            if cache.get(path) == Some(&(stamp, *expected)) {
                return Ok(());
            }
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update_mmap_rayon(path).map_err(unreadable)?;
        // Read the stamp again: a write during hashing must not be cached as verified.
        let after = std::fs::metadata(path)
            .map(|m| Stamp::of(&m))
            .map_err(unreadable)?;
        if hasher.finalize() != *expected {
            if let Ok(mut cache) = self.verified.lock() {
                cache.remove(path);
            }
            return Err(IntegrityError::Tampered {
                path: path.to_path_buf(),
                expected: expected.to_hex().to_string(),
            });
        }
        if after == stamp {
            if let Ok(mut cache) = self.verified.lock() {
                cache.insert(path.to_path_buf(), (stamp, *expected));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_files_are_rehashed_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello world").unwrap();
        let hash = blake3::hash(b"hello world");
        let files = VerifiedFiles::default();
        files.check(&path, &hash, 11).unwrap();
        files.check(&path, &hash, 11).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, b"hello World").unwrap();
        assert!(matches!(
            files.check(&path, &hash, 11),
            Err(IntegrityError::Tampered { .. })
        ));
        std::fs::write(&path, b"hello").unwrap();
        assert!(matches!(
            files.check(&path, &hash, 11),
            Err(IntegrityError::WrongSize { .. })
        ));
    }
}
