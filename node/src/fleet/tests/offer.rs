//! What a node does with an offered release: each rule, and the order between them.

use netboot_proto::Refusal;

use super::release;
use crate::fleet::decide::{offer, Busy, OfferDecision as D, OfferFacts, Remembered};

/// A fresh, admissible, wanted v5 that nothing is known about.
fn fresh() -> OfferFacts {
    OfferFacts {
        id: release(1),
        version: 5,
        committed: None,
        pending: None,
        relayed: false,
        refused: None,
        admission: Ok(()),
        wanted: true,
    }
}

fn not_newer() -> Refusal {
    Refusal::NotNewer {
        name: "debian".into(),
        version: 5,
        current: 5,
    }
}

fn expired() -> Refusal {
    Refusal::Expired {
        name: "debian".into(),
        version: 5,
        expires: 10,
        now: 20,
    }
}

#[test]
fn offer_rules() {
    type Case = (&'static str, fn(&mut OfferFacts), D);
    let cases: &[Case] = &[
        ("fresh and wanted: fetch", |_| {}, D::Fetch),
        (
            "not in the fetch policy: relay",
            |f| f.wanted = false,
            D::Relay,
        ),
        (
            "committed here, same id: already have (admission's NotNewer does not matter)",
            |f| {
                f.committed = Some(release(1));
                f.admission = Err(not_newer());
            },
            D::AlreadyHave,
        ),
        (
            "being fetched here, same id: another source",
            |f| f.pending = Some((release(1), 5)),
            D::AnotherSource,
        ),
        (
            "relayed before: nothing more",
            |f| {
                f.relayed = true;
                f.wanted = false;
            },
            D::AlreadyRelayed,
        ),
        (
            "refused before: the remembered reason, admission not consulted",
            |f| f.refused = Some("forged".into()),
            D::StillRefused("forged".into()),
        ),
        (
            "expired: refused loudly",
            |f| f.admission = Err(expired()),
            D::Refuse {
                reason: expired(),
                quiet: false,
            },
        ),
        (
            "older than held: refused quietly (a late announcement, not an attack)",
            |f| f.admission = Err(not_newer()),
            D::Refuse {
                reason: not_newer(),
                quiet: true,
            },
        ),
        (
            "same version pending with other content: conflicting",
            |f| f.pending = Some((release(2), 5)),
            D::Busy(Busy::Conflicting),
        ),
        (
            "newer version pending: busy",
            |f| f.pending = Some((release(2), 6)),
            D::Busy(Busy::Newer { pending: 6 }),
        ),
        (
            "older version pending: fetch (supersedes it)",
            |f| f.pending = Some((release(2), 4)),
            D::Fetch,
        ),
        (
            "a different release committed at this version: admission decides",
            |f| {
                f.committed = Some(release(2));
                f.admission = Err(not_newer());
            },
            D::Refuse {
                reason: not_newer(),
                quiet: true,
            },
        ),
        (
            "refusal comes before the fetch policy: an unwanted forgery is not relayed",
            |f| {
                f.wanted = false;
                f.admission = Err(expired());
            },
            D::Refuse {
                reason: expired(),
                quiet: false,
            },
        ),
    ];
    for (what, change, want) in cases {
        let mut f = fresh();
        change(&mut f);
        assert_eq!(&offer(&f), want, "{what}");
    }
}

#[test]
fn only_sources_are_recorded_as_holders() {
    let recorded = [D::AlreadyHave, D::AnotherSource, D::Relay, D::Fetch];
    let not = [
        D::AlreadyRelayed,
        D::StillRefused("x".into()),
        D::Refuse {
            reason: expired(),
            quiet: false,
        },
        D::Busy(Busy::Conflicting),
        D::Busy(Busy::Newer { pending: 6 }),
    ];
    for d in recorded {
        assert!(d.records_holder(), "{d:?}");
    }
    for d in not {
        assert!(!d.records_holder(), "{d:?}");
    }
}

#[test]
fn remembered_ids_are_bounded() {
    let mut m = Remembered::new(3);
    for n in 0..3 {
        m.insert(release(n), n);
    }
    assert_eq!(m.get(&release(2)), Some(&2));
    // Re-inserting a known id does not forget the others.
    m.insert(release(2), 9);
    assert_eq!(m.get(&release(0)), Some(&0));
    // A fourth distinct id makes room by forgetting: memory stays bounded.
    m.insert(release(3), 3);
    assert_eq!(m.get(&release(3)), Some(&3));
    assert_eq!(m.get(&release(0)), None);
}
