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

/// The pid of the process holding `dir`'s lock (a running node), or `None` when no process
/// holds it. Reads the note [`DataDirLock::acquire`] writes; the lock itself, not the note,
/// says whether the holder is alive.
pub fn lock_holder(dir: &Path) -> Result<Option<u32>, StoreError> {
    let path = dir.join(LOCK_FILE);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("cannot open lock file", &path)(e)),
    };
    match file.try_lock_shared() {
        // Nobody holds it; ours goes when `file` is dropped.
        Ok(()) => return Ok(None),
        Err(TryLockError::WouldBlock) => {}
        Err(TryLockError::Error(e)) => return Err(StoreError::io("cannot test lock", &path)(e)),
    }
    let mut note = String::new();
    file.read_to_string(&mut note)
        .map_err(StoreError::io("cannot read lock file", &path))?;
    Ok(pid_of_note(&note))
}

/// `pid 1234 (/usr/bin/netboot)` → 1234.
fn pid_of_note(note: &str) -> Option<u32> {
    note.trim()
        .strip_prefix("pid ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_the_locking_process_and_only_while_it_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(lock_holder(dir.path()).unwrap(), None, "no lock file yet");
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        assert_eq!(lock_holder(dir.path()).unwrap(), Some(std::process::id()));
        drop(lock);
        assert_eq!(
            lock_holder(dir.path()).unwrap(),
            None,
            "file left, lock gone"
        );
        assert_eq!(pid_of_note("pid unknown"), None);
        assert_eq!(pid_of_note("pid 42 (netboot)\n"), Some(42));
    }
}
