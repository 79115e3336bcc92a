//! The boot table: client architecture (+ iPXE / HTTP boot) → what to boot.
//!
//! Pure data in, pure data out, like smee's arch → binary map.

use std::fmt;

use serde::Deserialize;

/// Client system architecture, DHCP option 93 (RFC 4578 + IANA registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientArch {
    /// 0: x86 BIOS (legacy PXE).
    BiosX86,
    /// 6: EFI IA32.
    EfiIa32,
    /// 7: EFI x86-64.
    EfiX64,
    /// 9: EFI BC, used by firmware in the wild for x86-64.
    EfiBc,
    /// 10: EFI ARM 32-bit.
    EfiArm32,
    /// 11: EFI ARM 64-bit.
    EfiArm64,
    /// 15: UEFI HTTP boot, IA32.
    HttpIa32,
    /// 16: UEFI HTTP boot, x86-64.
    HttpX64,
    /// 19: UEFI HTTP boot, ARM 64-bit.
    HttpArm64,
    /// Any other number: known to IANA or not, we have no program for it.
    Other(u16),
}

impl ClientArch {
    pub fn from_code(code: u16) -> Self {
        match code {
            0 => Self::BiosX86,
            6 => Self::EfiIa32,
            7 => Self::EfiX64,
            9 => Self::EfiBc,
            10 => Self::EfiArm32,
            11 => Self::EfiArm64,
            15 => Self::HttpIa32,
            16 => Self::HttpX64,
            19 => Self::HttpArm64,
            n => Self::Other(n),
        }
    }

    pub fn code(self) -> u16 {
        match self {
            Self::BiosX86 => 0,
            Self::EfiIa32 => 6,
            Self::EfiX64 => 7,
            Self::EfiBc => 9,
            Self::EfiArm32 => 10,
            Self::EfiArm64 => 11,
            Self::HttpIa32 => 15,
            Self::HttpX64 => 16,
            Self::HttpArm64 => 19,
            Self::Other(n) => n,
        }
    }

    /// Short stable name for metric labels (unknown codes share one, so a client cannot
    /// create label values at will).
    pub fn label(self) -> &'static str {
        match self {
            Self::BiosX86 => "bios_x86",
            Self::EfiIa32 => "efi_ia32",
            Self::EfiX64 => "efi_x64",
            Self::EfiBc => "efi_bc",
            Self::EfiArm32 => "efi_arm32",
            Self::EfiArm64 => "efi_arm64",
            Self::HttpIa32 => "http_ia32",
            Self::HttpX64 => "http_x64",
            Self::HttpArm64 => "http_arm64",
            Self::Other(_) => "other",
        }
    }

    /// Human name used in log lines.
    pub fn name(self) -> String {
        match self {
            Self::BiosX86 => "BIOS x86".into(),
            Self::EfiIa32 => "EFI IA32".into(),
            Self::EfiX64 => "EFI x86-64".into(),
            Self::EfiBc => "EFI BC (x86-64)".into(),
            Self::EfiArm32 => "EFI arm32".into(),
            Self::EfiArm64 => "EFI arm64".into(),
            Self::HttpIa32 => "HTTP IA32".into(),
            Self::HttpX64 => "HTTP x86-64".into(),
            Self::HttpArm64 => "HTTP arm64".into(),
            Self::Other(n) => format!("{n} (unknown)"),
        }
    }

    /// The platform the boot program must be built for, whatever the transport.
    pub fn platform(self) -> Platform {
        match self {
            Self::BiosX86 => Platform::Bios,
            Self::EfiIa32 | Self::HttpIa32 => Platform::EfiIa32,
            Self::EfiX64 | Self::EfiBc | Self::HttpX64 => Platform::EfiX64,
            Self::EfiArm32 => Platform::EfiArm32,
            Self::EfiArm64 | Self::HttpArm64 => Platform::EfiArm64,
            Self::Other(n) => Platform::Unknown(n),
        }
    }
}

impl fmt::Display for ClientArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// What a boot program has to be compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    Bios,
    EfiIa32,
    EfiX64,
    EfiArm32,
    EfiArm64,
    Unknown(u16),
}

/// The boot programs this node serves, by platform. File names are relative to
/// the TFTP root (firmware PXE) and to `http_base_url` (UEFI HTTP boot).
///
/// `ipxe_script_url` and `http_base_url` may contain `{server_ip}`, replaced by
/// the configured server address when the configuration is finalized.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootFiles {
    /// BIOS PXE: an iPXE built as a PXE NBP.
    pub bios: String,
    /// EFI x86-64 (arch 7 and 9): `ipxe.efi` (own drivers) or `snponly.efi`
    /// (uses the firmware's network driver; what EDK2/OVMF boots reliably).
    pub efi_x64: String,
    /// EFI IA32: only if such a build is present.
    pub efi_ia32: Option<String>,
    /// EFI arm64: only if an arm64 iPXE is present.
    pub efi_arm64: Option<String>,
    /// Where iPXE clients fetch their boot script. Giving iPXE a script instead
    /// of iPXE again is what breaks the chainload loop.
    pub ipxe_script_url: String,
    /// Base URL for UEFI HTTP boot clients: they get `<base>/<file for arch>`.
    pub http_base_url: String,
    /// BIOS firmware of these machines gets PXELINUX instead of `bios`.
    pub pxelinux: Option<PxelinuxBoot>,
    /// UEFI firmware of these machines gets shim (then signed GRUB) instead of `efi_*`.
    pub grub: Option<GrubBoot>,
}

/// The Secure Boot chain for UEFI firmware: shim as the boot program; shim then fetches
/// GRUB, GRUB its config and the kernel (`boot::grub`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrubBoot {
    pub efi_x64: String,
    pub efi_arm64: Option<String>,
    pub machines: MachineSet,
}

/// Which machines a site-wide or per-machine choice covers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub enum MachineSet {
    All {
        except: std::collections::BTreeSet<super::MacAddr>,
    },
    Only(std::collections::BTreeSet<super::MacAddr>),
}

impl MachineSet {
    pub fn contains(&self, mac: &super::MacAddr) -> bool {
        match self {
            MachineSet::All { except } => !except.contains(mac),
            MachineSet::Only(macs) => macs.contains(mac),
        }
    }
}

impl GrubBoot {
    /// The boot table with shim in place of the EFI programs, for a machine this applies
    /// to; `None` otherwise. Platforms without a shim keep their usual program.
    pub fn files_for(&self, mac: &super::MacAddr, files: &BootFiles) -> Option<BootFiles> {
        self.machines.contains(mac).then(|| BootFiles {
            efi_x64: self.efi_x64.clone(),
            efi_arm64: self.efi_arm64.clone().or_else(|| files.efi_arm64.clone()),
            grub: None,
            ..files.clone()
        })
    }
}

/// PXELINUX for BIOS firmware, with the options the ArchWiki describes: 210 (path prefix,
/// here an HTTP URL so everything after lpxelinux.0 comes over HTTP) and 209 (config file,
/// here the client's own `pxelinux.cfg/01-<mac>`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PxelinuxBoot {
    pub file: String,
    pub path_prefix: String,
    /// Every BIOS machine (`bios_loader = "pxelinux"`), or only these.
    pub all: bool,
    pub macs: std::collections::BTreeSet<super::MacAddr>,
}

impl PxelinuxBoot {
    pub fn applies_to(&self, mac: &super::MacAddr) -> bool {
        self.all || self.macs.contains(mac)
    }
}

impl Default for BootFiles {
    fn default() -> Self {
        Self {
            bios: "undionly.kpxe".into(),
            efi_x64: "ipxe.efi".into(),
            efi_ia32: None,
            efi_arm64: None,
            ipxe_script_url: "http://{server_ip}/boot.ipxe".into(),
            http_base_url: "http://{server_ip}".into(),
            pxelinux: None,
            grub: None,
        }
    }
}

/// What a client should boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootAnswer {
    /// A boot program fetched over TFTP from us (`siaddr`/option 66).
    TftpFile(String),
    /// A full `http://` URL (iPXE scripts, UEFI HTTP boot).
    HttpUrl(String),
    /// PXELINUX over TFTP, with options 209 (config) and 210 (path prefix).
    Pxelinux {
        file: String,
        config: String,
        path_prefix: String,
    },
    /// Nothing to offer; the reason goes into the log.
    None(String),
}

/// The table. `arch` is `None` when the client sent no usable option 93/60.
pub fn select_boot(
    arch: Option<ClientArch>,
    is_ipxe: bool,
    http_client: bool,
    files: &BootFiles,
) -> BootAnswer {
    if is_ipxe {
        // iPXE on any platform: hand it the script, never iPXE again.
        return if files.ipxe_script_url.is_empty() {
            BootAnswer::None("no iPXE script URL configured".into())
        } else {
            BootAnswer::HttpUrl(files.ipxe_script_url.clone())
        };
    }
    let Some(arch) = arch else {
        return BootAnswer::None("client sent no architecture (option 93)".into());
    };
    let file = match arch.platform() {
        Platform::Bios if http_client => None,
        Platform::Bios => Some(&files.bios),
        Platform::EfiX64 => Some(&files.efi_x64),
        Platform::EfiIa32 => files.efi_ia32.as_ref(),
        Platform::EfiArm64 => files.efi_arm64.as_ref(),
        Platform::EfiArm32 | Platform::Unknown(_) => None,
    };
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        let how = if http_client { " (HTTP boot)" } else { "" };
        return BootAnswer::None(format!("no boot program for arch {}{how}", arch.name()));
    };
    if http_client {
        BootAnswer::HttpUrl(http_url(&files.http_base_url, file))
    } else {
        BootAnswer::TftpFile(file.clone())
    }
}

/// `<base>/<file>`, or `file` itself when it already is a URL.
fn http_url(base: &str, file: &str) -> String {
    if file.starts_with("http://") || file.starts_with("https://") {
        file.to_string()
    } else {
        format!(
            "{}/{}",
            base.trim_end_matches('/'),
            file.trim_start_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> BootFiles {
        BootFiles {
            ipxe_script_url: "http://10.0.0.1:8080/boot.ipxe".into(),
            http_base_url: "http://10.0.0.1:8080/".into(),
            ..BootFiles::default()
        }
    }

    #[test]
    fn grub_replaces_the_efi_programs_of_its_machines_only() {
        use BootAnswer::*;
        use ClientArch::*;
        let mac: crate::dhcp::MacAddr = "52:54:00:00:00:01".parse().unwrap();
        let other: crate::dhcp::MacAddr = "52:54:00:00:00:02".parse().unwrap();
        let grub = GrubBoot {
            efi_x64: "shimx64.efi".into(),
            efi_arm64: Some("shimaa64.efi".into()),
            machines: MachineSet::Only([mac].into()),
        };
        assert_eq!(grub.files_for(&other, &files()), Option::None);
        let f = grub.files_for(&mac, &files()).unwrap();
        assert_eq!(
            select_boot(Some(EfiX64), false, false, &f),
            TftpFile("shimx64.efi".into())
        );
        assert_eq!(
            select_boot(Some(EfiArm64), false, false, &f),
            TftpFile("shimaa64.efi".into())
        );
        assert_eq!(
            select_boot(Some(BiosX86), false, false, &f),
            TftpFile("undionly.kpxe".into())
        );
        assert_eq!(
            select_boot(Some(HttpX64), false, true, &f),
            HttpUrl("http://10.0.0.1:8080/shimx64.efi".into())
        );
        let all = GrubBoot {
            efi_arm64: Option::None,
            machines: MachineSet::All {
                except: [other].into(),
            },
            ..grub
        };
        assert!(all.files_for(&other, &files()).is_none());
        let f = all.files_for(&mac, &files()).unwrap();
        assert_eq!(
            select_boot(Some(EfiArm64), false, false, &f),
            None("no boot program for arch EFI arm64".into())
        );
    }

    #[test]
    fn codes_round_trip() {
        for n in 0..=64u16 {
            assert_eq!(ClientArch::from_code(n).code(), n);
        }
        assert_eq!(ClientArch::from_code(11), ClientArch::EfiArm64);
        assert_eq!(ClientArch::from_code(42), ClientArch::Other(42));
    }

    #[test]
    fn table() {
        use BootAnswer::*;
        use ClientArch::*;
        let f = files();
        let script = HttpUrl("http://10.0.0.1:8080/boot.ipxe".into());
        // iPXE always gets the script, whatever the arch.
        for a in [BiosX86, EfiX64, EfiArm64, Other(99)] {
            assert_eq!(select_boot(Some(a), true, false, &f), script);
        }
        assert_eq!(select_boot(Option::None, true, false, &f), script);
        // Firmware PXE.
        assert_eq!(
            select_boot(Some(BiosX86), false, false, &f),
            TftpFile("undionly.kpxe".into())
        );
        assert_eq!(
            select_boot(Some(EfiX64), false, false, &f),
            TftpFile("ipxe.efi".into())
        );
        assert_eq!(
            select_boot(Some(EfiBc), false, false, &f),
            TftpFile("ipxe.efi".into())
        );
        let snp = BootFiles {
            efi_x64: "snponly.efi".into(),
            ..files()
        };
        assert_eq!(
            select_boot(Some(EfiX64), false, false, &snp),
            TftpFile("snponly.efi".into())
        );
        assert_eq!(
            select_boot(Some(EfiArm64), false, false, &f),
            None("no boot program for arch EFI arm64".into())
        );
        let arm = BootFiles {
            efi_arm64: Some("arm64/ipxe.efi".into()),
            ..files()
        };
        assert_eq!(
            select_boot(Some(EfiArm64), false, false, &arm),
            TftpFile("arm64/ipxe.efi".into())
        );
        assert_eq!(
            select_boot(Some(EfiIa32), false, false, &f),
            None("no boot program for arch EFI IA32".into())
        );
        assert_eq!(
            select_boot(Some(Other(42)), false, false, &f),
            None("no boot program for arch 42 (unknown)".into())
        );
        assert_eq!(
            select_boot(Option::None, false, false, &f),
            None("client sent no architecture (option 93)".into())
        );
        // UEFI HTTP boot.
        assert_eq!(
            select_boot(Some(HttpX64), false, true, &f),
            HttpUrl("http://10.0.0.1:8080/ipxe.efi".into())
        );
        assert_eq!(
            select_boot(Some(HttpArm64), false, true, &arm),
            HttpUrl("http://10.0.0.1:8080/arm64/ipxe.efi".into())
        );
        assert_eq!(
            select_boot(Some(HttpArm64), false, true, &f),
            None("no boot program for arch HTTP arm64 (HTTP boot)".into())
        );
        let abs = BootFiles {
            efi_x64: "http://cdn/x.efi".into(),
            ..files()
        };
        assert_eq!(
            select_boot(Some(HttpX64), false, true, &abs),
            HttpUrl("http://cdn/x.efi".into())
        );
    }
}
