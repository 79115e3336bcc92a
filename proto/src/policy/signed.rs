//! The signed boot policy: its bytes, signing, verification and admission.
//!
//! The envelope is the release's (`envelope.rs`) with a policy's own magic `NBPOL01\n` and
//! signature domain, so neither kind's signature verifies as the other's. The body is the
//! postcard encoding of `WirePolicy`; verification re-encodes the decoded policy and refuses
//! anything but the one canonical byte form (sets sorted, no duplicates), so a policy's
//! [`PolicyId`] is the same on every node. Wire structs are append-only; a change of meaning
//! gets a new magic.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Action, Arch, Mac, NodeRef, Policy, PolicyError, Rule};
use crate::{
    admit::{check, Breach},
    envelope::{self, FrameError, MAX_ENCODED},
    PublicKey, SecretKey, TrustedKeys,
};

const MAGIC: &[u8; 8] = b"NBPOL01\n";
const DOMAIN: &[u8] = b"netboot signed boot policy v1\0";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyDecodeError {
    #[error("not a netboot signed boot policy (bad magic bytes)")]
    BadMagic,
    #[error("signed boot policy is truncated ({0} bytes)")]
    Truncated(usize),
    #[error("signed boot policy is larger than {MAX_ENCODED} bytes")]
    TooLarge,
    #[error("signed boot policy has {0} unexpected bytes after the signature")]
    TrailingBytes(usize),
    #[error("boot policy body does not decode: {0}")]
    Body(String),
    #[error("boot policy body is not in canonical encoding")]
    NotCanonical,
    #[error("boot policy is malformed: {0}")]
    Invalid(PolicyError),
    #[error("boot policy field is malformed: {0}")]
    Field(String),
    #[error("signature does not verify for publisher {0}: the policy was altered or not signed by that key")]
    BadSignature(PublicKey),
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PolicyRefusal {
    #[error("boot policy v{version}: publisher {publisher} is not a trusted publisher of this node (add it to trusted_publishers)")]
    Untrusted { version: u64, publisher: PublicKey },
    #[error("boot policy v{version} expired at {expires} (now {now})")]
    Expired {
        version: u64,
        expires: u64,
        now: u64,
    },
    #[error("boot policy v{version} is not newer than v{current} already held (rollback/replay refused)")]
    NotNewer { version: u64, current: u64 },
}

/// The release rules ([`crate::admit::check`]) for a policy. `current` is the highest policy
/// version this node holds or has held: one policy per fleet, so one floor.
pub fn admit_policy(
    policy: &Policy,
    trusted: &TrustedKeys,
    now: u64,
    current: Option<u64>,
) -> Result<(), PolicyRefusal> {
    let version = policy.version;
    check(
        &policy.publisher,
        version,
        policy.expires,
        trusted,
        now,
        current,
    )
    .map_err(|b| match b {
        Breach::Untrusted => PolicyRefusal::Untrusted {
            version,
            publisher: policy.publisher,
        },
        Breach::Expired { expires } => PolicyRefusal::Expired {
            version,
            expires,
            now,
        },
        Breach::NotNewer { current } => PolicyRefusal::NotNewer { version, current },
    })
}

#[derive(Serialize, Deserialize)]
struct WirePolicy {
    version: u64,
    created: u64,
    expires: Option<u64>,
    publisher: [u8; 32],
    groups: Vec<(String, Vec<[u8; 6]>)>,
    rules: Vec<WireRule>,
    site_defaults: Vec<(String, WireAction)>,
    default: Option<WireAction>,
}

#[derive(Serialize, Deserialize)]
struct WireRule {
    name: Option<String>,
    macs: Vec<[u8; 6]>,
    groups: Vec<String>,
    sites: Vec<String>,
    nodes: Vec<[u8; 32]>,
    archs: Vec<u8>,
    action: WireAction,
    once: bool,
}

/// Variant order is part of the format.
#[derive(Serialize, Deserialize)]
enum WireAction {
    Image { name: String, version: Option<u64> },
    Menu,
    Local,
}

fn action_to_wire(a: &Action) -> WireAction {
    match a {
        Action::Image { name, version } => WireAction::Image {
            name: name.to_string(),
            version: *version,
        },
        Action::Menu => WireAction::Menu,
        Action::Local => WireAction::Local,
    }
}

fn action_from_wire(a: WireAction) -> Result<Action, PolicyDecodeError> {
    Ok(match a {
        WireAction::Image { name, version } => Action::Image {
            name: name
                .parse()
                .map_err(|e: crate::NameError| PolicyDecodeError::Field(e.to_string()))?,
            version,
        },
        WireAction::Menu => Action::Menu,
        WireAction::Local => Action::Local,
    })
}

fn to_wire(p: &Policy) -> WirePolicy {
    WirePolicy {
        version: p.version,
        created: p.created,
        expires: p.expires,
        publisher: *p.publisher.as_bytes(),
        groups: p
            .groups
            .iter()
            .map(|(g, macs)| (g.clone(), macs.iter().map(|m| m.0).collect()))
            .collect(),
        rules: p
            .rules
            .iter()
            .map(|r| WireRule {
                name: r.name.clone(),
                macs: r.macs.iter().map(|m| m.0).collect(),
                groups: r.groups.iter().cloned().collect(),
                sites: r.sites.iter().cloned().collect(),
                nodes: r.nodes.iter().map(|n| n.0).collect(),
                archs: r.archs.iter().map(|a| a.code()).collect(),
                action: action_to_wire(&r.action),
                once: r.once,
            })
            .collect(),
        site_defaults: p
            .site_defaults
            .iter()
            .map(|(s, a)| (s.clone(), action_to_wire(a)))
            .collect(),
        default: p.default.as_ref().map(action_to_wire),
    }
}

fn from_wire(w: WirePolicy) -> Result<Policy, PolicyDecodeError> {
    let rules = w
        .rules
        .into_iter()
        .map(|r| {
            let archs = r
                .archs
                .iter()
                .map(|&c| {
                    Arch::from_code(c)
                        .ok_or_else(|| PolicyDecodeError::Field(format!("unknown arch code {c}")))
                })
                .collect::<Result<_, _>>()?;
            Ok(Rule {
                name: r.name,
                macs: r.macs.into_iter().map(Mac).collect(),
                groups: r.groups.into_iter().collect(),
                sites: r.sites.into_iter().collect(),
                nodes: r.nodes.into_iter().map(NodeRef).collect(),
                archs,
                action: action_from_wire(r.action)?,
                once: r.once,
            })
        })
        .collect::<Result<_, PolicyDecodeError>>()?;
    let site_defaults = w
        .site_defaults
        .into_iter()
        .map(|(s, a)| Ok((s, action_from_wire(a)?)))
        .collect::<Result<_, PolicyDecodeError>>()?;
    let policy = Policy {
        version: w.version,
        created: w.created,
        expires: w.expires,
        publisher: PublicKey::from_bytes(w.publisher)
            .map_err(|e| PolicyDecodeError::Field(e.to_string()))?,
        groups: w
            .groups
            .into_iter()
            .map(|(g, macs)| (g, macs.into_iter().map(Mac).collect()))
            .collect(),
        rules,
        site_defaults,
        default: w.default.map(action_from_wire).transpose()?,
    };
    policy.validate().map_err(PolicyDecodeError::Invalid)?;
    Ok(policy)
}

fn encode_body(p: &Policy) -> Vec<u8> {
    // Serialising plain structs of integers, strings and vectors into a Vec cannot fail.
    postcard::to_allocvec(&to_wire(p)).unwrap_or_default()
}

/// The identity of one signed policy: BLAKE3 of its encoded bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyId(pub blake3::Hash);

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex()[..16])
    }
}

impl fmt::Debug for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyId({})", self.0.to_hex())
    }
}

/// A policy with a signature, as it travels and is stored. Not yet trusted: call
/// [`SignedPolicy::verify`].
#[derive(Clone, PartialEq, Eq)]
pub struct SignedPolicy {
    // Visible to the policy module's tests, which forge signatures; an unverified policy
    // proves nothing, so this opens no door (VerifiedPolicy's fields stay private here).
    pub(super) body: Vec<u8>,
    pub(super) signature: [u8; 64],
}

impl fmt::Debug for SignedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignedPolicy({} body bytes)", self.body.len())
    }
}

impl SignedPolicy {
    /// Checks and signs a policy. The key must be the one the policy names as publisher.
    pub fn sign(policy: &Policy, key: &SecretKey) -> Result<VerifiedPolicy, SignError> {
        if key.public() != policy.publisher {
            return Err(SignError::WrongSigner {
                publisher: policy.publisher,
                signer: key.public(),
            });
        }
        policy.validate()?;
        let body = encode_body(policy);
        if !envelope::fits(body.len()) {
            return Err(SignError::TooLarge);
        }
        let signature = key.sign(&envelope::signed_message(DOMAIN, &body));
        let signed = SignedPolicy { body, signature };
        let id = PolicyId(blake3::hash(&signed.encode()));
        Ok(VerifiedPolicy {
            policy: policy.clone(),
            signed,
            id,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        envelope::encode(MAGIC, &self.body, &self.signature)
    }

    /// Parses the envelope only; nothing is trusted yet.
    pub fn decode(bytes: &[u8]) -> Result<Self, PolicyDecodeError> {
        let (body, signature) = envelope::decode(MAGIC, bytes).map_err(|e| match e {
            FrameError::BadMagic => PolicyDecodeError::BadMagic,
            FrameError::Truncated(n) => PolicyDecodeError::Truncated(n),
            FrameError::TooLarge => PolicyDecodeError::TooLarge,
            FrameError::TrailingBytes(n) => PolicyDecodeError::TrailingBytes(n),
        })?;
        Ok(Self { body, signature })
    }

    /// Decodes the body and checks the signature against the publisher key it names.
    pub fn verify(&self) -> Result<VerifiedPolicy, PolicyDecodeError> {
        let (wire, rest): (WirePolicy, &[u8]) = postcard::take_from_bytes(&self.body)
            .map_err(|e| PolicyDecodeError::Body(e.to_string()))?;
        if !rest.is_empty() {
            return Err(PolicyDecodeError::NotCanonical);
        }
        let policy = from_wire(wire)?;
        if !policy.publisher.verify(
            &envelope::signed_message(DOMAIN, &self.body),
            &self.signature,
        ) {
            return Err(PolicyDecodeError::BadSignature(policy.publisher));
        }
        if encode_body(&policy) != self.body {
            return Err(PolicyDecodeError::NotCanonical);
        }
        let id = PolicyId(blake3::hash(&self.encode()));
        Ok(VerifiedPolicy {
            policy,
            signed: self.clone(),
            id,
        })
    }

    /// `decode` then `verify`.
    pub fn open(bytes: &[u8]) -> Result<VerifiedPolicy, PolicyDecodeError> {
        Self::decode(bytes)?.verify()
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("the policy names publisher {publisher} but the key given is {signer}")]
    WrongSigner {
        publisher: PublicKey,
        signer: PublicKey,
    },
    #[error("the policy is larger than {MAX_ENCODED} bytes once encoded")]
    TooLarge,
    #[error(transparent)]
    Invalid(#[from] PolicyError),
}

/// A policy whose signature has been checked against the key it names. Only
/// [`SignedPolicy::verify`] and [`SignedPolicy::sign`] make one; whether the key is trusted
/// and the version new enough is [`admit_policy`]'s decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPolicy {
    policy: Policy,
    signed: SignedPolicy,
    id: PolicyId,
}

impl VerifiedPolicy {
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn signed(&self) -> &SignedPolicy {
        &self.signed
    }

    pub fn id(&self) -> PolicyId {
        self.id
    }
}

impl std::ops::Deref for VerifiedPolicy {
    type Target = Policy;

    fn deref(&self) -> &Policy {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_canonical_body_is_refused() {
        let key = SecretKey::from_seed([1; 32]);
        let mut policy = Policy {
            version: 1,
            created: 1,
            expires: None,
            publisher: key.public(),
            groups: Default::default(),
            rules: vec![],
            site_defaults: Default::default(),
            default: Some(Action::Local),
        };
        let macs = [Mac([1; 6]), Mac([2; 6])];
        policy.groups.insert("g".into(), macs.into_iter().collect());
        // A correctly signed body whose group lists its MACs out of order: the signature is
        // good, but the bytes are not the one canonical form, so the id would not be stable.
        let mut wire = to_wire(&policy);
        wire.groups[0].1.reverse();
        let body = postcard::to_allocvec(&wire).unwrap();
        let signature = key.sign(&envelope::signed_message(DOMAIN, &body));
        let signed = SignedPolicy { body, signature };
        assert_eq!(
            signed.verify().unwrap_err(),
            PolicyDecodeError::NotCanonical
        );
        // The same policy signed normally verifies.
        assert!(SignedPolicy::sign(&policy, &key)
            .unwrap()
            .signed()
            .verify()
            .is_ok());
    }
}
