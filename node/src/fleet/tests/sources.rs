//! Which peers to ask for a release, in which order.

use netboot_proto::fleet::Holding::*;

use super::{labels, ms, t0, view};
use crate::fleet::decide::sources;

#[test]
fn nearest_first_unmeasured_last_non_holders_left_out() {
    let now = t0();
    let list = sources(
        [
            view(1, Some(80), Some(Complete)),
            view(2, None, Some(Complete)),
            view(3, Some(5), Some(Fetching)),
            view(4, Some(1), None),
            view(5, Some(2), Some(Relaying)),
            view(6, Some(30), Some(Complete)),
        ],
        now,
    );
    assert_eq!(labels(&list), ["p3", "p6", "p1", "p2"]);
    assert_eq!(list[0].holding, Fetching);
}

#[test]
fn avoided_peers_are_left_out_until_their_backoff_ends() {
    let now = t0();
    let mut near = view(1, Some(5), Some(Complete));
    near.avoid_until = Some(now + ms(1000));
    let far = view(2, Some(50), Some(Complete));
    let list = sources([near.clone(), far.clone()], now);
    assert_eq!(labels(&list), ["p2"]);
    let later = sources([near, far], now + ms(1000));
    assert_eq!(labels(&later), ["p1", "p2"], "back once the backoff ends");
}
