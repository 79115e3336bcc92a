//! What the fleet's fetches are doing right now, for the status page: which peer each
//! release's bytes are coming from and at what rate, and which releases were refused and
//! why. A record only: nothing in the fleet decides anything from it.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use iroh::EndpointId;
use netboot_proto::ImageName;
use serde::{Deserialize, Serialize};

/// The rate is the bytes received over this last stretch of time: long enough to smooth
/// iroh-blobs' bursts of chunk groups, short enough to show a stall within seconds.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// Refusals kept for the status page (the newest).
const REFUSALS_KEPT: usize = 20;

/// Where a fetch's bytes are coming from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchSource {
    /// The peer's endpoint id.
    pub peer: String,
    /// The peer's label (configured host, or the id's short form).
    pub label: String,
    /// Bytes per second received from it over the last few seconds.
    pub bytes_per_sec: u64,
}

/// A release offered to this node and refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    pub name: String,
    pub version: u64,
    /// Who offered it (peer label), or `this node` for a commit the store refused.
    pub from: String,
    pub reason: String,
    /// Unix seconds.
    pub at: u64,
}

/// Bytes received in the last [`RATE_WINDOW`], as (arrival, bytes) samples. Time is passed
/// in, so the arithmetic is tested without waiting.
#[derive(Debug, Default)]
struct RateWindow {
    samples: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    fn add(&mut self, now: Instant, bytes: u64) {
        self.samples.push_back((now, bytes));
        self.trim(now);
    }

    fn trim(&mut self, now: Instant) {
        while let Some(&(t, _)) = self.samples.front() {
            if now.saturating_duration_since(t) <= RATE_WINDOW {
                break;
            }
            self.samples.pop_front();
        }
    }

    /// Bytes per second over the window; a transfer that just started is measured over the
    /// time since its first sample (at least one second, so one burst is not a huge rate).
    fn rate(&mut self, now: Instant) -> u64 {
        self.trim(now);
        let Some(&(first, _)) = self.samples.front() else {
            return 0;
        };
        let total: u64 = self.samples.iter().map(|(_, b)| b).sum();
        let span = now
            .saturating_duration_since(first)
            .clamp(Duration::from_secs(1), RATE_WINDOW);
        (total as f64 / span.as_secs_f64()) as u64
    }
}

#[derive(Debug)]
struct Fetch {
    version: u64,
    peer: EndpointId,
    label: String,
    window: RateWindow,
}

#[derive(Debug, Default)]
struct Inner {
    fetches: HashMap<ImageName, Fetch>,
    refusals: VecDeque<Refusal>,
    /// Per image name: seconds its newest release took from admission to commit (metrics).
    sync_lag: HashMap<ImageName, f64>,
}

/// The record, shared by the fleet's tasks.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    inner: Mutex<Inner>,
}

impl Progress {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update replaces or appends whole values: nothing half-written to recover.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `bytes` of `name` v`version` arrived from `peer`. A change of peer starts a new rate.
    pub fn received(
        &self,
        name: &ImageName,
        version: u64,
        peer: EndpointId,
        label: &str,
        bytes: u64,
    ) {
        self.received_at(name, version, peer, label, bytes, Instant::now());
    }

    fn received_at(
        &self,
        name: &ImageName,
        version: u64,
        peer: EndpointId,
        label: &str,
        bytes: u64,
        now: Instant,
    ) {
        let mut inner = self.lock();
        let fetch = inner.fetches.entry(name.clone()).or_insert_with(|| Fetch {
            version,
            peer,
            label: label.to_string(),
            window: RateWindow::default(),
        });
        if fetch.version != version || fetch.peer != peer {
            *fetch = Fetch {
                version,
                peer,
                label: label.to_string(),
                window: RateWindow::default(),
            };
        }
        fetch.window.add(now, bytes);
    }

    /// Where `name` v`version` is coming from, if any bytes arrived yet.
    pub fn source(&self, name: &ImageName, version: u64) -> Option<FetchSource> {
        self.source_at(name, version, Instant::now())
    }

    fn source_at(&self, name: &ImageName, version: u64, now: Instant) -> Option<FetchSource> {
        let mut inner = self.lock();
        let fetch = inner.fetches.get_mut(name)?;
        (fetch.version == version).then(|| FetchSource {
            peer: fetch.peer.to_string(),
            label: fetch.label.clone(),
            bytes_per_sec: fetch.window.rate(now),
        })
    }

    /// The fetch of `name` ended (committed, refused or superseded).
    pub fn finished(&self, name: &ImageName) {
        self.lock().fetches.remove(name);
    }

    pub fn refused(&self, name: &ImageName, version: u64, from: &str, reason: &str) {
        let at = crate::fsutil::now_unix();
        let mut inner = self.lock();
        // The same offer comes again from every peer that passes it on: keep one line.
        inner
            .refusals
            .retain(|r| !(r.name == name.as_str() && r.version == version));
        if inner.refusals.len() >= REFUSALS_KEPT {
            inner.refusals.pop_front();
        }
        inner.refusals.push_back(Refusal {
            name: name.to_string(),
            version,
            from: from.to_string(),
            reason: reason.to_string(),
            at,
        });
    }

    /// Recent refusals, newest first.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.lock().refusals.iter().rev().cloned().collect()
    }

    /// A release of `name` was committed `secs` seconds after its fetch began.
    pub fn committed(&self, name: &ImageName, secs: f64) {
        self.lock().sync_lag.insert(name.clone(), secs);
    }

    /// Per image name, the last [`committed`](Self::committed) lag, by name.
    pub fn sync_lag(&self) -> Vec<(String, f64)> {
        let mut lag: Vec<(String, f64)> = self
            .lock()
            .sync_lag
            .iter()
            .map(|(n, s)| (n.to_string(), *s))
            .collect();
        lag.sort_by(|a, b| a.0.cmp(&b.0));
        lag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(seed: u8) -> EndpointId {
        iroh::SecretKey::from_bytes(&[seed; 32]).public()
    }

    #[test]
    fn rate_is_bytes_over_the_last_seconds() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        assert_eq!(w.rate(t0), 0);
        // One burst right at the start is not a huge rate: at least a second is counted.
        w.add(t0, 1_000_000);
        assert_eq!(w.rate(t0), 1_000_000);
        w.add(t0 + Duration::from_secs(2), 1_000_000);
        assert_eq!(w.rate(t0 + Duration::from_secs(2)), 1_000_000);
        // The first sample leaves the window; only the second counts, over the window.
        assert_eq!(w.rate(t0 + Duration::from_secs(6)), 250_000);
        // Nothing for longer than the window: a stalled fetch shows 0.
        assert_eq!(w.rate(t0 + Duration::from_secs(8)), 0);
    }

    #[test]
    fn a_new_source_or_version_starts_a_new_record() {
        let p = Progress::default();
        let name: ImageName = "debian".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(p.source_at(&name, 7, t0), None);
        p.received_at(&name, 7, peer(1), "far", 4_000_000, t0);
        let s = p.source_at(&name, 7, t0 + Duration::from_secs(2)).unwrap();
        assert_eq!((s.label.as_str(), s.bytes_per_sec), ("far", 2_000_000));
        assert_eq!(s.peer, peer(1).to_string());
        p.received_at(
            &name,
            7,
            peer(2),
            "near",
            500_000,
            t0 + Duration::from_secs(2),
        );
        let s = p.source_at(&name, 7, t0 + Duration::from_secs(2)).unwrap();
        assert_eq!((s.label.as_str(), s.bytes_per_sec), ("near", 500_000));
        assert_eq!(
            p.source_at(&name, 6, t0),
            None,
            "another version is not this fetch"
        );
        p.finished(&name);
        assert_eq!(p.source_at(&name, 7, t0), None);
    }

    #[test]
    fn refusals_are_bounded_newest_first_and_not_repeated() {
        let p = Progress::default();
        let name: ImageName = "debian".parse().unwrap();
        for v in 0..30 {
            p.refused(&name, v, "peer", "older than held");
        }
        p.refused(&name, 29, "other", "older than held");
        let r = p.refusals();
        assert_eq!(r.len(), REFUSALS_KEPT);
        assert_eq!((r[0].version, r[0].from.as_str()), (29, "other"));
        assert_eq!(r[1].version, 28);
    }
}
