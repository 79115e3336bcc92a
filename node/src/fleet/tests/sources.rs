//! Which peers to ask for a release, in which order.

use netboot_proto::fleet::Holding::*;

use super::{candidate, labels, ms, t0, view};
use crate::fleet::decide::{sources, FileFetch};

#[test]
fn nearest_first_unmeasured_last_non_holders_left_out() {
    let now = t0();
    let list = sources(
        [
            view(1, Some(80), Some(Complete)),
            view(2, None, Some(Complete)),
            view(3, Some(5), Some(Fetching)),
            view(4, Some(1), None),
            view(5, Some(2), Some(Relaying)),
            view(6, Some(30), Some(Complete)),
        ],
        now,
    );
    assert_eq!(labels(&list), ["p3", "p6", "p1", "p2"]);
    assert_eq!(list[0].holding, Fetching);
}

#[test]
fn avoided_peers_are_left_out_until_their_backoff_ends() {
    let now = t0();
    let mut near = view(1, Some(5), Some(Complete));
    near.avoid_until = Some(now + ms(1000));
    let far = view(2, Some(50), Some(Complete));
    let list = sources([near.clone(), far.clone()], now);
    assert_eq!(labels(&list), ["p2"]);
    let later = sources([near, far], now + ms(1000));
    assert_eq!(labels(&later), ["p1", "p2"], "back once the backoff ends");
}

#[test]
fn nearer_source_must_be_clearly_nearer() {
    let now = t0();
    let memory = FileFetch::new(ms(5000));
    let current = candidate(1, Some(40), Complete);
    // (candidate rtt, preempts?): half the round trip or less and at least 5 ms nearer.
    let cases = [
        (Some(20), true),
        (Some(21), false),
        (Some(5), true),
        (None, false),
    ];
    for (rtt, want) in cases {
        let all = [current.clone(), candidate(2, rtt, Fetching)];
        let got = memory.nearer_than(&current, &all, now).is_some();
        assert_eq!(got, want, "candidate at {rtt:?} ms vs current at 40 ms");
    }
    // Both tiny: half but not 5 ms nearer.
    let small = candidate(1, Some(6), Complete);
    let all = [small.clone(), candidate(2, Some(3), Complete)];
    assert!(memory.nearer_than(&small, &all, now).is_none());
    // Current without a measured round trip: never preempted.
    let unmeasured = candidate(1, None, Complete);
    let all = [unmeasured.clone(), candidate(2, Some(1), Complete)];
    assert!(memory.nearer_than(&unmeasured, &all, now).is_none());
}

/// Which files of a release to start: each row is (missing, in flight, wanted by a client,
/// max) → the paths started, in order.
#[test]
fn files_start_in_signed_order_up_to_the_limit_and_a_wanted_one_at_once() {
    use crate::fleet::decide::files_to_start;
    use netboot_proto::FileEntry;
    let file = |n: u8| FileEntry {
        path: format!("f{n}").parse().unwrap(),
        size: 10,
        hash: blake3::hash(&[n]),
    };
    let m: Vec<FileEntry> = (1..=5).map(file).collect();
    let mut copy = file(1);
    copy.path = "f1-copy".parse().unwrap();
    let same = [file(1), copy, file(2)];
    #[allow(clippy::type_complexity)]
    let table: &[(&[FileEntry], &[u8], &[u8], usize, &[&str])] = &[
        // Nothing running: the first `max` in signed order; or one at a time.
        (&m, &[], &[], 3, &["f1", "f2", "f3"]),
        (&m, &[], &[], 1, &["f1"]),
        // Room for one more: the next file not running, also when the running ones are not
        // the first (one completed); full: nothing.
        (&m, &[1, 2], &[], 3, &["f3"]),
        (&m, &[2, 3], &[], 3, &["f1"]),
        (&m, &[1, 2, 3], &[], 3, &[]),
        // A file a client waits for comes first, and starts even when full; running
        // already, or not missing (held), it changes nothing.
        (&m, &[], &[4], 3, &["f4", "f1", "f2"]),
        (&m, &[1, 2, 3], &[5], 3, &["f5"]),
        (&m, &[1, 2, 4], &[4], 3, &[]),
        (&m, &[], &[9], 2, &["f1", "f2"]),
        // Fewer missing than room; nothing missing.
        (&m[3..], &[], &[], 3, &["f4", "f5"]),
        (&[], &[], &[3], 3, &[]),
        // Two paths of one content are fetched once, and not again while it runs.
        (&same, &[], &[], 3, &["f1", "f2"]),
        (&same, &[1], &[], 3, &["f2"]),
        // max 0 counts as 1: never missing files with none running.
        (&m, &[], &[], 0, &["f1"]),
    ];
    let h = |ns: &[u8]| ns.iter().map(|n| blake3::hash(&[*n])).collect::<Vec<_>>();
    for (row, (missing, running, wanted, max, want)) in table.iter().enumerate() {
        let got: Vec<String> = files_to_start(missing, &h(running), &h(wanted), *max)
            .into_iter()
            .map(|f| f.path.to_string())
            .collect();
        assert_eq!(got, *want, "row {row}");
    }
}
