//! How the missing part of one file is split into requests that run side by side on one
//! connection to one peer.
//!
//! A QUIC stream can hold only so much behind a lost packet before the receiving stack gives
//! up on the connection (`transport::REASSEMBLY_SAFE_BYTES`), so one stream's window stays at
//! ~2 MiB — less than a lossy long link needs in flight (its rate × round trip plus the round
//! trips a hole waits for its retransmission). Several streams, each with its own window and
//! its own reassembly buffer, carry the difference: a big file is asked for as a few
//! contiguous slices of its missing chunks at once, each verified by iroh-blobs as it arrives.
//! A file smaller than two slices goes in one request, as before.
//!
//! Units are BLAKE3 chunks (1 KiB); slice boundaries fall on [`ALIGN_CHUNKS`] so that no
//! 16 KiB chunk group the store writes is shared by two requests.

use std::ops::Range;

/// Requests in flight for one file from one peer.
pub(crate) const STREAMS_PER_FILE: usize = 4;
/// The smallest slice worth a stream of its own: 8 MiB.
pub(crate) const MIN_SLICE_CHUNKS: u64 = 8 * 1024;
/// Slice boundaries are multiples of this (1 MiB; a multiple of iroh-blobs' 16-chunk group).
pub(crate) const ALIGN_CHUNKS: u64 = 1024;

/// Splits `missing` (sorted, disjoint chunk ranges) into at most `parts` slices of about
/// equal size, each at least `min` chunks (the last may be smaller), with cut points on
/// multiples of `align`. Every missing chunk is in exactly one slice; slices keep file order.
pub(crate) fn split(
    missing: &[Range<u64>],
    parts: usize,
    min: u64,
    align: u64,
) -> Vec<Vec<Range<u64>>> {
    let total: u64 = missing.iter().map(|r| r.end - r.start).sum();
    if total == 0 {
        return Vec::new();
    }
    let align = align.max(1);
    let parts = (parts.max(1) as u64).min(total / min.max(1)).max(1);
    let share = total.div_ceil(parts);
    let mut slices = Vec::new();
    let mut current: Vec<Range<u64>> = Vec::new();
    let mut in_current = 0u64;
    for r in missing {
        let mut start = r.start;
        while start < r.end {
            let last = slices.len() as u64 + 1 == parts;
            let want = share.saturating_sub(in_current);
            // Cut where this slice has its share, rounded up to the next aligned chunk.
            let cut = if last {
                r.end
            } else {
                (start + want)
                    .div_ceil(align)
                    .saturating_mul(align)
                    .min(r.end)
            };
            current.push(start..cut);
            in_current += cut - start;
            start = cut;
            if !last && in_current >= share {
                slices.push(std::mem::take(&mut current));
                in_current = 0;
            }
        }
    }
    if !current.is_empty() {
        slices.push(current);
    }
    slices
}
