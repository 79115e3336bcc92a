//! Leaving a followed peer that is still fetching for another still-fetching peer whose copy
//! grows far faster (a slow middle site of a chain), and never in a chain that keeps pace.

use netboot_proto::fleet::Holding::{self, *};

use super::{candidate, ms, t0};
use crate::fleet::decide::{
    Attempt, Candidate, CopySeen, Ended, FileFetch, Step, LEFT_BEHIND_MIN_GROWTH,
};

const MIB: u64 = 1024; // chunks

fn seen(holds: u64, grew: Option<u64>) -> CopySeen {
    CopySeen { holds, grew }
}

#[test]
fn a_followed_peer_is_left_only_for_one_far_faster_and_ahead() {
    let now = t0();
    let fetch = FileFetch::new(ms(5000));
    // (what, followed peer's holding and copy, the other's holding and copy, left for it)
    let cases: [(&str, Holding, CopySeen, Holding, CopySeen, bool); 8] = [
        (
            "the other grew 5x as much and is ahead: leave",
            Fetching,
            seen(10 * MIB, Some(3 * MIB)),
            Fetching,
            seen(60 * MIB, Some(15 * MIB)),
            true,
        ),
        (
            "a chain keeping pace (same growth): stay",
            Fetching,
            seen(50 * MIB, Some(15 * MIB)),
            Fetching,
            seen(60 * MIB, Some(15 * MIB)),
            false,
        ),
        (
            "the other grew 1.9x as much: stay",
            Fetching,
            seen(10 * MIB, Some(10 * MIB)),
            Fetching,
            seen(60 * MIB, Some(19 * MIB)),
            false,
        ),
        (
            "faster but behind: nothing to gain yet",
            Fetching,
            seen(60 * MIB, Some(3 * MIB)),
            Fetching,
            seen(10 * MIB, Some(15 * MIB)),
            false,
        ),
        (
            "the followed peer not watched a whole window yet",
            Fetching,
            seen(10 * MIB, None),
            Fetching,
            seen(60 * MIB, Some(15 * MIB)),
            false,
        ),
        (
            "the other not watched a whole window yet",
            Fetching,
            seen(10 * MIB, Some(0)),
            Fetching,
            seen(60 * MIB, None),
            false,
        ),
        (
            "both barely started (below the minimum growth)",
            Fetching,
            seen(0, Some(0)),
            Fetching,
            seen(LEFT_BEHIND_MIN_GROWTH - 1, Some(LEFT_BEHIND_MIN_GROWTH - 1)),
            false,
        ),
        (
            "a complete copy is not a faster path (its slot is the chain's)",
            Fetching,
            seen(10 * MIB, Some(3 * MIB)),
            Complete,
            seen(128 * MIB, Some(0)),
            false,
        ),
    ];
    for (what, cur_holding, cur, other_holding, other, leave) in cases {
        let current = candidate(1, Some(10), cur_holding);
        let others: Vec<(Candidate, CopySeen)> =
            vec![(candidate(2, Some(40), other_holding), other)];
        let got = fetch
            .left_behind((&current, cur), &others, now)
            .map(|c| c.label.as_str());
        assert_eq!(got, leave.then_some("p2"), "{what}");
    }
    // A followed peer with a complete copy is never left this way (it sends at the link's rate).
    let complete = candidate(1, Some(10), Complete);
    let others = vec![(
        candidate(2, Some(40), Fetching),
        seen(60 * MIB, Some(15 * MIB)),
    )];
    assert!(fetch
        .left_behind((&complete, seen(128 * MIB, Some(0))), &others, now)
        .is_none());
}

#[test]
fn after_leaving_the_slow_peer_the_faster_one_is_tried_first_and_the_slow_one_cools() {
    let now = t0();
    let mut fetch = FileFetch::new(ms(5000));
    let slow = candidate(1, Some(10), Fetching);
    let fast = candidate(2, Some(40), Fetching);
    let after = fetch.after(
        &slow,
        Attempt {
            ended: Ended::LeftBehind(fast.id),
            got: 4 * MIB,
            had_all: false,
        },
        now,
    );
    assert_eq!(after.step, Step::Restart { progressed: true });
    assert_eq!(
        after.avoid, None,
        "no peer-wide backoff: it is slow, not faulty"
    );
    let all = [slow.clone(), fast.clone()];
    let order: Vec<_> = fetch
        .order(&all, now + ms(100))
        .into_iter()
        .map(|c| c.label)
        .collect();
    assert_eq!(
        order,
        ["p2"],
        "the slow peer, nearer, cools for a stall timeout"
    );
    let order: Vec<_> = fetch
        .order(&all, now + ms(5100))
        .into_iter()
        .map(|c| c.label)
        .collect();
    assert_eq!(
        order,
        ["p2", "p1"],
        "then it is a source again, after the faster one although nearer"
    );
    // The faster one completes: still tried first (it is no longer compared, being
    // complete, so the order alone keeps this file off the slow peer).
    let done = candidate(2, Some(40), Complete);
    let order: Vec<_> = fetch
        .order(&[slow.clone(), done], now + ms(60_000))
        .into_iter()
        .map(|c| c.label)
        .collect();
    assert_eq!(order, ["p2", "p1"]);
    // A peer cooling down is not left for either.
    let others = vec![(slow.clone(), seen(60 * MIB, Some(15 * MIB)))];
    assert!(fetch
        .left_behind((&fast, seen(10 * MIB, Some(MIB))), &others, now + ms(100))
        .is_none());
}

#[test]
fn a_peer_left_behind_is_no_nearer_source_to_switch_back_to() {
    let now = t0();
    let mut fetch = FileFetch::new(ms(5000));
    let slow = candidate(1, Some(10), Fetching);
    let fast = candidate(2, Some(40), Fetching);
    let all = [slow.clone(), fast.clone()];
    assert_eq!(
        fetch
            .nearer_than(&fast, &all, now)
            .map(|c| c.label.as_str()),
        Some("p1"),
        "before: the 4x nearer peer draws a transfer from the farther one"
    );
    fetch.after(
        &slow,
        Attempt {
            ended: Ended::LeftBehind(fast.id),
            got: MIB,
            had_all: false,
        },
        now,
    );
    assert!(
        fetch.nearer_than(&fast, &all, now + ms(60_000)).is_none(),
        "after: not even once its cooldown is over"
    );
}
