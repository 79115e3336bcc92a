use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use netboot_node::store::{self, StoreOptions};

use crate::{progress::human_bytes, target::StoreArgs};

/// Rebuild the blob index (blobs/blobs.db) from the release files and the blob data.
///
/// Run it when the node refuses to start because its blob index is damaged or missing. The
/// node must be stopped. Every blob data file a release names is read and hashed again;
/// a release is restored only if all its files match the signed BLAKE3 hashes and sizes.
/// Releases that do not are listed (exit 1) and stay not servable: fetch them again from the
/// fleet, or re-import or re-publish them. Data no release needs is removed. Release files
/// and the version floors are never changed. Needs free space for a copy of the largest file.
/// Safe to run again if interrupted.
#[derive(Args)]
pub struct RepairArgs {
    #[command(flatten)]
    target: StoreArgs,
}

pub async fn run(args: RepairArgs) -> anyhow::Result<ExitCode> {
    let config = args.target.config()?;
    let started = std::time::Instant::now();
    let report = store::repair(&StoreOptions {
        data_dir: config.data_dir.clone(),
        trusted: config.trusted_keys(),
        keep_versions: config.store.keep_versions,
    })
    .await
    .with_context(|| format!("cannot repair the store in {}", config.data_dir.display()))?;
    for (name, version) in &report.restored {
        println!("RESTORED {name} v{version}");
    }
    for (file, why) in &report.failed {
        println!("NOT RESTORED {}: {why}", file.display());
    }
    println!(
        "rebuilt the blob index of {}: {} release(s) restored, {} not; {} blob(s), {} re-hashed in {:.1}s; {} unneeded or damaged data file(s) removed",
        config.data_dir.display(),
        report.restored.len(),
        report.failed.len(),
        report.blobs_verified,
        human_bytes(report.bytes_verified),
        started.elapsed().as_secs_f64(),
        report.dropped,
    );
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
