//! What the fleet does with an offered boot policy: hold and pass on, answer quietly, or
//! refuse with a warning — never pass on what was refused.

use netboot_proto::{policy::PolicyRefusal, SecretKey};

use crate::{
    fleet::policy_offer::{step, PolicyStep as S},
    policy::held::Refused,
};

#[test]
fn policy_offer_steps() {
    let publisher = SecretKey::from_seed([9; 32]).public();
    let admission = |r| Refused::Admission(r);
    type Case = (&'static str, Result<(), Option<Refused>>, S);
    let cases: Vec<Case> = vec![
        ("admitted: hold and pass on", Ok(()), S::Relay),
        ("forged or not a policy", Err(None), S::Warn),
        (
            "the same policy again (catch-up, a second path)",
            Err(Some(Refused::AlreadyHeld(5))),
            S::Quiet,
        ),
        (
            "older than held (late, or a replay)",
            Err(Some(admission(PolicyRefusal::NotNewer {
                version: 4,
                current: 5,
            }))),
            S::Quiet,
        ),
        (
            "untrusted publisher",
            Err(Some(admission(PolicyRefusal::Untrusted {
                version: 6,
                publisher,
            }))),
            S::Warn,
        ),
        (
            "expired",
            Err(Some(admission(PolicyRefusal::Expired {
                version: 6,
                expires: 10,
                now: 20,
            }))),
            S::Warn,
        ),
        (
            "cannot be written to disk",
            Err(Some(Refused::Write {
                version: 6,
                path: "/d/policy.nbpol".into(),
                cause: "no space".into(),
            })),
            S::Warn,
        ),
    ];
    for (what, outcome, want) in cases {
        assert_eq!(
            step(outcome.as_ref().map(|_| ()).map_err(|e| e.as_ref())),
            want,
            "{what}"
        );
    }
}
