//! How the missing part of one file is cut into pieces that are asked of one peer a few at a
//! time, each on its own stream.
//!
//! A QUIC stream can hold only so much behind a lost packet before the receiving stack gives
//! up on the connection (`transport::REASSEMBLY_SAFE_BYTES`), so one stream's window stays at
//! ~2 MiB — less than a lossy long link needs in flight (its rate × round trip plus the round
//! trips a hole waits for its retransmission). Several streams, each with its own window and
//! its own reassembly buffer, carry the difference: a big file is asked for as consecutive
//! pieces, [`STREAMS_PER_FILE`] in flight, the next piece asked as soon as one is done, each
//! verified by iroh-blobs as it arrives. Because the pieces are consecutive, what this node
//! holds stays one growing prefix with at most a few pieces of holes at its end, and a peer
//! following this node (asking it for what it has, which iroh-blobs answers up to the first
//! hole) is never more than those few pieces behind. (Four big slices side by side were
//! measured first: a follower then saw only the first slice's progress, and the chain of
//! eight sites took 2.25× the lower bound instead of ~1.5×; docs/benchmarks.md, "Pieces and
//! the chain".)
//!
//! Units are BLAKE3 chunks (1 KiB); piece boundaries fall on [`ALIGN_CHUNKS`] so that no
//! 16 KiB chunk group the store writes is shared by two requests.

use std::ops::Range;

use netboot_proto::fleet::Holding;

/// The most pieces in flight for one file from one peer (`[fleet] streams` is cut to it).
pub(crate) const MAX_STREAMS_PER_FILE: usize = 4;
/// The size of a piece: 4 MiB, twice a stream's window, so a piece's request round trip is
/// small beside its transfer, and small enough that a follower lags little.
pub(crate) const PIECE_CHUNKS: u64 = 4 * 1024;
/// Piece boundaries are multiples of this (1 MiB; a multiple of iroh-blobs' 16-chunk group).
pub(crate) const ALIGN_CHUNKS: u64 = 1024;

/// How many pieces to keep in flight from a peer that holds the release as `holding`, with
/// `[fleet] streams = configured`. Only a complete copy is asked for several at once: a peer
/// still fetching answers each request up to what it has verified so far, so pieces past that
/// point would come back empty; one request at a time follows it.
pub(crate) fn streams_for(holding: Holding, configured: usize) -> usize {
    match holding {
        Holding::Complete => configured.clamp(1, MAX_STREAMS_PER_FILE),
        Holding::Fetching | Holding::Relaying => 1,
    }
}

/// Cuts `missing` (sorted, disjoint chunk ranges) into consecutive pieces of `piece` missing
/// chunks each (the last may be smaller; a cut is moved up to the next multiple of `align`).
/// Every missing chunk is in exactly one piece; pieces keep file order.
pub(crate) fn pieces(missing: &[Range<u64>], piece: u64, align: u64) -> Vec<Vec<Range<u64>>> {
    let (piece, align) = (piece.max(1), align.max(1));
    let mut out = Vec::new();
    let mut current: Vec<Range<u64>> = Vec::new();
    let mut in_current = 0u64;
    for r in missing {
        let mut start = r.start;
        while start < r.end {
            let want = piece.saturating_sub(in_current);
            let cut = start
                .saturating_add(want)
                .div_ceil(align)
                .saturating_mul(align)
                .min(r.end);
            current.push(start..cut);
            in_current += cut - start;
            start = cut;
            if in_current >= piece {
                out.push(std::mem::take(&mut current));
                in_current = 0;
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The chunks of `piece` still in `missing` (both sorted, disjoint): what is left to ask for
/// of a piece that went back to the queue after its peer left with part of it delivered.
pub(crate) fn still_missing(piece: &[Range<u64>], missing: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    for p in piece {
        for m in missing {
            let (start, end) = (p.start.max(m.start), p.end.min(m.end));
            if start < end {
                out.push(start..end);
            }
        }
    }
    out
}

/// The last `chunks` chunks of the `missing` ranges, in file order: the part of a file a peer
/// still fetching it (which fills it from its start) reaches last. A try of a complete copy
/// while following such a peer (decide.rs `probe_target`) asks for it, so it asks for
/// nothing the following is about to.
pub(crate) fn tail(missing: &[Range<u64>], chunks: u64) -> Vec<Range<u64>> {
    let mut left = chunks;
    let mut piece = Vec::new();
    for r in missing.iter().rev() {
        if left == 0 {
            break;
        }
        let take = left.min(r.end.saturating_sub(r.start));
        piece.push(r.end - take..r.end);
        left -= take;
    }
    piece.reverse();
    piece
}
