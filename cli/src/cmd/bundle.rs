use std::{collections::HashMap, path::PathBuf, process::ExitCode};

use clap::Args;
use netboot_proto::ImageName;

use crate::{progress::FileProgress, target::StoreArgs};

/// Import a release bundle (from `netboot publish --out` or `netboot export`) into a node.
///
/// The release is checked (signature, trusted publisher, newer version, not expired) before
/// any file is read, and every file is hashed as it is copied in. Nothing becomes visible
/// unless all of it matches.
#[derive(Args)]
pub struct ImportArgs {
    /// The bundle directory.
    bundle: PathBuf,
    #[command(flatten)]
    target: StoreArgs,
}

/// Write a release held by a node as a bundle directory, e.g. to carry to an offline site.
#[derive(Args)]
pub struct ExportArgs {
    /// Image name.
    name: ImageName,
    /// Version to export (default: the newest).
    #[arg(long = "version", value_name = "N")]
    release_version: Option<u64>,
    /// Output directory (must not exist).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    target: StoreArgs,
}

pub async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let store = args.target.open().await?;
    let mut bars: HashMap<String, FileProgress> = HashMap::new();
    let result = store
        .import_bundle(&args.bundle, &mut |path, p| {
            bars.entry(path.to_string())
                .or_insert_with(|| FileProgress::new(path))
                .update(p)
        })
        .await;
    store.close().await;
    let accepted = result?;
    println!(
        "imported {} v{} (release id {})",
        accepted.name, accepted.version, accepted.id
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    if args.out.exists() {
        anyhow::bail!(
            "{} already exists; choose a new directory",
            args.out.display()
        );
    }
    let store = args.target.open().await?;
    let result = store
        .export_bundle(&args.name, args.release_version, &args.out)
        .await;
    store.close().await;
    println!("wrote bundle of {} to {}", args.name, result?.display());
    Ok(ExitCode::SUCCESS)
}
