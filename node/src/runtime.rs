//! Running a node: open the store, bind every listener (failing early with the config field
//! at fault), then serve until asked to stop.

pub mod reload;

use std::{net::Ipv4Addr, sync::Arc};

use netboot_proto::policy::NodeRef;
use tokio::net::TcpListener;

use crate::{
    boot::Loader,
    boot::{grub, BootPolicy, FirstStage, LivePolicy},
    clients::{ClientLog, Limits as ClientLimits},
    config::{Config, DhcpModeName, GrubTransfer},
    dhcp::{
        arch::{GrubBoot, MachineSet, PxelinuxBoot},
        BootFiles, DhcpConfig, DhcpMode, DhcpServer,
    },
    fleet::{Fleet, FleetError, Inventory},
    fsutil::now_unix,
    http::{self, HttpHandler, HttpLimits, Serves},
    integrity::VerifiedFiles,
    metrics::Metrics,
    policy::{held::Loaded, HeldPolicy},
    status::{NodeIdentity, StatusSource},
    store::{Store, StoreError, StoreOptions},
    tftp::{StoreSource, TftpConfig, TftpSource},
};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    #[error("cannot listen on {addr} ({field}): {cause}")]
    Bind {
        field: &'static str,
        addr: String,
        cause: std::io::Error,
    },
    #[error("dhcp: {0}")]
    Dhcp(String),
    #[error("fleet: {0}")]
    Fleet(#[from] FleetError),
}

/// The node's own address on the boot network: configured, or the interface's IPv4 address.
pub fn server_ip(config: &Config) -> Result<Ipv4Addr, RuntimeError> {
    if let Some(ip) = config.dhcp.server_ip {
        return Ok(ip);
    }
    let Some(iface) = &config.dhcp.interface else {
        return Err(RuntimeError::Config {
            field: "dhcp.server_ip",
            message: "set dhcp.server_ip, or dhcp.interface to take its address".into(),
        });
    };
    let addrs = if_addrs::get_if_addrs().map_err(|e| RuntimeError::Config {
        field: "dhcp.interface",
        message: e.to_string(),
    })?;
    addrs
        .iter()
        .filter(|a| &a.name == iface)
        .find_map(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            _ => None,
        })
        .ok_or_else(|| RuntimeError::Config {
            field: "dhcp.interface",
            message: format!(
                "interface `{iface}` has no IPv4 address (or does not exist); set dhcp.server_ip"
            ),
        })
}

/// IPv4 addresses and netmasks of `iface`.
pub fn interface_addrs(iface: &str) -> Result<Vec<(Ipv4Addr, Ipv4Addr)>, RuntimeError> {
    let addrs = if_addrs::get_if_addrs().map_err(|e| RuntimeError::Config {
        field: "dhcp.interface",
        message: e.to_string(),
    })?;
    Ok(addrs
        .into_iter()
        .filter(|a| a.name == iface)
        .filter_map(|a| match a.addr {
            if_addrs::IfAddr::V4(v4) => Some((v4.ip, v4.netmask)),
            _ => None,
        })
        .collect())
}

/// On the boot interface, `server_ip` must be one of its addresses (clients are told to
/// come back to it) and a server-mode pool must lie in that address's subnet (clients
/// given an address off the segment cannot reach anything).
pub fn check_interface(
    iface: &str,
    addrs: &[(Ipv4Addr, Ipv4Addr)],
    server_ip: Ipv4Addr,
    pool: Option<&crate::dhcp::PoolConfig>,
) -> Result<(), RuntimeError> {
    let Some(&(ip, mask)) = addrs.iter().find(|(ip, _)| *ip == server_ip) else {
        let have: Vec<String> = addrs.iter().map(|(ip, _)| ip.to_string()).collect();
        return Err(RuntimeError::Config {
            field: "dhcp.server_ip",
            message: format!(
                "{server_ip} is not an address of interface `{iface}` (it has {})",
                if have.is_empty() {
                    "no IPv4 address".to_string()
                } else {
                    have.join(", ")
                }
            ),
        });
    };
    if let Some(pool) = pool {
        let net = u32::from(ip) & u32::from(mask);
        let inside = |a: Ipv4Addr| u32::from(a) & u32::from(mask) == net;
        if !inside(pool.range_start) || !inside(pool.range_end) {
            return Err(RuntimeError::Config {
                field: "dhcp.pool",
                message: format!(
                    "range {}-{} is outside the subnet {}/{} of interface `{iface}`",
                    pool.range_start,
                    pool.range_end,
                    Ipv4Addr::from(net),
                    u32::from(mask).leading_ones()
                ),
            });
        }
    }
    Ok(())
}

/// PXELINUX for BIOS firmware: for every machine, or for those assigned to it.
fn pxelinux_boot(config: &Config, base_url: &str) -> Option<PxelinuxBoot> {
    let all = config.boot.bios_loader == Loader::Pxelinux;
    let macs: std::collections::BTreeSet<_> = config
        .machines
        .iter()
        .filter(|(_, m)| m.loader() == Some(Loader::Pxelinux))
        .map(|(mac, _)| *mac)
        .collect();
    (all || !macs.is_empty()).then(|| PxelinuxBoot {
        file: config.boot.pxelinux.clone(),
        path_prefix: format!("{base_url}/pxelinux/"),
        all,
        macs,
    })
}

/// shim + GRUB for UEFI firmware: for every machine (but those assigned another UEFI
/// loader), or for those assigned to it.
fn grub_boot(config: &Config) -> Option<GrubBoot> {
    let policy = boot_policy(config);
    let machines_on_grub = |on_grub: bool| -> std::collections::BTreeSet<_> {
        config
            .machines
            .keys()
            .filter(|mac| (policy.efi_loader_for(Some(mac)) == Loader::Grub) == on_grub)
            .copied()
            .collect()
    };
    let machines = if config.boot.efi_loader == Loader::Grub {
        MachineSet::All {
            except: machines_on_grub(false),
        }
    } else {
        let only = machines_on_grub(true);
        if only.is_empty() {
            return None;
        }
        MachineSet::Only(only)
    };
    Some(GrubBoot {
        efi_x64: config.boot.grub.efi_x64.clone(),
        efi_arm64: config.boot.grub.efi_arm64.clone(),
        machines,
    })
}

fn boot_policy(config: &Config) -> BootPolicy {
    BootPolicy {
        machines: config.machines.clone(),
        default_image: config.boot.default_image.clone(),
        menu_timeout_secs: config.boot.menu_timeout_secs,
        bios_loader: config.boot.bios_loader,
        efi_loader: config.boot.efi_loader,
        site: config.node.site.clone(),
        ..BootPolicy::default()
    }
}

/// Tells the operator at start-up when the GRUB chain lacks a file it will be asked for.
fn check_grub_files(config: &Config, store: &Store, first_stage: &FirstStage) {
    let g = &config.boot.grub;
    let mut wanted = vec![
        ("boot.grub.efi_x64", &g.efi_x64),
        ("boot.grub.grub_x64", &g.grub_x64),
    ];
    if let Some(shim) = &g.efi_arm64 {
        wanted.push(("boot.grub.efi_arm64", shim));
        wanted.push(("boot.grub.grub_arm64", &g.grub_arm64));
    }
    for (field, name) in wanted {
        match first_stage.lookup(store, name) {
            Ok(f) => tracing::info!("GRUB chain: {name} ({field}) from {}", f.origin),
            Err(e) => tracing::warn!("GRUB chain: {field}: {e}; UEFI machines on the GRUB loader will not boot until it is published"),
        }
    }
}

pub fn base_url(config: &Config, ip: Ipv4Addr) -> String {
    match &config.http.base_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None if config.http.listen.port() == 80 => format!("http://{ip}"),
        None => format!("http://{ip}:{}", config.http.listen.port()),
    }
}

/// A node whose listeners are bound and ready; [`Node::run`] serves.
pub struct Node {
    pub store: Arc<Store>,
    pub base_url: String,
    http_listener: TcpListener,
    http_handler: Arc<HttpHandler>,
    http_limits: HttpLimits,
    tftp: Option<(tokio::net::UdpSocket, Arc<StoreSource>, TftpConfig)>,
    dhcp: Option<DhcpServer>,
    fleet: Option<Fleet>,
    /// What each client did; the status page reads it.
    pub clients: ClientLog,
    /// `<data_dir>/clients.json`, where the client record is kept.
    clients_file: std::path::PathBuf,
    /// `[metrics] listen`, when `/metrics` has its own port.
    metrics_listener: Option<TcpListener>,
    reloader: reload::Reloader,
}

impl Node {
    pub async fn start(config: Config) -> Result<Self, RuntimeError> {
        let store = Arc::new(
            Store::open(StoreOptions {
                data_dir: config.data_dir.clone(),
                trusted: config.trusted_keys(),
                keep_versions: config.store.keep_versions,
            })
            .await?,
        );
        if config.trusted_publishers.is_empty() {
            tracing::warn!(
                "no trusted_publishers configured: this node accepts and serves nothing"
            );
        }
        let ip = server_ip(&config)?;
        if let (Some(iface), false) = (
            &config.dhcp.interface,
            config.dhcp.mode == DhcpModeName::Off,
        ) {
            let pool = match config.dhcp.mode {
                DhcpModeName::Server => config.dhcp.pool.as_ref(),
                _ => None,
            };
            check_interface(iface, &interface_addrs(iface)?, ip, pool)?;
        }
        let base_url = base_url(&config, ip);
        let first_stage = FirstStage {
            release: config.boot.first_stage.clone(),
            dir: config.boot.first_stage_dir.clone(),
        };
        if let Some(dir) = &first_stage.dir {
            tracing::warn!(
                "first-stage programs missing from release `{}` are served from {} WITHOUT verification",
                first_stage.release,
                dir.display()
            );
        }
        let grub = grub_boot(&config);
        let grub_files = grub::GrubFiles::new(
            &base_url,
            ip,
            config.boot.grub.files_over == GrubTransfer::Http,
        );
        if grub.is_some() {
            check_grub_files(&config, &store, &first_stage);
            tracing::info!(
                "GRUB loads kernels and initrds from {}",
                grub_files.describe()
            );
        }
        let http_listener = TcpListener::bind(config.http.listen)
            .await
            .map_err(|cause| RuntimeError::Bind {
                field: "http.listen",
                addr: config.http.listen.to_string(),
                cause,
            })?;
        let (held, loaded) = HeldPolicy::open(&config.data_dir, config.trusted_keys(), now_unix());
        match loaded {
            Loaded::Nothing => {}
            Loaded::Held(version) => tracing::info!("boot policy v{version} held: applying it"),
            Loaded::NotApplied(why) => tracing::warn!(
                "boot policy NOT applied: {why}; [machines] and default_image decide until a newer policy arrives"
            ),
        }
        let metrics = Arc::new(Metrics::new());
        let clients_file = config.data_dir.join(crate::clients::saved::FILE_NAME);
        let clients = ClientLog::from_saved(
            crate::clients::saved::load_or_set_aside(&clients_file, ClientLimits::default()),
            crate::clients::saved::load_once_or_set_aside(&crate::clients::saved::once_path(
                &clients_file,
            )),
            metrics.clone(),
        );
        let (policy_owner, policy) = LivePolicy::new(boot_policy(&config));
        let fleet = match &config.fleet {
            Some(settings) => {
                let inventory = Inventory {
                    clients: clients.clone(),
                    policy: policy.clone(),
                };
                let fleet = Fleet::start(
                    settings.clone(),
                    &config.data_dir,
                    store.clone(),
                    held.clone(),
                    inventory,
                );
                Some(fleet.await?)
            }
            None => None,
        };
        let node_ref = fleet.as_ref().map(|f| NodeRef(*f.id().as_bytes()));
        let policy = policy
            .with_held(held.subscribe(), node_ref)
            .with_once(clients.clone());
        let metrics_listener = match config.metrics.listen {
            Some(addr) => {
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|cause| RuntimeError::Bind {
                            field: "metrics.listen",
                            addr: addr.to_string(),
                            cause,
                        })?,
                )
            }
            None => None,
        };
        let http_handler = Arc::new(HttpHandler {
            store: store.clone(),
            base_url: base_url.clone(),
            policy,
            grub_files: grub_files.clone(),
            first_stage: first_stage.clone(),
            pxelinux_file: config.boot.pxelinux.clone(),
            verified: Arc::new(VerifiedFiles::default()),
            read_through: fleet.as_ref().map(Fleet::read_through),
            fleet_status: fleet.as_ref().map(Fleet::status_source),
            status: StatusSource {
                node: NodeIdentity::new(
                    &config,
                    &base_url,
                    fleet.as_ref().map(|f| f.id().to_string()),
                ),
                store: store.clone(),
                fleet: fleet.as_ref().map(Fleet::status_source),
                clients: clients.clone(),
                held: Some(held.clone()),
            },
            stopping: Arc::default(),
            clients: clients.clone(),
            metrics: metrics.clone(),
            serves: if metrics_listener.is_some() {
                Serves::BootOnly
            } else {
                Serves::BootAndMetrics
            },
        });
        let tftp = if config.tftp.enabled {
            let socket = tokio::net::UdpSocket::bind(config.tftp.listen)
                .await
                .map_err(|cause| RuntimeError::Bind {
                    field: "tftp.listen",
                    addr: config.tftp.listen.to_string(),
                    cause,
                })?;
            let source = Arc::new(StoreSource {
                store: store.clone(),
                policy: http_handler.policy.clone(),
                base_url: base_url.clone(),
                grub_files: grub_files.clone(),
                first_stage: first_stage.clone(),
                verified: http_handler.verified.clone(),
                clients: clients.clone(),
                metrics: metrics.clone(),
            });
            Some((socket, source, config.tftp.server_config()))
        } else {
            None
        };
        let dhcp = match config.dhcp.mode {
            DhcpModeName::Off => None,
            mode => {
                let mode = match mode {
                    DhcpModeName::Server => {
                        DhcpMode::Server(config.dhcp.pool.clone().ok_or(RuntimeError::Config {
                            field: "dhcp.pool",
                            message: "server mode needs a pool".into(),
                        })?)
                    }
                    _ => DhcpMode::Proxy,
                };
                let cfg = DhcpConfig {
                    mode,
                    server_ip: ip,
                    interface: config.dhcp.interface.clone(),
                    boot_files: BootFiles {
                        bios: config.boot.bios.clone(),
                        efi_x64: config.boot.efi_x64.clone(),
                        efi_ia32: config.boot.efi_ia32.clone(),
                        efi_arm64: config.boot.efi_arm64.clone(),
                        ipxe_script_url: format!("{base_url}/boot.ipxe"),
                        http_base_url: format!("{base_url}/first-stage"),
                        pxelinux: pxelinux_boot(&config, &base_url),
                        grub: grub.clone(),
                    },
                    ..DhcpConfig::default()
                };
                Some(
                    DhcpServer::bind(cfg)
                        .await
                        .map_err(|e| RuntimeError::Dhcp(e.to_string()))?
                        .report_to(clients.clone()),
                )
            }
        };
        let releases = store.releases();
        tracing::info!(
            "netboot node up: {} releases in {}, server {ip}, DHCP {:?}, HTTP {} ({base_url})",
            releases.len(),
            config.data_dir.display(),
            config.dhcp.mode,
            config.http.listen,
        );
        for r in &releases {
            tracing::info!(
                "serving {} v{} ({} files)",
                r.verified.name,
                r.verified.version,
                r.verified.files.len()
            );
        }
        Ok(Self {
            store,
            base_url,
            http_listener,
            http_handler,
            http_limits: config.http.limits(),
            reloader: reload::Reloader::new(config, policy_owner, fleet.as_ref().map(Fleet::live)),
            tftp,
            dhcp,
            fleet,
            clients,
            clients_file,
            metrics_listener,
        })
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        match &self.metrics_listener {
            Some(l) => l.local_addr().ok(),
            None => self.http_addr(),
        }
    }

    /// Applies a changed config file to this node while it runs (SIGHUP).
    pub fn reloader(&self) -> reload::Reloader {
        self.reloader.clone()
    }

    /// The fleet identity, when `[fleet]` is configured.
    pub fn fleet_id(&self) -> Option<String> {
        self.fleet.as_ref().map(|f| f.id().to_string())
    }

    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http_listener.local_addr().ok()
    }

    /// Serves until `shutdown` resolves, then closes the store cleanly.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), RuntimeError> {
        let Node {
            store,
            http_listener,
            http_handler,
            http_limits,
            tftp,
            dhcp,
            fleet,
            metrics_listener,
            clients,
            clients_file,
            ..
        } = self;
        // Both servers end their running transfers when told, and log them as stopped by
        // the node; the store closes only after that.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        // The same listener (limits, timeouts) and handler, answering /metrics only.
        let metrics = metrics_listener.map(|l| {
            if let Ok(addr) = l.local_addr() {
                tracing::info!("metrics: http://{addr}/metrics");
            }
            let handler = Arc::new(HttpHandler {
                serves: Serves::MetricsOnly,
                ..(*http_handler).clone()
            });
            tokio::spawn(http::serve(
                l,
                handler,
                http_limits,
                stopped(stop_rx.clone()),
            ))
        });
        let http = tokio::spawn(http::serve(
            http_listener,
            http_handler,
            http_limits,
            stopped(stop_rx.clone()),
        ));
        let tftp = tftp.map(|(socket, source, config)| {
            let source: Arc<dyn TftpSource> = source;
            tokio::spawn(crate::tftp::serve_until_stopped(
                socket,
                source,
                config,
                stopped(stop_rx.clone()),
            ))
        });
        let dhcp = dhcp.map(|d| tokio::spawn(d.run()));
        let saver = tokio::spawn(crate::clients::saved::keep_saved(
            clients.clone(),
            clients_file.clone(),
            stopped(stop_rx.clone()),
        ));
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        if let Some(d) = dhcp {
            d.abort();
        }
        let _ = http.await;
        if let Some(m) = metrics {
            let _ = m.await;
        }
        if let Some(t) = tftp {
            let _ = t.await;
        }
        // The servers have stopped: what they recorded last goes to disk too.
        if let Ok(mut saved_at) = saver.await {
            crate::clients::saved::save_if_changed(&clients, &clients_file, &mut saved_at).await;
        }
        match fleet {
            // The fleet's router closes (and flushes) the blob store it serves from, partial
            // downloads included, so a restart resumes them.
            Some(fleet) => fleet.shutdown().await,
            None => store.shutdown().await,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn grub_of(text: &str) -> Option<GrubBoot> {
        grub_boot(&Config::parse(text, Path::new("/n.toml")).unwrap())
    }

    #[test]
    fn which_machines_get_the_grub_chain() {
        let (a, b) = ("52:54:00:00:00:01", "52:54:00:00:00:02");
        assert_eq!(grub_of(""), None, "nobody asked for GRUB");
        let site = grub_of(&format!(
            "[boot]\nefi_loader = \"grub\"\n[machines]\n\"{a}\" = {{ image = \"x\", loader = \"ipxe\" }}\n\"{b}\" = {{ image = \"x\", loader = \"pxelinux\" }}\n"
        ))
        .unwrap();
        assert_eq!(site.efi_x64, "shimx64.efi");
        assert_eq!(
            site.machines,
            MachineSet::All {
                except: [a.parse().unwrap()].into()
            },
            "pxelinux is BIOS-only, so that machine's UEFI firmware keeps the site's GRUB"
        );
        let one = grub_of(&format!(
            "[boot.grub]\nefi_arm64 = \"shimaa64.efi\"\n[machines]\n\"{a}\" = {{ image = \"x\", loader = \"grub\" }}\n\"{b}\" = \"x\"\n"
        ))
        .unwrap();
        assert_eq!(one.machines, MachineSet::Only([a.parse().unwrap()].into()));
        assert_eq!(one.efi_arm64.as_deref(), Some("shimaa64.efi"));
    }

    #[test]
    fn server_ip_and_pool_must_fit_the_interface() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let addrs = [(ip("10.1.0.1"), ip("255.255.255.0"))];
        let pool = |start: &str, end: &str| {
            crate::dhcp::PoolConfig::new(ip(start), ip(end), ip("255.255.255.0"))
        };
        assert!(check_interface("br0", &addrs, ip("10.1.0.1"), None).is_ok());
        let ok = pool("10.1.0.100", "10.1.0.200");
        assert!(check_interface("br0", &addrs, ip("10.1.0.1"), Some(&ok)).is_ok());
        let err = check_interface("br0", &addrs, ip("10.9.0.1"), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("dhcp.server_ip: 10.9.0.1")
                && err.contains("`br0`")
                && err.contains("10.1.0.1"),
            "{err}"
        );
        let off = pool("10.2.0.100", "10.2.0.200");
        let err = check_interface("br0", &addrs, ip("10.1.0.1"), Some(&off))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("dhcp.pool: range 10.2.0.100-10.2.0.200")
                && err.contains("10.1.0.0/24"),
            "{err}"
        );
        let err = check_interface("br0", &[], ip("10.1.0.1"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no IPv4 address"), "{err}");
    }
}
