//! Is the blob index (`blobs/blobs.db`, redb) sound enough to open?
//!
//! redb answers some kinds of damage with a panic inside iroh-blobs' own thread ("entered
//! unreachable code", "Invalid page type byte"), which would take the node down with a
//! backtrace and no word about the file. So before iroh-blobs opens the database, this opens
//! it with redb on a thread of its own, runs redb's integrity check, and turns an error or a
//! panic into one sentence. A missing index beside release or blob files is damage too:
//! opening would create an empty one and list no releases although every file is intact.

use std::{path::Path, sync::Once};

/// Name of the checking thread, whose panics are expected and reported, not printed.
const CHECK_THREAD: &str = "netboot-index-check";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IndexState {
    /// Absent in a store that holds nothing yet: iroh-blobs creates it.
    New,
    Sound,
    Missing,
    Damaged(String),
}

/// `db`: the index file; `data_dir`, `releases_dir`: what an index would describe.
pub(crate) fn check(db: &Path, data_dir: &Path, releases_dir: &Path) -> IndexState {
    if !db.exists() {
        return if has_files(data_dir, ".data") || has_release_files(releases_dir) {
            IndexState::Missing
        } else {
            IndexState::New
        };
    }
    quiet_check_thread_panics();
    let path = db.to_path_buf();
    let result = std::thread::Builder::new()
        .name(CHECK_THREAD.into())
        .spawn(move || integrity(&path))
        .map_err(|e| format!("cannot start the check: {e}"))
        .and_then(|t| t.join().map_err(panic_text).and_then(|r| r));
    match result {
        Ok(()) => IndexState::Sound,
        Err(reason) => IndexState::Damaged(reason),
    }
}

fn integrity(path: &Path) -> Result<(), String> {
    let mut db = redb::Database::builder()
        .open(path)
        .map_err(|e| e.to_string())?;
    // Ok(false) means redb repaired an unclean shutdown, which is fine.
    db.check_integrity().map(|_| ()).map_err(|e| e.to_string())
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown".into());
    format!("redb failed: {text}")
}

/// The default hook would print a backtrace for the checking thread's expected panic; all
/// other threads keep the default behaviour.
fn quiet_check_thread_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some(CHECK_THREAD) {
                previous(info);
            }
        }));
    });
}

fn has_files(dir: &Path, suffix: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().ends_with(suffix))
    })
}

fn has_release_files(releases_dir: &Path) -> bool {
    std::fs::read_dir(releases_dir).is_ok_and(|names| {
        names
            .filter_map(Result::ok)
            .any(|n| has_files(&n.path(), ".release"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_index_beside_data_is_damage_and_garbage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (db, data, rel) = (
            dir.path().join("blobs.db"),
            dir.path().join("data"),
            dir.path().join("releases"),
        );
        assert_eq!(check(&db, &data, &rel), IndexState::New);
        std::fs::create_dir_all(rel.join("deb")).unwrap();
        std::fs::write(rel.join("deb/00000000000000000001.release"), b"x").unwrap();
        assert_eq!(check(&db, &data, &rel), IndexState::Missing);
        std::fs::write(&db, vec![0x5a; 8192]).unwrap();
        let IndexState::Damaged(why) = check(&db, &data, &rel) else {
            panic!("garbage accepted as an index");
        };
        assert!(why.contains("redb"), "{why}");
    }
}
