use std::{collections::HashMap, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Args;
use netboot_node::{
    fsutil::now_unix,
    policy::{held, load_signed},
};
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
/// The boot policy the node holds, if any, goes along (`policy.nbpol`); `netboot import`
/// installs it with the same checks as `netboot policy install`.
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
    import_policy(&args)?;
    Ok(ExitCode::SUCCESS)
}

/// A bundle exported from a node holding a boot policy carries it: installed like `policy
/// install` (the same checks). One already held or older is reported, not an error: the
/// release is what was asked for.
fn import_policy(args: &ImportArgs) -> anyhow::Result<()> {
    let file = args.bundle.join(held::FILE_NAME);
    if !file.exists() {
        return Ok(());
    }
    let policy = load_signed(&file)?;
    let config = args.target.config()?;
    let version = policy.version;
    match held::install(&config.data_dir, config.trusted_keys(), policy, now_unix()) {
        Ok(_) => println!("installed the bundle's boot policy v{version}"),
        Err(held::InstallError::Refused(r)) if r.is_quiet() => {
            println!("the bundle's boot policy v{version} was not installed: {r}")
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("the bundle's boot policy {}", file.display())))
        }
    }
    Ok(())
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
    let out = result?;
    println!("wrote bundle of {} to {}", args.name, out.display());
    let data_dir = args.target.config()?.data_dir;
    if let Some(policy) = held::export(&data_dir, &out)
        .with_context(|| format!("cannot copy the held boot policy into {}", out.display()))?
    {
        println!(
            "with the boot policy this node holds ({})",
            policy.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
