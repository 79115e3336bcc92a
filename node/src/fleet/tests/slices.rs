//! How a file's missing chunks are split into requests side by side on one connection.
#![allow(clippy::single_range_in_vec_init)] // one missing range is the common case

use std::ops::Range;

use crate::fleet::slices::split;

/// Every chunk of `missing` is in exactly one slice, in file order.
fn covers_exactly(missing: &[Range<u64>], slices: &[Vec<Range<u64>>]) -> bool {
    let flat: Vec<Range<u64>> = slices.iter().flatten().cloned().collect();
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

fn sizes(slices: &[Vec<Range<u64>>]) -> Vec<u64> {
    slices
        .iter()
        .map(|s| s.iter().map(|r| r.end - r.start).sum())
        .collect()
}

#[test]
fn split_table() {
    // (what, missing, parts, min, align, slice sizes)
    #[allow(clippy::type_complexity)]
    let cases: &[(&str, Vec<Range<u64>>, usize, u64, u64, Vec<u64>)] = &[
        ("nothing missing: no request", vec![], 4, 8, 1, vec![]),
        (
            "a file smaller than two slices: one request",
            vec![0..15],
            4,
            8,
            1,
            vec![15],
        ),
        (
            "a whole file: equal shares",
            vec![0..400],
            4,
            8,
            1,
            vec![100; 4],
        ),
        (
            "as many slices as the minimum size allows",
            vec![0..20],
            4,
            8,
            1,
            vec![10, 10],
        ),
        (
            "cuts rounded up to the alignment, the last slice takes the rest",
            vec![0..1000],
            4,
            8,
            16,
            vec![256, 256, 256, 232],
        ),
        (
            "a hole in the middle: shares count missing chunks only",
            vec![0..100, 300..400],
            2,
            8,
            1,
            vec![100, 100],
        ),
        (
            "one request when asked for one part",
            vec![0..50, 60..70],
            1,
            8,
            1,
            vec![60],
        ),
    ];
    for (what, missing, parts, min, align, want) in cases {
        let got = split(missing, *parts, *min, *align);
        assert_eq!(sizes(&got), *want, "{what}: {got:?}");
        assert!(covers_exactly(missing, &got), "{what}: {got:?}");
    }
}

#[test]
fn a_slice_spans_a_hole_and_cuts_fall_on_the_alignment() {
    let got = split(&[0..48, 64..208], 3, 16, 16);
    assert_eq!(
        got,
        vec![vec![0..48, 64..80], vec![80..144], vec![144..208]]
    );
    for s in &got[..got.len() - 1] {
        assert_eq!(s.last().map(|r| r.end % 16), Some(0), "{got:?}");
    }
}

#[test]
fn a_missing_tail_that_does_not_start_aligned_is_still_covered() {
    let missing = [5..2_000_003];
    let got = split(&missing, 4, 8 * 1024, 1024);
    assert_eq!(got.len(), 4);
    assert!(covers_exactly(&missing, &got), "{got:?}");
    for s in &got[1..] {
        assert_eq!(s[0].start % 1024, 0, "{got:?}");
    }
}
