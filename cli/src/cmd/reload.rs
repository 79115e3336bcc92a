use std::{path::PathBuf, process::ExitCode};

use anyhow::{bail, Context};
use clap::Args;
use netboot_node::config::Config;

/// Tell the running node to re-read its config file (sends it SIGHUP).
///
/// Checks FILE first as `netboot check-config` does and, if it has mistakes, prints them and
/// signals nothing. Otherwise finds the node that holds the data dir's lock (its pid is in
/// DATA_DIR/netboot.lock) and, if that process is a `netboot node` (not, say, a publish in
/// progress), sends it SIGHUP; `kill -HUP <pid>` does the same.
///
/// The node re-reads the file it was started with (its --config). Applied at once, without
/// dropping a client: [machines], boot.default_image, boot.menu_timeout_secs, node.site,
/// and fleet.peers (added peers are dialled, removed ones dropped), fleet.members,
/// fleet.upload_limit (running uploads too) and fleet.fetch (releases only passed on before
/// that a widened list covers are fetched at once). Everything else (listen addresses, data_dir,
/// [dhcp], [tftp], the rest of [fleet], trusted_publishers, loaders and first-stage files)
/// keeps its old value until a restart; the node's log names each
/// such field. A file with mistakes is refused by the node too, which keeps running on the
/// config it has.
#[derive(Args)]
pub struct ReloadArgs {
    /// The node config file: where its data_dir is, and what is checked before signalling.
    #[arg(long, short = 'c', value_name = "FILE", default_value = netboot_node::config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

pub fn run(args: ReloadArgs) -> anyhow::Result<ExitCode> {
    let config = match Config::load_for_node(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("the node was not signalled: fix the file, then run netboot reload again");
            return Ok(ExitCode::FAILURE);
        }
    };
    let dir = &config.data_dir;
    let Some(pid) = netboot_node::store::lock_holder(dir)
        .with_context(|| format!("which node runs on {}", dir.display()))?
    else {
        bail!(
            "no node is running on {} (data_dir of {}): nothing holds its lock",
            dir.display(),
            args.config.display()
        );
    };
    // The lock is also held by one-shot commands (a publish); SIGHUP would end those.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if !args.iter().any(|a| a == "node") {
        bail!(
            "pid {pid} holds {} but is not a netboot node (it runs `{}`); not signalled",
            dir.display(),
            args.join(" ").trim()
        );
    }
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .with_context(|| {
            format!(
                "{}/netboot.lock names pid {pid}, not a process id",
                dir.display()
            )
        })?;
    rustix::process::kill_process(target, rustix::process::Signal::HUP)
        .with_context(|| format!("cannot send SIGHUP to the node (pid {pid})"))?;
    println!(
        "sent SIGHUP to the node (pid {pid}) running on {}; it re-reads its config file now, and its log says what was applied and what needs a restart",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
