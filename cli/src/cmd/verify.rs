use std::process::ExitCode;

use clap::Args;

use crate::{progress::human_bytes, target::StoreArgs};

/// Re-hash every file of every release in the store and report damage.
///
/// Reads every byte the node would serve and compares it with the signed BLAKE3 hash; also
/// reports release files that are damaged, untrusted or incomplete, and removes (and reports)
/// partial copies left by a publish or import that failed or was killed. Exits 1 if a release
/// is damaged or not servable, naming the image, version and file at fault, so it can run
/// from cron or a monitor.
#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    target: StoreArgs,
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let store = args.target.open().await?;
    let started = std::time::Instant::now();
    let report = tokio::task::block_in_place(|| store.verify(&mut |_| {}));
    store.close().await;
    if report.leftovers.files > 0 {
        println!(
            "REMOVED {} partial file(s) ({}) left by failed or interrupted imports",
            report.leftovers.files,
            human_bytes(report.leftovers.bytes)
        );
    }
    for problem in &report.problems {
        println!("NOT SERVABLE {problem}");
    }
    for damage in &report.damage {
        println!("DAMAGED {damage}");
    }
    println!(
        "checked {} releases, {} files, {} in {:.1}s: {}",
        report.releases,
        report.files,
        human_bytes(report.bytes),
        started.elapsed().as_secs_f64(),
        if report.is_clean() {
            "all intact".to_string()
        } else {
            format!("{} problem(s)", report.problems.len() + report.damage.len())
        }
    );
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
