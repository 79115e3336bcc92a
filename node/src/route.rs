//! Which interface carries the default route, read from the kernel's IPv4 routing table
//! (`/proc/net/route`), and which of its addresses clients reach the node at.
//!
//! Both are pure: the callers (`netboot quick`, `netboot init`) read the table and the
//! interface addresses and pass them in, so the choice is tested on real tables.

use std::net::Ipv4Addr;

/// The kernel's route flag "route usable"; a default route without it is ignored.
const RTF_UP: u32 = 0x0001;
/// "Reject route": packets to it fail; not a way out.
const RTF_REJECT: u32 = 0x0200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    pub interface: String,
    pub gateway: Ipv4Addr,
    pub metric: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("/proc/net/route has no IPv4 default route; pass --interface to name the boot network's interface")]
    NoDefault,
    #[error("/proc/net/route line {line}: {why}")]
    Malformed { line: usize, why: String },
}

/// The usable default route with the lowest metric (the one the kernel uses); on a tie the
/// first listed, as the kernel does.
pub fn default_route(table: &str) -> Result<DefaultRoute, RouteError> {
    let mut best: Option<DefaultRoute> = None;
    // Line 1 is the column header.
    for (index, line) in table.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = index + 1;
        let bad = |why: String| RouteError::Malformed { line: line_no, why };
        let cols: Vec<&str> = line.split_whitespace().collect();
        // Iface Destination Gateway Flags RefCnt Use Metric Mask …
        if cols.len() < 8 {
            return Err(bad(format!("{} columns, expected at least 8", cols.len())));
        }
        let hex = |i: usize, what: &str| {
            u32::from_str_radix(cols[i], 16)
                .map_err(|_| bad(format!("{what} `{}` is not hexadecimal", cols[i])))
        };
        let (dest, gateway, flags, mask) = (
            hex(1, "destination")?,
            hex(2, "gateway")?,
            hex(3, "flags")?,
            hex(7, "mask")?,
        );
        let metric: u32 = cols[6]
            .parse()
            .map_err(|_| bad(format!("metric `{}` is not a number", cols[6])))?;
        if dest != 0 || mask != 0 || flags & RTF_UP == 0 || flags & RTF_REJECT != 0 {
            continue;
        }
        if best.as_ref().is_some_and(|b| b.metric <= metric) {
            continue;
        }
        best = Some(DefaultRoute {
            interface: cols[0].to_string(),
            gateway: proc_addr(gateway),
            metric,
        });
    }
    best.ok_or(RouteError::NoDefault)
}

/// The kernel prints each address as the 32-bit word it stores in network byte order, read
/// in the host's order: its bytes in memory are the address's bytes.
fn proc_addr(word: u32) -> Ipv4Addr {
    Ipv4Addr::from(word.to_ne_bytes())
}

/// The address clients on `gateway`'s segment reach this host at: the interface's address
/// whose subnet holds the gateway, else its first address.
pub fn address_toward(addrs: &[(Ipv4Addr, Ipv4Addr)], gateway: Ipv4Addr) -> Option<Ipv4Addr> {
    let same_net = |(ip, mask): &&(Ipv4Addr, Ipv4Addr)| {
        u32::from(*ip) & u32::from(*mask) == u32::from(gateway) & u32::from(*mask)
    };
    addrs
        .iter()
        .find(same_net)
        .or(addrs.first())
        .map(|(ip, _)| *ip)
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    const HEADER: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";

    fn table(rows: &[&str]) -> String {
        let mut t = HEADER.to_string();
        for r in rows {
            t.push_str(r);
            t.push('\n');
        }
        t
    }

    /// A laptop's table (`ip route`: default via 192.168.1.1 dev wlp2s0 metric 600;
    /// 192.168.1.0/24 dev wlp2s0; 172.17.0.0/16 dev docker0 linkdown).
    const LAPTOP: &[&str] = &[
        "wlp2s0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0",
        "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0",
        "wlp2s0\t0001A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0",
    ];

    #[test]
    fn picks_the_interface_of_the_default_route() {
        let r = default_route(&table(LAPTOP)).unwrap();
        assert_eq!(
            r,
            DefaultRoute {
                interface: "wlp2s0".into(),
                gateway: Ipv4Addr::new(192, 168, 1, 1),
                metric: 600
            }
        );
    }

    #[test]
    fn the_lowest_metric_wins_and_ties_go_to_the_first() {
        let t = table(&[
            "wlp2s0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0",
            "enp0s31f6\t00000000\t01000A0A\t0003\t0\t0\t100\t00000000\t0\t0\t0",
            "enp5s0\t00000000\t01000B0A\t0003\t0\t0\t100\t00000000\t0\t0\t0",
        ]);
        let r = default_route(&t).unwrap();
        assert_eq!(r.interface, "enp0s31f6");
        assert_eq!(r.gateway, Ipv4Addr::new(10, 10, 0, 1));
    }

    #[test]
    fn routes_that_are_down_rejected_or_not_default_are_ignored() {
        let t = table(&[
            // default, but not up
            "eth1\t00000000\t0101A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0",
            // default, reject (unreachable)
            "lo\t00000000\t00000000\t0201\t0\t0\t0\t00000000\t0\t0\t0",
            // 0.0.0.0/1, not default
            "tun0\t00000000\t00000000\t0001\t0\t0\t0\t00000080\t0\t0\t0",
            "eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0",
        ]);
        assert_eq!(default_route(&t), Err(RouteError::NoDefault));
        assert_eq!(default_route(HEADER), Err(RouteError::NoDefault));
        assert_eq!(default_route(""), Err(RouteError::NoDefault));
        assert!(RouteError::NoDefault.to_string().contains("--interface"));
    }

    #[test]
    fn a_damaged_line_is_named() {
        let t = table(&[LAPTOP[0], "eth0\tzz\t00000000\t0001\t0\t0\t0\t00000000"]);
        let e = default_route(&t).unwrap_err();
        assert!(
            matches!(&e, RouteError::Malformed { line: 3, why } if why.contains("`zz`")),
            "{e}"
        );
        let e = default_route(&table(&["eth0\t00000000"])).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let t = table(&["eth0\t00000000\t00000000\t0001\t0\t0\tx\t00000000"]);
        assert!(default_route(&t)
            .unwrap_err()
            .to_string()
            .contains("metric `x`"));
    }

    #[test]
    fn the_address_on_the_gateways_subnet_is_the_nodes() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let mask = ip("255.255.255.0");
        let addrs = [(ip("10.9.0.5"), mask), (ip("192.168.1.20"), mask)];
        assert_eq!(
            address_toward(&addrs, ip("192.168.1.1")),
            Some(ip("192.168.1.20"))
        );
        assert_eq!(
            address_toward(&addrs, ip("172.16.0.1")),
            Some(ip("10.9.0.5")),
            "no address on the gateway's subnet: the first"
        );
        assert_eq!(address_toward(&[], ip("192.168.1.1")), None);
    }
}
