//! Whether a node admits a verified release: the same rules for a release published to it, an
//! announcement from a peer, or a bundle imported from disk. Boot policies are admitted by the
//! same three rules ([`check`]), with their own wording (`policy::admit_policy`).

use std::collections::BTreeSet;

use crate::{PublicKey, Release};

/// The publisher keys a node trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys(BTreeSet<PublicKey>);

impl TrustedKeys {
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        Self(keys.into_iter().collect())
    }

    pub fn contains(&self, key: &PublicKey) -> bool {
        self.0.contains(key)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &PublicKey> {
        self.0.iter()
    }
}

/// Why a node refuses a correctly signed release.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error(
        "publisher {0} is not a trusted publisher of this node (add it to trusted_publishers)"
    )]
    Untrusted(PublicKey),
    #[error("release {name} v{version} expired at {expires} (now {now})")]
    Expired {
        name: String,
        version: u64,
        expires: u64,
        now: u64,
    },
    #[error("release {name} v{version} is not newer than v{current} already held (rollback/replay refused)")]
    NotNewer {
        name: String,
        version: u64,
        current: u64,
    },
}

/// Which of the three admission rules a signed document breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    Untrusted,
    Expired { expires: u64 },
    NotNewer { current: u64 },
}

/// The rules every signed document passes before a node acts on it: a trusted publisher, not
/// expired at `now`, and a version above `current`, the highest the node holds (or has held)
/// of the same thing — so an old signed document cannot be replayed to roll a node back.
pub fn check(
    publisher: &PublicKey,
    version: u64,
    expires: Option<u64>,
    trusted: &TrustedKeys,
    now: u64,
    current: Option<u64>,
) -> Result<(), Breach> {
    if !trusted.contains(publisher) {
        return Err(Breach::Untrusted);
    }
    if let Some(expires) = expires {
        if now >= expires {
            return Err(Breach::Expired { expires });
        }
    }
    match current {
        Some(current) if version <= current => Err(Breach::NotNewer { current }),
        _ => Ok(()),
    }
}

/// `current` is the highest version of this name the node holds (or has held).
pub fn admit(
    release: &Release,
    trusted: &TrustedKeys,
    now: u64,
    current: Option<u64>,
) -> Result<(), Refusal> {
    let name = || release.name.to_string();
    check(
        &release.publisher,
        release.version,
        release.expires,
        trusted,
        now,
        current,
    )
    .map_err(|breach| match breach {
        Breach::Untrusted => Refusal::Untrusted(release.publisher),
        Breach::Expired { expires } => Refusal::Expired {
            name: name(),
            version: release.version,
            expires,
            now,
        },
        Breach::NotNewer { current } => Refusal::NotNewer {
            name: name(),
            version: release.version,
            current,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{release::ReleaseSpec, FileEntry, SecretKey};

    fn release(key: &SecretKey, version: u64, expires: Option<u64>) -> Release {
        Release::new(ReleaseSpec {
            name: "img".parse().unwrap(),
            version,
            created: 100,
            expires,
            publisher: key.public(),
            files: vec![FileEntry {
                path: "f".parse().unwrap(),
                size: 1,
                hash: blake3::hash(b"x"),
            }],
            boot: None,
        })
        .unwrap()
    }

    #[test]
    fn admission_rules() {
        let key = SecretKey::from_seed([1; 32]);
        let stranger = SecretKey::from_seed([2; 32]);
        let trusted = TrustedKeys::new([key.public()]);
        assert_eq!(
            admit(&release(&key, 2, None), &trusted, 150, Some(1)),
            Ok(())
        );
        assert_eq!(admit(&release(&key, 1, None), &trusted, 150, None), Ok(()));
        assert_eq!(
            admit(&release(&stranger, 2, None), &trusted, 150, None),
            Err(Refusal::Untrusted(stranger.public()))
        );
        assert!(matches!(
            admit(&release(&key, 2, Some(200)), &trusted, 200, None),
            Err(Refusal::Expired { .. })
        ));
        assert_eq!(
            admit(&release(&key, 2, Some(200)), &trusted, 199, None),
            Ok(())
        );
        assert!(matches!(
            admit(&release(&key, 2, None), &trusted, 150, Some(2)),
            Err(Refusal::NotNewer { .. })
        ));
        assert!(matches!(
            admit(&release(&key, 1, None), &trusted, 150, Some(2)),
            Err(Refusal::NotNewer { .. })
        ));
    }
}
