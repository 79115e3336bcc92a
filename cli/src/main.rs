//! `netboot`: the command line. It parses arguments and calls the `netboot-node` library;
//! everything with logic in it lives there.

mod cmd;
mod logging;
mod progress;
mod target;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const ABOUT: &str =
    "Peer-to-peer fleet netboot cache: signed boot images, verified before a byte is served.";

const LONG_ABOUT: &str = "\
netboot serves PXE/UEFI network boots at each site from a local node, and moves signed boot
images between sites. A publisher signs a release (kernel, initrds, command line, or an ISO)
with an ed25519 key; nodes accept it only if the key is trusted, the version is newer than
what they hold, it has not expired, and every file's BLAKE3 hash matches.

Typical first steps:
  netboot keygen --out publisher.key            # prints the public key to trust
  netboot publish --key publisher.key --data-dir /var/lib/netboot \\
      --trust ed25519:<key> --name debian-12 \\
      --kernel vmlinuz --initrd initrd.img --cmdline 'console=ttyS0 ip=dhcp'
  netboot images --data-dir /var/lib/netboot --trust ed25519:<key>
  netboot verify --config /etc/netboot/netboot.toml
  netboot repair --config /etc/netboot/netboot.toml   # if the node says its blob index is damaged
  netboot status                                      # what a running node holds and fetches
  netboot clients [--unknown]                         # the machines it saw and how far they got

A node: write its config for this host, check it, run it (the Debian package's
netboot.service runs `netboot node`):
  netboot init --role branch          # or origin, lab; prints the node's fleet id
  netboot check-config /etc/netboot/netboot.toml
  netboot node --config /etc/netboot/netboot.toml [--log-format json]

A fleet: give each node a [fleet] section listing its peers as <endpoint-id>@<host:port>
(`netboot node-id` prints a node's id), then publish once to any node:
  netboot publish --key publisher.key --to <endpoint-id>@regional.example:7311 --name debian-12 ...
Every node that trusts the key fetches the release from its nearest peer and verifies it.

Boot policies (who boots what, fleet-wide; signed and checked today, not yet applied by nodes):
  netboot policy sign --key publisher.key policy.toml --out policy.nbpol
  netboot policy explain --policy policy.nbpol --mac 52:54:00:12:34:56 --site branch-1

To try it on one LAN with no config (proxy-DHCP beside the site's DHCP server):
  sudo netboot quick --kernel vmlinuz --initrd initrd.img --cmdline 'console=ttyS0'";

#[derive(Parser)]
#[command(name = "netboot", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    /// More log output (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log format: text, or json (one object per line for log shippers, with the client's
    /// MAC or address as a field).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text, value_name = "FORMAT", hide_possible_values = true)]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once at start-up; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    Node(cmd::node::NodeArgs),
    NodeId(cmd::node::NodeIdArgs),
    Keygen(cmd::keys::KeygenArgs),
    Pubkey(cmd::keys::PubkeyArgs),
    Publish(cmd::publish::PublishArgs),
    Images(cmd::images::ImagesArgs),
    Verify(cmd::verify::VerifyArgs),
    Repair(cmd::repair::RepairArgs),
    Import(cmd::bundle::ImportArgs),
    Export(cmd::bundle::ExportArgs),
    Status(cmd::status::StatusArgs),
    Clients(cmd::clients::ClientsArgs),
    Init(cmd::init::InitArgs),
    CheckConfig(cmd::check_config::CheckConfigArgs),
    Quick(cmd::quick::QuickArgs),
    Reload(cmd::reload::ReloadArgs),
    Policy(cmd::policy::PolicyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let daemon = matches!(cli.command, Command::Node(_) | Command::Quick(_));
    if !daemon {
        exit_quietly_on_closed_pipe();
    }
    logging::init(cli.verbose, daemon, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Node(args) => cmd::node::run(args).await,
            Command::NodeId(args) => cmd::node::node_id(args),
            Command::Reload(args) => cmd::reload::run(args),
            Command::Keygen(args) => cmd::keys::keygen(args),
            Command::Pubkey(args) => cmd::keys::pubkey(args),
            Command::Publish(args) => cmd::publish::run(args).await,
            Command::Images(args) => cmd::images::run(args).await,
            Command::Verify(args) => cmd::verify::run(args).await,
            Command::Repair(args) => cmd::repair::run(args).await,
            Command::Import(args) => cmd::bundle::import(args).await,
            Command::Export(args) => cmd::bundle::export(args).await,
            Command::Status(args) => cmd::status::run(args).await,
            Command::Clients(args) => cmd::clients::run(args).await,
            Command::Init(args) => cmd::init::run(args),
            Command::CheckConfig(args) => cmd::check_config::run(args),
            Command::Quick(args) => cmd::quick::run(args).await,
            Command::Policy(args) => cmd::policy::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `netboot clients | head` must end like `cat … | head`: quietly, when the reader has gone.
/// Rust ignores SIGPIPE, so a write to the closed pipe fails and `println!` panics; the
/// one-shot commands get the default disposition back (the kernel ends the process). The
/// daemons keep ignoring it: a log reader going away must not take the node down.
fn exit_quietly_on_closed_pipe() {
    // SAFETY: called first thing in `main`, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
