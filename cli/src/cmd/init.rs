use std::{path::PathBuf, process::ExitCode};

use anyhow::{bail, Context};
use clap::Args;
use netboot_node::config::{
    template::{self, Host, Role},
    DEFAULT_CONFIG_PATH, DEFAULT_DATA_DIR,
};

/// Write a commented config for this host and create its fleet identity.
///
/// The file names the boot interface (the one with the default route unless --interface is
/// given) and its address, the data dir, the DHCP mode of the role, and a [fleet] section; the
/// node's fleet identity (fleet.key) is created in the data dir and its id printed. An
/// existing file is never overwritten without --force. Then it prints the next steps: trust
/// a publisher key, publish, start the service, open the status page.
///
/// Roles (docs/operations.md): origin — where releases are published, beside the site's DHCP
/// server (proxy-DHCP); branch — a site fed by the fleet, proxy-DHCP; lab — an isolated
/// network without a DHCP server, the node hands out addresses from a pool in the
/// interface's subnet.
///
/// Example: `netboot init --role lab --interface lab0`, then `netboot check-config
/// /etc/netboot/netboot.toml`.
#[derive(Args)]
pub struct InitArgs {
    /// What this node is for: origin, branch or lab.
    #[arg(long, default_value = "branch", value_name = "ROLE")]
    role: Role,
    /// Where to write the config.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
    out: PathBuf,
    /// The node's data dir (store, fleet identity, leases).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The boot network's interface. Default: the one with the default route.
    #[arg(long, value_name = "IF")]
    interface: Option<String>,
    /// Replace an existing config file.
    #[arg(long)]
    force: bool,
}

pub fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists: not overwritten (check it with `netboot check-config {}`, or pass --force to replace it)",
            args.out.display(),
            args.out.display()
        );
    }
    let interface = match args.interface {
        Some(i) => i,
        None => default_route_interface()?,
    };
    let addrs = netboot_node::runtime::interface_addrs(&interface)?;
    let Some(&(ip, netmask)) = addrs.first() else {
        bail!("interface `{interface}` has no IPv4 address (or does not exist); pass --interface with the boot network's interface");
    };
    // The identity first: a file naming an id that was never created would mislead.
    let data_dir = std::path::absolute(&args.data_dir)
        .with_context(|| format!("data dir {}", args.data_dir.display()))?;
    let id = netboot_node::fleet::node_id(&data_dir)
        .with_context(|| format!("fleet identity in {}", data_dir.display()))?
        .to_string();
    let text = template::render(
        args.role,
        &Host {
            interface: &interface,
            ip,
            netmask,
            data_dir: &data_dir,
            node_id: &id,
        },
    )?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    netboot_node::fsutil::write_atomic(&args.out, text.as_bytes())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let out = args.out.display();
    let port = netboot_node::fleet::config::DEFAULT_FLEET_PORT;
    println!("{id}");
    eprintln!(
        "wrote {out} ({} on {interface}, {ip}); fleet identity in {}
peers list this node as {id}@{ip}:{port}

Next steps:
  1. Trust a publisher key: `netboot keygen --out publisher.key` on the publisher's machine
     prints ed25519:<hex>; put it in trusted_publishers in {out}.
  2. Fill the node (docs/operations.md, sections 3 and 4): publish the first-stage
     programs and an image with `netboot publish --config {out} --key publisher.key …`,
     or list the nodes it fetches from in [fleet] peers.
  3. Check the file and start the service:
     netboot check-config {out} && systemctl enable --now netboot
  4. Watch it: journalctl -u netboot -f, and the status page http://{ip}/",
        match args.role {
            Role::Lab => "DHCP server with a pool",
            _ => "proxy-DHCP",
        },
        data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The interface of the IPv4 default route with the lowest metric (/proc/net/route).
fn default_route_interface() -> anyhow::Result<String> {
    let table = std::fs::read_to_string("/proc/net/route")
        .context("cannot read /proc/net/route to find the default route; pass --interface")?;
    Ok(netboot_node::route::default_route(&table)?.interface)
}
