//! The fleet endpoint's QUIC transport: congestion controller and flow-control windows.
//!
//! Branch sites reach each other over VPNs, LTE and long-haul links that lose packets at
//! random. A loss-based controller (Cubic, QUIC's default here, or NewReno) reads every lost
//! packet as congestion and halves its rate, so 1–2 % random loss costs it most of the link;
//! BBR models the bottleneck's rate and round trip instead and keeps the link full. The
//! windows must cover the bandwidth-delay product (plus the wait for a retransmission), or a
//! long link is window-limited whatever the controller does — and stay below what the
//! receiving QUIC stack holds behind a lost packet ([`REASSEMBLY_SAFE_BYTES`]), or a lossy link
//! gets its connections closed. Every connection's controller is traced (`cc_trace.rs`, debug
//! log). The measurements behind the
//! defaults are in `docs/architecture.md` ("Fleet transport") and `docs/benchmarks.md`
//! (`tests/bench/lossy.sh`).

use std::{any::Any, fmt, str::FromStr, sync::Arc, time::Instant};

use super::{cc_trace::CcTrace, pieces::MAX_STREAMS_PER_FILE};

use iroh::endpoint::{
    AckFrequencyConfig, Controller, ControllerFactory, ControllerMetrics, QuicTransportConfig,
    RttEstimator, VarInt,
};
use noq_proto::congestion::{Bbr3Config, CubicConfig, NewRenoConfig};
use serde::Deserialize;

/// The congestion controller of the fleet's QUIC connections (`[fleet] congestion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Congestion {
    /// BBRv3 that does not count random loss (below 10 % of recent packets) as congestion,
    /// like Linux's TCP BBR: paces at the measured bottleneck rate.
    #[default]
    Bbr,
    /// noq-proto's BBRv3 as it is: backs off whenever a round trip loses more than 2 %.
    Bbr3,
    /// Cubic (RFC 9438), the QUIC stack's own default: halves on loss.
    Cubic,
    /// NewReno (RFC 9002): the most conservative; halves on loss, grows by one packet per RTT.
    NewReno,
}

impl fmt::Display for Congestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Congestion::Bbr => "bbr",
            Congestion::Bbr3 => "bbr3",
            Congestion::Cubic => "cubic",
            Congestion::NewReno => "newreno",
        })
    }
}

/// A flow-control window in bytes (`[fleet] window`), written as `"2 MiB"`, `"8 MB"` or a
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

/// 2 MiB: a stream window must stay below what the receiver's QUIC stack will hold behind a
/// lost packet ([`REASSEMBLY_SAFE_BYTES`]); 2 MiB leaves room for the small frames around
/// retransmissions at 5 % loss. A big file may come as [`MAX_STREAMS_PER_FILE`] pieces in flight side by
/// side, each its own stream, so one transfer has up to 8 MiB in flight: 100 Mbit/s × 80 ms
/// plus the round trips a hole waits for its retransmission, with room to spare. Measured: docs/benchmarks.md
/// ("Lossy WAN links"). The window is credit, not memory in use: a receiver holds only what the
/// store has not yet taken.
pub const DEFAULT_WINDOW: Window = Window::from_mib(2);

/// What one stream may hold, received but not yet readable (behind a lost packet), before the
/// receiving QUIC stack (noq-proto 1.4, `connection/assembler.rs`) closes the whole connection
/// with "too many gaps in stream buffer": it compacts its buffer at 2048 chunks and gives up if
/// more than 1024 remain, and a well-filled packet's chunk is never merged with its neighbours,
/// so the limit is ~2048 packets of ~1.39 kB stream data (1452-byte datagrams), not 1024 gaps.
/// Any loss while more than this is in flight ahead of a retransmission kills the connection
/// (measured at 80 ms / 2 %: a reconnect every ~1.2 s with a 4 or 16 MiB window, none with 2 MiB).
pub const REASSEMBLY_SAFE_BYTES: u64 = 2048 * 1_390;

const _: () = assert!((DEFAULT_WINDOW.0 as u64) < REASSEMBLY_SAFE_BYTES);

impl Window {
    /// Whether a lossy link can make the receiver close connections with this window (it is
    /// above what one stream may hold behind a lost packet, [`REASSEMBLY_SAFE_BYTES`]).
    pub fn risks_reassembly_limit(self) -> bool {
        self.bytes() > REASSEMBLY_SAFE_BYTES
    }
}

impl FromStr for Window {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (num, unit) = super::config::number_and_unit(s)
            .ok_or_else(|| format!("`{s}`: expected a size, e.g. \"2 MiB\""))?;
        let scale: f64 = match unit {
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
        if self.0.is_multiple_of(1024 * 1024) {
            write!(f, "{} MiB", self.0 / (1024 * 1024))
        } else {
            write!(f, "{} bytes", self.0)
        }
    }
}

/// The transport settings of the fleet endpoint: every connection, in both directions.
pub fn quic_config(congestion: Congestion, window: Window) -> QuicTransportConfig {
    let inner: Arc<dyn ControllerFactory + Send + Sync> = match congestion {
        Congestion::Bbr | Congestion::Bbr3 => Arc::new(Bbr3Config::default()),
        Congestion::Cubic => Arc::new(CubicConfig::default()),
        Congestion::NewReno => Arc::new(NewRenoConfig::default()),
    };
    let factory = Arc::new(ObservedConfig {
        inner,
        filter: congestion == Congestion::Bbr,
    });
    QuicTransportConfig::builder()
        .congestion_controller_factory(factory)
        // One request is one stream: the stream window is what one piece of a file gets.
        .stream_receive_window(VarInt::from_u32(window.0))
        // A big file comes as several pieces side by side (pieces.rs), so the connection's
        // credit is the sum of theirs, bounded by the send window on the other side: room
        // for every piece in flight of one file plus one more request (a read-through, a small file).
        .receive_window(VarInt::MAX)
        .send_window(window.bytes() * (MAX_STREAMS_PER_FILE as u64 + 1))
        // Fewer ACKs: each is a packet to send, receive and route, and on an asymmetric link
        // (LTE, DSL) ACKs take uplink that the site's own uploads need.
        .ack_frequency_config(Some(ack_frequency()))
        .build()
}

/// Ack-eliciting packets a receiver may take before it must acknowledge: 31, asked of the
/// peer with QUIC's ACK frequency extension (draft-ietf-quic-ack-frequency; both ends of a
/// fleet connection are netboot nodes, so both speak it). QUIC's default is an ACK for every
/// second packet: at 100 Mbit/s ~2,000 ACK packets a second (measured), each handled by both
/// ends one by one. A packet that arrives out of order (a gap: a loss) is still acknowledged at
/// once (the reordering threshold stays 2), so loss recovery is as prompt as before, and the
/// peer's max ACK delay (25 ms at most, or the round trip if longer) still bounds how long an
/// ACK waits on a slow or short flow. Measured (docs/benchmarks.md, "ACK frequency"): one
/// 400 MiB transfer at 100 Mbit/s / 40 ms took 35–50 % fewer CPU-seconds at both ends at the
/// same rate; no rate was lost at 5 Mbit/s / 10 ms, 1 Gbit/s / 1 ms or 100 Mbit/s / 80 ms
/// with 2 % and 5 % loss.
const ACK_ELICITING_THRESHOLD: u32 = 31;

fn ack_frequency() -> AckFrequencyConfig {
    let mut config = AckFrequencyConfig::default();
    config.ack_eliciting_threshold(VarInt::from_u32(ACK_ELICITING_THRESHOLD));
    config
}

/// Loss rate (lost ÷ sent bytes, recent packets) up to which lost packets are not reported to
/// BBR. Below it a loss is taken for what it most likely is on a paced flow: the link's own
/// random loss, which slowing down would not cure. Above it, something is overflowing, and BBR
/// gets every loss again and backs off. 20 % (nearer Linux's TCP BBR) was measured too and did
/// not help the 80 ms points; 80 ms / 2 % ran slower in both runs (docs/benchmarks.md,
/// lossy-threshold).
const TOLERATED_LOSS: f64 = 0.10;
/// The loss rate is measured over roughly the last this many bytes sent (an exponential
/// window: both counters are halved whenever `sent` passes it), ~1000 full packets.
const LOSS_WINDOW_BYTES: u64 = 1_500_000;
/// No loss is judged before this many bytes were sent (~100 full packets): one loss among the
/// first few packets is a rate of 30 % and says nothing about the link, yet BBRv3 told of it
/// in Startup leaves Startup with a cut in-flight bound.
const MIN_SAMPLE_BYTES: u64 = 120_000;

/// The random-loss filter of `bbr`: BBRv3 (noq-proto's) with random loss kept from it, like
/// Linux's TCP BBR (v1), which ignores loss. BBRv3 reacts to a round with more than 2 % of its
/// packets lost by cutting its in-flight bound by 30 %; on a link that drops 2 % at random (4 %
/// of round trips lose a packet or its ACK) that happens most rounds, and it settles at a
/// fraction of the link (measured: `docs/benchmarks.md`, lossy). Lost packets are still
/// retransmitted by QUIC; only the controller is not told, unless the recent loss rate is above
/// [`TOLERATED_LOSS`].
#[derive(Debug, Clone, Default)]
struct LossFilter {
    sent: u64,
    lost: u64,
}

impl LossFilter {
    fn on_sent(&mut self, bytes: u64) {
        self.sent += bytes;
        if self.sent > LOSS_WINDOW_BYTES {
            self.sent /= 2;
            self.lost /= 2;
        }
    }

    /// Counts a lost packet; whether the controller is to hear of it: only when the recent
    /// losses are more than a lossy link's own.
    fn on_lost(&mut self, bytes: u64) -> bool {
        self.lost += bytes;
        self.sent >= MIN_SAMPLE_BYTES && self.lost as f64 > self.sent as f64 * TOLERATED_LOSS
    }
}

/// Every fleet connection's controller: the configured one, with `bbr`'s loss filter in front
/// of it, and a trace of what it saw ([`CcTrace`], debug log).
#[derive(Debug)]
struct Observed {
    inner: Box<dyn Controller>,
    filter: Option<LossFilter>,
    trace: CcTrace,
}

struct ObservedConfig {
    inner: Arc<dyn ControllerFactory + Send + Sync>,
    filter: bool,
}

impl ControllerFactory for ObservedConfig {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        let mut trace = CcTrace::default();
        trace.gauges.mtu = current_mtu;
        Box::new(Observed {
            inner: self.inner.clone().build(now, current_mtu),
            filter: self.filter.then(LossFilter::default),
            trace,
        })
    }
}

impl Observed {
    fn report(&mut self, now: Instant) {
        if !tracing::enabled!(target: TRACE_TARGET, tracing::Level::DEBUG) {
            return;
        }
        let m = self.inner.metrics();
        let g = &mut self.trace.gauges;
        g.cwnd = m.congestion_window;
        g.pacing_rate = m.pacing_rate;
        g.bandwidth = m.bandwidth_estimate;
        if let Some(r) = self.trace.tick(now) {
            tracing::debug!(target: TRACE_TARGET, "fleet congestion: {r}");
        }
    }
}

/// Where the per-connection congestion trace is logged (debug level).
const TRACE_TARGET: &str = "netboot_node::fleet::cc_trace";

impl Drop for Observed {
    fn drop(&mut self) {
        if let Some(r) = self.trace.total() {
            tracing::debug!(target: TRACE_TARGET, "fleet congestion: {r}");
        }
    }
}

impl Controller for Observed {
    fn on_sent(&mut self, now: Instant, bytes: u64, largest_pn: u64) {
        if let Some(f) = &mut self.filter {
            f.on_sent(bytes);
        }
        self.inner.on_sent(now, bytes, largest_pn);
        self.report(now);
    }

    fn on_packet_sent(&mut self, now: Instant, bytes: u16, pn: u64) {
        self.trace.sent(now, bytes);
        self.inner.on_packet_sent(now, bytes, pn);
    }

    fn on_cwnd_limited(&mut self) {
        self.trace.now.cwnd_limited += 1;
        self.inner.on_cwnd_limited();
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        pn: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.trace.now.acked_bytes += bytes;
        self.trace.gauges.srtt = rtt.get();
        self.trace.gauges.min_rtt = rtt.min();
        self.inner.on_ack(now, sent, bytes, pn, app_limited, rtt);
    }

    fn on_end_acks(
        &mut self,
        now: Instant,
        in_flight: u64,
        app_limited: bool,
        largest_packet_num_acked: Option<u64>,
    ) {
        self.trace.now.ack_batches += 1;
        self.trace.now.app_limited_batches += u64::from(app_limited);
        self.trace.gauges.in_flight = in_flight;
        self.inner
            .on_end_acks(now, in_flight, app_limited, largest_packet_num_acked);
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        is_ecn: bool,
        lost_bytes: u64,
        largest_lost_pn: u64,
    ) {
        self.trace.now.congestion_events += 1;
        self.trace.now.persistent_congestion += u64::from(is_persistent_congestion);
        // BBRv3 acts here only on ECN marks and persistent congestion (whole round trips lost):
        // neither is random loss, so both go through the filter. Cubic and NewReno act on every
        // event (they have no filter).
        self.inner.on_congestion_event(
            now,
            sent,
            is_persistent_congestion,
            is_ecn,
            lost_bytes,
            largest_lost_pn,
        );
    }

    fn on_packet_lost(&mut self, lost_bytes: u16, pn: u64, now: Instant) {
        self.trace.now.lost_packets += 1;
        self.trace.now.lost_bytes += u64::from(lost_bytes);
        // A packet not reported is dropped from BBR's records once it is a few rounds old.
        let tell = self
            .filter
            .as_mut()
            .is_none_or(|f| f.on_lost(lost_bytes.into()));
        if tell {
            self.trace.now.told_packets += 1;
            self.inner.on_packet_lost(lost_bytes, pn, now);
        }
    }

    fn on_spurious_congestion_event(&mut self) {
        self.trace.now.spurious_events += 1;
        self.inner.on_spurious_congestion_event();
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.trace.now.mtu_updates += 1;
        self.trace.gauges.mtu = new_mtu;
        self.inner.on_mtu_update(new_mtu);
    }

    fn on_ack_frequency_update(
        &mut self,
        ack_eliciting_threshold: u64,
        requested_max_ack_delay: std::time::Duration,
    ) {
        self.inner
            .on_ack_frequency_update(ack_eliciting_threshold, requested_max_ack_delay);
    }

    fn window(&self) -> u64 {
        self.inner.window()
    }

    fn metrics(&self) -> ControllerMetrics {
        self.inner.metrics()
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(Observed {
            inner: self.inner.clone_box(),
            filter: self.filter.clone(),
            trace: self.trace.clone(),
        })
    }

    fn initial_window(&self) -> u64 {
        self.inner.initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
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
        assert_eq!(DEFAULT_WINDOW.to_string(), "2 MiB");
        assert!(!DEFAULT_WINDOW.risks_reassembly_limit());
        assert!(!Window::from_mib(2).risks_reassembly_limit());
        assert!(w("2.7 MiB").is_ok_and(|b| b <= REASSEMBLY_SAFE_BYTES));
        assert!("2.8 MiB"
            .parse::<Window>()
            .unwrap()
            .risks_reassembly_limit());
        assert!(Window::from_mib(16).risks_reassembly_limit());
    }

    #[test]
    fn congestion_names() {
        for (name, c) in [
            ("bbr", Congestion::Bbr),
            ("bbr3", Congestion::Bbr3),
            ("cubic", Congestion::Cubic),
            ("newreno", Congestion::NewReno),
        ] {
            assert_eq!(c.to_string(), name);
        }
    }

    /// Sends `n` packets of 1200 bytes, losing every `every`-th; returns how many losses the
    /// filter let through.
    fn reported(f: &mut LossFilter, n: u64, every: u64) -> u64 {
        let mut told = 0;
        for pn in 0..n {
            f.on_sent(1200);
            if pn % every == every - 1 && f.on_lost(1200) {
                told += 1;
            }
        }
        told
    }

    #[test]
    fn random_loss_is_kept_from_bbr_heavy_loss_is_not() {
        let mut f = LossFilter::default();
        // The first packets: one loss in three (seen at the start of a run) is no sample yet.
        assert_eq!(reported(&mut f, 3, 3), 0);
        // 5 % for 5000 packets: BBR hears of none.
        assert_eq!(reported(&mut f, 5000, 20), 0);
        // 33 % (an overflowing queue): once the recent rate passes 10 %, every loss goes through.
        let heard = reported(&mut f, 3000, 3);
        assert!(
            (800..=1000).contains(&heard),
            "{heard} of 1000 losses reported"
        );
        // Back to 2 %: the window forgets the burst within a few thousand packets.
        reported(&mut f, 5000, 50);
        assert_eq!(reported(&mut f, 5000, 50), 0);
    }
}
