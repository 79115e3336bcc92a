//! What each client did: the machines the node saw (MAC, architecture, vendor class, first
//! and last seen, the image it was given) and its last boots with the time each stage was
//! reached. The DHCP, TFTP and HTTP servers report to it through a [`ClientLog`], one call
//! at the point where they decide; the status page and `/metrics` read it.
//!
//! [`record::Clients`] is the pure record (time passed in, unit tested); [`ClientLog`] is the
//! cheap cloneable handle that owns it.

pub mod fleet;
pub mod record;
pub mod saved;
pub mod stage;
pub mod text;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use record::{
    Boot, Clients, DhcpAnswer, DhcpSeen, Fetch, ImageRef, Limits, Machine, Stage, Step, Via,
};
pub use stage::{stage_of_file, step_of_file};

use crate::{dhcp::MacAddr, metrics::Metrics};

/// The handle the servers report to. Clones share one record, and count what they record
/// in the node's [`Metrics`].
#[derive(Debug, Clone, Default)]
pub struct ClientLog {
    inner: Arc<Mutex<Clients>>,
    metrics: Arc<Metrics>,
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// TFTP and HTTP see IPv4 clients as IPv4 or v4-mapped v6 addresses; boot clients have no
/// other kind.
fn client_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

impl ClientLog {
    pub fn new(limits: Limits, metrics: Arc<Metrics>) -> Self {
        Self::from_record(Clients::new(limits), metrics)
    }

    /// A handle owning `record` (the one [`saved::load_or_set_aside`] read).
    pub fn from_record(record: Clients, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(record)),
            metrics,
        }
    }

    /// The record, even if a reporter panicked while holding it (its updates are small and
    /// leave it consistent).
    fn lock(&self) -> MutexGuard<'_, Clients> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn dhcp(&self, seen: DhcpSeen, now: SystemTime) {
        let arch = seen.arch.map_or("none", |a| a.label());
        let (client, outcome) = (seen.client_label(), seen.outcome_label());
        self.metrics.dhcp(seen.mode, arch, client, outcome);
        self.lock().dhcp(seen, unix_ms(now));
    }

    pub fn identified(&self, mac: MacAddr, ip: IpAddr, now: SystemTime) {
        if let Some(ip) = client_v4(ip) {
            self.lock().identified(mac, ip, unix_ms(now));
        }
    }

    pub fn fetched(&self, ip: IpAddr, fetch: Fetch, now: SystemTime) {
        let Some(ip) = client_v4(ip) else {
            return;
        };
        let (stage, image) = (fetch.stage, fetch.image.as_ref().map(|i| i.name.clone()));
        if self.lock().fetched(ip, fetch, unix_ms(now)) {
            self.metrics.stage(stage.as_str(), image.as_deref());
        }
    }

    /// How many machines the record holds.
    pub fn machine_count(&self) -> usize {
        self.lock().machine_count()
    }

    /// Machines, most recently seen first.
    pub fn machines(&self) -> Vec<Machine> {
        self.lock().machines()
    }

    /// The last `n` boots, newest first.
    pub fn recent_boots(&self, n: usize) -> Vec<Boot> {
        self.lock().recent_boots(n)
    }

    /// How many events were recorded (a saver's "did anything change").
    pub fn changes(&self) -> u64 {
        self.lock().changes()
    }

    /// What to write to disk, and the change count it holds.
    pub fn to_save(&self) -> (u64, saved::Saved) {
        let record = self.lock();
        (record.changes(), saved::Saved::of(&record))
    }

    /// `/clients.json`.
    pub fn view(&self, now: SystemTime) -> ClientsView {
        ClientsView {
            generated_ms: unix_ms(now),
            machines: self.machines(),
        }
    }
}

/// The machines a node knows, as `GET /clients.json` answers and `netboot clients` reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientsView {
    /// Unix milliseconds when the node answered (ages are counted from it).
    pub generated_ms: u64,
    /// Most recently seen first.
    pub machines: Vec<Machine>,
}

#[cfg(test)]
mod tests;
