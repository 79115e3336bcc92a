//! Serve-time integrity: a file is re-hashed before it is served whenever it may have changed
//! since it was last verified, and every byte that goes out is checked again as it is read.
//!
//! Before the first byte: the key is the file's (device, inode, size, mtime, ctime); any write
//! through the file system (an admin's stray `dd`, a restore from backup, a malicious edit)
//! changes ctime, and ctime cannot be set back without changing the clock. A changed (or not
//! yet seen) file is hashed in full before a byte of it is served, building its BLAKE3
//! outboard (the hashes of every 16 KiB chunk group, as iroh-blobs keeps them) in memory; a
//! root that differs from the signed hash refuses the request.
//!
//! While streaming: a file can still be overwritten in place after that check, in the middle
//! of a transfer. [`VerifiedFile`] reads whole chunk groups and checks each against the
//! outboard before handing its bytes out, so a changed byte never reaches a client: the read
//! fails, HTTP aborts the body and TFTP sends an error packet. The outboard lives in memory
//! (64 bytes per 16 KiB, 0.4 % of the file) because it was computed from bytes whose root
//! matched the signature; a copy on disk could be changed as easily as the data.
//!
//! Silent media corruption of a file nobody requests is `netboot verify`'s job.

use std::{
    collections::HashMap,
    fs::File,
    io::{self, BufReader, Read},
    os::unix::fs::{FileExt, MetadataExt},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use bao_tree::{
    io::{outboard::PreOrderMemOutboard, sync as bao},
    BaoTree, BlockSize, ChunkNum, ChunkRanges,
};
use bytes::Bytes;

/// iroh-blobs' chunk group: 16 chunks of 1 KiB.
const GROUP_LOG: u8 = 4;
pub const GROUP_BYTES: u64 = 1024 << GROUP_LOG;

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
    /// Found while streaming: the bytes were right when the transfer began.
    #[error(
        "{path}: bytes {start}..{end} no longer match the signed BLAKE3 {expected} (changed on disk during the transfer); transfer cut"
    )]
    ChangedDuringTransfer {
        path: PathBuf,
        expected: String,
        start: u64,
        end: u64,
    },
}

impl From<IntegrityError> for io::Error {
    /// `InvalidData` marks an integrity refusal for the transfer logs (HTTP and TFTP).
    fn from(e: IntegrityError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// True when a transfer's read error is an integrity refusal (see `From<IntegrityError>`).
pub fn is_integrity_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
        && e.get_ref()
            .is_some_and(|inner| inner.downcast_ref::<IntegrityError>().is_some())
}

type Outboard = PreOrderMemOutboard<Vec<u8>>;

/// What a file looked like when it last hashed to the signed value, and its outboard.
type Verified = (Stamp, blake3::Hash, Arc<Outboard>);

#[derive(Debug, Default)]
pub struct VerifiedFiles {
    verified: Mutex<HashMap<PathBuf, Verified>>,
    /// One hashing of a file at a time: in a boot storm the first requests for a kernel
    /// arrive together, and each would otherwise read and hash the whole file (N clients,
    /// N full reads and N outboards in memory). Later ones wait and take the first one's
    /// result. One small entry per file ever served, like `verified`.
    hashing: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
    /// Full hashes done, for the tests of the above.
    hashes: std::sync::atomic::AtomicU64,
}

impl VerifiedFiles {
    /// Blocking: may hash the whole file. Call from a blocking thread.
    pub fn check(
        &self,
        path: &Path,
        expected: &blake3::Hash,
        size: u64,
    ) -> Result<(), IntegrityError> {
        self.outboard(path, expected, size).map(|_| ())
    }

    /// Opens a file for serving: checked now as [`check`](Self::check) does, and every read
    /// of the returned file checked again against the signed hash. Blocking.
    pub fn open(
        &self,
        path: &Path,
        expected: &blake3::Hash,
        size: u64,
    ) -> Result<VerifiedFile, IntegrityError> {
        let file = File::open(path).map_err(|e| unreadable(path, e))?;
        let outboard = self.outboard(path, expected, size)?;
        Ok(VerifiedFile {
            file,
            path: path.to_path_buf(),
            size,
            outboard,
        })
    }

    fn outboard(
        &self,
        path: &Path,
        expected: &blake3::Hash,
        size: u64,
    ) -> Result<Arc<Outboard>, IntegrityError> {
        let meta = std::fs::metadata(path).map_err(|e| unreadable(path, e))?;
        if meta.len() != size {
            return Err(IntegrityError::WrongSize {
                path: path.to_path_buf(),
                expected: size,
                actual: meta.len(),
            });
        }
        let stamp = Stamp::of(&meta);
        if let Some(outboard) = self.cached(path, stamp, expected) {
            return Ok(outboard);
        }
        let gate = match self.hashing.lock() {
            Ok(mut gates) => gates.entry(path.to_path_buf()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        let _hashing = gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(outboard) = self.cached(path, stamp, expected) {
            return Ok(outboard);
        }
        self.hashes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tree = BaoTree::new(size, BlockSize::from_chunk_log(GROUP_LOG));
        let mut outboard = Outboard {
            root: *expected,
            tree,
            data: vec![0; usize::try_from(tree.outboard_size()).unwrap_or(usize::MAX)],
        };
        let file = File::open(path).map_err(|e| unreadable(path, e))?;
        let reader = BufReader::with_capacity(1 << 20, file).take(size);
        let root = match bao::outboard(reader, tree, &mut outboard) {
            Ok(root) => root,
            // Shorter than it was a moment ago: changed while we hashed it.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => blake3::Hash::from([0; 32]),
            Err(e) => return Err(unreadable(path, e)),
        };
        // Read the stamp again: a write during hashing must not be cached as verified.
        let after = std::fs::metadata(path)
            .map(|m| Stamp::of(&m))
            .map_err(|e| unreadable(path, e))?;
        if root != *expected {
            if let Ok(mut cache) = self.verified.lock() {
                cache.remove(path);
            }
            return Err(IntegrityError::Tampered {
                path: path.to_path_buf(),
                expected: expected.to_hex().to_string(),
            });
        }
        let outboard = Arc::new(outboard);
        if after == stamp {
            if let Ok(mut cache) = self.verified.lock() {
                cache.insert(path.to_path_buf(), (stamp, *expected, outboard.clone()));
            }
        }
        Ok(outboard)
    }

    /// The outboard of `path` if it was verified with this stamp and hash.
    fn cached(&self, path: &Path, stamp: Stamp, expected: &blake3::Hash) -> Option<Arc<Outboard>> {
        let cache = self.verified.lock().ok()?;
        let (s, h, outboard) = cache.get(path)?;
        ((*s, *h) == (stamp, *expected)).then(|| outboard.clone())
    }
}

fn unreadable(path: &Path, e: io::Error) -> IntegrityError {
    IntegrityError::Unreadable {
        path: path.to_path_buf(),
        error: e.to_string(),
    }
}

/// An open file whose every read is checked against the signed hash, 16 KiB group by group.
#[derive(Debug)]
pub struct VerifiedFile {
    file: File,
    path: PathBuf,
    size: u64,
    /// Built from bytes whose root matched the signature, so it is the truth for this hash.
    outboard: Arc<Outboard>,
}

impl VerifiedFile {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads `len` bytes at `start` (cut at the end of the file). Reads the whole chunk
    /// groups around them and hands out nothing unless every one matches the outboard.
    /// Blocking (a `pread`); aligned reads of whole groups cost no extra I/O.
    pub fn read_verified(&self, start: u64, len: u64) -> Result<Bytes, IntegrityError> {
        let end = start.saturating_add(len).min(self.size);
        if start >= end {
            return Ok(Bytes::new());
        }
        let span_start = start - start % GROUP_BYTES;
        let span_end = end
            .div_ceil(GROUP_BYTES)
            .saturating_mul(GROUP_BYTES)
            .min(self.size);
        let mut buf = vec![0u8; (span_end - span_start) as usize];
        let changed = || IntegrityError::ChangedDuringTransfer {
            path: self.path.clone(),
            expected: self.outboard.root.to_hex().to_string(),
            start: span_start,
            end: span_end,
        };
        match self.file.read_exact_at(&mut buf, span_start) {
            Ok(()) => {}
            // Shrunk under us.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(changed()),
            Err(e) => return Err(unreadable(&self.path, e)),
        }
        let first = ChunkNum::full_chunks(span_start);
        let last = ChunkNum::chunks(span_end);
        let wanted = ChunkRanges::from(first..last);
        let data = Span {
            start: span_start,
            bytes: &buf,
        };
        let mut valid = 0u64;
        for range in bao::valid_ranges(&*self.outboard, data, &wanted) {
            let range = range.map_err(|e| unreadable(&self.path, e))?;
            valid += range.end.0 - range.start.0;
        }
        if valid != last.0 - first.0 {
            return Err(changed());
        }
        let from = (start - span_start) as usize;
        Ok(Bytes::from(buf).slice(from..from + (end - start) as usize))
    }

    /// `pread`-like, for sources that fill a caller's buffer (TFTP).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let bytes = self.read_verified(offset, buf.len() as u64)?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        Ok(bytes.len())
    }
}

/// The bytes just read, at their place in the file, for bao-tree's validator.
struct Span<'a> {
    start: u64,
    bytes: &'a [u8],
}

impl positioned_io::ReadAt for Span<'_> {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let Some(from) = pos
            .checked_sub(self.start)
            .and_then(|f| usize::try_from(f).ok())
            .filter(|f| *f < self.bytes.len())
        else {
            return Ok(0);
        };
        let n = buf.len().min(self.bytes.len() - from);
        buf[..n].copy_from_slice(&self.bytes[from..from + n]);
        Ok(n)
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

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 1000) as u8).collect()
    }

    /// Every range of an intact file reads back exactly; sizes around group boundaries.
    #[test]
    fn reads_of_an_intact_file_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let files = VerifiedFiles::default();
        for len in [0usize, 1, 1024, 16_383, 16_384, 16_385, 100_000, 300_001] {
            let bytes = data(len);
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &bytes).unwrap();
            let f = files
                .open(&path, &blake3::hash(&bytes), len as u64)
                .unwrap();
            for (start, n) in [(0, len), (1, 5000), (16_000, 40_000), (len / 2, len)] {
                let start = start.min(len);
                let end = (start + n).min(len);
                let got = f.read_verified(start as u64, n as u64).unwrap();
                assert_eq!(&got[..], &bytes[start..end], "len {len} at {start}+{n}");
            }
        }
    }

    /// Requests that arrive together for a file not yet verified hash it once between them.
    #[test]
    fn concurrent_first_checks_hash_once() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(8 << 20);
        let path = dir.path().join("f");
        std::fs::write(&path, &bytes).unwrap();
        let (files, hash) = (VerifiedFiles::default(), blake3::hash(&bytes));
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| files.check(&path, &hash, bytes.len() as u64).unwrap());
            }
        });
        assert_eq!(files.hashes.load(std::sync::atomic::Ordering::Relaxed), 1);
        // A change on disk is hashed again (and refused), not served from the cache.
        std::fs::write(
            &path,
            data(8 << 20).iter().map(|b| b ^ 1).collect::<Vec<_>>(),
        )
        .unwrap();
        assert!(files.check(&path, &hash, bytes.len() as u64).is_err());
        assert_eq!(files.hashes.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    /// A write in place after the open: the groups it touched fail, the others still read.
    #[test]
    fn a_group_changed_after_open_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(200_000);
        let path = dir.path().join("f");
        std::fs::write(&path, &bytes).unwrap();
        let files = VerifiedFiles::default();
        let f = files
            .open(&path, &blake3::hash(&bytes), bytes.len() as u64)
            .unwrap();
        let writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        writer.write_all_at(b"X", 100_000).unwrap();
        // Group 6 (98304..114688) holds the changed byte.
        assert_eq!(&f.read_verified(0, 98_304).unwrap()[..], &bytes[..98_304]);
        assert!(matches!(
            f.read_verified(98_304, 10),
            Err(IntegrityError::ChangedDuringTransfer {
                start: 98_304,
                end: 114_688,
                ..
            })
        ));
        assert!(f.read_verified(90_000, 20_000).is_err());
        let mut buf = [0u8; 100];
        let e = f.read_at(100_000, &mut buf).unwrap_err();
        assert!(is_integrity_error(&e), "{e}");
        assert_eq!(
            &f.read_verified(114_688, 100_000).unwrap()[..],
            &bytes[114_688..]
        );
        // Shrunk in place: refused too.
        writer.set_len(150_000).unwrap();
        assert!(f.read_verified(140_000, 20_000).is_err());
    }
}
