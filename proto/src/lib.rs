//! netboot's shared formats: publisher keys, image names and paths, signed releases, signed
//! boot policies and the rules a node applies before it admits either. Everything here is
//! pure data and pure functions: no I/O, no clock (callers pass "now"), so the same code
//! decides on every node.

pub mod admit;
pub mod cmdline;
mod envelope;
pub mod fleet;
pub mod key;
pub mod name;
pub mod policy;
pub mod release;
pub mod signed;

pub use admit::{admit, Refusal, TrustedKeys};
pub use cmdline::{CmdlineTemplate, CmdlineVars, TemplateError};
pub use key::{KeyError, PublicKey, SecretKey};
pub use name::{ImageName, ImagePath, NameError};
pub use release::{BootEntry, FileEntry, Release, ReleaseError, ReleaseSpec};
pub use signed::{build_and_sign, DecodeError, ReleaseId, SignedRelease, VerifiedRelease};

/// A BLAKE3 hash of a file's content: how releases name files.
pub type ContentHash = blake3::Hash;
