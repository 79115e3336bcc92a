//! The node's configuration file (TOML).
//!
//! Every error names the file, the line and the field (`FILE:LINE: field: problem`, see
//! [`diagnose`]), because a sysadmin fixing a config at 3 a.m. should not have to guess.

pub mod diagnose;
pub mod reload;
pub mod template;

use std::{
    collections::BTreeMap,
    fmt,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
};

use netboot_proto::{ImageName, PublicKey, TrustedKeys};
use serde::Deserialize;

use crate::{
    boot::{Loader, Machine},
    dhcp::{MacAddr, PoolConfig},
    fleet::FleetSection,
};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/netboot/netboot.toml";
pub const DEFAULT_DATA_DIR: &str = "/var/lib/netboot";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// Every mistake found, one `FILE:LINE: field: problem` per line.
    #[error("{0}")]
    Invalid(diagnose::Mistakes),
}

/// A mistake across fields, named by the dotted path of the field to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
    /// Other fields the check read: if one of them was itself a mistake, this check is moot.
    pub involves: Vec<&'static str>,
}

impl Problem {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            involves: Vec::new(),
        }
    }

    fn involving(mut self, fields: &[&'static str]) -> Self {
        self.involves.extend(fields);
        self
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the node keeps its store. Relative paths are relative to the config file.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Publisher keys (`ed25519:<hex>`, as `netboot keygen` prints them) whose releases this
    /// node accepts. A node with none accepts nothing.
    #[serde(default)]
    pub trusted_publishers: Vec<PublicKey>,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub dhcp: DhcpSection,
    #[serde(default)]
    pub tftp: TftpSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub boot: BootSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    /// `[node]`: who this node is to a boot policy.
    #[serde(default)]
    pub node: NodeSection,
    /// MAC address → image name (or `{ image = "…", loader = "pxelinux" }`).
    #[serde(default)]
    pub machines: BTreeMap<MacAddr, Machine>,
    /// `[fleet]`: peers and sync. Without this section the node is standalone (no fleet
    /// port is opened).
    pub fleet: Option<FleetSection>,
}

/// `[node]`: how boot policies name this node's site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// The site label policy rules and per-site defaults name (`sites = ["branch-1"]`).
    /// Default: none — only rules naming this node's fleet id, or naming no site, apply.
    pub site: Option<String>,
}

/// `[dhcp]`: how the node takes part in DHCP on the boot network.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DhcpSection {
    /// `proxy` (default: beside the site's DHCP server, boot answers only), `server` (full
    /// DHCP for an isolated lab; needs `[dhcp.pool]`), or `off` (TFTP/HTTP only).
    #[serde(default)]
    pub mode: DhcpModeName,
    /// The boot network interface. Sockets bind to it, and its IPv4 address is the default
    /// `server_ip`. Strongly advised on hosts with several interfaces.
    pub interface: Option<String>,
    /// This node's address as clients reach it (DHCP option 54, next-server, URLs).
    pub server_ip: Option<Ipv4Addr>,
    /// Address pool, for `mode = "server"`.
    pub pool: Option<PoolConfig>,
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DhcpModeName {
    #[default]
    Proxy,
    Server,
    Off,
}

/// `[tftp]`: first-stage programs for PXE firmware.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TftpSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_tftp_listen")]
    pub listen: SocketAddr,
    /// Transfers at once (each holds a socket and a file). When all are taken, a new request
    /// takes the slot of the oldest transfer never acknowledged; if every one is in
    /// progress, it gets "server busy".
    #[serde(default = "default_tftp_max_transfers")]
    pub max_transfers: usize,
    /// Transfers at once from one client IP address (a PXE client runs one at a time).
    #[serde(default = "default_tftp_max_per_client")]
    pub max_transfers_per_client: usize,
    /// Largest `timeout` option a client may negotiate, seconds; larger ones are declined.
    #[serde(default = "default_tftp_max_timeout_option")]
    pub max_timeout_option_secs: u8,
}

impl Default for TftpSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: default_tftp_listen(),
            max_transfers: default_tftp_max_transfers(),
            max_transfers_per_client: default_tftp_max_per_client(),
            max_timeout_option_secs: default_tftp_max_timeout_option(),
        }
    }
}

impl TftpSection {
    /// The TFTP server's settings: these limits, the rest at their defaults.
    pub fn server_config(&self) -> crate::tftp::TftpConfig {
        crate::tftp::TftpConfig {
            max_transfers: self.max_transfers.max(1),
            max_transfers_per_client: self.max_transfers_per_client.max(1),
            max_option_timeout: std::time::Duration::from_secs(
                self.max_timeout_option_secs.max(1).into(),
            ),
            ..crate::tftp::TftpConfig::default()
        }
    }
}

/// `[metrics]`: where Prometheus scrapes `/metrics`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Serve `/metrics` on this address only (e.g. `127.0.0.1:9150`, or an address on the
    /// management network) instead of on the HTTP port the boot clients use.
    pub listen: Option<SocketAddr>,
}

/// `[http]`: kernels, initrds, images and iPXE scripts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    #[serde(default = "default_http_listen")]
    pub listen: SocketAddr,
    /// The URL clients are told, e.g. `http://10.0.0.1:8080`. Default: `http://<server_ip>`
    /// with the listen port.
    pub base_url: Option<String>,
    /// Open connections in total; when full, the connection idle longest is closed for a
    /// new one, and a new one is refused only while every connection is busy.
    #[serde(default = "default_http_max_connections")]
    pub max_connections: usize,
    /// Open connections from one client IP address (same rule when full).
    #[serde(default = "default_http_max_per_client")]
    pub max_connections_per_client: usize,
    /// Seconds a client has to send a complete request head.
    #[serde(default = "default_http_header_timeout")]
    pub header_timeout_secs: u64,
    /// Seconds a kept-alive connection may sit without a request before it is closed.
    #[serde(default = "default_http_idle_timeout")]
    pub idle_timeout_secs: u64,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: default_http_listen(),
            base_url: None,
            max_connections: default_http_max_connections(),
            max_connections_per_client: default_http_max_per_client(),
            header_timeout_secs: default_http_header_timeout(),
            idle_timeout_secs: default_http_idle_timeout(),
        }
    }
}

impl HttpSection {
    pub fn limits(&self) -> crate::http::HttpLimits {
        crate::http::HttpLimits {
            max_connections: self.max_connections.max(1),
            max_connections_per_client: self.max_connections_per_client.max(1),
            header_timeout: std::time::Duration::from_secs(self.header_timeout_secs.max(1)),
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_secs.max(1)),
        }
    }
}

/// `[boot]`: what clients boot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootSection {
    /// The files-only release holding the first-stage programs (iPXE, PXELINUX).
    #[serde(default = "default_first_stage")]
    pub first_stage: ImageName,
    /// A local directory of first-stage programs used when the release lacks a file
    /// (quick single-site setups; these files are not verified, and the log says so).
    pub first_stage_dir: Option<PathBuf>,
    /// First stage for BIOS PXE firmware.
    #[serde(default = "default_bios")]
    pub bios: String,
    /// First stage for UEFI x86-64 firmware (`ipxe.efi`, or `snponly.efi` to use the
    /// firmware's own network driver).
    #[serde(default = "default_efi_x64")]
    pub efi_x64: String,
    pub efi_ia32: Option<String>,
    /// Only if an arm64 iPXE is in the first-stage release.
    pub efi_arm64: Option<String>,
    /// What BIOS clients run after the firmware: `ipxe` (default) or `pxelinux`
    /// (lpxelinux.0 from the first-stage release, configs generated, files over HTTP).
    #[serde(default)]
    pub bios_loader: Loader,
    /// What UEFI PXE firmware (x86-64, arm64) runs: `ipxe` (default; refused by Secure Boot)
    /// or `grub` (shim + signed GRUB from the first-stage release, see `[boot.grub]`).
    #[serde(default)]
    pub efi_loader: Loader,
    #[serde(default)]
    pub grub: GrubSection,
    /// PXELINUX's first stage (the HTTP-capable build).
    #[serde(default = "default_pxelinux")]
    pub pxelinux: String,
    /// Image for machines without an assignment; without it they get a menu.
    pub default_image: Option<ImageName>,
    /// Seconds the menu waits before booting from the local disk.
    #[serde(default = "default_menu_timeout")]
    pub menu_timeout_secs: u32,
}

impl Default for BootSection {
    fn default() -> Self {
        Self {
            first_stage: default_first_stage(),
            first_stage_dir: None,
            bios: default_bios(),
            efi_x64: default_efi_x64(),
            efi_ia32: None,
            efi_arm64: None,
            bios_loader: Loader::default(),
            efi_loader: Loader::default(),
            grub: GrubSection::default(),
            pxelinux: default_pxelinux(),
            default_image: None,
            menu_timeout_secs: default_menu_timeout(),
        }
    }
}

/// `[boot.grub]`: the Secure Boot chain firmware → shim → signed GRUB → signed kernel. All
/// files come from the first-stage release (e.g. published from Debian's `shim-signed` and
/// `grub-efi-amd64-signed`); netboot re-signs nothing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrubSection {
    /// The boot program for UEFI x86-64 PXE firmware: the Microsoft-signed shim.
    #[serde(default = "default_shim_x64")]
    pub efi_x64: String,
    /// The same for arm64; without it arm64 firmware gets `boot.efi_arm64` (if any).
    pub efi_arm64: Option<String>,
    /// The GRUB file shim fetches by this bare name from the TFTP root (shim's built-in
    /// name). Must be in the first-stage release under this name.
    #[serde(default = "default_grub_x64")]
    pub grub_x64: String,
    #[serde(default = "default_grub_arm64")]
    pub grub_arm64: String,
    /// How GRUB fetches kernels and initrds: `http` (default; needs the node's HTTP on port
    /// 80, GRUB's `(http,…)` device has no port) or `tftp`.
    #[serde(default)]
    pub files_over: GrubTransfer,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrubTransfer {
    #[default]
    Http,
    Tftp,
}

impl Default for GrubSection {
    fn default() -> Self {
        Self {
            efi_x64: default_shim_x64(),
            efi_arm64: None,
            grub_x64: default_grub_x64(),
            grub_arm64: default_grub_arm64(),
            files_over: GrubTransfer::default(),
        }
    }
}

fn default_shim_x64() -> String {
    "shimx64.efi".into()
}
fn default_grub_x64() -> String {
    "grubx64.efi".into()
}
fn default_grub_arm64() -> String {
    "grubaa64.efi".into()
}

fn yes() -> bool {
    true
}
fn default_tftp_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 69))
}
// Defaults keep the node's descriptors (HTTP connections + 2 per TFTP transfer + the store
// and fleet) well under 1024, the limit systemd gives a service unless told otherwise.
fn default_tftp_max_transfers() -> usize {
    crate::tftp::TftpConfig::default().max_transfers
}
fn default_tftp_max_per_client() -> usize {
    crate::tftp::TftpConfig::default().max_transfers_per_client
}
fn default_tftp_max_timeout_option() -> u8 {
    crate::tftp::TftpConfig::default()
        .max_option_timeout
        .as_secs()
        .clamp(1, 255) as u8
}
fn default_http_max_connections() -> usize {
    crate::http::HttpLimits::default().max_connections
}
fn default_http_max_per_client() -> usize {
    crate::http::HttpLimits::default().max_connections_per_client
}
fn default_http_header_timeout() -> u64 {
    crate::http::HttpLimits::default().header_timeout.as_secs()
}
fn default_http_idle_timeout() -> u64 {
    crate::http::HttpLimits::default().idle_timeout.as_secs()
}
fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 80))
}
fn default_first_stage() -> ImageName {
    ImageName::from_static("ipxe")
}
fn default_bios() -> String {
    "undionly.kpxe".into()
}
fn default_efi_x64() -> String {
    "ipxe.efi".into()
}
fn default_pxelinux() -> String {
    "lpxelinux.0".into()
}
fn default_menu_timeout() -> u32 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// How many versions of each image to keep; older ones are garbage-collected.
    #[serde(default = "default_keep_versions")]
    pub keep_versions: KeepVersions,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            keep_versions: default_keep_versions(),
        }
    }
}

/// At least 1: keeping zero versions would delete what was just published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepVersions(usize);

impl KeepVersions {
    pub fn new(n: usize) -> Option<Self> {
        (n >= 1).then_some(Self(n))
    }

    pub fn get(self) -> usize {
        self.0
    }
}

impl<'de> Deserialize<'de> for KeepVersions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = usize::deserialize(d)?;
        Self::new(n).ok_or_else(|| serde::de::Error::custom("keep_versions must be at least 1"))
    }
}

impl fmt::Display for KeepVersions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Clients are told this URL verbatim (iPXE scripts, DHCP boot URLs): it must be an
/// absolute http(s) URL with a host, without query or fragment.
fn check_base_url(url: &str) -> Result<(), &'static str> {
    let uri: hyper::Uri = url.parse().map_err(|_| "is not a URL")?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(_) => return Err("has a scheme other than http or https"),
        None => return Err("is not an absolute URL (no http:// or https://)"),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    if uri.query().is_some() {
        return Err("has a query (?…), which the node's paths cannot follow");
    }
    Ok(())
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}

fn default_keep_versions() -> KeepVersions {
    KeepVersions(2)
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        Self::parse(&text, path)
    }

    /// [`Config::load`] with the checks only a node needs too ([`Config::node_problems`]), as
    /// `netboot check-config` runs them: a reloading node refuses what a start would.
    pub fn load_for_node(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        let config = diagnose::diagnose_node(&text, path).map_err(ConfigError::Invalid)?;
        Ok(config.with_data_dir_from(path))
    }

    /// `path` is used for error messages and to resolve a relative `data_dir`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config = diagnose::diagnose(text, path).map_err(ConfigError::Invalid)?;
        Ok(config.with_data_dir_from(path))
    }

    fn with_data_dir_from(mut self, path: &Path) -> Self {
        if self.data_dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            self.data_dir = base.join(&self.data_dir);
        }
        self
    }

    /// Checks across fields that serde cannot express, each naming the field to change.
    fn problems(&self) -> Vec<Problem> {
        let mut found = Vec::new();
        let mode = self.dhcp.mode;
        match (&self.dhcp.pool, mode) {
            (None, DhcpModeName::Server) => found.push(Problem::new(
                "dhcp.mode",
                "mode = \"server\" needs a [dhcp.pool] section (range_start, range_end, subnet_mask, …)",
            ).involving(&["dhcp.pool"])),
            (Some(_), DhcpModeName::Proxy | DhcpModeName::Off) => {
                let mode = format!("{mode:?}").to_lowercase();
                found.push(Problem::new(
                    "dhcp.pool",
                    format!("[dhcp.pool] is set but [dhcp] mode = \"{mode}\": a pool is used only with mode = \"server\" (remove the pool, or set mode = \"server\" on an isolated network)"),
                ).involving(&["dhcp.mode"]));
            }
            (Some(pool), DhcpModeName::Server) => {
                if let Err((field, why)) = pool.check() {
                    found.push(Problem::new(format!("dhcp.pool.{field}"), why));
                } else if let Some(ip) = self.dhcp.server_ip {
                    let mask = u32::from(pool.subnet_mask);
                    if u32::from(ip) & mask != u32::from(pool.range_start) & mask {
                        found.push(Problem::new(
                            "dhcp.server_ip",
                            format!(
                                "{ip} is outside the pool's subnet {}/{} ({}-{}): clients given an address there could not reach this node",
                                std::net::Ipv4Addr::from(u32::from(pool.range_start) & mask),
                                mask.leading_ones(),
                                pool.range_start,
                                pool.range_end
                            ),
                        ).involving(&["dhcp.pool"]));
                    }
                }
            }
            (None, _) => {}
        }
        if let Some(url) = &self.http.base_url {
            if let Err(why) = check_base_url(url) {
                found.push(Problem::new(
                    "http.base_url",
                    format!("{url:?} {why}; expected a URL like http://10.0.0.1:8080"),
                ));
            }
        }
        found.extend(self.check_boot());
        if let Some(site) = &self.node.site {
            let ok = !site.is_empty()
                && site.len() <= 64
                && site
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !ok {
                found.push(Problem::new(
                    "node.site",
                    format!("{site:?} is not a site label a policy can name (1-64 of a-z A-Z 0-9 . _ -)"),
                ));
            }
        }
        found
    }

    /// What a starting node needs beyond a readable config: `netboot check-config` reports
    /// these too, while one-shot commands (publish, images) that only use the data dir do not.
    pub fn node_problems(&self) -> Vec<Problem> {
        let mut found = Vec::new();
        if self.dhcp.server_ip.is_none() && self.dhcp.interface.is_none() {
            found.push(Problem::new(
                "dhcp.server_ip",
                "not set, and no dhcp.interface to take it from: the node cannot tell clients where it is (set dhcp.interface = \"<boot interface>\", or dhcp.server_ip)",
            ));
        }
        found
    }

    /// Loader choices that cannot work, named by field.
    fn check_boot(&self) -> Vec<Problem> {
        let b = &self.boot;
        let mut found = Vec::new();
        if b.bios_loader == Loader::Grub {
            found.push(Problem::new("boot.bios_loader", "\"grub\": GRUB is the UEFI (Secure Boot) chain; BIOS machines use \"ipxe\" or \"pxelinux\" (set efi_loader = \"grub\" instead)"));
        }
        if b.efi_loader == Loader::Pxelinux {
            found.push(Problem::new(
                "boot.efi_loader",
                "\"pxelinux\": PXELINUX is BIOS-only; UEFI machines use \"ipxe\" or \"grub\"",
            ));
        }
        let names = [
            ("boot.grub.efi_x64", Some(&b.grub.efi_x64)),
            ("boot.grub.efi_arm64", b.grub.efi_arm64.as_ref()),
            ("boot.grub.grub_x64", Some(&b.grub.grub_x64)),
            ("boot.grub.grub_arm64", Some(&b.grub.grub_arm64)),
        ];
        for (field, name) in names {
            let Some(name) = name else { continue };
            if let Err(e) = name.parse::<netboot_proto::ImagePath>() {
                found.push(Problem::new(
                    field,
                    format!("{name:?}: not a file name in the first-stage release: {e}"),
                ));
            }
        }
        found
    }

    pub fn trusted_keys(&self) -> TrustedKeys {
        TrustedKeys::new(self.trusted_publishers.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ed25519:8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";

    #[test]
    fn parses_and_resolves_relative_data_dir() {
        let text = format!(
            "data_dir = \"state\"\ntrusted_publishers = [\"{KEY}\"]\n[store]\nkeep_versions = 3\n"
        );
        let c = Config::parse(&text, Path::new("/etc/netboot/site.toml")).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/etc/netboot/state"));
        assert_eq!(c.trusted_publishers.len(), 1);
        assert_eq!(c.store.keep_versions.get(), 3);
    }

    #[test]
    fn defaults() {
        let c = Config::parse("", Path::new("/x.toml")).unwrap();
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(c.trusted_publishers.is_empty());
        assert_eq!(c.store.keep_versions.get(), 2);
    }

    #[test]
    fn serving_sections() {
        let text = r#"
            [dhcp]
            mode = "server"
            interface = "eth1"
            [dhcp.pool]
            range_start = "10.0.0.100"
            range_end = "10.0.0.200"
            subnet_mask = "255.255.255.0"
            [http]
            listen = "0.0.0.0:8080"
            [boot]
            default_image = "debian"
            efi_x64 = "snponly.efi"
            [machines]
            "52:54:00:12:34:56" = "rescue"
            "52:54:00:12:34:57" = { image = "debian", loader = "pxelinux" }
        "#;
        let c = Config::parse(text, Path::new("/n.toml")).unwrap();
        assert_eq!(c.dhcp.mode, DhcpModeName::Server);
        assert_eq!(c.http.listen.port(), 8080);
        assert_eq!(c.boot.efi_x64, "snponly.efi");
        assert_eq!(c.machines.len(), 2);
        assert!(c.tftp.enabled);
        let err = Config::parse("[dhcp]\nmode = \"server\"\n", Path::new("/n.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("[dhcp.pool]"), "{err}");
        let err = Config::parse("[machines]\n\"52:54:00\" = \"x\"\n", Path::new("/n.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(":2: "), "{err}");
    }

    #[test]
    fn cross_field_errors_name_the_field() {
        let pool = "[dhcp.pool]\nrange_start = \"10.0.0.100\"\nrange_end = \"10.0.0.200\"\nsubnet_mask = \"255.255.255.0\"\n";
        for mode in ["", "[dhcp]\nmode = \"proxy\"\n", "[dhcp]\nmode = \"off\"\n"] {
            let err = Config::parse(&format!("{mode}{pool}"), Path::new("/n.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("/n.toml") && err.contains("[dhcp.pool]") && err.contains("mode"),
                "{err}"
            );
        }
        for bad in [
            "not a url",
            "10.0.0.1:8080",
            "ftp://10.0.0.1",
            "http://",
            "http://x/?a=1",
        ] {
            let err = Config::parse(
                &format!("[http]\nbase_url = \"{bad}\"\n"),
                Path::new("/n.toml"),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("base_url") && err.contains(bad), "{err}");
        }
        for good in ["http://10.0.0.1", "https://boot.example:8443/netboot/"] {
            let c = Config::parse(
                &format!("[http]\nbase_url = \"{good}\"\n"),
                Path::new("/n.toml"),
            );
            assert!(c.is_ok(), "{good}: {c:?}");
        }
    }

    #[test]
    fn a_bad_machine_entry_names_the_mac_the_value_and_what_is_allowed() {
        let err = Config::parse(
            "[machines]\n\"52:54:00:12:34:56\" = \"Debian 12!\"\n",
            Path::new("/n.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("52:54:00:12:34:56")
                && err.contains("`Debian 12!`")
                && err.contains("a-z 0-9")
                && !err.contains("untagged"),
            "{err}"
        );
        let err = Config::parse(
            "[machines]\n\"52:54:00:12:34:57\" = { image = \"deb\", loader = \"syslinux\" }\n",
            Path::new("/n.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("52:54:00:12:34:57")
                && err.contains("syslinux")
                && err.contains("pxelinux")
                && err.contains("grub"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let err = Config::parse(
            "data_dir = \"/d\"\ntrusted_publishers = [\"ed25519:zz\"]\n",
            Path::new("/etc/n.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/etc/n.toml"), "{err}");
        assert!(err.contains(":2: "), "{err}");
        assert!(
            err.contains("trusted_publishers") || err.contains("ed25519:zz"),
            "{err}"
        );

        let err = Config::parse("[store]\nkeep_version = 2\n", Path::new("/n.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("keep_version") && err.contains(":2: "),
            "{err}"
        );

        let err = Config::parse("[store]\nkeep_versions = 0\n", Path::new("/n.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 1"), "{err}");
    }
}

#[cfg(test)]
mod grub_tests {
    use super::*;

    #[test]
    fn grub_chain_settings_and_their_errors() {
        let text = r#"
            [boot]
            efi_loader = "grub"
            [boot.grub]
            efi_x64 = "shim/shimx64.efi"
            efi_arm64 = "shimaa64.efi"
            files_over = "tftp"
            [machines]
            "52:54:00:12:34:56" = { image = "debian", loader = "grub" }
            "52:54:00:12:34:57" = { image = "debian", loader = "ipxe" }
        "#;
        let c = Config::parse(text, Path::new("/n.toml")).unwrap();
        assert_eq!(c.boot.efi_loader, Loader::Grub);
        assert_eq!(c.boot.bios_loader, Loader::Ipxe);
        assert_eq!(c.boot.grub.efi_x64, "shim/shimx64.efi");
        assert_eq!(c.boot.grub.efi_arm64.as_deref(), Some("shimaa64.efi"));
        assert_eq!(c.boot.grub.grub_x64, "grubx64.efi");
        assert_eq!(c.boot.grub.grub_arm64, "grubaa64.efi");
        assert_eq!(c.boot.grub.files_over, GrubTransfer::Tftp);

        let defaults = Config::parse("", Path::new("/n.toml")).unwrap();
        assert_eq!(defaults.boot.efi_loader, Loader::Ipxe);
        assert_eq!(defaults.boot.grub.efi_x64, "shimx64.efi");
        assert_eq!(defaults.boot.grub.files_over, GrubTransfer::Http);

        let err = |text: &str| {
            Config::parse(text, Path::new("/etc/n.toml"))
                .unwrap_err()
                .to_string()
        };
        let e = err("[boot]\nbios_loader = \"grub\"\n");
        assert!(
            e.contains("/etc/n.toml") && e.contains("bios_loader"),
            "{e}"
        );
        let e = err("[boot]\nefi_loader = \"pxelinux\"\n");
        assert!(e.contains("efi_loader") && e.contains("BIOS-only"), "{e}");
        let e = err("[boot.grub]\nefi_x64 = \"../shim.efi\"\n");
        assert!(e.contains("/etc/n.toml:2: boot.grub.efi_x64: "), "{e}");
        let e = err("[boot.grub]\nshim = \"x\"\n");
        assert!(e.contains("shim") && e.contains(":2: "), "{e}");
        let e = err("[boot]\nefi_loader = \"grubb\"\n");
        assert!(e.contains("efi_loader") || e.contains("grubb"), "{e}");
    }
}

#[cfg(test)]
mod fleet_tests {
    use super::*;

    #[test]
    fn fleet_section() {
        let id = "ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6";
        let text = format!(
            "[fleet]\nlisten = \"0.0.0.0:7400\"\npeers = [\"{id}@10.1.0.1:7311\"]\nfetch = [\"debian-*\"]\nupload_limit = \"20 Mbit/s\"\n"
        );
        let c = Config::parse(&text, Path::new("/n.toml")).unwrap();
        let f = c.fleet.unwrap();
        assert_eq!(f.listen.port(), 7400);
        assert_eq!(f.peers.len(), 1);
        assert_eq!(f.upload_limit.unwrap().bytes_per_sec, 2_500_000);
        assert!(f.wants(&ImageName::from_static("debian-12")));
        assert!(!f.wants(&ImageName::from_static("ubuntu")));
        assert!(Config::parse("", Path::new("/n.toml"))
            .unwrap()
            .fleet
            .is_none());
        let err = Config::parse("[fleet]\npeers = [\"nope\"]\n", Path::new("/n.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("endpoint-id") && err.contains(":2: "), "{err}");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The example configs in docs/ must stay valid.
    #[test]
    fn documented_examples_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!config.trusted_publishers.is_empty(), "{}", path.display());
            seen += 1;
        }
        assert_eq!(seen, 3);
    }
}
