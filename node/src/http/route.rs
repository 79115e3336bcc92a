//! What a request path and query ask for, before the store is asked anything. Pure, so the
//! route table is tested and fuzzed without a store (see `tests/fuzz`).

use std::net::Ipv4Addr;

use netboot_proto::{policy::Arch, ImageName};

use crate::{
    boot::grub::{self, GrubRequest},
    dhcp::MacAddr,
};

/// One route of the table in [`super::handler`]. Names, versions and hashes are parsed here;
/// file paths inside a release stay text because each route has its own rule for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/`: the status page (HTML).
    StatusPage,
    /// `/status.json`: the same snapshot as JSON.
    StatusJson,
    /// `/clients.json`: the machines the node saw and how far each got.
    ClientsJson,
    /// `/boot/done?mac=M` (POST): a booted one-shot image says it is done.
    BootDone,
    /// `/fleet/clients.json`: every site's machines (this node's and its peers').
    FleetClients,
    /// `/fleet/status.json`: the fleet's own view (peers, fetches).
    FleetStatus,
    /// `/metrics`: Prometheus metrics.
    Metrics,
    /// `/boot.ipxe`: identify the client, then its image or a menu.
    BootScript,
    /// `/boot/<name>.ipxe`
    BootImage(ImageName),
    /// `/pxelinux/pxelinux.cfg/<name>`
    PxelinuxConfig(&'a str),
    /// `/pxelinux/<file>`
    PxelinuxFile(&'a str),
    /// A GRUB config path (`grub/grub.cfg`, `grub/grub.cfg-01-<mac>`, probes; see
    /// [`grub::classify`]).
    Grub(GrubRequest),
    /// `/r/<name>/<version>/<path>`
    Release {
        name: ImageName,
        version: u64,
        file: &'a str,
    },
    /// `/images/<name>/<path>`
    Image { name: ImageName, file: &'a str },
    /// `/blobs/<blake3 hex>`
    Blob(blake3::Hash),
    /// `/first-stage/<path>`
    FirstStage(&'a str),
    /// Nothing here; the text says why, for the log and the 404 body.
    NotFound(String),
}

impl<'a> Route<'a> {
    /// Routes a request path (without its query).
    pub fn parse(path: &'a str) -> Self {
        let not_found = |why: &str| Route::NotFound(format!("{why} {path}"));
        match path {
            "/" => return Route::StatusPage,
            "/status.json" => return Route::StatusJson,
            "/clients.json" => return Route::ClientsJson,
            "/fleet/status.json" => return Route::FleetStatus,
            "/fleet/clients.json" => return Route::FleetClients,
            "/metrics" => return Route::Metrics,
            "/boot.ipxe" => return Route::BootScript,
            "/boot/done" => return Route::BootDone,
            _ => {}
        }
        if let Some(rest) = path.strip_prefix("/boot/") {
            return match rest
                .strip_suffix(".ipxe")
                .and_then(|n| n.parse::<ImageName>().ok())
            {
                Some(name) => Route::BootImage(name),
                None => not_found("no such script"),
            };
        }
        if let Some(rest) = path.strip_prefix("/pxelinux/") {
            return match rest.strip_prefix("pxelinux.cfg/") {
                Some(name) => Route::PxelinuxConfig(name),
                None => Route::PxelinuxFile(rest),
            };
        }
        let trimmed = path.trim_start_matches('/');
        if let Some(request) = grub::classify(trimmed) {
            return Route::Grub(request);
        }
        if let Some(file) = trimmed.strip_prefix("first-stage/") {
            return Route::FirstStage(file);
        }
        let segments: Vec<&str> = trimmed.splitn(3, '/').collect();
        match segments.as_slice() {
            ["r", name, rest] => {
                let Some((version, file)) = rest.split_once('/') else {
                    return not_found("no such path");
                };
                match (name.parse::<ImageName>(), version.parse::<u64>()) {
                    (Ok(name), Ok(version)) => Route::Release {
                        name,
                        version,
                        file,
                    },
                    _ => not_found("no such release in"),
                }
            }
            ["images", name, file] => match name.parse::<ImageName>() {
                Ok(name) => Route::Image { name, file },
                Err(_) => not_found("bad image name in"),
            },
            ["blobs", hex] => match blake3::Hash::from_hex(hex) {
                Ok(hash) => Route::Blob(hash),
                Err(_) => not_found("bad hash in"),
            },
            _ => not_found("no such path"),
        }
    }
}

/// What `/boot.ipxe?mac=…&ip=…&arch=…` tells about the client (iPXE fills these in from
/// `${mac}`, `${ip}` and `${buildarch}` when it chains back).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootQuery {
    pub mac: Option<MacAddr>,
    /// A `mac` parameter was sent but did not parse: answering the identify script again
    /// would loop the client forever.
    pub mac_unreadable: bool,
    pub ip: Option<Ipv4Addr>,
    /// No `arch`, or `i386`: a BIOS client, which PXELINUX can serve.
    pub bios: bool,
    /// The architecture a boot policy names, from iPXE's `${platform}` and `${buildarch}`;
    /// `None` when the client did not say.
    pub policy_arch: Option<Arch>,
}

/// iPXE's `${platform}` (`pcbios`, `efi`) and `${buildarch}` (`i386`, `x86_64`, `arm32`,
/// `arm64`) as a policy architecture. ARM has no BIOS, so its build names the platform alone.
fn policy_arch(platform: Option<&str>, buildarch: Option<&str>) -> Option<Arch> {
    match (platform, buildarch) {
        (Some("pcbios"), _) => Some(Arch::Bios),
        (Some("efi"), Some("i386")) => Some(Arch::EfiIa32),
        (Some("efi"), Some("x86_64")) => Some(Arch::EfiX64),
        (_, Some("arm32")) => Some(Arch::EfiArm32),
        (_, Some("arm64")) => Some(Arch::EfiArm64),
        _ => None,
    }
}

impl BootQuery {
    pub fn parse(query: &str) -> Self {
        let mac_text = query_param(query, "mac");
        let mac = mac_text.as_deref().and_then(|m| m.parse().ok());
        Self {
            mac,
            mac_unreadable: mac.is_none() && mac_text.is_some(),
            ip: query_param(query, "ip").and_then(|i| i.parse().ok()),
            bios: matches!(query_param(query, "arch").as_deref(), None | Some("i386")),
            policy_arch: policy_arch(
                query_param(query, "platform").as_deref(),
                query_param(query, "arch").as_deref(),
            ),
        }
    }
}

/// A decoded query parameter (iPXE percent-encodes the `:` of `${mac}`).
fn query_param(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ImageName {
        s.parse().unwrap()
    }

    #[test]
    fn routes() {
        assert_eq!(Route::parse("/"), Route::StatusPage);
        assert_eq!(Route::parse("/status.json"), Route::StatusJson);
        assert_eq!(Route::parse("/clients.json"), Route::ClientsJson);
        assert_eq!(Route::parse("/fleet/status.json"), Route::FleetStatus);
        assert_eq!(Route::parse("/fleet/clients.json"), Route::FleetClients);
        assert_eq!(Route::parse("/boot/done"), Route::BootDone);
        assert_eq!(Route::parse("/metrics"), Route::Metrics);
        assert_eq!(Route::parse("/boot.ipxe"), Route::BootScript);
        assert_eq!(
            Route::parse("/boot/debian.ipxe"),
            Route::BootImage(name("debian"))
        );
        assert_eq!(
            Route::parse("/pxelinux/pxelinux.cfg/01-52-54-00-12-34-56"),
            Route::PxelinuxConfig("01-52-54-00-12-34-56")
        );
        assert_eq!(
            Route::parse("/pxelinux/ldlinux.c32"),
            Route::PxelinuxFile("ldlinux.c32")
        );
        assert_eq!(
            Route::parse("/r/debian/7/boot/vmlinuz"),
            Route::Release {
                name: name("debian"),
                version: 7,
                file: "boot/vmlinuz"
            }
        );
        assert_eq!(
            Route::parse("/images/debian/boot/initrd.img"),
            Route::Image {
                name: name("debian"),
                file: "boot/initrd.img"
            }
        );
        let hash = blake3::hash(b"x");
        assert_eq!(
            Route::parse(&format!("/blobs/{}", hash.to_hex())),
            Route::Blob(hash)
        );
        assert_eq!(
            Route::parse("/grub/grub.cfg"),
            Route::Grub(GrubRequest::Bootstrap)
        );
        assert_eq!(
            Route::parse("/first-stage/ipxe.efi"),
            Route::FirstStage("ipxe.efi")
        );
        assert_eq!(
            Route::parse("/first-stage/efi/boot/ipxe.efi"),
            Route::FirstStage("efi/boot/ipxe.efi")
        );
        // An empty file part is routed; the release's path rule refuses it later.
        assert_eq!(
            Route::parse("/images/debian/"),
            Route::Image {
                name: name("debian"),
                file: ""
            }
        );
    }

    #[test]
    fn refusals_name_the_path() {
        for (path, why) in [
            ("/boot/../x.ipxe", "no such script /boot/../x.ipxe"),
            ("/boot/debian", "no such script /boot/debian"),
            (
                "/r/debian/v7/vmlinuz",
                "no such release in /r/debian/v7/vmlinuz",
            ),
            ("/r/debian/7", "no such path /r/debian/7"),
            ("/images/Bad Name/x", "bad image name in /images/Bad Name/x"),
            ("/images/debian", "no such path /images/debian"),
            ("/blobs/abc", "bad hash in /blobs/abc"),
            ("/first-stage", "no such path /first-stage"),
            ("/etc/passwd", "no such path /etc/passwd"),
            ("", "no such path "),
            ("//", "no such path //"),
            ("/status.json/x", "no such path /status.json/x"),
            ("/clients.json/x", "no such path /clients.json/x"),
        ] {
            assert_eq!(Route::parse(path), Route::NotFound(why.into()), "{path}");
        }
    }

    #[test]
    fn boot_query() {
        let q = BootQuery::parse("mac=52%3A54%3A00%3A12%3A34%3A56&ip=10.1.0.100&arch=x86_64");
        assert_eq!(q.mac, Some("52:54:00:12:34:56".parse().unwrap()));
        assert_eq!(q.ip, Some(Ipv4Addr::new(10, 1, 0, 100)));
        assert!(!q.bios && !q.mac_unreadable);
        assert_eq!(
            q.policy_arch, None,
            "no platform: x86_64 may be BIOS or UEFI"
        );
        // (platform, buildarch, policy architecture)
        for (platform, arch, want) in [
            ("pcbios", "i386", Some(Arch::Bios)),
            ("pcbios", "x86_64", Some(Arch::Bios)),
            ("efi", "x86_64", Some(Arch::EfiX64)),
            ("efi", "i386", Some(Arch::EfiIa32)),
            ("efi", "arm64", Some(Arch::EfiArm64)),
            ("efi", "arm32", Some(Arch::EfiArm32)),
            ("efi", "riscv64", None),
        ] {
            let q = BootQuery::parse(&format!("platform={platform}&arch={arch}"));
            assert_eq!(q.policy_arch, want, "{platform} {arch}");
        }
        let q = BootQuery::parse("mac=&arch=i386");
        assert!(q.mac.is_none() && q.mac_unreadable && q.bios);
        assert_eq!(
            BootQuery::parse(""),
            BootQuery {
                bios: true,
                ..BootQuery::default()
            }
        );
    }
}
