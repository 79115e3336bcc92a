//! A boot policy: which machines boot what, at which sites, signed once and valid fleet-wide.
//!
//! A policy is a signed document of its own kind (`signed.rs`: its own magic and signature
//! domain), admitted by the same rules as a release ([`admit_policy`]). Its rules are
//! evaluated by a pure function ([`Policy::evaluate`]) that returns the action and why:
//! ordered rules, first match wins, then the client's site default, then the fleet-wide
//! default; a machine no rule and no default covers is an unknown machine.
//!
//! A policy only chooses among images a node already holds verified; it names images, it
//! carries no bytes.

mod eval;
mod signed;
mod source;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    str::FromStr,
};

pub use eval::{Client, Explanation, Mismatch, RuleMatch, Verdict};
pub use signed::{
    admit_policy, PolicyDecodeError, PolicyId, PolicyRefusal, SignError, SignedPolicy,
    VerifiedPolicy,
};
pub use source::{parse_source, SourceError, SourceMeta};

use crate::{ImageName, PublicKey};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("policy version must be at least 1")]
    ZeroVersion,
    #[error("policy expires ({expires}) at or before it was created ({created})")]
    ExpiresBeforeCreated { created: u64, expires: u64 },
    #[error("{rule} names group {group:?}, which [groups] does not define")]
    UnknownGroup { rule: String, group: String },
    #[error("{0:?} is not a usable name (1-64 of a-z A-Z 0-9 . _ -)")]
    BadLabel(String),
    #[error("{0}: `once` needs an image to boot once (not the menu or local disk)")]
    OnceWithoutImage(String),
    #[error("{0}: a pinned version must be at least 1")]
    ZeroPin(String),
}

/// A machine's Ethernet address as DHCP reports it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl FromStr for Mac {
    type Err = String;

    /// `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`, any case.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a MAC address (expected aa:bb:cc:dd:ee:ff)");
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(parts) {
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        Ok(Mac(mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The platform a client's firmware boots, from DHCP option 93, with the names the node's
/// `[boot]` table uses (`bios`, `efi_x64`, ...). PXE and UEFI HTTP boot of the same platform
/// are the same architecture here: a policy chooses an image, not a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    Bios,
    EfiIa32,
    EfiX64,
    EfiArm32,
    EfiArm64,
}

impl Arch {
    pub const ALL: [Arch; 5] = [
        Arch::Bios,
        Arch::EfiIa32,
        Arch::EfiX64,
        Arch::EfiArm32,
        Arch::EfiArm64,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Bios => "bios",
            Arch::EfiIa32 => "efi_ia32",
            Arch::EfiX64 => "efi_x64",
            Arch::EfiArm32 => "efi_arm32",
            Arch::EfiArm64 => "efi_arm64",
        }
    }

    /// Wire code: part of the signed format, never renumbered.
    fn code(self) -> u8 {
        match self {
            Arch::Bios => 0,
            Arch::EfiIa32 => 1,
            Arch::EfiX64 => 2,
            Arch::EfiArm32 => 3,
            Arch::EfiArm64 => 4,
        }
    }

    fn from_code(code: u8) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.code() == code)
    }
}

impl FromStr for Arch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Arch::ALL.iter().map(|a| a.name()).collect();
                format!("{s:?} is not an architecture (one of {})", names.join(", "))
            })
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A node's fleet identity (its endpoint id, `netboot node-id`): a rule can name a site by the
/// node that serves it as well as by label.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeRef(pub [u8; 32]);

impl FromStr for NodeRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut id = [0u8; 32];
        hex::decode_to_slice(s, &mut id).map_err(|_| {
            format!("{s:?} is not a node id (64 hex digits, as `netboot node-id` prints)")
        })?;
        Ok(NodeRef(id))
    }
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeRef({self})")
    }
}

/// What a matched machine is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// This image: the newest version the node holds, or exactly `version`.
    Image {
        name: ImageName,
        version: Option<u64>,
    },
    /// The node's boot menu of every image it holds.
    Menu,
    /// Boot from the machine's own disk.
    Local,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Image {
                name,
                version: None,
            } => write!(f, "image {name} (newest held version)"),
            Action::Image {
                name,
                version: Some(v),
            } => write!(f, "image {name} v{v} (pinned)"),
            Action::Menu => f.write_str("the boot menu"),
            Action::Local => f.write_str("local disk"),
        }
    }
}

/// One rule. An empty criterion matches everything: a rule with no `machines`/`groups`
/// applies to every machine, with no `sites`/`nodes` at every site, with no `archs` on every
/// architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: Option<String>,
    pub macs: BTreeSet<Mac>,
    pub groups: BTreeSet<String>,
    pub sites: BTreeSet<String>,
    pub nodes: BTreeSet<NodeRef>,
    pub archs: BTreeSet<Arch>,
    pub action: Action,
    /// One-shot: boot the image once per machine (per policy version), then local disk;
    /// each node keeps which are done (`node::clients::once`).
    pub once: bool,
}

/// A boot policy, checked ([`Policy::new`]) but not signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub version: u64,
    pub created: u64,
    pub expires: Option<u64>,
    pub publisher: PublicKey,
    pub groups: BTreeMap<String, BTreeSet<Mac>>,
    pub rules: Vec<Rule>,
    /// Site label → what machines no rule matched get there.
    pub site_defaults: BTreeMap<String, Action>,
    /// For machines no rule matched at a site with no default of its own.
    pub default: Option<Action>,
}

/// How a rule is named in errors and explanations: `rule 2 "kiosks"` (1-based, as written).
pub fn rule_label(index: usize, rule: &Rule) -> String {
    match &rule.name {
        Some(name) => format!("rule {} {name:?}", index + 1),
        None => format!("rule {}", index + 1),
    }
}

/// Group names, rule names and site labels: they appear in logs and explanations.
fn check_label(s: &str) -> Result<(), PolicyError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(PolicyError::BadLabel(s.to_string()))
    }
}

fn check_action(what: &str, action: &Action) -> Result<(), PolicyError> {
    match action {
        Action::Image {
            version: Some(0), ..
        } => Err(PolicyError::ZeroPin(what.to_string())),
        _ => Ok(()),
    }
}

impl Policy {
    /// Checks a policy's consistency: what [`SignedPolicy::sign`] and verification require.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.version == 0 {
            return Err(PolicyError::ZeroVersion);
        }
        if let Some(expires) = self.expires {
            if expires <= self.created {
                return Err(PolicyError::ExpiresBeforeCreated {
                    created: self.created,
                    expires,
                });
            }
        }
        for group in self.groups.keys() {
            check_label(group)?;
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let label = rule_label(i, rule);
            if let Some(name) = &rule.name {
                check_label(name)?;
            }
            for group in &rule.groups {
                if !self.groups.contains_key(group) {
                    return Err(PolicyError::UnknownGroup {
                        rule: label,
                        group: group.clone(),
                    });
                }
            }
            for site in &rule.sites {
                check_label(site)?;
            }
            check_action(&label, &rule.action)?;
            if rule.once && !matches!(rule.action, Action::Image { .. }) {
                return Err(PolicyError::OnceWithoutImage(label));
            }
        }
        for (site, action) in &self.site_defaults {
            check_label(site)?;
            check_action(&format!("default for site {site}"), action)?;
        }
        if let Some(action) = &self.default {
            check_action("fleet-wide default", action)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
