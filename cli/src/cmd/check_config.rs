use std::{path::PathBuf, process::ExitCode};

use clap::Args;
use netboot_node::config::diagnose;

/// Check a node config without starting anything.
///
/// Reads FILE and reports every mistake as `FILE:LINE: field: problem` (TOML syntax, unknown
/// fields, wrong types, bad addresses and keys, and settings that cannot work together, such
/// as a DHCP pool outside the node's subnet or GRUB for BIOS machines), then exits 1. A
/// clean file prints a one-line summary and exits 0. Opens no socket and writes nothing;
/// what only the host can tell (the interface exists and has server_ip) is checked when
/// the node starts.
#[derive(Args)]
pub struct CheckConfigArgs {
    /// The node config file.
    #[arg(value_name = "FILE", default_value = netboot_node::config::DEFAULT_CONFIG_PATH)]
    file: PathBuf,
}

pub fn run(args: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let file = args.file.display();
    let text = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{file}: cannot read: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let config = match diagnose::diagnose_node(&text, &args.file) {
        Ok(config) => config,
        Err(mistakes) => {
            eprintln!("{mistakes}");
            let n = mistakes.list.len();
            eprintln!("{file}: {n} mistake{}", if n == 1 { "" } else { "s" });
            return Ok(ExitCode::FAILURE);
        }
    };
    let mode = format!("{:?}", config.dhcp.mode).to_lowercase();
    let on = config
        .dhcp
        .interface
        .as_deref()
        .map(|i| format!(" on {i}"))
        .unwrap_or_default();
    let fleet = match &config.fleet {
        Some(f) => format!("fleet with {} peers", f.peers.len()),
        None => "no fleet".into(),
    };
    println!(
        "{file}: ok (dhcp {mode}{on}, {} trusted publishers, {fleet})",
        config.trusted_publishers.len()
    );
    if config.trusted_publishers.is_empty() {
        eprintln!("{file}: note: trusted_publishers is empty: the node will accept and serve nothing until a publisher key is added");
    }
    Ok(ExitCode::SUCCESS)
}
