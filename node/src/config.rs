//! The node's configuration file (TOML).
//!
//! Every error names the file, and TOML errors also the line, column and field, because a
//! sysadmin fixing a config at 3 a.m. should not have to guess.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use netboot_proto::{PublicKey, TrustedKeys};
use serde::Deserialize;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/netboot/netboot.toml";
pub const DEFAULT_DATA_DIR: &str = "/var/lib/netboot";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the node keeps its store. Relative paths are relative to the config file.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Publisher keys (`ed25519:<hex>`, as `netboot keygen` prints them) whose releases this
    /// node accepts. A node with none accepts nothing.
    #[serde(default)]
    pub trusted_publishers: Vec<PublicKey>,
    #[serde(default)]
    pub store: StoreConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// How many versions of each image to keep; older ones are garbage-collected.
    #[serde(default = "default_keep_versions")]
    pub keep_versions: KeepVersions,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            keep_versions: default_keep_versions(),
        }
    }
}

/// At least 1: keeping zero versions would delete what was just published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepVersions(usize);

impl KeepVersions {
    pub fn new(n: usize) -> Option<Self> {
        (n >= 1).then_some(Self(n))
    }

    pub fn get(self) -> usize {
        self.0
    }
}

impl<'de> Deserialize<'de> for KeepVersions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = usize::deserialize(d)?;
        Self::new(n).ok_or_else(|| serde::de::Error::custom("keep_versions must be at least 1"))
    }
}

impl fmt::Display for KeepVersions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}

fn default_keep_versions() -> KeepVersions {
    KeepVersions(2)
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        Self::parse(&text, path)
    }

    /// `path` is used for error messages and to resolve a relative `data_dir`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        if config.data_dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            config.data_dir = base.join(&config.data_dir);
        }
        Ok(config)
    }

    pub fn trusted_keys(&self) -> TrustedKeys {
        TrustedKeys::new(self.trusted_publishers.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ed25519:8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";

    #[test]
    fn parses_and_resolves_relative_data_dir() {
        let text = format!(
            "data_dir = \"state\"\ntrusted_publishers = [\"{KEY}\"]\n[store]\nkeep_versions = 3\n"
        );
        let c = Config::parse(&text, Path::new("/etc/netboot/site.toml")).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/etc/netboot/state"));
        assert_eq!(c.trusted_publishers.len(), 1);
        assert_eq!(c.store.keep_versions.get(), 3);
    }

    #[test]
    fn defaults() {
        let c = Config::parse("", Path::new("/x.toml")).unwrap();
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(c.trusted_publishers.is_empty());
        assert_eq!(c.store.keep_versions.get(), 2);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let err = Config::parse(
            "data_dir = \"/d\"\ntrusted_publishers = [\"ed25519:zz\"]\n",
            Path::new("/etc/n.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/etc/n.toml"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        assert!(
            err.contains("trusted_publishers") || err.contains("ed25519:zz"),
            "{err}"
        );

        let err = Config::parse("[store]\nkeep_version = 2\n", Path::new("/n.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("keep_version") && err.contains("line 2"),
            "{err}"
        );

        let err = Config::parse("[store]\nkeep_versions = 0\n", Path::new("/n.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 1"), "{err}");
    }
}
