//! The newest admitted boot policy of this node: one owner ([`HeldPolicy`]) that loads
//! `<data_dir>/policy.nbpol` at start, takes offers (from the fleet, `netboot policy publish
//! --to`), keeps the accepted one on disk (atomically) and publishes it on a watch channel the
//! boot decisions read.
//!
//! The decision ([`decide`]) is pure: the release admission rules (`admit_policy`: trusted
//! publisher, not expired, a version above the floor) plus "already held". The floor is the
//! version of the policy file on disk even when that policy no longer rules (its key was
//! removed from trust, or it expired): an older policy can never slip back in after it.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::UNIX_EPOCH,
};

use netboot_proto::{
    policy::{admit_policy, PolicyId, PolicyRefusal, SignedPolicy, VerifiedPolicy},
    TrustedKeys,
};
use tokio::sync::watch;

use crate::fsutil::write_atomic;

/// The held policy's file in the data dir.
pub const FILE_NAME: &str = "policy.nbpol";

/// A policy this node holds and applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub policy: VerifiedPolicy,
    /// Unix seconds when this node accepted it (the file's time after a restart).
    pub arrived: u64,
}

/// What the node knows when a policy is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// The id of the policy held now, if any.
    pub held: Option<PolicyId>,
    /// The highest version held or ever stored here.
    pub floor: Option<u64>,
}

/// Why an offered policy is not taken.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    /// This very policy is held already (a catch-up or a relay repeating it): not an error.
    #[error("boot policy v{0} is already held")]
    AlreadyHeld(u64),
    #[error(transparent)]
    Admission(PolicyRefusal),
    #[error("boot policy v{version} was admitted but cannot be written to {path}: {cause}")]
    Write {
        version: u64,
        path: PathBuf,
        cause: String,
    },
}

impl Refused {
    /// Ordinary on a fleet (an older policy arriving late, or the same one again), rather
    /// than a sign of a misconfigured or hostile peer.
    pub fn is_quiet(&self) -> bool {
        matches!(
            self,
            Refused::AlreadyHeld(_) | Refused::Admission(PolicyRefusal::NotNewer { .. })
        )
    }
}

/// Whether an offered policy is taken: the admission rules at `now`, after "already held".
pub fn decide(
    facts: Facts,
    offered: &VerifiedPolicy,
    trusted: &TrustedKeys,
    now: u64,
) -> Result<(), Refused> {
    if facts.held == Some(offered.id()) {
        return Err(Refused::AlreadyHeld(offered.version));
    }
    admit_policy(offered, trusted, now, facts.floor).map_err(Refused::Admission)
}

/// What start-up found in the data dir, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    Nothing,
    Held(u64),
    /// On disk but not applied: why (its version still is the floor when known).
    NotApplied(String),
}

#[derive(Debug)]
struct State {
    held: Option<Arc<Held>>,
    floor: Option<u64>,
}

/// The one owner of the held policy. Cheap to clone; clones share it.
#[derive(Debug, Clone)]
pub struct HeldPolicy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    trusted: TrustedKeys,
    state: Mutex<State>,
    tx: watch::Sender<Option<Arc<Held>>>,
}

fn file_time(path: &Path) -> Option<u64> {
    let modified = fs::metadata(path).ok()?.modified().ok()?;
    Some(modified.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

impl HeldPolicy {
    /// Loads `<data_dir>/policy.nbpol`, verifying and admitting it again: a key removed from
    /// `trusted` since, or an expiry passed, stops it ruling.
    pub fn open(data_dir: &Path, trusted: TrustedKeys, now: u64) -> (Self, Loaded) {
        let path = data_dir.join(FILE_NAME);
        let (state, loaded) = match fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                State {
                    held: None,
                    floor: None,
                },
                Loaded::Nothing,
            ),
            Err(e) => (
                State {
                    held: None,
                    floor: None,
                },
                Loaded::NotApplied(format!("cannot read {}: {e}", path.display())),
            ),
            Ok(bytes) => match SignedPolicy::open(&bytes) {
                Err(e) => (
                    State {
                        held: None,
                        floor: None,
                    },
                    Loaded::NotApplied(format!("{}: {e}", path.display())),
                ),
                Ok(policy) => {
                    let floor = Some(policy.version);
                    match admit_policy(&policy, &trusted, now, None) {
                        Ok(()) => {
                            let version = policy.version;
                            let held = Held {
                                arrived: file_time(&path).unwrap_or(now),
                                policy,
                            };
                            (
                                State {
                                    held: Some(Arc::new(held)),
                                    floor,
                                },
                                Loaded::Held(version),
                            )
                        }
                        Err(e) => (
                            State { held: None, floor },
                            Loaded::NotApplied(format!("{}: {e}", path.display())),
                        ),
                    }
                }
            },
        };
        let (tx, _) = watch::channel(state.held.clone());
        let inner = Inner {
            path,
            trusted,
            state: Mutex::new(state),
            tx,
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            loaded,
        )
    }

    /// Takes `policy` if [`decide`] admits it: written to disk first (a crash leaves the old
    /// file or the new one), then published to the readers.
    pub fn offer(&self, policy: VerifiedPolicy, now: u64) -> Result<Arc<Held>, Refused> {
        // A panic while holding the lock leaves the state whole (replaced in one step).
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let facts = Facts {
            held: state.held.as_ref().map(|h| h.policy.id()),
            floor: state.floor,
        };
        decide(facts, &policy, &self.inner.trusted, now)?;
        write_atomic(&self.inner.path, &policy.signed().encode()).map_err(|e| Refused::Write {
            version: policy.version,
            path: self.inner.path.clone(),
            cause: e.to_string(),
        })?;
        let held = Arc::new(Held {
            policy,
            arrived: now,
        });
        state.floor = Some(held.policy.version);
        state.held = Some(held.clone());
        self.inner.tx.send_replace(Some(held.clone()));
        Ok(held)
    }

    /// The policy held now.
    pub fn current(&self) -> Option<Arc<Held>> {
        self.inner.tx.borrow().clone()
    }

    /// Follows the held policy: every accepted offer replaces the value whole.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Held>>> {
        self.inner.tx.subscribe()
    }
}

/// Why `netboot policy install` did not install a policy.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0} is not a netboot data dir (no FORMAT file): start the node once, or check --config/--data-dir")]
    NotDataDir(PathBuf),
    /// Most often: the node runs (then publish to it with `netboot policy publish --to`).
    #[error("{0} (a running node takes a policy with `netboot policy publish --to <node> FILE`)")]
    Lock(crate::store::StoreError),
    #[error("{0}")]
    Refused(Refused),
}

/// Offers `policy` to the node whose data dir is `data_dir` while it is stopped (an
/// air-gapped site, a node being prepared): the same decision and the same file as an offer
/// from the fleet, under the data dir's lock. The node applies it at its next start.
pub fn install(
    data_dir: &Path,
    trusted: TrustedKeys,
    policy: VerifiedPolicy,
    now: u64,
) -> Result<Arc<Held>, InstallError> {
    if !data_dir
        .join(crate::store::Layout::FORMAT_FILE_NAME)
        .is_file()
    {
        return Err(InstallError::NotDataDir(data_dir.to_path_buf()));
    }
    let _lock = crate::store::DataDirLock::acquire(data_dir).map_err(InstallError::Lock)?;
    let (held, _) = HeldPolicy::open(data_dir, trusted, now);
    held.offer(policy, now).map_err(InstallError::Refused)
}

/// Copies the policy a stopped node holds into a bundle directory (`netboot export`), so an
/// air-gapped site gets it with the release; `Ok(None)` when the node holds none. The copy is
/// checked on import like any other offer.
pub fn export(data_dir: &Path, bundle: &Path) -> std::io::Result<Option<PathBuf>> {
    let held = data_dir.join(FILE_NAME);
    let bytes = match fs::read(&held) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let out = bundle.join(FILE_NAME);
    write_atomic(&out, &bytes)?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use netboot_proto::{
        policy::{Action, Policy},
        SecretKey,
    };

    use super::*;

    fn policy(key: &SecretKey, version: u64, expires: Option<u64>) -> VerifiedPolicy {
        let p = Policy {
            version,
            created: 100,
            expires,
            publisher: key.public(),
            groups: Default::default(),
            rules: vec![],
            site_defaults: Default::default(),
            default: Some(Action::Local),
        };
        SignedPolicy::sign(&p, key).unwrap()
    }

    #[test]
    fn decision_table() {
        let key = SecretKey::from_seed([1; 32]);
        let stranger = SecretKey::from_seed([2; 32]);
        let trusted = TrustedKeys::new([key.public()]);
        let v5 = policy(&key, 5, None);
        let none = Facts {
            held: None,
            floor: None,
        };
        let holding_v5 = Facts {
            held: Some(v5.id()),
            floor: Some(5),
        };
        // (what, facts, offered, now, outcome)
        type Case = (
            &'static str,
            Facts,
            VerifiedPolicy,
            u64,
            Result<(), &'static str>,
        );
        let cases: Vec<Case> = vec![
            ("first policy", none, v5.clone(), 150, Ok(())),
            (
                "newer than held",
                holding_v5,
                policy(&key, 6, None),
                150,
                Ok(()),
            ),
            (
                "the same one again",
                holding_v5,
                v5.clone(),
                150,
                Err("already"),
            ),
            (
                "older than held",
                holding_v5,
                policy(&key, 4, None),
                150,
                Err("not newer"),
            ),
            (
                "same version, other content",
                holding_v5,
                policy(&key, 5, Some(10_000)),
                150,
                Err("not newer"),
            ),
            (
                "untrusted",
                none,
                policy(&stranger, 9, None),
                150,
                Err("not a trusted"),
            ),
            (
                "expired",
                none,
                policy(&key, 9, Some(200)),
                200,
                Err("expired"),
            ),
            (
                "floor from a file no longer applied",
                Facts {
                    held: None,
                    floor: Some(7),
                },
                policy(&key, 6, None),
                150,
                Err("not newer"),
            ),
        ];
        for (what, facts, offered, now, want) in cases {
            let got = decide(facts, &offered, &trusted, now);
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(needle)) => {
                    assert!(e.to_string().contains(needle), "{what}: {e}")
                }
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn held_survives_a_restart_and_stops_ruling_when_its_key_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::from_seed([1; 32]);
        let trusted = TrustedKeys::new([key.public()]);
        let (held, loaded) = HeldPolicy::open(dir.path(), trusted.clone(), 150);
        assert_eq!(loaded, Loaded::Nothing);
        let mut rx = held.subscribe();
        let v5 = policy(&key, 5, None);
        held.offer(v5.clone(), 160).unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().as_ref().unwrap().policy, v5);
        assert!(matches!(
            held.offer(policy(&key, 3, None), 170),
            Err(Refused::Admission(PolicyRefusal::NotNewer { .. }))
        ));
        // Nothing but the policy file (no temporary left).
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE_NAME)]);

        let (again, loaded) = HeldPolicy::open(dir.path(), trusted, 200);
        assert_eq!(loaded, Loaded::Held(5));
        assert_eq!(again.current().unwrap().policy, v5);

        // The publisher key removed from trust: the file stays, does not rule, and its
        // version is still the floor.
        let other = SecretKey::from_seed([3; 32]);
        let trusted = TrustedKeys::new([other.public()]);
        let (dropped, loaded) = HeldPolicy::open(dir.path(), trusted, 200);
        assert!(
            matches!(&loaded, Loaded::NotApplied(why) if why.contains("not a trusted")),
            "{loaded:?}"
        );
        assert!(dropped.current().is_none());
        assert!(matches!(
            dropped.offer(policy(&other, 4, None), 210),
            Err(Refused::Admission(PolicyRefusal::NotNewer {
                current: 5,
                ..
            }))
        ));
        assert!(dropped.offer(policy(&other, 6, None), 210).is_ok());
    }

    #[test]
    fn install_into_a_stopped_node_and_not_into_a_running_one() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::from_seed([1; 32]);
        let trusted = TrustedKeys::new([key.public()]);
        assert!(matches!(
            install(dir.path(), trusted.clone(), policy(&key, 5, None), 100),
            Err(InstallError::NotDataDir(_))
        ));
        fs::write(dir.path().join("FORMAT"), "netboot data dir format 1\n").unwrap();
        let held = install(dir.path(), trusted.clone(), policy(&key, 5, None), 100).unwrap();
        assert_eq!(held.policy.version, 5);
        assert!(matches!(
            install(dir.path(), trusted.clone(), policy(&key, 4, None), 100),
            Err(InstallError::Refused(Refused::Admission(
                PolicyRefusal::NotNewer { .. }
            )))
        ));
        let _running = crate::store::DataDirLock::acquire(dir.path()).unwrap();
        let err = install(dir.path(), trusted, policy(&key, 6, None), 100).unwrap_err();
        assert!(err.to_string().contains("policy publish --to"), "{err}");
    }

    #[test]
    fn a_damaged_file_is_reported_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), b"NBPOL01\ngarbage").unwrap();
        let (held, loaded) = HeldPolicy::open(dir.path(), TrustedKeys::default(), 1);
        assert!(
            matches!(&loaded, Loaded::NotApplied(why) if why.contains(FILE_NAME)),
            "{loaded:?}"
        );
        assert!(held.current().is_none());
    }
}
