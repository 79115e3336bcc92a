//! The signed release: its byte format, signing and verification.
//!
//! Format (all integers little-endian; the framing is shared with boot policies, see
//! `envelope.rs`, but magic and domain are a release's own):
//!
//! ```text
//! "NBREL01\n"            8 bytes magic: format and version of this envelope
//! body_len: u32          length of body
//! body                   postcard encoding of the release (see `Wire*` below)
//! signature              64 bytes, ed25519 over DOMAIN || body
//! ```
//!
//! The body is the only thing signed and it covers every field. Verification decodes the
//! body, checks the signature with the publisher key the body names (trust is a separate,
//! node-side decision: [`crate::admit`]), and re-encodes the decoded release to make sure the
//! bytes were the one canonical encoding — so a release has exactly one valid byte form and
//! its [`ReleaseId`] (BLAKE3 of those bytes) is stable everywhere.
//!
//! Compatibility: the wire structs are append-only; a change of meaning gets a new magic.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{
    envelope::{self, FrameError},
    release::ReleaseSpec,
    BootEntry, CmdlineTemplate, FileEntry, PublicKey, Release, ReleaseError, SecretKey,
};

const MAGIC: &[u8; 8] = b"NBREL01\n";
/// Domain separation: a signature over a release can never be replayed as a signature over
/// anything else this key signs (and vice versa).
const DOMAIN: &[u8] = b"netboot signed release v1\0";
pub use crate::envelope::MAX_ENCODED;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("not a netboot signed release (bad magic bytes)")]
    BadMagic,
    #[error("signed release is truncated ({0} bytes)")]
    Truncated(usize),
    #[error("signed release is larger than {MAX_ENCODED} bytes")]
    TooLarge,
    #[error("signed release has {0} unexpected bytes after the signature")]
    TrailingBytes(usize),
    #[error("release body does not decode: {0}")]
    Body(String),
    #[error("release body is not in canonical encoding")]
    NotCanonical,
    #[error("release is malformed: {0}")]
    Invalid(ReleaseError),
    #[error("release field is malformed: {0}")]
    Field(String),
    #[error("signature does not verify for publisher {0}: the release was altered or not signed by that key")]
    BadSignature(PublicKey),
}

#[derive(Serialize, Deserialize)]
struct WireRelease {
    name: String,
    version: u64,
    created: u64,
    expires: Option<u64>,
    publisher: [u8; 32],
    files: Vec<WireFile>,
    boot: Option<WireBoot>,
}

#[derive(Serialize, Deserialize)]
struct WireFile {
    path: String,
    size: u64,
    hash: [u8; 32],
}

/// Variant order is part of the format.
#[derive(Serialize, Deserialize)]
enum WireBoot {
    Linux {
        kernel: String,
        initrds: Vec<String>,
        cmdline: String,
    },
    Iso {
        iso: String,
    },
}

fn to_wire(r: &Release) -> WireRelease {
    WireRelease {
        name: r.name.to_string(),
        version: r.version,
        created: r.created,
        expires: r.expires,
        publisher: *r.publisher.as_bytes(),
        files: r
            .files
            .iter()
            .map(|f| WireFile {
                path: f.path.to_string(),
                size: f.size,
                hash: *f.hash.as_bytes(),
            })
            .collect(),
        boot: r.boot.as_ref().map(|b| match b {
            BootEntry::Linux {
                kernel,
                initrds,
                cmdline,
            } => WireBoot::Linux {
                kernel: kernel.to_string(),
                initrds: initrds.iter().map(ToString::to_string).collect(),
                cmdline: cmdline.as_str().to_string(),
            },
            BootEntry::Iso { iso } => WireBoot::Iso {
                iso: iso.to_string(),
            },
        }),
    }
}

fn field<T: std::str::FromStr>(s: &str) -> Result<T, DecodeError>
where
    T::Err: fmt::Display,
{
    s.parse::<T>()
        .map_err(|e| DecodeError::Field(e.to_string()))
}

fn from_wire(w: WireRelease) -> Result<Release, DecodeError> {
    let files = w
        .files
        .iter()
        .map(|f| {
            Ok(FileEntry {
                path: field(&f.path)?,
                size: f.size,
                hash: blake3::Hash::from_bytes(f.hash),
            })
        })
        .collect::<Result<Vec<_>, DecodeError>>()?;
    let boot = match w.boot {
        None => None,
        Some(WireBoot::Linux {
            kernel,
            initrds,
            cmdline,
        }) => Some(BootEntry::Linux {
            kernel: field(&kernel)?,
            initrds: initrds.iter().map(|p| field(p)).collect::<Result<_, _>>()?,
            cmdline: CmdlineTemplate::parse(&cmdline)
                .map_err(|e| DecodeError::Field(e.to_string()))?,
        }),
        Some(WireBoot::Iso { iso }) => Some(BootEntry::Iso { iso: field(&iso)? }),
    };
    let publisher =
        PublicKey::from_bytes(w.publisher).map_err(|e| DecodeError::Field(e.to_string()))?;
    let release = Release {
        name: field(&w.name)?,
        version: w.version,
        created: w.created,
        expires: w.expires,
        publisher,
        files,
        boot,
    };
    // Not Release::new: a decoded release must already be sorted, not be silently re-sorted.
    release.validate().map_err(DecodeError::Invalid)?;
    Ok(release)
}

fn encode_body(r: &Release) -> Vec<u8> {
    // Serialising plain structs of integers, strings and vectors into a Vec cannot fail.
    postcard::to_allocvec(&to_wire(r)).unwrap_or_default()
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    envelope::signed_message(DOMAIN, body)
}

/// The identity of one signed release: BLAKE3 of its encoded bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReleaseId(pub blake3::Hash);

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex()[..16])
    }
}

impl fmt::Debug for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReleaseId({})", self.0.to_hex())
    }
}

/// A release with a signature, as it travels and as it is stored. Not yet trusted: call
/// [`SignedRelease::verify`].
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRelease {
    body: Vec<u8>,
    signature: [u8; 64],
}

impl SignedRelease {
    /// Signs a release. The key must be the one the release names as its publisher.
    pub fn sign(release: &Release, key: &SecretKey) -> Result<Self, ReleaseError> {
        if key.public() != release.publisher {
            return Err(ReleaseError::WrongSigner {
                publisher: release.publisher,
                signer: key.public(),
            });
        }
        release.validate()?;
        let body = encode_body(release);
        let signature = key.sign(&signed_message(&body));
        Ok(Self { body, signature })
    }

    pub fn encode(&self) -> Vec<u8> {
        envelope::encode(MAGIC, &self.body, &self.signature)
    }

    /// Parses the envelope only; nothing is trusted yet.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (body, signature) = envelope::decode(MAGIC, bytes).map_err(|e| match e {
            FrameError::BadMagic => DecodeError::BadMagic,
            FrameError::Truncated(n) => DecodeError::Truncated(n),
            FrameError::TooLarge => DecodeError::TooLarge,
            FrameError::TrailingBytes(n) => DecodeError::TrailingBytes(n),
        })?;
        Ok(Self { body, signature })
    }

    /// Decodes the body and checks the signature against the publisher key it names.
    pub fn verify(&self) -> Result<VerifiedRelease, DecodeError> {
        let (wire, rest): (WireRelease, &[u8]) =
            postcard::take_from_bytes(&self.body).map_err(|e| DecodeError::Body(e.to_string()))?;
        if !rest.is_empty() {
            return Err(DecodeError::NotCanonical);
        }
        let release = from_wire(wire)?;
        if !release
            .publisher
            .verify(&signed_message(&self.body), &self.signature)
        {
            return Err(DecodeError::BadSignature(release.publisher));
        }
        if encode_body(&release) != self.body {
            return Err(DecodeError::NotCanonical);
        }
        let id = ReleaseId(blake3::hash(&self.encode()));
        Ok(VerifiedRelease {
            release,
            signed: self.clone(),
            id,
        })
    }

    /// `decode` then `verify`.
    pub fn open(bytes: &[u8]) -> Result<VerifiedRelease, DecodeError> {
        Self::decode(bytes)?.verify()
    }
}

impl fmt::Debug for SignedRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignedRelease({} body bytes)", self.body.len())
    }
}

/// A release whose signature has been checked against the key it names. Only
/// [`SignedRelease::verify`] makes one, so holding one proves the check happened; whether
/// that key is trusted is decided by [`crate::admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRelease {
    release: Release,
    signed: SignedRelease,
    id: ReleaseId,
}

impl VerifiedRelease {
    pub fn release(&self) -> &Release {
        &self.release
    }

    pub fn signed(&self) -> &SignedRelease {
        &self.signed
    }

    pub fn id(&self) -> ReleaseId {
        self.id
    }
}

impl std::ops::Deref for VerifiedRelease {
    type Target = Release;

    fn deref(&self) -> &Release {
        &self.release
    }
}

/// Convenience for publishers: build, check and sign in one step.
pub fn build_and_sign(spec: ReleaseSpec, key: &SecretKey) -> Result<VerifiedRelease, ReleaseError> {
    let release = Release::new(spec)?;
    let signed = SignedRelease::sign(&release, key)?;
    let id = ReleaseId(blake3::hash(&signed.encode()));
    Ok(VerifiedRelease {
        release,
        signed,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImagePath;

    fn spec(key: &SecretKey) -> ReleaseSpec {
        let file = |p: &str, data: &[u8]| FileEntry {
            path: p.parse().unwrap(),
            size: data.len() as u64,
            hash: blake3::hash(data),
        };
        ReleaseSpec {
            name: "debian-12".parse().unwrap(),
            version: 3,
            created: 1_700_000_000,
            expires: Some(1_900_000_000),
            publisher: key.public(),
            files: vec![
                file("vmlinuz", b"kernel"),
                file("initrd.img", b"initrd"),
                file("live/root.sfs", b"root"),
            ],
            boot: Some(BootEntry::Linux {
                kernel: "vmlinuz".parse().unwrap(),
                initrds: vec!["initrd.img".parse().unwrap()],
                cmdline: CmdlineTemplate::parse("console=ttyS0 fetch={{image_url}}/live/root.sfs")
                    .unwrap(),
            }),
        }
    }

    #[test]
    fn sign_verify_round_trip() {
        let key = SecretKey::from_seed([1; 32]);
        let signed = build_and_sign(spec(&key), &key).unwrap();
        let bytes = signed.signed().encode();
        let opened = SignedRelease::open(&bytes).unwrap();
        assert_eq!(opened.release(), signed.release());
        assert_eq!(opened.id(), signed.id());
        assert_eq!(
            opened.signed().encode(),
            bytes,
            "re-encoding is byte-identical"
        );
        // files were sorted by Release::new
        let paths: Vec<_> = opened.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["initrd.img", "live/root.sfs", "vmlinuz"]);
        assert!(opened
            .file(&"vmlinuz".parse::<ImagePath>().unwrap())
            .is_some());
    }

    #[test]
    fn every_flipped_bit_breaks_verification() {
        let key = SecretKey::from_seed([2; 32]);
        let bytes = build_and_sign(spec(&key), &key).unwrap().signed().encode();
        for i in 0..bytes.len() {
            for bit in [0u8, 3, 7] {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    SignedRelease::open(&bad).is_err(),
                    "flip of bit {bit} in byte {i} was accepted"
                );
            }
        }
    }

    #[test]
    fn truncation_and_trailing_bytes_are_rejected() {
        let key = SecretKey::from_seed([3; 32]);
        let bytes = build_and_sign(spec(&key), &key).unwrap().signed().encode();
        for len in 0..bytes.len() {
            assert!(
                SignedRelease::open(&bytes[..len]).is_err(),
                "truncated to {len} accepted"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            SignedRelease::decode(&long).unwrap_err(),
            DecodeError::TrailingBytes(1)
        );
    }

    #[test]
    fn signature_by_another_key_is_rejected() {
        let key = SecretKey::from_seed([4; 32]);
        let other = SecretKey::from_seed([5; 32]);
        // The publisher field is part of the signed body, so another key cannot sign for it...
        let release = Release::new(spec(&key)).unwrap();
        assert!(matches!(
            SignedRelease::sign(&release, &other),
            Err(ReleaseError::WrongSigner { .. })
        ));
        // ...and swapping in another key's signature fails verification.
        let good = SignedRelease::sign(&release, &key).unwrap();
        let mut forged = good.clone();
        forged.signature = other.sign(&signed_message(&good.body));
        assert_eq!(
            forged.verify().unwrap_err(),
            DecodeError::BadSignature(key.public())
        );
    }

    #[test]
    fn invalid_releases_are_refused_at_build() {
        let key = SecretKey::from_seed([6; 32]);
        let mut s = spec(&key);
        s.version = 0;
        assert_eq!(Release::new(s).unwrap_err(), ReleaseError::ZeroVersion);
        let mut s = spec(&key);
        s.files.push(s.files[0].clone());
        assert!(matches!(
            Release::new(s).unwrap_err(),
            ReleaseError::DuplicatePath(_)
        ));
        let mut s = spec(&key);
        s.files.retain(|f| f.path.as_str() != "vmlinuz");
        assert!(matches!(
            Release::new(s).unwrap_err(),
            ReleaseError::BootFileMissing(_)
        ));
        let mut s = spec(&key);
        s.expires = Some(s.created);
        assert!(matches!(
            Release::new(s).unwrap_err(),
            ReleaseError::ExpiresBeforeCreated { .. }
        ));
    }
}
