//! The policy's choice for one client, resolved against the store's current releases: what
//! the config generators (iPXE, PXELINUX, GRUB) render, with the line the node logs about it.

use std::{sync::Arc, time::SystemTime};

use netboot_proto::{policy::Arch, ImageName};

use super::{BootChoice, BootPolicy, Decision};
use crate::{
    clients::{OnceKey, OnceState},
    dhcp::MacAddr,
    fsutil::now_unix,
    store::{Store, StoredRelease},
};

pub enum Resolved {
    /// Boot this release.
    Image(Arc<StoredRelease>),
    /// The chosen image is not servable here; the text says which and why it was chosen.
    Missing(String),
    /// A menu of the newest servable release of every image.
    Menu(Vec<Arc<StoredRelease>>),
    /// Boot from the local disk; the text says why.
    Local(String),
}

/// The release `name` (exactly `version`, when pinned) if this node can serve it.
pub fn servable(
    store: &Store,
    name: &ImageName,
    version: Option<u64>,
) -> Option<Arc<StoredRelease>> {
    match version {
        None => store.servable(name),
        Some(v) => store.servable_version(name, v),
    }
}

/// `name`, or `name vN` when pinned.
pub fn image_label(name: &ImageName, version: Option<u64>) -> String {
    match version {
        None => name.to_string(),
        Some(v) => format!("{name} v{v}"),
    }
}

/// Decides for `mac` now and logs a disagreement between policy and `[machines]` (once).
/// A one-shot rule's image is given until the one-shot ledger has it done for this machine,
/// then local disk.
pub fn decide(policy: &BootPolicy, mac: Option<&MacAddr>, arch: Option<Arch>) -> Decision {
    let mut decision = policy.decide(mac, arch, now_unix());
    policy.report(mac, &decision);
    if let (Some(ledger), Some(mac), Some(rule)) = (&policy.once, mac, &decision.rule) {
        if rule.once && matches!(decision.choice, BootChoice::Image { .. }) {
            let key = OnceKey {
                mac: *mac,
                policy_version: rule.policy_version,
                rule: rule.label.clone(),
            };
            if let OnceState::Done { done_ms, .. } = ledger.once_given(key, SystemTime::now()) {
                decision.choice = BootChoice::Local {
                    why: format!(
                        "one-shot {} of policy v{} done at Unix {} s",
                        rule.label,
                        rule.policy_version,
                        done_ms / 1000
                    ),
                };
            }
        }
    }
    decision
}

/// `who` names the client in the log line returned with the choice.
pub fn resolve(
    store: &Store,
    policy: &BootPolicy,
    mac: Option<&MacAddr>,
    arch: Option<Arch>,
    who: &str,
) -> (Resolved, String) {
    match decide(policy, mac, arch).choice {
        BootChoice::Image { name, version, why } => match servable(store, &name, version) {
            Some(r) => {
                let log = format!("{who} boots {name} v{} ({why})", r.verified.version);
                (Resolved::Image(r), log)
            }
            None => {
                let image = image_label(&name, version);
                (
                    Resolved::Missing(format!("image {image} ({why}) is not on this node")),
                    format!("{who} wants {image} ({why}), not servable here"),
                )
            }
        },
        BootChoice::Menu { why } => (
            Resolved::Menu(store.servable_latest()),
            format!("{who} gets the menu ({why})"),
        ),
        BootChoice::Local { why } => (
            Resolved::Local(why.clone()),
            format!("{who} boots from local disk ({why})"),
        ),
    }
}
