use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::{Args, Subcommand};
use netboot_node::{
    config::Config,
    fleet::{publish_remote::publish_policy_to_node, PeerAddr},
    fsutil::now_unix,
    policy::{load_signed, sign_source, SignOptions},
};
use netboot_proto::{
    policy::{admit_policy, Arch, Client, Mac, NodeRef},
    PublicKey, TrustedKeys,
};

use crate::target::StoreArgs;

/// Boot policies: which machines boot what, at which sites, signed once for the whole fleet.
///
/// An operator writes the rules in TOML (policy.toml: [groups] of MACs, ordered [[rule]]
/// tables, [defaults] per site; see docs/configuration.md), signs them into a policy file,
/// asks which rule a machine would get, and publishes it to a running node, which holds and
/// applies it without a restart and passes it on to its whole fleet. A node holding a policy
/// lets it decide before its own [machines] and default_image.
#[derive(Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand)]
enum PolicyCommand {
    Sign(SignArgs),
    Explain(ExplainArgs),
    Publish(PublishArgs),
    Install(InstallArgs),
}

/// Install a signed policy into a stopped node's data dir (an air-gapped site, a node being
/// prepared): checked as if it came from a peer (trusted publisher, not expired, newer than
/// the one held); the node applies it at its next start. A running node holds its data dir:
/// give it the policy with `netboot policy publish --to`.
///
///   netboot policy install --config /etc/netboot/netboot.toml policy.nbpol
#[derive(Args)]
struct InstallArgs {
    /// The signed policy file (from `netboot policy sign`).
    #[arg(value_name = "POLICY.NBPOL")]
    policy: PathBuf,
    #[command(flatten)]
    target: StoreArgs,
}

/// Send a signed policy to a running node; it checks it like one from a peer (trusted
/// publisher, not expired, newer than the one it holds), holds and applies it at once, and
/// passes it on to its fleet peers, which do the same.
///
///   netboot policy publish --to <endpoint-id>@<host:port> policy.nbpol
///
/// Exits 0 once the node holds the policy (now, or already); 1 with the node's reason if it
/// refuses it.
#[derive(Args)]
struct PublishArgs {
    /// The signed policy file (from `netboot policy sign`).
    #[arg(value_name = "POLICY.NBPOL")]
    policy: PathBuf,
    /// The node: `<endpoint-id>@<host:port>` of its fleet port (`netboot node-id` on the node
    /// prints its id).
    #[arg(long, value_name = "ID@HOST:PORT")]
    to: PeerAddr,
}

/// Compile policy.toml into a signed policy file.
///
///   netboot policy sign --key publisher.key policy.toml --out policy.nbpol
#[derive(Args)]
struct SignArgs {
    /// The policy source (TOML).
    #[arg(value_name = "POLICY.TOML")]
    source: PathBuf,
    /// The publisher's secret key file (from `netboot keygen`); nodes must trust its public key.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Policy version: nodes accept only a version above the one they hold, so an old policy
    /// cannot be replayed. Default: the current Unix time, which grows with every signing
    /// without a counter to keep; give it explicitly when signing twice within a second or
    /// from machines whose clocks disagree.
    #[arg(long = "version", value_name = "N")]
    policy_version: Option<u64>,
    /// Expire the policy after this long (e.g. 30d); nodes refuse it from then on.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    expires: Option<Duration>,
    /// Where to write the signed policy (written whole or not at all).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Show which rule of a signed policy a machine matches, and why each earlier rule did not.
///
///   netboot policy explain --policy policy.nbpol --mac 52:54:00:12:34:56 --site branch-1
///
/// With --trust or --config, also says whether a node with those trusted publishers would
/// admit the policy (exit status 1 if not).
#[derive(Args)]
struct ExplainArgs {
    /// The signed policy file (from `netboot policy sign`).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The machine's MAC address (aa:bb:cc:dd:ee:ff).
    #[arg(long, value_name = "MAC", value_parser = str::parse::<Mac>)]
    mac: Mac,
    /// The site label of the node the machine boots from.
    #[arg(long, value_name = "SITE")]
    site: String,
    /// That node's fleet id (`netboot node-id`), for rules that name nodes.
    #[arg(long, value_name = "ID", value_parser = str::parse::<NodeRef>)]
    node: Option<NodeRef>,
    /// The machine's firmware architecture: bios, efi_ia32, efi_x64, efi_arm32, efi_arm64.
    /// Without it, rules that name architectures do not match.
    #[arg(long, value_name = "ARCH", value_parser = str::parse::<Arch>)]
    arch: Option<Arch>,
    /// Check admission against this node config's trusted_publishers.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check admission with this trusted publisher key (ed25519:<hex>). Repeatable.
    #[arg(long = "trust", value_name = "KEY")]
    trust: Vec<PublicKey>,
}

pub async fn run(args: PolicyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PolicyCommand::Sign(a) => sign(a),
        PolicyCommand::Explain(a) => explain(a),
        PolicyCommand::Publish(a) => publish(a).await,
        PolicyCommand::Install(a) => install(a),
    }
}

fn install(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let policy = load_signed(&args.policy)?;
    let config = args.target.config()?;
    let held = netboot_node::policy::held::install(
        &config.data_dir,
        config.trusted_keys(),
        policy,
        now_unix(),
    )
    .with_context(|| {
        format!(
            "cannot install {} into {}",
            args.policy.display(),
            config.data_dir.display()
        )
    })?;
    println!(
        "installed boot policy v{} (id {}, publisher {}) into {}; the node applies it at its next start",
        held.policy.version,
        held.policy.id(),
        held.policy.publisher,
        config.data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn publish(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let policy = load_signed(&args.policy)?;
    publish_policy_to_node(&args.to, &policy)
        .await
        .with_context(|| {
            format!(
                "publish of boot policy v{} ({}) to {} failed",
                policy.version,
                args.policy.display(),
                args.to
            )
        })?;
    println!(
        "node {} holds boot policy v{} (id {}, publisher {}) and passes it on to its peers",
        args.to,
        policy.version,
        policy.id(),
        policy.publisher
    );
    Ok(ExitCode::SUCCESS)
}

fn time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    let key = netboot_node::keys::load(&args.key)?;
    let now = now_unix();
    let opts = SignOptions {
        version: args.policy_version.unwrap_or(now),
        now,
        expires_in: args.expires.map(|d| d.as_secs()),
    };
    let signed = sign_source(&args.source, &key, opts, &args.out)?;
    println!(
        "signed boot policy v{} (rules: {}, id {}) by {} -> {}",
        signed.version,
        signed.rules.len(),
        signed.id(),
        signed.publisher,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let policy = load_signed(&args.policy)?;
    let admission = if args.config.is_some() || !args.trust.is_empty() {
        let mut keys = args.trust.clone();
        if let Some(path) = &args.config {
            keys.extend(Config::load(path)?.trusted_keys().iter().copied());
        }
        // No node holds a policy yet, so there is no version floor to compare with.
        Some(admit_policy(
            &policy,
            &TrustedKeys::new(keys),
            now_unix(),
            None,
        ))
    } else {
        None
    };
    let expires = policy.expires.map_or("never".to_string(), time);
    println!(
        "boot policy v{} (id {}), signed by {}, created {}, expires {expires}",
        policy.version,
        policy.id(),
        policy.publisher,
        time(policy.created)
    );
    let code = match admission {
        None => ExitCode::SUCCESS,
        Some(Ok(())) => {
            println!("admission: would be admitted (trusted publisher, not expired)");
            ExitCode::SUCCESS
        }
        Some(Err(refusal)) => {
            println!("admission: would be REFUSED: {refusal}");
            ExitCode::FAILURE
        }
    };
    let client = Client {
        mac: args.mac,
        site: &args.site,
        node: args.node,
        arch: args.arch,
    };
    println!("{}", policy.evaluate(&client));
    Ok(code)
}
