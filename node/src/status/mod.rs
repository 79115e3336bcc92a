//! What a node is doing, for the people who run it: the typed snapshot behind `GET /`,
//! `GET /status.json` and `netboot status`. Everything here is safe to show on the LAN: ids
//! and addresses are public, key material and file contents never appear.
//!
//! [`StatusSource::snapshot`] gathers the parts (store, fleet); [`assemble`] is the pure
//! step that turns them into a [`NodeStatus`]; [`render`] and [`text`] show one.

pub mod render;
pub mod text;

use std::{path::Path, sync::Arc};

use netboot_proto::{BootEntry, Release};
use serde::{Deserialize, Serialize};

use crate::{
    clients::{Boot, ClientLog, Via},
    config::{Config, DhcpModeName},
    fleet::{FetchSource, FleetStatus, FleetView, PeerView},
    policy::{Held, HeldPolicy},
    store::Store,
};

/// The whole snapshot (`/status.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Unix seconds when it was taken; "ago" columns count from here.
    pub generated_at: u64,
    pub node: NodeIdentity,
    /// Committed, being fetched, and refused releases, by name then version.
    pub releases: Vec<ReleaseStatus>,
    /// Fleet peers (empty without `[fleet]`).
    pub peers: Vec<PeerView>,
    /// The last client boots, newest first.
    pub boots: Vec<ClientBoot>,
    /// The fleet boot policy this node holds and applies (absent from older nodes' JSON).
    #[serde(default)]
    pub policy: Option<PolicyStatus>,
}

/// The boot policy a node holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyStatus {
    pub version: u64,
    /// Short form of its id (BLAKE3 of the signed bytes): the same on every node.
    pub id: String,
    pub publisher: String,
    /// Unix seconds when this node accepted it.
    pub arrived: u64,
    pub expires: Option<u64>,
    pub rules: usize,
}

impl PolicyStatus {
    pub fn of(held: &Held) -> Self {
        let p = &held.policy;
        Self {
            version: p.version,
            id: p.id().to_string(),
            publisher: p.publisher.to_string(),
            arrived: held.arrived,
            expires: p.expires,
            rules: p.rules.len(),
        }
    }

    /// One line: `v7 (id …) by ed25519:…, 3 rules, arrived 4 s ago`.
    pub fn line(&self, now: u64) -> String {
        format!(
            "v{} (id {}) by {}, {} rules, arrived {}{}",
            self.version,
            self.id,
            self.publisher,
            self.rules,
            ago(self.arrived, now),
            self.expires
                .map(|e| format!(", expires in {}", ago(now, e).trim_end_matches(" ago")))
                .unwrap_or_default()
        )
    }
}

/// How many boots the page and `netboot status` show.
pub const BOOTS_SHOWN: usize = 20;

/// One client boot as the node saw it (from [`crate::clients`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientBoot {
    /// Unix seconds of its first event.
    pub started: u64,
    /// `None` while only its IP address is known.
    pub mac: Option<String>,
    pub ip: Option<String>,
    /// Firmware architecture, as DHCP reported it.
    pub arch: Option<String>,
    /// `name vN` of the image it was given.
    pub image: Option<String>,
    /// The furthest stage reached: `dhcp_ignored`, `dhcp_answered`, `first_stage`,
    /// `config`, `kernel`, `initrd`.
    pub reached: Option<String>,
    /// Why its DHCP request was not answered, if it was not.
    pub ignored: Option<String>,
    /// The last file it was given, and over which protocol.
    pub last_file: Option<String>,
}

impl ClientBoot {
    pub fn from_record(boot: &Boot) -> Self {
        Self {
            started: boot.started_ms / 1000,
            mac: boot.mac.map(|m| m.to_string()),
            ip: boot.ip.map(|i| i.to_string()),
            arch: boot.arch.clone(),
            image: boot
                .image
                .as_ref()
                .map(|i| format!("{} v{}", i.name, i.version)),
            reached: boot.furthest().map(|s| s.as_str().to_string()),
            ignored: boot.ignored.clone(),
            last_file: boot.last_file.as_ref().map(|(f, via)| {
                format!(
                    "{f} ({})",
                    match via {
                        Via::Tftp => "TFTP",
                        Via::Http => "HTTP",
                    }
                )
            }),
        }
    }
}

/// Who this node is and where it listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub hostname: String,
    pub version: String,
    /// The fleet endpoint id (a public key), when `[fleet]` is configured.
    pub fleet_id: Option<String>,
    /// `proxy`, `server` or `off`.
    pub dhcp_mode: String,
    pub dhcp_interface: Option<String>,
    /// What clients are told to fetch from.
    pub base_url: String,
    pub http_listen: String,
    /// `None` when TFTP is disabled.
    pub tftp_listen: Option<String>,
    pub fleet_listen: Option<String>,
    /// `[node] site`: the label boot policy rules name this site by.
    #[serde(default)]
    pub site: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseStatus {
    pub name: String,
    pub version: u64,
    /// Total bytes of its files; `None` for a refusal (the offer was not kept).
    pub size_bytes: Option<u64>,
    pub files: Vec<FileStatus>,
    /// What a client boots: `linux` or `iso`, `None` for a files-only release.
    pub boot: Option<BootStatus>,
    pub state: ReleaseState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileStatus {
    pub path: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BootStatus {
    Linux {
        kernel: String,
        initrds: Vec<String>,
        /// The signed template, placeholders as written.
        cmdline: String,
    },
    Iso {
        iso: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReleaseState {
    /// Committed and verified; served unless expired.
    Complete {
        /// Unix seconds.
        expires: Option<u64>,
        expired: bool,
    },
    /// Admitted, its files arriving from peers.
    Fetching {
        held_bytes: u64,
        total_bytes: u64,
        /// 0-100, rounded down (100 only when every byte is held).
        percent: u8,
        /// The peer bytes are coming from and the rate; `None` before the first bytes.
        source: Option<FetchSource>,
    },
    /// Offered and refused (or a commit the store refused).
    Refused {
        reason: String,
        from: String,
        /// Unix seconds.
        at: u64,
    },
}

impl ReleaseState {
    pub fn label(&self) -> &'static str {
        match self {
            ReleaseState::Complete { expired: false, .. } => "complete",
            ReleaseState::Complete { expired: true, .. } => "expired",
            ReleaseState::Fetching { .. } => "fetching",
            ReleaseState::Refused { .. } => "refused",
        }
    }
}

/// Percent of `held` in `total`, rounded down so "100 %" means done.
pub fn percent(held: u64, total: u64) -> u8 {
    if total == 0 {
        return 100;
    }
    ((u128::from(held.min(total)) * 100) / u128::from(total)) as u8
}

impl NodeIdentity {
    pub fn new(config: &Config, base_url: &str, fleet_id: Option<String>) -> Self {
        Self {
            hostname: hostname(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            fleet_id,
            dhcp_mode: match config.dhcp.mode {
                DhcpModeName::Proxy => "proxy",
                DhcpModeName::Server => "server",
                DhcpModeName::Off => "off",
            }
            .to_string(),
            dhcp_interface: config.dhcp.interface.clone(),
            base_url: base_url.to_string(),
            http_listen: config.http.listen.to_string(),
            tftp_listen: config.tftp.enabled.then(|| config.tftp.listen.to_string()),
            fleet_listen: config.fleet.as_ref().map(|f| f.listen.to_string()),
            site: config.node.site.clone(),
        }
    }
}

/// The kernel's host name; a status page without it is still useful, so no error.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string(Path::new("/proc/sys/kernel/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "(unknown)".into())
}

fn describe(release: &Release, state: ReleaseState) -> ReleaseStatus {
    ReleaseStatus {
        name: release.name.to_string(),
        version: release.version,
        size_bytes: Some(release.total_size()),
        files: release
            .files
            .iter()
            .map(|f| FileStatus {
                path: f.path.to_string(),
                size: f.size,
            })
            .collect(),
        boot: release.boot.as_ref().map(|b| match b {
            BootEntry::Linux {
                kernel,
                initrds,
                cmdline,
            } => BootStatus::Linux {
                kernel: kernel.to_string(),
                initrds: initrds.iter().map(ToString::to_string).collect(),
                cmdline: cmdline.as_str().to_string(),
            },
            BootEntry::Iso { iso } => BootStatus::Iso {
                iso: iso.to_string(),
            },
        }),
        state,
    }
}

/// The snapshot from its parts. `committed` are the store's releases; `fetching` the ones
/// being fetched, matched by name and version against `fleet.fetching`.
pub fn assemble(
    node: NodeIdentity,
    committed: &[&Release],
    fetching: &[&Release],
    fleet: Option<FleetView>,
    boots: &[Boot],
    now: u64,
) -> NodeStatus {
    let mut releases: Vec<ReleaseStatus> = committed
        .iter()
        .map(|r| {
            describe(
                r,
                ReleaseState::Complete {
                    expires: r.expires,
                    expired: r.is_expired(now),
                },
            )
        })
        .collect();
    let (peers, fetch_views, refused) = match fleet {
        Some(f) => (f.peers, f.fetching, f.refused),
        None => Default::default(),
    };
    for r in fetching {
        // Committed between the two looks: the store's word is the newer one.
        if committed
            .iter()
            .any(|c| c.name == r.name && c.version == r.version)
        {
            continue;
        }
        let Some(view) = fetch_views
            .iter()
            .find(|v| v.name == r.name.as_str() && v.version == r.version)
        else {
            continue;
        };
        releases.push(describe(
            r,
            ReleaseState::Fetching {
                held_bytes: view.held_bytes,
                total_bytes: view.total_bytes,
                percent: percent(view.held_bytes, view.total_bytes),
                source: view.source.clone(),
            },
        ));
    }
    for r in refused {
        releases.push(ReleaseStatus {
            name: r.name,
            version: r.version,
            size_bytes: None,
            files: Vec::new(),
            boot: None,
            state: ReleaseState::Refused {
                reason: r.reason,
                from: r.from,
                at: r.at,
            },
        });
    }
    releases.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
    NodeStatus {
        generated_at: now,
        node,
        releases,
        peers,
        boots: boots.iter().map(ClientBoot::from_record).collect(),
        policy: None,
    }
}

/// Gathers a snapshot from the running node's parts; one per request.
#[derive(Debug, Clone)]
pub struct StatusSource {
    pub node: NodeIdentity,
    pub store: Arc<Store>,
    pub fleet: Option<FleetStatus>,
    pub clients: ClientLog,
    pub held: Option<HeldPolicy>,
}

impl StatusSource {
    pub async fn snapshot(&self) -> NodeStatus {
        // Pending first, the store last: a release committed meanwhile shows as complete.
        let pending = self
            .fleet
            .as_ref()
            .map(FleetStatus::pending)
            .unwrap_or_default();
        let fleet = match &self.fleet {
            Some(f) => Some(f.view().await),
            None => None,
        };
        let committed = self.store.releases();
        let committed: Vec<&Release> = committed.iter().map(|r| r.verified.release()).collect();
        let pending: Vec<&Release> = pending.iter().map(|r| r.release()).collect();
        let mut status = assemble(
            self.node.clone(),
            &committed,
            &pending,
            fleet,
            &self.clients.recent_boots(BOOTS_SHOWN),
            crate::fsutil::now_unix(),
        );
        status.policy = self
            .held
            .as_ref()
            .and_then(HeldPolicy::current)
            .map(|h| PolicyStatus::of(&h));
        status
    }
}

/// `1536` → `1.5 KiB`: sizes and rates for people.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// How long before `now` the Unix time `then` was: `4 s ago`, `3 min ago`, `2 h ago`.
pub fn ago(then: u64, now: u64) -> String {
    let secs = now.saturating_sub(then);
    match secs {
        0..=119 => format!("{secs} s ago"),
        120..=7199 => format!("{} min ago", secs / 60),
        7200..=172_799 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// One line for a release's state: `fetching 42 % from regional (…) at 2.0 MiB/s`.
pub fn state_line(state: &ReleaseState, now: u64) -> String {
    match state {
        ReleaseState::Complete {
            expires: None,
            expired: false,
        } => "complete".into(),
        ReleaseState::Complete {
            expires: Some(e),
            expired: false,
        } => format!(
            "complete, expires in {}",
            ago(now, *e).trim_end_matches(" ago")
        ),
        ReleaseState::Complete { expired: true, .. } => "expired: kept, no longer served".into(),
        ReleaseState::Fetching {
            held_bytes,
            total_bytes,
            percent,
            source,
        } => {
            let from = match source {
                Some(s) => format!(" from {} at {}/s", s.label, human_bytes(s.bytes_per_sec)),
                None => ", waiting for a peer that holds it".into(),
            };
            format!(
                "fetching {percent} % ({} of {}){from}",
                human_bytes(*held_bytes),
                human_bytes(*total_bytes)
            )
        }
        ReleaseState::Refused { reason, from, at } => {
            format!("refused ({}, from {from}): {reason}", ago(*at, now))
        }
    }
}

#[cfg(test)]
mod tests;
