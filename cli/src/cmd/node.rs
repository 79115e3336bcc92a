use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Args;
use netboot_node::{config::Config, runtime::Node};

/// Run a node: proxy-DHCP (or DHCP), TFTP and HTTP from the verified store.
///
/// Everything comes from one TOML config (see docs/configuration.md). Logs one line per
/// client transaction (DHCP offer, script, file) at the default level; -v adds detail.
/// Stops cleanly on SIGINT/SIGTERM.
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
