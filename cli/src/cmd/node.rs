use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Args;
use netboot_node::{config::Config, runtime::Node};

/// Run a node: proxy-DHCP (or DHCP), TFTP and HTTP from the verified store, and, with a
/// [fleet] section, sync signed releases with peer sites.
///
/// Everything comes from one TOML config (see docs/configuration.md). Logs one line per
/// client transaction (DHCP offer, script, file) and per fleet event (release learned,
/// fetched from whom, refused and why) at the default level; -v adds detail. Fleet state:
/// GET /fleet/status.json on the HTTP port. Stops cleanly on SIGINT/SIGTERM; a fetch in
/// progress resumes at the next start.
#[derive(Args)]
pub struct NodeArgs {
    /// The node config file.
    #[arg(long, short = 'c', value_name = "FILE", default_value = netboot_node::config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

pub async fn run(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let node = Node::start(config)
        .await
        .with_context(|| format!("cannot start the node of {}", args.config.display()))?;
    node.run(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Print this node's fleet identity (its endpoint id), creating it on first use.
///
/// Other nodes list this node as `<endpoint-id>@<host:port>` in their [fleet] peers, with
/// the address and [fleet] listen port they reach it at; `publish --to` takes the same form.
/// The identity key lives in the data dir (fleet.key); keep it with the node's data.
#[derive(Args)]
pub struct NodeIdArgs {
    #[command(flatten)]
    target: crate::target::StoreArgs,
}

pub fn node_id(args: NodeIdArgs) -> anyhow::Result<ExitCode> {
    let config = args.target.config()?;
    let id = netboot_node::fleet::node_id(&config.data_dir)
        .with_context(|| format!("fleet identity in {}", config.data_dir.display()))?;
    println!("{id}");
    let port = config
        .fleet
        .as_ref()
        .map(|f| f.listen.port())
        .unwrap_or(netboot_node::fleet::config::DEFAULT_FLEET_PORT);
    eprintln!("peers list this node as {id}@<its address>:{port}");
    Ok(ExitCode::SUCCESS)
}
