//! `netboot quick`: one site, one command, no config file. The node's interface is the one
//! with the default route (or the one named), it runs proxy-DHCP beside the site's DHCP
//! server, and everything it needs — an ephemeral publisher key, a data dir with the image
//! and the first-stage programs from Debian's packages — lives in one temporary directory
//! that is removed when it stops, on Ctrl-C as on any error.

pub mod programs;
pub mod progress;

use std::{
    future::Future,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
};

use netboot_proto::{ImageName, PublicKey, SecretKey};

use crate::{
    config::{BootSection, Config, DhcpModeName, DhcpSection, HttpSection},
    publish::{publish_to_store, FileArg, PublishError, PublishSpec},
    route,
    runtime::{self, Node, RuntimeError},
    store::{Store, StoreError, StoreOptions},
};

pub use programs::Programs;

/// The image every client boots.
pub const IMAGE: &str = "quick";
/// The files-only release of first-stage programs.
const FIRST_STAGE: &str = "ipxe";

/// What `netboot quick` was asked to boot, and where.
#[derive(Debug, Clone)]
pub struct QuickOptions {
    pub kernel: Option<FileArg>,
    pub initrds: Vec<FileArg>,
    pub cmdline: String,
    pub iso: Option<FileArg>,
    /// Other files of the image (a squashfs root, …).
    pub files: Vec<FileArg>,
    /// The boot network's interface; default: the default route's.
    pub interface: Option<String>,
    pub http_port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum QuickError {
    #[error("cannot read /proc/net/route to find the default route: {0}; pass --interface")]
    RouteTable(std::io::Error),
    #[error(transparent)]
    Route(#[from] route::RouteError),
    #[error("interface `{0}` has no IPv4 address (or does not exist); pass --interface with the boot network's interface")]
    NoAddress(String),
    #[error("cannot list the addresses of interface `{0}`: {1}")]
    Addresses(String, String),
    #[error(transparent)]
    Programs(#[from] programs::NoPrograms),
    #[error("cannot create a temporary directory in {0}: {1}")]
    TempDir(PathBuf, std::io::Error),
    #[error("cannot get randomness from the OS for the publisher key: {0}")]
    Random(String),
    #[error("store in {0}: {1}")]
    Store(PathBuf, StoreError),
    #[error("cannot publish {0}: {1}")]
    Publish(&'static str, PublishError),
    #[error("cannot listen on {addr} ({what}): {cause}")]
    Listen {
        what: &'static str,
        addr: String,
        cause: std::io::Error,
    },
    #[error(transparent)]
    Runtime(RuntimeError),
    #[error("could not remove {0}: {1}")]
    Cleanup(PathBuf, std::io::Error),
}

/// The boot interface and the node's address on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub interface: String,
    pub ip: Ipv4Addr,
}

/// Finds the boot interface (the one asked for, or the default route's) and its address.
pub fn site(interface: Option<&str>) -> Result<Site, QuickError> {
    let (interface, gateway) = match interface {
        Some(i) => (i.to_string(), None),
        None => {
            let table =
                std::fs::read_to_string("/proc/net/route").map_err(QuickError::RouteTable)?;
            let r = route::default_route(&table)?;
            (r.interface, Some(r.gateway))
        }
    };
    let addrs = runtime::interface_addrs(&interface)
        .map_err(|e| QuickError::Addresses(interface.clone(), e.to_string()))?;
    let ip = route::address_toward(&addrs, gateway.unwrap_or(Ipv4Addr::UNSPECIFIED))
        .ok_or_else(|| QuickError::NoAddress(interface.clone()))?;
    Ok(Site { interface, ip })
}

/// The node's configuration: proxy-DHCP on the site's interface, TFTP and HTTP on all
/// addresses, every client booting [`IMAGE`].
pub fn node_config(
    data_dir: &Path,
    publisher: PublicKey,
    site: &Site,
    http_port: u16,
    programs: &Programs,
) -> Config {
    let defaults = BootSection::default();
    Config {
        data_dir: data_dir.to_path_buf(),
        trusted_publishers: vec![publisher],
        store: Default::default(),
        node: Default::default(),
        dhcp: DhcpSection {
            mode: DhcpModeName::Proxy,
            interface: Some(site.interface.clone()),
            server_ip: Some(site.ip),
            pool: None,
        },
        tftp: Default::default(),
        http: HttpSection {
            listen: SocketAddr::from(([0, 0, 0, 0], http_port)),
            ..HttpSection::default()
        },
        boot: BootSection {
            first_stage: ImageName::from_static(FIRST_STAGE),
            default_image: Some(ImageName::from_static(IMAGE)),
            bios: programs.bios.clone().unwrap_or(defaults.bios.clone()),
            efi_x64: programs.efi_x64.clone().unwrap_or(defaults.efi_x64.clone()),
            ..defaults
        },
        metrics: Default::default(),
        machines: Default::default(),
        fleet: None,
    }
}

/// Runs until `shutdown` resolves (or setup fails), then removes everything it created.
/// `on_progress` gets one line per client and boot stage reached (see [`progress`]).
pub async fn run(
    options: QuickOptions,
    shutdown: impl Future<Output = ()>,
    on_progress: impl Fn(&str) + Send + 'static,
) -> Result<(), QuickError> {
    // Everything that can fail without creating anything comes first.
    let site = site(options.interface.as_deref())?;
    let programs = programs::find(Path::is_file)?;
    for m in &programs.missing {
        tracing::warn!("{m}: those clients will not boot");
    }
    let parent = std::env::temp_dir();
    // Owner-only, as a node's data dir would be: other users of the host have no business
    // in the store.
    let temp = tempfile::Builder::new()
        .prefix("netboot-quick-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir_in(&parent)
        .map_err(|e| QuickError::TempDir(parent, e))?;
    let dir = temp.path().to_path_buf();
    tracing::info!("working in {} (removed when this stops)", dir.display());
    let served = serve(&options, &site, &programs, &dir, shutdown, on_progress).await;
    // Whatever happened, the directory goes; the store is closed by now.
    let removed = temp
        .close()
        .map_err(|e| QuickError::Cleanup(dir.clone(), e));
    if removed.is_ok() {
        tracing::info!("removed {}", dir.display());
    }
    served.and(removed)
}

async fn serve(
    options: &QuickOptions,
    site: &Site,
    programs: &Programs,
    dir: &Path,
    shutdown: impl Future<Output = ()>,
    on_progress: impl Fn(&str) + Send + 'static,
) -> Result<(), QuickError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| QuickError::Random(e.to_string()))?;
    // Held in memory only: nothing outlives this run that it could sign.
    let key = SecretKey::from_seed(seed);
    let config = node_config(
        &dir.join("data"),
        key.public(),
        site,
        options.http_port,
        programs,
    );
    tokio::pin!(shutdown);
    let store = Store::open(StoreOptions {
        data_dir: config.data_dir.clone(),
        trusted: config.trusted_keys(),
        keep_versions: config.store.keep_versions,
    })
    .await
    .map_err(|e| QuickError::Store(config.data_dir.clone(), e))?;
    // Ctrl-C while an ISO is being hashed ends the publish at once; the store is closed
    // either way before its directory is removed.
    let published = tokio::select! {
        r = publish(&store, &key, options, programs) => Some(r),
        _ = &mut shutdown => None,
    };
    store.close().await;
    let Some(published) = published else {
        tracing::info!("stopped before the node was up");
        return Ok(());
    };
    published?;
    let node = start_node(config).await?;
    tracing::info!(
        "netboot quick: every PXE client on {} boots `{IMAGE}` from {} (proxy-DHCP beside the site's DHCP server; BIOS: {}, UEFI x86-64: {}); Ctrl-C stops",
        site.interface,
        node.base_url,
        programs.bios.as_deref().unwrap_or("none"),
        programs.efi_x64.as_deref().unwrap_or("none"),
    );
    let clients = node.clients.clone();
    let reporter = tokio::spawn(async move {
        let mut progress = progress::Progress::default();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            for line in progress.update(&clients.recent_boots(usize::MAX)) {
                on_progress(&line);
            }
        }
    });
    let ran = node.run(shutdown).await;
    reporter.abort();
    ran.map_err(QuickError::Runtime)
}

/// The ordinary node on the store quick filled.
async fn start_node(config: Config) -> Result<Node, QuickError> {
    Node::start(config).await.map_err(|e| match e {
        // Name the option, not the config field quick filled in for it.
        RuntimeError::Bind { field, addr, cause } => QuickError::Listen {
            what: match field {
                "http.listen" => {
                    "HTTP: another web server on this port? choose one with --http-port"
                }
                "tftp.listen" => "TFTP: another TFTP server running?",
                other => other,
            },
            addr,
            cause,
        },
        other => QuickError::Runtime(other),
    })
}

/// Publishes the first-stage programs and the image.
async fn publish(
    store: &Store,
    key: &SecretKey,
    options: &QuickOptions,
    programs: &Programs,
) -> Result<(), QuickError> {
    let mut first_stage = Vec::with_capacity(programs.files.len());
    for (name, path) in &programs.files {
        first_stage.push(FileArg {
            path: name.parse().map_err(|e| {
                QuickError::Publish(
                    "the first-stage programs",
                    PublishError::Usage(format!("{name}: {e}")),
                )
            })?,
            source: path.clone(),
        });
    }
    let specs = [
        (
            "the first-stage programs",
            PublishSpec {
                name: ImageName::from_static(FIRST_STAGE),
                version: Some(1),
                kernel: None,
                initrds: Vec::new(),
                cmdline: String::new(),
                iso: None,
                files: first_stage,
                expires_in: None,
            },
        ),
        (
            "the image",
            PublishSpec {
                name: ImageName::from_static(IMAGE),
                version: Some(1),
                kernel: options.kernel.clone(),
                initrds: options.initrds.clone(),
                cmdline: options.cmdline.clone(),
                iso: options.iso.clone(),
                files: options.files.clone(),
                expires_in: None,
            },
        ),
    ];
    for (what, spec) in &specs {
        let accepted = publish_to_store(store, key, spec, &mut |_| {})
            .await
            .map_err(|e| QuickError::Publish(what, e))?;
        tracing::info!(
            "published {what} as {} v{}: {}",
            accepted.name,
            accepted.version,
            match spec.name.as_str() {
                FIRST_STAGE => programs
                    .files
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => describe(spec),
            }
        );
    }
    Ok(())
}

fn describe(spec: &PublishSpec) -> String {
    let mut parts = Vec::new();
    if let Some(k) = &spec.kernel {
        parts.push(format!("kernel {}", k.path));
    }
    for i in &spec.initrds {
        parts.push(format!("initrd {}", i.path));
    }
    if let Some(iso) = &spec.iso {
        parts.push(format!("ISO {}", iso.path));
    }
    for f in &spec.files {
        parts.push(f.path.to_string());
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_runs_proxy_dhcp_on_the_site_and_boots_the_image() {
        let site = Site {
            interface: "eth0".into(),
            ip: Ipv4Addr::new(192, 168, 1, 20),
        };
        let programs =
            programs::find(|p| p.ends_with("undionly.kpxe") || p.ends_with("ipxe.efi")).unwrap();
        let key = SecretKey::from_seed([7; 32]).public();
        let c = node_config(Path::new("/tmp/q/data"), key, &site, 8080, &programs);
        assert_eq!(c.dhcp.mode, DhcpModeName::Proxy);
        assert!(c.dhcp.pool.is_none(), "never hands out addresses");
        assert_eq!(c.dhcp.interface.as_deref(), Some("eth0"));
        assert_eq!(c.dhcp.server_ip, Some(site.ip));
        assert_eq!(c.http.listen.port(), 8080);
        assert_eq!(runtime::base_url(&c, site.ip), "http://192.168.1.20:8080");
        assert_eq!(
            c.boot.default_image.as_ref().map(|n| n.as_str()),
            Some(IMAGE)
        );
        assert_eq!(c.boot.first_stage.as_str(), FIRST_STAGE);
        assert_eq!(c.boot.bios, "undionly.kpxe");
        assert_eq!(c.boot.efi_x64, "ipxe.efi");
        assert_eq!(c.trusted_publishers, vec![key]);
        assert!(c.fleet.is_none());
    }
}
