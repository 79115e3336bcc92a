//! DHCP configuration: serde-deserializable, unknown keys rejected.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Deserialize;

use super::arch::BootFiles;

/// How the node takes part in DHCP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DhcpMode {
    /// proxyDHCP next to the site's DHCP server: boot information only, never
    /// an address. The safe default on a real site.
    Proxy,
    /// Full DHCP server for an isolated lab network.
    Server(PoolConfig),
    /// No DHCP at all (the site's DHCP server points clients at us itself).
    Off,
}

/// Address pool for server mode.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// First address handed out (inclusive).
    pub range_start: Ipv4Addr,
    /// Last address handed out (inclusive).
    pub range_end: Ipv4Addr,
    pub subnet_mask: Ipv4Addr,
    #[serde(default)]
    pub router: Option<Ipv4Addr>,
    #[serde(default)]
    pub dns_servers: Vec<Ipv4Addr>,
    #[serde(default)]
    pub domain_name: Option<String>,
    #[serde(default = "default_lease_time")]
    pub lease_time_secs: u32,
    /// Where leases are kept across restarts; `None` keeps them in memory only.
    #[serde(default)]
    pub lease_file: Option<PathBuf>,
    /// How long an address a client DECLINEd (found in use) is left alone.
    #[serde(default = "default_decline_hold")]
    pub decline_hold_secs: u32,
}

fn default_lease_time() -> u32 {
    3600
}
fn default_decline_hold() -> u32 {
    600
}

/// Largest pool accepted (allocation scans the range).
pub const MAX_POOL_SIZE: u32 = 65536;

impl PoolConfig {
    /// A pool of `range_start..=range_end` with the defaults for everything else.
    pub fn new(range_start: Ipv4Addr, range_end: Ipv4Addr, subnet_mask: Ipv4Addr) -> Self {
        Self {
            range_start,
            range_end,
            subnet_mask,
            router: None,
            dns_servers: vec![],
            domain_name: None,
            lease_time_secs: default_lease_time(),
            lease_file: None,
            decline_hold_secs: default_decline_hold(),
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        n >= u32::from(self.range_start) && n <= u32::from(self.range_end)
    }

    /// The pool's addresses in order.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        (u32::from(self.range_start)..=u32::from(self.range_end)).map(Ipv4Addr::from)
    }

    /// A pool that cannot work: the field at fault (as named in `[dhcp.pool]`) and why.
    /// Pure, so `netboot check-config` finds the same mistakes as a starting node.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let (start, end) = (u32::from(self.range_start), u32::from(self.range_end));
        let mask = u32::from(self.subnet_mask);
        if start > end {
            return Err((
                "range_start",
                format!("{} is after range_end {}", self.range_start, self.range_end),
            ));
        }
        if mask.leading_ones() + mask.trailing_zeros() != 32 {
            return Err((
                "subnet_mask",
                format!("{} is not a valid mask", self.subnet_mask),
            ));
        }
        if start & mask != end & mask {
            return Err((
                "range_end",
                format!(
                    "range {}..{} is not inside one subnet with mask {}",
                    self.range_start, self.range_end, self.subnet_mask
                ),
            ));
        }
        if end - start >= MAX_POOL_SIZE {
            return Err((
                "range_end",
                format!("pool larger than {MAX_POOL_SIZE} addresses"),
            ));
        }
        if self.lease_time_secs < 60 {
            return Err(("lease_time_secs", "must be at least 60".into()));
        }
        Ok(())
    }

    /// Directed broadcast address of the pool's subnet.
    pub fn broadcast_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.range_start) | !u32::from(self.subnet_mask))
    }
}

/// Everything the DHCP part of the node needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DhcpConfig {
    pub mode: DhcpMode,
    /// This node's address on the boot network: option 54, `siaddr`, TFTP server.
    pub server_ip: Ipv4Addr,
    /// Bind the sockets to this interface (SO_BINDTODEVICE). Strongly advised on
    /// multi-homed hosts: broadcasts otherwise leave by the default route.
    pub interface: Option<String>,
    /// Address the sockets bind to; 0.0.0.0 is needed to receive broadcasts.
    pub listen_ip: Ipv4Addr,
    /// DHCP server port (67).
    pub dhcp_port: u16,
    /// PXE boot server port (4011).
    pub pxe_port: u16,
    /// DHCP client port replies are sent to (68).
    pub client_port: u16,
    pub boot_files: BootFiles,
}

impl Default for DhcpConfig {
    fn default() -> Self {
        Self {
            mode: DhcpMode::Proxy,
            server_ip: Ipv4Addr::UNSPECIFIED,
            interface: None,
            listen_ip: Ipv4Addr::UNSPECIFIED,
            dhcp_port: 67,
            pxe_port: 4011,
            client_port: 68,
            boot_files: BootFiles::default(),
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DHCP configuration: {0}")]
pub struct ConfigError(pub String);

impl DhcpConfig {
    /// Check the configuration and replace `{server_ip}` in the boot URLs.
    /// Call once before serving.
    pub fn finalize(mut self) -> Result<Self, ConfigError> {
        let err = |s: String| Err(ConfigError(s));
        if self.mode == DhcpMode::Off {
            return Ok(self);
        }
        if self.server_ip.is_unspecified() || self.server_ip.is_broadcast() {
            return err("server_ip must be set to this node's address on the boot network".into());
        }
        let ip = self.server_ip.to_string();
        let bf = &mut self.boot_files;
        bf.ipxe_script_url = bf.ipxe_script_url.replace("{server_ip}", &ip);
        bf.http_base_url = bf.http_base_url.replace("{server_ip}", &ip);
        let tftp_names = [
            Some(&bf.bios),
            Some(&bf.efi_x64),
            bf.efi_ia32.as_ref(),
            bf.efi_arm64.as_ref(),
        ];
        if tftp_names.into_iter().flatten().any(|n| n.len() > 127) {
            return err("boot file names must be at most 127 bytes (the BOOTP file field)".into());
        }
        if let DhcpMode::Server(pool) = &self.mode {
            pool.check()
                .map_err(|(field, why)| ConfigError(format!("{field} {why}")))?;
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_from_empty_json() {
        let c: DhcpConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, DhcpConfig::default());
        assert_eq!(c.mode, DhcpMode::Proxy);
        assert_eq!(c.boot_files.bios, "undionly.kpxe");
        assert_eq!(c.boot_files.efi_x64, "ipxe.efi");
    }

    #[test]
    fn server_mode_json_and_finalize() {
        let c: DhcpConfig = serde_json::from_str(
            r#"{"server_ip":"10.9.0.1","interface":"br0",
                "mode":{"server":{"range_start":"10.9.0.100","range_end":"10.9.0.199",
                         "subnet_mask":"255.255.255.0","router":"10.9.0.1",
                         "dns_servers":["10.9.0.1"],"lease_file":"/var/lib/netboot/leases.json"}},
                "boot_files":{"efi_x64":"snponly.efi"}}"#,
        )
        .unwrap();
        let c = c.finalize().unwrap();
        assert_eq!(c.boot_files.efi_x64, "snponly.efi");
        assert_eq!(c.boot_files.ipxe_script_url, "http://10.9.0.1/boot.ipxe");
        assert_eq!(c.boot_files.http_base_url, "http://10.9.0.1");
        let DhcpMode::Server(p) = &c.mode else {
            panic!()
        };
        assert_eq!(p.lease_time_secs, 3600);
        assert!(p.contains("10.9.0.150".parse().unwrap()));
        assert!(!p.contains("10.9.0.200".parse().unwrap()));
        assert_eq!(
            p.broadcast_addr(),
            "10.9.0.255".parse::<Ipv4Addr>().unwrap()
        );
    }

    #[test]
    fn rejects_unknown_fields_and_bad_values() {
        assert!(serde_json::from_str::<DhcpConfig>(r#"{"sever_ip":"10.0.0.1"}"#).is_err());
        assert!(serde_json::from_str::<DhcpConfig>(r#"{"boot_files":{"bioss":"x"}}"#).is_err());
        assert!(serde_json::from_str::<DhcpConfig>(r#"{"mode":"relay"}"#).is_err());
        let pool = r#"{"range_start":"10.0.0.9","range_end":"10.0.0.1","subnet_mask":"255.255.255.0","extra":1}"#;
        assert!(
            serde_json::from_str::<DhcpConfig>(&format!(r#"{{"mode":{{"server":{pool}}}}}"#))
                .is_err()
        );
        // No server_ip.
        assert!(DhcpConfig::default().finalize().is_err());
        let off = DhcpConfig {
            mode: DhcpMode::Off,
            ..DhcpConfig::default()
        };
        assert!(off.finalize().is_ok());
        let bad_range = r#"{"server_ip":"10.0.0.1","mode":{"server":{"range_start":"10.0.0.9","range_end":"10.0.0.1","subnet_mask":"255.255.255.0"}}}"#;
        let e = serde_json::from_str::<DhcpConfig>(bad_range)
            .unwrap()
            .finalize()
            .unwrap_err();
        assert!(e.0.contains("after range_end"), "{e}");
        let bad_mask = r#"{"server_ip":"10.0.0.1","mode":{"server":{"range_start":"10.0.0.1","range_end":"10.0.0.9","subnet_mask":"255.0.255.0"}}}"#;
        assert!(serde_json::from_str::<DhcpConfig>(bad_mask)
            .unwrap()
            .finalize()
            .is_err());
        let two_nets = r#"{"server_ip":"10.0.0.1","mode":{"server":{"range_start":"10.0.0.1","range_end":"10.0.1.9","subnet_mask":"255.255.255.0"}}}"#;
        assert!(serde_json::from_str::<DhcpConfig>(two_nets)
            .unwrap()
            .finalize()
            .is_err());
    }
}
