//! Following a peer that is still fetching a file: what is asked of it, and when.
#![allow(clippy::single_range_in_vec_init)] // one range is the common case

use std::ops::Range;

use bao_tree::{ChunkNum, ChunkRanges};

use crate::fleet::follow::{Follow, MAX_ASKS, MIN_QUEUED_ASK};

fn set(ranges: &[Range<u64>]) -> ChunkRanges {
    let mut s = ChunkRanges::empty();
    for r in ranges {
        s |= ChunkRanges::from(ChunkNum(r.start)..ChunkNum(r.end));
    }
    s
}

/// What the next ask is, as plain ranges (None: nothing is due).
fn ask(f: &mut Follow) -> Option<Vec<Range<u64>>> {
    f.next_ask().map(|a| a.chunks)
}

#[test]
fn first_ask_table() {
    // (what, file chunks, missing here, peer holds, first ask)
    #[allow(clippy::type_complexity)]
    let cases: &[(
        &str,
        u64,
        Vec<Range<u64>>,
        Vec<Range<u64>>,
        Option<Vec<Range<u64>>>,
    )] = &[
        (
            "peer holds nothing: nothing to ask",
            4096,
            vec![0..4096],
            vec![],
            None,
        ),
        (
            "peer's prefix, however small",
            4096,
            vec![0..4096],
            vec![0..16],
            Some(vec![0..16]),
        ),
        (
            "only what is missing here",
            4096,
            vec![1024..4096],
            vec![0..2048],
            Some(vec![1024..2048]),
        ),
        (
            "past a hole in the peer's copy",
            4096,
            vec![0..4096],
            vec![0..512, 1024..2048],
            Some(vec![0..512, 1024..2048]),
        ),
        (
            "held here already: nothing",
            4096,
            vec![2048..4096],
            vec![0..2048],
            None,
        ),
        (
            "an open-ended report is cut at the file's end",
            100,
            vec![0..100],
            vec![50..u64::MAX],
            Some(vec![50..100]),
        ),
    ];
    for (what, total, missing, held, want) in cases {
        let mut f = Follow::new(*total, missing);
        f.peer_changed(&set(held));
        assert_eq!(&ask(&mut f), want, "{what}");
    }
}

#[test]
fn growth_is_asked_as_it_lands_with_one_request_queued_behind_the_running_one() {
    let mut f = Follow::new(8192, &[0..8192]);
    f.peer_changed(&set(&[0..64]));
    let first = f.next_ask().expect("the peer's first bytes");
    assert_eq!(first.chunks, vec![0..64]);
    // The peer grows by a chunk group: too little to queue behind a running request.
    f.peer_changed(&set(&[64..80]));
    assert_eq!(ask(&mut f), None, "16 chunks wait while a request runs");
    // It grows to MIN_QUEUED_ASK past what is asked: queued now, not after the first ends.
    f.peer_changed(&set(&[80..64 + MIN_QUEUED_ASK]));
    assert_eq!(ask(&mut f), Some(vec![64..64 + MIN_QUEUED_ASK]));
    assert_eq!(f.running(), MAX_ASKS);
    // More lands, but two requests already run.
    f.peer_changed(&set(&[64 + MIN_QUEUED_ASK..2048]));
    assert_eq!(ask(&mut f), None, "at most MAX_ASKS in flight");
    // The first ends having brought its chunks: the next covers what landed meanwhile.
    f.ended(first.id);
    f.missing_now(&[64..8192]);
    assert_eq!(ask(&mut f), Some(vec![64 + MIN_QUEUED_ASK..2048]));
}

#[test]
fn the_rest_of_the_file_is_queued_however_small() {
    let mut f = Follow::new(1000, &[0..1000]);
    f.peer_changed(&set(&[0..900]));
    assert_eq!(ask(&mut f), Some(vec![0..900]));
    // The peer completes: the last 100 chunks are below MIN_QUEUED_ASK but end the file.
    f.peer_changed(&set(&[900..1000]));
    assert_eq!(ask(&mut f), Some(vec![900..1000]));
}

#[test]
fn what_a_request_did_not_bring_is_asked_again() {
    let mut f = Follow::new(4096, &[0..4096]);
    f.peer_changed(&set(&[0..2048]));
    let a = f.next_ask().expect("an ask");
    // It ended short: only the first half arrived.
    f.ended(a.id);
    f.missing_now(&[1024..4096]);
    assert_eq!(ask(&mut f), Some(vec![1024..2048]));
}

#[test]
fn complete_and_nothing_new() {
    let mut f = Follow::new(2048, &[1024..2048]);
    assert!(!f.complete());
    assert!(f.peer_has_nothing_new(), "no report yet");
    f.peer_changed(&set(&[0..1024]));
    assert!(f.peer_has_nothing_new(), "holds only what is here already");
    f.peer_changed(&set(&[1024..1040]));
    assert!(!f.peer_has_nothing_new());
    f.missing_now(&[]);
    assert!(f.complete());
}
