//! One-shot boots: a policy rule with `once = true` boots its image once per machine, then
//! the machine gets local disk. This ledger remembers, per (machine, policy version, rule),
//! when the node gave the image and when that boot was done: when the client record shows
//! the boot fetched its kernel AND initrd after the image was given, or when the booted
//! image called back (`POST /boot/done?mac=M`). Pure (time passed in); [`super::ClientLog`]
//! owns one beside the record and feeds it; kept in `<data_dir>/oneshot.json`.
//!
//! Keyed by the policy version too: publishing a new policy version with the same rule is
//! how an operator says "once more" (a reinstall next month), without editing any node.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::{Boot, Stage};
use crate::dhcp::MacAddr;

/// The ledger's file name in the data dir, beside `clients.json`.
pub const FILE_NAME: &str = "oneshot.json";
/// At most this many one-shots are remembered (the oldest done ones go first): a fleet-wide
/// reinstall of every machine a node knows (4096) four times over.
pub const MAX_ENTRIES: usize = 16_384;

/// Which one-shot: a machine, the policy version that gave it, the rule (as the policy
/// names it, `rule 2 "reinstall"`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OnceKey {
    pub mac: MacAddr,
    pub policy_version: u64,
    pub rule: String,
}

/// How a one-shot boot was found done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoneBy {
    /// The client record shows its kernel and initrd fetched.
    Fetched,
    /// The booted image said so (`POST /boot/done`).
    Callback,
}

/// Where a one-shot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OnceState {
    /// Given (Unix ms), not done yet: the next boot gets the image again.
    Pending { given_ms: u64 },
    /// Done: from now on the machine gets local disk for this rule.
    Done {
        given_ms: u64,
        done_ms: u64,
        by: DoneBy,
    },
}

impl OnceState {
    pub fn is_done(&self) -> bool {
        matches!(self, OnceState::Done { .. })
    }
}

/// One entry, as the file and `/clients.json` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnceEntry {
    #[serde(flatten)]
    pub key: OnceKey,
    #[serde(flatten)]
    pub state: OnceState,
}

/// The `POST /boot/done` of a machine that has no one-shot pending.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} has no one-shot boot pending")]
pub struct NotPending(pub MacAddr);

#[derive(Debug, Clone)]
pub struct Ledger {
    entries: BTreeMap<OnceKey, OnceState>,
    max: usize,
    /// Counts changes, so a saver can tell whether anything changed.
    changes: u64,
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new(MAX_ENTRIES)
    }
}

impl Ledger {
    pub fn new(max: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            max: max.max(1),
            changes: 0,
        }
    }

    /// A ledger holding `entries` (from the file), cut to `max`.
    pub fn restore(max: usize, entries: Vec<OnceEntry>) -> Self {
        let mut l = Self::new(max);
        l.entries = entries.into_iter().map(|e| (e.key, e.state)).collect();
        l.trim();
        l
    }

    pub fn changes(&self) -> u64 {
        self.changes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn state(&self, key: &OnceKey) -> Option<OnceState> {
        self.entries.get(key).copied()
    }

    /// The boot decision chose `key`'s one-shot rule: what to do is the answer (`Done`: local
    /// disk instead). A first decision makes it pending from `now_ms`; later ones (a retry,
    /// the next boot before it was done) keep when it was first given.
    pub fn given(&mut self, key: OnceKey, now_ms: u64) -> OnceState {
        if let Some(state) = self.entries.get(&key) {
            return *state;
        }
        let state = OnceState::Pending { given_ms: now_ms };
        self.entries.insert(key, state);
        self.changes += 1;
        self.trim();
        state
    }

    /// The client record's boot of `mac` moved on: if it fetched both its kernel and an
    /// initrd since a one-shot of the machine was given, that one-shot is done. Returns those
    /// marked now.
    pub fn boot_seen(&mut self, mac: MacAddr, boot: &Boot, now_ms: u64) -> Vec<OnceKey> {
        let (Some(&kernel), Some(&initrd)) = (
            boot.stages.get(&Stage::Kernel),
            boot.stages.get(&Stage::Initrd),
        ) else {
            return Vec::new();
        };
        let since = kernel.min(initrd);
        self.mark(mac, now_ms, DoneBy::Fetched, |given_ms| since >= given_ms)
    }

    /// The booted image called back for `mac`: every one-shot pending for it is done.
    pub fn called_back(&mut self, mac: MacAddr, now_ms: u64) -> Result<Vec<OnceKey>, NotPending> {
        let marked = self.mark(mac, now_ms, DoneBy::Callback, |_| true);
        if marked.is_empty() {
            return Err(NotPending(mac));
        }
        Ok(marked)
    }

    fn mark(
        &mut self,
        mac: MacAddr,
        now_ms: u64,
        by: DoneBy,
        applies: impl Fn(u64) -> bool,
    ) -> Vec<OnceKey> {
        let mut marked = Vec::new();
        for (key, state) in self.entries.iter_mut().filter(|(k, _)| k.mac == mac) {
            if let OnceState::Pending { given_ms } = *state {
                if applies(given_ms) {
                    *state = OnceState::Done {
                        given_ms,
                        done_ms: now_ms,
                        by,
                    };
                    marked.push(key.clone());
                }
            }
        }
        if !marked.is_empty() {
            self.changes += 1;
        }
        marked
    }

    /// The machine's most recently given one-shot, for `netboot clients`.
    pub fn latest(&self, mac: MacAddr) -> Option<OnceEntry> {
        self.entries
            .iter()
            .filter(|(k, _)| k.mac == mac)
            .max_by_key(|(_, s)| given_ms(s))
            .map(|(k, s)| OnceEntry {
                key: k.clone(),
                state: *s,
            })
    }

    /// Everything, for the file.
    pub fn entries(&self) -> Vec<OnceEntry> {
        self.entries
            .iter()
            .map(|(k, s)| OnceEntry {
                key: k.clone(),
                state: *s,
            })
            .collect()
    }

    /// Over the limit: the oldest done one-shots go first (they only keep a machine on
    /// local disk for a policy version that is likely superseded), then the oldest pending.
    fn trim(&mut self) {
        while self.entries.len() > self.max {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, s)| (!s.is_done(), given_ms(s)))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.entries.remove(&k),
                None => break,
            };
        }
    }
}

fn given_ms(s: &OnceState) -> u64 {
    match s {
        OnceState::Pending { given_ms } | OnceState::Done { given_ms, .. } => *given_ms,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, n])
    }

    fn key(n: u8, version: u64) -> OnceKey {
        OnceKey {
            mac: mac(n),
            policy_version: version,
            rule: "rule 1 \"reinstall\"".into(),
        }
    }

    fn boot(n: u8, stages: &[(Stage, u64)]) -> Boot {
        Boot {
            id: 1,
            mac: Some(mac(n)),
            ip: None,
            arch: None,
            started_ms: stages.first().map_or(0, |s| s.1),
            stages: stages.iter().copied().collect::<BTreeMap<_, _>>(),
            image: None,
            ignored: None,
            last_file: None,
        }
    }

    #[test]
    fn a_one_shot_is_done_when_its_boot_fetched_kernel_and_initrd() {
        let mut l = Ledger::new(10);
        let pending = OnceState::Pending { given_ms: 1_000 };
        assert_eq!(l.given(key(1, 5), 1_000), pending);
        assert_eq!(
            l.given(key(1, 5), 2_000),
            pending,
            "a retry keeps the first time"
        );
        // The kernel alone is not done; a boot from before it was given does not count.
        assert!(l
            .boot_seen(mac(1), &boot(1, &[(Stage::Kernel, 1_500)]), 1_500)
            .is_empty());
        assert!(l
            .boot_seen(
                mac(1),
                &boot(1, &[(Stage::Kernel, 900), (Stage::Initrd, 1_600)]),
                1_600
            )
            .is_empty());
        assert!(
            l.boot_seen(
                mac(2),
                &boot(2, &[(Stage::Kernel, 1_500), (Stage::Initrd, 1_600)]),
                1_600
            )
            .is_empty(),
            "another machine's boot"
        );
        assert_eq!(
            l.boot_seen(
                mac(1),
                &boot(1, &[(Stage::Kernel, 1_500), (Stage::Initrd, 1_700)]),
                1_700
            ),
            [key(1, 5)]
        );
        let done = OnceState::Done {
            given_ms: 1_000,
            done_ms: 1_700,
            by: DoneBy::Fetched,
        };
        assert_eq!(l.state(&key(1, 5)), Some(done));
        assert_eq!(
            l.given(key(1, 5), 9_000),
            done,
            "done stays done: local disk"
        );
        // A new policy version with the same rule is a new one-shot.
        assert_eq!(
            l.given(key(1, 6), 9_000),
            OnceState::Pending { given_ms: 9_000 }
        );
        assert_eq!(l.latest(mac(1)).map(|e| e.key), Some(key(1, 6)));
    }

    #[test]
    fn the_callback_marks_only_a_pending_one_shot_of_that_machine() {
        let mut l = Ledger::new(10);
        assert_eq!(l.called_back(mac(1), 5), Err(NotPending(mac(1))));
        l.given(key(1, 5), 1_000);
        l.given(key(2, 5), 1_000);
        let before = l.changes();
        assert_eq!(l.called_back(mac(1), 2_000), Ok(vec![key(1, 5)]));
        assert!(l.changes() > before);
        assert_eq!(
            l.state(&key(1, 5)),
            Some(OnceState::Done {
                given_ms: 1_000,
                done_ms: 2_000,
                by: DoneBy::Callback
            })
        );
        assert_eq!(
            l.state(&key(2, 5)),
            Some(OnceState::Pending { given_ms: 1_000 }),
            "other machines untouched"
        );
        assert_eq!(
            l.called_back(mac(1), 3_000),
            Err(NotPending(mac(1))),
            "a second callback finds nothing pending"
        );
    }

    #[test]
    fn the_ledger_stays_bounded_dropping_old_done_entries_first() {
        let mut l = Ledger::new(3);
        l.given(key(1, 1), 100);
        l.given(key(2, 1), 200);
        l.called_back(mac(2), 250).unwrap();
        l.given(key(3, 1), 300);
        l.given(key(4, 1), 400);
        assert_eq!(l.len(), 3);
        assert_eq!(l.state(&key(2, 1)), None, "the done one went first");
        assert!(l.state(&key(1, 1)).is_some());
        l.given(key(5, 1), 500);
        assert_eq!(l.state(&key(1, 1)), None, "then the oldest pending");

        // Through the file's form and back, cut to a smaller limit the same way.
        let json = serde_json::to_string(&l.entries()).unwrap();
        assert!(json.contains("\"state\":\"pending\""), "{json}");
        let back = Ledger::restore(2, serde_json::from_str(&json).unwrap());
        assert_eq!(back.len(), 2);
        assert_eq!(
            back.entries().iter().map(|e| e.key.mac).collect::<Vec<_>>(),
            [mac(4), mac(5)]
        );
    }
}
