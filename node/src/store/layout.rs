//! Where things live in a data dir.
//!
//! ```text
//! <data_dir>/
//!   FORMAT                       "netboot data dir format 1"
//!   netboot.lock                 held by the one process using the dir
//!   floors                       `<name> <version>` lines: the version each new release must exceed
//!   blobs/                       iroh-blobs FsStore: blobs.db (redb), data/<hash>.data|.obao4, temp/
//!   releases/<name>/<version>.release   signed releases; writing one is the commit point
//!   fleet.key                    the node's fleet identity (written by the fleet, may come first)
//!   pending/                     releases admitted by the fleet and not yet complete
//!   clients.json                 the client record (written by `clients::saved`, not the store)
//!   policy.nbpol                 the boot policy this node holds (written by `policy::held`)
//!   oneshot.json                 the one-shot ledger (written with clients.json)
//! ```

use std::path::{Path, PathBuf};

use netboot_proto::ImageName;

pub(crate) const FORMAT_FILE: &str = "FORMAT";
pub(crate) const FORMAT_TEXT: &str = "netboot data dir format 1\n";
const RELEASE_EXT: &str = "release";
/// The fleet's key: the one file that may be in a data dir before the store formats it
/// (`netboot node-id` creates it on a fresh node).
pub const FLEET_KEY_FILE: &str = "fleet.key";

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The file that marks a directory as a netboot data dir.
    pub const FORMAT_FILE_NAME: &'static str = FORMAT_FILE;

    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// iroh-blobs' database: which blobs exist, complete or partial, and their tags.
    pub fn blob_index(&self) -> PathBuf {
        self.blobs_dir().join("blobs.db")
    }

    /// Where complete blobs live as plain `<hash>.data` files (with `.obao4` outboards).
    pub fn blob_data_dir(&self) -> PathBuf {
        self.blobs_dir().join("data")
    }

    /// Each name's version floor (see `floors.rs`).
    pub fn floors_file(&self) -> PathBuf {
        self.root.join(super::floors::FLOORS_FILE)
    }

    pub fn releases_dir(&self) -> PathBuf {
        self.root.join("releases")
    }

    pub fn name_dir(&self, name: &ImageName) -> PathBuf {
        self.releases_dir().join(name.as_str())
    }

    /// Zero-padded so that a directory listing sorts by version.
    pub fn release_file(&self, name: &ImageName, version: u64) -> PathBuf {
        self.name_dir(name)
            .join(format!("{version:020}.{RELEASE_EXT}"))
    }

    /// The version a release file's name claims, if it is one of ours.
    pub fn parse_release_file_name(file_name: &str) -> Option<u64> {
        let stem = file_name.strip_suffix(&format!(".{RELEASE_EXT}"))?;
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        stem.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_file_names_round_trip() {
        let l = Layout::new(Path::new("/d"));
        let name: ImageName = "deb".parse().unwrap();
        let p = l.release_file(&name, 42);
        assert_eq!(
            p,
            PathBuf::from("/d/releases/deb/00000000000000000042.release")
        );
        let file = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(Layout::parse_release_file_name(file), Some(42));
        assert_eq!(Layout::parse_release_file_name("42.release"), None);
        assert_eq!(
            Layout::parse_release_file_name(".tmp-1-00000000000000000042.release"),
            None
        );
    }
}
