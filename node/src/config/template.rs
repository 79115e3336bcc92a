//! The commented config `netboot init` writes for a host: pure text from the role and the
//! boot interface's address, so every role's file is tested against the checker.

use std::{fmt, net::Ipv4Addr, path::Path, str::FromStr};

use crate::fleet::config::DEFAULT_FLEET_PORT;

/// What the node is for at its site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Where releases are published; other sites fetch from it. Proxy-DHCP beside the
    /// site's DHCP server.
    Origin,
    /// A site fed by the fleet; proxy-DHCP beside the site's DHCP server.
    Branch,
    /// An isolated network with no other DHCP server: the node hands out addresses too.
    Lab,
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "origin" => Ok(Self::Origin),
            "branch" => Ok(Self::Branch),
            "lab" => Ok(Self::Lab),
            _ => Err(format!("`{s}`: expected origin, branch or lab")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Origin => "origin",
            Self::Branch => "branch",
            Self::Lab => "lab",
        })
    }
}

/// The host facts the file is written from.
#[derive(Debug, Clone)]
pub struct Host<'a> {
    pub interface: &'a str,
    pub ip: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub data_dir: &'a Path,
    /// This node's fleet endpoint id, for the comment peers copy.
    pub node_id: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("interface `{interface}` has {ip}/{prefix}: too small a subnet for a lab's address pool (it needs at least a /29); pass --interface with the lab network's interface")]
    SubnetTooSmall {
        interface: String,
        ip: Ipv4Addr,
        prefix: u32,
    },
    #[error("interface `{interface}`: netmask {netmask} is not a valid mask")]
    BadMask {
        interface: String,
        netmask: Ipv4Addr,
    },
}

/// The lab pool: the larger run of addresses in the subnet on either side of the node's
/// own, at most 200, leaving the lowest addresses (routers, static hosts) alone when the
/// subnet allows.
pub fn lab_pool(ip: Ipv4Addr, netmask: Ipv4Addr) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let mask = u32::from(netmask);
    if mask.leading_ones() + mask.trailing_zeros() != 32 || mask.leading_ones() > 29 {
        return None;
    }
    let net = u32::from(ip) & mask;
    let broadcast = net | !mask;
    // Above the node, or below it if that side is larger; never the node itself.
    let me = u32::from(ip);
    let (lo, hi) = if broadcast - 1 - me >= me - (net + 1) {
        (me + 1, broadcast - 1)
    } else {
        (net + 1, me - 1)
    };
    let start = lo.max(net + (broadcast - net) / 2 + 1).min(hi);
    let start = if hi - start < 3 { lo } else { start };
    let end = hi.min(start + 199);
    Some((Ipv4Addr::from(start), Ipv4Addr::from(end)))
}

/// The config file's text.
pub fn render(role: Role, host: &Host<'_>) -> Result<String, TemplateError> {
    let Host {
        interface,
        ip,
        netmask,
        data_dir,
        node_id,
    } = host;
    let mask = u32::from(*netmask);
    if mask.leading_ones() + mask.trailing_zeros() != 32 {
        return Err(TemplateError::BadMask {
            interface: interface.to_string(),
            netmask: *netmask,
        });
    }
    let mut t = format!(
        "# netboot node config, written by `netboot init --role {role}` for interface {interface} ({ip}).
# Check it with `netboot check-config FILE`; every setting is in docs/configuration.md.

# The node's store: verified releases, the fleet identity (fleet.key), DHCP leases.
data_dir = {data_dir:?}

# Publisher keys (`ed25519:<hex>`, as `netboot keygen` prints them) whose releases this node
# accepts. With none it accepts and serves nothing: add yours.
trusted_publishers = [
  # \"ed25519:<64 hex digits>\",
]

"
    );
    match role {
        Role::Origin | Role::Branch => t.push_str(&format!(
            "[dhcp]
# proxy: beside the site's own DHCP server, only PXE clients get an answer (the boot
# program), never an address.
mode = \"proxy\"
# Sockets bind to it; its address ({ip}) is what clients are told.
interface = {interface:?}

"
        )),
        Role::Lab => {
            let (start, end) =
                lab_pool(*ip, *netmask).ok_or_else(|| TemplateError::SubnetTooSmall {
                    interface: interface.to_string(),
                    ip: *ip,
                    prefix: mask.leading_ones(),
                })?;
            let leases = data_dir.join("leases.json");
            t.push_str(&format!(
                "[dhcp]
# server: this network has no other DHCP server, the node hands out addresses. Never use
# it on a network that has one (clients would get conflicting answers).
mode = \"server\"
interface = {interface:?}
server_ip = \"{ip}\"

[dhcp.pool]
range_start = \"{start}\"
range_end = \"{end}\"
subnet_mask = \"{netmask}\"
# router = \"{ip}\"
# dns_servers = [\"{ip}\"]
lease_file = {leases:?}

"
            ));
        }
    }
    t.push_str(
        "[boot]
# Machines without an entry in [machines] boot this image; without it they get a menu.
# default_image = \"debian-12\"

# [machines]
# \"52:54:00:12:34:56\" = \"rescue\"

# The label fleet boot policies name this site by (`sites = [...]` in policy.toml); a policy
# this node holds decides before [machines] and default_image.
# [node]
# site = \"branch-1\"

",
    );
    let port = DEFAULT_FLEET_PORT;
    t.push_str(&format!(
        "# Fleet sync with other sites (QUIC, UDP port {port}). This node's id is {node_id}:
# other nodes list it as \"{node_id}@{ip}:{port}\" (or with a name that reaches it).
[fleet]
listen = \"0.0.0.0:{port}\"
"
    ));
    t.push_str(match role {
        Role::Origin => {
            "# Releases are published here (`netboot publish --to <this id>@<host>:7311`); the
# other sites list this node in their peers. Sites behind NAT that cannot be dialled
# may be let in by id:
peers = []
# members = [\"<endpoint-id of a branch node>\"]
"
        }
        Role::Branch | Role::Lab => {
            "# The nodes this one fetches from, nearest first, as <endpoint-id>@<host:port>
# (`netboot node-id` on each prints its id):
peers = [
  # \"<endpoint-id>@origin.example:7311\",
]
# Keep the site's uplink free for its users:
# upload_limit = \"20 Mbit/s\"
"
        }
    });
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn lab_pool_stays_in_the_subnet_and_off_the_node() {
        let cases = [
            (
                "192.168.50.1",
                "255.255.255.0",
                "192.168.50.128",
                "192.168.50.254",
            ),
            ("10.0.0.200", "255.255.255.0", "10.0.0.128", "10.0.0.199"),
            ("10.0.0.1", "255.255.0.0", "10.0.128.0", "10.0.128.199"),
            ("10.0.0.1", "255.255.255.248", "10.0.0.2", "10.0.0.6"),
            ("10.0.0.6", "255.255.255.248", "10.0.0.1", "10.0.0.5"),
        ];
        for (node, mask, start, end) in cases {
            assert_eq!(
                lab_pool(ip(node), ip(mask)),
                Some((ip(start), ip(end))),
                "{node}/{mask}"
            );
        }
        assert_eq!(lab_pool(ip("10.0.0.1"), ip("255.255.255.252")), None);
        assert_eq!(lab_pool(ip("10.0.0.1"), ip("255.0.255.0")), None);
    }

    /// Every role's file, for a few hosts, reads as a config without a single mistake.
    #[test]
    fn every_role_renders_a_config_that_checks_clean() {
        let id = "ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6";
        for (ip_, mask) in [
            ("192.168.50.1", "255.255.255.0"),
            ("10.20.30.40", "255.255.240.0"),
        ] {
            for role in [Role::Origin, Role::Branch, Role::Lab] {
                let host = Host {
                    interface: "eno1",
                    ip: ip(ip_),
                    netmask: ip(mask),
                    data_dir: Path::new("/var/lib/netboot"),
                    node_id: id,
                };
                let text = render(role, &host).unwrap();
                let path = Path::new("/etc/netboot/netboot.toml");
                let config = super::super::diagnose::diagnose(&text, path)
                    .unwrap_or_else(|m| panic!("{role}:\n{m}\n{text}"));
                assert!(config.node_problems().is_empty(), "{role}");
                assert_eq!(config.dhcp.interface.as_deref(), Some("eno1"));
                let want = match role {
                    Role::Lab => super::super::DhcpModeName::Server,
                    _ => super::super::DhcpModeName::Proxy,
                };
                assert_eq!(config.dhcp.mode, want, "{role}");
                assert!(config.fleet.is_some() && text.contains(id), "{role}");
            }
        }
        let host = Host {
            interface: "wg0",
            ip: ip("10.0.0.1"),
            netmask: ip("255.255.255.255"),
            data_dir: Path::new("/d"),
            node_id: id,
        };
        assert!(render(Role::Branch, &host).is_ok());
        let e = render(Role::Lab, &host).unwrap_err().to_string();
        assert!(e.contains("wg0") && e.contains("/32"), "{e}");
    }
}
