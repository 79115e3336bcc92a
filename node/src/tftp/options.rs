//! Option negotiation for read requests: blksize (RFC 2348), timeout and tsize
//! (RFC 2349), windowsize (RFC 7440). Pure: the caller supplies the file size.
//!
//! Policy, applied per option:
//! - unknown options are ignored (RFC 2347: not acknowledging one is how a server declines);
//! - an option may appear more than once in a hostile or buggy request; only its
//!   first occurrence is considered so the outcome does not depend on parser details;
//! - a value we cannot use at all (not a number, below the RFC minimum) is ignored,
//!   so the transfer falls back to the RFC 1350 default instead of failing;
//! - a value above what we allow is clamped, which RFC 2348 and RFC 7440 permit
//!   (the server may answer with a smaller value);
//! - `timeout` cannot be altered by the server (RFC 2349), so it is either echoed
//!   verbatim or ignored; values above the configured ceiling are ignored.

use std::time::Duration;

use super::packet::{TftpOption, DEFAULT_BLKSIZE, MAX_BLKSIZE, MIN_BLKSIZE};

/// Server-side limits for negotiation, derived from `TftpConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionLimits {
    pub max_blksize: u16,
    pub max_windowsize: u16,
    /// Cap on `windowsize * blksize`; 0 disables it. See `TftpConfig::max_window_bytes`.
    pub max_window_bytes: usize,
    /// Largest `timeout` option acknowledged (1..=255 s); a larger one is declined.
    /// A client asking for 255 s that never ACKs would otherwise hold its transfer slot
    /// for 255 s times the retries.
    pub max_timeout_secs: u8,
}

impl OptionLimits {
    /// Forces configured limits into the ranges the RFCs allow, so a bad config
    /// can never make us announce an illegal value.
    pub fn sanitized(self) -> Self {
        Self {
            max_blksize: self.max_blksize.clamp(MIN_BLKSIZE, MAX_BLKSIZE),
            max_windowsize: self.max_windowsize.max(1),
            max_window_bytes: self.max_window_bytes,
            max_timeout_secs: self.max_timeout_secs.max(1),
        }
    }

    /// Largest window for a given block size: the configured count, further
    /// limited so that one window's burst stays within `max_window_bytes`
    /// (but never below 1).
    pub fn windowsize_for(&self, blksize: u16) -> u16 {
        if self.max_window_bytes == 0 {
            return self.max_windowsize;
        }
        let by_bytes =
            (self.max_window_bytes / usize::from(blksize.max(1))).clamp(1, usize::from(u16::MAX));
        self.max_windowsize.min(by_bytes as u16)
    }
}

/// Result of negotiation: the parameters the transfer runs with and the OACK to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: u16,
    pub windowsize: u16,
    /// Retransmission timeout the client asked for, if accepted.
    pub timeout: Option<Duration>,
    /// Options to acknowledge, in request order. Empty means: send no OACK,
    /// start with DATA 1 (RFC 2347).
    pub oack: Vec<TftpOption>,
}

impl Negotiated {
    /// What a request without options gets.
    pub fn defaults() -> Self {
        Self {
            blksize: DEFAULT_BLKSIZE,
            windowsize: 1,
            timeout: None,
            oack: Vec::new(),
        }
    }
}

/// Negotiates `requested` (names already lowercase, see `packet`) for a file of
/// `file_size` bytes.
pub fn negotiate(requested: &[TftpOption], file_size: u64, limits: OptionLimits) -> Negotiated {
    let limits = limits.sanitized();
    let mut seen = Seen::default();
    // Accepted options in request order; values are settled afterwards because
    // the window limit depends on blksize, whichever order they came in.
    let mut accepted: Vec<&'static str> = Vec::new();
    let mut blksize = None;
    let mut windowsize = None;
    let mut timeout = None;

    for opt in requested {
        let name = opt.name.as_str();
        if !seen.first_time(name) {
            continue;
        }
        let Some(value) = parse_decimal(&opt.value) else {
            continue;
        };
        match name {
            "blksize" if value >= u64::from(MIN_BLKSIZE) => {
                blksize = Some(value.min(u64::from(limits.max_blksize)) as u16);
                accepted.push("blksize");
            }
            "windowsize" if value >= 1 => {
                windowsize = Some(value.min(u64::from(u16::MAX)) as u16);
                accepted.push("windowsize");
            }
            "timeout" if (1..=u64::from(limits.max_timeout_secs)).contains(&value) => {
                timeout = Some(value);
                accepted.push("timeout");
            }
            // RFC 2349 says clients send 0 in an RRQ; any well-formed number is
            // treated as the question "how big is it?". An empty file is served
            // without announcing tsize: curl (7.88) rejects "tsize 0" in an OACK
            // and aborts, while every client copes with an unacknowledged option.
            "tsize" if file_size > 0 => accepted.push("tsize"),
            _ => {}
        }
    }

    let blksize = blksize.unwrap_or(DEFAULT_BLKSIZE);
    let windowsize = windowsize.map(|w| w.min(limits.windowsize_for(blksize)));
    let oack = accepted
        .into_iter()
        .map(|name| {
            let value = match name {
                "blksize" => blksize.to_string(),
                "windowsize" => windowsize.unwrap_or(1).to_string(),
                "timeout" => timeout.unwrap_or(1).to_string(),
                _ => file_size.to_string(),
            };
            TftpOption::new(name, value)
        })
        .collect();
    Negotiated {
        blksize,
        windowsize: windowsize.unwrap_or(1),
        timeout: timeout.map(Duration::from_secs),
        oack,
    }
}

/// Strict decimal: ASCII digits only, no sign or whitespace. Values too large
/// for u64 saturate, so "999999999999999999999" blksize still clamps like any
/// other oversized request.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Tracks which of the options we understand have been seen; unknown names are
/// never consulted again, so they need no tracking.
#[derive(Default)]
struct Seen {
    blksize: bool,
    windowsize: bool,
    timeout: bool,
    tsize: bool,
}

impl Seen {
    fn first_time(&mut self, name: &str) -> bool {
        let flag = match name {
            "blksize" => &mut self.blksize,
            "windowsize" => &mut self.windowsize,
            "timeout" => &mut self.timeout,
            "tsize" => &mut self.tsize,
            _ => return true,
        };
        !std::mem::replace(flag, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: OptionLimits = OptionLimits {
        max_blksize: MAX_BLKSIZE,
        max_windowsize: 64,
        max_window_bytes: 0,
        max_timeout_secs: 255,
    };

    fn opts(pairs: &[(&str, &str)]) -> Vec<TftpOption> {
        pairs.iter().map(|(n, v)| TftpOption::new(*n, *v)).collect()
    }

    fn oack(n: &Negotiated) -> Vec<(&str, &str)> {
        n.oack
            .iter()
            .map(|o| (o.name.as_str(), o.value.as_str()))
            .collect()
    }

    #[test]
    fn no_options_means_no_oack_and_defaults() {
        let n = negotiate(&[], 10, LIMITS);
        assert_eq!(n, Negotiated::defaults());
        assert!(n.oack.is_empty());
    }

    #[test]
    fn accepts_valid_options_in_request_order() {
        let n = negotiate(
            &opts(&[
                ("tsize", "0"),
                ("blksize", "1468"),
                ("windowsize", "16"),
                ("timeout", "3"),
            ]),
            4242,
            LIMITS,
        );
        assert_eq!(n.blksize, 1468);
        assert_eq!(n.windowsize, 16);
        assert_eq!(n.timeout, Some(Duration::from_secs(3)));
        assert_eq!(
            oack(&n),
            vec![
                ("tsize", "4242"),
                ("blksize", "1468"),
                ("windowsize", "16"),
                ("timeout", "3")
            ]
        );
    }

    #[test]
    fn blksize_bounds() {
        // Below the minimum: ignored, default stays.
        for v in ["0", "7"] {
            let n = negotiate(&opts(&[("blksize", v)]), 0, LIMITS);
            assert_eq!(n.blksize, DEFAULT_BLKSIZE, "{v}");
            assert!(n.oack.is_empty(), "{v}");
        }
        // Exactly the bounds.
        assert_eq!(negotiate(&opts(&[("blksize", "8")]), 0, LIMITS).blksize, 8);
        assert_eq!(
            negotiate(&opts(&[("blksize", "65464")]), 0, LIMITS).blksize,
            65464
        );
        // Above the RFC maximum and absurdly large: clamped to the maximum.
        for v in ["65465", "65536", "4294967296", "99999999999999999999999999"] {
            let n = negotiate(&opts(&[("blksize", v)]), 0, LIMITS);
            assert_eq!(n.blksize, 65464, "{v}");
            assert_eq!(oack(&n), vec![("blksize", "65464")]);
        }
        // Clamped to a smaller configured limit.
        let small = OptionLimits {
            max_blksize: 1428,
            max_windowsize: 64,
            max_window_bytes: 0,
            ..LIMITS
        };
        let n = negotiate(&opts(&[("blksize", "8192")]), 0, small);
        assert_eq!(n.blksize, 1428);
        assert_eq!(oack(&n), vec![("blksize", "1428")]);
    }

    #[test]
    fn insane_config_is_sanitized() {
        let bad = OptionLimits {
            max_blksize: 2,
            max_windowsize: 0,
            max_window_bytes: 0,
            ..LIMITS
        };
        let n = negotiate(&opts(&[("blksize", "1024"), ("windowsize", "8")]), 0, bad);
        assert_eq!(n.blksize, MIN_BLKSIZE);
        assert_eq!(n.windowsize, 1);
        let huge = OptionLimits {
            max_blksize: u16::MAX,
            max_windowsize: u16::MAX,
            max_window_bytes: 0,
            ..LIMITS
        };
        let n = negotiate(
            &opts(&[("blksize", "65535"), ("windowsize", "65535")]),
            0,
            huge,
        );
        assert_eq!(n.blksize, MAX_BLKSIZE);
        assert_eq!(n.windowsize, 65535);
    }

    #[test]
    fn windowsize_bounds() {
        let n = negotiate(&opts(&[("windowsize", "0")]), 0, LIMITS);
        assert_eq!(n.windowsize, 1);
        assert!(n.oack.is_empty());
        let n = negotiate(&opts(&[("windowsize", "1")]), 0, LIMITS);
        assert_eq!(oack(&n), vec![("windowsize", "1")]);
        let n = negotiate(&opts(&[("windowsize", "65535")]), 0, LIMITS);
        assert_eq!(n.windowsize, 64);
        assert_eq!(oack(&n), vec![("windowsize", "64")]);
        let n = negotiate(&opts(&[("windowsize", "70000")]), 0, LIMITS);
        assert_eq!(n.windowsize, 64);
    }

    #[test]
    fn window_bytes_cap_depends_on_blksize_in_any_order() {
        let limits = OptionLimits {
            max_blksize: MAX_BLKSIZE,
            max_windowsize: 64,
            max_window_bytes: 65536,
            ..LIMITS
        };
        let n = negotiate(
            &opts(&[("windowsize", "16"), ("blksize", "8192")]),
            0,
            limits,
        );
        assert_eq!((n.blksize, n.windowsize), (8192, 8));
        assert_eq!(oack(&n), vec![("windowsize", "8"), ("blksize", "8192")]);
        let n = negotiate(
            &opts(&[("blksize", "1468"), ("windowsize", "64")]),
            0,
            limits,
        );
        assert_eq!(n.windowsize, 44);
        // Default blksize 512: the count limit applies first.
        let n = negotiate(&opts(&[("windowsize", "1000")]), 0, limits);
        assert_eq!(n.windowsize, 64);
        // Huge blocks still get a window of one.
        let n = negotiate(
            &opts(&[("blksize", "65464"), ("windowsize", "4")]),
            0,
            limits,
        );
        assert_eq!(n.windowsize, 1);
        assert_eq!(oack(&n), vec![("blksize", "65464"), ("windowsize", "1")]);
        // Small requests are untouched.
        let n = negotiate(
            &opts(&[("blksize", "8192"), ("windowsize", "4")]),
            0,
            limits,
        );
        assert_eq!(n.windowsize, 4);
    }

    #[test]
    fn timeout_is_echoed_or_ignored_never_changed() {
        for bad in ["0", "256", "1000", "-1", "1.5", ""] {
            let n = negotiate(&opts(&[("timeout", bad)]), 0, LIMITS);
            assert_eq!(n.timeout, None, "{bad:?}");
            assert!(n.oack.is_empty(), "{bad:?}");
        }
        let n = negotiate(&opts(&[("timeout", "255")]), 0, LIMITS);
        assert_eq!(n.timeout, Some(Duration::from_secs(255)));
        assert_eq!(oack(&n), vec![("timeout", "255")]);
        // Above the configured ceiling: declined, not shortened (RFC 2349).
        let capped = OptionLimits {
            max_timeout_secs: 5,
            ..LIMITS
        };
        let n = negotiate(&opts(&[("timeout", "255")]), 0, capped);
        assert_eq!((n.timeout, n.oack.is_empty()), (None, true));
        let n = negotiate(&opts(&[("timeout", "5")]), 0, capped);
        assert_eq!(oack(&n), vec![("timeout", "5")]);
    }

    #[test]
    fn tsize_reports_real_size() {
        let n = negotiate(&opts(&[("tsize", "0")]), 123_456_789_012, LIMITS);
        assert_eq!(oack(&n), vec![("tsize", "123456789012")]);
        // Empty file: tsize is declined (curl aborts on "tsize 0").
        let n = negotiate(&opts(&[("tsize", "0")]), 0, LIMITS);
        assert!(n.oack.is_empty());
        let n = negotiate(&opts(&[("tsize", "0"), ("blksize", "1024")]), 0, LIMITS);
        assert_eq!(oack(&n), vec![("blksize", "1024")]);
        let n = negotiate(&opts(&[("tsize", "abc")]), 5, LIMITS);
        assert!(n.oack.is_empty());
    }

    #[test]
    fn malformed_numbers_are_ignored() {
        for bad in ["", " 512", "512 ", "+512", "0x200", "５１２", "512a"] {
            let n = negotiate(&opts(&[("blksize", bad), ("windowsize", bad)]), 0, LIMITS);
            assert_eq!(n, Negotiated::defaults(), "{bad:?}");
        }
    }

    #[test]
    fn duplicates_first_occurrence_wins_even_if_invalid() {
        let n = negotiate(
            &opts(&[("blksize", "1024"), ("blksize", "2048")]),
            0,
            LIMITS,
        );
        assert_eq!(n.blksize, 1024);
        assert_eq!(oack(&n), vec![("blksize", "1024")]);
        // An invalid first value consumes the option; the second does not sneak in.
        let n = negotiate(&opts(&[("blksize", "1"), ("blksize", "2048")]), 0, LIMITS);
        assert_eq!(n.blksize, DEFAULT_BLKSIZE);
        assert!(n.oack.is_empty());
        let n = negotiate(&opts(&[("tsize", "0"), ("tsize", "0")]), 9, LIMITS);
        assert_eq!(oack(&n), vec![("tsize", "9")]);
    }

    #[test]
    fn unknown_options_ignored() {
        let n = negotiate(
            &opts(&[
                ("multicast", ""),
                ("utimeout", "5000"),
                ("rollover", "0"),
                ("blksize", "1024"),
            ]),
            0,
            LIMITS,
        );
        assert_eq!(oack(&n), vec![("blksize", "1024")]);
    }

    #[test]
    fn names_are_matched_after_lowercasing_by_the_parser() {
        // `packet` lowercases names; prove the two layers fit together.
        let raw = b"\x00\x01f\x00octet\x00BlkSize\x001024\x00WINDOWSIZE\x008\x00";
        let super::super::packet::Packet::Rrq(req) =
            super::super::packet::Packet::parse(raw).unwrap()
        else {
            panic!()
        };
        let n = negotiate(&req.options, 0, LIMITS);
        assert_eq!((n.blksize, n.windowsize), (1024, 8));
    }
}
