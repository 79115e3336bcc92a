//! One process per data dir.
//!
//! The blob database would refuse a second opener anyway, but with an error about redb; this
//! lock turns it into "in use by pid N" before anything is touched. The OS drops the lock when
//! the process dies, even by kill -9, so a crash never leaves a stale lock behind.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, Write},
    path::Path,
};

use super::StoreError;

pub(crate) const LOCK_FILE: &str = "netboot.lock";

#[derive(Debug)]
pub(crate) struct DataDirLock {
    _file: File,
    path: std::path::PathBuf,
    /// This process created the lock file (it was not there before).
    created: bool,
}

impl DataDirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(LOCK_FILE);
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(StoreError::io("cannot open lock file", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "pid unknown".to_string(),
                    h => h.to_string(),
                };
                return Err(StoreError::Busy {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => {
                if created {
                    let _ = std::fs::remove_file(&path);
                }
                return Err(StoreError::io("cannot lock", &path)(e));
            }
        }
        let note = format!(
            "pid {} ({})",
            std::process::id(),
            std::env::args().next().unwrap_or_default()
        );
        let write = file
            .set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(note.as_bytes()));
        write.map_err(StoreError::io("cannot write lock file", &path))?;
        Ok(Self {
            _file: file,
            path,
            created,
        })
    }

    /// For a directory that turned out not to be ours: remove the lock file if this process
    /// made it, so a refused directory is left as it was found.
    pub(crate) fn release_leaving_no_trace(self) {
        if self.created {
            // Still holding the lock while removing: no other netboot can be using it.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
