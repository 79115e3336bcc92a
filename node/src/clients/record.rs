//! The record of what each client did, as pure data: events in, with the time passed in;
//! queries out. No locks and no clock here: [`super::ClientLog`] owns one of these.
//!
//! DHCP names a client by MAC; TFTP and HTTP see only its IP address. The record learns
//! which MAC uses which address from DHCP (server mode, or a client that sends `ciaddr`) and
//! from iPXE's `/boot.ipxe?mac=…` request, and files fetched from an address it cannot name
//! yet are kept as a boot of that address, merged into the machine's boot once it is named
//! (proxy mode: the firmware's first stage comes before iPXE says who it is).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;

use netboot_proto::ImageName;
use serde::{Deserialize, Serialize};

use crate::dhcp::{ClientArch, MacAddr};

/// How far a boot got, in the order a boot goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The node saw its DHCP request and did not answer (the boot's `ignored` says why).
    DhcpIgnored,
    /// The node answered its DHCP request with boot information.
    DhcpAnswered,
    /// It fetched a first-stage program (iPXE, PXELINUX and its modules, shim/GRUB).
    FirstStage,
    /// It fetched its generated boot script or config (iPXE script, pxelinux.cfg, grub.cfg).
    Config,
    /// It fetched the image's kernel (or, for an ISO image, the ISO).
    Kernel,
    /// It fetched an initrd of the image.
    Initrd,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::DhcpIgnored,
        Stage::DhcpAnswered,
        Stage::FirstStage,
        Stage::Config,
        Stage::Kernel,
        Stage::Initrd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::DhcpIgnored => "dhcp_ignored",
            Stage::DhcpAnswered => "dhcp_answered",
            Stage::FirstStage => "first_stage",
            Stage::Config => "config",
            Stage::Kernel => "kernel",
            Stage::Initrd => "initrd",
        }
    }
}

/// One exact release.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageRef {
    pub name: String,
    pub version: u64,
}

impl ImageRef {
    pub fn new(name: &ImageName, version: u64) -> Self {
        Self {
            name: name.to_string(),
            version,
        }
    }
}

/// Which protocol carried a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Tftp,
    Http,
}

/// What the node did with a DHCP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpAnswer {
    /// Answered with boot information.
    Boot,
    /// Server mode gave an address but no boot program; why.
    AddressOnly(String),
    /// Not answered; why, and whether it was someone else's traffic (logged at debug).
    Ignored { reason: String, quiet: bool },
    /// Refused its REQUEST; why.
    Nak(String),
}

impl DhcpAnswer {
    /// Why a boot client got no boot program, if it did not.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            DhcpAnswer::Boot => None,
            DhcpAnswer::AddressOnly(why)
            | DhcpAnswer::Ignored { reason: why, .. }
            | DhcpAnswer::Nak(why) => Some(why),
        }
    }
}

/// One DHCP request the node decided about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpSeen {
    pub mac: MacAddr,
    /// `proxy` or `server`.
    pub mode: &'static str,
    /// Client architecture (option 93, or option 60's `Arch:`), if sent.
    pub arch: Option<ClientArch>,
    /// Vendor class (option 60) as the DHCP log shows it.
    pub vendor: String,
    /// PXE or HTTP boot firmware, or iPXE: a client that boots from the network.
    pub boot_client: bool,
    /// iPXE already running (its DHCP continues a boot rather than starting one).
    pub ipxe: bool,
    /// The address the client uses or was given, when the packet tells it.
    pub ip: Option<Ipv4Addr>,
    pub answer: DhcpAnswer,
}

impl DhcpSeen {
    /// The `outcome` label of `netboot_dhcp_requests`.
    pub fn outcome_label(&self) -> &'static str {
        match &self.answer {
            DhcpAnswer::Boot => "answered",
            DhcpAnswer::AddressOnly(_) => "address_only",
            DhcpAnswer::Nak(_) => "nak",
            DhcpAnswer::Ignored { .. } if !self.boot_client => "ignored_not_boot_client",
            DhcpAnswer::Ignored { quiet: true, .. } => "ignored_not_ours",
            DhcpAnswer::Ignored { .. } => "ignored",
        }
    }

    /// The `client` label: what kind of DHCP client asked.
    pub fn client_label(&self) -> &'static str {
        match (self.ipxe, self.boot_client) {
            (true, _) => "ipxe",
            (false, true) => "firmware",
            (false, false) => "other",
        }
    }
}

/// The boot stage a file or script is, and the release it belongs to (or boots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub stage: Stage,
    pub image: Option<ImageRef>,
}

impl Step {
    pub fn first_stage() -> Self {
        Self {
            stage: Stage::FirstStage,
            image: None,
        }
    }

    pub fn fetch(self, file: impl Into<String>, via: Via) -> Fetch {
        Fetch {
            stage: self.stage,
            image: self.image,
            file: file.into(),
            via,
        }
    }
}

/// One file a client was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub stage: Stage,
    /// The release the file belongs to (or the script boots), when known.
    pub image: Option<ImageRef>,
    pub file: String,
    pub via: Via,
}

/// One boot attempt of one client, from its firmware's DHCP request on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Boot {
    pub id: u64,
    /// `None` while only the client's IP address is known.
    pub mac: Option<MacAddr>,
    pub ip: Option<Ipv4Addr>,
    pub arch: Option<String>,
    /// Unix milliseconds of its first event.
    pub started_ms: u64,
    /// When each stage was first reached (Unix milliseconds).
    pub stages: BTreeMap<Stage, u64>,
    pub image: Option<ImageRef>,
    /// Why the last unanswered DHCP request of this boot was not answered.
    pub ignored: Option<String>,
    /// The last file given, and how.
    pub last_file: Option<(String, Via)>,
}

impl Boot {
    /// The furthest stage reached.
    pub fn furthest(&self) -> Option<Stage> {
        self.stages.keys().next_back().copied()
    }

    fn last_ms(&self) -> u64 {
        self.stages
            .values()
            .copied()
            .max()
            .unwrap_or(self.started_ms)
    }

    fn reach(&mut self, stage: Stage, now_ms: u64) {
        self.stages.entry(stage).or_insert(now_ms);
        if stage > Stage::DhcpIgnored {
            // A request that went unanswered earlier (a retry, a race with the site
            // server) is no longer why this boot stopped.
            self.ignored = None;
        }
    }

    /// Folds a boot of this client's address, recorded before its MAC was known, into this one.
    fn absorb(&mut self, other: Boot) {
        for (stage, at) in other.stages {
            let t = self.stages.entry(stage).or_insert(at);
            *t = (*t).min(at);
        }
        self.started_ms = self.started_ms.min(other.started_ms);
        if self.image.is_none() {
            self.image = other.image;
        }
        if self.last_file.is_none() {
            self.last_file = other.last_file;
        }
    }
}

/// What the node knows about one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub mac: MacAddr,
    pub arch: Option<String>,
    pub vendor: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// The image it was last given.
    pub image: Option<ImageRef>,
    /// Why the node gave it no boot program the last time it asked (a device that is not
    /// a PXE client in proxy mode, a server-mode pool without addresses...); `None` once
    /// a boot of it was answered.
    #[serde(default)]
    pub not_answered: Option<String>,
    /// Which rule of the boot policy chose its image (issue 13). Nothing fills it in yet:
    /// today's `[machines]`/default choice is not a named rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Its latest one-shot boot (a policy rule with `once`) and where it stands; filled in
    /// when the list is served, from the one-shot ledger (`clients::once`), not kept here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub once: Option<super::once::OnceEntry>,
    /// How far its latest boot got, stage by stage: a copy, so a machine keeps it after the
    /// boot has aged out of the (shorter) list of recent boots.
    #[serde(default)]
    pub last_boot: Option<Boot>,
    /// Its latest boot (an id into the boot list; the boot may have aged out of it).
    #[serde(skip)]
    current_boot: Option<u64>,
}

/// Sizes of the record: memory stays bounded whatever clients do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub machines: usize,
    pub boots: usize,
    /// A firmware DHCP request this long after a boot's last event starts a new boot.
    pub new_boot_after_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            machines: 4096,
            boots: 200,
            new_boot_after_ms: 5 * 60 * 1000,
        }
    }
}

/// Every machine seen (bounded, the least recently seen evicted) and the last boots.
#[derive(Debug, Clone, Default)]
pub struct Clients {
    limits: Limits,
    machines: HashMap<MacAddr, Machine>,
    ips: HashMap<Ipv4Addr, MacAddr>,
    boots: VecDeque<Boot>,
    next_id: u64,
    /// Counts the events recorded, so a saver can tell whether anything changed.
    changes: u64,
}

impl Clients {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// A DHCP request and the node's decision about it.
    pub fn dhcp(&mut self, seen: DhcpSeen, now_ms: u64) {
        self.changes += 1;
        let arch = seen.arch.map(ClientArch::name);
        let machine = self.touch(seen.mac, now_ms);
        if arch.is_some() {
            machine.arch.clone_from(&arch);
        }
        machine.vendor = Some(seen.vendor.clone());
        if let Some(ip) = seen.ip {
            self.learn_ip(seen.mac, ip, now_ms);
        }
        if !seen.boot_client {
            // The booted system's own DHCP client, or another device: not a boot step. Only
            // a machine that never booted here is listed as not answered for it.
            if let Some(m) = self.machines.get_mut(&seen.mac) {
                if m.last_boot.is_none() {
                    m.not_answered = seen.answer.refusal().map(str::to_string);
                }
            }
            return;
        }
        let current = self.current_boot(seen.mac);
        let starts_new = match current {
            None => true,
            Some(b) => {
                now_ms.saturating_sub(b.last_ms()) > self.limits.new_boot_after_ms
                    || (!seen.ipxe && b.furthest() > Some(Stage::DhcpAnswered))
                    // iPXE asks for an address before its script, never after: a boot that
                    // fetched its script and asks again is a reboot. That is how a reboot
                    // shows when iPXE is the NIC's own ROM (VMs, flashed NICs): no firmware
                    // request comes first.
                    || (seen.ipxe && b.furthest() >= Some(Stage::Config))
            }
        };
        let boot = if starts_new {
            self.new_boot(Some(seen.mac), seen.ip, now_ms)
        } else {
            self.current_boot_mut(seen.mac)
                .expect("checked above: the machine has a current boot")
        };
        if arch.is_some() && !seen.ipxe {
            boot.arch = arch;
        }
        if seen.ip.is_some() {
            boot.ip = seen.ip;
        }
        match seen.answer.refusal() {
            None => boot.reach(Stage::DhcpAnswered, now_ms),
            // In proxy mode a boot that was answered goes on to send a REQUEST on port 67,
            // which belongs to the site's DHCP server: not answering it is part of a good
            // boot, not where it stopped.
            Some(_) if boot.furthest() > Some(Stage::DhcpIgnored) => {}
            Some(why) => {
                boot.reach(Stage::DhcpIgnored, now_ms);
                boot.ignored = Some(why.to_string());
            }
        }
        self.copy_last_boot(seen.mac);
    }

    /// The client at `ip` said it is `mac` (iPXE's `/boot.ipxe?mac=…`).
    pub fn identified(&mut self, mac: MacAddr, ip: Ipv4Addr, now_ms: u64) {
        self.changes += 1;
        self.touch(mac, now_ms);
        self.learn_ip(mac, ip, now_ms);
    }

    /// The client at `ip` was given a file. True when this is the first time its boot
    /// reached that stage (a boot counts once per stage, whatever it re-fetches).
    pub fn fetched(&mut self, ip: Ipv4Addr, fetch: Fetch, now_ms: u64) -> bool {
        self.changes += 1;
        let new_after = self.limits.new_boot_after_ms;
        let boot = match self.ips.get(&ip).copied() {
            Some(mac) => {
                let m = self.touch(mac, now_ms);
                if fetch.image.is_some() {
                    m.image.clone_from(&fetch.image);
                }
                let recent = self
                    .current_boot(mac)
                    .is_some_and(|b| now_ms.saturating_sub(b.last_ms()) <= new_after);
                if recent {
                    self.current_boot_mut(mac)
                        .expect("checked above: the machine has a current boot")
                } else {
                    self.new_boot(Some(mac), Some(ip), now_ms)
                }
            }
            None => match self.unnamed_boot(ip, now_ms) {
                Some(i) => &mut self.boots[i],
                None => self.new_boot(None, Some(ip), now_ms),
            },
        };
        let first = !boot.stages.contains_key(&fetch.stage);
        boot.reach(fetch.stage, now_ms);
        if fetch.image.is_some() {
            boot.image = fetch.image;
        }
        boot.last_file = Some((fetch.file, fetch.via));
        if let Some(mac) = boot.mac {
            self.copy_last_boot(mac);
        }
        first
    }

    /// How many events were recorded since the record was made: a saver compares it with
    /// the count at its last save.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// A record holding what an earlier one kept (see [`Self::machines`] and
    /// [`Self::boots`]), cut to `limits` the way recording would have: the most recently
    /// seen machines and the newest boots.
    pub fn restore(limits: Limits, mut machines: Vec<Machine>, mut boots: Vec<Boot>) -> Self {
        let mut c = Self::new(limits);
        machines.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then(a.mac.cmp(&b.mac)));
        machines.truncate(limits.machines.max(1));
        boots.sort_by_key(|b| b.id);
        boots.dedup_by_key(|b| b.id);
        let keep = boots.len().saturating_sub(limits.boots.max(1));
        c.boots = boots.drain(keep..).collect();
        c.next_id = c.boots.back().map_or(0, |b| b.id + 1);
        for mut m in machines {
            m.current_boot = None;
            if let Some(ip) = m.ip {
                c.ips.insert(ip, m.mac);
            }
            c.machines.insert(m.mac, m);
        }
        for b in &c.boots {
            if let Some(m) = b.mac.and_then(|mac| c.machines.get_mut(&mac)) {
                m.current_boot = Some(b.id);
            }
        }
        c
    }

    /// Every boot still in the list, oldest first.
    pub fn boots(&self) -> impl Iterator<Item = &Boot> {
        self.boots.iter()
    }

    /// How many machines the record holds.
    pub fn machine_count(&self) -> usize {
        self.machines.len()
    }

    pub fn machine(&self, mac: &MacAddr) -> Option<&Machine> {
        self.machines.get(mac)
    }

    /// Machines, most recently seen first.
    pub fn machines(&self) -> Vec<Machine> {
        let mut all: Vec<Machine> = self.machines.values().cloned().collect();
        all.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then(a.mac.cmp(&b.mac)));
        all
    }

    /// The last `n` boots, newest first.
    pub fn recent_boots(&self, n: usize) -> Vec<Boot> {
        self.boots.iter().rev().take(n).cloned().collect()
    }

    /// The machine using `ip`, as far as the record knows.
    pub fn mac_of(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.ips.get(&ip).copied()
    }

    /// The latest boot of `mac`, if still in the list.
    pub fn current_boot(&self, mac: MacAddr) -> Option<&Boot> {
        let id = self.machines.get(&mac)?.current_boot?;
        self.boots.iter().rev().find(|b| b.id == id)
    }

    fn current_boot_mut(&mut self, mac: MacAddr) -> Option<&mut Boot> {
        let id = self.machines.get(&mac)?.current_boot?;
        self.boots.iter_mut().rev().find(|b| b.id == id)
    }

    /// A recent boot of `ip` whose MAC is not known yet.
    fn unnamed_boot(&self, ip: Ipv4Addr, now_ms: u64) -> Option<usize> {
        self.boots.iter().rposition(|b| {
            b.mac.is_none()
                && b.ip == Some(ip)
                && now_ms.saturating_sub(b.last_ms()) <= self.limits.new_boot_after_ms
        })
    }

    fn new_boot(&mut self, mac: Option<MacAddr>, ip: Option<Ipv4Addr>, now_ms: u64) -> &mut Boot {
        if self.boots.len() >= self.limits.boots.max(1) {
            self.boots.pop_front();
        }
        let id = self.next_id;
        self.next_id += 1;
        let arch = mac.and_then(|m| self.machines.get(&m)?.arch.clone());
        if let Some(m) = mac.and_then(|m| self.machines.get_mut(&m)) {
            m.current_boot = Some(id);
        }
        self.boots.push_back(Boot {
            id,
            mac,
            ip,
            arch,
            started_ms: now_ms,
            stages: BTreeMap::new(),
            image: None,
            ignored: None,
            last_file: None,
        });
        self.boots.back_mut().expect("just pushed")
    }

    /// Keeps the machine's copy of its current boot up to date.
    fn copy_last_boot(&mut self, mac: MacAddr) {
        let Some(boot) = self.current_boot(mac).cloned() else {
            return;
        };
        if let Some(m) = self.machines.get_mut(&mac) {
            m.not_answered.clone_from(&boot.ignored);
            m.last_boot = Some(boot);
        }
    }

    /// The machine's entry, created (evicting the least recently seen one) if new.
    fn touch(&mut self, mac: MacAddr, now_ms: u64) -> &mut Machine {
        if !self.machines.contains_key(&mac) && self.machines.len() >= self.limits.machines.max(1) {
            self.evict_oldest();
        }
        let m = self.machines.entry(mac).or_insert_with(|| Machine {
            mac,
            arch: None,
            vendor: None,
            ip: None,
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
            image: None,
            not_answered: None,
            rule: None,
            once: None,
            last_boot: None,
            current_boot: None,
        });
        m.last_seen_ms = m.last_seen_ms.max(now_ms);
        m
    }

    /// Drops the least recently seen eighth of the machines at once, so that a flood of new
    /// MACs costs a sort every few hundred packets rather than a scan on every one.
    fn evict_oldest(&mut self) {
        let mut by_age: Vec<(u64, MacAddr)> = self
            .machines
            .values()
            .map(|m| (m.last_seen_ms, m.mac))
            .collect();
        by_age.sort_unstable();
        let n = (self.limits.machines / 8).max(1);
        for (_, old) in by_age.into_iter().take(n) {
            let Some(m) = self.machines.remove(&old) else {
                continue;
            };
            if let Some(ip) = m.ip {
                if self.ips.get(&ip) == Some(&old) {
                    self.ips.remove(&ip);
                }
            }
        }
    }

    /// `mac` uses `ip`: later fetches from `ip` are its, and what `ip` fetched before it was
    /// named joins its current boot.
    fn learn_ip(&mut self, mac: MacAddr, ip: Ipv4Addr, now_ms: u64) {
        if let Some(m) = self.machines.get_mut(&mac) {
            if let Some(old) = m.ip.replace(ip) {
                if old != ip && self.ips.get(&old) == Some(&mac) {
                    self.ips.remove(&old);
                }
            }
        }
        self.ips.insert(ip, mac);
        let Some(i) = self.unnamed_boot(ip, now_ms) else {
            return;
        };
        let unnamed = self.boots.remove(i).expect("index from rposition");
        let image = unnamed.image.clone();
        // The machine's own boot, unless that is an old one (it was named without a DHCP
        // request of this boot: the unnamed boot is the one going on).
        let new_after = self.limits.new_boot_after_ms;
        let current = self
            .current_boot(mac)
            .is_some_and(|b| unnamed.started_ms.saturating_sub(b.last_ms()) <= new_after);
        let boot = if current {
            self.current_boot_mut(mac)
                .expect("checked above: the machine has a current boot")
        } else {
            self.new_boot(Some(mac), Some(ip), unnamed.started_ms)
        };
        boot.absorb(unnamed);
        if let (Some(image), Some(m)) = (image, self.machines.get_mut(&mac)) {
            m.image.get_or_insert(image);
        }
        self.copy_last_boot(mac);
    }
}
