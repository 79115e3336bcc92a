//! How a file's missing chunks are cut into pieces asked of one peer a few at a time.
#![allow(clippy::single_range_in_vec_init)] // one missing range is the common case

use std::ops::Range;

use netboot_proto::fleet::Holding;

use crate::fleet::pieces::{pieces, still_missing, streams_for, tail, MAX_STREAMS_PER_FILE};

/// Every chunk of `missing` is in exactly one piece, in file order.
fn covers_exactly(missing: &[Range<u64>], pieces: &[Vec<Range<u64>>]) -> bool {
    let flat: Vec<Range<u64>> = pieces.iter().flatten().cloned().collect();
    let mut merged: Vec<Range<u64>> = Vec::new();
    for r in flat {
        match merged.last_mut() {
            Some(last) if last.end == r.start => last.end = r.end,
            Some(last) if last.end > r.start => return false,
            _ => merged.push(r),
        }
    }
    merged == missing
}

fn sizes(pieces: &[Vec<Range<u64>>]) -> Vec<u64> {
    pieces
        .iter()
        .map(|s| s.iter().map(|r| r.end - r.start).sum())
        .collect()
}

#[test]
fn pieces_table() {
    // (what, missing, piece, align, piece sizes)
    #[allow(clippy::type_complexity)]
    let cases: &[(&str, Vec<Range<u64>>, u64, u64, Vec<u64>)] = &[
        ("nothing missing: no request", vec![], 8, 1, vec![]),
        (
            "smaller than a piece: one request",
            vec![0..5],
            8,
            1,
            vec![5],
        ),
        (
            "a whole file: pieces in order, the last shorter",
            vec![0..20],
            8,
            1,
            vec![8, 8, 4],
        ),
        (
            "cuts moved up to the alignment",
            vec![0..1000],
            250,
            16,
            vec![256, 256, 256, 232],
        ),
        (
            "a hole in the middle: pieces count missing chunks only",
            vec![0..6, 10..20],
            8,
            1,
            vec![8, 8],
        ),
        (
            "one piece for everything",
            vec![0..50, 60..70],
            u64::MAX,
            1,
            vec![60],
        ),
    ];
    for (what, missing, piece, align, want) in cases {
        let got = pieces(missing, *piece, *align);
        assert_eq!(sizes(&got), *want, "{what}: {got:?}");
        assert!(covers_exactly(missing, &got), "{what}: {got:?}");
    }
}

#[test]
fn a_piece_spans_a_hole_and_cuts_fall_on_the_alignment() {
    let got = pieces(&[0..48, 64..208], 64, 16);
    assert_eq!(
        got,
        vec![vec![0..48, 64..80], vec![80..144], vec![144..208]]
    );
}

#[test]
fn a_missing_tail_that_does_not_start_aligned_is_still_covered() {
    let missing = [5..2_000_003];
    let got = pieces(&missing, 4 * 1024, 1024);
    assert_eq!(got.len(), 489);
    assert!(covers_exactly(&missing, &got));
    assert!(got[1..].iter().all(|p| p[0].start % 1024 == 0));
}

#[test]
fn only_a_complete_copy_is_asked_for_several_pieces_at_once() {
    // (holding, [fleet] streams, pieces in flight)
    let cases = [
        (Holding::Complete, 1, 1),
        (Holding::Complete, 4, 4),
        (Holding::Complete, 0, 1),
        (Holding::Complete, 64, MAX_STREAMS_PER_FILE),
        // A peer still fetching answers past its own progress with nothing: one request
        // at a time follows it, whatever is configured.
        (Holding::Fetching, 4, 1),
        (Holding::Relaying, 4, 1),
    ];
    for (holding, configured, want) in cases {
        assert_eq!(
            streams_for(holding, configured),
            want,
            "{holding:?} {configured}"
        );
    }
}

#[test]
fn a_piece_asked_again_asks_only_for_what_is_still_missing() {
    // (what, piece, missing in the store now, to ask for)
    #[allow(clippy::type_complexity)]
    let cases: &[(&str, Vec<Range<u64>>, Vec<Range<u64>>, Vec<Range<u64>>)] = &[
        ("nothing arrived", vec![16..32], vec![0..64], vec![16..32]),
        (
            "its first half arrived",
            vec![16..32],
            vec![24..64],
            vec![24..32],
        ),
        (
            "all of it arrived",
            vec![16..32],
            vec![0..16, 32..64],
            vec![],
        ),
        (
            "a piece spanning a hole, part of each range arrived",
            vec![0..8, 16..32],
            vec![4..8, 20..24, 28..40],
            vec![4..8, 20..24, 28..32],
        ),
        ("nothing missing any more", vec![0..8], vec![], vec![]),
    ];
    for (what, piece, missing, want) in cases {
        assert_eq!(still_missing(piece, missing), *want, "{what}");
    }
}

#[test]
fn the_tail_is_the_last_chunks_missing_in_file_order() {
    // (what, missing, chunks wanted, the tail)
    type Case = (&'static str, Vec<Range<u64>>, u64, Vec<Range<u64>>);
    let cases: [Case; 5] = [
        (
            "one range, longer",
            vec![0..10_000],
            4096,
            vec![5904..10_000],
        ),
        ("one range, shorter", vec![100..300], 4096, vec![100..300]),
        (
            "across a hole, file order kept",
            vec![0..1000, 2000..2500, 3000..3100],
            700,
            vec![900..1000, 2000..2500, 3000..3100],
        ),
        ("nothing missing", vec![], 4096, vec![]),
        ("nothing wanted", vec![0..100], 0, vec![]),
    ];
    for (what, missing, chunks, want) in cases {
        assert_eq!(tail(&missing, chunks), want, "{what}");
    }
}
