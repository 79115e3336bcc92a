//! Which image a machine boots: its MAC's assignment, else the default image, else a menu.

use std::{collections::BTreeMap, sync::Arc};

use netboot_proto::ImageName;
use serde::Deserialize;

use crate::dhcp::MacAddr;

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
}

/// The boot policy the node runs now. A config reload replaces it whole; each request takes
/// one snapshot with [`LivePolicy::current`], so it never sees half of an old policy and half
/// of a new one.
#[derive(Debug, Clone)]
pub struct LivePolicy(tokio::sync::watch::Receiver<Arc<BootPolicy>>);

impl LivePolicy {
    /// The policy's one owner (the sender, kept by the node for reloads) and its readers.
    pub fn new(policy: BootPolicy) -> (tokio::sync::watch::Sender<Arc<BootPolicy>>, Self) {
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(policy));
        (tx, Self(rx))
    }

    pub fn current(&self) -> Arc<BootPolicy> {
        self.0.borrow().clone()
    }
}

/// The decision for one client, with the reason for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootChoice {
    Image { name: ImageName, why: &'static str },
    Menu,
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

    pub fn choose(&self, mac: Option<&MacAddr>) -> BootChoice {
        if let Some(machine) = mac.and_then(|m| self.machines.get(m)) {
            return BootChoice::Image {
                name: machine.image().clone(),
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
        p.machines
            .insert(mac, Machine::Image("debian".parse().unwrap()));
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
