//! Publisher key files on disk.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use netboot_proto::{KeyError, SecretKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(
        "{0} already exists; refusing to overwrite a key (delete it first if you really mean to)"
    )]
    Exists(PathBuf),
    #[error("cannot write key file {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("cannot read key file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("key file {0}: {1}")]
    Parse(PathBuf, KeyError),
    #[error("cannot get randomness from the OS: {0}")]
    Random(String),
}

/// Creates a new secret key file (mode 0600, never overwriting) and returns the key.
pub fn generate(path: &Path) -> Result<SecretKey, KeyFileError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyFileError::Random(e.to_string()))?;
    let key = SecretKey::from_seed(seed);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => KeyFileError::Exists(path.to_path_buf()),
            _ => KeyFileError::Write(path.to_path_buf(), e),
        })?;
    let written = file
        .write_all(key.to_file_text().as_bytes())
        .and_then(|_| file.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(path);
        return Err(KeyFileError::Write(path.to_path_buf(), e));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = crate::fsutil::sync_dir(dir);
    }
    Ok(key)
}

pub fn load(path: &Path) -> Result<SecretKey, KeyFileError> {
    let text = fs::read_to_string(path).map_err(|e| KeyFileError::Read(path.to_path_buf(), e))?;
    if let Ok(meta) = fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "key file {} is readable by other users; chmod 600 it",
                path.display()
            );
        }
    }
    SecretKey::from_file_text(&text).map_err(|e| KeyFileError::Parse(path.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_is_private_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = generate(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load(&path).unwrap().public(), key.public());
        let before = fs::read(&path).unwrap();
        assert!(matches!(generate(&path), Err(KeyFileError::Exists(_))));
        assert_eq!(fs::read(&path).unwrap(), before, "existing key untouched");
    }
}
