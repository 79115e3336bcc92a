//! Boot policies on this side of the wire: reading `policy.toml` and signed policy files.
//! (Fetching policies from the fleet and applying them to boots is not built yet; see
//! docs/architecture.md, "Boot policy".)

mod file;

pub use file::{load_signed, sign_source, PolicyFileError, SignOptions};
