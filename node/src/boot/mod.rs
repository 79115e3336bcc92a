//! What to boot: the per-machine policy, the iPXE scripts, PXELINUX and GRUB configs, and
//! the first-stage programs (iPXE, PXELINUX, shim + GRUB) that TFTP and HTTP hand out. Pure
//! decisions over the store's current releases; the protocol servers only ask.

pub mod first_stage;
pub mod grub;
pub mod ipxe;
pub mod policy;
pub mod pxelinux;
pub mod release_file;
pub mod resolve;

pub use first_stage::{FirstStage, FirstStageFile};
pub use policy::{BootChoice, BootPolicy, Decision, LivePolicy, Loader, Machine, MatchedRule};

/// Releases for the config generators' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use netboot_proto::{BootEntry, CmdlineTemplate, FileEntry, Release, ReleaseSpec, SecretKey};

    /// `name` v`version` holding `paths` (one byte each) and `boot`.
    pub fn release(name: &str, version: u64, paths: &[&str], boot: Option<BootEntry>) -> Release {
        Release::new(ReleaseSpec {
            name: name.parse().unwrap(),
            version,
            created: 1,
            expires: None,
            publisher: SecretKey::from_seed([1; 32]).public(),
            files: paths
                .iter()
                .map(|p| FileEntry {
                    path: p.parse().unwrap(),
                    size: 1,
                    hash: blake3::hash(p.as_bytes()),
                })
                .collect(),
            boot,
        })
        .unwrap()
    }

    /// A Linux boot entry: `vmlinuz` with `initrds` and `cmdline`.
    pub fn linux(initrds: &[&str], cmdline: &str) -> BootEntry {
        BootEntry::Linux {
            kernel: "vmlinuz".parse().unwrap(),
            initrds: initrds.iter().map(|i| i.parse().unwrap()).collect(),
            cmdline: CmdlineTemplate::parse(cmdline).unwrap(),
        }
    }
}
