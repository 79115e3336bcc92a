use std::{collections::HashMap, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::Args;
use netboot_node::{
    fleet::{
        publish_remote::{publish_to_node, RemoteProgress},
        PeerAddr,
    },
    publish::{publish_to_bundle, publish_to_store, FileArg, PublishEvent, PublishSpec},
};
use netboot_proto::ImageName;

use crate::{
    progress::{human_bytes, FileProgress},
    target::StoreArgs,
};

/// Build, sign and publish a release of a boot image.
///
/// Every FILE argument may be written PATH=FILE to choose its path inside the image
/// (default: the file's name), e.g. `--file live/filesystem.squashfs=./fs.sfs`.
/// The kernel command line may use {{base_url}}, {{image_url}}, {{name}}, {{version}},
/// {{mac}}, {{bootif}} and {{ip}}; the serving node fills them in at boot time, so a root
/// filesystem can be fetched from whichever site node the client boots from, e.g.
/// `--cmdline 'boot=live fetch={{image_url}}/live/filesystem.squashfs'`.
///
/// Where it goes: into a node's data dir (--data-dir / --config; that node's trusted keys
/// and version rules apply before a byte is hashed), to a running node over the network
/// (--to <endpoint-id>@<host:port>; the node checks the release like any announcement,
/// fetches the files from this command, and passes the release on to its whole fleet), or
/// into a bundle directory (--out) to carry to an offline site and `netboot import` there.
#[derive(Args)]
pub struct PublishArgs {
    /// The publisher's secret key file (from `netboot keygen`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Image name: 1-64 of a-z 0-9 . _ - (e.g. debian-12).
    #[arg(long)]
    name: ImageName,
    #[command(flatten)]
    image: ImageArgs,
    /// Release version (must exceed every version the node holds). Default: one more than
    /// the node's newest, or the current Unix time for --out.
    #[arg(long = "version", value_name = "N")]
    release_version: Option<u64>,
    /// Expire the release after this long (e.g. 30d, 12h); nodes refuse and stop serving it then.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    expires: Option<Duration>,
    /// Write a release bundle to this (new or empty) directory instead of a node.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["config", "data_dir", "to"])]
    out: Option<PathBuf>,
    /// Publish to a running node over the fleet protocol: `<endpoint-id>@<host:port>`
    /// (`netboot node-id` on the node prints its id). Only the signature leaves this machine,
    /// never the key. Exits 0 once the node holds the whole verified release. Default
    /// version: the current Unix time.
    #[arg(long, value_name = "ID@HOST:PORT", conflicts_with_all = ["config", "data_dir"])]
    to: Option<PeerAddr>,
    #[command(flatten)]
    target: StoreArgs,
}

/// What an image is made of; shared by `publish` and `quick`.
#[derive(Args)]
pub struct ImageArgs {
    /// Linux kernel to boot.
    #[arg(long, value_name = "[PATH=]FILE", conflicts_with = "iso")]
    pub kernel: Option<FileArg>,
    /// Initrd, in load order. Repeatable.
    #[arg(long, value_name = "[PATH=]FILE", requires = "kernel")]
    pub initrd: Vec<FileArg>,
    /// Kernel command line, a template: {{image_url}}, {{base_url}}, {{mac}}, {{ip}}, … are
    /// filled in by the serving node at boot time.
    #[arg(long, value_name = "TEXT", default_value = "", requires = "kernel")]
    pub cmdline: String,
    /// An ISO image to boot with iPXE's sanboot instead of a kernel.
    #[arg(long, value_name = "[PATH=]FILE")]
    pub iso: Option<FileArg>,
    /// Any other file of the image, served at {{image_url}}/PATH (squashfs root, firmware,
    /// …). Repeatable.
    #[arg(long, value_name = "[PATH=]FILE")]
    pub file: Vec<FileArg>,
}

pub async fn run(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let key = netboot_node::keys::load(&args.key)?;
    let spec = PublishSpec {
        name: args.name.clone(),
        version: args.release_version,
        kernel: args.image.kernel,
        initrds: args.image.initrd,
        cmdline: args.image.cmdline,
        iso: args.image.iso,
        files: args.image.file,
        expires_in: args.expires,
    };
    let mut bars: HashMap<String, FileProgress> = HashMap::new();
    let mut on_event = |event: PublishEvent<'_>| match event {
        PublishEvent::File { path, progress } => bars
            .entry(path.to_string())
            .or_insert_with(|| FileProgress::new(path.as_str()))
            .update(progress),
        PublishEvent::FileDone { path, hash, .. } => bars
            .entry(path.to_string())
            .or_insert_with(|| FileProgress::new(path.as_str()))
            .finish(&hash.to_hex()),
        PublishEvent::Signed { release } => {
            eprintln!(
                "signed {} v{} (release id {}), committing",
                release.name,
                release.version,
                release.id()
            )
        }
    };
    if let Some(out) = &args.out {
        let release = publish_to_bundle(out, &key, &spec, &mut on_event)?;
        println!(
            "wrote bundle {} v{} ({} files, {}) to {}",
            release.name,
            release.version,
            release.files.len(),
            human_bytes(release.total_size()),
            out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(to) = &args.to {
        let mut transfer: Option<FileProgress> = None;
        let mut on_remote = |p: RemoteProgress| match p {
            RemoteProgress::Connected => eprintln!("connected to {to}; the node is fetching"),
            RemoteProgress::Transferred { done, total } => transfer
                .get_or_insert_with(|| FileProgress::new("transfer to node"))
                .transferred(done, total),
        };
        let release = publish_to_node(to, &key, &spec, &mut on_event, &mut on_remote)
            .await
            .with_context(|| format!("publish of {} to {to} failed", spec.name))?;
        println!(
            "published {} v{} (release id {}) to {to}: the node holds it verified and passes it on to its fleet",
            release.name,
            release.version,
            release.id()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let store = args.target.open().await?;
    eprintln!(
        "publishing {} to {}",
        spec.name,
        store.layout().root().display()
    );
    let result = publish_to_store(&store, &key, &spec, &mut on_event).await;
    let root = store.layout().root().to_path_buf();
    store.close().await;
    let accepted = result.with_context(|| {
        format!(
            "publish of {} to {} failed; the store is unchanged",
            spec.name,
            root.display()
        )
    })?;
    println!(
        "published {} v{} (release id {}) to {}",
        accepted.name,
        accepted.version,
        accepted.id,
        root.display()
    );
    for v in accepted.dropped {
        println!(
            "dropped {} v{v} (older than the versions kept)",
            accepted.name
        );
    }
    Ok(ExitCode::SUCCESS)
}
