//! Which image a machine boots: the held fleet policy's rule or default, else its MAC's
//! assignment in `[machines]`, else the default image, else a menu.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
};

use netboot_proto::{
    policy::{Action, Arch, Client, NodeRef, Verdict},
    ImageName,
};
use serde::Deserialize;

use crate::{
    dhcp::MacAddr,
    policy::{policy_mac, Held},
};

/// What a machine runs after its firmware: iPXE (default, BIOS and UEFI), PXELINUX (BIOS
/// only) or shim + signed GRUB (UEFI only: the chain Secure Boot firmware accepts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loader {
    #[default]
    Ipxe,
    Pxelinux,
    Grub,
}

impl Loader {
    pub fn name(self) -> &'static str {
        match self {
            Loader::Ipxe => "ipxe",
            Loader::Pxelinux => "pxelinux",
            Loader::Grub => "grub",
        }
    }

    fn runs_on_bios(self) -> bool {
        self != Loader::Grub
    }

    fn runs_on_uefi(self) -> bool {
        self != Loader::Pxelinux
    }
}

/// A `[machines]` entry: just an image name, or a table with a loader too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Machine {
    Image(ImageName),
    Detailed {
        image: ImageName,
        loader: Option<Loader>,
    },
}

/// By hand rather than `untagged`: serde's untagged error ("did not match any variant")
/// would hide which value is wrong and what is allowed. Errors come from the value itself,
/// so TOML points at its line, which shows the MAC.
impl<'de> Deserialize<'de> for Machine {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MachineVisitor)
    }
}

struct MachineVisitor;

impl<'de> serde::de::Visitor<'de> for MachineVisitor {
    type Value = Machine;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            r#"an image name, or { image = "<name>", loader = "ipxe" | "pxelinux" | "grub" }"#,
        )
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Machine, E> {
        v.parse().map(Machine::Image).map_err(E::custom)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Machine, A::Error> {
        use serde::de::Error;
        let (mut image, mut loader) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "image" => {
                    let name: String = map.next_value()?;
                    image = Some(name.parse::<ImageName>().map_err(A::Error::custom)?);
                }
                "loader" => loader = Some(map.next_value::<Loader>()?),
                other => {
                    return Err(A::Error::unknown_field(other, &["image", "loader"]));
                }
            }
        }
        let image = image.ok_or_else(|| A::Error::missing_field("image"))?;
        Ok(Machine::Detailed { image, loader })
    }
}

impl Machine {
    pub fn image(&self) -> &ImageName {
        match self {
            Machine::Image(i) | Machine::Detailed { image: i, .. } => i,
        }
    }

    pub fn loader(&self) -> Option<Loader> {
        match self {
            Machine::Image(_) => None,
            Machine::Detailed { loader, .. } => *loader,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct BootPolicy {
    pub machines: BTreeMap<MacAddr, Machine>,
    pub default_image: Option<ImageName>,
    pub menu_timeout_secs: u32,
    /// The site-wide loaders per firmware kind; a machine entry may override them.
    pub bios_loader: Loader,
    pub efi_loader: Loader,
    /// `[node] site`: the label policy rules name this site by.
    pub site: Option<String>,
    /// This node's fleet identity, which a rule may name instead of a site label.
    pub node: Option<NodeRef>,
    /// The fleet's boot policy this node holds (`policy::held`); it decides before
    /// `[machines]` and `default_image`.
    pub held: Option<Arc<Held>>,
    /// Which (MAC, policy version) disagreements with `[machines]` were logged already.
    pub conflicts: Arc<OnceLog>,
    /// The client record, whose one-shot ledger turns a one-shot rule that is done for a
    /// machine into local disk ([`super::resolve::decide`]).
    pub once: Option<crate::clients::ClientLog>,
}

/// Remembers what was logged, so a disagreement is logged once per MAC and policy version
/// rather than at every boot. Bounded: a flood of MACs cannot grow it without limit.
#[derive(Debug, Default)]
pub struct OnceLog(Mutex<HashSet<(MacAddr, u64)>>);

const ONCE_LOG_LIMIT: usize = 4096;

impl OnceLog {
    /// True the first time `(mac, version)` is seen.
    pub fn first(&self, mac: MacAddr, version: u64) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= ONCE_LOG_LIMIT {
            seen.clear();
        }
        seen.insert((mac, version))
    }
}

/// The boot policy the node runs now: the config's part (a reload replaces it whole) and the
/// fleet policy held (replaced whole when a newer one is admitted). Each request takes one
/// snapshot with [`LivePolicy::current`], so it never sees half of an old policy and half of
/// a new one.
#[derive(Debug, Clone)]
pub struct LivePolicy {
    config: tokio::sync::watch::Receiver<Arc<BootPolicy>>,
    held: Option<tokio::sync::watch::Receiver<Option<Arc<Held>>>>,
    node: Option<NodeRef>,
    once: Option<crate::clients::ClientLog>,
}

impl LivePolicy {
    /// The policy's one owner (the sender, kept by the node for reloads) and its readers.
    pub fn new(policy: BootPolicy) -> (tokio::sync::watch::Sender<Arc<BootPolicy>>, Self) {
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(policy));
        (
            tx,
            Self {
                config: rx,
                held: None,
                node: None,
                once: None,
            },
        )
    }

    /// Follows the held fleet policy too; `node` is this node's fleet identity.
    pub fn with_held(
        mut self,
        held: tokio::sync::watch::Receiver<Option<Arc<Held>>>,
        node: Option<NodeRef>,
    ) -> Self {
        self.held = Some(held);
        self.node = node;
        self
    }

    /// Applies the one-shot ledger of `clients` to the decisions.
    pub fn with_once(mut self, clients: crate::clients::ClientLog) -> Self {
        self.once = Some(clients);
        self
    }

    pub fn current(&self) -> Arc<BootPolicy> {
        let config = self.config.borrow().clone();
        let held = self.held.as_ref().and_then(|h| h.borrow().clone());
        if held.is_none() && self.node.is_none() && self.once.is_none() {
            return config;
        }
        let mut policy = (*config).clone();
        policy.held = held;
        policy.node = self.node;
        policy.once.clone_from(&self.once);
        Arc::new(policy)
    }
}

/// The choice for one client, with the reason for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootChoice {
    /// This image: its newest servable version, or exactly `version`.
    Image {
        name: ImageName,
        version: Option<u64>,
        why: String,
    },
    Menu {
        why: String,
    },
    /// Boot from the machine's own disk.
    Local {
        why: String,
    },
}

/// The policy rule that decided a boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedRule {
    pub policy_version: u64,
    /// `rule 2 "kiosks"`, as `netboot policy explain` names it.
    pub label: String,
    /// A one-shot rule: the node should record the boot done (the inventory's ledger).
    pub once: bool,
}

/// The decision for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub choice: BootChoice,
    /// The held policy's rule that matched, when a rule (not a default) decided.
    pub rule: Option<MatchedRule>,
    /// `[machines]` assigns this MAC something else than the policy gave it (the policy
    /// wins): the line to log, once per MAC and policy version ([`BootPolicy::report`]).
    pub conflict: Option<String>,
}

impl BootPolicy {
    fn machine_loader(&self, mac: Option<&MacAddr>) -> Option<Loader> {
        mac.and_then(|m| self.machines.get(m))
            .and_then(Machine::loader)
    }

    /// The loader BIOS firmware of this machine runs: its own entry's, unless that one is
    /// UEFI-only (`grub`), else the site's `bios_loader`.
    pub fn bios_loader_for(&self, mac: Option<&MacAddr>) -> Loader {
        self.machine_loader(mac)
            .filter(|l| l.runs_on_bios())
            .unwrap_or(self.bios_loader)
    }

    /// The loader UEFI firmware of this machine runs: its own entry's, unless that one is
    /// BIOS-only (`pxelinux`), else the site's `efi_loader`.
    pub fn efi_loader_for(&self, mac: Option<&MacAddr>) -> Loader {
        self.machine_loader(mac)
            .filter(|l| l.runs_on_uefi())
            .unwrap_or(self.efi_loader)
    }

    /// The node's own config alone: the MAC's assignment, else the default image, else the
    /// menu.
    fn configured(&self, mac: Option<&MacAddr>) -> BootChoice {
        if let Some(machine) = mac.and_then(|m| self.machines.get(m)) {
            return BootChoice::Image {
                name: machine.image().clone(),
                version: None,
                why: "assigned to this MAC".into(),
            };
        }
        match &self.default_image {
            Some(name) => BootChoice::Image {
                name: name.clone(),
                version: None,
                why: "default image".into(),
            },
            None => BootChoice::Menu {
                why: "no assignment, no default".into(),
            },
        }
    }

    /// What `mac` (of architecture `arch`, when known) boots at `now` (Unix seconds): the
    /// held policy decides first, when there is one and it has not expired; a machine it
    /// leaves unknown gets the node's `[machines]`/`default_image` choice, or local disk
    /// (an unknown machine is not booted from the network). Without a held policy, the
    /// config alone decides, as before policies existed.
    pub fn decide(&self, mac: Option<&MacAddr>, arch: Option<Arch>, now: u64) -> Decision {
        let configured = self.configured(mac);
        let plain = |choice| Decision {
            choice,
            rule: None,
            conflict: None,
        };
        let (Some(held), Some(mac)) = (&self.held, mac) else {
            return plain(configured);
        };
        let policy = held.policy.policy();
        if policy.expires.is_some_and(|e| now >= e) {
            let expired = format!("policy v{} expired", policy.version);
            return plain(match configured {
                BootChoice::Image { name, version, why } => BootChoice::Image {
                    name,
                    version,
                    why: format!("{why}; {expired}"),
                },
                BootChoice::Menu { why } => BootChoice::Menu {
                    why: format!("{why}; {expired}"),
                },
                local => local,
            });
        }
        let client = Client {
            mac: policy_mac(*mac),
            site: self.site.as_deref().unwrap_or(""),
            node: self.node,
            arch,
        };
        let v = policy.version;
        let (action, why, rule) = match policy.evaluate(&client).verdict {
            Verdict::Rule {
                label,
                action,
                once,
                ..
            } => (
                action,
                format!("policy v{v} {label}"),
                Some(MatchedRule {
                    policy_version: v,
                    label,
                    once,
                }),
            ),
            Verdict::SiteDefault { site, action } => {
                (action, format!("policy v{v} default for site {site}"), None)
            }
            Verdict::Default { action } => {
                (action, format!("policy v{v} fleet-wide default"), None)
            }
            Verdict::Unknown => {
                let choice = match configured {
                    BootChoice::Menu { .. } => BootChoice::Local {
                        why: format!(
                            "unknown machine: policy v{v} has no rule or default for it, nor has [machines] or default_image"
                        ),
                    },
                    BootChoice::Image { name, version, why } => BootChoice::Image {
                        name,
                        version,
                        why: format!("{why}; policy v{v} has no rule or default for it"),
                    },
                    local => local,
                };
                return plain(choice);
            }
        };
        let conflict = self.machines.get(mac).and_then(|m| {
            let same = matches!(&action, Action::Image { name, .. } if name == m.image());
            (!same).then(|| {
                format!(
                    "{mac}: {why} gives {action}, [machines] assigns image {}: the policy wins",
                    m.image()
                )
            })
        });
        let choice = match action {
            Action::Image { name, version } => BootChoice::Image { name, version, why },
            Action::Menu => BootChoice::Menu { why },
            Action::Local => BootChoice::Local { why },
        };
        Decision {
            choice,
            rule,
            conflict,
        }
    }

    /// Logs a decision's disagreement with `[machines]`, once per MAC and policy version.
    pub fn report(&self, mac: Option<&MacAddr>, decision: &Decision) {
        let (Some(mac), Some(text), Some(rule_version)) = (
            mac,
            &decision.conflict,
            self.held.as_ref().map(|h| h.policy.version),
        ) else {
            return;
        };
        if self.conflicts.first(*mac, rule_version) {
            tracing::warn!("boot policy overrides the config: {text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, why: &str) -> BootChoice {
        BootChoice::Image {
            name: name.parse().unwrap(),
            version: None,
            why: why.into(),
        }
    }

    #[test]
    fn assignment_then_default_then_menu() {
        let mac: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        let other: MacAddr = "52:54:00:00:00:01".parse().unwrap();
        let mut p = BootPolicy::default();
        let choose = |p: &BootPolicy, mac| p.decide(mac, None, 0).choice;
        assert_eq!(
            choose(&p, Some(&mac)),
            BootChoice::Menu {
                why: "no assignment, no default".into()
            }
        );
        p.default_image = Some("rescue".parse().unwrap());
        assert_eq!(choose(&p, None), image("rescue", "default image"));
        p.machines
            .insert(mac, Machine::Image("debian".parse().unwrap()));
        assert_eq!(
            choose(&p, Some(&mac)),
            image("debian", "assigned to this MAC")
        );
        assert_eq!(choose(&p, Some(&other)), image("rescue", "default image"));
        assert_eq!(p.bios_loader_for(Some(&mac)), Loader::Ipxe);
        p.machines.insert(
            other,
            Machine::Detailed {
                image: "rescue".parse().unwrap(),
                loader: Some(Loader::Pxelinux),
            },
        );
        assert_eq!(p.bios_loader_for(Some(&other)), Loader::Pxelinux);
        assert_eq!(p.bios_loader_for(None), Loader::Ipxe);
    }

    #[test]
    fn loaders_per_firmware_kind() {
        let detailed = |loader| Machine::Detailed {
            image: "x".parse().unwrap(),
            loader: Some(loader),
        };
        let (grub, pxe, ipxe, plain): (MacAddr, MacAddr, MacAddr, MacAddr) = (
            "52:54:00:00:00:01".parse().unwrap(),
            "52:54:00:00:00:02".parse().unwrap(),
            "52:54:00:00:00:03".parse().unwrap(),
            "52:54:00:00:00:04".parse().unwrap(),
        );
        let mut p = BootPolicy {
            bios_loader: Loader::Pxelinux,
            efi_loader: Loader::Grub,
            ..BootPolicy::default()
        };
        p.machines.insert(grub, detailed(Loader::Grub));
        p.machines.insert(pxe, detailed(Loader::Pxelinux));
        p.machines.insert(ipxe, detailed(Loader::Ipxe));
        p.machines
            .insert(plain, Machine::Image("x".parse().unwrap()));
        // (mac, BIOS firmware runs, UEFI firmware runs)
        for (mac, bios, efi) in [
            (grub, Loader::Pxelinux, Loader::Grub),
            (pxe, Loader::Pxelinux, Loader::Grub),
            (ipxe, Loader::Ipxe, Loader::Ipxe),
            (plain, Loader::Pxelinux, Loader::Grub),
        ] {
            assert_eq!(p.bios_loader_for(Some(&mac)), bios, "{mac}");
            assert_eq!(p.efi_loader_for(Some(&mac)), efi, "{mac}");
        }
        p.efi_loader = Loader::Ipxe;
        p.bios_loader = Loader::Ipxe;
        assert_eq!(p.efi_loader_for(Some(&pxe)), Loader::Ipxe);
        assert_eq!(p.efi_loader_for(Some(&grub)), Loader::Grub);
        assert_eq!(p.bios_loader_for(Some(&grub)), Loader::Ipxe);
        assert_eq!(p.efi_loader_for(None), Loader::Ipxe);
    }
}

#[cfg(test)]
mod policy_tests;
