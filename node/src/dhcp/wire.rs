//! Bytes → `dhcproto::v4::Message`, refusing anything truncated or malformed.
//!
//! dhcproto is lenient in ways that matter for a server on a shared network:
//! it does not check the magic cookie, it silently stops parsing options at the
//! first one it cannot decode (so a client's option 60/93 could vanish without
//! a trace), and a few of its option decoders `debug_assert!` on lengths or
//! subtract from them (panics in debug builds). So before handing bytes to it
//! we walk the option TLVs ourselves, and afterwards we check that every option
//! we saw on the wire was actually decoded.

use std::collections::BTreeSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

use dhcproto::v4::{Message, OptionCode, MAGIC};
use dhcproto::Decodable;

use super::request::RequestError;

/// Length of the fixed BOOTP header (op .. file), before the magic cookie.
pub const BOOTP_HEADER_LEN: usize = 236;
/// Offset of the first option byte.
pub const OPTIONS_OFFSET: usize = BOOTP_HEADER_LEN + 4;

/// How many times dhcproto panicked on a packet (caught). Should stay 0: the
/// layout checks are meant to keep such packets away from it.
pub static DECODER_PANICS: AtomicUsize = AtomicUsize::new(0);

/// Decode one received datagram. Never panics.
pub fn decode_message(data: &[u8]) -> Result<Message, RequestError> {
    let seen = check_layout(data)?;
    let msg = panic::catch_unwind(AssertUnwindSafe(|| Message::from_bytes(data)))
        .map_err(|_| {
            DECODER_PANICS.fetch_add(1, Ordering::Relaxed);
            RequestError::Malformed("option decoder failed".into())
        })?
        .map_err(|e| RequestError::Malformed(format!("decoding failed: {e}")))?;
    for code in seen {
        // dhcproto 0.15 decodes option 37 (TCP TTL) as option 23: not a loss.
        if code != 37 && !msg.opts().contains(OptionCode::from(code)) {
            return Err(RequestError::Malformed(format!(
                "option {code} has an invalid value or length"
            )));
        }
    }
    Ok(msg)
}

/// Check header length, magic cookie and option TLV structure; returns the set
/// of option codes present (without Pad/End).
fn check_layout(data: &[u8]) -> Result<BTreeSet<u8>, RequestError> {
    if data.len() < OPTIONS_OFFSET {
        return Err(RequestError::Truncated(format!(
            "{} bytes, a DHCP packet has at least {OPTIONS_OFFSET}",
            data.len()
        )));
    }
    if data[BOOTP_HEADER_LEN..OPTIONS_OFFSET] != MAGIC {
        return Err(RequestError::Malformed(
            "no DHCP magic cookie (plain BOOTP?)".into(),
        ));
    }
    let mut seen = BTreeSet::new();
    // (code, total length) of the current run of consecutive same-code options,
    // which dhcproto concatenates (RFC 3396) before decoding.
    let mut run: Option<(u8, usize)> = None;
    let mut i = OPTIONS_OFFSET;
    loop {
        let Some(&code) = data.get(i) else {
            return Err(RequestError::Truncated(
                "options end without the End option (255)".into(),
            ));
        };
        match code {
            0 | 255 => {
                if let Some((c, len)) = run.take() {
                    check_option_len(c, len)?;
                }
                if code == 255 {
                    return Ok(seen);
                }
                i += 1;
            }
            _ => {
                let Some(&len) = data.get(i + 1) else {
                    return Err(RequestError::Truncated(format!(
                        "option {code} has no length byte"
                    )));
                };
                let len = len as usize;
                if i + 2 + len > data.len() {
                    return Err(RequestError::Truncated(format!(
                        "option {code} length {len} runs past the end of the packet"
                    )));
                }
                run = match run {
                    Some((c, total)) if c == code => Some((c, total + len)),
                    Some((c, total)) => {
                        check_option_len(c, total)?;
                        Some((code, len))
                    }
                    None => Some((code, len)),
                };
                seen.insert(code);
                i += 2 + len;
            }
        }
    }
}

/// Lengths that dhcproto 0.15 asserts on (debug) or underflows on.
fn check_option_len(code: u8, len: usize) -> Result<(), RequestError> {
    let ok = match code {
        53 => len == 1,
        80 => len == 0,
        81 => len >= 3,
        93 => len >= 2 && len.is_multiple_of(2),
        94 => len == 3,
        151 => len >= 1,
        152..=155 => len == 4,
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(RequestError::Malformed(format!(
            "option {code} has invalid length {len}"
        )))
    }
}
