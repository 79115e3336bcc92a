//! The blob provider's gate: who may fetch from this node, and how fast it sends.
//!
//! iroh-blobs serves any hash to any peer that reaches its port. A netboot node only serves
//! fleet members (configured peers and `members`): others are refused at connect and logged.
//! Push (a peer writing into our store) stays disabled: data only enters the store through a
//! fetch this node decided on, for a release it verified.
//!
//! Upload slots bound how many peers this node serves at once (BitTorrent's "unchoke"
//! count). A busy node answers "rate limited"; the requester turns to its next source —
//! typically a peer that is already receiving the release and can pass it on. So a release
//! spreads as a tree instead of every site pulling it from the origin at once. A slot belongs
//! to a peer (its endpoint id), not to one request: a peer that fetches from a node still
//! receiving the release asks again each time more has arrived, and between two such requests
//! its slot must not go to someone else, or the tree would reshuffle every few milliseconds
//! and the node's uplink be shared among everyone who asked. The slot is released when that
//! peer has asked nothing for `SLOT_LEASE`, or has closed its last connection. A peer that
//! restarts comes back with the same id and finds its slot, even while its old connection,
//! whose packets now go nowhere, has not timed out yet.
//!
//! The upload limit is a virtual-clock pacer over iroh-blobs' per-chunk-group throttle hook:
//! each 16 KiB group is given the next free slot at the configured rate, with a small burst
//! allowance, so the limit holds across all connections together.

use std::{
    collections::{HashMap, HashSet},
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

use super::{
    config::{PeerAddr, Rate},
    meter::Growth,
};

/// Bytes a sender may run ahead of the rate (smooths scheduling jitter).
const BURST_BYTES: f64 = 256.0 * 1024.0;
/// How long a slot stays with a peer that has no request running. A peer following a
/// still-fetching source re-asks within a few hundred milliseconds (fetch.rs); one that is
/// done or has moved on stops asking.
const SLOT_LEASE: Duration = Duration::from_secs(2);
/// How long a holder is watched before it can be found to lag (several of its requests, and
/// long enough that one slow start or a loss does not count).
const LAG_WINDOW: Duration = Duration::from_secs(4);
/// How long a peer found lagging is remembered as one: long enough to cover the watch a
/// holder needs again after taking a slot anew ([`LAG_WINDOW`]) several times over.
const LAGGARD_MEMORY: Duration = Duration::from_secs(30);
/// How long a peer that lost its slot is refused the nearness rule, counted from the loss
/// (see [`Slots::admit`]).
const HAD_ITS_TURN: Duration = Duration::from_secs(30);
/// Below this inflow over [`LAG_WINDOW`] (4 MiB: 8 Mbit/s), this node passes on too little
/// for any holder to be called slow by it: a node serving a complete copy (no inflow) judges
/// by the rate it received at a short while ago ([`REFERENCE_MEMORY`]), or else tries a
/// holder that takes less than this against one more peer ([`Slots::trial_for`]).
const LAG_MIN_INFLOW: u64 = 4 << 20;
/// How long the best inflow this node saw stays the measure of a holder once nothing arrives
/// any more (this node completed what it was fetching). A site behind a slow link that holds
/// the only slot of a node that just completed would otherwise hold every site after it to
/// its rate for the rest of the transfer: the node's own inflow, the measure while it was
/// fetching, fell to zero, and with it any chance to call the holder slow. Long enough to
/// cover a slow site's whole transfer of a big file at the rates the node just saw; a node
/// complete for longer than that has no fresh measure, like the origin, and uses a trial.
const REFERENCE_MEMORY: Duration = Duration::from_secs(300);
/// How long a trial ([`Slots::trial_for`]) runs: two [`LAG_WINDOW`]s, so that a challenger's
/// first request (a new connection's slow start, a round trip) weighs little.
const TRIAL_LENGTH: Duration = Duration::from_secs(8);
/// How long a holder that kept up in a trial is not tried again. A trial lends half of this
/// node's uplink to a second peer for [`TRIAL_LENGTH`]; a site whose every link is slow would
/// otherwise hand it out each time someone asks.
const TRIAL_EVERY: Duration = Duration::from_secs(300);
/// How long a holder is not tried again after its challenger stopped asking before the trial
/// ended ([`TrialEnd::Withdrew`]), the first time; each further withdrawal doubles it, up to
/// [`TRIAL_EVERY`]. A challenger is usually a site trying this node's complete copy for a few
/// seconds (fetch.rs); a try on a connection still slow to ramp up can come out no faster
/// than the holder, which says nothing for sure about the holder. Barring the holder for
/// [`TRIAL_EVERY`] after one such try once left a 5 Mbit/s site holding every other site to
/// its rate for a whole release (the fed WAN test, in CI).
const WITHDRAWN_PAUSE: Duration = TRIAL_LENGTH;

/// The upload slots and the peers holding them.
#[derive(Debug)]
struct Slots {
    max: usize,
    lease: Duration,
    held: HashMap<EndpointId, Holder>,
    /// The peer behind each open connection (from the connect event).
    conns: HashMap<u64, EndpointId>,
    /// Verified bytes this node's own fetches received from fleet peers, so far.
    inflow: Growth,
    /// The largest inflow over a [`LAG_WINDOW`] lately, and when it was seen.
    peak: Option<(u64, Instant)>,
    /// Peers found lagging ([`lags`]), and when last: one that lost its slot between two
    /// requests and asks again gets the lent slot back rather than taking the slot of the
    /// peer it was lent to (by being nearer).
    laggards: HashMap<EndpointId, Instant>,
    /// Peers that lost a slot (its lease ran out, or a nearer peer took it), and when: for
    /// [`HAD_ITS_TURN`] they do not take a slot by being nearer ([`Slots::admit`]).
    had_turn: HashMap<EndpointId, Instant>,
    /// The running trial of a holder against a peer let in beside it, if any.
    trial: Option<Trial>,
    /// Holders that kept up in a trial, or whose challenger withdrew: not tried again until
    /// then.
    tried: HashMap<EndpointId, Tried>,
    /// Challengers that lost a trial, and when: their running requests are ended (the
    /// throttle hook aborts them) until they are admitted again.
    revoked: HashMap<EndpointId, Instant>,
}

/// A peer let in beside a holder that takes little, at a node with no rate of its own to
/// judge it by ([`Slots::trial_for`]): after [`TRIAL_LENGTH`] the two takes are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Trial {
    holder: EndpointId,
    /// What had been sent to the holder when the trial began.
    holder_sent: u64,
    /// What the holder took over the [`LAG_WINDOW`] before the trial (alone).
    holder_before: u64,
    challenger: EndpointId,
    /// What has been sent to the challenger since (kept here: its slot may lapse first).
    challenger_took: u64,
    since: Instant,
}

/// A holder not to be tried again for a while ([`Slots::tried`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tried {
    until: Instant,
    /// How long it was barred: a further withdrawal bars it twice as long.
    pause: Duration,
}

/// How a trial ended ([`Slots::judge_trial`]); bytes each took since the trial began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TrialEnd {
    /// The challenger took more than twice what the holder did: the holder lags, and keeps
    /// its slot as a lent one beside the challenger's.
    HolderLags {
        holder: EndpointId,
        challenger: EndpointId,
        holder_took: u64,
        challenger_took: u64,
    },
    /// The holder kept up: the challenger gives its slot back, its running requests end.
    HolderKeepsUp {
        holder: EndpointId,
        challenger: EndpointId,
        holder_took: u64,
        challenger_took: u64,
    },
    /// The challenger stopped asking before the trial ended (its try was done, or it found
    /// it no faster than what it had): the holder is not tried again for `pause`.
    Withdrew {
        holder: EndpointId,
        challenger: EndpointId,
        pause: Duration,
    },
    /// The holder stopped asking: its slot is free, nothing to compare.
    Void,
}

#[derive(Debug)]
struct Holder {
    running: u32,
    /// When its last request ended (None while one runs).
    idle_since: Option<Instant>,
    /// Bytes sent to it since it took the slot.
    sent: u64,
    taken: Growth,
}

impl Holder {
    fn new(running: u32, now: Instant) -> Self {
        let mut taken = Growth::default();
        taken.record(0, now, LAG_WINDOW);
        Holder {
            running,
            idle_since: None,
            sent: 0,
            taken,
        }
    }

    /// Its lease ran out: no request running for `lease`. It is dropped at the next
    /// [`Slots::admit`].
    fn lapsed(&self, now: Instant, lease: Duration) -> bool {
        self.running == 0
            && self
                .idle_since
                .is_some_and(|t| now.saturating_duration_since(t) >= lease)
    }
}

/// Whether a holder that took `taken` bytes while this node received `inflow` (both over the
/// last [`LAG_WINDOW`]; `inflow` is [`Slots::reference`]) lags: it takes less than half of
/// what arrives here to pass on. A chain's next site follows at the rate this node receives;
/// one behind a slow link (or busy) does not, and keeping the only slot for it would hold
/// every site after it to its rate. Unknown (watched less than the window) is not lagging.
fn lags(taken: Option<u64>, inflow: Option<u64>) -> bool {
    match (taken, inflow) {
        (Some(taken), Some(inflow)) => inflow >= LAG_MIN_INFLOW && taken.saturating_mul(2) < inflow,
        _ => false,
    }
}

/// Whether a holder that took `taken` bytes while this node received `inflow` (as in
/// [`lags`]) has shown that it keeps pace: watched a whole window, against a reference large
/// enough to judge by, and not lagging. Unknown is not keeping up.
fn keeps_up(taken: Option<u64>, inflow: Option<u64>) -> bool {
    match (taken, inflow) {
        (Some(_), Some(inflow)) => inflow >= LAG_MIN_INFLOW && !lags(taken, Some(inflow)),
        _ => false,
    }
}

impl Slots {
    fn new(max: usize, lease: Duration) -> Self {
        Slots {
            max: max.max(1),
            lease,
            held: HashMap::new(),
            conns: HashMap::new(),
            inflow: Growth::default(),
            peak: None,
            laggards: HashMap::new(),
            had_turn: HashMap::new(),
            trial: None,
            tried: HashMap::new(),
            revoked: HashMap::new(),
        }
    }

    /// This node's fetches have received `total` bytes from fleet peers so far.
    fn received(&mut self, total: u64, now: Instant) {
        self.inflow.record(total, now, LAG_WINDOW);
        if let Some(inflow) = self.inflow.over(LAG_WINDOW, now) {
            let stale = self
                .peak
                .is_none_or(|(_, t)| now.saturating_duration_since(t) >= REFERENCE_MEMORY);
            if stale || self.peak.is_some_and(|(p, _)| inflow >= p) {
                self.peak = Some((inflow, now));
            }
        }
    }

    /// What a holder is measured against over the last [`LAG_WINDOW`]: this node's inflow
    /// while it receives; once nothing arrives at all (it completed), the best inflow of the
    /// last [`REFERENCE_MEMORY`]. A trickle is judged as itself (too small to call anyone
    /// slow): a node whose own source slowed down has nothing more to pass on.
    fn reference(&self, now: Instant) -> Option<u64> {
        let inflow = self.inflow.over(LAG_WINDOW, now);
        match (inflow, self.peak) {
            (Some(0), Some((peak, t))) if now.saturating_duration_since(t) < REFERENCE_MEMORY => {
                Some(peak)
            }
            _ => inflow,
        }
    }

    /// `bytes` are being sent on `conn`.
    fn sent(&mut self, conn: u64, bytes: u64, now: Instant) {
        let Some(peer) = self.conns.get(&conn) else {
            return;
        };
        let reference = self.reference(now);
        if let Some(t) = self.trial.as_mut().filter(|t| t.challenger == *peer) {
            t.challenger_took += bytes;
        }
        if let Some(h) = self.held.get_mut(peer) {
            h.sent += bytes;
            h.taken.record(h.sent, now, LAG_WINDOW);
            // Noted as it happens: a holder may lose its slot between two requests before
            // anyone asks for one.
            if lags(h.taken.over(LAG_WINDOW, now), reference) {
                self.laggards.insert(*peer, now);
            }
        }
    }

    /// Whether `peer` may have a slot although all are held: at most one more than `max`,
    /// and only while a holder lags or lagged lately ([`lags`]; a holder that lost its slot
    /// between two requests comes back with its rate unknown), or `peer` itself did.
    fn extra_allowed(&mut self, peer: &EndpointId, now: Instant) -> bool {
        if self.held.len() != self.max {
            return false;
        }
        let reference = self.reference(now);
        for (id, h) in &self.held {
            if lags(h.taken.over(LAG_WINDOW, now), reference) {
                self.laggards.insert(*id, now);
            }
        }
        self.laggards
            .retain(|_, t| now.saturating_duration_since(*t) < LAGGARD_MEMORY);
        self.laggards.contains_key(peer)
            || self.held.keys().any(|id| self.laggards.contains_key(id))
    }

    fn connected(&mut self, conn: u64, peer: EndpointId) {
        self.conns.insert(conn, peer);
    }

    fn peer(&self, conn: u64) -> Option<EndpointId> {
        self.conns.get(&conn).copied()
    }

    /// Whether a request on `conn` may run now; if so it is counted until [`Slots::finished`].
    /// When every slot is taken, a requester clearly nearer (`rtt`: least round trip seen to
    /// each peer) than a holder takes that holder's slot: the holder's running requests end
    /// as they would, its next one is refused and it turns to its next source. Without it
    /// the first to ask keeps the slot — a far site that asked a moment sooner would pull
    /// the release over its long link while the near site waits, and the near site, behind
    /// the far one, fetches from it instead of the other way round. A holder that has shown
    /// it keeps up keeps its slot ([`Slots::farther_holder`]).
    fn admit(
        &mut self,
        conn: u64,
        now: Instant,
        rtt: &dyn Fn(&EndpointId) -> Option<Duration>,
    ) -> Admit {
        let Some(peer) = self.conns.get(&conn).copied() else {
            // Every admitted connection was announced first; without an id there is no slot.
            return Admit::No;
        };
        let lease = self.lease;
        let had_turn = &mut self.had_turn;
        self.held.retain(|id, h| {
            let keep = !h.lapsed(now, lease);
            if !keep {
                had_turn.insert(*id, now);
            }
            keep
        });
        self.had_turn
            .retain(|_, t| now.saturating_duration_since(*t) < HAD_ITS_TURN);
        if let Some(h) = self.held.get_mut(&peer) {
            h.running += 1;
            h.idle_since = None;
            return Admit::Yes;
        }
        let mut verdict = Admit::Yes;
        if self.held.len() >= self.max && !self.extra_allowed(&peer, now) {
            if let Some(far) = self.farther_holder(&peer, now, rtt) {
                self.held.remove(&far);
                self.had_turn.insert(far, now);
                verdict = Admit::InsteadOf(far);
            } else if let Some(holder) = self.trial_for(&peer, now) {
                let h = self.held.get(&holder);
                self.trial = Some(Trial {
                    holder,
                    holder_sent: h.map_or(0, |h| h.sent),
                    holder_before: h.and_then(|h| h.taken.over(LAG_WINDOW, now)).unwrap_or(0),
                    challenger: peer,
                    challenger_took: 0,
                    since: now,
                });
                verdict = Admit::Beside(holder);
            } else {
                return Admit::No;
            }
        }
        self.had_turn.remove(&peer);
        self.revoked.remove(&peer);
        self.held.insert(peer, Holder::new(1, now));
        verdict
    }

    /// The farthest holder `peer` is clearly nearer than, whose slot it takes; never one
    /// shown to keep up ([`keeps_up`]).
    fn farther_holder(
        &self,
        peer: &EndpointId,
        now: Instant,
        rtt: &dyn Fn(&EndpointId) -> Option<Duration>,
    ) -> Option<EndpointId> {
        // A peer that had a slot and lost it had its turn: its lease ran out because it
        // stopped asking in time (a slow or busy site), or a nearer peer took it. Taking
        // the slot of whoever holds it now would hand the release back to the peer that
        // could not keep it, and the holder — often ahead of it — would follow it. The
        // nearness rule is for the race at the start, when a far peer asked a moment
        // sooner. The memory is not renewed by asking again: on a starved host the
        // nearest site's slot at the origin can lapse too, and a memory that lasted while
        // it kept asking would keep it from its nearest upstream for good.
        if self.had_turn.contains_key(peer) {
            return None;
        }
        // Nor does it take a slot from a holder that has shown over a whole window that it
        // keeps pace with what arrives here: the newcomer's rate is unknown, and nearness is
        // no proof of speed. A 5 Mbit/s site 22 ms away once took a site's slot from a
        // keeping-up follower 50 ms away, and held that follower to its rate until it was
        // found lagging (docs/benchmarks.md, throttled-fed run 3).
        let mine = rtt(peer)?;
        let reference = self.reference(now);
        self.held
            .iter()
            .filter(|(_, h)| !keeps_up(h.taken.over(LAG_WINDOW, now), reference))
            .filter_map(|(id, _)| rtt(id).map(|r| (*id, r)))
            .filter(|(_, r)| clearly_nearer(mine, *r))
            .max_by_key(|(_, r)| *r)
            .map(|(far, _)| far)
    }

    /// The holder `peer` may be let in beside for a trial, if any. A node serving a complete
    /// copy it received nothing of lately (the origin) has no rate of its own to call a
    /// holder slow by ([`Slots::reference`]); a site behind a slow link that took its only
    /// slot first would hold every other site to that link's rate. So it lets one peer in
    /// beside a holder that took less than [`LAG_MIN_INFLOW`] over the last [`LAG_WINDOW`]
    /// (BitTorrent's optimistic unchoke, asked for rather than on a timer) and compares
    /// the two ([`Slots::judge_trial`]). A holder taking more is left alone: a trial costs it
    /// half the uplink for a while, and the chain behind it with it. One trial at a time,
    /// none while a slot is lent; a holder that kept up is not tried again for
    /// [`TRIAL_EVERY`], one whose challenger stopped asking for [`WITHDRAWN_PAUSE`], twice
    /// that after each further withdrawal.
    fn trial_for(&self, peer: &EndpointId, now: Instant) -> Option<EndpointId> {
        // At most one slot over the count, as for a lent one: a challenger that won is a
        // holder too, and may take little itself.
        if self.trial.is_some()
            || self.held.len() != self.max
            || self.laggards.contains_key(peer)
            || !matches!(self.reference(now), None | Some(0))
        {
            return None;
        }
        self.held
            .iter()
            .filter(|(id, h)| {
                // One that took nothing is stalled, and loses its slot with its lease.
                h.taken
                    .over(LAG_WINDOW, now)
                    .is_some_and(|took| (1..LAG_MIN_INFLOW).contains(&took))
                    && self.tried.get(*id).is_none_or(|t| now >= t.until)
            })
            .map(|(id, _)| *id)
            .next()
    }

    /// Ends the running trial once it has run [`TRIAL_LENGTH`] (or one side stopped
    /// asking, [`TrialEnd::Withdrew`], [`TrialEnd::Void`]): the challenger keeps its slot
    /// only if it took more than twice what the holder did, the margin [`lags`] uses;
    /// otherwise it gives it back at once, and its
    /// running requests are ended ([`Slots::revoked`]) so that this node does not send a
    /// second copy at the holder's expense. The holder's take is the smaller of what it took
    /// during the trial and, at the same rate, before it: what a stream is handed is not what
    /// the link carries — a request that starts during the trial fills its send buffer at
    /// once (up to the 2 MiB window), and that alone once made a 5 Mbit/s holder look
    /// half as fast as a 25 Mbit/s challenger.
    fn judge_trial(&mut self, now: Instant) -> Option<TrialEnd> {
        let t = self.trial?;
        let ran = now.saturating_duration_since(t.since);
        let (holder_gone, challenger_gone) =
            (self.lapsed(&t.holder, now), self.lapsed(&t.challenger, now));
        if ran < TRIAL_LENGTH && !holder_gone && !challenger_gone {
            return None;
        }
        self.trial = None;
        self.tried
            .retain(|_, t| now.saturating_duration_since(t.until) < TRIAL_EVERY);
        self.revoked
            .retain(|_, at| now.saturating_duration_since(*at) < LAGGARD_MEMORY);
        if holder_gone {
            return Some(TrialEnd::Void);
        }
        // Both since the trial began (the challenger's slot is as old as the trial): a
        // window sliding to the end would drop what a challenger took at the start.
        let challenger_took = t.challenger_took;
        let during = self
            .held
            .get(&t.holder)
            .map_or(0, |h| h.sent.saturating_sub(t.holder_sent));
        // `before` was over a LAG_WINDOW; scaled to the time the trial ran.
        let before = u64::try_from(
            u128::from(t.holder_before) * ran.as_millis() / LAG_WINDOW.as_millis().max(1),
        )
        .unwrap_or(u64::MAX);
        let holder_took = during.min(before);
        if holder_took.saturating_mul(2) < challenger_took {
            // Not remembered as tried: once the challenger is done and the holder alone
            // again, the next peer that asks is let in beside it at once. (A challenger
            // that already stopped asking says as much about the holder.)
            self.laggards.insert(t.holder, now);
            return Some(TrialEnd::HolderLags {
                holder: t.holder,
                challenger: t.challenger,
                holder_took,
                challenger_took,
            });
        }
        if challenger_gone {
            let pause = self
                .tried
                .get(&t.holder)
                .map_or(WITHDRAWN_PAUSE, |t| (t.pause * 2).min(TRIAL_EVERY));
            let until = now + pause;
            self.tried.insert(t.holder, Tried { until, pause });
            return Some(TrialEnd::Withdrew {
                holder: t.holder,
                challenger: t.challenger,
                pause,
            });
        }
        let until = now + TRIAL_EVERY;
        self.tried.insert(
            t.holder,
            Tried {
                until,
                pause: TRIAL_EVERY,
            },
        );
        self.held.remove(&t.challenger);
        self.had_turn.insert(t.challenger, now);
        self.revoked.insert(t.challenger, now);
        Some(TrialEnd::HolderKeepsUp {
            holder: t.holder,
            challenger: t.challenger,
            holder_took,
            challenger_took,
        })
    }

    /// Whether `id` holds no slot, or one whose lease ran out ([`Holder::lapsed`]).
    fn lapsed(&self, id: &EndpointId, now: Instant) -> bool {
        self.held.get(id).is_none_or(|h| h.lapsed(now, self.lease))
    }

    /// Who was refused on `conn` and what the slots looked like (a debug log line): each
    /// holder's take over the last [`LAG_WINDOW`], this node's reference, the trial.
    fn refusal(&self, conn: u64, now: Instant, label: &dyn Fn(&EndpointId) -> String) -> String {
        let holders: Vec<String> = self
            .held
            .iter()
            .map(|(id, h)| {
                let took = h.taken.over(LAG_WINDOW, now);
                format!("{} took {took:?} (running {})", label(id), h.running)
            })
            .collect();
        format!(
            "{}: holders [{}], reference {:?}, trial since {:?}, tried {}",
            self.peer(conn).map(|p| label(&p)).unwrap_or_default(),
            holders.join(", "),
            self.reference(now),
            self.trial.map(|t| t.since),
            self.tried.len()
        )
    }

    /// Whether a request running on `conn` is to be ended: its peer lost a trial lately
    /// (its next piece of data comes within milliseconds; the memory is for a stalled one).
    fn revoked(&self, conn: u64, now: Instant) -> bool {
        self.conns.get(&conn).is_some_and(|p| {
            !self.held.contains_key(p)
                && self
                    .revoked
                    .get(p)
                    .is_some_and(|t| now.saturating_duration_since(*t) < LAGGARD_MEMORY)
        })
    }

    fn finished(&mut self, conn: u64, now: Instant) {
        let Some(peer) = self.conns.get(&conn) else {
            return;
        };
        if let Some(h) = self.held.get_mut(peer) {
            h.running = h.running.saturating_sub(1);
            if h.running == 0 {
                h.idle_since = Some(now);
            }
        }
    }

    /// A request that had stopped counting (no progress for a lease) sends again.
    fn resumed(&mut self, conn: u64, now: Instant) {
        let Some(peer) = self.conns.get(&conn).copied() else {
            return;
        };
        let h = self.held.entry(peer).or_insert_with(|| Holder::new(0, now));
        h.running += 1;
        h.idle_since = None;
    }

    fn closed(&mut self, conn: u64) {
        let Some(peer) = self.conns.remove(&conn) else {
            return;
        };
        if !self.conns.values().any(|p| *p == peer) {
            self.held.remove(&peer);
        }
    }
}

/// What [`Slots::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    Yes,
    /// Admitted; the slot was taken from this farther holder.
    InsteadOf(EndpointId),
    /// Admitted beside this holder for a trial ([`Slots::trial_for`]).
    Beside(EndpointId),
    No,
}

/// `near` is clearly nearer than `far`: half its round trip or less, and 5 ms or more nearer
/// (the same test as a fetch's switch to a nearer source, `decide::FileFetch::nearer_than`).
fn clearly_nearer(near: Duration, far: Duration) -> bool {
    near * 2 <= far && near + Duration::from_millis(5) <= far
}

/// The least round trip seen to each peer (control-link pings, written by the fleet's
/// owner): the slot rule's idea of who is near. The least, because pings queue behind a
/// transfer on a busy link and a near peer would look far exactly while it is served.
#[derive(Debug, Default)]
pub(crate) struct Nearness(Mutex<HashMap<EndpointId, Duration>>);

impl Nearness {
    pub(crate) fn saw(&self, id: EndpointId, rtt: Duration) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let least = map.entry(id).or_insert(rtt);
        *least = (*least).min(rtt);
    }

    fn get(&self, id: &EndpointId) -> Option<Duration> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied()
    }
}

#[derive(Debug, Default)]
pub struct UploadStats {
    pub bytes: AtomicU64,
    /// Bytes sent to each peer (members are bounded by the config, so this map is too).
    by_peer: Mutex<HashMap<EndpointId, u64>>,
}

impl UploadStats {
    fn add(&self, peer: Option<EndpointId>, size: u64) {
        self.bytes.fetch_add(size, Ordering::Relaxed);
        if let Some(peer) = peer {
            *self
                .by_peer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(peer)
                .or_default() += size;
        }
    }

    /// Bytes sent to each peer so far.
    pub fn by_peer(&self) -> Vec<(EndpointId, u64)> {
        let map = self.by_peer.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(id, n)| (*id, *n)).collect()
    }
}

/// The upload limit, changeable while uploads run (a config reload): every chunk group of
/// every upload asks it for its send time, so a new rate holds from the next group on.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    state: Mutex<PacerState>,
}

#[derive(Debug, Default)]
struct PacerState {
    /// Bytes per second; `None`: unlimited.
    rate: Option<f64>,
    /// When the next chunk group may go.
    next: Option<Instant>,
}

impl Pacer {
    pub(crate) fn new(limit: Option<Rate>) -> Self {
        let pacer = Self::default();
        pacer.set(limit);
        pacer
    }

    /// A new limit. Groups already given a time keep it; the next one is paced at the new
    /// rate from now (a backlog scheduled at a slower rate is not carried over).
    pub(crate) fn set(&self, limit: Option<Rate>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.rate = limit.map(|r| r.bytes_per_sec.max(1) as f64);
        st.next = None;
    }

    /// When a chunk group of `size` bytes may be sent; `None`: at once.
    fn slot(&self, size: u64) -> Option<Instant> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let rate = st.rate?;
        let now = Instant::now();
        let burst = Duration::from_secs_f64(BURST_BYTES / rate);
        let earliest = now.checked_sub(burst).unwrap_or(now);
        let start = st.next.map_or(now, |n| n.max(earliest));
        st.next = Some(start + Duration::from_secs_f64(size as f64 / rate));
        Some(start)
    }
}

/// Who may connect and fetch (configured peers and `members`), and the configured peers'
/// addresses for log lines; replaced whole on a reload.
#[derive(Debug, Default)]
pub(crate) struct Members(std::sync::RwLock<Arc<MemberList>>);

#[derive(Debug, Default)]
pub(crate) struct MemberList {
    pub ids: HashSet<EndpointId>,
    pub peers: Vec<PeerAddr>,
}

impl Members {
    pub(crate) fn new(list: MemberList) -> Self {
        Self(std::sync::RwLock::new(Arc::new(list)))
    }

    pub(crate) fn contains(&self, id: &EndpointId) -> bool {
        self.get().ids.contains(id)
    }

    pub(crate) fn get(&self) -> Arc<MemberList> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A peer as log lines name it: its configured address if it is a configured peer.
    pub(crate) fn label(&self, id: &EndpointId) -> String {
        match self.get().peers.iter().find(|p| p.id == *id) {
            Some(p) => format!("{} ({})", p.host, id.fmt_short()),
            None => id.fmt_short().to_string(),
        }
    }

    pub(crate) fn replace(&self, list: MemberList) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(list);
    }
}

fn lock(slots: &Mutex<Slots>) -> std::sync::MutexGuard<'_, Slots> {
    slots.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds the provider's event handler. `inflow` counts the verified bytes this node's own
/// fetches receive from fleet peers (fetch.rs): what it could pass on, against which a slot
/// holder's take is judged.
pub(crate) fn provider_events(
    members: Arc<Members>,
    nearness: Arc<Nearness>,
    pacer: Arc<Pacer>,
    slots: usize,
    stats: Arc<UploadStats>,
    inflow: Arc<AtomicU64>,
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
    let (tx, mut rx) = EventSender::channel(64, mask);
    let slots = Arc::new(Mutex::new(Slots::new(slots, SLOT_LEASE)));
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            match msg {
                ProviderMessage::GetRequestReceived(msg) => {
                    let conn = msg.connection_id;
                    let rtt = |id: &EndpointId| nearness.get(id);
                    let (verdict, ended) = {
                        let now = Instant::now();
                        let mut slots = lock(&slots);
                        slots.received(inflow.load(Ordering::Relaxed), now);
                        let ended = slots.judge_trial(now);
                        (slots.admit(conn, now, &rtt), ended)
                    };
                    log_trial_end(&members, ended);
                    match verdict {
                        Admit::No => {
                            if tracing::enabled!(tracing::Level::DEBUG) {
                                let label = |id: &EndpointId| members.label(id);
                                let why = lock(&slots).refusal(conn, Instant::now(), &label);
                                tracing::debug!("fleet: upload slot refused to {why}");
                            }
                            msg.tx.send(Err(AbortReason::RateLimited)).await.ok();
                            continue;
                        }
                        Admit::InsteadOf(far) => {
                            let near = lock(&slots).peer(conn);
                            tracing::info!(
                                "fleet: upload slot passed from {} to the nearer {}",
                                members.label(&far),
                                near.map(|n| members.label(&n)).unwrap_or_default()
                            );
                        }
                        Admit::Beside(holder) => {
                            let challenger = lock(&slots).peer(conn);
                            tracing::info!(
                                "fleet: upload slot holder {} took less than {} KiB in {} s, and this node receives nothing to judge it by: {} is let in beside it for {} s to compare",
                                members.label(&holder),
                                LAG_MIN_INFLOW / 1024,
                                LAG_WINDOW.as_secs(),
                                challenger.map(|c| members.label(&c)).unwrap_or_default(),
                                TRIAL_LENGTH.as_secs()
                            );
                        }
                        Admit::Yes => {}
                    }
                    msg.tx.send(Ok(())).await.ok();
                    let slots = slots.clone();
                    let mut updates = msg.rx;
                    tokio::spawn(async move {
                        // The update channel closes when the request ends, however it ends.
                        // A request that sends nothing for a lease (its peer died, and the
                        // connection has not timed out yet) stops counting until it moves.
                        let mut counted = true;
                        loop {
                            match tokio::time::timeout(SLOT_LEASE, updates.recv()).await {
                                Ok(Ok(Some(_))) if !counted => {
                                    lock(&slots).resumed(conn, Instant::now());
                                    counted = true;
                                }
                                Ok(Ok(Some(_))) => {}
                                Ok(_) => break,
                                Err(_) if counted => {
                                    lock(&slots).finished(conn, Instant::now());
                                    counted = false;
                                }
                                Err(_) => {}
                            }
                        }
                        if counted {
                            lock(&slots).finished(conn, Instant::now());
                        }
                    });
                }
                ProviderMessage::ConnectionClosed(msg) => {
                    lock(&slots).closed(msg.connection_id);
                }
                ProviderMessage::ClientConnected(msg) => {
                    let verdict = match msg.endpoint_id {
                        Some(id) if members.contains(&id) => {
                            lock(&slots).connected(msg.connection_id, id);
                            Ok(())
                        }
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
                    let (peer, ended, revoked) = {
                        let now = Instant::now();
                        let mut slots = lock(&slots);
                        slots.received(inflow.load(Ordering::Relaxed), now);
                        slots.sent(msg.connection_id, msg.size, now);
                        let ended = slots.judge_trial(now);
                        (
                            slots.peer(msg.connection_id),
                            ended,
                            slots.revoked(msg.connection_id, now),
                        )
                    };
                    log_trial_end(&members, ended);
                    if revoked {
                        msg.tx.send(Err(AbortReason::RateLimited)).await.ok();
                        continue;
                    }
                    stats.add(peer, msg.size);
                    match pacer.slot(msg.size) {
                        None => {
                            msg.tx.send(Ok(())).await.ok();
                        }
                        Some(at) => {
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

fn log_trial_end(members: &Members, ended: Option<TrialEnd>) {
    let (holder, challenger, holder_took, challenger_took, lags) = match ended {
        Some(TrialEnd::HolderLags {
            holder,
            challenger,
            holder_took,
            challenger_took,
        }) => (holder, challenger, holder_took, challenger_took, true),
        Some(TrialEnd::HolderKeepsUp {
            holder,
            challenger,
            holder_took,
            challenger_took,
        }) => (holder, challenger, holder_took, challenger_took, false),
        Some(TrialEnd::Withdrew {
            holder,
            challenger,
            pause,
        }) => {
            tracing::info!(
                "fleet: upload slot trial: {} stopped asking before it ended; {} keeps the slot and is not tried again for {} s",
                members.label(&challenger),
                members.label(&holder),
                pause.as_secs()
            );
            return;
        }
        Some(TrialEnd::Void) => {
            tracing::debug!("fleet: upload slot trial ended early: the holder stopped asking");
            return;
        }
        None => return,
    };
    let (h, c) = (members.label(&holder), members.label(&challenger));
    let verdict = if lags {
        format!("more than twice as much: {h} is slow, and keeps a lent slot beside {c}'s")
    } else {
        format!("not twice as much: {h} keeps the slot, {c}'s transfer is ended")
    };
    tracing::info!(
        "fleet: upload slot trial: {c} took {} KiB in {} s beside {h}'s {} KiB (the less of its take then and before), {verdict}",
        challenger_took / 1024,
        TRIAL_LENGTH.as_secs(),
        holder_took / 1024,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admitted, with no round trips known (nobody is nearer than anybody).
    fn admit(slots: &mut Slots, conn: u64, now: Instant) -> bool {
        slots.admit(conn, now, &|_| None) != Admit::No
    }

    #[test]
    fn a_clearly_nearer_peer_takes_the_slot_of_a_far_one() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let peer = |n: u8| iroh::SecretKey::from_bytes(&[n; 32]).public();
        // Round trips: peer 1 40 ms, 2 10 ms, 3 25 ms, 4 unknown.
        let rtts: HashMap<EndpointId, Duration> =
            [(peer(1), ms(40)), (peer(2), ms(10)), (peer(3), ms(25))].into();
        let rtt = |id: &EndpointId| rtts.get(id).copied();
        let mut slots = Slots::new(1, ms(2000));
        for n in 1..=4 {
            slots.connected(u64::from(n), peer(n));
        }
        assert_eq!(slots.admit(1, t0, &rtt), Admit::Yes, "a free slot");
        assert_eq!(
            slots.admit(4, t0, &rtt),
            Admit::No,
            "no round trip known: not nearer than anyone"
        );
        assert_eq!(
            slots.admit(3, t0, &rtt),
            Admit::No,
            "25 ms is nearer than 40 ms but not clearly (not half)"
        );
        assert_eq!(
            slots.admit(2, t0, &rtt),
            Admit::InsteadOf(peer(1)),
            "10 ms is clearly nearer than 40 ms"
        );
        // The far peer's running request ends as it would; its next one is refused, and it
        // does not take the slot back.
        slots.finished(1, t0 + ms(50));
        assert_eq!(slots.admit(1, t0 + ms(60), &rtt), Admit::No);
        assert_eq!(
            slots.admit(2, t0 + ms(60), &rtt),
            Admit::Yes,
            "the holder asks again"
        );
        assert_eq!(
            slots.admit(3, t0 + ms(70), &rtt),
            Admit::No,
            "25 ms is not clearly nearer than the 10 ms holder"
        );
    }

    #[test]
    fn a_peer_that_lost_its_slot_does_not_take_the_next_holders_by_nearness() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let peer = |n: u8| iroh::SecretKey::from_bytes(&[n; 32]).public();
        // Peer 1 is near (10 ms), peer 2 far (40 ms).
        let rtts: HashMap<EndpointId, Duration> = [(peer(1), ms(10)), (peer(2), ms(40))].into();
        let rtt = |id: &EndpointId| rtts.get(id).copied();
        let mut slots = Slots::new(1, ms(2000));
        slots.connected(1, peer(1));
        slots.connected(2, peer(2));
        assert_eq!(slots.admit(1, t0, &rtt), Admit::Yes);
        slots.finished(1, t0 + ms(100));
        // Peer 1 asks nothing for longer than the lease (a slow or busy site): the far peer
        // gets the slot.
        assert_eq!(slots.admit(2, t0 + ms(2200), &rtt), Admit::Yes);
        // Peer 1, back and still clearly nearer, had its turn (it lost the slot at 2.2 s):
        // refused, however often it asks, until the memory ends.
        let lost = t0 + ms(2200);
        for s in 3..HAD_ITS_TURN.as_secs() + 2 {
            assert_eq!(
                slots.admit(1, t0 + ms(1000 * s), &rtt),
                Admit::No,
                "asked at {s} s"
            );
        }
        // Then nearness decides again: asking did not renew the memory (a nearest site whose
        // slot lapsed on a starved host is not locked out of its upstream for good).
        let later = lost + HAD_ITS_TURN + ms(100);
        assert_eq!(slots.admit(1, later, &rtt), Admit::InsteadOf(peer(2)));
        // The peer whose slot was taken had its turn too: it does not take it back by
        // nearness even where it is the nearer (its round trip now shorter).
        let flipped = |id: &EndpointId| Some(if *id == peer(2) { ms(5) } else { ms(40) });
        assert_eq!(slots.admit(2, later + ms(1000), &flipped), Admit::No);
    }

    #[test]
    fn with_two_slots_the_farthest_holder_gives_way() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let peer = |n: u8| iroh::SecretKey::from_bytes(&[n; 32]).public();
        let rtts: HashMap<EndpointId, Duration> =
            [(peer(1), ms(60)), (peer(2), ms(80)), (peer(3), ms(20))].into();
        let rtt = |id: &EndpointId| rtts.get(id).copied();
        let mut slots = Slots::new(2, ms(2000));
        for n in 1..=3 {
            slots.connected(u64::from(n), peer(n));
        }
        assert_eq!(slots.admit(1, t0, &rtt), Admit::Yes);
        assert_eq!(slots.admit(2, t0, &rtt), Admit::Yes);
        assert_eq!(slots.admit(3, t0, &rtt), Admit::InsteadOf(peer(2)));
    }

    #[test]
    fn a_slot_stays_with_its_peer_between_requests_until_the_lease_ends() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut slots = Slots::new(1, ms(2000));
        let peer = |n: u8| iroh::SecretKey::from_bytes(&[n; 32]).public();
        for (conn, p) in [(1, 1), (2, 2), (3, 3), (4, 1)] {
            slots.connected(conn, peer(p));
        }
        assert!(
            !admit(&mut slots, 9, t0),
            "a connection never announced gets no slot"
        );
        assert!(admit(&mut slots, 1, t0), "a free slot is given");
        assert!(
            !admit(&mut slots, 2, t0),
            "one slot: the second peer is turned away"
        );
        slots.finished(1, t0 + ms(100));
        // Between two requests of the holder, the slot is still its own.
        assert!(!admit(&mut slots, 2, t0 + ms(300)));
        assert!(admit(&mut slots, 1, t0 + ms(300)), "the holder asks again");
        assert!(
            admit(&mut slots, 1, t0 + ms(300)),
            "and may run several requests"
        );
        slots.finished(1, t0 + ms(400));
        slots.finished(1, t0 + ms(500));
        // Idle for the whole lease: the slot goes to the next peer.
        assert!(!admit(&mut slots, 2, t0 + ms(2400)));
        assert!(admit(&mut slots, 2, t0 + ms(2600)));
        assert!(!admit(&mut slots, 1, t0 + ms(2600)));
        // A closed connection gives its slot back at once.
        slots.closed(2);
        assert!(admit(&mut slots, 3, t0 + ms(2700)));
        // The slot is the peer's: a new connection of peer 3 (say after a restart, while the
        // old one has not timed out) is served; peer 1's new connection is not.
        slots.connected(5, peer(3));
        assert!(admit(&mut slots, 5, t0 + ms(2800)));
        assert!(!admit(&mut slots, 4, t0 + ms(2800)));
        slots.closed(3);
        assert!(
            !admit(&mut slots, 4, t0 + ms(2900)),
            "peer 3 still has connection 5"
        );
        slots.closed(5);
        assert!(admit(&mut slots, 4, t0 + ms(2900)));
        // A request of peer 1 that stops moving stops holding the slot once a lease has
        // passed (gate's watcher calls `finished` for it)...
        slots.finished(4, t0 + ms(3000));
        slots.connected(6, peer(2));
        assert!(admit(&mut slots, 6, t0 + ms(5100)));
        // ...and holds one again (over the count) when it moves again.
        slots.resumed(4, t0 + ms(5200));
        assert!(admit(&mut slots, 4, t0 + ms(5200)));
        slots.connected(7, peer(3));
        assert!(!admit(&mut slots, 7, t0 + ms(5200)));
    }

    /// One slot (2 s lease), held by peer 1 from `t0`; peers 1..=`peers` connected (peer n
    /// on connection n), nothing received yet.
    fn held_by_peer_1(peers: u8, t0: Instant) -> Slots {
        let peer = |n: u8| iroh::SecretKey::from_bytes(&[n; 32]).public();
        let mut slots = Slots::new(1, Duration::from_millis(2000));
        for n in 1..=peers {
            slots.connected(u64::from(n), peer(n));
        }
        slots.received(0, t0);
        assert!(admit(&mut slots, 1, t0));
        slots
    }

    /// One slot, peer 1 holding it from t0; every 250 ms for `secs` this node receives
    /// `inflow` bytes and sends `taken` to peer 1. Then: may peer 2, and after it peer 3, have
    /// a slot?
    fn after_watching(secs: u64, inflow: u64, taken: u64) -> (bool, bool) {
        let (mut slots, now) = watched(3, secs, inflow, taken);
        let second = admit(&mut slots, 2, now);
        (second, admit(&mut slots, 3, now))
    }

    /// [`held_by_peer_1`] with `peers`, then every 250 ms for `secs` this node receives
    /// `inflow` bytes and sends `taken` to peer 1. Returns the slots and the time at the end.
    fn watched(peers: u8, secs: u64, inflow: u64, taken: u64) -> (Slots, Instant) {
        let t0 = Instant::now();
        let mut slots = held_by_peer_1(peers, t0);
        let mut now = t0;
        for i in 1..=secs * 4 {
            now = t0 + Duration::from_millis(250 * i);
            slots.received(i * inflow, now);
            slots.sent(1, taken, now);
        }
        (slots, now)
    }

    #[test]
    fn a_laggard_that_lost_its_slot_gets_the_lent_one_not_the_slot_of_the_nearer_peer() {
        const MIB: u64 = 1 << 20;
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let peer = |n: u8| iroh::SecretKey::from_bytes(&[n; 32]).public();
        let mut slots = held_by_peer_1(3, t0);
        let mut now = t0;
        for i in 1..=20 {
            now = t0 + ms(250 * i);
            slots.received(i * MIB, now);
            slots.sent(1, MIB / 5, now);
        }
        assert!(
            admit(&mut slots, 2, now),
            "peer 1 lags: peer 2 is lent a slot"
        );
        slots.finished(1, now);
        slots.finished(2, now);
        assert!(admit(&mut slots, 2, now + ms(100)));
        // Peer 1 was idle past the lease and lost its slot; peer 2 holds the only one. Peer
        // 1 is far nearer, but a laggard does not take it: it gets the lent slot back.
        let near = |id: &EndpointId| Some(if *id == peer(1) { ms(10) } else { ms(40) });
        let later = now + ms(2500);
        assert_eq!(slots.admit(1, later, &near), Admit::Yes);
        assert!(slots.held.contains_key(&peer(2)), "peer 2 keeps its slot");
        assert!(
            !admit(&mut slots, 3, later),
            "still at most one slot over the count"
        );
    }

    #[test]
    fn a_holder_taking_far_less_than_arrives_here_does_not_block_one_more_peer() {
        const MIB: u64 = 1 << 20;
        // (watched s, received and sent per 250 ms, peer 2 admitted, peer 3 admitted, why)
        let table = [
            (
                5,
                MIB,
                MIB / 5,
                true,
                false,
                "a 5x slower holder: one extra slot, never two",
            ),
            (
                5,
                MIB,
                MIB,
                false,
                false,
                "a holder keeping up: the chain stays a chain",
            ),
            (
                5,
                MIB,
                MIB * 2 / 3,
                false,
                false,
                "a holder a third slower is no lagger",
            ),
            (
                3,
                MIB,
                MIB / 5,
                false,
                false,
                "watched less than the window: not judged",
            ),
            (
                5,
                0,
                MIB / 5,
                true,
                false,
                "no inflow (a complete copy), a holder taking little: one peer let in beside it for a trial, never two",
            ),
            (
                5,
                0,
                MIB / 2,
                false,
                false,
                "no inflow, a holder taking 8 Mbit/s or more: no trial, slots as configured",
            ),
            (
                5,
                MIB / 8,
                0,
                false,
                false,
                "inflow too small to judge anyone by",
            ),
        ];
        for (secs, inflow, taken, second, third, why) in table {
            assert_eq!(
                after_watching(secs, inflow, taken),
                (second, third),
                "{why}"
            );
        }
    }

    #[test]
    fn a_nearer_peer_takes_a_slot_only_from_a_holder_not_shown_to_keep_up() {
        const MIB: u64 = 1 << 20;
        let ms = Duration::from_millis;
        let peer = |n: u8| iroh::SecretKey::from_bytes(&[n; 32]).public();
        // Peer 2 (10 ms) is clearly nearer than the holder, peer 1 (40 ms).
        let rtt = |id: &EndpointId| Some(if *id == peer(2) { ms(10) } else { ms(40) });
        // (watched s, received and sent to peer 1 per 250 ms, what peer 2's ask gets, why)
        let table = [
            (
                3,
                MIB,
                MIB,
                Admit::InsteadOf(peer(1)),
                "watched less than the window: its rate is unknown, nearness decides",
            ),
            (
                5,
                MIB,
                MIB,
                Admit::No,
                "a holder that kept pace for a whole window keeps its slot",
            ),
            (
                5,
                MIB,
                MIB * 2 / 3,
                Admit::No,
                "a third slower is still keeping up",
            ),
            (
                5,
                MIB,
                MIB / 5,
                Admit::Yes,
                "a lagging holder: peer 2 is lent a slot beside it, as without nearness",
            ),
            (
                5,
                0,
                MIB,
                Admit::InsteadOf(peer(1)),
                "nothing arrives here (the origin): no rate to judge by, nearness decides",
            ),
            (
                5,
                MIB / 8,
                MIB / 8,
                Admit::InsteadOf(peer(1)),
                "a trickle arrives: too little to judge by, nearness decides",
            ),
        ];
        for (secs, inflow, taken, expected, why) in table {
            let (mut slots, now) = watched(2, secs, inflow, taken);
            assert_eq!(slots.admit(2, now, &rtt), expected, "{why}");
        }
    }

    const KIB: u64 = 1024;

    /// A complete copy (nothing arrives), one slot held by peer 1, which takes `holder` bytes
    /// per 250 ms. After 5 s peer 2 asks and is let in beside peer 1 (peer 3 is not: one
    /// trial at a time); then for `trial_ticks` of 250 ms peer 1 takes `holder` bytes each
    /// (plus `burst` in the first), and peer 2 `challenger` in each of the first
    /// `challenger_ticks`, after which its request ends if it `withdraws` (and it asks no
    /// more). Returns the slots, the time, and how the trial ended.
    fn trial(
        (holder, burst): (u64, u64),
        (challenger, challenger_ticks, withdraws): (u64, u64, bool),
        trial_ticks: u64,
    ) -> (Slots, Instant, Option<TrialEnd>) {
        let ms = Duration::from_millis;
        let peer = |n: u8| iroh::SecretKey::from_bytes(&[n; 32]).public();
        let t0 = Instant::now();
        let mut slots = held_by_peer_1(3, t0);
        let mut now = t0;
        for i in 1..=20 {
            now = t0 + ms(250 * i);
            slots.received(0, now);
            slots.sent(1, holder, now);
        }
        assert_eq!(slots.judge_trial(now), None, "no trial yet");
        assert_eq!(slots.admit(2, now, &|_| None), Admit::Beside(peer(1)));
        assert!(
            !admit(&mut slots, 3, now),
            "one trial at a time, one peer beside"
        );
        let start = now;
        let mut ended = None;
        for i in 1..=trial_ticks {
            now = start + ms(250 * i);
            slots.received(0, now);
            slots.sent(1, holder + if i == 1 { burst } else { 0 }, now);
            if i <= challenger_ticks {
                slots.sent(2, challenger, now);
            }
            if withdraws && i == challenger_ticks {
                slots.finished(2, now);
            }
            ended = ended.or(slots.judge_trial(now));
        }
        (slots, now, ended)
    }

    /// Peer 1 keeps taking `holder` per 250 ms until `until`.
    fn holder_alone(slots: &mut Slots, now: &mut Instant, holder: u64, until: Instant) {
        while *now < until {
            *now += Duration::from_millis(250);
            slots.received(0, *now);
            slots.sent(1, holder, *now);
        }
    }

    #[test]
    fn a_node_receiving_nothing_tries_a_holder_taking_little_against_one_more_peer() {
        // After the trial: how it ended, is peer 2's running request ended, is peer 3
        // admitted?
        let run = |holder, challenger, trial_ticks| {
            let (mut slots, now, ended) = trial(holder, challenger, trial_ticks);
            let verdict = ended.map(|e| match e {
                TrialEnd::HolderLags { .. } => "holder lags",
                TrialEnd::HolderKeepsUp { .. } => "holder keeps up",
                TrialEnd::Withdrew { .. } => "withdrew",
                TrialEnd::Void => "void",
            });
            (verdict, slots.revoked(2, now), admit(&mut slots, 3, now))
        };
        // ((holder per 250 ms, its burst), (challenger per 250 ms, for how many), trial
        // ticks; how it ended, peer 2 ended, peer 3 admitted, why)
        let table = [
            (
                (80 * KIB, 0),
                (512 * KIB, 32, false),
                32,
                Some("holder lags"),
                false,
                false,
                "challenger 6x faster: the holder keeps a lent slot, still only one over",
            ),
            (
                (80 * KIB, 0),
                (120 * KIB, 32, false),
                32,
                Some("holder keeps up"),
                true,
                false,
                "challenger not twice as fast: it gives its slot back, its transfer is ended, and the holder is not tried again at once",
            ),
            (
                (80 * KIB, 0),
                (1024 * KIB, 8, false),
                32,
                Some("holder lags"),
                false,
                false,
                "what the challenger took at the start counts (a try of 8 MiB in 2 s, then a pause)",
            ),
            (
                (80 * KIB, 2048 * KIB),
                (200 * KIB, 32, false),
                32,
                Some("holder lags"),
                false,
                false,
                "a request of the holder starting in the trial is handed 2 MiB at once: not counted beyond its rate before",
            ),
            (
                (80 * KIB, 0),
                (512 * KIB, 32, false),
                31,
                None,
                false,
                false,
                "judged only after the whole trial",
            ),
            (
                (80 * KIB, 0),
                (120 * KIB, 12, true),
                32,
                Some("withdrew"),
                false,
                false,
                "the challenger's request ended after 3 s and it asked no more: judged once its lease ran out, and the holder is not tried again at once",
            ),
            (
                (80 * KIB, 0),
                (512 * KIB, 12, true),
                32,
                Some("holder lags"),
                false,
                true,
                "a challenger that stopped asking after taking 6 MiB in 3 s found the holder slow all the same: the next peer gets the lent slot",
            ),
        ];
        for (holder, challenger, ticks, ended, revoked, third, why) in table {
            assert_eq!(
                run(holder, challenger, ticks),
                (ended, revoked, third),
                "{why}"
            );
        }
    }

    #[test]
    fn a_holder_found_slow_is_tried_again_as_soon_as_it_is_alone_again() {
        let peer = |n: u8| iroh::SecretKey::from_bytes(&[n; 32]).public();
        let (mut slots, mut now, ended) = trial((80 * KIB, 0), (512 * KIB, 32, false), 32);
        assert!(
            matches!(ended, Some(TrialEnd::HolderLags { .. })),
            "{ended:?}"
        );
        // Peer 2 completes and goes; past the laggard memory, peer 1 holds the one slot
        // alone, still taking little: peer 3 is let in beside it at once.
        slots.closed(2);
        let until = now + LAGGARD_MEMORY + Duration::from_millis(250);
        holder_alone(&mut slots, &mut now, 80 * KIB, until);
        assert_eq!(slots.admit(3, now, &|_| None), Admit::Beside(peer(1)));
    }

    #[test]
    fn a_holder_that_kept_up_in_a_trial_is_tried_again_only_much_later() {
        let ms = Duration::from_millis;
        let peer = |n: u8| iroh::SecretKey::from_bytes(&[n; 32]).public();
        let (mut slots, mut now, ended) = trial((80 * KIB, 0), (80 * KIB, 32, false), 32);
        assert!(
            matches!(ended, Some(TrialEnd::HolderKeepsUp { .. })),
            "{ended:?}"
        );
        assert!(
            slots.revoked(2, now),
            "lost the trial: its transfer is ended"
        );
        assert!(!admit(&mut slots, 2, now), "and it holds no slot");
        let ended = now;
        // The holder keeps taking little; a trial is not offered again until TRIAL_EVERY.
        holder_alone(
            &mut slots,
            &mut now,
            80 * KIB,
            ended + TRIAL_EVERY - ms(250),
        );
        assert!(!admit(&mut slots, 3, now), "tried {:?} ago", now - ended);
        holder_alone(
            &mut slots,
            &mut now,
            80 * KIB,
            ended + TRIAL_EVERY + ms(250),
        );
        assert_eq!(slots.admit(3, now, &|_| None), Admit::Beside(peer(1)));
        assert!(
            !slots.revoked(2, now),
            "the memory of the lost trial ran out long ago"
        );
    }

    #[test]
    fn a_holder_whose_challengers_stop_asking_is_tried_again_ever_later() {
        let ms = Duration::from_millis;
        let peer = |n: u8| iroh::SecretKey::from_bytes(&[n; 32]).public();
        let (mut slots, mut now, ended) = trial((80 * KIB, 0), (120 * KIB, 12, true), 32);
        let Some(TrialEnd::Withdrew { pause: first, .. }) = ended else {
            panic!("{ended:?}")
        };
        assert_eq!(first, WITHDRAWN_PAUSE);
        let mut pause = first;
        // Judged at the first event after the challenger's lease ran out: 3 s + the lease.
        let mut judged = now - ms(8000) + ms(5000);
        for (n, want) in [(3u8, 2), (2, 4), (3, 8), (2, 16), (3, 32), (2, 64)] {
            let want = (WITHDRAWN_PAUSE * want).min(TRIAL_EVERY);
            // Barred until the pause has run, let in beside the holder at once after it.
            holder_alone(&mut slots, &mut now, 80 * KIB, judged + pause - ms(250));
            assert!(
                !admit(&mut slots, u64::from(n), now),
                "{:?} after a withdrawal barring for {pause:?}",
                now - judged
            );
            holder_alone(&mut slots, &mut now, 80 * KIB, judged + pause + ms(250));
            assert_eq!(
                slots.admit(u64::from(n), now, &|_| None),
                Admit::Beside(peer(1))
            );
            // This challenger too takes 120 KiB per 250 ms for 3 s and stops asking.
            let start = now;
            let mut ended = None;
            while ended.is_none() {
                now += ms(250);
                slots.received(0, now);
                slots.sent(1, 80 * KIB, now);
                if now <= start + ms(3000) {
                    slots.sent(u64::from(n), 120 * KIB, now);
                }
                if now == start + ms(3000) {
                    slots.finished(u64::from(n), now);
                }
                ended = slots.judge_trial(now);
            }
            let Some(TrialEnd::Withdrew { pause: p, .. }) = ended else {
                panic!("{ended:?}")
            };
            assert_eq!(
                p, want,
                "each withdrawal doubles the pause, up to TRIAL_EVERY"
            );
            assert_eq!(now - start, ms(5000), "judged once its lease ran out");
            (judged, pause) = (now, p);
        }
        assert_eq!(pause, TRIAL_EVERY);
    }

    #[test]
    fn a_node_that_just_completed_measures_its_holder_by_the_rate_it_received_at() {
        const MIB: u64 = 1 << 20;
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // One slot held by peer 1, which takes `taken_per_tick` every 250 ms; this node
        // received 4 MiB/s for 10 s, then completed (nothing arrives any more). At `after` s
        // past the completion, is peer 2 admitted?
        let run = |after: u64, taken_per_tick: u64| {
            let mut slots = held_by_peer_1(2, t0);
            let mut now = t0;
            let mut total = 0;
            for i in 1..=(10 + after) * 4 {
                now = t0 + ms(250 * i);
                if i <= 40 {
                    total += MIB;
                }
                slots.received(total, now);
                slots.sent(1, taken_per_tick, now);
            }
            // A laggard found earlier is remembered for a while: judge at the end afresh.
            slots.laggards.clear();
            admit(&mut slots, 2, now)
        };
        // (seconds since completion, sent to peer 1 per 250 ms, peer 2 admitted, why)
        let table = [
            (
                10,
                MIB / 5,
                true,
                "complete 10 s ago, holder at a fifth of the rate this node received at",
            ),
            (
                10,
                MIB,
                false,
                "complete, holder taking as fast as this node received: no extra slot",
            ),
            (
                400,
                MIB / 5,
                true,
                "complete for longer than the memory: no rate of its own, so a holder taking little is tried against one more peer",
            ),
            (
                400,
                MIB,
                false,
                "complete for longer than the memory, a holder taking 8 Mbit/s or more: slots as configured",
            ),
        ];
        for (after, taken, second, why) in table {
            assert_eq!(run(after, taken), second, "{why}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_spaces_chunks_at_the_rate() {
        let rate = |bytes_per_sec| Some(Rate { bytes_per_sec });
        let pacer = Pacer::new(rate(1_000_000));
        // 100 chunk groups of 16 KiB at 1 MB/s: the last slot is ~1.6 s out.
        let span = |pacer: &Pacer| {
            let t0 = Instant::now();
            let mut last = t0;
            for _ in 0..100 {
                last = pacer.slot(16384).expect("limited");
            }
            last - t0
        };
        let ms = Duration::from_millis;
        let first = span(&pacer);
        assert!(first >= ms(1550) && first <= ms(1650), "{first:?}");
        // A reload raises the limit while that backlog is queued: the next groups go at the
        // new rate from now, not after the old backlog.
        pacer.set(rate(4_000_000));
        let faster = span(&pacer);
        assert!(faster >= ms(340) && faster <= ms(420), "{faster:?}");
        pacer.set(None);
        assert_eq!(pacer.slot(16384), None, "unlimited: at once");
        pacer.set(rate(1_000_000));
        let again = span(&pacer);
        assert!(again >= ms(1550) && again <= ms(1650), "{again:?}");
    }
}
