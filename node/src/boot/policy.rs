//! Which image a machine boots: its MAC's assignment, else the default image, else a menu.

use std::collections::BTreeMap;

use netboot_proto::ImageName;

use crate::dhcp::MacAddr;

#[derive(Debug, Clone, Default)]
pub struct BootPolicy {
    pub machines: BTreeMap<MacAddr, ImageName>,
    pub default_image: Option<ImageName>,
    pub menu_timeout_secs: u32,
}

/// The decision for one client, with the reason for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootChoice {
    Image { name: ImageName, why: &'static str },
    Menu,
}

impl BootPolicy {
    pub fn choose(&self, mac: Option<&MacAddr>) -> BootChoice {
        if let Some(name) = mac.and_then(|m| self.machines.get(m)) {
            return BootChoice::Image {
                name: name.clone(),
                why: "assigned to this MAC",
            };
        }
        match &self.default_image {
            Some(name) => BootChoice::Image {
                name: name.clone(),
                why: "default image",
            },
            None => BootChoice::Menu,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_then_default_then_menu() {
        let mac: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        let other: MacAddr = "52:54:00:00:00:01".parse().unwrap();
        let mut p = BootPolicy::default();
        assert_eq!(p.choose(Some(&mac)), BootChoice::Menu);
        p.default_image = Some("rescue".parse().unwrap());
        assert_eq!(
            p.choose(None),
            BootChoice::Image {
                name: "rescue".parse().unwrap(),
                why: "default image"
            }
        );
        p.machines.insert(mac.clone(), "debian".parse().unwrap());
        assert_eq!(
            p.choose(Some(&mac)),
            BootChoice::Image {
                name: "debian".parse().unwrap(),
                why: "assigned to this MAC"
            }
        );
        assert_eq!(
            p.choose(Some(&other)),
            BootChoice::Image {
                name: "rescue".parse().unwrap(),
                why: "default image"
            }
        );
    }
}
