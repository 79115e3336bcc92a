use std::{path::PathBuf, process::ExitCode};

use clap::Args;

/// Create a new publisher key.
///
/// Writes the secret key to FILE (mode 0600; an existing file is never overwritten) and
/// prints the public key, `ed25519:<hex>`: put that in each node's trusted_publishers.
#[derive(Args)]
pub struct KeygenArgs {
    /// Where to write the secret key.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Print the public key of a secret key file.
#[derive(Args)]
pub struct PubkeyArgs {
    /// The secret key file.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
}

pub fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let key = netboot_node::keys::generate(&args.out)?;
    eprintln!(
        "wrote secret key to {} (keep it private; back it up offline)",
        args.out.display()
    );
    println!("{}", key.public());
    Ok(ExitCode::SUCCESS)
}

pub fn pubkey(args: PubkeyArgs) -> anyhow::Result<ExitCode> {
    println!("{}", netboot_node::keys::load(&args.key)?.public());
    Ok(ExitCode::SUCCESS)
}
