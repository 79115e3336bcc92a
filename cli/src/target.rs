//! Which data dir a command works on, and with which trusted keys.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use netboot_node::{
    config::{Config, DEFAULT_CONFIG_PATH},
    store::{Store, StoreOptions},
};
use netboot_proto::{PublicKey, TrustedKeys};

#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Node config file (TOML); its data_dir, trusted_publishers and [store] apply.
    /// Default: /etc/netboot/netboot.toml when it exists.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The node's data dir (overrides the config's data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Trust this publisher key (ed25519:<hex>, as `netboot keygen` prints it), in addition
    /// to the config's trusted_publishers. Repeatable.
    #[arg(long = "trust", value_name = "KEY")]
    pub trust: Vec<PublicKey>,
}

impl StoreArgs {
    pub fn config(&self) -> anyhow::Result<Config> {
        let path = match &self.config {
            Some(p) => Some(p.clone()),
            None if self.data_dir.is_none()
                && std::path::Path::new(DEFAULT_CONFIG_PATH).exists() =>
            {
                Some(PathBuf::from(DEFAULT_CONFIG_PATH))
            }
            None => None,
        };
        let mut config = match path {
            Some(p) => Config::load(&p)?,
            None if self.data_dir.is_some() => Config::parse("", std::path::Path::new("<command line>"))?,
            None => bail!("which node? pass --config FILE or --data-dir DIR ({DEFAULT_CONFIG_PATH} does not exist)"),
        };
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        config.trusted_publishers.extend(self.trust.iter().copied());
        Ok(config)
    }

    pub async fn open(&self) -> anyhow::Result<Store> {
        let config = self.config()?;
        let trusted: TrustedKeys = config.trusted_keys();
        if trusted.is_empty() {
            tracing::warn!("no trusted publisher keys: this node will accept and serve nothing (set trusted_publishers or pass --trust)");
        }
        Store::open(StoreOptions {
            data_dir: config.data_dir.clone(),
            trusted,
            keep_versions: config.store.keep_versions,
        })
        .await
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))
    }
}
