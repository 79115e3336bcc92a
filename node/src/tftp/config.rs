//! Server configuration.

use std::time::Duration;

use super::options::OptionLimits;
use super::packet::MAX_BLKSIZE;

/// Tunables of the TFTP server. `Default` suits a LAN PXE server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TftpConfig {
    /// Largest `blksize` granted (RFC 2348); bigger requests are clamped to it.
    /// Values outside 8..=65464 are forced into that range.
    pub max_blksize: u16,
    /// Largest `windowsize` granted (RFC 7440); bigger requests are clamped.
    /// 0 behaves like 1 (lock-step only).
    pub max_windowsize: u16,
    /// Cap on `windowsize * blksize` (bytes sent back to back before waiting
    /// for an ACK); 0 disables it. A window larger than the client's socket
    /// receive buffer loses its tail every time, and RFC 7440 has no fast
    /// recovery for that: each window would stall for a full timeout (measured
    /// with atftp, blksize 8192 x windowsize 16 on loopback: 0.2 MB/s). Linux
    /// defaults to 208 KiB of buffer, charged at up to 2x the payload, so the
    /// default keeps a window at 64 KiB of payload (e.g. 44 blocks of 1468,
    /// 8 of 8192).
    pub max_window_bytes: usize,
    /// Retransmission timeout when the client did not negotiate `timeout`.
    pub default_timeout: Duration,
    /// Ceiling for the exponential backoff of retransmissions. A negotiated
    /// `timeout` larger than this is still honoured (never shortened).
    pub max_timeout: Duration,
    /// Retransmissions of the same packet/window before the transfer is
    /// abandoned.
    pub max_retries: u32,
    /// Concurrent transfers, so a flood cannot exhaust sockets or memory. Each
    /// holds two file descriptors (its socket and the file). When all are taken a
    /// new request ends the oldest transfer never acknowledged by its client and
    /// takes its slot; only when every transfer has made progress does it get
    /// ERROR 0 "server busy".
    pub max_transfers: usize,
    /// Concurrent transfers per client IP address; beyond it, ERROR 0 "server
    /// busy". A PXE client runs one transfer at a time (UEFI: a `tsize` probe,
    /// then the fetch), so a handful is plenty, and one host that sends a flood
    /// of requests it never acknowledges holds only this many slots.
    pub max_transfers_per_client: usize,
    /// Largest `timeout` option (RFC 2349) accepted; a larger one is not
    /// acknowledged and the transfer runs with `default_timeout` instead.
    /// The server may not shorten a client's timeout, only decline it.
    pub max_option_timeout: Duration,
    /// Bytes read from the source per blocking read; also the per-transfer
    /// buffer size (capped by the file size). Always at least one block.
    pub read_ahead: usize,
}

impl Default for TftpConfig {
    fn default() -> Self {
        Self {
            max_blksize: MAX_BLKSIZE,
            max_windowsize: 64,
            max_window_bytes: 64 * 1024,
            default_timeout: Duration::from_secs(1),
            max_timeout: Duration::from_secs(8),
            max_retries: 5,
            max_transfers: 192,
            max_transfers_per_client: 4,
            max_option_timeout: Duration::from_secs(5),
            read_ahead: 256 * 1024,
        }
    }
}

impl TftpConfig {
    pub(crate) fn option_limits(&self) -> OptionLimits {
        OptionLimits {
            max_blksize: self.max_blksize,
            max_windowsize: self.max_windowsize,
            max_window_bytes: self.max_window_bytes,
            max_timeout_secs: self.max_option_timeout.as_secs().clamp(1, 255) as u8,
        }
        .sanitized()
    }
}
