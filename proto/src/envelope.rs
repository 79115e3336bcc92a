//! The framing every signed document shares: magic, body length, body, signature.
//!
//! ```text
//! magic                  8 bytes: which kind of document, and its format version
//! body_len: u32          little-endian length of body
//! body                   postcard encoding of the document
//! signature              64 bytes, ed25519 over the kind's domain prefix || body
//! ```
//!
//! Each kind has its own magic and its own domain prefix, so a release's signature can never
//! be taken for a policy's and back. What the body means is the kind's business.

/// A generous bound (a release with 4096 long paths is ~400 KiB) that still stops a hostile
/// peer from making a node allocate gigabytes before the signature is checked.
pub const MAX_ENCODED: usize = 1 << 20;
const HEADER: usize = 8 + 4;
const SIG: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    BadMagic,
    Truncated(usize),
    TooLarge,
    TrailingBytes(usize),
}

/// Whether a body of this length makes a frame that [`decode`] accepts.
pub fn fits(body_len: usize) -> bool {
    body_len <= MAX_ENCODED - HEADER - SIG
}

pub fn encode(magic: &[u8; 8], body: &[u8], signature: &[u8; 64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len() + SIG);
    out.extend_from_slice(magic);
    // body.len() <= MAX_ENCODED is guaranteed by the callers' construction and by decode.
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(signature);
    out
}

/// Splits a frame into body and signature; nothing is trusted yet.
pub fn decode(magic: &[u8; 8], bytes: &[u8]) -> Result<(Vec<u8>, [u8; 64]), FrameError> {
    if bytes.len() > MAX_ENCODED {
        return Err(FrameError::TooLarge);
    }
    if bytes.len() < HEADER + SIG {
        return Err(FrameError::Truncated(bytes.len()));
    }
    if &bytes[..8] != magic {
        return Err(FrameError::BadMagic);
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[8..12]);
    let body_len = u32::from_le_bytes(len) as usize;
    let expected = HEADER
        .checked_add(body_len)
        .and_then(|n| n.checked_add(SIG))
        .ok_or(FrameError::TooLarge)?;
    if bytes.len() < expected {
        return Err(FrameError::Truncated(bytes.len()));
    }
    if bytes.len() > expected {
        return Err(FrameError::TrailingBytes(bytes.len() - expected));
    }
    let body = bytes[HEADER..HEADER + body_len].to_vec();
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&bytes[HEADER + body_len..]);
    Ok((body, signature))
}

/// What the signature covers: the kind's domain prefix, then the body.
pub fn signed_message(domain: &[u8], body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(domain.len() + body.len());
    msg.extend_from_slice(domain);
    msg.extend_from_slice(body);
    msg
}
