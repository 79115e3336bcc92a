//! What each client did: the machines the node saw (MAC, architecture, vendor class, first
//! and last seen, the image it was given) and its last boots with the time each stage was
//! reached. The DHCP, TFTP and HTTP servers report to it through a [`ClientLog`], one call
//! at the point where they decide; the status page and `/metrics` read it.
//!
//! [`record::Clients`] is the pure record (time passed in, unit tested); [`ClientLog`] is the
//! cheap cloneable handle that owns it.

pub mod fleet;
pub mod once;
pub mod record;
pub mod saved;
pub mod stage;
pub mod text;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use once::{Ledger, NotPending, OnceEntry, OnceKey, OnceState};
pub use record::{
    Boot, Clients, DhcpAnswer, DhcpSeen, Fetch, ImageRef, Limits, Machine, Stage, Step, Via,
};
pub use stage::{stage_of_file, step_of_file};

use crate::{dhcp::MacAddr, metrics::Metrics};

/// The handle the servers report to. Clones share one record, and count what they record
/// in the node's [`Metrics`].
#[derive(Debug, Clone, Default)]
pub struct ClientLog {
    inner: Arc<Mutex<State>>,
    metrics: Arc<Metrics>,
}

/// The record and the one-shot ledger it feeds, under one lock: a boot's stage and the
/// one-shot it completes change together.
#[derive(Debug, Default)]
struct State {
    record: Clients,
    once: Ledger,
}

impl State {
    /// The boot of `mac` moved on: marks the one-shots it completed, and logs them.
    fn check_once(&mut self, mac: MacAddr, now_ms: u64) {
        let Some(boot) = self.record.current_boot(mac) else {
            return;
        };
        for key in self.once.boot_seen(mac, boot, now_ms) {
            tracing::info!(
                mac = %mac,
                "one-shot boot done: {} of policy v{} (kernel and initrd fetched); its next boot gets local disk",
                key.rule,
                key.policy_version
            );
        }
    }
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
        Self::from_saved(record, Ledger::new(once::MAX_ENTRIES), metrics)
    }

    /// A handle owning `record` and the one-shot ledger `once` (both as read at start).
    pub fn from_saved(record: Clients, once: Ledger, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(State { record, once })),
            metrics,
        }
    }

    /// The record, even if a reporter panicked while holding it (its updates are small and
    /// leave it consistent).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The boot decision chose a one-shot rule for this machine: its state now (`Done`: give
    /// it local disk instead).
    pub fn once_given(&self, key: OnceKey, now: SystemTime) -> OnceState {
        self.lock().once.given(key, unix_ms(now))
    }

    /// `POST /boot/done?mac=M`: the booted image says its one-shot is done.
    pub fn once_called_back(
        &self,
        mac: MacAddr,
        now: SystemTime,
    ) -> Result<Vec<OnceKey>, NotPending> {
        let marked = self.lock().once.called_back(mac, unix_ms(now))?;
        for key in &marked {
            tracing::info!(
                mac = %mac,
                "one-shot boot done: {} of policy v{} (the image called back); its next boot gets local disk",
                key.rule,
                key.policy_version
            );
        }
        Ok(marked)
    }

    pub fn dhcp(&self, seen: DhcpSeen, now: SystemTime) {
        let arch = seen.arch.map_or("none", |a| a.label());
        let (client, outcome) = (seen.client_label(), seen.outcome_label());
        self.metrics.dhcp(seen.mode, arch, client, outcome);
        self.lock().record.dhcp(seen, unix_ms(now));
    }

    pub fn identified(&self, mac: MacAddr, ip: IpAddr, now: SystemTime) {
        if let Some(ip) = client_v4(ip) {
            let mut state = self.lock();
            state.record.identified(mac, ip, unix_ms(now));
            // What the address fetched before it was named is now the machine's boot.
            state.check_once(mac, unix_ms(now));
        }
    }

    pub fn fetched(&self, ip: IpAddr, fetch: Fetch, now: SystemTime) {
        let Some(ip) = client_v4(ip) else {
            return;
        };
        let (stage, image) = (fetch.stage, fetch.image.as_ref().map(|i| i.name.clone()));
        let mut state = self.lock();
        if state.record.fetched(ip, fetch, unix_ms(now)) {
            self.metrics.stage(stage.as_str(), image.as_deref());
            if let (Stage::Kernel | Stage::Initrd, Some(mac)) = (stage, state.record.mac_of(ip)) {
                state.check_once(mac, unix_ms(now));
            }
        }
    }

    /// How many machines the record holds.
    pub fn machine_count(&self) -> usize {
        self.lock().record.machine_count()
    }

    /// Machines, most recently seen first.
    pub fn machines(&self) -> Vec<Machine> {
        let state = self.lock();
        let mut machines = state.record.machines();
        for m in &mut machines {
            m.once = state.once.latest(m.mac);
        }
        machines
    }

    /// The last `n` boots, newest first.
    pub fn recent_boots(&self, n: usize) -> Vec<Boot> {
        self.lock().record.recent_boots(n)
    }

    /// How many events were recorded (a saver's "did anything change").
    pub fn changes(&self) -> u64 {
        let state = self.lock();
        state.record.changes() + state.once.changes()
    }

    /// What to write to disk (the record, the one-shot ledger), and the change count it holds.
    pub fn to_save(&self) -> (u64, saved::Saved, Vec<OnceEntry>) {
        let state = self.lock();
        (
            state.record.changes() + state.once.changes(),
            saved::Saved::of(&state.record),
            state.once.entries(),
        )
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
