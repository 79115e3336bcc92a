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
/// progress resumes at the next start. On SIGHUP (or `netboot reload`) it re-reads the
/// config file: [machines], boot.default_image and boot.menu_timeout_secs apply at once;
/// the log names every other changed field as needing a restart; a file with mistakes is
/// refused and the node keeps its config.
#[derive(Args)]
pub struct NodeArgs {
    /// The node config file.
    #[arg(long, short = 'c', value_name = "FILE", default_value = netboot_node::config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

pub async fn run(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    // Before the node is up: a signal that arrives early must find its handler in place
    // (SIGHUP's default action would end the process without a word).
    let signals = Signals::new().context("cannot install signal handlers")?;
    let node = Node::start(config)
        .await
        .with_context(|| format!("cannot start the node of {}", args.config.display()))?;
    let reloader = node.reloader();
    let path = args.config.clone();
    node.run(signals.shutdown_or_reload(move || {
        tracing::info!("SIGHUP received: re-reading {}", path.display());
        reloader.reload_file(&path);
    }))
    .await?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Resolves on SIGTERM or SIGINT; SIGHUP is logged and ignored (no config to re-read).
    pub(crate) async fn shutdown(self) {
        self.shutdown_or_reload(|| {
            tracing::info!("SIGHUP received: ignored (this command has no config file to re-read)")
        })
        .await
    }

    /// Resolves on SIGTERM or SIGINT, calling `reload` on each SIGHUP.
    pub(crate) async fn shutdown_or_reload(mut self, mut reload: impl FnMut()) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => reload(),
            }
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
