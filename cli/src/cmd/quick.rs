use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use netboot_node::quick::{self, QuickOptions};

use super::{node::Signals, publish::ImageArgs};

/// Boot every PXE client on this network from one kernel + initrd (or an ISO), with no
/// config file: a one-site trial.
///
/// It uses the interface that has the default route (or --interface) and its IPv4 address,
/// and runs proxy-DHCP beside the site's own DHCP server: that server still hands out the
/// addresses, netboot only tells PXE firmware where to boot from. TFTP (port 69) and HTTP
/// (--http-port) serve the first stage and the image. It creates an ephemeral publisher
/// key (kept in memory) and a data dir in a new temporary directory ($TMPDIR or /tmp),
/// publishes the image and the first-stage programs of Debian's `ipxe` package
/// (/usr/lib/ipxe: undionly.kpxe for BIOS, snponly.efi or ipxe.efi for UEFI), then prints
/// each client's progress on stdout, one line per stage (DHCP answer, first stage, boot
/// script, kernel, initrd); the node's log goes to stderr. Ctrl-C
/// (SIGINT) or SIGTERM stops it and removes the temporary directory.
///
/// Needs: root or CAP_NET_BIND_SERVICE + CAP_NET_RAW (ports 67, 69, 80; DHCP on the
/// interface), and `apt-get install ipxe`.
///
/// Example:
///   sudo netboot quick --kernel vmlinuz --initrd initrd.img \
///       --cmdline 'console=ttyS0 boot=live fetch={{image_url}}/filesystem.squashfs' \
///       --file filesystem.squashfs
///
/// For a lasting setup (verified releases from a publisher, a fleet of sites), write a config
/// and run `netboot node` instead.
#[derive(Args)]
#[command(
    verbatim_doc_comment,
    group = clap::ArgGroup::new("boot").args(["kernel", "iso"]).required(true)
)]
pub struct QuickArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// The boot network's interface. Default: the one with the default route.
    #[arg(long, value_name = "IF")]
    interface: Option<String>,
    /// HTTP port for the image and the iPXE scripts.
    #[arg(long, value_name = "N", default_value_t = 80)]
    http_port: u16,
}

pub async fn run(args: QuickArgs) -> anyhow::Result<ExitCode> {
    let signals = Signals::new().context("cannot install signal handlers")?;
    let options = QuickOptions {
        kernel: args.image.kernel,
        initrds: args.image.initrd,
        cmdline: args.image.cmdline,
        iso: args.image.iso,
        files: args.image.file,
        interface: args.interface,
        http_port: args.http_port,
    };
    // Client progress on stdout, the node's log on stderr.
    quick::run(options, signals.shutdown(), |line| println!("{line}")).await?;
    Ok(ExitCode::SUCCESS)
}
