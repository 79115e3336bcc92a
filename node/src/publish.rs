//! Building, signing and handing over a release: what `netboot publish` does.
//!
//! The store computes the hashes as it copies the files in (one read of each file), the
//! release is built from those hashes and signed, and then admitted through exactly the same
//! checks as a release from anywhere else. Trust and version are checked before any file is
//! read, so a publish that would be refused fails in milliseconds, not after hashing an ISO.

use std::{
    fs,
    io::{Read, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use netboot_proto::{
    admit, build_and_sign, BootEntry, CmdlineTemplate, FileEntry, ImageName, ImagePath,
    ReleaseSpec, SecretKey, TemplateError, VerifiedRelease,
};

use crate::{
    fsutil,
    store::{AcceptError, Accepted, StageProgress, Store, StoreError, BUNDLE_RELEASE_FILE},
};

/// A file argument: `[PATH_IN_IMAGE=]LOCAL_FILE`.
#[derive(Debug, Clone)]
pub struct FileArg {
    pub path: ImagePath,
    pub source: PathBuf,
}

impl std::str::FromStr for FileArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (path, source) = match s.split_once('=') {
            Some((p, src)) => (p.to_string(), PathBuf::from(src)),
            None => {
                let source = PathBuf::from(s);
                let base = source
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (base, source)
            }
        };
        let path = path.parse::<ImagePath>().map_err(|e| {
            format!("{e}; give the path inside the image explicitly as PATH=FILE, e.g. vmlinuz={s}")
        })?;
        Ok(FileArg { path, source })
    }
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct PublishSpec {
    pub name: ImageName,
    pub version: Option<u64>,
    pub kernel: Option<FileArg>,
    pub initrds: Vec<FileArg>,
    pub cmdline: String,
    pub iso: Option<FileArg>,
    pub files: Vec<FileArg>,
    pub expires_in: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Cmdline(#[from] TemplateError),
    #[error("input file {0}: {1}")]
    Input(PathBuf, std::io::Error),
    #[error(transparent)]
    Release(#[from] netboot_proto::ReleaseError),
    #[error(transparent)]
    Accept(#[from] AcceptError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("bundle {0}: {1}")]
    Bundle(PathBuf, String),
}

/// Progress events, for the CLI to render.
#[derive(Debug)]
pub enum PublishEvent<'a> {
    File {
        path: &'a ImagePath,
        progress: StageProgress,
    },
    FileDone {
        path: &'a ImagePath,
        hash: blake3::Hash,
        size: u64,
    },
    Signed {
        release: &'a VerifiedRelease,
    },
}

impl PublishSpec {
    /// Every input with its path inside the image, and the boot entry.
    pub(crate) fn plan(&self) -> Result<(Vec<FileArg>, Option<BootEntry>), PublishError> {
        let mut inputs: Vec<FileArg> = Vec::new();
        let boot = match (&self.kernel, &self.iso) {
            (Some(_), Some(_)) => {
                return Err(PublishError::Usage(
                    "give either --kernel or --iso, not both".into(),
                ))
            }
            (Some(kernel), None) => {
                inputs.push(kernel.clone());
                inputs.extend(self.initrds.iter().cloned());
                Some(BootEntry::Linux {
                    kernel: kernel.path.clone(),
                    initrds: self.initrds.iter().map(|f| f.path.clone()).collect(),
                    cmdline: CmdlineTemplate::parse(&self.cmdline)?,
                })
            }
            (None, Some(iso)) => {
                if !self.initrds.is_empty() {
                    return Err(PublishError::Usage("--initrd needs --kernel".into()));
                }
                inputs.push(iso.clone());
                Some(BootEntry::Iso {
                    iso: iso.path.clone(),
                })
            }
            (None, None) => {
                if !self.initrds.is_empty() || !self.cmdline.is_empty() {
                    return Err(PublishError::Usage(
                        "--initrd and --cmdline need --kernel".into(),
                    ));
                }
                if self.files.is_empty() {
                    return Err(PublishError::Usage(
                        "nothing to publish: give --kernel (with --initrd/--cmdline), --iso, or --file".into(),
                    ));
                }
                None
            }
        };
        inputs.extend(self.files.iter().cloned());
        let mut seen = std::collections::BTreeSet::new();
        for f in &inputs {
            if !seen.insert(f.path.clone()) {
                return Err(PublishError::Usage(format!(
                    "two inputs would both be `{}` in the image; name one explicitly with PATH=FILE",
                    f.path
                )));
            }
            let meta =
                fs::metadata(&f.source).map_err(|e| PublishError::Input(f.source.clone(), e))?;
            if !meta.is_file() {
                return Err(PublishError::Input(
                    f.source.clone(),
                    std::io::Error::other("not a regular file"),
                ));
            }
            fs::File::open(&f.source).map_err(|e| PublishError::Input(f.source.clone(), e))?;
        }
        Ok((inputs, boot))
    }

    pub(crate) fn release_spec(
        &self,
        key: &SecretKey,
        version: u64,
        files: Vec<FileEntry>,
        boot: Option<BootEntry>,
    ) -> ReleaseSpec {
        let created = fsutil::now_unix();
        ReleaseSpec {
            name: self.name.clone(),
            version,
            created,
            expires: self.expires_in.map(|d| created + d.as_secs().max(1)),
            publisher: key.public(),
            files,
            boot,
        }
    }
}

/// Publishes into a local store (a node's data dir).
pub async fn publish_to_store(
    store: &Store,
    key: &SecretKey,
    spec: &PublishSpec,
    events: &mut dyn FnMut(PublishEvent<'_>),
) -> Result<Accepted, PublishError> {
    let (inputs, boot) = spec.plan()?;
    let version = spec
        .version
        .unwrap_or_else(|| store.high_water(&spec.name).map_or(1, |v| v + 1));
    // Fail fast on trust and version, before reading gigabytes: the same rule `accept`
    // applies, checked on what is already known.
    admit(
        &probe_release(spec, key, version)?,
        store.trusted(),
        fsutil::now_unix(),
        store.high_water(&spec.name),
    )
    .map_err(AcceptError::from)?;
    let mut staged = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let file = store
            .stage_file(&input.source, &mut |progress| {
                events(PublishEvent::File {
                    path: &input.path,
                    progress,
                })
            })
            .await?;
        events(PublishEvent::FileDone {
            path: &input.path,
            hash: file.hash,
            size: file.size,
        });
        staged.push((input.path.clone(), file));
    }
    let files = staged
        .iter()
        .map(|(path, f)| FileEntry {
            path: path.clone(),
            size: f.size,
            hash: f.hash,
        })
        .collect();
    let release = build_and_sign(spec.release_spec(key, version, files, boot), key)?;
    events(PublishEvent::Signed { release: &release });
    let accepted = store.accept(&release).await?;
    drop(staged);
    if !accepted.dropped.is_empty() {
        store.collect_garbage().await?;
    }
    Ok(accepted)
}

/// A stand-in release with the real name, version, key and expiry, to run the admission
/// rules before hashing.
fn probe_release(
    spec: &PublishSpec,
    key: &SecretKey,
    version: u64,
) -> Result<netboot_proto::Release, PublishError> {
    let placeholder = FileEntry {
        path: "probe"
            .parse()
            .map_err(|e| PublishError::Usage(format!("{e}")))?,
        size: 0,
        hash: blake3::hash(b""),
    };
    Ok(netboot_proto::Release::new(spec.release_spec(
        key,
        version,
        vec![placeholder],
        None,
    ))?)
}

/// Writes a release bundle (see `store::bundle`) into `out`, which must not exist or be empty.
/// Each file is hashed as it is copied, so the bundle holds exactly what was signed.
pub fn publish_to_bundle(
    out: &Path,
    key: &SecretKey,
    spec: &PublishSpec,
    events: &mut dyn FnMut(PublishEvent<'_>),
) -> Result<VerifiedRelease, PublishError> {
    let (inputs, boot) = spec.plan()?;
    let version = spec.version.unwrap_or_else(fsutil::now_unix);
    if out.exists()
        && fs::read_dir(out)
            .map_err(|e| PublishError::Bundle(out.into(), e.to_string()))?
            .next()
            .is_some()
    {
        return Err(PublishError::Bundle(
            out.into(),
            "exists and is not empty".into(),
        ));
    }
    let mut files = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let target = out.join("files").join(input.path.as_str());
        let (hash, size) = copy_hashing(&input.source, &target, &mut |progress| {
            events(PublishEvent::File {
                path: &input.path,
                progress,
            })
        })
        .map_err(|e| PublishError::Input(input.source.clone(), e))?;
        events(PublishEvent::FileDone {
            path: &input.path,
            hash,
            size,
        });
        files.push(FileEntry {
            path: input.path.clone(),
            size,
            hash,
        });
    }
    let release = build_and_sign(spec.release_spec(key, version, files, boot), key)?;
    events(PublishEvent::Signed { release: &release });
    // Written last: a bundle without its release file is visibly unfinished.
    let release_file = out.join(BUNDLE_RELEASE_FILE);
    fsutil::write_atomic(&release_file, &release.signed().encode())
        .map_err(|e| PublishError::Bundle(release_file, e.to_string()))?;
    Ok(release)
}

fn copy_hashing(
    source: &Path,
    target: &Path,
    progress: &mut dyn FnMut(StageProgress),
) -> std::io::Result<(blake3::Hash, u64)> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut input = fs::File::open(source)?;
    let size = input.metadata()?.len();
    let mut output = fs::File::create(target)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n])?;
        done += n as u64;
        progress(StageProgress::Hashing { done, size });
    }
    output.sync_all()?;
    Ok((hasher.finalize(), done))
}
