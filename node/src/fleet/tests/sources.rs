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

#[test]
fn a_file_a_client_waits_for_comes_first_otherwise_signed_order() {
    use crate::fleet::decide::next_file;
    use netboot_proto::FileEntry;
    let file = |n: u8| FileEntry {
        path: format!("f{n}").parse().unwrap(),
        size: 10,
        hash: blake3::hash(&[n]),
    };
    let missing = [file(1), file(2), file(3)];
    let path = |f: Option<&FileEntry>| f.map(|f| f.path.to_string());
    assert_eq!(path(next_file(&missing, &[])), Some("f1".into()));
    assert_eq!(
        path(next_file(&missing, &[blake3::hash(&[3])])),
        Some("f3".into())
    );
    // A wanted file already held (not missing) changes nothing.
    assert_eq!(
        path(next_file(&missing, &[blake3::hash(&[9])])),
        Some("f1".into())
    );
    assert_eq!(path(next_file(&[], &[blake3::hash(&[3])])), None);
}
