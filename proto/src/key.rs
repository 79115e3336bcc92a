//! Publisher keys and their one text form.
//!
//! A public key is written `ed25519:<64 hex digits>` everywhere: in node configs, on the
//! command line (`--trust`), in logs. The prefix makes a pasted key of the wrong kind (an iroh
//! node id, a hash) fail loudly instead of being half-accepted.

use std::{fmt, str::FromStr};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

const PUBLIC_PREFIX: &str = "ed25519:";
const SECRET_PREFIX: &str = "ed25519-secret:";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("a public key must start with `{PUBLIC_PREFIX}`, got `{0}`")]
    MissingPrefix(String),
    #[error("a public key is `{PUBLIC_PREFIX}` followed by 64 hex digits; `{0}` is not")]
    BadHex(String),
    #[error("`{0}` is not a valid ed25519 public key (not a point on the curve)")]
    NotAKey(String),
    #[error("no `{SECRET_PREFIX}<64 hex digits>` line in the secret key file")]
    NoSecretLine,
    #[error("the secret key line is not `{SECRET_PREFIX}` followed by 64 hex digits")]
    BadSecret,
}

/// A publisher's public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, KeyError> {
        VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::NotAKey(hex::encode(bytes)))?;
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0).ok()
    }

    /// `verify_strict` rejects small-order keys and malleable signatures, so one release has
    /// exactly one valid signature encoding.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let Some(key) = self.verifying_key() else {
            return false;
        };
        key.verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let hex_part = s
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or_else(|| KeyError::MissingPrefix(s.to_string()))?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| KeyError::BadHex(s.to_string()))?;
        Self::from_bytes(bytes)
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A publisher's secret key. Its text form lives only in the key file.
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// Builds a key from 32 random bytes; the caller supplies the randomness (this crate does
    /// no I/O).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// The key file's content: comments for the human, one line for the machine.
    pub fn to_file_text(&self) -> String {
        format!(
            "# netboot publisher secret key: anyone holding this file can publish boot images\n\
             # that your nodes will trust. Keep it private (mode 0600), keep a backup offline.\n\
             # public key: {}\n\
             {SECRET_PREFIX}{}\n",
            self.public(),
            hex::encode(self.0.to_bytes())
        )
    }

    pub fn from_file_text(text: &str) -> Result<Self, KeyError> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(SECRET_PREFIX))
            .ok_or(KeyError::NoSecretLine)?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(&line[SECRET_PREFIX.len()..], &mut seed)
            .map_err(|_| KeyError::BadSecret)?;
        Ok(Self::from_seed(seed))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_text_round_trip() {
        let key = SecretKey::from_seed([7; 32]).public();
        let text = key.to_string();
        assert!(text.starts_with("ed25519:"));
        assert_eq!(text.len(), 8 + 64);
        assert_eq!(text.parse::<PublicKey>().unwrap(), key);
        assert_eq!(
            text.to_uppercase()
                .replace("ED25519", "ed25519")
                .parse::<PublicKey>()
                .unwrap(),
            key
        );
    }

    #[test]
    fn public_key_errors_name_the_problem() {
        let hex = hex::encode([1u8; 32]);
        assert!(matches!(
            hex.parse::<PublicKey>(),
            Err(KeyError::MissingPrefix(_))
        ));
        assert!(matches!(
            "ed25519:abcd".parse::<PublicKey>(),
            Err(KeyError::BadHex(_))
        ));
        assert!(matches!(
            format!("ed25519:{}", "zz".repeat(32)).parse::<PublicKey>(),
            Err(KeyError::BadHex(_))
        ));
    }

    #[test]
    fn secret_key_file_round_trip() {
        let key = SecretKey::from_seed([9; 32]);
        let text = key.to_file_text();
        assert!(
            text.contains(&key.public().to_string()),
            "file names its public key"
        );
        let back = SecretKey::from_file_text(&text).unwrap();
        assert_eq!(back.public(), key.public());
        assert_eq!(
            SecretKey::from_file_text("# nothing\n").unwrap_err(),
            KeyError::NoSecretLine
        );
        assert_eq!(
            SecretKey::from_file_text("ed25519-secret:12\n").unwrap_err(),
            KeyError::BadSecret
        );
    }
}
