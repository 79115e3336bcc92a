//! The policy's choice for one client, resolved against the store's current releases: what
//! the config generators (PXELINUX, GRUB) render, with the line the node logs about it.

use std::sync::Arc;

use super::{BootChoice, BootPolicy};
use crate::{
    dhcp::MacAddr,
    store::{Store, StoredRelease},
};

pub enum Resolved {
    /// Boot this release.
    Image(Arc<StoredRelease>),
    /// The chosen image is not servable here; the text says which and why it was chosen.
    Missing(String),
    /// A menu of the newest servable release of every image.
    Menu(Vec<Arc<StoredRelease>>),
}

/// `who` names the client in the log line returned with the choice.
pub fn resolve(
    store: &Store,
    policy: &BootPolicy,
    mac: Option<&MacAddr>,
    who: &str,
) -> (Resolved, String) {
    match policy.choose(mac) {
        BootChoice::Image { name, why } => match store.servable(&name) {
            Some(r) => {
                let log = format!("{who} boots {name} v{} ({why})", r.verified.version);
                (Resolved::Image(r), log)
            }
            None => (
                Resolved::Missing(format!("image {name} ({why}) is not on this node")),
                format!("{who} wants {name} ({why}), not servable here"),
            ),
        },
        BootChoice::Menu => (
            Resolved::Menu(store.servable_latest()),
            format!("{who} gets the menu"),
        ),
    }
}
