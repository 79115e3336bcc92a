//! The record on disk, `<data_dir>/clients.json`, so a restart keeps what the node knows of
//! its machines. Written whole and atomically (see [`crate::fsutil`]); read once at start,
//! cut to the same limits as in memory. A file that cannot be read is set aside, never fatal:
//! losing the record costs the history, not a boot.

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use super::{
    once::{self, Ledger, OnceEntry},
    record::{Boot, Clients, Limits, Machine},
    ClientLog,
};
use crate::fsutil;

/// The record's file name in the data dir.
pub const FILE_NAME: &str = "clients.json";
/// How often at most the record is written while it changes.
pub const SAVE_EVERY: Duration = Duration::from_secs(5);
/// The format this node writes and reads; a different one is set aside like a damaged file.
const FORMAT: u32 = 1;

/// The file's content.
#[derive(Debug, Serialize, Deserialize)]
pub struct Saved {
    pub format: u32,
    pub machines: Vec<Machine>,
    pub boots: Vec<Boot>,
}

impl Saved {
    pub fn of(record: &Clients) -> Self {
        Self {
            format: FORMAT,
            machines: record.machines(),
            boots: record.boots().cloned().collect(),
        }
    }
}

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} is not a client record: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{} has format {found}; this node reads format {FORMAT}", path.display())]
    Format { path: PathBuf, found: u32 },
}

/// The record in `path`, cut to `limits`; `None` when there is no file yet.
pub fn load(path: &Path, limits: Limits) -> Result<Option<Clients>, LoadError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LoadError::Read {
                path: path.into(),
                source,
            })
        }
    };
    let saved: Saved = serde_json::from_slice(&bytes).map_err(|source| LoadError::Parse {
        path: path.into(),
        source,
    })?;
    if saved.format != FORMAT {
        return Err(LoadError::Format {
            path: path.into(),
            found: saved.format,
        });
    }
    Ok(Some(Clients::restore(limits, saved.machines, saved.boots)))
}

/// Where a file that could not be read is moved, kept for a look rather than overwritten.
pub fn set_aside_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".damaged");
    path.with_file_name(name)
}

/// The record in `path`, or an empty one: a damaged file is logged, naming it, and moved to
/// [`set_aside_path`].
pub fn load_or_set_aside(path: &Path, limits: Limits) -> Clients {
    match load(path, limits) {
        Ok(Some(record)) => {
            tracing::info!(
                "clients: {} machines known from {}",
                record.machine_count(),
                path.display()
            );
            record
        }
        Ok(None) => Clients::new(limits),
        Err(e) => {
            let aside = set_aside_path(path);
            match fs::rename(path, &aside) {
                Ok(()) => tracing::warn!(
                    "clients: {e}; moved it to {} and starting with an empty record",
                    aside.display()
                ),
                Err(mv) => tracing::warn!(
                    "clients: {e}; starting with an empty record (could not move it to {}: {mv})",
                    aside.display()
                ),
            }
            Clients::new(limits)
        }
    }
}

pub fn save(path: &Path, saved: &Saved) -> io::Result<()> {
    let bytes = serde_json::to_vec(saved).map_err(io::Error::other)?;
    fsutil::write_atomic(path, &bytes)
}

/// `oneshot.json`'s content: the one-shot ledger (see [`super::once`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedOnce {
    pub format: u32,
    pub entries: Vec<OnceEntry>,
}

/// The one-shot ledger beside the record at `clients_path`.
pub fn once_path(clients_path: &Path) -> PathBuf {
    clients_path.with_file_name(once::FILE_NAME)
}

/// The one-shot ledger in `path`, or an empty one. A file that cannot be read is logged and
/// set aside like the record: the price is that a one-shot done before may boot its image
/// once more, which the log line says.
pub fn load_once_or_set_aside(path: &Path) -> Ledger {
    let read = match fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<SavedOnce>(&bytes)
            .map_err(|e| format!("{} is not a one-shot ledger: {e}", path.display()))
            .and_then(|s| match s.format {
                FORMAT => Ok(s.entries),
                found => Err(format!(
                    "{} has format {found}; this node reads format {FORMAT}",
                    path.display()
                )),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    };
    match read {
        Ok(entries) => Ledger::restore(once::MAX_ENTRIES, entries),
        Err(e) => {
            let aside = set_aside_path(path);
            let moved = fs::rename(path, &aside)
                .map(|()| format!("moved it to {}", aside.display()))
                .unwrap_or_else(|mv| format!("could not move it to {}: {mv}", aside.display()));
            tracing::warn!(
                "clients: {e}; {moved}; starting with no one-shot boots done (a one-shot done before may boot its image once more)"
            );
            Ledger::new(once::MAX_ENTRIES)
        }
    }
}

/// Writes the record to `path` and the one-shot ledger beside it, when either changed since
/// `*saved_at` (their change count then).
pub async fn save_if_changed(log: &ClientLog, path: &Path, saved_at: &mut u64) {
    let (changes, saved, entries) = log.to_save();
    if changes == *saved_at {
        return;
    }
    let target = path.to_path_buf();
    let write = move || {
        save(&target, &saved)?;
        let once = SavedOnce {
            format: FORMAT,
            entries,
        };
        let bytes = serde_json::to_vec(&once).map_err(io::Error::other)?;
        fsutil::write_atomic(&once_path(&target), &bytes)
    };
    match tokio::task::spawn_blocking(write).await {
        Ok(Ok(())) => *saved_at = changes,
        Ok(Err(e)) => tracing::warn!("clients: writing {}: {e}", path.display()),
        Err(e) => tracing::warn!("clients: writing {}: {e}", path.display()),
    }
}

/// Saves the record every [`SAVE_EVERY`] while it changes, until `stop`; the caller saves
/// once more after the servers have stopped.
pub async fn keep_saved(
    log: ClientLog,
    path: PathBuf,
    stop: impl std::future::Future<Output = ()>,
) -> u64 {
    let mut saved_at = log.changes();
    let mut tick = tokio::time::interval(SAVE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return saved_at,
            _ = tick.tick() => save_if_changed(&log, &path, &mut saved_at).await,
        }
    }
}
