//! What a boot policy is told about a client, from what DHCP saw. The policy's architecture
//! names are the boot table's platforms: PXE and UEFI HTTP boot of one platform are one
//! architecture to a policy, which chooses an image, not a transport.

use netboot_proto::policy::{Arch, Mac};

use crate::dhcp::{arch::Platform, MacAddr};

/// `None` for a platform no rule can name (an architecture number we have no program for).
pub fn policy_arch(platform: Platform) -> Option<Arch> {
    match platform {
        Platform::Bios => Some(Arch::Bios),
        Platform::EfiIa32 => Some(Arch::EfiIa32),
        Platform::EfiX64 => Some(Arch::EfiX64),
        Platform::EfiArm32 => Some(Arch::EfiArm32),
        Platform::EfiArm64 => Some(Arch::EfiArm64),
        Platform::Unknown(_) => None,
    }
}

pub fn policy_mac(mac: MacAddr) -> Mac {
    Mac(mac.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::arch::ClientArch;

    #[test]
    fn dhcp_architectures_map_to_policy_names() {
        // (option 93 code, policy name or None)
        let table = [
            (0, Some("bios")),
            (6, Some("efi_ia32")),
            (7, Some("efi_x64")),
            (9, Some("efi_x64")),
            (16, Some("efi_x64")),
            (10, Some("efi_arm32")),
            (11, Some("efi_arm64")),
            (19, Some("efi_arm64")),
            (15, Some("efi_ia32")),
            (2, None),
        ];
        for (code, want) in table {
            let got = policy_arch(ClientArch::from_code(code).platform()).map(Arch::name);
            assert_eq!(got, want, "arch code {code}");
        }
        let mac: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        assert_eq!(policy_mac(mac).to_string(), "52:54:00:12:34:56");
    }
}
