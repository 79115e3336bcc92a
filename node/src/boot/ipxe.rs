//! iPXE scripts: generated text, pure functions of the release and the client.
//!
//! Flow: DHCP gives iPXE `<base>/boot.ipxe`; that answers a two-line script that chains back
//! with the client's MAC and IP as query parameters (HTTP itself carries no MAC), and the
//! second request gets the real script: the machine's image, or a menu.

use std::net::Ipv4Addr;

use netboot_proto::{BootEntry, CmdlineVars, Release};

use crate::dhcp::MacAddr;

/// URL prefix of one exact release's files: clients never mix files of two versions.
pub fn release_url(base_url: &str, release: &Release) -> String {
    format!("{base_url}/r/{}/{}", release.name, release.version)
}

/// The first script: learn who is asking (MAC, address, and the CPU and firmware kind a
/// policy's `archs` name).
pub fn identify_script(base_url: &str) -> String {
    format!("#!ipxe\nchain --autofree {base_url}/boot.ipxe?mac=${{mac}}&ip=${{ip}}&arch=${{buildarch}}&platform=${{platform}}\n")
}

pub fn bootif(mac: &MacAddr) -> String {
    let hex: Vec<String> = mac.0.iter().map(|b| format!("{b:02x}")).collect();
    format!("01-{}", hex.join("-"))
}

pub fn cmdline_vars(
    base_url: &str,
    release: &Release,
    mac: Option<&MacAddr>,
    ip: Option<Ipv4Addr>,
) -> CmdlineVars {
    CmdlineVars {
        base_url: base_url.to_string(),
        image_url: release_url(base_url, release),
        name: release.name.to_string(),
        version: release.version.to_string(),
        mac: mac.map(ToString::to_string).unwrap_or_default(),
        bootif: mac.map(bootif).unwrap_or_default(),
        ip: ip.map(|i| i.to_string()).unwrap_or_default(),
    }
}

/// Boots one release. On failure it says why on the console and falls back to local boot
/// after a pause, rather than looping on the network.
pub fn boot_script(
    base_url: &str,
    release: &Release,
    mac: Option<&MacAddr>,
    ip: Option<Ipv4Addr>,
) -> String {
    let url = release_url(base_url, release);
    let mut s = format!(
        "#!ipxe\necho netboot: booting {} v{} from {url}\n",
        release.name, release.version
    );
    match &release.boot {
        Some(BootEntry::Linux {
            kernel,
            initrds,
            cmdline,
        }) => {
            let vars = cmdline_vars(base_url, release, mac, ip);
            // `initrd=<name>` lets the kernel's EFI stub find the initrds iPXE loaded; BIOS
            // kernels ignore it.
            let mut line = String::new();
            for initrd in initrds {
                line.push_str(&format!(" initrd={}", initrd.file_name()));
            }
            let rendered = cmdline.render(&vars);
            if !rendered.is_empty() {
                line.push(' ');
                line.push_str(&rendered);
            }
            s.push_str(&format!("kernel {url}/{kernel}{line} || goto failed\n"));
            for initrd in initrds {
                s.push_str(&format!(
                    "initrd --name {} {url}/{initrd} || goto failed\n",
                    initrd.file_name()
                ));
            }
            s.push_str("boot || goto failed\n");
        }
        Some(BootEntry::Iso { iso }) => {
            s.push_str(&format!(
                "sanboot --no-describe {url}/{iso} || goto failed\n"
            ));
        }
        None => {
            s.push_str(&format!(
                "echo netboot: {} has no boot entry (it only holds files)\ngoto failed\n",
                release.name
            ));
        }
    }
    s.push_str(&format!(
        ":failed\necho netboot: booting {} failed; trying the local disk in 10 seconds\nsleep 10\nexit 1\n",
        release.name
    ));
    s
}

/// A menu of all bootable releases, with a local-disk entry (the default on timeout: a
/// machine nobody attends must not reinstall itself).
pub fn menu_script(
    base_url: &str,
    releases: &[&Release],
    timeout_secs: u32,
    mac: Option<&MacAddr>,
    ip: Option<Ipv4Addr>,
) -> String {
    let query = client_query(mac, ip);
    let mut s = String::from("#!ipxe\nmenu netboot: choose an image\nitem --gap Images\n");
    for (i, r) in releases.iter().enumerate() {
        s.push_str(&format!("item img{i} {} (v{})\n", r.name, r.version));
    }
    s.push_str("item --gap\nitem local Boot from local disk\n");
    s.push_str(&format!(
        "choose --timeout {} --default local target || goto local\ngoto ${{target}}\n",
        timeout_secs as u64 * 1000
    ));
    for (i, r) in releases.iter().enumerate() {
        s.push_str(&format!(
            ":img{i}\nchain --autofree {base_url}/boot/{}.ipxe{query} || goto local\n",
            r.name
        ));
    }
    s.push_str(":local\necho netboot: booting from local disk\nexit 1\n");
    s
}

/// Local disk, as a policy chose it: iPXE's `exit` hands back to the firmware, which boots
/// the next entry of its boot order (the menu's "local" entry does the same).
pub fn local_script(why: &str) -> String {
    format!("#!ipxe\necho netboot: {why}: booting from local disk\nexit 1\n")
}

/// When there is nothing to boot: say so on the console, then leave to the local disk.
pub fn nothing_script(why: &str) -> String {
    format!("#!ipxe\necho netboot: nothing to boot: {why}\necho netboot: trying the local disk in 10 seconds\nsleep 10\nexit 1\n")
}

fn client_query(mac: Option<&MacAddr>, ip: Option<Ipv4Addr>) -> String {
    let mut parts = Vec::new();
    if let Some(m) = mac {
        parts.push(format!("mac={m}"));
    }
    if let Some(i) = ip {
        parts.push(format!("ip={i}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use netboot_proto::{CmdlineTemplate, FileEntry, ReleaseSpec, SecretKey};

    use super::*;

    fn release(boot: Option<BootEntry>) -> Release {
        let f = |p: &str| FileEntry {
            path: p.parse().unwrap(),
            size: 1,
            hash: blake3::hash(p.as_bytes()),
        };
        Release::new(ReleaseSpec {
            name: "debian".parse().unwrap(),
            version: 4,
            created: 1,
            expires: None,
            publisher: SecretKey::from_seed([1; 32]).public(),
            files: vec![f("vmlinuz"), f("boot/initrd.img"), f("d.iso")],
            boot,
        })
        .unwrap()
    }

    #[test]
    fn linux_script_pins_the_release_and_fills_the_template() {
        let r = release(Some(BootEntry::Linux {
            kernel: "vmlinuz".parse().unwrap(),
            initrds: vec!["boot/initrd.img".parse().unwrap()],
            cmdline: CmdlineTemplate::parse(
                "console=ttyS0 fetch={{image_url}}/x BOOTIF={{bootif}} ip={{ip}}",
            )
            .unwrap(),
        }));
        let mac: MacAddr = "52:54:00:ab:cd:ef".parse().unwrap();
        let s = boot_script(
            "http://10.0.0.1:8080",
            &r,
            Some(&mac),
            Some(Ipv4Addr::new(10, 0, 0, 9)),
        );
        assert!(s.starts_with("#!ipxe\n"));
        assert!(s.contains(
            "kernel http://10.0.0.1:8080/r/debian/4/vmlinuz initrd=initrd.img console=ttyS0 fetch=http://10.0.0.1:8080/r/debian/4/x BOOTIF=01-52-54-00-ab-cd-ef ip=10.0.0.9 || goto failed\n"
        ), "{s}");
        assert!(s.contains("initrd --name initrd.img http://10.0.0.1:8080/r/debian/4/boot/initrd.img || goto failed\n"), "{s}");
        assert!(s.contains("boot || goto failed\n:failed\n"));
    }

    #[test]
    fn iso_and_files_only() {
        let s = boot_script(
            "http://n",
            &release(Some(BootEntry::Iso {
                iso: "d.iso".parse().unwrap(),
            })),
            None,
            None,
        );
        assert!(
            s.contains("sanboot --no-describe http://n/r/debian/4/d.iso || goto failed"),
            "{s}"
        );
        let s = boot_script("http://n", &release(None), None, None);
        assert!(
            s.contains("has no boot entry") && s.contains("exit 1"),
            "{s}"
        );
    }

    #[test]
    fn menu_lists_images_and_defaults_to_local_disk() {
        let r = release(None);
        let mac: MacAddr = "52:54:00:ab:cd:ef".parse().unwrap();
        let s = menu_script("http://n", &[&r], 7, Some(&mac), None);
        assert!(s.contains("item img0 debian (v4)\n"));
        assert!(s.contains("item local Boot from local disk\n"));
        assert!(s.contains("choose --timeout 7000 --default local target"));
        assert!(s.contains(":img0\nchain --autofree http://n/boot/debian.ipxe?mac=52:54:00:ab:cd:ef || goto local\n"), "{s}");
        assert!(s.ends_with(":local\necho netboot: booting from local disk\nexit 1\n"));
    }

    #[test]
    fn identify_chains_back_with_mac_and_ip() {
        assert_eq!(
            identify_script("http://n:8080"),
            "#!ipxe\nchain --autofree http://n:8080/boot.ipxe?mac=${mac}&ip=${ip}&arch=${buildarch}&platform=${platform}\n"
        );
    }
}
