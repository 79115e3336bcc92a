//! What the congestion controller of one fleet connection saw, second by second: the sender's
//! own view of a lossy link (packets sent and declared lost, what the controller was told, its
//! window, pacing rate, bandwidth estimate and round trip). Logged at debug level
//! (`RUST_LOG=netboot_node::fleet::cc_trace=debug`) by the controller wrapper in
//! `transport.rs`; `tests/bench/lossy.sh` collects these lines. Pure counting: time is passed
//! in, the caller logs what [`CcTrace::tick`] returns.

use std::{
    fmt,
    time::{Duration, Instant},
};

/// One report per this much time while the connection sends.
pub(crate) const INTERVAL: Duration = Duration::from_secs(1);
/// Intervals that sent less than this are not reported: control traffic, pings, idle links.
const MIN_REPORTED_BYTES: u64 = 256 * 1024;

/// Event counts over an interval (or the whole connection).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub lost_packets: u64,
    pub lost_bytes: u64,
    /// Losses passed on to the inner controller (all of them unless a loss filter is in use).
    pub told_packets: u64,
    pub congestion_events: u64,
    pub persistent_congestion: u64,
    pub spurious_events: u64,
    pub acked_bytes: u64,
    pub ack_batches: u64,
    /// ACK batches after which the connection had nothing more to send (not window-limited).
    pub app_limited_batches: u64,
    pub cwnd_limited: u64,
    pub mtu_updates: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.sent_packets += o.sent_packets;
        self.sent_bytes += o.sent_bytes;
        self.lost_packets += o.lost_packets;
        self.lost_bytes += o.lost_bytes;
        self.told_packets += o.told_packets;
        self.congestion_events += o.congestion_events;
        self.persistent_congestion += o.persistent_congestion;
        self.spurious_events += o.spurious_events;
        self.acked_bytes += o.acked_bytes;
        self.ack_batches += o.ack_batches;
        self.app_limited_batches += o.app_limited_batches;
        self.cwnd_limited += o.cwnd_limited;
        self.mtu_updates += o.mtu_updates;
    }
}

/// The controller's state at the end of an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Gauges {
    pub cwnd: u64,
    pub in_flight: u64,
    /// Bytes per second, if the controller paces.
    pub pacing_rate: Option<u64>,
    /// Bits per second, if the controller estimates it.
    pub bandwidth: Option<u64>,
    pub srtt: Duration,
    pub min_rtt: Duration,
    pub mtu: u16,
}

/// One report: counts over `span` ending `at` after the first packet sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Report {
    pub at: Duration,
    pub span: Duration,
    pub counts: Counts,
    pub gauges: Gauges,
    /// Whole connection (the report made when the controller is dropped).
    pub total: bool,
}

impl Report {
    /// Payload acknowledged per second over the span, in Mbit/s.
    pub fn acked_mbit(&self) -> f64 {
        mbit(self.counts.acked_bytes, self.span)
    }

    /// Share of the packets sent in the span that were declared lost in it, in %.
    pub fn loss_pct(&self) -> f64 {
        pct(self.counts.lost_packets, self.counts.sent_packets)
    }
}

fn mbit(bytes: u64, span: Duration) -> f64 {
    if span.is_zero() {
        return 0.0;
    }
    bytes as f64 * 8.0 / span.as_secs_f64() / 1e6
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    part as f64 * 100.0 / whole as f64
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        let g = &self.gauges;
        let opt_mbit = |v: Option<u64>, scale: f64| {
            v.map_or("-".to_string(), |v| {
                format!("{:.1}", v as f64 * scale / 1e6)
            })
        };
        write!(
            f,
            "{} t={:.1}s span={:.1}s sent={}pkt/{:.1}MB lost={}pkt ({:.2}%) told={} \
             cong_events={} persistent={} spurious={} acked={:.1}Mbit/s ack_batches={} \
             app_limited={} cwnd_limited={} mtu_updates={} cwnd={}KB in_flight={}KB \
             pacing={}Mbit/s bw={}Mbit/s srtt={}ms min_rtt={}ms mtu={}",
            if self.total { "total" } else { "interval" },
            self.at.as_secs_f64(),
            self.span.as_secs_f64(),
            c.sent_packets,
            c.sent_bytes as f64 / 1e6,
            c.lost_packets,
            self.loss_pct(),
            c.told_packets,
            c.congestion_events,
            c.persistent_congestion,
            c.spurious_events,
            self.acked_mbit(),
            c.ack_batches,
            c.app_limited_batches,
            c.cwnd_limited,
            c.mtu_updates,
            g.cwnd / 1000,
            g.in_flight / 1000,
            opt_mbit(g.pacing_rate, 8.0),
            opt_mbit(g.bandwidth, 1.0),
            g.srtt.as_millis(),
            g.min_rtt.as_millis(),
            g.mtu,
        )
    }
}

/// Counts of one connection: the current interval and the whole.
#[derive(Debug, Clone, Default)]
pub(crate) struct CcTrace {
    first_sent: Option<Instant>,
    interval_start: Option<Instant>,
    pub now: Counts,
    total: Counts,
    pub gauges: Gauges,
    last: Option<Instant>,
}

impl CcTrace {
    pub fn sent(&mut self, now: Instant, bytes: u16) {
        self.first_sent.get_or_insert(now);
        self.interval_start.get_or_insert(now);
        self.last = Some(now);
        self.now.sent_packets += 1;
        self.now.sent_bytes += u64::from(bytes);
    }

    /// The report for the interval if it is over (and sent enough to matter); starts the next.
    pub fn tick(&mut self, now: Instant) -> Option<Report> {
        let (first, start) = (self.first_sent?, self.interval_start?);
        let span = now.saturating_duration_since(start);
        if span < INTERVAL {
            return None;
        }
        let counts = std::mem::take(&mut self.now);
        self.total.add(&counts);
        self.interval_start = Some(now);
        (counts.sent_bytes >= MIN_REPORTED_BYTES).then_some(Report {
            at: now.saturating_duration_since(first),
            span,
            counts,
            gauges: self.gauges,
            total: false,
        })
    }

    /// The whole connection's report (from the first packet sent to the last), if it sent
    /// enough to matter.
    pub fn total(&self) -> Option<Report> {
        let (first, last) = (self.first_sent?, self.last?);
        let mut counts = self.total;
        counts.add(&self.now);
        let span = last.saturating_duration_since(first);
        (counts.sent_bytes >= MIN_REPORTED_BYTES).then_some(Report {
            at: span,
            span,
            counts,
            gauges: self.gauges,
            total: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_once_per_interval_and_only_busy_ones() {
        let t0 = Instant::now();
        let mut t = CcTrace::default();
        assert_eq!(t.tick(t0), None, "nothing sent yet");
        // 1000 packets in the first second, 10 of them lost, 2 told.
        for i in 0..1000u64 {
            t.sent(t0 + Duration::from_millis(i), 1200);
        }
        t.now.lost_packets += 10;
        t.now.told_packets += 2;
        t.now.acked_bytes += 1_250_000;
        assert_eq!(
            t.tick(t0 + Duration::from_millis(999)),
            None,
            "not a second yet"
        );
        let r = t.tick(t0 + Duration::from_secs(1)).expect("a busy second");
        assert_eq!(r.counts.sent_packets, 1000);
        assert_eq!(r.counts.sent_bytes, 1_200_000);
        assert!((r.loss_pct() - 1.0).abs() < 1e-9);
        assert!((r.acked_mbit() - 10.0).abs() < 1e-9);
        assert_eq!(r.at, Duration::from_secs(1));
        let line = r.to_string();
        assert!(line.starts_with("interval t=1.0s"), "{line}");
        assert!(line.contains("lost=10pkt (1.00%) told=2"), "{line}");
        // A quiet second (a few pings) is counted but not reported.
        t.sent(t0 + Duration::from_millis(1500), 100);
        assert_eq!(t.tick(t0 + Duration::from_secs(2)), None);
        let total = t.total().expect("the connection was busy");
        assert!(total.total);
        assert_eq!(total.counts.sent_packets, 1001);
        assert_eq!(total.counts.lost_packets, 10);
        assert_eq!(total.span, Duration::from_millis(1500));
    }

    #[test]
    fn an_idle_connection_reports_nothing() {
        let t0 = Instant::now();
        let mut t = CcTrace::default();
        t.sent(t0, 1200);
        assert_eq!(t.tick(t0 + Duration::from_secs(5)), None);
        assert_eq!(t.total(), None);
    }
}
