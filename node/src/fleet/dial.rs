//! One blob-connection dial at a time per peer, its failure shared with those who waited.
//!
//! The files of a release fetched side by side (decide.rs `files_to_start`) all ask at once
//! for a connection to the same source. Each dialling on its own would open as many QUIC
//! connections (as many handshakes, and as many congestion controllers competing for one
//! link), so the first dials and the others wait for it and then use the connection it left
//! in the peer table. When that dial fails (the peer is down: no answer within the connect
//! timeout), the fetches that waited take its failure as theirs instead of each dialling
//! again in turn: three files would otherwise find an unreachable source one timeout after
//! another, and turn to the next source three timeouts late instead of one.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use iroh::EndpointId;

/// The dials of one peer: the lock, how many have ended, and the last one's failure (with
/// its number) if it failed.
#[derive(Debug)]
struct PeerDials<E> {
    ended: AtomicU64,
    last_failed: tokio::sync::Mutex<Option<(u64, E)>>,
}

/// A dial lock per peer, and the last failure behind it.
#[derive(Debug)]
pub(crate) struct DialLocks<E>(Mutex<HashMap<EndpointId, Arc<PeerDials<E>>>>);

impl<E> Default for DialLocks<E> {
    fn default() -> Self {
        DialLocks(Mutex::default())
    }
}

impl<E: Clone> DialLocks<E> {
    /// Runs `dial` for peer `id` once no other dial of it runs. A caller that waited for a
    /// dial which then failed gets that failure without dialling. A caller that waited for
    /// one that succeeded runs `dial` too: it is expected to find the new connection (fetch.rs
    /// looks in the peer table first), and to dial only if that connection is gone already.
    pub async fn dial<T, F, Fut>(&self, id: EndpointId, dial: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let peer = {
            let mut peers = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // One entry per peer ever dialled: bounded by the fleet.
            peers
                .entry(id)
                .or_insert_with(|| {
                    Arc::new(PeerDials {
                        ended: AtomicU64::new(0),
                        last_failed: tokio::sync::Mutex::new(None),
                    })
                })
                .clone()
        };
        // Dials that had ended when this caller asked (changed only under the lock).
        let seen = peer.ended.load(Ordering::Acquire);
        let mut last_failed = peer.last_failed.lock().await;
        if let Some((_, why)) = last_failed.as_ref().filter(|(n, _)| *n > seen) {
            return Err(why.clone());
        }
        let result = dial().await;
        let n = peer.ended.fetch_add(1, Ordering::AcqRel) + 1;
        *last_failed = result.as_ref().err().map(|why| (n, why.clone()));
        result
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use tokio::time::Instant;

    use super::*;

    fn peer(n: u8) -> EndpointId {
        iroh::SecretKey::from_bytes(&[n; 32]).public()
    }

    /// A dial that takes `took`, counts itself in `dials`, and ends with `result`.
    async fn counted(
        dials: &AtomicUsize,
        took: Duration,
        result: Result<u32, String>,
    ) -> Result<u32, String> {
        dials.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(took).await;
        result
    }

    #[tokio::test(start_paused = true)]
    async fn those_waiting_on_a_failing_dial_share_its_failure_without_dialling() {
        let locks = DialLocks::<String>::default();
        let dials = AtomicUsize::new(0);
        let timeout = Duration::from_secs(5);
        let fail = || counted(&dials, timeout, Err("no answer within 5s".into()));
        let start = Instant::now();
        let (a, b, c) = tokio::join!(
            locks.dial(peer(1), fail),
            locks.dial(peer(1), fail),
            locks.dial(peer(1), fail)
        );
        for r in [a, b, c] {
            assert_eq!(r, Err("no answer within 5s".to_string()));
        }
        assert_eq!(dials.load(Ordering::SeqCst), 1, "one dial for the three");
        assert_eq!(start.elapsed(), timeout, "all three know after one timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dial_asked_after_a_failure_ended_tries_again() {
        let locks = DialLocks::<String>::default();
        let dials = AtomicUsize::new(0);
        let second = Duration::from_millis(10);
        let failed = locks
            .dial(peer(1), || counted(&dials, second, Err("refused".into())))
            .await;
        assert_eq!(failed, Err("refused".to_string()));
        // The peer may be back: a later fetch dials anew.
        let again = locks.dial(peer(1), || counted(&dials, second, Ok(7))).await;
        assert_eq!(again, Ok(7));
        assert_eq!(dials.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_dial_that_succeeded_the_waiters_run_theirs_and_other_peers_never_wait() {
        let locks = DialLocks::<String>::default();
        let dials = AtomicUsize::new(0);
        let slow = Duration::from_secs(1);
        let quick = Duration::from_millis(10);
        let start = Instant::now();
        let (a, b, other) = tokio::join!(
            locks.dial(peer(1), || counted(&dials, slow, Ok(1))),
            // Waits for the first, then runs (fetch.rs finds the connection it left).
            locks.dial(peer(1), || counted(&dials, quick, Ok(2))),
            async {
                let r = locks.dial(peer(2), || counted(&dials, quick, Ok(3))).await;
                (r, start.elapsed())
            }
        );
        assert_eq!((a, b), (Ok(1), Ok(2)));
        assert_eq!(other, (Ok(3), quick), "another peer's dial does not wait");
        assert_eq!(dials.load(Ordering::SeqCst), 3);
        assert_eq!(start.elapsed(), slow + quick);
    }
}
