//! How much a running count (bytes sent to a peer, bytes received, chunks a peer holds) grew
//! over the last few seconds, judged only once it has been watched that long: the rules that
//! compare two such growths (an upload slot's holder against this node's own inflow, gate.rs;
//! a followed peer's copy against another's, decide.rs) must not act on a transfer that just
//! started. Pure: the caller passes the time.

use std::{collections::VecDeque, time::Duration};

use tokio::time::Instant;

/// Samples closer together than this are merged (a count may change per 16 KiB).
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Samples of one count.
#[derive(Debug, Clone, Default)]
pub(crate) struct Growth {
    samples: VecDeque<(Instant, u64)>,
}

impl Growth {
    /// The count is `value` at `now` (counts only grow; a smaller value is taken as is).
    pub fn record(&mut self, value: u64, now: Instant, window: Duration) {
        match self.samples.back_mut() {
            Some((t, v)) if now.saturating_duration_since(*t) < SAMPLE_EVERY => *v = value,
            _ => self.samples.push_back((now, value)),
        }
        // Keep the newest sample at least `window` old: the start of the window.
        while self.samples.len() > 1
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= window)
        {
            self.samples.pop_front();
        }
    }

    /// How much the count grew over the last `window`, or `None` when it has not been watched
    /// that long.
    pub fn over(&self, window: Duration, now: Instant) -> Option<u64> {
        let (t0, v0) = *self.samples.front()?;
        let (_, v1) = *self.samples.back()?;
        (now.saturating_duration_since(t0) >= window).then(|| v1.saturating_sub(v0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_known_only_after_a_whole_window_and_covers_the_last_one() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let w = s(4);
        let mut g = Growth::default();
        g.record(0, t0, w);
        assert_eq!(g.over(w, t0 + s(3)), None, "watched 3 s of 4");
        for i in 1..=10u64 {
            g.record(i * 100, t0 + s(i), w);
        }
        // At 10 s the window starts at (or just before) 6 s: 600 -> 1000.
        assert_eq!(g.over(w, t0 + s(10)), Some(400));
        // Samples within 250 ms are merged: the last value wins.
        g.record(1010, t0 + s(10) + Duration::from_millis(100), w);
        assert_eq!(
            g.over(w, t0 + s(10) + Duration::from_millis(100)),
            Some(410)
        );
    }
}
