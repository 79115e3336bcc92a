//! `netboot status`: what a running node is doing, read from its `/status.json`.

use std::{collections::BTreeMap, io::IsTerminal, process::ExitCode, time::Duration};

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use netboot_node::status::{human_bytes, state_line, text, NodeStatus, ReleaseState};

use super::node_http::{client, get_json, HttpClient, NodeAddr};

const AFTER_HELP: &str = "\
Examples:
  netboot status                                  # the node on this host (its --config)
  netboot status --node http://branch-1.example   # another node on the LAN
  netboot status --json | jq '.releases[] | select(.state.kind == \"fetching\")'
  netboot status --watch                          # follow a fetch until it is committed

The same snapshot is at http://<node>/status.json, and as a page at http://<node>/.";

/// Show what a running node holds, fetches and refused, and its fleet peers.
///
/// Asks the node's HTTP port (GET /status.json); read-only, needs no access to the data
/// dir. Releases are listed with their size and state: complete, fetching N % from which
/// peer at what rate, or refused and why.
#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct StatusArgs {
    #[command(flatten)]
    node: NodeAddr,
    /// Print the snapshot as JSON (the node's /status.json) instead of tables.
    #[arg(long, conflicts_with = "watch")]
    json: bool,
    /// Follow every release being fetched with a progress bar until each is committed or
    /// refused (exit 1 if one is refused or disappears).
    #[arg(long)]
    watch: bool,
    /// Seconds between two looks with --watch.
    #[arg(long, value_name = "SECS", default_value_t = 1.0, requires = "watch")]
    interval: f64,
}

async fn fetch(client: &HttpClient, url: &str) -> anyhow::Result<(String, NodeStatus)> {
    get_json(client, url, "/status.json", "a netboot status").await
}

pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let url = args.node.url()?;
    let client = client();
    let (raw, status) = fetch(&client, &url).await?;
    if args.json {
        println!("{raw}");
        return Ok(ExitCode::SUCCESS);
    }
    if !args.watch {
        print!("{}", text::render(&status));
        return Ok(ExitCode::SUCCESS);
    }
    watch(
        &client,
        &url,
        status,
        Duration::from_secs_f64(args.interval.max(0.1)),
    )
    .await
}

type Key = (String, u64);

/// (held, total, state line, where from) of each release being fetched.
fn fetching(status: &NodeStatus) -> BTreeMap<Key, (u64, u64, String, String)> {
    status
        .releases
        .iter()
        .filter_map(|r| match &r.state {
            ReleaseState::Fetching {
                held_bytes,
                total_bytes,
                source,
                ..
            } => Some((
                (r.name.clone(), r.version),
                (
                    *held_bytes,
                    *total_bytes,
                    state_line(&r.state, status.generated_at),
                    source
                        .as_ref()
                        .map(|s| format!("from {} at {}/s", s.label, human_bytes(s.bytes_per_sec)))
                        .unwrap_or_else(|| "waiting for a peer".into()),
                ),
            )),
            _ => None,
        })
        .collect()
}

/// Follows the releases being fetched: a bar each on a terminal, a line per change of
/// whole ten percent otherwise (logs, CI).
async fn watch(
    client: &HttpClient,
    url: &str,
    mut status: NodeStatus,
    interval: Duration,
) -> anyhow::Result<ExitCode> {
    let followed: Vec<Key> = fetching(&status).into_keys().collect();
    if followed.is_empty() {
        println!("nothing is being fetched on {url}");
        print!("{}", text::render(&status));
        return Ok(ExitCode::SUCCESS);
    }
    // indicatif draws on stderr; without a terminal there, lines tell the progress.
    let tty = std::io::stderr().is_terminal();
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:20} {bar:30} {bytes}/{total_bytes} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let mut shown: BTreeMap<Key, (ProgressBar, Option<u64>)> = BTreeMap::new();
    for key in &followed {
        let bar = if tty {
            bars.add(ProgressBar::new(0))
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(style.clone());
        bar.set_prefix(format!("{} v{}", key.0, key.1));
        shown.insert(key.clone(), (bar, None));
    }
    let mut failed = false;
    loop {
        let now = fetching(&status);
        for (key, (bar, last_tenth)) in shown.iter_mut() {
            if bar.is_finished() {
                continue;
            }
            if let Some((held, total, line, source)) = now.get(key) {
                bar.set_length(*total);
                bar.set_position(*held);
                bar.set_message(source.clone());
                let tenth = held * 10 / (*total).max(1);
                if !tty && *last_tenth != Some(tenth) {
                    println!("{} v{}: {line}", key.0, key.1);
                    *last_tenth = Some(tenth);
                }
                continue;
            }
            // No longer fetching: committed, refused, or superseded by a newer version.
            let end = status
                .releases
                .iter()
                .find(|r| r.name == key.0 && r.version == key.1)
                .map(|r| (r.state.clone(), state_line(&r.state, status.generated_at)));
            let line = match end {
                Some((ReleaseState::Complete { .. }, line)) => line,
                Some((_, line)) => {
                    failed = true;
                    line
                }
                None => {
                    failed = true;
                    "no longer on the node (superseded by a newer version?)".into()
                }
            };
            bar.finish_and_clear();
            bars.suspend(|| println!("{} v{}: {line}", key.0, key.1));
        }
        if shown.values().all(|(b, _)| b.is_finished()) {
            break;
        }
        tokio::time::sleep(interval).await;
        status = fetch(client, url).await?.1;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
