//! A release: one version of one named boot image, as its publisher describes it.
//!
//! The release lists every file by path, size and BLAKE3 hash, and says how to boot it. It is
//! the unit that is signed, announced, fetched, stored and served; nothing is served that a
//! release does not name by hash, which is why files of two releases can never be mixed.

use std::collections::BTreeSet;

use crate::{CmdlineTemplate, ContentHash, ImageName, ImagePath, PublicKey};

/// Bounds that keep a hostile release from exhausting a node before its signature is checked.
pub const MAX_FILES: usize = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReleaseError {
    #[error("release version must be at least 1")]
    ZeroVersion,
    #[error("the release has no files")]
    NoFiles,
    #[error("the release has {0} files; at most {MAX_FILES} are allowed")]
    TooManyFiles(usize),
    #[error("path `{0}` appears twice in the release")]
    DuplicatePath(ImagePath),
    #[error("files must be listed in path order (`{0}` comes after `{1}`)")]
    Unsorted(ImagePath, ImagePath),
    #[error("the boot entry names `{0}`, which is not a file of the release")]
    BootFileMissing(ImagePath),
    #[error("the release expires ({expires}) before it was created ({created})")]
    ExpiresBeforeCreated { created: u64, expires: u64 },
    #[error("the release is signed by {signer} but names {publisher} as its publisher")]
    WrongSigner {
        publisher: PublicKey,
        signer: PublicKey,
    },
}

/// One file of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub path: ImagePath,
    pub size: u64,
    pub hash: ContentHash,
}

/// How a client boots the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootEntry {
    /// A Linux kernel with initrds, loaded by iPXE or PXELINUX.
    Linux {
        kernel: ImagePath,
        initrds: Vec<ImagePath>,
        cmdline: CmdlineTemplate,
    },
    /// An ISO image, booted by iPXE's `sanboot` over HTTP.
    Iso { iso: ImagePath },
}

impl BootEntry {
    fn referenced_paths(&self) -> Vec<&ImagePath> {
        match self {
            BootEntry::Linux {
                kernel, initrds, ..
            } => std::iter::once(kernel).chain(initrds.iter()).collect(),
            BootEntry::Iso { iso } => vec![iso],
        }
    }
}

/// A validated release. Construct with [`Release::new`], which sorts the files and checks
/// every rule; a decoded release goes through the same checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub name: ImageName,
    /// Strictly increasing per name: nodes refuse a version not higher than what they have.
    pub version: u64,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// Seconds since the Unix epoch; nodes refuse and stop serving the release after it.
    pub expires: Option<u64>,
    pub publisher: PublicKey,
    /// Sorted by path, paths unique.
    pub files: Vec<FileEntry>,
    /// `None` for a files-only release, e.g. first-stage programs (iPXE, PXELINUX).
    pub boot: Option<BootEntry>,
}

/// What a publisher fills in; [`Release::new`] turns it into a checked release.
#[derive(Debug, Clone)]
pub struct ReleaseSpec {
    pub name: ImageName,
    pub version: u64,
    pub created: u64,
    pub expires: Option<u64>,
    pub publisher: PublicKey,
    pub files: Vec<FileEntry>,
    pub boot: Option<BootEntry>,
}

impl Release {
    pub fn new(spec: ReleaseSpec) -> Result<Self, ReleaseError> {
        let mut files = spec.files;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let release = Release {
            name: spec.name,
            version: spec.version,
            created: spec.created,
            expires: spec.expires,
            publisher: spec.publisher,
            files,
            boot: spec.boot,
        };
        release.validate()?;
        Ok(release)
    }

    pub(crate) fn validate(&self) -> Result<(), ReleaseError> {
        if self.version == 0 {
            return Err(ReleaseError::ZeroVersion);
        }
        if self.files.is_empty() {
            return Err(ReleaseError::NoFiles);
        }
        if self.files.len() > MAX_FILES {
            return Err(ReleaseError::TooManyFiles(self.files.len()));
        }
        for pair in self.files.windows(2) {
            if pair[0].path == pair[1].path {
                return Err(ReleaseError::DuplicatePath(pair[0].path.clone()));
            }
            if pair[0].path > pair[1].path {
                return Err(ReleaseError::Unsorted(
                    pair[1].path.clone(),
                    pair[0].path.clone(),
                ));
            }
        }
        if let Some(boot) = &self.boot {
            let paths: BTreeSet<&ImagePath> = self.files.iter().map(|f| &f.path).collect();
            for p in boot.referenced_paths() {
                if !paths.contains(p) {
                    return Err(ReleaseError::BootFileMissing(p.clone()));
                }
            }
        }
        if let Some(expires) = self.expires {
            if expires <= self.created {
                return Err(ReleaseError::ExpiresBeforeCreated {
                    created: self.created,
                    expires,
                });
            }
        }
        Ok(())
    }

    pub fn file(&self, path: &ImagePath) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }

    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    pub fn is_expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }
}
