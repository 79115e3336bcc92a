//! Policy files: the operator's TOML source in, a signed `.nbpol` out, and back.

use std::{
    fs,
    path::{Path, PathBuf},
};

use netboot_proto::{
    policy::{
        parse_source, PolicyDecodeError, SignError, SignedPolicy, SourceError, SourceMeta,
        VerifiedPolicy,
    },
    SecretKey,
};

use crate::fsutil::write_atomic;

#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Source(PathBuf, SourceError),
    #[error("cannot sign {0}: {1}")]
    Sign(PathBuf, SignError),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Decode(PathBuf, PolicyDecodeError),
}

/// What `netboot policy sign` adds to the source.
#[derive(Debug, Clone, Copy)]
pub struct SignOptions {
    pub version: u64,
    pub now: u64,
    pub expires_in: Option<u64>,
}

/// Compiles `source`, signs it with `key` and writes the signed policy to `out` atomically
/// (a crash leaves the old file or the new one, never half of one).
pub fn sign_source(
    source: &Path,
    key: &SecretKey,
    opts: SignOptions,
    out: &Path,
) -> Result<VerifiedPolicy, PolicyFileError> {
    let text =
        fs::read_to_string(source).map_err(|e| PolicyFileError::Read(source.to_path_buf(), e))?;
    let meta = SourceMeta {
        version: opts.version,
        created: opts.now,
        expires: opts.expires_in.map(|d| opts.now.saturating_add(d)),
        publisher: key.public(),
    };
    let policy =
        parse_source(&text, meta).map_err(|e| PolicyFileError::Source(source.to_path_buf(), e))?;
    let signed = SignedPolicy::sign(&policy, key)
        .map_err(|e| PolicyFileError::Sign(source.to_path_buf(), e))?;
    // A bare file name has an empty parent; write_atomic needs a directory to sync.
    let out = match out.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new(".").join(out),
        _ => out.to_path_buf(),
    };
    write_atomic(&out, &signed.signed().encode()).map_err(|e| PolicyFileError::Write(out, e))?;
    Ok(signed)
}

/// Reads and verifies a signed policy file (the signature only: trust is the caller's
/// decision, `netboot_proto::policy::admit_policy`).
pub fn load_signed(path: &Path) -> Result<VerifiedPolicy, PolicyFileError> {
    let bytes = fs::read(path).map_err(|e| PolicyFileError::Read(path.to_path_buf(), e))?;
    SignedPolicy::open(&bytes).map_err(|e| PolicyFileError::Decode(path.to_path_buf(), e))
}
