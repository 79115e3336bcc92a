//! `netboot clients`: the machines a running node saw, read from its `/clients.json`.

use std::process::ExitCode;

use clap::Args;
use netboot_node::clients::{text, ClientsView};

use super::node_http::{client, get_json, NodeAddr};

const AFTER_HELP: &str = "\
Examples:
  netboot clients                                  # the node on this host (its --config)
  netboot clients --unknown                        # machines to assign an image to
  netboot clients --node http://branch-1.example --json | jq '.machines[].mac'

HOW FAR is the furthest stage the machine's last boot reached: dhcp_answered, first_stage
(iPXE, PXELINUX, GRUB), config (its boot script), kernel, initrd; or `not answered` and why
(proxy mode: not a PXE client; server mode: no free address...). The node keeps this record
in <data_dir>/clients.json across restarts; the same list is at http://<node>/clients.json.";

/// List the machines a running node saw: MAC, architecture, vendor class, when last seen,
/// the image it was given and how far its last boot got.
///
/// Asks the node's HTTP port (GET /clients.json); read-only, needs no access to the data
/// dir. Most recently seen first.
#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct ClientsArgs {
    #[command(flatten)]
    node: NodeAddr,
    /// Print the list as JSON (the node's /clients.json, filtered by --unknown) instead of
    /// a table.
    #[arg(long)]
    json: bool,
    /// Only machines that were given no image: not answered, or nothing assigned to them.
    #[arg(long)]
    unknown: bool,
}

pub async fn run(args: ClientsArgs) -> anyhow::Result<ExitCode> {
    let url = args.node.url()?;
    let (raw, mut view): (String, ClientsView) =
        get_json(&client(), &url, "/clients.json", "a netboot client list").await?;
    if args.json && !args.unknown {
        println!("{raw}");
    } else if args.json {
        view.machines.retain(text::is_unknown);
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", text::render(&view, args.unknown));
    }
    Ok(ExitCode::SUCCESS)
}
