//! What the node serves over TFTP: first-stage programs from the verified store (or the
//! logged, unverified `first_stage_dir`), generated `pxelinux.cfg/*` files for PXELINUX
//! setups that fetch their config over TFTP, generated GRUB configs where the signed GRUB
//! builds look for them, and release files by their pinned path `r/<name>/<version>/<path>`
//! (GRUB without HTTP). Every stored file goes through the same serve-time integrity layer as
//! over HTTP: checked before its first byte goes out, and every read checked again.

use std::{fs::File, net::SocketAddr, sync::Arc, time::SystemTime};

use super::{DirFile, OpenError, TftpFile, TftpSource};
use crate::{
    boot::{
        first_stage::LookupError,
        grub, pxelinux,
        release_file::{self, ReleaseFileError},
        FirstStage, LivePolicy,
    },
    clients::{ClientLog, Stage, Step, Via},
    integrity::VerifiedFiles,
    metrics::{Metrics, TransferResult},
    store::Store,
};

#[derive(Debug)]
pub struct StoreSource {
    pub store: Arc<Store>,
    pub policy: LivePolicy,
    pub base_url: String,
    /// Where generated GRUB configs load kernels from.
    pub grub_files: grub::GrubFiles,
    pub first_stage: FirstStage,
    pub verified: Arc<VerifiedFiles>,
    /// Told which client got which boot file.
    pub clients: ClientLog,
    pub metrics: Arc<Metrics>,
}

fn config_step() -> Option<Step> {
    Some(Step {
        stage: Stage::Config,
        image: None,
    })
}

/// A generated file held in memory.
struct MemFile(Vec<u8>);

impl TftpFile for MemFile {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
}

impl StoreSource {
    fn report(&self, client: SocketAddr, path: &str, step: Option<Step>) {
        if let Some(step) = step {
            let fetch = step.fetch(path, Via::Tftp);
            self.clients.fetched(client.ip(), fetch, SystemTime::now());
        }
    }
}

impl TftpSource for StoreSource {
    fn open(&self, path: &str, client: SocketAddr) -> Result<Box<dyn TftpFile>, OpenError> {
        let policy = self.policy.current();
        if let Some(name) = path.strip_prefix("pxelinux.cfg/") {
            return match pxelinux::generated_config(&self.store, &policy, &self.base_url, name) {
                Some((text, what)) => {
                    tracing::info!("tftp {client} {path}: {what}");
                    self.report(client, path, config_step());
                    Ok(Box::new(MemFile(text.into_bytes())))
                }
                None => Err(OpenError::NotFound),
            };
        }
        if let Some(request) = grub::classify(path) {
            return match grub::generated_config(
                &self.store,
                &policy,
                &self.base_url,
                &self.grub_files,
                request,
            ) {
                Some((text, what)) => {
                    tracing::info!("tftp {client} {path}: GRUB config: {what}");
                    self.report(client, path, config_step());
                    Ok(Box::new(MemFile(text.into_bytes())))
                }
                None => {
                    tracing::debug!("tftp {client} {path}: not found (GRUB probes it; expected)");
                    Err(OpenError::NotFound)
                }
            };
        }
        let found = match release_file::pinned(&self.store, path) {
            Some(Ok(found)) => found,
            Some(Err(e)) => {
                tracing::warn!("tftp {client} {path}: {e}");
                return Err(match e {
                    ReleaseFileError::BadPath(_) => OpenError::AccessViolation(e.to_string()),
                    _ => OpenError::NotFound,
                });
            }
            None => self
                .first_stage
                .lookup(&self.store, path)
                .map_err(|e| match e {
                    LookupError::BadName(why) => OpenError::AccessViolation(why),
                    LookupError::NotFound(..) => OpenError::NotFound,
                })?,
        };
        let Some(hash) = found.hash else {
            let file = File::open(&found.path).map_err(OpenError::from_io)?;
            tracing::debug!("tftp {client} {path}: from {}", found.origin);
            self.report(client, path, found.step);
            return Ok(Box::new(DirFile::new(file, found.size)));
        };
        // Runs on a blocking thread (the server's contract), so hashing here is fine. Every
        // later read is checked again, so a write in place during the transfer is caught.
        let file = self
            .verified
            .open(&found.path, &hash, found.size)
            .map_err(|e| {
                tracing::error!("tftp {client} {path}: REFUSED, failed its integrity check: {e}");
                self.metrics.integrity_refused("tftp");
                OpenError::AccessViolation("integrity check failed".into())
            })?;
        tracing::debug!("tftp {client} {path}: from {}", found.origin);
        self.report(client, path, found.step);
        Ok(Box::new(file))
    }

    fn ended(&self, result: TransferResult, bytes: u64) {
        self.metrics.transfer("tftp", result, bytes);
    }
}
