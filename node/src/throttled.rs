//! Rate limit for a log line about a recurring condition (refused connections, transfers
//! ended to make room): a flood must not turn into a flood of log lines, but the sysadmin
//! still learns how often it happened.

use std::time::{Duration, Instant};

/// Says "log now" at most once per `every`, with the number of occurrences held back since.
#[derive(Debug)]
pub struct Throttled {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttled {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// Records one occurrence at `now`: `Some(occurrences held back before this one)` when it
    /// is time to log again.
    pub fn due_at(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|l| now.saturating_duration_since(l) < self.every)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }

    pub fn due(&mut self) -> Option<u64> {
        self.due_at(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_first_then_once_per_period_with_the_count_held_back() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut t = Throttled::new(Duration::from_secs(10));
        assert_eq!(t.due_at(at(0)), Some(0));
        assert_eq!(t.due_at(at(1)), None);
        assert_eq!(t.due_at(at(9_999)), None);
        assert_eq!(t.due_at(at(10_000)), Some(2));
        assert_eq!(t.due_at(at(10_001)), None);
        assert_eq!(t.due_at(at(30_000)), Some(1));
    }
}
