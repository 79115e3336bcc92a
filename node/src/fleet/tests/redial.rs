//! When a configured peer whose link is down is dialled.

use std::time::Duration;

use super::{peer, t0};
use crate::fleet::redial::{wait_after, Redial, FIRST_WAIT, MAX_WAIT};

/// Two peers, the smaller id first.
fn ordered_pair() -> (iroh::EndpointId, iroh::EndpointId) {
    let (a, b) = (peer(1), peer(2));
    if a < b {
        (a, b)
    } else {
        (b, a)
    }
}

#[test]
fn the_wait_doubles_after_each_failure_up_to_the_cap() {
    let s = Duration::from_secs;
    let table = [
        (1, s(2)),
        (2, s(4)),
        (3, s(8)),
        (4, s(16)),
        (5, MAX_WAIT),
        (40, MAX_WAIT),
    ];
    for (failures, wait) in table {
        assert_eq!(wait_after(failures), wait, "after {failures} failures");
    }
}

#[test]
fn one_dial_at_a_time_per_peer_and_backoff_after_failures() {
    let now = t0();
    let (low, high) = ordered_pair();
    // This node is the smaller id: it dials at once.
    let mut r = Redial::new(low);
    assert_eq!(r.due(&[high], now), vec![high]);
    assert!(
        r.due(&[high], now + Duration::from_secs(3)).is_empty(),
        "a dial still running is not started again"
    );
    r.ended(high, false, now + Duration::from_secs(5));
    assert!(r.due(&[high], now + Duration::from_secs(6)).is_empty());
    assert_eq!(
        r.due(&[high], now + Duration::from_secs(7)),
        vec![high],
        "2 s after the first failure"
    );
    r.ended(high, false, now + Duration::from_secs(8));
    assert!(r.due(&[high], now + Duration::from_secs(11)).is_empty());
    assert_eq!(
        r.due(&[high], now + Duration::from_secs(12)),
        vec![high],
        "4 s after the second"
    );
    // Up (by this dial): forgotten, and a later loss of the link starts again from no wait.
    r.ended(high, true, now + Duration::from_secs(13));
    assert_eq!(r.due(&[high], now + Duration::from_secs(60)), vec![high]);
}

#[test]
fn the_greater_id_lets_the_smaller_dial_first() {
    let now = t0();
    let (low, high) = ordered_pair();
    let mut r = Redial::new(high);
    assert!(r.due(&[low], now).is_empty(), "the smaller id dials first");
    assert_eq!(
        r.due(&[low], now + FIRST_WAIT),
        vec![low],
        "one period later, if still down"
    );
}

#[test]
fn a_link_that_came_up_meanwhile_resets_the_backoff() {
    let now = t0();
    let (low, high) = ordered_pair();
    let mut r = Redial::new(low);
    r.due(&[high], now);
    r.ended(high, false, now);
    r.due(&[high], now + Duration::from_secs(2));
    r.ended(high, false, now + Duration::from_secs(2));
    // The peer dialled us: its link is up, so it is not among the down ones.
    assert!(r.due(&[], now + Duration::from_secs(3)).is_empty());
    // Down again later: dialled at once, not after the 4 s the failures had earned.
    assert_eq!(r.due(&[high], now + Duration::from_secs(4)), vec![high]);
}
