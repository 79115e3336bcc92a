//! The fleet endpoint's QUIC transport: congestion controller and flow-control windows.
//!
//! Branch sites reach each other over VPNs, LTE and long-haul links that lose packets at
//! random. A loss-based controller (Cubic, QUIC's default here, or NewReno) reads every lost
//! packet as congestion and halves its rate, so 1–2 % random loss costs it most of the link;
//! BBR models the bottleneck's rate and round trip instead and keeps the link full. The
//! windows must cover the bandwidth-delay product (plus the queue a saturated link builds), or
//! a long link is window-limited whatever the controller does. The measurements behind the
//! defaults are in `docs/architecture.md` ("Fleet transport") and `docs/benchmarks.md`
//! (`tests/bench/lossy.sh`).

use std::{fmt, str::FromStr, sync::Arc};

use iroh::endpoint::{QuicTransportConfig, VarInt};
use noq_proto::congestion::{Bbr3Config, CubicConfig, NewRenoConfig};
use serde::Deserialize;

/// The congestion controller of the fleet's QUIC connections (`[fleet] congestion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Congestion {
    /// BBRv3: paces at the measured bottleneck rate; random loss below ~2 % does not slow it.
    #[default]
    Bbr,
    /// Cubic (RFC 9438), the QUIC stack's own default: halves on loss.
    Cubic,
    /// NewReno (RFC 9002): the most conservative; halves on loss, grows by one packet per RTT.
    NewReno,
}

impl fmt::Display for Congestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Congestion::Bbr => "bbr",
            Congestion::Cubic => "cubic",
            Congestion::NewReno => "newreno",
        })
    }
}

/// A flow-control window in bytes (`[fleet] window`), written as `"16 MiB"`, `"8 MB"` or a
/// plain number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window(u32);

impl Window {
    /// Below this a window limits even a LAN link (64 KiB at 1 ms is 0.5 Gbit/s).
    pub const MIN: u64 = 64 * 1024;
    /// Above this the memory a peer may make us hold per connection is no longer small.
    pub const MAX: u64 = 1 << 30;

    pub const fn from_mib(mib: u32) -> Self {
        Self(mib * 1024 * 1024)
    }

    pub fn bytes(self) -> u64 {
        self.0.into()
    }
}

impl Default for Window {
    fn default() -> Self {
        DEFAULT_WINDOW
    }
}

/// 16 MiB: the bandwidth-delay product of 100 Mbit/s at 1.3 s, or 1 Gbit/s at 134 ms, with
/// room for the queue a saturated link adds to its round trip. A receiver holds only what the
/// store has not yet taken, so the window is credit, not memory in use.
pub const DEFAULT_WINDOW: Window = Window::from_mib(16);

impl FromStr for Window {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let num: f64 = num
            .parse()
            .map_err(|_| format!("`{s}`: expected a size, e.g. \"16 MiB\""))?;
        let scale: f64 = match unit.trim() {
            "" | "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            "kB" | "KB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            other => {
                return Err(format!(
                    "`{s}`: unknown unit `{other}` (use B, KiB, MiB, GiB, kB, MB, GB)"
                ))
            }
        };
        let bytes = (num * scale) as u64;
        if !(Self::MIN..=Self::MAX).contains(&bytes) {
            return Err(format!(
                "`{s}`: a window must be between 64 KiB and 1 GiB (the link's rate × round trip)"
            ));
        }
        // In range, so it fits.
        Ok(Self(bytes as u32))
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(b) => b.to_string().parse(),
            Raw::Text(s) => s.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 % (1024 * 1024) == 0 {
            write!(f, "{} MiB", self.0 / (1024 * 1024))
        } else {
            write!(f, "{} bytes", self.0)
        }
    }
}

/// The transport settings of the fleet endpoint: every connection, in both directions.
pub fn quic_config(congestion: Congestion, window: Window) -> QuicTransportConfig {
    let factory: Arc<dyn iroh::endpoint::ControllerFactory + Send + Sync> = match congestion {
        Congestion::Bbr => Arc::new(Bbr3Config::default()),
        Congestion::Cubic => Arc::new(CubicConfig::default()),
        Congestion::NewReno => Arc::new(NewRenoConfig::default()),
    };
    QuicTransportConfig::builder()
        .congestion_controller_factory(factory)
        // One blob is one stream: the stream window is what a single file transfer gets.
        .stream_receive_window(VarInt::from_u32(window.0))
        // Several files of a release come in parallel streams; the connection's credit is the
        // sum of theirs, bounded by the send window on the other side.
        .receive_window(VarInt::MAX)
        .send_window(window.bytes() * 2)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_with_units_and_bounds() {
        let w = |s: &str| s.parse::<Window>().map(Window::bytes);
        assert_eq!(w("16 MiB"), Ok(16 << 20));
        assert_eq!(w("8MB"), Ok(8_000_000));
        assert_eq!(w("512 KiB"), Ok(512 << 10));
        assert_eq!(w("1048576"), Ok(1 << 20));
        assert_eq!(w("1 GiB"), Ok(1 << 30));
        assert!(w("2 GiB").unwrap_err().contains("between 64 KiB and 1 GiB"));
        assert!(w("1000").is_err());
        assert!(w("16 furlongs").unwrap_err().contains("unknown unit"));
        assert!(w("lots").is_err());
        assert_eq!(DEFAULT_WINDOW.to_string(), "16 MiB");
    }

    #[test]
    fn congestion_names() {
        for (name, c) in [
            ("bbr", Congestion::Bbr),
            ("cubic", Congestion::Cubic),
            ("newreno", Congestion::NewReno),
        ] {
            assert_eq!(c.to_string(), name);
        }
    }
}
