//! Boot policies, as they will arrive from disk and fleet peers (`.nbpol`), and the
//! `policy.toml` an operator writes.
//!
//! 1. The bytes as a signed policy: whatever opens must be the one canonical encoding, goes
//!    through the admission rules, and evaluates for any client without panicking.
//! 2. The bytes as `policy.toml`: parsing never panics, and whatever parses signs and opens
//!    again unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netboot_proto::{
    policy::{admit_policy, parse_source, Arch, Client, Mac, SignedPolicy, SourceMeta},
    SecretKey, TrustedKeys,
};

fn evaluate_all(policy: &netboot_proto::policy::Policy, data: &[u8]) {
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(data.iter().rev()) {
        *m = *b;
    }
    for arch in Arch::ALL.into_iter().map(Some).chain([None]) {
        for site in ["", "branch-1", "lab"] {
            let _ = policy.evaluate(&Client {
                mac: Mac(mac),
                site,
                node: None,
                arch,
            });
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(verified) = SignedPolicy::open(data) {
        assert_eq!(verified.signed().encode(), data, "verified bytes are canonical");
        let policy = verified.policy();
        let trusted = TrustedKeys::new([policy.publisher]);
        let _ = admit_policy(policy, &trusted, policy.created, Some(policy.version));
        let _ = admit_policy(policy, &trusted, policy.created, policy.version.checked_sub(1));
        evaluate_all(policy, data);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = SecretKey::from_seed([7; 32]);
    let meta = SourceMeta {
        version: 1,
        created: 1_700_000_000,
        expires: None,
        publisher: key.public(),
    };
    if let Ok(policy) = parse_source(text, meta) {
        evaluate_all(&policy, data);
        if let Ok(signed) = SignedPolicy::sign(&policy, &key) {
            let bytes = signed.signed().encode();
            let again = SignedPolicy::open(&bytes).expect("a policy it signed opens again");
            assert_eq!(again.policy(), &policy, "signing and opening keep the policy");
        }
    }
});
