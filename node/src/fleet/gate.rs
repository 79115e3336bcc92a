//! The blob provider's gate: who may fetch from this node, and how fast it sends.
//!
//! iroh-blobs serves any hash to any peer that reaches its port. A netboot node only serves
//! fleet members (configured peers and `members`): others are refused at connect and logged.
//! Push (a peer writing into our store) stays disabled: data only enters the store through a
//! fetch this node decided on, for a release it verified.
//!
//! Upload slots bound how many blob requests this node serves at once (BitTorrent's
//! "unchoke" count). A busy node answers "rate limited"; the requester turns to its next
//! source — typically a peer that is already receiving the release and can pass it on. So a
//! release spreads as a tree instead of every site pulling it from the origin at once.
//!
//! The upload limit is a virtual-clock pacer over iroh-blobs' per-chunk-group throttle hook:
//! each 16 KiB group is given the next free slot at the configured rate, with a small burst
//! allowance, so the limit holds across all connections together.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use iroh::EndpointId;
use iroh_blobs::provider::events::{
    AbortReason, ConnectMode, EventMask, EventSender, ProviderMessage, RequestMode, ThrottleMode,
};
use tokio::time::Instant;

use super::config::Rate;

/// Bytes a sender may run ahead of the rate (smooths scheduling jitter).
const BURST_BYTES: f64 = 256.0 * 1024.0;

#[derive(Debug, Default)]
pub struct UploadStats {
    pub bytes: AtomicU64,
}

struct Pacer {
    rate: f64,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// When a chunk group of `size` bytes may be sent.
    fn slot(&self, size: u64) -> Instant {
        let now = Instant::now();
        let burst = Duration::from_secs_f64(BURST_BYTES / self.rate);
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = now.checked_sub(burst).unwrap_or(now);
        let start = next.map_or(now, |n| n.max(earliest));
        *next = Some(start + Duration::from_secs_f64(size as f64 / self.rate));
        start
    }
}

/// Builds the provider's event handler.
pub(crate) fn provider_events(
    members: Arc<HashSet<EndpointId>>,
    limit: Option<Rate>,
    slots: usize,
    stats: Arc<UploadStats>,
) -> EventSender {
    let mask = EventMask {
        connected: ConnectMode::Intercept,
        // Intercept to count and cap running requests; the log events tell when one ends.
        get: RequestMode::InterceptLog,
        get_many: RequestMode::None,
        push: RequestMode::Disabled,
        throttle: ThrottleMode::Intercept,
        ..EventMask::DEFAULT
    };
    let pacer = limit.map(|r| {
        Arc::new(Pacer {
            rate: r.bytes_per_sec as f64,
            next: Mutex::new(None),
        })
    });
    let (tx, mut rx) = EventSender::channel(64, mask);
    let running = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            match msg {
                ProviderMessage::GetRequestReceived(msg) => {
                    let busy = running.load(Ordering::SeqCst) >= slots as u64;
                    if busy {
                        msg.tx.send(Err(AbortReason::RateLimited)).await.ok();
                        continue;
                    }
                    running.fetch_add(1, Ordering::SeqCst);
                    msg.tx.send(Ok(())).await.ok();
                    let running = running.clone();
                    let mut updates = msg.rx;
                    tokio::spawn(async move {
                        // The update channel closes when the request ends, however it ends.
                        while let Ok(Some(_)) = updates.recv().await {}
                        running.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                ProviderMessage::ClientConnected(msg) => {
                    let verdict = match msg.endpoint_id {
                        Some(id) if members.contains(&id) => Ok(()),
                        Some(id) => {
                            tracing::warn!(
                                "fleet: refused blob connection from {id}: not a fleet member (add it to [fleet] peers or members)"
                            );
                            Err(AbortReason::Permission)
                        }
                        None => Err(AbortReason::Permission),
                    };
                    msg.tx.send(verdict).await.ok();
                }
                ProviderMessage::Throttle(msg) => {
                    stats.bytes.fetch_add(msg.size, Ordering::Relaxed);
                    match &pacer {
                        None => {
                            msg.tx.send(Ok(())).await.ok();
                        }
                        Some(pacer) => {
                            let at = pacer.slot(msg.size);
                            tokio::spawn(async move {
                                tokio::time::sleep_until(at).await;
                                msg.tx.send(Ok(())).await.ok();
                            });
                        }
                    }
                }
                _ => {}
            }
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pacer_spaces_chunks_at_the_rate() {
        let pacer = Pacer {
            rate: 1_000_000.0,
            next: Mutex::new(None),
        };
        let t0 = Instant::now();
        // 100 chunk groups of 16 KiB at 1 MB/s: the last slot is ~1.6 s out.
        let mut last = t0;
        for _ in 0..100 {
            last = pacer.slot(16384);
        }
        let span = last - t0;
        assert!(
            span >= Duration::from_millis(1550) && span <= Duration::from_millis(1650),
            "{span:?}"
        );
    }
}
