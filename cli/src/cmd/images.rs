use std::process::ExitCode;

use clap::Args;
use netboot_proto::BootEntry;
use serde::Serialize;

use crate::{progress::human_bytes, target::StoreArgs};

/// List the releases a node holds, and any release files it will not serve (and why).
#[derive(Args)]
pub struct ImagesArgs {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Also list every file with its size and BLAKE3 hash.
    #[arg(long, short)]
    long: bool,
    #[command(flatten)]
    target: StoreArgs,
}

#[derive(Serialize)]
struct ImageJson {
    name: String,
    version: u64,
    id: String,
    created: u64,
    expires: Option<u64>,
    expired: bool,
    publisher: String,
    size: u64,
    boot: String,
    files: Vec<FileJson>,
}

#[derive(Serialize)]
struct FileJson {
    path: String,
    size: u64,
    blake3: String,
}

#[derive(Serialize)]
struct Listing {
    images: Vec<ImageJson>,
    not_servable: Vec<String>,
}

fn describe_boot(boot: &Option<BootEntry>) -> String {
    match boot {
        Some(BootEntry::Linux {
            kernel, initrds, ..
        }) => format!("linux {kernel} + {} initrd(s)", initrds.len()),
        Some(BootEntry::Iso { iso }) => format!("iso {iso}"),
        None => "files only".into(),
    }
}

fn time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

pub async fn run(args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let store = args.target.open().await?;
    let now = netboot_node::fsutil::now_unix();
    let listing = Listing {
        images: store
            .releases()
            .iter()
            .map(|s| {
                let r = s.verified.release();
                ImageJson {
                    name: r.name.to_string(),
                    version: r.version,
                    id: s.verified.id().0.to_hex().to_string(),
                    created: r.created,
                    expires: r.expires,
                    expired: r.is_expired(now),
                    publisher: r.publisher.to_string(),
                    size: r.total_size(),
                    boot: describe_boot(&r.boot),
                    files: r
                        .files
                        .iter()
                        .map(|f| FileJson {
                            path: f.path.to_string(),
                            size: f.size,
                            blake3: f.hash.to_hex().to_string(),
                        })
                        .collect(),
                }
            })
            .collect(),
        not_servable: store.problems().iter().map(ToString::to_string).collect(),
    };
    store.close().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&listing)?);
        return Ok(ExitCode::SUCCESS);
    }
    if listing.images.is_empty() {
        println!("no releases");
    } else {
        println!(
            "{:<24} {:>8}  {:<20}  {:<20}  {:>10}  BOOT",
            "NAME", "VERSION", "CREATED", "EXPIRES", "SIZE"
        );
        for i in &listing.images {
            let expires = match (i.expires, i.expired) {
                (None, _) => "never".to_string(),
                (Some(e), false) => time(e),
                (Some(e), true) => format!("EXPIRED {}", time(e)),
            };
            println!(
                "{:<24} {:>8}  {:<20}  {:<20}  {:>10}  {}",
                i.name,
                i.version,
                time(i.created),
                expires,
                human_bytes(i.size),
                i.boot
            );
            if args.long {
                println!("    publisher {}  release id {}", i.publisher, i.id);
                for f in &i.files {
                    println!("    {:<40} {:>12}  {}", f.path, f.size, f.blake3);
                }
            }
        }
    }
    if !listing.not_servable.is_empty() {
        println!("\nnot servable:");
        for p in &listing.not_servable {
            println!("  {p}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
