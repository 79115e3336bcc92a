//! `netboot clients`: the machines a running node saw, read from its `/clients.json`.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use netboot_node::clients::{fleet::FleetClientsView, text, ClientsView};

use super::node_http::{client, get_json, NodeAddr};

const AFTER_HELP: &str = "\
Examples:
  netboot clients                                  # the node on this host (its --config)
  netboot clients --unknown                        # machines to assign an image to
  netboot clients --node http://branch-1.example --json | jq '.machines[].mac'
  netboot clients --fleet                          # every site's machines, asked at this node
  netboot clients --site branch-1                  # one site's machines (implies --fleet)

HOW FAR is the furthest stage the machine's last boot reached: dhcp_answered, first_stage
(iPXE, PXELINUX, GRUB), config (its boot script), kernel, initrd; or `not answered` and why
(proxy mode: not a PXE client; server mode: no free address...). The node keeps this record
in <data_dir>/clients.json across restarts; the same list is at http://<node>/clients.json.

--fleet asks the node, which asks each fleet peer it is connected to over the fleet control
protocol (members only) and waits at most 5 s for each; SITE is each node's `[node] site`
(else its host name) and NODE its fleet id. Peers that are not connected or did not answer
are listed below the table with why, never left out. The same list is at
http://<node>/fleet/clients.json.";

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
    /// Every site's machines: this node's, its fleet peers' and those of the sites behind
    /// them, up to four levels deep (needs `[fleet]` on the node).
    #[arg(long)]
    fleet: bool,
    /// Only the machines of site S (its `[node] site` label); implies --fleet.
    #[arg(long, value_name = "S")]
    site: Option<String>,
}

pub async fn run(args: ClientsArgs) -> anyhow::Result<ExitCode> {
    let url = args.node.url()?;
    if args.fleet || args.site.is_some() {
        return fleet(args, &url).await;
    }
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

async fn fleet(args: ClientsArgs, url: &str) -> anyhow::Result<ExitCode> {
    let (_, mut view): (String, FleetClientsView) = get_json(
        &client(),
        url,
        "/fleet/clients.json",
        "a fleet-wide netboot client list",
    )
    .await?;
    if let Some(site) = &args.site {
        let labels = view.site_labels();
        if !labels.contains(&site.as_str()) && view.silent.is_empty() {
            bail!(
                "no site `{site}` answered; the sites that did: {}",
                labels.join(", ")
            );
        }
        view.only_site(site);
    }
    if args.unknown {
        view.machines.retain(|m| text::is_unknown(&m.machine));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", text::render_fleet(&view, args.unknown));
    }
    Ok(ExitCode::SUCCESS)
}
