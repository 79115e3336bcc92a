//! The first-stage programs `netboot quick` publishes: what Debian's packages install, and
//! which of them BIOS and UEFI x86-64 firmware get.

use std::path::{Path, PathBuf};

/// A program a Debian package installs: its name in the first-stage release, where the
/// package puts it, and the package.
struct Candidate {
    name: &'static str,
    path: &'static str,
    package: &'static str,
}

const CANDIDATES: &[Candidate] = &[
    Candidate {
        name: "undionly.kpxe",
        path: "/usr/lib/ipxe/undionly.kpxe",
        package: "ipxe",
    },
    Candidate {
        name: "snponly.efi",
        path: "/usr/lib/ipxe/snponly.efi",
        package: "ipxe",
    },
    Candidate {
        name: "ipxe.efi",
        path: "/usr/lib/ipxe/ipxe.efi",
        package: "ipxe",
    },
    Candidate {
        name: "lpxelinux.0",
        path: "/usr/lib/PXELINUX/lpxelinux.0",
        package: "pxelinux",
    },
    Candidate {
        name: "ldlinux.c32",
        path: "/usr/lib/syslinux/modules/bios/ldlinux.c32",
        package: "syslinux-common",
    },
];

/// What was found and what each firmware boots first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programs {
    /// `(name in the release, file)`, to publish as the first-stage release.
    pub files: Vec<(String, PathBuf)>,
    /// For BIOS PXE firmware, when found.
    pub bios: Option<String>,
    /// For UEFI x86-64 firmware, when found: `snponly.efi` (iPXE on the firmware's own
    /// network driver, which works on every NIC the firmware drives) before `ipxe.efi`.
    pub efi_x64: Option<String>,
    /// Firmware that will get nothing, with the package to install, for a warning.
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no iPXE program found (looked for /usr/lib/ipxe/undionly.kpxe, snponly.efi and ipxe.efi): install Debian's `ipxe` package (apt-get install ipxe)")]
pub struct NoPrograms;

/// Chooses from the candidates `exists` says are present.
pub fn find(exists: impl Fn(&Path) -> bool) -> Result<Programs, NoPrograms> {
    let files: Vec<(String, PathBuf)> = CANDIDATES
        .iter()
        .filter(|c| exists(Path::new(c.path)))
        .map(|c| (c.name.to_string(), PathBuf::from(c.path)))
        .collect();
    let have = |name: &str| files.iter().any(|(n, _)| n == name);
    let bios = have("undionly.kpxe").then(|| "undionly.kpxe".to_string());
    let efi_x64 = ["snponly.efi", "ipxe.efi"]
        .into_iter()
        .find(|n| have(n))
        .map(str::to_string);
    if bios.is_none() && efi_x64.is_none() {
        return Err(NoPrograms);
    }
    let package = |name: &str| {
        CANDIDATES
            .iter()
            .find(|c| c.name == name)
            .map_or("ipxe", |c| c.package)
    };
    let mut missing = Vec::new();
    if bios.is_none() {
        missing.push(format!(
            "BIOS clients: /usr/lib/ipxe/undionly.kpxe is missing (package `{}`)",
            package("undionly.kpxe")
        ));
    }
    if efi_x64.is_none() {
        missing.push(format!(
            "UEFI clients: /usr/lib/ipxe/snponly.efi and ipxe.efi are missing (package `{}`)",
            package("snponly.efi")
        ));
    }
    Ok(Programs {
        files,
        bios,
        efi_x64,
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(present: &[&str]) -> Result<Programs, NoPrograms> {
        let present: Vec<PathBuf> = present.iter().map(PathBuf::from).collect();
        find(|p| present.iter().any(|q| q == p))
    }

    #[test]
    fn debian_ipxe_and_pxelinux() {
        let p = with(&[
            "/usr/lib/ipxe/undionly.kpxe",
            "/usr/lib/ipxe/ipxe.efi",
            "/usr/lib/ipxe/snponly.efi",
            "/usr/lib/PXELINUX/lpxelinux.0",
            "/usr/lib/syslinux/modules/bios/ldlinux.c32",
        ])
        .unwrap();
        assert_eq!(p.bios.as_deref(), Some("undionly.kpxe"));
        assert_eq!(p.efi_x64.as_deref(), Some("snponly.efi"));
        let names: Vec<&str> = p.files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "undionly.kpxe",
                "snponly.efi",
                "ipxe.efi",
                "lpxelinux.0",
                "ldlinux.c32"
            ]
        );
        assert!(p.missing.is_empty());
    }

    #[test]
    fn partial_ipxe_warns_about_the_firmware_left_out() {
        let p = with(&["/usr/lib/ipxe/ipxe.efi"]).unwrap();
        assert_eq!(p.bios, None);
        assert_eq!(p.efi_x64.as_deref(), Some("ipxe.efi"));
        assert_eq!(p.missing.len(), 1);
        assert!(p.missing[0].contains("BIOS") && p.missing[0].contains("`ipxe`"));
        let p = with(&["/usr/lib/ipxe/undionly.kpxe"]).unwrap();
        assert_eq!(p.efi_x64, None);
        assert!(p.missing[0].contains("UEFI"));
    }

    #[test]
    fn without_ipxe_it_names_the_package() {
        let e = with(&["/usr/lib/PXELINUX/lpxelinux.0"]).unwrap_err();
        assert!(e.to_string().contains("apt-get install ipxe"), "{e}");
        assert_eq!(with(&[]), Err(NoPrograms));
    }
}
