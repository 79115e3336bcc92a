//! Trying a complete copy while following a slow peer still fetching: when, of whom, and
//! whether what the try brought beats following.

use netboot_proto::fleet::Holding::{self, *};

use super::{attempt, candidate, labels, ms, t0};
use crate::fleet::decide::{probe_beats, CopySeen, Ended, FileFetch, PROBE_MIN_BYTES};

const MIB: u64 = 1024 * 1024;

#[test]
fn a_complete_copy_is_tried_once_per_stall_timeout_while_following_a_fetching_peer() {
    let now = t0();
    let stall = ms(5000);
    let followed = candidate(1, Some(10), Fetching);
    let watched = CopySeen {
        holds: 4096,
        grew: Some(2048),
    };
    let young = CopySeen {
        holds: 4096,
        grew: None,
    };
    // (what, followed peer's holding, its copy, sources, previous try, tried peer)
    type Case = (
        &'static str,
        Holding,
        CopySeen,
        Vec<(u8, u64, Holding)>,
        Option<u64>,
        Option<u8>,
    );
    let cases: Vec<Case> = vec![
        (
            "following a fetching peer, a complete copy farther away: try it",
            Fetching,
            watched,
            vec![(1, 10, Fetching), (2, 40, Complete)],
            None,
            Some(2),
        ),
        (
            "the nearest complete copy of several",
            Fetching,
            watched,
            vec![(1, 10, Fetching), (3, 30, Complete), (2, 40, Complete)],
            None,
            Some(3),
        ),
        (
            "only other fetching peers: left_behind's to compare, nothing to try",
            Fetching,
            watched,
            vec![(1, 10, Fetching), (2, 40, Fetching)],
            None,
            None,
        ),
        (
            "the followed peer not watched a whole stall timeout yet",
            Fetching,
            young,
            vec![(1, 10, Fetching), (2, 40, Complete)],
            None,
            None,
        ),
        (
            "tried 3 s ago: not again within a stall timeout",
            Fetching,
            watched,
            vec![(1, 10, Fetching), (2, 40, Complete)],
            Some(3000),
            None,
        ),
        (
            "tried 5 s ago: again",
            Fetching,
            watched,
            vec![(1, 10, Fetching), (2, 40, Complete)],
            Some(5000),
            Some(2),
        ),
        (
            "the followed peer is complete itself: nothing to gain",
            Complete,
            watched,
            vec![(1, 10, Complete), (2, 40, Complete)],
            None,
            None,
        ),
    ];
    for (what, holding, seen, sources, last, want) in cases {
        let fetch = FileFetch::new(stall);
        let followed = candidate(1, Some(10), holding);
        let all: Vec<_> = sources
            .iter()
            .map(|(n, rtt, h)| candidate(*n, Some(*rtt), *h))
            .collect();
        let last = last.map(|ago| now - ms(ago));
        let got = fetch
            .probe_target((&followed, seen), &all, last, now)
            .map(|c| c.label.clone());
        assert_eq!(got, want.map(|n| format!("p{n}")), "{what}");
    }

    // A complete copy that just failed this file (refused: its slot is someone else's) cools
    // down and is not tried until then; nor is one left before as slow.
    let mut fetch = FileFetch::new(stall);
    let complete = candidate(2, Some(40), Complete);
    let all = vec![followed.clone(), complete.clone()];
    fetch.after(&complete, attempt(Ended::Failed, 0), now);
    assert!(
        fetch
            .probe_target((&followed, watched), &all, None, now + ms(1000))
            .is_none(),
        "refused a moment ago: cooling down"
    );
    assert!(
        fetch
            .probe_target((&followed, watched), &all, None, now + stall + ms(1))
            .is_some(),
        "cooled down: tried again"
    );
    let mut fetch = FileFetch::new(stall);
    fetch.after(&complete, attempt(Ended::LeftBehind(followed.id), MIB), now);
    assert!(
        fetch
            .probe_target((&followed, watched), &all, None, now + stall * 10)
            .is_none(),
        "left before as slow: not tried again for this file"
    );
}

#[test]
fn a_try_beats_following_only_at_more_than_twice_what_following_delivered() {
    let stall = ms(5000);
    // Following delivered 3 MiB in 5 s: 0.6 MiB/s; twice that is 1.2 MiB/s.
    let received = 3 * MIB;
    // (what, bytes the try brought, in ms, beats following)
    let cases = [
        ("4 MiB in 1.6 s (2.5 MiB/s): leave", 4 * MIB, 1600, true),
        (
            "4 MiB in 3.2 s (1.25 MiB/s): just over twice",
            4 * MIB,
            3200,
            true,
        ),
        (
            "4 MiB in 3.4 s (1.18 MiB/s): not twice",
            4 * MIB,
            3400,
            false,
        ),
        ("as fast as following: stay", 3 * MIB, 5000, false),
        (
            "too little to judge, however fast",
            PROBE_MIN_BYTES - 1,
            1,
            false,
        ),
        ("refused: nothing brought", 0, 20, false),
    ];
    for (what, bytes, took, beats) in cases {
        assert_eq!(
            probe_beats(bytes, ms(took), received, stall),
            beats,
            "{what}"
        );
    }
    assert!(
        probe_beats(PROBE_MIN_BYTES, ms(100), 0, stall),
        "following that delivered nothing is beaten by any try that brings enough"
    );
    // A node behind a slow link of its own: following a peer that has since completed
    // delivers 0.6 MiB/s (this node's link), the try of another complete copy no more.
    assert!(
        !probe_beats(928 * 1024, ms(5000), received, stall),
        "a slow site does not leave its source for another it gets no more from"
    );
}

#[test]
fn after_a_try_wins_the_complete_copy_is_fetched_from_and_not_left_for_a_nearer_fetching_peer() {
    let now = t0();
    let stall = ms(5000);
    // This node followed p2 (20 ms, still fetching); the try of p4's complete copy (40 ms)
    // won. p1 (10 ms) is still fetching too, and was never compared: the slow site p2
    // follows, say, fed straight from the origin p4.
    let slow_near = candidate(1, Some(10), Fetching);
    let followed = candidate(2, Some(20), Fetching);
    let origin = candidate(4, Some(40), Complete);
    let all = [slow_near.clone(), followed.clone(), origin.clone()];
    let mut fetch = FileFetch::new(stall);
    fetch.after(&followed, attempt(Ended::LeftBehind(origin.id), MIB), now);
    assert_eq!(
        labels(&fetch.order(&all, now + ms(100))),
        ["p4", "p1"],
        "the copy that won first, however far; the one left cools down"
    );
    assert_eq!(
        labels(&fetch.order(&all, now + stall * 2)),
        ["p4", "p1", "p2"],
        "and stays first; the one left comes last"
    );
    assert!(
        fetch.nearer_than(&origin, &all, now + stall * 2).is_none(),
        "a nearer peer still fetching does not draw the transfer off the copy that won"
    );
    let near_complete = candidate(3, Some(10), Complete);
    let with_complete = [slow_near.clone(), near_complete, origin.clone()];
    assert_eq!(
        fetch
            .nearer_than(&origin, &with_complete, now + stall * 2)
            .map(|c| c.label.as_str()),
        Some("p3"),
        "a nearer complete copy still does"
    );
    assert_eq!(
        FileFetch::new(stall)
            .nearer_than(&origin, &all, now)
            .map(|c| c.label.as_str()),
        Some("p1"),
        "without a try that won, the nearer fetching peer draws it (a chain forming)"
    );
}
