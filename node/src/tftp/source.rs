//! What the server asks for files, and a directory-backed implementation.
//!
//! The traits are synchronous on purpose. The server calls them only from
//! tokio's blocking pool (`spawn_blocking`), reading ahead in large chunks, so:
//! - a plain file is served with `pread` and never stalls the async workers,
//!   even on a cold disk or a network filesystem;
//! - the traits stay object-safe without boxed futures or an async-trait crate;
//! - a source backed by async code can still bridge with
//!   `tokio::runtime::Handle::current().block_on(..)`, which is allowed on
//!   blocking-pool threads.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::packet::ErrorCode;
use super::path;
use crate::metrics::TransferResult;

/// Why a file cannot be served. The variant picks the TFTP error code; the
/// text is for the server log only, clients get a generic message so that
/// server-side paths and policies do not leak.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("file not found")]
    NotFound,
    #[error("access violation: {0}")]
    AccessViolation(String),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl OpenError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            OpenError::NotFound => ErrorCode::FileNotFound,
            OpenError::AccessViolation(_) => ErrorCode::AccessViolation,
            OpenError::Io(_) => ErrorCode::NotDefined,
        }
    }

    pub fn client_message(&self) -> &'static str {
        match self {
            OpenError::NotFound => "file not found",
            OpenError::AccessViolation(_) => "access violation",
            OpenError::Io(_) => "cannot read file",
        }
    }

    /// Classifies an I/O error from opening: "missing" and "not allowed" are
    /// ordinary answers for a TFTP client, anything else is a server problem.
    pub fn from_io(err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => OpenError::NotFound,
            io::ErrorKind::PermissionDenied => OpenError::AccessViolation(err.to_string()),
            _ => OpenError::Io(err),
        }
    }
}

/// Provider of files for read requests.
///
/// `path` has been normalised by the server (relative, `/`-separated, no `.`,
/// `..` or empty components). `client` lets a source serve per-machine files or
/// refuse unknown clients. Called on a blocking-pool thread; may block.
pub trait TftpSource: Send + Sync + 'static {
    fn open(&self, path: &str, client: SocketAddr) -> Result<Box<dyn TftpFile>, OpenError>;

    /// Told how each request ended and how many bytes went out (for the node's metrics).
    fn ended(&self, _result: TransferResult, _bytes: u64) {}
}

/// One open file. Its size is fixed when opened: it is announced in `tsize` and
/// decides where the transfer ends.
///
/// `read_at` is positional so that retransmissions and window rewinds need no
/// seeking state; `&mut self` still lets a source keep a cursor or a decoder.
/// Called on a blocking-pool thread with buffers of up to `TftpConfig::read_ahead`.
pub trait TftpFile: Send {
    fn size(&self) -> u64;
    /// Reads at `offset`, like `pread(2)`: may return fewer bytes than asked;
    /// `Ok(0)` before `size()` means the file shrank, which ends the transfer
    /// with an error rather than sending a silently truncated file.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

/// Serves regular files below a root directory, refusing symlinks anywhere in
/// the requested path and anything that is not a regular file.
///
/// Symlinks are refused (not resolved) because a link pointing out of the root
/// is the classic way a served tree leaks files, and a PXE tree has no need for
/// them. Check: `lstat` on every component, then after `open` the opened file's
/// device/inode must match what `lstat` saw, and its canonical path must still
/// be inside the root. Without `openat(O_NOFOLLOW)` (not in std) a local user
/// who can write into the root could race a component between check and open;
/// such a user could also just place the file there, so this is accepted.
#[derive(Debug, Clone)]
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    /// `root` must be an existing directory; it is canonicalised once here so a
    /// root reached through symlinks (e.g. /srv/tftp -> /data/tftp) still works.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = std::fs::canonicalize(root.as_ref())?;
        if !std::fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn open_checked(&self, rel: &str) -> Result<DirFile, OpenError> {
        // The server already normalised the name; repeat it because this type is
        // public and its safety must not depend on who calls it.
        let rel = path::normalize(rel).map_err(|e| OpenError::AccessViolation(e.to_string()))?;

        let mut full = self.root.clone();
        let mut components = rel.split('/').peekable();
        let mut last_meta = None;
        while let Some(component) = components.next() {
            full.push(component);
            let meta = std::fs::symlink_metadata(&full).map_err(OpenError::from_io)?;
            if meta.file_type().is_symlink() {
                return Err(OpenError::AccessViolation(format!(
                    "symlink in path: {}",
                    full.display()
                )));
            }
            if components.peek().is_some() {
                if !meta.is_dir() {
                    return Err(OpenError::NotFound);
                }
            } else {
                if !meta.is_file() {
                    return Err(OpenError::AccessViolation(format!(
                        "not a regular file: {}",
                        full.display()
                    )));
                }
                last_meta = Some(meta);
            }
        }
        let Some(expected) = last_meta else {
            // Unreachable: normalize() never returns an empty path. Refuse anyway.
            return Err(OpenError::NotFound);
        };

        let file = File::open(&full).map_err(OpenError::from_io)?;
        let meta = file.metadata()?;
        if !meta.is_file() || meta.dev() != expected.dev() || meta.ino() != expected.ino() {
            return Err(OpenError::AccessViolation(format!(
                "file changed while being opened: {}",
                full.display()
            )));
        }
        let canonical = std::fs::canonicalize(&full)?;
        if !canonical.starts_with(&self.root) {
            return Err(OpenError::AccessViolation(format!(
                "resolves outside the root: {}",
                canonical.display()
            )));
        }
        Ok(DirFile {
            file,
            size: meta.len(),
        })
    }
}

impl TftpSource for DirSource {
    fn open(&self, path: &str, _client: SocketAddr) -> Result<Box<dyn TftpFile>, OpenError> {
        Ok(Box::new(self.open_checked(path)?))
    }
}

/// A regular file opened by [`DirSource`].
#[derive(Debug)]
pub struct DirFile {
    file: File,
    size: u64,
}

impl DirFile {
    /// A file already opened and checked by the caller; `size` is what it will serve.
    pub fn new(file: File, size: u64) -> Self {
        Self { file, size }
    }
}

impl TftpFile for DirFile {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
}

/// A release file whose every read is checked against its signed hash; a failed check is
/// an `InvalidData` error, which ends the transfer with an error packet.
impl TftpFile for crate::integrity::VerifiedFile {
    fn size(&self) -> u64 {
        crate::integrity::VerifiedFile::size(self)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        crate::integrity::VerifiedFile::read_at(self, offset, buf)
    }
}

/// An in-memory file, for generated content (e.g. an iPXE script rendered per
/// client) and tests.
impl TftpFile for io::Cursor<Vec<u8>> {
    fn size(&self) -> u64 {
        self.get_ref().len() as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let data = self.get_ref();
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        if start >= data.len() {
            return Ok(0);
        }
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn client() -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1234))
    }

    fn read_all(f: &mut dyn TftpFile) -> Vec<u8> {
        let mut out = vec![0u8; f.size() as usize];
        let mut off = 0;
        while off < out.len() {
            let n = f.read_at(off as u64, &mut out[off..]).unwrap();
            assert!(n > 0);
            off += n;
        }
        out
    }

    #[test]
    fn dir_source_serves_files_and_refuses_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        std::fs::write(tmp.path().join("sub/file"), b"hello").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), tmp.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("dirlink")).unwrap();
        std::os::unix::fs::symlink("sub/file", tmp.path().join("innerlink")).unwrap();

        let src = DirSource::new(tmp.path()).unwrap();
        let mut f = src.open("sub/file", client()).unwrap();
        assert_eq!(f.size(), 5);
        assert_eq!(read_all(&mut *f), b"hello");

        assert!(matches!(
            src.open("missing", client()),
            Err(OpenError::NotFound)
        ));
        assert!(matches!(
            src.open("sub/file/x", client()),
            Err(OpenError::NotFound)
        ));
        assert!(matches!(
            src.open("sub", client()),
            Err(OpenError::AccessViolation(_))
        ));
        assert!(matches!(
            src.open("link", client()),
            Err(OpenError::AccessViolation(_))
        ));
        assert!(matches!(
            src.open("dirlink/secret", client()),
            Err(OpenError::AccessViolation(_))
        ));
        // Even a link that stays inside is refused: policy is "no symlinks".
        assert!(matches!(
            src.open("innerlink", client()),
            Err(OpenError::AccessViolation(_))
        ));
        assert!(matches!(
            src.open("../x", client()),
            Err(OpenError::AccessViolation(_))
        ));
        assert!(matches!(
            src.open("//etc/passwd", client()),
            Err(OpenError::AccessViolation(_))
        ));
    }

    #[test]
    fn dir_source_root_must_be_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), b"").unwrap();
        assert!(DirSource::new(tmp.path().join("f")).is_err());
        assert!(DirSource::new(tmp.path().join("nope")).is_err());
    }

    #[test]
    fn cursor_source_reads() {
        let mut c = io::Cursor::new(b"abcdef".to_vec());
        let mut buf = [0u8; 4];
        assert_eq!(c.read_at(4, &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"ef");
        assert_eq!(c.read_at(6, &mut buf).unwrap(), 0);
        assert_eq!(c.read_at(u64::MAX, &mut buf).unwrap(), 0);
    }

    #[test]
    fn error_mapping() {
        assert_eq!(OpenError::NotFound.error_code(), ErrorCode::FileNotFound);
        assert_eq!(
            OpenError::AccessViolation("x".into()).error_code(),
            ErrorCode::AccessViolation
        );
        let e = OpenError::from_io(io::Error::from(io::ErrorKind::NotFound));
        assert!(matches!(e, OpenError::NotFound));
        let e = OpenError::from_io(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(matches!(e, OpenError::AccessViolation(_)));
        let e = OpenError::from_io(io::Error::other("disk on fire"));
        assert_eq!(e.error_code(), ErrorCode::NotDefined);
    }
}
