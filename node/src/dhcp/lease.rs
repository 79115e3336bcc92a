//! Server-mode leases: in memory, persisted atomically to a JSON file.
//!
//! File format (version 1), written whole on every change:
//! `{"version":1,"leases":[{"mac":"52:54:00:12:34:56","ip":"10.0.0.100","expires":1700000000}]}`
//! `expires` is Unix time in seconds. Expired leases are kept (so a client gets
//! its old address back) but count as free.

pub use crate::fsutil::write_atomic;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::mac::MacAddr;

/// One binding of an address to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    /// Unix time, seconds.
    pub expires: u64,
}

impl Lease {
    pub fn is_active(&self, now: u64) -> bool {
        self.expires > now
    }
}

pub const LEASE_FILE_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseFile {
    version: u32,
    leases: Vec<Lease>,
}

/// Lease file problems; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("cannot read lease file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("corrupt lease file {}: {detail} (fix or move the file away; leases are not dropped silently)", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("cannot write lease file {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// The lease table. One lease per address and per MAC.
#[derive(Debug, Default)]
pub struct LeaseStore {
    path: Option<PathBuf>,
    by_ip: BTreeMap<Ipv4Addr, Lease>,
    by_mac: HashMap<MacAddr, Ipv4Addr>,
    dirty: bool,
}

impl LeaseStore {
    /// A store that is never written to disk.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Load `path` if it exists (a missing file is an empty table); later
    /// changes are written back to it.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, LeaseError> {
        let path = path.into();
        let leases = match fs::read(&path) {
            Ok(bytes) => parse_lease_file(&path, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(LeaseError::Read { path, source }),
        };
        let mut store = Self {
            path: Some(path),
            ..Self::default()
        };
        for l in leases {
            store.insert(l);
        }
        store.dirty = false;
        Ok(store)
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn by_ip(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.by_ip.get(&ip)
    }

    pub fn by_mac(&self, mac: MacAddr) -> Option<&Lease> {
        self.by_mac.get(&mac).and_then(|ip| self.by_ip.get(ip))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.by_ip.values()
    }

    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    /// Bind `ip` to `mac` until `expires`, dropping any other binding of either.
    pub fn bind(&mut self, mac: MacAddr, ip: Ipv4Addr, expires: u64) {
        self.insert(Lease { mac, ip, expires });
        self.dirty = true;
    }

    /// End a lease now (RELEASE): the address is free, the record stays so the
    /// client gets the same address next time if nobody took it.
    pub fn expire(&mut self, ip: Ipv4Addr, now: u64) -> bool {
        match self.by_ip.get_mut(&ip) {
            Some(l) if l.expires > now => {
                l.expires = now;
                self.dirty = true;
                true
            }
            _ => false,
        }
    }

    /// Forget a lease entirely (DECLINE).
    pub fn remove(&mut self, ip: Ipv4Addr) -> Option<Lease> {
        let l = self.by_ip.remove(&ip)?;
        self.by_mac.remove(&l.mac);
        self.dirty = true;
        Some(l)
    }

    fn insert(&mut self, l: Lease) {
        if let Some(old_ip) = self.by_mac.remove(&l.mac) {
            self.by_ip.remove(&old_ip);
        }
        if let Some(old) = self.by_ip.remove(&l.ip) {
            self.by_mac.remove(&old.mac);
        }
        self.by_mac.insert(l.mac, l.ip);
        self.by_ip.insert(l.ip, l);
    }

    /// Changed since the last save?
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The file contents for the current table.
    pub fn to_bytes(&self) -> Vec<u8> {
        let file = LeaseFile {
            version: LEASE_FILE_VERSION,
            leases: self.by_ip.values().cloned().collect(),
        };
        let mut out = serde_json::to_vec_pretty(&file).expect("leases always serialize");
        out.push(b'\n');
        out
    }

    /// If there are unsaved changes and a file: the path and bytes to write,
    /// marking the table clean. For writing off the async runtime.
    pub fn take_snapshot(&mut self) -> Option<(PathBuf, Vec<u8>)> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        Some((self.path.clone()?, self.to_bytes()))
    }

    /// Mark the table as needing a save (after a failed write of a snapshot).
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Write unsaved changes now (blocking).
    pub fn save(&mut self) -> Result<(), LeaseError> {
        match self.take_snapshot() {
            Some((path, bytes)) => write_atomic(&path, &bytes).map_err(|source| {
                self.dirty = true;
                LeaseError::Write { path, source }
            }),
            None => Ok(()),
        }
    }
}

/// Parse and check a lease file's contents. `path` is for messages only.
pub fn parse_lease_file(path: &Path, bytes: &[u8]) -> Result<Vec<Lease>, LeaseError> {
    let corrupt = |detail: String| LeaseError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(corrupt("file is empty".into()));
    }
    let file: LeaseFile = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if file.version != LEASE_FILE_VERSION {
        return Err(corrupt(format!(
            "version {} is not supported (expected {LEASE_FILE_VERSION})",
            file.version
        )));
    }
    let mut ips = HashMap::new();
    let mut macs = HashMap::new();
    for (i, l) in file.leases.iter().enumerate() {
        if let Some(j) = ips.insert(l.ip, i) {
            return Err(corrupt(format!(
                "leases[{j}] and leases[{i}] both hold {}",
                l.ip
            )));
        }
        if let Some(j) = macs.insert(l.mac, i) {
            return Err(corrupt(format!(
                "leases[{j}] and leases[{i}] are both for {}",
                l.mac
            )));
        }
    }
    Ok(file.leases)
}
