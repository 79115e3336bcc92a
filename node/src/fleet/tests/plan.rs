//! The swarm plan ([`crate::fleet::plan`]): pieces, source choice by round trip and holdings,
//! a file split across peers, slots, the origin last, failover on stall and on bad data.

// Lists of chunk ranges often hold one range; that is not a mistaken `0..n` collection.
#![allow(clippy::single_range_in_vec_init)]

use std::{collections::HashMap, ops::Range, time::Duration};

use netboot_proto::fleet::Holding::{self, *};

use super::{candidate, ms, peer, t0};
use crate::fleet::{
    decide::{backoff, Fault, BAD_DATA_BACKOFF, UNREACHABLE_BACKOFF},
    plan::{
        pieces, Assignment, FileNeed, Holds, Outcome, Piece, Source, Swarm, CHUNK, PIECE_CHUNKS,
        WAIT_RETRY,
    },
};

const STALL: Duration = Duration::from_secs(2);
const P: u64 = PIECE_CHUNKS;

fn hash(n: u8) -> blake3::Hash {
    blake3::hash(&[b'f', n])
}

/// File `n` of `pieces_` whole pieces, nothing held.
fn file(n: u8, whole_pieces: u64) -> FileNeed {
    let size = whole_pieces * P * CHUNK;
    FileNeed {
        hash: hash(n),
        size,
        missing: vec![0..size.div_ceil(CHUNK)],
    }
}

fn src(n: u8, rtt: u64, holding: Holding) -> Source {
    Source::from_candidate(candidate(n, Some(rtt), holding))
}

fn origin(n: u8, rtt: u64) -> Source {
    Source {
        origin: true,
        ..src(n, rtt, Complete)
    }
}

fn piece(f: u8, i: u64) -> Piece {
    Piece {
        file: hash(f),
        chunks: i * P..(i + 1) * P,
    }
}

/// (peer number, file number, piece index) of each assignment, to compare with a table.
fn who(list: &[Assignment]) -> Vec<(u8, u8, u64)> {
    list.iter()
        .map(|a| {
            let p = (0..=255u8).find(|n| peer(*n) == a.peer).unwrap();
            let f = (0..=255u8).find(|n| hash(*n) == a.piece.file).unwrap();
            (p, f, a.piece.chunks.start / P)
        })
        .collect()
}

#[test]
fn pieces_are_the_missing_parts_cut_at_piece_boundaries() {
    // (what, size in bytes, missing chunk ranges, expected piece chunk ranges)
    type Case = (&'static str, u64, Vec<Range<u64>>, Vec<Range<u64>>);
    let cases: [Case; 5] = [
        ("nothing missing", 3 * P * CHUNK, vec![], vec![]),
        (
            "a whole file of 2.5 pieces: the last one short",
            (2 * P + P / 2) * CHUNK,
            vec![0..2 * P + P / 2],
            vec![0..P, P..2 * P, 2 * P..2 * P + P / 2],
        ),
        (
            "a resumed file: only what is missing, never a held byte",
            3 * P * CHUNK,
            vec![P / 2..P + 16, 2 * P + 32..3 * P],
            vec![P / 2..P, P..P + 16, 2 * P + 32..3 * P],
        ),
        (
            "a size not a whole chunk: the last chunk counts",
            P * CHUNK + 1,
            vec![0..P + 1],
            vec![0..P, P..P + 1],
        ),
        (
            "an empty file: one request for its size",
            0,
            vec![0..1],
            vec![0..1],
        ),
    ];
    for (what, size, missing, want) in cases {
        let f = FileNeed {
            hash: hash(1),
            size,
            missing,
        };
        let got: Vec<Range<u64>> = pieces(&f).into_iter().map(|p| p.chunks).collect();
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn source_choice_by_round_trip_holdings_and_slots() {
    let now = t0();
    let half = |f: u8| Holds::Ranges(HashMap::from([(hash(f), vec![0..P])]));
    // (what, slots, files, sources nearest first, wanted files, expected (peer, file, piece))
    type Case = (
        &'static str,
        usize,
        Vec<FileNeed>,
        Vec<Source>,
        Vec<u8>,
        Vec<(u8, u8, u64)>,
    );
    let cases: Vec<Case> = vec![
        (
            "one file split across the peers of a band, least busy first, within their slots",
            2,
            vec![file(1, 5)],
            vec![src(1, 5, Complete), src(2, 15, Complete)],
            vec![],
            vec![(1, 1, 0), (2, 1, 1), (1, 1, 2), (2, 1, 3)],
        ),
        (
            "a far peer is not used while the near ones are only busy",
            1,
            vec![file(1, 3)],
            vec![
                src(1, 5, Complete),
                src(2, 12, Complete),
                src(3, 80, Complete),
            ],
            vec![],
            vec![(1, 1, 0), (2, 1, 1)],
        ),
        (
            "several files in flight at once",
            2,
            vec![file(1, 1), file(2, 1), file(3, 1)],
            vec![src(1, 5, Complete)],
            vec![],
            vec![(1, 1, 0), (1, 2, 0)],
        ),
        (
            "a file a client waits for goes first",
            1,
            vec![file(1, 1), file(2, 1)],
            vec![src(1, 5, Complete)],
            vec![2],
            vec![(1, 2, 0)],
        ),
        (
            "a still-fetching peer gets only the pieces it reported holding",
            4,
            vec![file(1, 2)],
            vec![
                Source {
                    holds: half(1),
                    ..src(1, 5, Fetching)
                },
                src(2, 40, Complete),
            ],
            vec![],
            vec![(1, 1, 0), (2, 1, 1)],
        ),
        (
            "a still-fetching peer of unknown amount is asked (it sends what it has)",
            4,
            vec![file(1, 1)],
            vec![src(1, 5, Fetching), src(2, 40, Complete)],
            vec![],
            vec![(1, 1, 0)],
        ),
        (
            "the origin only for pieces no other peer holds",
            4,
            vec![file(1, 2)],
            vec![
                origin(9, 1),
                Source {
                    holds: half(1),
                    ..src(1, 30, Fetching)
                },
            ],
            vec![],
            vec![(1, 1, 0), (9, 1, 1)],
        ),
        (
            "a piece whose other holders are busy waits rather than load the origin",
            1,
            vec![file(1, 3)],
            vec![origin(9, 1), src(1, 30, Complete)],
            vec![],
            vec![(1, 1, 0)],
        ),
        (
            "no source: nothing to do",
            4,
            vec![file(1, 2)],
            vec![],
            vec![],
            vec![],
        ),
    ];
    for (what, slots, files, sources, wanted, want) in cases {
        let mut swarm = Swarm::new(slots, STALL);
        let wanted: Vec<blake3::Hash> = wanted.into_iter().map(hash).collect();
        let got = swarm.plan(&files, &sources, &wanted, now);
        assert_eq!(who(&got), want, "{what}");
        assert_eq!(
            swarm.in_flight(),
            want.len(),
            "{what}: all recorded in flight"
        );
        // Planned again at once: everything is in flight or waiting for a slot.
        assert!(
            swarm.plan(&files, &sources, &wanted, now).is_empty(),
            "{what}: nothing assigned twice"
        );
    }
}

#[test]
fn a_finished_piece_frees_its_slot_for_the_next() {
    let now = t0();
    let mut swarm = Swarm::new(1, STALL);
    let files = [file(1, 3)];
    let sources = [src(1, 5, Complete)];
    let first = swarm.plan(&files, &sources, &[], now);
    assert_eq!(who(&first), [(1, 1, 0)]);
    assert_eq!(
        swarm.ended(&first[0], Outcome::Done { got: 8 << 20 }, Complete, now),
        None
    );
    // The store now holds piece 0: the adapter passes only what is missing.
    let rest = [FileNeed {
        missing: vec![P..3 * P],
        ..file(1, 3)
    }];
    assert_eq!(who(&swarm.plan(&rest, &sources, &[], now)), [(1, 1, 1)]);
}

#[test]
fn a_piece_half_received_is_not_asked_of_a_second_peer() {
    let now = t0();
    let mut swarm = Swarm::new(1, STALL);
    let sources = [src(1, 5, Complete), src(2, 6, Complete)];
    let first = swarm.plan(&[file(1, 1)], &sources, &[], now);
    assert_eq!(who(&first), [(1, 1, 0)]);
    // Half of it is stored meanwhile: the rest is still in flight from peer 1.
    let half = [FileNeed {
        missing: vec![P / 2..P],
        ..file(1, 1)
    }];
    assert!(swarm.plan(&half, &sources, &[], now).is_empty());
}

#[test]
fn failover_on_stall_and_on_bad_data() {
    let now = t0();
    let files = [file(1, 1)];
    let sources = [src(1, 5, Complete), src(2, 40, Complete)];
    // (what, outcome, peer-wide backoff, how long the failing peer is skipped for the piece)
    let cases = [
        ("stalled", Outcome::Stalled, None, 2 * STALL),
        ("connection lost", Outcome::Failed, None, 2 * STALL),
        (
            "bad data",
            Outcome::BadData,
            Some((Fault::BadData, now + BAD_DATA_BACKOFF)),
            BAD_DATA_BACKOFF,
        ),
        (
            "unreachable",
            Outcome::Unreachable,
            Some((Fault::Unreachable, now + UNREACHABLE_BACKOFF)),
            UNREACHABLE_BACKOFF,
        ),
    ];
    for (what, outcome, backoff, skipped) in cases {
        let mut swarm = Swarm::new(4, STALL);
        let first = swarm.plan(&files, &sources, &[], now);
        assert_eq!(who(&first), [(1, 1, 0)], "{what}");
        assert_eq!(
            swarm.ended(&first[0], outcome, Complete, now),
            backoff,
            "{what}"
        );
        let next = swarm.plan(&files, &sources, &[], now);
        assert_eq!(
            who(&next),
            [(2, 1, 0)],
            "{what}: the piece goes to the next peer"
        );
        swarm.ended(&next[0], Outcome::Failed, Complete, now);
        // Both failed it: nothing until the far one's skip runs out; then the near one only
        // if its own skip (longer for bad data and unreachable) has run out too.
        let before = now + 2 * STALL - ms(1);
        assert!(
            swarm.plan(&files, &sources, &[], before).is_empty(),
            "{what}"
        );
        let after = now + 2 * STALL;
        let expect = if skipped > 2 * STALL { 2 } else { 1 };
        assert_eq!(
            who(&swarm.plan(&files, &sources, &[], after)),
            [(expect, 1, 0)],
            "{what}: retried after its skip"
        );
    }
}

#[test]
fn a_stall_is_no_byte_for_the_stall_timeout() {
    let now = t0();
    let mut swarm = Swarm::new(4, STALL);
    let got = swarm.plan(&[file(1, 2)], &[src(1, 5, Complete)], &[], now);
    assert_eq!(got.len(), 2);
    swarm.progress(&got[1], 1, now + STALL / 2);
    assert!(swarm.stalled(now + STALL - ms(1)).is_empty());
    assert_eq!(swarm.stalled(now + STALL), [got[0].clone()]);
    assert_eq!(swarm.stalled(now + STALL / 2 + STALL), got);
}

#[test]
fn a_proven_nearer_peer_still_fetching_is_waited_for_up_to_the_stall_timeout() {
    let now = t0();
    let sources = [src(1, 5, Fetching), src(2, 40, Complete)];
    let mut swarm = Swarm::new(1, STALL);
    // It delivers piece 0 (the only one missing then) ...
    let first = [FileNeed {
        missing: vec![0..P],
        ..file(1, 2)
    }];
    let a = swarm.plan(&first, &sources, &[], now);
    assert_eq!(who(&a), [(1, 1, 0)]);
    swarm.ended(&a[0], Outcome::Done { got: 1 }, Fetching, now);
    let files = [FileNeed {
        missing: vec![P..2 * P],
        ..file(1, 2)
    }];
    // ... then has nothing of piece 1 yet: the piece waits for it, not for the far peer.
    let b = swarm.plan(&files, &sources, &[], now);
    assert_eq!(who(&b), [(1, 1, 1)]);
    swarm.ended(&b[0], Outcome::Done { got: 0 }, Fetching, now);
    assert!(swarm.plan(&files, &sources, &[], now).is_empty());
    let retry = now + WAIT_RETRY;
    assert_eq!(who(&swarm.plan(&files, &sources, &[], retry)), [(1, 1, 1)]);
    // Still nothing after the stall timeout: the far peer gets it.
    let late = now + STALL;
    let c = swarm.plan(&files, &sources, &[], retry);
    assert!(c.is_empty(), "in flight already");
    let b2 = Assignment {
        peer: peer(1),
        piece: piece(1, 1),
    };
    swarm.ended(&b2, Outcome::Done { got: 0 }, Fetching, late);
    assert_eq!(who(&swarm.plan(&files, &sources, &[], late)), [(2, 1, 1)]);
}

#[test]
fn a_never_proven_peer_with_nothing_is_skipped_at_once() {
    // It could be waiting for us: no grace.
    let now = t0();
    let files = [file(1, 1)];
    let sources = [src(1, 5, Fetching), src(2, 40, Complete)];
    let mut swarm = Swarm::new(1, STALL);
    let a = swarm.plan(&files, &sources, &[], now);
    swarm.ended(&a[0], Outcome::Done { got: 0 }, Fetching, now);
    assert_eq!(who(&swarm.plan(&files, &sources, &[], now)), [(2, 1, 0)]);
}

#[test]
fn backoff_lengths() {
    let now = t0();
    assert_eq!(backoff(Fault::BadData, now), now + BAD_DATA_BACKOFF);
    assert_eq!(backoff(Fault::Unreachable, now), now + UNREACHABLE_BACKOFF);
    assert!(BAD_DATA_BACKOFF > UNREACHABLE_BACKOFF * 10);
}

#[test]
fn a_follower_asks_what_its_upstream_reported_holding_as_it_grows() {
    let now = t0();
    let holds = |end: u64| Holds::Ranges(HashMap::from([(hash(1), vec![0..end])]));
    let upstream = |end: u64| {
        [Source {
            holds: holds(end),
            ..src(1, 5, Fetching)
        }]
    };
    let mut swarm = Swarm::new(4, STALL);
    let need = |from: u64| {
        [FileNeed {
            missing: vec![from..2 * P],
            ..file(1, 2)
        }]
    };
    // 100 chunks held upstream: ask the whole chunk groups of them (96), nothing beyond.
    let a = swarm.plan(&need(0), &upstream(100), &[], now);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].piece.chunks, 0..96);
    swarm.ended(&a[0], Outcome::Done { got: 96 * CHUNK }, Fetching, now);
    // Nothing new reported: nothing to ask (no polling).
    assert!(swarm.plan(&need(96), &upstream(100), &[], now).is_empty());
    // It grew past the piece boundary: the rest of piece 0 and the start of piece 1.
    let b = swarm.plan(&need(96), &upstream(P + 40), &[], now);
    let got: Vec<Range<u64>> = b.iter().map(|a| a.piece.chunks.clone()).collect();
    assert_eq!(got, [96..P, P..P + 32]);
}

#[test]
fn a_clearly_nearer_source_still_growing_is_waited_for_not_the_far_one() {
    let now = t0();
    let nothing = Holds::Ranges(HashMap::from([(hash(1), vec![])]));
    let near = |grew: Option<Duration>| Source {
        holds: nothing.clone(),
        grew_at: grew.map(|d| now - d),
        ..src(1, 10, Fetching)
    };
    let far = src(2, 80, Complete);
    // (what, the near source, pieces asked of the far one)
    let cases = [
        ("grew just now: wait for it", near(Some(ms(100))), 0),
        (
            "watch began, no growth for the stall timeout: the far one",
            near(Some(STALL)),
            2,
        ),
        ("not watched (growth unknown): the far one", near(None), 2),
    ];
    for (what, near, want) in cases {
        let mut swarm = Swarm::new(4, STALL);
        let got = swarm.plan(&[file(1, 2)], &[near, far.clone()], &[], now);
        assert_eq!(got.len(), want, "{what}");
        assert!(got.iter().all(|a| a.peer == peer(2)), "{what}");
    }
}

#[test]
fn a_transfer_from_a_far_peer_gives_way_to_a_clearly_nearer_one() {
    let now = t0();
    let mut swarm = Swarm::new(4, STALL);
    let files = [file(1, 1)];
    // Round trips measured under load first made both look alike ...
    let early = [src(1, 124, Fetching), src(2, 246, Complete)];
    let a = swarm.plan(&files, &[early[1].clone()], &[], now);
    assert_eq!(who(&a), [(2, 1, 0)]);
    assert!(
        swarm.preempt(&early, now).is_empty(),
        "124 ms is not clearly nearer than 246 ms"
    );
    // ... then settle: the near one, growing, takes over the rest of the piece.
    let growing = |grew_at| Source {
        grew_at,
        ..src(1, 14, Fetching)
    };
    let starved = [growing(Some(now - STALL)), src(2, 82, Complete)];
    assert!(
        swarm.preempt(&starved, now).is_empty(),
        "not for a nearer peer whose copy stopped growing"
    );
    let settled = [growing(Some(now)), src(2, 82, Complete)];
    let stop = swarm.preempt(&settled, now);
    assert_eq!(stop, a);
    assert_eq!(
        swarm.ended(&stop[0], Outcome::Preempted, Complete, now),
        None
    );
    let rest = [FileNeed {
        missing: vec![P / 4..P],
        ..file(1, 1)
    }];
    let b = swarm.plan(&rest, &settled, &[], now);
    assert_eq!(b[0].peer, peer(1));
    assert_eq!(b[0].piece.chunks, P / 4..P);
    // Once the near one failed that piece, it takes nothing over any more.
    swarm.ended(&b[0], Outcome::Stalled, Fetching, now);
    let c = swarm.plan(&rest, &settled, &[], now);
    assert_eq!(c[0].peer, peer(2));
    assert!(swarm.preempt(&settled, now).is_empty());
}

#[test]
fn a_slow_peer_hands_its_piece_to_a_much_faster_free_one() {
    let now = t0();
    let mut swarm = Swarm::new(1, STALL);
    let sources = [src(1, 10, Complete), src(2, 12, Complete)];
    let files = [file(1, 3)];
    let a = swarm.plan(&files, &sources, &[], now);
    assert_eq!(who(&a), [(1, 1, 0), (2, 1, 1)]);
    // Peer 2 sends its 8 MiB piece in 1 s; peer 1 has sent 100 KB of its piece in 3 s.
    let t = now + Duration::from_secs(1);
    swarm.ended(&a[1], Outcome::Done { got: P * CHUNK }, Complete, t);
    let left = [FileNeed {
        missing: vec![0..P, 2 * P..3 * P],
        ..file(1, 3)
    }];
    let b = swarm.plan(&left, &sources, &[], t);
    assert_eq!(who(&b), [(2, 1, 2)], "peer 2 takes the next piece first");
    let t3 = now + Duration::from_secs(3);
    swarm.progress(&a[0], 100_000, t3);
    assert!(
        swarm.slow(&sources, t3).is_empty(),
        "peer 2 has no free slot"
    );
    swarm.ended(&b[0], Outcome::Done { got: P * CHUNK }, Complete, t3);
    let stop = swarm.slow(&sources, t3);
    assert_eq!(stop, [a[0].clone()]);
    swarm.ended(&stop[0], Outcome::Slow, Complete, t3);
    // The rest of piece 0 goes to peer 2, not back to the slow one.
    let rest = [FileNeed {
        missing: vec![96..P],
        ..file(1, 3)
    }];
    assert_eq!(who(&swarm.plan(&rest, &sources, &[], t3)), [(2, 1, 0)]);
}

#[test]
fn a_transfer_is_not_called_slow_before_the_stall_timeout_or_against_a_far_peer() {
    let now = t0();
    let files = [file(1, 2)];
    // (what, sources, when checked, expected slow transfers)
    let cases = [
        (
            "too early",
            [src(1, 10, Complete), src(2, 12, Complete)],
            ms(900),
            0,
        ),
        (
            "far peer",
            [src(1, 10, Complete), src(2, 80, Complete)],
            STALL,
            0,
        ),
        (
            "a peer still fetching is paced by its upstream, not slow",
            [src(1, 10, Fetching), src(2, 12, Complete)],
            STALL,
            0,
        ),
        (
            "same band",
            [src(1, 10, Complete), src(2, 12, Complete)],
            STALL,
            1,
        ),
    ];
    for (what, sources, after, want) in cases {
        let mut swarm = Swarm::new(1, STALL);
        // Peer 2's rate known from a piece of another file.
        let other = [file(2, 1)];
        let o = swarm.plan(&other, &sources[1..], &[], now);
        swarm.ended(
            &o[0],
            Outcome::Done { got: P * CHUNK },
            Complete,
            now + ms(500),
        );
        let a = swarm.plan(&files, &sources[..1], &[], now);
        swarm.progress(&a[0], 1000, now + after);
        assert_eq!(swarm.slow(&sources, now + after).len(), want, "{what}");
    }
}
