//! What a file's fetch does after each request: failover on stall and on bad data, waiting for
//! a nearer peer that is still fetching, cooldown and backoff.

use netboot_proto::fleet::Holding::*;

use super::{attempt, candidate, labels, ms, t0};
use crate::fleet::decide::{
    backoff, Attempt, Ended, Fault, FileFetch, Step, BAD_DATA_BACKOFF, UNREACHABLE_BACKOFF,
};

const STALL: u64 = 1000;

#[test]
fn each_outcome_of_a_request() {
    let now = t0();
    // (what, source holding, outcome, step, peer backoff)
    let cases = [
        (
            "bytes arrived: start over from the nearest",
            Complete,
            attempt(Ended::Done, 100),
            Step::Restart { progressed: true },
            None,
        ),
        (
            "had it all already: start over (the loop sees it complete)",
            Complete,
            Attempt {
                ended: Ended::Done,
                got: 0,
                had_all: true,
            },
            Step::Restart { progressed: false },
            None,
        ),
        (
            "left for a nearer peer: start over",
            Complete,
            attempt(Ended::Preempted, 0),
            Step::Restart { progressed: false },
            None,
        ),
        (
            "bad data: next peer, and this one avoided for every file",
            Complete,
            attempt(Ended::BadData, 0),
            Step::Next,
            Some((Fault::BadData, now + BAD_DATA_BACKOFF)),
        ),
        (
            "unreachable: next peer, retried after a short backoff",
            Complete,
            attempt(Ended::Unreachable, 0),
            Step::Next,
            Some((Fault::Unreachable, now + UNREACHABLE_BACKOFF)),
        ),
        (
            "stalled: next peer",
            Complete,
            attempt(Ended::Stalled, 0),
            Step::Next,
            None,
        ),
        (
            "stalled after some bytes: start over (the bytes count)",
            Complete,
            attempt(Ended::Stalled, 10),
            Step::Restart { progressed: true },
            None,
        ),
        (
            "nothing new from a peer never proven: next peer, not waited for",
            Fetching,
            attempt(Ended::Done, 0),
            Step::Next,
            None,
        ),
        (
            "failed without bytes: next peer",
            Complete,
            attempt(Ended::Failed, 0),
            Step::Next,
            None,
        ),
    ];
    for (what, holding, a, step, avoid) in cases {
        let mut m = FileFetch::new(ms(STALL));
        let after = m.after(&candidate(1, Some(10), holding), a, now);
        assert_eq!(after.step, step, "{what}");
        assert_eq!(after.avoid, avoid, "{what}");
    }
}

#[test]
fn backoff_lengths() {
    let now = t0();
    assert_eq!(backoff(Fault::BadData, now), now + BAD_DATA_BACKOFF);
    assert_eq!(backoff(Fault::Unreachable, now), now + UNREACHABLE_BACKOFF);
    assert!(BAD_DATA_BACKOFF > UNREACHABLE_BACKOFF * 10);
}

#[test]
fn stall_moves_to_the_next_peer_and_back_after_twice_the_stall() {
    let now = t0();
    let mut m = FileFetch::new(ms(STALL));
    let near = candidate(1, Some(5), Complete);
    let far = candidate(2, Some(50), Complete);
    let all = [near.clone(), far.clone()];
    assert_eq!(labels(&m.order(&all, now)), ["p1", "p2"]);

    let after = m.after(&near, attempt(Ended::Stalled, 0), now);
    assert_eq!(after.step, Step::Next);
    assert_eq!(labels(&m.order(&all, now)), ["p2"], "stalled peer skipped");
    assert_eq!(
        labels(&m.order(&all, now + ms(2 * STALL - 1))),
        ["p2"],
        "a stall cools the peer for twice the stall timeout"
    );
    assert_eq!(labels(&m.order(&all, now + ms(2 * STALL))), ["p1", "p2"]);
    // A stalled peer is no longer preferred by the preemption check either.
    assert!(m.nearer_than(&far, &all, now).is_none());
    assert!(m.nearer_than(&far, &all, now + ms(2 * STALL)).is_some());
}

#[test]
fn a_near_peer_still_fetching_that_had_nothing_for_this_node_is_not_switched_back_to() {
    let now = t0();
    // (what, the near peer's holding, how its request ended, bytes it sent, whether it had
    // sent bytes of the file before, switched back to later)
    let cases = [
        (
            "still fetching, stalled, nothing sent (it is behind this node): never again mid-transfer",
            Fetching,
            Ended::Stalled,
            0,
            false,
            false,
        ),
        (
            "still fetching, stalled, but it sent bytes: once cooled down",
            Fetching,
            Ended::Stalled,
            10,
            false,
            true,
        ),
        (
            "still fetching, nothing new when asked and never sent any (it is behind, perhaps fetching from this node): never again mid-transfer",
            Fetching,
            Ended::Done,
            0,
            false,
            false,
        ),
        (
            "still fetching, nothing new now but it sent bytes before (this node caught up with it): once cooled down",
            Fetching,
            Ended::Done,
            0,
            true,
            true,
        ),
        (
            "complete, stalled (a hiccup): once cooled down",
            Complete,
            Ended::Stalled,
            0,
            false,
            true,
        ),
    ];
    for (what, holding, ended, got, sent_before, back) in cases {
        let mut m = FileFetch::new(ms(STALL));
        let near = candidate(1, Some(5), holding);
        let far = candidate(2, Some(50), Complete);
        let all = [near.clone(), far.clone()];
        let mut at = now;
        if sent_before {
            m.after(&near, attempt(Ended::Done, 10), at);
            at += ms(1);
        }
        m.after(&near, attempt(ended, got), at);
        let later = now + ms(10 * STALL);
        assert_eq!(m.nearer_than(&far, &all, later).is_some(), back, "{what}");
        assert_eq!(
            labels(&m.order(&all, later)),
            ["p1", "p2"],
            "{what}: still first in order when the far peer fails"
        );
    }
}

#[test]
fn when_every_peer_cools_down_all_are_tried_again() {
    let now = t0();
    let mut m = FileFetch::new(ms(STALL));
    let all = [
        candidate(1, Some(5), Complete),
        candidate(2, Some(50), Complete),
    ];
    for c in &all {
        m.after(c, attempt(Ended::Failed, 0), now);
    }
    assert_eq!(labels(&m.order(&all, now)), ["p1", "p2"]);
}

#[test]
fn bad_data_fails_over_to_the_next_peer() {
    let now = t0();
    let mut m = FileFetch::new(ms(STALL));
    let liar = candidate(1, Some(5), Complete);
    let honest = candidate(2, Some(50), Complete);
    let after = m.after(&liar, attempt(Ended::BadData, 0), now);
    assert_eq!(
        after.step,
        Step::Next,
        "the same round goes on to the next peer"
    );
    let (fault, until) = after.avoid.expect("a backoff for the liar");
    assert_eq!(fault, Fault::BadData);
    assert!(until >= now + BAD_DATA_BACKOFF);
    let after = m.after(&honest, attempt(Ended::Done, 4096), now);
    assert_eq!(after.step, Step::Restart { progressed: true });
}

#[test]
fn a_proven_nearer_peer_still_fetching_is_waited_for_up_to_the_stall_timeout() {
    let now = t0();
    let mut m = FileFetch::new(ms(STALL));
    let regional = candidate(1, Some(5), Fetching);
    // It delivered before: proven.
    let a = m.after(&regional, attempt(Ended::Done, 65536), now);
    assert_eq!(a.step, Step::Restart { progressed: true });
    // Then nothing new: wait for it rather than use the far origin...
    let a = m.after(&regional, attempt(Ended::Done, 0), now + ms(100));
    assert_eq!(a.step, Step::WaitForNearer);
    let a = m.after(
        &regional,
        attempt(Ended::Done, 0),
        now + ms(100 + STALL - 1),
    );
    assert_eq!(a.step, Step::WaitForNearer);
    // ...until the stall timeout has passed since it was first found with nothing new.
    let a = m.after(&regional, attempt(Ended::Done, 0), now + ms(100 + STALL));
    assert_eq!(a.step, Step::Next);
    let far = candidate(2, Some(80), Complete);
    assert_eq!(
        labels(&m.order(&[regional, far], now + ms(100 + STALL))),
        ["p2"],
        "then the far complete peer is used"
    );
}

#[test]
fn a_complete_peer_with_nothing_new_is_not_waited_for() {
    let now = t0();
    let mut m = FileFetch::new(ms(STALL));
    let c = candidate(1, Some(5), Complete);
    m.after(&c, attempt(Ended::Done, 10), now);
    let a = m.after(&c, attempt(Ended::Done, 0), now + ms(10));
    assert_eq!(a.step, Step::Next);
}
