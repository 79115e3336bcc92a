//! What the fleet does with an offered boot policy, once the held policy's owner
//! (`policy::held`) has decided on it: pure, so the rule is a table test
//! (`tests/policy.rs`). Unlike a release, a policy is small and travels inline: there is
//! nothing to fetch, only to hold, pass on, or refuse at this hop.

use crate::policy::held::Refused;

/// What follows from the held policy's answer to an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyStep {
    /// Newly held: apply it (the watch channel did) and pass it on to every other peer.
    Relay,
    /// Already held, or an older version arriving late: answered, logged quietly, not passed
    /// on.
    Quiet,
    /// Forged, untrusted, expired, or not storable: refused and logged as a warning at this
    /// hop, never passed on.
    Warn,
}

/// `Err(None)`: the bytes did not open (bad signature, not a policy, not canonical).
pub(crate) fn step(outcome: Result<(), Option<&Refused>>) -> PolicyStep {
    match outcome {
        Ok(()) => PolicyStep::Relay,
        Err(Some(refused)) if refused.is_quiet() => PolicyStep::Quiet,
        Err(_) => PolicyStep::Warn,
    }
}
