//! The node's fleet identity: an iroh endpoint key kept in the data dir.
//!
//! The key is the node: peers name it by its public half (`<endpoint-id>@host:port`), and
//! QUIC's handshake proves it, so an address change or a DNS mistake cannot make a node talk
//! to an impostor. It is created once, on first use, and never rotated silently.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use iroh::SecretKey;

/// The file name inside the data dir (the store owns the data dir's layout).
pub use crate::store::FLEET_KEY_FILE;
const HEADER: &str = "netboot-fleet-key:";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read fleet key {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("cannot write fleet key {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("fleet key {0} is malformed (expected a `{HEADER}<64 hex digits>` line); restore it from a backup, or delete it to give this node a new identity (its peers must then be reconfigured)")]
    Malformed(PathBuf),
}

pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(FLEET_KEY_FILE)
}

/// Loads the node's key, creating it (mode 0600) if the data dir has none yet.
pub fn load_or_create(data_dir: &Path) -> Result<SecretKey, IdentityError> {
    let path = key_path(data_dir);
    match fs::read_to_string(&path) {
        Ok(text) => parse(&text).ok_or(IdentityError::Malformed(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&path),
        Err(e) => Err(IdentityError::Read(path, e)),
    }
}

fn parse(text: &str) -> Option<SecretKey> {
    let hex_key = text.lines().find_map(|l| l.trim().strip_prefix(HEADER))?;
    let bytes: [u8; 32] = hex::decode(hex_key.trim()).ok()?.try_into().ok()?;
    Some(SecretKey::from_bytes(&bytes))
}

fn create(path: &Path) -> Result<SecretKey, IdentityError> {
    let write_err = |e| IdentityError::Write(path.to_path_buf(), e);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(write_err)?;
    }
    let key = SecretKey::generate();
    let text = format!(
        "# netboot fleet identity of this node (endpoint id {}). Keep it private.\n{HEADER}{}\n",
        key.public(),
        hex::encode(key.to_bytes())
    );
    // create_new: two processes racing to create it cannot both win and disagree.
    let tmp = path.with_extension("key.tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(write_err)?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(write_err)?;
    match fs::hard_link(&tmp, path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(&tmp);
            return load_or_create(path.parent().unwrap_or(Path::new(".")));
        }
        Err(e) => return Err(write_err(e)),
    }
    let _ = fs::remove_file(&tmp);
    if let Some(dir) = path.parent() {
        crate::fsutil::sync_dir(dir).map_err(write_err)?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.public(), b.public());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(key_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
        fs::write(key_path(dir.path()), "garbage").unwrap();
        let err = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("fleet.key") && err.contains("malformed"),
            "{err}"
        );
    }
}
