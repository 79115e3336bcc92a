//! Boot policies on this side of the wire: reading `policy.toml` and signed policy files, and
//! telling a policy about a client in its own terms.
//! (Fetching policies from the fleet and applying them to boots is not built yet; see
//! docs/architecture.md, "Boot policies"; `policy_arch`/`policy_mac` are for that step.)

mod client;
mod file;

pub use client::{policy_arch, policy_mac};
pub use file::{load_signed, sign_source, PolicyFileError, SignOptions};
