//! One file's pieces shared among several complete peers ([`crate::fleet::swarm`]): who
//! joins, how pieces are handed out and how they move when a peer leaves.
#![allow(clippy::single_range_in_vec_init)] // one missing range is the common case

use std::time::Instant;

use netboot_proto::fleet::Holding::*;

use super::{attempt, candidate, ms, peer, t0};
use crate::fleet::{
    decide::{Candidate, Ended, Fault, FileFetch, BAD_DATA_BACKOFF},
    pieces::pieces,
    swarm::{members, Assign, Failure, Swarm},
};

const STALL: u64 = 1000;

/// A swarm over `n` pieces of 8 chunks each among `peers`, `streams` pieces in flight each.
fn swarm(n: u64, peers: Vec<Candidate>, streams: usize, now: Instant) -> Swarm {
    Swarm::new(pieces(&[0..n * 8], 8, 1), peers, streams, ms(STALL), now)
}

/// Every assignment possible now, as (piece, peer number).
fn assign_all(s: &mut Swarm, now: Instant) -> Vec<(usize, u8)> {
    let mut out = Vec::new();
    while let Some(Assign { piece, peer: p, .. }) = s.next(now) {
        let n = (0..=255u8).find(|&n| peer(n) == p).expect("a test peer");
        out.push((piece, n));
    }
    out
}

/// p1 and p2, complete, 2 ms and 3 ms away: equally near.
fn two_near() -> Vec<Candidate> {
    vec![
        candidate(1, Some(2), Complete),
        candidate(2, Some(3), Complete),
    ]
}

fn active(s: &Swarm) -> Vec<&str> {
    s.active().iter().map(|c| c.label.as_str()).collect()
}

#[test]
fn who_joins() {
    // (what, candidates nearest first, members that work at the start)
    let cases: Vec<(&str, Vec<Candidate>, Vec<&str>)> = vec![
        (
            "two near complete peers",
            vec![
                candidate(1, Some(2), Complete),
                candidate(2, Some(3), Complete),
            ],
            vec!["p1", "p2"],
        ),
        (
            "the far origin waits while near peers work",
            vec![
                candidate(1, Some(2), Complete),
                candidate(2, Some(4), Complete),
                candidate(9, Some(80), Complete),
            ],
            vec!["p1", "p2"],
        ),
        (
            "the origin alone works (no swarm: one peer)",
            vec![candidate(9, Some(80), Complete)],
            vec!["p9"],
        ),
        (
            "comparably far peers both join",
            vec![
                candidate(8, Some(60), Complete),
                candidate(9, Some(80), Complete),
            ],
            vec!["p8", "p9"],
        ),
        (
            "a peer still fetching is followed, not swarmed",
            vec![
                candidate(1, Some(2), Fetching),
                candidate(9, Some(80), Complete),
            ],
            vec!["p9"],
        ),
        (
            "peers without a round trip join last",
            vec![
                candidate(1, Some(2), Complete),
                candidate(3, None, Complete),
            ],
            vec!["p1", "p3"],
        ),
        (
            "at most four at a time",
            (1..=6).map(|n| candidate(n, Some(2), Complete)).collect(),
            vec!["p1", "p2", "p3", "p4"],
        ),
    ];
    for (what, candidates, want) in cases {
        let s = swarm(4, members(&candidates), 1, t0());
        assert_eq!(active(&s), want, "{what}");
    }
}

#[test]
fn pieces_are_split_across_two_peers_in_file_order() {
    let now = t0();
    let peers = two_near();
    let mut s = swarm(6, peers, 2, now);
    // Round-robin in nearness order, two in flight each.
    assert_eq!(assign_all(&mut s, now), [(0, 1), (1, 2), (2, 1), (3, 2)]);
    s.done(&peer(2), 1, now);
    assert_eq!(assign_all(&mut s, now), [(4, 2)]);
    for (p, piece) in [(1, 0), (1, 2), (2, 3), (2, 4)] {
        s.done(&peer(p), piece, now);
    }
    assert_eq!(assign_all(&mut s, now), [(5, 1)]);
    assert!(!s.finished());
    s.done(&peer(1), 5, now);
    assert!(s.finished());
    assert_eq!(s.done_by(), [("p1", 3), ("p2", 3)]);
}

#[test]
fn every_piece_is_fetched_exactly_once_when_nobody_fails() {
    let now = t0();
    let peers: Vec<Candidate> = (1..=3).map(|n| candidate(n, Some(2), Complete)).collect();
    let mut s = swarm(40, peers, 2, now);
    let mut asked = vec![0u32; 40];
    let mut running: Vec<(usize, u8)> = Vec::new();
    // Finish the oldest request each round, as peers of different speeds would in some order.
    for _ in 0..1000 {
        for (piece, p) in assign_all(&mut s, now) {
            asked[piece] += 1;
            running.push((piece, p));
        }
        if running.is_empty() {
            break;
        }
        let (piece, p) = running.remove(running.len() / 2);
        s.done(&peer(p), piece, now);
    }
    assert!(s.finished());
    assert!(asked.iter().all(|&n| n == 1), "{asked:?}");
}

#[test]
fn a_faster_peer_ends_up_with_more_pieces() {
    let now = t0();
    let peers = two_near();
    let mut s = swarm(12, peers, 1, now);
    // p1 delivers a piece every round, p2 one every fourth round.
    let mut round = 0;
    let mut running: Vec<(usize, u8)> = Vec::new();
    while !s.finished() && round < 100 {
        running.extend(assign_all(&mut s, now));
        for (piece, p) in std::mem::take(&mut running) {
            if p == 1 || round % 4 == 3 {
                s.done(&peer(p), piece, now);
            } else {
                running.push((piece, p));
            }
        }
        round += 1;
    }
    assert!(s.finished());
    let by = s.done_by();
    assert!(by[0].1 > 2 * by[1].1, "{by:?}");
}

#[test]
fn a_stalled_peers_pieces_go_to_the_other_and_it_leaves() {
    let now = t0();
    let peers = two_near();
    let mut s = swarm(4, peers, 1, now);
    assert_eq!(assign_all(&mut s, now), [(0, 1), (1, 2)]);
    // p2 keeps delivering, p1 goes silent.
    s.progress(&peer(2), 1, now + ms(600));
    assert!(
        s.tick(now + ms(900)).is_empty(),
        "not yet the stall timeout"
    );
    let left = s.tick(now + ms(STALL));
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].label.as_str(), left[0].ended),
        ("p1", Ended::Stalled)
    );
    assert_eq!(left[0].requeued, [0]);
    assert_eq!(active(&s), ["p2"]);
    // Piece 0 is next, ahead of 2: the held prefix grows.
    s.done(&peer(2), 1, now + ms(STALL));
    assert_eq!(assign_all(&mut s, now + ms(STALL)), [(0, 2)]);
    // A late byte from p1 for piece 0 changes nothing.
    s.progress(&peer(1), 0, now + ms(STALL));
    s.done(&peer(1), 0, now + ms(STALL));
    assert!(!s.finished());
    // The stall sends p1 into the file fetch's cooldown, as a one-peer stall does.
    let mut memory = FileFetch::new(ms(STALL));
    let after = memory.after(
        &candidate(1, Some(2), Complete),
        attempt(Ended::Stalled, 0),
        now,
    );
    assert_eq!(after.avoid, None);
    let all = [
        candidate(1, Some(2), Complete),
        candidate(2, Some(3), Complete),
    ];
    assert_eq!(memory.order(&all, now + ms(STALL))[0].label, "p2");
}

#[test]
fn a_failed_request_sends_its_piece_back_and_the_peer_out() {
    let now = t0();
    // (what, failure, how it ended, peer-wide backoff)
    let cases = [
        (
            "bad data: reassigned, peer avoided for every file",
            Failure::BadData,
            Ended::BadData,
            Some((Fault::BadData, now + BAD_DATA_BACKOFF)),
        ),
        (
            "refused (its upload slots are taken): reassigned, no backoff",
            Failure::Refused,
            Ended::Failed,
            None,
        ),
        (
            "connection lost: reassigned",
            Failure::Failed,
            Ended::Failed,
            None,
        ),
    ];
    for (what, failure, ended, avoid) in cases {
        let peers = two_near();
        let mut s = swarm(4, peers, 2, now);
        assert_eq!(
            assign_all(&mut s, now),
            [(0, 1), (1, 2), (2, 1), (3, 2)],
            "{what}"
        );
        let left = s.failed(&peer(1), 2, failure).expect(what);
        assert_eq!(left.ended, ended, "{what}");
        // Both of its pieces in flight go back, in file order.
        assert_eq!(left.requeued, [0, 2], "{what}");
        assert_eq!(active(&s), ["p2"], "{what}");
        s.done(&peer(2), 1, now);
        assert_eq!(assign_all(&mut s, now), [(0, 2)], "{what}");
        // Its other request failing too changes nothing more.
        assert_eq!(s.failed(&peer(1), 0, failure), None, "{what}");
        let mut memory = FileFetch::new(ms(STALL));
        let c = candidate(1, Some(2), Complete);
        assert_eq!(
            memory.after(&c, attempt(ended, 0), now).avoid,
            avoid,
            "{what}"
        );
    }
}

#[test]
fn the_far_origin_joins_once_the_near_peers_have_left() {
    let now = t0();
    let peers = members(&[
        candidate(1, Some(2), Complete),
        candidate(2, Some(3), Complete),
        candidate(9, Some(80), Complete),
    ]);
    let mut s = swarm(3, peers, 1, now);
    assert_eq!(assign_all(&mut s, now), [(0, 1), (1, 2)]);
    s.failed(&peer(1), 0, Failure::Refused);
    assert_eq!(
        assign_all(&mut s, now),
        [],
        "p2 is busy, the origin still waits"
    );
    s.unreachable(&peer(2));
    assert_eq!(active(&s), ["p9"]);
    assert_eq!(assign_all(&mut s, now), [(0, 9)]);
    s.failed(&peer(9), 0, Failure::Failed);
    assert!(
        s.abandoned(),
        "every peer left: the one-peer fetch takes over"
    );
}

#[test]
fn nothing_to_fetch_is_finished_at_once() {
    let peers = two_near();
    let mut s = Swarm::new(Vec::new(), peers, 1, ms(STALL), t0());
    assert!(s.finished());
    assert!(!s.abandoned());
    assert_eq!(s.next(t0()), None);
}

#[test]
fn end_game_an_idle_peer_doubles_the_oldest_piece_of_a_lagging_one() {
    let now = t0();
    let peers = two_near();
    let mut s = swarm(3, peers, 1, now);
    assert_eq!(assign_all(&mut s, now), [(0, 1), (1, 2)]);
    assert_eq!(
        s.done(&peer(1), 0, now + ms(100)),
        None,
        "a piece asked of one peer only: nothing to drop"
    );
    assert_eq!(assign_all(&mut s, now + ms(100)), [(2, 1)]);
    s.done(&peer(1), 2, now + ms(200));
    // Nothing waits; p2 has delivered nothing since it got piece 1.
    assert_eq!(
        assign_all(&mut s, now + ms(STALL / 2 - 1)),
        [],
        "p2 lags less than half the stall timeout: left alone"
    );
    assert_eq!(assign_all(&mut s, now + ms(STALL / 2)), [(1, 1)]);
    assert_eq!(assign_all(&mut s, now + ms(STALL)), [], "doubled once only");
    // p1's copy ends first: the piece is done and p2's copy is surplus, to be dropped; a late
    // end of p2's counts for nothing.
    assert_eq!(
        s.done(&peer(1), 1, now + ms(STALL / 2 + 100)),
        Some(peer(2)),
        "the other copy's request is dropped"
    );
    assert!(s.finished());
    assert_eq!(s.done(&peer(2), 1, now + ms(STALL)), None);
    assert_eq!(s.done_by(), [("p1", 3), ("p2", 0)]);
}

/// Two pieces, two peers: p1 finishes piece 0, then (p2 silent for half the stall timeout)
/// also asks for p2's piece 1.
fn piece_1_doubled_by_p1(now: Instant) -> Swarm {
    let mut s = swarm(2, two_near(), 1, now);
    assert_eq!(assign_all(&mut s, now), [(0, 1), (1, 2)]);
    s.done(&peer(1), 0, now + ms(100));
    assert_eq!(assign_all(&mut s, now + ms(STALL / 2)), [(1, 1)]);
    s
}

#[test]
fn end_game_a_doubled_piece_stays_with_the_peer_that_did_not_leave() {
    let now = t0();
    let mut s = piece_1_doubled_by_p1(now);
    // p2 reaches the stall timeout: it leaves, but piece 1 is not queued again (p1 runs it).
    let left = s.tick(now + ms(STALL));
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].label.as_str(), left[0].requeued.len()), ("p2", 0));
    assert_eq!(assign_all(&mut s, now + ms(STALL)), []);
    s.done(&peer(1), 1, now + ms(STALL + 100));
    assert!(s.finished());
}

#[test]
fn end_game_the_lagging_peer_may_finish_first_then_the_doubling_copy_is_dropped() {
    let now = t0();
    let mut s = piece_1_doubled_by_p1(now);
    // p2 wakes up and ends first: p1's copy (the doubling one) is the surplus.
    assert_eq!(
        s.done(&peer(2), 1, now + ms(STALL / 2 + 100)),
        Some(peer(1))
    );
    assert!(s.finished());
    assert_eq!(s.done_by(), [("p1", 1), ("p2", 1)]);
}
