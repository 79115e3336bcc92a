//! GRUB configs for the Secure Boot chain (firmware → shim → signed GRUB → signed kernel):
//! generated text, pure functions of the releases and the client, like the iPXE scripts and
//! PXELINUX configs.
//!
//! Where GRUB looks. Debian's signed network GRUB (`grubnetx64.efi.signed`, and the arm64
//! one) has the built-in prefix `/grub`; the d-i build (`grubnetx64-installer.efi.signed`,
//! shipped as `grubx64.efi` in `debian-installer-12-netboot-amd64`) has
//! `/debian-installer/<arch>/grub`. Both run a built-in memdisk script that sources
//! `$prefix/<platform>/grub.cfg` if it exists, else `$prefix/grub.cfg`, on the TFTP server
//! they were loaded from. Upstream GRUB images without that script probe
//! `grub.cfg-01-<mac>`, then the client IP in hex (shortened digit by digit), then
//! `grub.cfg`. So the node answers, under every known prefix:
//! - `grub.cfg`: a bootstrap that builds GRUB's own per-MAC name from `$net_default_mac`
//!   (the signed builds never probe it themselves) and sources it; only when GRUB cannot
//!   tell its MAC does it boot what a machine without an assignment boots;
//! - `grub.cfg-01-<mac>`: that machine's config (assignment, default image, or menu);
//! - everything else (`<platform>/grub.cfg`, hex IPs, UUIDs): not found, as GRUB expects.
//!
//! Kernel and initrds come from version-pinned `/r/<name>/<version>/` paths on the node, over
//! HTTP when this GRUB has the `http` module (the d-i build has it built in; Debian's
//! `grubnetx64.efi.signed` does not, and Secure Boot forbids loading it from the network),
//! else over TFTP: each config first probes `(http,<node>)/grub/grub.cfg` and picks
//! `(http,<node>)` or `(tftp,<node>)` into `$nb_files` ([`GrubFiles`]).
//! Unlike the iPXE path no `initrd=<name>` is added to the kernel line: GRUB hands the
//! initrds to the kernel itself, and the x86 EFI stub would try to open `initrd=` files on
//! GRUB's boot device (the NIC, which has no file system) and fail the boot.

use std::net::Ipv4Addr;

/// Where generated configs load kernels and initrds from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrubFiles {
    /// `(tftp,<node IP>)`: always works.
    pub tftp: String,
    /// `(http,<host>)`, used when GRUB has its `http` module; `None` when GRUB must not try
    /// (`files_over = "tftp"`, or the node's HTTP is not on port 80: GRUB 2.06's `(http,…)`
    /// device has no port).
    pub http: Option<String>,
}

impl GrubFiles {
    pub fn new(base_url: &str, server_ip: Ipv4Addr, prefer_http: bool) -> Self {
        let authority = base_url
            .strip_prefix("http://")
            .map(|r| r.split('/').next().unwrap_or(r));
        let http = match authority {
            Some(a) if prefer_http && !a.contains(':') => Some(format!("(http,{a})")),
            Some(a) if prefer_http => a.strip_suffix(":80").map(|host| format!("(http,{host})")),
            _ => None,
        };
        Self {
            tftp: format!("(tftp,{server_ip})"),
            http,
        }
    }

    /// Script lines choosing `$nb_files`, exported so that menu entries see it.
    fn preamble(&self) -> String {
        let mut s = format!("set nb_files={}\n", quote(&self.tftp));
        if let Some(http) = &self.http {
            // `insmod` reports success even when the module is missing, so probe a file the
            // node always serves instead: without the module the device does not exist.
            s.push_str(&format!(
                "if [ -e {}/grub/grub.cfg ]; then\n    set nb_files={}\nfi\n",
                quote(http),
                quote(http)
            ));
        }
        s.push_str("export nb_files\n");
        s
    }

    pub fn describe(&self) -> String {
        match &self.http {
            Some(http) => format!("{http} if GRUB has its http module, else {}", self.tftp),
            None => self.tftp.clone(),
        }
    }
}

use netboot_proto::{BootEntry, Release};

use super::{
    ipxe::cmdline_vars,
    resolve::{resolve, Resolved},
    BootPolicy,
};
use crate::{dhcp::MacAddr, store::Store};

/// Directories GRUB builds look for their config in (see the module docs).
pub const PREFIXES: &[&str] = &[
    "grub",
    "boot/grub",
    "debian-installer/amd64/grub",
    "debian-installer/arm64/grub",
];

/// What a request for a GRUB config path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrubRequest {
    /// `<prefix>/grub.cfg`.
    Bootstrap,
    /// `<prefix>/grub.cfg-01-<mac>`.
    Machine(MacAddr),
    /// A name GRUB probes and expects to be missing.
    Probe,
}

/// Classifies a normalised (relative, `/`-separated) path; `None` when it is not a GRUB
/// config path at all.
pub fn classify(path: &str) -> Option<GrubRequest> {
    let (dir, file) = path.rsplit_once('/')?;
    let in_prefix = |d: &str| PREFIXES.contains(&d);
    if !file.starts_with("grub.cfg") {
        return None;
    }
    if let Some((prefix, platform)) = dir.rsplit_once('/') {
        if in_prefix(prefix) && matches!(platform, "x86_64-efi" | "arm64-efi" | "i386-efi") {
            return Some(GrubRequest::Probe);
        }
    }
    if !in_prefix(dir) {
        return None;
    }
    match file.strip_prefix("grub.cfg") {
        Some("") => Some(GrubRequest::Bootstrap),
        Some(rest) => Some(
            rest.strip_prefix('-')
                .and_then(super::pxelinux::mac_from_config_name)
                .map_or(GrubRequest::Probe, GrubRequest::Machine),
        ),
        None => None,
    }
}

/// The config for one request, with a log line, or `None` for a probe.
pub fn generated_config(
    store: &Store,
    policy: &BootPolicy,
    base_url: &str,
    files: &GrubFiles,
    request: GrubRequest,
) -> Option<(String, String)> {
    let choose = |mac: Option<&MacAddr>| -> (String, String) {
        let who = mac.map_or_else(|| "a machine of unknown MAC".into(), ToString::to_string);
        // GRUB's config request does not say its platform: rules naming architectures do not
        // match it (a policy's `archs` criterion needs the client's architecture).
        let (choice, log) = resolve(store, policy, mac, None, &who);
        let text = match choice {
            Resolved::Image(r) => boot_config(base_url, files, &r.verified, mac),
            Resolved::Missing(why) => nothing_config(&why),
            Resolved::Local(why) => local_config(&why),
            Resolved::Menu(releases) => {
                let refs: Vec<&Release> = releases.iter().map(|r| r.verified.release()).collect();
                menu_config(base_url, files, &refs, policy.menu_timeout_secs, mac)
            }
        };
        (text, log)
    };
    match request {
        GrubRequest::Probe => None,
        GrubRequest::Machine(mac) => Some(choose(Some(&mac))),
        GrubRequest::Bootstrap => {
            let (fallback, what) = choose(None);
            Some((
                bootstrap_config(&fallback),
                format!("bootstrap to grub.cfg-01-<mac>; without a MAC {what}"),
            ))
        }
    }
}

/// `grub.cfg`: on to the machine's own `grub.cfg-01-<mac>` (GRUB's own naming), or
/// `fallback` when GRUB cannot tell its MAC address.
pub fn bootstrap_config(fallback: &str) -> String {
    let byte = "([0-9a-fA-F][0-9a-fA-F])";
    let pattern = [byte; 6].join(":");
    let mut s = String::from("# generated by netboot: on to this machine's own config\n");
    s.push_str(&format!(
        "if regexp --set=1:nb1 --set=2:nb2 --set=3:nb3 --set=4:nb4 --set=5:nb5 --set=6:nb6 '^{pattern}$' \"$net_default_mac\"; then\n"
    ));
    s.push_str("    source \"$prefix/grub.cfg-01-$nb1-$nb2-$nb3-$nb4-$nb5-$nb6\"\nelse\n");
    s.push_str(
        "    echo 'netboot: GRUB did not report a MAC address; booting the site-wide choice'\n",
    );
    for line in fallback.lines() {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s.push_str("fi\n");
    s
}

/// One `menuentry` booting `release`, or `None` when GRUB cannot boot it over the network.
fn entry(base_url: &str, release: &Release, mac: Option<&MacAddr>, id: &str) -> Option<String> {
    let Some(BootEntry::Linux {
        kernel,
        initrds,
        cmdline,
    }) = &release.boot
    else {
        // An ISO needs iPXE's sanboot (GRUB has no network block device); files-only
        // releases boot nothing.
        return None;
    };
    // Names and image paths hold only characters GRUB takes literally.
    let root = format!("${{nb_files}}/r/{}/{}", release.name, release.version);
    let vars = cmdline_vars(base_url, release, mac, None::<Ipv4Addr>);
    let args: Vec<String> = cmdline
        .render(&vars)
        .split_whitespace()
        .map(quote)
        .collect();
    let mut linux = format!("linux {root}/{kernel}");
    for a in &args {
        linux.push(' ');
        linux.push_str(a);
    }
    // Double quotes: `${nb_files}` is expanded when the entry runs.
    let mut s = format!(
        "menuentry {} --id {id} {{\n    echo \"netboot: booting {} v{} from {root}\"\n    if {linux}; then\n",
        quote(&format!("{} (v{})", release.name, release.version)),
        release.name,
        release.version,
    );
    if initrds.is_empty() {
        s.push_str("        boot\n");
    } else {
        let list: Vec<String> = initrds.iter().map(|i| format!("{root}/{i}")).collect();
        s.push_str(&format!(
            "        if initrd {}; then\n            boot\n        fi\n",
            list.join(" ")
        ));
    }
    s.push_str(&format!(
        "    fi\n    echo {}\n    sleep 10\n    exit\n}}\n",
        quote(&format!(
            "netboot: booting {} v{} failed; trying the local disk in 10 seconds",
            release.name, release.version
        ))
    ));
    Some(s)
}

/// Boots `release` straight away.
pub fn boot_config(
    base_url: &str,
    files: &GrubFiles,
    release: &Release,
    mac: Option<&MacAddr>,
) -> String {
    match entry(base_url, release, mac, "image") {
        Some(e) => format!(
            "# generated by netboot: boot {} v{}\n{}set default=image\nset timeout=0\n{e}",
            release.name,
            release.version,
            files.preamble()
        ),
        None => nothing_config(&format!(
            "{} has no kernel GRUB can boot (ISOs need the iPXE loader)",
            release.name
        )),
    }
}

/// Every bootable image, and the local disk as the default when nobody chooses.
pub fn menu_config(
    base_url: &str,
    files: &GrubFiles,
    releases: &[&Release],
    timeout_secs: u32,
    mac: Option<&MacAddr>,
) -> String {
    let mut s = format!(
        "# generated by netboot: menu\n{}set default=local\nset timeout={timeout_secs}\n",
        files.preamble()
    );
    for (i, r) in releases.iter().enumerate() {
        if let Some(e) = entry(base_url, r, mac, &format!("img{i}")) {
            s.push_str(&e);
        }
    }
    s.push_str("menuentry 'Boot from local disk' --id local {\n    exit\n}\n");
    s
}

/// Says why on the console, then leaves to the firmware's next boot entry.
/// Local disk, as a policy or the menu chose it: GRUB's `exit` returns to the firmware,
/// which boots the next entry of its boot order.
pub fn local_config(why: &str) -> String {
    format!(
        "# generated by netboot: local disk\necho {}\nexit\n",
        quote(&format!("netboot: {why}: booting from local disk"))
    )
}

pub fn nothing_config(why: &str) -> String {
    format!(
        "# generated by netboot\necho {}\necho 'netboot: trying the local disk in 10 seconds'\nsleep 10\nexit\n",
        quote(&format!("netboot: nothing to boot: {why}"))
    )
}

/// One GRUB script word holding `s` literally. GRUB expands `$` and treats quotes, `;`,
/// `#`, braces and blanks specially; inside single quotes nothing is special, and a single
/// quote itself is written `'\''` as in sh.
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::{
        super::fixtures::{self, release},
        *,
    };

    fn linux(name: &str, cmdline: &str) -> Release {
        release(
            name,
            3,
            &["vmlinuz", "a.img", "boot/b.img", "d.iso"],
            Some(fixtures::linux(&["a.img", "boot/b.img"], cmdline)),
        )
    }

    #[test]
    fn classifies_the_names_grub_asks_for() {
        use GrubRequest::*;
        let mac: MacAddr = "52:54:00:ab:cd:ef".parse().unwrap();
        assert_eq!(classify("grub/grub.cfg"), Some(Bootstrap));
        assert_eq!(
            classify("debian-installer/amd64/grub/grub.cfg"),
            Some(Bootstrap)
        );
        assert_eq!(
            classify("grub/grub.cfg-01-52-54-00-ab-cd-ef"),
            Some(Machine(mac))
        );
        assert_eq!(
            classify("debian-installer/arm64/grub/grub.cfg-01-52-54-00-AB-CD-EF"),
            Some(Machine(mac))
        );
        // What the signed builds' memdisk script and upstream GRUB probe first.
        assert_eq!(classify("grub/x86_64-efi/grub.cfg"), Some(Probe));
        assert_eq!(
            classify("debian-installer/arm64/grub/arm64-efi/grub.cfg"),
            Some(Probe)
        );
        assert_eq!(classify("grub/grub.cfg-0A0A0A64"), Some(Probe));
        assert_eq!(classify("grub/grub.cfg-0A0A0"), Some(Probe));
        // Not GRUB's: left to the other sources.
        assert_eq!(classify("grubx64.efi"), None);
        assert_eq!(classify("grub.cfg"), None);
        assert_eq!(classify("elsewhere/grub/grub.cfg"), None);
        assert_eq!(classify("grub/fonts/unicode.pf2"), None);
        assert_eq!(classify("r/e2e/1/vmlinuz"), None);
    }

    fn files() -> GrubFiles {
        GrubFiles::new("http://10.0.0.1", Ipv4Addr::new(10, 0, 0, 1), true)
    }

    #[test]
    fn boot_config_pins_the_release_and_quotes_the_command_line() {
        let r = linux(
            "deb",
            "console=ttyS0 fetch={{image_url}}/x BOOTIF={{bootif}} x=\"a b\" $y;z",
        );
        let mac: MacAddr = "52:54:00:00:00:01".parse().unwrap();
        let s = boot_config("http://10.0.0.1", &files(), &r, Some(&mac));
        assert!(
            s.starts_with("# generated by netboot: boot deb v3\nset nb_files='(tftp,10.0.0.1)'\nif [ -e '(http,10.0.0.1)'/grub/grub.cfg ]; then\n    set nb_files='(http,10.0.0.1)'\nfi\nexport nb_files\nset default=image\nset timeout=0\nmenuentry 'deb (v3)' --id image {\n    echo \"netboot: booting deb v3 from ${nb_files}/r/deb/3\"\n"),
            "{s}"
        );
        assert!(
            s.contains("    if linux ${nb_files}/r/deb/3/vmlinuz console=ttyS0 fetch=http://10.0.0.1/r/deb/3/x BOOTIF=01-52-54-00-00-00-01 'x=\"a' 'b\"' '$y;z'; then\n"),
            "{s}"
        );
        assert!(
            s.contains("        if initrd ${nb_files}/r/deb/3/a.img ${nb_files}/r/deb/3/boot/b.img; then\n            boot\n        fi\n    fi\n"),
            "{s}"
        );
        assert!(
            !s.contains("initrd=a.img"),
            "GRUB loads initrds itself: {s}"
        );
        assert!(
            s.ends_with("    echo 'netboot: booting deb v3 failed; trying the local disk in 10 seconds'\n    sleep 10\n    exit\n}\n"),
            "{s}"
        );
    }

    #[test]
    fn menu_lists_bootable_images_and_defaults_to_the_local_disk() {
        let (a, b) = (linux("a", ""), linux("b", "quiet"));
        let iso = release(
            "iso",
            1,
            &["d.iso"],
            Some(BootEntry::Iso {
                iso: "d.iso".parse().unwrap(),
            }),
        );
        let tftp_only = GrubFiles::new("http://n:8080", Ipv4Addr::new(10, 0, 0, 2), true);
        let s = menu_config("http://n", &tftp_only, &[&a, &iso, &b], 7, None);
        assert!(
            s.starts_with("# generated by netboot: menu\nset nb_files='(tftp,10.0.0.2)'\nexport nb_files\nset default=local\nset timeout=7\n"),
            "{s}"
        );
        assert!(s.contains("menuentry 'a (v3)' --id img0 {\n"), "{s}");
        assert!(s.contains("menuentry 'b (v3)' --id img2 {\n"), "{s}");
        assert!(!s.contains("iso (v1)"), "{s}");
        assert!(
            s.contains("if linux ${nb_files}/r/b/3/vmlinuz quiet; then"),
            "{s}"
        );
        assert!(
            s.ends_with("menuentry 'Boot from local disk' --id local {\n    exit\n}\n"),
            "{s}"
        );
    }

    #[test]
    fn bootstrap_goes_on_to_grubs_own_per_mac_name() {
        let s = bootstrap_config(&nothing_config("no images"));
        assert!(s.contains("\"$net_default_mac\"; then\n    source \"$prefix/grub.cfg-01-$nb1-$nb2-$nb3-$nb4-$nb5-$nb6\"\nelse\n"), "{s}");
        assert!(
            s.contains("'^([0-9a-fA-F][0-9a-fA-F]):([0-9a-fA-F][0-9a-fA-F]):"),
            "{s}"
        );
        assert!(
            s.contains("    echo 'netboot: nothing to boot: no images'\n")
                && s.ends_with("    exit\nfi\n"),
            "{s}"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("console=ttyS0,115200"), "console=ttyS0,115200");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("${x}"), "'${x}'");
    }

    #[test]
    fn files_come_over_http_on_port_80_else_tftp() {
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        let http = |url: &str, prefer| GrubFiles::new(url, ip, prefer).http;
        assert_eq!(
            http("http://boot.example", true).as_deref(),
            Some("(http,boot.example)")
        );
        assert_eq!(
            http("http://10.0.0.1:80", true).as_deref(),
            Some("(http,10.0.0.1)")
        );
        assert_eq!(http("http://10.0.0.1:8080", true), None);
        assert_eq!(http("http://10.0.0.1", false), None);
        assert_eq!(http("https://n.example/x", true), None);
        assert_eq!(
            GrubFiles::new("https://n", ip, true).tftp,
            "(tftp,10.0.0.1)"
        );
    }
}
